// SPDX-License-Identifier: MIT
// The guest proxy's server and its clients: each guest client gets its own
// host connection (a channel through the vgpu device, or, without a peer, a
// direct compositor connection) and its objects are forwarded one to one.
#ifndef SML_GUEST_CLIENT_H
#define SML_GUEST_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <wayland-client-core.h>
#include <wayland-server-core.h>

struct guest_channel;

struct guest_config {
	const char *peer_path; // socket device of sommelier-host; NULL: direct
	bool virtgpu; // the kernel virtio-gpu device instead of a peer socket
	const char *drm_device; // may be NULL: find the render node
	const char *host_display; // direct mode: compositor name or path
	bool shm_copy; // copy pixels into host blobs even when memory could be shared
};

struct guest_server {
	struct wl_display *display; // the guest-facing compositor
	struct wl_event_loop *loop;
	const struct guest_config *config;
	struct wl_listener client_created;
	struct wl_list clients; // struct guest_client.link
};

// A global the host advertised to this client, as the client saw it.
struct guest_global {
	uint32_t name;
	const struct wl_interface *interface;
	uint32_t version; // capped to what both sides know
};

struct guest_client {
	struct guest_server *server;
	struct wl_client *client;
	struct wl_listener destroy;
	struct guest_channel *channel; // may be NULL in direct mode
	struct wl_display *host; // may be NULL once torn down
	struct wl_event_source *host_source; // may be NULL
	uint32_t host_mask;
	bool host_pending; // the channel put events on the host connection
	bool shares_memory; // guest fds reach the host as they are
	bool dying; // the guest client is going: post nothing to it
	struct wl_event_source *kill; // may be NULL: a pending guest_client_kill
	struct wl_array globals; // struct guest_global, advertised so far
	bool copy_shm; // wl_shm buffers are copied into host memory
	struct wl_proxy *host_shm; // may be NULL: the copy path's own host wl_shm
	struct wl_array host_formats; // uint32_t: what host_shm announced
	struct wl_list copy_surfaces; // struct copy_surface.link
	// May be NULL: gives back the spare slots of surfaces that stopped
	// drawing; armed while a surface has more than one slot.
	struct wl_event_source *copy_spare_timer;
	bool copy_spare_armed;
	struct guest_copy_stats {
		uint64_t commits, commit_bytes, catch_up_bytes;
		int slots_max; // on one surface at once
		uint64_t spares_retired; // slots given back after a burst
	} copy_stats;
	struct wl_list link; // struct guest_server.clients
};

struct guest_server *guest_server_create(struct wl_display *display,
					 const struct guest_config *config);
void guest_server_destroy(struct guest_server *server);
// Flushes every host connection (call before the loop sleeps).
void guest_server_flush(struct guest_server *server);
// Work deferred until everything is flushed and the loop would sleep
// (channels' next POLL, the copy path's catch-up).
void guest_server_idle(struct guest_server *server);
// Ends a guest client from anywhere (deferred to the loop).
void guest_client_kill(struct guest_client *gc, const char *reason);

#endif
