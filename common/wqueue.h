// SPDX-License-Identifier: MIT
// A bounded outgoing byte stream with file descriptors attached to byte
// positions. Writers never block: whatever the peer does not take now stays
// queued (up to `limit` bytes) and is flushed when the fd becomes writable.
// Pipes are written with write(), so processes using this ignore SIGPIPE.
#ifndef SML_WQUEUE_H
#define SML_WQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// libwayland's receive buffer takes 28 fds per recvmsg; more would be lost.
#define SML_WQUEUE_FDS_PER_SEND 28u
#define SML_WQUEUE_MAX_FDS 256u

struct sml_wqueue_fd {
	int fd;
	uint64_t pos; // stream position of the byte it travels with
};

struct sml_wqueue {
	uint8_t *data; // may be NULL while empty
	size_t head, len, cap; // pending bytes are data[head, head + len)
	size_t limit; // most bytes ever pending
	uint64_t pos; // stream position of data[head]
	struct sml_wqueue_fd fds[SML_WQUEUE_MAX_FDS];
	size_t nfds;
};

void sml_wqueue_init(struct sml_wqueue *q, size_t limit);
// Closes pending fds and frees memory; the queue is empty afterwards.
void sml_wqueue_finish(struct sml_wqueue *q);
static inline bool sml_wqueue_empty(const struct sml_wqueue *q)
{
	return q->len == 0 && q->nfds == 0;
}

// Queues bytes and takes ownership of fds (closed on failure too).
// Returns 0, or -ENOBUFS when the limit would be exceeded.
int sml_wqueue_push(struct sml_wqueue *q, const void *data, size_t size,
		    const int *fds, size_t nfds);
// Writes what the fd takes now: 0 when the queue is empty, 1 when bytes are
// left (wait for writability), or a negative errno (EPIPE, ...).
int sml_wqueue_flush(struct sml_wqueue *q, int fd);
// push + flush: the common path sends at once and queues nothing.
int sml_wqueue_send(struct sml_wqueue *q, int fd, const void *data, size_t size,
		    const int *fds, size_t nfds);

#endif
