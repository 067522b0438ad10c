// SPDX-License-Identifier: MIT
// Generic forwarding between guest resources and host proxies through
// libwayland's dispatchers. Every argument that names an object is
// translated to the other side's twin; new objects get a twin created on the
// spot; fds pass as they are (the channel turns them into identifiers).
#include "forward.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wayland-server-protocol.h>

#include "client.h"
#include "log.h"
#include "protocols.h"
#include "shm_copy.h"

// Request opcodes from the client-side XML (the client and server protocol
// headers cannot both be included).
#define DISPLAY_SYNC 0
#define DISPLAY_GET_REGISTRY 1
#define REGISTRY_BIND 0

// Passed as the "implementation" of every paired object, so that an object
// can be recognised as ours.
static const int fwd_tag;

// Walks a wl_message signature: the type of each argument and whether it
// may be null, skipping the leading version digits.
struct sig_arg {
	char type;
	bool nullable;
};

static const char *next_arg(const char *sig, struct sig_arg *arg)
{
	arg->nullable = false;
	for (; *sig; sig++) {
		if (*sig == '?')
			arg->nullable = true;
		else if (*sig < '0' || *sig > '9')
			break;
	}
	arg->type = *sig;
	return *sig ? sig + 1 : NULL;
}

// libwayland's closures hold at most 20 arguments.
#define MAX_ARGS 20

// Translation happens in a copy: after a handler returns, libwayland-client
// unrefs the proxies in its own argument array, so that array must keep
// the proxies it had.
static union wl_argument *copy_args(const struct wl_message *msg, const union wl_argument *args,
				    union wl_argument copy[MAX_ARGS])
{
	struct sig_arg a;
	int n = 0;
	for (const char *s = next_arg(msg->signature, &a); s && n < MAX_ARGS; s = next_arg(s, &a))
		n++;
	memcpy(copy, args, (size_t)n * sizeof(*copy));
	return copy;
}

static void close_fds(const struct wl_message *msg, union wl_argument *args)
{
	struct sig_arg a;
	int i = 0;
	for (const char *s = next_arg(msg->signature, &a); s; s = next_arg(s, &a), i++)
		if (a.type == 'h')
			close(args[i].h);
}

// As the host does when it destroys their parent: the guest gets delete_id
// for each, and the host proxies wait for the host's.
static void destroy_dependents(struct fwd_object *obj)
{
	struct fwd_object *d, *tmp;
	wl_list_for_each_safe(d, tmp, &obj->dependents, dependent_link) {
		wl_list_remove(&d->dependent_link);
		wl_list_init(&d->dependent_link);
		// A client going away takes all its resources anyway.
		if (!obj->gc->dying)
			wl_resource_destroy(d->resource);
	}
}

static void resource_destroyed(struct wl_listener *listener, void *data)
{
	struct fwd_object *obj = wl_container_of(listener, obj, resource_destroy);
	wl_list_remove(&listener->link);
	wl_list_remove(&obj->dependent_link);
	destroy_dependents(obj);
	obj->resource = NULL;
	if (obj->data_destroy)
		obj->data_destroy(obj->data);
	// At client teardown the whole host connection goes; until then a
	// guest object that vanished without a destructor request is only
	// forgotten locally.
	if (obj->proxy)
		wl_proxy_destroy(obj->proxy);
	free(obj);
}

struct fwd_object *fwd_from_resource(struct wl_resource *resource)
{
	struct wl_listener *l = resource ?
		wl_resource_get_destroy_listener(resource, resource_destroyed) : NULL;
	struct fwd_object *obj;
	return l ? wl_container_of(l, obj, resource_destroy) : NULL;
}

struct fwd_object *fwd_from_proxy(struct wl_proxy *proxy)
{
	if (!proxy || wl_proxy_get_listener(proxy) != (const void *)&fwd_tag)
		return NULL;
	return wl_proxy_get_user_data(proxy);
}

// ---- guest requests to the host -----------------------------------------

// The host proxy standing for `target` in a request of `requester`. A twin
// is made only for a request that will be sent: it may cost a copy.
static struct wl_proxy *host_side(struct fwd_object *target, const struct fwd_object *requester)
{
	if (target->proxy || !target->host_twin || !requester->proxy)
		return target->proxy;
	return target->host_twin(target, requester);
}

// Object arguments become host proxies. False (after posting an error) when
// a non-nullable object has no host twin any more.
static bool translate_request_args(struct fwd_object *obj, const struct wl_message *msg,
				   union wl_argument *args, int *new_id_index)
{
	struct sig_arg a;
	int i = 0;
	*new_id_index = -1;
	for (const char *s = next_arg(msg->signature, &a); s; s = next_arg(s, &a), i++) {
		if (a.type == 'n') {
			*new_id_index = i;
		} else if (a.type == 'o' && args[i].o) {
			struct fwd_object *target = fwd_from_resource((struct wl_resource *)args[i].o);
			args[i].o = target ? (struct wl_object *)host_side(target, obj) : NULL;
			if (!args[i].o && !a.nullable) {
				// On wl_display, as libwayland posts invalid_object: on
				// obj, code 0 would mean obj's own first error.
				struct wl_client *client = wl_resource_get_client(obj->resource);
				wl_resource_post_error(wl_client_get_object(client, 1),
						       WL_DISPLAY_ERROR_INVALID_OBJECT,
						       "%s@%u.%s: object argument %d is gone on the host",
						       wl_resource_get_class(obj->resource),
						       wl_resource_get_id(obj->resource), msg->name, i);
				return false;
			}
		}
	}
	return true;
}

// A new_id in a request: the host proxy exists already; make the guest twin.
static struct fwd_object *pair_new_resource(struct fwd_object *obj,
					    const struct wl_interface *iface, uint32_t id,
					    struct wl_proxy *proxy)
{
	struct wl_client *client = wl_resource_get_client(obj->resource);
	struct wl_resource *res = wl_resource_create(client, iface,
						     wl_resource_get_version(obj->resource), id);
	struct fwd_object *made = res ? fwd_pair(obj->gc, res, proxy) : NULL;
	if (!made) {
		if (proxy)
			wl_proxy_destroy(proxy);
		if (res)
			wl_resource_destroy(res);
		wl_client_post_no_memory(client);
	}
	return made;
}

int fwd_request_dispatch(const void *impl, void *target, uint32_t opcode,
			 const struct wl_message *msg, union wl_argument *orig_args)
{
	union wl_argument copy[MAX_ARGS];
	union wl_argument *args = copy_args(msg, orig_args, copy);
	struct wl_resource *resource = target;
	struct fwd_object *obj = fwd_from_resource(resource);
	int new_id_index;
	if (!translate_request_args(obj, msg, args, &new_id_index)) {
		close_fds(msg, args);
		return 0;
	}
	uint32_t new_id = new_id_index >= 0 ? args[new_id_index].n : 0;
	const struct wl_interface *new_iface = new_id_index >= 0 ? msg->types[new_id_index] : NULL;
	bool destructor = opcode < 64 && (obj->destructors & (1ull << opcode));
	struct wl_proxy *created = NULL;
	if (obj->proxy) {
		created = wl_proxy_marshal_array_flags(obj->proxy, opcode, new_iface,
						       wl_proxy_get_version(obj->proxy),
						       destructor ? WL_MARSHAL_FLAG_DESTROY : 0,
						       args);
		if (destructor)
			obj->proxy = NULL;
	}
	close_fds(msg, args);
	struct fwd_object *made = new_id_index >= 0 ?
		pair_new_resource(obj, new_iface, new_id, created) : NULL;
	if (made && opcode < 64 && (obj->dependent_requests & (1ull << opcode)))
		wl_list_insert(&obj->dependents, &made->dependent_link);
	if (destructor)
		wl_resource_destroy(resource);
	return 0;
}

// ---- host events to the guest -------------------------------------------

// Object arguments become guest resources, and a new_id (a server-created
// object such as wl_data_offer) gets its guest twin. False when the event
// cannot be delivered (a non-nullable object the guest no longer has).
static bool translate_event_args(struct fwd_object *obj, const struct wl_message *msg,
				 union wl_argument *args)
{
	struct sig_arg a;
	bool ok = true;
	int i = 0;
	for (const char *s = next_arg(msg->signature, &a); s; s = next_arg(s, &a), i++) {
		if (a.type == 'o' && args[i].o) {
			struct fwd_object *t = fwd_from_proxy((struct wl_proxy *)args[i].o);
			args[i].o = t ? (struct wl_object *)t->resource : NULL;
		}
		if (a.type == 'n' && args[i].o) {
			struct wl_proxy *proxy = (struct wl_proxy *)args[i].o;
			struct wl_resource *res = wl_resource_create(
				wl_resource_get_client(obj->resource), msg->types[i],
				wl_resource_get_version(obj->resource), 0);
			if (!res || !fwd_pair(obj->gc, res, proxy)) {
				wl_proxy_destroy(proxy);
				if (res)
					wl_resource_destroy(res);
				args[i].o = NULL;
			} else {
				args[i].o = (struct wl_object *)res;
			}
		}
		if ((a.type == 'o' || a.type == 'n') && !args[i].o && !a.nullable)
			ok = false;
	}
	return ok;
}

// Events for a guest object that is gone: new host objects they carry are
// dropped with them.
static void drop_event(const struct wl_message *msg, union wl_argument *args)
{
	struct sig_arg a;
	int i = 0;
	for (const char *s = next_arg(msg->signature, &a); s; s = next_arg(s, &a), i++)
		if (a.type == 'n' && args[i].o)
			wl_proxy_destroy((struct wl_proxy *)args[i].o);
	close_fds(msg, args);
}

int fwd_event_dispatch(const void *impl, void *target, uint32_t opcode,
		       const struct wl_message *msg, union wl_argument *orig_args)
{
	union wl_argument copy[MAX_ARGS];
	union wl_argument *args = copy_args(msg, orig_args, copy);
	struct fwd_object *obj = fwd_from_proxy(target);
	if (!obj || !obj->resource) {
		drop_event(msg, args);
		return 0;
	}
	if (translate_event_args(obj, msg, args))
		wl_resource_post_event_array(obj->resource, opcode, args);
	else
		sml_dbg("%s.%s dropped: an object it names is gone in the guest",
			obj->iface->name, msg->name);
	close_fds(msg, args);
	if (opcode < 64 && (obj->event_destructors & (1ull << opcode))) {
		wl_proxy_destroy(obj->proxy);
		obj->proxy = NULL;
		wl_resource_destroy(obj->resource); // frees obj
	}
	return 0;
}

static struct fwd_object *pair_with(struct guest_client *gc, struct wl_resource *resource,
				    struct wl_proxy *proxy, wl_dispatcher_func_t on_request,
				    wl_dispatcher_func_t on_event)
{
	struct fwd_object *obj = calloc(1, sizeof(*obj));
	if (!obj)
		return NULL;
	obj->gc = gc;
	obj->resource = resource;
	obj->proxy = proxy;
	obj->iface = sml_protocols_find(wl_resource_get_class(resource));
	struct sml_protocols_lifetimes lt = sml_protocols_lifetimes(obj->iface);
	obj->destructors = lt.destructor_requests;
	obj->event_destructors = lt.destructor_events;
	obj->dependent_requests = lt.dependent_requests;
	wl_list_init(&obj->dependents);
	wl_list_init(&obj->dependent_link);
	obj->resource_destroy.notify = resource_destroyed;
	wl_resource_add_destroy_listener(resource, &obj->resource_destroy);
	wl_resource_set_dispatcher(resource, on_request, &fwd_tag, obj, NULL);
	if (proxy)
		wl_proxy_add_dispatcher(proxy, on_event, &fwd_tag, obj);
	return obj;
}

struct fwd_object *fwd_pair_with(struct guest_client *gc, struct wl_resource *resource,
				 struct wl_proxy *proxy, wl_dispatcher_func_t on_request,
				 wl_dispatcher_func_t on_event)
{
	return pair_with(gc, resource, proxy, on_request ? on_request : fwd_request_dispatch,
			 on_event ? on_event : fwd_event_dispatch);
}

// Objects whose requests change meaning get their hook's dispatcher.
struct fwd_object *fwd_pair(struct guest_client *gc, struct wl_resource *resource,
			    struct wl_proxy *proxy)
{
	wl_dispatcher_func_t hook = shm_copy_hook(gc, wl_resource_get_class(resource));
	return pair_with(gc, resource, proxy, hook ? hook : fwd_request_dispatch,
			 fwd_event_dispatch);
}

// ---- the registry: filtered, version-capped, bound per client -----------

// Interfaces whose fds the channel cannot carry, or that would let a guest
// reach beyond its own windows.
static bool global_allowed(struct guest_client *gc, const struct wl_interface *iface)
{
	static const char *const never[] = {
		"zwp_linux_explicit_synchronization_v1", // sync_file fds
		"wp_security_context_manager_v1", // listening sockets
		"wp_drm_lease_device_v1", // DRM fds
	};
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		if (strcmp(iface->name, never[i]) == 0)
			return false;
	// dma-bufs need a device that shares memory as it is.
	if (strcmp(iface->name, "zwp_linux_dmabuf_v1") == 0)
		return !gc->server->config->shm_copy && gc->shares_memory;
	return true;
}

static struct guest_global *find_global(struct guest_client *gc, uint32_t name)
{
	struct guest_global *g;
	wl_array_for_each(g, &gc->globals)
		if (g->name == name)
			return g;
	return NULL;
}

static void registry_global(struct fwd_object *obj, union wl_argument *args)
{
	struct guest_client *gc = obj->gc;
	const struct wl_interface *iface = sml_protocols_find(args[1].s);
	if (!iface || !global_allowed(gc, iface)) {
		sml_dbg("global %s v%u not advertised: %s", args[1].s, args[2].u,
			iface ? "policy" : "no protocol XML compiled in");
		return;
	}
	struct guest_global *g = find_global(gc, args[0].u);
	if (!g && !(g = wl_array_add(&gc->globals, sizeof(*g)))) {
		wl_client_post_no_memory(gc->client);
		return;
	}
	*g = (struct guest_global){ .name = args[0].u, .interface = iface,
				    .version = args[2].u < (uint32_t)iface->version ?
					       args[2].u : (uint32_t)iface->version };
	wl_resource_post_event(obj->resource, WL_REGISTRY_GLOBAL, g->name, iface->name,
			       g->version);
}

static int registry_event(const void *impl, void *target, uint32_t opcode,
			  const struct wl_message *msg, union wl_argument *args)
{
	struct fwd_object *obj = fwd_from_proxy(target);
	if (!obj || !obj->resource)
		return 0;
	if (opcode == WL_REGISTRY_GLOBAL)
		registry_global(obj, args);
	else if (opcode == WL_REGISTRY_GLOBAL_REMOVE && find_global(obj->gc, args[0].u))
		wl_resource_post_event(obj->resource, WL_REGISTRY_GLOBAL_REMOVE, args[0].u);
	return 0;
}

static void registry_bind(struct fwd_object *obj, union wl_argument *args)
{
	struct guest_global *g = find_global(obj->gc, args[0].u);
	uint32_t version = args[2].u;
	if (!g || strcmp(g->interface->name, args[1].s) != 0 || version == 0 ||
	    version > g->version) {
		wl_resource_post_error(obj->resource, WL_DISPLAY_ERROR_INVALID_OBJECT,
				       "invalid global %s (%u) version %u", args[1].s,
				       args[0].u, version);
		return;
	}
	struct wl_proxy *proxy = wl_proxy_marshal_flags(obj->proxy, REGISTRY_BIND,
							g->interface, version, 0, g->name,
							g->interface->name, version, NULL);
	struct wl_resource *res = wl_resource_create(obj->gc->client, g->interface, version,
						     args[3].n);
	if (g->interface == &wl_shm_interface)
		shm_copy_bound(obj->gc, obj->proxy, g->name);
	if (!res || !proxy || !fwd_pair(obj->gc, res, proxy)) {
		if (proxy)
			wl_proxy_destroy(proxy);
		if (res)
			wl_resource_destroy(res);
		wl_client_post_no_memory(obj->gc->client);
	}
}

static int registry_request(const void *impl, void *target, uint32_t opcode,
			    const struct wl_message *msg, union wl_argument *args)
{
	struct fwd_object *obj = fwd_from_resource(target);
	if (opcode == REGISTRY_BIND)
		registry_bind(obj, args);
	return 0;
}

// ---- the guest's wl_display ----------------------------------------------

static struct wl_proxy *host_display(struct guest_client *gc)
{
	return (struct wl_proxy *)gc->host;
}

static void display_sync(struct guest_client *gc, uint32_t id)
{
	struct wl_resource *cb = wl_resource_create(gc->client, &wl_callback_interface, 1, id);
	struct wl_proxy *proxy = gc->host ?
		wl_proxy_marshal_flags(host_display(gc), DISPLAY_SYNC, &wl_callback_interface,
				       wl_proxy_get_version(host_display(gc)), 0, NULL) : NULL;
	if (!cb || !fwd_pair(gc, cb, proxy)) {
		if (proxy)
			wl_proxy_destroy(proxy);
		if (cb)
			wl_resource_destroy(cb);
		wl_client_post_no_memory(gc->client);
	}
}

static void display_get_registry(struct guest_client *gc, uint32_t id)
{
	struct wl_resource *reg = wl_resource_create(gc->client, &wl_registry_interface, 1, id);
	struct wl_proxy *proxy = gc->host ?
		wl_proxy_marshal_flags(host_display(gc), DISPLAY_GET_REGISTRY,
				       &wl_registry_interface,
				       wl_proxy_get_version(host_display(gc)), 0, NULL) : NULL;
	if (!reg || !pair_with(gc, reg, proxy, registry_request, registry_event)) {
		if (proxy)
			wl_proxy_destroy(proxy);
		if (reg)
			wl_resource_destroy(reg);
		wl_client_post_no_memory(gc->client);
	}
}

static int display_request(const void *impl, void *target, uint32_t opcode,
			   const struct wl_message *msg, union wl_argument *args)
{
	struct guest_client *gc = wl_resource_get_user_data(target);
	if (opcode == DISPLAY_SYNC)
		display_sync(gc, args[0].n);
	else if (opcode == DISPLAY_GET_REGISTRY)
		display_get_registry(gc, args[0].n);
	return 0;
}

// libwayland-server implements wl_display itself, answering sync at once
// and advertising its own globals. Replacing the dispatcher of object 1
// makes sync a host round trip and the registry the host's. The price:
// libwayland's own destroy hook for object 1 is gone, so at teardown the
// client's display pointer dangles once object 1 is freed (it is freed
// first): nothing may post to a client that is being destroyed, which
// guest_client's teardown guarantees.
void fwd_display_init(struct guest_client *gc)
{
	struct wl_resource *display = wl_client_get_object(gc->client, 1);
	wl_resource_set_dispatcher(display, display_request, &fwd_tag, gc, NULL);
}

struct find_host_object {
	uint32_t id;
	struct wl_resource *found;
};

static enum wl_iterator_result find_by_host_id(struct wl_resource *resource, void *data)
{
	struct find_host_object *f = data;
	struct fwd_object *obj = fwd_from_resource(resource);
	if (obj && obj->proxy && wl_proxy_get_id(obj->proxy) == f->id) {
		f->found = resource;
		return WL_ITERATOR_STOP;
	}
	return WL_ITERATOR_CONTINUE;
}

void fwd_post_host_error(struct guest_client *gc)
{
	const struct wl_interface *iface = NULL;
	uint32_t id = 0;
	uint32_t code = wl_display_get_protocol_error(gc->host, &iface, &id);
	struct find_host_object f = { .id = id };
	wl_client_for_each_resource(gc->client, find_by_host_id, &f);
	struct wl_resource *target = f.found ? f.found : wl_client_get_object(gc->client, 1);
	sml_info("host protocol error %u on %s@%u", code, iface ? iface->name : "?", id);
	wl_resource_post_error(target, code, "host compositor: error %u on %s@%u", code,
			       iface ? iface->name : "?", id);
}
