// SPDX-License-Identifier: MIT
// sml-input: a toplevel that reports its pointer input, for the end-to-end
// pointer test. It prints one line per event on stdout:
//   pointer                 the seat has a pointer; wl_pointer bound
//   no pointer              the seat's pointer went away
//   enter SURFACE X Y       SURFACE is toplevel or popup, surface-local
//   leave SURFACE
//   motion X Y
//   button CODE STATE       STATE 1 pressed, 0 released
//   axis AXIS VALUE
//   popup X Y W H           the popup's configure, relative to the toplevel
//   popup done              the compositor dismissed the popup
// On enter it sets a cursor of its own (16x16, --cursor-color). A left
// button press without a popup open opens a 120x90 popup (--popup-color)
// at the pointer, grabbing with the press's serial, as menus do. (sway 1.7
// checks neither that serial nor set_cursor's: what these show is that the
// requests, their surfaces and buffers cross the proxy and take effect.)
#include <getopt.h>
#include <stdbool.h>
#include <linux/input-event-codes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wayland-client.h>

#include "window.h"

#define POPUP_WIDTH 120
#define POPUP_HEIGHT 90
#define CURSOR_SIZE 16

struct input {
	struct test_window w;
	struct wl_seat *seat; // may be NULL
	struct wl_pointer *pointer; // may be NULL
	struct wl_surface *cursor; // may be NULL
	uint32_t color, popup_color, cursor_color;
	double x, y; // last pointer position on the toplevel
	struct {
		struct wl_surface *surface; // NULL when closed
		struct xdg_surface *xdg_surface;
		struct xdg_popup *popup;
		int width, height;
	} popup;
};

static const char *surface_name(const struct input *in, struct wl_surface *surface)
{
	if (surface && surface == in->w.surface)
		return "toplevel";
	return surface && surface == in->popup.surface ? "popup" : "other";
}

// ---- the popup ------------------------------------------------------------------

static void popup_close(struct input *in)
{
	if (!in->popup.surface)
		return;
	xdg_popup_destroy(in->popup.popup);
	xdg_surface_destroy(in->popup.xdg_surface);
	wl_surface_destroy(in->popup.surface);
	in->popup.surface = NULL;
}

static void on_popup_surface_configure(void *data, struct xdg_surface *xdg_surface,
				       uint32_t serial)
{
	struct input *in = data;
	uint32_t *pixels;
	xdg_surface_ack_configure(xdg_surface, serial);
	struct wl_buffer *buffer = test_window_buffer(&in->w, in->popup.width, in->popup.height,
						      in->popup_color, &pixels);
	if (!buffer)
		exit(1);
	wl_surface_attach(in->popup.surface, buffer, 0, 0);
	wl_surface_damage_buffer(in->popup.surface, 0, 0, in->popup.width, in->popup.height);
	wl_surface_commit(in->popup.surface);
}

static const struct xdg_surface_listener popup_surface_listener = {
	on_popup_surface_configure,
};

static void on_popup_configure(void *data, struct xdg_popup *popup, int32_t x, int32_t y,
			       int32_t width, int32_t height)
{
	struct input *in = data;
	in->popup.width = width > 0 ? width : POPUP_WIDTH;
	in->popup.height = height > 0 ? height : POPUP_HEIGHT;
	printf("popup %d %d %d %d\n", x, y, width, height);
}

static void on_popup_done(void *data, struct xdg_popup *popup)
{
	printf("popup done\n");
	popup_close(data);
}

static const struct xdg_popup_listener popup_listener = {
	.configure = on_popup_configure,
	.popup_done = on_popup_done,
};

static void popup_open(struct input *in, uint32_t serial)
{
	struct xdg_positioner *pos = xdg_wm_base_create_positioner(in->w.wm_base);
	xdg_positioner_set_size(pos, POPUP_WIDTH, POPUP_HEIGHT);
	xdg_positioner_set_anchor_rect(pos, (int32_t)in->x, (int32_t)in->y, 1, 1);
	xdg_positioner_set_anchor(pos, XDG_POSITIONER_ANCHOR_BOTTOM_RIGHT);
	xdg_positioner_set_gravity(pos, XDG_POSITIONER_GRAVITY_BOTTOM_RIGHT);
	in->popup.surface = wl_compositor_create_surface(in->w.compositor);
	in->popup.xdg_surface = xdg_wm_base_get_xdg_surface(in->w.wm_base, in->popup.surface);
	xdg_surface_add_listener(in->popup.xdg_surface, &popup_surface_listener, in);
	in->popup.popup = xdg_surface_get_popup(in->popup.xdg_surface, in->w.xdg_surface, pos);
	xdg_popup_add_listener(in->popup.popup, &popup_listener, in);
	xdg_popup_grab(in->popup.popup, in->seat, serial);
	xdg_positioner_destroy(pos);
	wl_surface_commit(in->popup.surface);
}

// ---- the pointer ----------------------------------------------------------------

static void on_enter(void *data, struct wl_pointer *pointer, uint32_t serial,
		     struct wl_surface *surface, wl_fixed_t x, wl_fixed_t y)
{
	struct input *in = data;
	if (surface == in->w.surface)
		in->x = wl_fixed_to_double(x), in->y = wl_fixed_to_double(y);
	printf("enter %s %.1f %.1f\n", surface_name(in, surface), wl_fixed_to_double(x),
	       wl_fixed_to_double(y));
	wl_pointer_set_cursor(pointer, serial, in->cursor, 0, 0);
}

static void on_leave(void *data, struct wl_pointer *pointer, uint32_t serial,
		     struct wl_surface *surface)
{
	printf("leave %s\n", surface_name(data, surface));
}

static void on_motion(void *data, struct wl_pointer *pointer, uint32_t time, wl_fixed_t x,
		      wl_fixed_t y)
{
	struct input *in = data;
	in->x = wl_fixed_to_double(x), in->y = wl_fixed_to_double(y);
	printf("motion %.1f %.1f\n", in->x, in->y);
}

static void on_button(void *data, struct wl_pointer *pointer, uint32_t serial, uint32_t time,
		      uint32_t button, uint32_t state)
{
	struct input *in = data;
	printf("button %u %u\n", button, state);
	if (button == BTN_LEFT && state == WL_POINTER_BUTTON_STATE_PRESSED && !in->popup.surface)
		popup_open(in, serial);
}

static void on_axis(void *data, struct wl_pointer *pointer, uint32_t time, uint32_t axis,
		    wl_fixed_t value)
{
	printf("axis %u %.2f\n", axis, wl_fixed_to_double(value));
}

static const struct wl_pointer_listener pointer_listener = {
	.enter = on_enter,
	.leave = on_leave,
	.motion = on_motion,
	.button = on_button,
	.axis = on_axis,
};

// ---- the seat -------------------------------------------------------------------

static void on_capabilities(void *data, struct wl_seat *seat, uint32_t caps)
{
	struct input *in = data;
	bool has = caps & WL_SEAT_CAPABILITY_POINTER;
	if (!has && in->pointer) {
		// The compositor made it inert; a pointer that comes back is new.
		wl_pointer_destroy(in->pointer);
		in->pointer = NULL;
		printf("no pointer\n");
	}
	if (!has || in->pointer)
		return;
	in->pointer = wl_seat_get_pointer(seat);
	wl_pointer_add_listener(in->pointer, &pointer_listener, in);
	printf("pointer\n");
}

static void on_seat_name(void *data, struct wl_seat *seat, const char *name)
{
}

static const struct wl_seat_listener seat_listener = { on_capabilities, on_seat_name };

static void on_global(void *data, struct wl_registry *registry, uint32_t name,
		      const char *iface, uint32_t version)
{
	struct input *in = data;
	if (strcmp(iface, wl_seat_interface.name) || in->seat)
		return;
	in->seat = wl_registry_bind(registry, name, &wl_seat_interface, 1);
	wl_seat_add_listener(in->seat, &seat_listener, in);
}

static void on_global_remove(void *data, struct wl_registry *registry, uint32_t name)
{
}

static const struct wl_registry_listener registry_listener = { on_global, on_global_remove };

// ---- main -----------------------------------------------------------------------

static int show(struct input *in, int width, int height)
{
	uint32_t *pixels;
	struct wl_buffer *buffer = test_window_buffer(&in->w, width, height, in->color, &pixels);
	struct wl_buffer *cursor = test_window_buffer(&in->w, CURSOR_SIZE, CURSOR_SIZE,
						      in->cursor_color, &pixels);
	if (!buffer || !cursor)
		return -1;
	wl_surface_attach(in->w.surface, buffer, 0, 0);
	wl_surface_damage_buffer(in->w.surface, 0, 0, width, height);
	wl_surface_commit(in->w.surface);
	in->cursor = wl_compositor_create_surface(in->w.compositor);
	wl_surface_attach(in->cursor, cursor, 0, 0);
	wl_surface_damage_buffer(in->cursor, 0, 0, CURSOR_SIZE, CURSOR_SIZE);
	wl_surface_commit(in->cursor);
	struct wl_registry *registry = wl_display_get_registry(in->w.display);
	wl_registry_add_listener(registry, &registry_listener, in);
	if (wl_display_roundtrip(in->w.display) < 0 || !in->seat) {
		fprintf(stderr, "sml-input: no wl_seat\n");
		return -1;
	}
	return wl_display_roundtrip(in->w.display);
}

int main(int argc, char **argv)
{
	struct input in = { .color = 0xff2a7f62, .popup_color = 0xffe0b020,
			    .cursor_color = 0xffd02090 };
	const char *app_id = "sml-input";
	int width = 400, height = 300;
	static const struct option opts[] = {
		{ "app-id", required_argument, NULL, 'a' },
		{ "size", required_argument, NULL, 's' },
		{ "color", required_argument, NULL, 'c' },
		{ "popup-color", required_argument, NULL, 'p' },
		{ "cursor-color", required_argument, NULL, 'k' },
		{ 0 },
	};
	for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
		if (c == 'a')
			app_id = optarg;
		else if (c == 's' && sscanf(optarg, "%dx%d", &width, &height) == 2)
			continue;
		else if (c == 'c' || c == 'p' || c == 'k')
			*(c == 'c' ? &in.color : c == 'p' ? &in.popup_color : &in.cursor_color) =
				(uint32_t)strtoul(optarg, NULL, 16);
		else
			return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (width < 1 || height < 1 || test_window_open(&in.w, app_id) < 0 ||
	    show(&in, width, height) < 0)
		return 1;
	printf("shown %dx%d\n", width, height);
	while (wl_display_dispatch(in.w.display) >= 0)
		;
	return 0;
}
