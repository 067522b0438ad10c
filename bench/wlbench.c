// SPDX-License-Identifier: MIT
// wlbench: a Wayland client that measures what a proxy adds to a client's
// costs. Run it directly against a compositor, then through a proxy, and
// compare (bench/run does that). It measures:
//
//   roundtrip_us       wl_display_roundtrip (one wl_display.sync) latency;
//   commit_full_us     attach + damage_buffer + commit of a whole WxH
//                      ARGB8888 shm buffer, then a round trip: the time from
//                      the attach to the round trip's completion;
//   commit_<P>pct_us   the same with P % of the rows damaged (a band that
//                      moves down the buffer);
//   memcpy_full_us,    a local memcpy of the same damaged bytes between memfd
//   memcpy_<P>pct_us   mappings, as a proxy copies, always the same source
//                      and destination: a floor no copying proxy reaches
//                      with a double-buffered client, as the destination
//                      stays in cache;
//   memcpy2_full_us,   the same alternating between two source/destination
//   memcpy2_<P>pct_us  pairs, as a proxy's copies do when the client
//                      alternates two buffers.
//
// The commit test ends with a round trip rather than a frame callback: a
// headless compositor paces frames on its own repaint clock, which would
// hide the proxy. Two buffers (--buffers) take turns; a buffer is rewritten
// only after the compositor released it. Pixels are written before the
// clock starts.
//
// Each result is one line: NAME n=.. p50=.. p90=.. p99=.. min=.. mean=..
// max=.. (microseconds) plus bytes= for the shm tests. With --hold, wlbench
// then prints "hold pid=PID" and keeps its connection (so a caller can
// sample the proxies' memory) until it receives SIGUSR1.
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <wayland-client.h>

#include "window.h"

#define RELEASE_TIMEOUT_MS 5000
#define BUFFERS_MAX 4

struct buffer {
	struct wl_buffer *wl;
	uint32_t *pixels;
	bool busy; // attached and not yet released by the compositor
};

struct bench {
	struct test_window w;
	struct wl_display *display; // w.display
	struct wl_surface *surface; // w.surface
	struct buffer buffers[BUFFERS_MAX];
	int nbuffers; // taking turns in the commit tests
	int width, height;
	int iterations, warmup, damage;
	bool hold;
	unsigned release_waits;
	double *samples; // iterations of them
};

// ---- timing and statistics ------------------------------------------------

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

// Nearest rank on sorted samples.
static double percentile(const double *sorted, int n, double p)
{
	return sorted[(int)((n - 1) * p / 100.0 + 0.5)];
}

static void report(const char *name, double *samples, int n, size_t bytes)
{
	double sum = 0;
	qsort(samples, n, sizeof(*samples), compare_double);
	for (int i = 0; i < n; i++)
		sum += samples[i];
	printf("%s n=%d p50=%.1f p90=%.1f p99=%.1f min=%.1f mean=%.1f max=%.1f", name, n,
	       percentile(samples, n, 50), percentile(samples, n, 90),
	       percentile(samples, n, 99), samples[0], sum / n, samples[n - 1]);
	if (bytes)
		printf(" bytes=%zu", bytes);
	printf("\n");
	fflush(stdout);
}

// ---- Wayland objects --------------------------------------------------------

static void on_release(void *data, struct wl_buffer *wl_buffer)
{
	struct buffer *buf = data;
	buf->busy = false;
}

static const struct wl_buffer_listener buffer_listener = { on_release };

static size_t frame_size(const struct bench *b)
{
	return (size_t)b->width * 4 * b->height;
}

static int make_buffer(struct bench *b, struct buffer *buf)
{
	buf->wl = test_window_buffer(&b->w, b->width, b->height, 0xffffffff, &buf->pixels);
	if (!buf->wl)
		return -1;
	wl_buffer_add_listener(buf->wl, &buffer_listener, buf);
	return 0;
}

static int make_toplevel(struct bench *b)
{
	if (test_window_open(&b->w, "wlbench") < 0)
		return -1;
	b->display = b->w.display;
	b->surface = b->w.surface;
	for (int i = 0; i < b->nbuffers; i++)
		if (make_buffer(b, &b->buffers[i]) < 0)
			return -1;
	return 0;
}

// ---- the measurements -------------------------------------------------------

static int measure_roundtrip(struct bench *b)
{
	for (int i = -b->warmup; i < b->iterations; i++) {
		double start = now_us();
		if (wl_display_roundtrip(b->display) < 0)
			return -1;
		if (i >= 0)
			b->samples[i] = now_us() - start;
	}
	report("roundtrip_us", b->samples, b->iterations, 0);
	return 0;
}

// Dispatches until the compositor releases buf (it holds at most one).
static int wait_release(struct bench *b, struct buffer *buf)
{
	if (buf->busy)
		b->release_waits++;
	while (buf->busy) {
		if (wl_display_flush(b->display) < 0)
			return -1;
		struct pollfd pfd = { wl_display_get_fd(b->display), POLLIN, 0 };
		int n = poll(&pfd, 1, RELEASE_TIMEOUT_MS);
		if (n == 0)
			fprintf(stderr, "wlbench: the compositor never released a buffer\n");
		if (n <= 0 || wl_display_dispatch(b->display) < 0)
			return -1;
	}
	return 0;
}

// The band of rows iteration i damages: `rows` of them, moving down.
static int band_start(const struct bench *b, int i, int rows)
{
	return (i % (b->height / rows)) * rows;
}

static void paint_rows(const struct bench *b, uint32_t *pixels, int y0, int rows, int i)
{
	uint32_t color = 0xff000000u | ((uint32_t)i * 0x00010203u & 0x00ffffffu);
	uint32_t *p = pixels + (size_t)y0 * b->width;
	for (size_t n = (size_t)rows * b->width; n > 0; n--)
		*p++ = color;
}

static int commit_once(struct bench *b, int i, int rows, double *us)
{
	struct buffer *buf = &b->buffers[i % b->nbuffers];
	int y0 = band_start(b, i, rows);
	if (wait_release(b, buf) < 0)
		return -1;
	paint_rows(b, buf->pixels, y0, rows, i);
	double start = now_us();
	wl_surface_attach(b->surface, buf->wl, 0, 0);
	wl_surface_damage_buffer(b->surface, 0, y0, b->width, rows);
	wl_surface_commit(b->surface);
	buf->busy = true;
	if (wl_display_roundtrip(b->display) < 0)
		return -1;
	*us = now_us() - start;
	return 0;
}

static int measure_commit(struct bench *b, const char *name, int rows)
{
	double unused;
	b->release_waits = 0;
	for (int i = 0; i < b->warmup; i++)
		if (commit_once(b, i, rows, &unused) < 0)
			return -1;
	for (int i = 0; i < b->iterations; i++)
		if (commit_once(b, b->warmup + i, rows, &b->samples[i]) < 0)
			return -1;
	if (b->release_waits)
		fprintf(stderr, "wlbench: %s: waited %u times for a buffer release\n", name,
			b->release_waits);
	report(name, b->samples, b->iterations, (size_t)rows * b->width * 4);
	return 0;
}

// Keeps the destination of the copies observable, so they are not elided.
static void *volatile copy_sink;

// Shared memory like the buffers a proxy copies between (a client's wl_shm
// pool, host memory): memfd pages, which unlike heap memory get no
// transparent huge pages.
static uint8_t *shared_memory(size_t size)
{
	int fd = memfd_create("wlbench-copy", MFD_CLOEXEC);
	void *map = fd >= 0 && ftruncate(fd, (off_t)size) == 0 ?
		mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
	if (fd >= 0)
		close(fd);
	return map == MAP_FAILED ? NULL : map;
}

static void unmap_all(uint8_t **maps, int n, size_t size)
{
	for (int i = 0; i < n; i++)
		if (maps[i])
			munmap(maps[i], size);
}

// Copies between `pairs` source/destination pairs, taking turns.
static int measure_memcpy(struct bench *b, const char *name, int rows, int pairs)
{
	size_t size = frame_size(b), stride = (size_t)b->width * 4;
	uint8_t *maps[4] = { 0 }; // src, dst, src, dst
	for (int i = 0; i < 2 * pairs; i++) {
		maps[i] = shared_memory(size);
		if (!maps[i]) {
			unmap_all(maps, 2 * pairs, size);
			return -1;
		}
		memset(maps[i], i & 1 ? 0 : 0xff, size);
	}
	for (int i = 0; i < b->warmup + b->iterations; i++) {
		int y0 = band_start(b, i, rows);
		uint8_t *src = maps[2 * (i % pairs)], *dst = maps[2 * (i % pairs) + 1];
		paint_rows(b, (uint32_t *)src, y0, rows, i);
		double start = now_us();
		memcpy(dst + y0 * stride, src + y0 * stride, rows * stride);
		copy_sink = dst;
		if (i >= b->warmup)
			b->samples[i - b->warmup] = now_us() - start;
	}
	unmap_all(maps, 2 * pairs, size);
	report(name, b->samples, b->iterations, rows * stride);
	return 0;
}

// ---- main -------------------------------------------------------------------

static int run(struct bench *b)
{
	int partial = b->height * b->damage / 100;
	char name[64];
	if (partial < 1)
		partial = 1;
	if (measure_roundtrip(b) < 0 || measure_commit(b, "commit_full_us", b->height) < 0)
		return -1;
	snprintf(name, sizeof(name), "commit_%dpct_us", b->damage);
	if (measure_commit(b, name, partial) < 0)
		return -1;
	for (int pairs = 1; pairs <= 2; pairs++) {
		const char *prefix = pairs == 1 ? "memcpy" : "memcpy2";
		snprintf(name, sizeof(name), "%s_full_us", prefix);
		if (measure_memcpy(b, name, b->height, pairs) < 0)
			return -1;
		snprintf(name, sizeof(name), "%s_%dpct_us", prefix, b->damage);
		if (measure_memcpy(b, name, partial, pairs) < 0)
			return -1;
	}
	return 0;
}

// With --hold: keep the connection until SIGUSR1 (blocked since startup).
static void hold(void)
{
	sigset_t set;
	int sig;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	printf("hold pid=%d\n", (int)getpid());
	fflush(stdout);
	sigwait(&set, &sig);
}

static void usage(FILE *out)
{
	fprintf(out, "Usage: wlbench [OPTION]...\n"
		     "Measures round trips and shm commits against $WAYLAND_DISPLAY.\n\n"
		     "  -n, --iterations=N   measured iterations per test (200)\n"
		     "  -w, --warmup=N       unmeasured iterations before each test (10)\n"
		     "  -s, --size=WxH       buffer size (1920x1080)\n"
		     "  -d, --damage=PCT     rows damaged in the partial commit test (10)\n"
		     "  -b, --buffers=N      buffers taking turns in the commit tests, 2-4 (2)\n"
		     "      --hold           after the results, wait for SIGUSR1\n"
		     "  -h, --help\n");
}

// 0 to run, 1 for --help, -1 on a bad command line.
static int parse_args(struct bench *b, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "iterations", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "size", required_argument, NULL, 's' },
		{ "damage", required_argument, NULL, 'd' },
		{ "buffers", required_argument, NULL, 'b' },
		{ "hold", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	for (int c; (c = getopt_long(argc, argv, "n:w:s:d:b:h", opts, NULL)) != -1;) {
		if (c == 'n')
			b->iterations = atoi(optarg);
		else if (c == 'w')
			b->warmup = atoi(optarg);
		else if (c == 's' && sscanf(optarg, "%dx%d", &b->width, &b->height) == 2)
			continue;
		else if (c == 'd')
			b->damage = atoi(optarg);
		else if (c == 'b')
			b->nbuffers = atoi(optarg);
		else if (c == 'H')
			b->hold = true;
		else if (c == 'h')
			return 1;
		else
			return -1;
	}
	if (optind < argc || b->iterations < 1 || b->warmup < 0 || b->width < 1 ||
	    b->height < 1 || b->width > 16384 || b->height > 16384 || b->damage < 1 ||
	    b->damage > 100 || b->nbuffers < 2 || b->nbuffers > BUFFERS_MAX)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct bench b = { .width = 1920, .height = 1080, .iterations = 200, .warmup = 10,
			   .damage = 10, .nbuffers = 2 };
	sigset_t set;
	int parsed = parse_args(&b, argc, argv);
	if (parsed) {
		usage(parsed < 0 ? stderr : stdout);
		return parsed < 0 ? 2 : 0;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	b.samples = calloc(b.iterations, sizeof(*b.samples));
	if (!b.samples || make_toplevel(&b) < 0 || run(&b) < 0) {
		fprintf(stderr, "wlbench: failed\n");
		return 1;
	}
	if (b.hold)
		hold();
	wl_display_disconnect(b.display);
	free(b.samples);
	return 0;
}
