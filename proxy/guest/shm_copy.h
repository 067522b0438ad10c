// SPDX-License-Identifier: MIT
// The copy path for wl_shm: when guest memory cannot reach the host as it
// is (a VM, or --shm-copy), the client's buffers stay in the guest and each
// surface shows its pixels through slots: host memory laid out by the host
// (GET_IMAGE_REQUIREMENTS), each with a host wl_buffer. A commit copies
// into a slot the host does not hold what the commit damaged and what the
// slot lacked; the client's buffer is released when the host releases that
// slot. A compositor that takes the pixels at commit needs one slot per
// surface; one that holds the buffer on screen, two.
#ifndef SML_GUEST_SHM_COPY_H
#define SML_GUEST_SHM_COPY_H

#include <stdint.h>
#include <wayland-client-core.h>
#include <wayland-server-core.h>

struct guest_client;

// The request dispatcher for objects of `interface_name` on this client, or
// NULL when the generic one applies.
wl_dispatcher_func_t shm_copy_hook(struct guest_client *gc, const char *interface_name);
// A guest bound wl_shm (global `name` of host `registry`): the copy path
// binds its own host wl_shm to make pools from host memory.
void shm_copy_bound(struct guest_client *gc, struct wl_proxy *registry, uint32_t name);
// Work for when the loop has nothing else to do: brings slots the host
// has released up to date ahead of the commits that will use them.
void shm_copy_idle(struct guest_client *gc);
// Drops the client's copy-path state (before its host connection closes).
void shm_copy_release(struct guest_client *gc);

#endif
