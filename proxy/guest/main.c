// SPDX-License-Identifier: MIT
// sommelier: the guest proxy. Runs PROGRAM with its own Wayland connection,
// or serves a socket in --parent mode, until there is nothing left to serve.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wayland-server-core.h>

#include "client.h"
#include "closer.h"
#include "listener.h"
#include "log.h"
#include "options.h"
#include "util.h"

struct run_state {
	bool running;
	bool terminating; // SIGTERM went to the program: stop when it has gone
	pid_t child; // 0 once reaped
	int status; // what sommelier exits with
	struct sml_listener *listener; // may be NULL: the socket clients connect to
};

// Stopping a wrapper stops its program: SIGTERM is passed on and sommelier
// leaves with the program's status when it has gone. SIGINT from a terminal
// reached the program already (same process group), so it is not repeated.
static int on_terminate(int signal_number, void *data)
{
	struct run_state *st = data;
	if (st->child > 0) {
		sml_info("signal %d: %s the program", signal_number,
			 signal_number == SIGTERM ? "passing it to" : "waiting for");
		if (signal_number == SIGTERM)
			kill(st->child, SIGTERM);
		st->terminating = true;
		return 0;
	}
	sml_info("signal %d: shutting down", signal_number);
	st->running = false;
	return 0;
}

static int on_child(int signal_number, void *data)
{
	struct run_state *st = data;
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid != st->child)
			continue;
		st->child = 0;
		st->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		st->running = !st->terminating;
	}
	return 0;
}

// systemd's notify protocol: one datagram with the state string.
static void sd_notify_state(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (!path || !*path || strlen(path) >= sizeof(addr.sun_path))
		return;
	memcpy(addr.sun_path, path, strlen(path));
	if (path[0] == '@')
		addr.sun_path[0] = '\0'; // abstract namespace
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr, len) < 0)
		sml_log_errno(SML_LOG_WARN, "sd_notify to %s", path);
	close(fd);
}

static pid_t spawn(char **program, int fd, const char *display_name)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	char fd_str[16];
	snprintf(fd_str, sizeof(fd_str), "%d", fd);
	fcntl(fd, F_SETFD, 0); // WAYLAND_SOCKET survives exec
	setenv("WAYLAND_SOCKET", fd_str, 1);
	setenv("WAYLAND_DISPLAY", display_name, 1); // for its children
	// The loop's signalfd blocked these; the program must get them.
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	sml_restore_fd_limit();
	execvp(program[0], program);
	fprintf(stderr, "sommelier: cannot run %s: %s\n", program[0], strerror(errno));
	_exit(127);
}

// The compositor socket a display name means, as libwayland resolves it.
static void display_path(const char *name, char *out, size_t size)
{
	const char *runtime = getenv("XDG_RUNTIME_DIR");
	if (!name)
		name = "wayland-0";
	if (name[0] == '/')
		snprintf(out, size, "%s", name);
	else
		snprintf(out, size, "%s/%s", runtime ? runtime : "", name);
}

// In direct mode, a host display that is our own socket would make every
// client connect sommelier to itself, without end.
static bool host_is_not_us(const struct guest_options *opts, const char *our_name)
{
	char host[512], ours[512];
	if (opts->config.peer_path || opts->config.virtgpu)
		return true;
	display_path(opts->config.host_display, host, sizeof(host));
	display_path(our_name, ours, sizeof(ours));
	if (strcmp(host, ours) != 0)
		return true;
	sml_err("the host display %s is sommelier's own socket: give --display=NAME of a "
		"running compositor", host);
	return false;
}

// fds a new client takes at once, with room to spare: 8 counted over the
// socket device (its socket and the event loop's dup of it, its channel's
// device connection and the dup of that, the socketpair libwayland-client
// reads the host through, and the channel's own); a render node's emulation
// in tests adds 3. Too few would accept a client that then cannot be served.
#define CLIENT_FDS 12

static void on_client_accept(int fd, void *data)
{
	struct wl_display *display = data;
	if (!wl_client_create(display, fd)) {
		sml_log_errno(SML_LOG_WARN, "cannot serve a new client");
		close(fd);
	}
}

// libwayland places a relative name only under an absolute runtime dir.
static bool placeable(const char *name)
{
	const char *runtime = getenv("XDG_RUNTIME_DIR");
	return name[0] == '/' || (runtime && runtime[0] == '/');
}

// Listens on the socket NAME stands for, as libwayland would place it; our
// own listener rests when out of fds where libwayland's spins.
static struct sml_listener *listen_name(struct wl_display *display, const char *name)
{
	char path[512];
	if (!placeable(name)) {
		errno = ENOENT;
		return NULL;
	}
	display_path(name, path, sizeof(path));
	return sml_listener_create_unix(wl_display_get_event_loop(display), path, "client",
					CLIENT_FDS, on_client_accept, display);
}

static void listen_failed(const char *name)
{
	if (!placeable(name))
		sml_err("cannot listen on %s: XDG_RUNTIME_DIR is not set or not absolute", name);
	else if (errno == EWOULDBLOCK)
		sml_err("cannot listen on %s: another server holds its lock %s.lock", name, name);
	else
		sml_log_errno(SML_LOG_ERROR, "cannot listen on %s", name);
}

// The first free wayland-N, as wl_display_add_socket_auto picks.
static struct sml_listener *listen_auto(struct wl_display *display, char *name, size_t size)
{
	for (int i = 0; i < 32; i++) {
		snprintf(name, size, "wayland-%d", i);
		struct sml_listener *l = listen_name(display, name);
		if (l || errno != EWOULDBLOCK)
			return l;
	}
	return NULL;
}

static bool start_program(struct wl_display *display, struct guest_options *opts,
			  struct run_state *st)
{
	char name[32];
	int sv[2];
	st->listener = listen_auto(display, name, sizeof(name));
	if (!st->listener) {
		if (errno == EWOULDBLOCK)
			sml_err("cannot listen: wayland-0 to wayland-31 are all in use");
		else
			listen_failed(name);
		return false;
	}
	if (!host_is_not_us(opts, name))
		return false;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		sml_log_errno(SML_LOG_ERROR, "cannot create the guest socket");
		return false;
	}
	if (!wl_client_create(display, sv[0])) {
		close(sv[0]);
		close(sv[1]);
		return false;
	}
	st->child = spawn(opts->program, sv[1], name);
	close(sv[1]);
	return st->child > 0;
}

static bool start_parent(struct wl_display *display, struct guest_options *opts,
			 struct run_state *st)
{
	st->listener = listen_name(display, opts->socket);
	if (!st->listener) {
		listen_failed(opts->socket);
		return false;
	}
	if (!host_is_not_us(opts, opts->socket))
		return false;
	sml_info("listening on %s", opts->socket);
	if (opts->sd_notify[0])
		sd_notify_state(opts->sd_notify);
	return true;
}

static bool finished(struct guest_server *server, const struct guest_options *opts,
		     const struct run_state *st)
{
	return opts->program && opts->exit_with_child && st->child == 0 &&
	       wl_list_empty(&server->clients);
}

// False when the loop itself failed.
static bool run(struct wl_display *display, struct guest_server *server,
		const struct guest_options *opts, struct run_state *st)
{
	struct wl_event_loop *loop = wl_display_get_event_loop(display);
	while (st->running && !finished(server, opts, st)) {
		guest_server_flush(server);
		wl_display_flush_clients(display);
		guest_server_idle(server);
		if (wl_event_loop_dispatch(loop, -1) < 0 && errno != EINTR) {
			sml_log_errno(SML_LOG_ERROR, "event loop");
			return false;
		}
		wl_event_loop_dispatch_idle(loop);
	}
	return true;
}

int main(int argc, char **argv)
{
	struct guest_options opts;
	struct run_state st = { .running = true, .status = 1 };
	sml_log_set_prefix("sommelier");
	if (!guest_options_parse(&opts, argc, argv))
		return 2;
	if (opts.help || opts.version) {
		if (opts.help)
			guest_options_usage(argv[0]);
		else
			printf("sommelier %s\n", SML_VERSION);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	sml_dbg("open files limit: %lu", sml_raise_fd_limit());
	// Before the loop blocks its signals: the thread blocks all of its own.
	if (!sml_closer_start())
		sml_log_errno(SML_LOG_WARN, "no thread for closing clients' fds: closing them "
			      "on the loop");
	struct wl_display *display = wl_display_create();
	struct guest_server *server = display ? guest_server_create(display, &opts.config) : NULL;
	struct wl_event_loop *loop = display ? wl_display_get_event_loop(display) : NULL;
	struct wl_event_source *sources[3] = { NULL };
	if (!server)
		goto out;
	sources[0] = wl_event_loop_add_signal(loop, SIGTERM, on_terminate, &st);
	sources[1] = wl_event_loop_add_signal(loop, SIGINT, on_terminate, &st);
	sources[2] = wl_event_loop_add_signal(loop, SIGCHLD, on_child, &st);
	if (opts.parent ? !start_parent(display, &opts, &st) : !start_program(display, &opts, &st))
		goto out;
	if (opts.parent)
		st.status = 0;
	// A service manager restarts what failed: the loop failing is a failure.
	if (!run(display, server, &opts, &st))
		st.status = 1;
out:
	for (size_t i = 0; i < 3; i++)
		if (sources[i])
			wl_event_source_remove(sources[i]);
	sml_listener_destroy(st.listener);
	guest_server_destroy(server);
	if (display)
		wl_display_destroy(display);
	return st.status;
}
