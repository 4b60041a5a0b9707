/*
 * The libcloudlet test harness: real libvirtd, real QEMU, and the project's
 * own small Linux guest (tests/guest/). C API so that C tests and, through
 * ctypes, Python tests can share it.
 *
 * Every function returning int gives 0 on success and -1 on failure, with
 * the reason in th_error() (per thread).
 */
#ifndef CLOUDLET_TEST_HARNESS_H
#define CLOUDLET_TEST_HARNESS_H

#ifdef __cplusplus
extern "C" {
#endif

/* The project builds with -fvisibility=hidden; the harness is a library. */
#pragma GCC visibility push(default)

/** Starts virtlogd/libvirtd when they are not answering (needs root), and
 *  removes domains and work folders left by test processes that died. */
int th_setup(void);

/** The reason for the last failure on this thread. */
const char *th_error(void);

/** The test guest's folder (vmlinuz, initrd.img), built on first use and
 *  cached across runs (tests/guest/build-guest.sh). NULL on failure. */
const char *th_guest_dir(void);

/** The Debian 12 test guest's folder (disk.qcow2, VERSION), built on first
 *  use (several minutes: debootstrap) and cached across runs
 *  (tests/guest/build-debian-guest.sh). The cache is read-only: each guest
 *  boots from a qcow2 overlay of its own over disk.qcow2. NULL on failure. */
const char *th_debian_guest_dir(void);

/** The virt type guests run under: $CLOUDLET_TEST_VIRT_TYPE if set, else
 *  "kvm" only if libcloudlet's doctor proved KVM boots the test kernel on
 *  this machine (cached per boot), else "qemu" (TCG). */
const char *th_virt_type(void);

typedef struct th_guest_options {
	unsigned memory_mib; /**< 0: 256 (Debian guest: 2048) */
	unsigned disk_mib;   /**< size of the raw data disk /dev/vda; 0: 64 (Debian guest: /dev/vdb; 0: none) */
	int nic;             /**< 1: a virtio NIC (user-mode networking) */
	unsigned qcow2_mib;  /**< >0: a second data disk /dev/vdb, qcow2, this size (Debian guest: the next free vdX) */
	int debian; /**< 1: the Debian 12 real-OS guest (tests/guest/build-debian-guest.sh): boots SeaBIOS+GRUB from its own disk; memory default 2048, 2 vCPUs */
} th_guest_options;

typedef struct th_guest th_guest;

/** Boots a transient guest (destroyed with the test's libvirt connection,
 *  so a crashed test leaves nothing running) and waits for its shell.
 *  `label` becomes part of the domain name. */
int th_guest_start(th_guest **out, const char *label, const th_guest_options *opts);

/** Runs a shell command in the guest, stdin from /dev/null, stderr merged
 *  into stdout. `output` (may be NULL) receives a malloc'd string the caller
 *  frees; `exit_status` (may be NULL) the command's exit status. Fails only
 *  if the guest does not answer within `timeout_ms`. */
int th_guest_run(th_guest *g, const char *command, int timeout_ms, char **output, int *exit_status);

/** Like th_guest_run, but fails unless the exit status is 0; the output
 *  (trailing newline removed) is returned in a malloc'd string or NULL. */
char *th_guest_check(th_guest *g, const char *command, int timeout_ms);

/** Saves the guest with virDomainSave (the domain stops) to `path`. */
int th_guest_save(th_guest *g, const char *path);

/** Powers the domain off (if it still runs) and forgets it, keeping the
 *  work folder, so an image of it can be restored with th_guest_restore. */
int th_guest_poweroff(th_guest *g);

/** Restores a saved image of this guest (virDomainRestore) and reconnects
 *  to its shell. The image may be one we rewrote. */
int th_guest_restore(th_guest *g, const char *path);

/** After th_guest_poweroff, the domain was started again by other means
 *  (e.g. a restore done by the test itself): find it and reconnect to its
 *  shell, which must be running. */
int th_guest_adopt(th_guest *g);

/** The unix socket of the guest's test shell channel. */
const char *th_guest_channel_path(const th_guest *g);

const char *th_guest_domain_name(const th_guest *g);
const char *th_guest_workdir(const th_guest *g);
/** The last `max_bytes` of the guest's kernel console (static per guest). */
const char *th_guest_console_tail(th_guest *g, unsigned max_bytes);

/** Attaches to a domain started by the code under test, whose test shell
 *  channel is the unix socket `sock_path` (NULL: the channel's socket as the
 *  domain's live XML says). Destroying it destroys the domain but removes no
 *  folder. */
int th_guest_attach_domain(th_guest **out, const char *domain, const char *sock_path, const char *console_path);
/** The same for a domain of another libvirtd (a URI such as
 *  qemu+unix:///system?socket=PATH: the test cloud's second compute host),
 *  whose files that host sees under `seen_prefix` and this process under
 *  `here_prefix` (its own mount namespace; both NULL: the same paths). */
int th_guest_attach_domain_at(th_guest **out, const char *uri, const char *domain, const char *seen_prefix,
                              const char *here_prefix);

/** Destroys the domain and removes its work folder. NULL is ignored. */
void th_guest_destroy(th_guest *g);

/** Lets go of the handle only: the domain runs on, nothing is removed. */
void th_guest_forget(th_guest *g);

/** Puts tests/guest/app-step.sh (the Debian guest's app step and
 *  fingerprint) into the guest as /usr/local/sbin/app-step. */
int th_guest_install_app_step(th_guest *g);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
