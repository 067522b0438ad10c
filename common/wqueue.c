// SPDX-License-Identifier: MIT
#include "wqueue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdpass.h"
#include "util.h"

void sml_wqueue_init(struct sml_wqueue *q, size_t limit)
{
	memset(q, 0, sizeof(*q));
	q->limit = limit;
}

static void close_fds(const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

// Closes the first n queued fds (the peer has its own copies now).
static void close_fds_of_queue(struct sml_wqueue *q, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(q->fds[i].fd);
	memmove(q->fds, q->fds + n, (q->nfds - n) * sizeof(q->fds[0]));
	q->nfds -= n;
}

void sml_wqueue_finish(struct sml_wqueue *q)
{
	for (size_t i = 0; i < q->nfds; i++)
		close(q->fds[i].fd);
	free(q->data);
	sml_wqueue_init(q, q->limit);
}

static bool reserve(struct sml_wqueue *q, size_t size)
{
	if (q->head + q->len + size <= q->cap)
		return true;
	if (q->len)
		memmove(q->data, q->data + q->head, q->len);
	q->head = 0;
	if (q->len + size <= q->cap)
		return true;
	size_t cap = SML_MAX(q->cap * 2, q->len + size);
	cap = SML_MAX(cap, 4096u);
	uint8_t *data = realloc(q->data, cap);
	if (!data)
		return false;
	q->data = data;
	q->cap = cap;
	return true;
}

int sml_wqueue_push(struct sml_wqueue *q, const void *data, size_t size,
		    const int *fds, size_t nfds)
{
	if (q->len + size > q->limit || nfds > SML_WQUEUE_FDS_PER_SEND ||
	    q->nfds + nfds > SML_WQUEUE_MAX_FDS ||
	    (nfds > 0 && size == 0) || !reserve(q, size)) {
		close_fds(fds, nfds);
		return -ENOBUFS;
	}
	uint64_t pos = q->pos + q->len;
	for (size_t i = 0; i < nfds; i++)
		q->fds[q->nfds++] = (struct sml_wqueue_fd){ .fd = fds[i], .pos = pos };
	if (size)
		memcpy(q->data + q->head + q->len, data, size);
	q->len += size;
	return 0;
}

// One sendmsg, or a write() for fd-less bytes, which also serves pipes.
static ssize_t send_bytes(int fd, const uint8_t *data, size_t size, const int *fds,
			  size_t nfds)
{
	if (nfds == 0)
		return write(fd, data, size);
	return sml_send_fds(fd, data, size, fds, nfds, MSG_DONTWAIT);
}

// Sends one chunk: at most 28 fds, and no byte past the first fd left
// behind, so an fd never arrives after the bytes that refer to it.
static ssize_t send_chunk(struct sml_wqueue *q, int fd, size_t *nfds_out)
{
	size_t nfds = SML_MIN(q->nfds, (size_t)SML_WQUEUE_FDS_PER_SEND);
	size_t bytes = q->len;
	int fds[SML_WQUEUE_FDS_PER_SEND];
	if (q->nfds > nfds)
		bytes = SML_MIN(bytes, (size_t)(q->fds[nfds].pos - q->pos));
	for (size_t i = 0; i < nfds; i++)
		fds[i] = q->fds[i].fd;
	*nfds_out = nfds;
	return send_bytes(fd, q->data + q->head, bytes, fds, nfds);
}

static void consume(struct sml_wqueue *q, size_t bytes, size_t nfds)
{
	close_fds_of_queue(q, nfds);
	q->head += bytes;
	q->len -= bytes;
	q->pos += bytes;
	if (q->len == 0)
		q->head = 0;
}

int sml_wqueue_flush(struct sml_wqueue *q, int fd)
{
	while (q->len > 0) {
		size_t nfds;
		ssize_t n = send_chunk(q, fd, &nfds);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		if (n < 0)
			return -errno;
		consume(q, (size_t)n, nfds);
	}
	return 0;
}

// With nothing queued, bytes go straight from the caller's buffer; only what
// the peer does not take now is copied into the queue.
int sml_wqueue_send(struct sml_wqueue *q, int fd, const void *data, size_t size,
		    const int *fds, size_t nfds)
{
	if (!sml_wqueue_empty(q) || nfds > SML_WQUEUE_FDS_PER_SEND || size == 0) {
		int ret = sml_wqueue_push(q, data, size, fds, nfds);
		return ret < 0 ? ret : sml_wqueue_flush(q, fd);
	}
	ssize_t n = send_bytes(fd, data, size, fds, nfds);
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
		int err = -errno;
		close_fds(fds, nfds);
		return err;
	}
	if (n < 0) // nothing went: queue it all, fds included
		return sml_wqueue_push(q, data, size, fds, nfds) < 0 ? -ENOBUFS : 1;
	close_fds(fds, nfds); // sent with the first byte
	q->pos += (size_t)n;
	if ((size_t)n == size)
		return 0;
	int ret = sml_wqueue_push(q, (const uint8_t *)data + n, size - (size_t)n, NULL, 0);
	return ret < 0 ? ret : 1;
}
