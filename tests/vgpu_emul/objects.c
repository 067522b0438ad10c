// SPDX-License-Identifier: MIT
// GEM objects of one open: handles, MAP and mmap, PRIME, and lifetime.
//
// A kernel GEM object lives while a handle, an exported dma-buf or a
// mapping holds it; only then does virtio-gpu unref the host resource. A
// guest relies on that: it exports a host blob, closes the handle, hands
// the fd to a client, and may import the same fd again later to name the
// resource in a SEND. The emulation keeps that lifetime observable: every
// export and every mapping goes through a fresh open file of the memory
// (reopened through /proc/self/fd) that holds a shared OFD lock. OFD locks
// belong to the open file, so the lock lasts exactly as long as the file:
// across dup, fork, SCM_RIGHTS to other processes, and behind mmap. The
// object's own probe fd (never locked) asks F_OFD_GETLK whether any such
// file is left. Objects without a handle and without one are released,
// lazily, at the next GEM_CLOSE or blob creation.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <drm.h>

#include "emul.h"
#include "util.h"
#include "virtgpu_uapi.h"

struct emul_obj *emul_obj_by_handle(struct emul_dev *d, uint32_t handle)
{
	if (handle == 0)
		return NULL;
	for (struct emul_obj *o = d->objs; o; o = o->next)
		if (o->handle == handle)
			return o;
	return NULL;
}

// idr_alloc(1, 0): the lowest free handle, so handles are reused.
static uint32_t free_handle(struct emul_dev *d)
{
	uint32_t h = 1;
	while (emul_obj_by_handle(d, h))
		h++;
	return h;
}

struct emul_obj *emul_obj_add(struct emul_dev *d, int mem_fd, uint32_t res_handle,
			      uint32_t blob_mem, uint32_t blob_flags, uint64_t size)
{
	struct stat st;
	struct emul_obj *obj = calloc(1, sizeof(*obj));
	if (!obj || emul_real.fstat(mem_fd, &st) < 0) {
		free(obj);
		return NULL;
	}
	*obj = (struct emul_obj){
		.handle = free_handle(d), .res_handle = res_handle, .blob_mem = blob_mem,
		.blob_flags = blob_flags, .size = size, .mem_fd = mem_fd, .export_fd = -1,
		.st_dev = st.st_dev, .st_ino = st.st_ino, .next = d->objs,
	};
	d->objs = obj;
	return obj;
}

// A new open file of the memory that holds a shared OFD lock for as long
// as it exists; -1 when the memory cannot be reopened (then the caller pins
// the object instead).
static int open_tracked(const struct emul_obj *obj, int access)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", obj->mem_fd);
	int fd = emul_real.open(path, access | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct flock lock = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	if (emul_real.fcntl(fd, F_OFD_SETLK, &lock) < 0) {
		emul_real.close(fd);
		return -1;
	}
	return fd;
}

// Whether an export or a mapping still holds the object.
static bool held_elsewhere(const struct emul_obj *obj)
{
	if (obj->pinned)
		return true;
	struct flock probe = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	if (emul_real.fcntl(obj->mem_fd, F_OFD_GETLK, &probe) < 0)
		return true; // cannot tell: keeping it is the safe mistake
	return probe.l_type != F_UNLCK;
}

static void obj_free(struct emul_obj *obj)
{
	if (obj->export_fd >= 0)
		emul_real.close(obj->export_fd);
	emul_real.close(obj->mem_fd);
	free(obj);
}

void emul_objs_reap(struct emul_dev *d)
{
	struct emul_obj *dead = NULL;
	pthread_mutex_lock(&d->lock);
	for (struct emul_obj **p = &d->objs; *p;) {
		struct emul_obj *obj = *p;
		if (obj->handle || held_elsewhere(obj)) {
			p = &obj->next;
			continue;
		}
		*p = obj->next;
		obj->next = dead;
		dead = obj;
	}
	pthread_mutex_unlock(&d->lock);
	while (dead) {
		struct emul_obj *obj = dead;
		dead = obj->next;
		struct sdev_resource r = { .res_handle = obj->res_handle };
		emul_post(d, SDEV_RESOURCE_DESTROY, &(struct emul_body){ { &r }, { sizeof(r) } });
		obj_free(obj);
	}
}

// The host resources go with the connection.
void emul_objs_free(struct emul_dev *d)
{
	while (d->objs) {
		struct emul_obj *obj = d->objs;
		d->objs = obj->next;
		obj_free(obj);
	}
}

// drm_gem_handle_delete: the handle goes (an unknown one is -EINVAL), and
// with it the object's hold on its cached export, as in
// drm_gem_object_handle_free. The resource goes when nothing else holds it.
int emul_gem_close(struct emul_dev *d, uint32_t handle)
{
	pthread_mutex_lock(&d->lock);
	struct emul_obj *obj = emul_obj_by_handle(d, handle);
	int export_fd = -1;
	if (obj) {
		obj->handle = 0;
		export_fd = obj->export_fd;
		obj->export_fd = -1;
	}
	pthread_mutex_unlock(&d->lock);
	if (!obj)
		return -EINVAL;
	if (export_fd >= 0)
		emul_real.close(export_fd);
	emul_objs_reap(d);
	return 0;
}

// drm_gem_prime_handle_to_fd: one dma-buf per object, cached while a handle
// exists, so every export of a handle is the same open file. Without
// DRM_RDWR the file is read-only, as the kernel's dma-buf is.
int emul_prime_handle_to_fd(struct emul_dev *d, uint32_t handle, uint32_t flags, int *fd_out)
{
	pthread_mutex_lock(&d->lock);
	struct emul_obj *obj = emul_obj_by_handle(d, handle);
	int err = obj ? 0 : -ENOENT;
	if (obj && obj->export_fd < 0) {
		obj->export_fd = open_tracked(obj, (flags & DRM_RDWR) ? O_RDWR : O_RDONLY);
		if (obj->export_fd < 0) {
			obj->pinned = true;
			obj->export_fd = emul_real.fcntl(obj->mem_fd, F_DUPFD_CLOEXEC, 0);
		}
		if (obj->export_fd < 0)
			err = -errno;
	}
	int fd = -1;
	if (!err) {
		fd = emul_real.fcntl(obj->export_fd,
				     (flags & DRM_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
		if (fd < 0)
			err = -errno;
	}
	pthread_mutex_unlock(&d->lock);
	*fd_out = fd;
	return err;
}

// drm_gem_prime_fd_to_handle for dma-bufs of this open: the object behind
// the file gets its handle back (the same one while it has one). Any other
// file is "not a dma-buf of ours": -EINVAL, where a kernel would import a
// foreign dma-buf.
int emul_prime_fd_to_handle(struct emul_dev *d, int fd, uint32_t *handle)
{
	struct stat st;
	if (emul_real.fstat(fd, &st) < 0)
		return -errno;
	pthread_mutex_lock(&d->lock);
	struct emul_obj *obj = d->objs;
	while (obj && (obj->st_dev != st.st_dev || obj->st_ino != st.st_ino))
		obj = obj->next;
	int err = obj ? 0 : -EINVAL;
	if (obj && !obj->handle)
		obj->handle = free_handle(d);
	if (obj && obj->export_fd < 0) // the object holds its dma-buf again
		obj->export_fd = emul_real.fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (obj)
		*handle = obj->handle;
	pthread_mutex_unlock(&d->lock);
	return err;
}

// drm_gem_create_mmap_offset: one fake offset per object, page-aligned,
// stable for its life.
int emul_map(struct emul_dev *d, uint32_t handle, uint64_t *offset)
{
	pthread_mutex_lock(&d->lock);
	struct emul_obj *obj = emul_obj_by_handle(d, handle);
	if (obj && !obj->offset) {
		obj->offset = d->next_offset;
		d->next_offset += sml_page_round_up(obj->size);
	}
	if (obj)
		*offset = obj->offset;
	pthread_mutex_unlock(&d->lock);
	return obj ? 0 : -ENOENT;
}

// drm_gem_mmap: the offset must be an object's exactly (else -EINVAL), this
// open must still hold a handle to it (else -EACCES), and the mapping must
// fit the object. Host blobs map only when MAPPABLE; shared mappings only.
static int check_mmap(const struct emul_obj *obj, size_t len, int flags)
{
	if (!obj)
		return -EINVAL;
	if (!obj->handle)
		return -EACCES;
	int type = flags & MAP_TYPE;
	if (len == 0 || len > obj->size || (type != MAP_SHARED && type != MAP_SHARED_VALIDATE))
		return -EINVAL;
	if (obj->blob_mem != VGPU_UAPI_BLOB_MEM_GUEST &&
	    !(obj->blob_flags & VGPU_UAPI_BLOB_FLAG_USE_MAPPABLE))
		return -EINVAL;
	return 0;
}

void *emul_mmap(struct emul_dev *d, void *addr, size_t len, int prot, int flags, uint64_t off,
		int *err)
{
	pthread_mutex_lock(&d->lock);
	struct emul_obj *obj = d->objs;
	while (obj && !(obj->offset && obj->offset == off))
		obj = obj->next;
	*err = check_mmap(obj, len, flags);
	void *map = MAP_FAILED;
	if (!*err) {
		// The mapping keeps its open file, and so its lock, alive.
		int fd = open_tracked(obj, O_RDWR);
		if (fd < 0)
			obj->pinned = true;
		map = emul_real.mmap(addr, len, prot, flags, fd >= 0 ? fd : obj->mem_fd, 0);
		if (map == MAP_FAILED)
			*err = -errno;
		if (fd >= 0)
			emul_real.close(fd);
	}
	pthread_mutex_unlock(&d->lock);
	return map;
}
