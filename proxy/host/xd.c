// SPDX-License-Identifier: MIT
// The cross-domain context: replays a guest's Wayland stream against its own
// compositor connection. Events flow only while the guest has a POLL
// outstanding, so the compositor, not a queue here, holds what the guest has
// not asked for yet. Nothing blocks: writes that the compositor or a pipe
// does not take at once are queued within limits.
#include "xd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "device.h"
#include "fdpass.h"
#include "image.h"
#include "log.h"
#include "util.h"
#include "wqueue.h"

enum item_kind {
	ITEM_BLOB, // an fd from the compositor, until the guest creates its blob
	ITEM_IMAGE, // image requirements; every blob creation allocates anew
	ITEM_WRITE_PIPE, // a write end from the compositor, fed by guest WRITEs
};

struct xd_item {
	uint32_t id;
	enum item_kind kind;
	int fd; // -1 for an image, or a write pipe that discards
	uint64_t size;
	uint32_t key[4]; // ITEM_IMAGE: width, height, format, flags
	struct host_xd *xd;
	struct wl_event_source *source; // may be NULL: write pipe with a backlog
	struct sml_wqueue *out; // may be NULL: only a write pipe with an fd has one
	bool hang_up; // close once `out` drains
	uint32_t fds_charged; // to the connection's fd budget
	struct wl_list link; // struct host_xd.blobs, .images or .pipes, by kind
};

struct xd_read_pipe {
	uint32_t id;
	int fd;
	struct host_xd *xd;
	struct wl_event_source *source; // may be NULL after a hang-up: read directly
	bool armed;
	bool ready; // reported readable since the last read
	struct wl_list link; // struct host_xd.read_pipes
};

struct host_xd {
	struct host_ctx *ctx;
	bool initialized;
	bool dead; // context lost: every handler returns at once
	uint8_t *query_ring;
	uint8_t *channel_ring;

	int wl_fd; // -1 when not connected or gone
	bool wl_charged; // the connection's 2 fds are on the fd budget
	uint32_t wl_out_charged; // fds of wl_out on the fd budget
	struct wl_event_source *connect_retry; // NULL unless waiting for a full backlog
	uint32_t connect_waited_ms;
	struct wl_event_source *wl_source; // may be NULL after a hang-up: read directly
	uint32_t wl_mask;
	bool wl_ready; // reported readable since the last read
	struct sml_wqueue wl_out;
	bool wl_write_dead; // the compositor stopped taking requests
	bool armed; // wake up on readable sources (a POLL waits)
	bool eof_pending; // the guest still has to hear that the compositor is gone

	bool poll_pending;
	uint32_t poll_seq;
	bool prefer_pipes; // alternate sources so that none starves the other

	// Apart by kind, so that no lookup walks what it cannot find.
	struct wl_list blobs; // struct xd_item.link (ITEM_BLOB)
	struct wl_list images; // struct xd_item.link (ITEM_IMAGE), oldest first
	struct wl_list pipes; // struct xd_item.link (ITEM_WRITE_PIPE)
	uint32_t nimages;
	uint32_t next_item_id;
	uint32_t last_read_pipe_id;
	struct wl_list read_pipes; // struct xd_read_pipe.link
};

static int xd_fail(struct host_xd *xd, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int xd_fail(struct host_xd *xd, int err, const char *fmt, ...)
{
	char reason[SDEV_MAX_REASON];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	sml_warn("%s: ctx %u: cross-domain: %s", xd->ctx->conn->name, xd->ctx->id, reason);
	host_ctx_lose(xd->ctx, err, "%s", reason);
	return err;
}

void host_xd_capabilities(struct cd_capabilities *caps)
{
	*caps = (struct cd_capabilities){
		.version = CD_CAPSET_VERSION,
		.supported_channels = 1u << CD_CHANNEL_WAYLAND,
	};
}

struct host_xd *host_xd_create(struct host_ctx *ctx)
{
	struct host_xd *xd = calloc(1, sizeof(*xd));
	if (!xd)
		return NULL;
	xd->ctx = ctx;
	xd->wl_fd = -1;
	xd->next_item_id = 1;
	xd->last_read_pipe_id = CD_READ_PIPE_ID_BASE;
	sml_wqueue_init(&xd->wl_out, ctx->conn->config->limits.max_queue);
	wl_list_init(&xd->blobs);
	wl_list_init(&xd->images);
	wl_list_init(&xd->pipes);
	wl_list_init(&xd->read_pipes);
	return xd;
}

// Gives back what an item of `kind` holding `fds` took (classify_fd).
static void item_uncharge(struct host_ctx *ctx, enum item_kind kind, uint32_t fds)
{
	if (kind == ITEM_WRITE_PIPE)
		host_ctx_pipe_release(ctx, fds);
	else
		host_conn_put_fds(ctx->conn, fds);
}

static void item_destroy(struct xd_item *item)
{
	if (item->source)
		wl_event_source_remove(item->source);
	item_uncharge(item->xd->ctx, item->kind, item->fds_charged);
	if (item->out)
		sml_wqueue_finish(item->out);
	free(item->out);
	sml_close(&item->fd);
	item->xd->ctx->conn->nitems--;
	item->xd->nimages -= item->kind == ITEM_IMAGE;
	wl_list_remove(&item->link);
	free(item);
}

static void read_pipe_destroy(struct xd_read_pipe *pipe)
{
	if (pipe->source)
		wl_event_source_remove(pipe->source);
	close(pipe->fd);
	host_ctx_pipe_release(pipe->xd->ctx, 2);
	wl_list_remove(&pipe->link);
	free(pipe);
}

// Whatever wl_out sent or closed leaves the fd budget.
static void settle_wl_out(struct host_xd *xd)
{
	host_conn_put_fds(xd->ctx->conn, xd->wl_out_charged - (uint32_t)xd->wl_out.nfds);
	xd->wl_out_charged = (uint32_t)xd->wl_out.nfds;
}

static void wl_disconnect(struct host_xd *xd)
{
	if (xd->connect_retry)
		wl_event_source_remove(xd->connect_retry);
	xd->connect_retry = NULL;
	if (xd->wl_source)
		wl_event_source_remove(xd->wl_source);
	xd->wl_source = NULL;
	sml_close(&xd->wl_fd);
	if (xd->wl_charged)
		host_conn_put_fds(xd->ctx->conn, 2);
	xd->wl_charged = false;
	sml_wqueue_finish(&xd->wl_out);
	settle_wl_out(xd);
}

void host_xd_destroy(struct host_xd *xd)
{
	if (!xd)
		return;
	wl_disconnect(xd);
	if (xd->channel_ring && xd->channel_ring != xd->query_ring)
		munmap(xd->channel_ring, CD_RING_SIZE);
	if (xd->query_ring)
		munmap(xd->query_ring, CD_RING_SIZE);
	struct wl_list *lists[] = { &xd->blobs, &xd->images, &xd->pipes };
	struct xd_item *item, *itmp;
	for (size_t i = 0; i < SML_ARRAY_LEN(lists); i++)
		wl_list_for_each_safe(item, itmp, lists[i], link)
			item_destroy(item);
	struct xd_read_pipe *pipe, *ptmp;
	wl_list_for_each_safe(pipe, ptmp, &xd->read_pipes, link)
		read_pipe_destroy(pipe);
	free(xd);
}

// ---- events towards the guest -------------------------------------------

static void complete_poll(struct host_xd *xd)
{
	xd->poll_pending = false;
	host_ctx_signal_fence(xd->ctx, xd->poll_seq);
}

static void write_receive(struct host_xd *xd, uint32_t n, const uint32_t *ids,
			  const uint32_t *types, const uint32_t *sizes, const void *data,
			  uint32_t size)
{
	cd_encode_send_receive(xd->channel_ring, CD_RING_SIZE, CD_CMD_RECEIVE, true, n, ids,
			       types, sizes, data, size);
	complete_poll(xd);
}

static void send_eof(struct host_xd *xd)
{
	xd->eof_pending = false;
	write_receive(xd, 0, NULL, NULL, NULL, NULL, 0);
}

void host_xd_hangup(struct host_xd *xd)
{
	if (xd->poll_pending && xd->channel_ring)
		send_eof(xd);
	xd->dead = true;
	wl_disconnect(xd);
}

static uint32_t alloc_item_id(struct host_xd *xd)
{
	if (xd->next_item_id >= CD_READ_PIPE_ID_BASE)
		return 0;
	return xd->next_item_id++;
}

// Image layouts a context keeps; past this the oldest is forgotten. A guest
// caches recent answers (sommelier the last 16): a window resized through
// thousands of sizes must not run out of ids.
#define XD_MAX_IMAGES 256

static struct wl_list *item_list(struct host_xd *xd, enum item_kind kind)
{
	return kind == ITEM_BLOB ? &xd->blobs : kind == ITEM_IMAGE ? &xd->images : &xd->pipes;
}

// The least recently asked-for layout goes when a context has too many, or
// when the connection's items ran out and this context has some.
static void make_room_for_image(struct host_xd *xd)
{
	const struct host_conn *conn = xd->ctx->conn;
	bool full = xd->nimages >= XD_MAX_IMAGES ||
		    (conn->nitems >= conn->config->limits.max_items && xd->nimages > 0);
	if (!full)
		return;
	struct xd_item *oldest = wl_container_of(xd->images.next, oldest, link);
	item_destroy(oldest);
}

static struct sml_wqueue *write_queue(const struct host_conn *conn)
{
	struct sml_wqueue *q = malloc(sizeof(*q));
	if (q)
		sml_wqueue_init(q, conn->config->limits.max_queue);
	return q;
}

static struct xd_item *item_add(struct host_xd *xd, enum item_kind kind, int fd)
{
	struct host_conn *conn = xd->ctx->conn;
	if (kind == ITEM_IMAGE)
		make_room_for_image(xd);
	uint32_t id = conn->nitems < conn->config->limits.max_items ? alloc_item_id(xd) : 0;
	struct xd_item *item = id ? calloc(1, sizeof(*item)) : NULL;
	if (!item)
		return NULL;
	// Only a write pipe with an fd writes: other items need no queue (4 KiB).
	if (kind == ITEM_WRITE_PIPE && fd >= 0 && !(item->out = write_queue(conn))) {
		free(item);
		return NULL;
	}
	item->id = id;
	item->kind = kind;
	item->fd = fd;
	item->xd = xd;
	wl_list_insert(item_list(xd, kind)->prev, &item->link);
	conn->nitems++;
	xd->nimages += kind == ITEM_IMAGE;
	return item;
}

// Turns one compositor fd into an identifier; 0, -ENOSPC (pipe or item
// limit) or -EMFILE (fd budget). Unknown kinds of fd do not end the context:
// they become a write pipe that discards, so the guest's stream keeps its fd
// count, and the log says what happened.
static int classify_fd(struct host_xd *xd, int fd, uint32_t *id, uint32_t *type,
			uint32_t *size)
{
	struct host_conn *conn = xd->ctx->conn;
	struct xd_item *item;
	off_t end = lseek(fd, 0, SEEK_END);
	int fl = fcntl(fd, F_GETFL);
	enum item_kind kind = end >= 0 ? ITEM_BLOB : ITEM_WRITE_PIPE;
	if (end < 0 && (fl < 0 || (fl & O_ACCMODE) != O_WRONLY)) {
		sml_warn("%s: ctx %u: compositor sent an fd that is neither memory nor a "
			 "write pipe (flags 0%o); the guest gets a pipe that discards",
			 conn->name, xd->ctx->id, fl);
		sml_close(&fd);
	}
	// A write pipe gets an event source (a dup) when it has a backlog.
	uint32_t charge = fd < 0 ? 0 : kind == ITEM_BLOB ? 1 : 2;
	int err = kind == ITEM_WRITE_PIPE ? host_ctx_pipe_acquire(xd->ctx, charge) :
		  host_conn_take_fds(conn, charge) ? 0 : -EMFILE;
	if (err)
		goto err;
	if (!(item = item_add(xd, kind, fd))) {
		err = -ENOSPC;
		goto err_charge;
	}
	item->fds_charged = charge;
	if (fd >= 0 && kind == ITEM_WRITE_PIPE)
		sml_fd_set_nonblock(fd);
	item->size = end >= 0 ? (uint64_t)end : 0;
	*id = item->id;
	*type = kind == ITEM_BLOB ? CD_ID_VIRTGPU_BLOB : CD_ID_WRITE_PIPE;
	*size = (uint32_t)SML_MIN(item->size, (uint64_t)UINT32_MAX);
	return 0;

err_charge:
	item_uncharge(xd->ctx, kind, charge);
err:
	sml_close(&fd);
	return err;
}

struct received {
	uint32_t n;
	uint32_t ids[CD_MAX_IDENTIFIERS], types[CD_MAX_IDENTIFIERS], sizes[CD_MAX_IDENTIFIERS];
};

// Classifies every fd; on failure the rest are closed.
static int classify_all(struct host_xd *xd, const int *fds, size_t nfds, struct received *r)
{
	int err = 0;
	for (size_t i = 0; i < nfds; i++) {
		if (err)
			close(fds[i]);
		else if (!(err = classify_fd(xd, fds[i], &r->ids[r->n], &r->types[r->n],
					     &r->sizes[r->n])))
			r->n++;
	}
	return err;
}

static void update_wl_mask(struct host_xd *xd)
{
	if (!xd->wl_source)
		return;
	uint32_t mask = xd->armed ? WL_EVENT_READABLE : 0;
	if (!sml_wqueue_empty(&xd->wl_out))
		mask |= WL_EVENT_WRITABLE;
	if (mask != xd->wl_mask)
		wl_event_source_fd_update(xd->wl_source, mask);
	xd->wl_mask = mask;
}

// Level-triggered sources stay quiet while no POLL waits, so the compositor
// keeps what the guest has not asked for.
static void set_armed(struct host_xd *xd, bool armed)
{
	xd->armed = armed;
	update_wl_mask(xd);
	struct xd_read_pipe *pipe;
	wl_list_for_each(pipe, &xd->read_pipes, link) {
		if (!pipe->source || pipe->armed == armed)
			continue;
		wl_event_source_fd_update(pipe->source, armed ? WL_EVENT_READABLE : 0);
		pipe->armed = armed;
	}
}

// An armed source reports its data itself (level-triggered): reading it
// on a POLL before it did would, nearly always, only find EAGAIN.
static bool wl_may_have_data(const struct host_xd *xd)
{
	return xd->wl_ready || !xd->wl_source || !(xd->wl_mask & WL_EVENT_READABLE);
}

static bool pipe_may_have_data(const struct xd_read_pipe *pipe)
{
	return pipe->ready || !pipe->source || !pipe->armed;
}

static bool produce_from_compositor(struct host_xd *xd)
{
	if (xd->wl_fd < 0) {
		if (xd->eof_pending)
			send_eof(xd);
		return !xd->poll_pending;
	}
	if (!wl_may_have_data(xd))
		return false;
	xd->wl_ready = false;
	uint8_t data[CD_MAX_SEND_DATA];
	int fds[CD_MAX_IDENTIFIERS];
	size_t nfds;
	bool truncated;
	ssize_t n = sml_recv_fds(xd->wl_fd, data, sizeof(data), fds, CD_MAX_IDENTIFIERS, &nfds,
				 &truncated, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	if (n <= 0) {
		sml_info("%s: ctx %u: compositor connection ended%s%s", xd->ctx->conn->name,
			 xd->ctx->id, n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
		wl_disconnect(xd);
		send_eof(xd);
		return true;
	}
	struct received r = { 0 };
	int err = classify_all(xd, fds, nfds, &r);
	if (err == -EMFILE) {
		xd_fail(xd, err, "compositor fds cannot be carried: fd budget reached");
		return true;
	}
	if (err || truncated) {
		xd_fail(xd, err ? err : -EPROTO, "compositor fds cannot be carried (over %u, or a "
			"pipe or id limit)", CD_MAX_IDENTIFIERS);
		return true;
	}
	write_receive(xd, r.n, r.ids, r.types, r.sizes, data, (uint32_t)n);
	return true;
}

static bool produce_from_pipes(struct host_xd *xd)
{
	struct xd_read_pipe *pipe, *tmp;
	wl_list_for_each_safe(pipe, tmp, &xd->read_pipes, link) {
		if (!pipe_may_have_data(pipe))
			continue;
		pipe->ready = false;
		uint8_t buf[CD_MAX_RW_DATA];
		ssize_t n = read(pipe->fd, buf, sizeof(buf));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		bool hang_up = n <= 0;
		cd_encode_read_write(xd->channel_ring, CD_RING_SIZE, CD_CMD_READ, true, pipe->id,
				     hang_up, buf, hang_up ? 0 : (uint32_t)n);
		// The next turn starts with the other pipes.
		wl_list_remove(&pipe->link);
		wl_list_insert(xd->read_pipes.prev, &pipe->link);
		if (hang_up)
			read_pipe_destroy(pipe);
		complete_poll(xd);
		return true;
	}
	return false;
}

static void produce(struct host_xd *xd)
{
	if (xd->dead || !xd->poll_pending)
		return;
	bool done = xd->prefer_pipes ?
		    produce_from_pipes(xd) || produce_from_compositor(xd) :
		    produce_from_compositor(xd) || produce_from_pipes(xd);
	if (done)
		xd->prefer_pipes = !xd->prefer_pipes;
	// Sources stay armed after an event: the next POLL usually comes before
	// more data, and a source that fires without a POLL disarms itself.
	if (!xd->dead && !done)
		set_armed(xd, true);
}

// Later SENDs drop their bytes and fds at once; the guest hears of the end
// through RECEIVE once the compositor's side is read.
static void wl_write_failed(struct host_xd *xd, int err)
{
	sml_info("%s: ctx %u: compositor stopped taking requests: %s", xd->ctx->conn->name,
		 xd->ctx->id, strerror(-err));
	sml_wqueue_finish(&xd->wl_out);
	settle_wl_out(xd);
	xd->wl_write_dead = true;
}

static void flush_wl(struct host_xd *xd)
{
	int ret = sml_wqueue_flush(&xd->wl_out, xd->wl_fd);
	if (ret < 0)
		wl_write_failed(xd, ret);
	settle_wl_out(xd);
	update_wl_mask(xd);
}

static int on_wl_event(int fd, uint32_t mask, void *data)
{
	struct host_xd *xd = data;
	if (mask & WL_EVENT_WRITABLE)
		flush_wl(xd);
	if (!(mask & (WL_EVENT_READABLE | WL_EVENT_HANGUP | WL_EVENT_ERROR)))
		return 0;
	xd->wl_ready = true;
	if (xd->poll_pending) {
		produce(xd);
	} else if (mask & (WL_EVENT_HANGUP | WL_EVENT_ERROR)) {
		// epoll reports a hang-up whatever the mask: stop watching and
		// read what is left (a protocol error, say) at the next POLL.
		wl_event_source_remove(xd->wl_source);
		xd->wl_source = NULL;
	} else {
		set_armed(xd, false);
	}
	return 0;
}

static int on_read_pipe_event(int fd, uint32_t mask, void *data)
{
	struct xd_read_pipe *pipe = data;
	struct host_xd *xd = pipe->xd;
	pipe->ready = true;
	if (xd->poll_pending) {
		produce(xd);
	} else if (mask & (WL_EVENT_HANGUP | WL_EVENT_ERROR)) {
		wl_event_source_remove(pipe->source);
		pipe->source = NULL;
	} else {
		set_armed(xd, false);
	}
	return 0;
}

// ---- commands from the guest --------------------------------------------

// A compositor whose listen backlog is full (a burst of clients, a stall)
// answers a non-blocking connect with EAGAIN: that is no reason to tell the
// guest it is gone. Retried for a while; the guest's requests wait in wl_out.
#define CONNECT_RETRY_MS 10
#define CONNECT_TIMEOUT_MS 5000

static void connect_compositor(struct host_xd *xd);

static int on_connect_retry(void *data)
{
	connect_compositor(data);
	return 0;
}

// Connects to path; a non-blocking socket, or -1 with errno set.
static int open_compositor(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		sml_close(&fd);
	return fd;
}

static bool retry_connect_later(struct host_xd *xd)
{
	if (errno != EAGAIN || xd->connect_waited_ms >= CONNECT_TIMEOUT_MS)
		return false;
	if (!xd->connect_retry)
		xd->connect_retry = wl_event_loop_add_timer(xd->ctx->conn->loop,
							    on_connect_retry, xd);
	if (!xd->connect_retry)
		return false;
	xd->connect_waited_ms += CONNECT_RETRY_MS;
	wl_event_source_timer_update(xd->connect_retry, CONNECT_RETRY_MS);
	return true;
}

static void connect_compositor(struct host_xd *xd)
{
	const char *path = xd->ctx->conn->config->display;
	int fd = open_compositor(path);
	if (fd < 0 && retry_connect_later(xd))
		return;
	if (xd->connect_retry) // safe inside its own callback: removal is deferred
		wl_event_source_remove(xd->connect_retry);
	xd->connect_retry = NULL;
	if (fd >= 0)
		xd->wl_source = wl_event_loop_add_fd(xd->ctx->conn->loop, fd, 0, on_wl_event, xd);
	if (xd->wl_source) {
		xd->wl_fd = fd;
		flush_wl(xd); // what the guest sent while we waited
		produce(xd);
		return;
	}
	sml_log_errno(SML_LOG_WARN, "%s: ctx %u: cannot connect to the compositor at %s; "
		      "the guest will see it as gone", xd->ctx->conn->name, xd->ctx->id, path);
	sml_close(&fd);
	wl_disconnect(xd);
	xd->eof_pending = true;
	produce(xd);
}

static uint8_t *map_ring(struct host_xd *xd, uint32_t handle)
{
	struct host_resource *res = host_ctx_resource(xd->ctx, handle);
	return res ? host_resource_map(res, CD_RING_SIZE) : NULL;
}

static int run_init(struct host_xd *xd, const struct cd_command *cmd)
{
	const struct cd_init *init = &cmd->u.init;
	if (xd->initialized)
		return xd_fail(xd, -EINVAL, "second INIT");
	if (init->channel_type != CD_CHANNEL_WAYLAND)
		return xd_fail(xd, -EOPNOTSUPP, "channel type %u is not offered (only Wayland)",
			       init->channel_type);
	xd->query_ring = map_ring(xd, init->query_ring_id);
	xd->channel_ring = cmd->legacy_init ? xd->query_ring :
			   map_ring(xd, init->channel_ring_id);
	if (!xd->query_ring || !xd->channel_ring)
		return xd_fail(xd, -EINVAL, "ring %u or %u is not a mappable resource of this "
			       "context of at least one page", init->query_ring_id,
			       init->channel_ring_id);
	xd->initialized = true;
	if (!host_conn_take_fds(xd->ctx->conn, 2))
		return xd_fail(xd, -EMFILE, "fd budget reached: no room for a compositor "
			       "connection");
	xd->wl_charged = true;
	connect_compositor(xd);
	return 0;
}

static struct xd_item *find_item(struct wl_list *list, uint32_t id)
{
	struct xd_item *item;
	wl_list_for_each(item, list, link)
		if (item->id == id)
			return item;
	return NULL;
}

static struct xd_item *find_image(struct host_xd *xd, const uint32_t key[4])
{
	struct xd_item *item;
	wl_list_for_each(item, &xd->images, link)
		if (memcmp(item->key, key, sizeof(item->key)) == 0)
			return item;
	return NULL;
}

// Unsupported images are answered with size 0 rather than by ending the
// context: the guest can fall back, and the spec has no error reply.
static int run_image_requirements(struct host_xd *xd, const struct cd_command *cmd)
{
	const struct cd_get_image_requirements *g = &cmd->u.gir;
	const uint32_t key[4] = { g->width, g->height, g->drm_format, g->flags };
	struct cd_image_requirements reqs = { 0 };
	int err = host_image_requirements(g->width, g->height, g->drm_format, &reqs);
	struct xd_item *item = err ? NULL : find_image(xd, key);
	if (item) { // the most recently used last: the first to go is the oldest
		wl_list_remove(&item->link);
		wl_list_insert(xd->images.prev, &item->link);
	}
	if (!err && !item && (item = item_add(xd, ITEM_IMAGE, -1))) {
		memcpy(item->key, key, sizeof(key));
		item->size = reqs.size;
	}
	if (item) {
		reqs.blob_id = item->id;
	} else {
		sml_warn("%s: ctx %u: no image for %ux%u format %#x flags %#x: %s",
			 xd->ctx->conn->name, xd->ctx->id, g->width, g->height, g->drm_format,
			 g->flags, err ? strerror(-err) : "too many image ids");
		memset(&reqs, 0, sizeof(reqs));
	}
	memcpy(xd->query_ring, &reqs, sizeof(reqs));
	return 0;
}

static int run_poll(struct host_xd *xd, uint32_t seq)
{
	if (xd->poll_pending)
		return xd_fail(xd, -EINVAL, "POLL while another POLL is outstanding");
	xd->poll_pending = true;
	xd->poll_seq = seq;
	produce(xd);
	return 1;
}

static int new_read_pipe(struct host_xd *xd, uint32_t id, int *write_end)
{
	if (id != xd->last_read_pipe_id + 1)
		return xd_fail(xd, -EPROTO, "read pipe id %#x, expected %#x", id,
			       xd->last_read_pipe_id + 1);
	struct xd_read_pipe *pipe = calloc(1, sizeof(*pipe));
	int fds[2] = { -1, -1 };
	int err = pipe ? host_ctx_pipe_acquire(xd->ctx, 2) : -ENOSPC;
	if (err) {
		free(pipe);
		return xd_fail(xd, err, "%sno room for another pipe",
			       err == -EMFILE ? "fd budget reached: " : "");
	}
	if (pipe2(fds, O_CLOEXEC) < 0 || !sml_fd_set_nonblock(fds[0]) ||
	    !(pipe->source = wl_event_loop_add_fd(xd->ctx->conn->loop, fds[0],
						  xd->armed ? WL_EVENT_READABLE : 0,
						  on_read_pipe_event, pipe))) {
		err = -errno;
		sml_close(&fds[0]);
		sml_close(&fds[1]);
		host_ctx_pipe_release(xd->ctx, 2);
		free(pipe);
		return xd_fail(xd, err, "cannot create a pipe");
	}
	pipe->id = id;
	pipe->fd = fds[0];
	pipe->xd = xd;
	pipe->armed = xd->armed;
	wl_list_insert(xd->read_pipes.prev, &pipe->link);
	xd->last_read_pipe_id = id;
	*write_end = fds[1];
	return 0;
}

static int send_identifier(struct host_xd *xd, uint32_t type, uint32_t id, int *fd)
{
	if (type == CD_ID_READ_PIPE)
		return new_read_pipe(xd, id, fd);
	if (type != CD_ID_VIRTGPU_BLOB)
		return xd_fail(xd, -EPROTO, "identifier type %u cannot be sent", type);
	struct host_resource *res = host_ctx_resource(xd->ctx, id);
	if (!res || res->fd < 0)
		return xd_fail(xd, -EPROTO, "SEND names resource %u, not a blob of this context",
			       id);
	*fd = fcntl(res->fd, F_DUPFD_CLOEXEC, 0);
	return *fd < 0 ? xd_fail(xd, -errno, "cannot duplicate an fd") : 0;
}

// The fds of one SEND stay on the fd budget until wl_out has sent them.
static int collect_identifiers(struct host_xd *xd, const struct cd_send_receive *sr, int *fds)
{
	if (!host_conn_take_fds(xd->ctx->conn, sr->num_identifiers))
		return xd_fail(xd, -EMFILE, "fd budget reached: cannot pass %u fds",
			       sr->num_identifiers);
	xd->wl_out_charged += sr->num_identifiers;
	for (uint32_t n = 0; n < sr->num_identifiers; n++) {
		int err = send_identifier(xd, sr->identifier_types[n], sr->identifiers[n], &fds[n]);
		if (err) {
			while (n)
				close(fds[--n]);
			settle_wl_out(xd);
			return err;
		}
	}
	return 0;
}

static int run_send(struct host_xd *xd, const struct cd_command *cmd)
{
	const struct cd_send_receive *sr = &cmd->u.sr;
	int fds[CD_MAX_IDENTIFIERS];
	uint32_t nfds = sr->num_identifiers;
	if (nfds && !cmd->data_size)
		return xd_fail(xd, -EPROTO, "SEND of identifiers without a message");
	int ret = collect_identifiers(xd, sr, fds);
	if (ret < 0)
		return ret;
	if (xd->connect_retry)
		ret = sml_wqueue_push(&xd->wl_out, cmd->data, cmd->data_size, fds, nfds);
	else if (xd->wl_fd >= 0 && !xd->wl_write_dead)
		ret = sml_wqueue_send(&xd->wl_out, xd->wl_fd, cmd->data, cmd->data_size, fds, nfds);
	else // the guest hears of the end through RECEIVE
		while (nfds)
			close(fds[--nfds]);
	settle_wl_out(xd);
	if (ret == -ENOBUFS)
		return xd_fail(xd, -ENOBUFS, "the compositor is not %s (%zu bytes queued)",
			       xd->connect_retry ? "accepting" : "reading", xd->wl_out.len);
	if (ret < 0)
		wl_write_failed(xd, ret);
	update_wl_mask(xd);
	return 0;
}

static void write_pipe_flush(struct xd_item *item);

static int on_write_pipe_event(int fd, uint32_t mask, void *data)
{
	write_pipe_flush(data);
	return 0;
}

// Flushes a write pipe's backlog; closes it when drained after a hang-up or
// when the reader went away.
static void write_pipe_flush(struct xd_item *item)
{
	int ret = item->out ? sml_wqueue_flush(item->out, item->fd) : 0;
	if (ret < 0 || (ret == 0 && item->hang_up)) {
		item_destroy(item);
		return;
	}
	if (ret == 1 && !item->source)
		item->source = wl_event_loop_add_fd(item->xd->ctx->conn->loop, item->fd,
						    WL_EVENT_WRITABLE, on_write_pipe_event, item);
	if (ret == 0 && item->source) {
		wl_event_source_remove(item->source);
		item->source = NULL;
	}
}

static int run_write(struct host_xd *xd, const struct cd_command *cmd)
{
	struct xd_item *item = find_item(&xd->pipes, cmd->u.rw.identifier);
	if (!item) {
		// The pipe may have closed under the guest (its reader left).
		sml_dbg("WRITE to pipe %u that is gone: dropped", cmd->u.rw.identifier);
		return 0;
	}
	if (item->out && cmd->data_size &&
	    sml_wqueue_push(item->out, cmd->data, cmd->data_size, NULL, 0) < 0)
		return xd_fail(xd, -ENOBUFS, "the reader of pipe %u is not reading", item->id);
	item->hang_up = cmd->u.rw.hang_up != 0;
	write_pipe_flush(item);
	return 0;
}

int host_xd_create_blob(struct host_xd *xd, uint64_t blob_id, uint64_t size, int *fd_out)
{
	struct xd_item *item = NULL;
	if (blob_id <= UINT32_MAX && !(item = find_item(&xd->blobs, (uint32_t)blob_id)))
		item = find_item(&xd->images, (uint32_t)blob_id);
	if (!item)
		return -ENOENT;
	if (item->kind == ITEM_BLOB) {
		if (size > sml_page_round_up(item->size))
			return -EINVAL;
		*fd_out = item->fd;
		item->fd = -1;
		item_destroy(item); // a received fd is claimed once
		return 0;
	}
	if (size > item->size)
		return -EINVAL;
	*fd_out = sml_memfd_create("sommelier-image", size);
	return *fd_out < 0 ? -errno : 0;
}

static int run_command(struct host_xd *xd, const struct cd_command *cmd, uint32_t seq)
{
	if (!xd->initialized && cmd->cmd != CD_CMD_INIT)
		return xd_fail(xd, -EPROTO, "command %u before INIT", cmd->cmd);
	switch (cmd->cmd) {
	case CD_CMD_INIT:
		return run_init(xd, cmd);
	case CD_CMD_GET_IMAGE_REQUIREMENTS:
		return run_image_requirements(xd, cmd);
	case CD_CMD_POLL:
		return run_poll(xd, seq);
	case CD_CMD_SEND:
		return run_send(xd, cmd);
	case CD_CMD_WRITE:
		return run_write(xd, cmd);
	}
	return xd_fail(xd, -EPROTO, "command %u is not handled", cmd->cmd);
}

int host_xd_submit(struct host_xd *xd, const uint8_t *cmds, size_t size, uint32_t seq)
{
	int pending = 0;
	for (size_t off = 0; off < size && !xd->dead;) {
		struct cd_command cmd;
		enum cd_error err = cd_decode_command(cmds + off, size - off, off, &cmd);
		if (err != CD_OK)
			return xd_fail(xd, -EPROTO, "bad command at byte %zu: %s", off,
				       cd_strerror(err));
		int ret = run_command(xd, &cmd, seq);
		if (ret < 0)
			return ret;
		pending |= ret;
		off += cmd.size;
	}
	return xd->dead ? -ENODEV : pending;
}
