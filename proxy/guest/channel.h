// SPDX-License-Identifier: MIT
// A cross-domain Wayland channel: one guest client's connection to the host
// compositor. libwayland-client talks over one end of a socketpair; the
// channel pumps the other end through a vgpu device, turning fds into
// identifiers on the way out (memfds -> blobs, pipe write ends -> read pipes)
// and identifiers into fds on the way in (blobs -> fds, write pipes -> local
// pipes whose reads become WRITE commands).
#ifndef SML_GUEST_CHANNEL_H
#define SML_GUEST_CHANNEL_H

#include <stdbool.h>
#include <wayland-server-core.h>

struct vgpu_dev;
struct guest_channel;

struct guest_channel_listener {
	// The host side ended: compositor EOF, device error, context lost.
	// The socketpair end is shut down too, so libwayland-client sees EOF.
	void (*closed)(void *data, const char *reason);
	// Bytes for libwayland-client were put on its end: the owner may read
	// them before the loop reports the fd, saving a loop turn. Only a
	// notice (set a flag): it comes from inside the channel's handlers.
	// An owner that sets it also calls guest_channel_poll before its loop
	// sleeps. May be NULL.
	void (*delivered)(void *data);
};

// Takes ownership of dev (context_init not yet done). On success *wl_fd is
// the fd for wl_display_connect_to_fd (the caller owns it).
struct guest_channel *guest_channel_create(struct wl_event_loop *loop, struct vgpu_dev *dev,
					   const struct guest_channel_listener *listener,
					   void *data, int *wl_fd);
void guest_channel_destroy(struct guest_channel *ch);
// Sends on what libwayland-client just flushed to its end, without waiting
// for the loop to report that end readable.
void guest_channel_pump(struct guest_channel *ch);
// With a `delivered` listener, the channel asks the host for the next
// message only here: called after the owner flushed its guest client, the
// host's wake-up for that request no longer comes between a message and
// its delivery.
void guest_channel_poll(struct guest_channel *ch);
// Why the channel ended (a client's bad fd, the host's hang-up...), or NULL
// while it runs.
const char *guest_channel_failure(const struct guest_channel *ch);

// Host memory for one image (the copy path): the host's layout for it
// (GET_IMAGE_REQUIREMENTS) and its blob. The fd maps the memory and, sent
// through the client's stream (in a wl_shm pool), reaches the host as that
// same blob. A layout that does not hold width x height pixels of `bpp`
// bytes, or a blob smaller than the layout, fails with -EPROTO.
struct guest_image {
	int fd;
	uint32_t res;
	uint32_t stride, offset; // of the first plane
	uint64_t size;
};

int guest_channel_alloc_image(struct guest_channel *ch, uint32_t width, uint32_t height,
			      uint32_t drm_format, uint32_t bpp, struct guest_image *out);
// Closes the fd and releases the blob.
void guest_channel_free_image(struct guest_channel *ch, struct guest_image *image);

#endif
