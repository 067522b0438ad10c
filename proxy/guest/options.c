// SPDX-License-Identifier: MIT
#include "options.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

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
	OPT_LOG_LEVEL,
};

static const struct option long_options[] = {
	{ "peer", required_argument, NULL, OPT_PEER },
	{ "display", required_argument, NULL, OPT_DISPLAY },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "parent", no_argument, NULL, OPT_PARENT },
	{ "sd-notify", required_argument, NULL, OPT_SD_NOTIFY },
	{ "no-exit-with-child", no_argument, NULL, OPT_NO_EXIT },
	{ "noop-driver", no_argument, NULL, OPT_NOOP },
	{ "peer-cmd-prefix", required_argument, NULL, OPT_PEER_CMD_PREFIX },
	{ "shm-copy", no_argument, NULL, OPT_SHM_COPY },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'v' },
	{ 0 },
};

void guest_options_usage(const char *argv0)
{
	printf("Usage: %s [OPTION]... [--] PROGRAM [ARGS]...\n"
	       "       %s --parent --socket=NAME [OPTION]...\n"
	       "Shows the windows of Wayland programs in this guest on the host's desktop.\n\n"
	       "  --peer=unix:PATH        sommelier-host's socket device (default\n"
	       "                          $XDG_RUNTIME_DIR/sommelier-host.sock when it exists)\n"
	       "  --display=NAME          without a peer: talk to this compositor directly\n"
	       "  --noop-driver           direct mode, as Sommelier spells it\n"
	       "  --parent                serve any number of clients instead of PROGRAM\n"
	       "  --socket=NAME           --parent: listen on $XDG_RUNTIME_DIR/NAME\n"
	       "  --sd-notify=STATE       send STATE (e.g. READY=1) to $NOTIFY_SOCKET when ready\n"
	       "  --no-exit-with-child    keep serving after PROGRAM exits\n"
	       "  --shm-copy              copy pixels into host memory even where it could be\n"
	       "                          shared (the path VMs take)\n"
	       "  --peer-cmd-prefix=CMD   accepted for Sommelier compatibility; unused\n"
	       "  -l, --log-level=LEVEL   error, warn, info or debug (warn)\n"
	       "  -h, --help, -v, --version\n\n"
	       "Environment: SOMMELIER_PEER, SOMMELIER_DISPLAY, SOMMELIER_SOCKET and\n"
	       "SOMMELIER_LOG_LEVEL give defaults for the options of the same name.\n",
	       argv0, argv0);
}

static bool copy_opt(char *dst, size_t cap, const char *value, const char *name)
{
	if (strlen(value) >= cap) {
		fprintf(stderr, "sommelier: --%s is too long\n", name);
		return false;
	}
	strcpy(dst, value);
	return true;
}

static bool set_peer(struct guest_options *opts, const char *value)
{
	if (strncmp(value, "unix:", 5) == 0)
		return copy_opt(opts->peer, sizeof(opts->peer), value + 5, "peer");
	if (strncmp(value, "tcp:", 4) == 0 || strncmp(value, "vsock:", 6) == 0) {
		fprintf(stderr, "sommelier: %s: TCP and vsock peers need the copy transport, "
				"which is not implemented yet\n", value);
		return false;
	}
	if (value[0] == '/')
		return copy_opt(opts->peer, sizeof(opts->peer), value, "peer");
	fprintf(stderr, "sommelier: --peer=%s: expected unix:PATH\n", value);
	return false;
}

static bool set_level(const char *value)
{
	enum sml_log_level level;
	if (sml_log_parse_level(value, &level)) {
		sml_log_set_level(level);
		return true;
	}
	fprintf(stderr, "sommelier: unknown log level '%s'\n", value);
	return false;
}

static void env_defaults(struct guest_options *opts)
{
	const char *v;
	if ((v = getenv("SOMMELIER_PEER")) && *v)
		set_peer(opts, v);
	if ((v = getenv("SOMMELIER_DISPLAY")) && *v)
		copy_opt(opts->display, sizeof(opts->display), v, "display");
	if ((v = getenv("SOMMELIER_SOCKET")) && *v)
		copy_opt(opts->socket, sizeof(opts->socket), v, "socket");
	if ((v = getenv("SOMMELIER_LOG_LEVEL")) && *v)
		set_level(v);
}

static bool apply(struct guest_options *opts, int c, const char *arg)
{
	switch (c) {
	case OPT_PEER:
		return set_peer(opts, arg);
	case OPT_DISPLAY:
		return copy_opt(opts->display, sizeof(opts->display), arg, "display");
	case OPT_SOCKET:
		return copy_opt(opts->socket, sizeof(opts->socket), arg, "socket");
	case OPT_SD_NOTIFY:
		return copy_opt(opts->sd_notify, sizeof(opts->sd_notify), arg, "sd-notify");
	case OPT_PARENT:
		opts->parent = true;
		return true;
	case OPT_NO_EXIT:
		opts->exit_with_child = false;
		return true;
	case OPT_NOOP:
		opts->direct = true;
		return true;
	case OPT_PEER_CMD_PREFIX:
		sml_info("--peer-cmd-prefix is not needed: clients share one process");
		return true;
	case OPT_SHM_COPY:
		opts->config.shm_copy = true;
		return true;
	case 'l':
	case OPT_LOG_LEVEL:
		return set_level(arg);
	case 'h':
		opts->help = true;
		return true;
	case 'v':
		opts->version = true;
		return true;
	}
	return false;
}

// The host side: an explicit peer, else a direct display, else the default
// socket of a running sommelier-host.
static bool choose_host(struct guest_options *opts)
{
	const char *runtime = getenv("XDG_RUNTIME_DIR");
	const char *wayland = getenv("WAYLAND_DISPLAY");
	if (opts->peer[0] && !opts->direct) {
		opts->config.peer_path = opts->peer;
		return true;
	}
	if (opts->display[0] || opts->direct) {
		if (!opts->display[0] && wayland)
			copy_opt(opts->display, sizeof(opts->display), wayland, "display");
		opts->config.host_display = opts->display[0] ? opts->display : NULL;
		return true;
	}
	if (runtime && snprintf(opts->peer, sizeof(opts->peer), "%s/sommelier-host.sock",
				runtime) < (int)sizeof(opts->peer) &&
	    access(opts->peer, F_OK) == 0) {
		opts->config.peer_path = opts->peer;
		return true;
	}
	fprintf(stderr, "sommelier: no host side: sommelier-host is not running (no %s).\n"
			"Start it (`sommelier-host &`), or give --peer=unix:PATH, or\n"
			"--display=NAME to talk to a compositor directly.\n",
		runtime ? opts->peer : "$XDG_RUNTIME_DIR/sommelier-host.sock");
	opts->peer[0] = '\0';
	return false;
}

bool guest_options_parse(struct guest_options *opts, int argc, char **argv)
{
	*opts = (struct guest_options){ .exit_with_child = true };
	env_defaults(opts);
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+l:hv", long_options, NULL)) != -1)
		if (c == '?' || !apply(opts, c, optarg))
			return false;
	if (opts->help || opts->version)
		return true;
	if (opts->parent && !opts->socket[0]) {
		fprintf(stderr, "sommelier: --parent needs --socket=NAME\n");
		return false;
	}
	if (!opts->parent && optind >= argc) {
		fprintf(stderr, "sommelier: no PROGRAM to run (or use --parent); see --help\n");
		return false;
	}
	opts->program = opts->parent ? NULL : argv + optind;
	return choose_host(opts);
}
