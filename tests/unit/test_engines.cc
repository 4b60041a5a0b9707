// Engines and tables reached through the static library, no libvirt
// needed: handoff's adaptive codec choice (engine/codec_chooser.h) fed
// measured figures, the undo journal (store/undo_journal.h) and its replay
// by recovery (ops/recovery.h) after a process really died, the ABI's
// options tables (abi/options.h: every version's size, defaults for what a
// smaller version lacks) and the handoff's token file and level
// (ops/handoff_choices.h).
#include "abi/options.h"
#include "engine/arriving_pages.h"
#include "engine/codec_chooser.h"
#include "host/tempdir.h"
#include "ops/context.h"
#include "ops/handoff_choices.h"
#include "ops/recovery.h"
#include "store/base_store.h"
#include "store/owner.h"
#include "store/undo_journal.h"
#include "util/error.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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

bool exists(const std::string &path) { return access(path.c_str(), F_OK) == 0; }

void write_file(const std::string &path, const std::string &text) {
	std::ofstream(path, std::ios::binary) << text;
}

} // namespace

// ---------------------------------------------------------------------------
// CodecChooser: the candidate delivering the most raw state per second
// through the link wins; within 5 % the smaller output.

using chunk::Codec;
using engine::CodecChooser;
using Estimate = engine::CodecChooser::Estimate;

// Figures shaped like a trial on memory pages: faster codecs compress less.
static std::vector<Estimate> trial() {
	return {{{Codec::Zstd, 1}, 500e6, 0.50},
	        {{Codec::Zstd, 3}, 300e6, 0.45},
	        {{Codec::Zstd, 9}, 50e6, 0.40},
	        {{Codec::Lzma, 1}, 30e6, 0.35},
	        {{Codec::Lzma, 6}, 5e6, 0.30}};
}

static void assert_choice(const engine::CodecChoice &c, Codec codec, int level) {
	if (c.codec != codec || c.level != level)
		fail_msg("chose %s, expected %s", c.name().c_str(), engine::CodecChoice{codec, level}.name().c_str());
}

// Early start: a named page is not ready until it arrives; the others are
// at once; arrivals are taken in order; completion with pages missing is a
// corrupt overlay; abandon wakes a waiter.
static void test_arriving_pages(void **) {
	std::vector<uint8_t> named(3, 0);
	named[0] = 0x05;      // pages 0 and 2
	named[2] = 0xff;      // pages 16..19 of 20 (the rest beyond the end)
	engine::ArrivingPages a(20, named);
	assert_int_equal(a.waiting(), 6);
	assert_false(a.ready(0));
	assert_true(a.ready(1));
	assert_false(a.ready(19));
	assert_true(a.ready(25)); // beyond: nothing named there
	a.arrived(2);
	a.arrived(2); // twice: once
	a.arrived(1); // not named: nothing
	assert_true(a.ready(2));
	std::vector<uint64_t> got;
	assert_false(a.take(got));
	assert_int_equal(got.size(), 1);
	assert_int_equal(got[0], 2);
	try {
		a.complete();
		fail_msg("completed with 5 pages missing");
	} catch (const Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
	}
	for (uint64_t p : {0, 16, 17, 18, 19})
		a.arrived(p);
	a.complete();
	got.clear();
	assert_true(a.take(got));
	assert_int_equal(got.size(), 5);
	engine::ArrivingPages b(8, {0xff});
	std::thread t([&] { b.abandon(); });
	b.wait(std::chrono::seconds(30));
	t.join();
	assert_true(b.abandoned());
}

static void test_codec_delivered_rate(void **) {
	Estimate e{{Codec::Zstd, 3}, 100e6, 0.5};
	assert_true(e.delivered_bps(0) == 100e6);      // an unmeasured link is not the limit
	assert_true(e.delivered_bps(10e6) == 20e6);    // the link carries 10 MB/s of half-size output
	assert_true(e.delivered_bps(1000e6) == 100e6); // a fast link: the CPU is the limit
	Estimate unmeasured{{Codec::Zstd, 3}, 0, 1};   // no time measured: not the limit either
	assert_true(unmeasured.delivered_bps(10e6) == 10e6);
	Estimate nothing{{Codec::Zstd, 3}, 100e6, 0}; // all of it compressed away: no division by zero
	assert_true(nothing.delivered_bps(10e6) == 100e6);
}

static void test_codec_choice_follows_the_link(void **) {
	CodecChooser c(true, {Codec::Zstd, 3});
	// Unknown link: the fastest compressor.
	c.choose(trial());
	assert_choice(c.current(), Codec::Zstd, 1);
	assert_int_equal(c.switches(), 1);
	assert_int_equal(c.estimates().size(), 5);
	// 100 MB/s: zstd-3 delivers min(300, 100 / 0.45 = 222) MB/s, zstd-1 only 200.
	c.set_link_rate(100e6);
	c.choose(trial());
	assert_choice(c.current(), Codec::Zstd, 3);
	assert_int_equal(c.switches(), 2);
	// The same figures again: no switch.
	c.choose(trial());
	assert_int_equal(c.switches(), 2);
	// 1 MB/s: every candidate out-runs the link; the smallest output (lzma-6,
	// 3.3 MB/s delivered, its CPU still faster at 5) wins.
	c.set_link_rate(1e6);
	c.choose(trial());
	assert_choice(c.current(), Codec::Lzma, 6);
	assert_int_equal(c.switches(), 3);
	// 10 MB/s: lzma-1 (min(30, 28.6)) beats zstd-9 (25) and lzma-6 (5).
	c.set_link_rate(10e6);
	c.choose(trial());
	assert_choice(c.current(), Codec::Lzma, 1);
	assert_int_equal(c.switches(), 4);
}

static void test_codec_near_ties(void **) {
	CodecChooser c(true, {Codec::Zstd, 1});
	// Within 5 %: the smaller output wins, even a little slower.
	c.choose({{{Codec::Zstd, 1}, 100e6, 0.5}, {{Codec::Zstd, 9}, 96e6, 0.4}});
	assert_choice(c.current(), Codec::Zstd, 9);
	// More than 5 % slower: speed wins.
	c.choose({{{Codec::Zstd, 1}, 100e6, 0.5}, {{Codec::Zstd, 9}, 94e6, 0.4}});
	assert_choice(c.current(), Codec::Zstd, 1);
	// Equal in both: the first stays (no switch back and forth on noise).
	c.choose({{{Codec::Zstd, 1}, 100e6, 0.5}, {{Codec::Lzma, 1}, 100e6, 0.5}});
	assert_choice(c.current(), Codec::Zstd, 1);
	assert_int_equal(c.switches(), 2);
	// Nothing measured: nothing changes.
	c.choose({});
	assert_choice(c.current(), Codec::Zstd, 1);
	assert_int_equal(c.estimates().size(), 2);
}

static void test_codec_fixed(void **) {
	CodecChooser c(false, {Codec::Lzma, 2});
	c.choose(trial());
	std::vector<uint8_t> raw(64 << 10, 7);
	for (int i = 0; i < 40; i++)
		c.observe(raw.data(), raw.size());
	assert_choice(c.current(), Codec::Lzma, 2);
	assert_int_equal(c.switches(), 0);
	assert_true(c.estimates().empty());
}

// observe() times a trial on the first batch and every kTrialEvery-th after.
static void test_codec_trial_cadence(void **) {
	CodecChooser c(true, {Codec::Zstd, 3});
	std::vector<uint8_t> noise(256 << 10), zeros(256 << 10, 0);
	std::mt19937_64 rng(17);
	for (auto &b : noise)
		b = static_cast<uint8_t>(rng());
	c.set_link_rate(1e3); // every candidate out-runs it: output size decides
	c.observe(nullptr, 0); // an empty batch is no batch
	assert_true(c.estimates().empty());
	c.observe(noise.data(), noise.size());
	assert_int_equal(c.estimates().size(), 5);
	for (const auto &e : c.estimates()) {
		assert_true(e.ratio == 1); // incompressible: stored size counted as raw at most
		assert_true(e.cpu_bps > 0);
	}
	// Nothing to gain from any codec: the first candidate, the fastest kind.
	assert_choice(c.current(), Codec::Zstd, 1);
	assert_int_equal(c.switches(), 1);
	for (unsigned i = 1; i < CodecChooser::kTrialEvery; i++)
		c.observe(zeros.data(), zeros.size());
	assert_true(c.estimates()[0].ratio == 1); // not measured again yet
	c.observe(zeros.data(), zeros.size());    // batch kTrialEvery: the next trial
	assert_true(c.estimates()[0].ratio < 0.01);
}

// ---------------------------------------------------------------------------
// UndoJournal: one line per step; recovery replays the journals of dead
// owners (here: only "remove" steps, which need no libvirt).

namespace {

// The process dies here as a crash or SIGKILL kills it: no destructor
// runs, so what is under way stays as it is.
[[noreturn]] void crash() {
	raise(SIGKILL);
	_exit(3);
}

// Runs `body` in a child process, which must crash() in it, and waits for it.
void in_crashing_child(const std::function<void()> &body) {
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		try {
			body();
		} catch (...) {
		}
		_exit(2);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail_msg("the child did not die by SIGKILL (status %d)", status);
}

std::vector<std::string> journals_in(const std::string &tmp) {
	std::vector<std::string> out;
	if (DIR *d = opendir(tmp.c_str())) {
		while (dirent *e = readdir(d))
			if (std::string(e->d_name).rfind("journal-", 0) == 0)
				out.push_back(tmp + "/" + e->d_name);
		closedir(d);
	}
	return out;
}

struct Store {
	host::TempDir dir{"cloudlet-test-store-"};
	std::vector<std::string> warnings;
	ops::Context ctx{settings(), ops_logger()};
	std::string tmp() const { return dir.path() + "/tmp"; }

	ops::Settings settings() const {
		ops::Settings s;
		s.store_dir = dir.path();
		return s;
	}
	Logger ops_logger() {
		return Logger([](cloudlet_log_level level, const char *m, void *self) {
			if (level <= CLOUDLET_LOG_WARN)
				static_cast<Store *>(self)->warnings.push_back(m);
		}, this, CLOUDLET_LOG_DEBUG);
	}
};

} // namespace

static void test_journal_records_steps(void **) {
	Store s;
	store::BaseStore st(s.dir.path());
	std::string path;
	{
		store::UndoJournal j(st.root(), "overlay-create");
		path = j.path();
		assert_true(path.rfind(s.tmp() + "/journal-overlay-create-", 0) == 0);
		store::ProcessId owner;
		assert_true(store::parse_process_tag(path.substr(path.rfind('/') + 1), &owner));
		assert_int_equal(owner.pid, getpid());
		j.remove_path("/a/b c.part"); // the argument is the rest of the line, spaces and all
		j.destroy_domain("6f1c2e8a-0000-4000-8000-000000000001");
		j.resume_domain("6f1c2e8a-0000-4000-8000-000000000002");
		assert_int_equal(status_of([&] { j.remove_path("two\nlines"); }), CLOUDLET_E_INTERNAL);
		auto a = store::read_journal(path);
		assert_int_equal(a.size(), 3);
		assert_string_equal(a[0].action.c_str(), "remove");
		assert_string_equal(a[0].arg.c_str(), "/a/b c.part");
		assert_string_equal(a[1].action.c_str(), "destroy");
		assert_string_equal(a[1].arg.c_str(), "6f1c2e8a-0000-4000-8000-000000000001");
		assert_string_equal(a[2].action.c_str(), "resume");
		assert_string_equal(a[2].arg.c_str(), "6f1c2e8a-0000-4000-8000-000000000002");
	}
	assert_false(exists(path)); // the operation is over: its journal goes
	assert_true(store::read_journal(path).empty());
}

// A torn last line (the process died inside the write) and lines that are
// not actions are skipped; the rest is read.
static void test_journal_torn_and_corrupt(void **) {
	Store s;
	std::string path = s.tmp() + "-journal";
	write_file(path, "remove /x\nnonsense\nremove \n\nresume u1\nremove /y");
	auto a = store::read_journal(path);
	assert_int_equal(a.size(), 2);
	assert_string_equal(a[0].arg.c_str(), "/x");
	assert_string_equal(a[1].action.c_str(), "resume");
	// Larger than any journal an operation writes: an error, never a cut.
	write_file(path, std::string(1u << 20, 'x') + "\n");
	assert_int_equal(status_of([&] { store::read_journal(path); }), CLOUDLET_E_CORRUPT);
	unlink(path.c_str());
}

// A process dies mid-operation: the next recovery undoes what its journal
// names, removes its work folder, and a second recovery finds nothing.
static void test_journal_replayed_after_crash(void **) {
	Store s;
	std::string part = s.dir.path() + "/overlay.part", tree = s.dir.path() + "/instance";
	in_crashing_child([&] {
		store::BaseStore st(s.dir.path());
		store::UndoJournal j(st.root(), "overlay-create");
		j.remove_path(part);
		write_file(part, "half an overlay");
		j.remove_path(tree);
		mkdir(tree.c_str(), 0755);
		write_file(tree + "/disk.qcow2", "layer");
		j.remove_path(s.dir.path() + "/never-made"); // the process died before making it
		st.make_work_dir("create-");
		crash();
	});
	assert_int_equal(journals_in(s.tmp()).size(), 1);
	assert_true(exists(part) && exists(tree + "/disk.qcow2"));

	ops::RecoveryReport r = ops::recover_store(s.ctx);
	assert_int_equal(r.journals, 1);
	assert_int_equal(r.work_dirs, 1);
	assert_int_equal(r.paths_removed, 2);
	assert_int_equal(r.domains_destroyed + r.domains_resumed, 0);
	assert_false(exists(part));
	assert_false(exists(tree));
	assert_true(journals_in(s.tmp()).empty());
	assert_true(s.warnings.empty());

	// Idempotent: nothing is left to undo.
	r = ops::recover_store(s.ctx);
	assert_int_equal(r.journals + r.work_dirs + r.paths_removed, 0);
}

// The journal of a live owner is its operation under way: left alone.
static void test_journal_of_live_owner_kept(void **) {
	Store s;
	store::BaseStore st(s.dir.path());
	std::string part = s.dir.path() + "/busy.part";
	store::UndoJournal j(st.root(), "base-export");
	j.remove_path(part);
	write_file(part, "being written");
	ops::RecoveryReport r = ops::recover_store(s.ctx);
	assert_int_equal(r.journals + r.paths_removed, 0);
	assert_true(exists(part) && exists(j.path()));
}

// A dead owner's torn journal: its whole lines are undone, the torn one
// not. An unreadable one (over the bound) stays for a later run, with a
// warning, and nothing of it is undone.
static void test_journal_torn_or_unreadable_after_crash(void **) {
	Store s;
	std::string done = s.dir.path() + "/done", torn = s.dir.path() + "/torn";
	write_file(done, "x");
	write_file(torn, "x");
	in_crashing_child([&] {
		store::BaseStore st(s.dir.path());
		store::UndoJournal j(st.root(), "handoff-receive");
		j.remove_path(done);
		int fd = open(j.path().c_str(), O_WRONLY | O_APPEND);
		std::string half = "remove " + torn; // no newline: the write was cut
		if (fd < 0 || write(fd, half.data(), half.size()) != static_cast<ssize_t>(half.size()))
			throw std::runtime_error("cannot tear the journal");
		crash();
	});
	ops::RecoveryReport r = ops::recover_store(s.ctx);
	assert_int_equal(r.journals, 1);
	assert_int_equal(r.paths_removed, 1);
	assert_false(exists(done));
	assert_true(exists(torn));

	std::string big;
	in_crashing_child([&] {
		store::BaseStore st(s.dir.path());
		store::UndoJournal j(st.root(), "base-import");
		j.remove_path(torn);
		write_file(j.path(), "remove " + torn + "\n" + std::string(1u << 20, '#') + "\n");
		crash();
	});
	for (int run = 0; run < 2; run++) {
		r = ops::recover_store(s.ctx);
		assert_int_equal(r.journals + r.paths_removed, 0);
		assert_true(exists(torn));
		assert_int_equal(journals_in(s.tmp()).size(), 1);
	}
	assert_int_equal(s.warnings.size(), 2);
	assert_non_null(strstr(s.warnings[0].c_str(), "waits for a later run"));
}

// ---------------------------------------------------------------------------
// The ABI's options tables (abi/options.h).

// For every version of T: *_init() writes exactly that version's bytes,
// with the version in them; reading such a struct gives that version;
// version 0 and versions past the newest are refused, naming the struct.
template <class T> static void check_options_table(unsigned header_version) {
	using Table = abi::OptionsTable<T>;
	assert_int_equal(abi::kOptionsVersion<T>, header_version);
	assert_int_equal(Table::sizes[header_version - 1], sizeof(T));
	for (unsigned v = 1; v <= header_version; v++) {
		size_t n = Table::sizes[v - 1];
		assert_int_equal(abi::options_bytes<T>(v), n);
		std::vector<unsigned char> buf(sizeof(T) + 16, 0xAB);
		abi::init_options(reinterpret_cast<T *>(buf.data()), v);
		for (size_t i = n; i < buf.size(); i++)
			if (buf[i] != 0xAB)
				fail_msg("%s version %u: byte %zu written, past its %zu", Table::name, v, i, n);
		T o = abi::read_options(reinterpret_cast<const T *>(buf.data()));
		assert_int_equal(o.version, v);
	}
	std::vector<unsigned char> buf(sizeof(T), 0);
	std::string msg;
	for (unsigned bad : {0u, header_version + 1}) {
		assert_int_equal(status_of([&] { abi::init_options(reinterpret_cast<T *>(buf.data()), bad); }, &msg),
		                 CLOUDLET_E_VERSION);
		assert_non_null(strstr(msg.c_str(), Table::name));
		reinterpret_cast<T *>(buf.data())->version = bad;
		assert_int_equal(status_of([&] { abi::read_options(reinterpret_cast<const T *>(buf.data())); }),
		                 CLOUDLET_E_VERSION);
	}
	assert_int_equal(status_of([&] { abi::init_options<T>(nullptr, 1); }), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(abi::read_options<T>(nullptr).version, header_version); // NULL: the defaults
}

static void test_options_tables(void **) {
	check_options_table<cloudlet_ctx_options>(CLOUDLET_CTX_OPTIONS_VERSION);
	check_options_table<cloudlet_doctor_options>(CLOUDLET_DOCTOR_OPTIONS_VERSION);
	check_options_table<cloudlet_snapshot_options>(CLOUDLET_SNAPSHOT_OPTIONS_VERSION);
	check_options_table<cloudlet_capture_options>(CLOUDLET_CAPTURE_OPTIONS_VERSION);
	check_options_table<cloudlet_base_options>(CLOUDLET_BASE_OPTIONS_VERSION);
	check_options_table<cloudlet_resume_options>(CLOUDLET_RESUME_OPTIONS_VERSION);
	check_options_table<cloudlet_overlay_options>(CLOUDLET_OVERLAY_OPTIONS_VERSION);
	check_options_table<cloudlet_synthesis_options>(CLOUDLET_SYNTHESIS_OPTIONS_VERSION);
	check_options_table<cloudlet_handoff_options>(CLOUDLET_HANDOFF_OPTIONS_VERSION);
	// Version 1 of the structs that grew ends where version 2's fields start.
	assert_int_equal(abi::options_bytes<cloudlet_resume_options>(1), offsetof(cloudlet_resume_options, uuid));
	assert_int_equal(abi::options_bytes<cloudlet_synthesis_options>(1), offsetof(cloudlet_synthesis_options, uuid));
	assert_int_equal(abi::options_bytes<cloudlet_handoff_options>(1), offsetof(cloudlet_handoff_options, uuid));
}

// A caller built against version 1: what lies past its struct is not read;
// the fields it lacks have their defaults, the ones it has its values.
template <class T> static T read_as_version_1(const std::function<void(T &)> &set) {
	std::vector<unsigned char> buf(sizeof(T), 0xAB); // garbage past version 1
	T *caller = reinterpret_cast<T *>(buf.data());
	abi::init_options(caller, 1);
	set(*caller);
	return abi::read_options(caller);
}

static void test_options_defaults_past_a_callers_version(void **) {
	static const char token[] = "/etc/cloudlet/token";
	auto h = read_as_version_1<cloudlet_handoff_options>([](cloudlet_handoff_options &o) {
		o.token_file = token;
		o.level = 9;
	});
	assert_int_equal(h.version, 1);
	assert_ptr_equal(h.token_file, token);
	assert_int_equal(h.level, 9);
	assert_null(h.uuid); // version 2's field: its default
	auto s = read_as_version_1<cloudlet_synthesis_options>([](cloudlet_synthesis_options &o) { o.threads = 3; });
	assert_int_equal(s.threads, 3);
	assert_null(s.cancel);
	assert_null(s.uuid);
	auto r = read_as_version_1<cloudlet_resume_options>([](cloudlet_resume_options &o) { o.name = token; });
	assert_ptr_equal(r.name, token);
	assert_null(r.uuid);
	assert_null(r.mac);
	assert_null(r.network);
	assert_null(r.nic_xml);
	// The defaults themselves, as the _INIT macros give them.
	cloudlet_handoff_options d{};
	abi::init_options(&d, CLOUDLET_HANDOFF_OPTIONS_VERSION);
	assert_int_equal(d.level, -1);
	assert_null(d.token_file);
	cloudlet_overlay_options ov{};
	abi::init_options(&ov, 1);
	assert_int_equal(ov.level, -1);
	cloudlet_doctor_options doc = abi::read_options<cloudlet_doctor_options>(nullptr);
	assert_int_equal(doc.boot_probe, 1);
	cloudlet_ctx_options ctx = abi::read_options<cloudlet_ctx_options>(nullptr);
	assert_int_equal(ctx.log_level, CLOUDLET_LOG_WARN);
}

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
	    cmocka_unit_test(test_arriving_pages),
	    cmocka_unit_test(test_codec_delivered_rate),
	    cmocka_unit_test(test_codec_choice_follows_the_link),
	    cmocka_unit_test(test_codec_near_ties),
	    cmocka_unit_test(test_codec_fixed),
	    cmocka_unit_test(test_codec_trial_cadence),
	    cmocka_unit_test(test_journal_records_steps),
	    cmocka_unit_test(test_journal_torn_and_corrupt),
	    cmocka_unit_test(test_journal_replayed_after_crash),
	    cmocka_unit_test(test_journal_of_live_owner_kept),
	    cmocka_unit_test(test_journal_torn_or_unreadable_after_crash),
	    cmocka_unit_test(test_options_tables),
	    cmocka_unit_test(test_options_defaults_past_a_callers_version),
	    cmocka_unit_test(test_token_file),
	    cmocka_unit_test(test_handoff_level),
	};
	return cmocka_run_group_tests_name("engines", tests, nullptr, nullptr);
}
