// SPDX-License-Identifier: MIT
// libsml-vgpu-emul: an LD_PRELOAD library that makes /dev/dri/renderD128 a
// virtio-gpu render node backed by sommelier-host over the socket device.
// doc/vgpu-emulation.md describes what it emulates and what it does not.
//
// Internal interfaces between its files:
//   intercept.c  libc wrappers and the fd table (which fds are emulated)
//   conn.c       one open = one emul_dev: host connection, reader thread,
//                requests and replies, fence events into the event pipe
//   drm.c        the ioctl entry (DRM copy-in/copy-out) and core ioctls
//   virtgpu.c    the virtio-gpu driver ioctls
//   objects.c    GEM objects: handles, lifetime, MAP/mmap, PRIME
#ifndef SML_VGPU_EMUL_H
#define SML_VGPU_EMUL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "socket_device.h"

#define EMUL_NODE "/dev/dri/renderD128"
#define EMUL_ENV_SOCKET "SML_VGPU_EMUL_SOCKET"
#define EMUL_CTX_ID 1u
#define EMUL_MAX_FD 65536 // emulated fds must be below this (open fails with EMFILE)
#define EMUL_WAIT_TIMEOUT_MS 15000 // the kernel's WAIT gives up after 15 s (EBUSY)

// The libc functions the wrappers stand in front of.
struct emul_real {
	int (*open)(const char *path, int flags, ...);
	int (*open64)(const char *path, int flags, ...);
	int (*openat)(int dirfd, const char *path, int flags, ...);
	int (*openat64)(int dirfd, const char *path, int flags, ...);
	int (*open_2)(const char *path, int flags);
	int (*open64_2)(const char *path, int flags);
	int (*openat_2)(int dirfd, const char *path, int flags);
	int (*openat64_2)(int dirfd, const char *path, int flags);
	int (*close)(int fd);
	ssize_t (*read)(int fd, void *buf, size_t count);
	int (*ioctl)(int fd, unsigned long request, ...);
	void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd, off_t off);
	void *(*mmap64)(void *addr, size_t len, int prot, int flags, int fd, off64_t off);
	int (*dup)(int fd);
	int (*dup2)(int fd, int fd2);
	int (*dup3)(int fd, int fd2, int flags);
	int (*fcntl)(int fd, int cmd, ...);
	int (*fcntl64)(int fd, int cmd, ...);
	int (*stat)(const char *path, struct stat *st);
	int (*stat64)(const char *path, struct stat64 *st);
	int (*lstat)(const char *path, struct stat *st);
	int (*lstat64)(const char *path, struct stat64 *st);
	int (*fstat)(int fd, struct stat *st);
	int (*fstat64)(int fd, struct stat64 *st);
	int (*close_range)(unsigned first, unsigned last, int flags);
	void (*closefrom)(int lowfd);
};
extern struct emul_real emul_real;
void emul_real_init(void);

void emul_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// A GEM object of one open. It outlives its handle while an exported fd or
// a mapping of it exists, as a kernel GEM object does (objects.c).
struct emul_obj {
	struct emul_obj *next;
	uint32_t handle; // GEM handle; 0 once GEM_CLOSE removed it
	uint32_t res_handle; // the host's
	uint32_t blob_mem, blob_flags;
	uint64_t size;
	uint64_t offset; // fake mmap offset (MAP)
	int mem_fd; // our own open file of the memory; never locked (the probe)
	int export_fd; // the cached export while a handle exists (holds a lock)
	dev_t st_dev;
	ino_t st_ino;
	bool pinned; // used in a way we cannot observe: kept until the fd closes
};

// One request waiting for its reply.
struct emul_waiter {
	struct emul_waiter *next;
	uint32_t seq;
	bool done;
	uint16_t type; // of the reply
	int error; // negative errno of REPLY_ERROR, or -ENODEV when the host is gone
	struct sdev_hello hello;
	struct sdev_reply_resource res;
	int fd; // REPLY_RESOURCE's fd, or -1
	void *caps; // REPLY_CAPS bytes go here, up to caps_cap
	uint32_t caps_cap, caps_len;
};

// One open of the node (shared by its dups).
struct emul_dev {
	atomic_int refs; // fds in the table + ioctls running
	pthread_mutex_t lock; // everything below unless noted
	pthread_cond_t cond; // a waiter is done, or the host is gone
	int sock; // to sommelier-host
	int event_rd; // the fd the program holds: drm_events come out of it
	int event_wr; // the reader thread writes drm_events here (non-blocking)
	dev_t event_dev; // the pipe's identity: a table entry whose fd no longer
	ino_t event_ino; // names this pipe is stale (closed behind our back)
	pthread_t thread;
	bool thread_started;
	bool dead; // connection gone: every request fails with -ENODEV
	atomic_bool closing; // the last reference went: the EOF that follows is ours
	uint32_t next_seq;
	struct emul_waiter *waiters;
	uint64_t events_pending; // signalled, not yet written (pipe full); thread only

	// The context, as the kernel's drm_file private data tracks it.
	bool context_created; // by CONTEXT_INIT or implicitly
	bool context_lost;
	uint32_t num_rings;
	bool has_rings; // NUM_RINGS was given
	struct emul_obj *objs;
	uint64_t next_offset;

	pthread_mutex_t send_lock; // one message at a time on sock; send_buf
	uint8_t *send_buf;

	// Reader thread only.
	uint8_t *in;
	size_t in_len;
	int in_fds[64];
	size_t in_nfds;
};

// conn.c
int emul_dev_open(const char *sock_path, int open_flags, struct emul_dev **out);
void emul_dev_ref(struct emul_dev *d);
void emul_dev_unref(struct emul_dev *d);
// A body of up to three parts (struct, array, payload) for one message.
struct emul_body {
	const void *part[3];
	size_t size[3];
};
// Sends a request and waits for its reply (REPLY flag set). timeout_ms < 0
// waits for ever. Returns 0 or a negative errno (-ETIMEDOUT on timeout).
int emul_request(struct emul_dev *d, uint16_t type, const struct emul_body *body,
		 const int *fds, uint8_t nfds, struct emul_waiter *w, int timeout_ms);
// Sends a request without waiting; a failure arrives later and is logged.
int emul_post(struct emul_dev *d, uint16_t type, const struct emul_body *body);

// drm.c: returns 0 or a negative errno.
int emul_ioctl(struct emul_dev *d, int fd, unsigned long request, void *arg);
ssize_t emul_read(int fd, void *buf, size_t count);

// virtgpu.c: the driver ioctls, on the kernel copy of the argument.
int emul_virtgpu_ioctl(struct emul_dev *d, unsigned nr, void *data);

// objects.c; callers hold d->lock unless noted.
struct emul_obj *emul_obj_by_handle(struct emul_dev *d, uint32_t handle);
// Takes ownership of mem_fd; assigns the lowest free handle (as idr_alloc).
struct emul_obj *emul_obj_add(struct emul_dev *d, int mem_fd, uint32_t res_handle,
			      uint32_t blob_mem, uint32_t blob_flags, uint64_t size);
// Host resources of objects nobody can reach any more: destroyed here.
// Called without d->lock.
void emul_objs_reap(struct emul_dev *d);
void emul_objs_free(struct emul_dev *d);
int emul_gem_close(struct emul_dev *d, uint32_t handle);
int emul_prime_handle_to_fd(struct emul_dev *d, uint32_t handle, uint32_t flags, int *fd);
int emul_prime_fd_to_handle(struct emul_dev *d, int fd, uint32_t *handle);
int emul_map(struct emul_dev *d, uint32_t handle, uint64_t *offset);
void *emul_mmap(struct emul_dev *d, void *addr, size_t len, int prot, int flags,
		uint64_t off, int *err);

// intercept.c: the emulated node as stat shows it.
void emul_fake_stat(struct stat *st);

#endif
