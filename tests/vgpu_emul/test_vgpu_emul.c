// SPDX-License-Identifier: MIT
// The emulated render node, driven as a VM guest drives virtio-gpu: with
// libdrm and the kernel UAPI only (no guest code of this project), against
// a real sommelier-host in front of a real headless weston. Runs with
// LD_PRELOAD=libsml-vgpu-emul.so (set by meson).
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <pthread.h>
#include <xf86drm.h>

#include "cross_domain.h"
#include "harness.h"
#include "util.h"
#include "virtgpu_uapi.h"
#include "wire.h"

#define DRM_FORMAT_ARGB8888 0x34325241u
#define TIMEOUT_MS 5000
#define NODE "/dev/dri/renderD128"

static char host_sock[256];
static pid_t host_pid;

// The fortified open glibc calls under _FORTIFY_SOURCE.
int __open_2(const char *path, int flags);

// ---- small UAPI helpers -------------------------------------------------------

static int xioctl(int fd, unsigned long request, void *arg)
{
	return drmIoctl(fd, request, arg) ? -errno : 0;
}

static int open_node(void)
{
	int fd = drmOpenRender(128);
	if (fd < 0)
		fprintf(stderr, "drmOpenRender(128): %s (is LD_PRELOAD set?)\n", strerror(-fd));
	CHECK(fd >= 0);
	return fd;
}

static int getparam(int fd, uint64_t param, int *value)
{
	struct vgpu_uapi_getparam p = { .param = param, .value = (uintptr_t)value };
	return xioctl(fd, VGPU_IOCTL_GETPARAM, &p);
}

static int context_init(int fd, uint64_t capset, uint64_t rings, uint64_t mask)
{
	struct vgpu_uapi_context_param params[3] = {
		{ VGPU_UAPI_CONTEXT_PARAM_CAPSET_ID, capset },
		{ VGPU_UAPI_CONTEXT_PARAM_NUM_RINGS, rings },
		{ VGPU_UAPI_CONTEXT_PARAM_POLL_RINGS_MASK, mask },
	};
	struct vgpu_uapi_context_init ci = { .num_params = 3, .ctx_set_params = (uintptr_t)params };
	return xioctl(fd, VGPU_IOCTL_CONTEXT_INIT, &ci);
}

static int create_blob(int fd, uint32_t mem, uint32_t flags, uint64_t size, uint64_t blob_id,
		       uint32_t *bo, uint32_t *res)
{
	struct vgpu_uapi_create_blob b = {
		.blob_mem = mem, .blob_flags = flags, .size = size, .blob_id = blob_id,
	};
	int err = xioctl(fd, VGPU_IOCTL_RESOURCE_CREATE_BLOB, &b);
	*bo = b.bo_handle;
	if (res)
		*res = b.res_handle;
	return err;
}

static void *map_bo(int fd, uint32_t bo, size_t size)
{
	struct vgpu_uapi_map m = { .handle = bo };
	CHECK_EQ(xioctl(fd, VGPU_IOCTL_MAP, &m), 0);
	CHECK(m.offset != 0 && m.offset % 4096 == 0);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)m.offset);
	CHECK(p != MAP_FAILED);
	return p;
}

static int exec(int fd, const void *cmd, size_t size, uint32_t flags, uint32_t ring,
		const uint32_t *bos, uint32_t nbos)
{
	struct vgpu_uapi_execbuffer e = {
		.flags = flags, .size = (uint32_t)size, .command = (uintptr_t)cmd,
		.bo_handles = (uintptr_t)bos, .num_bo_handles = nbos, .ring_idx = ring,
		.fence_fd = -1,
	};
	return xioctl(fd, VGPU_IOCTL_EXECBUFFER, &e);
}

static int gem_close(int fd, uint32_t bo)
{
	struct drm_gem_close c = { .handle = bo };
	return xioctl(fd, DRM_IOCTL_GEM_CLOSE, &c);
}

static int wait_bo(int fd, uint32_t bo, uint32_t flags)
{
	struct vgpu_uapi_wait w = { .handle = bo, .flags = flags };
	return xioctl(fd, VGPU_IOCTL_WAIT, &w);
}

static uint32_t res_of(int fd, uint32_t bo)
{
	struct vgpu_uapi_resource_info ri = { .bo_handle = bo };
	CHECK_EQ(xioctl(fd, VGPU_IOCTL_RESOURCE_INFO, &ri), 0);
	return ri.res_handle;
}

static bool readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

// ---- a cross-domain channel over the node ---------------------------------------

struct chan {
	int fd;
	uint32_t q_bo, c_bo, q_res, c_res;
	uint8_t *q, *c;
};

static void chan_open(struct chan *ch)
{
	ch->fd = open_node();
	CHECK_EQ(context_init(ch->fd, CD_CAPSET_ID, 2, 1u << CD_CHANNEL_RING), 0);
	CHECK_EQ(create_blob(ch->fd, VGPU_UAPI_BLOB_MEM_GUEST, VGPU_UAPI_BLOB_FLAG_USE_MAPPABLE,
			     CD_RING_SIZE, 0, &ch->q_bo, &ch->q_res), 0);
	CHECK_EQ(create_blob(ch->fd, VGPU_UAPI_BLOB_MEM_GUEST, VGPU_UAPI_BLOB_FLAG_USE_MAPPABLE,
			     CD_RING_SIZE, 0, &ch->c_bo, &ch->c_res), 0);
	CHECK(ch->q_bo != ch->c_bo && ch->q_res != ch->c_res);
	ch->q = map_bo(ch->fd, ch->q_bo, CD_RING_SIZE);
	ch->c = map_bo(ch->fd, ch->c_bo, CD_RING_SIZE);
	uint8_t cmd[64];
	size_t len = cd_encode_init(cmd, sizeof(cmd), ch->q_res, ch->c_res, CD_CHANNEL_WAYLAND);
	CHECK_EQ(exec(ch->fd, cmd, len, 0, 0, NULL, 0), 0);
}

static void chan_close(struct chan *ch)
{
	munmap(ch->q, CD_RING_SIZE);
	munmap(ch->c, CD_RING_SIZE);
	CHECK_EQ(close(ch->fd), 0);
}

static void chan_poll(struct chan *ch)
{
	uint8_t cmd[32];
	size_t len = cd_encode_poll(cmd, sizeof(cmd));
	CHECK_EQ(exec(ch->fd, cmd, len, VGPU_UAPI_EXECBUF_RING_IDX, CD_CHANNEL_RING, NULL, 0), 0);
}

static void chan_send(struct chan *ch, const void *data, uint32_t size)
{
	uint8_t cmd[CD_RING_SIZE];
	size_t len = cd_encode_send_receive(cmd, sizeof(cmd), CD_CMD_SEND, false, 0, NULL, NULL,
					    NULL, data, size);
	CHECK(len > 0);
	CHECK_EQ(exec(ch->fd, cmd, len, 0, 0, NULL, 0), 0);
}

// Waits for the one event of the outstanding POLL and copies the ring
// message out; exactly one drm_event per signalled fence.
static void chan_next(struct chan *ch, struct cd_command *out, uint8_t page[CD_RING_SIZE])
{
	CHECK(readable(ch->fd, TIMEOUT_MS));
	struct drm_event ev[4];
	ssize_t n = read(ch->fd, ev, sizeof(ev));
	CHECK_EQ(n, sizeof(struct drm_event));
	CHECK_EQ(ev[0].type, VGPU_UAPI_EVENT_FENCE_SIGNALED);
	CHECK_EQ(ev[0].length, sizeof(struct drm_event));
	CHECK(!readable(ch->fd, 0));
	memcpy(page, ch->c, CD_RING_SIZE);
	CHECK_EQ(cd_decode_ring_event(page, CD_RING_SIZE, out), CD_OK);
}

struct globals {
	char names[64][64];
	int n;
};

// Feeds RECEIVEs to a Wayland stream until callback `cb` is done.
static void round_trip(struct chan *ch, uint32_t cb, struct globals *g)
{
	struct wire_stream *s = calloc(1, sizeof(*s));
	CHECK(s != NULL);
	for (bool done = false; !done;) {
		struct cd_command ev;
		uint8_t page[CD_RING_SIZE];
		chan_next(ch, &ev, page);
		CHECK_EQ(ev.cmd, CD_CMD_RECEIVE);
		CHECK(ev.data_size > 0);
		wire_stream_push(s, ev.data, ev.data_size);
		for (struct wire_message m; wire_stream_next(s, &m);) {
			CHECK(!(m.obj == 1 && m.opcode == 0)); // wl_display.error
			done |= m.obj == cb && m.opcode == 0;
			if (g && m.obj == 2 && m.opcode == 0 && g->n < 64)
				wire_arg_string(&m, 1, g->names[g->n++], sizeof(g->names[0]));
		}
		chan_poll(ch); // keep exactly one POLL outstanding
	}
	free(s);
}

static bool has_global(const struct globals *g, const char *name)
{
	for (int i = 0; i < g->n; i++)
		if (strcmp(g->names[i], name) == 0)
			return true;
	return false;
}

static void sync_round_trip(struct chan *ch, uint32_t id)
{
	uint8_t msg[16];
	size_t len = 0;
	wire_put(msg, &len, 1, 0, "n", id); // wl_display.sync
	chan_send(ch, msg, (uint32_t)len);
	round_trip(ch, id, NULL);
}

// ---- tests ------------------------------------------------------------------------

static void test_version_and_params(void)
{
	int fd = open_node();
	drmVersionPtr v = drmGetVersion(fd);
	CHECK(v != NULL);
	CHECK(strcmp(v->name, "virtio_gpu") == 0);
	CHECK_EQ(v->name_len, 10);
	CHECK_EQ(v->version_major, 0);
	CHECK_EQ(v->version_minor, 1);
	drmFreeVersion(v);

	// The kernel's copy: the full length back, at most the buffer filled, no NUL.
	char name[8] = "xxxxxxx";
	struct drm_version raw = { .name_len = 4, .name = name };
	CHECK_EQ(xioctl(fd, DRM_IOCTL_VERSION, &raw), 0);
	CHECK_EQ(raw.name_len, 10);
	CHECK(memcmp(name, "virtxxx", 8) == 0);

	static const uint64_t ones[] = {
		VGPU_UAPI_PARAM_3D_FEATURES, VGPU_UAPI_PARAM_CAPSET_QUERY_FIX,
		VGPU_UAPI_PARAM_RESOURCE_BLOB, VGPU_UAPI_PARAM_HOST_VISIBLE,
		VGPU_UAPI_PARAM_CONTEXT_INIT,
	};
	for (size_t i = 0; i < SML_ARRAY_LEN(ones); i++) {
		int value[2] = { -1, 0x5a5a5a5a };
		CHECK_EQ(getparam(fd, ones[i], value), 0);
		CHECK_EQ(value[0], 1);
		CHECK_EQ(value[1], 0x5a5a5a5a); // an int is written, nothing more
	}
	int value = 0;
	CHECK_EQ(getparam(fd, VGPU_UAPI_PARAM_SUPPORTED_CAPSET_IDS, &value), 0);
	CHECK_EQ(value, 1 << CD_CAPSET_ID);
	CHECK_EQ(getparam(fd, 99, &value), -EINVAL);

	struct cd_capabilities caps = { 0 };
	struct vgpu_uapi_get_caps gc = {
		.cap_set_id = CD_CAPSET_ID, .addr = (uintptr_t)&caps, .size = sizeof(caps),
	};
	CHECK_EQ(xioctl(fd, VGPU_IOCTL_GET_CAPS, &gc), 0);
	CHECK_EQ(caps.version, 1);
	CHECK(caps.supported_channels & (1u << CD_CHANNEL_WAYLAND));
	gc.cap_set_id = 3;
	CHECK_EQ(xioctl(fd, VGPU_IOCTL_GET_CAPS, &gc), -EINVAL);
	gc.cap_set_id = CD_CAPSET_ID;
	gc.size = 0;
	CHECK_EQ(xioctl(fd, VGPU_IOCTL_GET_CAPS, &gc), -EINVAL);

	uint64_t cap = 0;
	CHECK_EQ(drmGetCap(fd, DRM_CAP_PRIME, &cap), 0);
	CHECK_EQ(cap, DRM_PRIME_CAP_IMPORT | DRM_PRIME_CAP_EXPORT);
	struct stat st;
	CHECK_EQ(fstat(fd, &st), 0);
	CHECK(S_ISCHR(st.st_mode) && major(st.st_rdev) == 226 && minor(st.st_rdev) == 128);
	CHECK_EQ(xioctl(fd, _IOWR('x', 1, int), &value), -ENOTTY);
	printf("virtio_gpu 0.1.0, capsets 0x%x, cross-domain channels 0x%x\n", 1u << CD_CAPSET_ID,
	       caps.supported_channels);
	CHECK_EQ(close(fd), 0);
}

// The kernel backend probes renderD128..191 with open() alone; libdrm's
// drmOpenWithType stats /dev/dri and the node first.
static void test_discovery(void)
{
	int fd = open("/dev/dri/renderD129", O_RDWR | O_CLOEXEC);
	CHECK(fd < 0 && errno == ENOENT);
	fd = openat(AT_FDCWD, "/dev/dri/renderD191", O_RDWR);
	CHECK(fd < 0 && errno == ENOENT);
	fd = __open_2(NODE, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	close(fd);
	fd = open("/dev/null", O_RDWR); // everything else is untouched
	CHECK(fd >= 0);
	CHECK_EQ(ioctl(fd, DRM_IOCTL_VERSION, &(struct drm_version){ 0 }), -1);
	CHECK_EQ(errno, ENOTTY);
	close(fd);
	struct stat st;
	CHECK_EQ(stat(NODE, &st), 0);
	CHECK(S_ISCHR(st.st_mode) && st.st_rdev == makedev(226, 128));

	fd = drmOpenWithType("virtio_gpu", NULL, DRM_NODE_RENDER);
	CHECK(fd >= 0);
	close(fd);

	// O_NONBLOCK and O_CLOEXEC of the open are the fd's.
	fd = open(NODE, O_RDWR | O_NONBLOCK);
	CHECK(fd >= 0);
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
	CHECK(!(fcntl(fd, F_GETFD) & FD_CLOEXEC));
	char buf[8];
	CHECK(read(fd, buf, sizeof(buf)) < 0 && errno == EAGAIN);
	close(fd);

	// Without a host the node is absent; without the variable, calls pass.
	setenv("SML_VGPU_EMUL_SOCKET", "/nonexistent/sommelier-host.sock", 1);
	fd = open(NODE, O_RDWR);
	CHECK(fd < 0 && errno == ENODEV);
	unsetenv("SML_VGPU_EMUL_SOCKET");
	fd = open(NODE, O_RDWR);
	if (access("/dev/dri", F_OK) != 0)
		CHECK(fd < 0 && errno == ENOENT);
	if (fd >= 0)
		close(fd);
	setenv("SML_VGPU_EMUL_SOCKET", host_sock, 1);
}

static void test_context_init(void)
{
	int fd = open_node();
	CHECK_EQ(context_init(fd, 3, 2, 2), -EINVAL); // not offered
	CHECK_EQ(context_init(fd, CD_CAPSET_ID, 2, 1u << 2), -EINVAL); // ring 2 of 2
	struct vgpu_uapi_context_param many[5] = { { 1, 5 } };
	struct vgpu_uapi_context_init ci = { .num_params = 5, .ctx_set_params = (uintptr_t)many };
	CHECK_EQ(xioctl(fd, VGPU_IOCTL_CONTEXT_INIT, &ci), -EINVAL);
	// A failed CONTEXT_INIT creates nothing.
	CHECK_EQ(context_init(fd, CD_CAPSET_ID, 2, 1u << CD_CHANNEL_RING), 0);
	CHECK_EQ(context_init(fd, CD_CAPSET_ID, 2, 1u << CD_CHANNEL_RING), -EEXIST);
	close(fd);

	// A blob first creates the default context implicitly: EEXIST after.
	// (The socket device has no default context: the blob itself fails.)
	fd = open_node();
	uint32_t bo;
	CHECK_EQ(create_blob(fd, VGPU_UAPI_BLOB_MEM_GUEST, VGPU_UAPI_BLOB_FLAG_USE_MAPPABLE, 4096,
			     0, &bo, NULL), -ENOENT);
	CHECK_EQ(context_init(fd, CD_CAPSET_ID, 2, 1u << CD_CHANNEL_RING), -EEXIST);
	close(fd);
	// And an execbuffer too.
	fd = open_node();
	CHECK_EQ(exec(fd, NULL, 0, 0, 0, NULL, 0), 0);
	CHECK_EQ(context_init(fd, CD_CAPSET_ID, 2, 1u << CD_CHANNEL_RING), -EEXIST);
	close(fd);
}

// The whole guest flow of cross-domain.md over the node: rings, INIT, POLL,
// SEND of get_registry + sync, fence events, RECEIVEs from weston.
static void test_registry(void)
{
	struct chan ch;
	chan_open(&ch);
	CHECK_EQ(res_of(ch.fd, ch.q_bo), ch.q_res);
	// The INIT's fence is on ring 0, outside the poll mask: no event. A
	// GET_CAPS answered after it proves the INIT was handled first.
	struct cd_capabilities caps;
	struct vgpu_uapi_get_caps gc = {
		.cap_set_id = CD_CAPSET_ID, .addr = (uintptr_t)&caps, .size = sizeof(caps),
	};
	CHECK_EQ(xioctl(ch.fd, VGPU_IOCTL_GET_CAPS, &gc), 0);
	CHECK(!readable(ch.fd, 0));

	chan_poll(&ch);
	uint8_t msg[64];
	size_t len = 0;
	wire_put(msg, &len, 1, 1, "n", 2); // wl_display.get_registry
	wire_put(msg, &len, 1, 0, "n", 3); // wl_display.sync
	chan_send(&ch, msg, (uint32_t)len);
	struct globals g = { 0 };
	round_trip(&ch, 3, &g);
	CHECK(has_global(&g, "wl_compositor"));
	CHECK(has_global(&g, "wl_shm"));
	CHECK(has_global(&g, "xdg_wm_base"));
	printf("registry: %d globals from weston through the emulated node\n", g.n);

	// A buffer smaller than an event gets 0 and leaves the event there.
	sync_round_trip(&ch, 4);
	uint8_t cmd[CD_RING_SIZE];
	len = 0;
	wire_put(msg, &len, 1, 0, "n", 5);
	chan_send(&ch, msg, (uint32_t)len);
	CHECK(readable(ch.fd, TIMEOUT_MS));
	CHECK_EQ(read(ch.fd, cmd, 4), 0);
	CHECK(readable(ch.fd, 0));
	struct cd_command ev;
	chan_next(&ch, &ev, cmd);
	CHECK_EQ(ev.cmd, CD_CMD_RECEIVE);
	chan_poll(&ch);

	// A dup is the same open: the same context, events on either.
	int dup_fd = dup(ch.fd);
	CHECK(dup_fd >= 0);
	CHECK_EQ(close(ch.fd), 0);
	ch.fd = dup_fd;
	sync_round_trip(&ch, 6);
	int fd2 = fcntl(ch.fd, F_DUPFD_CLOEXEC, 100);
	CHECK(fd2 >= 100);
	CHECK_EQ(dup2(fd2, ch.fd), ch.fd); // replaced by its own duplicate: still the node
	close(fd2);
	sync_round_trip(&ch, 7);
	chan_close(&ch);
}

static void query_image(struct chan *ch, uint32_t w, uint32_t h,
			struct cd_image_requirements *reqs)
{
	uint8_t cmd[64];
	size_t len = cd_encode_get_image_requirements(cmd, sizeof(cmd), w, h, DRM_FORMAT_ARGB8888,
						      CD_USE_LINEAR | CD_USE_SCANOUT);
	CHECK_EQ(exec(ch->fd, cmd, len, VGPU_UAPI_EXECBUF_RING_IDX, CD_QUERY_RING, &ch->q_bo, 1),
		 0);
	CHECK_EQ(wait_bo(ch->fd, ch->q_bo, 0), 0);
	memcpy(reqs, ch->q, sizeof(*reqs));
}

static int prime_export(int fd, uint32_t bo, uint32_t flags, int *out)
{
	struct drm_prime_handle p = { .handle = bo, .flags = flags, .fd = -1 };
	int err = xioctl(fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p);
	*out = p.fd;
	return err;
}

static int prime_import(int fd, int dmabuf, uint32_t *bo)
{
	struct drm_prime_handle p = { .fd = dmabuf };
	int err = xioctl(fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &p);
	*bo = p.handle;
	return err;
}

// Allocation (step 11) and PRIME (steps 9, 10), with the GEM lifetime rules.
static void test_image_blob(void)
{
	struct chan ch;
	chan_open(&ch);
	chan_poll(&ch);
	struct cd_image_requirements r;
	query_image(&ch, 1920, 1080, &r);
	CHECK_EQ(r.strides[0], 7680);
	CHECK_EQ(r.size, 7680u * 1080u);
	CHECK(r.blob_id != 0);
	CHECK(!readable(ch.fd, 0)); // ring 0: no event

	uint32_t bo, res;
	CHECK_EQ(create_blob(ch.fd, VGPU_UAPI_BLOB_MEM_HOST3D,
			     VGPU_UAPI_BLOB_FLAG_USE_MAPPABLE | VGPU_UAPI_BLOB_FLAG_USE_SHAREABLE,
			     r.size, r.blob_id, &bo, &res), 0);
	CHECK_EQ(res_of(ch.fd, bo), res);
	uint8_t *map = map_bo(ch.fd, bo, r.size);
	map[r.size - 1] = 0xa5;

	int dmabuf, again;
	CHECK_EQ(prime_export(ch.fd, bo, DRM_CLOEXEC | DRM_RDWR, &dmabuf), 0);
	CHECK_EQ(prime_export(ch.fd, bo, DRM_CLOEXEC | DRM_RDWR, &again), 0);
	struct stat a, b;
	CHECK(fstat(dmabuf, &a) == 0 && fstat(again, &b) == 0);
	CHECK_EQ(a.st_ino, b.st_ino);
	CHECK_EQ((uint64_t)a.st_size, r.size);
	close(again);
	uint8_t *view = mmap(NULL, r.size, PROT_READ, MAP_SHARED, dmabuf, 0);
	CHECK(view != MAP_FAILED);
	CHECK_EQ(view[r.size - 1], 0xa5); // one memory, seen through both
	munmap(view, r.size);
	uint32_t same;
	CHECK_EQ(prime_import(ch.fd, dmabuf, &same), 0);
	CHECK_EQ(same, bo);

	// Export, close the handle, import again: the object (and its host
	// resource) lived on in the dma-buf, as on a kernel.
	CHECK_EQ(gem_close(ch.fd, bo), 0);
	CHECK_EQ(gem_close(ch.fd, bo), -EINVAL);
	struct vgpu_uapi_map m = { .handle = bo };
	CHECK_EQ(xioctl(ch.fd, VGPU_IOCTL_MAP, &m), -ENOENT);
	uint32_t back;
	CHECK_EQ(prime_import(ch.fd, dmabuf, &back), 0);
	CHECK_EQ(res_of(ch.fd, back), res);
	CHECK_EQ(map[r.size - 1], 0xa5);
	munmap(map, r.size);
	close(dmabuf);
	CHECK_EQ(gem_close(ch.fd, back), 0);

	// A read-only export without DRM_RDWR, as a kernel dma-buf.
	uint32_t bo2;
	CHECK_EQ(create_blob(ch.fd, VGPU_UAPI_BLOB_MEM_HOST3D, VGPU_UAPI_BLOB_FLAG_USE_SHAREABLE,
			     r.size, r.blob_id, &bo2, NULL), 0);
	CHECK_EQ(prime_export(ch.fd, bo2, DRM_CLOEXEC, &dmabuf), 0);
	CHECK(mmap(NULL, 4096, PROT_WRITE, MAP_SHARED, dmabuf, 0) == MAP_FAILED);
	close(dmabuf);
	m.handle = bo2;
	CHECK_EQ(xioctl(ch.fd, VGPU_IOCTL_MAP, &m), 0);
	CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, ch.fd, (off_t)m.offset) == MAP_FAILED);
	CHECK_EQ(errno, EINVAL); // not MAPPABLE
	CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, ch.fd, 1ll << 40) == MAP_FAILED);
	CHECK_EQ(errno, EINVAL); // no object there
	CHECK_EQ(gem_close(ch.fd, bo2), 0);

	CHECK_EQ(create_blob(ch.fd, VGPU_UAPI_BLOB_MEM_HOST3D, 1, 4096, 0x7777, &bo2, NULL),
		 -ENOENT); // a blob id the context never handed out
	CHECK_EQ(create_blob(ch.fd, VGPU_UAPI_BLOB_MEM_GUEST, 0x10, 4096, 0, &bo2, NULL), -EINVAL);
	CHECK_EQ(prime_import(ch.fd, STDERR_FILENO, &back), -EINVAL); // not a dma-buf of ours
	CHECK_EQ(prime_export(ch.fd, 999, 0, &dmabuf), -ENOENT);
	CHECK_EQ(prime_export(ch.fd, ch.q_bo, 0x1, &dmabuf), -EINVAL);
	printf("image 1920x1080: stride %u, size %llu, blob %u -> resource %u\n", r.strides[0],
	       (unsigned long long)r.size, r.blob_id, res);

	// The channel still works after all of it.
	uint8_t msg[16];
	size_t len = 0;
	wire_put(msg, &len, 1, 0, "n", 2);
	chan_send(&ch, msg, (uint32_t)len);
	round_trip(&ch, 2, NULL);
	chan_close(&ch);
}

static void test_execbuffer_rules(void)
{
	struct chan ch;
	chan_open(&ch);
	uint8_t cmd[32];
	size_t len = cd_encode_poll(cmd, sizeof(cmd));
	uint32_t bogus = 999;
	CHECK_EQ(exec(ch.fd, cmd, len, VGPU_UAPI_EXECBUF_RING_IDX, 2, NULL, 0), -EINVAL);
	CHECK_EQ(exec(ch.fd, cmd, len, 0x80, 0, NULL, 0), -EINVAL);
	CHECK_EQ(exec(ch.fd, cmd, len, VGPU_UAPI_EXECBUF_FENCE_FD_OUT, 0, NULL, 0), -EINVAL);
	CHECK_EQ(exec(ch.fd, cmd, len, 0, 0, &bogus, 1), -ENOENT);
	CHECK_EQ(wait_bo(ch.fd, bogus, 0), -ENOENT);
	CHECK_EQ(wait_bo(ch.fd, ch.q_bo, VGPU_UAPI_WAIT_NOWAIT), 0); // idle
	CHECK_EQ(gem_close(ch.fd, bogus), -EINVAL);
	struct vgpu_uapi_resource_info ri = { .bo_handle = bogus };
	CHECK_EQ(xioctl(ch.fd, VGPU_IOCTL_RESOURCE_INFO, &ri), -ENOENT);
	// None of them hurt the context.
	chan_poll(&ch);
	sync_round_trip(&ch, 2);
	chan_close(&ch);
}

// A forked child has no reader thread: its ioctls fail at once.
static void test_fork(void)
{
	int fd = open_node();
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct drm_version v = { 0 };
		_exit(ioctl(fd, DRM_IOCTL_VERSION, &v) < 0 && errno == ENOTTY ? 0 : 1);
	}
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	drmVersionPtr v = drmGetVersion(fd); // the parent's open is untouched
	CHECK(v != NULL);
	drmFreeVersion(v);
	close(fd);
}

// One drm_event per signalled fence, and only for rings in the poll mask.
static void test_events(void)
{
	int fd = open_node();
	CHECK_EQ(context_init(fd, CD_CAPSET_ID, 3, 0x3), 0); // rings 0 and 1 polled, 2 not
	for (int i = 0; i < 5; i++) // empty command streams: fences signal at once
		CHECK_EQ(exec(fd, NULL, 0, 0, 0, NULL, 0), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(exec(fd, NULL, 0, VGPU_UAPI_EXECBUF_RING_IDX, 2, NULL, 0), 0);
	CHECK_EQ(exec(fd, NULL, 0, VGPU_UAPI_EXECBUF_RING_IDX, 1, NULL, 0), 0);
	int value;
	struct vgpu_uapi_get_caps gc = { .cap_set_id = CD_CAPSET_ID, .addr = (uintptr_t)&value,
					 .size = sizeof(value) };
	CHECK_EQ(xioctl(fd, VGPU_IOCTL_GET_CAPS, &gc), 0); // every fence is in by now
	struct drm_event ev[16];
	int n = 0;
	while (readable(fd, 0)) {
		ssize_t got = read(fd, ev, sizeof(ev));
		CHECK(got > 0 && got % (ssize_t)sizeof(struct drm_event) == 0);
		for (ssize_t i = 0; i < got / (ssize_t)sizeof(struct drm_event); i++)
			CHECK_EQ(ev[i].type, VGPU_UAPI_EVENT_FENCE_SIGNALED);
		n += (int)(got / (ssize_t)sizeof(struct drm_event));
	}
	CHECK_EQ(n, 6);
	close(fd);
}

struct waiter_arg {
	int fd;
	uint32_t bo;
	int result;
};

static void *wait_thread(void *data)
{
	struct waiter_arg *a = data;
	a->result = wait_bo(a->fd, a->bo, 0);
	return NULL;
}

// WAIT blocks on the fences of the execbuffers that listed the bo, and only
// the calling thread: the SEND that makes the POLL complete goes through
// from another thread meanwhile.
static void test_wait(void)
{
	struct chan ch;
	chan_open(&ch);
	uint8_t cmd[32];
	size_t len = cd_encode_poll(cmd, sizeof(cmd));
	CHECK_EQ(exec(ch.fd, cmd, len, VGPU_UAPI_EXECBUF_RING_IDX, CD_CHANNEL_RING, &ch.c_bo, 1),
		 0);
	CHECK_EQ(wait_bo(ch.fd, ch.c_bo, VGPU_UAPI_WAIT_NOWAIT), -EBUSY);
	CHECK_EQ(wait_bo(ch.fd, ch.q_bo, VGPU_UAPI_WAIT_NOWAIT), 0);
	struct waiter_arg a = { .fd = ch.fd, .bo = ch.c_bo, .result = 1 };
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, wait_thread, &a), 0);
	usleep(50000);
	CHECK_EQ(a.result, 1); // still waiting
	uint8_t msg[16];
	size_t mlen = 0;
	wire_put(msg, &mlen, 1, 0, "n", 2);
	chan_send(&ch, msg, (uint32_t)mlen);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(a.result, 0);
	CHECK_EQ(wait_bo(ch.fd, ch.c_bo, VGPU_UAPI_WAIT_NOWAIT), 0);
	struct cd_command ev;
	uint8_t page[CD_RING_SIZE];
	chan_next(&ch, &ev, page);
	CHECK_EQ(ev.cmd, CD_CMD_RECEIVE);
	chan_close(&ch);
}

// Host resources follow the GEM object's life: a handle, an export or a
// mapping keeps one; when the last goes, so does the resource (sommelier-host
// holds one fd per host blob, which makes that visible).
// The host closes the fd copy it sent just after the send: let it settle.
static int host_fds(int expected)
{
	int n = harness_count_fds(host_pid);
	for (int i = 0; i < 100 && n != expected; i++) {
		usleep(10000);
		n = harness_count_fds(host_pid);
	}
	return n;
}

// The host's fd count once it has stopped changing: an earlier test's
// connection may still be going away (its rings' fds) when this one starts.
static int host_fds_settled(void)
{
	int n = harness_count_fds(host_pid);
	for (int same = 0, i = 0; same < 5 && i < 200; i++) {
		usleep(10000);
		int m = harness_count_fds(host_pid);
		same = m == n ? same + 1 : 0;
		n = m;
	}
	return n;
}

static void test_resource_lifetime(void)
{
	struct chan ch;
	chan_open(&ch);
	struct cd_image_requirements r;
	query_image(&ch, 64, 64, &r);
	int base = host_fds_settled();
	uint32_t bo, res, other;
	int flags = VGPU_UAPI_BLOB_FLAG_USE_MAPPABLE | VGPU_UAPI_BLOB_FLAG_USE_SHAREABLE;
	CHECK_EQ(create_blob(ch.fd, VGPU_UAPI_BLOB_MEM_HOST3D, flags, r.size, r.blob_id, &bo,
			     &res), 0);
	CHECK_EQ(host_fds(base + 1), base + 1);
	CHECK_EQ(gem_close(ch.fd, bo), 0); // nothing else holds it
	CHECK_EQ(wait_bo(ch.fd, ch.q_bo, 0), 0); // a round trip after the destroy
	CHECK_EQ(host_fds(base), base);

	// A mapping holds it after GEM_CLOSE; unmapping lets it go.
	CHECK_EQ(create_blob(ch.fd, VGPU_UAPI_BLOB_MEM_HOST3D, flags, r.size, r.blob_id, &bo,
			     NULL), 0);
	uint8_t *map = map_bo(ch.fd, bo, r.size);
	CHECK_EQ(gem_close(ch.fd, bo), 0);
	CHECK_EQ(wait_bo(ch.fd, ch.q_bo, 0), 0);
	CHECK_EQ(host_fds(base + 1), base + 1);
	map[0] = 1; // still mapped, still memory
	munmap(map, r.size);
	// Released at the next GEM_CLOSE or creation.
	CHECK_EQ(create_blob(ch.fd, VGPU_UAPI_BLOB_MEM_HOST3D, flags, r.size, r.blob_id, &other,
			     NULL), 0);
	CHECK_EQ(wait_bo(ch.fd, ch.q_bo, 0), 0);
	CHECK_EQ(host_fds(base + 1), base + 1);

	// An export passed to another process holds it until that one closes it.
	int dmabuf;
	CHECK_EQ(prime_export(ch.fd, other, DRM_CLOEXEC | DRM_RDWR, &dmabuf), 0);
	int ready[2], quit[2];
	CHECK(pipe(ready) == 0 && pipe(quit) == 0);
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		char c;
		close(ready[0]);
		close(quit[1]);
		CHECK_EQ(write(ready[1], "r", 1), 1);
		CHECK(read(quit[0], &c, 1) >= 0); // holds dmabuf until told
		_exit(0);
	}
	char c;
	close(ready[1]);
	close(quit[0]);
	CHECK_EQ(read(ready[0], &c, 1), 1);
	close(dmabuf);
	CHECK_EQ(gem_close(ch.fd, other), 0);
	CHECK_EQ(wait_bo(ch.fd, ch.q_bo, 0), 0);
	CHECK_EQ(host_fds(base + 1), base + 1); // the child's copy
	close(quit[1]);
	CHECK_EQ(waitpid(child, NULL, 0), child);
	close(ready[0]);
	uint32_t tmp;
	CHECK_EQ(create_blob(ch.fd, VGPU_UAPI_BLOB_MEM_GUEST, 0, 4096, 0, &tmp, NULL), 0);
	CHECK_EQ(gem_close(ch.fd, tmp), 0);
	CHECK_EQ(wait_bo(ch.fd, ch.q_bo, 0), 0);
	CHECK_EQ(host_fds(base), base);
	chan_close(&ch);
}

// When sommelier-host goes away, ioctls fail with ENODEV instead of
// hanging, and the node can still be closed.
static void test_host_gone(void)
{
	int fd = open_node();
	CHECK_EQ(context_init(fd, CD_CAPSET_ID, 2, 2), 0);
	CHECK_EQ(harness_stop(host_pid), 0);
	int value;
	struct vgpu_uapi_get_caps gc = { .cap_set_id = CD_CAPSET_ID, .addr = (uintptr_t)&value,
					 .size = sizeof(value) };
	CHECK_EQ(xioctl(fd, VGPU_IOCTL_GET_CAPS, &gc), -ENODEV);
	uint32_t bo;
	CHECK_EQ(create_blob(fd, VGPU_UAPI_BLOB_MEM_GUEST, 0, 4096, 0, &bo, NULL), -ENODEV);
	CHECK_EQ(close(fd), 0);
	CHECK(open(NODE, O_RDWR) < 0 && errno == ENODEV);
}

static int count_threads(void)
{
	DIR *dir = opendir("/proc/self/task");
	CHECK(dir != NULL);
	int n = 0;
	for (struct dirent *e; (e = readdir(dir));)
		n += e->d_name[0] != '.';
	closedir(dir);
	return n;
}

// An fd closed where the wrapper cannot see it, then reused by another
// file, is that file's again; close_range ends the open as close does.
static void test_closed_behind(void)
{
	int threads = count_threads();
	int fd = open_node();
	CHECK_EQ(syscall(SYS_close, fd), 0);
	// Meanwhile the open lives on, its pipe without a reader: it must idle.
	struct timespec cpu0, cpu1;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
	usleep(200000);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
	long busy_ms = (cpu1.tv_sec - cpu0.tv_sec) * 1000 + (cpu1.tv_nsec - cpu0.tv_nsec) / 1000000;
	CHECK(busy_ms < 50);
	int zero = open("/dev/zero", O_RDONLY);
	CHECK_EQ(zero, fd); // the lowest free number again
	char buf[5];
	CHECK_EQ(read(zero, buf, sizeof(buf)), 5); // not cut to whole drm_events
	CHECK(mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, zero, 0) != MAP_FAILED);
	close(zero);
	CHECK_EQ(count_threads(), threads); // the stale entry took the open with it

	fd = open_node();
	int twin = dup(fd);
	CHECK_EQ(close_range((unsigned)SML_MIN(fd, twin), (unsigned)SML_MAX(fd, twin), 0), 0);
	CHECK_EQ(count_threads(), threads);
}

// Opens come and go with rings, mappings, host blobs, exports and a POLL
// left outstanding; the process keeps no fd and no thread of them.
static void test_no_leaks(int cycles)
{
	int fds_before = harness_count_fds(getpid());
	int threads_before = count_threads();
	for (int i = 0; i < cycles; i++) {
		struct chan ch;
		chan_open(&ch);
		chan_poll(&ch);
		struct cd_image_requirements r;
		query_image(&ch, 256, 256, &r);
		uint32_t bo;
		int dmabuf;
		CHECK_EQ(create_blob(ch.fd, VGPU_UAPI_BLOB_MEM_HOST3D,
				     VGPU_UAPI_BLOB_FLAG_USE_MAPPABLE |
				     VGPU_UAPI_BLOB_FLAG_USE_SHAREABLE,
				     r.size, r.blob_id, &bo, NULL), 0);
		void *p = map_bo(ch.fd, bo, r.size);
		CHECK_EQ(prime_export(ch.fd, bo, DRM_CLOEXEC | DRM_RDWR, &dmabuf), 0);
		if (i % 2)
			sync_round_trip(&ch, 2);
		munmap(p, r.size);
		close(dmabuf);
		if (i % 3 == 0)
			CHECK_EQ(gem_close(ch.fd, bo), 0);
		chan_close(&ch);
	}
	int fds_after = harness_count_fds(getpid());
	int threads_after = count_threads();
	printf("%d open/close cycles: fds %d -> %d, threads %d -> %d\n", cycles, fds_before,
	       fds_after, threads_before, threads_after);
	CHECK_EQ(fds_after, fds_before);
	CHECK_EQ(threads_after, threads_before);
}

static void test_leaks(void)
{
	test_no_leaks(50);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *preload = getenv("LD_PRELOAD");
	if (!preload || !strstr(preload, "sml-vgpu-emul")) {
		fprintf(stderr, "run with LD_PRELOAD=.../libsml-vgpu-emul.so (meson test does)\n");
		return 1;
	}
	// Loaded into this process; the compositor and the host run without it.
	unsetenv("LD_PRELOAD");
	unsetenv("SML_VGPU_EMUL_SOCKET");
	const char *dir = harness_runtime_dir();
	atexit(harness_cleanup);
	snprintf(host_sock, sizeof(host_sock), "%s/host.sock", dir);
	harness_start_weston("wl-test");
	host_pid = harness_start_host(host_sock, "wl-test", NULL);
	setenv("SML_VGPU_EMUL_SOCKET", host_sock, 1);

	static const struct harness_test tests[] = {
		{ "version, parameters, capset", test_version_and_params },
		{ "node discovery", test_discovery },
		{ "context init", test_context_init },
		{ "registry round trip over the node", test_registry },
		{ "image requirements, host blob, PRIME", test_image_blob },
		{ "execbuffer rules", test_execbuffer_rules },
		{ "one event per fence, poll rings only", test_events },
		{ "WAIT blocks its thread only", test_wait },
		{ "host resources follow GEM lifetime", test_resource_lifetime },
		{ "fork", test_fork },
		{ "fds closed behind the wrappers", test_closed_behind },
		{ "no leaks over 50 opens", test_leaks },
		{ "host goes away", test_host_gone }, // last: stops the host
	};
	int passed = harness_run(tests, SML_ARRAY_LEN(tests));
	printf("%d passed, 0 failed\n", passed);
	return 0;
}
