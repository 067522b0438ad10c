// SPDX-License-Identifier: MIT
// The kernel vgpu backend (proxy/guest/vgpu_kernel.c) against a fake
// virtio-gpu kernel behind its ops table. The fake plays the kernel at the
// ioctl boundary from the contract (doc/cross-domain.md), not from the
// backend's declarations: new-UAPI ioctls are matched by their numbers and
// read at the documented offsets. It keeps GEM handles and resource handles
// apart (so a missed translation shows), enforces the context rules
// (CONTEXT_INIT before any context-creating ioctl, EEXIST after), checks
// ring indices and map offsets, makes the DRM fd a pipe that poll()s
// readable while fence events wait, and exports blobs as memfds.
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <drm.h>
#include <virtgpu_drm.h>

#include "cross_domain.h"
#include "log.h"
#include "util.h"
#include "vgpu.h"
#include "vgpu_kernel.h"

// The contract's numbers for what libdrm 2.4.114 lacks.
#define IOC_EXECBUFFER 0xC0406442ul
#define IOC_CREATE_BLOB 0xC030644Aul
#define IOC_CONTEXT_INIT 0xC010644Bul
#define EVENT_FENCE 0x90000000u
#define EXECBUF_RING_IDX 0x04u

enum { P_3D = 1, P_QUERY_FIX = 2, P_BLOB = 3, P_HOST_VISIBLE = 4, P_CONTEXT_INIT = 6,
       P_CAPSETS = 7, P_COUNT = 8 };
#define PARAM_UNKNOWN (-1) // the kernel answers EINVAL

#define NODES 64
#define FIRST_NODE 128
#define RES_BASE 1000u // resource handles never equal GEM handles

// ---- the fake kernel -----------------------------------------------------------

struct fake_node {
	const char *driver; // NULL: no such path
	int open_errno;
	int params[P_COUNT];
	uint32_t channels; // cross-domain supported_channels
};

struct fake_obj {
	bool live;
	ino_t ino; // of its memory: what PRIME import recognises
	uint32_t handle, res, mem, flags;
	uint64_t size, blob_id, offset; // offset: 0 until MAP
	int memfd; // the memory
	bool busy; // an execbuffer names it and its fence has not signalled
};

struct fake_exec {
	uint32_t flags, size, ring_idx, nbos;
	uint32_t bos[8];
	uint8_t cmd[4096];
};

#define OBJS 32
struct fake_dev {
	bool live;
	int node;
	int rfd, wfd; // the DRM fd is rfd; events are written to wfd
	bool ctx_init, ctx_created;
	uint32_t num_rings;
	uint64_t poll_mask;
	struct fake_obj objs[OBJS];
	uint32_t next_handle;
	struct fake_exec last;
	unsigned nexec;
	unsigned pending; // fences on polled rings, not yet signalled
};

struct fake_map {
	void *addr;
	size_t len;
};

static struct {
	struct fake_node nodes[NODES];
	struct fake_dev devs[4];
	char tried[8 * NODES][32];
	unsigned ntried;
	// Fails the fail_nth call (1-based) of ioctl fail_req with fail_errno.
	unsigned long fail_req;
	unsigned fail_nth, req_count;
	int fail_errno;
	int fail_mmap, fail_read; // errno for the next mmap / read of the device
	unsigned reads; // read() calls on device fds
	int wait_busy; // NOWAIT answers EBUSY this many times; < 0: forever
	unsigned waits;
	uint32_t wait_flags, prime_flags;
	unsigned gem_closes;
	uint64_t clock;
	struct fake_map maps[16];
	unsigned nmaps;
	unsigned objs_at_close, maps_at_close;
	uint32_t next_res;
} fk;

static uint32_t rd32(const void *p, size_t off)
{
	uint32_t v;
	memcpy(&v, (const uint8_t *)p + off, sizeof(v));
	return v;
}

static uint64_t rd64(const void *p, size_t off)
{
	uint64_t v;
	memcpy(&v, (const uint8_t *)p + off, sizeof(v));
	return v;
}

static void wr32(void *p, size_t off, uint32_t v)
{
	memcpy((uint8_t *)p + off, &v, sizeof(v));
}

static struct fake_node good_node(void)
{
	struct fake_node n = { .driver = "virtio_gpu", .channels = 1u << CD_CHANNEL_WAYLAND };
	n.params[P_3D] = 1;
	n.params[P_QUERY_FIX] = 1;
	n.params[P_BLOB] = 1;
	n.params[P_HOST_VISIBLE] = 1;
	n.params[P_CONTEXT_INIT] = 1;
	n.params[P_CAPSETS] = (1 << 2) | (1 << CD_CAPSET_ID); // virgl2, cross-domain
	return n;
}

static void fake_reset(void)
{
	memset(&fk, 0, sizeof(fk));
	fk.next_res = RES_BASE;
}

static struct fake_dev *fake_dev_of(int fd)
{
	for (size_t i = 0; i < SML_ARRAY_LEN(fk.devs); i++)
		if (fk.devs[i].live && fk.devs[i].rfd == fd)
			return &fk.devs[i];
	return NULL;
}

static struct fake_obj *fake_obj_of(struct fake_dev *d, uint32_t handle)
{
	for (size_t i = 0; i < OBJS; i++)
		if (d->objs[i].live && d->objs[i].handle == handle)
			return &d->objs[i];
	return NULL;
}

static int fail(int err)
{
	errno = err;
	return -1;
}

static int fake_open(const char *path, int flags)
{
	assert(fk.ntried < SML_ARRAY_LEN(fk.tried));
	snprintf(fk.tried[fk.ntried++], sizeof(fk.tried[0]), "%s", path);
	int n;
	if (sscanf(path, "/dev/dri/renderD%d", &n) != 1 || n < FIRST_NODE ||
	    n >= FIRST_NODE + NODES || !fk.nodes[n - FIRST_NODE].driver)
		return fail(ENOENT);
	struct fake_node *node = &fk.nodes[n - FIRST_NODE];
	if (node->open_errno)
		return fail(node->open_errno);
	assert((flags & O_ACCMODE) == O_RDWR); // render nodes need it
	assert(flags & O_CLOEXEC);
	for (size_t i = 0; i < SML_ARRAY_LEN(fk.devs); i++) {
		struct fake_dev *d = &fk.devs[i];
		if (d->live)
			continue;
		int p[2];
		assert(pipe2(p, O_CLOEXEC | (flags & O_NONBLOCK)) == 0);
		*d = (struct fake_dev){ .live = true, .node = n - FIRST_NODE, .rfd = p[0],
					.wfd = p[1], .next_handle = 1 };
		return d->rfd;
	}
	return fail(EMFILE);
}

static int fake_close(int fd)
{
	struct fake_dev *d = fake_dev_of(fd);
	if (!d)
		return close(fd);
	for (size_t i = 0; i < OBJS; i++) {
		if (!d->objs[i].live)
			continue;
		fk.objs_at_close++; // the backend should have closed it
		close(d->objs[i].memfd);
	}
	fk.maps_at_close += fk.nmaps;
	close(d->wfd);
	close(d->rfd);
	d->live = false;
	return 0;
}

static int fake_version(struct fake_dev *d, struct drm_version *v)
{
	const char *name = fk.nodes[d->node].driver;
	size_t len = strlen(name);
	if (v->name && v->name_len)
		memcpy(v->name, name, SML_MIN(len, v->name_len));
	v->name_len = len;
	return 0;
}

static int fake_getparam(struct fake_dev *d, struct drm_virtgpu_getparam *p)
{
	if (p->param == 0 || p->param >= P_COUNT)
		return fail(EINVAL);
	int v = fk.nodes[d->node].params[p->param];
	if (v == PARAM_UNKNOWN)
		return fail(EINVAL);
	memcpy((void *)(uintptr_t)p->value, &v, sizeof(int)); // the kernel writes an int
	return 0;
}

static int fake_get_caps(struct fake_dev *d, struct drm_virtgpu_get_caps *c)
{
	const struct fake_node *node = &fk.nodes[d->node];
	if (c->cap_set_id != CD_CAPSET_ID || !(node->params[P_CAPSETS] & (1 << CD_CAPSET_ID)))
		return fail(EINVAL);
	if (c->size == 0 || c->cap_set_ver > 0)
		return fail(EINVAL);
	struct cd_capabilities caps = { .version = 1, .supported_channels = node->channels };
	memcpy((void *)(uintptr_t)c->addr, &caps, SML_MIN((size_t)c->size, sizeof(caps)));
	return 0;
}

static int fake_context_init(struct fake_dev *d, const void *arg)
{
	if (d->ctx_created)
		return fail(EEXIST);
	uint32_t n = rd32(arg, 0);
	const uint8_t *params = (const uint8_t *)(uintptr_t)rd64(arg, 8);
	uint32_t capset = 0, rings = 0;
	uint64_t mask = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t param = rd64(params, i * 16), value = rd64(params, i * 16 + 8);
		if (param == 1)
			capset = (uint32_t)value;
		else if (param == 2)
			rings = (uint32_t)value;
		else if (param == 3)
			mask = value;
		else
			return fail(EINVAL);
	}
	if (capset != CD_CAPSET_ID || rings > 64 || (rings < 64 && (mask >> rings)))
		return fail(EINVAL);
	d->ctx_init = d->ctx_created = true;
	d->num_rings = rings;
	d->poll_mask = mask;
	return 0;
}

static struct fake_obj *fake_new_obj(struct fake_dev *d)
{
	for (size_t i = 0; i < OBJS; i++)
		if (!d->objs[i].live)
			return &d->objs[i];
	return NULL;
}

static int fake_create_blob(struct fake_dev *d, void *arg)
{
	uint32_t mem = rd32(arg, 0), flags = rd32(arg, 4);
	uint64_t size = rd64(arg, 16), blob_id = rd64(arg, 40);
	const struct fake_node *node = &fk.nodes[d->node];
	if ((mem != 1 && mem != 2) || (flags & ~7u) || size == 0 || rd32(arg, 28))
		return fail(EINVAL);
	if (mem == 1 && blob_id != 0)
		return fail(EINVAL);
	if (mem == 2 && (!node->params[P_3D] || ((flags & 1) && !node->params[P_HOST_VISIBLE])))
		return fail(EINVAL);
	d->ctx_created = true; // a context-creating ioctl
	struct fake_obj *o = fake_new_obj(d);
	if (!o)
		return fail(ENOMEM);
	*o = (struct fake_obj){ .live = true, .handle = d->next_handle++, .res = fk.next_res++,
				.mem = mem, .flags = flags, .size = size, .blob_id = blob_id };
	o->memfd = sml_memfd_create("fake-blob", sml_page_round_up(size));
	assert(o->memfd >= 0);
	struct stat st;
	assert(fstat(o->memfd, &st) == 0);
	o->ino = st.st_ino;
	wr32(arg, 8, o->handle);
	wr32(arg, 12, o->res);
	return 0;
}

static int fake_map(struct fake_dev *d, struct drm_virtgpu_map *m)
{
	struct fake_obj *o = fake_obj_of(d, m->handle);
	if (!o)
		return fail(ENOENT);
	if (!(o->flags & 1))
		return fail(EINVAL);
	o->offset = (uint64_t)o->handle << 32; // the kernel's fake offsets are large too
	m->offset = o->offset;
	return 0;
}

static int fake_execbuffer(struct fake_dev *d, const void *arg)
{
	uint32_t flags = rd32(arg, 0), size = rd32(arg, 4), nbos = rd32(arg, 24);
	uint32_t ring = rd32(arg, 32);
	const void *cmd = (const void *)(uintptr_t)rd64(arg, 8);
	const uint32_t *bos = (const uint32_t *)(uintptr_t)rd64(arg, 16);
	if (flags & ~7u)
		return fail(EINVAL);
	if ((flags & EXECBUF_RING_IDX) && (!d->ctx_init || ring >= d->num_rings))
		return fail(EINVAL);
	if (size == 0 || size > sizeof(d->last.cmd) || nbos > SML_ARRAY_LEN(d->last.bos))
		return fail(EINVAL);
	for (uint32_t i = 0; i < nbos; i++)
		if (!fake_obj_of(d, bos[i]))
			return fail(ENOENT);
	d->ctx_created = true;
	d->last = (struct fake_exec){ .flags = flags, .size = size, .ring_idx = ring,
				      .nbos = nbos };
	memcpy(d->last.cmd, cmd, size);
	for (uint32_t i = 0; i < nbos; i++) {
		d->last.bos[i] = bos[i];
		fake_obj_of(d, bos[i])->busy = true;
	}
	d->nexec++;
	if ((flags & EXECBUF_RING_IDX) && ring < 64 && (d->poll_mask >> ring & 1))
		d->pending++;
	return 0;
}

static int fake_wait(struct fake_dev *d, struct drm_virtgpu_3d_wait *w)
{
	struct fake_obj *o = fake_obj_of(d, w->handle);
	fk.waits++;
	fk.wait_flags = w->flags;
	if (!o)
		return fail(ENOENT);
	if (!o->busy)
		return 0;
	if (fk.wait_busy < 0 || (fk.wait_busy > 0 && fk.wait_busy--))
		return fail(EBUSY); // NOWAIT, or the kernel's 15 s ran out
	o->busy = false;
	return 0;
}

static int fake_prime(struct fake_dev *d, struct drm_prime_handle *p)
{
	struct fake_obj *o = fake_obj_of(d, p->handle);
	if (!o)
		return fail(ENOENT);
	if (p->flags & ~(uint32_t)(DRM_CLOEXEC | DRM_RDWR))
		return fail(EINVAL);
	fk.prime_flags = p->flags;
	p->fd = fcntl(o->memfd, (p->flags & DRM_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
	return p->fd < 0 ? -1 : 0;
}

// As the kernel: a buffer of this device gets a handle again (its old one
// if still open); anything else becomes an object with no host resource.
static int fake_import(struct fake_dev *d, struct drm_prime_handle *p)
{
	struct stat st;
	if (fstat(p->fd, &st) < 0)
		return fail(EBADF);
	for (size_t i = 0; i < OBJS; i++) {
		struct fake_obj *o = &d->objs[i];
		if (o->ino != st.st_ino || !o->res)
			continue;
		if (!o->live) {
			o->live = true;
			o->handle = d->next_handle++;
			o->memfd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0);
		}
		p->handle = o->handle;
		return 0;
	}
	struct fake_obj *o = fake_new_obj(d);
	if (!o)
		return fail(ENOMEM);
	*o = (struct fake_obj){ .live = true, .ino = st.st_ino, .handle = d->next_handle++,
				.memfd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0) };
	p->handle = o->handle;
	return 0;
}

static int fake_resource_info(struct fake_dev *d, struct drm_virtgpu_resource_info *info)
{
	struct fake_obj *o = fake_obj_of(d, info->bo_handle);
	if (!o)
		return fail(ENOENT);
	info->res_handle = o->res;
	info->size = (uint32_t)o->size;
	return 0;
}

static int fake_gem_close(struct fake_dev *d, struct drm_gem_close *c)
{
	struct fake_obj *o = fake_obj_of(d, c->handle);
	if (!o)
		return fail(EINVAL);
	close(o->memfd);
	o->live = false;
	fk.gem_closes++;
	return 0;
}

static int fake_dispatch(struct fake_dev *d, unsigned long req, void *arg)
{
	switch (req) {
	case DRM_IOCTL_VERSION:
		return fake_version(d, arg);
	case DRM_IOCTL_VIRTGPU_GETPARAM:
		return fake_getparam(d, arg);
	case DRM_IOCTL_VIRTGPU_GET_CAPS:
		return fake_get_caps(d, arg);
	case IOC_CONTEXT_INIT:
		return fake_context_init(d, arg);
	case IOC_CREATE_BLOB:
		return fake_create_blob(d, arg);
	case DRM_IOCTL_VIRTGPU_MAP:
		return fake_map(d, arg);
	case IOC_EXECBUFFER:
		return fake_execbuffer(d, arg);
	case DRM_IOCTL_VIRTGPU_WAIT:
		return fake_wait(d, arg);
	case DRM_IOCTL_PRIME_HANDLE_TO_FD:
		return fake_prime(d, arg);
	case DRM_IOCTL_PRIME_FD_TO_HANDLE:
		return fake_import(d, arg);
	case DRM_IOCTL_VIRTGPU_RESOURCE_INFO:
		return fake_resource_info(d, arg);
	case DRM_IOCTL_GEM_CLOSE:
		return fake_gem_close(d, arg);
	}
	return fail(ENOTTY);
}

static int fake_ioctl(int fd, unsigned long req, void *arg)
{
	struct fake_dev *d = fake_dev_of(fd);
	if (!d)
		return fail(EBADF);
	if (req == fk.fail_req && ++fk.req_count == fk.fail_nth)
		return fail(fk.fail_errno);
	return fake_dispatch(d, req, arg);
}

static void *fake_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct fake_dev *d = fake_dev_of(fd);
	if (!d)
		return mmap(addr, len, prot, flags, fd, off);
	if (fk.fail_mmap) {
		errno = fk.fail_mmap;
		fk.fail_mmap = 0;
		return MAP_FAILED;
	}
	for (size_t i = 0; i < OBJS; i++) {
		struct fake_obj *o = &d->objs[i];
		if (!o->live || !o->offset || (uint64_t)off != o->offset)
			continue;
		if (len > sml_page_round_up(o->size) || !(flags & MAP_SHARED))
			break;
		void *m = mmap(addr, len, prot, flags, o->memfd, 0);
		assert(m != MAP_FAILED && fk.nmaps < SML_ARRAY_LEN(fk.maps));
		fk.maps[fk.nmaps++] = (struct fake_map){ m, len };
		return m;
	}
	errno = EINVAL;
	return MAP_FAILED;
}

static int fake_munmap(void *addr, size_t len)
{
	for (unsigned i = 0; i < fk.nmaps; i++) {
		if (fk.maps[i].addr != addr)
			continue;
		assert(fk.maps[i].len == len);
		fk.maps[i] = fk.maps[--fk.nmaps];
		break;
	}
	return munmap(addr, len);
}

static ssize_t fake_read(int fd, void *buf, size_t count)
{
	struct fake_dev *d = fake_dev_of(fd);
	fk.reads += d != NULL;
	if (d && fk.fail_read) {
		errno = fk.fail_read;
		fk.fail_read = 0;
		return -1;
	}
	return read(fd, buf, count);
}

// Jumps ahead so that a wait that never ends runs out at once.
static uint64_t fake_now(void)
{
	return fk.clock += 250u * 1000000u;
}

static const struct vgpu_kernel_ops fake_ops = {
	.open = fake_open,
	.close = fake_close,
	.ioctl = fake_ioctl,
	.mmap = fake_mmap,
	.munmap = fake_munmap,
	.read = fake_read,
	.now_ns = fake_now,
};

// The host signals `n` fences of polled rings.
static void fake_signal(struct fake_dev *d, unsigned n)
{
	assert(n <= d->pending);
	d->pending -= n;
	for (unsigned i = 0; i < n; i++) {
		struct drm_event ev = { .type = EVENT_FENCE, .length = sizeof(ev) };
		assert(write(d->wfd, &ev, sizeof(ev)) == sizeof(ev));
	}
}

static void fake_fail_nth(unsigned long req, unsigned nth, int err)
{
	fk.fail_req = req;
	fk.fail_nth = nth;
	fk.req_count = 0;
	fk.fail_errno = err;
}

static unsigned fake_live_objs(const struct fake_dev *d)
{
	unsigned n = 0;
	for (size_t i = 0; i < OBJS; i++)
		n += d->objs[i].live;
	return n;
}

// ---- helpers -----------------------------------------------------------------

static bool readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static struct vgpu_dev *open_good(struct fake_dev **d)
{
	struct vgpu_dev *dev = NULL;
	assert(vgpu_kernel_open(NULL, &dev) == 0 && dev);
	*d = fake_dev_of(dev->impl->event_fd(dev));
	assert(*d);
	return dev;
}

// A device with its context and both rings, as the channel sets it up.
static struct vgpu_dev *open_ready(struct fake_dev **d, uint32_t *q, uint32_t *c, void **cmap)
{
	void *qmap;
	struct vgpu_dev *dev = open_good(d);
	assert(dev->impl->context_init(dev, CD_CAPSET_ID, 2, 1u << CD_CHANNEL_RING) == 0);
	assert(dev->impl->create_ring(dev, CD_RING_SIZE, q, &qmap) == 0);
	assert(dev->impl->create_ring(dev, CD_RING_SIZE, c, cmap) == 0);
	return dev;
}

static void expect_destroyed(struct vgpu_dev *dev, int base)
{
	vgpu_destroy(dev);
	assert(fk.objs_at_close == 0 && fk.maps_at_close == 0);
	assert(sml_count_open_fds() == base);
}

// ---- tests -------------------------------------------------------------------

static void test_happy_path(void)
{
	fake_reset();
	fk.nodes[0] = good_node();
	int base = sml_count_open_fds();
	struct fake_dev *d;
	struct vgpu_dev *dev = open_good(&d);
	assert(fk.ntried == 1 && strcmp(fk.tried[0], "/dev/dri/renderD128") == 0);
	assert(strcmp(dev->impl->name, "kernel") == 0 && !dev->guest_memory);
	assert(fcntl(dev->impl->event_fd(dev), F_GETFL) & O_NONBLOCK);

	struct cd_capabilities caps;
	assert(dev->impl->get_caps(dev, CD_CAPSET_ID, &caps, sizeof(caps)) == 0);
	assert(caps.version == 1 && caps.supported_channels == 1u << CD_CHANNEL_WAYLAND);
	assert(dev->impl->context_init(dev, CD_CAPSET_ID, 2, 1u << CD_CHANNEL_RING) == 0);
	assert(d->ctx_init && d->num_rings == 2 && d->poll_mask == 1u << CD_CHANNEL_RING);

	// Rings: guest blobs, mapped through the DRM fd, shared with the "host".
	uint32_t q, c;
	void *qmap, *cmap;
	assert(dev->impl->create_ring(dev, CD_RING_SIZE, &q, &qmap) == 0);
	assert(dev->impl->create_ring(dev, 100, &c, &cmap) == 0); // rounded to a page
	assert(q >= RES_BASE && c >= RES_BASE && q != c && fk.nmaps == 2);
	struct fake_obj *qo = fake_obj_of(d, 1), *co = fake_obj_of(d, 2);
	assert(qo->res == q && qo->mem == 1 && qo->flags == 1 && qo->size == 4096);
	assert(co->res == c && co->size == 4096);
	assert(pwrite(co->memfd, "RING", 4, 0) == 4);
	assert(memcmp(cmap, "RING", 4) == 0);

	// Guest memory cannot reach the host on a VM.
	int memfd = sml_memfd_create("guest", 4096);
	uint32_t res;
	assert(dev->impl->create_guest_blob(dev, memfd, 4096, &res) == -EOPNOTSUPP);
	close(memfd);

	// A host blob: HOST3D, MAPPABLE|SHAREABLE, exported with CLOEXEC|RDWR.
	int fd = -1;
	uint32_t blob;
	assert(dev->impl->create_host_blob(dev, 77, 8192, &blob, &fd) == 0 && fd >= 0);
	struct fake_obj *bo = fake_obj_of(d, 3);
	assert(bo->res == blob && bo->mem == 2 && bo->flags == 3 && bo->blob_id == 77 &&
	       bo->size == 8192);
	assert(fk.prime_flags == (DRM_CLOEXEC | DRM_RDWR) && (fcntl(fd, F_GETFD) & FD_CLOEXEC));
	struct stat st;
	assert(fstat(fd, &st) == 0 && st.st_size == 8192);

	// INIT: no ring flag; the command arrives as it was.
	uint8_t cmd[64];
	size_t len = cd_encode_init(cmd, sizeof(cmd), q, c, CD_CHANNEL_WAYLAND);
	assert(dev->impl->execbuffer(dev, cmd, len, VGPU_NO_RING, NULL, 0) == 0);
	assert(d->last.flags == 0 && d->last.size == 20 && d->last.nbos == 0);
	assert(memcmp(d->last.cmd, cmd, len) == 0);

	// POLL on the channel ring: RING_IDX, ring 1, a fence event later.
	len = cd_encode_poll(cmd, sizeof(cmd));
	assert(dev->impl->execbuffer(dev, cmd, len, CD_CHANNEL_RING, NULL, 0) == 0);
	assert(d->last.flags == EXECBUF_RING_IDX && d->last.ring_idx == 1 && d->pending == 1);

	// GET_IMAGE_REQUIREMENTS on ring 0 naming the query ring by its GEM handle.
	len = cd_encode_get_image_requirements(cmd, sizeof(cmd), 64, 64, 0x34325258, 0x11);
	assert(dev->impl->execbuffer(dev, cmd, len, CD_QUERY_RING, &q, 1) == 0);
	assert(d->last.flags == EXECBUF_RING_IDX && d->last.ring_idx == 0);
	assert(d->last.nbos == 1 && d->last.bos[0] == qo->handle && qo->handle != q);
	assert(d->pending == 1); // ring 0 is not polled

	// WAIT polls without blocking until the fence is done.
	fk.wait_busy = 3;
	assert(dev->impl->wait(dev, q) == 0);
	assert(fk.waits == 4 && fk.wait_flags == VIRTGPU_WAIT_NOWAIT && !qo->busy);

	// The fence event: the fd turns readable, read_events reports ring 1.
	int efd = dev->impl->event_fd(dev);
	uint64_t sig = 0;
	assert(!readable(efd, 0));
	assert(dev->impl->read_events(dev, true, &sig) == 0 && sig == 0);
	fake_signal(d, 1);
	assert(readable(efd, 0));
	// Not reported readable: nothing is read, the event stays for later.
	unsigned reads = fk.reads;
	assert(dev->impl->read_events(dev, false, &sig) == 0 && sig == 0);
	assert(fk.reads == reads && readable(efd, 0));
	// One read takes it: a read that left room found the queue empty.
	assert(dev->impl->read_events(dev, true, &sig) == 0 && sig == 1u << CD_CHANNEL_RING);
	assert(fk.reads == reads + 1);
	assert(!readable(efd, 0));
	assert(dev->impl->read_events(dev, true, &sig) == 0 && sig == 0);

	// destroy_resource closes the GEM handle; the exported fd keeps the memory.
	dev->impl->destroy_resource(dev, blob);
	assert(fk.gem_closes == 1 && !fake_obj_of(d, 3));
	assert(fstat(fd, &st) == 0 && st.st_size == 8192);
	close(fd);
	dev->impl->destroy_resource(dev, c); // a ring: unmapped too
	assert(fk.gem_closes == 2 && fk.nmaps == 1);
	dev->impl->destroy_resource(dev, 424242); // unknown: ignored
	assert(fk.gem_closes == 2);

	expect_destroyed(dev, base);
	assert(fk.gem_closes == 3); // the query ring, at destroy
}

static void test_context_rules(void)
{
	fake_reset();
	fk.nodes[0] = good_node();
	int base = sml_count_open_fds();
	struct fake_dev *d;
	struct vgpu_dev *dev = open_good(&d);
	assert(dev->impl->context_init(dev, CD_CAPSET_ID, 2, 2) == 0);
	assert(dev->impl->context_init(dev, CD_CAPSET_ID, 2, 2) == -EEXIST);
	// A ring index past the context's rings is the kernel's EINVAL.
	uint8_t cmd[16];
	size_t len = cd_encode_poll(cmd, sizeof(cmd));
	assert(dev->impl->execbuffer(dev, cmd, len, 2, NULL, 0) == -EINVAL);
	expect_destroyed(dev, base);

	// A context-creating ioctl first: CONTEXT_INIT is too late.
	fake_reset();
	fk.nodes[0] = good_node();
	dev = open_good(&d);
	uint32_t res;
	void *map;
	assert(dev->impl->create_ring(dev, 4096, &res, &map) == 0);
	assert(dev->impl->context_init(dev, CD_CAPSET_ID, 2, 2) == -EEXIST);
	expect_destroyed(dev, base);
}

static void test_scan(void)
{
	fake_reset();
	fk.nodes[0] = good_node();
	fk.nodes[0].driver = "i915";
	fk.nodes[1] = good_node();
	fk.nodes[1].params[P_CAPSETS] = 1 << 2; // virgl only
	fk.nodes[2] = good_node();
	int base = sml_count_open_fds();
	struct fake_dev *d;
	struct vgpu_dev *dev = open_good(&d);
	assert(d->node == 2 && fk.ntried == 3);
	assert(strcmp(fk.tried[2], "/dev/dri/renderD130") == 0);
	expect_destroyed(dev, base);

	// An explicit path is the only one tried.
	fk.ntried = 0;
	assert(vgpu_kernel_open("/dev/dri/renderD129", &dev) == -ENOTSUP);
	assert(fk.ntried == 1 && strcmp(fk.tried[0], "/dev/dri/renderD129") == 0);
	assert(vgpu_kernel_available("/dev/dri/renderD130"));
	assert(!vgpu_kernel_available("/dev/dri/renderD129"));
	assert(!vgpu_kernel_available("/dev/dri/renderD150")); // absent
	assert(vgpu_kernel_available(NULL));
	assert(sml_count_open_fds() == base);

	// A node that cannot be opened is skipped, and its reason is the result.
	fake_reset();
	fk.nodes[0] = good_node();
	fk.nodes[0].open_errno = EACCES;
	assert(vgpu_kernel_open(NULL, &dev) == -EACCES && fk.ntried == NODES);
	fk.nodes[5] = good_node();
	assert(vgpu_kernel_open(NULL, &dev) == 0 && fake_dev_of(dev->impl->event_fd(dev))->node == 5);
	expect_destroyed(dev, base);
}

static void test_no_node(void)
{
	fake_reset();
	int base = sml_count_open_fds();
	struct vgpu_dev *dev = NULL;
	assert(vgpu_kernel_open(NULL, &dev) == -ENODEV && dev == NULL);
	assert(fk.ntried == NODES);
	for (unsigned i = 0; i < NODES; i++) {
		char want[32];
		snprintf(want, sizeof(want), "/dev/dri/renderD%u", FIRST_NODE + i);
		assert(strcmp(fk.tried[i], want) == 0);
	}
	assert(!vgpu_kernel_available(NULL));
	assert(vgpu_kernel_open("/dev/dri/renderD128", &dev) == -ENOENT);
	assert(sml_count_open_fds() == base);
}

static void test_not_virtio(void)
{
	fake_reset();
	fk.nodes[0] = good_node();
	fk.nodes[0].driver = "i915";
	int base = sml_count_open_fds();
	struct vgpu_dev *dev = NULL;
	assert(vgpu_kernel_open(NULL, &dev) == -ENODEV);
	assert(vgpu_kernel_open("/dev/dri/renderD128", &dev) == -ENODEV);
	assert(!vgpu_kernel_available(NULL));
	// A name that merely starts like it is not it.
	fk.nodes[0].driver = "virtio_gpu_ng";
	assert(vgpu_kernel_open(NULL, &dev) == -ENODEV);
	assert(sml_count_open_fds() == base && dev == NULL);
}

// Each missing feature, as a 0 and as a parameter the kernel does not know.
static void test_missing_features(void)
{
	const int params[] = { P_CONTEXT_INIT, P_BLOB, P_HOST_VISIBLE, P_3D };
	int base = sml_count_open_fds();
	for (size_t i = 0; i < SML_ARRAY_LEN(params); i++) {
		for (int unknown = 0; unknown < 2; unknown++) {
			fake_reset();
			fk.nodes[0] = good_node();
			fk.nodes[0].params[params[i]] = unknown ? PARAM_UNKNOWN : 0;
			struct vgpu_dev *dev = NULL;
			assert(vgpu_kernel_open(NULL, &dev) == -ENOTSUP && !dev);
			assert(!vgpu_kernel_available(NULL));
			assert(sml_count_open_fds() == base);
		}
	}
	// No cross-domain capset; an old kernel without the capset mask.
	fake_reset();
	fk.nodes[0] = good_node();
	fk.nodes[0].params[P_CAPSETS] = 1 << 2;
	struct vgpu_dev *dev = NULL;
	assert(vgpu_kernel_open(NULL, &dev) == -ENOTSUP);
	fk.nodes[0].params[P_CAPSETS] = PARAM_UNKNOWN;
	assert(vgpu_kernel_open(NULL, &dev) == -ENOTSUP);
	// Cross-domain without the Wayland channel.
	fk.nodes[0] = good_node();
	fk.nodes[0].channels = 1u << CD_CHANNEL_PIPEWIRE;
	assert(vgpu_kernel_open(NULL, &dev) == -ENOTSUP);
	assert(vgpu_kernel_open("/dev/dri/renderD128", &dev) == -ENOTSUP && !dev);
	assert(sml_count_open_fds() == base);
}

// An ioctl failure while opening: a negative errno, no fd left.
static void test_open_failures(void)
{
	const struct {
		unsigned long req;
		unsigned nth;
		int err, want;
	} cases[] = {
		{ DRM_IOCTL_VERSION, 1, EIO, -ENODEV }, // not a DRM device
		{ DRM_IOCTL_VIRTGPU_GETPARAM, 1, EIO, -EIO },
		{ DRM_IOCTL_VIRTGPU_GETPARAM, 5, EFAULT, -EFAULT }, // SUPPORTED_CAPSET_IDs
		{ DRM_IOCTL_VIRTGPU_GET_CAPS, 1, EBUSY, -EBUSY }, // the host did not answer
	};
	int base = sml_count_open_fds();
	for (size_t i = 0; i < SML_ARRAY_LEN(cases); i++) {
		fake_reset();
		fk.nodes[0] = good_node();
		fake_fail_nth(cases[i].req, cases[i].nth, cases[i].err);
		struct vgpu_dev *dev = NULL;
		assert(vgpu_kernel_open("/dev/dri/renderD128", &dev) == cases[i].want && !dev);
		assert(sml_count_open_fds() == base);
	}
}

// An ioctl (or mmap) failure at each later step: a negative errno, nothing
// left half-made, and the device still works and is destroyable.
static void test_step_failures(void)
{
	fake_reset();
	fk.nodes[0] = good_node();
	int base = sml_count_open_fds();
	struct fake_dev *d;
	struct vgpu_dev *dev = open_good(&d);
	uint8_t caps[16];

	fake_fail_nth(DRM_IOCTL_VIRTGPU_GET_CAPS, 1, EIO);
	assert(dev->impl->get_caps(dev, CD_CAPSET_ID, caps, sizeof(caps)) == -EIO);
	fake_fail_nth(IOC_CONTEXT_INIT, 1, ENOMEM);
	assert(dev->impl->context_init(dev, CD_CAPSET_ID, 2, 2) == -ENOMEM);
	assert(dev->impl->context_init(dev, CD_CAPSET_ID, 2, 2) == 0);

	uint32_t res;
	void *map;
	fake_fail_nth(IOC_CREATE_BLOB, 1, ENOSPC);
	assert(dev->impl->create_ring(dev, 4096, &res, &map) == -ENOSPC);
	fake_fail_nth(DRM_IOCTL_VIRTGPU_MAP, 1, ENOMEM);
	assert(dev->impl->create_ring(dev, 4096, &res, &map) == -ENOMEM);
	assert(fake_live_objs(d) == 0); // the blob made before MAP is closed
	fk.fail_mmap = ENOMEM;
	assert(dev->impl->create_ring(dev, 4096, &res, &map) == -ENOMEM);
	assert(fake_live_objs(d) == 0 && fk.nmaps == 0);
	fake_fail_nth(0, 0, 0);
	assert(dev->impl->create_ring(dev, 4096, &res, &map) == 0);

	int fd = -1;
	uint32_t blob;
	int fds = sml_count_open_fds();
	fake_fail_nth(IOC_CREATE_BLOB, 1, EINVAL);
	assert(dev->impl->create_host_blob(dev, 5, 4096, &blob, &fd) == -EINVAL && fd == -1);
	fake_fail_nth(DRM_IOCTL_PRIME_HANDLE_TO_FD, 1, EMFILE);
	assert(dev->impl->create_host_blob(dev, 5, 4096, &blob, &fd) == -EMFILE && fd == -1);
	assert(dev->impl->create_host_blob(dev, 5, 0, &blob, &fd) == -EINVAL && fd == -1);
	assert(fake_live_objs(d) == 1 && sml_count_open_fds() == fds);

	uint8_t cmd[16];
	size_t len = cd_encode_poll(cmd, sizeof(cmd));
	fake_fail_nth(IOC_EXECBUFFER, 1, ENOMEM);
	assert(dev->impl->execbuffer(dev, cmd, len, 1, NULL, 0) == -ENOMEM);
	uint32_t unknown = 999;
	assert(dev->impl->execbuffer(dev, cmd, len, 0, &unknown, 1) == -ENOENT);
	assert(d->nexec == 0);

	assert(dev->impl->execbuffer(dev, cmd, len, 0, &res, 1) == 0);
	fake_fail_nth(DRM_IOCTL_VIRTGPU_WAIT, 1, EIO);
	assert(dev->impl->wait(dev, res) == -EIO);
	assert(dev->impl->wait(dev, unknown) == -ENOENT);
	// A fence that never signals: bounded by VGPU_TIMEOUT_MS (of the fake clock).
	fake_fail_nth(0, 0, 0);
	fk.wait_busy = -1;
	assert(dev->impl->wait(dev, res) == -ETIMEDOUT);
	fk.wait_busy = 0;
	assert(dev->impl->wait(dev, res) == 0);

	// Still a working device after every failure.
	assert(dev->impl->create_host_blob(dev, 6, 4096, &blob, &fd) == 0);
	close(fd);
	expect_destroyed(dev, base);
}

// An older host stops answering POLLs when its compositor hangs up: the
// device must simply report nothing, forever, without blocking.
static void test_unanswered_poll(void)
{
	fake_reset();
	fk.nodes[0] = good_node();
	int base = sml_count_open_fds();
	struct fake_dev *d;
	uint32_t q, c;
	void *cmap;
	struct vgpu_dev *dev = open_ready(&d, &q, &c, &cmap);
	uint8_t cmd[16];
	size_t len = cd_encode_poll(cmd, sizeof(cmd));
	assert(dev->impl->execbuffer(dev, cmd, len, CD_CHANNEL_RING, NULL, 0) == 0);
	int efd = dev->impl->event_fd(dev);
	uint64_t start = sml_now_ns();
	alarm(5); // a blocking read would end the test here
	for (int i = 0; i < 10000; i++) {
		uint64_t sig = 1;
		assert(dev->impl->read_events(dev, true, &sig) == 0 && sig == 0);
	}
	assert(!readable(efd, 200));
	alarm(0);
	assert(sml_now_ns() - start < 3000000000ull);
	assert(d->pending == 1);
	expect_destroyed(dev, base); // with the fence still outstanding
}

static void write_event(struct fake_dev *d, uint32_t type, uint32_t length)
{
	uint8_t buf[64] = { 0 };
	struct drm_event ev = { .type = type, .length = length };
	memcpy(buf, &ev, sizeof(ev));
	assert(length <= sizeof(buf));
	assert(write(d->wfd, buf, length < sizeof(ev) ? sizeof(ev) : length) > 0);
}

static void test_events(void)
{
	fake_reset();
	fk.nodes[0] = good_node();
	int base = sml_count_open_fds();
	struct fake_dev *d;
	uint32_t q, c;
	void *cmap;
	struct vgpu_dev *dev = open_ready(&d, &q, &c, &cmap);
	uint64_t sig;

	// Several records in one read, an unknown type among them (a vblank
	// event is 32 bytes), skipped by its length.
	uint8_t buf[64] = { 0 };
	struct drm_event fence = { EVENT_FENCE, 8 }, vblank = { 0x01, 32 };
	memcpy(buf, &fence, 8);
	memcpy(buf + 8, &vblank, 8);
	memcpy(buf + 40, &fence, 8);
	memcpy(buf + 48, &fence, 8);
	assert(write(d->wfd, buf, 56) == 56);
	assert(dev->impl->read_events(dev, true, &sig) == 0 && sig == 1u << CD_CHANNEL_RING);
	assert(dev->impl->read_events(dev, true, &sig) == 0 && sig == 0);

	// Only an unknown event: nothing signalled.
	write_event(d, 0x02, 16);
	assert(dev->impl->read_events(dev, true, &sig) == 0 && sig == 0);

	// A read error: the device is gone.
	fk.fail_read = EIO;
	assert(dev->impl->read_events(dev, true, &sig) == -EIO && sig == 0);
	assert(dev->impl->read_events(dev, true, &sig) == -EIO);
	expect_destroyed(dev, base);

	// A fence before a malformed record is reported first, the error next.
	fake_reset();
	fk.nodes[0] = good_node();
	dev = open_ready(&d, &q, &c, &cmap);
	memcpy(buf, &fence, 8);
	struct drm_event bad = { 0x03, 4 };
	memcpy(buf + 8, &bad, 8);
	assert(write(d->wfd, buf, 16) == 16);
	assert(dev->impl->read_events(dev, true, &sig) == 0 && sig == 1u << CD_CHANNEL_RING);
	assert(dev->impl->read_events(dev, true, &sig) == -EPROTO && sig == 0);
	expect_destroyed(dev, base);

	// A record longer than what was read.
	fake_reset();
	fk.nodes[0] = good_node();
	dev = open_ready(&d, &q, &c, &cmap);
	write_event(d, EVENT_FENCE, 8);
	bad = (struct drm_event){ EVENT_FENCE, 4096 };
	assert(write(d->wfd, &bad, 8) == 8);
	assert(dev->impl->read_events(dev, true, &sig) == 0 && sig == 1u << CD_CHANNEL_RING);
	assert(dev->impl->read_events(dev, true, &sig) == -EPROTO);
	expect_destroyed(dev, base);

	// End of file.
	fake_reset();
	fk.nodes[0] = good_node();
	dev = open_ready(&d, &q, &c, &cmap);
	close(d->wfd);
	d->wfd = open("/dev/null", O_WRONLY | O_CLOEXEC); // so fake_close has one to close
	assert(dev->impl->read_events(dev, true, &sig) < 0 && sig == 0);
	expect_destroyed(dev, base);
}

// One open = one context: two devices on one node are independent.
static void test_two_contexts(void)
{
	fake_reset();
	fk.nodes[0] = good_node();
	int base = sml_count_open_fds();
	struct fake_dev *d1, *d2;
	uint32_t q1, c1, q2, c2;
	void *m1, *m2;
	struct vgpu_dev *a = open_ready(&d1, &q1, &c1, &m1);
	struct vgpu_dev *b = open_ready(&d2, &q2, &c2, &m2);
	assert(d1 != d2 && a->impl->event_fd(a) != b->impl->event_fd(b));
	uint8_t cmd[16];
	size_t len = cd_encode_poll(cmd, sizeof(cmd));
	assert(b->impl->execbuffer(b, cmd, len, CD_CHANNEL_RING, NULL, 0) == 0);
	fake_signal(d2, 1);
	uint64_t sig;
	assert(a->impl->read_events(a, true, &sig) == 0 && sig == 0);
	assert(b->impl->read_events(b, true, &sig) == 0 && sig == 1u << CD_CHANNEL_RING);
	vgpu_destroy(a);
	vgpu_destroy(b);
	assert(fk.objs_at_close == 0 && sml_count_open_fds() == base);
}

// A buffer of the device comes back (a client's dma-buf) by PRIME import
// and RESOURCE_INFO; a foreign one is refused without leaking a handle.
static void test_import(void)
{
	fake_reset();
	fk.nodes[0] = good_node();
	int base = sml_count_open_fds();
	struct fake_dev *d;
	struct vgpu_dev *dev = open_good(&d);
	assert(dev->impl->context_init(dev, CD_CAPSET_ID, 2, 1u << CD_CHANNEL_RING) == 0);
	int fd = -1;
	uint32_t blob, res, again;
	assert(dev->impl->create_host_blob(dev, 5, 4096, &blob, &fd) == 0);
	assert(dev->impl->import_fd(dev, fd, &res) == 0 && res == blob);
	dev->impl->destroy_resource(dev, blob); // the handle goes, the fd stays
	unsigned closes = fk.gem_closes;
	assert(dev->impl->import_fd(dev, fd, &again) == 0 && again == blob);
	dev->impl->destroy_resource(dev, again);
	assert(fk.gem_closes == closes + 1);

	int foreign = sml_memfd_create("foreign", 4096);
	assert(dev->impl->import_fd(dev, foreign, &res) == -EINVAL);
	assert(fk.gem_closes == closes + 2); // its handle was closed again
	fake_fail_nth(DRM_IOCTL_PRIME_FD_TO_HANDLE, 1, EBADF);
	assert(dev->impl->import_fd(dev, fd, &res) == -EBADF);
	close(foreign);
	close(fd);
	expect_destroyed(dev, base);
}

int main(void)
{
	sml_log_set_level(getenv("SML_TEST_VERBOSE") ? SML_LOG_DEBUG : SML_LOG_SILENT);
	vgpu_kernel_set_ops(&fake_ops);
	test_happy_path();
	test_context_rules();
	test_scan();
	test_no_node();
	test_not_virtio();
	test_missing_features();
	test_open_failures();
	test_step_failures();
	test_unanswered_poll();
	test_events();
	test_two_contexts();
	test_import();
	vgpu_kernel_set_ops(NULL);
	printf("vgpu kernel: all tests passed\n");
	return 0;
}
