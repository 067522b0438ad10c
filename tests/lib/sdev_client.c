// SPDX-License-Identifier: MIT
#include "sdev_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdpass.h"
#include "harness.h"
#include "util.h"

struct sdev_client *sdev_client_connect_raw(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	return sdev_client_from_fd(fd);
}

struct sdev_client *sdev_client_from_fd(int fd)
{
	struct sdev_client *c = calloc(1, sizeof(*c));
	CHECK(c != NULL);
	c->fd = fd;
	return c;
}

struct sdev_client *sdev_client_connect(const char *path)
{
	struct sdev_client *c = sdev_client_connect_raw(path);
	if (!c)
		return NULL;
	struct sdev_hello hello = { .magic = SDEV_MAGIC, .version = SDEV_VERSION,
				    .features = SDEV_FEATURE_FD_PASSING };
	uint32_t seq = sdev_client_send(c, SDEV_HELLO, 0, 0, &hello, sizeof(hello), NULL, 0,
					NULL, 0);
	struct test_msg *m = sdev_client_wait(c, SDEV_REPLY_HELLO, seq, UINT32_MAX, 5000);
	CHECK(m != NULL);
	CHECK(m->msg.u.hello.features == SDEV_FEATURE_FD_PASSING);
	free(m);
	return c;
}

static void free_msg(struct test_msg *m)
{
	for (uint8_t i = 0; m && i < m->msg.hdr.num_fds; i++)
		if (m->fds[i] >= 0)
			close(m->fds[i]);
	free(m);
}

void sdev_client_destroy(struct sdev_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nbacklog; i++)
		free_msg(c->backlog[i]);
	for (size_t i = 0; i < c->in_nfds; i++)
		close(c->in_fds[i]);
	close(c->fd);
	free(c);
}

static void send_all(struct sdev_client *c, const void *data, size_t size, const int *fds,
		     size_t nfds)
{
	ssize_t n = sml_send_fds(c->fd, data, size, fds, nfds, 0);
	if (n < 0 && errno == EPIPE)
		return; // the host closed us; the test's next wait will see it
	CHECK(n == (ssize_t)size);
}

uint32_t sdev_client_send(struct sdev_client *c, uint16_t type, uint8_t flags,
			  uint32_t ctx_id, const void *a, size_t a_size, const void *b,
			  size_t b_size, const int *fds, uint8_t nfds)
{
	static uint8_t buf[SDEV_MAX_MSG_SIZE];
	struct sdev_writer w;
	uint32_t seq = ++c->seq;
	sdev_writer_begin(&w, buf, sizeof(buf), type, flags, seq, ctx_id, nfds);
	sdev_writer_put(&w, a, a_size);
	sdev_writer_put(&w, b, b_size);
	size_t len = sdev_writer_end(&w);
	CHECK(len > 0);
	send_all(c, buf, len, fds, nfds);
	return seq;
}

void sdev_client_send_raw(struct sdev_client *c, const void *data, size_t size)
{
	send_all(c, data, size, NULL, 0);
}

// Reads more bytes and fds; false on EOF or timeout.
static bool read_some(struct sdev_client *c, int timeout_ms)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return false;
	size_t nfds;
	bool truncated;
	ssize_t n = sml_recv_fds(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len,
				 c->in_fds + c->in_nfds, SML_ARRAY_LEN(c->in_fds) - c->in_nfds,
				 &nfds, &truncated, 0);
	c->in_nfds += nfds;
	CHECK(!truncated);
	if (n <= 0)
		return false;
	c->in_len += (size_t)n;
	return true;
}

// Takes one complete message out of the input buffer, or NULL.
static struct test_msg *take_msg(struct sdev_client *c)
{
	struct sdev_msg msg;
	enum sdev_error err = sdev_decode(c->in, c->in_len, false, &msg);
	if (err == SDEV_ERR_NEED_MORE)
		return NULL;
	if (err != SDEV_OK) {
		fprintf(stderr, "host sent a malformed message: %s\n", sdev_strerror(err));
		exit(1);
	}
	struct test_msg *m = calloc(1, sizeof(*m));
	CHECK(m != NULL);
	memcpy(m->raw, c->in, msg.hdr.size);
	CHECK(sdev_decode(m->raw, msg.hdr.size, false, &m->msg) == SDEV_OK);
	CHECK(c->in_nfds >= msg.hdr.num_fds);
	memcpy(m->fds, c->in_fds, msg.hdr.num_fds * sizeof(int));
	c->in_nfds -= msg.hdr.num_fds;
	memmove(c->in_fds, c->in_fds + msg.hdr.num_fds, c->in_nfds * sizeof(int));
	memmove(c->in, c->in + msg.hdr.size, c->in_len - msg.hdr.size);
	c->in_len -= msg.hdr.size;
	return m;
}

static bool matches(const struct test_msg *m, uint16_t type, uint32_t seq, uint32_t ctx_id)
{
	uint16_t t = m->msg.hdr.type;
	bool type_ok = !type || t == type ||
		       (type == TEST_ANY_REPLY && t >= SDEV_REPLY_HELLO && t <= SDEV_REPLY_ERROR);
	return type_ok && (seq == UINT32_MAX || m->msg.hdr.seq == seq) &&
	       (ctx_id == UINT32_MAX || m->msg.hdr.ctx_id == ctx_id);
}

static struct test_msg *from_backlog(struct sdev_client *c, uint16_t type, uint32_t seq,
				     uint32_t ctx_id)
{
	for (size_t i = 0; i < c->nbacklog; i++) {
		struct test_msg *m = c->backlog[i];
		if (!matches(m, type, seq, ctx_id))
			continue;
		memmove(c->backlog + i, c->backlog + i + 1, (c->nbacklog - i - 1) * sizeof(m));
		c->nbacklog--;
		return m;
	}
	return NULL;
}

struct test_msg *sdev_client_wait(struct sdev_client *c, uint16_t type, uint32_t seq,
				  uint32_t ctx_id, int timeout_ms)
{
	struct test_msg *m = from_backlog(c, type, seq, ctx_id);
	uint64_t deadline = sml_now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (!m) {
		while (!m && (m = take_msg(c))) {
			if (matches(m, type, seq, ctx_id))
				break;
			if (c->nbacklog == TEST_BACKLOG)
				free_msg(c->backlog[--c->nbacklog]);
			memmove(c->backlog + 1, c->backlog, c->nbacklog * sizeof(m));
			c->backlog[0] = m; // newest first is fine: waits match by seq
			c->nbacklog++;
			m = NULL;
		}
		uint64_t now = sml_now_ns();
		if (m || now >= deadline || !read_some(c, (int)((deadline - now) / 1000000u) + 1))
			break;
	}
	return m;
}

bool sdev_client_wait_eof(struct sdev_client *c, int timeout_ms)
{
	uint64_t deadline = sml_now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (sml_now_ns() < deadline) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		char buf[4096];
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
	}
	return false;
}

int test_msg_error(const struct test_msg *m)
{
	return m && (m->msg.hdr.type == SDEV_REPLY_ERROR ||
		     m->msg.hdr.type == SDEV_EVENT_CONTEXT_LOST) ? m->msg.u.error.error : 0;
}

static struct test_msg *wait_reply(struct sdev_client *c, uint32_t seq)
{
	struct test_msg *m = sdev_client_wait(c, TEST_ANY_REPLY, seq, UINT32_MAX, 10000);
	CHECK(m != NULL);
	return m;
}

static int reply_status(struct test_msg *m)
{
	int err = test_msg_error(m);
	free_msg(m);
	return err;
}

int sdev_client_create_guest_blob(struct sdev_client *c, uint32_t ctx_id, int memfd,
				  uint64_t size, uint32_t *handle)
{
	struct sdev_create_blob b = { .blob_mem = SDEV_BLOB_MEM_GUEST,
				      .blob_flags = SDEV_BLOB_FLAG_USE_MAPPABLE, .size = size };
	uint32_t seq = sdev_client_send(c, SDEV_RESOURCE_CREATE_BLOB, 0, ctx_id, &b, sizeof(b),
					NULL, 0, &memfd, memfd >= 0);
	struct test_msg *m = wait_reply(c, seq);
	if (m->msg.hdr.type == SDEV_REPLY_RESOURCE)
		*handle = m->msg.u.resource.res_handle;
	return reply_status(m);
}

int sdev_client_create_host_blob(struct sdev_client *c, uint32_t ctx_id, uint64_t blob_id,
				 uint64_t size, uint32_t *handle, int *fd)
{
	struct sdev_create_blob b = {
		.blob_mem = SDEV_BLOB_MEM_HOST3D,
		.blob_flags = SDEV_BLOB_FLAG_USE_MAPPABLE | SDEV_BLOB_FLAG_USE_SHAREABLE,
		.size = size, .blob_id = blob_id,
	};
	uint32_t seq = sdev_client_send(c, SDEV_RESOURCE_CREATE_BLOB, 0, ctx_id, &b, sizeof(b),
					NULL, 0, NULL, 0);
	struct test_msg *m = wait_reply(c, seq);
	*fd = -1;
	if (m->msg.hdr.type == SDEV_REPLY_RESOURCE) {
		*handle = m->msg.u.resource.res_handle;
		CHECK_EQ(m->msg.hdr.num_fds, 1);
		*fd = m->fds[0];
		m->fds[0] = -1;
	}
	return reply_status(m);
}

int sdev_client_context_init(struct sdev_client *c, uint32_t ctx_id, uint32_t capset,
			     uint32_t num_rings, uint64_t poll_mask)
{
	struct sdev_context_init init = { .num_params = 3 };
	struct sdev_context_param params[3] = {
		{ SDEV_CONTEXT_PARAM_CAPSET_ID, capset },
		{ SDEV_CONTEXT_PARAM_NUM_RINGS, num_rings },
		{ SDEV_CONTEXT_PARAM_POLL_RINGS_MASK, poll_mask },
	};
	uint32_t seq = sdev_client_send(c, SDEV_CONTEXT_INIT, SDEV_FLAG_REPLY, ctx_id, &init,
					sizeof(init), params, sizeof(params), NULL, 0);
	return reply_status(wait_reply(c, seq));
}

int sdev_client_exec(struct sdev_client *c, uint32_t ctx_id, uint32_t flags, uint32_t ring,
		     const uint32_t *bos, uint32_t nbos, const void *cmd, size_t size,
		     uint32_t *seq_out)
{
	uint8_t body[SDEV_MAX_MSG_SIZE];
	struct sdev_execbuffer e = { .flags = flags, .ring_idx = ring, .num_bo_handles = nbos,
				     .cmd_size = (uint32_t)size };
	memcpy(body, bos, nbos * sizeof(uint32_t));
	memcpy(body + nbos * sizeof(uint32_t), cmd, size);
	uint32_t seq = sdev_client_send(c, SDEV_EXECBUFFER, SDEV_FLAG_REPLY, ctx_id, &e,
					sizeof(e), body, nbos * sizeof(uint32_t) + size, NULL, 0);
	if (seq_out)
		*seq_out = seq;
	return reply_status(wait_reply(c, seq));
}

static int ring_memfd(uint8_t **map)
{
	int fd = sml_memfd_create("test-ring", CD_RING_SIZE);
	CHECK(fd >= 0);
	*map = mmap(NULL, CD_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(*map != MAP_FAILED);
	return fd;
}

void test_ctx_create(struct sdev_client *c, uint32_t id, struct test_ctx *t)
{
	*t = (struct test_ctx){ .c = c, .id = id };
	CHECK_EQ(sdev_client_context_init(c, id, CD_CAPSET_ID, 2, 1u << CD_CHANNEL_RING), 0);
	t->query_fd = ring_memfd(&t->query);
	t->channel_fd = ring_memfd(&t->channel);
	CHECK_EQ(sdev_client_create_guest_blob(c, id, t->query_fd, CD_RING_SIZE, &t->query_res), 0);
	CHECK_EQ(sdev_client_create_guest_blob(c, id, t->channel_fd, CD_RING_SIZE,
					       &t->channel_res), 0);
	uint8_t cmd[64];
	size_t len = cd_encode_init(cmd, sizeof(cmd), t->query_res, t->channel_res,
				    CD_CHANNEL_WAYLAND);
	CHECK_EQ(sdev_client_exec(c, id, 0, 0, NULL, 0, cmd, len, NULL), 0);
}

void test_ctx_destroy(struct test_ctx *t)
{
	uint32_t seq = sdev_client_send(t->c, SDEV_CONTEXT_DESTROY, SDEV_FLAG_REPLY, t->id, NULL,
					0, NULL, 0, NULL, 0);
	CHECK_EQ(reply_status(wait_reply(t->c, seq)), 0);
	test_ctx_forget(t);
}

void test_ctx_forget(struct test_ctx *t)
{
	munmap(t->query, CD_RING_SIZE);
	munmap(t->channel, CD_RING_SIZE);
	close(t->query_fd);
	close(t->channel_fd);
}

int test_ctx_send(struct test_ctx *t, const void *data, uint32_t size, uint32_t n,
		  const uint32_t *ids, const uint32_t *types)
{
	uint8_t cmd[CD_RING_SIZE];
	uint32_t sizes[CD_MAX_IDENTIFIERS] = { 0 };
	size_t len = cd_encode_send_receive(cmd, sizeof(cmd), CD_CMD_SEND, false, n, ids, types,
					    sizes, data, size);
	CHECK(len > 0);
	return sdev_client_exec(t->c, t->id, 0, 0, NULL, 0, cmd, len, NULL);
}

bool test_ctx_poll(struct test_ctx *t, struct cd_command *out, uint8_t copy[CD_RING_SIZE],
		   int timeout_ms)
{
	if (!t->polling) {
		uint8_t cmd[32];
		size_t len = cd_encode_poll(cmd, sizeof(cmd));
		struct sdev_execbuffer e = { .flags = SDEV_EXECBUF_RING_IDX,
					     .ring_idx = CD_CHANNEL_RING, .cmd_size = (uint32_t)len };
		t->poll_seq = sdev_client_send(t->c, SDEV_EXECBUFFER, 0, t->id, &e, sizeof(e), cmd,
					       len, NULL, 0);
		t->polling = true;
	}
	struct test_msg *m = sdev_client_wait(t->c, SDEV_EVENT_FENCE, t->poll_seq, t->id,
					      timeout_ms);
	if (!m)
		return false;
	CHECK_EQ(m->msg.u.fence.ring_idx, CD_CHANNEL_RING);
	free_msg(m);
	t->polling = false;
	memcpy(copy, t->channel, CD_RING_SIZE);
	CHECK_EQ(cd_decode_ring_event(copy, CD_RING_SIZE, out), CD_OK);
	return true;
}

void test_msg_free(struct test_msg *m)
{
	free_msg(m);
}
