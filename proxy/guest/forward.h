// SPDX-License-Identifier: MIT
// Generic forwarding: a guest resource and a host proxy are paired, and
// every request and event of every compiled-in interface crosses with its
// object and new_id arguments translated. Hooks change meaning only where
// the proxy must (the display, the registry).
#ifndef SML_GUEST_FORWARD_H
#define SML_GUEST_FORWARD_H

#include <wayland-client-core.h>
#include <wayland-server-core.h>

struct guest_client;

struct fwd_object {
	struct wl_resource *resource; // may be NULL: the guest side is gone
	struct wl_proxy *proxy; // may be NULL: the host side is gone
	struct guest_client *gc;
	const struct wl_interface *iface; // the compiled-in table of both twins
	uint64_t destructors; // request opcodes that destroy the object
	uint64_t event_destructors; // event opcodes after which the host has destroyed it
	uint64_t dependent_requests; // request opcodes whose new object joins dependents
	void *data; // may be NULL: a hook's state, freed with data_destroy
	void (*data_destroy)(void *data);
	// May be NULL: for an object without a host twin (proxy NULL), makes
	// one when a request of `requester` names it, or returns NULL where it
	// cannot stand in; the hook keeps it (the copy path's buffers, named by
	// requests other than wl_surface.attach).
	struct wl_proxy *(*host_twin)(struct fwd_object *obj, const struct fwd_object *requester);
	// Objects the host destroys along with this one, telling the guest
	// nothing (a surface's frame callbacks): struct fwd_object.dependent_link.
	struct wl_list dependents;
	struct wl_list dependent_link; // in the parent's dependents, or empty
	struct wl_listener resource_destroy;
};

// Pairs a guest resource with a host proxy (either may be NULL) and installs
// the dispatchers; NULL on allocation failure (the caller posts no_memory).
struct fwd_object *fwd_pair(struct guest_client *gc, struct wl_resource *resource,
			    struct wl_proxy *proxy);
// As fwd_pair, with a hook's request and event dispatchers (NULL: the
// generic one).
struct fwd_object *fwd_pair_with(struct guest_client *gc, struct wl_resource *resource,
				 struct wl_proxy *proxy, wl_dispatcher_func_t on_request,
				 wl_dispatcher_func_t on_event);
// The generic forwarders, for hooks that change only some messages.
int fwd_request_dispatch(const void *impl, void *target, uint32_t opcode,
			 const struct wl_message *msg, union wl_argument *args);
int fwd_event_dispatch(const void *impl, void *target, uint32_t opcode,
		       const struct wl_message *msg, union wl_argument *args);

// The pair of a resource or proxy created by fwd_pair, or NULL.
struct fwd_object *fwd_from_resource(struct wl_resource *resource);
struct fwd_object *fwd_from_proxy(struct wl_proxy *proxy);

// Takes over the guest client's wl_display object: sync becomes a host
// round trip and get_registry a forwarded host registry.
void fwd_display_init(struct guest_client *gc);

// Maps a host protocol error to the guest object it concerns.
void fwd_post_host_error(struct guest_client *gc);

#endif
