// SPDX-License-Identifier: MIT
// The guest channel against the deployed hosts' quirks (doc/cross-domain.md),
// at the vgpu boundary: a scripted device records what the channel submits
// and plays a host that writes ring messages and signals fences. Covered:
// the wire forms every host accepts (20-byte INIT, 28-identifier SEND, the
// first read pipe 0x80000001, one read pipe per SEND, one POLL outstanding),
// hosts that never signal EOF (they stop answering the POLL: only that
// client stalls, and its client end closing is still noticed), and hosts
// that report write pipes as blobs (a size-0 blob becomes a write pipe; a
// blob that cannot be claimed or mapped fails that client with a reason),
// and hosts whose fences stopped (an allocation that times out ends that
// client instead of stalling the loop again for each one).
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wayland-server-core.h>

#include "channel.h"
#include "cross_domain.h"
#include "fdpass.h"
#include "harness.h"
#include "util.h"
#include "vgpu.h"

#define TIMEOUT_MS 5000
#define MAX_LOG 16

struct sent {
	uint32_t n, ids[CD_MAX_IDENTIFIERS], types[CD_MAX_IDENTIFIERS];
	uint8_t data[CD_MAX_SEND_DATA];
	uint32_t size;
};

struct written {
	uint32_t id;
	bool hang_up;
	uint8_t data[CD_MAX_RW_DATA];
	uint32_t size;
};

// A scripted virtio-gpu context. It belongs to the test: the channel's
// destroy only marks it.
struct script_dev {
	struct vgpu_dev base;
	int efd;
	uint8_t *rings[2];
	uint32_t ring_res[2];
	unsigned nrings;
	uint32_t next_res;
	bool destroyed;
	// what the channel did
	struct cd_init init;
	unsigned inits, polls, polls_outstanding, read_events_calls;
	bool two_polls;
	struct sent sends[MAX_LOG];
	unsigned nsends;
	struct written writes[MAX_LOG];
	unsigned nwrites;
	unsigned claims, destroyed_res;
	uint64_t claim_size;
	// how the host answers a claim: an error, or an fd that maps or not
	int claim_error;
	bool claim_unmappable;
	int wait_error; // what wait() answers
	unsigned waits;
	struct cd_image_requirements reqs; // what a successful wait leaves in the query ring
	uint64_t blob_bytes; // 0: a claimed blob's memfd has the size asked for
};

static struct script_dev *to_script(struct vgpu_dev *dev)
{
	return (struct script_dev *)dev;
}

static void script_destroy(struct vgpu_dev *dev)
{
	struct script_dev *s = to_script(dev);
	for (unsigned i = 0; i < s->nrings; i++)
		free(s->rings[i]);
	s->nrings = 0;
	sml_close(&s->efd);
	s->destroyed = true;
}

static int script_get_caps(struct vgpu_dev *dev, uint32_t capset_id, void *out, size_t size)
{
	struct cd_capabilities caps = { .version = 1, .supported_channels = 2 };
	CHECK_EQ(capset_id, CD_CAPSET_ID);
	memset(out, 0, size);
	memcpy(out, &caps, SML_MIN(size, sizeof(caps)));
	return 0;
}

static int script_context_init(struct vgpu_dev *dev, uint32_t capset_id, uint32_t num_rings,
			       uint64_t poll_mask)
{
	CHECK(capset_id == CD_CAPSET_ID && num_rings == 2 && poll_mask == 2);
	return 0;
}

static int script_create_ring(struct vgpu_dev *dev, size_t size, uint32_t *res, void **map)
{
	struct script_dev *s = to_script(dev);
	CHECK(s->nrings < 2 && size == CD_RING_SIZE);
	s->rings[s->nrings] = aligned_alloc(4096, 4096);
	CHECK(s->rings[s->nrings] != NULL);
	memset(s->rings[s->nrings], 0, 4096);
	*map = s->rings[s->nrings];
	*res = s->ring_res[s->nrings] = s->next_res++;
	s->nrings++;
	return 0;
}

static int script_create_guest_blob(struct vgpu_dev *dev, int memfd, uint64_t size,
				    uint32_t *res)
{
	return -EOPNOTSUPP; // a VM
}

static int script_create_host_blob(struct vgpu_dev *dev, uint64_t blob_id, uint64_t size,
				   uint32_t *res, int *fd)
{
	struct script_dev *s = to_script(dev);
	s->claims++;
	s->claim_size = size;
	if (s->claim_error)
		return s->claim_error;
	if (s->claim_unmappable) {
		// What the kernel hands out for a blob the host had no memory for:
		// an fd whose mmap fails. A pipe's mmap fails too.
		int p[2];
		CHECK(pipe2(p, O_CLOEXEC) == 0);
		close(p[1]);
		*fd = p[0];
	} else {
		*fd = sml_memfd_create("script-blob", s->blob_bytes ? s->blob_bytes : size);
		CHECK(*fd >= 0);
	}
	*res = s->next_res++;
	return 0;
}

static void script_destroy_resource(struct vgpu_dev *dev, uint32_t res)
{
	to_script(dev)->destroyed_res++;
}

static void script_record(struct script_dev *s, const struct cd_command *c)
{
	if (c->cmd == CD_CMD_INIT) {
		s->inits++;
		s->init = c->u.init;
		CHECK(!c->legacy_init && c->size == 20);
	} else if (c->cmd == CD_CMD_POLL) {
		s->polls++;
		s->two_polls |= s->polls_outstanding > 0;
		s->polls_outstanding++;
	} else if (c->cmd == CD_CMD_SEND) {
		CHECK(s->nsends < MAX_LOG);
		struct sent *out = &s->sends[s->nsends++];
		out->n = c->u.sr.num_identifiers;
		memcpy(out->ids, c->u.sr.identifiers, sizeof(out->ids));
		memcpy(out->types, c->u.sr.identifier_types, sizeof(out->types));
		out->size = c->data_size;
		memcpy(out->data, c->data, c->data_size);
	} else if (c->cmd == CD_CMD_WRITE) {
		CHECK(s->nwrites < MAX_LOG);
		struct written *w = &s->writes[s->nwrites++];
		*w = (struct written){ .id = c->u.rw.identifier, .hang_up = c->u.rw.hang_up,
				       .size = c->data_size };
		memcpy(w->data, c->data, c->data_size);
	}
}

static int script_execbuffer(struct vgpu_dev *dev, const void *cmd, size_t size, uint32_t ring,
			     const uint32_t *bos, uint32_t nbos)
{
	struct cd_command c;
	CHECK_EQ(cd_decode_command(cmd, size, 0, &c), CD_OK);
	CHECK_EQ(c.size, size);
	// POLL goes on the channel ring, GET_IMAGE_REQUIREMENTS on the query
	// ring (naming it), INIT, SEND and WRITE on none.
	if (c.cmd == CD_CMD_GET_IMAGE_REQUIREMENTS)
		CHECK(ring == CD_QUERY_RING && nbos == 1 && bos[0] == to_script(dev)->ring_res[0]);
	else
		CHECK_EQ(ring, c.cmd == CD_CMD_POLL ? CD_CHANNEL_RING : VGPU_NO_RING);
	script_record(to_script(dev), &c);
	return 0;
}

static int script_wait(struct vgpu_dev *dev, uint32_t res)
{
	struct script_dev *s = to_script(dev);
	CHECK_EQ(res, s->ring_res[0]);
	s->waits++;
	if (!s->wait_error)
		memcpy(s->rings[0], &s->reqs, sizeof(s->reqs));
	return s->wait_error;
}

static int script_event_fd(struct vgpu_dev *dev)
{
	return to_script(dev)->efd;
}

static int script_read_events(struct vgpu_dev *dev, bool readable, uint64_t *signalled)
{
	struct script_dev *s = to_script(dev);
	uint64_t n = 0;
	s->read_events_calls++;
	*signalled = readable && read(s->efd, &n, sizeof(n)) == sizeof(n) && n ?
			     1u << CD_CHANNEL_RING : 0;
	return 0;
}

static const struct vgpu_dev_impl script_impl = {
	.name = "script",
	.destroy = script_destroy,
	.get_caps = script_get_caps,
	.context_init = script_context_init,
	.create_ring = script_create_ring,
	.create_guest_blob = script_create_guest_blob,
	.create_host_blob = script_create_host_blob,
	.destroy_resource = script_destroy_resource,
	.execbuffer = script_execbuffer,
	.wait = script_wait,
	.event_fd = script_event_fd,
	.read_events = script_read_events,
};

// The host answers the outstanding POLL with a RECEIVE.
static void host_receive(struct script_dev *s, uint32_t n, const uint32_t *ids,
			 const uint32_t *types, const uint32_t *sizes, const void *data,
			 uint32_t size)
{
	CHECK_EQ(s->polls_outstanding, 1);
	CHECK(cd_encode_send_receive(s->rings[1], CD_RING_SIZE, CD_CMD_RECEIVE, true, n, ids,
				     types, sizes, data, size) > 0);
	s->polls_outstanding--;
	uint64_t one = 1;
	CHECK(write(s->efd, &one, sizeof(one)) == sizeof(one));
}

// ---- a channel in front of the script ----------------------------------------

struct chan {
	struct wl_event_loop *loop;
	struct script_dev dev;
	struct guest_channel *ch;
	int wl; // libwayland-client's end, played by the test
	int closed;
	char reason[256];
};

static void on_closed(void *data, const char *reason)
{
	struct chan *c = data;
	c->closed++;
	snprintf(c->reason, sizeof(c->reason), "%s", reason);
}

static const struct guest_channel_listener listener = { .closed = on_closed };

static void chan_open(struct chan *c, struct wl_event_loop *loop)
{
	memset(c, 0, sizeof(*c));
	c->loop = loop;
	c->dev.base.impl = &script_impl;
	c->dev.next_res = 1;
	c->dev.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(c->dev.efd >= 0);
	c->ch = guest_channel_create(loop, &c->dev.base, &listener, c, &c->wl);
	CHECK(c->ch != NULL);
	CHECK(sml_fd_set_nonblock(c->wl));
}

static void chan_close(struct chan *c)
{
	guest_channel_destroy(c->ch);
	CHECK(c->dev.destroyed);
	sml_close(&c->wl);
}

static void turn(struct wl_event_loop *loop, int timeout_ms)
{
	CHECK(wl_event_loop_dispatch(loop, timeout_ms) == 0);
	wl_event_loop_dispatch_idle(loop);
}

// Runs the loop until `done(c)` holds.
static void run_until(struct chan *c, bool (*done)(struct chan *c))
{
	uint64_t deadline = sml_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;
	while (!done(c)) {
		CHECK(sml_now_ns() < deadline);
		turn(c->loop, 10);
	}
}

static bool has_sends(struct chan *c)
{
	return c->dev.nsends > 0;
}

static bool has_closed(struct chan *c)
{
	return c->closed > 0;
}

static bool has_hang_up(struct chan *c)
{
	return c->dev.nwrites && c->dev.writes[c->dev.nwrites - 1].hang_up;
}

// What the client reads next: bytes and fds (waits for some).
static ssize_t client_read(struct chan *c, void *buf, size_t cap, int *fds, size_t *nfds)
{
	uint64_t deadline = sml_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;
	for (;;) {
		bool truncated;
		ssize_t n = sml_recv_fds(c->wl, buf, cap, fds, 4, nfds, &truncated, MSG_DONTWAIT);
		if (n >= 0 || errno != EAGAIN)
			return n;
		CHECK(sml_now_ns() < deadline);
		turn(c->loop, 10);
	}
}

// ---- tests ---------------------------------------------------------------------

// The forms every deployed host takes.
static void test_wire_forms(void)
{
	struct wl_event_loop *loop = wl_event_loop_create();
	struct chan c;
	chan_open(&c, loop);
	CHECK_EQ(c.dev.inits, 1);
	CHECK_EQ(c.dev.init.query_ring_id, c.dev.ring_res[0]);
	CHECK_EQ(c.dev.init.channel_ring_id, c.dev.ring_res[1]);
	CHECK_EQ(c.dev.init.channel_type, CD_CHANNEL_WAYLAND);
	CHECK_EQ(c.dev.polls, 1);

	// Two pipe write ends in one chunk (two data_offer.receive requests):
	// two SENDs, one read pipe each, ids from 0x80000001.
	uint8_t msg[32] = { 0 };
	int p1[2], p2[2];
	CHECK(pipe2(p1, O_CLOEXEC) == 0 && pipe2(p2, O_CLOEXEC) == 0);
	int fds[2] = { p1[1], p2[1] };
	CHECK(sml_send_fds(c.wl, msg, sizeof(msg), fds, 2, 0) == sizeof(msg));
	close(p1[1]);
	close(p2[1]);
	run_until(&c, has_sends);
	turn(loop, 10);
	CHECK_EQ(c.dev.nsends, 2);
	CHECK(c.dev.sends[0].n == 1 && c.dev.sends[0].types[0] == CD_ID_READ_PIPE);
	CHECK_EQ(c.dev.sends[0].ids[0], 0x80000001u);
	CHECK(c.dev.sends[1].n == 1 && c.dev.sends[1].types[0] == CD_ID_READ_PIPE);
	CHECK_EQ(c.dev.sends[1].ids[0], 0x80000002u);
	CHECK_EQ(c.dev.sends[0].size + c.dev.sends[1].size, sizeof(msg));
	CHECK(!c.dev.two_polls && c.dev.polls == 1);

	// A write-only file (wl_data_offer.receive into a file) is a pipe's
	// write end too, although it can seek.
	char path[] = "/tmp/sml-compat-XXXXXX";
	int file = mkstemp(path);
	CHECK(file >= 0);
	close(file);
	file = open(path, O_WRONLY | O_CLOEXEC);
	unlink(path);
	CHECK(file >= 0 && sml_send_fds(c.wl, msg, sizeof(msg), &file, 1, 0) == sizeof(msg));
	close(file);
	for (int i = 0; i < 500 && c.dev.nsends < 3 && !c.closed; i++)
		turn(loop, 10);
	CHECK_EQ(c.dev.nsends, 3);
	CHECK(c.dev.sends[2].n == 1 && c.dev.sends[2].types[0] == CD_ID_READ_PIPE);
	CHECK_EQ(c.closed, 0);

	// Each answered POLL is followed by exactly one new one.
	for (int i = 0; i < 3; i++) {
		uint8_t buf[64];
		int got[4];
		size_t n;
		host_receive(&c.dev, 0, NULL, NULL, NULL, "abcdefgh", 8);
		CHECK_EQ(client_read(&c, buf, sizeof(buf), got, &n), 8);
		CHECK(n == 0 && memcmp(buf, "abcdefgh", 8) == 0);
		CHECK(!c.dev.two_polls && c.dev.polls_outstanding == 1);
	}
	CHECK_EQ(c.dev.polls, 4);
	chan_close(&c);
	close(p1[0]);
	close(p2[0]);
	wl_event_loop_destroy(loop);
}

// An older host whose compositor hung up never answers the POLL again. Only
// that client stalls: the loop keeps turning, another channel on the same
// loop keeps working, and when libwayland-client closes its end the channel
// notices (it stops watching it: a missed hang-up would wake the loop on
// every turn) and is destroyed cleanly with the POLL still outstanding.
static void test_host_never_eof(void)
{
	int base = sml_count_open_fds();
	struct wl_event_loop *loop = wl_event_loop_create();
	struct chan a, b;
	chan_open(&a, loop);
	chan_open(&b, loop);
	alarm(10); // anything that blocks ends the test here

	// The compositor is gone behind a; its client still talks.
	CHECK(send(a.wl, "request!", 8, 0) == 8);
	run_until(&a, has_sends);
	for (int i = 0; i < 10; i++)
		turn(loop, 10);
	CHECK(a.closed == 0 && a.dev.polls_outstanding == 1 && !a.dev.two_polls);

	// b is not affected.
	uint8_t buf[64];
	int fds[4];
	size_t nfds;
	host_receive(&b.dev, 0, NULL, NULL, NULL, "event!!!", 8);
	CHECK_EQ(client_read(&b, buf, sizeof(buf), fds, &nfds), 8);

	// a's client end closes: noticed once, then the loop stays quiet.
	sml_close(&a.wl);
	turn(loop, 10);
	unsigned calls = a.dev.read_events_calls, polls = a.dev.polls;
	for (int i = 0; i < 5; i++)
		turn(loop, 20);
	CHECK_EQ(a.dev.read_events_calls, calls);
	CHECK_EQ(a.dev.polls, polls);
	chan_close(&a);
	CHECK_EQ(a.closed, 0); // the owner closed it: no listener call

	host_receive(&b.dev, 0, NULL, NULL, NULL, "again!!!", 8);
	CHECK_EQ(client_read(&b, buf, sizeof(buf), fds, &nfds), 8);
	alarm(0);
	chan_close(&b);
	wl_event_loop_destroy(loop);
	CHECK_EQ(sml_count_open_fds(), base);
}

// A host that took a compositor's pipe (wl_data_source.send) for memory
// reports a blob of 0 bytes: the client gets a pipe write end, and what it
// writes goes back as WRITEs to that identifier, then a hang-up.
static void test_size0_blob_is_write_pipe(void)
{
	int base = sml_count_open_fds();
	struct wl_event_loop *loop = wl_event_loop_create();
	struct chan c;
	chan_open(&c, loop);
	uint32_t id = 42, type = CD_ID_VIRTGPU_BLOB, size = 0;
	host_receive(&c.dev, 1, &id, &type, &size, "send+fd!", 8);
	uint8_t buf[64];
	int fds[4];
	size_t nfds;
	CHECK_EQ(client_read(&c, buf, sizeof(buf), fds, &nfds), 8);
	CHECK_EQ(nfds, 1);
	CHECK_EQ(c.dev.claims, 0);
	struct stat st;
	CHECK(fstat(fds[0], &st) == 0 && S_ISFIFO(st.st_mode));
	CHECK_EQ(fcntl(fds[0], F_GETFL) & O_ACCMODE, O_WRONLY);

	CHECK(write(fds[0], "clipboard", 9) == 9);
	close(fds[0]);
	run_until(&c, has_hang_up);
	CHECK(c.dev.nwrites >= 2);
	size_t total = 0;
	for (unsigned i = 0; i < c.dev.nwrites; i++) {
		CHECK_EQ(c.dev.writes[i].id, 42);
		CHECK(total + c.dev.writes[i].size <= 9);
		CHECK(memcmp(c.dev.writes[i].data, "clipboard" + total, c.dev.writes[i].size) == 0);
		total += c.dev.writes[i].size;
	}
	CHECK_EQ(total, 9);
	CHECK_EQ(c.closed, 0);
	chan_close(&c);
	wl_event_loop_destroy(loop);
	CHECK_EQ(sml_count_open_fds(), base);
}

// A real blob: claimed at its page-rounded size, handed over, resource
// released (the fd keeps the memory).
static void test_blob(void)
{
	int base = sml_count_open_fds();
	struct wl_event_loop *loop = wl_event_loop_create();
	struct chan c;
	chan_open(&c, loop);
	uint32_t id = 44, type = CD_ID_VIRTGPU_BLOB, size = 5000;
	host_receive(&c.dev, 1, &id, &type, &size, "keymap!!", 8);
	uint8_t buf[64];
	int fds[4];
	size_t nfds;
	CHECK_EQ(client_read(&c, buf, sizeof(buf), fds, &nfds), 8);
	CHECK(nfds == 1 && c.dev.claims == 1 && c.dev.claim_size == 8192);
	CHECK_EQ(c.dev.destroyed_res, 1);
	struct stat st;
	CHECK(fstat(fds[0], &st) == 0 && st.st_size == 8192);
	close(fds[0]);
	chan_close(&c);
	wl_event_loop_destroy(loop);
	CHECK_EQ(sml_count_open_fds(), base);
}

// A blob the host cannot give (the claim fails, or what the claim returns
// cannot be mapped): that client ends with a reason; nothing leaks.
static void test_blob_unclaimable(void)
{
	int base = sml_count_open_fds();
	for (int unmappable = 0; unmappable < 2; unmappable++) {
		struct wl_event_loop *loop = wl_event_loop_create();
		struct chan c;
		chan_open(&c, loop);
		c.dev.claim_error = unmappable ? 0 : -EINVAL;
		c.dev.claim_unmappable = unmappable;
		uint32_t id = 43, type = CD_ID_VIRTGPU_BLOB, size = 100;
		host_receive(&c.dev, 1, &id, &type, &size, "keymap!!", 8);
		run_until(&c, has_closed);
		printf("  closed: %s\n", c.reason);
		CHECK(strstr(c.reason, "host blob 43") != NULL);
		CHECK_EQ(c.dev.destroyed_res, unmappable ? 1 : 0);
		uint8_t buf[64];
		int fds[4];
		size_t nfds;
		CHECK_EQ(client_read(&c, buf, sizeof(buf), fds, &nfds), 0); // EOF
		CHECK_EQ(nfds, 0);
		chan_close(&c);
		wl_event_loop_destroy(loop);
	}
	CHECK_EQ(sml_count_open_fds(), base);
}

// A host whose worker halted answers no fence: the first allocation waits
// (VGPU_TIMEOUT_MS on a real device) and fails, and ends that client, so
// that later ones do not stall the loop again.
static void test_image_wait_fails(void)
{
	int base = sml_count_open_fds();
	struct wl_event_loop *loop = wl_event_loop_create();
	struct chan c;
	chan_open(&c, loop);
	c.dev.wait_error = -ETIMEDOUT;
	struct guest_image img;
	CHECK_EQ(guest_channel_alloc_image(c.ch, 64, 64, 0x34325258, 4, &img), -ETIMEDOUT);
	CHECK_EQ(guest_channel_alloc_image(c.ch, 64, 64, 0x34325258, 4, &img), -EPIPE);
	CHECK_EQ(c.dev.waits, 1);
	run_until(&c, has_closed);
	CHECK(strstr(c.reason, "GET_IMAGE_REQUIREMENTS") != NULL);
	chan_close(&c);
	wl_event_loop_destroy(loop);
	CHECK_EQ(sml_count_open_fds(), base);
}

// The host's image layout is checked before any pixel is copied into it:
// rows narrower than the image, rows running past the blob, a blob fd
// shorter than the layout all fail the allocation, leaving nothing behind.
static void test_image_layout(void)
{
	int base = sml_count_open_fds();
	struct wl_event_loop *loop = wl_event_loop_create();
	struct chan c;
	chan_open(&c, loop);
	struct guest_image img;
	static const struct {
		uint32_t w, stride, offset, size, blob_bytes;
		int want;
	} cases[] = {
		{ 64, 256, 0, 16384, 0, 0 }, // 64 x 64 x 4 exactly
		{ 65, 256, 0, 16640, 0, -EPROTO }, // a row of 65 is 260 bytes
		{ 66, 512, 0, 32768, 0, -EPROTO }, // 65 rows of 512: the last ends at byte 33032
		{ 67, 512, 520, 32768, 0, -EPROTO }, // the offset pushes it past the end
		{ 68, 512, 0, 32768, 4096, -EPROTO }, // the blob is shorter than the layout
	};
	for (size_t i = 0; i < SML_ARRAY_LEN(cases); i++) {
		uint32_t h = cases[i].w == 66 ? 65 : 64; // each size asks the host anew
		c.dev.reqs = (struct cd_image_requirements){
			.strides = { cases[i].stride }, .offsets = { cases[i].offset },
			.size = cases[i].size, .blob_id = 7 + (uint32_t)i,
		};
		c.dev.blob_bytes = cases[i].blob_bytes;
		unsigned destroyed = c.dev.destroyed_res, claims = c.dev.claims;
		CHECK_EQ(guest_channel_alloc_image(c.ch, cases[i].w, h, 0x34325258, 4, &img),
			 cases[i].want);
		if (cases[i].want == 0) {
			CHECK(img.fd >= 0 && img.stride == 256 && img.size == 16384);
			guest_channel_free_image(c.ch, &img);
		} else if (cases[i].blob_bytes) {
			CHECK_EQ(c.dev.destroyed_res, destroyed + 1); // claimed, then released
		} else {
			CHECK_EQ(c.dev.claims, claims); // never claimed
		}
	}
	chan_close(&c);
	wl_event_loop_destroy(loop);
	CHECK_EQ(sml_count_open_fds(), base);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	static const struct harness_test tests[] = {
		{ "wire forms every host takes", test_wire_forms },
		{ "host that never signals EOF", test_host_never_eof },
		{ "size-0 blob is a write pipe", test_size0_blob_is_write_pipe },
		{ "blob", test_blob },
		{ "blob that cannot be claimed", test_blob_unclaimable },
		{ "image requirements unanswered", test_image_wait_fails },
		{ "image layout that does not hold the image", test_image_layout },
	};
	int passed = harness_run(tests, SML_ARRAY_LEN(tests));
	printf("%d passed, 0 failed\n", passed);
	return 0;
}
