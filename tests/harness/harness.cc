// The test harness behind harness.h. Test-only code: it talks to libvirt
// directly and uses libcloudlet's public ABI only to ask the doctor whether
// KVM really works here.
#include "harness.h"

#include "util/xml.h"

#include <cloudlet.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {
// The virtio-serial port the guest's init opens (tests/guest/init).
constexpr const char *kShellChannel = "org.libcloudlet.test.shell";
} // namespace

namespace {

thread_local std::string t_error;

int fail(const std::string &msg) {
	t_error = msg;
	return -1;
}

void silent(void *, virErrorPtr) {}

std::string libvirt_error() {
	const char *m = virGetLastErrorMessage();
	return m ? m : "unknown libvirt error";
}

std::string run_dir() {
	const char *d = getenv("CLOUDLET_TEST_RUNDIR");
	return d && *d ? d : "/var/lib/cloudlet-test";
}

std::string slurp(const std::string &path) {
	std::ifstream f(path, std::ios::binary);
	std::stringstream ss;
	ss << f.rdbuf();
	return ss.str();
}

std::string run_capture(const std::string &cmd, int *status) {
	std::string out;
	FILE *p = popen(cmd.c_str(), "r");
	if (!p) {
		*status = -1;
		return out;
	}
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, p)) > 0)
		out.append(buf, n);
	*status = pclose(p);
	return out;
}

std::string trim(std::string s) {
	while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
		s.pop_back();
	return s;
}

// One libvirt connection per test process: domains are started with
// AUTODESTROY, so they go away with it if the process dies.
std::mutex g_mu;
virConnectPtr g_conn = nullptr;

virConnectPtr connection() {
	std::lock_guard<std::mutex> lock(g_mu);
	if (!g_conn) {
		virSetErrorFunc(nullptr, silent);
		g_conn = virConnectOpen("qemu:///system");
	}
	return g_conn;
}

bool daemon_answers() {
	virSetErrorFunc(nullptr, silent);
	virConnectPtr c = virConnectOpen("qemu:///system");
	if (!c)
		return false;
	virConnectClose(c);
	return true;
}

bool pid_alive(long pid) {
	return pid > 0 && (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

// Domain names are "cltest-<pid>-<label>-<n>": the pid says whether the
// test that made them is still running.
long owner_pid(const std::string &name) {
	if (name.rfind("cltest-", 0) != 0)
		return -1;
	return strtol(name.c_str() + 7, nullptr, 10);
}

} // namespace

struct th_guest {
	std::string name, workdir, sock_path, console_path, console_tail;
	bool debian = false; // the Debian guest: a longer boot (SeaBIOS, GRUB, systemd)
	virDomainPtr dom = nullptr;
	int fd = -1;
	unsigned long seq = 0;
	std::string pending; // bytes read past the last marker
};

extern "C" {

const char *th_error(void) {
	return t_error.c_str();
}

int th_setup(void) {
	if (!daemon_answers()) {
		if (geteuid() != 0)
			return fail("libvirtd is not answering at qemu:///system and we are not root to start it");
		// Hosts without udev leave /dev/kvm root-only; libvirt then re-probes
		// QEMU on every call (seconds each). Give it Debian's udev mode.
		if (access("/dev/kvm", F_OK) == 0)
			(void)system("chgrp kvm /dev/kvm 2>/dev/null && chmod 0660 /dev/kvm");
		(void)system("pgrep -x virtlogd >/dev/null || virtlogd -d");
		(void)system("pgrep -x libvirtd >/dev/null || libvirtd -d");
		for (int i = 0; i < 100 && !daemon_answers(); i++)
			std::this_thread::sleep_for(100ms);
		if (!daemon_answers())
			return fail("started libvirtd, but it does not answer at qemu:///system");
	}
	virConnectPtr c = connection();
	if (!c)
		return fail("cannot connect to qemu:///system: " + libvirt_error());
	// Sweep what dead test processes left behind.
	virDomainPtr *doms = nullptr;
	int n = virConnectListAllDomains(c, &doms, 0);
	for (int i = 0; i < n; i++) {
		std::string name = virDomainGetName(doms[i]);
		long pid = owner_pid(name);
		if (pid > 0 && !pid_alive(pid)) {
			virDomainDestroy(doms[i]);
			virDomainUndefine(doms[i]);
		}
		virDomainFree(doms[i]);
	}
	free(doms);
	std::error_code ec;
	fs::create_directories(run_dir(), ec);
	chmod(run_dir().c_str(), 0755);
	for (const auto &e : fs::directory_iterator(run_dir(), ec)) {
		long pid = owner_pid(e.path().filename().string());
		if (pid > 0 && !pid_alive(pid))
			fs::remove_all(e.path(), ec);
	}
	return 0;
}

namespace {

// Runs a guest build script of tests/guest/ (its progress goes to our
// stderr) and returns the folder it printed last, or "" with th_error set.
std::string build_guest(const std::string &script) {
	int st = 0;
	std::string out = trim(run_capture(std::string(TH_SOURCE_DIR) + "/tests/guest/" + script, &st));
	if (st != 0 || out.empty()) {
		fail("tests/guest/" + script + " failed (status " + std::to_string(st) + ")");
		return "";
	}
	return out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
}

} // namespace

const char *th_guest_dir(void) {
	static std::mutex mu;
	static std::string dir;
	std::lock_guard<std::mutex> lock(mu);
	if (dir.empty() && (dir = build_guest("build-guest.sh")).empty())
		return nullptr;
	return dir.c_str();
}

const char *th_debian_guest_dir(void) {
	static std::mutex mu;
	static std::string dir;
	std::lock_guard<std::mutex> lock(mu);
	if (dir.empty() && (dir = build_guest("build-debian-guest.sh")).empty())
		return nullptr;
	return dir.c_str();
}

const char *th_virt_type(void) {
	static std::mutex mu;
	static std::string vt;
	std::lock_guard<std::mutex> lock(mu);
	if (!vt.empty())
		return vt.c_str();
	if (const char *e = getenv("CLOUDLET_TEST_VIRT_TYPE"); e && *e)
		return (vt = e).c_str();
	// Cached per machine boot: the doctor's KVM probe can take its timeout.
	std::string boot_id = trim(slurp("/proc/sys/kernel/random/boot_id"));
	std::string cache = run_dir() + "/virt-type." + boot_id;
	std::string cached = trim(slurp(cache));
	if (cached == "kvm" || cached == "qemu")
		return (vt = cached).c_str();
	vt = "qemu";
	const char *gdir = th_guest_dir();
	cloudlet_ctx *ctx = nullptr;
	cloudlet_host_report *r = nullptr;
	cloudlet_doctor_options o = CLOUDLET_DOCTOR_OPTIONS_INIT;
	std::string kernel = gdir ? std::string(gdir) + "/vmlinuz" : "";
	o.probe_kernel = kernel.c_str();
	if (gdir && cloudlet_ctx_new(&ctx, nullptr) == CLOUDLET_OK && cloudlet_doctor(&r, ctx, &o) == CLOUDLET_OK) {
		for (size_t i = 0; i < r->virt_count; i++)
			if (strcmp(r->virt[i].virt_type, "kvm") == 0 && r->virt[i].usable == CLOUDLET_YES &&
			    r->virt[i].cpu_model_usable == CLOUDLET_YES)
				vt = "kvm";
		std::ofstream(cache) << vt << "\n";
	}
	cloudlet_host_report_free(r);
	cloudlet_ctx_free(ctx);
	return vt.c_str();
}

const char *th_guest_channel_path(const th_guest *g) {
	return g->sock_path.c_str();
}

const char *th_guest_domain_name(const th_guest *g) {
	return g->name.c_str();
}

const char *th_guest_workdir(const th_guest *g) {
	return g->workdir.c_str();
}

const char *th_guest_console_tail(th_guest *g, unsigned max_bytes) {
	std::string all = slurp(g->console_path);
	g->console_tail = all.size() > max_bytes ? all.substr(all.size() - max_bytes) : all;
	return g->console_tail.c_str();
}

namespace {

struct guest_disk {
	std::string file, format; // "raw" or "qcow2"
	bool discard;             // discard='unmap': the guest's TRIM frees the file's blocks
	std::string backing = {}; // qcow2 backing file (the shared cache: never relabelled)
};

// The busybox guest: direct kernel boot, 1 vCPU, disks as given (vda, vdb).
// The Debian guest (gdir empty): SeaBIOS boots its system disk (the first
// of `disks`), 2 vCPUs, a virtio balloon with free page reporting.
std::string guest_xml(const th_guest &g, const std::string &virt_type, const std::string &gdir,
                      const std::vector<guest_disk> &disks, unsigned memory_mib, bool nic) {
	using namespace cloudlet::xml;
	const bool debian = gdir.empty();
	auto doc = new_doc("domain");
	xmlNode *d = xmlDocGetRootElement(doc.get());
	set_attr(d, "type", virt_type);
	add(d, "name", g.name);
	add(d, "memory", std::to_string(memory_mib), {{"unit", "MiB"}});
	add(d, "vcpu", debian ? "2" : "1");
	xmlNode *os = add(d, "os");
	add(os, "type", "hvm", {{"arch", "x86_64"}, {"machine", "pc"}});
	if (debian) {
		add(os, "boot", {}, {{"dev", "hd"}});
	} else {
		add(os, "kernel", gdir + "/vmlinuz");
		add(os, "initrd", gdir + "/initrd.img");
		add(os, "cmdline", "console=ttyS0 panic=-1");
	}
	xmlNode *f = add(d, "features");
	add(f, "acpi");
	// check='none': under TCG libvirt's own check wrongly misses 'vme'
	// (docs/platform.md); QEMU itself reports core2duo usable.
	xmlNode *cpu = add(d, "cpu", {}, {{"mode", "custom"}, {"match", "exact"}, {"check", "none"}});
	add(cpu, "model", "core2duo", {{"fallback", "forbid"}});
	add(d, "on_poweroff", "destroy");
	add(d, "on_reboot", "destroy");
	add(d, "on_crash", "destroy");
	xmlNode *dev = add(d, "devices");
	for (size_t i = 0; i < disks.size(); i++) {
		xmlNode *disk_n = add(dev, "disk", {}, {{"type", "file"}, {"device", "disk"}});
		if (disks[i].discard)
			add(disk_n, "driver", {}, {{"name", "qemu"}, {"type", disks[i].format}, {"discard", "unmap"}});
		else
			add(disk_n, "driver", {}, {{"name", "qemu"}, {"type", disks[i].format}});
		add(disk_n, "source", {}, {{"file", disks[i].file}});
		if (!disks[i].backing.empty()) {
			// Given, not probed, and with relabel='no': libvirt would otherwise
			// chown the shared cached image to QEMU's user (and may not give it
			// back). QEMU reads it as others may (0444 in a 0755 folder).
			xmlNode *bs = add(disk_n, "backingStore", {}, {{"type", "file"}});
			add(bs, "format", {}, {{"type", "qcow2"}});
			xmlNode *src = add(bs, "source", {}, {{"file", disks[i].backing}});
			add(src, "seclabel", {}, {{"model", "dac"}, {"relabel", "no"}});
			add(bs, "backingStore");
		}
		add(disk_n, "target", {}, {{"dev", std::string("vd") + static_cast<char>('a' + i)}, {"bus", "virtio"}});
	}
	xmlNode *serial = add(dev, "serial", {}, {{"type", "file"}});
	add(serial, "source", {}, {{"path", g.console_path}});
	add(serial, "target", {}, {{"port", "0"}});
	xmlNode *chan = add(dev, "channel", {}, {{"type", "unix"}});
	add(chan, "source", {}, {{"mode", "bind"}, {"path", g.sock_path}});
	add(chan, "target", {}, {{"type", "virtio"}, {"name", kShellChannel}});
	if (nic) {
		// User-mode networking: a real virtio NIC that needs no host setup.
		xmlNode *n = add(dev, "interface", {}, {{"type", "user"}});
		add(n, "model", {}, {{"type", "virtio"}});
	}
	if (debian)
		add(dev, "memballoon", {}, {{"model", "virtio"}, {"freePageReporting", "on"}});
	else
		add(dev, "memballoon", {}, {{"model", "none"}});
	return to_string(doc.get());
}

bool send_all(int fd, const std::string &s) {
	size_t off = 0;
	while (off < s.size()) {
		ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		off += static_cast<size_t>(n);
	}
	return true;
}

// A marker line the shell printed: "<prefix><digits>@@\n" (prefix like
// "@@E12:"); waiting for the newline keeps it out of the next command's output.
// Returns true with [begin, end) of the marker and its number.
bool find_marker(const std::string &buf, const std::string &prefix, size_t *begin, size_t *end,
                 unsigned long *number) {
	for (size_t p = buf.find(prefix); p != std::string::npos; p = buf.find(prefix, p + 1)) {
		size_t q = p + prefix.size(), d = q;
		while (d < buf.size() && isdigit(static_cast<unsigned char>(buf[d])))
			d++;
		if (d > q && buf.compare(d, 3, "@@\n") == 0) {
			*begin = p;
			*end = d + 3;
			*number = strtoul(buf.c_str() + q, nullptr, 10);
			return true;
		}
	}
	return false;
}

// Reads until the marker appears or the deadline passes.
bool read_until(th_guest *g, const std::string &prefix, std::chrono::steady_clock::time_point deadline,
                size_t *begin, size_t *end, unsigned long *number) {
	for (;;) {
		if (find_marker(g->pending, prefix, begin, end, number))
			return true;
		auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
		if (left.count() <= 0)
			return false;
		struct pollfd p = {g->fd, POLLIN, 0};
		int r = poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 500)));
		if (r < 0 && errno != EINTR)
			return false;
		if (r > 0) {
			char buf[65536];
			ssize_t n = recv(g->fd, buf, sizeof buf, 0);
			if (n == 0)
				return false;
			if (n > 0)
				g->pending.append(buf, static_cast<size_t>(n));
		}
	}
}

} // namespace

namespace {

// Connects to the guest's command channel and waits until its shell
// answers. The marker is computed by the shell, so an echo of our own input
// or a late answer to an earlier probe is never taken for this one.
int attach(th_guest *g) {
	auto give_up = [&](const std::string &why) {
		return fail(why + "\n--- console tail ---\n" + th_guest_console_tail(g, 3000));
	};
	g->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa {};
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", g->sock_path.c_str());
	// The Debian guest goes through SeaBIOS, GRUB, an initramfs and systemd
	// before its shell service runs: minutes under TCG on a busy host.
	const auto limit = g->debian ? 400s : 180s;
	auto deadline = std::chrono::steady_clock::now() + limit;
	while (connect(g->fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0) {
		if (std::chrono::steady_clock::now() > deadline)
			return give_up("cannot connect to " + g->sock_path + ": " + strerror(errno));
		std::this_thread::sleep_for(50ms);
	}
	size_t b = 0, e = 0;
	unsigned long num = 0;
	bool up = false;
	for (unsigned i = 0; !up && std::chrono::steady_clock::now() < deadline; i++) {
		if (!send_all(g->fd, "echo @@R$((" + std::to_string(i) + "+0))@@\n"))
			return give_up("the guest's command channel closed");
		up = read_until(g, "@@R", std::min(deadline, std::chrono::steady_clock::now() + 1s), &b, &e, &num);
	}
	if (!up)
		return give_up("the test guest's shell did not answer within " + std::to_string(limit.count()) + " s");
	// Earlier probes may still be answered: synchronise on a unique marker.
	g->pending.clear();
	if (th_guest_run(g, "true", 60000, nullptr, nullptr) != 0)
		return give_up("the test guest's shell did not synchronise: " + t_error);
	return 0;
}

} // namespace

int th_guest_start(th_guest **out, const char *label, const th_guest_options *opts) {
	static std::atomic<unsigned> counter{0};
	*out = nullptr;
	th_guest_options o = opts ? *opts : th_guest_options{0, 0, 0, 0, 0};
	const bool debian = o.debian != 0;
	unsigned mem = o.memory_mib ? o.memory_mib : debian ? 2048 : 256;
	// The busybox guest always has its raw data disk; the Debian guest has its
	// system disk and data disks only when asked for.
	unsigned disk_mib = o.disk_mib ? o.disk_mib : debian ? 0 : 64;
	const char *gdir = debian ? th_debian_guest_dir() : th_guest_dir();
	if (!gdir)
		return -1;
	virConnectPtr c = connection();
	if (!c)
		return fail("cannot connect to qemu:///system: " + libvirt_error());
	auto g = std::make_unique<th_guest>();
	g->name = "cltest-" + std::to_string(getpid()) + "-" + (label ? label : "guest") + "-" +
	          std::to_string(counter++);
	g->workdir = run_dir() + "/" + g->name;
	std::error_code ec;
	fs::create_directories(g->workdir, ec);
	if (ec)
		return fail("cannot create " + g->workdir + ": " + ec.message());
	chmod(g->workdir.c_str(), 0755);
	g->sock_path = g->workdir + "/shell.sock";
	g->console_path = g->workdir + "/console.log";
	g->debian = debian;
	std::vector<guest_disk> disks;
	if (debian) {
		// The system disk: a qcow2 layer of this guest's own over the cached,
		// read-only image (backing format given, so QEMU never probes it).
		std::string sys = g->workdir + "/system.qcow2", base = std::string(gdir) + "/disk.qcow2";
		std::string cmd = "qemu-img create -q -f qcow2 -F qcow2 -b '" + base + "' '" + sys + "'";
		if (system(cmd.c_str()) != 0)
			return fail("cannot create " + sys + " with qemu-img");
		disks.push_back({sys, "qcow2", true, base});
	}
	if (disk_mib) {
		std::string disk = g->workdir + "/disk.raw";
		if (truncate(disk.c_str(), 0) != 0) {
			FILE *f = fopen(disk.c_str(), "w");
			if (f)
				fclose(f);
		}
		if (truncate(disk.c_str(), static_cast<off_t>(disk_mib) << 20) != 0)
			return fail("cannot create " + disk + ": " + strerror(errno));
		disks.push_back({disk, "raw", debian});
	}
	if (o.qcow2_mib) {
		std::string qcow2 = g->workdir + "/disk2.qcow2";
		std::string cmd = "qemu-img create -q -f qcow2 '" + qcow2 + "' " + std::to_string(o.qcow2_mib) + "M";
		if (system(cmd.c_str()) != 0)
			return fail("cannot create " + qcow2 + " with qemu-img");
		disks.push_back({qcow2, "qcow2", debian});
	}
	std::string xml = guest_xml(*g, th_virt_type(), debian ? "" : gdir, disks, mem, o.nic != 0);
	g->dom = virDomainCreateXML(c, xml.c_str(), VIR_DOMAIN_START_AUTODESTROY);
	if (!g->dom) {
		std::string e = "cannot start test guest " + g->name + ": " + libvirt_error();
		fs::remove_all(g->workdir, ec);
		return fail(e);
	}
	th_guest *raw = g.release();
	if (attach(raw) != 0) {
		std::string msg = t_error;
		th_guest_destroy(raw);
		return fail(msg);
	}
	*out = raw;
	return 0;
}

int th_guest_save(th_guest *g, const char *path) {
	if (g->fd >= 0) {
		close(g->fd);
		g->fd = -1;
	}
	g->pending.clear();
	if (virDomainSave(g->dom, path) != 0)
		return fail("cannot save " + g->name + " to " + path + ": " + libvirt_error());
	virDomainFree(g->dom);
	g->dom = nullptr;
	return 0;
}

int th_guest_poweroff(th_guest *g) {
	if (g->fd >= 0) {
		close(g->fd);
		g->fd = -1;
	}
	g->pending.clear();
	if (g->dom) {
		int state = 0, reason = 0;
		// Already gone (shut off by the code under test) is fine.
		if (virDomainGetState(g->dom, &state, &reason, 0) == 0 && state != VIR_DOMAIN_SHUTOFF &&
		    virDomainDestroy(g->dom) != 0)
			return fail("cannot power off " + g->name + ": " + libvirt_error());
		virResetLastError();
		virDomainFree(g->dom);
		g->dom = nullptr;
	}
	return 0;
}

int th_guest_restore(th_guest *g, const char *path) {
	virConnectPtr c = connection();
	if (g->dom)
		return fail("guest " + g->name + " is still running");
	if (virDomainRestore(c, path) != 0)
		return fail(std::string("cannot restore ") + path + ": " + libvirt_error());
	g->dom = virDomainLookupByName(c, g->name.c_str());
	if (!g->dom)
		return fail("restored " + std::string(path) + ", but domain " + g->name + " is not there: " +
		            libvirt_error());
	return attach(g);
}

int th_guest_adopt(th_guest *g) {
	if (g->dom)
		return fail("guest " + g->name + " is still attached");
	g->dom = virDomainLookupByName(connection(), g->name.c_str());
	if (!g->dom)
		return fail("domain " + g->name + " is not there: " + libvirt_error());
	return attach(g);
}

int th_guest_run(th_guest *g, const char *command, int timeout_ms, char **output, int *exit_status) {
	if (output)
		*output = nullptr;
	unsigned long n = ++g->seq;
	std::string wrapped = std::string("{\n") + command + "\n} </dev/null 2>&1; echo \"@@E$((" +
	                      std::to_string(n) + "+0)):$?@@\"\n";
	if (!send_all(g->fd, wrapped))
		return fail("the guest's command channel closed");
	size_t b = 0, e = 0;
	unsigned long status = 0;
	if (!read_until(g, "@@E" + std::to_string(n) + ":",
	                std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms), &b, &e, &status))
		return fail("guest " + g->name + " did not finish '" + command + "' within " +
		            std::to_string(timeout_ms) + " ms; output so far: " + g->pending);
	std::string out = g->pending.substr(0, b);
	g->pending.erase(0, e);
	if (output)
		*output = strdup(out.c_str());
	if (exit_status)
		*exit_status = static_cast<int>(status);
	return 0;
}

char *th_guest_check(th_guest *g, const char *command, int timeout_ms) {
	char *out = nullptr;
	int st = 0;
	if (th_guest_run(g, command, timeout_ms, &out, &st) != 0)
		return nullptr;
	if (st != 0) {
		fail(std::string("guest command '") + command + "' exited " + std::to_string(st) + ": " + out);
		free(out);
		return nullptr;
	}
	std::string s = trim(out);
	free(out);
	return strdup(s.c_str());
}

void th_guest_destroy(th_guest *g) {
	if (!g)
		return;
	if (g->fd >= 0)
		close(g->fd);
	if (g->dom) {
		virDomainDestroy(g->dom);
		virDomainFree(g->dom);
	}
	std::error_code ec;
	if (!g->workdir.empty())
		fs::remove_all(g->workdir, ec);
	delete g;
}

void th_guest_forget(th_guest *g) {
	if (!g)
		return;
	if (g->fd >= 0)
		close(g->fd);
	if (g->dom)
		virDomainFree(g->dom);
	delete g;
}

int th_guest_install_app_step(th_guest *g) {
	std::string script = slurp(std::string(TH_SOURCE_DIR) + "/tests/guest/app-step.sh");
	if (script.empty())
		return fail("cannot read tests/guest/app-step.sh");
	std::string cmd = "mkdir -p /usr/local/sbin && cat > /usr/local/sbin/app-step <<'CLOUDLET_APP_STEP'\n" + script +
	                  "CLOUDLET_APP_STEP\nchmod 0755 /usr/local/sbin/app-step";
	char *out = th_guest_check(g, cmd.c_str(), 60000);
	if (!out)
		return -1;
	free(out);
	return 0;
}

namespace {
int attach_domain(th_guest **out, virConnectPtr c, const char *domain, const char *sock_path, const char *console_path,
                  const char *seen_prefix = nullptr, const char *here_prefix = nullptr) {
	auto g = std::make_unique<th_guest>();
	g->name = domain;
	g->console_path = console_path ? console_path : "";
	g->dom = virDomainLookupByName(c, domain);
	if (!g->dom)
		return fail(std::string("no domain ") + domain + ": " + libvirt_error());
	if (sock_path) {
		g->sock_path = sock_path;
	} else {
		// Wherever the code under test moved it: the channel's live source.
		char *x = virDomainGetXMLDesc(g->dom, 0);
		if (!x)
			return fail(std::string("cannot read the XML of ") + domain + ": " + libvirt_error());
		auto doc = cloudlet::xml::parse(x, std::string("XML of ") + domain);
		free(x);
		g->sock_path = cloudlet::xml::value(doc.get(), "/domain/devices/channel[target/@name='" + std::string(kShellChannel) +
		                                                   "']/source/@path")
		                   .value_or("");
		if (g->sock_path.empty()) {
			virDomainFree(g->dom);
			return fail(std::string("domain ") + domain + " has no test shell channel");
		}
		if (seen_prefix && here_prefix && g->sock_path.rfind(seen_prefix, 0) == 0)
			g->sock_path = here_prefix + g->sock_path.substr(strlen(seen_prefix));
	}
	th_guest *raw = g.release();
	if (attach(raw) != 0) {
		std::string msg = t_error;
		th_guest_destroy(raw);
		return fail(msg);
	}
	*out = raw;
	return 0;
}
} // namespace

int th_guest_attach_domain(th_guest **out, const char *domain, const char *sock_path, const char *console_path) {
	*out = nullptr;
	virConnectPtr c = connection();
	if (!c)
		return fail("cannot connect to qemu:///system: " + libvirt_error());
	return attach_domain(out, c, domain, sock_path, console_path);
}

int th_guest_attach_domain_at(th_guest **out, const char *uri, const char *domain, const char *seen_prefix,
                              const char *here_prefix) {
	*out = nullptr;
	virSetErrorFunc(nullptr, silent);
	virConnectPtr c = virConnectOpen(uri);
	if (!c)
		return fail(std::string("cannot connect to ") + uri + ": " + libvirt_error());
	int rc = attach_domain(out, c, domain, nullptr, nullptr, seen_prefix, here_prefix);
	virConnectClose(c); // the domain handle keeps its own reference
	return rc;
}

} // extern "C"
