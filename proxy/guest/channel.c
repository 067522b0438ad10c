// SPDX-License-Identifier: MIT
// A cross-domain Wayland channel (doc/cross-domain.md): libwayland-client
// talks to one end of a socketpair; this file pumps the other end ("the
// pump") through a vgpu device.
//
// Out: what the client writes is read in chunks of at most one SEND; its fds
// become identifiers (memfds -> guest blobs, pipe write ends -> read pipes).
// In: exactly one POLL is outstanding; its fence means the host wrote a
// RECEIVE or READ into the channel ring. RECEIVE bytes and fds go to the
// client through a bounded queue, and the next POLL waits until the client
// has taken most of it, so a client that does not read stops the host from
// reading the compositor instead of growing a queue here.
//
// Nothing here blocks on the client or on pipes. Device operations block
// briefly (vgpu.h: they stand for ioctls). Hosts older than the EOF message
// (an empty RECEIVE) just stop answering the POLL when the compositor hangs
// up: nothing waits for that POLL, so only that client stalls, until
// libwayland-client closes its end.
#include "channel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "closer.h"
#include "cross_domain.h"
#include "fdpass.h"
#include "log.h"
#include "util.h"
#include "vgpu.h"
#include "wqueue.h"

// Most bytes queued towards the client or one pipe reader; past it the
// channel fails (as the host ends a context whose reader does not read).
#define CHANNEL_QUEUE_LIMIT (8u << 20)
// The next POLL waits until less than this is queued towards the client.
#define CHANNEL_CLIENT_HIGH_WATER (64u << 10)
// Client fds waiting for a SEND (see channel_send_chunk).
#define CHANNEL_OUT_FDS_MAX (2u * CD_MAX_IDENTIFIERS)

#define CHANNEL_CLIENT_SNDBUF (4 << 20)

enum out_kind {
	OUT_BLOB, // a guest blob made for this SEND: destroyed once sent
	OUT_IMAGE, // a host blob from guest_channel_alloc_image: its owner keeps it
	OUT_PIPE,
};

// A host blob handed out by guest_channel_alloc_image, recognised by its
// inode when its fd comes back through the client's stream.
struct image_blob {
	dev_t dev;
	ino_t ino;
	uint32_t res;
	struct wl_list link; // guest_channel.images
};

// Answers of GET_IMAGE_REQUIREMENTS, kept because hosts keep their ids.
struct image_reqs {
	uint32_t width, height, format;
	struct cd_image_requirements reqs;
};
#define IMAGE_REQS_CACHE 16u

// A client fd turned into an identifier, waiting for the SEND that names it.
struct out_fd {
	int fd;
	enum out_kind kind;
	uint32_t res; // OUT_BLOB: its guest blob
	uint32_t size; // OUT_BLOB: bytes of the file (informational for the host)
};

// A write end the client sent (wl_data_offer.receive and friends): the host
// fills it with READs.
struct read_pipe {
	struct guest_channel *ch;
	uint32_t id;
	int fd;
	struct sml_wqueue out;
	struct wl_event_source *source; // only while a backlog waits
	bool hang_up; // close once `out` drains
	struct wl_list link; // guest_channel.read_pipes
};

// The read end of a pipe whose write end went to the client for a
// compositor's WRITE_PIPE: what the client writes becomes WRITEs.
struct write_pipe {
	struct guest_channel *ch;
	uint32_t id;
	int fd;
	struct wl_event_source *source;
	struct wl_list link; // guest_channel.write_pipes
};

struct guest_channel {
	struct wl_event_loop *loop;
	struct vgpu_dev *dev;
	const struct guest_channel_listener *listener;
	void *data;
	uint32_t query_res, channel_res;
	const uint8_t *query_ring;
	const uint8_t *channel_ring;
	struct wl_list images; // struct image_blob.link
	struct image_reqs reqs_cache[IMAGE_REQS_CACHE];
	size_t nreqs, next_reqs; // filled slots, next slot to replace

	int pump_fd;
	struct wl_event_source *pump_source;
	uint32_t pump_mask;
	bool reading; // the client's requests are read
	bool client_gone; // libwayland-client's end is closed
	struct sml_wqueue to_client;

	struct wl_event_source *dev_source;
	bool poll_deferred;
	bool poll_outstanding;

	bool closing; // failed or ended: only draining to the client is left
	bool finished; // shut down; `closed` is due or was called
	struct wl_event_source *close_idle;
	char reason[256];

	uint32_t last_read_pipe_id;
	struct out_fd out_fds[CHANNEL_OUT_FDS_MAX];
	size_t nout_fds;
	struct wl_list read_pipes; // struct read_pipe.link
	struct wl_list write_pipes; // struct write_pipe.link
};

static void channel_end_at(struct guest_channel *ch, enum sml_log_level level,
			   const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
// A failure: logged as a warning where it happened.
#define channel_fail(ch, ...) \
	channel_end_at((ch), SML_LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
// An orderly end (the compositor hung up).
#define channel_end(ch, ...) \
	channel_end_at((ch), SML_LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)

static void channel_device_events(struct guest_channel *ch, bool readable);

// ---- pipes ---------------------------------------------------------------

static void read_pipe_destroy(struct read_pipe *p)
{
	if (p->source)
		wl_event_source_remove(p->source);
	sml_wqueue_finish(&p->out);
	close(p->fd);
	wl_list_remove(&p->link);
	free(p);
}

static int on_read_pipe_writable(int fd, uint32_t mask, void *data);

// Writes what the reader takes; closes the pipe once drained after the
// host's hang-up, or at once when the reader went away (EPIPE): what the
// host still sends for it is dropped.
static void read_pipe_flush(struct read_pipe *p)
{
	int ret = sml_wqueue_flush(&p->out, p->fd);
	if (ret < 0)
		sml_dbg("channel: reader of pipe %#x went away (%s); dropping its data", p->id,
			strerror(-ret));
	if (ret < 0 || (ret == 0 && p->hang_up)) {
		read_pipe_destroy(p);
		return;
	}
	if (ret == 1 && !p->source)
		p->source = wl_event_loop_add_fd(p->ch->loop, p->fd, WL_EVENT_WRITABLE,
						 on_read_pipe_writable, p);
	if (ret == 1 && !p->source) {
		channel_fail(p->ch, "cannot watch pipe %#x", p->id);
		return;
	}
	if (ret == 0 && p->source) {
		wl_event_source_remove(p->source);
		p->source = NULL;
	}
}

static int on_read_pipe_writable(int fd, uint32_t mask, void *data)
{
	read_pipe_flush(data);
	return 0;
}

static bool read_pipe_add(struct guest_channel *ch, uint32_t id, int fd)
{
	struct read_pipe *p = calloc(1, sizeof(*p));
	if (!p || !sml_fd_set_nonblock(fd)) {
		free(p);
		sml_close_untrusted(fd);
		channel_fail(ch, "cannot keep pipe %#x", id);
		return false;
	}
	p->ch = ch;
	p->id = id;
	p->fd = fd;
	sml_wqueue_init(&p->out, CHANNEL_QUEUE_LIMIT);
	wl_list_insert(ch->read_pipes.prev, &p->link);
	return true;
}

static struct read_pipe *read_pipe_find(struct guest_channel *ch, uint32_t id)
{
	struct read_pipe *p;
	wl_list_for_each(p, &ch->read_pipes, link)
		if (p->id == id)
			return p;
	return NULL;
}

static void write_pipe_destroy(struct write_pipe *p)
{
	if (p->source)
		wl_event_source_remove(p->source);
	close(p->fd);
	wl_list_remove(&p->link);
	free(p);
}

static int channel_exec(struct guest_channel *ch, const void *cmd, size_t size, uint32_t ring)
{
	return ch->dev->impl->execbuffer(ch->dev, cmd, size, ring, NULL, 0);
}

// The client wrote into a compositor's pipe: forward it as a WRITE, and
// the end of it as a WRITE with hang_up.
static int on_write_pipe_readable(int fd, uint32_t mask, void *data)
{
	struct write_pipe *p = data;
	struct guest_channel *ch = p->ch;
	uint8_t buf[CD_MAX_RW_DATA], cmd[CD_RING_SIZE];
	ssize_t n = read(p->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	bool hang_up = n <= 0;
	uint32_t id = p->id;
	size_t len = cd_encode_read_write(cmd, sizeof(cmd), CD_CMD_WRITE, false, id, hang_up,
					  buf, hang_up ? 0 : (uint32_t)n);
	if (hang_up)
		write_pipe_destroy(p); // p is gone from here on
	int ret = channel_exec(ch, cmd, len, VGPU_NO_RING);
	if (ret < 0)
		channel_fail(ch, "cannot forward pipe %#x: %s", id, strerror(-ret));
	channel_device_events(ch, false);
	return 0;
}

// A local pipe for a compositor's write end; returns the write end for the
// client, or -1 after failing the channel.
static int write_pipe_create(struct guest_channel *ch, uint32_t id)
{
	struct write_pipe *p = calloc(1, sizeof(*p));
	int fds[2] = { -1, -1 };
	if (!p || pipe2(fds, O_CLOEXEC) < 0 || !sml_fd_set_nonblock(fds[0]) ||
	    !(p->source = wl_event_loop_add_fd(ch->loop, fds[0], WL_EVENT_READABLE,
					       on_write_pipe_readable, p))) {
		sml_close(&fds[0]);
		sml_close(&fds[1]);
		free(p);
		channel_fail(ch, "cannot create a pipe for the compositor's pipe %u", id);
		return -1;
	}
	p->ch = ch;
	p->id = id;
	p->fd = fds[0];
	wl_list_insert(ch->write_pipes.prev, &p->link);
	return fds[1];
}

static void channel_destroy_pipes(struct guest_channel *ch)
{
	struct read_pipe *rp, *rtmp;
	wl_list_for_each_safe(rp, rtmp, &ch->read_pipes, link)
		read_pipe_destroy(rp);
	struct write_pipe *wp, *wtmp;
	wl_list_for_each_safe(wp, wtmp, &ch->write_pipes, link)
		write_pipe_destroy(wp);
}

// ---- the client's end ----------------------------------------------------

static void channel_update_pump(struct guest_channel *ch)
{
	if (!ch->pump_source)
		return;
	uint32_t mask = ch->reading ? WL_EVENT_READABLE : 0;
	if (!sml_wqueue_empty(&ch->to_client))
		mask |= WL_EVENT_WRITABLE;
	if (mask != ch->pump_mask)
		wl_event_source_fd_update(ch->pump_source, mask);
	ch->pump_mask = mask;
}

static void on_close_idle(void *data)
{
	struct guest_channel *ch = data;
	ch->close_idle = NULL;
	// Last: the listener may destroy the channel.
	if (ch->listener && ch->listener->closed)
		ch->listener->closed(ch->data, ch->reason);
}

// Shuts the pump down so that libwayland-client reads EOF, and calls the
// listener from the loop (never from a stack that still uses the channel).
static void channel_finish(struct guest_channel *ch)
{
	if (ch->finished)
		return;
	ch->finished = true;
	if (ch->pump_source)
		wl_event_source_remove(ch->pump_source);
	ch->pump_source = NULL;
	shutdown(ch->pump_fd, SHUT_RDWR);
	sml_wqueue_finish(&ch->to_client);
	ch->close_idle = wl_event_loop_add_idle(ch->loop, on_close_idle, ch);
	if (!ch->close_idle)
		sml_err("channel: cannot schedule the closed callback");
}

// libwayland-client closed its end (or it broke): nothing can reach it any
// more. The owner disconnected on purpose and destroys the channel, so this
// alone calls no listener; it only stops the traffic.
static void channel_client_gone(struct guest_channel *ch, const char *why)
{
	if (ch->client_gone)
		return;
	sml_dbg("channel: the client's end closed (%s)", why);
	ch->client_gone = true;
	ch->reading = false;
	sml_wqueue_finish(&ch->to_client);
	if (ch->pump_source)
		wl_event_source_remove(ch->pump_source);
	ch->pump_source = NULL;
	if (ch->closing)
		channel_finish(ch);
}

static void channel_end_at(struct guest_channel *ch, enum sml_log_level level,
			   const char *file, int line, const char *fmt, ...)
{
	if (ch->closing)
		return;
	ch->closing = true;
	ch->reading = false;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ch->reason, sizeof(ch->reason), fmt, ap);
	va_end(ap);
	if (level <= sml_log_get_level())
		sml_log_write(level, file, line, 0, "channel: %s", ch->reason);
	if (ch->dev_source)
		wl_event_source_remove(ch->dev_source);
	ch->dev_source = NULL;
	channel_destroy_pipes(ch);
	// What the compositor said before the end (a protocol error, say)
	// still reaches the client; EOF follows once it is written.
	if (ch->client_gone || sml_wqueue_empty(&ch->to_client))
		channel_finish(ch);
	else
		channel_update_pump(ch);
}

// Sends the next POLL unless one is outstanding or the client lags behind.
static void channel_maybe_poll(struct guest_channel *ch)
{
	if (ch->closing || ch->client_gone || ch->poll_outstanding ||
	    ch->to_client.len >= CHANNEL_CLIENT_HIGH_WATER)
		return;
	uint8_t cmd[sizeof(struct cd_poll)];
	size_t len = cd_encode_poll(cmd, sizeof(cmd));
	int ret = channel_exec(ch, cmd, len, CD_CHANNEL_RING);
	if (ret < 0) {
		channel_fail(ch, "cannot poll the host: %s", strerror(-ret));
		return;
	}
	ch->poll_outstanding = true;
}

static void channel_flush_client(struct guest_channel *ch)
{
	int ret = sml_wqueue_flush(&ch->to_client, ch->pump_fd);
	if (ret < 0)
		channel_client_gone(ch, strerror(-ret));
	else if (ret == 0 && ch->closing)
		channel_finish(ch);
	else
		channel_maybe_poll(ch);
}

// ---- client -> host --------------------------------------------------------

static bool channel_push_out_fd(struct guest_channel *ch, struct out_fd o)
{
	if (ch->nout_fds == CHANNEL_OUT_FDS_MAX) {
		close(o.fd);
		channel_fail(ch, "the client sent more than %u fds ahead of their messages",
			     CHANNEL_OUT_FDS_MAX);
		return false;
	}
	ch->out_fds[ch->nout_fds++] = o;
	return true;
}

// Memory (a wl_shm pool, say) is shared as a guest blob. Blob sizes are
// whole pages; the host accepts a file that ends inside the last one (a pool
// of 250x250 ARGB pixels does), and never maps such a blob itself.
// A buffer of the device itself (a dma-buf of the guest's GPU driver) goes
// by its resource; guest RAM cannot cross a VM's boundary.
static bool channel_import(struct guest_channel *ch, int fd, off_t end)
{
	uint32_t res;
	int ret = ch->dev->impl->import_fd ? ch->dev->impl->import_fd(ch->dev, fd, &res) :
					     -EOPNOTSUPP;
	if (ret < 0) {
		sml_close_untrusted(fd);
		channel_fail(ch, "the client sent a memory fd that is not a buffer of the %s "
			     "device, which cannot share guest memory: %s", ch->dev->impl->name,
			     strerror(-ret));
		return false;
	}
	struct out_fd o = { .fd = fd, .kind = OUT_BLOB, .res = res,
			    .size = (uint32_t)SML_MIN((uint64_t)end, (uint64_t)UINT32_MAX) };
	return channel_push_out_fd(ch, o);
}

static bool channel_take_memory(struct guest_channel *ch, int fd, off_t end)
{
	uint32_t res;
	if (!ch->dev->guest_memory)
		return channel_import(ch, fd, end);
	if (end == 0) {
		sml_close_untrusted(fd);
		channel_fail(ch, "the client sent an empty memory fd");
		return false;
	}
	int ret = ch->dev->impl->create_guest_blob(ch->dev, fd, sml_page_round_up((uint64_t)end),
						   &res);
	if (ret < 0) {
		sml_close_untrusted(fd);
		channel_fail(ch, "cannot share %lld bytes of client memory: %s", (long long)end,
			     strerror(-ret));
		return false;
	}
	struct out_fd o = { .fd = fd, .kind = OUT_BLOB, .res = res,
			    .size = (uint32_t)SML_MIN((uint64_t)end, (uint64_t)UINT32_MAX) };
	return channel_push_out_fd(ch, o);
}

// Classifies one client fd: seekable means memory, a write-only fd is a
// pipe's write end; nothing else can cross.
static struct image_blob *find_image(struct guest_channel *ch, const struct stat *st)
{
	struct image_blob *img;
	wl_list_for_each(img, &ch->images, link)
		if (img->dev == st->st_dev && img->ino == st->st_ino)
			return img;
	return NULL;
}

// Bytes behind a memory fd without moving the offset the client shares
// with us: a file (memfds too) tells fstat; dma-bufs know only SEEK_END
// and SEEK_SET to 0. Negative if it is not memory.
static off_t memory_size(int fd, const struct stat *st)
{
	if (S_ISREG(st->st_mode))
		return st->st_size;
	off_t cur = lseek(fd, 0, SEEK_CUR);
	off_t end = lseek(fd, 0, SEEK_END);
	if (end >= 0)
		lseek(fd, cur >= 0 ? cur : 0, SEEK_SET);
	return end;
}

static bool channel_take_fd(struct guest_channel *ch, int fd)
{
	struct stat st;
	bool known = fstat(fd, &st) == 0;
	struct image_blob *img = known ? find_image(ch, &st) : NULL;
	if (img)
		return channel_push_out_fd(ch, (struct out_fd){ .fd = fd, .kind = OUT_IMAGE,
								.res = img->res });
	// Write-only first: a file given to wl_data_offer.receive is seekable
	// but no memory to share.
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && (fl & O_ACCMODE) == O_WRONLY)
		return channel_push_out_fd(ch, (struct out_fd){ .fd = fd, .kind = OUT_PIPE });
	off_t end = known ? memory_size(fd, &st) : -1;
	if (end >= 0)
		return channel_take_memory(ch, fd, end);
	sml_close_untrusted(fd);
	channel_fail(ch, "the client sent an fd that is neither memory nor a pipe's write end "
		     "(flags %#o)", fl);
	return false;
}

struct send_ids {
	uint32_t n;
	uint32_t ids[CD_MAX_IDENTIFIERS], types[CD_MAX_IDENTIFIERS], sizes[CD_MAX_IDENTIFIERS];
};

// Takes waiting fds for one SEND, in order: at most 28, and at most one
// read pipe (the host checks each read pipe id against its own counter, one
// per SEND). Returns how many were taken.
static size_t channel_pick_fds(struct guest_channel *ch, struct send_ids *s)
{
	bool pipe = false;
	size_t i = 0;
	s->n = 0;
	for (; i < ch->nout_fds && s->n < CD_MAX_IDENTIFIERS; i++) {
		const struct out_fd *o = &ch->out_fds[i];
		if (o->kind == OUT_PIPE && pipe)
			break;
		pipe |= o->kind == OUT_PIPE;
		s->ids[s->n] = o->kind == OUT_PIPE ? ch->last_read_pipe_id + 1 : o->res;
		s->types[s->n] = o->kind == OUT_PIPE ? CD_ID_READ_PIPE : CD_ID_VIRTGPU_BLOB;
		s->sizes[s->n] = o->kind == OUT_PIPE ? 0 : o->size;
		s->n++;
	}
	return i;
}

// The first `n` waiting fds went out: the host holds its own copies of the
// blobs now (it duplicated them at SEND), and read pipes start listening.
static void channel_sent_fds(struct guest_channel *ch, size_t n)
{
	size_t i = 0;
	for (; i < n && !ch->closing; i++) {
		struct out_fd *o = &ch->out_fds[i];
		if (o->kind == OUT_BLOB) {
			ch->dev->impl->destroy_resource(ch->dev, o->res);
			close(o->fd);
		} else if (o->kind == OUT_IMAGE) {
			close(o->fd);
		} else {
			read_pipe_add(ch, ++ch->last_read_pipe_id, o->fd);
		}
	}
	memmove(ch->out_fds, ch->out_fds + i, (ch->nout_fds - i) * sizeof(ch->out_fds[0]));
	ch->nout_fds -= i;
}

// Sends one chunk of the client's bytes with the fds that came before or
// with it.
//
// Rule: an fd must reach the compositor no later than the bytes of the
// message that carries it; earlier is fine (libwayland queues fds). The
// host attaches a SEND's fds to that SEND's first byte. Every fd in a chunk
// belongs to a message that starts at or after the chunk's first byte (the
// sender sends fds with or before their message's first byte, and the
// kernel hands them out with the first bytes sent along with them).
//
// So all fds go into the first SEND of the chunk, except that a SEND holds
// at most one read pipe (and 28 identifiers). When more wait, each SEND but
// the last takes ONE byte, and the last takes the rest: the k-th waiting
// pipe then travels with byte k-1 of the chunk, while its message (every
// pipe-passing request carries one fd and is at least 8 bytes, so pipe k's
// message is at least the k-th to start here) ends at byte 8k-1 or later.
// Even if one message carried several pipes, this holds for up to 8 of
// them. If the chunk runs out of bytes first, the remaining fds wait for
// the next chunk, whose messages they belong to.
static void channel_send_chunk(struct guest_channel *ch, const uint8_t *data, size_t size)
{
	uint8_t cmd[CD_RING_SIZE];
	for (size_t off = 0; off < size && !ch->closing;) {
		struct send_ids s;
		size_t taken = channel_pick_fds(ch, &s);
		size_t len = taken < ch->nout_fds ? 1 : size - off;
		size_t cmd_len = cd_encode_send_receive(cmd, sizeof(cmd), CD_CMD_SEND, false, s.n,
							s.ids, s.types, s.sizes, data + off,
							(uint32_t)len);
		int ret = cmd_len ? channel_exec(ch, cmd, cmd_len, VGPU_NO_RING) : -EINVAL;
		if (ret < 0) {
			channel_fail(ch, "cannot send %zu bytes to the host: %s", len,
				     strerror(-ret));
			return;
		}
		channel_sent_fds(ch, taken);
		off += len;
	}
}

// One recvmsg from the client: at most one SEND's worth of bytes.
static void channel_read_client(struct guest_channel *ch)
{
	uint8_t data[CD_MAX_SEND_DATA];
	int fds[CD_MAX_IDENTIFIERS];
	size_t nfds;
	bool truncated;
	ssize_t n = sml_recv_fds(ch->pump_fd, data, sizeof(data), fds, CD_MAX_IDENTIFIERS,
				 &nfds, &truncated, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		for (size_t i = 0; i < nfds; i++)
			sml_close_untrusted(fds[i]);
		channel_client_gone(ch, n == 0 ? "EOF" : strerror(errno));
		return;
	}
	if (truncated) {
		for (size_t i = 0; i < nfds; i++)
			sml_close_untrusted(fds[i]);
		channel_fail(ch, "fds the client sent were lost: more than %u at once, or "
			     "sommelier is out of fds", CD_MAX_IDENTIFIERS);
		return;
	}
	for (size_t i = 0; i < nfds; i++) {
		if (!channel_take_fd(ch, fds[i])) {
			while (++i < nfds)
				sml_close_untrusted(fds[i]);
			return;
		}
	}
	channel_send_chunk(ch, data, (size_t)n);
}

static int on_pump_event(int fd, uint32_t mask, void *data)
{
	struct guest_channel *ch = data;
	if (mask & (WL_EVENT_WRITABLE | WL_EVENT_HANGUP | WL_EVENT_ERROR))
		channel_flush_client(ch);
	if (ch->reading && (mask & (WL_EVENT_READABLE | WL_EVENT_HANGUP | WL_EVENT_ERROR)))
		channel_read_client(ch);
	channel_device_events(ch, false);
	channel_update_pump(ch);
	return 0;
}

void guest_channel_poll(struct guest_channel *ch)
{
	if (ch->poll_deferred) {
		ch->poll_deferred = false;
		channel_maybe_poll(ch);
	}
}

const char *guest_channel_failure(const struct guest_channel *ch)
{
	return ch->closing && ch->reason[0] ? ch->reason : NULL;
}

void guest_channel_pump(struct guest_channel *ch)
{
	on_pump_event(ch->pump_fd, WL_EVENT_READABLE, ch);
}

// ---- host -> client --------------------------------------------------------

// On a VM the kernel creates a host blob without waiting for the host:
// whether the host really had memory under that id shows when the blob is
// mapped (the mapping waits for the host's answer). The client would map it
// anyway, so a blob that cannot be mapped fails here, with a reason.
static int channel_blob_maps(int fd, uint64_t size)
{
	void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	munmap(m, size);
	return 0;
}

static int channel_import_blob(struct guest_channel *ch, uint32_t id, uint32_t size)
{
	uint32_t res;
	int fd = -1;
	uint64_t bytes = sml_page_round_up(size);
	int ret = ch->dev->impl->create_host_blob(ch->dev, id, bytes, &res, &fd);
	if (ret == 0 && (ret = channel_blob_maps(fd, bytes)) < 0) {
		close(fd);
		ch->dev->impl->destroy_resource(ch->dev, res);
	}
	if (ret < 0) {
		channel_fail(ch, "cannot claim host blob %u (%u bytes): %s (a host that took a "
			     "pipe for memory cannot pass it to this guest)", id, size,
			     strerror(-ret));
		return -1;
	}
	// The fd keeps the memory; the resource is not needed any more.
	ch->dev->impl->destroy_resource(ch->dev, res);
	return fd;
}

// Turns a received identifier into the fd the client gets; -1 after failing
// the channel.
static int channel_import_id(struct guest_channel *ch, uint32_t id, uint32_t type,
			     uint32_t size)
{
	if (type == CD_ID_WRITE_PIPE)
		return write_pipe_create(ch, id);
	if (type != CD_ID_VIRTGPU_BLOB) {
		channel_fail(ch, "the host sent identifier type %u, which a guest cannot receive",
			     type);
		return -1;
	}
	// Hosts that classify every fd as a blob report a pipe (wl_data_source
	// .send and friends) as a blob of 0 bytes: lseek fails on it. Memory
	// worth sending is never empty, and an empty file carries nothing that
	// a pipe loses, so a size-0 blob becomes a write pipe: what the client
	// writes goes back as WRITEs to that id, which such a host can deliver,
	// and a host that cannot drops them (the client is not harmed either way).
	if (size == 0) {
		sml_dbg("channel: host blob %u of 0 bytes taken for a write pipe", id);
		return write_pipe_create(ch, id);
	}
	return channel_import_blob(ch, id, size);
}

static void channel_receive(struct guest_channel *ch, const struct cd_command *ev)
{
	const struct cd_send_receive *sr = &ev->u.sr;
	if (sr->num_identifiers == 0 && ev->data_size == 0) {
		channel_end(ch, "the compositor closed the connection");
		return;
	}
	if (ev->data_size == 0) {
		channel_fail(ch, "the host sent %u identifiers without bytes", sr->num_identifiers);
		return;
	}
	int fds[CD_MAX_IDENTIFIERS];
	uint32_t n = 0;
	for (; n < sr->num_identifiers; n++) {
		fds[n] = channel_import_id(ch, sr->identifiers[n], sr->identifier_types[n],
					   sr->identifier_sizes[n]);
		if (fds[n] < 0) {
			while (n)
				close(fds[--n]);
			return;
		}
	}
	if (ch->client_gone) {
		while (n)
			close(fds[--n]);
		return;
	}
	int ret = sml_wqueue_send(&ch->to_client, ch->pump_fd, ev->data, ev->data_size, fds, n);
	if (ret == -ENOBUFS)
		channel_fail(ch, "the client is not reading (%zu bytes queued)", ch->to_client.len);
	else if (ret < 0)
		channel_client_gone(ch, strerror(-ret));
	else if (ch->listener && ch->listener->delivered)
		ch->listener->delivered(ch->data);
	channel_update_pump(ch);
}

static void channel_read(struct guest_channel *ch, const struct cd_command *ev)
{
	uint32_t id = ev->u.rw.identifier;
	struct read_pipe *p = read_pipe_find(ch, id);
	if (!p) {
		// Its reader went away earlier; the host cannot know yet.
		sml_dbg("channel: READ for pipe %#x that is gone: dropped", id);
		return;
	}
	if (ev->data_size && sml_wqueue_push(&p->out, ev->data, ev->data_size, NULL, 0) < 0) {
		channel_fail(ch, "the reader of pipe %#x is not reading (%zu bytes queued)", id,
			     p->out.len);
		return;
	}
	p->hang_up |= ev->u.rw.hang_up != 0;
	read_pipe_flush(p);
}

// The POLL's fence signalled: the host wrote one message at ring offset 0
// and writes nothing more until the next POLL. The ring is shared memory a
// hostile host may change at any time, so a private copy is decoded.
static void channel_ring_event(struct guest_channel *ch)
{
	uint8_t page[CD_RING_SIZE];
	struct cd_command ev;
	memcpy(page, ch->channel_ring, sizeof(page));
	enum cd_error err = cd_decode_ring_event(page, sizeof(page), &ev);
	if (err != CD_OK) {
		channel_fail(ch, "the host wrote a bad ring message: %s", cd_strerror(err));
		return;
	}
	if (ev.cmd == CD_CMD_RECEIVE)
		channel_receive(ch, &ev);
	else
		channel_read(ch, &ev);
}

// Handles every signalled fence. Operations that wait for the device may
// read fences off the socket, which then is no longer readable, so every
// handler that used the device ends here (readable false: only what they
// took in) and this loops until the device reports nothing. Whatever else
// comes meanwhile keeps the device fd readable for the next loop turn.
static void channel_device_events(struct guest_channel *ch, bool readable)
{
	for (;; readable = false) {
		if (ch->closing)
			return;
		uint64_t signalled = 0;
		int ret = ch->dev->impl->read_events(ch->dev, readable, &signalled);
		if (ret < 0) {
			channel_fail(ch, "the %s device failed: %s", ch->dev->impl->name,
				     strerror(-ret));
			return;
		}
		if (!(signalled & (1ull << CD_CHANNEL_RING)))
			return;
		if (!ch->poll_outstanding) {
			sml_dbg("channel: fence on the channel ring without a POLL: ignored");
			continue;
		}
		ch->poll_outstanding = false;
		channel_ring_event(ch);
		if (ch->listener && ch->listener->delivered)
			ch->poll_deferred = true;
		else
			channel_maybe_poll(ch);
	}
}

static int on_dev_event(int fd, uint32_t mask, void *data)
{
	channel_device_events(data, true);
	return 0;
}

// ---- lifetime ----------------------------------------------------------------

// Capset check, context, rings, INIT. Logs what failed.
static bool channel_start_device(struct guest_channel *ch)
{
	struct vgpu_dev *dev = ch->dev;
	struct cd_capabilities caps;
	void *query, *channel;
	uint8_t cmd[sizeof(struct cd_init)];
	int ret = dev->impl->get_caps(dev, CD_CAPSET_ID, &caps, sizeof(caps));
	if (ret < 0) {
		sml_warn("channel: no cross-domain capset: %s", strerror(-ret));
		return false;
	}
	if (!(caps.supported_channels & (1u << CD_CHANNEL_WAYLAND))) {
		sml_warn("channel: the host offers no Wayland channel (channels %#x)",
			 caps.supported_channels);
		return false;
	}
	if ((ret = dev->impl->context_init(dev, CD_CAPSET_ID, 2, 1u << CD_CHANNEL_RING)) < 0 ||
	    (ret = dev->impl->create_ring(dev, CD_RING_SIZE, &ch->query_res, &query)) < 0 ||
	    (ret = dev->impl->create_ring(dev, CD_RING_SIZE, &ch->channel_res, &channel)) < 0) {
		sml_warn("channel: cannot set up the cross-domain context: %s", strerror(-ret));
		return false;
	}
	ch->channel_ring = channel;
	ch->query_ring = query;
	size_t len = cd_encode_init(cmd, sizeof(cmd), ch->query_res, ch->channel_res,
				    CD_CHANNEL_WAYLAND);
	if ((ret = channel_exec(ch, cmd, len, VGPU_NO_RING)) < 0) {
		sml_warn("channel: cross-domain INIT failed: %s", strerror(-ret));
		return false;
	}
	return true;
}

// The socketpair and the loop's sources; *wl_fd is the client's end.
static bool channel_start_pump(struct guest_channel *ch, int *wl_fd)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		sml_log_errno(SML_LOG_WARN, "channel: socketpair");
		return false;
	}
	// libwayland-client treats a full socket as a fatal error: give its end
	// room for bursts (the pump drains it every loop iteration).
	int room = CHANNEL_CLIENT_SNDBUF;
	if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &room, sizeof(room)) < 0)
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &room, sizeof(room));
	ch->pump_fd = sv[1];
	ch->pump_mask = WL_EVENT_READABLE;
	if (!sml_fd_set_nonblock(ch->pump_fd) ||
	    !(ch->pump_source = wl_event_loop_add_fd(ch->loop, ch->pump_fd, ch->pump_mask,
						     on_pump_event, ch)) ||
	    !(ch->dev_source = wl_event_loop_add_fd(ch->loop, ch->dev->impl->event_fd(ch->dev),
						    WL_EVENT_READABLE, on_dev_event, ch))) {
		sml_log_errno(SML_LOG_WARN, "channel: cannot watch the channel's fds");
		close(sv[0]);
		return false;
	}
	*wl_fd = sv[0];
	return true;
}

struct guest_channel *guest_channel_create(struct wl_event_loop *loop, struct vgpu_dev *dev,
					   const struct guest_channel_listener *listener,
					   void *data, int *wl_fd)
{
	struct guest_channel *ch = calloc(1, sizeof(*ch));
	if (!ch) {
		vgpu_destroy(dev);
		return NULL;
	}
	ch->loop = loop;
	ch->dev = dev;
	ch->listener = listener;
	ch->data = data;
	ch->pump_fd = -1;
	ch->reading = true;
	ch->last_read_pipe_id = CD_READ_PIPE_ID_BASE;
	sml_wqueue_init(&ch->to_client, CHANNEL_QUEUE_LIMIT);
	wl_list_init(&ch->read_pipes);
	wl_list_init(&ch->write_pipes);
	wl_list_init(&ch->images);
	int fd = -1;
	if (!channel_start_device(ch) || !channel_start_pump(ch, &fd)) {
		guest_channel_destroy(ch);
		return NULL;
	}
	uint8_t cmd[sizeof(struct cd_poll)];
	size_t len = cd_encode_poll(cmd, sizeof(cmd));
	int ret = channel_exec(ch, cmd, len, CD_CHANNEL_RING);
	if (ret < 0) {
		sml_warn("channel: first POLL failed: %s", strerror(-ret));
		close(fd);
		guest_channel_destroy(ch);
		return NULL;
	}
	ch->poll_outstanding = true;
	*wl_fd = fd;
	return ch;
}

void guest_channel_destroy(struct guest_channel *ch)
{
	if (!ch)
		return;
	if (ch->close_idle)
		wl_event_source_remove(ch->close_idle);
	if (ch->pump_source)
		wl_event_source_remove(ch->pump_source);
	if (ch->dev_source)
		wl_event_source_remove(ch->dev_source);
	channel_destroy_pipes(ch);
	for (size_t i = 0; i < ch->nout_fds; i++)
		close(ch->out_fds[i].fd);
	struct image_blob *img, *itmp;
	wl_list_for_each_safe(img, itmp, &ch->images, link)
		free(img);
	sml_wqueue_finish(&ch->to_client);
	sml_close(&ch->pump_fd);
	vgpu_destroy(ch->dev); // unmaps the rings, ends the context
	free(ch);
}

// ---- images for the copy path ------------------------------------------------

static int query_reqs(struct guest_channel *ch, uint32_t width, uint32_t height, uint32_t format,
		      struct cd_image_requirements *out)
{
	for (size_t i = 0; i < ch->nreqs; i++) {
		struct image_reqs *r = &ch->reqs_cache[i];
		if (r->width == width && r->height == height && r->format == format) {
			*out = r->reqs;
			return 0;
		}
	}
	uint8_t cmd[sizeof(struct cd_get_image_requirements)];
	size_t len = cd_encode_get_image_requirements(cmd, sizeof(cmd), width, height, format,
						      CD_USE_LINEAR | CD_USE_SCANOUT);
	struct vgpu_dev *dev = ch->dev;
	int ret = dev->impl->execbuffer(dev, cmd, len, CD_QUERY_RING, &ch->query_res, 1);
	if (ret == 0)
		ret = dev->impl->wait(dev, ch->query_res);
	if (ret < 0) {
		// A host that stopped answering (its worker halted) would make
		// every later allocation wait VGPU_TIMEOUT_MS with the whole loop:
		// this client ends after the first.
		channel_fail(ch, "GET_IMAGE_REQUIREMENTS failed: %s", strerror(-ret));
		return ret;
	}
	memcpy(out, ch->query_ring, sizeof(*out)); // a copy: the host may write again
	if (out->size == 0 || out->blob_id == 0)
		return -ENOTSUP;
	struct image_reqs *slot = &ch->reqs_cache[ch->next_reqs];
	*slot = (struct image_reqs){ width, height, format, *out };
	ch->next_reqs = (ch->next_reqs + 1) % IMAGE_REQS_CACHE;
	ch->nreqs = SML_MIN(ch->nreqs + 1, (size_t)IMAGE_REQS_CACHE);
	return 0;
}

static int remember_image(struct guest_channel *ch, const struct stat *st, uint32_t res)
{
	struct image_blob *img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	*img = (struct image_blob){ .dev = st->st_dev, .ino = st->st_ino, .res = res };
	wl_list_insert(&ch->images, &img->link);
	return 0;
}

// The host chose the layout: one it got wrong must not make the copies
// write past the memory (or past the end of its file: SIGBUS).
static bool layout_holds(const struct cd_image_requirements *reqs, uint32_t width,
			 uint32_t height, uint32_t bpp)
{
	uint64_t row = (uint64_t)width * bpp;
	bool ok = width && height && reqs->strides[0] >= row &&
		  reqs->offsets[0] + (uint64_t)reqs->strides[0] * (height - 1) + row <= reqs->size;
	if (!ok)
		sml_warn("the host's layout for a %ux%u image (offset %u, stride %u, size %llu) "
			 "does not hold it", width, height, reqs->offsets[0], reqs->strides[0],
			 (unsigned long long)reqs->size);
	return ok;
}

static int claim_image(struct guest_channel *ch, const struct cd_image_requirements *reqs,
		       uint32_t *res, int *fd)
{
	int ret = ch->dev->impl->create_host_blob(ch->dev, reqs->blob_id, reqs->size, res, fd);
	if (ret < 0)
		return ret;
	struct stat st;
	off_t end = fstat(*fd, &st) < 0 ? -1 : memory_size(*fd, &st);
	uint64_t file = end > 0 ? (uint64_t)end : 0;
	if (file < reqs->size) {
		sml_warn("the host's blob for an image has %llu bytes of %llu",
			 (unsigned long long)file, (unsigned long long)reqs->size);
		ret = -EPROTO;
	} else {
		ret = remember_image(ch, &st, *res);
	}
	if (ret == 0)
		return 0;
	ch->dev->impl->destroy_resource(ch->dev, *res);
	sml_close(fd);
	return ret;
}

int guest_channel_alloc_image(struct guest_channel *ch, uint32_t width, uint32_t height,
			      uint32_t drm_format, uint32_t bpp, struct guest_image *out)
{
	struct cd_image_requirements reqs;
	uint32_t res = 0;
	int fd = -1;
	int ret = ch->closing ? -EPIPE : query_reqs(ch, width, height, drm_format, &reqs);
	if (ret == 0 && !layout_holds(&reqs, width, height, bpp))
		ret = -EPROTO;
	if (ret == 0)
		ret = claim_image(ch, &reqs, &res, &fd);
	// Waiting may have read fences off the device: handle them now.
	channel_device_events(ch, false);
	if (ret < 0)
		return ret;
	*out = (struct guest_image){ .fd = fd, .res = res, .stride = reqs.strides[0],
				     .offset = reqs.offsets[0], .size = reqs.size };
	return 0;
}

void guest_channel_free_image(struct guest_channel *ch, struct guest_image *image)
{
	struct image_blob *img;
	wl_list_for_each(img, &ch->images, link) {
		if (img->res != image->res)
			continue;
		wl_list_remove(&img->link);
		free(img);
		break;
	}
	ch->dev->impl->destroy_resource(ch->dev, image->res);
	sml_close(&image->fd);
	// A destroy that waited for room read fences meanwhile.
	channel_device_events(ch, false);
}
