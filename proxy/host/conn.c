// SPDX-License-Identifier: MIT
// One guest connection of the socket device: framing, fd bookkeeping,
// non-blocking replies, and a lifetime that survives anything the guest sends.
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "closer.h"
#include "device.h"
#include "fdpass.h"
#include "log.h"
#include "server.h"
#include "util.h"

// Stop reading from a guest that does not read its replies.
#define CONN_OUT_HIGH_WATER (1u << 20)
// fds sent wait in the guest's socket until it reads them, counted by the
// kernel against this daemon's user (its open-files limit, for all guests
// together). A small send buffer (the kernel doubles it; each message costs
// some 800 bytes of it) keeps a guest that does not read to a few dozen;
// replies are small and read at once by a live guest.
#define CONN_SNDBUF 16384

// fds of a connection that no budget charges, each set bounded: its socket
// and the event loop's dup of it, received fds not yet taken by a message,
// fds queued in its replies.
#define CONN_UNCHARGED_FDS \
	(2 + SML_ARRAY_LEN(((struct host_conn *)0)->in_fds) + SML_WQUEUE_MAX_FDS)
// The listeners, stdio, the event loop's own fds, timers.
#define PROCESS_RESERVED_FDS 64
// Below this a desktop client (Xwayland with many windows) runs short.
#define MIN_FDS_PER_CONN 1024

static int conn_handle_event(int fd, uint32_t mask, void *data);

static void conn_update_mask(struct host_conn *conn)
{
	uint32_t mask = 0;
	if (conn->out.len < CONN_OUT_HIGH_WATER)
		mask |= WL_EVENT_READABLE;
	if (!sml_wqueue_empty(&conn->out))
		mask |= WL_EVENT_WRITABLE;
	if (mask != conn->mask)
		wl_event_source_fd_update(conn->source, mask);
	conn->mask = mask;
}

struct host_conn *host_conn_create(struct host_server *server, struct wl_event_loop *loop,
				   const struct host_config *config, int fd,
				   const char *kind, const char *peer)
{
	static unsigned serial;
	struct host_conn *conn = calloc(1, sizeof(*conn));
	if (!conn)
		goto err;
	conn->in = malloc(SDEV_MAX_MSG_SIZE);
	if (!conn->in)
		goto err_conn;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ CONN_SNDBUF }, sizeof(int));
	conn->source = wl_event_loop_add_fd(loop, fd, WL_EVENT_READABLE,
					    conn_handle_event, conn);
	conn->mask = WL_EVENT_READABLE;
	if (!conn->source)
		goto err_in;
	conn->server = server;
	conn->config = config;
	conn->loop = loop;
	conn->fd = fd;
	snprintf(conn->name, sizeof(conn->name), "conn %u (%s)", ++serial, kind);
	snprintf(conn->peer, sizeof(conn->peer), "%s", peer);
	sml_wqueue_init(&conn->out, config->limits.max_queue);
	wl_list_init(&conn->contexts);
	wl_list_init(&conn->waits);
	wl_list_init(&conn->link);
	sml_info("%s: connected, from %s", conn->name, peer);
	return conn;

err_in:
	free(conn->in);
err_conn:
	free(conn);
err:
	close(fd);
	return NULL;
}

void host_conn_destroy(struct host_conn *conn)
{
	if (!conn)
		return;
	// Replies that releasing the device sends go nowhere, and a send that
	// fails cannot end (and queue the destroy of) what is being destroyed.
	conn->dead = true;
	if (conn->reap)
		wl_event_source_remove(conn->reap);
	host_device_release(conn);
	if (conn->nfds)
		sml_err("%s: %u fds still on the budget after release (a bug)", conn->name,
			conn->nfds);
	for (size_t i = 0; i < conn->in_nfds; i++)
		sml_close_untrusted(conn->in_fds[i]);
	sml_wqueue_finish(&conn->out);
	if (conn->source)
		wl_event_source_remove(conn->source);
	close(conn->fd);
	wl_list_remove(&conn->link);
	sml_info("%s: closed", conn->name);
	free(conn->in);
	free(conn);
}

static void conn_destroy_idle(void *data)
{
	struct host_conn *conn = data;
	conn->reap = NULL;
	host_conn_destroy(conn);
}

// Ends the connection from the loop; a guest that hung up is no fault.
static void conn_end(struct host_conn *conn, bool fault, const char *reason)
{
	if (conn->dead)
		return;
	conn->dead = true;
	if (fault)
		sml_warn("%s: closing: %s", conn->name, reason);
	else
		sml_info("%s: %s", conn->name, reason);
	host_device_quiesce(conn);
	// Best effort: the last error reply may still fit the socket buffer.
	sml_wqueue_flush(&conn->out, conn->fd);
	wl_event_source_remove(conn->source);
	conn->source = NULL;
	conn->reap = wl_event_loop_add_idle(conn->loop, conn_destroy_idle, conn);
	if (!conn->reap)
		sml_err("%s: cannot schedule its teardown: it stays until sommelier-host exits",
			conn->name);
}

void host_conn_kill(struct host_conn *conn, const char *reason)
{
	conn_end(conn, true, reason);
}

static void conn_flush(struct host_conn *conn)
{
	int ret = sml_wqueue_flush(&conn->out, conn->fd);
	if (ret == -EPIPE || ret == -ECONNRESET) {
		conn_end(conn, false, "guest hung up");
		return;
	}
	if (ret < 0) {
		char why[96];
		snprintf(why, sizeof(why), "write to guest failed: %s", strerror(-ret));
		host_conn_kill(conn, why);
		return;
	}
	conn_update_mask(conn);
}

void host_conn_send(struct host_conn *conn, uint16_t type, uint32_t seq, uint32_t ctx_id,
		    const void *body, size_t size, const int *fds, uint8_t nfds)
{
	uint8_t buf[sizeof(struct sdev_header) + 512];
	struct sdev_writer w;
	if (conn->dead) {
		for (uint8_t i = 0; i < nfds; i++)
			close(fds[i]);
		return;
	}
	sdev_writer_begin(&w, buf, sizeof(buf), type, 0, seq, ctx_id, nfds);
	sdev_writer_put(&w, body, size);
	size_t len = sdev_writer_end(&w);
	if (len == 0 || sml_wqueue_push(&conn->out, buf, len, fds, nfds) < 0) {
		host_conn_kill(conn, "guest does not read its replies (queue full)");
		return;
	}
	conn_flush(conn);
}

__attribute__((format(printf, 7, 0)))
static void conn_send_error_v(struct host_conn *conn, uint16_t type, uint16_t req_type,
			      uint32_t seq, uint32_t ctx_id, int err, const char *fmt,
			      va_list ap)
{
	struct {
		struct sdev_reply_error e;
		char text[SDEV_MAX_REASON + 1];
	} body;
	int n = vsnprintf(body.text, sizeof(body.text), fmt, ap);
	size_t len = n < 0 ? 0 : SML_MIN((size_t)n, (size_t)SDEV_MAX_REASON);
	body.e = (struct sdev_reply_error){
		.error = err, .request_type = req_type, .reason_len = (uint16_t)len,
	};
	sml_info("%s: ctx %u: %s: %s", conn->name, ctx_id, strerror(-err), body.text);
	host_conn_send(conn, type, seq, ctx_id, &body, sizeof(body.e) + len, NULL, 0);
}

void host_conn_reply_error(struct host_conn *conn, const struct sdev_header *req, int err,
			   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	conn_send_error_v(conn, SDEV_REPLY_ERROR, req->type, req->seq, req->ctx_id, err,
			  fmt, ap);
	va_end(ap);
}

void host_conn_send_lost(struct host_conn *conn, uint32_t ctx_id, int err,
			 const char *fmt, va_list ap)
{
	conn_send_error_v(conn, SDEV_EVENT_CONTEXT_LOST, 0, 0, ctx_id, err, fmt, ap);
}

// The header at `off` arrived but the framing is broken: nothing after it
// can be trusted. The error names that header.
static void conn_protocol_error(struct host_conn *conn, size_t off, enum sdev_error err)
{
	struct sdev_header hdr = { 0 };
	if (conn->in_len - off >= sizeof(hdr))
		memcpy(&hdr, conn->in + off, sizeof(hdr));
	host_conn_reply_error(conn, &hdr, -EPROTO, "malformed message: %s",
			      sdev_strerror(err));
	host_conn_kill(conn, sdev_strerror(err));
}

static bool conn_take_fds(struct host_conn *conn, const struct sdev_msg *msg, int *fds)
{
	size_t n = msg->hdr.num_fds;
	if (n > conn->in_nfds)
		return false;
	memcpy(fds, conn->in_fds, n * sizeof(int));
	conn->in_nfds -= n;
	memmove(conn->in_fds, conn->in_fds + n, conn->in_nfds * sizeof(int));
	return true;
}

static void conn_process(struct host_conn *conn)
{
	size_t off = 0;
	while (!conn->dead && off < conn->in_len) {
		struct sdev_msg msg;
		enum sdev_error err = sdev_decode(conn->in + off, conn->in_len - off, true, &msg);
		if (err == SDEV_ERR_NEED_MORE)
			break;
		if (err != SDEV_OK) {
			conn_protocol_error(conn, off, err);
			return;
		}
		int fds[SDEV_MAX_FDS];
		if (!conn_take_fds(conn, &msg, fds)) {
			host_conn_reply_error(conn, &msg.hdr, -EPROTO,
					      "message declares %u fds that did not arrive",
					      msg.hdr.num_fds);
			host_conn_kill(conn, "missing fds");
			return;
		}
		host_device_dispatch(conn, &msg, fds);
		off += msg.hdr.size;
	}
	memmove(conn->in, conn->in + off, conn->in_len - off);
	conn->in_len -= off;
}

// Returns false when the connection is gone.
static bool conn_read(struct host_conn *conn)
{
	size_t nfds;
	bool truncated;
	ssize_t n = sml_recv_fds(conn->fd, conn->in + conn->in_len,
				 SDEV_MAX_MSG_SIZE - conn->in_len, conn->in_fds + conn->in_nfds,
				 SML_ARRAY_LEN(conn->in_fds) - conn->in_nfds, &nfds, &truncated,
				 MSG_DONTWAIT);
	if (n < 0 && errno == EAGAIN)
		return true;
	if (n <= 0) {
		// A reset: the guest closed with our replies unread.
		bool gone = n == 0 || errno == ECONNRESET;
		conn_end(conn, !gone, gone ? "guest hung up" : strerror(errno));
		return false;
	}
	conn->in_nfds += nfds;
	if (truncated) {
		host_conn_kill(conn, "too many fds in flight");
		return false;
	}
	conn->in_len += (size_t)n;
	return true;
}

static int conn_handle_event(int fd, uint32_t mask, void *data)
{
	struct host_conn *conn = data;
	if (conn->dead)
		return 0;
	if (mask & WL_EVENT_WRITABLE)
		conn_flush(conn);
	if (!conn->dead && (mask & (WL_EVENT_READABLE | WL_EVENT_HANGUP | WL_EVENT_ERROR))) {
		if (conn_read(conn))
			conn_process(conn);
	}
	if (!conn->dead)
		conn_update_mask(conn);
	return 0;
}

bool host_conn_take_fds(struct host_conn *conn, uint32_t n)
{
	uint32_t max = conn->config->limits.max_fds;
	if (n <= max && conn->nfds <= max - n) {
		conn->nfds += n;
		return true;
	}
	if (!conn->fds_warned)
		sml_warn("%s: fd budget (%u) reached; further blobs, pipes and compositor "
			 "connections of this guest fail", conn->name, max);
	conn->fds_warned = true;
	return false;
}

void host_conn_put_fds(struct host_conn *conn, uint32_t n)
{
	conn->nfds -= n;
}

bool host_limits_resolve_fds(struct host_limits *lim, unsigned long open_max)
{
	unsigned long usable = open_max > PROCESS_RESERVED_FDS ?
			       open_max - PROCESS_RESERVED_FDS : 0;
	unsigned long share = usable / lim->max_conns;
	share = share > CONN_UNCHARGED_FDS ? share - CONN_UNCHARGED_FDS : 0;
	if (lim->max_fds == 0)
		lim->max_fds = (uint32_t)SML_MIN(SML_MAX(share, MIN_FDS_PER_CONN),
						 (unsigned long)UINT32_MAX);
	return lim->max_fds <= share;
}
