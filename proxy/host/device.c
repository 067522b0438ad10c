// SPDX-License-Identifier: MIT
// The socket device operations, with the checks the virtgpu kernel driver
// makes before anything reaches a host (doc/socket-device.md).
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <unistd.h>

#include "closer.h"
#include "device.h"
#include "log.h"
#include "util.h"
#include "xd.h"

#define reply_error host_conn_reply_error

static struct host_ctx *find_ctx(struct host_conn *conn, uint32_t id)
{
	struct host_ctx *ctx;
	wl_list_for_each(ctx, &conn->contexts, link)
		if (ctx->id == id)
			return ctx;
	return NULL;
}

// The context a request names, or NULL after replying why not.
static struct host_ctx *request_ctx(struct host_conn *conn, const struct sdev_header *hdr)
{
	struct host_ctx *ctx = hdr->ctx_id ? find_ctx(conn, hdr->ctx_id) : NULL;
	if (hdr->ctx_id == 0)
		reply_error(conn, hdr, -EINVAL, "context id 0 names no context");
	else if (!ctx)
		reply_error(conn, hdr, -ENOENT, "context %u: context init must come first",
			    hdr->ctx_id);
	else if (ctx->lost)
		reply_error(conn, hdr, -ENODEV, "context %u was lost", hdr->ctx_id);
	else
		return ctx;
	return NULL;
}

struct host_resource *host_ctx_resource(struct host_ctx *ctx, uint32_t handle)
{
	struct host_conn *conn = ctx->conn;
	if (handle == 0 || handle > conn->resources_cap)
		return NULL;
	struct host_resource *res = conn->resources[handle - 1];
	return res && res->ctx == ctx ? res : NULL;
}

// Memory the host writes into must not shrink under it: a truncated mapping
// would kill the daemon with SIGBUS. Only shrink-sealed memfds qualify.
static bool cannot_shrink(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);
	return seals >= 0 && (seals & F_SEAL_SHRINK);
}

// A mapping of its own for the caller (a context's ring), of only the bytes
// it touches and only bytes the file has. It outlives the resource: a guest
// may destroy a ring its context still uses, as a kernel client may close
// the GEM handle of one.
void *host_resource_map(struct host_resource *res, size_t size)
{
	struct stat st;
	if (res->fd < 0 || res->size < size || fstat(res->fd, &st) < 0 ||
	    (uint64_t)st.st_size < size)
		return NULL;
	if (!cannot_shrink(res->fd)) {
		sml_warn("resource %u: not a shrink-sealed memfd; refusing to map it",
			 res->handle);
		return NULL;
	}
	// A huge-page memfd maps whole huge pages (up to 1 GiB), and the ring's
	// munmap of its page would fail and keep them: rings are plain pages.
	struct statfs fs;
	if (fstatfs(res->fd, &fs) < 0 || fs.f_type == HUGETLBFS_MAGIC) {
		sml_warn("resource %u: huge-page memory; refusing to map it as a ring",
			 res->handle);
		return NULL;
	}
	void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, res->fd, 0);
	if (map == MAP_FAILED) {
		sml_log_errno(SML_LOG_WARN, "mmap of resource %u", res->handle);
		return NULL;
	}
	return map;
}

static void check_waits(struct host_conn *conn)
{
	struct host_wait *wait, *tmp;
	wl_list_for_each_safe(wait, tmp, &conn->waits, link) {
		struct host_ctx *ctx = find_ctx(conn, wait->ctx_id);
		struct host_resource *res = ctx ? host_ctx_resource(ctx, wait->res_handle) : NULL;
		if (res && res->busy)
			continue;
		if (res)
			host_conn_send(conn, SDEV_REPLY_OK, wait->seq, wait->ctx_id, NULL, 0,
				       NULL, 0);
		else
			reply_error(conn, &(struct sdev_header){ .type = SDEV_WAIT,
				    .seq = wait->seq, .ctx_id = wait->ctx_id },
				    -ENOENT, "resource %u went away", wait->res_handle);
		wl_list_remove(&wait->link);
		free(wait);
		conn->nwaits--;
	}
}

static void fence_done(struct host_ctx *ctx, uint32_t seq, uint32_t ring)
{
	if (!(ctx->poll_mask & (1ull << ring)))
		return;
	struct sdev_event_fence ev = { .ring_idx = ring };
	host_conn_send(ctx->conn, SDEV_EVENT_FENCE, seq, ctx->id, &ev, sizeof(ev), NULL, 0);
}

static void fence_release(struct host_ctx *ctx, struct host_fence *fence)
{
	for (uint32_t i = 0; i < fence->nbo; i++) {
		struct host_resource *res = host_ctx_resource(ctx, fence->bo[i]);
		if (res && res->busy)
			res->busy--;
	}
	wl_list_remove(&fence->link);
	free(fence->bo);
	free(fence);
}

static struct host_fence *find_fence(struct host_ctx *ctx, uint32_t seq)
{
	struct host_fence *fence;
	wl_list_for_each(fence, &ctx->fences, link)
		if (fence->seq == seq)
			return fence;
	return NULL;
}

// A fence whose command failed: it will never signal.
static void fence_drop(struct host_ctx *ctx, uint32_t seq)
{
	struct host_fence *fence = find_fence(ctx, seq);
	if (fence)
		fence_release(ctx, fence);
	check_waits(ctx->conn);
}

void host_ctx_signal_fence(struct host_ctx *ctx, uint32_t seq)
{
	struct host_fence *fence = find_fence(ctx, seq);
	if (!fence)
		return;
	uint32_t ring = fence->ring;
	fence_release(ctx, fence);
	fence_done(ctx, seq, ring);
	check_waits(ctx->conn);
}

static void resource_destroy(struct host_conn *conn, struct host_resource *res)
{
	if (res->fd >= 0)
		host_conn_put_fds(conn, 1);
	sml_close_untrusted(res->fd); // a guest's memory, or a compositor's
	res->fd = -1;
	conn->memory -= res->size;
	conn->resources[res->handle - 1] = NULL;
	conn->nresources--;
	free(res);
}

static void ctx_reap(void *data)
{
	struct host_ctx *ctx = data;
	ctx->reap = NULL;
	host_xd_destroy(ctx->xd);
	ctx->xd = NULL;
}

void host_ctx_lose(struct host_ctx *ctx, int err, const char *fmt, ...)
{
	if (ctx->lost)
		return;
	ctx->lost = true;
	if (ctx->xd)
		host_xd_hangup(ctx->xd);
	va_list ap;
	va_start(ap, fmt);
	host_conn_send_lost(ctx->conn, ctx->id, err, fmt, ap);
	va_end(ap);
	// The xd may be on the stack right now; free it from the loop.
	ctx->reap = wl_event_loop_add_idle(ctx->conn->loop, ctx_reap, ctx);
}

static void ctx_destroy(struct host_ctx *ctx)
{
	struct host_conn *conn = ctx->conn;
	if (ctx->reap)
		wl_event_source_remove(ctx->reap);
	host_xd_destroy(ctx->xd);
	struct host_fence *fence, *ftmp;
	wl_list_for_each_safe(fence, ftmp, &ctx->fences, link)
		fence_release(ctx, fence);
	for (uint32_t i = 0; i < conn->resources_cap; i++)
		if (conn->resources[i] && conn->resources[i]->ctx == ctx)
			resource_destroy(conn, conn->resources[i]);
	wl_list_remove(&ctx->link);
	conn->ncontexts--;
	free(ctx);
	check_waits(conn);
}

void host_device_quiesce(struct host_conn *conn)
{
	struct host_ctx *ctx;
	wl_list_for_each(ctx, &conn->contexts, link)
		if (ctx->xd)
			host_xd_hangup(ctx->xd);
}

void host_device_release(struct host_conn *conn)
{
	struct host_ctx *ctx, *tmp;
	wl_list_for_each_safe(ctx, tmp, &conn->contexts, link)
		ctx_destroy(ctx);
	struct host_wait *wait, *wtmp;
	wl_list_for_each_safe(wait, wtmp, &conn->waits, link)
		free(wait);
	wl_list_init(&conn->waits);
	conn->nwaits = 0;
	free(conn->resources);
	conn->resources = NULL;
	conn->resources_cap = 0;
}

int host_ctx_pipe_acquire(struct host_ctx *ctx, uint32_t fds)
{
	struct host_conn *conn = ctx->conn;
	if (conn->npipes >= conn->config->limits.max_pipes) {
		sml_warn("%s: pipe limit (%u) reached", conn->name, conn->config->limits.max_pipes);
		return -ENOSPC;
	}
	if (!host_conn_take_fds(conn, fds))
		return -EMFILE;
	conn->npipes++;
	return 0;
}

void host_ctx_pipe_release(struct host_ctx *ctx, uint32_t fds)
{
	ctx->conn->npipes--;
	host_conn_put_fds(ctx->conn, fds);
}

static bool transport_passes_fds(int fd)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	return getsockname(fd, (struct sockaddr *)&addr, &len) == 0 &&
	       addr.ss_family == AF_UNIX;
}

static void op_hello(struct host_conn *conn, const struct sdev_msg *msg)
{
	if (conn->hello_done || msg->u.hello.version != SDEV_VERSION) {
		reply_error(conn, &msg->hdr, -EPROTO, "%s HELLO version %u (this host speaks %u)",
			    conn->hello_done ? "second" : "unsupported", msg->u.hello.version,
			    SDEV_VERSION);
		host_conn_kill(conn, "handshake failed");
		return;
	}
	uint64_t offered = transport_passes_fds(conn->fd) ? SDEV_FEATURE_FD_PASSING : 0;
	conn->features = msg->u.hello.features & offered;
	conn->hello_done = true;
	struct sdev_hello reply = {
		.magic = SDEV_MAGIC, .version = SDEV_VERSION, .features = conn->features,
	};
	host_conn_send(conn, SDEV_REPLY_HELLO, msg->hdr.seq, 0, &reply, sizeof(reply), NULL, 0);
}

static void op_get_caps(struct host_conn *conn, const struct sdev_msg *msg)
{
	if (msg->u.get_caps.capset_id != CD_CAPSET_ID) {
		reply_error(conn, &msg->hdr, -EINVAL, "capset %u is not offered (only %u)",
			    msg->u.get_caps.capset_id, CD_CAPSET_ID);
		return;
	}
	struct {
		struct sdev_reply_caps hdr;
		struct cd_capabilities caps;
	} reply = { .hdr = { .capset_id = CD_CAPSET_ID, .size = sizeof(reply.caps) } };
	host_xd_capabilities(&reply.caps);
	host_conn_send(conn, SDEV_REPLY_CAPS, msg->hdr.seq, 0, &reply, sizeof(reply), NULL, 0);
}

// Applies CONTEXT_INIT parameters; returns an errno and names the culprit.
static int parse_params(const struct sdev_msg *msg, struct host_ctx *ctx, const char **why)
{
	uint32_t seen = 0;
	for (uint32_t i = 0; i < msg->u.init.num_params; i++) {
		struct sdev_context_param p = sdev_msg_param(msg, i);
		if (p.param < 1 || p.param > 3 || (seen & (1u << p.param)))
			return *why = "unknown or repeated parameter", -EINVAL;
		seen |= 1u << p.param;
		if (p.param == SDEV_CONTEXT_PARAM_CAPSET_ID && p.value != CD_CAPSET_ID)
			return *why = "capset is not cross-domain (5)", -EINVAL;
		if (p.param == SDEV_CONTEXT_PARAM_NUM_RINGS &&
		    (p.value < 1 || p.value > SDEV_MAX_RINGS))
			return *why = "number of rings out of 1..64", -EINVAL;
		if (p.param == SDEV_CONTEXT_PARAM_NUM_RINGS)
			ctx->num_rings = (uint32_t)p.value;
		if (p.param == SDEV_CONTEXT_PARAM_POLL_RINGS_MASK)
			ctx->poll_mask = p.value;
	}
	if (!(seen & (1u << SDEV_CONTEXT_PARAM_CAPSET_ID)))
		return *why = "no capset given", -EINVAL;
	if (ctx->num_rings < 64 && (ctx->poll_mask >> ctx->num_rings))
		return *why = "poll mask names rings past the number of rings", -EINVAL;
	return 0;
}

static void op_context_init(struct host_conn *conn, const struct sdev_msg *msg)
{
	const char *why = NULL;
	int err = 0;
	uint32_t id = msg->hdr.ctx_id;
	struct host_ctx *ctx = NULL;
	if (id == 0)
		err = -EINVAL, why = "context id 0 is reserved";
	else if (find_ctx(conn, id))
		err = -EEXIST, why = "context already initialized";
	else if (conn->ncontexts >= conn->config->limits.max_contexts)
		err = -ENOSPC, why = "too many contexts on this connection";
	else if (!(ctx = calloc(1, sizeof(*ctx))))
		err = -ENOMEM, why = "out of memory";
	else
		err = parse_params(msg, ctx, &why);
	if (err == 0) {
		ctx->conn = conn;
		ctx->id = id;
		wl_list_init(&ctx->fences);
		if (!(ctx->xd = host_xd_create(ctx)))
			err = -ENOMEM, why = "cannot create the cross-domain context";
	}
	if (err) {
		free(ctx);
		reply_error(conn, &msg->hdr, err, "context %u: %s", id, why);
		return;
	}
	wl_list_insert(conn->contexts.prev, &ctx->link);
	conn->ncontexts++;
	if (msg->hdr.flags & SDEV_FLAG_REPLY)
		host_conn_send(conn, SDEV_REPLY_OK, msg->hdr.seq, id, NULL, 0, NULL, 0);
}

static void op_context_destroy(struct host_conn *conn, const struct sdev_msg *msg)
{
	struct host_ctx *ctx = find_ctx(conn, msg->hdr.ctx_id);
	if (!ctx) {
		reply_error(conn, &msg->hdr, -ENOENT, "no context %u", msg->hdr.ctx_id);
		return;
	}
	ctx_destroy(ctx);
	if (msg->hdr.flags & SDEV_FLAG_REPLY)
		host_conn_send(conn, SDEV_REPLY_OK, msg->hdr.seq, msg->hdr.ctx_id, NULL, 0,
			       NULL, 0);
}

static struct host_resource *resource_add(struct host_conn *conn, struct host_ctx *ctx)
{
	uint32_t slot = 0;
	while (slot < conn->resources_cap && conn->resources[slot])
		slot++;
	if (slot == conn->resources_cap) {
		uint32_t cap = SML_MIN(SML_MAX(conn->resources_cap * 2, 16u),
				       conn->config->limits.max_resources);
		if (slot >= cap)
			return NULL;
		struct host_resource **arr = realloc(conn->resources, cap * sizeof(*arr));
		if (!arr)
			return NULL;
		memset(arr + conn->resources_cap, 0,
		       (cap - conn->resources_cap) * sizeof(*arr));
		conn->resources = arr;
		conn->resources_cap = cap;
	}
	struct host_resource *res = calloc(1, sizeof(*res));
	if (!res)
		return NULL;
	res->handle = slot + 1;
	res->ctx = ctx;
	res->fd = -1;
	conn->resources[slot] = res;
	conn->nresources++;
	return res;
}

// Finds the memory behind a new blob: the guest's fd, or the xd's.
static int blob_memory(struct host_ctx *ctx, const struct sdev_msg *msg, const int *fds,
		       int *fd_out, const char **why)
{
	const struct sdev_create_blob *b = &msg->u.blob;
	if (b->blob_mem == SDEV_BLOB_MEM_HOST3D) {
		int err = host_xd_create_blob(ctx->xd, b->blob_id, b->size, fd_out);
		*why = err == -ENOENT ? "unknown blob id" : err == -EINVAL ?
		       "blob larger than its memory" : "cannot allocate host memory";
		return err;
	}
	if (b->blob_mem != SDEV_BLOB_MEM_GUEST)
		return *why = "unknown blob_mem", -EINVAL;
	if (msg->hdr.num_fds != 1)
		return *why = "a guest blob needs its memory fd", -EINVAL;
	// A wl_shm pool may end mid-page; its blob is the page-rounded size.
	if (sml_page_round_up(sml_fd_size(fds[0])) < b->size)
		return *why = "guest fd is smaller than the blob", -EINVAL;
	*fd_out = fds[0];
	return 0;
}

static int create_blob_checks(struct host_ctx *ctx, const struct sdev_msg *msg,
			      const char **why)
{
	const struct sdev_create_blob *b = &msg->u.blob;
	struct host_conn *conn = ctx->conn;
	if (b->size == 0 || b->size % SDEV_PAGE_SIZE)
		return *why = "size is zero or not page-aligned", -EINVAL;
	if (b->blob_mem == SDEV_BLOB_MEM_HOST3D && !(conn->features & SDEV_FEATURE_FD_PASSING))
		return *why = "host blobs need fd passing (the copy transport is not "
			      "implemented)", -EOPNOTSUPP;
	if (conn->nresources >= conn->config->limits.max_resources)
		return *why = "resource limit reached", -ENOSPC;
	if (b->size > conn->config->limits.max_memory - conn->memory)
		return *why = "blob memory limit reached", -ENOMEM;
	if (msg->payload_size && host_xd_submit(ctx->xd, msg->payload, msg->payload_size,
						msg->hdr.seq) < 0)
		return *why = "its command was rejected", -EPROTO;
	return 0;
}

static void op_create_blob(struct host_conn *conn, const struct sdev_msg *msg, const int *fds)
{
	struct host_ctx *ctx = request_ctx(conn, &msg->hdr);
	const char *why = NULL;
	int fd = -1, err = ctx ? create_blob_checks(ctx, msg, &why) : -ENOENT;
	if (err == 0)
		err = blob_memory(ctx, msg, fds, &fd, &why);
	if (err == 0 && !host_conn_take_fds(conn, 1))
		err = -EMFILE, why = "fd budget reached";
	struct host_resource *res = err ? NULL : resource_add(conn, ctx);
	if (!res) {
		if (ctx && err == 0) {
			host_conn_put_fds(conn, 1);
			err = -ENOSPC, why = "resource limit reached";
		}
		if (fd >= 0 && (msg->hdr.num_fds == 0 || fd != fds[0]))
			close(fd); // the host's own memory
		for (uint8_t i = 0; i < msg->hdr.num_fds; i++)
			sml_close_untrusted(fds[i]);
		if (ctx)
			reply_error(conn, &msg->hdr, err, "create blob: %s", why);
		return;
	}
	res->fd = fd;
	res->blob_mem = msg->u.blob.blob_mem;
	res->size = msg->u.blob.size;
	conn->memory += res->size;
	struct sdev_reply_resource reply = {
		.res_handle = res->handle, .blob_mem = res->blob_mem, .size = res->size,
	};
	int out_fd = -1;
	if (res->blob_mem == SDEV_BLOB_MEM_HOST3D &&
	    (out_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		err = -errno;
		resource_destroy(conn, res);
		reply_error(conn, &msg->hdr, err, "create blob: cannot duplicate its fd");
		return;
	}
	host_conn_send(conn, SDEV_REPLY_RESOURCE, msg->hdr.seq, ctx->id, &reply, sizeof(reply),
		       &out_fd, out_fd >= 0);
}

static struct host_resource *request_resource(struct host_conn *conn, const struct sdev_msg *msg,
					      struct host_ctx **ctx_out)
{
	struct host_ctx *ctx = request_ctx(conn, &msg->hdr);
	if (!ctx)
		return NULL;
	struct host_resource *res = host_ctx_resource(ctx, msg->u.res.res_handle);
	if (!res)
		reply_error(conn, &msg->hdr, -ENOENT, "no resource %u in context %u",
			    msg->u.res.res_handle, ctx->id);
	*ctx_out = ctx;
	return res;
}

static void op_resource_destroy(struct host_conn *conn, const struct sdev_msg *msg)
{
	struct host_ctx *ctx;
	struct host_resource *res = request_resource(conn, msg, &ctx);
	if (!res)
		return;
	resource_destroy(conn, res);
	check_waits(conn);
	if (msg->hdr.flags & SDEV_FLAG_REPLY)
		host_conn_send(conn, SDEV_REPLY_OK, msg->hdr.seq, ctx->id, NULL, 0, NULL, 0);
}

static void op_resource_info(struct host_conn *conn, const struct sdev_msg *msg)
{
	struct host_ctx *ctx;
	struct host_resource *res = request_resource(conn, msg, &ctx);
	if (!res)
		return;
	struct sdev_reply_resource reply = {
		.res_handle = res->handle, .blob_mem = res->blob_mem, .size = res->size,
	};
	host_conn_send(conn, SDEV_REPLY_RESOURCE, msg->hdr.seq, ctx->id, &reply, sizeof(reply),
		       NULL, 0);
}

static void op_wait(struct host_conn *conn, const struct sdev_msg *msg)
{
	struct host_ctx *ctx = request_ctx(conn, &msg->hdr);
	struct host_resource *res = ctx ? host_ctx_resource(ctx, msg->u.wait.res_handle) : NULL;
	struct host_wait *wait = NULL;
	if (ctx && !res)
		reply_error(conn, &msg->hdr, -ENOENT, "no resource %u", msg->u.wait.res_handle);
	else if (res && !res->busy)
		host_conn_send(conn, SDEV_REPLY_OK, msg->hdr.seq, ctx->id, NULL, 0, NULL, 0);
	else if (res && (msg->u.wait.flags & SDEV_WAIT_NOWAIT))
		reply_error(conn, &msg->hdr, -EBUSY, "resource %u is busy", res->handle);
	else if (res && conn->nwaits >= SDEV_MAX_WAITS)
		reply_error(conn, &msg->hdr, -EBUSY, "%u waits outstanding already",
			    conn->nwaits);
	else if (res && !(wait = calloc(1, sizeof(*wait))))
		reply_error(conn, &msg->hdr, -ENOMEM, "out of memory");
	if (!wait)
		return;
	*wait = (struct host_wait){ .seq = msg->hdr.seq, .ctx_id = ctx->id,
				    .res_handle = res->handle };
	wl_list_insert(conn->waits.prev, &wait->link);
	conn->nwaits++;
}

static int exec_checks(struct host_ctx *ctx, const struct sdev_msg *msg, uint32_t *ring,
		       const char **why)
{
	const struct sdev_execbuffer *e = &msg->u.exec;
	if (e->flags & ~SDEV_EXECBUF_RING_IDX)
		return *why = "unknown execbuffer flag", -EINVAL;
	bool ring_idx = e->flags & SDEV_EXECBUF_RING_IDX;
	*ring = ring_idx ? e->ring_idx : 0;
	if (ring_idx && *ring >= ctx->num_rings)
		return *why = "ring index past the number of rings", -EINVAL;
	for (uint32_t i = 0; i < e->num_bo_handles; i++)
		if (!host_ctx_resource(ctx, sdev_msg_bo_handle(msg, i)))
			return *why = "unknown bo handle", -ENOENT;
	return 0;
}

static bool fence_add(struct host_ctx *ctx, const struct sdev_msg *msg, uint32_t ring)
{
	struct host_fence *fence = calloc(1, sizeof(*fence));
	uint32_t n = msg->u.exec.num_bo_handles;
	if (!fence || (n && !(fence->bo = calloc(n, sizeof(uint32_t))))) {
		free(fence);
		return false;
	}
	fence->seq = msg->hdr.seq;
	fence->ring = ring;
	fence->nbo = n;
	for (uint32_t i = 0; i < n; i++) {
		fence->bo[i] = sdev_msg_bo_handle(msg, i);
		host_ctx_resource(ctx, fence->bo[i])->busy++;
	}
	wl_list_insert(ctx->fences.prev, &fence->link);
	return true;
}

static void op_execbuffer(struct host_conn *conn, const struct sdev_msg *msg)
{
	struct host_ctx *ctx = request_ctx(conn, &msg->hdr);
	const char *why = NULL;
	uint32_t ring = 0;
	if (!ctx)
		return;
	int err = exec_checks(ctx, msg, &ring, &why);
	if (err) {
		reply_error(conn, &msg->hdr, err, "execbuffer: %s", why);
		return;
	}
	// The fence exists before the command runs: a POLL may complete at once.
	if (!fence_add(ctx, msg, ring)) {
		reply_error(conn, &msg->hdr, -ENOMEM, "execbuffer: out of memory");
		return;
	}
	int ret = host_xd_submit(ctx->xd, msg->payload, msg->payload_size, msg->hdr.seq);
	if (ret < 0) {
		fence_drop(ctx, msg->hdr.seq);
		reply_error(conn, &msg->hdr, ret, "execbuffer: command rejected, context lost");
		return;
	}
	if (ret == 0)
		host_ctx_signal_fence(ctx, msg->hdr.seq);
	if (msg->hdr.flags & SDEV_FLAG_REPLY)
		host_conn_send(conn, SDEV_REPLY_OK, msg->hdr.seq, ctx->id, NULL, 0, NULL, 0);
}

void host_device_dispatch(struct host_conn *conn, const struct sdev_msg *msg, const int *fds)
{
	if (!conn->hello_done && msg->hdr.type != SDEV_HELLO) {
		reply_error(conn, &msg->hdr, -EPROTO, "HELLO must come first");
		host_conn_kill(conn, "no handshake");
	}
	switch (conn->dead ? 0 : msg->hdr.type) {
	case SDEV_HELLO:
		op_hello(conn, msg);
		return;
	case SDEV_GET_CAPS:
		op_get_caps(conn, msg);
		return;
	case SDEV_CONTEXT_INIT:
		op_context_init(conn, msg);
		return;
	case SDEV_CONTEXT_DESTROY:
		op_context_destroy(conn, msg);
		return;
	case SDEV_RESOURCE_CREATE_BLOB:
		op_create_blob(conn, msg, fds);
		return;
	case SDEV_RESOURCE_DESTROY:
		op_resource_destroy(conn, msg);
		return;
	case SDEV_EXECBUFFER:
		op_execbuffer(conn, msg);
		return;
	case SDEV_WAIT:
		op_wait(conn, msg);
		return;
	case SDEV_RESOURCE_INFO:
		op_resource_info(conn, msg);
		return;
	}
	for (uint8_t i = 0; i < msg->hdr.num_fds; i++)
		sml_close_untrusted(fds[i]);
}
