#include "protocols.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* extern declarations and the sorted sml_protocols_table[] */
#include "protocols-table.inc"

#define TABLE_LEN (sizeof(sml_protocols_table) / sizeof(sml_protocols_table[0]))

static int compare_name(const void *key, const void *elem)
{
	const struct wl_interface *const *iface = elem;

	return strcmp(key, (*iface)->name);
}

static const struct wl_interface *const *find_entry(const char *name)
{
	if (!name)
		return NULL;
	return bsearch(name, sml_protocols_table, TABLE_LEN, sizeof(sml_protocols_table[0]),
		       compare_name);
}

const struct wl_interface *sml_protocols_find(const char *name)
{
	const struct wl_interface *const *found = find_entry(name);

	return found ? *found : NULL;
}

/* The masks of a compiled-in interface, or NULL. */
static const struct sml_protocols_masks *find_masks(const struct wl_interface *iface)
{
	const struct wl_interface *const *found = iface ? find_entry(iface->name) : NULL;

	return found && *found == iface ? &sml_protocols_destructor_masks[found - sml_protocols_table]
					: NULL;
}

/* A message of an interface, named. */
struct named_message {
	const char *interface;
	const char *message;
};

/* Events whose description says the server destroys the object after
 * sending them, though their XML lacks type="destructor". */
static const struct named_message unmarked_destructor_events[] = {
	{ "kde_output_device_mode_v2", "removed" },
};

/* Requests whose new object the server destroys with the object the
 * request was made on, telling the client only by delete_id: a compositor
 * destroys a surface's pending frame callbacks with the surface. */
static const struct named_message dependent_requests[] = {
	{ "wl_surface", "frame" },
};

/* The bits of iface's messages (requests or events, count of them) that
 * `list` names. */
static uint64_t named_mask(const struct wl_interface *iface, const struct named_message *list,
			   size_t n, const struct wl_message *messages, int count)
{
	uint64_t mask = 0;

	for (size_t i = 0; i < n; i++) {
		if (strcmp(iface->name, list[i].interface) != 0)
			continue;
		for (int op = 0; op < count && op < 64; op++)
			if (strcmp(messages[op].name, list[i].message) == 0)
				mask |= 1ull << op;
	}
	return mask;
}

struct sml_protocols_lifetimes sml_protocols_lifetimes(const struct wl_interface *iface)
{
	const struct sml_protocols_masks *m = find_masks(iface);

	if (!m)
		return (struct sml_protocols_lifetimes){ 0 };
	return (struct sml_protocols_lifetimes){
		.destructor_requests = m->requests,
		.destructor_events = m->events |
				     named_mask(iface, unmarked_destructor_events,
						SML_ARRAY_LEN(unmarked_destructor_events), iface->events,
						iface->event_count),
		.dependent_requests = named_mask(iface, dependent_requests,
						 SML_ARRAY_LEN(dependent_requests), iface->methods,
						 iface->method_count),
	};
}

uint64_t sml_protocols_destructors(const struct wl_interface *iface)
{
	return sml_protocols_lifetimes(iface).destructor_requests;
}

uint64_t sml_protocols_event_destructors(const struct wl_interface *iface)
{
	return sml_protocols_lifetimes(iface).destructor_events;
}

size_t sml_protocols_count(void)
{
	return TABLE_LEN;
}

const struct wl_interface *sml_protocols_at(size_t i)
{
	return i < TABLE_LEN ? sml_protocols_table[i] : NULL;
}
