#include "util/base64.h"

#include "util/error.h"

namespace cloudlet {

namespace {
const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
int value_of(char c) {
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}
} // namespace

std::string base64_encode(const std::vector<uint8_t> &d) {
	std::string s;
	s.reserve((d.size() + 2) / 3 * 4);
	for (size_t i = 0; i < d.size(); i += 3) {
		uint32_t v = uint32_t(d[i]) << 16;
		if (i + 1 < d.size())
			v |= uint32_t(d[i + 1]) << 8;
		if (i + 2 < d.size())
			v |= d[i + 2];
		s += kAlphabet[(v >> 18) & 63];
		s += kAlphabet[(v >> 12) & 63];
		s += i + 1 < d.size() ? kAlphabet[(v >> 6) & 63] : '=';
		s += i + 2 < d.size() ? kAlphabet[v & 63] : '=';
	}
	return s;
}

std::vector<uint8_t> base64_decode(const std::string &s, const std::string &what) {
	if (s.size() % 4)
		fail(CLOUDLET_E_CORRUPT, what + ": base64 length " + std::to_string(s.size()) + " is not a multiple of 4");
	std::vector<uint8_t> out;
	out.reserve(s.size() / 4 * 3);
	for (size_t i = 0; i < s.size(); i += 4) {
		int v[4];
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			char c = s[i + k];
			if (c == '=' && i + 4 == s.size() && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad)
				fail(CLOUDLET_E_CORRUPT, what + ": base64 padding in the middle");
			v[k] = value_of(c);
			if (v[k] < 0)
				fail(CLOUDLET_E_CORRUPT, what + ": not base64 at character " + std::to_string(i + k));
		}
		uint32_t x = uint32_t(v[0]) << 18 | uint32_t(v[1]) << 12 | uint32_t(v[2]) << 6 | uint32_t(v[3]);
		out.push_back(static_cast<uint8_t>(x >> 16));
		if (pad < 2)
			out.push_back(static_cast<uint8_t>(x >> 8));
		if (pad < 1)
			out.push_back(static_cast<uint8_t>(x));
	}
	return out;
}

} // namespace cloudlet
