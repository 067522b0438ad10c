// SPDX-License-Identifier: MIT
// sommelier-host: the host peer. Serves guests over the socket device until
// SIGTERM or SIGINT, then closes everything.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <wayland-server-core.h>

#include "closer.h"
#include "log.h"
#include "options.h"
#include "server.h"
#include "util.h"

static int on_signal(int signal_number, void *data)
{
	sml_info("signal %d: shutting down", signal_number);
	*(bool *)data = false;
	return 0;
}

static bool start_listeners(struct host_server *server, const struct host_options *opts)
{
	if (opts->socket_path[0] && !host_server_listen_unix(server, opts->socket_path))
		return false;
	if (opts->tcp[0] && !host_server_listen_tcp(server, opts->tcp))
		return false;
	if (opts->vsock_port >= 0 && !host_server_listen_vsock(server, (unsigned)opts->vsock_port))
		return false;
	if (wl_list_empty(&server->listeners)) {
		sml_err("nothing to listen on");
		return false;
	}
	return true;
}

// A budget that lets guests together exhaust the fds hurts only those that
// come last (the listener pauses, see server.c), but the user should know.
static void resolve_fd_budget(struct host_limits *lim)
{
	bool explicit = lim->max_fds != 0;
	unsigned long open_max = sml_raise_fd_limit();
	bool fits = host_limits_resolve_fds(lim, open_max);
	enum sml_log_level level = fits ? SML_LOG_DEBUG : explicit ? SML_LOG_WARN : SML_LOG_INFO;
	sml_log(level, "open files limit %lu; up to %u fds per guest connection%s", open_max,
		lim->max_fds, fits ? "" : ": guests together can exhaust the limit (raise it, "
		"or lower --max-connections or --max-fds)");
}

int main(int argc, char **argv)
{
	struct host_options opts;
	sml_log_set_prefix("sommelier-host");
	if (!host_options_parse(&opts, argc, argv))
		return 2;
	if (opts.help || opts.version) {
		if (opts.help)
			host_options_usage(argv[0]);
		else
			printf("sommelier-host %s\n", SML_VERSION);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	if (!sml_closer_start())
		sml_log_errno(SML_LOG_WARN, "no thread for closing guests' fds: closing them "
			      "on the loop");
	resolve_fd_budget(&opts.config.limits);

	int status = 1;
	bool running = true;
	struct wl_event_loop *loop = wl_event_loop_create();
	struct host_server *server = loop ? host_server_create(loop, &opts.config) : NULL;
	struct wl_event_source *sigterm = NULL, *sigint = NULL;
	if (!server || !start_listeners(server, &opts))
		goto out;
	sigterm = wl_event_loop_add_signal(loop, SIGTERM, on_signal, &running);
	sigint = wl_event_loop_add_signal(loop, SIGINT, on_signal, &running);
	sml_info("serving compositor %s", opts.config.display);
	// A stop/continue or a debugger attaching interrupts the wait with
	// EINTR: that is no reason to drop every guest.
	while (running) {
		if (wl_event_loop_dispatch(loop, -1) < 0 && errno != EINTR) {
			sml_log_errno(SML_LOG_ERROR, "event loop");
			goto out;
		}
		wl_event_loop_dispatch_idle(loop);
	}
	status = 0;
out:
	if (sigterm)
		wl_event_source_remove(sigterm);
	if (sigint)
		wl_event_source_remove(sigint);
	host_server_destroy(server);
	if (loop)
		wl_event_loop_destroy(loop);
	return status;
}
