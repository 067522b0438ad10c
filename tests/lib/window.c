// SPDX-License-Identifier: MIT
#include "window.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void on_global(void *data, struct wl_registry *registry, uint32_t name,
		      const char *iface, uint32_t version)
{
	struct test_window *w = data;
	if (strcmp(iface, wl_compositor_interface.name) == 0)
		w->compositor = wl_registry_bind(registry, name, &wl_compositor_interface, 4);
	else if (strcmp(iface, wl_shm_interface.name) == 0)
		w->shm = wl_registry_bind(registry, name, &wl_shm_interface, 1);
	else if (strcmp(iface, xdg_wm_base_interface.name) == 0)
		w->wm_base = wl_registry_bind(registry, name, &xdg_wm_base_interface, 1);
}

static void on_global_remove(void *data, struct wl_registry *registry, uint32_t name)
{
}

static const struct wl_registry_listener registry_listener = { on_global, on_global_remove };

static void on_ping(void *data, struct xdg_wm_base *wm_base, uint32_t serial)
{
	xdg_wm_base_pong(wm_base, serial);
}

static const struct xdg_wm_base_listener wm_base_listener = { on_ping };

static void on_configure(void *data, struct xdg_surface *surface, uint32_t serial)
{
	struct test_window *w = data;
	xdg_surface_ack_configure(surface, serial);
	// A later configure (the compositor moved or resized the window) takes
	// effect at a commit; without one, sway waits for a timeout. The first
	// one is followed by the caller's own commit of a buffer.
	if (w->configured)
		wl_surface_commit(w->surface);
	w->configured = true;
}

static const struct xdg_surface_listener xdg_surface_listener = { on_configure };

static int bind_globals(struct test_window *w)
{
	w->display = wl_display_connect(NULL);
	if (!w->display) {
		fprintf(stderr, "cannot connect to the compositor: %s\n", strerror(errno));
		return -1;
	}
	struct wl_registry *registry = wl_display_get_registry(w->display);
	wl_registry_add_listener(registry, &registry_listener, w);
	if (wl_display_roundtrip(w->display) < 0)
		return -1;
	if (!w->compositor || !w->shm || !w->wm_base) {
		fprintf(stderr, "the compositor lacks wl_compositor, wl_shm or xdg_wm_base\n");
		return -1;
	}
	xdg_wm_base_add_listener(w->wm_base, &wm_base_listener, w);
	return 0;
}

int test_window_open(struct test_window *w, const char *name)
{
	memset(w, 0, sizeof(*w));
	if (bind_globals(w) < 0)
		return -1;
	w->surface = wl_compositor_create_surface(w->compositor);
	w->xdg_surface = xdg_wm_base_get_xdg_surface(w->wm_base, w->surface);
	xdg_surface_add_listener(w->xdg_surface, &xdg_surface_listener, w);
	w->toplevel = xdg_surface_get_toplevel(w->xdg_surface);
	xdg_toplevel_set_title(w->toplevel, name);
	xdg_toplevel_set_app_id(w->toplevel, name);
	wl_surface_commit(w->surface);
	while (!w->configured)
		if (wl_display_dispatch(w->display) < 0)
			return -1;
	return 0;
}

struct wl_buffer *test_window_buffer(struct test_window *w, int width, int height,
				     uint32_t color, uint32_t **pixels)
{
	size_t stride = (size_t)width * 4, size = stride * (size_t)height;
	int fd = memfd_create("test-window", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 ||
	    (*pixels = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		fprintf(stderr, "shm buffer: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	for (size_t i = 0; i < size / 4; i++)
		(*pixels)[i] = color;
	struct wl_shm_pool *pool = wl_shm_create_pool(w->shm, fd, (int32_t)size);
	struct wl_buffer *buffer = wl_shm_pool_create_buffer(pool, 0, width, height,
							     (int32_t)stride,
							     WL_SHM_FORMAT_ARGB8888);
	wl_shm_pool_destroy(pool);
	close(fd);
	return buffer;
}
