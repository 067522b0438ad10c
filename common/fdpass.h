// SPDX-License-Identifier: MIT
// Bytes with file descriptors over Unix sockets (SCM_RIGHTS).
#ifndef SML_FDPASS_H
#define SML_FDPASS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SML_FDPASS_MAX 28u // what libwayland takes per message

// One sendmsg of `size` bytes with `nfds` fds attached (MSG_NOSIGNAL plus
// `flags`); EINTR is retried. Returns sendmsg's result.
ssize_t sml_send_fds(int sock, const void *data, size_t size, const int *fds, size_t nfds,
		     int flags);

// One recvmsg (MSG_CMSG_CLOEXEC plus `flags`). Received fds go to fds[] up
// to cap; *truncated is set when fds were lost (more than cap, or the
// kernel's MSG_CTRUNC), and the ones beyond cap are closed.
ssize_t sml_recv_fds(int sock, void *buf, size_t size, int *fds, size_t cap, size_t *nfds,
		     bool *truncated, int flags);

#endif
