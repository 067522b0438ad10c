/*
 * Every Wayland interface compiled into the proxy, by name: core wl_* (from
 * libwayland), wayland-protocols and plasma-wayland-protocols (see
 * meson.build for which files are in and why some are left out).
 */
#ifndef SML_PROTOCOLS_H
#define SML_PROTOCOLS_H

#include <stddef.h>
#include <stdint.h>
#include <wayland-util.h>

/* The interface with exactly this name, or NULL if none is compiled in. */
const struct wl_interface *sml_protocols_find(const char *name);

/* Requests of a compiled-in interface marked type="destructor" in its XML,
 * as a bit per opcode (0 for unknown interfaces). wl_message has no such
 * flag, and forwarding must destroy the host object with the request. */
uint64_t sml_protocols_destructors(const struct wl_interface *iface);

/* Events after which the server has destroyed the object, a bit per opcode
 * (0 for unknown interfaces): those marked type="destructor" in the XML and
 * the few whose description says so without the mark. Forwarding destroys
 * both twins after delivering one. */
uint64_t sml_protocols_event_destructors(const struct wl_interface *iface);

/* How the objects of a compiled-in interface end, a bit per opcode (all 0
 * for unknown interfaces): what the two calls above return, and requests
 * whose new object the server destroys, without an event, when it destroys
 * the object the request was made on (wl_surface.frame). */
struct sml_protocols_lifetimes {
	uint64_t destructor_requests;
	uint64_t destructor_events;
	uint64_t dependent_requests;
};
struct sml_protocols_lifetimes sml_protocols_lifetimes(const struct wl_interface *iface);

/* Number of interfaces; sml_protocols_at(0 .. count-1) lists them sorted by
 * name (strcmp order). sml_protocols_at returns NULL when i is out of range. */
size_t sml_protocols_count(void);
const struct wl_interface *sml_protocols_at(size_t i);

#endif
