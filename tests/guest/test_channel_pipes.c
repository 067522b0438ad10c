// SPDX-License-Identifier: MIT
// The guest channel in front of a scripted compositor socket: the test
// plays libwayland-client on the channel's wl_fd (raw bytes and fds) and
// the compositor on the socket sommelier-host connects to, so that every
// fd kind and pipe direction can be driven, which weston's headless
// backend never does. The channel, the socket device, the daemon, pipes and
// memfds are real. Everything runs in this one process: the channel's loop
// turns whenever the test waits.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <wayland-server-core.h>

#include "channel.h"
#include "fdpass.h"
#include "harness.h"
#include "util.h"
#include "vgpu.h"
#include "wire.h"

#define TIMEOUT_MS 10000
#define PAYLOAD (1u << 20)

static char host_sock[256], fake_path[256];
static pid_t host_pid;
static int fake_listener = -1;

struct chan {
	struct wl_event_loop *loop;
	struct guest_channel *ch;
	int wl; // the client's end (libwayland-client's, played by the test)
	int comp; // the compositor's end of the daemon's connection
	int closed;
	char reason[256];
};

static void fill_pattern(uint8_t *buf, size_t size, uint32_t seed)
{
	for (size_t i = 0; i < size; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
}

static uint64_t deadline_in(int ms)
{
	return sml_now_ns() + (uint64_t)ms * 1000000u;
}

static void on_closed(void *data, const char *reason)
{
	struct chan *c = data;
	c->closed++;
	snprintf(c->reason, sizeof(c->reason), "%s", reason);
}

static const struct guest_channel_listener listener = { .closed = on_closed };

static void chan_open(struct chan *c)
{
	struct vgpu_dev *dev;
	memset(c, 0, sizeof(*c));
	c->loop = wl_event_loop_create();
	CHECK(c->loop != NULL);
	CHECK_EQ(vgpu_socket_open(host_sock, &dev), 0);
	c->ch = guest_channel_create(c->loop, dev, &listener, c, &c->wl);
	CHECK(c->ch != NULL);
	// The daemon connects to the compositor when it runs the INIT.
	c->comp = harness_accept(fake_listener, TIMEOUT_MS);
	CHECK_EQ(c->closed, 0);
}

static void chan_close(struct chan *c)
{
	guest_channel_destroy(c->ch);
	sml_close(&c->wl);
	sml_close(&c->comp);
	wl_event_loop_destroy(c->loop);
}

// Runs the channel's loop until `fd` has one of `events`.
static void wait_fd(struct chan *c, int fd, short events)
{
	uint64_t deadline = deadline_in(TIMEOUT_MS);
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = fd, .events = events },
			{ .fd = wl_event_loop_get_fd(c->loop), .events = POLLIN },
		};
		CHECK(sml_now_ns() < deadline);
		CHECK(poll(pfd, 2, 100) >= 0);
		wl_event_loop_dispatch(c->loop, 0);
		if (pfd[0].revents)
			return;
	}
}

// Everything received on one side: bytes, fds, and for each fd the stream
// position of the first byte of the recvmsg that delivered it.
struct rx {
	uint8_t *buf;
	size_t len, cap;
	int fds[64];
	size_t fd_at[64];
	size_t nfds;
	bool eof;
};

static void rx_init(struct rx *r, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->buf = malloc(cap);
	r->cap = cap;
	CHECK(r->buf != NULL);
}

static void rx_finish(struct rx *r)
{
	for (size_t i = 0; i < r->nfds; i++)
		close(r->fds[i]);
	free(r->buf);
}

// Receives on `fd` (running the channel) until `size` bytes are there, or
// EOF when size is 0.
static void rx_until(struct chan *c, int fd, struct rx *r, size_t size)
{
	struct stat st;
	CHECK(fstat(fd, &st) == 0);
	while (size ? r->len < size : !r->eof) {
		wait_fd(c, fd, POLLIN);
		size_t nfds = 0;
		bool truncated = false;
		ssize_t n;
		if (S_ISSOCK(st.st_mode))
			n = sml_recv_fds(fd, r->buf + r->len, r->cap - r->len, r->fds + r->nfds,
					 SML_ARRAY_LEN(r->fds) - r->nfds, &nfds, &truncated,
					 MSG_DONTWAIT);
		else
			n = read(fd, r->buf + r->len, r->cap - r->len);
		if (n < 0 && errno == EAGAIN)
			continue;
		CHECK(n >= 0 && !truncated);
		for (size_t i = 0; i < nfds; i++)
			r->fd_at[r->nfds + i] = r->len;
		r->nfds += nfds;
		r->len += (size_t)n;
		r->eof = n == 0;
		CHECK(!r->eof || !size);
	}
}

static void send_all(int fd, const void *data, size_t size, const int *fds, size_t nfds)
{
	CHECK(sml_send_fds(fd, data, size, fds, nfds, 0) == (ssize_t)size);
}

// Pushes `size` pattern bytes into wfd and reads them from rfd until EOF,
// both non-blocking, with the channel running in between; wfd is closed
// after the last byte. Checks the bytes.
static void transfer(struct chan *c, int wfd, int rfd, size_t size, uint32_t seed)
{
	uint8_t *want = malloc(size), *got = malloc(size + 1);
	CHECK(want && got && sml_fd_set_nonblock(wfd) && sml_fd_set_nonblock(rfd));
	fill_pattern(want, size, seed);
	size_t woff = 0, roff = 0;
	uint64_t deadline = deadline_in(TIMEOUT_MS);
	for (bool eof = false; !eof;) {
		CHECK(sml_now_ns() < deadline);
		struct pollfd pfd[3] = {
			{ .fd = rfd, .events = POLLIN },
			{ .fd = wl_event_loop_get_fd(c->loop), .events = POLLIN },
			{ .fd = wfd, .events = POLLOUT },
		};
		poll(pfd, wfd >= 0 ? 3 : 2, 100);
		if (wfd >= 0) {
			ssize_t n = write(wfd, want + woff, size - woff);
			CHECK(n > 0 || errno == EAGAIN);
			woff += n > 0 ? (size_t)n : 0;
			if (woff == size)
				sml_close(&wfd);
		}
		wl_event_loop_dispatch(c->loop, 0);
		ssize_t n = read(rfd, got + roff, size + 1 - roff);
		CHECK(n >= 0 || errno == EAGAIN);
		roff += n > 0 ? (size_t)n : 0;
		eof = n == 0;
	}
	CHECK_EQ(roff, size);
	CHECK(memcmp(want, got, size) == 0);
	free(want);
	free(got);
}

static bool is_memfd(int fd)
{
	char path[64], target[256] = { 0 };
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return readlink(path, target, sizeof(target) - 1) > 0 &&
	       strncmp(target, "/memfd:", 7) == 0;
}

// ---- tests -------------------------------------------------------------------

// Bytes both ways, several SEND/RECEIVEs each, reassembled in order.
static void test_bytes(void)
{
	struct chan c;
	struct rx r;
	const size_t size = 20000;
	uint8_t *data = malloc(size);
	chan_open(&c);
	fill_pattern(data, size, 1);
	send_all(c.wl, data, size, NULL, 0);
	rx_init(&r, size);
	rx_until(&c, c.comp, &r, size);
	CHECK(memcmp(r.buf, data, size) == 0);
	rx_finish(&r);

	fill_pattern(data, size, 2);
	send_all(c.comp, data, size, NULL, 0);
	rx_init(&r, size);
	rx_until(&c, c.wl, &r, size);
	CHECK(memcmp(r.buf, data, size) == 0);
	rx_finish(&r);
	printf("bytes: %zu each way, byte-exact\n", size);
	free(data);
	CHECK_EQ(c.closed, 0);
	chan_close(&c);
}

// A client memfd (a wl_shm pool) reaches the compositor as the same memory.
static void memfd_to_compositor(size_t size)
{
	struct chan c;
	struct rx r;
	chan_open(&c);
	int fd = sml_memfd_create("pool", size);
	uint8_t *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(map != MAP_FAILED);
	fill_pattern(map, size, 3);
	uint8_t msg[64];
	size_t len = 0;
	wire_put(msg, &len, 4, 0, "nhi", 5, (uint32_t)size); // wl_shm.create_pool
	send_all(c.wl, msg, len, &fd, 1);
	rx_init(&r, 64);
	rx_until(&c, c.comp, &r, len);
	CHECK(memcmp(r.buf, msg, len) == 0);
	CHECK_EQ(r.nfds, 1);
	CHECK(is_memfd(r.fds[0]));
	struct stat st;
	CHECK(fstat(r.fds[0], &st) == 0 && (size_t)st.st_size == size);
	uint8_t *theirs = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r.fds[0], 0);
	CHECK(theirs != MAP_FAILED);
	CHECK(memcmp(theirs, map, size) == 0);
	theirs[100] ^= 0xff; // shared, not copied
	CHECK_EQ(map[100], theirs[100]);
	printf("memfd to the compositor: %zu bytes, a memfd sharing the client's pages\n", size);
	munmap(theirs, size);
	munmap(map, size);
	close(fd);
	rx_finish(&r);
	CHECK_EQ(c.closed, 0);
	chan_close(&c);
}

// Whole pages, and a pool that ends mid-page (the file keeps its size).
static void test_memfd_to_compositor(void)
{
	memfd_to_compositor(3 * 4096);
	memfd_to_compositor(250 * 250 * 4);
}

// wl_data_offer.receive: the client's pipe write end reaches the
// compositor as a write end; what is written there comes back to the
// client's read end, then EOF.
static void test_read_pipe(void)
{
	struct chan c;
	struct rx r;
	int p[2];
	chan_open(&c);
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	uint8_t msg[64];
	size_t len = 0;
	wire_put(msg, &len, 20, 1, "sh", "text/plain"); // wl_data_offer.receive
	send_all(c.wl, msg, len, &p[1], 1);
	close(p[1]);
	rx_init(&r, 64);
	rx_until(&c, c.comp, &r, len);
	CHECK_EQ(r.nfds, 1);
	CHECK_EQ(fcntl(r.fds[0], F_GETFL) & O_ACCMODE, O_WRONLY);
	int w = r.fds[0];
	r.nfds = 0;
	transfer(&c, w, p[0], PAYLOAD, 4);
	printf("read pipe: %u bytes byte-exact from the compositor's writer, then EOF\n",
	       PAYLOAD);
	close(p[0]);
	rx_finish(&r);
	CHECK_EQ(c.closed, 0);
	chan_close(&c);
}

// Three pipes in one sendmsg: the channel spreads them over SENDs (one read
// pipe each), yet every fd reaches the compositor no later than the bytes of
// its message, and each pipe still routes to its own reader.
static void test_read_pipes_one_chunk(void)
{
	struct chan c;
	struct rx r;
	int p[3][2], ends[3];
	size_t msg_end[3];
	uint8_t msg[256];
	size_t len = 0;
	chan_open(&c);
	wire_put(msg, &len, 1, 0, "n", 9); // wl_display.sync first: no fd
	for (int i = 0; i < 3; i++) {
		CHECK(pipe2(p[i], O_CLOEXEC) == 0);
		ends[i] = p[i][1];
		wire_put(msg, &len, 20 + (uint32_t)i, 1, "sh", "text/plain");
		msg_end[i] = len;
	}
	send_all(c.wl, msg, len, ends, 3);
	for (int i = 0; i < 3; i++)
		close(p[i][1]);
	rx_init(&r, 256);
	rx_until(&c, c.comp, &r, len);
	CHECK(memcmp(r.buf, msg, len) == 0);
	CHECK_EQ(r.nfds, 3);
	for (int i = 0; i < 3; i++) {
		printf("  pipe %d arrived with byte %zu, its message ends at byte %zu\n", i,
		       r.fd_at[i], msg_end[i]);
		CHECK(r.fd_at[i] < msg_end[i]);
		CHECK_EQ(fcntl(r.fds[i], F_GETFL) & O_ACCMODE, O_WRONLY);
	}
	for (int i = 2; i >= 0; i--) { // the order of use does not matter
		char text[16], got[32] = { 0 };
		int n = snprintf(text, sizeof(text), "pipe %d", i);
		CHECK(write(r.fds[i], text, (size_t)n) == n);
		sml_close(&r.fds[i]);
		struct rx back;
		rx_init(&back, sizeof(got));
		rx_until(&c, p[i][0], &back, 0); // until EOF
		CHECK_EQ(back.len, n);
		CHECK(memcmp(back.buf, text, (size_t)n) == 0);
		rx_finish(&back);
		close(p[i][0]);
	}
	r.nfds = 0;
	printf("three read pipes in one chunk: ids in sequence, each routed to its reader\n");
	rx_finish(&r);
	CHECK_EQ(c.closed, 0);
	chan_close(&c);
}

// Compositor memory (a keymap, say) reaches the client as an fd of the
// same content.
static void test_memfd_from_compositor(void)
{
	struct chan c;
	struct rx r;
	const size_t size = 5000;
	chan_open(&c);
	int fd = sml_memfd_create("keymap", size);
	uint8_t *want = malloc(size), *got = malloc(size);
	fill_pattern(want, size, 5);
	CHECK(pwrite(fd, want, size, 0) == (ssize_t)size);
	uint8_t msg[64];
	size_t len = 0;
	wire_put(msg, &len, 7, 0, "uhu", 1, (uint32_t)size); // wl_keyboard.keymap
	send_all(c.comp, msg, len, &fd, 1);
	close(fd);
	rx_init(&r, 64);
	rx_until(&c, c.wl, &r, len);
	CHECK(memcmp(r.buf, msg, len) == 0);
	CHECK_EQ(r.nfds, 1);
	CHECK(pread(r.fds[0], got, size, 0) == (ssize_t)size);
	CHECK(memcmp(want, got, size) == 0);
	uint8_t *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, r.fds[0], 0);
	CHECK(map != MAP_FAILED);
	CHECK(memcmp(map, want, size) == 0);
	munmap(map, size);
	printf("memfd from the compositor: %zu bytes, same content (pread and mmap)\n", size);
	free(want);
	free(got);
	rx_finish(&r);
	CHECK_EQ(c.closed, 0);
	chan_close(&c);
}

// wl_data_source.send: the compositor's write end reaches the client as a
// write end; what the client writes reaches the compositor's reader, then
// EOF.
static void test_write_pipe(void)
{
	struct chan c;
	struct rx r;
	int q[2];
	chan_open(&c);
	CHECK(pipe2(q, O_CLOEXEC) == 0);
	uint8_t msg[64];
	size_t len = 0;
	wire_put(msg, &len, 30, 1, "sh", "text/plain"); // wl_data_source.send
	send_all(c.comp, msg, len, &q[1], 1);
	close(q[1]);
	rx_init(&r, 64);
	rx_until(&c, c.wl, &r, len);
	CHECK(memcmp(r.buf, msg, len) == 0);
	CHECK_EQ(r.nfds, 1);
	CHECK_EQ(fcntl(r.fds[0], F_GETFL) & O_ACCMODE, O_WRONLY);
	int w = r.fds[0];
	r.nfds = 0;
	transfer(&c, w, q[0], PAYLOAD, 6);
	printf("write pipe: %u bytes byte-exact to the compositor's reader, then EOF\n",
	       PAYLOAD);
	close(q[0]);
	rx_finish(&r);
	CHECK_EQ(c.closed, 0);
	chan_close(&c);
}

// A client that reads nothing for a while: the channel stops polling, the
// daemon stops reading the compositor, and the compositor's socket fills up
// instead of a queue in the channel. Then everything arrives, in order.
static void test_slow_client(void)
{
	struct chan c;
	const size_t size = 16u << 20; // twice the channel's queue limit
	uint8_t *data = malloc(size), *got = malloc(size);
	chan_open(&c);
	fill_pattern(data, size, 8);
	CHECK(sml_fd_set_nonblock(c.comp) && sml_fd_set_nonblock(c.wl));
	size_t woff = 0, roff = 0;
	bool reading = false;
	uint64_t stalled_since = 0, deadline = deadline_in(60000);
	while (roff < size) {
		CHECK(sml_now_ns() < deadline);
		if (woff < size) {
			ssize_t n = write(c.comp, data + woff, SML_MIN(size - woff, (size_t)65536));
			CHECK(n > 0 || errno == EAGAIN);
			woff += n > 0 ? (size_t)n : 0;
			if (n > 0)
				stalled_since = 0;
			else if (!stalled_since)
				stalled_since = sml_now_ns();
		}
		// The compositor has been blocked for 300 ms: start reading.
		if (!reading && stalled_since && sml_now_ns() - stalled_since > 300000000u) {
			printf("  compositor blocked after %zu bytes; the client starts reading\n",
			       woff);
			CHECK(woff < size);
			reading = true;
		}
		struct pollfd pfd = { .fd = wl_event_loop_get_fd(c.loop), .events = POLLIN };
		poll(&pfd, 1, 5);
		wl_event_loop_dispatch(c.loop, 0);
		if (reading) {
			ssize_t n = read(c.wl, got + roff, size - roff);
			CHECK(n > 0 || errno == EAGAIN);
			roff += n > 0 ? (size_t)n : 0;
		}
		CHECK_EQ(c.closed, 0);
	}
	CHECK(memcmp(data, got, size) == 0);
	printf("slow client: %zu bytes byte-exact, no queue overflow\n", size);
	free(data);
	free(got);
	chan_close(&c);
}

// An fd that is neither memory nor a write end cannot cross: the channel
// fails with a reason, and the client sees EOF.
static void test_bad_fd(void)
{
	struct chan c;
	struct rx r;
	int sp[2];
	chan_open(&c);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
	uint32_t msg[2] = { 1, 8 << 16 };
	send_all(c.wl, msg, sizeof(msg), &sp[0], 1);
	rx_init(&r, 64);
	rx_until(&c, c.wl, &r, 0);
	for (int i = 0; i < 3 && !c.closed; i++)
		wl_event_loop_dispatch(c.loop, 10);
	CHECK_EQ(c.closed, 1);
	CHECK(strstr(c.reason, "neither memory nor") != NULL);
	printf("bad fd: closed: %s\n", c.reason);
	close(sp[0]);
	close(sp[1]);
	rx_finish(&r);
	chan_close(&c);
}

// The compositor's last words arrive, then EOF on wl_fd, and closed() once.
static void test_compositor_close(void)
{
	struct chan c;
	struct rx r;
	chan_open(&c);
	uint8_t msg[64];
	size_t len = 0;
	wire_put(msg, &len, 1, 0, "ous", 3, 1, "bye"); // wl_display.error
	send_all(c.comp, msg, len, NULL, 0);
	sml_close(&c.comp);
	rx_init(&r, 64);
	rx_until(&c, c.wl, &r, 0);
	CHECK_EQ(r.len, len);
	CHECK(memcmp(r.buf, msg, len) == 0);
	for (int i = 0; i < 5; i++)
		wl_event_loop_dispatch(c.loop, 10);
	CHECK_EQ(c.closed, 1);
	printf("compositor close: %zu bytes of last words, EOF, closed once: %s\n", len,
	       c.reason);
	rx_finish(&r);
	chan_close(&c);
}

static void cycle_once(uint32_t i)
{
	struct chan c;
	struct rx r;
	int p[2], q[2];
	uint8_t msg[64];
	size_t len = 0;
	chan_open(&c);
	// Client to compositor: a memfd and a read pipe.
	int mem = sml_memfd_create("cycle", 4096);
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	int out[2] = { mem, p[1] };
	wire_put(msg, &len, 5, 0, "nhi", 6, 4096);
	wire_put(msg, &len, 20, 1, "sh", "text/plain");
	send_all(c.wl, msg, len, out, 2);
	close(mem);
	close(p[1]);
	rx_init(&r, 64);
	rx_until(&c, c.comp, &r, len);
	CHECK_EQ(r.nfds, 2);
	CHECK(write(r.fds[1], "abc", 3) == 3);
	rx_finish(&r);
	struct rx back;
	rx_init(&back, 16);
	rx_until(&c, p[0], &back, 0);
	CHECK_EQ(back.len, 3);
	rx_finish(&back);
	close(p[0]);
	// Compositor to client: a memfd and a write pipe.
	mem = sml_memfd_create("cycle-keymap", 100);
	CHECK(pipe2(q, O_CLOEXEC) == 0);
	out[0] = mem;
	out[1] = q[1];
	send_all(c.comp, msg, len, out, 2);
	close(mem);
	close(q[1]);
	rx_init(&r, 64);
	rx_until(&c, c.wl, &r, len);
	CHECK_EQ(r.nfds, 2);
	CHECK(write(r.fds[1], "xy", 2) == 2);
	sml_close(&r.fds[1]);
	rx_init(&back, 16);
	rx_until(&c, q[0], &back, 0);
	CHECK_EQ(back.len, 2);
	rx_finish(&back);
	close(q[0]);
	rx_finish(&r);
	if (i % 2) { // the compositor ends it; the channel closes first
		sml_close(&c.comp);
		for (int k = 0; k < 200 && !c.closed; k++)
			wl_event_loop_dispatch(c.loop, 5);
		CHECK_EQ(c.closed, 1);
	}
	chan_close(&c);
}

static void test_no_leaks(uint32_t cycles)
{
	cycle_once(0);
	usleep(200000);
	int host_before = harness_count_fds(host_pid), own_before = harness_count_fds(getpid());
	for (uint32_t i = 0; i < cycles; i++)
		cycle_once(i);
	usleep(300000); // the daemon reaps closed connections from its loop
	int host_after = harness_count_fds(host_pid), own_after = harness_count_fds(getpid());
	printf("leaks: %u cycles with memfds and pipes both ways: test fds %d -> %d, "
	       "host fds %d -> %d\n", cycles, own_before, own_after, host_before, host_after);
	CHECK_EQ(own_after, own_before);
	CHECK_EQ(host_after, host_before);
}

int main(void)
{
	const char *dir = harness_runtime_dir();
	atexit(harness_cleanup);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(fake_path, sizeof(fake_path), "%s/scripted-compositor", dir);
	snprintf(host_sock, sizeof(host_sock), "%s/host.sock", dir);
	fake_listener = harness_listen_unix(fake_path);
	host_pid = harness_start_host(host_sock, fake_path, NULL);

	static const struct harness_test tests[] = {
		{ "bytes both ways", test_bytes },
		{ "memfd to the compositor", test_memfd_to_compositor },
		{ "read pipe", test_read_pipe },
		{ "three read pipes in one chunk", test_read_pipes_one_chunk },
		{ "memfd from the compositor", test_memfd_from_compositor },
		{ "write pipe", test_write_pipe },
		{ "slow client", test_slow_client },
		{ "bad fd", test_bad_fd },
		{ "compositor close", test_compositor_close },
	};
	int passed = harness_run(tests, SML_ARRAY_LEN(tests));
	printf("--- no leaks over 50 cycles\n");
	test_no_leaks(50);
	passed++;
	CHECK(kill(host_pid, 0) == 0);
	CHECK_EQ(harness_stop(host_pid), 0);
	close(fake_listener);
	printf("%d passed, 0 failed\n", passed);
	return 0;
}
