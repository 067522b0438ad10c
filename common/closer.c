// SPDX-License-Identifier: MIT
#include "closer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static int closer_pipe[2] = { -1, -1 }; // fd numbers, 4 bytes each (atomic writes)

static void *closer_main(void *data)
{
	int fds[256];
	for (;;) {
		ssize_t n = read(closer_pipe[0], fds, sizeof(fds));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		for (size_t i = 0; i < (size_t)n / sizeof(int); i++)
			close(fds[i]);
	}
}

bool sml_closer_start(void)
{
	sigset_t all, old;
	pthread_t thread;
	if (closer_pipe[1] >= 0)
		return true;
	if (pipe2(closer_pipe, O_CLOEXEC) < 0)
		return false;
	sml_fd_set_nonblock(closer_pipe[1]);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int err = pthread_create(&thread, NULL, closer_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err == 0 && pthread_detach(thread) == 0)
		return true;
	close(closer_pipe[0]);
	close(closer_pipe[1]);
	closer_pipe[0] = closer_pipe[1] = -1;
	errno = err;
	return false;
}

void sml_close_untrusted(int fd)
{
	static bool warned;
	if (fd < 0)
		return;
	if (closer_pipe[1] >= 0) {
		if (write(closer_pipe[1], &fd, sizeof(fd)) == sizeof(fd))
			return;
		if (!warned)
			sml_warn("the closing thread is stuck (a peer's fd that lingers?): "
				 "closing here");
		warned = true;
	}
	close(fd);
}
