// SPDX-License-Identifier: MIT
// sommelier-host in front of a real headless weston, driven over the socket
// device exactly as a guest would: registry round trips, shm pools from
// guest memory, image requirements and host blobs, compositor EOF, rejected
// input that ends one context (or one connection) and nothing else, and no
// fd growth over hundreds of context cycles.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "sdev_client.h"
#include "util.h"
#include "wire.h"

#define DRM_FORMAT_ARGB8888 0x34325241u
#define TIMEOUT 5000

static char host_sock[256];
static pid_t host_pid;

struct globals {
	char names[64][64];
	uint32_t ids[64], versions[64];
	int n;
};

// Polls until the callback `cb` is done, feeding every message to `on_msg`.
static void round_trip(struct test_ctx *t, uint32_t cb, struct globals *g)
{
	struct wire_stream *s = calloc(1, sizeof(*s));
	CHECK(s != NULL);
	for (bool done = false; !done;) {
		struct cd_command ev;
		uint8_t page[CD_RING_SIZE];
		CHECK(test_ctx_poll(t, &ev, page, TIMEOUT));
		CHECK_EQ(ev.cmd, CD_CMD_RECEIVE);
		CHECK(ev.data_size > 0); // no EOF from a healthy compositor
		wire_stream_push(s, ev.data, ev.data_size);
		for (struct wire_message m; wire_stream_next(s, &m);) {
			CHECK(!(m.obj == 1 && m.opcode == 0)); // wl_display.error
			if (m.obj == cb && m.opcode == 0)
				done = true;
			if (g && m.obj == 2 && m.opcode == 0 && g->n < 64) {
				g->ids[g->n] = wire_arg_u32(&m, 0);
				wire_arg_string(&m, 1, g->names[g->n], sizeof(g->names[0]));
				g->versions[g->n] = wire_arg_u32(&m, 1 + (wire_arg_u32(&m, 1) + 3) / 4 + 1);
				g->n++;
			}
		}
	}
	free(s);
}

static int find_global(const struct globals *g, const char *name)
{
	for (int i = 0; i < g->n; i++)
		if (strcmp(g->names[i], name) == 0)
			return i;
	return -1;
}

static void get_globals(struct test_ctx *t, struct globals *g)
{
	uint8_t msg[64];
	size_t len = 0;
	wire_put(msg, &len, 1, 1, "n", 2); // wl_display.get_registry
	wire_put(msg, &len, 1, 0, "n", 3); // wl_display.sync
	CHECK_EQ(test_ctx_send(t, msg, (uint32_t)len, 0, NULL, NULL), 0);
	memset(g, 0, sizeof(*g));
	round_trip(t, 3, g);
}

static void sync_round_trip(struct test_ctx *t, uint32_t new_id)
{
	uint8_t msg[16];
	size_t len = 0;
	wire_put(msg, &len, 1, 0, "n", new_id);
	CHECK_EQ(test_ctx_send(t, msg, (uint32_t)len, 0, NULL, NULL), 0);
	round_trip(t, new_id, NULL);
}

static void test_registry(void)
{
	struct sdev_client *c = sdev_client_connect(host_sock);
	struct test_ctx t;
	struct globals g;
	CHECK(c != NULL);
	test_ctx_create(c, 1, &t);
	get_globals(&t, &g);
	CHECK(find_global(&g, "wl_compositor") >= 0);
	CHECK(find_global(&g, "wl_shm") >= 0);
	CHECK(find_global(&g, "xdg_wm_base") >= 0);
	CHECK(find_global(&g, "wl_output") >= 0);
	CHECK(g.versions[find_global(&g, "wl_compositor")] >= 4);
	printf("registry: %d globals through the host peer\n", g.n);
	test_ctx_destroy(&t);
	sdev_client_destroy(c);
}

// The 16-byte INIT of older guests: one ring serves both purposes.
static void test_legacy_init(void)
{
	struct sdev_client *c = sdev_client_connect(host_sock);
	struct test_ctx t = { .c = c, .id = 1 };
	CHECK_EQ(sdev_client_context_init(c, 1, CD_CAPSET_ID, 2, 1u << CD_CHANNEL_RING), 0);
	t.query_fd = sml_memfd_create("ring", CD_RING_SIZE);
	t.channel_fd = sml_memfd_create("unused", CD_RING_SIZE);
	t.query = mmap(NULL, CD_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, t.query_fd, 0);
	t.channel = t.query; // events arrive in the only ring
	t.channel_res = 0;
	CHECK(t.query != MAP_FAILED);
	CHECK_EQ(sdev_client_create_guest_blob(c, 1, t.query_fd, CD_RING_SIZE, &t.query_res), 0);
	struct cd_init_legacy init = {
		.hdr = { .cmd = CD_CMD_INIT, .cmd_size = sizeof(init) },
		.query_ring_id = t.query_res, .channel_type = CD_CHANNEL_WAYLAND,
	};
	CHECK_EQ(sdev_client_exec(c, 1, 0, 0, NULL, 0, &init, sizeof(init), NULL), 0);
	struct globals g;
	get_globals(&t, &g);
	CHECK(find_global(&g, "wl_compositor") >= 0);
	munmap(t.query, CD_RING_SIZE);
	close(t.query_fd);
	close(t.channel_fd);
	sdev_client_destroy(c);
}

// A guest may destroy the resources of its rings while the context runs (a
// kernel client may close their GEM handles): the context keeps its own
// mappings, so the host neither crashes nor writes into freed memory.
static void test_ring_destroyed(void)
{
	struct sdev_client *c = sdev_client_connect(host_sock);
	struct test_ctx t;
	test_ctx_create(c, 1, &t);
	struct cd_command ev;
	uint8_t page[CD_RING_SIZE];
	CHECK(!test_ctx_poll(&t, &ev, page, 10)); // a POLL waits
	uint32_t rings[2] = { t.channel_res, t.query_res };
	for (int i = 0; i < 2; i++) {
		struct sdev_resource r = { .res_handle = rings[i] };
		uint32_t seq = sdev_client_send(c, SDEV_RESOURCE_DESTROY, SDEV_FLAG_REPLY, 1, &r,
						sizeof(r), NULL, 0, NULL, 0);
		struct test_msg *m = sdev_client_wait(c, TEST_ANY_REPLY, seq, UINT32_MAX, TIMEOUT);
		CHECK(m && m->msg.hdr.type == SDEV_REPLY_OK);
		test_msg_free(m);
	}
	sync_round_trip(&t, 2); // events still arrive in the guest's ring memory
	CHECK(kill(host_pid, 0) == 0);
	test_ctx_forget(&t);
	sdev_client_destroy(c);
}

// A wl_shm pool whose memory is a guest blob: the fd reaches weston, which
// accepts the pool and a buffer in it.
static void test_shm_pool_from_guest_blob(void)
{
	struct sdev_client *c = sdev_client_connect(host_sock);
	struct test_ctx t;
	struct globals g;
	test_ctx_create(c, 1, &t);
	get_globals(&t, &g);
	int shm = find_global(&g, "wl_shm");
	CHECK(shm >= 0);

	int memfd = sml_memfd_create("pool", 64 * 64 * 4);
	uint32_t res;
	CHECK_EQ(sdev_client_create_guest_blob(c, 1, memfd, 64 * 64 * 4, &res), 0);
	uint8_t msg[256];
	size_t len = 0;
	wire_put(msg, &len, 2, 0, "usun", g.ids[shm], "wl_shm", 1, 4); // wl_registry.bind
	wire_put(msg, &len, 4, 0, "nhi", 5, 64 * 64 * 4); // wl_shm.create_pool
	wire_put(msg, &len, 5, 0, "niiiiu", 6, 0, 64, 64, 256, 0); // create_buffer
	wire_put(msg, &len, 1, 0, "n", 7);
	uint32_t type = CD_ID_VIRTGPU_BLOB;
	CHECK_EQ(test_ctx_send(&t, msg, (uint32_t)len, 1, &res, &type), 0);
	round_trip(&t, 7, NULL); // fails on wl_display.error
	test_ctx_destroy(&t);
	close(memfd);
	sdev_client_destroy(c);
}

static void query_image(struct test_ctx *t, uint32_t w, uint32_t h, uint32_t format,
			struct cd_image_requirements *reqs)
{
	uint8_t cmd[64];
	size_t len = cd_encode_get_image_requirements(cmd, sizeof(cmd), w, h, format,
						      CD_USE_LINEAR | CD_USE_SCANOUT);
	CHECK_EQ(sdev_client_exec(t->c, t->id, SDEV_EXECBUF_RING_IDX, CD_QUERY_RING,
				  &t->query_res, 1, cmd, len, NULL), 0);
	struct sdev_wait wait = { .res_handle = t->query_res };
	uint32_t seq = sdev_client_send(t->c, SDEV_WAIT, 0, t->id, &wait, sizeof(wait), NULL, 0,
					NULL, 0);
	struct test_msg *m = sdev_client_wait(t->c, TEST_ANY_REPLY, seq, t->id, TIMEOUT);
	CHECK(m != NULL && m->msg.hdr.type == SDEV_REPLY_OK);
	test_msg_free(m);
	memcpy(reqs, t->query, sizeof(*reqs));
}

static void test_image_requirements(void)
{
	struct sdev_client *c = sdev_client_connect(host_sock);
	struct test_ctx t;
	test_ctx_create(c, 1, &t);
	struct cd_image_requirements r, again, other;
	query_image(&t, 1920, 1080, DRM_FORMAT_ARGB8888, &r);
	CHECK_EQ(r.strides[0], 7680);
	CHECK_EQ(r.offsets[0], 0);
	CHECK_EQ(r.size, 7680u * 1080u);
	CHECK(r.blob_id != 0);
	query_image(&t, 1920, 1080, DRM_FORMAT_ARGB8888, &again);
	CHECK_EQ(again.blob_id, r.blob_id); // cached
	query_image(&t, 640, 480, DRM_FORMAT_ARGB8888, &other);
	CHECK(other.blob_id != r.blob_id);

	uint32_t res, res2;
	int fd, fd2;
	CHECK_EQ(sdev_client_create_host_blob(c, 1, r.blob_id, r.size, &res, &fd), 0);
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && (uint64_t)st.st_size == r.size);
	uint8_t *map = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(map != MAP_FAILED);
	map[r.size - 1] = 0x5a;
	munmap(map, r.size);
	// Every creation from requirements is a fresh allocation.
	CHECK_EQ(sdev_client_create_host_blob(c, 1, r.blob_id, r.size, &res2, &fd2), 0);
	CHECK(res2 != res);
	close(fd2);
	CHECK_EQ(sdev_client_create_host_blob(c, 1, r.blob_id, r.size + 4096, &res2, &fd2),
		 -EINVAL);
	CHECK_EQ(sdev_client_create_host_blob(c, 1, 0x7777, 4096, &res2, &fd2), -ENOENT);

	// An unknown format is answered with size 0 and the context lives on.
	struct cd_image_requirements bad;
	query_image(&t, 64, 64, 0x20202020, &bad);
	CHECK_EQ(bad.size, 0);
	sync_round_trip(&t, 2);
	close(fd);
	test_ctx_destroy(&t);
	sdev_client_destroy(c);
}

// A window resized through thousands of sizes never runs out of image ids:
// a context keeps the 256 layouts asked for last (the oldest id goes), and
// thousands of ids across contexts cost the daemon next to no memory.
static void test_many_image_layouts(void)
{
	struct sdev_client *c = sdev_client_connect(host_sock);
	struct test_ctx t[4];
	struct cd_image_requirements first, kept, r;
	long rss_before = harness_rss_kib(host_pid);
	for (uint32_t n = 0; n < 4; n++) {
		test_ctx_create(c, 10 + n, &t[n]);
		query_image(&t[n], 64, 64, DRM_FORMAT_ARGB8888, &first);
		query_image(&t[n], 64, 65, DRM_FORMAT_ARGB8888, &kept);
		for (uint32_t i = 0; i < 2000; i++) {
			if (i % 200 == 0) // asked for again: the most recently used
				query_image(&t[n], 64, 65, DRM_FORMAT_ARGB8888, &r);
			query_image(&t[n], 100 + i, 64, DRM_FORMAT_ARGB8888, &r);
			CHECK(r.size != 0 && r.blob_id != 0);
		}
	}
	long rss_after = harness_rss_kib(host_pid);
	uint32_t res;
	int fd;
	CHECK_EQ(sdev_client_create_host_blob(c, 13, first.blob_id, first.size, &res, &fd),
		 -ENOENT);
	CHECK_EQ(sdev_client_create_host_blob(c, 13, kept.blob_id, kept.size, &res, &fd), 0);
	close(fd);
	CHECK_EQ(sdev_client_create_host_blob(c, 13, r.blob_id, r.size, &res, &fd), 0);
	close(fd);
	query_image(&t[3], 64, 64, DRM_FORMAT_ARGB8888, &r); // forgotten, so asked anew
	CHECK(r.size == first.size && r.blob_id != first.blob_id);
	printf("8000 image layouts in 4 contexts: daemon RSS %ld -> %ld KiB\n", rss_before,
	       rss_after);
	CHECK(rss_after - rss_before < 2048);
	for (uint32_t n = 0; n < 4; n++)
		test_ctx_destroy(&t[n]);
	sdev_client_destroy(c);
}

// fds the daemon sends wait in the guest's socket until it reads them, and
// the kernel counts them against the daemon's user (RLIMIT_NOFILE of fds
// in flight): a guest that never reads must hold a few, not hundreds.
static void test_unread_fds_bounded(void)
{
	struct sdev_client *c = sdev_client_connect(host_sock);
	struct test_ctx t;
	struct cd_image_requirements r;
	test_ctx_create(c, 1, &t);
	query_image(&t, 64, 64, DRM_FORMAT_ARGB8888, &r);
	struct {
		struct sdev_header h;
		struct sdev_create_blob b;
	} req = {
		{ .type = SDEV_RESOURCE_CREATE_BLOB, .size = sizeof(req), .ctx_id = 1 },
		{ .blob_mem = SDEV_BLOB_MEM_HOST3D, .size = r.size, .blob_id = r.blob_id,
		  .blob_flags = SDEV_BLOB_FLAG_USE_MAPPABLE | SDEV_BLOB_FLAG_USE_SHAREABLE },
	};
	// Until the daemon gives up on us (it closes the connection).
	for (uint32_t i = 0; i < 1000; i++) {
		req.h.seq = 1000 + i;
		if (send(c->fd, &req, sizeof(req), MSG_NOSIGNAL) != sizeof(req))
			break;
	}
	usleep(300000); // the daemon sends what its socket takes, queues, then gives up
	unsigned fds = 0, msgs = 0;
	struct test_msg *m;
	while ((m = sdev_client_wait(c, 0, UINT32_MAX, UINT32_MAX, 1000))) {
		fds += m->msg.hdr.num_fds;
		msgs++;
		test_msg_free(m);
	}
	printf("a guest that did not read: %u messages with %u fds were waiting for it\n", msgs,
	       fds);
	CHECK(fds > 0 && fds < 128);
	test_ctx_forget(&t);
	sdev_client_destroy(c);
}

// weston answers a request on an unknown object with wl_display.error and
// closes the client: the guest sees the error, then a zero-length RECEIVE.
static void test_compositor_eof(void)
{
	struct sdev_client *c = sdev_client_connect(host_sock);
	struct test_ctx t;
	test_ctx_create(c, 1, &t);
	uint8_t msg[16];
	size_t len = 0;
	wire_put(msg, &len, 99, 0, "");
	CHECK_EQ(test_ctx_send(&t, msg, (uint32_t)len, 0, NULL, NULL), 0);
	bool saw_error = false;
	for (;;) {
		struct cd_command ev;
		uint8_t page[CD_RING_SIZE];
		CHECK(test_ctx_poll(&t, &ev, page, TIMEOUT));
		CHECK_EQ(ev.cmd, CD_CMD_RECEIVE);
		if (ev.data_size == 0 && ev.u.sr.num_identifiers == 0)
			break;
		uint32_t obj, word;
		memcpy(&obj, ev.data, 4);
		memcpy(&word, ev.data + 4, 4);
		saw_error |= obj == 1 && (word & 0xffff) == 0;
	}
	CHECK(saw_error);
	// After EOF, SENDs are dropped quietly and a POLL simply waits.
	CHECK_EQ(test_ctx_send(&t, msg, (uint32_t)len, 0, NULL, NULL), 0);
	struct cd_command ev;
	uint8_t page[CD_RING_SIZE];
	CHECK(!test_ctx_poll(&t, &ev, page, 300));
	test_ctx_destroy(&t);
	sdev_client_destroy(c);
}

// ---- rejected input ------------------------------------------------------

static size_t send_cmd(uint8_t *buf, uint32_t n, uint32_t type, uint32_t data_size)
{
	uint32_t ids[CD_MAX_IDENTIFIERS] = { 0 }, types[CD_MAX_IDENTIFIERS], sizes[28] = { 0 };
	uint8_t data[64] = { 0 };
	for (int i = 0; i < 28; i++)
		types[i] = type;
	return cd_encode_send_receive(buf, CD_RING_SIZE, CD_CMD_SEND, false, n > 28 ? 28 : n,
				      ids, types, sizes, data, data_size);
}

static void set_u32(uint8_t *buf, size_t off, uint32_t v)
{
	memcpy(buf + off, &v, 4);
}

static void set_u16(uint8_t *buf, size_t off, uint16_t v)
{
	memcpy(buf + off, &v, 2);
}

struct bad_case {
	const char *name;
	size_t (*make)(uint8_t *buf, const struct test_ctx *t);
	bool polling_first; // leave a POLL outstanding before the bad command
	bool skip_init; // the context never got its cross-domain INIT
};

static size_t bad_cmd_size_zero(uint8_t *b, const struct test_ctx *t)
{
	size_t n = cd_encode_poll(b, 64);
	set_u16(b, 2, 0);
	return n;
}

static size_t bad_cmd_size_short(uint8_t *b, const struct test_ctx *t)
{
	size_t n = send_cmd(b, 0, 0, 16);
	set_u16(b, 2, 100);
	return n;
}

static size_t bad_cmd_size_past(uint8_t *b, const struct test_ctx *t)
{
	size_t n = send_cmd(b, 0, 0, 16);
	set_u16(b, 2, (uint16_t)(n + 64));
	return n;
}

static size_t bad_too_many_ids(uint8_t *b, const struct test_ctx *t)
{
	size_t n = send_cmd(b, 1, CD_ID_VIRTGPU_BLOB, 16);
	set_u32(b, 8, 29);
	return n;
}

static size_t bad_data_past_cmd(uint8_t *b, const struct test_ctx *t)
{
	size_t n = send_cmd(b, 0, 0, 16);
	set_u32(b, 12, 64);
	return n;
}

static size_t bad_fork_command(uint8_t *b, const struct test_ctx *t)
{
	size_t n = cd_encode_poll(b, 64);
	b[0] = 8;
	return n;
}

static size_t bad_id_type(uint8_t *b, const struct test_ctx *t)
{
	return send_cmd(b, 1, 5, 16);
}

static size_t bad_write_pipe_sent(uint8_t *b, const struct test_ctx *t)
{
	return send_cmd(b, 1, CD_ID_WRITE_PIPE, 16);
}

static size_t bad_sync_id(uint8_t *b, const struct test_ctx *t)
{
	return send_cmd(b, 1, CD_ID_VIRTGPU_SYNC, 16);
}

static size_t bad_receive_from_guest(uint8_t *b, const struct test_ctx *t)
{
	size_t n = send_cmd(b, 0, 0, 16);
	b[0] = CD_CMD_RECEIVE;
	return n;
}

static size_t bad_second_init(uint8_t *b, const struct test_ctx *t)
{
	return cd_encode_init(b, 64, t->query_res, t->channel_res, CD_CHANNEL_WAYLAND);
}

static size_t bad_read_pipe_id(uint8_t *b, const struct test_ctx *t)
{
	size_t n = send_cmd(b, 1, CD_ID_READ_PIPE, 16);
	set_u32(b, 16, CD_READ_PIPE_ID_BASE + 5);
	return n;
}

static size_t bad_unknown_resource(uint8_t *b, const struct test_ctx *t)
{
	size_t n = send_cmd(b, 1, CD_ID_VIRTGPU_BLOB, 16);
	set_u32(b, 16, 9999);
	return n;
}

static size_t bad_ids_without_data(uint8_t *b, const struct test_ctx *t)
{
	uint32_t id = t->query_res, type = CD_ID_VIRTGPU_BLOB, size = 0;
	return cd_encode_send_receive(b, CD_RING_SIZE, CD_CMD_SEND, false, 1, &id, &type, &size,
				      NULL, 0);
}

static size_t bad_second_poll(uint8_t *b, const struct test_ctx *t)
{
	return cd_encode_poll(b, 64);
}

static size_t bad_send_before_init(uint8_t *b, const struct test_ctx *t)
{
	return send_cmd(b, 0, 0, 16);
}

static const struct bad_case bad_cases[] = {
	{ "cmd_size 0", bad_cmd_size_zero, false, false },
	{ "cmd_size short", bad_cmd_size_short, false, false },
	{ "cmd_size past the buffer", bad_cmd_size_past, false, false },
	{ "29 identifiers", bad_too_many_ids, false, false },
	{ "data past cmd_size", bad_data_past_cmd, false, false },
	{ "fork-specific command 8", bad_fork_command, false, false },
	{ "identifier type 5", bad_id_type, false, false },
	{ "write pipe sent by the guest", bad_write_pipe_sent, false, false },
	{ "sync identifier", bad_sync_id, false, false },
	{ "RECEIVE from the guest", bad_receive_from_guest, false, false },
	{ "second INIT", bad_second_init, false, false },
	{ "read pipe id out of sequence", bad_read_pipe_id, false, false },
	{ "resource of no one", bad_unknown_resource, false, false },
	{ "identifiers without data", bad_ids_without_data, false, false },
	{ "second POLL", bad_second_poll, true, false },
	{ "SEND before INIT", bad_send_before_init, false, true },
};

static void expect_lost(struct sdev_client *c, uint32_t ctx_id, const char *name)
{
	struct test_msg *m = sdev_client_wait(c, SDEV_EVENT_CONTEXT_LOST, UINT32_MAX, ctx_id,
					      TIMEOUT);
	if (!m) {
		fprintf(stderr, "%s: no CONTEXT_LOST\n", name);
		exit(1);
	}
	CHECK(test_msg_error(m) < 0);
	printf("  rejected %-32s -> %.*s\n", name, (int)m->msg.payload_size,
	       (const char *)m->msg.payload);
	test_msg_free(m);
}

static void run_bad_case(struct sdev_client *c, const struct bad_case *bc, uint32_t id)
{
	struct test_ctx t;
	if (bc->skip_init) {
		t = (struct test_ctx){ .c = c, .id = id };
		CHECK_EQ(sdev_client_context_init(c, id, CD_CAPSET_ID, 2, 2), 0);
	} else {
		test_ctx_create(c, id, &t);
	}
	if (bc->polling_first) {
		struct cd_command ev;
		uint8_t page[CD_RING_SIZE];
		CHECK(!test_ctx_poll(&t, &ev, page, 10));
	}
	uint8_t cmd[CD_RING_SIZE];
	size_t len = bc->make(cmd, &t);
	CHECK(len > 0);
	CHECK(sdev_client_exec(c, id, 0, 0, NULL, 0, cmd, len, NULL) < 0);
	expect_lost(c, id, bc->name);
	if (bc->polling_first) {
		// The outstanding POLL is answered with EOF, not left hanging.
		struct cd_command ev;
		uint8_t page[CD_RING_SIZE];
		CHECK(test_ctx_poll(&t, &ev, page, TIMEOUT));
		CHECK(ev.data_size == 0 && ev.u.sr.num_identifiers == 0);
	}
	// Every later request on a lost context fails with ENODEV.
	CHECK_EQ(sdev_client_exec(c, id, 0, 0, NULL, 0, cmd, len, NULL), -ENODEV);
	if (bc->skip_init)
		CHECK_EQ(sdev_client_exec(c, id, 0, 0, NULL, 0, NULL, 0, NULL), -ENODEV);
	else
		test_ctx_destroy(&t);
}

// Each rejected command ends its own context; a context that shares the
// connection keeps working after every one of them.
static void test_malformed_commands(void)
{
	struct sdev_client *c = sdev_client_connect(host_sock);
	struct test_ctx healthy;
	test_ctx_create(c, 1000, &healthy);
	uint32_t cb = 2; // new ids go up one by one
	for (size_t i = 0; i < SML_ARRAY_LEN(bad_cases); i++) {
		run_bad_case(c, &bad_cases[i], 1 + (uint32_t)i);
		sync_round_trip(&healthy, cb++);
	}
	test_ctx_destroy(&healthy);
	sdev_client_destroy(c);
}

// Rings that could shrink under the host, or channels it does not offer,
// end the context at INIT.
static void test_bad_init(void)
{
	struct sdev_client *c = sdev_client_connect(host_sock);
	CHECK_EQ(sdev_client_context_init(c, 1, CD_CAPSET_ID, 2, 2), 0);
	int fd = memfd_create("unsealed", MFD_CLOEXEC);
	CHECK(fd >= 0 && ftruncate(fd, 4096) == 0);
	uint32_t res;
	CHECK_EQ(sdev_client_create_guest_blob(c, 1, fd, 4096, &res), 0);
	uint8_t cmd[64];
	size_t len = cd_encode_init(cmd, sizeof(cmd), res, res, CD_CHANNEL_WAYLAND);
	CHECK(sdev_client_exec(c, 1, 0, 0, NULL, 0, cmd, len, NULL) < 0);
	expect_lost(c, 1, "unsealed ring");

	CHECK_EQ(sdev_client_context_init(c, 2, CD_CAPSET_ID, 2, 2), 0);
	int sealed = sml_memfd_create("ring", 4096);
	CHECK_EQ(sdev_client_create_guest_blob(c, 2, sealed, 4096, &res), 0);
	len = cd_encode_init(cmd, sizeof(cmd), res, res, CD_CHANNEL_X11);
	CHECK(sdev_client_exec(c, 2, 0, 0, NULL, 0, cmd, len, NULL) < 0);
	expect_lost(c, 2, "X11 channel");

	// A pool may end mid-page and still be a blob; a ring must be whole.
	CHECK_EQ(sdev_client_context_init(c, 3, CD_CAPSET_ID, 2, 2), 0);
	int short_fd = sml_memfd_create("short", 3000);
	CHECK_EQ(sdev_client_create_guest_blob(c, 3, short_fd, 4096, &res), 0);
	CHECK_EQ(sdev_client_create_guest_blob(c, 3, short_fd, 8192, &res), -EINVAL);
	len = cd_encode_init(cmd, sizeof(cmd), res, res, CD_CHANNEL_WAYLAND);
	CHECK(sdev_client_exec(c, 3, 0, 0, NULL, 0, cmd, len, NULL) < 0);
	expect_lost(c, 3, "ring shorter than a page");
	close(short_fd);

	// Huge-page memory is refused as a ring (its mapping would be a whole
	// huge page that the ring's munmap cannot give back).
	int huge = memfd_create("huge", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB);
	if (huge >= 0 && ftruncate(huge, 2u << 20) == 0 &&
	    fcntl(huge, F_ADD_SEALS, F_SEAL_SHRINK) == 0) {
		CHECK_EQ(sdev_client_context_init(c, 4, CD_CAPSET_ID, 2, 2), 0);
		CHECK_EQ(sdev_client_create_guest_blob(c, 4, huge, 2u << 20, &res), 0);
		len = cd_encode_init(cmd, sizeof(cmd), res, res, CD_CHANNEL_WAYLAND);
		CHECK(sdev_client_exec(c, 4, 0, 0, NULL, 0, cmd, len, NULL) < 0);
		expect_lost(c, 4, "not a mappable resource");
	} else {
		printf("  huge-page ring: not tried (no hugetlbfs memfd here)\n");
	}
	sml_close(&huge);
	close(fd);
	close(sealed);
	sdev_client_destroy(c);
}

static int request_error(struct sdev_client *c, uint16_t type, uint32_t ctx_id,
			 const void *body, size_t size, const int *fds, uint8_t nfds)
{
	uint32_t seq = sdev_client_send(c, type, SDEV_FLAG_REPLY, ctx_id, body, size, NULL, 0,
					fds, nfds);
	struct test_msg *m = sdev_client_wait(c, TEST_ANY_REPLY, seq, UINT32_MAX, TIMEOUT);
	CHECK(m != NULL);
	int err = test_msg_error(m);
	test_msg_free(m);
	return err;
}

// The rules the virtgpu kernel driver enforces, each with its errno.
static void test_kernel_rules(void)
{
	struct sdev_client *c = sdev_client_connect(host_sock);
	struct test_ctx t;
	uint8_t poll[32];
	size_t plen = cd_encode_poll(poll, sizeof(poll));
	CHECK_EQ(sdev_client_exec(c, 77, 0, 0, NULL, 0, poll, plen, NULL), -ENOENT);
	CHECK_EQ(sdev_client_exec(c, 0, 0, 0, NULL, 0, poll, plen, NULL), -EINVAL);
	CHECK_EQ(sdev_client_context_init(c, 0, CD_CAPSET_ID, 2, 2), -EINVAL);
	CHECK_EQ(sdev_client_context_init(c, 5, 3, 2, 2), -EINVAL); // not cross-domain
	CHECK_EQ(sdev_client_context_init(c, 5, CD_CAPSET_ID, 0, 0), -EINVAL);
	CHECK_EQ(sdev_client_context_init(c, 5, CD_CAPSET_ID, 2, 1u << 2), -EINVAL);
	test_ctx_create(c, 1, &t);
	CHECK_EQ(sdev_client_context_init(c, 1, CD_CAPSET_ID, 2, 2), -EEXIST);
	CHECK_EQ(sdev_client_exec(c, 1, SDEV_EXECBUF_RING_IDX, 2, NULL, 0, poll, plen, NULL),
		 -EINVAL);
	CHECK_EQ(sdev_client_exec(c, 1, 0x1, 0, NULL, 0, poll, plen, NULL), -EINVAL);
	uint32_t bogus = 4242;
	CHECK_EQ(sdev_client_exec(c, 1, 0, 0, &bogus, 1, poll, plen, NULL), -ENOENT);

	int fd = sml_memfd_create("blob", 8192);
	uint32_t res;
	CHECK_EQ(sdev_client_create_guest_blob(c, 1, fd, 1000, &res), -EINVAL);
	CHECK_EQ(sdev_client_create_guest_blob(c, 1, fd, 16384, &res), -EINVAL); // fd too small
	CHECK_EQ(sdev_client_create_guest_blob(c, 1, -1, 4096, &res), -EINVAL); // no fd
	struct sdev_create_blob weird = { .blob_mem = 7, .size = 4096 };
	CHECK_EQ(request_error(c, SDEV_RESOURCE_CREATE_BLOB, 1, &weird, sizeof(weird), NULL, 0),
		 -EINVAL);
	struct sdev_wait wait = { .res_handle = 999 };
	CHECK_EQ(request_error(c, SDEV_WAIT, 1, &wait, sizeof(wait), NULL, 0), -ENOENT);
	struct sdev_resource r = { .res_handle = 999 };
	CHECK_EQ(request_error(c, SDEV_RESOURCE_DESTROY, 1, &r, sizeof(r), NULL, 0), -ENOENT);
	CHECK_EQ(request_error(c, SDEV_RESOURCE_INFO, 1, &r, sizeof(r), NULL, 0), -ENOENT);
	struct sdev_get_caps caps = { .capset_id = 3 };
	CHECK_EQ(request_error(c, SDEV_GET_CAPS, 0, &caps, sizeof(caps), NULL, 0), -EINVAL);

	// A resource of one context is not visible from another.
	CHECK_EQ(sdev_client_context_init(c, 2, CD_CAPSET_ID, 2, 2), 0);
	r.res_handle = t.query_res;
	CHECK_EQ(request_error(c, SDEV_RESOURCE_INFO, 2, &r, sizeof(r), NULL, 0), -ENOENT);
	CHECK_EQ(request_error(c, SDEV_RESOURCE_INFO, 1, &r, sizeof(r), NULL, 0), 0);

	// The capset a guest checks before anything else.
	caps.capset_id = CD_CAPSET_ID;
	uint32_t seq = sdev_client_send(c, SDEV_GET_CAPS, 0, 0, &caps, sizeof(caps), NULL, 0,
					NULL, 0);
	struct test_msg *m = sdev_client_wait(c, SDEV_REPLY_CAPS, seq, UINT32_MAX, TIMEOUT);
	CHECK(m != NULL && m->msg.payload_size == sizeof(struct cd_capabilities));
	struct cd_capabilities cap;
	memcpy(&cap, m->msg.payload, sizeof(cap));
	CHECK_EQ(cap.version, 1);
	CHECK(cap.supported_channels & (1u << CD_CHANNEL_WAYLAND));
	test_msg_free(m);
	sync_round_trip(&t, 2);
	close(fd);
	test_ctx_destroy(&t);
	sdev_client_destroy(c);
}

// Broken framing ends that connection only.
// A guest cannot pile up WAITs on a resource it keeps busy (a POLL that
// lists it stays pending while the compositor is quiet): past the limit
// they fail, and the connection still works.
static void test_wait_limit(void)
{
	struct sdev_client *c = sdev_client_connect(host_sock);
	struct test_ctx t;
	test_ctx_create(c, 1, &t);
	int fd = sml_memfd_create("busy", 4096);
	uint32_t busy;
	CHECK_EQ(sdev_client_create_guest_blob(c, 1, fd, 4096, &busy), 0);
	uint8_t poll[32];
	size_t plen = cd_encode_poll(poll, sizeof(poll));
	CHECK_EQ(sdev_client_exec(c, 1, SDEV_EXECBUF_RING_IDX, CD_CHANNEL_RING, &busy, 1, poll,
				  plen, NULL), 0);
	struct sdev_wait wait = { .res_handle = busy };
	for (unsigned i = 0; i < SDEV_MAX_WAITS; i++)
		sdev_client_send(c, SDEV_WAIT, 0, 1, &wait, sizeof(wait), NULL, 0, NULL, 0);
	CHECK_EQ(request_error(c, SDEV_WAIT, 1, &wait, sizeof(wait), NULL, 0), -EBUSY);
	CHECK_EQ(request_error(c, SDEV_WAIT, 1, &wait, sizeof(wait), NULL, 0), -EBUSY);
	// Destroying the resource answers every waiter; then there is room again.
	struct sdev_resource r = { .res_handle = busy };
	CHECK_EQ(request_error(c, SDEV_RESOURCE_DESTROY, 1, &r, sizeof(r), NULL, 0), 0);
	wait.res_handle = t.query_res;
	CHECK_EQ(request_error(c, SDEV_WAIT, 1, &wait, sizeof(wait), NULL, 0), 0);
	close(fd);
	test_ctx_destroy(&t);
	sdev_client_destroy(c);
}

static void test_bad_connections(void)
{
	struct sdev_client *good = sdev_client_connect(host_sock);
	struct test_ctx t;
	test_ctx_create(good, 1, &t);

	struct sdev_client *bad = sdev_client_connect(host_sock);
	struct sdev_header hdr = { .type = SDEV_GET_CAPS, .size = 8 };
	sdev_client_send_raw(bad, &hdr, sizeof(hdr));
	struct test_msg *m = sdev_client_wait(bad, SDEV_REPLY_ERROR, UINT32_MAX, UINT32_MAX,
					      TIMEOUT);
	CHECK(m != NULL && test_msg_error(m) == -EPROTO);
	test_msg_free(m);
	CHECK(sdev_client_wait_eof(bad, TIMEOUT));
	sdev_client_destroy(bad);

	// A good request and a bad one in one write: the error names the bad one.
	bad = sdev_client_connect(host_sock);
	struct {
		struct sdev_header caps_hdr;
		struct sdev_get_caps caps;
		struct sdev_header bad_hdr;
	} two = {
		{ .type = SDEV_GET_CAPS, .size = 24, .seq = 5 }, { 5, 0 },
		{ .type = SDEV_RESOURCE_INFO, .size = 12, .seq = 77, .ctx_id = 9 },
	};
	sdev_client_send_raw(bad, &two, sizeof(two));
	m = sdev_client_wait(bad, SDEV_REPLY_CAPS, 5, UINT32_MAX, TIMEOUT);
	CHECK(m != NULL);
	test_msg_free(m);
	m = sdev_client_wait(bad, SDEV_REPLY_ERROR, UINT32_MAX, UINT32_MAX, TIMEOUT);
	CHECK(m != NULL && test_msg_error(m) == -EPROTO);
	CHECK(m->msg.hdr.seq == 77 && m->msg.hdr.ctx_id == 9 &&
	      m->msg.u.error.request_type == SDEV_RESOURCE_INFO);
	test_msg_free(m);
	CHECK(sdev_client_wait_eof(bad, TIMEOUT));
	sdev_client_destroy(bad);

	// No HELLO first.
	struct sdev_client *nohello = sdev_client_connect_raw(host_sock);
	CHECK_EQ(request_error(nohello, SDEV_GET_CAPS, 0, &(struct sdev_get_caps){ 5, 0 },
			       sizeof(struct sdev_get_caps), NULL, 0), -EPROTO);
	CHECK(sdev_client_wait_eof(nohello, TIMEOUT));
	sdev_client_destroy(nohello);

	// A version this host does not speak.
	struct sdev_client *future = sdev_client_connect_raw(host_sock);
	struct sdev_hello hello = { .magic = SDEV_MAGIC, .version = 2 };
	CHECK_EQ(request_error(future, SDEV_HELLO, 0, &hello, sizeof(hello), NULL, 0), -EPROTO);
	CHECK(sdev_client_wait_eof(future, TIMEOUT));
	sdev_client_destroy(future);

	// A guest that hangs up with contexts, rings and a POLL outstanding.
	struct sdev_client *quitter = sdev_client_connect(host_sock);
	struct test_ctx q;
	test_ctx_create(quitter, 1, &q);
	struct cd_command ev;
	uint8_t page[CD_RING_SIZE];
	get_globals(&q, &(struct globals){ 0 });
	CHECK(!test_ctx_poll(&q, &ev, page, 10));
	sdev_client_destroy(quitter);

	sync_round_trip(&t, 2);
	test_ctx_destroy(&t);
	sdev_client_destroy(good);
}

// Contexts come and go (rings, a round trip, a host blob) and the daemon's
// fd count and memory stay where they were.
static void test_no_leaks(int cycles)
{
	struct sdev_client *c = sdev_client_connect(host_sock);
	struct test_ctx warm;
	test_ctx_create(c, 1, &warm);
	sync_round_trip(&warm, 2);
	test_ctx_destroy(&warm);
	sdev_client_destroy(c);
	usleep(200000); // let the daemon reap every earlier connection
	int fds_before = harness_count_fds(host_pid);
	int own_before = harness_count_fds(getpid());
	long rss_before = harness_rss_kib(host_pid);
	c = sdev_client_connect(host_sock);
	for (int i = 0; i < cycles; i++) {
		struct test_ctx t;
		struct cd_image_requirements r;
		uint32_t res;
		int fd;
		test_ctx_create(c, 2 + (uint32_t)i % 3, &t);
		sync_round_trip(&t, 2);
		query_image(&t, 256, 256, DRM_FORMAT_ARGB8888, &r);
		CHECK_EQ(sdev_client_create_host_blob(c, t.id, r.blob_id, r.size, &res, &fd), 0);
		close(fd);
		test_ctx_destroy(&t);
		if (i % 4 == 0) { // connections cycle too
			sdev_client_destroy(c);
			c = sdev_client_connect(host_sock);
		}
	}
	sdev_client_destroy(c);
	usleep(200000); // let the daemon reap the last connection
	int fds_after = harness_count_fds(host_pid);
	long rss_after = harness_rss_kib(host_pid);
	printf("leaks: %d cycles: host fds %d -> %d, rss %ld -> %ld KiB, test fds %d -> %d\n",
	       cycles, fds_before, fds_after, rss_before, rss_after, own_before,
	       harness_count_fds(getpid()));
	CHECK_EQ(fds_after, fds_before);
	CHECK_EQ(harness_count_fds(getpid()), own_before);
	CHECK(rss_after - rss_before < 2048);
}

int main(void)
{
	const char *dir = harness_runtime_dir();
	atexit(harness_cleanup);
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(host_sock, sizeof(host_sock), "%s/host.sock", dir);
	harness_start_weston("wl-test");
	host_pid = harness_start_host(host_sock, "wl-test", "--log-level=info", NULL);

	static const struct harness_test tests[] = {
		{ "registry", test_registry },
		{ "legacy 16-byte INIT", test_legacy_init },
		{ "rings destroyed under a running context", test_ring_destroyed },
		{ "shm pool from a guest blob", test_shm_pool_from_guest_blob },
		{ "image requirements and host blobs", test_image_requirements },
		{ "many image layouts", test_many_image_layouts },
		{ "fds a guest does not read", test_unread_fds_bounded },
		{ "compositor EOF", test_compositor_eof },
		{ "malformed commands", test_malformed_commands },
		{ "bad INIT", test_bad_init },
		{ "kernel rules", test_kernel_rules },
		{ "outstanding waits are bounded", test_wait_limit },
		{ "bad connections", test_bad_connections },
	};
	int passed = harness_run(tests, SML_ARRAY_LEN(tests));
	printf("--- no leaks over 200 context cycles\n");
	test_no_leaks(200);
	passed++;
	CHECK(kill(host_pid, 0) == 0); // the daemon survived all of it
	CHECK_EQ(harness_stop(host_pid), 0); // and exits cleanly on SIGTERM
	printf("%d passed, 0 failed\n", passed);
	return 0;
}
