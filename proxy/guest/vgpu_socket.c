// SPDX-License-Identifier: MIT
// The socket-device backend of vgpu: the virtgpu operations a cross-domain
// guest uses, carried as socket-device messages (doc/socket-device.md) over
// a Unix stream socket to sommelier-host. One connection holds one context
// (ctx_id 1), as one DRM fd holds one context on a VM.
//
// Blocking: the ioctls this replaces block, and so do the operations here
// that need an answer (bounded by VGPU_TIMEOUT_MS). Writes go through a
// bounded, non-blocking queue; since vgpu has no "writable" hook for the
// caller's event loop, every operation leaves the queue empty before it
// returns, waiting (poll, bounded by VGPU_TIMEOUT_MS) for the socket to take
// the rest when it is full. The peer is a local daemon that never blocks on
// its own output (it queues), so such waits are short; if one times out the
// device is declared dead. While waiting we keep reading, so a host that
// waits for us to read before it reads again cannot deadlock with us.
//
// Events that arrive while an operation waits (fences, context loss, late
// error replies) are decoded and remembered: read_events reports them later.
// The socket may then no longer be readable although a fence is pending, so
// the caller calls read_events after every operation that may wait (the
// channel does).
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdpass.h"
#include "log.h"
#include "socket_device.h"
#include "util.h"
#include "vgpu.h"
#include "wqueue.h"

#define SOCK_CTX_ID 1u
// Bytes queued towards the host before the device counts as dead. Every
// operation drains the queue, so this only bounds one operation's message.
#define SOCK_QUEUE_LIMIT (8u << 20)
// Descriptors received but not yet claimed by a complete message.
#define SOCK_IN_FDS 64u
// recvmsg calls per read_events, so that a flood cannot starve the caller's
// loop (the socket stays readable and the loop comes back).
#define SOCK_READS_PER_CALL 16
#define SOCK_MAX_CAPS 1024u

// The answer to the request an operation waits for.
struct sock_reply {
	uint32_t seq;
	bool done;
	uint16_t type;
	int error; // REPLY_ERROR's negative errno
	struct sdev_reply_resource resource;
	int fd; // REPLY_RESOURCE of a HOST3D blob; -1 otherwise
	struct sdev_hello hello;
	uint32_t capset_id;
	uint32_t caps_size;
	uint8_t caps[SOCK_MAX_CAPS]; // last: sock_call clears what comes before
};

struct sock_ring {
	uint32_t res;
	void *map;
	size_t size;
};

struct vgpu_socket {
	struct vgpu_dev base;
	int fd;
	uint32_t last_seq;
	int dead; // 0, or the negative errno every later call returns
	uint64_t signalled; // rings with fences not yet reported
	struct sml_wqueue out;
	uint8_t *in; // SDEV_MAX_MSG_SIZE bytes of partial input
	size_t in_len;
	bool read_filled; // the last read filled `in`: more may be waiting
	int in_fds[SOCK_IN_FDS];
	size_t in_nfds;
	struct sock_reply *waiting; // NULL unless an operation waits
	struct sock_ring *rings;
	size_t nrings;
	uint8_t msg[SDEV_MAX_MSG_SIZE]; // encoding buffer
};

static struct vgpu_socket *to_sock(struct vgpu_dev *dev)
{
	return (struct vgpu_socket *)dev;
}

// Marks the device dead (the first reason wins) and returns the error.
static int sock_die(struct vgpu_socket *s, int err, const char *why)
{
	if (!s->dead) {
		sml_warn("socket device: %s (%s)", why, strerror(-err));
		s->dead = err;
	}
	return s->dead;
}

static uint32_t sock_next_seq(struct vgpu_socket *s)
{
	if (++s->last_seq == 0) // seq 0 is what CONTEXT_LOST carries
		s->last_seq = 1;
	return s->last_seq;
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = sml_now_ns();
	return now >= deadline ? 0 : (int)((deadline - now + 999999u) / 1000000u);
}

// ---- input -----------------------------------------------------------------

static void close_fds(const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

static void log_host_error(const struct sdev_msg *msg, const char *what)
{
	int len = (int)SML_MIN(msg->payload_size, (uint32_t)SDEV_MAX_REASON);
	sml_info("socket device: %s (request type %u, seq %u): %s: %.*s", what,
		 msg->u.error.request_type, msg->hdr.seq, strerror(-msg->u.error.error), len,
		 (const char *)msg->payload);
}

static bool is_reply(uint16_t type)
{
	return type >= SDEV_REPLY_HELLO && type <= SDEV_REPLY_ERROR;
}

// Fills the reply an operation waits for; takes the fd of REPLY_RESOURCE.
static void sock_fill_reply(struct sock_reply *r, const struct sdev_msg *msg, int *fds)
{
	r->done = true;
	r->type = msg->hdr.type;
	switch (msg->hdr.type) {
	case SDEV_REPLY_ERROR:
		r->error = msg->u.error.error < 0 ? msg->u.error.error : -EPROTO;
		sml_dbg("socket device: request seq %u failed: %s: %.*s", msg->hdr.seq,
			strerror(-r->error), (int)msg->payload_size, (const char *)msg->payload);
		break;
	case SDEV_REPLY_RESOURCE:
		r->resource = msg->u.resource;
		if (msg->hdr.num_fds == 1) {
			r->fd = fds[0];
			fds[0] = -1;
		}
		break;
	case SDEV_REPLY_HELLO:
		r->hello = msg->u.hello;
		break;
	case SDEV_REPLY_CAPS:
		r->capset_id = msg->u.caps.capset_id;
		r->caps_size = SML_MIN(msg->payload_size, SOCK_MAX_CAPS);
		memcpy(r->caps, msg->payload, r->caps_size);
		break;
	}
}

static void sock_handle_event(struct vgpu_socket *s, const struct sdev_msg *msg)
{
	if (msg->hdr.type == SDEV_EVENT_FENCE) {
		if (msg->hdr.ctx_id == SOCK_CTX_ID && msg->u.fence.ring_idx < 64)
			s->signalled |= 1ull << msg->u.fence.ring_idx;
		return;
	}
	if (msg->hdr.type == SDEV_EVENT_CONTEXT_LOST && msg->hdr.ctx_id == SOCK_CTX_ID) {
		int len = (int)SML_MIN(msg->payload_size, (uint32_t)SDEV_MAX_REASON);
		sml_warn("socket device: the host ended the context: %.*s", len,
			 (const char *)msg->payload);
		if (!s->dead)
			s->dead = msg->u.error.error < 0 ? msg->u.error.error : -ENODEV;
		return;
	}
	if (msg->hdr.type == SDEV_REPLY_ERROR) {
		// A fire-and-forget request failed. If that ended the context,
		// EVENT_CONTEXT_LOST says so; the error alone changes nothing.
		log_host_error(msg, "a request without reply failed");
		return;
	}
	sml_dbg("socket device: unexpected message type %#x seq %u ignored", msg->hdr.type,
		msg->hdr.seq);
}

static void sock_handle(struct vgpu_socket *s, const struct sdev_msg *msg, int *fds)
{
	struct sock_reply *r = s->waiting;
	if (r && !r->done && is_reply(msg->hdr.type) && msg->hdr.seq == r->seq)
		sock_fill_reply(r, msg, fds);
	else
		sock_handle_event(s, msg);
	for (uint8_t i = 0; i < msg->hdr.num_fds; i++) // the ones nobody took
		if (fds[i] >= 0)
			close(fds[i]);
}

// Decodes and handles every complete message in the input buffer.
static void sock_process(struct vgpu_socket *s)
{
	size_t off = 0;
	while (!s->dead && off < s->in_len) {
		struct sdev_msg msg;
		enum sdev_error err = sdev_decode(s->in + off, s->in_len - off, false, &msg);
		if (err == SDEV_ERR_NEED_MORE)
			break;
		if (err != SDEV_OK) {
			sml_warn("socket device: malformed message from the host: %s",
				 sdev_strerror(err));
			sock_die(s, -EPROTO, "cannot trust the framing any more");
			break;
		}
		int fds[SDEV_MAX_FDS];
		size_t n = msg.hdr.num_fds;
		if (n > s->in_nfds) {
			sock_die(s, -EPROTO, "a message declares fds that did not arrive");
			break;
		}
		memcpy(fds, s->in_fds, n * sizeof(int));
		s->in_nfds -= n;
		memmove(s->in_fds, s->in_fds + n, s->in_nfds * sizeof(int));
		sock_handle(s, &msg, fds);
		off += msg.hdr.size;
	}
	memmove(s->in, s->in + off, s->in_len - off);
	s->in_len -= off;
}

// One recvmsg; returns 1 when something was read, 0 when nothing was there,
// or the (negative) error that killed the device.
static int sock_read_once(struct vgpu_socket *s)
{
	size_t nfds;
	bool truncated;
	size_t room = SDEV_MAX_MSG_SIZE - s->in_len;
	ssize_t n = sml_recv_fds(s->fd, s->in + s->in_len, room,
				 s->in_fds + s->in_nfds, SOCK_IN_FDS - s->in_nfds, &nfds,
				 &truncated, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n > 0)
		s->in_nfds += nfds;
	else
		close_fds(s->in_fds + s->in_nfds, nfds);
	if (n == 0)
		return sock_die(s, -ECONNRESET, "the host closed the connection");
	if (n < 0)
		return sock_die(s, -errno, "cannot read from the host");
	if (truncated)
		return sock_die(s, -EPROTO, "descriptors from the host were lost");
	s->in_len += (size_t)n;
	s->read_filled = (size_t)n == room;
	sock_process(s);
	return s->dead ? s->dead : 1;
}

// ---- output and waiting ----------------------------------------------------

static int sock_flush(struct vgpu_socket *s)
{
	int ret = sml_wqueue_flush(&s->out, s->fd);
	return ret < 0 ? sock_die(s, ret, "cannot write to the host") : ret;
}

// Runs the socket until `r` is answered (or, with r NULL, until the output
// queue is empty), reading everything that arrives meanwhile.
static int sock_pump(struct vgpu_socket *s, struct sock_reply *r)
{
	uint64_t deadline = sml_now_ns() + (uint64_t)VGPU_TIMEOUT_MS * 1000000u;
	s->waiting = r;
	int ret = 0;
	for (;;) {
		if (s->dead || (ret = sock_flush(s)) < 0)
			break;
		if (r ? r->done : ret == 0)
			break;
		struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
		if (ret == 1)
			pfd.events |= POLLOUT;
		int timeout = remaining_ms(deadline);
		int n = poll(&pfd, 1, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			sock_die(s, -errno, "poll failed");
			break;
		}
		if (n == 0) {
			sock_die(s, -ETIMEDOUT, r ? "no reply from the host in time" :
				 "the host does not take our requests");
			break;
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
			sock_read_once(s);
	}
	s->waiting = NULL;
	return s->dead;
}

// Frames one request and hands it to the queue (which takes `fd`).
static int sock_queue(struct vgpu_socket *s, uint16_t type, uint8_t flags, uint32_t ctx_id,
		      const void *a, size_t a_size, const void *b, size_t b_size,
		      const void *c, size_t c_size, int fd, uint32_t *seq_out)
{
	if (s->dead) {
		sml_close(&fd);
		return s->dead;
	}
	struct sdev_writer w;
	uint32_t seq = sock_next_seq(s);
	sdev_writer_begin(&w, s->msg, sizeof(s->msg), type, flags, seq, ctx_id, fd >= 0);
	sdev_writer_put(&w, a, a_size);
	sdev_writer_put(&w, b, b_size);
	sdev_writer_put(&w, c, c_size);
	size_t len = sdev_writer_end(&w);
	if (len == 0) {
		sml_close(&fd);
		sml_warn("socket device: request type %u does not fit one message", type);
		return -EINVAL;
	}
	int ret = sml_wqueue_send(&s->out, s->fd, s->msg, len, &fd, fd >= 0);
	if (ret == -ENOBUFS)
		return sock_die(s, ret, "the output queue is full");
	if (ret < 0)
		return sock_die(s, ret, "cannot write to the host");
	if (seq_out)
		*seq_out = seq;
	return 0;
}

// A request without an answer: queued, then the queue is drained.
static int sock_post(struct vgpu_socket *s, uint16_t type, const void *a, size_t a_size,
		     const void *b, size_t b_size, const void *c, size_t c_size)
{
	int ret = sock_queue(s, type, 0, SOCK_CTX_ID, a, a_size, b, b_size, c, c_size, -1, NULL);
	return ret < 0 ? ret : sock_pump(s, NULL);
}

// A request and its answer. Returns the transport's or the host's error.
static int sock_call(struct vgpu_socket *s, uint16_t type, uint8_t flags, uint32_t ctx_id,
		     const void *a, size_t a_size, const void *b, size_t b_size, int fd,
		     struct sock_reply *r)
{
	memset(r, 0, offsetof(struct sock_reply, caps));
	r->fd = -1;
	int ret = sock_queue(s, type, flags, ctx_id, a, a_size, b, b_size, NULL, 0, fd, &r->seq);
	if (ret == 0)
		ret = sock_pump(s, r);
	if (ret == 0 && r->type == SDEV_REPLY_ERROR)
		ret = r->error;
	if (ret < 0)
		sml_close(&r->fd);
	return ret;
}

// The reply type a successful request must get, or -EPROTO.
static int sock_expect(struct sock_reply *r, uint16_t type)
{
	if (r->type == type)
		return 0;
	sml_warn("socket device: reply type %#x where %#x was due", r->type, type);
	sml_close(&r->fd);
	return -EPROTO;
}

// ---- operations ------------------------------------------------------------

static void sock_destroy(struct vgpu_dev *dev)
{
	struct vgpu_socket *s = to_sock(dev);
	for (size_t i = 0; i < s->nrings; i++)
		munmap(s->rings[i].map, s->rings[i].size);
	free(s->rings);
	close_fds(s->in_fds, s->in_nfds);
	sml_wqueue_finish(&s->out);
	sml_close(&s->fd);
	free(s->in);
	free(s);
}

static int sock_get_caps(struct vgpu_dev *dev, uint32_t capset_id, void *out, size_t size)
{
	struct vgpu_socket *s = to_sock(dev);
	struct sdev_get_caps req = { .capset_id = capset_id };
	struct sock_reply r;
	int ret = sock_call(s, SDEV_GET_CAPS, 0, 0, &req, sizeof(req), NULL, 0, -1, &r);
	if (ret == 0)
		ret = sock_expect(&r, SDEV_REPLY_CAPS);
	if (ret == 0 && r.capset_id != capset_id)
		ret = -EPROTO;
	if (ret < 0)
		return ret;
	memset(out, 0, size);
	memcpy(out, r.caps, SML_MIN(size, (size_t)r.caps_size));
	return 0;
}

static int sock_context_init(struct vgpu_dev *dev, uint32_t capset_id, uint32_t num_rings,
			     uint64_t poll_mask)
{
	struct vgpu_socket *s = to_sock(dev);
	struct sdev_context_init init = { .num_params = 3 };
	struct sdev_context_param params[3] = {
		{ SDEV_CONTEXT_PARAM_CAPSET_ID, capset_id },
		{ SDEV_CONTEXT_PARAM_NUM_RINGS, num_rings },
		{ SDEV_CONTEXT_PARAM_POLL_RINGS_MASK, poll_mask },
	};
	struct sock_reply r;
	int ret = sock_call(s, SDEV_CONTEXT_INIT, SDEV_FLAG_REPLY, SOCK_CTX_ID, &init,
			    sizeof(init), params, sizeof(params), -1, &r);
	return ret < 0 ? ret : sock_expect(&r, SDEV_REPLY_OK);
}

// Handles are the host's to assign, never 0. One that names a ring would
// make our destroy of that resource unmap the ring under the channel.
// (Blobs sharing a handle only confuse the host about its own resources.)
static bool sock_handle_new(const struct vgpu_socket *s, uint32_t res)
{
	for (size_t i = 0; i < s->nrings; i++)
		if (s->rings[i].res == res)
			return false;
	return res != 0;
}

// CREATE_BLOB; `fd` (or -1) is consumed.
static int sock_create_blob(struct vgpu_socket *s, uint32_t blob_mem, uint64_t blob_id,
			    uint64_t size, int fd, uint32_t *res, int *fd_out)
{
	struct sdev_create_blob req = {
		.blob_mem = blob_mem,
		.blob_flags = SDEV_BLOB_FLAG_USE_MAPPABLE |
			      (blob_mem == SDEV_BLOB_MEM_HOST3D ? SDEV_BLOB_FLAG_USE_SHAREABLE : 0),
		.size = size,
		.blob_id = blob_id,
	};
	struct sock_reply r;
	int ret = sock_call(s, SDEV_RESOURCE_CREATE_BLOB, 0, SOCK_CTX_ID, &req, sizeof(req),
			    NULL, 0, fd, &r);
	if (ret == 0)
		ret = sock_expect(&r, SDEV_REPLY_RESOURCE);
	if (ret == 0 && fd_out && r.fd < 0) {
		sml_warn("socket device: host blob %llu came without its fd",
			 (unsigned long long)blob_id);
		ret = -EPROTO;
	}
	if (ret == 0 && !sock_handle_new(s, r.resource.res_handle))
		ret = sock_die(s, -EPROTO, "the host gave out a resource handle in use");
	if (ret < 0) {
		sml_close(&r.fd);
		return ret;
	}
	*res = r.resource.res_handle;
	if (fd_out)
		*fd_out = r.fd;
	else
		sml_close(&r.fd);
	return 0;
}

static int sock_add_ring(struct vgpu_socket *s, uint32_t res, void *map, size_t size)
{
	struct sock_ring *rings = realloc(s->rings, (s->nrings + 1) * sizeof(*rings));
	if (!rings)
		return -ENOMEM;
	s->rings = rings;
	s->rings[s->nrings++] = (struct sock_ring){ .res = res, .map = map, .size = size };
	return 0;
}

static int sock_create_ring(struct vgpu_dev *dev, size_t size, uint32_t *res, void **map)
{
	struct vgpu_socket *s = to_sock(dev);
	size = sml_page_round_up(size ? size : 1);
	// sml_memfd_create seals against shrinking: the host maps rings and
	// refuses memory that could shrink under its mapping.
	int fd = sml_memfd_create("sommelier-ring", size);
	if (fd < 0)
		return -errno;
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		int err = -errno;
		close(fd);
		return err;
	}
	int ret = sock_create_blob(s, SDEV_BLOB_MEM_GUEST, 0, size, fd, res, NULL);
	if (ret == 0 && (ret = sock_add_ring(s, *res, m, size)) < 0) {
		struct sdev_resource req = { .res_handle = *res };
		sock_post(s, SDEV_RESOURCE_DESTROY, &req, sizeof(req), NULL, 0, NULL, 0);
	}
	if (ret < 0) {
		munmap(m, size);
		return ret;
	}
	*map = m;
	return 0;
}

static int sock_create_guest_blob(struct vgpu_dev *dev, int memfd, uint64_t size,
				  uint32_t *res)
{
	struct vgpu_socket *s = to_sock(dev);
	// The queue closes what it sends; the caller keeps its own fd.
	int fd = fcntl(memfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	return sock_create_blob(s, SDEV_BLOB_MEM_GUEST, 0, size, fd, res, NULL);
}

static int sock_create_host_blob(struct vgpu_dev *dev, uint64_t blob_id, uint64_t size,
				 uint32_t *res, int *fd)
{
	return sock_create_blob(to_sock(dev), SDEV_BLOB_MEM_HOST3D, blob_id, size, -1, res, fd);
}

static void sock_destroy_resource(struct vgpu_dev *dev, uint32_t res)
{
	struct vgpu_socket *s = to_sock(dev);
	for (size_t i = 0; i < s->nrings; i++) {
		if (s->rings[i].res != res)
			continue;
		munmap(s->rings[i].map, s->rings[i].size);
		s->rings[i] = s->rings[--s->nrings];
		break;
	}
	struct sdev_resource req = { .res_handle = res };
	sock_post(s, SDEV_RESOURCE_DESTROY, &req, sizeof(req), NULL, 0, NULL, 0);
}

static int sock_execbuffer(struct vgpu_dev *dev, const void *cmd, size_t size, uint32_t ring,
			   const uint32_t *bos, uint32_t nbos)
{
	struct vgpu_socket *s = to_sock(dev);
	if (size > SDEV_MAX_MSG_SIZE || nbos > SDEV_MAX_BO_HANDLES)
		return -EINVAL;
	struct sdev_execbuffer req = {
		.flags = ring == VGPU_NO_RING ? 0 : SDEV_EXECBUF_RING_IDX,
		.ring_idx = ring == VGPU_NO_RING ? 0 : ring,
		.num_bo_handles = nbos,
		.cmd_size = (uint32_t)size,
	};
	// No REPLY flag: like the ioctl, it returns once submitted. A failure
	// comes back as a late REPLY_ERROR (logged) and, if the host ends the
	// context for it, EVENT_CONTEXT_LOST.
	return sock_post(s, SDEV_EXECBUFFER, &req, sizeof(req), bos, nbos * sizeof(uint32_t),
			 cmd, size);
}

static int sock_wait(struct vgpu_dev *dev, uint32_t res)
{
	struct vgpu_socket *s = to_sock(dev);
	struct sdev_wait req = { .res_handle = res };
	struct sock_reply r;
	int ret = sock_call(s, SDEV_WAIT, 0, SOCK_CTX_ID, &req, sizeof(req), NULL, 0, -1, &r);
	return ret < 0 ? ret : sock_expect(&r, SDEV_REPLY_OK);
}

static int sock_event_fd(struct vgpu_dev *dev)
{
	return to_sock(dev)->fd;
}

static int sock_read_events(struct vgpu_dev *dev, bool readable, uint64_t *signalled)
{
	struct vgpu_socket *s = to_sock(dev);
	*signalled = 0;
	if (!s->dead && !sml_wqueue_empty(&s->out))
		sock_flush(s);
	// A read that left room took all there was (or stopped at a message
	// with fds, and then the socket stays readable): reading again would
	// only cost an EAGAIN per wake-up.
	for (int i = 0; readable && i < SOCK_READS_PER_CALL && !s->dead; i++)
		if (sock_read_once(s) <= 0 || !s->read_filled)
			break;
	// Fences that came before the end are reported first: the ring may
	// hold the compositor's last words.
	if (s->signalled) {
		*signalled = s->signalled;
		s->signalled = 0;
		return 0;
	}
	return s->dead;
}

static const struct vgpu_dev_impl sock_impl = {
	.name = "socket",
	.destroy = sock_destroy,
	.get_caps = sock_get_caps,
	.context_init = sock_context_init,
	.create_ring = sock_create_ring,
	.create_guest_blob = sock_create_guest_blob,
	.create_host_blob = sock_create_host_blob,
	.destroy_resource = sock_destroy_resource,
	.execbuffer = sock_execbuffer,
	.wait = sock_wait,
	.event_fd = sock_event_fd,
	.read_events = sock_read_events,
};

// ---- opening ---------------------------------------------------------------

// A non-blocking connect; AF_UNIX answers EAGAIN when the listener's backlog
// is full, so that is retried until the deadline.
static int sock_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	uint64_t deadline = sml_now_ns() + (uint64_t)VGPU_TIMEOUT_MS * 1000000u;
	while (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int err = errno;
		if (err != EINTR && (err != EAGAIN || remaining_ms(deadline) == 0)) {
			close(fd);
			return -err;
		}
		if (err == EAGAIN)
			usleep(10000);
	}
	return fd;
}

static int sock_hello(struct vgpu_socket *s)
{
	struct sdev_hello hello = {
		.magic = SDEV_MAGIC, .version = SDEV_VERSION, .features = SDEV_FEATURE_FD_PASSING,
	};
	struct sock_reply r;
	int ret = sock_call(s, SDEV_HELLO, 0, 0, &hello, sizeof(hello), NULL, 0, -1, &r);
	if (ret < 0)
		return ret;
	if ((ret = sock_expect(&r, SDEV_REPLY_HELLO)) < 0)
		return ret;
	if (r.hello.version != SDEV_VERSION) {
		sml_warn("socket device: the host speaks version %u, not %u", r.hello.version,
			 SDEV_VERSION);
		return -EPROTO;
	}
	// On a Unix socket memory is shared as fds; without that grant the
	// host cannot see guest memory (the copy transport does not exist yet).
	if (!(r.hello.features & SDEV_FEATURE_FD_PASSING)) {
		sml_warn("socket device: the host does not grant fd passing");
		return -EOPNOTSUPP;
	}
	s->base.guest_memory = true;
	return 0;
}

int vgpu_socket_open(const char *path, struct vgpu_dev **out)
{
	struct vgpu_socket *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base.impl = &sock_impl;
	sml_wqueue_init(&s->out, SOCK_QUEUE_LIMIT);
	s->in = malloc(SDEV_MAX_MSG_SIZE);
	s->fd = s->in ? sock_connect(path) : -ENOMEM;
	if (s->fd < 0) {
		int err = s->fd;
		sml_warn("socket device: cannot connect to %s: %s", path, strerror(-err));
		s->fd = -1;
		sock_destroy(&s->base);
		return err;
	}
	int ret = sock_hello(s);
	if (ret < 0) {
		sml_warn("socket device: handshake with %s failed: %s", path, strerror(-ret));
		sock_destroy(&s->base);
		return ret;
	}
	*out = &s->base;
	return 0;
}
