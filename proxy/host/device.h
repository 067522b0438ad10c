// SPDX-License-Identifier: MIT
// The host side of the socket device: one host_conn per guest connection,
// holding virtgpu contexts and resources under the rules the kernel enforces.
#ifndef SML_HOST_DEVICE_H
#define SML_HOST_DEVICE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <wayland-server-core.h>

#include "socket_device.h"
#include "wqueue.h"

struct host_server;
struct host_xd;

struct host_limits {
	uint32_t max_conns;
	uint32_t max_conns_per_peer; // 0: three quarters of max_conns
	uint32_t max_contexts; // per connection
	uint32_t max_resources; // per connection
	uint32_t max_pipes; // per connection
	uint64_t max_memory; // bytes of blob memory per connection
	size_t max_queue; // bytes queued towards one peer (compositor, pipe, guest)
	uint32_t max_items; // cross-domain blob ids and image requirements per connection
	uint32_t max_fds; // fds held for one connection; 0 until host_limits_resolve_fds
};

struct host_config {
	const char *display; // compositor socket name or absolute path
	struct host_limits limits;
};

struct host_resource {
	uint32_t handle;
	struct host_ctx *ctx;
	uint32_t blob_mem;
	uint64_t size;
	int fd;
	uint32_t busy; // unsignalled fences whose execbuffer listed it
};

struct host_fence {
	uint32_t seq; // of the EXECBUFFER
	uint32_t ring;
	uint32_t nbo;
	uint32_t *bo; // may be NULL
	struct wl_list link; // struct host_ctx.fences
};

struct host_ctx {
	struct host_conn *conn;
	uint32_t id;
	uint32_t num_rings;
	uint64_t poll_mask;
	bool lost;
	struct host_xd *xd; // may be NULL once lost
	struct wl_event_source *reap; // may be NULL: pending teardown of a lost xd
	struct wl_list fences; // struct host_fence.link
	struct wl_list link; // struct host_conn.contexts
};

struct host_conn {
	struct host_server *server;
	const struct host_config *config;
	struct wl_event_loop *loop;
	int fd;
	struct wl_event_source *source;
	uint32_t mask; // what source watches now
	bool dead; // being torn down: handlers must return at once
	struct wl_event_source *reap; // may be NULL: the pending destroy of a dead conn
	bool hello_done;
	uint64_t features;
	char name[64]; // for logs: "conn 3 (unix)"
	char peer[64]; // who connected: "pid 12", "cid 3", "10.0.0.2"

	uint8_t *in; // SDEV_MAX_MSG_SIZE bytes of partial input
	size_t in_len;
	int in_fds[64];
	size_t in_nfds;
	struct sml_wqueue out;

	struct wl_list contexts; // struct host_ctx.link
	uint32_t ncontexts;
	struct host_resource **resources; // indexed by handle - 1; NULL slots free
	uint32_t resources_cap;
	uint32_t nresources;
	uint64_t memory;
	uint32_t npipes;
	uint32_t nfds; // charged by host_conn_take_fds
	uint32_t nitems; // cross-domain items of all its contexts
	bool fds_warned;
	struct wl_list waits; // struct host_wait.link
	uint32_t nwaits;
	struct wl_list link; // struct host_server.conns
};

struct host_wait {
	uint32_t seq;
	uint32_t ctx_id;
	uint32_t res_handle;
	struct wl_list link; // struct host_conn.waits
};

// conn.c: framing, replies, lifetime.
struct host_conn *host_conn_create(struct host_server *server, struct wl_event_loop *loop,
				   const struct host_config *config, int fd,
				   const char *kind, const char *peer);
void host_conn_destroy(struct host_conn *conn);
// Ends the connection (deferred to an idle callback; safe inside handlers).
void host_conn_kill(struct host_conn *conn, const char *reason);
void host_conn_send(struct host_conn *conn, uint16_t type, uint32_t seq, uint32_t ctx_id,
		    const void *body, size_t size, const int *fds, uint8_t nfds);
void host_conn_reply_error(struct host_conn *conn, const struct sdev_header *req, int err,
			   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

void host_conn_send_lost(struct host_conn *conn, uint32_t ctx_id, int err,
			 const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

// device.c: the operations.
void host_device_dispatch(struct host_conn *conn, const struct sdev_msg *msg,
			  const int *fds);
void host_device_release(struct host_conn *conn);
// A connection is going: its contexts stop touching anything now.
void host_device_quiesce(struct host_conn *conn);
struct host_resource *host_ctx_resource(struct host_ctx *ctx, uint32_t handle);
// A new mapping of the first `size` bytes of a resource, the caller's to
// munmap; NULL if it has no sealed memory that big.
void *host_resource_map(struct host_resource *res, size_t size);
// Signals a fence the backend kept pending (a cross-domain POLL).
void host_ctx_signal_fence(struct host_ctx *ctx, uint32_t seq);
// Ends the context: the guest gets EVENT_CONTEXT_LOST, other contexts live on.
void host_ctx_lose(struct host_ctx *ctx, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
// The fd budget of a connection (conn.c). Charged: blobs (1 each), the
// compositor connection and pipes (2 each: the event loop dups the fds it
// watches), compositor fds the guest has not claimed, fds queued towards the
// compositor. Take returns false (with one log line per connection) when n
// more would exceed max_fds.
bool host_conn_take_fds(struct host_conn *conn, uint32_t n);
void host_conn_put_fds(struct host_conn *conn, uint32_t n);
// Sets an unset max_fds to what max_conns connections can all hold at once
// within open_max (at least 1024). Returns whether they can: false when the
// limits allow guests together to exhaust the process's fds.
bool host_limits_resolve_fds(struct host_limits *lim, unsigned long open_max);

// A pipe of the connection's pipe limit, holding `fds` of its fd budget:
// 0, -ENOSPC (pipe limit, logged) or -EMFILE (fd budget).
int host_ctx_pipe_acquire(struct host_ctx *ctx, uint32_t fds);
void host_ctx_pipe_release(struct host_ctx *ctx, uint32_t fds);

#endif
