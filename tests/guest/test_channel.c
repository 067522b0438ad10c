// SPDX-License-Identifier: MIT
// The guest channel end to end: libwayland-client on one end of the
// channel's socketpair, the channel pumping it through the socket device to
// a real sommelier-host, which replays it against a real headless weston.
//
// The channel lives on a wl_event_loop that must run while libwayland-client
// waits, so wl_display_roundtrip (which blocks in poll on the display fd)
// cannot be used: turn() runs the loop and the display alternately.
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wayland-client.h>

#include "channel.h"
#include "harness.h"
#include "util.h"
#include "vgpu.h"

#define TIMEOUT_MS 5000

static char host_sock[256];
static pid_t host_pid;

struct conn {
	struct wl_event_loop *loop;
	struct guest_channel *ch;
	struct wl_display *display;
	int closed; // times the listener was called
	char reason[256];
};

static void on_closed(void *data, const char *reason)
{
	struct conn *c = data;
	c->closed++;
	snprintf(c->reason, sizeof(c->reason), "%s", reason);
}

static const struct guest_channel_listener channel_listener = { .closed = on_closed };

static void conn_open(struct conn *c)
{
	struct vgpu_dev *dev;
	int fd = -1;
	memset(c, 0, sizeof(*c));
	c->loop = wl_event_loop_create();
	CHECK(c->loop != NULL);
	CHECK_EQ(vgpu_socket_open(host_sock, &dev), 0);
	CHECK(dev->guest_memory);
	c->ch = guest_channel_create(c->loop, dev, &channel_listener, c, &fd);
	CHECK(c->ch != NULL && fd >= 0);
	c->display = wl_display_connect_to_fd(fd);
	CHECK(c->display != NULL);
}

static void conn_close(struct conn *c, bool display_first)
{
	if (display_first) {
		wl_display_disconnect(c->display);
		// The channel sees its client's end close and just goes quiet.
		for (int i = 0; i < 3; i++)
			wl_event_loop_dispatch(c->loop, 1);
		guest_channel_destroy(c->ch);
	} else {
		guest_channel_destroy(c->ch);
		wl_display_disconnect(c->display);
	}
	CHECK_EQ(c->closed, 0);
	wl_event_loop_destroy(c->loop);
}

// One turn of both: flush requests, wait up to timeout_ms for the display
// or the loop, read events, run the loop, dispatch events.
static void turn(struct conn *c, int timeout_ms)
{
	struct wl_display *d = c->display;
	bool reading = false;
	if (!wl_display_get_error(d)) {
		while (!(reading = wl_display_prepare_read(d) == 0))
			if (wl_display_dispatch_pending(d) < 0)
				break;
		wl_display_flush(d);
	}
	struct pollfd pfd[2] = {
		{ .fd = wl_display_get_fd(d), .events = POLLIN },
		{ .fd = wl_event_loop_get_fd(c->loop), .events = POLLIN },
	};
	poll(pfd, 2, timeout_ms);
	if (reading && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
		wl_display_read_events(d);
	else if (reading)
		wl_display_cancel_read(d);
	wl_event_loop_dispatch(c->loop, 0);
	if (!wl_display_get_error(d))
		wl_display_dispatch_pending(d);
}

static void on_sync_done(void *data, struct wl_callback *cb, uint32_t serial)
{
	*(bool *)data = true;
	wl_callback_destroy(cb);
}

static const struct wl_callback_listener sync_listener = { .done = on_sync_done };

// wl_display_roundtrip, with the channel's loop running meanwhile.
static bool roundtrip(struct conn *c)
{
	bool done = false;
	struct wl_callback *cb = wl_display_sync(c->display);
	wl_callback_add_listener(cb, &sync_listener, &done);
	uint64_t deadline = sml_now_ns() + TIMEOUT_MS * 1000000ull;
	while (!done && !wl_display_get_error(c->display) && sml_now_ns() < deadline)
		turn(c, 50);
	return done;
}

// ---- globals ---------------------------------------------------------------

struct globals {
	struct wl_registry *registry;
	char names[64][64];
	uint32_t ids[64], versions[64];
	int n;
	uint32_t formats; // wl_shm formats seen: bit 0 ARGB8888, bit 1 XRGB8888
};

static void on_global(void *data, struct wl_registry *registry, uint32_t name,
		      const char *interface, uint32_t version)
{
	struct globals *g = data;
	if (g->n == 64)
		return;
	snprintf(g->names[g->n], sizeof(g->names[0]), "%s", interface);
	g->ids[g->n] = name;
	g->versions[g->n] = version;
	g->n++;
}

static void on_global_remove(void *data, struct wl_registry *registry, uint32_t name)
{
}

static const struct wl_registry_listener registry_listener = {
	.global = on_global,
	.global_remove = on_global_remove,
};

static int find_global(const struct globals *g, const char *name)
{
	for (int i = 0; i < g->n; i++)
		if (strcmp(g->names[i], name) == 0)
			return i;
	return -1;
}

static void get_globals(struct conn *c, struct globals *g)
{
	memset(g, 0, sizeof(*g));
	g->registry = wl_display_get_registry(c->display);
	wl_registry_add_listener(g->registry, &registry_listener, g);
	CHECK(roundtrip(c));
}

static void on_shm_format(void *data, struct wl_shm *shm, uint32_t format)
{
	struct globals *g = data;
	if (format == WL_SHM_FORMAT_ARGB8888)
		g->formats |= 1;
	if (format == WL_SHM_FORMAT_XRGB8888)
		g->formats |= 2;
}

static const struct wl_shm_listener shm_listener = { .format = on_shm_format };

static struct wl_shm *bind_shm(struct conn *c, struct globals *g)
{
	int i = find_global(g, "wl_shm");
	CHECK(i >= 0);
	struct wl_shm *shm = wl_registry_bind(g->registry, g->ids[i], &wl_shm_interface, 1);
	wl_shm_add_listener(shm, &shm_listener, g);
	return shm;
}

// ---- tests -------------------------------------------------------------------

static void test_registry(void)
{
	struct conn c;
	struct globals g;
	conn_open(&c);
	get_globals(&c, &g);
	CHECK(find_global(&g, "wl_compositor") >= 0);
	CHECK(find_global(&g, "wl_shm") >= 0);
	CHECK(find_global(&g, "xdg_wm_base") >= 0);
	printf("registry: %d globals through the channel, wl_compositor v%u\n", g.n,
	       g.versions[find_global(&g, "wl_compositor")]);
	wl_registry_destroy(g.registry);
	conn_close(&c, false);
}

// A wl_shm pool in a guest memfd: the fd crosses as a guest blob, weston
// maps it and accepts a buffer in it; its format events come back.
static void test_shm_pool(void)
{
	struct conn c;
	struct globals g;
	conn_open(&c);
	get_globals(&c, &g);
	struct wl_shm *shm = bind_shm(&c, &g);
	const int w = 64, h = 64, stride = w * 4, size = stride * h; // 4 pages
	int fd = sml_memfd_create("test-pool", (uint64_t)size);
	CHECK(fd >= 0);
	struct wl_shm_pool *pool = wl_shm_create_pool(shm, fd, size);
	struct wl_buffer *buf = wl_shm_pool_create_buffer(pool, 0, w, h, stride,
							  WL_SHM_FORMAT_ARGB8888);
	CHECK(roundtrip(&c));
	CHECK_EQ(wl_display_get_error(c.display), 0);
	CHECK_EQ(g.formats, 3);
	// A surface shows the buffer: weston reads the guest's memory.
	struct wl_compositor *comp = wl_registry_bind(
		g.registry, g.ids[find_global(&g, "wl_compositor")], &wl_compositor_interface, 4);
	struct wl_surface *surf = wl_compositor_create_surface(comp);
	wl_surface_attach(surf, buf, 0, 0);
	wl_surface_damage(surf, 0, 0, w, h);
	wl_surface_commit(surf);
	CHECK(roundtrip(&c));
	CHECK_EQ(wl_display_get_error(c.display), 0);
	// Pools rarely fill whole pages: 250x250 ARGB is 250000 bytes, not a
	// page multiple. The blob is rounded up; the file stays as it is.
	const int w2 = 250, size2 = w2 * w2 * 4;
	int fd2 = sml_memfd_create("test-pool-odd", (uint64_t)size2);
	struct wl_shm_pool *pool2 = wl_shm_create_pool(shm, fd2, size2);
	struct wl_buffer *buf2 = wl_shm_pool_create_buffer(pool2, 0, w2, w2, w2 * 4,
							   WL_SHM_FORMAT_XRGB8888);
	wl_surface_attach(surf, buf2, 0, 0);
	wl_surface_damage(surf, 0, 0, w2, w2);
	wl_surface_commit(surf);
	CHECK(roundtrip(&c));
	CHECK_EQ(wl_display_get_error(c.display), 0);
	struct stat st;
	CHECK(fstat(fd2, &st) == 0 && st.st_size == size2);
	printf("shm pool: %d-byte memfd pool, %dx%d buffer, formats ARGB8888+XRGB8888; "
	       "%d-byte pool (not a page multiple), %dx%d buffer\n", size, w, h, size2, w2, w2);
	wl_buffer_destroy(buf2);
	wl_shm_pool_destroy(pool2);
	close(fd2);
	wl_surface_destroy(surf);
	wl_compositor_destroy(comp);
	wl_buffer_destroy(buf);
	wl_shm_pool_destroy(pool);
	wl_shm_destroy(shm);
	wl_registry_destroy(g.registry);
	close(fd);
	conn_close(&c, true);
}

// Many requests in one flush: more than one SEND's worth of bytes leave at
// once, and many pools (fds) with them.
static void test_bulk(void)
{
	struct conn c;
	struct globals g;
	conn_open(&c);
	get_globals(&c, &g);
	struct wl_shm *shm = bind_shm(&c, &g);
	struct wl_compositor *comp = wl_registry_bind(
		g.registry, g.ids[find_global(&g, "wl_compositor")], &wl_compositor_interface, 4);
	struct wl_region *region = wl_compositor_create_region(comp);
	for (int i = 0; i < 2000; i++)
		wl_region_add(region, i, i, 10, 10);
	int fd = sml_memfd_create("test-pools", 4096);
	struct wl_shm_pool *pools[40];
	for (int i = 0; i < 40; i++)
		pools[i] = wl_shm_create_pool(shm, fd, 4096);
	for (int round = 0; round < 50; round++)
		CHECK(roundtrip(&c));
	CHECK_EQ(wl_display_get_error(c.display), 0);
	printf("bulk: 2000 region requests (%d bytes) and 40 pools in one go, 50 round trips\n",
	       2000 * 24);
	for (int i = 0; i < 40; i++)
		wl_shm_pool_destroy(pools[i]);
	close(fd);
	wl_region_destroy(region);
	wl_compositor_destroy(comp);
	wl_shm_destroy(shm);
	wl_registry_destroy(g.registry);
	conn_close(&c, false);
}

// weston answers an invalid request with wl_display.error and closes the
// client: libwayland-client reports the protocol error, and the channel
// reports the end once.
static void test_compositor_eof(void)
{
	struct conn c;
	struct globals g;
	conn_open(&c);
	get_globals(&c, &g);
	struct wl_shm *shm = bind_shm(&c, &g);
	int fd = sml_memfd_create("test-pool", 4096);
	struct wl_shm_pool *pool = wl_shm_create_pool(shm, fd, 4096);
	CHECK(roundtrip(&c));
	struct wl_buffer *buf = wl_shm_pool_create_buffer(pool, 0, -1, 16, 64,
							  WL_SHM_FORMAT_ARGB8888);
	uint64_t deadline = sml_now_ns() + TIMEOUT_MS * 1000000ull;
	while ((!c.closed || !wl_display_get_error(c.display)) && sml_now_ns() < deadline)
		turn(&c, 50);
	CHECK_EQ(wl_display_get_error(c.display), EPROTO);
	const struct wl_interface *iface = NULL;
	uint32_t id = 0;
	uint32_t code = wl_display_get_protocol_error(c.display, &iface, &id);
	CHECK(iface == &wl_shm_pool_interface);
	CHECK_EQ(code, WL_SHM_ERROR_INVALID_STRIDE);
	for (int i = 0; i < 5; i++)
		turn(&c, 10);
	CHECK_EQ(c.closed, 1); // once
	printf("compositor EOF: client error EPROTO (wl_shm_pool code %u), closed: %s\n", code,
	       c.reason);
	wl_buffer_destroy(buf);
	wl_shm_pool_destroy(pool);
	wl_shm_destroy(shm);
	wl_registry_destroy(g.registry);
	close(fd);
	guest_channel_destroy(c.ch);
	wl_display_disconnect(c.display);
	wl_event_loop_destroy(c.loop);
}

// No host peer at the path: the device does not open, nothing leaks.
static void test_no_host(void)
{
	struct vgpu_dev *dev = NULL;
	char path[300];
	snprintf(path, sizeof(path), "%s/nobody.sock", harness_runtime_dir());
	int own = harness_count_fds(getpid());
	CHECK(vgpu_socket_open(path, &dev) < 0);
	CHECK(dev == NULL);
	guest_channel_destroy(NULL); // a no-op
	CHECK_EQ(harness_count_fds(getpid()), own);
	printf("no host: open fails cleanly\n");
}

static void cycle_once(int i)
{
	struct conn c;
	struct globals g;
	conn_open(&c);
	get_globals(&c, &g);
	if (i % 2) {
		struct wl_shm *shm = bind_shm(&c, &g);
		int fd = sml_memfd_create("cycle", 8192);
		struct wl_shm_pool *pool = wl_shm_create_pool(shm, fd, 8192);
		CHECK(roundtrip(&c));
		wl_shm_pool_destroy(pool);
		wl_shm_destroy(shm);
		close(fd);
	}
	wl_registry_destroy(g.registry);
	conn_close(&c, i % 3 == 0);
}

static void test_no_leaks(int cycles)
{
	cycle_once(1); // warm up weston and the daemon
	usleep(200000);
	int host_before = harness_count_fds(host_pid), own_before = harness_count_fds(getpid());
	for (int i = 0; i < cycles; i++)
		cycle_once(i);
	usleep(300000); // the daemon reaps closed connections from its loop
	int host_after = harness_count_fds(host_pid), own_after = harness_count_fds(getpid());
	printf("leaks: %d channel cycles: test fds %d -> %d, host fds %d -> %d\n", cycles,
	       own_before, own_after, host_before, host_after);
	CHECK_EQ(own_after, own_before);
	CHECK_EQ(host_after, host_before);
}

int main(void)
{
	const char *dir = harness_runtime_dir();
	atexit(harness_cleanup);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(host_sock, sizeof(host_sock), "%s/host.sock", dir);
	harness_start_weston("wl-test");
	host_pid = harness_start_host(host_sock, "wl-test", NULL);

	static const struct harness_test tests[] = {
		{ "registry", test_registry },
		{ "shm pool from guest memory", test_shm_pool },
		{ "bulk requests", test_bulk },
		{ "compositor EOF", test_compositor_eof },
		{ "no host", test_no_host },
	};
	int passed = harness_run(tests, SML_ARRAY_LEN(tests));
	printf("--- no leaks over 100 channel cycles\n");
	test_no_leaks(100);
	passed++;
	CHECK(kill(host_pid, 0) == 0);
	CHECK_EQ(harness_stop(host_pid), 0);
	printf("%d passed, 0 failed\n", passed);
	return 0;
}
