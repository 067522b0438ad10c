// SPDX-License-Identifier: MIT
// The kernel backend of vgpu: DRM ioctls on a virtio-gpu render node, as a
// cross-domain guest runs on a real VM (crosvm, QEMU with rutabaga,
// libkrun). One open = one DRM fd = one context; the flow is the "Guest
// flow" of doc/cross-domain.md.
//
// UAPI: Debian 12's libdrm (2.4.114) ships a virtgpu_drm.h from before blob
// resources (Linux 5.11) and context init (5.16). What it has is used as it
// is; the newer parts are declared below under this module's own names, in
// the kernel's layout, pinned by static_assert to the ioctl numbers of the
// contract (and to the header's own, once a newer header has them).
//
// Handles: the interface speaks resource handles (what the host knows);
// ioctls take GEM handles. Every resource made here is remembered with its
// GEM handle (and a ring's mapping) until destroy_resource.
//
// Blocking: ioctls block as briefly as the kernel makes them. wait() polls
// the fence with VIRTGPU_WAIT_NOWAIT for at most VGPU_TIMEOUT_MS instead of
// the kernel's own 15 s, because one event loop serves every client. Fence
// events are read without blocking (the fd is O_NONBLOCK).
#include "vgpu_kernel.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <drm.h>
#include <virtgpu_drm.h>

#include "cross_domain.h"
#include "log.h"
#include "util.h"
#include "vgpu.h"
#include "virtgpu_uapi.h"

// ---- UAPI beyond libdrm 2.4.114: protocol/virtgpu_uapi.h --------------------

// The numbers of the contract (doc/cross-domain.md), whichever header built us.
static_assert(DRM_IOCTL_VIRTGPU_GETPARAM == 0xC0106443u, "GETPARAM");
static_assert(DRM_IOCTL_VIRTGPU_GET_CAPS == 0xC0186449u, "GET_CAPS");
static_assert(DRM_IOCTL_VIRTGPU_MAP == 0xC0106441u, "MAP");
static_assert(DRM_IOCTL_VIRTGPU_WAIT == 0xC0086448u, "WAIT");
static_assert(DRM_IOCTL_PRIME_HANDLE_TO_FD == 0xC00C642Du, "PRIME_HANDLE_TO_FD");
static_assert(DRM_IOCTL_GEM_CLOSE == 0x40086409u, "GEM_CLOSE");
static_assert(DRM_IOCTL_PRIME_FD_TO_HANDLE == 0xC00C642Eu, "PRIME_FD_TO_HANDLE");
static_assert(DRM_IOCTL_VIRTGPU_RESOURCE_INFO == 0xC0106445u, "RESOURCE_INFO");
#ifdef DRM_IOCTL_VIRTGPU_RESOURCE_CREATE_BLOB
static_assert(VGPU_IOCTL_RESOURCE_CREATE_BLOB == DRM_IOCTL_VIRTGPU_RESOURCE_CREATE_BLOB, "header");
#endif
#ifdef DRM_IOCTL_VIRTGPU_CONTEXT_INIT
static_assert(VGPU_IOCTL_CONTEXT_INIT == DRM_IOCTL_VIRTGPU_CONTEXT_INIT, "header");
#endif

// ---- system calls ------------------------------------------------------------

static int vk_sys_open(const char *path, int flags)
{
	return open(path, flags);
}

static int vk_sys_ioctl(int fd, unsigned long request, void *arg)
{
	return ioctl(fd, request, arg);
}

#define VK_REAL_OPS \
	{ .open = vk_sys_open, .close = close, .ioctl = vk_sys_ioctl, .mmap = mmap, \
	  .munmap = munmap, .read = read, .now_ns = sml_now_ns }

static const struct vgpu_kernel_ops vk_real_ops = VK_REAL_OPS;
static struct vgpu_kernel_ops vk_ops = VK_REAL_OPS; // vk_real_ops with a test's hooks

void vgpu_kernel_set_ops(const struct vgpu_kernel_ops *ops)
{
	vk_ops = vk_real_ops;
	if (!ops)
		return;
#define TAKE(op) (vk_ops.op = ops->op ? ops->op : vk_ops.op)
	TAKE(open), TAKE(close), TAKE(ioctl), TAKE(mmap), TAKE(munmap), TAKE(read), TAKE(now_ns);
#undef TAKE
}

// Tries before an interrupted ioctl counts as failed (libdrm retries forever;
// a device that keeps interrupting should not hang the loop).
#define VK_IOCTL_TRIES 100

// One ioctl: 0 or a negative errno.
static int vk_ioctl(int fd, unsigned long request, void *arg)
{
	for (int i = 0; i < VK_IOCTL_TRIES; i++) {
		if (vk_ops.ioctl(fd, request, arg) == 0)
			return 0;
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
	return -EINTR;
}

// ---- the device ----------------------------------------------------------------

// A resource made on this fd.
struct vk_bo {
	uint32_t res; // the host's name, what callers use
	uint32_t handle; // the GEM handle, what ioctls take
	void *map; // rings only
	size_t map_size;
};

struct vgpu_kernel {
	struct vgpu_dev base;
	int fd;
	char path[64];
	uint64_t poll_mask; // rings whose fences arrive as events
	int dead; // 0, or the error read_events reports once fences are out
	struct vk_bo *bos;
	size_t nbos, cap;
};

// Fence events per read_events call are bounded so that a flood cannot
// starve the loop; the fd stays readable and the loop comes back.
#define VK_READS_PER_CALL 16
#define VK_EVENT_BUF 4096 // drm_read returns 0 when the next event does not fit
#define VK_EVENT_MAX 256 // above any DRM event's size (a fence event is 8 bytes)
#define VK_MAX_EXEC_BOS 64u
#define VK_WAIT_SLEEP_MIN_US 50u
#define VK_WAIT_SLEEP_MAX_US 2000u

static struct vgpu_kernel *to_vk(struct vgpu_dev *dev)
{
	return (struct vgpu_kernel *)dev;
}

static struct vk_bo *vk_find_bo(struct vgpu_kernel *k, uint32_t res)
{
	for (size_t i = 0; i < k->nbos; i++)
		if (k->bos[i].res == res)
			return &k->bos[i];
	return NULL;
}

// Room for one more resource, made before the ioctl so that nothing can
// fail between creating a resource and remembering it.
static int vk_reserve(struct vgpu_kernel *k)
{
	if (k->nbos < k->cap)
		return 0;
	size_t cap = k->cap ? k->cap * 2 : 8;
	struct vk_bo *bos = realloc(k->bos, cap * sizeof(*bos));
	if (!bos)
		return -ENOMEM;
	k->bos = bos;
	k->cap = cap;
	return 0;
}

static void vk_gem_close(struct vgpu_kernel *k, uint32_t handle)
{
	struct drm_gem_close req = { .handle = handle };
	int ret = vk_ioctl(k->fd, DRM_IOCTL_GEM_CLOSE, &req);
	if (ret < 0)
		sml_warn("kernel device %s: GEM_CLOSE of handle %u failed: %s", k->path, handle,
			 strerror(-ret));
}

static void vk_release_bo(struct vgpu_kernel *k, struct vk_bo *bo)
{
	if (bo->map)
		vk_ops.munmap(bo->map, bo->map_size);
	vk_gem_close(k, bo->handle);
}

static void vk_destroy(struct vgpu_dev *dev)
{
	struct vgpu_kernel *k = to_vk(dev);
	for (size_t i = 0; i < k->nbos; i++)
		vk_release_bo(k, &k->bos[i]);
	free(k->bos);
	// Closing the fd ends the context on the host.
	if (k->fd >= 0)
		vk_ops.close(k->fd);
	free(k);
}

static int vk_get_caps(struct vgpu_dev *dev, uint32_t capset_id, void *out, size_t size)
{
	struct vgpu_kernel *k = to_vk(dev);
	if (size == 0 || size > UINT32_MAX)
		return -EINVAL;
	memset(out, 0, size);
	struct drm_virtgpu_get_caps req = {
		.cap_set_id = capset_id,
		.cap_set_ver = 0, // the kernel's "any version"
		.addr = (uintptr_t)out,
		.size = (uint32_t)size,
	};
	int ret = vk_ioctl(k->fd, DRM_IOCTL_VIRTGPU_GET_CAPS, &req);
	if (ret < 0)
		sml_warn("kernel device %s: GET_CAPS of capset %u failed: %s", k->path, capset_id,
			 strerror(-ret));
	return ret;
}

static int vk_context_init(struct vgpu_dev *dev, uint32_t capset_id, uint32_t num_rings,
			   uint64_t poll_mask)
{
	struct vgpu_kernel *k = to_vk(dev);
	struct vgpu_uapi_context_param params[] = {
		{ VGPU_UAPI_CONTEXT_PARAM_CAPSET_ID, capset_id },
		{ VGPU_UAPI_CONTEXT_PARAM_NUM_RINGS, num_rings },
		{ VGPU_UAPI_CONTEXT_PARAM_POLL_RINGS_MASK, poll_mask },
	};
	struct vgpu_uapi_context_init req = {
		.num_params = SML_ARRAY_LEN(params),
		.ctx_set_params = (uintptr_t)params,
	};
	int ret = vk_ioctl(k->fd, VGPU_IOCTL_CONTEXT_INIT, &req);
	if (ret < 0) {
		// EEXIST: something made the default context first.
		sml_warn("kernel device %s: CONTEXT_INIT (capset %u, %u rings) failed: %s",
			 k->path, capset_id, num_rings, strerror(-ret));
		return ret;
	}
	k->poll_mask = poll_mask;
	return 0;
}

// RESOURCE_CREATE_BLOB; on success *bo holds both handles (nothing mapped).
static int vk_create_blob(struct vgpu_kernel *k, uint32_t mem, uint32_t flags, uint64_t blob_id,
			  uint64_t size, struct vk_bo *bo)
{
	struct vgpu_uapi_create_blob req = {
		.blob_mem = mem,
		.blob_flags = flags,
		.size = size,
		.blob_id = blob_id,
	};
	int ret = vk_ioctl(k->fd, VGPU_IOCTL_RESOURCE_CREATE_BLOB, &req);
	if (ret < 0) {
		sml_warn("kernel device %s: RESOURCE_CREATE_BLOB (mem %u, blob %llu, %llu bytes) "
			 "failed: %s", k->path, mem, (unsigned long long)blob_id,
			 (unsigned long long)size, strerror(-ret));
		return ret;
	}
	*bo = (struct vk_bo){ .res = req.res_handle, .handle = req.bo_handle };
	return 0;
}

// MAP + mmap of a whole blob through the DRM fd.
static int vk_map(struct vgpu_kernel *k, struct vk_bo *bo, size_t size)
{
	struct drm_virtgpu_map req = { .handle = bo->handle };
	int ret = vk_ioctl(k->fd, DRM_IOCTL_VIRTGPU_MAP, &req);
	if (ret == 0 && req.offset > (uint64_t)INT64_MAX)
		ret = -EOVERFLOW;
	if (ret < 0) {
		sml_warn("kernel device %s: MAP of resource %u failed: %s", k->path, bo->res,
			 strerror(-ret));
		return ret;
	}
	void *m = vk_ops.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, k->fd,
			      (off_t)req.offset);
	if (m == MAP_FAILED) {
		ret = -errno;
		sml_warn("kernel device %s: mmap of resource %u failed: %s", k->path, bo->res,
			 strerror(-ret));
		return ret;
	}
	bo->map = m;
	bo->map_size = size;
	return 0;
}

static int vk_create_ring(struct vgpu_dev *dev, size_t size, uint32_t *res, void **map)
{
	struct vgpu_kernel *k = to_vk(dev);
	struct vk_bo bo;
	size = sml_page_round_up(size ? size : 1);
	int ret = vk_reserve(k);
	if (ret == 0)
		ret = vk_create_blob(k, VGPU_UAPI_BLOB_MEM_GUEST, VGPU_UAPI_BLOB_FLAG_USE_MAPPABLE, 0, size, &bo);
	if (ret < 0)
		return ret;
	if ((ret = vk_map(k, &bo, size)) < 0) {
		vk_gem_close(k, bo.handle);
		return ret;
	}
	k->bos[k->nbos++] = bo;
	*res = bo.res;
	*map = bo.map;
	return 0;
}

// Guest RAM cannot be handed to the host compositor on a VM; the channel
// copies wl_shm pixels into host blobs instead (guest_memory is false).
static int vk_create_guest_blob(struct vgpu_dev *dev, int memfd, uint64_t size, uint32_t *res)
{
	sml_warn("kernel device %s: guest memory cannot be shared with the host",
		 to_vk(dev)->path);
	return -EOPNOTSUPP;
}

static int vk_create_host_blob(struct vgpu_dev *dev, uint64_t blob_id, uint64_t size,
			       uint32_t *res, int *fd)
{
	struct vgpu_kernel *k = to_vk(dev);
	struct vk_bo bo;
	if (size == 0) {
		sml_warn("kernel device %s: host blob %llu of 0 bytes", k->path,
			 (unsigned long long)blob_id);
		return -EINVAL;
	}
	int ret = vk_reserve(k);
	if (ret == 0)
		ret = vk_create_blob(k, VGPU_UAPI_BLOB_MEM_HOST3D,
				     VGPU_UAPI_BLOB_FLAG_USE_MAPPABLE | VGPU_UAPI_BLOB_FLAG_USE_SHAREABLE, blob_id,
				     size, &bo);
	if (ret < 0)
		return ret;
	struct drm_prime_handle prime = { .handle = bo.handle, .flags = DRM_CLOEXEC | DRM_RDWR,
					  .fd = -1 };
	if ((ret = vk_ioctl(k->fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &prime)) < 0) {
		sml_warn("kernel device %s: PRIME export of resource %u failed: %s", k->path,
			 bo.res, strerror(-ret));
		vk_gem_close(k, bo.handle);
		return ret;
	}
	// The GEM handle stays until destroy_resource: the caller may still name
	// the resource in an EXECBUFFER (an image sent in a SEND), and the host
	// must see that EXECBUFFER before the resource can go away.
	k->bos[k->nbos++] = bo;
	*res = bo.res;
	*fd = prime.fd;
	return 0;
}

// PRIME import and RESOURCE_INFO: the host's name of a buffer of this
// device. A buffer already known here keeps its one entry.
static int vk_import_fd(struct vgpu_dev *dev, int fd, uint32_t *res)
{
	struct vgpu_kernel *k = to_vk(dev);
	struct drm_prime_handle prime = { .fd = fd };
	int ret = vk_reserve(k);
	if (ret == 0)
		ret = vk_ioctl(k->fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &prime);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < k->nbos; i++) {
		if (k->bos[i].handle == prime.handle) {
			*res = k->bos[i].res;
			return 0;
		}
	}
	struct drm_virtgpu_resource_info info = { .bo_handle = prime.handle };
	ret = vk_ioctl(k->fd, DRM_IOCTL_VIRTGPU_RESOURCE_INFO, &info);
	if (ret == 0 && info.res_handle == 0)
		ret = -EINVAL; // a foreign dma-buf: the host has no resource for it
	if (ret < 0) {
		sml_warn("kernel device %s: an imported buffer has no host resource: %s",
			 k->path, strerror(-ret));
		vk_gem_close(k, prime.handle);
		return ret;
	}
	k->bos[k->nbos++] = (struct vk_bo){ .res = info.res_handle, .handle = prime.handle };
	*res = info.res_handle;
	return 0;
}

// Closes the GEM handle. Callers destroy a resource only after the
// EXECBUFFERs that name it returned: by then those commands are in the
// control queue ahead of the unref that closing the last reference sends,
// so the host sees them first. A PRIME fd keeps the memory alive after this.
static void vk_destroy_resource(struct vgpu_dev *dev, uint32_t res)
{
	struct vgpu_kernel *k = to_vk(dev);
	struct vk_bo *bo = vk_find_bo(k, res);
	if (!bo) {
		sml_dbg("kernel device %s: destroy of unknown resource %u ignored", k->path, res);
		return;
	}
	vk_release_bo(k, bo);
	*bo = k->bos[--k->nbos];
}

// The GEM handles of `n` resources; negative errno when one is unknown.
static int vk_translate(struct vgpu_kernel *k, const uint32_t *res, uint32_t n,
			uint32_t *handles)
{
	for (uint32_t i = 0; i < n; i++) {
		const struct vk_bo *bo = vk_find_bo(k, res[i]);
		if (!bo) {
			sml_warn("kernel device %s: execbuffer names unknown resource %u", k->path,
				 res[i]);
			return -ENOENT;
		}
		handles[i] = bo->handle;
	}
	return 0;
}

static int vk_execbuffer(struct vgpu_dev *dev, const void *cmd, size_t size, uint32_t ring,
			 const uint32_t *bos, uint32_t nbos)
{
	struct vgpu_kernel *k = to_vk(dev);
	uint32_t handles[VK_MAX_EXEC_BOS];
	if (size == 0 || size > UINT32_MAX || nbos > VK_MAX_EXEC_BOS)
		return -EINVAL;
	int ret = vk_translate(k, bos, nbos, handles);
	if (ret < 0)
		return ret;
	// A ring's fence needs no fence fd: for a ring in the poll mask it
	// arrives as an event on the DRM fd; for others wait() sees it.
	struct vgpu_uapi_execbuffer req = {
		.flags = ring == VGPU_NO_RING ? 0 : VGPU_UAPI_EXECBUF_RING_IDX,
		.size = (uint32_t)size,
		.command = (uintptr_t)cmd,
		.bo_handles = nbos ? (uintptr_t)handles : 0,
		.num_bo_handles = nbos,
		.fence_fd = -1,
		.ring_idx = ring == VGPU_NO_RING ? 0 : ring,
	};
	if ((ret = vk_ioctl(k->fd, VGPU_IOCTL_EXECBUFFER, &req)) < 0)
		sml_warn("kernel device %s: EXECBUFFER of %zu bytes (ring %d) failed: %s",
			 k->path, size, ring == VGPU_NO_RING ? -1 : (int)ring, strerror(-ret));
	return ret;
}

static int vk_wait(struct vgpu_dev *dev, uint32_t res)
{
	struct vgpu_kernel *k = to_vk(dev);
	const struct vk_bo *bo = vk_find_bo(k, res);
	if (!bo) {
		sml_warn("kernel device %s: wait for unknown resource %u", k->path, res);
		return -ENOENT;
	}
	uint64_t deadline = vk_ops.now_ns() + (uint64_t)VGPU_TIMEOUT_MS * 1000000u;
	unsigned sleep_us = VK_WAIT_SLEEP_MIN_US;
	for (;;) {
		struct drm_virtgpu_3d_wait req = { .handle = bo->handle,
						   .flags = VIRTGPU_WAIT_NOWAIT };
		int ret = vk_ioctl(k->fd, DRM_IOCTL_VIRTGPU_WAIT, &req);
		if (ret == 0)
			return 0;
		if (ret != -EBUSY) {
			sml_warn("kernel device %s: WAIT on resource %u failed: %s", k->path, res,
				 strerror(-ret));
			return ret;
		}
		if (vk_ops.now_ns() >= deadline) {
			sml_warn("kernel device %s: resource %u still busy after %d ms", k->path,
				 res, VGPU_TIMEOUT_MS);
			return -ETIMEDOUT;
		}
		usleep(sleep_us);
		sleep_us = SML_MIN(sleep_us * 2, VK_WAIT_SLEEP_MAX_US);
	}
}

static int vk_event_fd(struct vgpu_dev *dev)
{
	return to_vk(dev)->fd;
}

// Marks the device dead (the first reason wins) and returns the error.
static int vk_die(struct vgpu_kernel *k, int err, const char *why)
{
	if (!k->dead) {
		sml_warn("kernel device %s: %s (%s)", k->path, why, strerror(-err));
		k->dead = err;
	}
	return k->dead;
}

// One read's worth of drm_event records. The kernel's fence event does not
// say which ring it is for: it is for a ring in the poll mask (the channel
// polls one ring only, so that one).
static int vk_parse_events(struct vgpu_kernel *k, const uint8_t *buf, size_t len,
			   uint64_t *signalled)
{
	size_t off = 0;
	while (off < len) {
		struct drm_event ev;
		if (len - off < sizeof(ev))
			return vk_die(k, -EPROTO, "a truncated event header");
		memcpy(&ev, buf + off, sizeof(ev));
		if (ev.length < sizeof(ev) || ev.length > len - off)
			return vk_die(k, -EPROTO, "an event with a bad length");
		if (ev.type == VGPU_UAPI_EVENT_FENCE_SIGNALED)
			*signalled |= k->poll_mask;
		else
			sml_dbg("kernel device %s: event type %#x (%u bytes) skipped", k->path,
				ev.type, ev.length);
		off += ev.length;
	}
	return 0;
}

// Waits (ioctls) leave events on the fd, so an fd that is not readable
// has nothing to report.
static int vk_read_events(struct vgpu_dev *dev, bool readable, uint64_t *signalled)
{
	struct vgpu_kernel *k = to_vk(dev);
	uint8_t buf[VK_EVENT_BUF];
	*signalled = 0;
	for (int i = 0; readable && i < VK_READS_PER_CALL && !k->dead; i++) {
		ssize_t n = vk_ops.read(k->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0)
			vk_die(k, -errno, "cannot read events");
		else if (n == 0)
			vk_die(k, -ECONNRESET, "the device reported end of file");
		else
			vk_parse_events(k, buf, (size_t)n, signalled);
		// drm_read stops only when the queue is empty or the next event
		// does not fit: with room for any event left, it was empty.
		if (n > 0 && (size_t)n + VK_EVENT_MAX <= sizeof(buf))
			break;
	}
	// Fences that came before an error are reported first: the ring may
	// hold the compositor's last words.
	return *signalled ? 0 : k->dead;
}

static const struct vgpu_dev_impl vk_impl = {
	.name = "kernel",
	.destroy = vk_destroy,
	.get_caps = vk_get_caps,
	.context_init = vk_context_init,
	.create_ring = vk_create_ring,
	.create_guest_blob = vk_create_guest_blob,
	.create_host_blob = vk_create_host_blob,
	.import_fd = vk_import_fd,
	.destroy_resource = vk_destroy_resource,
	.execbuffer = vk_execbuffer,
	.wait = vk_wait,
	.event_fd = vk_event_fd,
	.read_events = vk_read_events,
};

// ---- finding the node ----------------------------------------------------------

#define VK_FIRST_RENDER_NODE 128
#define VK_LAST_RENDER_NODE 191

// How loudly a probe explains itself: `level` for what is wrong with a
// node the caller cares about, `other` for nodes that are simply not
// virtio-gpu (other GPUs while scanning).
struct vk_probe {
	const char *path;
	enum sml_log_level level, other;
};

static int vk_check_driver(int fd, const struct vk_probe *p)
{
	char name[32] = { 0 };
	struct drm_version v = { .name_len = sizeof(name) - 1, .name = name };
	int ret = vk_ioctl(fd, DRM_IOCTL_VERSION, &v);
	if (ret < 0) {
		sml_log(p->other, "%s: not a DRM device (%s)", p->path, strerror(-ret));
		return -ENODEV;
	}
	static const char want[] = "virtio_gpu";
	if (v.name_len != sizeof(want) - 1 || memcmp(name, want, sizeof(want) - 1) != 0) {
		int len = (int)SML_MIN(v.name_len, sizeof(name) - 1);
		sml_log(p->other, "%s: driver %.*s, not virtio_gpu", p->path, len, name);
		return -ENODEV;
	}
	return 0;
}

// GETPARAM: 1 present, 0 absent (the kernel may not know the parameter:
// it answers EINVAL), or a negative errno.
static int vk_getparam(int fd, uint64_t param, int *value)
{
	*value = 0;
	struct drm_virtgpu_getparam req = { .param = param, .value = (uintptr_t)value };
	int ret = vk_ioctl(fd, DRM_IOCTL_VIRTGPU_GETPARAM, &req);
	if (ret == -EINVAL)
		return 0;
	return ret < 0 ? ret : *value != 0;
}

static const struct {
	uint64_t param;
	const char *what;
} vk_features[] = {
	{ VGPU_UAPI_PARAM_3D_FEATURES, "3D features (virgl): EXECBUFFER and host blobs need them" },
	{ VGPU_UAPI_PARAM_RESOURCE_BLOB, "blob resources (Linux >= 5.11, a host with blob support)" },
	{ VGPU_UAPI_PARAM_HOST_VISIBLE, "host-visible memory (a host that maps its blobs into the "
				 "guest)" },
	{ VGPU_UAPI_PARAM_CONTEXT_INIT, "context init (Linux >= 5.16, a host with context types)" },
};

// Every missing feature is logged, not just the first.
static int vk_check_features(int fd, const struct vk_probe *p)
{
	int missing = 0, value;
	for (size_t i = 0; i < SML_ARRAY_LEN(vk_features); i++) {
		int ret = vk_getparam(fd, vk_features[i].param, &value);
		if (ret < 0) {
			sml_log(p->level, "%s: GETPARAM %llu failed: %s", p->path,
				(unsigned long long)vk_features[i].param, strerror(-ret));
			return ret;
		}
		if (ret == 0) {
			sml_log(p->level, "%s: virtio-gpu without %s", p->path, vk_features[i].what);
			missing++;
		}
	}
	return missing ? -ENOTSUP : 0;
}

static int vk_check_cross_domain(int fd, const struct vk_probe *p)
{
	int capsets;
	int ret = vk_getparam(fd, VGPU_UAPI_PARAM_SUPPORTED_CAPSET_IDS, &capsets);
	if (ret < 0) {
		sml_log(p->level, "%s: GETPARAM SUPPORTED_CAPSET_IDs failed: %s", p->path,
			strerror(-ret));
		return ret;
	}
	if (!((unsigned)capsets & (1u << CD_CAPSET_ID))) {
		sml_log(p->level, "%s: the host offers no cross-domain capset (capsets %#x)",
			p->path, (unsigned)capsets);
		return -ENOTSUP;
	}
	struct cd_capabilities caps = { 0 };
	struct drm_virtgpu_get_caps req = { .cap_set_id = CD_CAPSET_ID, .cap_set_ver = 0,
					    .addr = (uintptr_t)&caps, .size = sizeof(caps) };
	if ((ret = vk_ioctl(fd, DRM_IOCTL_VIRTGPU_GET_CAPS, &req)) < 0) {
		sml_log(p->level, "%s: GET_CAPS of the cross-domain capset failed: %s", p->path,
			strerror(-ret));
		return ret;
	}
	if (!(caps.supported_channels & (1u << CD_CHANNEL_WAYLAND))) {
		sml_log(p->level, "%s: the cross-domain capset offers no Wayland channel "
			"(channels %#x)", p->path, caps.supported_channels);
		return -ENOTSUP;
	}
	return 0;
}

// Opens `p->path` and checks it; the fd, or a negative errno.
static int vk_probe_node(const struct vk_probe *p)
{
	int fd = vk_ops.open(p->path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int err = -errno;
		if (err != -ENOENT)
			sml_log(p->level, "cannot open %s: %s", p->path, strerror(-err));
		return err;
	}
	int ret = vk_check_driver(fd, p);
	if (ret == 0)
		ret = vk_check_features(fd, p);
	if (ret == 0)
		ret = vk_check_cross_domain(fd, p);
	if (ret < 0) {
		vk_ops.close(fd);
		return ret;
	}
	return fd;
}

static int vk_find_path(const char *path, enum sml_log_level level, char *found, size_t cap)
{
	struct vk_probe p = { .path = path, .level = level, .other = level };
	int fd = vk_probe_node(&p);
	if (fd == -ENOENT)
		sml_log(level, "%s does not exist", path);
	if (fd >= 0)
		snprintf(found, cap, "%s", path);
	return fd;
}

// The first render node that passes (open() of each name: no directory
// listing, so a sandbox that provides only the device paths works). The
// error is what was wrong with the most promising node: ENODEV when none
// was virtio-gpu, else the first other reason (no access, a feature missing).
static int vk_scan(enum sml_log_level level, enum sml_log_level summary, char *found,
		   size_t cap)
{
	char node[32];
	struct vk_probe p = { .path = node, .level = level, .other = SML_LOG_DEBUG };
	int err = -ENODEV;
	for (int i = VK_FIRST_RENDER_NODE; i <= VK_LAST_RENDER_NODE; i++) {
		snprintf(node, sizeof(node), "/dev/dri/renderD%d", i);
		int fd = vk_probe_node(&p);
		if (fd >= 0) {
			snprintf(found, cap, "%s", node);
			return fd;
		}
		if (fd != -ENOENT && fd != -ENODEV && err == -ENODEV)
			err = fd;
	}
	sml_log(summary, "no virtio-gpu render node with the cross-domain Wayland channel in "
		"/dev/dri/renderD%d..%d", VK_FIRST_RENDER_NODE, VK_LAST_RENDER_NODE);
	return err;
}

int vgpu_kernel_open(const char *path, struct vgpu_dev **out)
{
	struct vgpu_kernel *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->fd = path ? vk_find_path(path, SML_LOG_WARN, k->path, sizeof(k->path)) :
		       vk_scan(SML_LOG_WARN, SML_LOG_WARN, k->path, sizeof(k->path));
	if (k->fd < 0) {
		int err = k->fd;
		free(k);
		return err;
	}
	k->base.impl = &vk_impl;
	k->base.guest_memory = false;
	sml_info("kernel device %s: virtio-gpu with the cross-domain Wayland channel", k->path);
	*out = &k->base;
	return 0;
}

bool vgpu_kernel_available(const char *path)
{
	char found[64];
	// Asked while choosing a host side: a VM without the device is normal.
	int fd = path ? vk_find_path(path, SML_LOG_INFO, found, sizeof(found)) :
			vk_scan(SML_LOG_INFO, SML_LOG_DEBUG, found, sizeof(found));
	if (fd < 0)
		return false;
	vk_ops.close(fd);
	return true;
}
