// SPDX-License-Identifier: MIT
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

struct host_listener {
	struct host_server *server;
	int fd;
	const char *kind;
	struct wl_event_source *source;
	struct wl_event_source *resume; // timer that ends a pause of accepting
	char *path; // may be NULL: the Unix socket file to remove
	char *lock_path; // may be NULL
	int lock_fd;
	struct wl_list link; // struct host_server.listeners
};

struct host_server *host_server_create(struct wl_event_loop *loop,
				       const struct host_config *config)
{
	struct host_server *server = calloc(1, sizeof(*server));
	if (!server)
		return NULL;
	server->loop = loop;
	server->config = config;
	wl_list_init(&server->listeners);
	wl_list_init(&server->conns);
	return server;
}

static void listener_destroy(struct host_listener *l)
{
	wl_event_source_remove(l->source);
	wl_event_source_remove(l->resume);
	close(l->fd);
	if (l->path)
		unlink(l->path);
	if (l->lock_path)
		unlink(l->lock_path);
	sml_close(&l->lock_fd);
	free(l->path);
	free(l->lock_path);
	wl_list_remove(&l->link);
	free(l);
}

void host_server_destroy(struct host_server *server)
{
	if (!server)
		return;
	struct host_conn *conn, *ctmp;
	wl_list_for_each_safe(conn, ctmp, &server->conns, link)
		host_conn_destroy(conn);
	struct host_listener *l, *ltmp;
	wl_list_for_each_safe(l, ltmp, &server->listeners, link)
		listener_destroy(l);
	free(server);
}

// Who is at the other end: the process of a Unix peer (a guest proxy),
// the VM of a vsock peer, the address of a TCP peer.
static void peer_of(int fd, char *out, size_t size)
{
	struct ucred cred;
	struct sockaddr_storage addr;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0) {
		snprintf(out, size, "pid %d", (int)cred.pid);
		return;
	}
	len = sizeof(addr);
	bool named = getpeername(fd, (struct sockaddr *)&addr, &len) == 0;
	if (named && addr.ss_family == AF_VSOCK)
		snprintf(out, size, "cid %u", ((struct sockaddr_vm *)&addr)->svm_cid);
	else if (!named || getnameinfo((struct sockaddr *)&addr, len, out, (socklen_t)size, NULL,
				       0, NI_NUMERICHOST) != 0)
		snprintf(out, size, "unknown peer");
}

static uint32_t peer_conns(struct host_server *server, const char *peer)
{
	uint32_t n = 0;
	struct host_conn *conn;
	wl_list_for_each(conn, &server->conns, link)
		n += strcmp(conn->peer, peer) == 0;
	return n;
}

// One guest may not take every connection: others keep a quarter (by default).
static bool may_adopt(struct host_server *server, const char *peer, const char *kind)
{
	const struct host_limits *lim = &server->config->limits;
	uint32_t per_peer = lim->max_conns_per_peer ? lim->max_conns_per_peer :
			    SML_MAX(lim->max_conns - lim->max_conns / 4, 1u);
	if (wl_list_length(&server->conns) >= (int)lim->max_conns) {
		sml_warn("refusing a %s connection from %s: %u connections already", kind, peer,
			 lim->max_conns);
		return false;
	}
	if (peer_conns(server, peer) >= per_peer) {
		sml_warn("refusing a %s connection from %s: it has %u already (the most one "
			 "peer may have)", kind, peer, per_peer);
		return false;
	}
	return true;
}

struct host_conn *host_server_adopt(struct host_server *server, int fd, const char *kind)
{
	char peer[sizeof(((struct host_conn *)0)->peer)];
	peer_of(fd, peer, sizeof(peer));
	if (!may_adopt(server, peer, kind)) {
		close(fd);
		return NULL;
	}
	struct host_conn *conn = host_conn_create(server, server->loop, server->config, fd, kind,
						  peer);
	if (conn)
		wl_list_insert(&server->conns, &conn->link);
	return conn;
}

// Out of fds or memory, accept fails while the connection stays in the
// backlog, and the level-triggered listener would report it again at once:
// the listener rests instead of spinning, and the guest waits in the backlog.
#define ACCEPT_PAUSE_MS 200
// fds a new connection takes at once: its socket and the event loop's dup.
#define CONN_FDS 2

static int on_accept_resume(void *data)
{
	struct host_listener *l = data;
	wl_event_source_fd_update(l->source, WL_EVENT_READABLE);
	return 0;
}

static bool accept_error_is_transient(int err)
{
	// The connection that failed is gone; the next one may be fine.
	return err == EAGAIN || err == EINTR || err == ECONNABORTED || err == EPROTO;
}

// Whether n more fds can be opened now. Accepting a guest that then
// cannot be served would drop it; left in the backlog, it is served later.
static bool fds_available(int any_fd, int n)
{
	int fds[CONN_FDS], i;
	for (i = 0; i < n; i++)
		if ((fds[i] = fcntl(any_fd, F_DUPFD_CLOEXEC, 0)) < 0)
			break;
	bool ok = i == n;
	while (i)
		close(fds[--i]);
	return ok;
}

static void pause_accepting(struct host_listener *l)
{
	sml_log_errno(SML_LOG_WARN, "cannot accept on the %s listener (pausing it for %d ms)",
		      l->kind, ACCEPT_PAUSE_MS);
	wl_event_source_fd_update(l->source, 0);
	wl_event_source_timer_update(l->resume, ACCEPT_PAUSE_MS);
}

static int on_accept(int fd, uint32_t mask, void *data)
{
	struct host_listener *l = data;
	if (!fds_available(l->fd, CONN_FDS)) {
		pause_accepting(l);
		return 0;
	}
	int conn_fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (conn_fd < 0 && accept_error_is_transient(errno))
		return 0;
	if (conn_fd < 0) {
		pause_accepting(l);
		return 0;
	}
	if (strcmp(l->kind, "tcp") == 0)
		setsockopt(conn_fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	host_server_adopt(l->server, conn_fd, l->kind);
	return 0;
}

static struct host_listener *listener_add(struct host_server *server, int fd, const char *kind)
{
	struct host_listener *l = calloc(1, sizeof(*l));
	if (!l)
		goto err;
	if (listen(fd, 64) < 0)
		goto err_l;
	l->source = wl_event_loop_add_fd(server->loop, fd, WL_EVENT_READABLE, on_accept, l);
	if (!l->source)
		goto err_l;
	l->resume = wl_event_loop_add_timer(server->loop, on_accept_resume, l);
	if (!l->resume)
		goto err_source;
	l->server = server;
	l->fd = fd;
	l->kind = kind;
	l->lock_fd = -1;
	wl_list_insert(&server->listeners, &l->link);
	return l;
err_source:
	wl_event_source_remove(l->source);
err_l:
	free(l);
err:
	sml_log_errno(SML_LOG_ERROR, "cannot listen (%s)", kind);
	close(fd);
	return NULL;
}

// The lock tells a live server from a stale socket file left by a crash.
static int take_lock(const char *lock_path)
{
	int fd = open(lock_path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

bool host_server_listen_unix(struct host_server *server, const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char lock_path[sizeof(addr.sun_path) + 8];
	if (strlen(path) >= sizeof(addr.sun_path)) {
		sml_err("socket path too long: %s", path);
		return false;
	}
	snprintf(lock_path, sizeof(lock_path), "%s.lock", path);
	int lock_fd = take_lock(lock_path);
	if (lock_fd < 0) {
		sml_log_errno(SML_LOG_ERROR, "%s is in use by another sommelier-host", lock_path);
		return false;
	}
	unlink(path);
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		sml_log_errno(SML_LOG_ERROR, "cannot bind %s", path);
		sml_close(&fd);
		close(lock_fd);
		return false;
	}
	struct host_listener *l = listener_add(server, fd, "unix");
	if (!l) {
		unlink(path);
		close(lock_fd);
		return false;
	}
	l->path = strdup(path);
	l->lock_path = strdup(lock_path);
	l->lock_fd = lock_fd;
	sml_info("listening on %s", path);
	return true;
}

static bool split_host_port(const char *spec, char *host, size_t cap, const char **port)
{
	const char *colon = strrchr(spec, ':');
	if (!colon) {
		snprintf(host, cap, "127.0.0.1");
		*port = spec;
		return true;
	}
	size_t len = (size_t)(colon - spec);
	if (len >= cap)
		return false;
	memcpy(host, spec, len);
	host[len] = '\0';
	*port = colon + 1;
	return true;
}

bool host_server_listen_tcp(struct host_server *server, const char *spec)
{
	char host[256];
	const char *port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *res = NULL;
	if (!split_host_port(spec, host, sizeof(host), &port) ||
	    getaddrinfo(host, port, &hints, &res) != 0 || !res) {
		sml_err("bad TCP address: %s", spec);
		return false;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	bool ok = fd >= 0 &&
		  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int)) == 0 &&
		  bind(fd, res->ai_addr, res->ai_addrlen) == 0;
	freeaddrinfo(res);
	if (!ok) {
		sml_log_errno(SML_LOG_ERROR, "cannot bind TCP %s", spec);
		sml_close(&fd);
		return false;
	}
	sml_info("listening on TCP %s", spec);
	return listener_add(server, fd, "tcp") != NULL;
}

bool host_server_listen_vsock(struct host_server *server, unsigned port)
{
	struct sockaddr_vm addr = {
		.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port,
	};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		sml_log_errno(SML_LOG_ERROR, "cannot bind vsock port %u", port);
		sml_close(&fd);
		return false;
	}
	sml_info("listening on vsock port %u", port);
	return listener_add(server, fd, "vsock") != NULL;
}
