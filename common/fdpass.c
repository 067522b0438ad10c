// SPDX-License-Identifier: MIT
#include "fdpass.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// Large enough for any sender we talk to (the kernel caps SCM_RIGHTS at 253).
#define RECV_FDS_MAX 64u

ssize_t sml_send_fds(int sock, const void *data, size_t size, const int *fds, size_t nfds,
		     int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * SML_FDPASS_MAX)];
		struct cmsghdr align;
	} ctrl;
	struct iovec iov = { .iov_base = (void *)data, .iov_len = size };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds > SML_FDPASS_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (nfds) {
		memset(ctrl.buf, 0, CMSG_SPACE(sizeof(int) * nfds)); // no stray padding bytes
		msg.msg_control = ctrl.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
	}
	ssize_t n;
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL | flags);
	while (n < 0 && errno == EINTR);
	return n;
}

static void collect_fds(struct msghdr *msg, int *fds, size_t cap, size_t *nfds,
			bool *truncated)
{
	*nfds = 0;
	*truncated = msg->msg_flags & MSG_CTRUNC;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*nfds < cap) {
				fds[(*nfds)++] = fd;
			} else {
				close(fd);
				*truncated = true;
			}
		}
	}
}

ssize_t sml_recv_fds(int sock, void *buf, size_t size, int *fds, size_t cap, size_t *nfds,
		     bool *truncated, int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * RECV_FDS_MAX)];
		struct cmsghdr align;
	} ctrl;
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctrl.buf, .msg_controllen = sizeof(ctrl.buf),
	};
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
	while (n < 0 && errno == EINTR);
	*nfds = 0;
	*truncated = false;
	if (n >= 0)
		collect_fds(&msg, fds, cap, nfds, truncated);
	return n;
}
