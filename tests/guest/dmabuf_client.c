// SPDX-License-Identifier: MIT
// sml-dmabuf: a linux-dmabuf client for the dma-buf pass-through test
// (test_dmabuf_passthrough in e2e_weston.py, against sml-dmabuf-compositor).
// Its "dma-buf" is a memfd: these machines have no exporter (no render
// node, no udmabuf, no dma-heap), and a proxy that passes fds as they are
// treats both alike. It prints, one line each:
//   offered version=V              (or "not offered", exit status 3)
//   feedback table=F/M,... main_device=MAJ:MIN target=MAJ:MIN tranche=I,...
//                                  (version 4: the format table read from
//                                  its fd, the devices, the tranche)
//   buffer file=DEV:INO            the memfd it adds as plane 0
//   created                        params.create answered with a wl_buffer
//   released                       after a commit of it
//   released immed                 the same for create_immed, whose first
//                                  pixel it changes between add and commit
//   failed                         params.create of a format not offered
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <wayland-client.h>

#include "linux-dmabuf-unstable-v1-client-protocol.h"
#include "harness.h"

#define DRM_FORMAT_ARGB8888 0x34325241u
#define DRM_FORMAT_ABGR2101010 0x30334241u // not offered by the compositor
#define WIDTH 64
#define HEIGHT 64
#define STRIDE (WIDTH * 4)
#define OFFSET 4096u // plane 0 does not start at the file's start

struct client {
	struct wl_display *display;
	struct wl_compositor *compositor;
	struct zwp_linux_dmabuf_v1 *dmabuf;
	uint32_t dmabuf_version;
	char feedback[512];
	size_t feedback_len;
	bool feedback_done;
	struct wl_buffer *created; // may be NULL
	bool failed;
	bool released;
	uint32_t *pixels;
};

static void feedback_add(struct client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void feedback_add(struct client *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(c->feedback + c->feedback_len, sizeof(c->feedback) - c->feedback_len,
			  fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(c->feedback) - c->feedback_len)
		c->feedback_len += (size_t)n;
}

// ---- feedback (version 4) ----------------------------------------------------

static void on_format_table(void *data, struct zwp_linux_dmabuf_feedback_v1 *fb, int32_t fd,
			    uint32_t size)
{
	struct client *c = data;
	const uint8_t *table = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (table == MAP_FAILED) {
		feedback_add(c, "table=unmappable");
		return;
	}
	feedback_add(c, "table=");
	for (uint32_t off = 0; off + 16 <= size; off += 16) {
		uint32_t format;
		uint64_t modifier;
		memcpy(&format, table + off, sizeof(format));
		memcpy(&modifier, table + off + 8, sizeof(modifier));
		feedback_add(c, "%s%08x/%llx", off ? "," : "", format, (unsigned long long)modifier);
	}
	munmap((void *)table, size);
}

static void add_device(struct client *c, const char *name, struct wl_array *device)
{
	dev_t dev;
	if (device->size != sizeof(dev)) {
		feedback_add(c, " %s=%zu-bytes", name, device->size);
		return;
	}
	memcpy(&dev, device->data, sizeof(dev));
	feedback_add(c, " %s=%u:%u", name, major(dev), minor(dev));
}

static void on_main_device(void *data, struct zwp_linux_dmabuf_feedback_v1 *fb,
			   struct wl_array *device)
{
	add_device(data, "main_device", device);
}

static void on_target_device(void *data, struct zwp_linux_dmabuf_feedback_v1 *fb,
			     struct wl_array *device)
{
	add_device(data, "target", device);
}

static void on_tranche_formats(void *data, struct zwp_linux_dmabuf_feedback_v1 *fb,
			       struct wl_array *indices)
{
	struct client *c = data;
	feedback_add(c, " tranche=");
	const uint16_t *index;
	wl_array_for_each(index, indices)
		feedback_add(c, "%s%u", (const void *)index == indices->data ? "" : ",", *index);
}

static void on_tranche_flags(void *data, struct zwp_linux_dmabuf_feedback_v1 *fb, uint32_t flags)
{
	feedback_add(data, " flags=%u", flags);
}

static void on_tranche_done(void *data, struct zwp_linux_dmabuf_feedback_v1 *fb)
{
}

static void on_feedback_done(void *data, struct zwp_linux_dmabuf_feedback_v1 *fb)
{
	struct client *c = data;
	c->feedback_done = true;
}

static const struct zwp_linux_dmabuf_feedback_v1_listener feedback_listener = {
	.done = on_feedback_done,
	.format_table = on_format_table,
	.main_device = on_main_device,
	.tranche_done = on_tranche_done,
	.tranche_target_device = on_target_device,
	.tranche_formats = on_tranche_formats,
	.tranche_flags = on_tranche_flags,
};

// ---- globals -------------------------------------------------------------------

static void on_global(void *data, struct wl_registry *registry, uint32_t name,
		      const char *interface, uint32_t version)
{
	struct client *c = data;
	if (strcmp(interface, wl_compositor_interface.name) == 0)
		c->compositor = wl_registry_bind(registry, name, &wl_compositor_interface, 4);
	else if (strcmp(interface, zwp_linux_dmabuf_v1_interface.name) == 0) {
		c->dmabuf_version = version < 4 ? version : 4;
		c->dmabuf = wl_registry_bind(registry, name, &zwp_linux_dmabuf_v1_interface,
					     c->dmabuf_version);
	}
}

static void on_global_remove(void *data, struct wl_registry *registry, uint32_t name)
{
}

static const struct wl_registry_listener registry_listener = { on_global, on_global_remove };

// ---- buffers ---------------------------------------------------------------------

static void on_created(void *data, struct zwp_linux_buffer_params_v1 *params,
		       struct wl_buffer *buffer)
{
	struct client *c = data;
	c->created = buffer;
}

static void on_failed(void *data, struct zwp_linux_buffer_params_v1 *params)
{
	struct client *c = data;
	c->failed = true;
}

static const struct zwp_linux_buffer_params_v1_listener params_listener = { on_created,
									      on_failed };

static void on_release(void *data, struct wl_buffer *buffer)
{
	struct client *c = data;
	c->released = true;
}

static const struct wl_buffer_listener buffer_listener = { on_release };

static struct zwp_linux_buffer_params_v1 *make_params(struct client *c, int fd)
{
	struct zwp_linux_buffer_params_v1 *params = zwp_linux_dmabuf_v1_create_params(c->dmabuf);
	zwp_linux_buffer_params_v1_add_listener(params, &params_listener, c);
	zwp_linux_buffer_params_v1_add(params, fd, 0, OFFSET, STRIDE, 0, 0);
	return params;
}

static int dispatch_until(struct client *c, const bool *flag)
{
	while (!*flag)
		if (wl_display_dispatch(c->display) < 0)
			return -1;
	return 0;
}

// Commits buffer on a new surface and waits for its release.
static int show(struct client *c, struct wl_buffer *buffer, const char *what)
{
	struct wl_surface *surface = wl_compositor_create_surface(c->compositor);
	wl_buffer_add_listener(buffer, &buffer_listener, c);
	c->released = false;
	wl_surface_attach(surface, buffer, 0, 0);
	wl_surface_damage_buffer(surface, 0, 0, WIDTH, HEIGHT);
	wl_surface_commit(surface);
	if (dispatch_until(c, &c->released) < 0)
		return -1;
	harness_say("released%s", what);
	wl_surface_destroy(surface);
	wl_buffer_destroy(buffer);
	return 0;
}

static int make_memory(struct client *c)
{
	size_t size = OFFSET + (size_t)STRIDE * HEIGHT;
	int fd = memfd_create("sml-dmabuf-plane", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return -1;
	uint8_t *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -1;
	c->pixels = (uint32_t *)(map + OFFSET);
	for (int i = 0; i < WIDTH * HEIGHT; i++)
		c->pixels[i] = 0xff336699u;
	struct stat st;
	fstat(fd, &st);
	harness_say("buffer file=%u:%u:%llu", major(st.st_dev), minor(st.st_dev),
	    (unsigned long long)st.st_ino);
	return fd;
}

static int buffers(struct client *c, int fd)
{
	struct zwp_linux_buffer_params_v1 *params = make_params(c, fd);
	zwp_linux_buffer_params_v1_create(params, WIDTH, HEIGHT, DRM_FORMAT_ARGB8888, 0);
	while (!c->created && !c->failed)
		if (wl_display_dispatch(c->display) < 0)
			return -1;
	zwp_linux_buffer_params_v1_destroy(params);
	if (!c->created) {
		harness_say("create failed");
		return -1;
	}
	harness_say("created");
	if (show(c, c->created, "") < 0)
		return -1;

	params = make_params(c, fd);
	// Once add has reached the compositor: one sharing the memory sees the
	// change at commit, a copy taken at add would not.
	if (wl_display_roundtrip(c->display) < 0)
		return -1;
	c->pixels[0] = 0xff00ff00u;
	struct wl_buffer *immed = zwp_linux_buffer_params_v1_create_immed(
		params, WIDTH, HEIGHT, DRM_FORMAT_ARGB8888, 0);
	zwp_linux_buffer_params_v1_destroy(params);
	if (show(c, immed, " immed") < 0)
		return -1;

	c->failed = false;
	params = make_params(c, fd);
	zwp_linux_buffer_params_v1_create(params, WIDTH, HEIGHT, DRM_FORMAT_ABGR2101010, 0);
	if (dispatch_until(c, &c->failed) < 0)
		return -1;
	zwp_linux_buffer_params_v1_destroy(params);
	harness_say("failed");
	return 0;
}

int main(void)
{
	struct client c = { 0 };
	c.display = wl_display_connect(NULL);
	if (!c.display) {
		fprintf(stderr, "sml-dmabuf: cannot connect\n");
		return 1;
	}
	struct wl_registry *registry = wl_display_get_registry(c.display);
	wl_registry_add_listener(registry, &registry_listener, &c);
	if (wl_display_roundtrip(c.display) < 0 || !c.compositor)
		return 1;
	if (!c.dmabuf) {
		harness_say("not offered");
		return 3;
	}
	harness_say("offered version=%u", c.dmabuf_version);
	if (c.dmabuf_version >= 4) {
		struct zwp_linux_dmabuf_feedback_v1 *fb =
			zwp_linux_dmabuf_v1_get_default_feedback(c.dmabuf);
		zwp_linux_dmabuf_feedback_v1_add_listener(fb, &feedback_listener, &c);
		if (dispatch_until(&c, &c.feedback_done) < 0)
			return 1;
		harness_say("feedback %s", c.feedback);
		zwp_linux_dmabuf_feedback_v1_destroy(fb);
	}
	int fd = make_memory(&c);
	if (fd < 0 || buffers(&c, fd) < 0 || wl_display_roundtrip(c.display) < 0) {
		fprintf(stderr, "sml-dmabuf: failed\n");
		return 1;
	}
	close(fd);
	wl_display_disconnect(c.display);
	return 0;
}
