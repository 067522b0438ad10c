// SPDX-License-Identifier: MIT
// A Wayland client with known pixels, for pixel and throughput tests:
// an xdg_toplevel of WxH filled with one ARGB colour. With --frames N it
// repaints N times (damaging --damage percent of the rows each time) and
// prints the time per frame, each frame waiting for its frame callback.
// --history and --burst N run the copy-path scenarios described at their
// functions.
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <wayland-client.h>

#include "window.h"

struct paint {
	struct test_window w;
	struct wl_display *display; // w.display
	struct wl_surface *surface; // w.surface
	struct wl_buffer *buffer;
	uint32_t *pixels;
	int width, height;
	uint32_t color;
	bool frame_done;
};

static void on_frame(void *data, struct wl_callback *cb, uint32_t time)
{
	struct paint *p = data;
	p->frame_done = true;
	wl_callback_destroy(cb);
}

static const struct wl_callback_listener frame_listener = { on_frame };

static struct wl_buffer *make_buffer(struct paint *p)
{
	return test_window_buffer(&p->w, p->width, p->height, p->color, &p->pixels);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// Commits with `rows` damaged rows and waits for the frame callback.
static int commit_frame(struct paint *p, int rows, uint32_t shade)
{
	for (int y = 0; y < rows; y++)
		for (int x = 0; x < p->width; x++)
			p->pixels[y * p->width + x] = p->color ^ shade;
	struct wl_callback *cb = wl_surface_frame(p->surface);
	p->frame_done = false;
	wl_callback_add_listener(cb, &frame_listener, p);
	wl_surface_attach(p->surface, p->buffer, 0, 0);
	wl_surface_damage_buffer(p->surface, 0, 0, p->width, rows);
	wl_surface_commit(p->surface);
	while (!p->frame_done)
		if (wl_display_dispatch(p->display) < 0)
			return -1;
	return 0;
}

static void fill_rows(uint32_t *pixels, int width, int y0, int y1, uint32_t color)
{
	for (int i = y0 * width; i < y1 * width; i++)
		pixels[i] = color;
}

static int commit_buffer(struct paint *p, struct wl_buffer *buffer, int y0, int y1)
{
	struct wl_callback *cb = wl_surface_frame(p->surface);
	p->frame_done = false;
	wl_callback_add_listener(cb, &frame_listener, p);
	wl_surface_attach(p->surface, buffer, 0, 0);
	wl_surface_damage_buffer(p->surface, 0, y0, p->width, y1 - y0);
	wl_surface_commit(p->surface);
	while (!p->frame_done)
		if (wl_display_dispatch(p->display) < 0)
			return -1;
	return 0;
}

// Two buffers, each frame damaged only where it differs from the frame
// before, as a client that tracks buffer age does. A proxy that copies only
// each commit's damage leaves rows 0-99 of A red; with per-buffer history
// the final frame, shown at buffer scale 2 (128x128), is green (rows 0-49),
// blue (50-99), red (100-127).
//
// With `lazy`, A does not catch up with frame 2 (a client bug): what is
// shown of rows 0-99 is then up to the compositor. Reading A, it is red; a
// copying proxy that brought A's host copy up to date from the frame on
// screen while the client drew shows green, as a compositor that keeps the
// last frame and uploads only damage would.
static int history_scenario(struct paint *p, bool lazy)
{
	const uint32_t red = 0xffff0000, green = 0xff00ff00, blue = 0xff0000ff;
	uint32_t *a = p->pixels;
	struct wl_buffer *buffer_a = p->buffer;
	struct wl_buffer *buffer_b = make_buffer(p); // p->pixels now points at B
	uint32_t *b = p->pixels;
	if (!buffer_b)
		return -1;
	fill_rows(a, p->width, 0, p->height, red);
	if (commit_buffer(p, buffer_a, 0, p->height) < 0)
		return -1;
	fill_rows(b, p->width, 0, p->height, red);
	fill_rows(b, p->width, 0, 100, green);
	if (commit_buffer(p, buffer_b, 0, 100) < 0)
		return -1;
	if (!lazy)
		fill_rows(a, p->width, 0, 100, green); // A catches up with frame 2
	fill_rows(a, p->width, 100, 200, blue);
	if (commit_buffer(p, buffer_a, 100, 200) < 0)
		return -1;
	// A buffer scale change makes the compositor render the whole surface
	// again from what it holds, without new damage: stale host rows show.
	wl_surface_set_buffer_scale(p->surface, 2);
	wl_surface_attach(p->surface, buffer_a, 0, 0);
	wl_surface_commit(p->surface);
	wl_display_roundtrip(p->display);
	printf("history: red, then green rows 0-99 (B), then blue rows 100-199 (A), "
	       "shown at scale 2\n");
	fflush(stdout);
	return 0;
}

static void on_release(void *data, struct wl_buffer *buffer)
{
	bool *released = data;
	*released = true;
}

static const struct wl_buffer_listener release_listener = { on_release };

// --burst N: four buffers committed in one write, as a resize or a client
// catching up sends them, then N frames that alternate two of them as a
// double-buffered client does: each waits for the release of the buffer it
// rewrites and for its frame callback, and damages 16 rows (a band moving
// down the buffer).
static int burst_scenario(struct paint *p, int frames)
{
	struct wl_buffer *buffers[4] = { p->buffer };
	uint32_t *pixels[4] = { p->pixels };
	bool released[4] = { false };
	for (int i = 0; i < 4; i++) {
		if (i > 0 && !(buffers[i] = make_buffer(p)))
			return -1;
		pixels[i] = p->pixels;
		wl_buffer_add_listener(buffers[i], &release_listener, &released[i]);
		wl_surface_attach(p->surface, buffers[i], 0, 0);
		wl_surface_damage_buffer(p->surface, 0, 0, p->width, p->height);
		wl_surface_commit(p->surface);
	}
	wl_display_flush(p->display);
	for (int i = 0; i < frames; i++) {
		int k = i % 2, y0 = 16 * (i % 4) % p->height;
		while (!released[k])
			if (wl_display_dispatch(p->display) < 0)
				return -1;
		released[k] = false;
		fill_rows(pixels[k], p->width, y0, y0 + 16, p->color ^ (uint32_t)i);
		if (commit_buffer(p, buffers[k], y0, y0 + 16) < 0)
			return -1;
	}
	printf("burst: 4 buffers, then %d frames of 16 rows\n", frames);
	fflush(stdout);
	return 0;
}

static int setup(struct paint *p)
{
	if (test_window_open(&p->w, "sml-paint") < 0)
		return -1;
	p->display = p->w.display;
	p->surface = p->w.surface;
	p->buffer = make_buffer(p);
	return p->buffer ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct paint p = { .width = 256, .height = 256, .color = 0xff3366cc };
	int frames = 0, damage = 100, burst = -1;
	bool history = false, lazy = false;
	double seconds = 0;
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "color", required_argument, NULL, 'c' },
		{ "frames", required_argument, NULL, 'f' },
		{ "damage", required_argument, NULL, 'd' },
		{ "seconds", required_argument, NULL, 't' },
		{ "history", no_argument, NULL, 'H' },
		{ "history-lazy", no_argument, NULL, 'L' },
		{ "burst", required_argument, NULL, 'B' },
		{ 0 },
	};
	for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
		if (c == 's' && sscanf(optarg, "%dx%d", &p.width, &p.height) == 2)
			continue;
		if (c == 'c')
			p.color = (uint32_t)strtoul(optarg, NULL, 16);
		else if (c == 'f')
			frames = atoi(optarg);
		else if (c == 'd')
			damage = atoi(optarg);
		else if (c == 't')
			seconds = atof(optarg);
		else if (c == 'H' || c == 'L')
			history = true, lazy = c == 'L';
		else if (c == 'B')
			burst = atoi(optarg);
		else
			return 2;
	}
	if (setup(&p) < 0)
		return 1;
	if (burst >= 0 ? burst_scenario(&p, burst) < 0 :
	    history ? history_scenario(&p, lazy) < 0 : commit_frame(&p, 0, 0) < 0)
		return 1;
	printf("painted %dx%d %08x\n", p.width, p.height, p.color);
	fflush(stdout);
	int rows = p.height * damage / 100;
	double start = now_ms();
	for (int i = 0; i < frames; i++)
		if (commit_frame(&p, rows, (uint32_t)(i & 1) * 0x00010101) < 0)
			return 1;
	if (frames)
		printf("frames %d damage %d%% ms/frame %.3f\n", frames, damage,
		       (now_ms() - start) / frames);
	fflush(stdout);
	for (double end = now_ms() + seconds * 1e3; now_ms() < end;) {
		wl_display_flush(p.display);
		struct pollfd pfd = { wl_display_get_fd(p.display), POLLIN, 0 };
		if (poll(&pfd, 1, 50) > 0 && wl_display_dispatch(p.display) < 0)
			return 1;
	}
	wl_display_disconnect(p.display);
	return 0;
}
