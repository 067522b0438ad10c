// SPDX-License-Identifier: MIT
// The guest channel over the socket device (vgpu_socket.c) against a
// scripted host that hands out resource handles it must not: the handle of
// a ring it gave out before, or 0. The channel destroys a client blob's
// resource right after its SEND; had it taken the ring's handle, that
// destroy unmapped the ring, and the next fence read unmapped memory (every
// client of a --parent died with it). Now the device refuses the reply and
// the channel closes with a protocol error.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wayland-server-core.h>

#include "channel.h"
#include "cross_domain.h"
#include "fdpass.h"
#include "harness.h"
#include "socket_device.h"
#include "util.h"
#include "vgpu.h"

static uint8_t inbuf[SDEV_MAX_MSG_SIZE * 2];
static size_t inlen;

static void host_reply(int fd, uint16_t type, uint32_t seq, const void *a, size_t a_size,
		       const void *b, size_t b_size)
{
	uint8_t buf[512];
	struct sdev_writer w;
	sdev_writer_begin(&w, buf, sizeof(buf), type, 0, seq, 1, false);
	sdev_writer_put(&w, a, a_size);
	sdev_writer_put(&w, b, b_size);
	size_t len = sdev_writer_end(&w);
	if (len == 0 || write(fd, buf, len) != (ssize_t)len)
		_exit(3);
}

// What the host answers each request with; `bad` is the handle it gives
// the third blob (the first two are the rings: 1 and 2).
static void host_answer(int fd, const struct sdev_msg *m, uint32_t bad, uint32_t *blobs)
{
	switch (m->hdr.type) {
	case SDEV_HELLO: {
		struct sdev_hello h = { SDEV_MAGIC, SDEV_VERSION, SDEV_FEATURE_FD_PASSING };
		host_reply(fd, SDEV_REPLY_HELLO, m->hdr.seq, &h, sizeof(h), NULL, 0);
		break;
	}
	case SDEV_GET_CAPS: {
		struct cd_capabilities caps = { 1, 1u << CD_CHANNEL_WAYLAND, 0, 0 };
		struct sdev_reply_caps rc = { m->u.get_caps.capset_id, sizeof(caps) };
		host_reply(fd, SDEV_REPLY_CAPS, m->hdr.seq, &rc, sizeof(rc), &caps, sizeof(caps));
		break;
	}
	case SDEV_CONTEXT_INIT:
		host_reply(fd, SDEV_REPLY_OK, m->hdr.seq, NULL, 0, NULL, 0);
		break;
	case SDEV_RESOURCE_CREATE_BLOB: {
		++*blobs;
		struct sdev_reply_resource rr = { *blobs <= 2 ? *blobs : bad, m->u.blob.blob_mem,
						  m->u.blob.size };
		host_reply(fd, SDEV_REPLY_RESOURCE, m->hdr.seq, &rr, sizeof(rr), NULL, 0);
		break;
	}
	}
}

// The host's process: answers until the guest hangs up, and signals the
// channel ring's fence after a POLL and a SEND (so the guest reads its
// ring after it destroyed the SEND's resources).
static void host_run(int fd, uint32_t bad)
{
	uint32_t blobs = 0, poll_seq = 0;
	bool sent = false;
	for (;;) {
		int fds[SDEV_MAX_FDS];
		size_t nfds;
		bool truncated;
		ssize_t n = sml_recv_fds(fd, inbuf + inlen, sizeof(inbuf) - inlen, fds,
					 SDEV_MAX_FDS, &nfds, &truncated, 0);
		if (n <= 0)
			_exit(0);
		inlen += (size_t)n;
		size_t off = 0;
		struct sdev_msg m;
		while (sdev_decode(inbuf + off, inlen - off, true, &m) == SDEV_OK) {
			off += m.hdr.size;
			host_answer(fd, &m, bad, &blobs);
			if (m.hdr.type != SDEV_EXECBUFFER)
				continue;
			struct cd_header h;
			memcpy(&h, m.payload, sizeof(h));
			poll_seq = h.cmd == CD_CMD_POLL ? m.hdr.seq : poll_seq;
			sent = sent || h.cmd == CD_CMD_SEND;
		}
		while (nfds)
			close(fds[--nfds]);
		memmove(inbuf, inbuf + off, inlen - off);
		inlen -= off;
		if (sent && poll_seq) {
			struct sdev_event_fence f = { CD_CHANNEL_RING, 0 };
			host_reply(fd, SDEV_EVENT_FENCE, poll_seq, &f, sizeof(f), NULL, 0);
			sent = false;
			poll_seq = 0;
		}
	}
}

static char closed_reason[256];

static void on_closed(void *data, const char *reason)
{
	snprintf(closed_reason, sizeof(closed_reason), "%s", reason);
}

static const struct guest_channel_listener listener = { .closed = on_closed };

// A channel over a host that gives `bad` to a client's memfd blob.
static void run_host_giving(uint32_t bad)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/hostile-%u.sock", harness_runtime_dir(), bad);
	int listener_fd = harness_listen_unix(path);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		host_run(harness_accept(listener_fd, 5000), bad);
	close(listener_fd);
	struct wl_event_loop *loop = wl_event_loop_create();
	struct vgpu_dev *dev;
	int wl = -1;
	CHECK_EQ(vgpu_socket_open(path, &dev), 0);
	closed_reason[0] = '\0';
	struct guest_channel *ch = guest_channel_create(loop, dev, &listener, NULL, &wl);
	CHECK(ch);
	// libwayland-client's side: 16 bytes with a memfd, as wl_shm.create_pool.
	int mem = sml_memfd_create("pool", 4096);
	uint8_t msg[16] = { 0 };
	CHECK_EQ(sml_send_fds(wl, msg, sizeof(msg), &mem, 1, 0), (ssize_t)sizeof(msg));
	close(mem);
	for (int i = 0; i < 250 && !closed_reason[0]; i++)
		wl_event_loop_dispatch(loop, 20);
	fprintf(stderr, "handle %u: channel closed: %s\n", bad, closed_reason);
	// The device says which handle was wrong in the log; the channel ends.
	CHECK(strstr(closed_reason, strerror(EPROTO)));
	guest_channel_destroy(ch);
	close(wl);
	wl_event_loop_destroy(loop);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static void test_ring_handle_again(void)
{
	run_host_giving(2); // the channel ring's
	run_host_giving(1); // the query ring's
}

static void test_handle_zero(void)
{
	run_host_giving(0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	static const struct harness_test tests[] = {
		{ "ring_handle_again", test_ring_handle_again },
		{ "handle_zero", test_handle_zero },
	};
	harness_run(tests, sizeof(tests) / sizeof(tests[0]));
	harness_cleanup();
	return 0;
}
