// Parser throughput: parse a >= 1 GiB QEMU migration stream from the page
// cache on one core, beside `cat FILE > /dev/null` measured in the same run.
//
//   bench_stream_parse [FILE]
//
// Without FILE, a synthetic 1.2 GB stream (1.5 GiB pc.ram, 3/4 data pages,
// 1/4 zero pages, a small device tail) is written by our own writer to
// $TMPDIR/cloudlet-bench-stream-1.5g.qemu once and reused. Prints the median of 5
// runs of each and their ratio; asserts nothing.
#include "byte_reader.h"
#include "memory_image.h"
#include "save_image.h"
#include "stream_parser.h"
#include "stream_summary.h"
#include "stream_writer.h"
#include "util/error.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace cloudlet::qemu;

namespace {

double now() {
	return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void make_stream(const std::string &path) {
	MemoryImage img;
	StreamInfo &si = img.info;
	si.version = 3;
	const char machine[] = "pc-i440fx-7.2";
	si.config_section = {0x07, 0, 0, 0, 13};
	si.config_section.insert(si.config_section.end(), machine, machine + 13);
	si.ram_section_id = 3;
	si.ram_version = 4;
	si.blocks.push_back({"pc.ram", 3ull << 29, 0}); // 1.5 GiB: a >= 1 GiB stream
	si.total_pages = si.blocks[0].pages();
	img.reset_pages(si.total_pages);
	std::mt19937_64 rng(1);
	std::vector<uint8_t> page(4096);
	for (uint64_t p = 0; p < si.total_pages; p++) {
		if (p % 4 == 3) {
			img.set_page(p, nullptr, 0);
			continue;
		}
		for (size_t i = 0; i < page.size(); i += 8) {
			uint64_t v = rng();
			memcpy(&page[i], &v, 8);
		}
		img.set_page(p, page.data(), 0);
	}
	// A one-device tail as QEMU ends it: FULL section, footer, EOF, description.
	std::vector<uint8_t> &t = img.info.device_state;
	t = {0x04, 0, 0, 0, 4, 5, 't', 'i', 'm', 'e', 'r', 0, 0, 0, 0, 0, 0, 0, 2};
	t.insert(t.end(), 8, 0x11);
	t.insert(t.end(), {0x7e, 0, 0, 0, 4, 0x00, 0x06});
	std::string json = "{\"page_size\": 4096, \"devices\": [{\"name\": \"timer\", \"instance_id\": 0}]}";
	uint32_t n = static_cast<uint32_t>(json.size());
	t.insert(t.end(), {uint8_t(n >> 24), uint8_t(n >> 16), uint8_t(n >> 8), uint8_t(n)});
	t.insert(t.end(), json.begin(), json.end());
	std::string tmp = path + ".tmp";
	int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		perror(tmp.c_str());
		exit(1);
	}
	FdSink out(fd, tmp);
	write_stream(out, MemoryImageProvider(img));
	out.flush();
	close(fd);
	rename(tmp.c_str(), path.c_str());
}

double median(std::vector<double> v) {
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

} // namespace

int main(int argc, char **argv) {
	std::string path;
	if (argc > 1) {
		path = argv[1];
	} else {
		const char *t = getenv("TMPDIR");
		path = std::string(t && *t ? t : "/tmp") + "/cloudlet-bench-stream-1.5g.qemu";
		struct stat st {};
		if (stat(path.c_str(), &st) != 0) {
			fprintf(stderr, "writing a synthetic 1.5 GiB-RAM stream to %s ...\n", path.c_str());
			make_stream(path);
		}
	}
	struct stat st {};
	stat(path.c_str(), &st);
	double gb = static_cast<double>(st.st_size) / 1e9;
	std::string cat = "cat '" + path + "' > /dev/null";
	if (system(cat.c_str()) != 0) // warm the page cache
		return 1;
	std::vector<double> tcat, tparse;
	uint64_t pages = 0;
	for (int run = 0; run < 5; run++) {
		double t0 = now();
		if (system(cat.c_str()) != 0)
			return 1;
		tcat.push_back(now() - t0);
		t0 = now();
		int fd = open(path.c_str(), O_RDONLY);
		FdSource src(fd, path);
		Reader r(src, path);
		if (r.peek() == 'L')
			read_save_header(r);
		StreamSummary sum;
		try {
			parse_stream(r, sum);
		} catch (const cloudlet::Error &e) {
			fprintf(stderr, "parse failed: %s\n", e.what());
			return 1;
		}
		close(fd);
		tparse.push_back(now() - t0);
		pages = sum.page_records;
	}
	double c = median(tcat), p = median(tparse);
	printf("stream: %s (%.2f GB, %llu page records)\n", path.c_str(), gb, static_cast<unsigned long long>(pages));
	printf("%-28s %8.3f s  %6.2f GB/s\n", "cat FILE > /dev/null", c, gb / c);
	printf("%-28s %8.3f s  %6.2f GB/s\n", "parse (one core)", p, gb / p);
	printf("parse / cat throughput ratio: %.2f\n", c / p);
	return 0;
}
