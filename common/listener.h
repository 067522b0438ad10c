// SPDX-License-Identifier: MIT
// A listening socket served by the event loop, shared by sommelier (guest
// clients) and sommelier-host (guests).
//
// Out of fds (or memory), accept fails while the connection stays in the
// backlog, and a level-triggered source reports it again at once: a server
// that only logs and returns spins (libwayland's own listener does). This
// one rests for a while instead, and the peer waits in the backlog until
// fds are free; it is never accepted and then dropped.
#ifndef SML_LISTENER_H
#define SML_LISTENER_H

#include <wayland-server-core.h>

struct sml_listener;

// Gets each accepted connection (close-on-exec, non-blocking).
typedef void (*sml_listener_func_t)(int fd, void *data);

// Serves the bound socket `fd` (taken: closed on failure). `conn_fds` is
// how many fds one new connection needs at once: accepting stops while
// fewer are free. `kind` names it in the log and must outlive it.
struct sml_listener *sml_listener_create(struct wl_event_loop *loop, int fd, const char *kind,
					 int conn_fds, sml_listener_func_t func, void *data);
// Binds the Unix socket `path` under the lock `path`.lock, which tells a
// live server from a stale socket file left by a crash. NULL with errno
// set: EWOULDBLOCK when another server holds the lock, ENAMETOOLONG, or what
// unlink (of a stale file), socket, bind or listen said. Nothing is logged.
struct sml_listener *sml_listener_create_unix(struct wl_event_loop *loop, const char *path,
					      const char *kind, int conn_fds,
					      sml_listener_func_t func, void *data);
// Closes the socket; a Unix listener also removes its socket and lock files.
void sml_listener_destroy(struct sml_listener *l);

#endif
