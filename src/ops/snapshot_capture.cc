#include "ops/snapshot_capture.h"

#include "image_file.h"
#include "save_image.h"
#include "stream_writer.h"
#include "store/base_store.h"
#include "store/undo_journal.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/unique_fd.h"
#include "virt/domain.h"
#include "virt/migration_capture.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <optional>

namespace cloudlet::ops {

namespace {

// Removes a file on scope exit unless released.
struct FileGuard {
	std::string path;
	~FileGuard() {
		if (!path.empty())
			unlink(path.c_str());
	}
};

// Progress over a byte sink (the save image being written).
class ProgressByteSink : public qemu::ByteSink {
public:
	ProgressByteSink(qemu::ByteSink &inner, Progress &p, uint64_t total) : inner_(inner), p_(p), total_(total) {}
	void write(const uint8_t *data, size_t n) override {
		inner_.write(data, n);
		done_ += n;
		if (done_ - reported_ >= (64u << 20)) {
			reported_ = done_;
			p_.report("write", done_, total_);
		}
	}
	uint64_t done() const { return done_; }

private:
	qemu::ByteSink &inner_;
	Progress &p_;
	uint64_t total_, done_ = 0, reported_ = 0;
};

uint64_t write_save_image(const std::string &image_path, const std::string &out_path, const std::string &xml,
                          bool was_running, Progress &progress) {
	qemu::ImageFile img(image_path);
	UniqueFd out(open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	if (!out)
		fail_errno("cannot create " + out_path, errno);
	qemu::FdSink fd_sink(out.get(), out_path);
	uint64_t estimate = img.data_pages() * (qemu::kTargetPageSize + 16) + img.stream_info().device_state.size();
	ProgressByteSink sink(fd_sink, progress, estimate);
	std::vector<uint8_t> header = qemu::encode_save_header(xml, "", was_running);
	sink.write(header.data(), header.size());
	qemu::write_stream(sink, img);
	fd_sink.flush();
	if (fsync(out.get()) != 0)
		fail_errno("cannot sync " + out_path, errno);
	progress.report("write", sink.done(), sink.done());
	return sink.done();
}

} // namespace

CaptureResult snapshot_capture(Context &ctx, const std::string &domain, const std::string &path,
                               const CaptureOptions &opts, Progress &progress) {
	auto t0 = Clock::now();
	CaptureResult res;
	res.path = path;
	auto conn = ctx.connection();
	virt::DomainPtr dom = virt::lookup_domain(*conn, domain);
	res.domain_name = virt::domain_name(dom.get());
	res.domain_uuid = virt::domain_uuid(dom.get());
	virt::RunState state = virt::run_state(dom.get());
	if (!state.running() && !state.paused())
		fail(CLOUDLET_E_INVALID_ARG, "domain " + res.domain_name + " is " + state.name() +
		                                 "; only a running or paused domain can be captured");
	res.was_running = state.running();
	std::string xml = virt::save_xml(dom.get());

	// Output appears only when complete: written beside it, then renamed.
	FileGuard image{path + ".cltmem.part"};
	FileGuard part{opts.format == CaptureFormat::SaveImage ? path + ".part" : ""};
	// If this process dies from here on: the VM runs again, no part file stays.
	store::UndoJournal journal(store::BaseStore(ctx.settings().store_dir).root(), "capture");
	if (res.was_running)
		journal.resume_domain(res.domain_uuid);
	for (const std::string *p : {&image.path, &part.path})
		if (!p->empty())
			journal.remove_path(*p);
	const Logger &log = ctx.log();

	// The memory image first, pages in place as they arrive (created before
	// QEMU sends anything: a bad output path fails without touching the VM).
	std::optional<qemu::ImageFileWriter> writer(std::in_place, image.path);
	virt::MigrationCaptureOptions co;
	co.live = opts.live;
	virt::MigrationCapture cap = virt::capture_migration(dom.get(), res.was_running, *writer, co, progress, log);
	res.stream_bytes = cap.stream_bytes;
	res.page_records = cap.page_records;
	res.ram_sections = cap.stream.ram_sections;
	res.total_pages = cap.stream.total_pages;
	res.passes = cap.passes;
	res.downtime_ms = cap.downtime_ms;

	// The VM's memory is safe in the image file. From here on a failure
	// still leaves the domain as it was (paused by QEMU until we decide).
	try {
		writer->finish(cap.stream);
		writer.reset();
		if (opts.format == CaptureFormat::SaveImage) {
			res.file_bytes = write_save_image(image.path, part.path, xml, res.was_running, progress);
			if (rename(part.path.c_str(), path.c_str()) != 0)
				fail_errno("cannot rename " + part.path + " to " + path, errno);
			part.path.clear();
		} else {
			if (rename(image.path.c_str(), path.c_str()) != 0)
				fail_errno("cannot rename " + image.path + " to " + path, errno);
			image.path.clear();
			struct stat st {};
			if (stat(path.c_str(), &st) == 0)
				res.file_bytes = static_cast<uint64_t>(st.st_size);
		}
		qemu::ImageFile check(opts.format == CaptureFormat::MemoryImage ? path : image.path);
		res.data_pages = check.data_pages();
	} catch (...) {
		virt::restore_run_state(dom.get(), res.was_running, log);
		throw;
	}

	res.final_state = virt::release(dom.get(), res.was_running, opts.stop, "the capture is complete (" + path + ")");
	res.seconds = since(t0);
	log.info("captured " + res.domain_name + " into " + path);
	return res;
}

} // namespace cloudlet::ops
