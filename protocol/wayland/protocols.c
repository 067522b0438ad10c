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

uint64_t sml_protocols_destructors(const struct wl_interface *iface)
{
	const struct wl_interface *const *found = iface ? find_entry(iface->name) : NULL;

	return found && *found == iface ? sml_protocols_destructor_masks[found - sml_protocols_table]
					: 0;
}

size_t sml_protocols_count(void)
{
	return TABLE_LEN;
}

const struct wl_interface *sml_protocols_at(size_t i)
{
	return i < TABLE_LEN ? sml_protocols_table[i] : NULL;
}
