#include "protocols.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

uint64_t sml_protocols_destructors(const struct wl_interface *iface)
{
	const struct sml_protocols_masks *m = find_masks(iface);

	return m ? m->requests : 0;
}

/* Events whose description says the server destroys the object after
 * sending them, though their XML lacks type="destructor". */
static const struct {
	const char *interface;
	const char *event;
} unmarked_destructor_events[] = {
	{ "kde_output_device_mode_v2", "removed" },
};

static uint64_t unmarked_event_destructors(const struct wl_interface *iface)
{
	uint64_t mask = 0;

	for (size_t i = 0; i < sizeof(unmarked_destructor_events) /
				       sizeof(unmarked_destructor_events[0]); i++) {
		if (strcmp(iface->name, unmarked_destructor_events[i].interface) != 0)
			continue;
		for (int op = 0; op < iface->event_count && op < 64; op++)
			if (strcmp(iface->events[op].name, unmarked_destructor_events[i].event) == 0)
				mask |= 1ull << op;
	}
	return mask;
}

uint64_t sml_protocols_event_destructors(const struct wl_interface *iface)
{
	const struct sml_protocols_masks *m = find_masks(iface);

	return m ? m->events | unmarked_event_destructors(iface) : 0;
}

size_t sml_protocols_count(void)
{
	return TABLE_LEN;
}

const struct wl_interface *sml_protocols_at(size_t i)
{
	return i < TABLE_LEN ? sml_protocols_table[i] : NULL;
}
