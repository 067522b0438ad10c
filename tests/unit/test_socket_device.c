// SPDX-License-Identifier: MIT
// Unit tests of the socket device codec: struct layout, writer -> decoder
// round trips of every type, incremental input, and one test per decode
// error so that each malformed input yields exactly its own error.
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "protocol/cross_domain.h"
#include "protocol/socket_device.h"

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond); \
			exit(1); \
		} \
	} while (0)

// Reports both errors by name, which is what one wants to see on failure.
#define CHECK_ERR(got, want) \
	do { \
		enum sdev_error got_ = (got), want_ = (want); \
		if (got_ != want_) { \
			fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n", \
				__FILE__, __LINE__, sdev_strerror(got_), \
				sdev_strerror(want_)); \
			exit(1); \
		} \
	} while (0)

// Header field offsets, for patching encoded messages.
#define OFF_TYPE 0
#define OFF_FLAGS 2
#define OFF_NUM_FDS 3
#define OFF_SIZE 4
#define BODY(type, field) (16 + offsetof(type, field))

struct sample {
	const char *name;
	bool from_guest;
	uint16_t type;
	uint8_t flags;
	uint8_t num_fds;
	const void *fixed;
	size_t fixed_size;
	const void *array;
	size_t array_size;
	const void *payload;
	size_t payload_size;
};

static const struct sdev_hello hello = { SDEV_MAGIC, SDEV_VERSION, SDEV_FEATURE_FD_PASSING };
static const struct sdev_get_caps get_caps = { CD_CAPSET_ID, 0 };
static const struct sdev_context_init init3 = { 3, 0 };
static const struct sdev_context_param params3[3] = {
	{ SDEV_CONTEXT_PARAM_CAPSET_ID, CD_CAPSET_ID },
	{ SDEV_CONTEXT_PARAM_NUM_RINGS, 2 },
	{ SDEV_CONTEXT_PARAM_POLL_RINGS_MASK, 1u << CD_CHANNEL_RING },
};
static const struct sdev_create_blob blob_guest = {
	SDEV_BLOB_MEM_GUEST, SDEV_BLOB_FLAG_USE_MAPPABLE, 4096, 0, 0, 0,
};
static const struct sdev_create_blob blob_host3d = {
	SDEV_BLOB_MEM_HOST3D, 3, 8192, 7, 24, 0,
};
static const uint8_t gir_cmd[24] = { CD_CMD_GET_IMAGE_REQUIREMENTS, 0, 24, 0 };
static const struct sdev_execbuffer exec_poll = { SDEV_EXECBUF_RING_IDX, 1, 2, 16 };
static const uint32_t handles2[2] = { 1, 0xfffffffe };
static const uint8_t poll_cmd[16] = { CD_CMD_POLL, 0, 16, 0 };
static const struct sdev_execbuffer exec_odd = { 0, 0, 1, 5 };
static const struct sdev_wait wait_res = { 2, SDEV_WAIT_NOWAIT };
static const struct sdev_resource res2 = { 2, 0 };
static const struct sdev_reply_caps caps16 = { CD_CAPSET_ID, 16 };
static const uint32_t capset[4] = { 1, 2, 0, 0 };
static const struct sdev_reply_resource reply_res = { 3, SDEV_BLOB_MEM_HOST3D, 8192 };
static const char reason[] = "context init must come first";
static const struct sdev_reply_error error_ctx = { -2, SDEV_EXECBUFFER, sizeof(reason) - 1 };
static const struct sdev_reply_error lost = { -71, 0, 5 };
static const struct sdev_event_fence fence1 = { 1, 0 };

#define S(name, dir, type, flags, fds, fixed) \
	{ name, dir, type, flags, fds, &(fixed), sizeof(fixed), NULL, 0, NULL, 0 }

static const struct sample samples[] = {
	S("hello", true, SDEV_HELLO, 0, 0, hello),
	S("get_caps", true, SDEV_GET_CAPS, 0, 0, get_caps),
	{ "context_init", true, SDEV_CONTEXT_INIT, SDEV_FLAG_REPLY, 0, &init3, sizeof(init3),
	  params3, sizeof(params3), NULL, 0 },
	{ "context_destroy", true, SDEV_CONTEXT_DESTROY, 0, 0, NULL, 0, NULL, 0, NULL, 0 },
	S("blob_guest", true, SDEV_RESOURCE_CREATE_BLOB, 0, 1, blob_guest),
	{ "blob_host3d", true, SDEV_RESOURCE_CREATE_BLOB, 0, 0, &blob_host3d,
	  sizeof(blob_host3d), NULL, 0, gir_cmd, sizeof(gir_cmd) },
	S("resource_destroy", true, SDEV_RESOURCE_DESTROY, 0, 0, res2),
	{ "exec_poll", true, SDEV_EXECBUFFER, 0, 0, &exec_poll, sizeof(exec_poll),
	  handles2, sizeof(handles2), poll_cmd, sizeof(poll_cmd) },
	{ "exec_odd", true, SDEV_EXECBUFFER, SDEV_FLAG_REPLY, 0, &exec_odd, sizeof(exec_odd),
	  handles2, 4, "abcde", 5 },
	S("wait", true, SDEV_WAIT, 0, 0, wait_res),
	S("resource_info", true, SDEV_RESOURCE_INFO, 0, 0, res2),
	S("reply_hello", false, SDEV_REPLY_HELLO, 0, 0, hello),
	{ "reply_caps", false, SDEV_REPLY_CAPS, 0, 0, &caps16, sizeof(caps16), NULL, 0,
	  capset, sizeof(capset) },
	{ "reply_ok", false, SDEV_REPLY_OK, 0, 0, NULL, 0, NULL, 0, NULL, 0 },
	S("reply_resource", false, SDEV_REPLY_RESOURCE, 0, 1, reply_res),
	{ "reply_error", false, SDEV_REPLY_ERROR, 0, 0, &error_ctx, sizeof(error_ctx),
	  NULL, 0, reason, sizeof(reason) - 1 },
	S("event_fence", false, SDEV_EVENT_FENCE, 0, 0, fence1),
	{ "context_lost", false, SDEV_EVENT_CONTEXT_LOST, 0, 0, &lost, sizeof(lost), NULL, 0,
	  "bad!!", 5 },
};

static const struct sample *sample(const char *name)
{
	for (size_t i = 0; i < SML_ARRAY_LEN(samples); i++) {
		if (!strcmp(samples[i].name, name))
			return &samples[i];
	}
	CHECK(!"unknown sample");
	return NULL;
}

// Encodes s with extra (garbage) bytes after its contents; returns the size.
static size_t encode_extra(const struct sample *s, uint8_t *buf, size_t extra)
{
	static const uint8_t junk[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct sdev_writer w;

	sdev_writer_begin(&w, buf, SDEV_MAX_MSG_SIZE, s->type, s->flags, 0x1234,
			  s->from_guest ? 7 : 0, s->num_fds);
	sdev_writer_put(&w, s->fixed, s->fixed_size);
	sdev_writer_put(&w, s->array, s->array_size);
	sdev_writer_put(&w, s->payload, s->payload_size);
	CHECK(extra <= sizeof(junk));
	sdev_writer_put(&w, junk, extra);
	return sdev_writer_end(&w);
}

static size_t encode(const struct sample *s, uint8_t *buf)
{
	return encode_extra(s, buf, 0);
}

static void patch8(uint8_t *buf, size_t off, uint8_t v)
{
	buf[off] = v;
}

static void patch16(uint8_t *buf, size_t off, uint16_t v)
{
	memcpy(buf + off, &v, sizeof(v));
}

static void patch32(uint8_t *buf, size_t off, uint32_t v)
{
	memcpy(buf + off, &v, sizeof(v));
}

static enum sdev_error decode(const uint8_t *buf, size_t len, bool from_guest)
{
	struct sdev_msg msg;

	return sdev_decode(buf, len, from_guest, &msg);
}

static void test_struct_sizes(void)
{
	CHECK(sizeof(struct sdev_header) == 16);
	CHECK(offsetof(struct sdev_header, size) == 4);
	CHECK(offsetof(struct sdev_header, ctx_id) == 12);
	CHECK(sizeof(struct sdev_hello) == 16);
	CHECK(sizeof(struct sdev_get_caps) == 8);
	CHECK(sizeof(struct sdev_reply_caps) == 8);
	CHECK(sizeof(struct sdev_context_param) == 16);
	CHECK(sizeof(struct sdev_context_init) == 8);
	CHECK(sizeof(struct sdev_create_blob) == 32);
	CHECK(offsetof(struct sdev_create_blob, blob_id) == 16);
	CHECK(offsetof(struct sdev_create_blob, cmd_size) == 24);
	CHECK(sizeof(struct sdev_reply_resource) == 16);
	CHECK(sizeof(struct sdev_resource) == 8);
	CHECK(sizeof(struct sdev_execbuffer) == 16);
	CHECK(offsetof(struct sdev_execbuffer, cmd_size) == 12);
	CHECK(sizeof(struct sdev_wait) == 8);
	CHECK(sizeof(struct sdev_reply_error) == 8);
	CHECK(offsetof(struct sdev_reply_error, reason_len) == 6);
	CHECK(sizeof(struct sdev_event_fence) == 8);
}

static void test_strerror(void)
{
	for (int i = 0; i < SDEV_ERR_COUNT; i++) {
		CHECK(sdev_strerror(i) && sdev_strerror(i)[0]);
		for (int j = 0; j < i; j++)
			CHECK(strcmp(sdev_strerror(i), sdev_strerror(j)));
	}
	CHECK(sdev_strerror(SDEV_ERR_COUNT) != NULL);
	CHECK(sdev_strerror((enum sdev_error)-1) != NULL);
}

static void check_accessors(const struct sample *s, const struct sdev_msg *msg)
{
	if (s->type == SDEV_EXECBUFFER) {
		for (uint32_t i = 0; i < msg->u.exec.num_bo_handles; i++)
			CHECK(sdev_msg_bo_handle(msg, i) == handles2[i]);
		CHECK(sdev_msg_bo_handle(msg, msg->u.exec.num_bo_handles) == 0);
	}
	if (s->type == SDEV_CONTEXT_INIT) {
		for (uint32_t i = 0; i < 3; i++) {
			struct sdev_context_param p = sdev_msg_param(msg, i);
			CHECK(p.param == params3[i].param && p.value == params3[i].value);
		}
		CHECK(sdev_msg_param(msg, 3).param == 0);
	}
}

static void check_decoded(const struct sample *s, const uint8_t *buf, size_t size,
			  const struct sdev_msg *msg)
{
	const uint8_t *array = s->type == SDEV_CONTEXT_INIT ? msg->params : msg->bo_handles;

	CHECK(msg->hdr.size == size);
	CHECK(size == sml_align4(16 + s->fixed_size + s->array_size + s->payload_size));
	CHECK(msg->hdr.type == s->type && msg->hdr.flags == s->flags);
	CHECK(msg->hdr.num_fds == s->num_fds && msg->hdr.seq == 0x1234);
	CHECK(msg->hdr.ctx_id == (s->from_guest ? 7u : 0u));
	CHECK(!s->fixed_size || !memcmp(&msg->u, s->fixed, s->fixed_size));
	CHECK(s->array_size ? array == buf + 16 + s->fixed_size : array == NULL);
	CHECK(!s->array_size || !memcmp(array, s->array, s->array_size));
	CHECK(msg->payload_size == s->payload_size);
	CHECK(s->payload_size ? msg->payload != NULL : msg->payload == NULL);
	CHECK(!s->payload_size || !memcmp(msg->payload, s->payload, s->payload_size));
	CHECK(!s->payload_size || msg->payload + s->payload_size <= buf + size);
	check_accessors(s, msg);
}

static void test_round_trip(void)
{
	static uint8_t buf[SDEV_MAX_MSG_SIZE];

	for (size_t i = 0; i < SML_ARRAY_LEN(samples); i++) {
		const struct sample *s = &samples[i];
		struct sdev_msg msg;
		size_t size = encode(s, buf);

		CHECK(size > 0);
		CHECK_ERR(sdev_decode(buf, size, s->from_guest, &msg), SDEV_OK);
		check_decoded(s, buf, size, &msg);
		// Extra bytes after the message belong to the next one.
		CHECK_ERR(sdev_decode(buf, sizeof(buf), s->from_guest, &msg), SDEV_OK);
		CHECK(msg.hdr.size == size);
		// Every type belongs to exactly one direction.
		CHECK_ERR(decode(buf, size, !s->from_guest), SDEV_ERR_WRONG_DIRECTION);
	}
}

static void test_need_more(void)
{
	uint8_t buf[256];

	for (size_t i = 0; i < SML_ARRAY_LEN(samples); i++) {
		size_t size = encode(&samples[i], buf);

		for (size_t n = 0; n < size; n++)
			CHECK_ERR(decode(buf, n, samples[i].from_guest), SDEV_ERR_NEED_MORE);
	}
}

// A message of exactly the maximum size is fine; the writer refuses more.
static void test_max_size(void)
{
	static uint8_t buf[SDEV_MAX_MSG_SIZE + 64];
	static const uint8_t cmd[SDEV_MAX_MSG_SIZE];
	struct sdev_execbuffer exec = { 0, 0, 0, SDEV_MAX_MSG_SIZE - 32 };
	struct sdev_writer w;
	struct sdev_msg msg;

	sdev_writer_begin(&w, buf, sizeof(buf), SDEV_EXECBUFFER, 0, 1, 1, 0);
	sdev_writer_put(&w, &exec, sizeof(exec));
	sdev_writer_put(&w, cmd, exec.cmd_size);
	CHECK(sdev_writer_end(&w) == SDEV_MAX_MSG_SIZE);
	CHECK_ERR(sdev_decode(buf, SDEV_MAX_MSG_SIZE, true, &msg), SDEV_OK);
	CHECK(msg.payload_size == SDEV_MAX_MSG_SIZE - 32);

	sdev_writer_begin(&w, buf, sizeof(buf), SDEV_EXECBUFFER, 0, 1, 1, 0);
	sdev_writer_put(&w, cmd, SDEV_MAX_MSG_SIZE - 15);
	CHECK(!w.overflow);
	CHECK(sdev_writer_end(&w) == 0);
}

static void test_header_errors(void)
{
	uint8_t buf[256];
	size_t size = encode(sample("get_caps"), buf);

	patch32(buf, OFF_SIZE, 8);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_SIZE_SMALL);
	CHECK_ERR(decode(buf, 16, true), SDEV_ERR_SIZE_SMALL);
	patch32(buf, OFF_SIZE, 0);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_SIZE_SMALL);
	// A bad size is refused as soon as the header is there.
	patch32(buf, OFF_SIZE, SDEV_MAX_MSG_SIZE + 4);
	CHECK_ERR(decode(buf, 16, true), SDEV_ERR_SIZE_LARGE);
	patch32(buf, OFF_SIZE, 0xffffffff);
	CHECK_ERR(decode(buf, 16, true), SDEV_ERR_SIZE_LARGE);
	patch32(buf, OFF_SIZE, 18);
	CHECK_ERR(decode(buf, 16, true), SDEV_ERR_MISALIGNED);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_MISALIGNED);
}

static void test_type_errors(void)
{
	static const uint16_t unknown[] = { 0, 0x7f, 0x80, 0xffff, SDEV_TRANSFER_TO_HOST,
					    SDEV_TRANSFER_TO_GUEST, 11, 0x84, 0x93 };
	uint8_t buf[256];
	size_t size = encode(sample("reply_ok"), buf);

	for (size_t i = 0; i < SML_ARRAY_LEN(unknown); i++) {
		patch16(buf, OFF_TYPE, unknown[i]);
		CHECK_ERR(decode(buf, size, true), SDEV_ERR_UNKNOWN_TYPE);
		CHECK_ERR(decode(buf, size, false), SDEV_ERR_UNKNOWN_TYPE);
	}
	size = encode(sample("reply_ok"), buf);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_WRONG_DIRECTION);
	size = encode(sample("context_destroy"), buf);
	CHECK_ERR(decode(buf, size, false), SDEV_ERR_WRONG_DIRECTION);
	size = encode(sample("hello"), buf);
	CHECK_ERR(decode(buf, size, false), SDEV_ERR_WRONG_DIRECTION);
}

static void test_flag_errors(void)
{
	uint8_t buf[256];
	size_t size = encode(sample("get_caps"), buf);

	patch8(buf, OFF_FLAGS, 2);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_BAD_FLAGS);
	patch8(buf, OFF_FLAGS, 0x80 | SDEV_FLAG_REPLY);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_BAD_FLAGS);
	patch8(buf, OFF_FLAGS, SDEV_FLAG_REPLY);
	CHECK_ERR(decode(buf, size, true), SDEV_OK);
	// Nobody answers a reply, so it cannot ask for one.
	size = encode(sample("reply_ok"), buf);
	patch8(buf, OFF_FLAGS, SDEV_FLAG_REPLY);
	CHECK_ERR(decode(buf, size, false), SDEV_ERR_BAD_FLAGS);
}

static void test_fd_errors(void)
{
	uint8_t buf[256];
	size_t size = encode(sample("blob_guest"), buf);

	patch8(buf, OFF_NUM_FDS, 5);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_TOO_MANY_FDS);
	CHECK_ERR(decode(buf, 16, true), SDEV_ERR_TOO_MANY_FDS);
	patch8(buf, OFF_NUM_FDS, 2);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_TOO_MANY_FDS);
	// A GUEST blob without fd is the copy transport's form.
	patch8(buf, OFF_NUM_FDS, 0);
	CHECK_ERR(decode(buf, size, true), SDEV_OK);

	size = encode(sample("exec_poll"), buf);
	patch8(buf, OFF_NUM_FDS, 1);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_TOO_MANY_FDS);

	size = encode(sample("blob_host3d"), buf);
	patch8(buf, OFF_NUM_FDS, 1);
	CHECK_ERR(decode(buf, 16, true), SDEV_ERR_NEED_MORE);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_TOO_MANY_FDS);

	size = encode(sample("reply_resource"), buf);
	patch8(buf, OFF_NUM_FDS, 2);
	CHECK_ERR(decode(buf, size, false), SDEV_ERR_TOO_MANY_FDS);
}

static void test_count_errors(void)
{
	uint8_t buf[256];
	size_t size = encode(sample("context_init"), buf);

	patch32(buf, BODY(struct sdev_context_init, num_params), 9);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_BAD_COUNT);
	patch32(buf, BODY(struct sdev_context_init, num_params), 8);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_SIZE_SMALL);

	size = encode(sample("exec_poll"), buf);
	patch32(buf, BODY(struct sdev_execbuffer, num_bo_handles), 65);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_BAD_COUNT);
	patch32(buf, BODY(struct sdev_execbuffer, num_bo_handles), 0xffffffff);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_BAD_COUNT);
	patch32(buf, BODY(struct sdev_execbuffer, num_bo_handles), 2);
	patch32(buf, BODY(struct sdev_execbuffer, cmd_size), 0xffffffff);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_BAD_COUNT);
	patch32(buf, BODY(struct sdev_execbuffer, cmd_size), 0xfffffffc);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_BAD_COUNT);
	patch32(buf, BODY(struct sdev_execbuffer, cmd_size), SDEV_MAX_MSG_SIZE + 1);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_BAD_COUNT);
	patch32(buf, BODY(struct sdev_execbuffer, cmd_size), SDEV_MAX_MSG_SIZE);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_SIZE_SMALL);

	size = encode(sample("blob_host3d"), buf);
	patch32(buf, BODY(struct sdev_create_blob, cmd_size), 0xffffffff);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_BAD_COUNT);
	patch32(buf, BODY(struct sdev_create_blob, cmd_size), SDEV_MAX_MSG_SIZE);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_SIZE_SMALL);
}

static void test_reply_count_errors(void)
{
	uint8_t buf[256];
	size_t size = encode(sample("reply_error"), buf);

	patch16(buf, BODY(struct sdev_reply_error, reason_len), SDEV_MAX_REASON + 1);
	CHECK_ERR(decode(buf, size, false), SDEV_ERR_BAD_COUNT);
	patch16(buf, BODY(struct sdev_reply_error, reason_len), 0xffff);
	CHECK_ERR(decode(buf, size, false), SDEV_ERR_BAD_COUNT);
	patch16(buf, BODY(struct sdev_reply_error, reason_len), SDEV_MAX_REASON);
	CHECK_ERR(decode(buf, size, false), SDEV_ERR_SIZE_SMALL);

	size = encode(sample("context_lost"), buf);
	patch16(buf, BODY(struct sdev_reply_error, reason_len), SDEV_MAX_REASON + 1);
	CHECK_ERR(decode(buf, size, false), SDEV_ERR_BAD_COUNT);

	size = encode(sample("reply_caps"), buf);
	patch32(buf, BODY(struct sdev_reply_caps, size), 1025);
	CHECK_ERR(decode(buf, size, false), SDEV_ERR_BAD_COUNT);
	patch32(buf, BODY(struct sdev_reply_caps, size), 1024);
	CHECK_ERR(decode(buf, size, false), SDEV_ERR_SIZE_SMALL);
}

static void test_short_bodies(void)
{
	uint8_t buf[256];
	size_t size;

	// Each fixed-size type, cut by 4 bytes below its struct.
	for (size_t i = 0; i < SML_ARRAY_LEN(samples); i++) {
		const struct sample *s = &samples[i];

		if (!s->fixed_size)
			continue;
		size = encode(s, buf);
		patch32(buf, OFF_SIZE, (uint32_t)(16 + s->fixed_size - 4));
		CHECK_ERR(decode(buf, size, s->from_guest), SDEV_ERR_SIZE_SMALL);
	}
	// Declared contents beyond the body.
	size = encode(sample("exec_poll"), buf);
	patch32(buf, BODY(struct sdev_execbuffer, num_bo_handles), 3);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_SIZE_SMALL);
	size = encode(sample("exec_odd"), buf);
	patch32(buf, BODY(struct sdev_execbuffer, cmd_size), 9);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_SIZE_SMALL);
	size = encode(sample("reply_error"), buf);
	patch16(buf, BODY(struct sdev_reply_error, reason_len), sizeof(reason) + 3);
	CHECK_ERR(decode(buf, size, false), SDEV_ERR_SIZE_SMALL);
}

static void test_trailing(void)
{
	uint8_t buf[256];
	size_t size;

	for (size_t i = 0; i < SML_ARRAY_LEN(samples); i++) {
		const struct sample *s = &samples[i];

		size = encode_extra(s, buf, 4);
		CHECK_ERR(decode(buf, size, s->from_guest), SDEV_ERR_TRAILING);
	}
	// Padding absorbs up to three bytes, not four.
	size = encode(sample("exec_odd"), buf); // cmd_size 5 in 8 bytes
	patch32(buf, BODY(struct sdev_execbuffer, cmd_size), 8);
	CHECK_ERR(decode(buf, size, true), SDEV_OK);
	patch32(buf, BODY(struct sdev_execbuffer, cmd_size), 4);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_TRAILING);
	size = encode(sample("context_init"), buf);
	patch32(buf, BODY(struct sdev_context_init, num_params), 2);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_TRAILING);
}

static void test_magic(void)
{
	uint8_t buf[256];
	size_t size = encode(sample("hello"), buf);

	patch32(buf, BODY(struct sdev_hello, magic), SDEV_MAGIC ^ 1);
	CHECK_ERR(decode(buf, size, true), SDEV_ERR_BAD_MAGIC);
	size = encode(sample("reply_hello"), buf);
	patch32(buf, BODY(struct sdev_hello, magic), 0);
	CHECK_ERR(decode(buf, size, false), SDEV_ERR_BAD_MAGIC);
}

static void test_unaligned(void)
{
	uint64_t storage[64];
	uint8_t *buf = (uint8_t *)storage + 1;
	const struct sample *exec = sample("exec_poll");
	const struct sample *init = sample("context_init");
	struct sdev_msg msg;
	size_t size;

	size = encode(exec, buf);
	CHECK_ERR(sdev_decode(buf, size, true, &msg), SDEV_OK);
	check_decoded(exec, buf, size, &msg);
	buf = (uint8_t *)storage + 3;
	size = encode(init, buf);
	CHECK_ERR(sdev_decode(buf, size, true, &msg), SDEV_OK);
	check_decoded(init, buf, size, &msg);
}

static void test_back_to_back(void)
{
	uint8_t buf[512];
	const struct sample *first = sample("exec_odd");
	const struct sample *second = sample("context_init");
	size_t size1 = encode(first, buf);
	size_t size2 = encode(second, buf + size1);
	struct sdev_msg msg;

	CHECK_ERR(sdev_decode(buf, size1 + size2, true, &msg), SDEV_OK);
	check_decoded(first, buf, size1, &msg);
	CHECK_ERR(sdev_decode(buf + size1, size2, true, &msg), SDEV_OK);
	check_decoded(second, buf + size1, size2, &msg);
	CHECK_ERR(sdev_decode(buf + size1, size2 - 1, true, &msg), SDEV_ERR_NEED_MORE);
	// The first message decodes while the second is still arriving.
	CHECK_ERR(sdev_decode(buf, size1 + 17, true, &msg), SDEV_OK);
	CHECK(msg.hdr.size == size1);
}

static void test_writer(void)
{
	uint8_t buf[64];
	struct sdev_writer w;
	struct sdev_get_caps caps = { 5, 0 };

	// Padding is written as zeros, whatever the buffer held.
	memset(buf, 0xaa, sizeof(buf));
	sdev_writer_begin(&w, buf, sizeof(buf), SDEV_REPLY_ERROR, 0, 9, 3, 0);
	sdev_writer_put(&w, &error_ctx, sizeof(error_ctx));
	sdev_writer_put(&w, "x", 1);
	CHECK(sdev_writer_end(&w) == 28);
	CHECK(buf[25] == 0 && buf[26] == 0 && buf[27] == 0 && buf[28] == 0xaa);

	// Too small for the header.
	sdev_writer_begin(&w, buf, 15, SDEV_GET_CAPS, 0, 1, 0, 0);
	CHECK(w.overflow);
	CHECK(sdev_writer_end(&w) == 0);

	// Past the capacity: nothing is written beyond it.
	memset(buf, 0xaa, sizeof(buf));
	sdev_writer_begin(&w, buf, 20, SDEV_GET_CAPS, 0, 1, 0, 0);
	sdev_writer_put(&w, &caps, sizeof(caps));
	CHECK(w.overflow);
	sdev_writer_put(&w, "", 0);
	CHECK(sdev_writer_end(&w) == 0);
	CHECK(buf[16] == 0xaa);

	// Padding that does not fit is an overflow too.
	sdev_writer_begin(&w, buf, 18, SDEV_GET_CAPS, 0, 1, 0, 0);
	sdev_writer_put(&w, "ab", 2);
	CHECK(!w.overflow);
	CHECK(sdev_writer_end(&w) == 0);
}

int main(void)
{
	test_struct_sizes();
	test_strerror();
	test_round_trip();
	test_need_more();
	test_max_size();
	test_header_errors();
	test_type_errors();
	test_flag_errors();
	test_fd_errors();
	test_count_errors();
	test_reply_count_errors();
	test_short_bodies();
	test_trailing();
	test_magic();
	test_unaligned();
	test_back_to_back();
	test_writer();
	printf("socket device codec: all tests passed\n");
	return 0;
}
