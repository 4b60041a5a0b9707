// Small helpers the integration tests share. Include after <cmocka.h> and
// "harness.h" (they report through cmocka's fail_msg).
#pragma once

#include <cloudlet.h>
#include <dirent.h>
#include <libvirt/libvirt.h>

#include <cstdio>
#include <cstdlib>
#include <string>

// A guest command that must succeed; its trimmed output.
static inline std::string check(th_guest *g, const char *cmd, int timeout_ms = 120000) {
	char *out = th_guest_check(g, cmd, timeout_ms);
	if (!out)
		fail_msg("%s", th_error());
	std::string s = out;
	free(out);
	return s;
}

// Entries of a folder, "." and ".." aside (0 if it does not exist).
static inline size_t entries(const std::string &dir) {
	size_t n = 0;
	if (DIR *d = opendir(dir.c_str())) {
		while (dirent *e = readdir(d))
			n += e->d_name[0] != '.' || (e->d_name[1] && (e->d_name[1] != '.' || e->d_name[2]));
		closedir(d);
	}
	return n;
}

// libvirt's state of a domain (VIR_DOMAIN_RUNNING ...), -1 if there is none.
static inline int domain_state(const std::string &name) {
	virConnectPtr c = virConnectOpen("qemu:///system");
	virDomainPtr d = virDomainLookupByName(c, name.c_str());
	int state = -1, reason = 0;
	if (d) {
		virDomainGetState(d, &state, &reason, 0);
		virDomainFree(d);
	}
	virConnectClose(c);
	return state;
}

// A host command's standard output; its wait status in *status.
static inline std::string run_output(const std::string &cmd, int *status) {
	FILE *p = popen(cmd.c_str(), "r");
	assert_non_null(p);
	std::string out;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, p)) > 0)
		out.append(buf, n);
	*status = pclose(p);
	return out;
}

// A virt type this host offers but where the enforced CPU model is unusable
// ("" if there is none), as the doctor sees it.
static inline std::string virt_type_without_cpu_model(cloudlet_ctx *ctx) {
	cloudlet_doctor_options d = CLOUDLET_DOCTOR_OPTIONS_INIT;
	d.boot_probe = 0;
	cloudlet_host_report *r = nullptr;
	assert_int_equal(cloudlet_doctor(&r, ctx, &d), CLOUDLET_OK);
	std::string vt;
	for (size_t i = 0; i < r->virt_count; i++)
		if (r->virt[i].offered == CLOUDLET_YES && r->virt[i].cpu_model_usable == CLOUDLET_NO)
			vt = r->virt[i].virt_type;
	cloudlet_host_report_free(r);
	return vt;
}

// Puts tests/guest/app-step.sh into a Debian guest (harness.h).
static inline void install_app_step(th_guest *g) {
	if (th_guest_install_app_step(g) != 0)
		fail_msg("%s", th_error());
}
