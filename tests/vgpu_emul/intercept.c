// SPDX-License-Identifier: MIT
// The libc entry points the library stands in front of, and the table of
// emulated fds. Every wrapper first asks the table (one atomic load, no
// lock) and hands anything that is not the emulated node straight to libc,
// so a program pays almost nothing for the fds it owns.
//
// An emulated fd is the read end of a pipe (conn.c): poll, epoll, select,
// O_NONBLOCK and read behave as on a DRM fd without further help. ioctl,
// mmap, close, the dups and fstat need the table.
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "emul.h"

// The fortified entry points that glibc's <fcntl.h> calls under
// _FORTIFY_SOURCE; no public header declares them without it.
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

static_assert(sizeof(struct stat) == sizeof(struct stat64), "stat and stat64 differ here");

static _Atomic(struct emul_dev *) table[EMUL_MAX_FD];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

static inline void ensure_real(void)
{
	emul_real_init();
}

static void release(struct emul_dev *d);

static struct emul_dev *peek_raw(int fd)
{
	if (fd < 0 || fd >= EMUL_MAX_FD)
		return NULL;
	return atomic_load_explicit(&table[fd], memory_order_acquire);
}

// A program may close an fd where no wrapper sees it (a raw syscall, fclose
// of an fdopen'd stream) and get the number back for another file. An entry
// counts only while its fd is still the device's pipe; a stale one goes.
static bool still_ours(int fd, const struct emul_dev *d)
{
	struct stat st;
	return emul_real.fstat(fd, &st) == 0 && st.st_ino == d->event_ino &&
	       st.st_dev == d->event_dev;
}

static struct emul_dev *peek(int fd)
{
	struct emul_dev *d = peek_raw(fd);
	if (!d || still_ours(fd, d))
		return d;
	pthread_mutex_lock(&table_lock);
	struct emul_dev *stale = NULL;
	if (atomic_load(&table[fd]) == d)
		stale = atomic_exchange(&table[fd], NULL);
	pthread_mutex_unlock(&table_lock);
	release(stale);
	return NULL;
}

// The device behind fd with a reference, or NULL when fd is not emulated.
static struct emul_dev *dev_get(int fd)
{
	if (!peek(fd))
		return NULL;
	pthread_mutex_lock(&table_lock);
	struct emul_dev *d = atomic_load(&table[fd]);
	if (d)
		emul_dev_ref(d);
	pthread_mutex_unlock(&table_lock);
	return d;
}

// Under table_lock: fd now names d (a new reference); returns what it named.
static struct emul_dev *table_set(int fd, struct emul_dev *d)
{
	if (fd < 0 || fd >= EMUL_MAX_FD)
		return NULL;
	if (d)
		emul_dev_ref(d);
	return atomic_exchange(&table[fd], d);
}

static void release(struct emul_dev *d)
{
	int saved = errno;
	if (d)
		emul_dev_unref(d);
	errno = saved;
}

// ---- fork -------------------------------------------------------------------

// A child has no reader threads: its inherited fds become plain pipe ends
// (their ioctls fail with ENOTTY) rather than ioctls that wait for ever.
static void fork_prepare(void)
{
	pthread_mutex_lock(&table_lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&table_lock);
}

static void fork_child(void)
{
	for (int i = 0; i < EMUL_MAX_FD; i++)
		if (atomic_load_explicit(&table[i], memory_order_relaxed))
			atomic_store_explicit(&table[i], NULL, memory_order_relaxed);
	pthread_mutex_init(&table_lock, NULL);
}

__attribute__((constructor)) static void emul_init(void)
{
	ensure_real();
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

// ---- paths ------------------------------------------------------------------

enum node_kind {
	NODE_OTHER, // not ours: the real call
	NODE_EMULATED, // /dev/dri/renderD128
	NODE_HIDDEN, // another render node: ENOENT, so that probing finds ours
	NODE_DRI_DIR, // /dev/dri, which libdrm stats before it opens a node
};

static bool emulation_on(void)
{
	const char *sock = getenv(EMUL_ENV_SOCKET);
	return sock && *sock;
}

static enum node_kind classify(const char *path)
{
	static const char prefix[] = "/dev/dri/renderD";
	if (!path || path[0] != '/' || strncmp(path, "/dev/dri", 8) != 0 || !emulation_on())
		return NODE_OTHER;
	if (strcmp(path, EMUL_NODE) == 0)
		return NODE_EMULATED;
	if (strncmp(path, prefix, sizeof(prefix) - 1) == 0)
		return NODE_HIDDEN;
	if (strcmp(path, "/dev/dri") == 0 || strcmp(path, "/dev/dri/") == 0)
		return NODE_DRI_DIR;
	return NODE_OTHER;
}

// ---- open -------------------------------------------------------------------

// Opens of the render nodes are ours; /dev/dri itself is opened for real.
static bool ours(enum node_kind kind)
{
	return kind == NODE_EMULATED || kind == NODE_HIDDEN;
}

static int open_node(enum node_kind kind, int flags)
{
	if (kind == NODE_HIDDEN) {
		errno = ENOENT;
		return -1;
	}
	struct emul_dev *d;
	int err = emul_dev_open(getenv(EMUL_ENV_SOCKET), flags, &d);
	if (err) {
		errno = -err;
		return -1;
	}
	int fd = d->event_rd;
	if (fd >= EMUL_MAX_FD) {
		emul_log("fd %d is past the table (%d); raise EMUL_MAX_FD", fd, EMUL_MAX_FD);
		emul_real.close(fd);
		release(d);
		errno = EMFILE;
		return -1;
	}
	pthread_mutex_lock(&table_lock);
	struct emul_dev *old = table_set(fd, d);
	pthread_mutex_unlock(&table_lock);
	release(old); // a stale entry: the fd was closed behind our back
	release(d); // the table holds the reference now
	return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

int open(const char *path, int flags, ...)
{
	ensure_real();
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	enum node_kind kind = classify(path);
	return !ours(kind) ? emul_real.open(path, flags, mode) : open_node(kind, flags);
}

int open64(const char *path, int flags, ...)
{
	ensure_real();
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	enum node_kind kind = classify(path);
	return !ours(kind) ? emul_real.open64(path, flags, mode) : open_node(kind, flags);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	ensure_real();
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	enum node_kind kind = classify(path);
	return !ours(kind) ? emul_real.openat(dirfd, path, flags, mode) : open_node(kind, flags);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	ensure_real();
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	enum node_kind kind = classify(path);
	return !ours(kind) ? emul_real.openat64(dirfd, path, flags, mode)
			   : open_node(kind, flags);
}

int __open_2(const char *path, int flags)
{
	ensure_real();
	enum node_kind kind = classify(path);
	if (ours(kind))
		return open_node(kind, flags);
	return emul_real.open_2 ? emul_real.open_2(path, flags) : emul_real.open(path, flags);
}

int __open64_2(const char *path, int flags)
{
	ensure_real();
	enum node_kind kind = classify(path);
	if (ours(kind))
		return open_node(kind, flags);
	return emul_real.open64_2 ? emul_real.open64_2(path, flags)
				  : emul_real.open64(path, flags);
}

int __openat_2(int dirfd, const char *path, int flags)
{
	ensure_real();
	enum node_kind kind = classify(path);
	if (ours(kind))
		return open_node(kind, flags);
	return emul_real.openat_2 ? emul_real.openat_2(dirfd, path, flags)
				  : emul_real.openat(dirfd, path, flags);
}

int __openat64_2(int dirfd, const char *path, int flags)
{
	ensure_real();
	enum node_kind kind = classify(path);
	if (ours(kind))
		return open_node(kind, flags);
	return emul_real.openat64_2 ? emul_real.openat64_2(dirfd, path, flags)
				    : emul_real.openat64(dirfd, path, flags);
}

// ---- close and duplicates -----------------------------------------------------

int close(int fd)
{
	ensure_real();
	if (!peek_raw(fd))
		return emul_real.close(fd);
	pthread_mutex_lock(&table_lock);
	struct emul_dev *d = table_set(fd, NULL);
	pthread_mutex_unlock(&table_lock);
	int ret = emul_real.close(fd);
	release(d);
	return ret;
}

// A duplicate of an emulated fd is the same open file, so the same context
// (as dup of a DRM fd is). `dup_call` runs under the table lock so that the
// new fd number is registered before anyone else can see it.
static int dup_common(int oldfd, int newfd, int (*dup_call)(int, int, int), int arg)
{
	if (!peek(oldfd) && !peek(newfd))
		return dup_call(oldfd, newfd, arg);
	pthread_mutex_lock(&table_lock);
	int fd = dup_call(oldfd, newfd, arg);
	struct emul_dev *old = NULL;
	if (fd >= 0 && fd != oldfd) {
		struct emul_dev *d = atomic_load(&table[oldfd]);
		if (d && fd >= EMUL_MAX_FD) {
			emul_real.close(fd); // we could not tell it apart from a plain pipe
			fd = -1;
			errno = EMFILE;
		} else {
			old = table_set(fd, d);
		}
	}
	pthread_mutex_unlock(&table_lock);
	release(old); // dup2/dup3 onto an emulated fd closed that one
	return fd;
}

static int call_dup(int oldfd, int newfd, int arg)
{
	return emul_real.dup(oldfd);
}

static int call_dup2(int oldfd, int newfd, int arg)
{
	return emul_real.dup2(oldfd, newfd);
}

static int call_dup3(int oldfd, int newfd, int flags)
{
	return emul_real.dup3(oldfd, newfd, flags);
}

static int call_dupfd(int oldfd, int cmd, int min)
{
	return emul_real.fcntl(oldfd, cmd, min);
}

int dup(int fd)
{
	ensure_real();
	return dup_common(fd, -1, call_dup, 0);
}

int dup2(int fd, int fd2)
{
	ensure_real();
	return dup_common(fd, fd2, call_dup2, 0);
}

int dup3(int fd, int fd2, int flags)
{
	ensure_real();
	return dup_common(fd, fd2, call_dup3, flags);
}

static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
	if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && peek(fd)) {
		pthread_mutex_lock(&table_lock);
		int nfd = call_dupfd(fd, cmd, (int)(intptr_t)arg);
		struct emul_dev *d = atomic_load(&table[fd]), *old = NULL;
		if (nfd >= EMUL_MAX_FD && d) {
			emul_real.close(nfd);
			nfd = -1;
			errno = EMFILE;
		} else if (nfd >= 0) {
			old = table_set(nfd, d);
		}
		pthread_mutex_unlock(&table_lock);
		release(old);
		return nfd;
	}
	return real(fd, cmd, arg);
}

int fcntl(int fd, int cmd, ...)
{
	ensure_real();
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(emul_real.fcntl, fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
	ensure_real();
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(emul_real.fcntl64 ? emul_real.fcntl64 : emul_real.fcntl, fd, cmd,
			    arg);
}

// Drops the entries of [first, last] after the real call closed them.
static void forget_range(unsigned first, unsigned last)
{
	for (unsigned fd = first; fd <= last && fd < EMUL_MAX_FD; fd++) {
		if (!peek_raw((int)fd))
			continue;
		pthread_mutex_lock(&table_lock);
		struct emul_dev *d = table_set((int)fd, NULL);
		pthread_mutex_unlock(&table_lock);
		release(d);
	}
}

int close_range(unsigned first, unsigned last, int flags)
{
	ensure_real();
	if (!emul_real.close_range) {
		errno = ENOSYS;
		return -1;
	}
	int ret = emul_real.close_range(first, last, flags);
	if (ret == 0 && !(flags & CLOSE_RANGE_CLOEXEC))
		forget_range(first, last);
	return ret;
}

void closefrom(int lowfd)
{
	ensure_real();
	if (emul_real.closefrom)
		emul_real.closefrom(lowfd);
	forget_range(lowfd < 0 ? 0 : (unsigned)lowfd, EMUL_MAX_FD - 1);
}

// ---- read, ioctl, mmap ----------------------------------------------------------

ssize_t read(int fd, void *buf, size_t count)
{
	ensure_real();
	if (!peek(fd))
		return emul_real.read(fd, buf, count);
	return emul_read(fd, buf, count);
}

int ioctl(int fd, unsigned long request, ...)
{
	ensure_real();
	va_list ap;
	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	struct emul_dev *d = dev_get(fd);
	if (!d)
		return emul_real.ioctl(fd, request, arg);
	int ret = emul_ioctl(d, fd, request, arg);
	release(d);
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return ret;
}

static void *mmap_common(void *addr, size_t len, int prot, int flags, int fd, uint64_t off)
{
	struct emul_dev *d = dev_get(fd);
	if (!d)
		return NULL;
	int err = 0;
	void *map = emul_mmap(d, addr, len, prot, flags, off, &err);
	release(d);
	if (map == MAP_FAILED)
		errno = -err;
	return map;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	ensure_real();
	if (!peek(fd))
		return emul_real.mmap(addr, len, prot, flags, fd, off);
	void *map = mmap_common(addr, len, prot, flags, fd, (uint64_t)off);
	return map ? map : emul_real.mmap(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	ensure_real();
	if (!peek(fd))
		return emul_real.mmap64(addr, len, prot, flags, fd, off);
	void *map = mmap_common(addr, len, prot, flags, fd, (uint64_t)off);
	return map ? map : emul_real.mmap64(addr, len, prot, flags, fd, off);
}

// ---- stat -----------------------------------------------------------------------

// A character device 226:128 owned by root, as udev makes render nodes.
void emul_fake_stat(struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_dev = makedev(0, 5);
	st->st_ino = 0x5d128;
	st->st_mode = S_IFCHR | 0666;
	st->st_nlink = 1;
	st->st_rdev = makedev(226, 128);
	st->st_blksize = 4096;
}

static void fake_dir(struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_dev = makedev(0, 5);
	st->st_ino = 0x5d000;
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
	st->st_blksize = 4096;
}

// stat of the node paths: the emulated node, hidden ones, /dev/dri.
static int stat_node(const char *path, struct stat *st, int (*real)(const char *, struct stat *))
{
	switch (classify(path)) {
	case NODE_EMULATED:
		emul_fake_stat(st);
		return 0;
	case NODE_HIDDEN:
		errno = ENOENT;
		return -1;
	case NODE_DRI_DIR:
		// A real /dev/dri wins; without one, libdrm still wants to see it.
		if (real(path, st) < 0)
			fake_dir(st);
		return 0;
	case NODE_OTHER:
		break;
	}
	return real(path, st);
}

static int real_stat(const char *path, struct stat *st)
{
	return emul_real.stat(path, st);
}

static int real_stat64(const char *path, struct stat *st)
{
	return emul_real.stat64(path, (struct stat64 *)st);
}

static int real_lstat(const char *path, struct stat *st)
{
	return emul_real.lstat(path, st);
}

static int real_lstat64(const char *path, struct stat *st)
{
	return emul_real.lstat64(path, (struct stat64 *)st);
}

int stat(const char *path, struct stat *st)
{
	ensure_real();
	return stat_node(path, st, real_stat);
}

int stat64(const char *path, struct stat64 *st)
{
	ensure_real();
	return stat_node(path, (struct stat *)st, real_stat64);
}

int lstat(const char *path, struct stat *st)
{
	ensure_real();
	return stat_node(path, st, real_lstat);
}

int lstat64(const char *path, struct stat64 *st)
{
	ensure_real();
	return stat_node(path, (struct stat *)st, real_lstat64);
}

int fstat(int fd, struct stat *st)
{
	ensure_real();
	if (!peek(fd))
		return emul_real.fstat(fd, st);
	emul_fake_stat(st);
	return 0;
}

int fstat64(int fd, struct stat64 *st)
{
	ensure_real();
	if (!peek(fd))
		return emul_real.fstat64(fd, st);
	emul_fake_stat((struct stat *)st);
	return 0;
}
