/* The compiled-in interface tables and the lookup by name. */
#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocols.h"
/* Generated headers are reachable and agree with the lookup. */
#include "xdg-shell-client-protocol.h"
#include "xdg-shell-server-protocol.h"
#include "viewporter-server-protocol.h"

static const struct wl_interface *find_version(const char *name, int min_version)
{
	const struct wl_interface *iface = sml_protocols_find(name);

	if (!iface) {
		fprintf(stderr, "missing interface %s\n", name);
		assert(iface);
	}
	assert(strcmp(iface->name, name) == 0);
	assert(iface->version >= min_version);
	return iface;
}

static void test_find(void)
{
	static const char *const core[] = {
		"wl_display", "wl_registry", "wl_callback", "wl_compositor",
		"wl_shm_pool", "wl_shm", "wl_buffer", "wl_data_offer",
		"wl_data_source", "wl_data_device", "wl_data_device_manager",
		"wl_shell", "wl_shell_surface", "wl_surface", "wl_seat",
		"wl_pointer", "wl_keyboard", "wl_touch", "wl_output", "wl_region",
		"wl_subcompositor", "wl_subsurface",
	};

	for (size_t i = 0; i < sizeof(core) / sizeof(core[0]); i++)
		find_version(core[i], 1);
	/* Core tables are libwayland's own. */
	assert(sml_protocols_find("wl_compositor") == &wl_compositor_interface);
	assert(sml_protocols_find("wl_surface") == &wl_surface_interface);

	assert(find_version("xdg_wm_base", 5) == &xdg_wm_base_interface);
	assert(find_version("xdg_toplevel", 1) == &xdg_toplevel_interface);
	assert(find_version("wp_viewporter", 1) == &wp_viewporter_interface);
	find_version("zwp_linux_dmabuf_v1", 3);
	find_version("zxdg_decoration_manager_v1", 1);
	find_version("wp_fractional_scale_manager_v1", 1);
	find_version("wp_single_pixel_buffer_manager_v1", 1);
	find_version("zwp_primary_selection_device_manager_v1", 1);
#if SML_HAVE_PLASMA_PROTOCOLS
	find_version("org_kde_kwin_server_decoration_manager", 1);
	find_version("org_kde_kwin_server_decoration", 1);
#endif

	assert(sml_protocols_find("nonexistent_iface") == NULL);
	assert(sml_protocols_find("") == NULL);
	assert(sml_protocols_find(NULL) == NULL);
	assert(sml_protocols_find("wl_surface_") == NULL);
	assert(sml_protocols_find("wl_surfac") == NULL);
}

/* Number of arguments (one types[] slot each) in a message signature. */
static size_t signature_args(const char *sig)
{
	size_t n = 0;

	for (; *sig; sig++) {
		if (*sig >= '0' && *sig <= '9')
			continue;
		if (*sig == '?')
			continue;
		assert(strchr("iufsoanh", *sig));
		n++;
	}
	return n;
}

static void check_messages(const struct wl_interface *iface,
			   const struct wl_message *msgs, int count)
{
	assert(count >= 0 && count < 256);
	assert(count == 0 || msgs);
	for (int m = 0; m < count; m++) {
		const struct wl_message *msg = &msgs[m];
		size_t nargs;

		assert(msg->name && msg->name[0]);
		assert(msg->signature);
		/* A leading number is the version the message appeared in. */
		assert(atoi(msg->signature) <= iface->version);
		nargs = signature_args(msg->signature);
		assert(nargs < 64);
		assert(nargs == 0 || msg->types);
		for (size_t a = 0; a < nargs; a++) {
			const struct wl_interface *ref = msg->types[a];

			if (!ref)
				continue;
			if (sml_protocols_find(ref->name) != ref) {
				fprintf(stderr, "%s.%s references %s, not in the table\n",
					iface->name, msg->name, ref->name);
				assert(0);
			}
		}
	}
}

static void test_table(void)
{
	size_t count = sml_protocols_count();
	const struct wl_interface *prev = NULL;

	printf("%zu interfaces compiled in (plasma: %s)\n", count,
	       SML_HAVE_PLASMA_PROTOCOLS ? "yes" : "no");
	assert(sml_protocols_at(count) == NULL);

	for (size_t i = 0; i < count; i++) {
		const struct wl_interface *iface = sml_protocols_at(i);

		assert(iface && iface->name && iface->name[0]);
		/* Strictly sorted: no duplicate names. */
		if (prev)
			assert(strcmp(prev->name, iface->name) < 0);
		assert(sml_protocols_find(iface->name) == iface);
		assert(iface->version >= 1);
		check_messages(iface, iface->methods, iface->method_count);
		check_messages(iface, iface->events, iface->event_count);
		prev = iface;
	}
	/* Debian 12: 22 core + ~90 wayland-protocols + ~55 plasma. */
	assert(count > (SML_HAVE_PLASMA_PROTOCOLS ? 150 : 100));
}

static uint64_t bit(unsigned opcode)
{
	return 1ull << opcode;
}

/* Destructor requests as the XML marks them. */
static void test_destructors(void)
{
	assert(sml_protocols_destructors(sml_protocols_find("wl_surface")) == bit(0));
	assert(sml_protocols_destructors(sml_protocols_find("wl_buffer")) == bit(0));
	assert(sml_protocols_destructors(sml_protocols_find("wl_callback")) == 0);
	assert(sml_protocols_destructors(sml_protocols_find("wl_compositor")) == 0);
	/* wl_seat.release (opcode 3, since 5), wl_pointer.release (1). */
	assert(sml_protocols_destructors(sml_protocols_find("wl_seat")) == bit(3));
	assert(sml_protocols_destructors(sml_protocols_find("wl_pointer")) == bit(1));
	assert(sml_protocols_destructors(sml_protocols_find("xdg_toplevel")) == bit(0));
	assert(sml_protocols_destructors(sml_protocols_find("xdg_wm_base")) == bit(0));
	assert(sml_protocols_destructors(NULL) == 0);
	/* A look-alike that is not the compiled-in table. */
	struct wl_interface fake = *sml_protocols_find("wl_surface");
	assert(sml_protocols_destructors(&fake) == 0);
}

/* The bit of the event named `name`, 0 when there is none. */
static uint64_t event_bit(const char *iface_name, const char *name)
{
	const struct wl_interface *iface = sml_protocols_find(iface_name);

	for (int op = 0; iface && op < iface->event_count; op++)
		if (strcmp(iface->events[op].name, name) == 0)
			return 1ull << op;
	return 0;
}

static void test_event_destructors(void)
{
	/* Marked type="destructor" in the XML. */
	assert(event_bit("wl_callback", "done") == 1);
	assert(sml_protocols_event_destructors(&wl_callback_interface) == 1);
	assert(sml_protocols_event_destructors(sml_protocols_find("wp_presentation_feedback")) ==
	       (event_bit("wp_presentation_feedback", "presented") |
		event_bit("wp_presentation_feedback", "discarded")));
	assert(event_bit("zwp_fullscreen_shell_mode_feedback_v1", "present_cancelled"));
	assert(sml_protocols_event_destructors(
		       sml_protocols_find("zwp_fullscreen_shell_mode_feedback_v1")) ==
	       (event_bit("zwp_fullscreen_shell_mode_feedback_v1", "mode_successful") |
		event_bit("zwp_fullscreen_shell_mode_feedback_v1", "mode_failed") |
		event_bit("zwp_fullscreen_shell_mode_feedback_v1", "present_cancelled")));
#if SML_HAVE_PLASMA_PROTOCOLS
	/* Said in the description only. */
	assert(event_bit("kde_output_device_mode_v2", "removed"));
	assert(sml_protocols_event_destructors(sml_protocols_find("kde_output_device_mode_v2")) ==
	       event_bit("kde_output_device_mode_v2", "removed"));
#endif
	assert(sml_protocols_event_destructors(&wl_surface_interface) == 0);
	assert(sml_protocols_event_destructors(sml_protocols_find("wl_data_offer")) == 0);
	assert(sml_protocols_event_destructors(NULL) == 0);

	struct wl_interface fake = wl_callback_interface; /* same name, not the table's */
	assert(sml_protocols_event_destructors(&fake) == 0);
}

int main(void)
{
	test_find();
	test_destructors();
	test_event_destructors();
	test_table();
	printf("protocol tables: ok\n");
	return 0;
}
