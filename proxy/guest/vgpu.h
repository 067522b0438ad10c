// SPDX-License-Identifier: MIT
// The guest's view of one virtio-gpu context: the handful of kernel UAPI
// operations that a cross-domain guest uses. Backends: the socket device
// (vgpu_socket.c, this issue) and DRM ioctls on a render node (later).
// Every call except execbuffer and destroy_resource waits for its answer,
// as the ioctls do; waits are bounded by a timeout.
#ifndef SML_GUEST_VGPU_H
#define SML_GUEST_VGPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VGPU_NO_RING UINT32_MAX // execbuffer without RING_IDX (ring 0, no event)
#define VGPU_TIMEOUT_MS 5000

struct vgpu_dev;

struct vgpu_dev_impl {
	const char *name; // "socket", "kernel"
	void (*destroy)(struct vgpu_dev *dev);
	int (*get_caps)(struct vgpu_dev *dev, uint32_t capset_id, void *out, size_t size);
	int (*context_init)(struct vgpu_dev *dev, uint32_t capset_id, uint32_t num_rings,
			    uint64_t poll_mask);
	// A page of shared memory the host writes into (the cross-domain rings).
	int (*create_ring)(struct vgpu_dev *dev, size_t size, uint32_t *res, void **map);
	// Blob backed by the guest's memfd (only when guest_memory is true).
	int (*create_guest_blob)(struct vgpu_dev *dev, int memfd, uint64_t size, uint32_t *res);
	// Blob named by a host blob_id; returns a new fd the caller owns.
	int (*create_host_blob)(struct vgpu_dev *dev, uint64_t blob_id, uint64_t size,
				uint32_t *res, int *fd);
	// A buffer of this device held by a client (a dma-buf a GPU driver in
	// the guest allocated), as a resource a SEND can name; the caller
	// destroys it after that SEND. NULL where guest_memory covers it.
	int (*import_fd)(struct vgpu_dev *dev, int fd, uint32_t *res);
	void (*destroy_resource)(struct vgpu_dev *dev, uint32_t res);
	// Queues the command; does not wait. ring is VGPU_NO_RING or a ring index.
	int (*execbuffer)(struct vgpu_dev *dev, const void *cmd, size_t size, uint32_t ring,
			  const uint32_t *bos, uint32_t nbos);
	// Waits until no queued command uses `res` any more.
	int (*wait)(struct vgpu_dev *dev, uint32_t res);
	// Readable when fence events may be pending.
	int (*event_fd)(struct vgpu_dev *dev);
	// Consumes pending events without blocking; sets bit r of *signalled
	// for each ring r with a signalled fence. Negative errno when the
	// device is gone (EOF, context lost: the reason is logged). With
	// `readable` false (the event fd was not reported readable) it only
	// reports what earlier operations took in while they waited, without a
	// syscall: the fd is level-triggered, so the loop reports the rest.
	int (*read_events)(struct vgpu_dev *dev, bool readable, uint64_t *signalled);
};

struct vgpu_dev {
	const struct vgpu_dev_impl *impl;
	// Guest memfds can be handed to the host as they are (Unix socket device);
	// otherwise pixels are copied into host blobs.
	bool guest_memory;
};

// Opens a socket-device connection at `path` (HELLO done, no context yet).
int vgpu_socket_open(const char *path, struct vgpu_dev **out);

// Opens a virtio-gpu render node: `path`, or else the first of
// /dev/dri/renderD128..191 whose driver is virtio_gpu and that offers the
// cross-domain capset with the Wayland channel. One open = one context.
// Negative errno, after logging what is missing, when there is none.
int vgpu_kernel_open(const char *path, struct vgpu_dev **out);
// True when a render node that vgpu_kernel_open would take exists.
bool vgpu_kernel_available(const char *path);

static inline void vgpu_destroy(struct vgpu_dev *dev)
{
	if (dev)
		dev->impl->destroy(dev);
}

#endif
