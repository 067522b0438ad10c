// SPDX-License-Identifier: MIT
// Unit tests of the cross-domain codec: wire layout against
// doc/cross-domain.md, round trips, and one exact error per malformed input.
#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cross_domain.h"

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", \
				__FILE__, __LINE__, #cond); \
			exit(1); \
		} \
	} while (0)

#define CHECK_ERR(expr, want) \
	do { \
		enum cd_error got_ = (expr); \
		if (got_ != (want)) { \
			fprintf(stderr, "%s:%d: %s: got \"%s\", want \"%s\"\n", \
				__FILE__, __LINE__, #expr, cd_strerror(got_), \
				cd_strerror(want)); \
			exit(1); \
		} \
	} while (0)

// Room for a full ring page plus slack, aligned so buf + 1 is not.
static _Alignas(8) uint8_t page[2 * CD_RING_SIZE];

static void put32(uint8_t *buf, size_t off, uint32_t v)
{
	memcpy(buf + off, &v, sizeof(v));
}

static void put16(uint8_t *buf, size_t off, uint16_t v)
{
	memcpy(buf + off, &v, sizeof(v));
}

// A bare header of `cmd` with `cmd_size`, zeros after it up to `len`.
static void put_hdr(uint8_t *buf, size_t len, uint8_t cmd, uint16_t cmd_size)
{
	memset(buf, 0, len);
	buf[0] = cmd;
	put16(buf, 2, cmd_size);
}

static void test_layout(void)
{
	CHECK(offsetof(struct cd_header, cmd) == 0);
	CHECK(offsetof(struct cd_header, ring_idx) == 1);
	CHECK(offsetof(struct cd_header, cmd_size) == 2);
	CHECK(offsetof(struct cd_header, pad) == 4);
	CHECK(sizeof(struct cd_capabilities) == 16);
	CHECK(offsetof(struct cd_capabilities, supported_channels) == 4);
	CHECK(offsetof(struct cd_capabilities, supports_dmabuf) == 8);
	CHECK(offsetof(struct cd_capabilities, supports_external_gpu_memory) == 12);
	CHECK(sizeof(struct cd_init) == 20);
	CHECK(offsetof(struct cd_init, query_ring_id) == 8);
	CHECK(offsetof(struct cd_init, channel_ring_id) == 12);
	CHECK(offsetof(struct cd_init, channel_type) == 16);
	CHECK(sizeof(struct cd_init_legacy) == 16);
	CHECK(offsetof(struct cd_init_legacy, query_ring_id) == 8);
	CHECK(offsetof(struct cd_init_legacy, channel_type) == 12);
	CHECK(sizeof(struct cd_get_image_requirements) == 24);
	CHECK(offsetof(struct cd_get_image_requirements, width) == 8);
	CHECK(offsetof(struct cd_get_image_requirements, height) == 12);
	CHECK(offsetof(struct cd_get_image_requirements, drm_format) == 16);
	CHECK(offsetof(struct cd_get_image_requirements, flags) == 20);
}

static void test_layout_data(void)
{
	CHECK(sizeof(struct cd_image_requirements) == 64);
	CHECK(offsetof(struct cd_image_requirements, strides) == 0);
	CHECK(offsetof(struct cd_image_requirements, offsets) == 16);
	CHECK(offsetof(struct cd_image_requirements, modifier) == 32);
	CHECK(offsetof(struct cd_image_requirements, size) == 40);
	CHECK(offsetof(struct cd_image_requirements, blob_id) == 48);
	CHECK(offsetof(struct cd_image_requirements, map_info) == 52);
	CHECK(offsetof(struct cd_image_requirements, memory_idx) == 56);
	CHECK(offsetof(struct cd_image_requirements, physical_device_idx) == 60);
	CHECK(sizeof(struct cd_poll) == 16);
	CHECK(offsetof(struct cd_poll, pad) == 8);
	CHECK(sizeof(struct cd_send_receive) == 352);
	CHECK(offsetof(struct cd_send_receive, num_identifiers) == 8);
	CHECK(offsetof(struct cd_send_receive, opaque_data_size) == 12);
	CHECK(offsetof(struct cd_send_receive, identifiers) == 16);
	CHECK(offsetof(struct cd_send_receive, identifier_types) == 128);
	CHECK(offsetof(struct cd_send_receive, identifier_sizes) == 240);
	CHECK(sizeof(struct cd_read_write) == 24);
	CHECK(offsetof(struct cd_read_write, identifier) == 8);
	CHECK(offsetof(struct cd_read_write, hang_up) == 12);
	CHECK(offsetof(struct cd_read_write, opaque_data_size) == 16);
	CHECK(offsetof(struct cd_read_write, pad) == 20);
	CHECK(CD_MAX_SEND_DATA == 3744);
	CHECK(CD_MAX_RW_DATA == 4072);
}

static void test_strerror(void)
{
	for (int i = 0; i < CD_ERR_COUNT; i++) {
		const char *a = cd_strerror((enum cd_error)i);

		CHECK(a && a[0]);
		CHECK(strcmp(a, "unknown error") != 0);
		for (int j = 0; j < i; j++)
			CHECK(strcmp(a, cd_strerror((enum cd_error)j)) != 0);
	}
	CHECK(strcmp(cd_strerror(CD_ERR_COUNT), "unknown error") == 0);
	CHECK(strcmp(cd_strerror((enum cd_error)-1), "unknown error") == 0);
	CHECK(strcmp(cd_strerror(CD_ERR_CMD_SIZE_ZERO), "cmd_size is zero") == 0);
}

static void test_init(void)
{
	struct cd_command c;
	size_t n = cd_encode_init(page, sizeof(page), 7, 9, CD_CHANNEL_WAYLAND);

	CHECK(n == 20);
	CHECK(page[0] == CD_CMD_INIT && page[2] == 20 && page[3] == 0);
	CHECK_ERR(cd_decode_command(page, n, 0, &c), CD_OK);
	CHECK(c.cmd == CD_CMD_INIT && c.size == 20 && !c.legacy_init);
	CHECK(c.u.init.query_ring_id == 7 && c.u.init.channel_ring_id == 9);
	CHECK(c.u.init.channel_type == CD_CHANNEL_WAYLAND);
	CHECK(c.data == NULL && c.data_size == 0);
}

static void test_init_forms(void)
{
	struct cd_command c;

	// Legacy: hdr, query_ring_id, channel_type.
	put_hdr(page, 16, CD_CMD_INIT, 16);
	put32(page, 8, 3);
	put32(page, 12, CD_CHANNEL_X11);
	CHECK_ERR(cd_decode_command(page, 16, 0, &c), CD_OK);
	CHECK(c.legacy_init && c.size == 16);
	CHECK(c.u.init.query_ring_id == 3);
	CHECK(c.u.init.channel_ring_id == CD_RING_NONE);
	CHECK(c.u.init.channel_type == CD_CHANNEL_X11);

	// libkrun (24) and rutabaga (36) forms: only the first 20 bytes count.
	for (uint16_t size = 24; size <= 36; size += 12) {
		CHECK(cd_encode_init(page, 64, 1, 2, CD_CHANNEL_PIPEWIRE) == 20);
		put16(page, 2, size);
		memset(page + 20, 0xAB, size - 20);
		CHECK_ERR(cd_decode_command(page, size, 0, &c), CD_OK);
		CHECK(!c.legacy_init && c.size == size);
		CHECK(c.u.init.channel_ring_id == 2);
		CHECK(c.u.init.channel_type == CD_CHANNEL_PIPEWIRE);
	}
	for (uint16_t size = 17; size <= 19; size++) {
		put_hdr(page, 20, CD_CMD_INIT, size);
		CHECK_ERR(cd_decode_command(page, 20, 0, &c), CD_ERR_CMD_SIZE_SHORT);
	}
}

static void test_bad_channel(void)
{
	struct cd_command c;
	const uint32_t bad[] = {CD_CHANNEL_NONE, 7, 3, 0x12, 0xFFFFFFFF};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(cd_encode_init(page, sizeof(page), 0, 1, bad[i]) == 20);
		CHECK_ERR(cd_decode_command(page, 20, 0, &c), CD_ERR_BAD_CHANNEL);
		put_hdr(page, 16, CD_CMD_INIT, 16);
		put32(page, 12, bad[i]);
		CHECK_ERR(cd_decode_command(page, 16, 0, &c), CD_ERR_BAD_CHANNEL);
	}
	CHECK(cd_encode_init(page, sizeof(page), 0, 1, CD_CHANNEL_CAMERA) == 20);
	CHECK_ERR(cd_decode_command(page, 20, 0, &c), CD_OK);
}

static void test_gir_poll(void)
{
	struct cd_command c;
	size_t n = cd_encode_get_image_requirements(page, sizeof(page), 640, 480,
						    0x34325258,
						    CD_USE_LINEAR | CD_USE_SCANOUT);

	CHECK(n == 24);
	CHECK_ERR(cd_decode_command(page, n, 0, &c), CD_OK);
	CHECK(c.cmd == CD_CMD_GET_IMAGE_REQUIREMENTS && c.size == 24);
	CHECK(c.u.gir.width == 640 && c.u.gir.height == 480);
	CHECK(c.u.gir.drm_format == 0x34325258 && c.u.gir.flags == 0x11);

	memset(page, 0xEE, 32);
	n = cd_encode_poll(page, sizeof(page));
	CHECK(n == 16);
	for (size_t i = 4; i < 16; i++)
		CHECK(page[i] == 0);
	CHECK_ERR(cd_decode_command(page, n, 0, &c), CD_OK);
	CHECK(c.cmd == CD_CMD_POLL && c.size == 16 && c.u.poll.pad == 0);
}

static void fill_ids(uint32_t num, uint32_t *ids, uint32_t *types,
		     uint32_t *sizes)
{
	for (uint32_t i = 0; i < num; i++) {
		ids[i] = 100 + i;
		types[i] = 1 + i % 4;
		sizes[i] = 4096 * (i + 1);
	}
}

static void check_sr(const struct cd_command *c, uint32_t num,
		     const uint32_t *ids, const uint32_t *types,
		     const uint32_t *sizes)
{
	CHECK(c->u.sr.num_identifiers == num);
	for (uint32_t i = 0; i < num; i++) {
		CHECK(c->u.sr.identifiers[i] == ids[i]);
		CHECK(c->u.sr.identifier_types[i] == types[i]);
		CHECK(c->u.sr.identifier_sizes[i] == sizes[i]);
	}
	// Unused slots are zeroed by the encoder.
	for (uint32_t i = num; i < CD_MAX_IDENTIFIERS; i++)
		CHECK(c->u.sr.identifiers[i] == 0 &&
		      c->u.sr.identifier_types[i] == 0 &&
		      c->u.sr.identifier_sizes[i] == 0);
}

static void test_send_one(uint32_t num, uint32_t data_size)
{
	uint32_t ids[CD_MAX_IDENTIFIERS], types[CD_MAX_IDENTIFIERS];
	uint32_t sizes[CD_MAX_IDENTIFIERS];
	uint8_t data[CD_MAX_SEND_DATA];
	struct cd_command c;
	size_t n;

	fill_ids(num, ids, types, sizes);
	for (uint32_t i = 0; i < data_size; i++)
		data[i] = (uint8_t)(i * 7 + 1);
	memset(page, 0xEE, sizeof(page));
	n = cd_encode_send_receive(page, sizeof(page), CD_CMD_SEND, false, num,
				   ids, types, sizes, data, data_size);
	CHECK(n == 352 + data_size);
	CHECK_ERR(cd_decode_command(page, n, 0, &c), CD_OK);
	CHECK(c.cmd == CD_CMD_SEND && c.size == n);
	check_sr(&c, num, ids, types, sizes);
	CHECK(c.data_size == data_size);
	CHECK(data_size ? c.data == page + 352 : c.data == NULL);
	CHECK(memcmp(page + 352, data, data_size) == 0);
}

static void test_send(void)
{
	struct cd_command c;

	test_send_one(0, 0);
	test_send_one(0, 5);
	test_send_one(1, 32);
	test_send_one(28, 100);
	test_send_one(28, CD_MAX_SEND_DATA);
	// NULL arrays and data are fine when there is nothing to copy.
	CHECK(cd_encode_send_receive(page, sizeof(page), CD_CMD_SEND, false, 0,
				     NULL, NULL, NULL, NULL, 0) == 352);
	CHECK_ERR(cd_decode_command(page, 352, 0, &c), CD_OK);
	// Trailing padding after the data is allowed.
	CHECK(cd_encode_send_receive(page, sizeof(page), CD_CMD_SEND, false, 0,
				     NULL, NULL, NULL, "ab", 2) == 354);
	put16(page, 2, 356);
	CHECK_ERR(cd_decode_command(page, 356, 0, &c), CD_OK);
	CHECK(c.size == 356 && c.data_size == 2 && c.data == page + 352);
}

static void test_write(void)
{
	struct cd_command c;
	size_t n = cd_encode_read_write(page, sizeof(page), CD_CMD_WRITE, false,
					0x80000001, false, "hello", 5);

	CHECK(n == 29);
	CHECK_ERR(cd_decode_command(page, n, 0, &c), CD_OK);
	CHECK(c.cmd == CD_CMD_WRITE && c.size == 29);
	CHECK(c.u.rw.identifier == 0x80000001 && c.u.rw.hang_up == 0);
	CHECK(c.data_size == 5 && memcmp(c.data, "hello", 5) == 0);

	n = cd_encode_read_write(page, sizeof(page), CD_CMD_WRITE, false, 4,
				 true, NULL, 0);
	CHECK(n == 24);
	CHECK_ERR(cd_decode_command(page, n, 0, &c), CD_OK);
	CHECK(c.u.rw.identifier == 4 && c.u.rw.hang_up == 1);
	CHECK(c.data == NULL && c.data_size == 0 && c.u.rw.pad == 0);
}

static void test_ring_receive(void)
{
	uint32_t ids[CD_MAX_IDENTIFIERS], types[CD_MAX_IDENTIFIERS];
	uint32_t sizes[CD_MAX_IDENTIFIERS];
	struct cd_command c;
	size_t n;

	fill_ids(3, ids, types, sizes);
	memset(page, 0xEE, sizeof(page));
	n = cd_encode_send_receive(page, CD_RING_SIZE, CD_CMD_RECEIVE, true, 3,
				   ids, types, sizes, "wl", 2);
	CHECK(n == 354);
	CHECK(page[0] == CD_CMD_RECEIVE && page[2] == 0 && page[3] == 0);
	CHECK_ERR(cd_decode_ring_event(page, CD_RING_SIZE, &c), CD_OK);
	CHECK(c.cmd == CD_CMD_RECEIVE && c.size == 354);
	check_sr(&c, 3, ids, types, sizes);
	CHECK(c.data == page + 352 && c.data_size == 2);
	CHECK(memcmp(c.data, "wl", 2) == 0);
	// The host EOF marker: nothing at all.
	n = cd_encode_send_receive(page, CD_RING_SIZE, CD_CMD_RECEIVE, true, 0,
				   NULL, NULL, NULL, NULL, 0);
	CHECK(n == 352);
	CHECK_ERR(cd_decode_ring_event(page, 352, &c), CD_OK);
	CHECK(c.size == 352 && c.data == NULL);
}

static void test_ring_read(void)
{
	struct cd_command c;
	size_t n = cd_encode_read_write(page, CD_RING_SIZE, CD_CMD_READ, true,
					0x80000002, true, "xyz", 3);

	CHECK(n == 27);
	CHECK(page[2] == 0 && page[3] == 0);
	CHECK_ERR(cd_decode_ring_event(page, CD_RING_SIZE, &c), CD_OK);
	CHECK(c.cmd == CD_CMD_READ && c.size == 27);
	CHECK(c.u.rw.identifier == 0x80000002 && c.u.rw.hang_up == 1);
	CHECK(c.data_size == 3 && memcmp(c.data, "xyz", 3) == 0);
	// Ring messages may not be sent as commands.
	CHECK_ERR(cd_decode_command(page, n, 0, &c), CD_ERR_WRONG_DIRECTION);
}

static void test_truncated(void)
{
	struct cd_command c;

	for (size_t len = 0; len < 8; len++) {
		put_hdr(page, 8, CD_CMD_POLL, 16);
		CHECK_ERR(cd_decode_command(page, len, 0, &c), CD_ERR_TRUNCATED);
		put_hdr(page, 8, CD_CMD_READ, 0);
		CHECK_ERR(cd_decode_ring_event(page, len, &c), CD_ERR_TRUNCATED);
	}
	// A correct cmd_size, but the buffer ends inside the struct.
	CHECK(cd_encode_send_receive(page, sizeof(page), CD_CMD_SEND, false, 0,
				     NULL, NULL, NULL, NULL, 0) == 352);
	CHECK_ERR(cd_decode_command(page, 100, 0, &c), CD_ERR_TRUNCATED);
	CHECK(cd_encode_init(page, sizeof(page), 0, 1, 1) == 20);
	CHECK_ERR(cd_decode_command(page, 16, 0, &c), CD_ERR_TRUNCATED);
	CHECK(cd_encode_poll(page, sizeof(page)) == 16);
	CHECK_ERR(cd_decode_command(page, 12, 0, &c), CD_ERR_TRUNCATED);
	// Ring events: the struct must fit.
	put_hdr(page, 400, CD_CMD_RECEIVE, 0);
	CHECK_ERR(cd_decode_ring_event(page, 351, &c), CD_ERR_TRUNCATED);
	put_hdr(page, 400, CD_CMD_READ, 0);
	CHECK_ERR(cd_decode_ring_event(page, 23, &c), CD_ERR_TRUNCATED);
}

static void test_cmd_size(void)
{
	static const struct {
		uint8_t cmd;
		uint16_t short_size;
	} cases[] = {
		{CD_CMD_INIT, 15}, {CD_CMD_INIT, 8},
		{CD_CMD_GET_IMAGE_REQUIREMENTS, 23}, {CD_CMD_POLL, 15},
		{CD_CMD_POLL, 8}, {CD_CMD_SEND, 351}, {CD_CMD_SEND, 24},
		{CD_CMD_WRITE, 23}, {CD_CMD_WRITE, 8},
	};
	struct cd_command c;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		put_hdr(page, 400, cases[i].cmd, 0);
		CHECK_ERR(cd_decode_command(page, 400, 0, &c), CD_ERR_CMD_SIZE_ZERO);
		put16(page, 2, cases[i].short_size);
		CHECK_ERR(cd_decode_command(page, 400, 0, &c), CD_ERR_CMD_SIZE_SHORT);
		put16(page, 2, 401);
		CHECK_ERR(cd_decode_command(page, 400, 0, &c),
			  CD_ERR_CMD_SIZE_PAST_BUFFER);
	}
	// Longer than the struct is fine: cmd_size alone says where the next
	// command starts.
	put_hdr(page, 8, CD_CMD_POLL, 20);
	CHECK_ERR(cd_decode_command(page, 20, 0, &c), CD_OK);
	CHECK(c.size == 20);
	put16(page, 2, 0xFFFF);
	CHECK_ERR(cd_decode_command(page, sizeof(page), 0, &c),
		  CD_ERR_CMD_SIZE_PAST_BUFFER);
}

static void test_unknown_cmd(void)
{
	static const uint8_t bad[] = {0, 8, 9, 10, 11, 12, 13, 14, 200, 255};
	struct cd_command c;

	for (size_t i = 0; i < sizeof(bad); i++) {
		put_hdr(page, 400, bad[i], 400);
		CHECK_ERR(cd_decode_command(page, 400, 0, &c), CD_ERR_UNKNOWN_CMD);
		CHECK_ERR(cd_decode_ring_event(page, 400, &c), CD_ERR_UNKNOWN_CMD);
	}
}

static void test_wrong_direction(void)
{
	static const uint8_t to_host[] = {
		CD_CMD_INIT, CD_CMD_GET_IMAGE_REQUIREMENTS, CD_CMD_POLL,
		CD_CMD_SEND, CD_CMD_WRITE,
	};
	struct cd_command c;

	for (size_t i = 0; i < sizeof(to_host); i++) {
		put_hdr(page, 400, to_host[i], 400);
		CHECK_ERR(cd_decode_ring_event(page, 400, &c),
			  CD_ERR_WRONG_DIRECTION);
	}
	// Direction wins over a bad cmd_size.
	put_hdr(page, 400, CD_CMD_RECEIVE, 0);
	CHECK_ERR(cd_decode_command(page, 400, 0, &c), CD_ERR_WRONG_DIRECTION);
	put_hdr(page, 400, CD_CMD_READ, 400);
	CHECK_ERR(cd_decode_command(page, 400, 0, &c), CD_ERR_WRONG_DIRECTION);
}

// A SEND of cmd_size 400 (or a RECEIVE in a 400-byte ring) with the given
// counts; `ring` picks the decoder.
static enum cd_error decode_sr(bool ring, uint32_t num, uint32_t data_size)
{
	struct cd_command c;

	put_hdr(page, 400, ring ? CD_CMD_RECEIVE : CD_CMD_SEND, ring ? 0 : 400);
	put32(page, 8, num);
	put32(page, 12, data_size);
	for (size_t i = 0; i < CD_MAX_IDENTIFIERS; i++)
		put32(page, 128 + 4 * i, CD_ID_READ_PIPE);
	if (ring)
		return cd_decode_ring_event(page, 400, &c);
	return cd_decode_command(page, 400, 0, &c);
}

static void test_sr_limits(void)
{
	for (int ring = 0; ring < 2; ring++) {
		CHECK_ERR(decode_sr(ring, 28, 48), CD_OK);
		CHECK_ERR(decode_sr(ring, 29, 0), CD_ERR_TOO_MANY_IDENTIFIERS);
		CHECK_ERR(decode_sr(ring, 0xFFFFFFFF, 0),
			  CD_ERR_TOO_MANY_IDENTIFIERS);
		CHECK_ERR(decode_sr(ring, 0, 49), CD_ERR_DATA_PAST_CMD);
		CHECK_ERR(decode_sr(ring, 0, CD_MAX_SEND_DATA),
			  CD_ERR_DATA_PAST_CMD);
		CHECK_ERR(decode_sr(ring, 0, CD_MAX_SEND_DATA + 1),
			  CD_ERR_DATA_TOO_LARGE);
		CHECK_ERR(decode_sr(ring, 0, 0xFFFFFFFF), CD_ERR_DATA_TOO_LARGE);
		CHECK_ERR(decode_sr(ring, 0, 0xFFFFFFFF - 351),
			  CD_ERR_DATA_TOO_LARGE);
	}
}

static enum cd_error decode_rw(bool ring, uint32_t data_size)
{
	struct cd_command c;

	put_hdr(page, 100, ring ? CD_CMD_READ : CD_CMD_WRITE, ring ? 0 : 100);
	put32(page, 16, data_size);
	if (ring)
		return cd_decode_ring_event(page, 100, &c);
	return cd_decode_command(page, 100, 0, &c);
}

static void test_rw_limits(void)
{
	struct cd_command c;

	for (int ring = 0; ring < 2; ring++) {
		CHECK_ERR(decode_rw(ring, 76), CD_OK);
		CHECK_ERR(decode_rw(ring, 77), CD_ERR_DATA_PAST_CMD);
		CHECK_ERR(decode_rw(ring, CD_MAX_RW_DATA), CD_ERR_DATA_PAST_CMD);
		CHECK_ERR(decode_rw(ring, CD_MAX_RW_DATA + 1),
			  CD_ERR_DATA_TOO_LARGE);
		CHECK_ERR(decode_rw(ring, 0xFFFFFFFF), CD_ERR_DATA_TOO_LARGE);
		CHECK_ERR(decode_rw(ring, 0xFFFFFFFF - 23), CD_ERR_DATA_TOO_LARGE);
	}
	// A full page of data fits a full ring page exactly.
	put_hdr(page, CD_RING_SIZE, CD_CMD_READ, 0);
	put32(page, 16, CD_MAX_RW_DATA);
	CHECK_ERR(cd_decode_ring_event(page, CD_RING_SIZE, &c), CD_OK);
	CHECK(c.size == CD_RING_SIZE);
}

static void test_id_types(void)
{
	static const uint32_t bad[] = {0, 5, 6, 7, 0xFFFFFFFF};
	uint32_t ids[2] = {1, 2}, sizes[2] = {0, 0}, types[2];
	struct cd_command c;

	for (int ring = 0; ring < 2; ring++) {
		uint8_t cmd = ring ? CD_CMD_RECEIVE : CD_CMD_SEND;

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			types[0] = CD_ID_VIRTGPU_BLOB;
			types[1] = bad[i];
			CHECK(cd_encode_send_receive(page, sizeof(page), cmd,
						     ring, 2, ids, types, sizes,
						     NULL, 0) == 352);
			CHECK_ERR(ring ? cd_decode_ring_event(page, 352, &c) :
					 cd_decode_command(page, 352, 0, &c),
				  CD_ERR_UNKNOWN_ID_TYPE);
			// Slots past num_identifiers are not looked at.
			put32(page, 8, 1);
			CHECK_ERR(ring ? cd_decode_ring_event(page, 352, &c) :
					 cd_decode_command(page, 352, 0, &c),
				  CD_OK);
		}
	}
}

static void test_misaligned(void)
{
	struct cd_command c;

	CHECK(cd_encode_poll(page, sizeof(page)) == 16);
	for (size_t off = 1; off < 4; off++)
		CHECK_ERR(cd_decode_command(page, 16, off, &c), CD_ERR_MISALIGNED);
	CHECK_ERR(cd_decode_command(page, 16, 4, &c), CD_OK);
	// Alignment is checked before anything else.
	CHECK_ERR(cd_decode_command(page, 0, 2, &c), CD_ERR_MISALIGNED);
}

// The decoder must work from any address: guest buffers are not aligned.
static void test_unaligned_buffer(void)
{
	uint32_t ids[1] = {5}, types[1] = {CD_ID_WRITE_PIPE}, sizes[1] = {0};
	uint8_t *buf = page + 1;
	struct cd_command c;
	size_t n;

	n = cd_encode_send_receive(buf, sizeof(page) - 1, CD_CMD_SEND, false,
				   1, ids, types, sizes, "abc", 3);
	CHECK(n == 355);
	CHECK_ERR(cd_decode_command(buf, n, 0, &c), CD_OK);
	CHECK(c.u.sr.identifiers[0] == 5 && c.data == buf + 352);
	n = cd_encode_read_write(buf + 2, CD_RING_SIZE, CD_CMD_READ, true, 9,
				 false, "q", 1);
	CHECK_ERR(cd_decode_ring_event(buf + 2, n, &c), CD_OK);
	CHECK(c.u.rw.identifier == 9 && c.data == buf + 2 + 24);
	n = cd_encode_init(buf, 20, 0x01020304, 5, CD_CHANNEL_WAYLAND);
	CHECK_ERR(cd_decode_command(buf, n, 0, &c), CD_OK);
	CHECK(c.u.init.query_ring_id == 0x01020304);
}

// An execbuffer carries commands back to back; cmd_size advances.
static void test_sequence(void)
{
	static const uint8_t want[] = {
		CD_CMD_INIT, CD_CMD_GET_IMAGE_REQUIREMENTS, CD_CMD_SEND,
		CD_CMD_WRITE, CD_CMD_POLL,
	};
	uint32_t id = 1, type = CD_ID_VIRTGPU_BLOB, size = 8192;
	uint8_t *buf = page + 3; // every command misaligned in memory
	struct cd_command c;
	size_t len = 0, off = 0, i = 0;

	len += cd_encode_init(buf + len, 64, 1, 2, CD_CHANNEL_WAYLAND);
	len += cd_encode_get_image_requirements(buf + len, 64, 4, 4, 0, 0);
	len += cd_encode_send_receive(buf + len, 512, CD_CMD_SEND, false, 1,
				      &id, &type, &size, "abcd", 4);
	len += cd_encode_read_write(buf + len, 64, CD_CMD_WRITE, false, 3,
				    false, "zz", 2);
	put16(buf + len - 26, 2, 28); // pad the WRITE to a multiple of 4
	len += 2;
	len += cd_encode_poll(buf + len, 64);
	CHECK(len == 20 + 24 + 356 + 28 + 16);
	while (off < len) {
		CHECK_ERR(cd_decode_command(buf + off, len - off, off, &c), CD_OK);
		CHECK(i < sizeof(want) && c.cmd == want[i++]);
		off += c.size;
	}
	CHECK(off == len && i == sizeof(want));
}

static void test_encoder_limits(void)
{
	uint32_t ids[29] = {0}, types[29] = {0}, sizes[29] = {0};
	uint8_t data[CD_MAX_RW_DATA + 1] = {0};

	CHECK(cd_encode_init(page, 19, 0, 1, 1) == 0);
	CHECK(cd_encode_get_image_requirements(page, 23, 1, 1, 0, 0) == 0);
	CHECK(cd_encode_poll(page, 15) == 0);
	CHECK(cd_encode_poll(page, 0) == 0);
	CHECK(cd_encode_send_receive(page, 351, CD_CMD_SEND, false, 0, NULL,
				     NULL, NULL, NULL, 0) == 0);
	CHECK(cd_encode_send_receive(page, 353, CD_CMD_SEND, false, 0, NULL,
				     NULL, NULL, data, 2) == 0);
	CHECK(cd_encode_send_receive(page, sizeof(page), CD_CMD_SEND, false, 29,
				     ids, types, sizes, NULL, 0) == 0);
	CHECK(cd_encode_send_receive(page, sizeof(page), CD_CMD_SEND, false, 0,
				     NULL, NULL, NULL, data,
				     CD_MAX_SEND_DATA + 1) == 0);
	CHECK(cd_encode_send_receive(page, sizeof(page), CD_CMD_SEND, false, 1,
				     NULL, NULL, NULL, NULL, 0) == 0);
	CHECK(cd_encode_send_receive(page, sizeof(page), CD_CMD_WRITE, false, 0,
				     NULL, NULL, NULL, NULL, 0) == 0);
	CHECK(cd_encode_read_write(page, 23, CD_CMD_WRITE, false, 0, false,
				   NULL, 0) == 0);
	CHECK(cd_encode_read_write(page, 25, CD_CMD_WRITE, false, 0, false,
				   data, 2) == 0);
	CHECK(cd_encode_read_write(page, sizeof(page), CD_CMD_WRITE, false, 0,
				   false, data, CD_MAX_RW_DATA + 1) == 0);
	CHECK(cd_encode_read_write(page, sizeof(page), CD_CMD_SEND, false, 0,
				   false, NULL, 0) == 0);
	// Exact fits are fine.
	CHECK(cd_encode_read_write(page, CD_RING_SIZE, CD_CMD_READ, true, 0,
				   false, data, CD_MAX_RW_DATA) == CD_RING_SIZE);
	CHECK(cd_encode_send_receive(page, CD_RING_SIZE, CD_CMD_RECEIVE, true,
				     28, ids, types, sizes, data,
				     CD_MAX_SEND_DATA) == CD_RING_SIZE);
}

int main(void)
{
	test_layout();
	test_layout_data();
	test_strerror();
	test_init();
	test_init_forms();
	test_bad_channel();
	test_gir_poll();
	test_send();
	test_write();
	test_ring_receive();
	test_ring_read();
	test_truncated();
	test_cmd_size();
	test_unknown_cmd();
	test_wrong_direction();
	test_sr_limits();
	test_rw_limits();
	test_id_types();
	test_misaligned();
	test_unaligned_buffer();
	test_sequence();
	test_encoder_limits();
	printf("test-cross-domain-codec: all tests passed\n");
	return 0;
}
