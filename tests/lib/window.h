// SPDX-License-Identifier: MIT
// A minimal xdg_toplevel client for tests and benchmarks.
#ifndef SML_TEST_WINDOW_H
#define SML_TEST_WINDOW_H

#include <stdbool.h>
#include <stdint.h>
#include <wayland-client.h>

#include "xdg-shell-client-protocol.h"

struct test_window {
	struct wl_display *display;
	struct wl_compositor *compositor;
	struct wl_shm *shm;
	struct xdg_wm_base *wm_base;
	struct wl_surface *surface;
	struct xdg_surface *xdg_surface;
	struct xdg_toplevel *toplevel;
	bool configured;
};

// Connects (WAYLAND_SOCKET or WAYLAND_DISPLAY), binds what it needs, maps a
// toplevel whose title and app_id are `name`, and waits for its first
// configure. Returns 0, or -1 after printing why.
int test_window_open(struct test_window *w, const char *name);
// A WxH ARGB8888 buffer in a memfd of its own, mapped at *pixels and filled
// with `color`. NULL after printing why.
struct wl_buffer *test_window_buffer(struct test_window *w, int width, int height,
				     uint32_t color, uint32_t **pixels);

#endif
