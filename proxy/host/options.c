// SPDX-License-Identifier: MIT
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

enum value_kind { V_STRING, V_U32, V_MIB, V_KIB, V_PORT, V_LEVEL, V_FLAG };

struct option_spec {
	const char *name;
	char short_name;
	enum value_kind kind;
	size_t offset; // into struct host_options
	size_t size; // V_STRING buffer size
	const char *help;
};

#define OPT(field) offsetof(struct host_options, field)
#define LIM(field) (OPT(config.limits) + offsetof(struct host_limits, field))

static const struct option_spec specs[] = {
	{ "socket", 's', V_STRING, OPT(socket_path), sizeof(((struct host_options *)0)->socket_path),
	  "listen on this Unix socket (default $XDG_RUNTIME_DIR/sommelier-host.sock; \"none\" to disable)" },
	{ "tcp", 0, V_STRING, OPT(tcp), sizeof(((struct host_options *)0)->tcp),
	  "also listen on TCP [HOST:]PORT (default host 127.0.0.1)" },
	{ "vsock", 0, V_PORT, OPT(vsock_port), 0, "also listen on this vsock port" },
	{ "display", 'd', V_STRING, OPT(display_path), sizeof(((struct host_options *)0)->display_path),
	  "compositor socket name or path (default $WAYLAND_DISPLAY, else wayland-0)" },
	{ "config", 'c', V_STRING, OPT(config_file), sizeof(((struct host_options *)0)->config_file),
	  "config file (default $XDG_CONFIG_HOME/sommelier/sommelier.conf)" },
	{ "max-connections", 0, V_U32, LIM(max_conns), 0, "guest connections at once (128)" },
	{ "max-connections-per-peer", 0, V_U32, LIM(max_conns_per_peer), 0,
	  "connections of one guest process, VM or address (3/4 of max-connections)" },
	{ "max-contexts", 0, V_U32, LIM(max_contexts), 0, "contexts per connection (64)" },
	{ "max-resources", 0, V_U32, LIM(max_resources), 0, "resources per connection (16384)" },
	{ "max-pipes", 0, V_U32, LIM(max_pipes), 0, "clipboard pipes per connection (256)" },
	{ "max-memory", 0, V_MIB, LIM(max_memory), 0, "MiB of blob memory per connection (4096)" },
	{ "max-queue", 0, V_KIB, LIM(max_queue), 0,
	  "KiB queued towards a compositor, pipe or guest before giving up (16384)" },
	{ "max-items", 0, V_U32, LIM(max_items), 0,
	  "unclaimed blob ids and image layouts per context (4096)" },
	{ "max-fds", 0, V_U32, LIM(max_fds), 0,
	  "fds held for one connection (default: a share of the open-files limit)" },
	{ "log-level", 'l', V_LEVEL, 0, 0, "error, warn, info or debug (warn)" },
	{ "help", 'h', V_FLAG, OPT(help), 0, "show this help" },
	{ "version", 'v', V_FLAG, OPT(version), 0, "show the version" },
};

void host_options_usage(const char *argv0)
{
	printf("Usage: %s [OPTION]...\n"
	       "The host peer of sommelier: a virtio-gpu cross-domain device that guests\n"
	       "reach over a socket; each guest context gets its own connection to the\n"
	       "host Wayland compositor.\n\n", argv0);
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		char left[40];
		snprintf(left, sizeof(left), "%c%c%c --%s%s", specs[i].short_name ? '-' : ' ',
			 specs[i].short_name ? specs[i].short_name : ' ',
			 specs[i].short_name ? ',' : ' ', specs[i].name,
			 specs[i].kind == V_FLAG ? "" : "=VALUE");
		printf("  %-28s %s\n", left, specs[i].help);
	}
	printf("\nEvery long option can also be set as `name = value` in the [host]\n"
	       "section of the config file. SOMMELIER_HOST_LOG_LEVEL sets the log level.\n");
}

static bool parse_u64(const char *value, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(value, &end, 10);
	if (errno || end == value || *end || value[0] == '-' || n > max)
		return false;
	*out = n;
	return true;
}

static bool apply(struct host_options *opts, const struct option_spec *spec, const char *value)
{
	char *field = (char *)opts + spec->offset;
	uint64_t n;
	enum sml_log_level level;
	switch (spec->kind) {
	case V_STRING:
		if (strlen(value) >= spec->size)
			return false;
		strcpy(field, value);
		return true;
	case V_U32:
		if (!parse_u64(value, UINT32_MAX, &n) || n == 0)
			return false;
		*(uint32_t *)field = (uint32_t)n;
		return true;
	case V_MIB:
		if (!parse_u64(value, 1u << 24, &n) || n == 0)
			return false;
		*(uint64_t *)field = n << 20;
		return true;
	case V_KIB:
		if (!parse_u64(value, 1u << 22, &n) || n == 0)
			return false;
		*(size_t *)field = (size_t)n << 10;
		return true;
	case V_PORT:
		if (!parse_u64(value, INT32_MAX, &n))
			return false;
		*(int *)field = (int)n;
		return true;
	case V_LEVEL:
		return sml_log_parse_level(value, &level) && (sml_log_set_level(level), true);
	case V_FLAG:
		*(bool *)field = true;
		return true;
	}
	return false;
}

static const struct option_spec *find_spec(const char *name, int short_name)
{
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
		if ((name && strcmp(specs[i].name, name) == 0) ||
		    (!name && short_name && specs[i].short_name == short_name))
			return &specs[i];
	return NULL;
}

static bool apply_named(struct host_options *opts, const struct option_spec *spec,
			const char *value, const char *origin)
{
	if (spec && apply(opts, spec, value ? value : ""))
		return true;
	fprintf(stderr, "sommelier-host: %s: bad value for --%s: '%s'\n", origin,
		spec ? spec->name : "?", value ? value : "");
	return false;
}

static int on_ini_entry(void *data, const char *section, const char *name, const char *value)
{
	if (strcmp(section, "host") != 0)
		return 1; // other sections belong to the guest proxy
	const struct option_spec *spec = find_spec(name, 0);
	if (!spec || spec->kind == V_FLAG) {
		fprintf(stderr, "sommelier-host: config: unknown key '%s' in [host]\n", name);
		return 0;
	}
	return apply_named(data, spec, value, "config");
}

static void set_defaults(struct host_options *opts)
{
	*opts = (struct host_options){
		.config.limits = {
			.max_conns = 128,
			.max_contexts = 64,
			.max_resources = 16384,
			.max_pipes = 256,
			.max_memory = 4096ull << 20,
			.max_queue = 16u << 20,
			.max_items = 4096,
		},
		.vsock_port = -1,
	};
	const char *level = getenv("SOMMELIER_HOST_LOG_LEVEL");
	enum sml_log_level parsed;
	if (level && sml_log_parse_level(level, &parsed))
		sml_log_set_level(parsed);
}

// An explicit --config must exist; the default one is optional.
static bool read_config(struct host_options *opts, const char *explicit_path)
{
	char path[512];
	const char *home = getenv("HOME"), *xdg = getenv("XDG_CONFIG_HOME");
	if (explicit_path)
		snprintf(path, sizeof(path), "%s", explicit_path);
	else if (xdg && *xdg)
		snprintf(path, sizeof(path), "%s/sommelier/sommelier.conf", xdg);
	else if (home)
		snprintf(path, sizeof(path), "%s/.config/sommelier/sommelier.conf", home);
	else
		return true;
	if (!explicit_path && access(path, F_OK) != 0)
		return true;
	int ret = ini_parse(path, on_ini_entry, opts);
	if (ret < 0)
		fprintf(stderr, "sommelier-host: cannot read config %s\n", path);
	else if (ret > 0)
		fprintf(stderr, "sommelier-host: config %s: error on line %d\n", path, ret);
	return ret == 0;
}

static bool resolve_paths(struct host_options *opts)
{
	const char *runtime = getenv("XDG_RUNTIME_DIR");
	const char *display = opts->display_path[0] ? opts->display_path : getenv("WAYLAND_DISPLAY");
	char name[256];
	snprintf(name, sizeof(name), "%s", display && *display ? display : "wayland-0");
	bool need_runtime = name[0] != '/' || !opts->socket_path[0];
	if (need_runtime && (!runtime || !*runtime)) {
		fprintf(stderr, "sommelier-host: XDG_RUNTIME_DIR is not set; give absolute "
				"--display and --socket paths\n");
		return false;
	}
	int n = name[0] == '/' ?
		snprintf(opts->display_path, sizeof(opts->display_path), "%s", name) :
		snprintf(opts->display_path, sizeof(opts->display_path), "%s/%s", runtime, name);
	if (!opts->socket_path[0])
		n |= snprintf(opts->socket_path, sizeof(opts->socket_path),
			      "%s/sommelier-host.sock", runtime);
	else if (strcmp(opts->socket_path, "none") == 0)
		opts->socket_path[0] = '\0';
	opts->config.display = opts->display_path;
	return n > 0 && strlen(opts->display_path) < 108;
}

static void build_getopt(struct option *longopts, char *shortopts)
{
	size_t n = sizeof(specs) / sizeof(specs[0]);
	for (size_t i = 0; i < n; i++) {
		longopts[i] = (struct option){ specs[i].name,
			specs[i].kind == V_FLAG ? no_argument : required_argument, NULL, 0x100 + (int)i };
		if (specs[i].short_name) {
			*shortopts++ = specs[i].short_name;
			if (specs[i].kind != V_FLAG)
				*shortopts++ = ':';
		}
	}
	longopts[n] = (struct option){ 0 };
	*shortopts = '\0';
}

static const char *find_config_arg(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--config=", 9) == 0)
			return argv[i] + 9;
		if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc)
			return argv[i + 1];
	}
	return NULL;
}

bool host_options_parse(struct host_options *opts, int argc, char **argv)
{
	struct option longopts[sizeof(specs) / sizeof(specs[0]) + 1];
	char shortopts[2 * sizeof(specs) / sizeof(specs[0]) + 1];
	set_defaults(opts);
	if (!read_config(opts, find_config_arg(argc, argv)))
		return false;
	build_getopt(longopts, shortopts);
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		const struct option_spec *spec = c >= 0x100 ? &specs[c - 0x100] : find_spec(NULL, c);
		if (c == '?' || !spec)
			return false;
		if (!apply_named(opts, spec, optarg, "command line"))
			return false;
	}
	if (optind < argc) {
		fprintf(stderr, "sommelier-host: unexpected argument '%s'\n", argv[optind]);
		return false;
	}
	return opts->help || opts->version || resolve_paths(opts);
}
