// SPDX-License-Identifier: MIT
// The DRM side of the emulated fd: drm_ioctl's argument handling, the core
// ioctls a render node allows (VERSION, GET_CAP, GEM_CLOSE, PRIME), and
// read() of events.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <drm.h>

#include "emul.h"
#include "virtgpu_uapi.h"

#define DRIVER_NUM_IOCTLS 12 // virtio-gpu's table: 0x00..0x0b

// The size the kernel's table gives each ioctl; 0 = not in the table.
static size_t core_size(unsigned nr)
{
	switch (nr) {
	case _IOC_NR(DRM_IOCTL_VERSION):
		return sizeof(struct drm_version);
	case _IOC_NR(DRM_IOCTL_GEM_CLOSE):
		return sizeof(struct drm_gem_close);
	case _IOC_NR(DRM_IOCTL_GET_CAP):
		return sizeof(struct drm_get_cap);
	case _IOC_NR(DRM_IOCTL_PRIME_HANDLE_TO_FD):
	case _IOC_NR(DRM_IOCTL_PRIME_FD_TO_HANDLE):
		return sizeof(struct drm_prime_handle);
	}
	return 0;
}

static size_t driver_size(unsigned nr)
{
	static const size_t sizes[DRIVER_NUM_IOCTLS] = {
		[VGPU_UAPI_MAP] = sizeof(struct vgpu_uapi_map),
		[VGPU_UAPI_EXECBUFFER] = sizeof(struct vgpu_uapi_execbuffer),
		[VGPU_UAPI_GETPARAM] = sizeof(struct vgpu_uapi_getparam),
		[VGPU_UAPI_RESOURCE_CREATE] = 56,
		[VGPU_UAPI_RESOURCE_INFO] = sizeof(struct vgpu_uapi_resource_info),
		[VGPU_UAPI_TRANSFER_FROM_HOST] = 44,
		[VGPU_UAPI_TRANSFER_TO_HOST] = 44,
		[VGPU_UAPI_WAIT] = sizeof(struct vgpu_uapi_wait),
		[VGPU_UAPI_GET_CAPS] = sizeof(struct vgpu_uapi_get_caps),
		[VGPU_UAPI_RESOURCE_CREATE_BLOB] = sizeof(struct vgpu_uapi_create_blob),
		[VGPU_UAPI_CONTEXT_INIT] = sizeof(struct vgpu_uapi_context_init),
	};
	nr -= DRM_COMMAND_BASE;
	return nr < DRIVER_NUM_IOCTLS ? sizes[nr] : 0;
}

// drm_copy_field: the full length is reported, at most *len bytes copied,
// no NUL added. drmGetVersion asks twice: lengths first, then bytes.
static void copy_field(char *buf, __kernel_size_t *len, const char *value)
{
	size_t n = strlen(value);
	size_t copy = n < *len ? n : *len;
	*len = n;
	if (copy && buf)
		memcpy(buf, value, copy);
}

static int drm_version(struct drm_version *v)
{
	// virtgpu_drv.h: DRIVER_NAME, DRIVER_DESC, DRIVER_DATE, 0.1.0.
	v->version_major = 0;
	v->version_minor = 1;
	v->version_patchlevel = 0;
	copy_field(v->name, &v->name_len, "virtio_gpu");
	copy_field(v->date, &v->date_len, "0");
	copy_field(v->desc, &v->desc_len, "virtio GPU");
	return 0;
}

// drm_getcap for a driver without syncobjs; the KMS caps are not emulated.
static int drm_get_cap(struct drm_get_cap *cap)
{
	switch (cap->capability) {
	case DRM_CAP_TIMESTAMP_MONOTONIC:
		cap->value = 1;
		return 0;
	case DRM_CAP_PRIME:
		cap->value = DRM_PRIME_CAP_IMPORT | DRM_PRIME_CAP_EXPORT;
		return 0;
	case DRM_CAP_SYNCOBJ:
	case DRM_CAP_SYNCOBJ_TIMELINE:
		cap->value = 0;
		return 0;
	}
	return -EINVAL;
}

static int prime_handle_to_fd(struct emul_dev *d, struct drm_prime_handle *p)
{
	if (p->flags & ~(uint32_t)(DRM_CLOEXEC | DRM_RDWR))
		return -EINVAL;
	return emul_prime_handle_to_fd(d, p->handle, p->flags, &p->fd);
}

static int core_ioctl(struct emul_dev *d, unsigned nr, void *data)
{
	switch (nr) {
	case _IOC_NR(DRM_IOCTL_VERSION):
		return drm_version(data);
	case _IOC_NR(DRM_IOCTL_GET_CAP):
		return drm_get_cap(data);
	case _IOC_NR(DRM_IOCTL_GEM_CLOSE):
		return emul_gem_close(d, ((struct drm_gem_close *)data)->handle);
	case _IOC_NR(DRM_IOCTL_PRIME_HANDLE_TO_FD):
		return prime_handle_to_fd(d, data);
	case _IOC_NR(DRM_IOCTL_PRIME_FD_TO_HANDLE): {
		struct drm_prime_handle *p = data;
		return emul_prime_fd_to_handle(d, p->fd, &p->handle);
	}
	}
	return -EINVAL;
}

// The ioctls the VFS answers for every file before a driver sees them.
static bool vfs_ioctl(unsigned long request)
{
	return request == FIOCLEX || request == FIONCLEX || request == FIONBIO ||
	       request == FIOASYNC;
}

// As drm_ioctl: the number selects the handler whatever the size in the
// request, the caller's bytes are copied in (only with _IOC_WRITE) and
// zero-extended to the kernel's struct, and copied back out (only with
// _IOC_READ) even when the handler failed. Old and new struct sizes thus
// both work, as they do on a kernel.
int emul_ioctl(struct emul_dev *d, int fd, unsigned long request, void *arg)
{
	if (vfs_ioctl(request)) {
		int ret = emul_real.ioctl(fd, request, arg);
		return ret < 0 ? -errno : ret;
	}
	if (_IOC_TYPE(request) != DRM_IOCTL_BASE)
		return -ENOTTY;
	unsigned nr = _IOC_NR(request);
	bool driver = nr >= DRM_COMMAND_BASE && nr < DRM_COMMAND_END;
	size_t ksize = driver ? driver_size(nr) : core_size(nr);
	if (!ksize)
		return -EINVAL;
	size_t usize = _IOC_SIZE(request);
	size_t in = (_IOC_DIR(request) & _IOC_WRITE) ? usize : 0;
	size_t out = (_IOC_DIR(request) & _IOC_READ) ? usize : 0;
	if ((in || out) && !arg)
		return -EFAULT;
	uint64_t stack[32];
	size_t size = ksize > usize ? ksize : usize;
	void *data = size <= sizeof(stack) ? stack : calloc(1, size);
	if (!data)
		return -ENOMEM;
	memset(data, 0, size);
	memcpy(data, arg, in);
	int ret = driver ? emul_virtgpu_ioctl(d, nr - DRM_COMMAND_BASE, data)
			 : core_ioctl(d, nr, data);
	memcpy(arg, data, out);
	if (data != stack)
		free(data);
	return ret;
}

// drm_read hands out whole events only: a buffer too small for the next
// one gets 0 (after waiting for one, unless O_NONBLOCK). Every event here
// is 8 bytes and written in one piece, so rounding the count down keeps
// each read() on event boundaries.
ssize_t emul_read(int fd, void *buf, size_t count)
{
	count -= count % sizeof(struct drm_event);
	if (count)
		return emul_real.read(fd, buf, count);
	int flags = emul_real.fcntl(fd, F_GETFL);
	if (flags < 0)
		return -1;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n = poll(&p, 1, (flags & O_NONBLOCK) ? 0 : -1);
	if (n == 0)
		errno = EAGAIN;
	return n > 0 ? 0 : -1;
}
