// SPDX-License-Identifier: MIT
// sommelier-host in front of a scripted compositor socket. weston's headless
// backend has no seat, so it never sends clipboard pipes; this test plays the
// compositor's side of the socket itself to drive every kind of fd a
// compositor can send and every pipe direction, plus a compositor that stops
// reading. Everything else is real: the daemon, its sockets, pipes, memfds.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdpass.h"
#include "harness.h"
#include "sdev_client.h"
#include "util.h"

#define TIMEOUT 5000
#define PAYLOAD (1u << 20)

static char host_sock[256], small_sock[256], budget_sock[256], fake_path[256];
static pid_t host_pid, small_pid, budget_pid;

// --max-fds of the host at budget_sock. A context costs 4 of it: two ring
// blobs and the compositor connection (its fd and the event loop's dup).
#define FD_BUDGET 16
#define CTX_FDS 4
static int fake_listener = -1;

// Deterministic bytes both ends of a pipe can produce.
static void fill_pattern(uint8_t *buf, size_t size, uint32_t seed)
{
	for (size_t i = 0; i < size; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
}

static int fake_accept(void)
{
	return harness_accept(fake_listener, TIMEOUT);
}

// A guest context whose compositor connection is `*wl` on our side.
static void open_ctx(struct sdev_client *c, uint32_t id, struct test_ctx *t, int *wl)
{
	test_ctx_create(c, id, t);
	*wl = fake_accept();
}

static void fake_send(int wl, const void *data, size_t size, const int *fds, size_t nfds)
{
	CHECK(sml_send_fds(wl, data, size, fds, nfds, 0) == (ssize_t)size);
}

// Receives what the host wrote to the compositor; returns bytes, fills fds.
static size_t fake_recv(int wl, void *buf, size_t cap, int *fds, size_t *nfds)
{
	struct pollfd pfd = { .fd = wl, .events = POLLIN };
	bool truncated;
	CHECK(poll(&pfd, 1, TIMEOUT) == 1);
	ssize_t n = sml_recv_fds(wl, buf, cap, fds, 28, nfds, &truncated, 0);
	CHECK(n > 0 && !truncated);
	return (size_t)n;
}

static void poll_event(struct test_ctx *t, struct cd_command *ev, uint8_t page[CD_RING_SIZE])
{
	CHECK(test_ctx_poll(t, ev, page, TIMEOUT));
}

// Reads READ events of pipe `id` until its hang-up; returns the bytes.
static uint8_t *drain_read_pipe(struct test_ctx *t, uint32_t id, size_t *size)
{
	uint8_t *data = malloc(2 * PAYLOAD);
	CHECK(data != NULL);
	*size = 0;
	for (;;) {
		struct cd_command ev;
		uint8_t page[CD_RING_SIZE];
		poll_event(t, &ev, page);
		CHECK_EQ(ev.cmd, CD_CMD_READ);
		CHECK_EQ(ev.u.rw.identifier, id);
		CHECK(*size + ev.data_size <= 2 * PAYLOAD);
		memcpy(data + *size, ev.data, ev.data_size);
		*size += ev.data_size;
		if (ev.u.rw.hang_up)
			return data;
	}
}

// wl_data_offer.receive in the guest: a READ_PIPE travels to the compositor
// as a write end; what its writer sends comes back as READs, then hang-up.
static void test_read_pipe(struct sdev_client *c)
{
	struct test_ctx t;
	int wl;
	open_ctx(c, 1, &t, &wl);
	for (uint32_t round = 1; round <= 2; round++) {
		uint32_t id = CD_READ_PIPE_ID_BASE + round, type = CD_ID_READ_PIPE;
		uint8_t msg[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, got[64];
		int fds[28];
		size_t nfds;
		CHECK_EQ(test_ctx_send(&t, msg, sizeof(msg), 1, &id, &type), 0);
		CHECK_EQ(fake_recv(wl, got, sizeof(got), fds, &nfds), sizeof(msg));
		CHECK_EQ(nfds, 1);
		CHECK_EQ(fcntl(fds[0], F_GETFL) & O_ACCMODE, O_WRONLY);
		pid_t writer = fork();
		CHECK(writer >= 0);
		if (writer == 0) {
			uint8_t *data = malloc(PAYLOAD);
			fill_pattern(data, PAYLOAD, round);
			for (size_t off = 0; off < PAYLOAD;) {
				ssize_t n = write(fds[0], data + off, PAYLOAD - off);
				if (n <= 0)
					_exit(1);
				off += (size_t)n;
			}
			_exit(0);
		}
		close(fds[0]);
		size_t size;
		uint8_t *data = drain_read_pipe(&t, id, &size);
		uint8_t *want = malloc(PAYLOAD);
		fill_pattern(want, PAYLOAD, round);
		CHECK_EQ(size, PAYLOAD);
		CHECK(memcmp(data, want, PAYLOAD) == 0);
		int status;
		CHECK(waitpid(writer, &status, 0) == writer && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0);
		free(data);
		free(want);
	}
	printf("read pipes: 2 x %u bytes byte-exact, EOF as hang-up\n", PAYLOAD);
	test_ctx_destroy(&t);
	close(wl);
}

static void write_all(struct test_ctx *t, uint32_t id, const uint8_t *data, size_t size)
{
	uint8_t cmd[CD_RING_SIZE];
	for (size_t off = 0; off < size; off += CD_MAX_RW_DATA) {
		uint32_t n = (uint32_t)SML_MIN((size_t)CD_MAX_RW_DATA, size - off);
		size_t len = cd_encode_read_write(cmd, sizeof(cmd), CD_CMD_WRITE, false, id, false,
						  data + off, n);
		CHECK_EQ(sdev_client_exec(t->c, t->id, 0, 0, NULL, 0, cmd, len, NULL), 0);
	}
	size_t len = cd_encode_read_write(cmd, sizeof(cmd), CD_CMD_WRITE, false, id, true, NULL, 0);
	CHECK_EQ(sdev_client_exec(t->c, t->id, 0, 0, NULL, 0, cmd, len, NULL), 0);
}

// wl_data_source.send from the compositor: a write end arrives as a
// WRITE_PIPE identifier; the guest's WRITEs reach the reader, then EOF.
static void test_write_pipe(struct sdev_client *c)
{
	struct test_ctx t;
	int wl, p[2];
	open_ctx(c, 1, &t, &wl);
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	pid_t reader = fork();
	CHECK(reader >= 0);
	if (reader == 0) {
		close(p[1]);
		uint8_t *got = malloc(2 * PAYLOAD), *want = malloc(PAYLOAD);
		size_t size = 0;
		for (ssize_t n; (n = read(p[0], got + size, 2 * PAYLOAD - size)) > 0;)
			size += (size_t)n;
		fill_pattern(want, PAYLOAD, 7);
		_exit(size == PAYLOAD && memcmp(got, want, PAYLOAD) == 0 ? 0 : 1);
	}
	close(p[0]);
	uint32_t msg = 0xabcd;
	fake_send(wl, &msg, sizeof(msg), &p[1], 1);
	close(p[1]);
	struct cd_command ev;
	uint8_t page[CD_RING_SIZE];
	poll_event(&t, &ev, page);
	CHECK_EQ(ev.cmd, CD_CMD_RECEIVE);
	CHECK_EQ(ev.u.sr.num_identifiers, 1);
	CHECK_EQ(ev.u.sr.identifier_types[0], CD_ID_WRITE_PIPE);
	CHECK_EQ(ev.data_size, 4);
	uint8_t *data = malloc(PAYLOAD);
	fill_pattern(data, PAYLOAD, 7);
	write_all(&t, ev.u.sr.identifiers[0], data, PAYLOAD);
	int status;
	CHECK(waitpid(reader, &status, 0) == reader && WIFEXITED(status) &&
	      WEXITSTATUS(status) == 0);
	printf("write pipe: %u bytes byte-exact to the compositor's reader, then EOF\n", PAYLOAD);
	free(data);
	test_ctx_destroy(&t);
	close(wl);
}

// Memory from the compositor (a keymap, say) becomes a blob id with its
// size; the guest claims it once as a host blob and sees the bytes.
static void test_fd_kinds(struct sdev_client *c)
{
	struct test_ctx t;
	int wl, p[2], sp[2];
	open_ctx(c, 1, &t, &wl);
	int mem = sml_memfd_create("keymap", 5000);
	CHECK(write(mem, "xkb_keymap {", 12) == 12);
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
	int fds[3] = { mem, p[1], sp[0] };
	uint32_t msg[2] = { 1, 2 };
	fake_send(wl, msg, sizeof(msg), fds, 3);
	close(p[1]); // the host holds the only write end now
	struct cd_command ev;
	uint8_t page[CD_RING_SIZE];
	poll_event(&t, &ev, page);
	CHECK_EQ(ev.u.sr.num_identifiers, 3);
	CHECK_EQ(ev.u.sr.identifier_types[0], CD_ID_VIRTGPU_BLOB);
	CHECK_EQ(ev.u.sr.identifier_sizes[0], 5000);
	CHECK_EQ(ev.u.sr.identifier_types[1], CD_ID_WRITE_PIPE);
	// A socket is neither memory nor a write pipe: the guest gets a pipe
	// that discards, and the context lives on.
	CHECK_EQ(ev.u.sr.identifier_types[2], CD_ID_WRITE_PIPE);

	uint32_t blob = ev.u.sr.identifiers[0], res;
	int fd;
	CHECK_EQ(sdev_client_create_host_blob(c, 1, blob, 12288, &res, &fd), -EINVAL);
	CHECK_EQ(sdev_client_create_host_blob(c, 1, blob, 8192, &res, &fd), 0);
	char head[13] = { 0 };
	CHECK(pread(fd, head, 12, 0) == 12 && strcmp(head, "xkb_keymap {") == 0);
	CHECK_EQ(sdev_client_create_host_blob(c, 1, blob, 8192, &res, &(int){ 0 }), -ENOENT);
	write_all(&t, ev.u.sr.identifiers[2], (const uint8_t *)"dropped", 7);
	write_all(&t, ev.u.sr.identifiers[1], (const uint8_t *)"kept", 4);
	char buf[8] = { 0 };
	CHECK(read(p[0], buf, sizeof(buf)) == 4 && memcmp(buf, "kept", 4) == 0);
	CHECK(read(p[0], buf, sizeof(buf)) == 0); // hang-up closed it

	fake_send(wl, msg, sizeof(msg), NULL, 0); // still alive
	poll_event(&t, &ev, page);
	CHECK_EQ(ev.data_size, sizeof(msg));
	close(fd);
	close(mem);
	close(p[0]);
	close(sp[0]);
	close(sp[1]);
	test_ctx_destroy(&t);
	close(wl);
}

static void test_eof(struct sdev_client *c)
{
	struct test_ctx t;
	int wl;
	open_ctx(c, 1, &t, &wl);
	uint32_t last[2] = { 1, 8 << 16 };
	fake_send(wl, last, sizeof(last), NULL, 0);
	close(wl);
	struct cd_command ev;
	uint8_t page[CD_RING_SIZE];
	poll_event(&t, &ev, page);
	CHECK_EQ(ev.data_size, 8); // what was said before closing still arrives
	poll_event(&t, &ev, page);
	CHECK_EQ(ev.cmd, CD_CMD_RECEIVE);
	CHECK(ev.data_size == 0 && ev.u.sr.num_identifiers == 0);
	test_ctx_destroy(&t);
}

static void expect_lost(struct sdev_client *c, uint32_t ctx_id, const char *needle)
{
	struct test_msg *m = sdev_client_wait(c, SDEV_EVENT_CONTEXT_LOST, UINT32_MAX, ctx_id,
					      TIMEOUT);
	CHECK(m != NULL);
	char reason[SDEV_MAX_REASON + 1] = { 0 };
	memcpy(reason, m->msg.payload, m->msg.payload_size);
	printf("  context %u lost: %s\n", ctx_id, reason);
	CHECK(strstr(reason, needle) != NULL);
	test_msg_free(m);
}

// A compositor that stops reading never blocks the daemon: requests queue
// up to the limit, the other context keeps its round trips, and then the
// stalled context alone is ended.
static void test_compositor_not_reading(void)
{
	struct sdev_client *c = sdev_client_connect(small_sock);
	struct test_ctx stalled, other;
	int wl_stalled, wl_other;
	open_ctx(c, 1, &stalled, &wl_stalled);
	open_ctx(c, 2, &other, &wl_other);
	static uint8_t chunk[CD_MAX_SEND_DATA];
	size_t sent = 0;
	int err = 0;
	while (!err && sent < (8u << 20)) {
		err = test_ctx_send(&stalled, chunk, sizeof(chunk), 0, NULL, NULL);
		sent += err ? 0 : sizeof(chunk);
		if (sent == 30 * sizeof(chunk)) {
			uint32_t ping[2] = { 1, 8 << 16 };
			uint8_t got[16];
			int fds[28];
			size_t nfds;
			CHECK_EQ(test_ctx_send(&other, ping, sizeof(ping), 0, NULL, NULL), 0);
			CHECK_EQ(fake_recv(wl_other, got, sizeof(got), fds, &nfds), sizeof(ping));
			fake_send(wl_other, ping, sizeof(ping), NULL, 0);
			struct cd_command ev;
			uint8_t page[CD_RING_SIZE];
			poll_event(&other, &ev, page);
			CHECK_EQ(ev.data_size, sizeof(ping));
		}
	}
	CHECK(err < 0);
	printf("not reading: %zu bytes accepted before the limit\n", sent);
	CHECK(sent >= 256u << 10);
	expect_lost(c, 1, "not reading");
	uint32_t ping[2] = { 1, 8 << 16 };
	fake_send(wl_other, ping, sizeof(ping), NULL, 0);
	struct cd_command ev;
	uint8_t page[CD_RING_SIZE];
	poll_event(&other, &ev, page);
	CHECK_EQ(ev.data_size, sizeof(ping));
	test_ctx_destroy(&stalled);
	test_ctx_destroy(&other);
	close(wl_stalled);
	close(wl_other);
	sdev_client_destroy(c);
}

static void test_pipe_limit(void)
{
	struct sdev_client *c = sdev_client_connect(small_sock);
	struct test_ctx t;
	int wl;
	open_ctx(c, 1, &t, &wl);
	uint32_t type = CD_ID_READ_PIPE, msg[2] = { 1, 8 << 16 };
	for (uint32_t i = 1; i <= 4; i++) {
		uint32_t id = CD_READ_PIPE_ID_BASE + i;
		CHECK_EQ(test_ctx_send(&t, msg, sizeof(msg), 1, &id, &type), 0);
	}
	uint32_t id = CD_READ_PIPE_ID_BASE + 5;
	CHECK(test_ctx_send(&t, msg, sizeof(msg), 1, &id, &type) < 0);
	expect_lost(c, 1, "pipe");
	test_ctx_destroy(&t);
	close(wl);
	sdev_client_destroy(c);
}

// Per-connection limits answer with clear errors and end nothing else.
static void test_limits(void)
{
	struct sdev_client *c = sdev_client_connect(small_sock);
	for (uint32_t id = 1; id <= 3; id++)
		CHECK_EQ(sdev_client_context_init(c, id, CD_CAPSET_ID, 2, 2), 0);
	CHECK_EQ(sdev_client_context_init(c, 4, CD_CAPSET_ID, 2, 2), -ENOSPC);
	int big = sml_memfd_create("big", 2u << 20);
	uint32_t res;
	CHECK_EQ(sdev_client_create_guest_blob(c, 1, big, 2u << 20, &res), -ENOMEM);
	int fd = sml_memfd_create("small", 4096);
	for (int i = 0; i < 8; i++)
		CHECK_EQ(sdev_client_create_guest_blob(c, 1, fd, 4096, &res), 0);
	CHECK_EQ(sdev_client_create_guest_blob(c, 1, fd, 4096, &res), -ENOSPC);
	struct sdev_resource r = { .res_handle = res };
	uint32_t seq = sdev_client_send(c, SDEV_RESOURCE_DESTROY, SDEV_FLAG_REPLY, 1, &r,
					sizeof(r), NULL, 0, NULL, 0);
	struct test_msg *m = sdev_client_wait(c, TEST_ANY_REPLY, seq, UINT32_MAX, TIMEOUT);
	CHECK(m && m->msg.hdr.type == SDEV_REPLY_OK);
	test_msg_free(m);
	CHECK_EQ(sdev_client_create_guest_blob(c, 1, fd, 4096, &res), 0); // room again
	close(fd);
	close(big);

	// Connections: the limits count this one too. This process, one peer,
	// gets 3 of the 4; another process gets the last, and no more.
	struct sdev_client *more[2];
	for (int i = 0; i < 2; i++)
		CHECK((more[i] = sdev_client_connect(small_sock)) != NULL);
	struct sdev_client *refused = sdev_client_connect_raw(small_sock);
	CHECK(refused != NULL && sdev_client_wait_eof(refused, TIMEOUT));
	sdev_client_destroy(refused);
	pid_t other = fork();
	CHECK(other >= 0);
	if (other == 0) {
		// _exit throughout: the test's atexit cleanup belongs to the parent.
		if (!sdev_client_connect(small_sock))
			_exit(1);
		refused = sdev_client_connect_raw(small_sock);
		_exit(refused && sdev_client_wait_eof(refused, TIMEOUT) ? 0 : 2);
	}
	int status;
	CHECK(waitpid(other, &status, 0) == other && WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	for (int i = 0; i < 2; i++)
		sdev_client_destroy(more[i]);
	sdev_client_destroy(c);
	printf("limits: contexts 3, resources 8, memory 1 MiB, connections 4, 3 per peer "
	       "enforced\n");
}

// Fills ctx `id`'s budget with blobs of `mem`, leaving `room` fds free.
static void fill_budget(struct sdev_client *c, uint32_t id, int mem, uint32_t room,
			uint32_t *last)
{
	for (uint32_t i = 0; i < FD_BUDGET - CTX_FDS - room; i++)
		CHECK_EQ(sdev_client_create_guest_blob(c, id, mem, 4096, last), 0);
}

static void destroy_resource(struct sdev_client *c, uint32_t ctx_id, uint32_t handle)
{
	struct sdev_resource r = { .res_handle = handle };
	uint32_t seq = sdev_client_send(c, SDEV_RESOURCE_DESTROY, SDEV_FLAG_REPLY, ctx_id, &r,
					sizeof(r), NULL, 0, NULL, 0);
	struct test_msg *m = sdev_client_wait(c, TEST_ANY_REPLY, seq, UINT32_MAX, TIMEOUT);
	CHECK(m && m->msg.hdr.type == SDEV_REPLY_OK);
	test_msg_free(m);
}

// Passes blob `handle` to the compositor and checks that it arrives.
static void pass_blob(struct test_ctx *t, int wl, uint32_t handle)
{
	uint32_t type = CD_ID_VIRTGPU_BLOB, msg[2] = { 1, 8 << 16 }, got[4];
	int fds[28];
	size_t nfds;
	CHECK_EQ(test_ctx_send(t, msg, sizeof(msg), 1, &handle, &type), 0);
	CHECK_EQ(fake_recv(wl, got, sizeof(got), fds, &nfds), sizeof(msg));
	CHECK_EQ(nfds, 1);
	close(fds[0]);
}

// Every fd the host holds for a guest counts against that connection's
// budget: past it, that guest gets EMFILE or loses the context that asked,
// other connections carry on, and what is given back is room again.
static void test_fd_budget(void)
{
	int host_fds = harness_count_fds(budget_pid);
	struct sdev_client *c = sdev_client_connect(budget_sock);
	struct test_ctx t;
	int wl, mem = sml_memfd_create("blob", 4096);
	uint32_t last, type = CD_ID_VIRTGPU_BLOB, msg[2] = { 1, 8 << 16 };
	open_ctx(c, 1, &t, &wl);
	fill_budget(c, 1, mem, 0, &last);
	CHECK_EQ(sdev_client_create_guest_blob(c, 1, mem, 4096, &(uint32_t){ 0 }), -EMFILE);

	// Another connection has a budget of its own.
	struct sdev_client *other = sdev_client_connect(budget_sock);
	struct test_ctx t2;
	int wl2;
	open_ctx(other, 1, &t2, &wl2);
	fill_budget(other, 1, mem, 2, &(uint32_t){ 0 });
	uint32_t other_blob;
	CHECK_EQ(sdev_client_create_guest_blob(other, 1, mem, 4096, &other_blob), 0);

	// fds queued towards the compositor count until sent, then leave.
	destroy_resource(c, 1, last);
	CHECK_EQ(sdev_client_create_guest_blob(c, 1, mem, 4096, &last), 0);
	destroy_resource(c, 1, last);
	for (int i = 0; i < 3; i++)
		pass_blob(&t, wl, t.channel_res);
	CHECK_EQ(sdev_client_create_guest_blob(c, 1, mem, 4096, &last), 0);
	CHECK(test_ctx_send(&t, msg, sizeof(msg), 1, &last, &type) < 0);
	expect_lost(c, 1, "fd budget reached");
	pass_blob(&t2, wl2, other_blob); // the other guest is unaffected
	test_ctx_destroy(&t);
	close(wl);

	// Compositor fds past the budget end the context they came to.
	open_ctx(c, 2, &t, &wl);
	fill_budget(c, 2, mem, 1, &last);
	int sent[2] = { sml_memfd_create("a", 4096), sml_memfd_create("b", 4096) };
	fake_send(wl, msg, sizeof(msg), sent, 2);
	struct cd_command ev;
	uint8_t page[CD_RING_SIZE];
	poll_event(&t, &ev, page); // the end of the stream, not a partial message
	CHECK(ev.cmd == CD_CMD_RECEIVE && ev.data_size == 0 && ev.u.sr.num_identifiers == 0);
	expect_lost(c, 2, "fd budget reached");
	test_ctx_destroy(&t);
	close(wl);

	// A read pipe needs 3: its read end, the event loop's dup, the write end.
	open_ctx(c, 3, &t, &wl);
	fill_budget(c, 3, mem, 2, &last);
	uint32_t pipe_id = CD_READ_PIPE_ID_BASE + 1, pipe_type = CD_ID_READ_PIPE;
	CHECK(test_ctx_send(&t, msg, sizeof(msg), 1, &pipe_id, &pipe_type) < 0);
	expect_lost(c, 3, "fd budget reached: no room for another pipe");
	test_ctx_destroy(&t);
	close(wl);

	// All of it came back: exactly the whole budget is there again.
	open_ctx(c, 4, &t, &wl);
	fill_budget(c, 4, mem, 0, &last);
	CHECK_EQ(sdev_client_create_guest_blob(c, 4, mem, 4096, &last), -EMFILE);
	test_ctx_destroy(&t);
	close(wl);

	test_ctx_destroy(&t2);
	close(wl2);
	sdev_client_destroy(other);
	sdev_client_destroy(c);
	for (int i = 0; i < 2; i++)
		close(sent[i]);
	close(mem);
	usleep(200000); // the daemon reaps closed connections from its loop
	CHECK_EQ(harness_count_fds(budget_pid), host_fds);
	printf("fd budget %d: blobs, queued fds, compositor fds and pipes enforced\n",
	       FD_BUDGET);
}

// A TCP socket whose last close waits `seconds`: SO_LINGER, a full send
// buffer, and a peer (*peer) that does not read.
static int lingering_socket(int seconds, int *peer)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	int lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(bind(lst, (struct sockaddr *)&addr, sizeof(addr)) == 0 && listen(lst, 1) == 0);
	CHECK(getsockname(lst, (struct sockaddr *)&addr, &len) == 0);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ 4096 }, sizeof(int)) == 0);
	CHECK(connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
	*peer = accept4(lst, NULL, NULL, SOCK_CLOEXEC);
	CHECK(*peer >= 0);
	close(lst);
	CHECK(setsockopt(*peer, SOL_SOCKET, SO_RCVBUF, &(int){ 4096 }, sizeof(int)) == 0);
	struct linger lg = { .l_onoff = 1, .l_linger = seconds };
	CHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0);
	CHECK(sml_fd_set_nonblock(fd));
	static uint8_t junk[65536];
	while (send(fd, junk, sizeof(junk), MSG_NOSIGNAL) > 0)
		;
	return fd;
}

// The last close of some fds blocks (a socket that lingers, a file on a
// stalled FUSE mount): the host closes guests' fds off its loop, so others
// are served meanwhile.
static void test_lingering_fd(void)
{
	int peer, fd = lingering_socket(10, &peer);
	struct sdev_client *g = sdev_client_connect(host_sock);
	struct sdev_client *victim = sdev_client_connect(host_sock);
	// The socket as a blob's memory, on a context that does not exist; our
	// copy is closed before the host sees the request, so its is the last.
	struct {
		struct sdev_header h;
		struct sdev_create_blob b;
	} req = { { .type = SDEV_RESOURCE_CREATE_BLOB, .num_fds = 1, .size = sizeof(req),
		    .seq = 5, .ctx_id = 99 },
		  { .blob_mem = SDEV_BLOB_MEM_GUEST, .size = 4096 } };
	CHECK(sml_send_fds(g->fd, &req, sizeof(req.h), &fd, 1, 0) == sizeof(req.h));
	close(fd);
	usleep(100000);
	CHECK(send(g->fd, &req.b, sizeof(req.b), MSG_NOSIGNAL) == sizeof(req.b));
	usleep(200000);
	uint64_t start = sml_now_ns();
	uint32_t seq = sdev_client_send(victim, SDEV_GET_CAPS, 0, 0, &(struct sdev_get_caps){ 5, 0 },
					sizeof(struct sdev_get_caps), NULL, 0, NULL, 0);
	struct test_msg *m = sdev_client_wait(victim, SDEV_REPLY_CAPS, seq, UINT32_MAX, 15000);
	double ms = (double)(sml_now_ns() - start) / 1e6;
	printf("another guest's GET_CAPS while a guest's socket lingers: %.1f ms\n", ms);
	CHECK(m != NULL && ms < 2000);
	test_msg_free(m);
	sdev_client_destroy(victim);
	sdev_client_destroy(g);
	close(peer); // the lingering close ends now
}

static int free_tcp_port(void)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&addr, &len) == 0);
	close(fd);
	return ntohs(addr.sin_port);
}

// TCP carries no fds: the handshake says so, requests that need none work,
// and those that need one fail with a reason instead of misbehaving.
static void test_tcp(int port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
	struct sdev_client *c = sdev_client_from_fd(fd);
	struct sdev_hello hello = { .magic = SDEV_MAGIC, .version = SDEV_VERSION,
				    .features = SDEV_FEATURE_FD_PASSING };
	uint32_t seq = sdev_client_send(c, SDEV_HELLO, 0, 0, &hello, sizeof(hello), NULL, 0,
					NULL, 0);
	struct test_msg *m = sdev_client_wait(c, SDEV_REPLY_HELLO, seq, UINT32_MAX, TIMEOUT);
	CHECK(m != NULL);
	CHECK_EQ(m->msg.u.hello.features, 0);
	test_msg_free(m);
	CHECK_EQ(sdev_client_context_init(c, 1, CD_CAPSET_ID, 2, 2), 0);
	uint32_t res;
	int blob_fd;
	CHECK_EQ(sdev_client_create_guest_blob(c, 1, -1, 4096, &res), -EINVAL);
	CHECK_EQ(sdev_client_create_host_blob(c, 1, 1, 4096, &res, &blob_fd), -EOPNOTSUPP);
	sdev_client_destroy(c);
	printf("tcp: handshake without fd passing on port %d\n", port);
}

// Pipes both ways and claimed blobs, over and over: no fd stays behind.
static void cycle_once(uint32_t i)
{
	struct sdev_client *c = sdev_client_connect(host_sock);
	struct test_ctx t;
	int wl, fds[28], p[2];
	size_t nfds, size;
	open_ctx(c, 1 + i % 4, &t, &wl);
	uint32_t id = CD_READ_PIPE_ID_BASE + 1, type = CD_ID_READ_PIPE, msg[2] = { 1, 8 << 16 };
	uint8_t got[64];
	CHECK_EQ(test_ctx_send(&t, msg, sizeof(msg), 1, &id, &type), 0);
	CHECK_EQ(fake_recv(wl, got, sizeof(got), fds, &nfds), sizeof(msg));
	CHECK(write(fds[0], "abc", 3) == 3);
	close(fds[0]);
	free(drain_read_pipe(&t, id, &size));
	CHECK_EQ(size, 3);

	int mem = sml_memfd_create("blob", 100);
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	int out[2] = { mem, p[1] };
	fake_send(wl, msg, sizeof(msg), out, 2);
	close(mem);
	close(p[1]);
	struct cd_command ev;
	uint8_t page[CD_RING_SIZE];
	poll_event(&t, &ev, page);
	uint32_t res;
	int fd;
	CHECK_EQ(sdev_client_create_host_blob(c, t.id, ev.u.sr.identifiers[0], 4096, &res, &fd), 0);
	close(fd);
	write_all(&t, ev.u.sr.identifiers[1], (const uint8_t *)"xy", 2);
	CHECK(read(p[0], got, sizeof(got)) == 2);
	close(p[0]);
	if (i % 2)
		test_ctx_destroy(&t);
	else
		test_ctx_forget(&t); // the hang-up tears the host side down
	close(wl);
	sdev_client_destroy(c);
}

static void test_no_leaks(uint32_t cycles)
{
	usleep(200000);
	int before = harness_count_fds(host_pid), own = harness_count_fds(getpid());
	for (uint32_t i = 0; i < cycles; i++)
		cycle_once(i);
	usleep(200000);
	int after = harness_count_fds(host_pid);
	printf("leaks: %u pipe/blob cycles: host fds %d -> %d, test fds %d -> %d\n", cycles,
	       before, after, own, harness_count_fds(getpid()));
	CHECK_EQ(after, before);
	CHECK_EQ(harness_count_fds(getpid()), own);
}

// A compositor whose listen backlog is full answers connect with EAGAIN:
// the host retries, keeps what the guest sends meanwhile, and delivers it
// once the compositor accepts; the guest never sees an EOF.
static void test_busy_compositor(struct sdev_client *c)
{
	CHECK(listen(fake_listener, 0) == 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	memcpy(addr.sun_path, fake_path, strlen(fake_path) + 1);
	int filler = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(filler >= 0 && connect(filler, (struct sockaddr *)&addr, sizeof(addr)) == 0);
	struct test_ctx t;
	test_ctx_create(c, 9, &t);
	uint8_t msg[12] = "early bytes", got[64];
	int fds[28];
	size_t nfds;
	CHECK_EQ(test_ctx_send(&t, msg, sizeof(msg), 0, NULL, NULL), 0);
	usleep(300000); // some 30 retries
	close(fake_accept()); // the filler
	close(filler);
	CHECK(listen(fake_listener, 16) == 0);
	int wl = fake_accept();
	CHECK_EQ(fake_recv(wl, got, sizeof(got), fds, &nfds), sizeof(msg));
	CHECK(nfds == 0 && memcmp(got, msg, sizeof(msg)) == 0);
	uint8_t event[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, page[CD_RING_SIZE];
	struct cd_command ev;
	fake_send(wl, event, sizeof(event), NULL, 0);
	poll_event(&t, &ev, page);
	CHECK(ev.cmd == CD_CMD_RECEIVE && ev.data_size == sizeof(event));
	close(wl);
	test_ctx_destroy(&t);
}

int main(void)
{
	const char *dir = harness_runtime_dir();
	atexit(harness_cleanup);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(fake_path, sizeof(fake_path), "%s/scripted-compositor", dir);
	snprintf(host_sock, sizeof(host_sock), "%s/host.sock", dir);
	snprintf(small_sock, sizeof(small_sock), "%s/small.sock", dir);
	snprintf(budget_sock, sizeof(budget_sock), "%s/budget.sock", dir);
	fake_listener = harness_listen_unix(fake_path);
	int port = free_tcp_port();
	char tcp_arg[64];
	snprintf(tcp_arg, sizeof(tcp_arg), "--tcp=127.0.0.1:%d", port);
	host_pid = harness_start_host(host_sock, fake_path, "--log-level=info", tcp_arg, NULL);
	small_pid = harness_start_host(small_sock, fake_path, "--max-queue=256", "--max-pipes=4",
				       "--max-contexts=3", "--max-resources=8", "--max-memory=1",
				       "--max-connections=4", "--max-connections-per-peer=3", NULL);
	char budget_arg[32];
	snprintf(budget_arg, sizeof(budget_arg), "--max-fds=%d", FD_BUDGET);
	budget_pid = harness_start_host(budget_sock, fake_path, budget_arg, NULL);

	struct sdev_client *c = sdev_client_connect(host_sock);
	int passed = 0;
	printf("--- read pipes\n");
	test_read_pipe(c), passed++;
	printf("--- write pipe\n");
	test_write_pipe(c), passed++;
	printf("--- fd kinds from the compositor\n");
	test_fd_kinds(c), passed++;
	printf("--- compositor with a full backlog\n");
	test_busy_compositor(c), passed++;
	printf("--- compositor EOF\n");
	test_eof(c), passed++;
	sdev_client_destroy(c);
	printf("--- compositor not reading\n");
	test_compositor_not_reading(), passed++;
	printf("--- pipe limit\n");
	test_pipe_limit(), passed++;
	printf("--- tcp\n");
	test_tcp(port), passed++;
	printf("--- limits\n");
	usleep(100000); // the daemon reaps closed connections from its loop
	test_limits(), passed++;
	printf("--- a guest fd that lingers\n");
	test_lingering_fd(), passed++;
	printf("--- fd budget\n");
	test_fd_budget(), passed++;
	printf("--- no leaks over 100 pipe cycles\n");
	test_no_leaks(100), passed++;
	CHECK_EQ(harness_stop(budget_pid), 0);
	CHECK_EQ(harness_stop(small_pid), 0);
	CHECK_EQ(harness_stop(host_pid), 0);
	printf("%d passed, 0 failed\n", passed);
	return 0;
}
