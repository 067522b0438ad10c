// SPDX-License-Identifier: MIT
// The whole host peer as a guest sees it: the input is a stream of socket
// device messages (after a valid HELLO) fed to a real host connection over a
// socketpair. Guest blobs get a real sealed memfd of their declared size, so
// rings map and cross-domain commands run; the compositor is a listening
// socket here that answers each new connection with a message carrying a
// memfd and a pipe, so RECEIVE, blob claiming and WRITE paths run too.
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

// New compositor clients get one message with a memfd and a write pipe.
static void serve_compositor(int *clients, size_t *nclients)
{
	for (int fd; *nclients < 16 && (fd = accept4(listener, NULL, NULL,
						      SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0;) {
		int mem = sml_memfd_create("fuzz-keymap", 100), p[2];
		if (mem >= 0 && pipe2(p, O_CLOEXEC) == 0) {
			uint32_t msg[2] = { 1, 8u << 16 };
			int fds[2] = { mem, p[1] };
			send_with_fds(fd, msg, sizeof(msg), fds, 2);
			close(p[0]);
			close(p[1]);
		}
		sml_close(&mem);
		clients[(*nclients)++] = fd;
	}
	char sink[4096];
	for (size_t i = 0; i < *nclients; i++)
		while (recv(clients[i], sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
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

static void pump(struct wl_event_loop *loop, int guest, int *clients, size_t *nclients)
{
	for (int i = 0; i < 4; i++) {
		wl_event_loop_dispatch(loop, 0);
		wl_event_loop_dispatch_idle(loop);
		serve_compositor(clients, nclients);
		drain_guest(guest);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (listener < 0)
		setup_compositor();
	struct wl_event_loop *loop = wl_event_loop_create();
	struct host_server *server = host_server_create(loop, &config);
	int sv[2], clients[16];
	size_t nclients = 0;
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
		send_message(sv[1], data + off, len);
		off += len;
		pump(loop, sv[1], clients, &nclients);
	}
	pump(loop, sv[1], clients, &nclients);
	host_server_destroy(server);
	wl_event_loop_dispatch_idle(loop);
	for (size_t i = 0; i < nclients; i++)
		close(clients[i]);
	close(sv[1]);
	wl_event_loop_destroy(loop);
	return 0;
}
