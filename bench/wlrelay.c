// SPDX-License-Identifier: MIT
// wlrelay: the least any Wayland proxy does, as a floor to measure proxies
// against. It runs PROGRAM with WAYLAND_SOCKET set to one end of a socket
// pair, connects to the compositor as a client would (WAYLAND_SOCKET if set,
// else WAYLAND_DISPLAY, a name in XDG_RUNTIME_DIR or an absolute path), and
// passes whatever bytes and fds arrive on either side to the other at once:
// no parsing, no object tables, no event loop library, blocking writes.
//
//   wlrelay PROGRAM [ARGS]            one hop (like sommelier --display)
//   wlrelay wlrelay PROGRAM [ARGS]    two hops, each its own process (like
//                                     sommelier + sommelier-host)
//
// It exits with PROGRAM's status once PROGRAM's connection is gone. A
// proxy's cost above the matching relay chain is what its own work adds;
// the relay's cost above a direct connection is what the extra processes
// cost on this machine (wake-ups and context switches), whatever the proxy.
// Not fit for use as a proxy: a peer that stops reading blocks it.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fdpass.h"

#define RELAY_BUFFER 65536

static int connect_path(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "wlrelay: socket path too long: %s\n", path);
		return -1;
	}
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fprintf(stderr, "wlrelay: connecting to %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

// The compositor side, found as libwayland-client finds it.
static int connect_upstream(void)
{
	const char *inherited = getenv("WAYLAND_SOCKET");
	if (inherited) {
		char *end;
		long fd = strtol(inherited, &end, 10);
		unsetenv("WAYLAND_SOCKET");
		return end == inherited || *end || fd < 0 ? -1 : (int)fd;
	}
	const char *display = getenv("WAYLAND_DISPLAY");
	const char *dir = getenv("XDG_RUNTIME_DIR");
	char path[4096];
	if (!display)
		display = "wayland-0";
	if (display[0] != '/' && !dir) {
		fprintf(stderr, "wlrelay: XDG_RUNTIME_DIR is not set\n");
		return -1;
	}
	snprintf(path, sizeof(path), "%s%s%s", display[0] == '/' ? "" : dir,
		 display[0] == '/' ? "" : "/", display);
	return connect_path(path);
}

static pid_t spawn(char **argv, int client_fd)
{
	pid_t pid = fork();
	if (pid == 0) {
		char value[16];
		snprintf(value, sizeof(value), "%d", client_fd);
		setenv("WAYLAND_SOCKET", value, 1);
		execvp(argv[0], argv);
		fprintf(stderr, "wlrelay: running %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

// Moves one read's worth from `from` to `to`. False when `from` is done.
static bool pass(int from, int to)
{
	static char buf[RELAY_BUFFER];
	int fds[SML_FDPASS_MAX];
	size_t nfds = 0;
	bool truncated = false;
	ssize_t n = sml_recv_fds(from, buf, sizeof(buf), fds, SML_FDPASS_MAX, &nfds, &truncated, 0);
	if (n <= 0 || truncated)
		return false;
	ssize_t sent = sml_send_fds(to, buf, (size_t)n, fds, nfds, 0);
	// A short send of a large read: the rest goes without fds, as they
	// went with the first byte.
	for (ssize_t off = sent; sent > 0 && off < n; off += sent)
		sent = sml_send_fds(to, buf + off, (size_t)(n - off), NULL, 0, 0);
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	return sent > 0;
}

static void relay(int client, int upstream)
{
	struct pollfd pfd[2] = { { .fd = client, .events = POLLIN },
				 { .fd = upstream, .events = POLLIN } };
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (pfd[0].revents && !pass(client, upstream))
			return;
		if (pfd[1].revents && !pass(upstream, client))
			return;
	}
}

int main(int argc, char **argv)
{
	int pair[2];
	if (argc < 2) {
		fprintf(stderr, "usage: wlrelay PROGRAM [ARGS]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	int upstream = connect_upstream();
	if (upstream < 0 || fcntl(upstream, F_SETFD, FD_CLOEXEC) < 0)
		return 1;
	// The child's end is inherited: no CLOEXEC on it.
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) < 0 ||
	    fcntl(pair[0], F_SETFD, FD_CLOEXEC) < 0) {
		perror("wlrelay: socketpair");
		return 1;
	}
	pid_t child = spawn(argv + 1, pair[1]);
	close(pair[1]);
	if (child < 0) {
		perror("wlrelay: fork");
		return 1;
	}
	relay(pair[0], upstream);
	close(pair[0]);
	close(upstream);
	int status = 0;
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
