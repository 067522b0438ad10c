// SPDX-License-Identifier: MIT
// sml-dmabuf-compositor NAME: a compositor of zwp_linux_dmabuf_v1 and bare
// wl_surfaces on $XDG_RUNTIME_DIR/NAME, for the dma-buf pass-through test
// (test_dmabuf_passthrough in e2e_weston.py).
//
// No compositor these machines can run offers linux-dmabuf (there is no
// render node: weston's and sway's pixman renderers and headless mutter
// leave it out), so this one stands in at that boundary. It does what a
// real one does with the protocol and prints, one line each, what the test
// compares:
//   add plane=0 file=DEV:INO size=N first=PIXEL     per params.add (the file
//                                                   behind the fd, its size
//                                                   by SEEK_END, the first
//                                                   pixel at the offset)
//   created WxH format=F / failed format=F          per params.create(_immed)
//   commit first=PIXEL                              per commit of a buffer
//                                                   (read at commit, so a
//                                                   copy made earlier shows)
// It releases each buffer at once after its commit (as mutter does).
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <wayland-server.h>

#include "linux-dmabuf-unstable-v1-server-protocol.h"
#include "harness.h"

#define DRM_FORMAT_ARGB8888 0x34325241u
#define DRM_FORMAT_XRGB8888 0x34325258u
#define MOD_LINEAR 0ull
#define MOD_X_TILED 0x0100000000000001ull // I915_FORMAT_MOD_X_TILED

// The format table linux-dmabuf v4 shares through an fd: its layout.
struct table_entry {
	uint32_t format;
	uint32_t pad;
	uint64_t modifier;
};

static const struct table_entry formats[] = {
	{ DRM_FORMAT_ARGB8888, 0, MOD_LINEAR },
	{ DRM_FORMAT_XRGB8888, 0, MOD_LINEAR },
	{ DRM_FORMAT_ARGB8888, 0, MOD_X_TILED },
};
#define N_FORMATS (sizeof(formats) / sizeof(formats[0]))

// The render node a real compositor would name (/dev/dri/renderD128).
#define MAIN_DEVICE makedev(226, 128)

struct plane {
	int fd; // -1 until params.add
	uint32_t offset, stride;
};

struct buffer {
	struct wl_resource *resource;
	struct plane plane;
};

struct surface {
	struct wl_resource *pending; // a wl_buffer; may be NULL
	struct wl_listener pending_destroy;
};

static uint32_t first_pixel(const struct plane *p)
{
	uint32_t px = 0;
	if (pread(p->fd, &px, sizeof(px), p->offset) != (ssize_t)sizeof(px))
		return 0xdeadbeef;
	return px;
}

static void destroy_resource(struct wl_client *client, struct wl_resource *resource)
{
	wl_resource_destroy(resource);
}

// ---- wl_buffer ------------------------------------------------------------

static const struct wl_buffer_interface buffer_impl = { .destroy = destroy_resource };

static void buffer_free(struct wl_resource *resource)
{
	struct buffer *b = wl_resource_get_user_data(resource);
	close(b->plane.fd);
	free(b);
}

// A resource with its implementation, or NULL with the client told it is
// out of memory (data stays the caller's then).
static struct wl_resource *new_resource(struct wl_client *client, const struct wl_interface *iface,
					int version, uint32_t id, const void *impl, void *data,
					wl_resource_destroy_func_t destroy)
{
	struct wl_resource *resource = wl_resource_create(client, iface, version, id);
	if (!resource) {
		wl_client_post_no_memory(client);
		return NULL;
	}
	wl_resource_set_implementation(resource, impl, data, destroy);
	return resource;
}

// Takes the plane's fd. False (and the client told) when out of memory.
static bool buffer_create(struct wl_client *client, uint32_t id, struct plane *plane,
			  struct wl_resource **out)
{
	struct buffer *b = calloc(1, sizeof(*b));
	if (!b) {
		wl_client_post_no_memory(client);
		return false;
	}
	struct wl_resource *resource = new_resource(client, &wl_buffer_interface, 1, id,
						    &buffer_impl, b, buffer_free);
	if (!resource) {
		free(b);
		return false;
	}
	b->resource = resource;
	b->plane = *plane;
	plane->fd = -1;
	*out = resource;
	return true;
}

// ---- zwp_linux_buffer_params_v1 -------------------------------------------

static void params_add(struct wl_client *client, struct wl_resource *resource, int32_t fd,
		       uint32_t plane_idx, uint32_t offset, uint32_t stride, uint32_t mod_hi,
		       uint32_t mod_lo)
{
	struct plane *p = wl_resource_get_user_data(resource);
	if (plane_idx != 0 || p->fd >= 0) {
		close(fd);
		wl_resource_post_error(resource, ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_PLANE_IDX,
				       "one plane, index 0, once");
		return;
	}
	*p = (struct plane){ .fd = fd, .offset = offset, .stride = stride };
	struct stat st;
	if (fstat(fd, &st) < 0)
		st = (struct stat){ 0 };
	harness_say("add plane=0 file=%u:%u:%llu size=%lld first=%08x", major(st.st_dev),
		   minor(st.st_dev), (unsigned long long)st.st_ino, (long long)lseek(fd, 0, SEEK_END),
		   first_pixel(p));
}

static bool format_known(uint32_t format)
{
	for (size_t i = 0; i < N_FORMATS; i++)
		if (formats[i].format == format)
			return true;
	return false;
}

// A buffer from the params, with id 0 (create: the compositor makes the
// object) or the client's (create_immed): 1 and *buffer, 0 when the format
// is refused (the client is sent failed), -1 after a protocol error.
static int params_buffer(struct wl_client *client, struct wl_resource *resource, uint32_t id,
			 int32_t width, int32_t height, uint32_t format,
			 struct wl_resource **buffer)
{
	struct plane *p = wl_resource_get_user_data(resource);
	if (p->fd < 0) {
		wl_resource_post_error(resource, ZWP_LINUX_BUFFER_PARAMS_V1_ERROR_INCOMPLETE,
				       "no plane added");
		return -1;
	}
	if (!format_known(format) || width <= 0 || height <= 0) {
		harness_say("failed format=%08x", format);
		zwp_linux_buffer_params_v1_send_failed(resource);
		return 0;
	}
	if (!buffer_create(client, id, p, buffer))
		return -1;
	harness_say("created %dx%d format=%08x", width, height, format);
	return 1;
}

static void params_create(struct wl_client *client, struct wl_resource *resource, int32_t width,
			  int32_t height, uint32_t format, uint32_t flags)
{
	struct wl_resource *buffer;
	if (params_buffer(client, resource, 0, width, height, format, &buffer) > 0)
		zwp_linux_buffer_params_v1_send_created(resource, buffer);
}

static void params_create_immed(struct wl_client *client, struct wl_resource *resource,
				uint32_t buffer_id, int32_t width, int32_t height,
				uint32_t format, uint32_t flags)
{
	struct wl_resource *buffer;
	params_buffer(client, resource, buffer_id, width, height, format, &buffer);
}

static const struct zwp_linux_buffer_params_v1_interface params_impl = {
	.destroy = destroy_resource,
	.add = params_add,
	.create = params_create,
	.create_immed = params_create_immed,
};

static void params_free(struct wl_resource *resource)
{
	struct plane *p = wl_resource_get_user_data(resource);
	if (p->fd >= 0)
		close(p->fd);
	free(p);
}

// ---- zwp_linux_dmabuf_feedback_v1 -------------------------------------------

static const struct zwp_linux_dmabuf_feedback_v1_interface feedback_impl = {
	.destroy = destroy_resource,
};

// A sealed memfd holding the format table, as compositors share it.
static int format_table_fd(void)
{
	int fd = memfd_create("sml-dmabuf-formats", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	if (write(fd, formats, sizeof(formats)) != (ssize_t)sizeof(formats) ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void send_feedback(struct wl_resource *feedback)
{
	int fd = format_table_fd();
	if (fd < 0) {
		wl_resource_post_no_memory(feedback);
		return;
	}
	zwp_linux_dmabuf_feedback_v1_send_format_table(feedback, fd, sizeof(formats));
	close(fd);
	dev_t dev = MAIN_DEVICE;
	struct wl_array device = { .size = sizeof(dev), .alloc = sizeof(dev), .data = &dev };
	zwp_linux_dmabuf_feedback_v1_send_main_device(feedback, &device);
	zwp_linux_dmabuf_feedback_v1_send_tranche_target_device(feedback, &device);
	uint16_t indices[N_FORMATS];
	for (uint16_t i = 0; i < N_FORMATS; i++)
		indices[i] = i;
	struct wl_array tranche = { .size = sizeof(indices), .alloc = sizeof(indices),
				    .data = indices };
	zwp_linux_dmabuf_feedback_v1_send_tranche_formats(feedback, &tranche);
	zwp_linux_dmabuf_feedback_v1_send_tranche_flags(feedback, 0);
	zwp_linux_dmabuf_feedback_v1_send_tranche_done(feedback);
	zwp_linux_dmabuf_feedback_v1_send_done(feedback);
}

static void create_feedback(struct wl_client *client, struct wl_resource *resource, uint32_t id)
{
	struct wl_resource *feedback =
		new_resource(client, &zwp_linux_dmabuf_feedback_v1_interface,
			     wl_resource_get_version(resource), id, &feedback_impl, NULL, NULL);
	if (feedback)
		send_feedback(feedback);
}

// ---- zwp_linux_dmabuf_v1 ----------------------------------------------------

static void dmabuf_create_params(struct wl_client *client, struct wl_resource *resource,
				 uint32_t id)
{
	struct plane *p = calloc(1, sizeof(*p));
	if (!p) {
		wl_client_post_no_memory(client);
		return;
	}
	if (!new_resource(client, &zwp_linux_buffer_params_v1_interface,
			  wl_resource_get_version(resource), id, &params_impl, p, params_free)) {
		free(p);
		return;
	}
	p->fd = -1;
}

static void dmabuf_default_feedback(struct wl_client *client, struct wl_resource *resource,
				    uint32_t id)
{
	create_feedback(client, resource, id);
}

static void dmabuf_surface_feedback(struct wl_client *client, struct wl_resource *resource,
				    uint32_t id, struct wl_resource *surface)
{
	create_feedback(client, resource, id);
}

static const struct zwp_linux_dmabuf_v1_interface dmabuf_impl = {
	.destroy = destroy_resource,
	.create_params = dmabuf_create_params,
	.get_default_feedback = dmabuf_default_feedback,
	.get_surface_feedback = dmabuf_surface_feedback,
};

static void bind_dmabuf(struct wl_client *client, void *data, uint32_t version, uint32_t id)
{
	struct wl_resource *resource = new_resource(client, &zwp_linux_dmabuf_v1_interface,
						    version, id, &dmabuf_impl, NULL, NULL);
	if (!resource || version >= 4)
		return; // the formats come through feedback objects
	for (size_t i = 0; i < N_FORMATS; i++)
		if (version >= 3)
			zwp_linux_dmabuf_v1_send_modifier(resource, formats[i].format,
							  (uint32_t)(formats[i].modifier >> 32),
							  (uint32_t)formats[i].modifier);
		else
			zwp_linux_dmabuf_v1_send_format(resource, formats[i].format);
}

// ---- wl_surface, wl_region, wl_compositor -----------------------------------

static void surface_pending_gone(struct wl_listener *listener, void *data)
{
	struct surface *s = wl_container_of(listener, s, pending_destroy);
	s->pending = NULL;
	wl_list_remove(&s->pending_destroy.link);
	wl_list_init(&s->pending_destroy.link);
}

static void surface_attach(struct wl_client *client, struct wl_resource *resource,
			   struct wl_resource *buffer, int32_t x, int32_t y)
{
	struct surface *s = wl_resource_get_user_data(resource);
	wl_list_remove(&s->pending_destroy.link);
	wl_list_init(&s->pending_destroy.link);
	s->pending = buffer;
	if (buffer)
		wl_resource_add_destroy_listener(buffer, &s->pending_destroy);
}

static void surface_commit(struct wl_client *client, struct wl_resource *resource)
{
	struct surface *s = wl_resource_get_user_data(resource);
	if (!s->pending)
		return;
	struct buffer *b = wl_resource_get_user_data(s->pending);
	harness_say("commit first=%08x", first_pixel(&b->plane));
	wl_buffer_send_release(s->pending);
	surface_pending_gone(&s->pending_destroy, NULL);
}

static void surface_frame(struct wl_client *client, struct wl_resource *resource, uint32_t id)
{
	struct wl_resource *cb = new_resource(client, &wl_callback_interface, 1, id, NULL, NULL,
					      NULL);
	if (!cb)
		return;
	wl_callback_send_done(cb, 0);
	wl_resource_destroy(cb);
}

static void surface_region(struct wl_client *client, struct wl_resource *resource,
			   struct wl_resource *region)
{
}

static void surface_int(struct wl_client *client, struct wl_resource *resource, int32_t value)
{
}

static void surface_rect(struct wl_client *client, struct wl_resource *resource, int32_t x,
			 int32_t y, int32_t width, int32_t height)
{
}

static const struct wl_surface_interface surface_impl = {
	.destroy = destroy_resource,
	.attach = surface_attach,
	.damage = surface_rect,
	.frame = surface_frame,
	.set_opaque_region = surface_region,
	.set_input_region = surface_region,
	.commit = surface_commit,
	.set_buffer_transform = surface_int,
	.set_buffer_scale = surface_int,
	.damage_buffer = surface_rect,
};

static void surface_free(struct wl_resource *resource)
{
	struct surface *s = wl_resource_get_user_data(resource);
	wl_list_remove(&s->pending_destroy.link);
	free(s);
}

static void compositor_create_surface(struct wl_client *client, struct wl_resource *resource,
				      uint32_t id)
{
	struct surface *s = calloc(1, sizeof(*s));
	if (!s) {
		wl_client_post_no_memory(client);
		return;
	}
	if (!new_resource(client, &wl_surface_interface, wl_resource_get_version(resource), id,
			  &surface_impl, s, surface_free)) {
		free(s);
		return;
	}
	s->pending_destroy.notify = surface_pending_gone;
	wl_list_init(&s->pending_destroy.link);
}

static const struct wl_region_interface region_impl = {
	.destroy = destroy_resource,
	.add = surface_rect,
	.subtract = surface_rect,
};

static void compositor_create_region(struct wl_client *client, struct wl_resource *resource,
				     uint32_t id)
{
	new_resource(client, &wl_region_interface, 1, id, &region_impl, NULL, NULL);
}

static const struct wl_compositor_interface compositor_impl = {
	.create_surface = compositor_create_surface,
	.create_region = compositor_create_region,
};

static void bind_compositor(struct wl_client *client, void *data, uint32_t version, uint32_t id)
{
	new_resource(client, &wl_compositor_interface, version, id, &compositor_impl, NULL, NULL);
}

static int on_signal(int signal, void *data)
{
	wl_display_terminate(data);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s SOCKET_NAME\n", argv[0]);
		return 2;
	}
	struct wl_display *display = wl_display_create();
	if (!display || wl_display_add_socket(display, argv[1]) < 0) {
		fprintf(stderr, "sml-dmabuf-compositor: cannot listen on %s: %s\n", argv[1],
			strerror(errno));
		return 1;
	}
	if (!wl_global_create(display, &wl_compositor_interface, 4, NULL, bind_compositor) ||
	    !wl_global_create(display, &zwp_linux_dmabuf_v1_interface, 4, NULL, bind_dmabuf))
		return 1;
	// Through signalfds: blocked, so that they wait for the loop.
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	struct wl_event_loop *loop = wl_display_get_event_loop(display);
	wl_event_loop_add_signal(loop, SIGTERM, on_signal, display);
	wl_event_loop_add_signal(loop, SIGINT, on_signal, display);
	wl_display_run(display);
	wl_display_destroy_clients(display);
	wl_display_destroy(display);
	return 0;
}
