// SPDX-License-Identifier: MIT
#include "server.h"

#include <errno.h>
#include <linux/vm_sockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "util.h"

struct host_listener {
	struct host_server *server;
	struct sml_listener *listener;
	const char *kind;
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
	sml_listener_destroy(l->listener);
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

// fds a new connection takes at once: its socket and the event loop's dup.
#define CONN_FDS 2

static void on_accept(int fd, void *data)
{
	struct host_listener *l = data;
	if (strcmp(l->kind, "tcp") == 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	host_server_adopt(l->server, fd, l->kind);
}

static struct host_listener *listener_new(struct host_server *server, const char *kind)
{
	struct host_listener *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->server = server;
	l->kind = kind;
	return l;
}

static bool listener_add(struct host_server *server, struct host_listener *l,
			 struct sml_listener *listener)
{
	if (!listener) {
		int err = errno;
		free(l);
		errno = err;
		return false;
	}
	l->listener = listener;
	wl_list_insert(&server->listeners, &l->link);
	return true;
}

// A listener on the bound socket fd (taken).
static bool listen_fd(struct host_server *server, int fd, const char *kind)
{
	struct host_listener *l = listener_new(server, kind);
	if (!l)
		close(fd);
	if (l && listener_add(server, l, sml_listener_create(server->loop, fd, kind, CONN_FDS,
								  on_accept, l)))
		return true;
	sml_log_errno(SML_LOG_ERROR, "cannot listen (%s)", kind);
	return false;
}

bool host_server_listen_unix(struct host_server *server, const char *path)
{
	struct host_listener *l = listener_new(server, "unix");
	if (l && listener_add(server, l, sml_listener_create_unix(server->loop, path, "unix",
								   CONN_FDS, on_accept, l))) {
		sml_info("listening on %s", path);
		return true;
	}
	if (errno == EWOULDBLOCK)
		sml_err("%s.lock is in use by another sommelier-host", path);
	else
		sml_log_errno(SML_LOG_ERROR, "cannot listen on %s", path);
	return false;
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
	return listen_fd(server, fd, "tcp");
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
	return listen_fd(server, fd, "vsock");
}
