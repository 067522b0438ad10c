// SPDX-License-Identifier: MIT
// Listening sockets of the host peer and the connections they accept.
#ifndef SML_HOST_SERVER_H
#define SML_HOST_SERVER_H

#include <stdbool.h>
#include <wayland-server-core.h>

#include "device.h"

struct host_server {
	struct wl_event_loop *loop;
	const struct host_config *config;
	struct wl_list listeners; // struct host_listener.link
	struct wl_list conns; // struct host_conn.link
};

struct host_server *host_server_create(struct wl_event_loop *loop,
				       const struct host_config *config);
// Closes every connection and listener, removing the Unix socket files.
void host_server_destroy(struct host_server *server);
// Takes PATH and PATH.lock; fails if another live server holds the lock.
bool host_server_listen_unix(struct host_server *server, const char *path);
// "PORT" or "HOST:PORT"; HOST defaults to 127.0.0.1.
bool host_server_listen_tcp(struct host_server *server, const char *spec);
bool host_server_listen_vsock(struct host_server *server, unsigned port);
// Serves an already connected socket (tests, socket activation).
struct host_conn *host_server_adopt(struct host_server *server, int fd, const char *kind);

#endif
