// Keeps a broken pipe or socket an error return (EPIPE) instead of a signal
// that would kill the caller's process, without touching its signal
// handlers: SIGPIPE is blocked on this thread while the guard lives, and any
// pending one is taken away before the old mask comes back.
#pragma once

#include <signal.h>
#include <time.h>

namespace cloudlet {

class BlockSigpipe {
public:
	BlockSigpipe() {
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, SIGPIPE);
		pthread_sigmask(SIG_BLOCK, &s, &old_);
	}
	~BlockSigpipe() {
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, SIGPIPE);
		timespec zero{0, 0};
		while (sigtimedwait(&s, nullptr, &zero) > 0) {
		}
		pthread_sigmask(SIG_SETMASK, &old_, nullptr);
	}
	BlockSigpipe(const BlockSigpipe &) = delete;
	BlockSigpipe &operator=(const BlockSigpipe &) = delete;

private:
	sigset_t old_;
};

} // namespace cloudlet
