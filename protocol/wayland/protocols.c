#include "protocols.h"

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

const struct wl_interface *sml_protocols_find(const char *name)
{
	const struct wl_interface *const *found;

	if (!name)
		return NULL;
	found = bsearch(name, sml_protocols_table, TABLE_LEN,
			sizeof(sml_protocols_table[0]), compare_name);
	return found ? *found : NULL;
}

size_t sml_protocols_count(void)
{
	return TABLE_LEN;
}

const struct wl_interface *sml_protocols_at(size_t i)
{
	return i < TABLE_LEN ? sml_protocols_table[i] : NULL;
}
