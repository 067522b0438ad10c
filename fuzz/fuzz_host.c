// SPDX-License-Identifier: MIT
// The whole host peer as a guest sees it: the input is a stream of socket
// device messages (after a valid HELLO) fed to a real host connection over a
// socketpair. Guest blobs get a real sealed memfd of their declared size, so
// rings map and cross-domain commands run; the compositor is a listening
// socket here that answers each new connection with a message carrying a
// memfd and a pipe, so RECEIVE, blob claiming and WRITE paths run too. The
// compositor keeps that pipe's read end unread (WRITEs back up once it is
// full), writes into the pipes the host passes it (READs with data), and
// sends an event every turn (RECEIVEs as the guest polls). Messages are
// multiples of 4 bytes; the input's length past that picks variants: bit 0
// set, the guest hangs up before sommelier-host tears down (after, when
// clear); bit 1 set, the compositor says nothing after its first message
// (POLLs stay pending); bit 2 set, each message without fds goes in two
// writes.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <wayland-server-core.h>

#include "device.h"
#include "fdpass.h"
#include "log.h"
#include "server.h"
#include "socket_device.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BLOB (64u * 1024u)

static char display[108];
static int listener = -1;
static struct host_config config = {
	.display = display,
	.limits = { .max_conns = 4, .max_contexts = 8, .max_resources = 64, .max_pipes = 8,
		    .max_memory = 16u << 20, .max_queue = 256u << 10, .max_items = 64,
		    .max_fds = 96 },
};

static void remove_socket(void)
{
	unlink(display);
}

static void setup_compositor(void)
{
	atexit(remove_socket);
	signal(SIGPIPE, SIG_IGN); // as sommelier-host does: pipes have no MSG_NOSIGNAL
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(display, sizeof(display), "/tmp/sml-fuzz-host-%d", (int)getpid());
	unlink(display);
	memcpy(addr.sun_path, display, strlen(display) + 1);
	listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(listener, 64) < 0)
		abort();
}

static void send_with_fds(int fd, const void *buf, size_t len, const int *fds, size_t nfds)
{
	sml_send_fds(fd, buf, len, fds, nfds, MSG_DONTWAIT);
}

#define MAX_CLIENTS 16

// The compositor's side of one input: its clients, and the read ends of
// the pipes it sent them, never read.
struct compositor {
	int clients[MAX_CLIENTS];
	int unread[MAX_CLIENTS];
	size_t nclients;
	bool quiet; // no events after the first message
};

// New compositor clients get one message with a memfd and a write pipe.
static void accept_clients(struct compositor *c)
{
	for (int fd; c->nclients < MAX_CLIENTS &&
		     (fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0;) {
		int mem = sml_memfd_create("fuzz-keymap", 100), p[2] = { -1, -1 };
		if (mem >= 0 && pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0) {
			uint32_t msg[2] = { 1, 8u << 16 };
			int fds[2] = { mem, p[1] };
			send_with_fds(fd, msg, sizeof(msg), fds, 2);
			close(p[1]);
		}
		sml_close(&mem);
		c->unread[c->nclients] = p[0];
		c->clients[c->nclients++] = fd;
	}
}

// What a client sent is dropped; pipes it passed get a few bytes, then EOF.
static void read_client(int fd)
{
	char buf[4096];
	int fds[8];
	size_t nfds;
	bool truncated;
	while (sml_recv_fds(fd, buf, sizeof(buf), fds, 8, &nfds, &truncated, MSG_DONTWAIT) > 0)
		for (size_t i = 0; i < nfds; i++) {
			// Into memory it passed, the bytes land at its start.
			ssize_t unused = write(fds[i], "offer", 5);
			(void)unused;
			close(fds[i]);
		}
}

static void serve_compositor(struct compositor *c)
{
	accept_clients(c);
	uint32_t event[2] = { 1, 8u << 16 };
	for (size_t i = 0; i < c->nclients; i++) {
		read_client(c->clients[i]);
		if (!c->quiet)
			send_with_fds(c->clients[i], event, sizeof(event), NULL, 0);
	}
}

static void compositor_finish(struct compositor *c)
{
	for (size_t i = 0; i < c->nclients; i++) {
		close(c->clients[i]);
		sml_close(&c->unread[i]);
	}
}

// Reads and drops what the host answers (closing the fds it sends).
static void drain_guest(int fd)
{
	char buf[4096];
	int fds[8];
	size_t nfds;
	bool truncated;
	while (sml_recv_fds(fd, buf, sizeof(buf), fds, 8, &nfds, &truncated, MSG_DONTWAIT) > 0)
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
}

// A GUEST blob request gets a memfd of its size; other messages go as they are.
static void send_message(int fd, const uint8_t *msg, size_t len)
{
	struct sdev_header hdr;
	struct sdev_create_blob blob;
	int mem = -1;
	if (len >= sizeof(hdr) + sizeof(blob))
		memcpy(&hdr, msg, sizeof(hdr));
	if (len >= sizeof(hdr) + sizeof(blob) && hdr.type == SDEV_RESOURCE_CREATE_BLOB &&
	    hdr.num_fds == 1) {
		memcpy(&blob, msg + sizeof(hdr), sizeof(blob));
		mem = sml_memfd_create("fuzz-guest", SML_MIN(blob.size, (uint64_t)MAX_BLOB));
	}
	send_with_fds(fd, msg, len, &mem, mem >= 0);
	sml_close(&mem);
}

static void pump(struct wl_event_loop *loop, int guest, struct compositor *c)
{
	for (int i = 0; i < 4; i++) {
		wl_event_loop_dispatch(loop, 0);
		wl_event_loop_dispatch_idle(loop);
		serve_compositor(c);
		drain_guest(guest);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (listener < 0) {
		sml_log_set_level(SML_LOG_SILENT); // warnings for every input slow it down
		setup_compositor();
	}
	struct wl_event_loop *loop = wl_event_loop_create();
	struct host_server *server = host_server_create(loop, &config);
	int sv[2];
	struct compositor compositor = { .quiet = size & 2 };
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	host_server_adopt(server, sv[0], "fuzz");

	uint8_t hello[32];
	struct sdev_writer w;
	struct sdev_hello h = { SDEV_MAGIC, SDEV_VERSION, SDEV_FEATURE_FD_PASSING };
	sdev_writer_begin(&w, hello, sizeof(hello), SDEV_HELLO, 0, 1, 0, 0);
	sdev_writer_put(&w, &h, sizeof(h));
	send_message(sv[1], hello, sdev_writer_end(&w));

	// Split the input where headers say; a broken size sends the rest raw.
	for (size_t off = 0; off < size && !wl_list_empty(&server->conns);) {
		size_t len = size - off;
		if (len >= sizeof(struct sdev_header)) {
			uint32_t msg_size;
			memcpy(&msg_size, data + off + 4, 4);
			if (msg_size >= sizeof(struct sdev_header) && msg_size <= len)
				len = msg_size;
		}
		if ((size & 4) && len > sizeof(struct sdev_header) && !data[off + 3]) {
			// In two writes, the host running between them.
			send_with_fds(sv[1], data + off, len / 2, NULL, 0);
			pump(loop, sv[1], &compositor);
			send_with_fds(sv[1], data + off + len / 2, len - len / 2, NULL, 0);
		} else {
			send_message(sv[1], data + off, len);
		}
		off += len;
		pump(loop, sv[1], &compositor);
	}
	pump(loop, sv[1], &compositor);
	if (size & 1)
		sml_close(&sv[1]);
	host_server_destroy(server);
	wl_event_loop_dispatch_idle(loop);
	compositor_finish(&compositor);
	sml_close(&sv[1]);
	wl_event_loop_destroy(loop);
	return 0;
}
