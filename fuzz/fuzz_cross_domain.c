// SPDX-License-Identifier: MIT
// Fuzzes the cross-domain decoders. Whatever decodes must re-encode and
// decode again to the same fields, in both directions of the wire, so a
// decoder that accepts something the encoders cannot produce (or the other
// way round) aborts here.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cross_domain.h"

// More commands than any execbuffer could hold (each is at least 16 bytes).
#define MAX_COMMANDS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t scratch[CD_RING_SIZE];

static void check(bool ok)
{
	if (!ok)
		abort();
}

// Reads every data byte, so ASan sees any pointer past the input.
static void touch(const struct cd_command *c)
{
	volatile uint8_t sink = 0;

	check((c->data == NULL) == (c->data_size == 0));
	for (uint32_t i = 0; i < c->data_size; i++)
		sink ^= c->data[i];
	(void)sink;
}

static void same_data(const struct cd_command *a, const struct cd_command *b)
{
	check(a->data_size == b->data_size);
	check(a->data_size == 0 || memcmp(a->data, b->data, a->data_size) == 0);
}

static void redecode(size_t n, bool in_ring, struct cd_command *out)
{
	enum cd_error err;

	check(n != 0);
	if (in_ring)
		err = cd_decode_ring_event(scratch, n, out);
	else
		err = cd_decode_command(scratch, n, 0, out);
	check(err == CD_OK && out->size == n);
}

static void recheck_init(const struct cd_command *c)
{
	const struct cd_init *a = &c->u.init;
	struct cd_command r;

	check(c->legacy_init == (a->channel_ring_id == CD_RING_NONE &&
				 c->size == sizeof(struct cd_init_legacy)));
	redecode(cd_encode_init(scratch, sizeof(scratch), a->query_ring_id,
				a->channel_ring_id, a->channel_type),
		 false, &r);
	check(r.cmd == CD_CMD_INIT && !r.legacy_init);
	check(r.u.init.query_ring_id == a->query_ring_id);
	check(r.u.init.channel_ring_id == a->channel_ring_id);
	check(r.u.init.channel_type == a->channel_type);
}

static void recheck_gir(const struct cd_command *c)
{
	const struct cd_get_image_requirements *a = &c->u.gir;
	struct cd_command r;

	redecode(cd_encode_get_image_requirements(scratch, sizeof(scratch),
						  a->width, a->height,
						  a->drm_format, a->flags),
		 false, &r);
	check(r.cmd == CD_CMD_GET_IMAGE_REQUIREMENTS);
	check(memcmp(&r.u.gir.width, &a->width, 16) == 0);
}

static void recheck_poll(void)
{
	struct cd_command r;

	redecode(cd_encode_poll(scratch, sizeof(scratch)), false, &r);
	check(r.cmd == CD_CMD_POLL && r.u.poll.pad == 0);
}

// Re-encodes a SEND or RECEIVE as `cmd` (either one) and compares.
static void recheck_sr(const struct cd_command *c, uint8_t cmd)
{
	const struct cd_send_receive *a = &c->u.sr;
	bool ring = cmd == CD_CMD_RECEIVE;
	size_t n = a->num_identifiers * sizeof(uint32_t);
	struct cd_command r;

	redecode(cd_encode_send_receive(scratch, sizeof(scratch), cmd, ring,
					a->num_identifiers, a->identifiers,
					a->identifier_types,
					a->identifier_sizes, c->data,
					c->data_size),
		 ring, &r);
	check(r.cmd == cmd && r.u.sr.num_identifiers == a->num_identifiers);
	check(memcmp(r.u.sr.identifiers, a->identifiers, n) == 0);
	check(memcmp(r.u.sr.identifier_types, a->identifier_types, n) == 0);
	check(memcmp(r.u.sr.identifier_sizes, a->identifier_sizes, n) == 0);
	same_data(c, &r);
}

static void recheck_rw(const struct cd_command *c, uint8_t cmd)
{
	const struct cd_read_write *a = &c->u.rw;
	bool ring = cmd == CD_CMD_READ;
	struct cd_command r;

	redecode(cd_encode_read_write(scratch, sizeof(scratch), cmd, ring,
				      a->identifier, a->hang_up != 0, c->data,
				      c->data_size),
		 ring, &r);
	check(r.cmd == cmd && r.u.rw.identifier == a->identifier);
	check(r.u.rw.hang_up == (a->hang_up != 0));
	same_data(c, &r);
}

static void recheck(const struct cd_command *c)
{
	touch(c);
	switch (c->cmd) {
	case CD_CMD_INIT:
		recheck_init(c);
		break;
	case CD_CMD_GET_IMAGE_REQUIREMENTS:
		recheck_gir(c);
		break;
	case CD_CMD_POLL:
		recheck_poll();
		break;
	case CD_CMD_SEND:
	case CD_CMD_RECEIVE:
		recheck_sr(c, CD_CMD_SEND);
		recheck_sr(c, CD_CMD_RECEIVE);
		break;
	default:
		recheck_rw(c, CD_CMD_WRITE);
		recheck_rw(c, CD_CMD_READ);
		break;
	}
}

static void fuzz_commands(const uint8_t *data, size_t size)
{
	struct cd_command c;
	size_t off = 0;

	for (int i = 0; i < MAX_COMMANDS && off < size; i++) {
		enum cd_error err = cd_decode_command(data + off, size - off,
						      off, &c);

		check(cd_strerror(err)[0] != '\0');
		if (err != CD_OK)
			return;
		check(c.size >= sizeof(struct cd_header) && c.size <= size - off);
		recheck(&c);
		off += c.size;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cd_command c;

	fuzz_commands(data, size);
	if (cd_decode_ring_event(data, size, &c) == CD_OK) {
		check(c.size <= size);
		recheck(&c);
	}
	return 0;
}
