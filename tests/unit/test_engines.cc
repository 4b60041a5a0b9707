// Engines and tables reached through the static library: the handoff's
// token file (ops/handoff_choices.h).
#include "ops/handoff_choices.h"
#include "util/error.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

extern "C" {
#include <cmocka.h>
}

using namespace cloudlet;

namespace {

int status_of(const std::function<void()> &f, std::string *msg = nullptr) {
	try {
		f();
	} catch (const Error &e) {
		if (msg)
			*msg = e.what();
		return e.status();
	}
	return 0;
}

} // namespace

// ---------------------------------------------------------------------------
// The handoff's token file: trimmed, at least 32 bytes, private to its owner.

static void test_token_file(void **) {
	char tmpl[] = "/tmp/cloudlet-token-XXXXXX";
	int fd = mkstemp(tmpl);
	std::string tok = "  " + std::string(44, 'Q') + "\n";
	assert_int_equal(write(fd, tok.data(), tok.size()), static_cast<ssize_t>(tok.size()));
	close(fd);
	chmod(tmpl, 0600);
	assert_string_equal(ops::read_handoff_token(tmpl).c_str(), std::string(44, 'Q').c_str());
	chmod(tmpl, 0644);
	assert_int_equal(status_of([&] { ops::read_handoff_token(tmpl); }), CLOUDLET_E_PERMISSION);
	chmod(tmpl, 0600);
	assert_int_equal(truncate(tmpl, 10), 0);
	assert_int_equal(status_of([&] { ops::read_handoff_token(tmpl); }), CLOUDLET_E_INVALID_ARG);
	unlink(tmpl);
	assert_int_equal(status_of([&] { ops::read_handoff_token(tmpl); }), CLOUDLET_E_NOT_FOUND);
}

static void test_handoff_level(void **) {
	assert_int_equal(ops::handoff_level("zstd", -1), 3);
	assert_int_equal(ops::handoff_level("auto", -1), 3);
	assert_int_equal(ops::handoff_level("none", -1), 3);
	assert_int_equal(ops::handoff_level("lzma", -1), 6);
	assert_int_equal(ops::handoff_level("lzma", 2), 2);
	assert_int_equal(ops::handoff_level("zstd", 0), 0);
}

int main() {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_token_file),
	    cmocka_unit_test(test_handoff_level),
	};
	return cmocka_run_group_tests_name("engines", tests, nullptr, nullptr);
}
