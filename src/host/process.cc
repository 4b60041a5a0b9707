#include "host/process.h"

#include "util/error.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

extern char **environ;

namespace cloudlet::host {

std::string run_program(const std::vector<std::string> &argv) {
	std::string cmd;
	for (const auto &a : argv)
		cmd += (cmd.empty() ? "" : " ") + a;
	int out[2], err[2];
	if (pipe2(out, O_CLOEXEC) != 0)
		fail_errno("pipe", errno);
	if (pipe2(err, O_CLOEXEC) != 0) {
		int e = errno;
		close(out[0]);
		close(out[1]);
		fail_errno("pipe", e);
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	std::vector<char *> args;
	for (const auto &a : argv)
		args.push_back(const_cast<char *>(a.c_str()));
	args.push_back(nullptr);
	pid_t pid = 0;
	int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	close(err[1]);
	if (rc != 0) {
		close(out[0]);
		close(err[0]);
		fail(CLOUDLET_E_IO, "cannot run " + argv[0] + ": " + errno_message("posix_spawn", rc));
	}
	std::string so, se;
	struct pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
	int open_fds = 2;
	while (open_fds > 0) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char buf[65536];
			ssize_t n = read(p[i].fd, buf, sizeof buf);
			if (n > 0) {
				std::string &dst = i == 0 ? so : se;
				if (dst.size() < (16u << 20))
					dst.append(buf, static_cast<size_t>(n));
			} else if (n == 0 || errno != EINTR) {
				close(p[i].fd);
				p[i].fd = -1;
				open_fds--;
			}
		}
	}
	for (auto &x : p)
		if (x.fd >= 0)
			close(x.fd);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		while (!se.empty() && (se.back() == '\n' || se.back() == ' '))
			se.pop_back();
		if (se.size() > 2000)
			se = "..." + se.substr(se.size() - 2000);
		fail(CLOUDLET_E_IO, "'" + cmd + "' failed (" +
		                        (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
		                                           : std::string("killed by a signal")) +
		                        ")" + (se.empty() ? "" : ": " + se));
	}
	return so;
}

} // namespace cloudlet::host
