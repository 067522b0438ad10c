// SPDX-License-Identifier: MIT
// The copy path for wl_shm: when guest memory cannot reach the host as it
// is (a VM, or --shm-copy), each wl_buffer gets host memory laid out by the
// host (GET_IMAGE_REQUIREMENTS), and every commit copies the rows the host
// copy lacks: the commit's damage plus what other commits on the surface
// changed since this buffer was last copied.
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
// Work for when the loop has nothing else to do: brings host copies of
// released buffers up to date ahead of their commits.
void shm_copy_idle(struct guest_client *gc);
// Drops the client's copy-path state (before its host connection closes).
void shm_copy_release(struct guest_client *gc);

#endif
