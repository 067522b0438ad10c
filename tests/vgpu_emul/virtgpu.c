// SPDX-License-Identifier: MIT
// The virtio-gpu driver ioctls, checked in the order and with the errnos of
// drivers/gpu/drm/virtio (virtgpu_ioctl.c, virtgpu_submit.c), then carried
// to sommelier-host as socket-device requests. What the kernel decides on
// its own (parameters, context state, handles, rings) is decided here; what
// a host decides (capsets, blob ids, command contents) the host decides.
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "emul.h"
#include "util.h"
#include "virtgpu_uapi.h"

#define CAPSET_CROSS_DOMAIN 5u
#define MAX_CAPSET_ID 63u
#define MAX_RINGS 64u
#define MAX_CONTEXT_PARAMS 4u // CAPSET_ID, NUM_RINGS, POLL_RINGS_MASK, DEBUG_NAME
#define MAX_CAPS_SIZE 1024u

static void *user_ptr(uint64_t p)
{
	return (void *)(uintptr_t)p;
}

// ---- GETPARAM, GET_CAPS -------------------------------------------------------------

static int getparam(struct vgpu_uapi_getparam *p)
{
	int value;
	switch (p->param) {
	case VGPU_UAPI_PARAM_3D_FEATURES:
	case VGPU_UAPI_PARAM_CAPSET_QUERY_FIX:
	case VGPU_UAPI_PARAM_RESOURCE_BLOB:
	case VGPU_UAPI_PARAM_HOST_VISIBLE:
	case VGPU_UAPI_PARAM_CONTEXT_INIT:
		value = 1;
		break;
	case VGPU_UAPI_PARAM_CROSS_DEVICE: // no resource uuids
		value = 0;
		break;
	case VGPU_UAPI_PARAM_SUPPORTED_CAPSET_IDS:
		value = 1 << CAPSET_CROSS_DOMAIN;
		break;
	default:
		return -EINVAL;
	}
	if (!p->value)
		return -EFAULT;
	memcpy(user_ptr(p->value), &value, sizeof(int)); // the kernel writes an int
	return 0;
}

static int get_caps(struct emul_dev *d, struct vgpu_uapi_get_caps *c)
{
	if (c->size == 0)
		return -EINVAL;
	uint8_t caps[MAX_CAPS_SIZE];
	struct sdev_get_caps body = { .capset_id = c->cap_set_id,
				      .capset_version = c->cap_set_ver };
	struct emul_waiter w = { .caps = caps, .caps_cap = sizeof(caps) };
	int err = emul_request(d, SDEV_GET_CAPS, &(struct emul_body){ { &body }, { sizeof(body) } },
			       NULL, 0, &w, -1);
	if (err)
		return err;
	if (w.type != SDEV_REPLY_CAPS)
		return -EPROTO;
	if (!c->addr)
		return -EFAULT;
	// The smaller of the caller's size and the capset's.
	memcpy(user_ptr(c->addr), caps, SML_MIN(c->size, SML_MIN(w.caps_len, MAX_CAPS_SIZE)));
	return 0;
}

// ---- contexts -------------------------------------------------------------------------

// virtio_gpu_create_context: the context-creating ioctls make a default
// context when CONTEXT_INIT did not come first. The socket device has no
// such context, so later requests get the host's "context init must come
// first" (-ENOENT); CONTEXT_INIT after this fails with -EEXIST either way.
static void create_context_implicitly(struct emul_dev *d)
{
	pthread_mutex_lock(&d->lock);
	d->context_created = true;
	pthread_mutex_unlock(&d->lock);
}

struct ctx_params {
	uint64_t capset; // 0: none given
	bool has_rings;
	uint64_t num_rings;
	uint64_t poll_mask;
};

// The kernel's parameter loop, one parameter at a time.
static int check_param(const struct vgpu_uapi_context_param *p, struct ctx_params *c)
{
	switch (p->param) {
	case VGPU_UAPI_CONTEXT_PARAM_CAPSET_ID:
		if (p->value == 0 || p->value > MAX_CAPSET_ID || c->capset ||
		    !((1ull << CAPSET_CROSS_DOMAIN) & (1ull << p->value)))
			return -EINVAL;
		c->capset = p->value;
		return 0;
	case VGPU_UAPI_CONTEXT_PARAM_NUM_RINGS:
		if (c->has_rings || p->value > MAX_RINGS)
			return -EINVAL;
		c->has_rings = true;
		c->num_rings = p->value;
		return 0;
	case VGPU_UAPI_CONTEXT_PARAM_POLL_RINGS_MASK:
		if (c->poll_mask)
			return -EINVAL;
		c->poll_mask = p->value;
		return 0;
	}
	return -EINVAL; // DEBUG_NAME (6.8+) included: the host knows only 1..3
}

static int check_params(const struct vgpu_uapi_context_param *params, uint32_t n,
			struct ctx_params *c)
{
	for (uint32_t i = 0; i < n; i++) {
		int err = check_param(&params[i], c);
		if (err)
			return err;
	}
	if (c->poll_mask) {
		uint64_t valid = c->num_rings >= 64 ? ~0ull : (1ull << c->num_rings) - 1;
		if (c->poll_mask & ~valid)
			return -EINVAL;
	}
	return 0;
}

static int context_init(struct emul_dev *d, struct vgpu_uapi_context_init *ci)
{
	if (ci->num_params > MAX_CONTEXT_PARAMS)
		return -EINVAL;
	if (ci->num_params && !ci->ctx_set_params)
		return -EFAULT;
	struct vgpu_uapi_context_param params[MAX_CONTEXT_PARAMS];
	memcpy(params, user_ptr(ci->ctx_set_params), ci->num_params * sizeof(params[0]));
	pthread_mutex_lock(&d->lock);
	bool created = d->context_created;
	pthread_mutex_unlock(&d->lock);
	if (created)
		return -EEXIST;
	struct ctx_params c = { 0 };
	int err = check_params(params, ci->num_params, &c);
	if (err)
		return err;
	// Same layout on both sides: the parameters travel as they came.
	static_assert(sizeof(struct sdev_context_param) == sizeof(params[0]), "param layout");
	struct sdev_context_init init = { .num_params = ci->num_params };
	struct emul_body body = {
		{ &init, params }, { sizeof(init), ci->num_params * sizeof(params[0]) },
	};
	struct emul_waiter w = { 0 };
	err = emul_request(d, SDEV_CONTEXT_INIT, &body, NULL, 0, &w, -1);
	if (err)
		return err;
	pthread_mutex_lock(&d->lock);
	d->context_created = true;
	d->has_rings = c.has_rings;
	d->num_rings = (uint32_t)c.num_rings;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

// ---- blobs ---------------------------------------------------------------------------

// verify_blob: the flags and fields a blob kind allows.
static int verify_blob(const struct vgpu_uapi_create_blob *b)
{
	if (b->blob_flags & ~VGPU_UAPI_BLOB_FLAG_USE_MASK || b->cmd_size % 4)
		return -EINVAL;
	switch (b->blob_mem) {
	case VGPU_UAPI_BLOB_MEM_GUEST:
		return b->blob_id || b->cmd_size ? -EINVAL : 0;
	case VGPU_UAPI_BLOB_MEM_HOST3D:
	case VGPU_UAPI_BLOB_MEM_HOST3D_GUEST: // the host refuses it: -EINVAL
		return 0;
	}
	return -EINVAL;
}

// Sends the creation and returns the new object's memory fd and the host's
// answer; consumes guest_fd.
static int create_on_host(struct emul_dev *d, const struct vgpu_uapi_create_blob *b,
			  uint64_t size, const void *cmd, int guest_fd, struct emul_waiter *w)
{
	struct sdev_create_blob body = {
		.blob_mem = b->blob_mem, .blob_flags = b->blob_flags, .size = size,
		.blob_id = b->blob_id, .cmd_size = b->cmd_size,
	};
	int err = emul_request(d, SDEV_RESOURCE_CREATE_BLOB,
			       &(struct emul_body){ { &body, cmd }, { sizeof(body), b->cmd_size } },
			       &guest_fd, guest_fd >= 0, w, -1);
	if (!err && w->type != SDEV_REPLY_RESOURCE)
		err = -EPROTO;
	if (!err && guest_fd < 0 && w->fd < 0)
		err = -EPROTO; // a host blob arrives as its fd (FD_PASSING was granted)
	if (err) {
		if (w->fd >= 0)
			emul_real.close(w->fd);
		if (guest_fd >= 0)
			emul_real.close(guest_fd);
		return err;
	}
	if (guest_fd >= 0) {
		if (w->fd >= 0)
			emul_real.close(w->fd);
		w->fd = guest_fd; // our memfd is the memory; the host has its own dup
	}
	return 0;
}

static int create_blob(struct emul_dev *d, struct vgpu_uapi_create_blob *b)
{
	int err = verify_blob(b);
	if (err)
		return err;
	create_context_implicitly(d);
	emul_objs_reap(d);
	// virtio_gpu_object_create rounds the size up to pages.
	uint64_t size = sml_page_round_up(b->size);
	if (size == 0 || b->cmd_size > SDEV_MAX_MSG_SIZE - 64)
		return -EINVAL;
	if (b->cmd_size && !b->cmd)
		return -EFAULT;
	int guest_fd = -1;
	if (b->blob_mem == VGPU_UAPI_BLOB_MEM_GUEST) {
		// Sealed against shrinking: the host maps rings only then.
		guest_fd = sml_memfd_create("sml-vgpu-emul-guest-blob", size);
		if (guest_fd < 0)
			return -errno;
	}
	struct emul_waiter w = { 0 };
	err = create_on_host(d, b, size, user_ptr(b->cmd), guest_fd, &w);
	if (err)
		return err;
	pthread_mutex_lock(&d->lock);
	struct emul_obj *obj = emul_obj_add(d, w.fd, w.res.res_handle, b->blob_mem,
					    b->blob_flags, w.res.size);
	if (obj) {
		b->bo_handle = obj->handle;
		b->res_handle = obj->res_handle;
	}
	pthread_mutex_unlock(&d->lock);
	if (!obj) {
		emul_real.close(w.fd);
		struct sdev_resource r = { .res_handle = w.res.res_handle };
		emul_post(d, SDEV_RESOURCE_DESTROY, &(struct emul_body){ { &r }, { sizeof(r) } });
		return -ENOMEM;
	}
	return 0;
}

static int resource_info(struct emul_dev *d, struct vgpu_uapi_resource_info *ri)
{
	pthread_mutex_lock(&d->lock);
	struct emul_obj *obj = emul_obj_by_handle(d, ri->bo_handle);
	if (obj) {
		ri->res_handle = obj->res_handle;
		ri->size = (uint32_t)obj->size;
		ri->blob_mem = obj->blob_mem;
	}
	pthread_mutex_unlock(&d->lock);
	return obj ? 0 : -ENOENT;
}

// ---- execbuffer, wait -------------------------------------------------------------------

static int check_ring(struct emul_dev *d, const struct vgpu_uapi_execbuffer *e)
{
	if (e->flags & ~VGPU_UAPI_EXECBUF_FLAGS)
		return -EINVAL;
	if (!(e->flags & VGPU_UAPI_EXECBUF_RING_IDX))
		return 0;
	pthread_mutex_lock(&d->lock);
	bool ok = d->has_rings && e->ring_idx < d->num_rings;
	pthread_mutex_unlock(&d->lock);
	return ok ? 0 : -EINVAL;
}

// GEM handles to the host's resource handles (virtio_gpu_array_from_handles).
static int lookup_bos(struct emul_dev *d, const struct vgpu_uapi_execbuffer *e, uint32_t *res)
{
	if (e->num_bo_handles && !e->bo_handles)
		return -EFAULT;
	const uint32_t *handles = user_ptr(e->bo_handles);
	int err = 0;
	pthread_mutex_lock(&d->lock);
	for (uint32_t i = 0; i < e->num_bo_handles && !err; i++) {
		struct emul_obj *obj = emul_obj_by_handle(d, handles[i]);
		if (obj)
			res[i] = obj->res_handle;
		else
			err = -ENOENT;
	}
	pthread_mutex_unlock(&d->lock);
	return err;
}

static int execbuffer(struct emul_dev *d, struct vgpu_uapi_execbuffer *e)
{
	int err = check_ring(d, e);
	if (err)
		return err;
	create_context_implicitly(d);
	// Limits of one socket-device message; a kernel takes more.
	if (e->num_bo_handles > SDEV_MAX_BO_HANDLES ||
	    e->size > SDEV_MAX_MSG_SIZE - 32 - 4 * (size_t)e->num_bo_handles)
		return -EINVAL;
	uint32_t res[SDEV_MAX_BO_HANDLES];
	err = lookup_bos(d, e, res);
	if (err)
		return err;
	// No sync_file exists here: an in-fence cannot name one, and out-fences
	// and syncobjs are not emulated.
	if (e->flags & (VGPU_UAPI_EXECBUF_FENCE_FD_IN | VGPU_UAPI_EXECBUF_FENCE_FD_OUT) ||
	    e->num_in_syncobjs || e->num_out_syncobjs)
		return -EINVAL;
	if (e->size && !e->command)
		return -EFAULT;
	struct sdev_execbuffer body = {
		.flags = e->flags & VGPU_UAPI_EXECBUF_RING_IDX,
		.ring_idx = (e->flags & VGPU_UAPI_EXECBUF_RING_IDX) ? e->ring_idx : 0,
		.num_bo_handles = e->num_bo_handles, .cmd_size = e->size,
	};
	// Submitted, not waited for, as the kernel does: a command the host
	// rejects is logged when its error arrives, and the context is lost.
	return emul_post(d, SDEV_EXECBUFFER,
			 &(struct emul_body){ { &body, res, user_ptr(e->command) },
					      { sizeof(body), 4 * (size_t)e->num_bo_handles,
						e->size } });
}

static int wait_bo(struct emul_dev *d, struct vgpu_uapi_wait *wa)
{
	pthread_mutex_lock(&d->lock);
	struct emul_obj *obj = emul_obj_by_handle(d, wa->handle);
	uint32_t res = obj ? obj->res_handle : 0;
	pthread_mutex_unlock(&d->lock);
	if (!obj)
		return -ENOENT;
	struct sdev_wait body = { .res_handle = res, .flags = wa->flags & VGPU_UAPI_WAIT_NOWAIT };
	struct emul_waiter w = { 0 };
	int err = emul_request(d, SDEV_WAIT, &(struct emul_body){ { &body }, { sizeof(body) } },
			       NULL, 0, &w, EMUL_WAIT_TIMEOUT_MS);
	return err == -ETIMEDOUT ? -EBUSY : err;
}

static int map(struct emul_dev *d, struct vgpu_uapi_map *m)
{
	return emul_map(d, m->handle, &m->offset);
}

int emul_virtgpu_ioctl(struct emul_dev *d, unsigned nr, void *data)
{
	switch (nr) {
	case VGPU_UAPI_GETPARAM:
		return getparam(data);
	case VGPU_UAPI_GET_CAPS:
		return get_caps(d, data);
	case VGPU_UAPI_CONTEXT_INIT:
		return context_init(d, data);
	case VGPU_UAPI_RESOURCE_CREATE_BLOB:
		return create_blob(d, data);
	case VGPU_UAPI_RESOURCE_INFO:
		return resource_info(d, data);
	case VGPU_UAPI_MAP:
		return map(d, data);
	case VGPU_UAPI_EXECBUFFER:
		return execbuffer(d, data);
	case VGPU_UAPI_WAIT:
		return wait_bo(d, data);
	}
	// RESOURCE_CREATE and TRANSFER_*: virgl resources, not cross-domain.
	return -ENOSYS;
}
