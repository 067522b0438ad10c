// SPDX-License-Identifier: MIT
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define ACCEPT_PAUSE_MS 200
#define CONN_FDS_MAX 16
#define BACKLOG 128

struct sml_listener {
	int fd;
	const char *kind;
	int conn_fds;
	sml_listener_func_t func;
	void *data;
	struct wl_event_source *source;
	struct wl_event_source *resume; // timer that ends a pause
	bool paused; // since the last accept that worked (logged once)
	char *path; // may be NULL: the Unix socket file to remove
	char *lock_path; // may be NULL
	int lock_fd;
};

static int on_resume(void *data)
{
	struct sml_listener *l = data;
	wl_event_source_fd_update(l->source, WL_EVENT_READABLE);
	return 0;
}

static bool accept_error_is_transient(int err)
{
	// The connection that failed is gone; the next one may be fine.
	return err == EAGAIN || err == EINTR || err == ECONNABORTED || err == EPROTO;
}

// Whether n more fds can be opened now (errno set if not).
static bool fds_available(int any_fd, int n)
{
	int fds[CONN_FDS_MAX], i;
	for (i = 0; i < n; i++)
		if ((fds[i] = fcntl(any_fd, F_DUPFD_CLOEXEC, 0)) < 0)
			break;
	bool ok = i == n;
	int err = errno;
	while (i)
		close(fds[--i]);
	errno = err;
	return ok;
}

// Once per shortage: a listener that cannot accept for an hour would
// otherwise log five lines a second.
static void pause_accepting(struct sml_listener *l)
{
	if (!l->paused)
		sml_log_errno(SML_LOG_WARN, "cannot accept on the %s listener (pausing it for "
			      "%d ms at a time until it can)", l->kind, ACCEPT_PAUSE_MS);
	l->paused = true;
	wl_event_source_fd_update(l->source, 0);
	wl_event_source_timer_update(l->resume, ACCEPT_PAUSE_MS);
}

static int on_accept(int fd, uint32_t mask, void *data)
{
	struct sml_listener *l = data;
	if (!fds_available(l->fd, l->conn_fds)) {
		pause_accepting(l);
		return 0;
	}
	int conn_fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (conn_fd < 0) {
		if (!accept_error_is_transient(errno))
			pause_accepting(l);
		return 0;
	}
	if (l->paused)
		sml_info("accepting on the %s listener again", l->kind);
	l->paused = false;
	l->func(conn_fd, l->data);
	return 0;
}

struct sml_listener *sml_listener_create(struct wl_event_loop *loop, int fd, const char *kind,
					 int conn_fds, sml_listener_func_t func, void *data)
{
	struct sml_listener *l = calloc(1, sizeof(*l));
	if (!l)
		goto err;
	if (listen(fd, BACKLOG) < 0)
		goto err_l;
	l->source = wl_event_loop_add_fd(loop, fd, WL_EVENT_READABLE, on_accept, l);
	if (!l->source)
		goto err_l;
	l->resume = wl_event_loop_add_timer(loop, on_resume, l);
	if (!l->resume)
		goto err_source;
	l->fd = fd;
	l->kind = kind;
	l->conn_fds = SML_MIN(SML_MAX(conn_fds, 1), CONN_FDS_MAX);
	l->func = func;
	l->data = data;
	l->lock_fd = -1;
	return l;
err_source:
	wl_event_source_remove(l->source);
err_l:
	free(l);
err:
	sml_close(&fd);
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
		errno = EWOULDBLOCK; // what the header promises for a held lock
		return -1;
	}
	return fd;
}

static int bind_unix(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	strcpy(addr.sun_path, path); // length checked by the caller
	if (unlink(path) < 0 && errno != ENOENT)
		return -1; // bind would only say the address is in use
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		sml_close(&fd);
	return fd;
}

struct sml_listener *sml_listener_create_unix(struct wl_event_loop *loop, const char *path,
					      const char *kind, int conn_fds,
					      sml_listener_func_t func, void *data)
{
	size_t len = strlen(path), lock_size = len + sizeof(".lock");
	struct sml_listener *l = NULL;
	int lock_fd = -1, fd = -1, err;
	if (len >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	char *lock_path = malloc(lock_size), *path_copy = strdup(path);
	if (!lock_path || !path_copy)
		goto err;
	snprintf(lock_path, lock_size, "%s.lock", path);
	if ((lock_fd = take_lock(lock_path)) < 0)
		goto err;
	if ((fd = bind_unix(path)) < 0)
		goto err_lock;
	if (!(l = sml_listener_create(loop, fd, kind, conn_fds, func, data)))
		goto err_bound;
	l->path = path_copy;
	l->lock_path = lock_path;
	l->lock_fd = lock_fd;
	return l;
err_bound:
	err = errno;
	unlink(path);
	errno = err;
err_lock:
	err = errno;
	unlink(lock_path);
	sml_close(&lock_fd);
	errno = err;
err:
	free(lock_path);
	free(path_copy);
	return NULL;
}

void sml_listener_destroy(struct sml_listener *l)
{
	if (!l)
		return;
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
	free(l);
}
