// SPDX-License-Identifier: MIT
// sml-vpointer: a virtual pointer on a wlroots compositor's seat, driven by
// lines on stdin, for the end-to-end pointer test (it runs on the host side,
// like wtype). It keeps one device for its whole life: a device per event
// (what wlroots' example tool does) makes the seat's pointer capability come
// and go, and the event arrives before any client has a wl_pointer.
//
// Commands, one per line; each ends with a frame and a round trip, then
// "ok" (or "error: ...") on stdout:
//   abs X Y W H          motion_absolute to (X, Y) of a W x H layout
//   move DX DY           relative motion
//   button CODE press|release
//   axis AXIS VALUE      AXIS 0 vertical, 1 horizontal
//
// The protocol (wlr-virtual-pointer-unstable-v1) is not in wayland-protocols,
// so its two interfaces are described here by hand, requests only.
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wayland-client.h>

extern const struct wl_interface sml_vpointer_interface;

static const struct wl_interface *create_types[] = { &wl_seat_interface,
						     &sml_vpointer_interface };

static const struct wl_message manager_requests[] = {
	{ "create_virtual_pointer", "?on", create_types },
	{ "destroy", "", NULL },
};

static const struct wl_interface manager_interface = {
	"zwlr_virtual_pointer_manager_v1", 1, 2, manager_requests, 0, NULL,
};

static const struct wl_interface *no_types[8];

enum { VP_MOTION, VP_MOTION_ABSOLUTE, VP_BUTTON, VP_AXIS, VP_FRAME, VP_DESTROY = 8 };

static const struct wl_message vpointer_requests[] = {
	{ "motion", "uff", no_types },
	{ "motion_absolute", "uuuuu", no_types },
	{ "button", "uuu", no_types },
	{ "axis", "uuf", no_types },
	{ "frame", "", no_types },
	{ "axis_source", "u", no_types },
	{ "axis_stop", "uu", no_types },
	{ "axis_discrete", "uufi", no_types },
	{ "destroy", "", no_types },
};

const struct wl_interface sml_vpointer_interface = {
	"zwlr_virtual_pointer_v1", 1, 9, vpointer_requests, 0, NULL,
};

struct globals {
	struct wl_seat *seat;
	struct wl_proxy *manager;
};

static void on_global(void *data, struct wl_registry *registry, uint32_t name,
		      const char *iface, uint32_t version)
{
	struct globals *g = data;
	if (strcmp(iface, wl_seat_interface.name) == 0 && !g->seat)
		g->seat = wl_registry_bind(registry, name, &wl_seat_interface, 1);
	else if (strcmp(iface, manager_interface.name) == 0)
		g->manager = wl_registry_bind(registry, name, &manager_interface, 1);
}

static void on_global_remove(void *data, struct wl_registry *registry, uint32_t name)
{
}

static const struct wl_registry_listener registry_listener = { on_global, on_global_remove };

// Event times as a real device gives them: toolkits tell clicks and
// double clicks apart by them.
static uint32_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint32_t)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

// Sends one command; false if the line is not one.
static bool send_command(struct wl_proxy *vp, const char *line, uint32_t time)
{
	unsigned x, y, w, h, code;
	double dx, dy, value;
	char state[16];
	if (sscanf(line, "abs %u %u %u %u", &x, &y, &w, &h) == 4)
		wl_proxy_marshal(vp, VP_MOTION_ABSOLUTE, time, x, y, w, h);
	else if (sscanf(line, "move %lf %lf", &dx, &dy) == 2)
		wl_proxy_marshal(vp, VP_MOTION, time, wl_fixed_from_double(dx),
				 wl_fixed_from_double(dy));
	else if (sscanf(line, "button %u %15s", &code, state) == 2 &&
		 (!strcmp(state, "press") || !strcmp(state, "release")))
		wl_proxy_marshal(vp, VP_BUTTON, time, code, (uint32_t)!strcmp(state, "press"));
	else if (sscanf(line, "axis %u %lf", &code, &value) == 2 && code <= 1)
		wl_proxy_marshal(vp, VP_AXIS, time, code, wl_fixed_from_double(value));
	else
		return false;
	wl_proxy_marshal(vp, VP_FRAME);
	return true;
}

int main(void)
{
	struct globals g = { 0 };
	struct wl_display *display = wl_display_connect(NULL);
	if (!display) {
		fprintf(stderr, "sml-vpointer: cannot connect to the compositor\n");
		return 1;
	}
	struct wl_registry *registry = wl_display_get_registry(display);
	wl_registry_add_listener(registry, &registry_listener, &g);
	if (wl_display_roundtrip(display) < 0 || !g.seat || !g.manager) {
		fprintf(stderr, "sml-vpointer: the compositor has no wl_seat or %s\n",
			manager_interface.name);
		return 1;
	}
	struct wl_proxy *vp = wl_proxy_marshal_constructor(g.manager, 0, &sml_vpointer_interface,
							   g.seat, NULL);
	if (wl_display_roundtrip(display) < 0)
		return 1;
	printf("ready\n");
	fflush(stdout);
	char line[256];
	while (fgets(line, sizeof(line), stdin)) {
		bool ok = send_command(vp, line, now_ms());
		if (wl_display_roundtrip(display) < 0) {
			fprintf(stderr, "sml-vpointer: the compositor closed the connection\n");
			return 1;
		}
		if (ok)
			printf("ok\n");
		else
			printf("error: not a command: %s", line);
		fflush(stdout);
	}
	wl_proxy_marshal(vp, VP_DESTROY);
	wl_proxy_destroy(vp);
	wl_display_disconnect(display);
	return 0;
}
