// SPDX-License-Identifier: MIT
// One open of the emulated node: a socket-device connection to
// sommelier-host, a reader thread, and the pipe the program polls.
//
// The reader thread owns the receiving side: it routes replies to the
// waiting ioctls by seq (one condition variable per open) and turns each
// EVENT_FENCE into one struct drm_event written into the pipe, so the fd
// the program holds is readable exactly while events are pending, as a DRM
// fd is. The host only sends EVENT_FENCE for rings of the poll mask, which
// is the kernel's rule for fence events too.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <drm.h>

#include "emul.h"
#include "fdpass.h"
#include "util.h"
#include "virtgpu_uapi.h"

#define IN_CAP (2 * SDEV_MAX_MSG_SIZE)

void emul_dev_ref(struct emul_dev *d)
{
	atomic_fetch_add(&d->refs, 1);
}

static void dev_destroy(struct emul_dev *d)
{
	atomic_store(&d->closing, true);
	if (d->thread_started) {
		// Wakes the reader (EOF), which then ends; nothing else can be
		// waiting, since every ioctl holds a reference.
		shutdown(d->sock, SHUT_RDWR);
		pthread_join(d->thread, NULL);
	}
	if (d->sock >= 0)
		emul_real.close(d->sock);
	if (d->event_wr >= 0)
		emul_real.close(d->event_wr);
	for (size_t i = 0; i < d->in_nfds; i++)
		emul_real.close(d->in_fds[i]);
	emul_objs_free(d);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->send_lock);
	free(d->in);
	free(d->send_buf);
	free(d);
}

void emul_dev_unref(struct emul_dev *d)
{
	if (atomic_fetch_sub(&d->refs, 1) == 1)
		dev_destroy(d);
}

// ---- sending ------------------------------------------------------------------

static uint32_t ctx_of(uint16_t type)
{
	return type == SDEV_HELLO || type == SDEV_GET_CAPS ? 0 : EMUL_CTX_ID;
}

// Requests that answer only on failure unless asked to (section 5).
static bool on_demand(uint16_t type)
{
	return type == SDEV_CONTEXT_INIT || type == SDEV_CONTEXT_DESTROY ||
	       type == SDEV_RESOURCE_DESTROY || type == SDEV_EXECBUFFER;
}

static int send_all(int sock, const uint8_t *buf, size_t len, const int *fds, uint8_t nfds)
{
	ssize_t n = sml_send_fds(sock, buf, len, fds, nfds, 0);
	size_t done = n > 0 ? (size_t)n : 0;
	// The fds went with the first byte; a short write continues without them.
	while (n >= 0 && done < len) {
		n = send(sock, buf + done, len - done, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			n = 0;
		done += n > 0 ? (size_t)n : 0;
	}
	return n < 0 ? -ENODEV : 0;
}

static int send_msg(struct emul_dev *d, uint16_t type, uint8_t flags, uint32_t seq,
		    const struct emul_body *body, const int *fds, uint8_t nfds)
{
	pthread_mutex_lock(&d->send_lock);
	struct sdev_writer w;
	sdev_writer_begin(&w, d->send_buf, SDEV_MAX_MSG_SIZE, type, flags, seq, ctx_of(type),
			  nfds);
	for (int i = 0; body && i < 3; i++)
		if (body->size[i])
			sdev_writer_put(&w, body->part[i], body->size[i]);
	size_t len = sdev_writer_end(&w);
	// Callers bound their sizes first; an overflow here is a bug, not input.
	int err = len ? send_all(d->sock, d->send_buf, len, fds, nfds) : -EINVAL;
	pthread_mutex_unlock(&d->send_lock);
	return err;
}

static void waiter_unlink(struct emul_dev *d, struct emul_waiter *w)
{
	for (struct emul_waiter **p = &d->waiters; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			return;
		}
	}
}

static int wait_done(struct emul_dev *d, struct emul_waiter *w, int timeout_ms)
{
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	int rc = 0;
	while (!w->done && !d->dead && rc != ETIMEDOUT) {
		if (timeout_ms < 0)
			pthread_cond_wait(&d->cond, &d->lock);
		else
			rc = pthread_cond_timedwait(&d->cond, &d->lock, &deadline);
	}
	if (w->done)
		return w->error;
	waiter_unlink(d, w); // a late reply finds no one and is dropped
	return d->dead ? -ENODEV : -ETIMEDOUT;
}

int emul_request(struct emul_dev *d, uint16_t type, const struct emul_body *body,
		 const int *fds, uint8_t nfds, struct emul_waiter *w, int timeout_ms)
{
	w->done = false;
	w->error = 0;
	w->fd = -1;
	w->caps_len = 0;
	pthread_mutex_lock(&d->lock);
	if (d->dead) {
		pthread_mutex_unlock(&d->lock);
		return -ENODEV;
	}
	// Registered before sending: the reply may come back before we wait.
	w->seq = d->next_seq++;
	w->next = d->waiters;
	d->waiters = w;
	pthread_mutex_unlock(&d->lock);

	int err = send_msg(d, type, on_demand(type) ? SDEV_FLAG_REPLY : 0, w->seq, body, fds,
			   nfds);
	pthread_mutex_lock(&d->lock);
	if (err)
		waiter_unlink(d, w);
	else
		err = wait_done(d, w, timeout_ms);
	pthread_mutex_unlock(&d->lock);
	return err;
}

int emul_post(struct emul_dev *d, uint16_t type, const struct emul_body *body)
{
	pthread_mutex_lock(&d->lock);
	bool dead = d->dead;
	uint32_t seq = d->next_seq++;
	pthread_mutex_unlock(&d->lock);
	return dead ? -ENODEV : send_msg(d, type, 0, seq, body, NULL, 0);
}

// ---- receiving (reader thread) ------------------------------------------------

// Writes pending fence events while the pipe takes them; the rest waits for
// POLLOUT. One 8-byte write per event: below PIPE_BUF, so never torn.
static void flush_events(struct emul_dev *d)
{
	static const struct drm_event ev = {
		.type = VGPU_UAPI_EVENT_FENCE_SIGNALED, .length = sizeof(struct drm_event),
	};
	while (d->events_pending) {
		ssize_t n = write(d->event_wr, &ev, sizeof(ev));
		if (n == (ssize_t)sizeof(ev)) {
			d->events_pending--;
		} else if (n < 0 && errno == EPIPE) {
			d->events_pending = 0; // every fd of this open is closed: no reader
		} else if (!(n < 0 && errno == EINTR)) {
			return; // full
		}
	}
}

static const char *type_name(uint16_t type)
{
	static const char *const names[] = {
		[SDEV_HELLO] = "HELLO", [SDEV_GET_CAPS] = "GET_CAPS",
		[SDEV_CONTEXT_INIT] = "CONTEXT_INIT", [SDEV_CONTEXT_DESTROY] = "CONTEXT_DESTROY",
		[SDEV_RESOURCE_CREATE_BLOB] = "RESOURCE_CREATE_BLOB",
		[SDEV_RESOURCE_DESTROY] = "RESOURCE_DESTROY", [SDEV_EXECBUFFER] = "EXECBUFFER",
		[SDEV_WAIT] = "WAIT", [SDEV_RESOURCE_INFO] = "RESOURCE_INFO",
	};
	return type < SML_ARRAY_LEN(names) && names[type] ? names[type] : "request";
}

static void fill_waiter(struct emul_waiter *w, const struct sdev_msg *msg, int *fds)
{
	w->type = msg->hdr.type;
	switch (msg->hdr.type) {
	case SDEV_REPLY_ERROR:
		w->error = msg->u.error.error < 0 ? msg->u.error.error : -EPROTO;
		break;
	case SDEV_REPLY_HELLO:
		w->hello = msg->u.hello;
		break;
	case SDEV_REPLY_RESOURCE:
		w->res = msg->u.resource;
		if (msg->hdr.num_fds) {
			w->fd = fds[0];
			fds[0] = -1;
		}
		break;
	case SDEV_REPLY_CAPS:
		w->caps_len = msg->payload_size;
		if (w->caps)
			memcpy(w->caps, msg->payload, SML_MIN(msg->payload_size, w->caps_cap));
		break;
	}
	w->done = true;
}

static void deliver_reply(struct emul_dev *d, const struct sdev_msg *msg, int *fds)
{
	pthread_mutex_lock(&d->lock);
	struct emul_waiter *w = d->waiters;
	while (w && w->seq != msg->hdr.seq)
		w = w->next;
	if (w) {
		waiter_unlink(d, w);
		fill_waiter(w, msg, fds);
		pthread_cond_broadcast(&d->cond);
	}
	pthread_mutex_unlock(&d->lock);
	// Nobody waits for posted requests (EXECBUFFER, RESOURCE_DESTROY): like a
	// kernel, which never hears how the host fared, the error is only logged.
	if (!w && msg->hdr.type == SDEV_REPLY_ERROR)
		emul_log("host rejected %s (seq %u): %d %.*s", type_name(msg->u.error.request_type),
			 msg->hdr.seq, msg->u.error.error, (int)msg->payload_size,
			 (const char *)msg->payload);
}

static void dispatch(struct emul_dev *d, const struct sdev_msg *msg, int *fds)
{
	switch (msg->hdr.type) {
	case SDEV_EVENT_FENCE:
		d->events_pending++;
		flush_events(d);
		break;
	case SDEV_EVENT_CONTEXT_LOST:
		emul_log("host lost the context: %d %.*s", msg->u.error.error,
			 (int)msg->payload_size, (const char *)msg->payload);
		pthread_mutex_lock(&d->lock);
		d->context_lost = true;
		pthread_mutex_unlock(&d->lock);
		break;
	default:
		deliver_reply(d, msg, fds);
	}
	for (uint8_t i = 0; i < msg->hdr.num_fds; i++)
		if (fds[i] >= 0)
			emul_real.close(fds[i]);
}

// Handles every complete message in the input buffer; false when the
// stream can no longer be trusted.
static bool process_input(struct emul_dev *d)
{
	for (;;) {
		struct sdev_msg msg;
		enum sdev_error e = sdev_decode(d->in, d->in_len, false, &msg);
		if (e == SDEV_ERR_NEED_MORE)
			return true;
		if (e != SDEV_OK) {
			emul_log("malformed message from the host: %s", sdev_strerror(e));
			return false;
		}
		if (msg.hdr.num_fds > d->in_nfds) {
			emul_log("host message without its fds");
			return false;
		}
		int fds[SDEV_MAX_FDS];
		memcpy(fds, d->in_fds, msg.hdr.num_fds * sizeof(int));
		d->in_nfds -= msg.hdr.num_fds;
		memmove(d->in_fds, d->in_fds + msg.hdr.num_fds, d->in_nfds * sizeof(int));
		dispatch(d, &msg, fds);
		memmove(d->in, d->in + msg.hdr.size, d->in_len - msg.hdr.size);
		d->in_len -= msg.hdr.size;
	}
}

static bool read_host(struct emul_dev *d)
{
	int fds[32];
	size_t nfds = 0;
	bool truncated = false;
	ssize_t n = sml_recv_fds(d->sock, d->in + d->in_len, IN_CAP - d->in_len, fds,
				 SML_ARRAY_LEN(fds), &nfds, &truncated, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return true;
	bool room = d->in_nfds + nfds <= SML_ARRAY_LEN(d->in_fds);
	for (size_t i = 0; i < nfds; i++) {
		if (room)
			d->in_fds[d->in_nfds++] = fds[i];
		else
			emul_real.close(fds[i]);
	}
	if (n <= 0 || truncated || !room)
		return false;
	d->in_len += (size_t)n;
	return process_input(d);
}

static void host_gone(struct emul_dev *d)
{
	pthread_mutex_lock(&d->lock);
	d->dead = true;
	for (struct emul_waiter *w = d->waiters; w; w = w->next) {
		w->error = -ENODEV;
		w->done = true;
	}
	d->waiters = NULL;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void *reader_main(void *arg)
{
	struct emul_dev *d = arg;
	for (;;) {
		// The pipe only while events wait for room: once the program has
		// closed its end, the pipe reports POLLERR for ever.
		struct pollfd p[2] = {
			{ .fd = d->sock, .events = POLLIN },
			{ .fd = d->events_pending ? d->event_wr : -1, .events = POLLOUT },
		};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			flush_events(d);
		if (p[0].revents && !read_host(d))
			break;
	}
	// When the program closes the node this is the shutdown; otherwise the
	// host went away (the kernel has no such case: ioctls now get ENODEV).
	if (!atomic_load(&d->closing))
		emul_log("connection to sommelier-host lost");
	host_gone(d);
	return NULL;
}

// ---- opening --------------------------------------------------------------------

static int connect_host(struct emul_dev *d, const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(addr.sun_path)) {
		emul_log("%s=%s: path too long", EMUL_ENV_SOCKET, path);
		return -ENODEV;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	d->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (d->sock < 0)
		return -errno;
	if (connect(d->sock, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		// The node exists only while the host is there: no device.
		emul_log("cannot reach sommelier-host at %s: %s", path, strerror(errno));
		return -ENODEV;
	}
	return 0;
}

// The program's end follows its open flags (O_NONBLOCK, O_CLOEXEC); ours
// never blocks the reader.
static int make_event_pipe(struct emul_dev *d, int open_flags)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	d->event_rd = p[0];
	d->event_wr = p[1];
	struct stat st;
	if (emul_real.fstat(p[0], &st) < 0)
		return -errno;
	d->event_dev = st.st_dev;
	d->event_ino = st.st_ino;
	if (!(open_flags & O_CLOEXEC))
		emul_real.fcntl(p[0], F_SETFD, 0);
	if (open_flags & O_NONBLOCK)
		emul_real.fcntl(p[0], F_SETFL, O_NONBLOCK);
	emul_real.fcntl(p[1], F_SETFL, O_NONBLOCK);
	return 0;
}

// The reader blocks every signal: a program that takes its signals with
// sigwait or signalfd must never have one land on a thread it did not make.
static int start_reader(struct emul_dev *d)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int err = pthread_create(&d->thread, NULL, reader_main, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	d->thread_started = err == 0;
	return -err;
}

static int hello(struct emul_dev *d)
{
	struct sdev_hello body = {
		.magic = SDEV_MAGIC, .version = SDEV_VERSION, .features = SDEV_FEATURE_FD_PASSING,
	};
	struct emul_waiter w = { 0 };
	int err = emul_request(d, SDEV_HELLO, &(struct emul_body){ { &body }, { sizeof(body) } },
			       NULL, 0, &w, -1);
	if (err == 0 && (w.type != SDEV_REPLY_HELLO || w.hello.magic != SDEV_MAGIC))
		err = -EPROTO;
	else if (err == 0 && !(w.hello.features & SDEV_FEATURE_FD_PASSING))
		err = -EOPNOTSUPP; // blob memory is shared as fds; there is no other way here
	if (err)
		emul_log("handshake with sommelier-host failed: %s", strerror(-err));
	return err ? -ENODEV : 0;
}

static struct emul_dev *dev_alloc(void)
{
	struct emul_dev *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->in = malloc(IN_CAP);
	d->send_buf = malloc(SDEV_MAX_MSG_SIZE);
	if (!d->in || !d->send_buf) {
		free(d->in);
		free(d->send_buf);
		free(d);
		return NULL;
	}
	atomic_init(&d->refs, 1);
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->send_lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cond, &attr);
	pthread_condattr_destroy(&attr);
	d->sock = d->event_rd = d->event_wr = -1;
	d->next_seq = 1;
	// Where the kernel's fake mmap offsets begin (DRM_FILE_PAGE_OFFSET_START).
	d->next_offset = 1ull << 32;
	return d;
}

int emul_dev_open(const char *sock_path, int open_flags, struct emul_dev **out)
{
	struct emul_dev *d = dev_alloc();
	if (!d)
		return -ENOMEM;
	int err = connect_host(d, sock_path);
	if (!err)
		err = make_event_pipe(d, open_flags);
	if (!err)
		err = start_reader(d);
	if (!err)
		err = hello(d);
	if (err) {
		if (d->event_rd >= 0)
			emul_real.close(d->event_rd); // not handed out: ours to close
		emul_dev_unref(d);
		return err;
	}
	*out = d;
	return 0;
}
