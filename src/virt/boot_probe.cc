#include "virt/boot_probe.h"

#include "host/tempdir.h"
#include "util/error.h"
#include "util/small_file.h"
#include "util/xml.h"

#include <libvirt/virterror.h>
#include <uuid/uuid.h>

#include <sys/stat.h>

#include <cerrno>
#include <thread>

namespace cloudlet::virt {

namespace {

std::string probe_domain_xml(const std::string &virt_type, const std::string &name,
                             const std::string &kernel, const std::string &console) {
	auto doc = xml::new_doc("domain");
	xmlNode *d = xmlDocGetRootElement(doc.get());
	xml::set_attr(d, "type", virt_type);
	xml::add(d, "name", name);
	xml::add(d, "memory", "128", {{"unit", "MiB"}});
	xml::add(d, "vcpu", "1");
	xmlNode *os = xml::add(d, "os");
	xml::add(os, "type", "hvm", {{"arch", "x86_64"}, {"machine", "pc"}});
	xml::add(os, "kernel", kernel);
	// panic=0: stay in the panic loop (no reboot) until we destroy the domain.
	xml::add(os, "cmdline", "console=ttyS0 panic=0 root=/dev/cloudlet-probe-none");
	xmlNode *f = xml::add(d, "features");
	xml::add(f, "acpi");
	xml::add(d, "on_poweroff", "destroy");
	xml::add(d, "on_reboot", "destroy");
	xml::add(d, "on_crash", "destroy");
	xmlNode *dev = xml::add(d, "devices");
	xmlNode *serial = xml::add(dev, "serial", {}, {{"type", "file"}});
	xml::add(serial, "source", {}, {{"path", console}});
	xml::add(serial, "target", {}, {{"port", "0"}});
	xml::add(dev, "memballoon", {}, {{"model", "none"}});
	return xml::to_string(doc.get());
}

// libvirt passes QEMU's multi-line stderr through; reports want one line.
std::string one_line(std::string s) {
	while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
		s.pop_back();
	for (size_t p; (p = s.find('\n')) != std::string::npos;)
		s.replace(p, 1, "; ");
	return s;
}

std::string line_containing(const std::string &log, size_t pos) {
	size_t b = log.rfind('\n', pos);
	b = b == std::string::npos ? 0 : b + 1;
	size_t e = log.find('\n', pos);
	std::string line = log.substr(b, e == std::string::npos ? std::string::npos : e - b);
	while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
		line.pop_back();
	return line;
}

} // namespace

std::string classify_console(const std::string &full, std::string *evidence) {
	// Judge complete lines only: the console file is read while QEMU is
	// still writing it, and "Kernel panic - not syncing: VFS: Unable to
	// mount" cut mid-line must not read as an early panic.
	size_t nl = full.rfind('\n');
	const std::string log = nl == std::string::npos ? std::string() : full.substr(0, nl + 1);
	// Any of these means the kernel got through its whole initialisation.
	for (const char *m : {"VFS: Unable to mount root fs", "Run /init as init process",
	                      "Freeing unused kernel image"}) {
		size_t p = log.find(m);
		if (p != std::string::npos) {
			*evidence = line_containing(log, p);
			return "ok";
		}
	}
	size_t p = log.find("Kernel panic");
	if (p != std::string::npos) {
		*evidence = line_containing(log, p);
		return "panic";
	}
	return "";
}

BootProbeResult boot_probe(const Connection &conn, const std::string &virt_type,
                           const std::string &kernel, std::chrono::milliseconds timeout,
                           const Progress &progress) {
	BootProbeResult r;
	host::TempDir dir("cloudlet-probe-");
	// QEMU runs as its own user: it must be able to reach the kernel copy.
	// 0711 lets it traverse without listing; the files are not secret.
	if (chmod(dir.path().c_str(), 0711) != 0)
		fail_errno("chmod " + dir.path(), errno);
	// QEMU gets a copy: libvirt relabels a direct-boot kernel for QEMU's
	// user, and the host's own kernel file must not change owner.
	std::string kcopy = dir.path() + "/vmlinuz";
	host::copy_file(kernel, kcopy);
	std::string console = dir.path() + "/console.log";

	uuid_t u;
	char us[37];
	uuid_generate_random(u);
	uuid_unparse_lower(u, us);
	std::string name = "cloudlet-probe-" + virt_type + "-" + std::string(us).substr(0, 8);
	std::string xml = probe_domain_xml(virt_type, name, kcopy, console);

	auto t0 = std::chrono::steady_clock::now();
	auto elapsed = [&] {
		return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
	};
	DomainPtr dom(virDomainCreateXML(conn.get(), xml.c_str(), VIR_DOMAIN_START_AUTODESTROY));
	if (!dom) {
		const char *m = virGetLastErrorMessage();
		r.usable = CLOUDLET_NO;
		r.detail = std::string("libvirt could not start a ") + virt_type + " guest: " +
		           one_line(m ? m : "unknown error");
		virResetLastError();
		r.seconds = elapsed();
		return r;
	}
	struct Destroy {
		virDomainPtr d;
		~Destroy() { virDomainDestroy(d); }
	} destroy{dom.get()};

	std::string log, evidence;
	// A kernel that keeps printing is slow, not hung (TCG on a loaded host):
	// `timeout` is how long the console may stay silent; four times it is
	// the limit for the whole boot.
	size_t last_size = 0;
	double last_growth = 0;
	for (;;) {
		try {
			log = read_required_small_file(console, 16u * 1024 * 1024);
		} catch (const Error &) {
			log.clear(); // not created yet
		}
		std::string verdict = classify_console(log, &evidence);
		r.seconds = elapsed();
		if (verdict == "ok") {
			r.usable = CLOUDLET_YES;
			r.detail = "a Linux kernel booted under " + virt_type + " in " +
			           std::to_string(r.seconds).substr(0, 4) + " s (console: \"" + evidence + "\")";
			return r;
		}
		if (verdict == "panic") {
			r.usable = CLOUDLET_NO;
			r.detail = "the probe kernel panicked early under " + virt_type + ": " + evidence;
			return r;
		}
		int active = virDomainIsActive(dom.get());
		if (active == 0) {
			r.usable = CLOUDLET_NO;
			r.detail = "the probe guest stopped before the kernel finished booting";
			return r;
		}
		if (log.size() > last_size) {
			last_size = log.size();
			last_growth = r.seconds;
		}
		double limit = static_cast<double>(timeout.count()) / 1000;
		if (r.seconds - last_growth >= limit || r.seconds >= 4 * limit) {
			r.usable = CLOUDLET_NO;
			r.hung = true;
			bool any_kernel = log.find("Linux version") != std::string::npos;
			std::string why = !any_kernel ? "no kernel output at all"
			                  : r.seconds >= 4 * limit
			                      ? "it was still booting"
			                      : "it started, then printed nothing for " + std::to_string(timeout.count() / 1000) + " s";
			r.detail = "a Linux kernel did not finish booting under " + virt_type + " within " +
			           std::to_string(static_cast<int>(r.seconds)) + " s (" + why + ")";
			return r;
		}
		progress.check();
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
	}
}

} // namespace cloudlet::virt
