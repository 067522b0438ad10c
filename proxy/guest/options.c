// SPDX-License-Identifier: MIT
#include "options.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "util.h"
#include "vgpu.h"

// Where a setting comes from, lowest precedence first. The environment is
// below the file: SOMMELIER_* variables are usually set once for a whole
// guest by whatever launches it (an image's profile, a VM launcher, as
// ChromeOS does for Sommelier), while the file is the user's own choice, so
// it should not be silently undone by a variable the user did not set. A
// one-off override still works, on the command line, which beats both.
// sommelier-host treats SOMMELIER_HOST_LOG_LEVEL the same way.
enum source { SRC_ENV = 1, SRC_FILE, SRC_ARGV };

// --peer, --virtgpu-channel (or --force-drm-device), --noop-driver and
// --display each say which host side to use; they are one setting. The
// highest source that names any of them decides, so `--display` on the
// command line beats `peer` in the file. Within one source, a later kind
// wins over an earlier one in this list, as it always has.
enum host_kind { HOST_DISPLAY, HOST_PEER, HOST_DIRECT, HOST_VIRTGPU, HOST_KINDS };

enum {
	OPT_PEER = 0x100,
	OPT_DISPLAY,
	OPT_SOCKET,
	OPT_PARENT,
	OPT_SD_NOTIFY,
	OPT_NO_EXIT,
	OPT_NOOP,
	OPT_PEER_CMD_PREFIX,
	OPT_SHM_COPY,
	OPT_VIRTGPU,
	OPT_DRM_DEVICE,
	OPT_CONFIG = 'c',
	OPT_LOG_LEVEL = 'l',
	OPT_HELP = 'h',
	OPT_VERSION = 'v',
};

struct opt_spec {
	const char *name;
	int id;
	bool takes_value;
	bool in_file; // may be set in the [sommelier] section
	const char *env; // may be NULL: no SOMMELIER_* variable
};

static const struct opt_spec specs[] = {
	{ "peer", OPT_PEER, true, true, "SOMMELIER_PEER" },
	{ "display", OPT_DISPLAY, true, true, "SOMMELIER_DISPLAY" },
	{ "socket", OPT_SOCKET, true, true, "SOMMELIER_SOCKET" },
	{ "sd-notify", OPT_SD_NOTIFY, true, true, NULL },
	{ "shm-copy", OPT_SHM_COPY, false, true, NULL },
	{ "virtgpu-channel", OPT_VIRTGPU, false, true, NULL },
	{ "force-drm-device", OPT_DRM_DEVICE, true, true, NULL },
	{ "noop-driver", OPT_NOOP, false, true, NULL },
	{ "no-exit-with-child", OPT_NO_EXIT, false, true, NULL },
	{ "log-level", OPT_LOG_LEVEL, true, true, "SOMMELIER_LOG_LEVEL" },
	{ "parent", OPT_PARENT, false, false, NULL },
	{ "peer-cmd-prefix", OPT_PEER_CMD_PREFIX, true, false, NULL },
	{ "config", OPT_CONFIG, true, false, NULL },
	{ "help", OPT_HELP, false, false, NULL },
	{ "version", OPT_VERSION, false, false, NULL },
};

#define SHORT_OPTIONS "+c:l:hv" // '+': stop at PROGRAM

struct parse {
	struct guest_options *opts;
	enum source source;
	int host_rank[HOST_KINDS]; // 0: not given; higher wins
	char why[160]; // what was wrong with the last value
};

void guest_options_usage(const char *argv0)
{
	printf("Usage: %s [OPTION]... [--] PROGRAM [ARGS]...\n"
	       "       %s --parent --socket=NAME [OPTION]...\n"
	       "Shows the windows of Wayland programs in this guest on the host's desktop.\n\n"
	       "  --virtgpu-channel       reach the host through the virtio-gpu device of a VM\n"
	       "  --force-drm-device=PATH the render node to use (default: find one)\n"
	       "  --peer=unix:PATH        sommelier-host's socket device (default, without\n"
	       "                          a virtio-gpu device: $XDG_RUNTIME_DIR/sommelier-host.sock)\n"
	       "  --display=NAME          without a peer: talk to this compositor directly\n"
	       "  --noop-driver           direct mode, as Sommelier spells it\n"
	       "  --parent                serve any number of clients instead of PROGRAM\n"
	       "  --socket=NAME           --parent: listen on $XDG_RUNTIME_DIR/NAME\n"
	       "  --sd-notify=STATE       send STATE (e.g. READY=1) to $NOTIFY_SOCKET when ready\n"
	       "  --no-exit-with-child    keep serving after PROGRAM exits\n"
	       "  --shm-copy              copy pixels into host memory even where it could be\n"
	       "                          shared (the path VMs take)\n"
	       "  --peer-cmd-prefix=CMD   accepted for Sommelier compatibility; unused\n"
	       "  -c, --config=FILE       config file (default, if it exists:\n"
	       "                          $XDG_CONFIG_HOME/sommelier/sommelier.conf)\n"
	       "  -l, --log-level=LEVEL   error, warn, info or debug (warn)\n"
	       "  -h, --help, -v, --version\n\n"
	       "Settings come from, each overriding the one before: the defaults;\n"
	       "SOMMELIER_PEER, SOMMELIER_DISPLAY, SOMMELIER_SOCKET and SOMMELIER_LOG_LEVEL;\n"
	       "the [sommelier] section of the config file (keys: the long options above\n"
	       "except parent, peer-cmd-prefix, config, help and version; flags take\n"
	       "true or false); the command line. The host side (peer, display,\n"
	       "noop-driver, virtgpu-channel, force-drm-device) is one setting: the last\n"
	       "of those sources to give any of them decides it.\n",
	       argv0, argv0);
}

__attribute__((format(printf, 2, 3))) static bool fail(struct parse *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->why, sizeof(p->why), fmt, ap);
	va_end(ap);
	return false;
}

static bool copy_value(struct parse *p, char *dst, size_t cap, const char *value)
{
	if (strlen(value) >= cap)
		return fail(p, "longer than %zu bytes", cap - 1);
	strcpy(dst, value);
	return true;
}

static bool pick_host(struct parse *p, enum host_kind kind)
{
	p->host_rank[kind] = (int)p->source * HOST_KINDS + (int)kind;
	return true;
}

static bool set_peer(struct parse *p, const char *value)
{
	struct guest_options *opts = p->opts;
	if (strncmp(value, "tcp:", 4) == 0 || strncmp(value, "vsock:", 6) == 0)
		return fail(p, "TCP and vsock peers need the copy transport, "
			       "which sommelier does not have yet");
	const char *path = strncmp(value, "unix:", 5) == 0 ? value + 5 : value;
	if (!*path || (path == value && value[0] != '/'))
		return fail(p, "expected unix:PATH");
	return copy_value(p, opts->peer, sizeof(opts->peer), path) && pick_host(p, HOST_PEER);
}

static bool set_level(struct parse *p, const char *value)
{
	enum sml_log_level level;
	if (!sml_log_parse_level(value, &level))
		return fail(p, "expected error, warn, info or debug");
	sml_log_set_level(level);
	return true;
}

static bool set_flag(struct parse *p, int id, bool on)
{
	struct guest_options *opts = p->opts;
	switch (id) {
	case OPT_SHM_COPY:
		opts->config.shm_copy = on;
		return true;
	case OPT_NO_EXIT:
		opts->exit_with_child = !on;
		return true;
	case OPT_PARENT:
		opts->parent = on;
		return true;
	case OPT_HELP:
		opts->help = on;
		return true;
	case OPT_VERSION:
		opts->version = on;
		return true;
	case OPT_NOOP:
		return !on || pick_host(p, HOST_DIRECT);
	case OPT_VIRTGPU:
		return !on || pick_host(p, HOST_VIRTGPU);
	}
	return false;
}

// value is NULL for a flag on the command line (it means true).
static bool apply(struct parse *p, const struct opt_spec *spec, const char *value)
{
	struct guest_options *opts = p->opts;
	bool on = true;
	if (!spec->takes_value && value && !sml_config_parse_bool(value, &on))
		return fail(p, "expected true or false");
	if (!spec->takes_value)
		return set_flag(p, spec->id, on);
	if (!*value)
		return fail(p, "empty value");
	switch (spec->id) {
	case OPT_PEER:
		return set_peer(p, value);
	case OPT_DISPLAY:
		return copy_value(p, opts->display, sizeof(opts->display), value) &&
		       pick_host(p, HOST_DISPLAY);
	case OPT_SOCKET:
		return copy_value(p, opts->socket, sizeof(opts->socket), value);
	case OPT_SD_NOTIFY:
		return copy_value(p, opts->sd_notify, sizeof(opts->sd_notify), value);
	case OPT_DRM_DEVICE:
		return copy_value(p, opts->drm_device, sizeof(opts->drm_device), value) &&
		       pick_host(p, HOST_VIRTGPU);
	case OPT_LOG_LEVEL:
		return set_level(p, value);
	case OPT_PEER_CMD_PREFIX:
		sml_info("--peer-cmd-prefix is not needed: clients share one process");
		return true;
	case OPT_CONFIG:
		return true; // read before everything else
	}
	return false;
}

static const struct opt_spec *find_spec(const char *name, int id)
{
	for (size_t i = 0; i < SML_ARRAY_LEN(specs); i++)
		if (name ? strcmp(specs[i].name, name) == 0 : specs[i].id == id)
			return &specs[i];
	return NULL;
}

static bool read_env(struct parse *p)
{
	p->source = SRC_ENV;
	for (size_t i = 0; i < SML_ARRAY_LEN(specs); i++) {
		const char *value = specs[i].env ? getenv(specs[i].env) : NULL;
		if (value && *value && !apply(p, &specs[i], value)) {
			fprintf(stderr, "sommelier: %s=%s: %s\n", specs[i].env, value, p->why);
			return false;
		}
	}
	return true;
}

static bool on_file_entry(void *data, const char *name, const char *value, char *err,
			  size_t err_size)
{
	struct parse *p = data;
	const struct opt_spec *spec = find_spec(name, 0);
	if (!spec)
		snprintf(err, err_size, "unknown key '%s' in [sommelier]", name);
	else if (!spec->in_file)
		snprintf(err, err_size, "'%s' is a command-line option only", name);
	else if (apply(p, spec, value))
		return true;
	else
		snprintf(err, err_size, "%s = %s: %s", name, value, p->why);
	return false;
}

// path NULL: the default file, if there is one.
static bool read_file(struct parse *p, const char *path)
{
	char err[512];
	p->source = SRC_FILE;
	if (sml_config_read(path, "sommelier", on_file_entry, p, err, sizeof(err)))
		return true;
	fprintf(stderr, "sommelier: %s\n", err);
	return false;
}

static void make_getopt(struct option *longopts)
{
	for (size_t i = 0; i < SML_ARRAY_LEN(specs); i++)
		longopts[i] = (struct option){ specs[i].name,
			specs[i].takes_value ? required_argument : no_argument, NULL, specs[i].id };
	longopts[SML_ARRAY_LEN(specs)] = (struct option){ 0 };
}

// The first pass only finds --config, --help and --version (and rejects
// unknown options), so that the file is read before the options that
// override it, and --help works whatever the file says.
static bool scan_argv(struct parse *p, int argc, char **argv, const char **config)
{
	struct option longopts[SML_ARRAY_LEN(specs) + 1];
	make_getopt(longopts);
	optind = 0; // glibc: restart from scratch
	int c;
	while ((c = getopt_long(argc, argv, SHORT_OPTIONS, longopts, NULL)) != -1) {
		if (c == '?')
			return false;
		if (c == OPT_CONFIG)
			*config = optarg;
		else if (c == OPT_HELP || c == OPT_VERSION)
			set_flag(p, c, true);
	}
	return true;
}

static bool apply_argv(struct parse *p, int argc, char **argv)
{
	struct option longopts[SML_ARRAY_LEN(specs) + 1];
	make_getopt(longopts);
	p->source = SRC_ARGV;
	optind = 0;
	int c;
	while ((c = getopt_long(argc, argv, SHORT_OPTIONS, longopts, NULL)) != -1) {
		const struct opt_spec *spec = find_spec(NULL, c);
		if (!spec)
			return false;
		if (!apply(p, spec, optarg)) {
			fprintf(stderr, "sommelier: --%s%s%s: %s\n", spec->name, optarg ? "=" : "",
				optarg ? optarg : "", p->why);
			return false;
		}
	}
	return true;
}

// No host side given anywhere: a VM's virtio-gpu device first, then the
// default socket of a running sommelier-host.
static bool find_host(struct guest_options *opts)
{
	const char *runtime = getenv("XDG_RUNTIME_DIR");
	if (vgpu_kernel_available(NULL)) {
		opts->config.virtgpu = true;
		return true;
	}
	if (runtime && snprintf(opts->peer, sizeof(opts->peer), "%s/sommelier-host.sock",
				runtime) < (int)sizeof(opts->peer) &&
	    access(opts->peer, F_OK) == 0) {
		opts->config.peer_path = opts->peer;
		return true;
	}
	fprintf(stderr, "sommelier: no host side: no virtio-gpu device with the cross-domain\n"
			"Wayland channel, and sommelier-host is not running (no %s).\n"
			"Start it (`sommelier-host &`), or give --peer=unix:PATH, or\n"
			"--display=NAME to talk to a compositor directly.\n",
		runtime ? opts->peer : "$XDG_RUNTIME_DIR/sommelier-host.sock");
	opts->peer[0] = '\0';
	return false;
}

static bool choose_host(struct parse *p)
{
	struct guest_options *opts = p->opts;
	int kind = -1;
	for (int k = 0; k < HOST_KINDS; k++)
		if (p->host_rank[k] && (kind < 0 || p->host_rank[k] > p->host_rank[kind]))
			kind = k;
	opts->direct = kind == HOST_DIRECT || kind == HOST_DISPLAY;
	if (kind == HOST_VIRTGPU) {
		opts->config.virtgpu = true;
		opts->config.drm_device = opts->drm_device[0] ? opts->drm_device : NULL;
	} else if (kind == HOST_PEER) {
		opts->config.peer_path = opts->peer;
	} else if (opts->direct) {
		const char *wayland = getenv("WAYLAND_DISPLAY");
		if (!opts->display[0] && wayland && strlen(wayland) < sizeof(opts->display))
			strcpy(opts->display, wayland);
		opts->config.host_display = opts->display[0] ? opts->display : NULL;
	} else {
		return find_host(opts);
	}
	return true;
}

bool guest_options_parse(struct guest_options *opts, int argc, char **argv)
{
	*opts = (struct guest_options){ .exit_with_child = true };
	struct parse p = { .opts = opts };
	const char *config = NULL;
	if (!scan_argv(&p, argc, argv, &config))
		return false;
	if (opts->help || opts->version)
		return true;
	if (!read_env(&p) || !read_file(&p, config) || !apply_argv(&p, argc, argv))
		return false;
	if (opts->parent && !opts->socket[0]) {
		fprintf(stderr, "sommelier: --parent needs --socket=NAME\n");
		return false;
	}
	if (!opts->parent && optind >= argc) {
		fprintf(stderr, "sommelier: no PROGRAM to run (or use --parent); see --help\n");
		return false;
	}
	opts->program = opts->parent ? NULL : argv + optind;
	return choose_host(&p);
}
