// SPDX-License-Identifier: MIT
// Codec for the virtio-gpu cross-domain wire (doc/cross-domain.md).
//
// Buffers come from guest memory or ring pages at any alignment, so fixed
// parts are only ever copied out with memcpy, never read through a cast.
// Every length is checked before it is added to anything, so a hostile
// 0xFFFFFFFF cannot wrap a sum.
#include <string.h>

#include "cross_domain.h"

static const char *const cd_error_text[CD_ERR_COUNT] = {
	[CD_OK] = "ok",
	[CD_ERR_TRUNCATED] = "command truncated",
	[CD_ERR_MISALIGNED] = "command not 4-byte aligned",
	[CD_ERR_CMD_SIZE_ZERO] = "cmd_size is zero",
	[CD_ERR_CMD_SIZE_SHORT] = "cmd_size smaller than the command",
	[CD_ERR_CMD_SIZE_PAST_BUFFER] = "cmd_size past the end of the buffer",
	[CD_ERR_UNKNOWN_CMD] = "unknown command",
	[CD_ERR_WRONG_DIRECTION] = "command sent in the wrong direction",
	[CD_ERR_TOO_MANY_IDENTIFIERS] = "too many identifiers",
	[CD_ERR_DATA_PAST_CMD] = "opaque data past the end of the command",
	[CD_ERR_DATA_TOO_LARGE] = "opaque data larger than a ring page",
	[CD_ERR_UNKNOWN_ID_TYPE] = "unknown identifier type",
	[CD_ERR_BAD_CHANNEL] = "unknown channel type",
};

const char *cd_strerror(enum cd_error err)
{
	// Cast first: an out-of-range enum may well be negative.
	if ((unsigned int)err >= CD_ERR_COUNT)
		return "unknown error";
	return cd_error_text[err];
}

static bool cd_is_guest_cmd(uint8_t cmd)
{
	return cmd == CD_CMD_INIT || cmd == CD_CMD_GET_IMAGE_REQUIREMENTS ||
	       cmd == CD_CMD_POLL || cmd == CD_CMD_SEND || cmd == CD_CMD_WRITE;
}

static bool cd_is_host_cmd(uint8_t cmd)
{
	return cmd == CD_CMD_RECEIVE || cmd == CD_CMD_READ;
}

static enum cd_error cd_check_direction(uint8_t cmd, bool from_guest)
{
	if (cd_is_guest_cmd(cmd))
		return from_guest ? CD_OK : CD_ERR_WRONG_DIRECTION;
	if (cd_is_host_cmd(cmd))
		return from_guest ? CD_ERR_WRONG_DIRECTION : CD_OK;
	// Fork-specific 8..13 land here too: their layouts disagree.
	return CD_ERR_UNKNOWN_CMD;
}

// The fixed part a command of this cmd_size must have. INIT is the only
// command with two sizes; anything below the full form is judged against
// the legacy one.
static size_t cd_struct_size(uint8_t cmd, size_t cmd_size)
{
	switch (cmd) {
	case CD_CMD_INIT:
		if (cmd_size >= sizeof(struct cd_init))
			return sizeof(struct cd_init);
		return sizeof(struct cd_init_legacy);
	case CD_CMD_GET_IMAGE_REQUIREMENTS:
		return sizeof(struct cd_get_image_requirements);
	case CD_CMD_POLL:
		return sizeof(struct cd_poll);
	case CD_CMD_SEND:
	case CD_CMD_RECEIVE:
		return sizeof(struct cd_send_receive);
	default:
		return sizeof(struct cd_read_write);
	}
}

static bool cd_channel_known(uint32_t type)
{
	return type == CD_CHANNEL_WAYLAND || type == CD_CHANNEL_CAMERA ||
	       type == CD_CHANNEL_PIPEWIRE || type == CD_CHANNEL_X11;
}

static enum cd_error cd_decode_init(const void *buf, size_t cmd_size,
				    struct cd_command *out)
{
	struct cd_init_legacy legacy;

	if (cmd_size >= sizeof(struct cd_init)) {
		// Longer forms only append fields (protocol_version, uuid).
		memcpy(&out->u.init, buf, sizeof(out->u.init));
	} else if (cmd_size == sizeof(legacy)) {
		memcpy(&legacy, buf, sizeof(legacy));
		out->u.init.hdr = legacy.hdr;
		out->u.init.query_ring_id = legacy.query_ring_id;
		out->u.init.channel_ring_id = CD_RING_NONE;
		out->u.init.channel_type = legacy.channel_type;
		out->legacy_init = true;
	} else {
		return CD_ERR_CMD_SIZE_SHORT;
	}
	if (!cd_channel_known(out->u.init.channel_type))
		return CD_ERR_BAD_CHANNEL;
	return CD_OK;
}

// Checks opaque_data_size against the page limit first, so that the sum
// with the struct size below cannot overflow.
static enum cd_error cd_check_data(size_t head, uint32_t data_size,
				   size_t max, size_t limit)
{
	if (data_size > max)
		return CD_ERR_DATA_TOO_LARGE;
	if (head + data_size > limit)
		return CD_ERR_DATA_PAST_CMD;
	return CD_OK;
}

static void cd_set_data(const void *buf, size_t head, uint32_t data_size,
			struct cd_command *out)
{
	out->data_size = data_size;
	out->data = data_size ? (const uint8_t *)buf + head : NULL;
}

static enum cd_error cd_check_id_types(const struct cd_send_receive *sr)
{
	for (uint32_t i = 0; i < sr->num_identifiers; i++) {
		uint32_t type = sr->identifier_types[i];

		if (type < CD_ID_VIRTGPU_BLOB || type > CD_ID_WRITE_PIPE)
			return CD_ERR_UNKNOWN_ID_TYPE;
	}
	return CD_OK;
}

// `limit` is cmd_size for commands and the buffer length for ring events.
static enum cd_error cd_decode_sr(const void *buf, size_t limit,
				  struct cd_command *out)
{
	struct cd_send_receive *sr = &out->u.sr;
	enum cd_error err;

	memcpy(sr, buf, sizeof(*sr));
	if (sr->num_identifiers > CD_MAX_IDENTIFIERS)
		return CD_ERR_TOO_MANY_IDENTIFIERS;
	err = cd_check_data(sizeof(*sr), sr->opaque_data_size,
			    CD_MAX_SEND_DATA, limit);
	if (err != CD_OK)
		return err;
	err = cd_check_id_types(sr);
	if (err != CD_OK)
		return err;
	cd_set_data(buf, sizeof(*sr), sr->opaque_data_size, out);
	return CD_OK;
}

static enum cd_error cd_decode_rw(const void *buf, size_t limit,
				  struct cd_command *out)
{
	struct cd_read_write *rw = &out->u.rw;
	enum cd_error err;

	memcpy(rw, buf, sizeof(*rw));
	err = cd_check_data(sizeof(*rw), rw->opaque_data_size,
			    CD_MAX_RW_DATA, limit);
	if (err != CD_OK)
		return err;
	cd_set_data(buf, sizeof(*rw), rw->opaque_data_size, out);
	return CD_OK;
}

static enum cd_error cd_decode_body(const void *buf, size_t cmd_size,
				    struct cd_command *out)
{
	switch (out->cmd) {
	case CD_CMD_INIT:
		return cd_decode_init(buf, cmd_size, out);
	case CD_CMD_GET_IMAGE_REQUIREMENTS:
		memcpy(&out->u.gir, buf, sizeof(out->u.gir));
		return CD_OK;
	case CD_CMD_POLL:
		memcpy(&out->u.poll, buf, sizeof(out->u.poll));
		return CD_OK;
	case CD_CMD_SEND:
		return cd_decode_sr(buf, cmd_size, out);
	default:
		return cd_decode_rw(buf, cmd_size, out);
	}
}

// cmd_size runs past the buffer: when not even the fixed part is there the
// command is truncated, otherwise cmd_size itself is the lie.
static enum cd_error cd_past_buffer(uint8_t cmd, size_t cmd_size, size_t len)
{
	if (len < cd_struct_size(cmd, cmd_size))
		return CD_ERR_TRUNCATED;
	return CD_ERR_CMD_SIZE_PAST_BUFFER;
}

static enum cd_error cd_check_command(const struct cd_header *hdr, size_t len)
{
	enum cd_error err = cd_check_direction(hdr->cmd, true);

	if (err != CD_OK)
		return err;
	if (hdr->cmd_size == 0)
		return CD_ERR_CMD_SIZE_ZERO;
	if (hdr->cmd_size > len)
		return cd_past_buffer(hdr->cmd, hdr->cmd_size, len);
	if (hdr->cmd_size < cd_struct_size(hdr->cmd, hdr->cmd_size))
		return CD_ERR_CMD_SIZE_SHORT;
	return CD_OK;
}

enum cd_error cd_decode_command(const void *buf, size_t len, size_t offset,
				struct cd_command *out)
{
	struct cd_header hdr;
	enum cd_error err;

	memset(out, 0, sizeof(*out));
	if (offset % 4 != 0)
		return CD_ERR_MISALIGNED;
	if (len < sizeof(hdr))
		return CD_ERR_TRUNCATED;
	memcpy(&hdr, buf, sizeof(hdr));
	err = cd_check_command(&hdr, len);
	if (err != CD_OK)
		return err;
	out->cmd = hdr.cmd;
	out->size = hdr.cmd_size;
	return cd_decode_body(buf, hdr.cmd_size, out);
}

enum cd_error cd_decode_ring_event(const void *buf, size_t len,
				   struct cd_command *out)
{
	struct cd_header hdr;
	enum cd_error err;
	size_t head;

	memset(out, 0, sizeof(*out));
	if (len < sizeof(hdr))
		return CD_ERR_TRUNCATED;
	memcpy(&hdr, buf, sizeof(hdr));
	err = cd_check_direction(hdr.cmd, false);
	if (err != CD_OK)
		return err;
	// Hosts leave cmd_size 0 in the ring: the struct gives the extent.
	head = cd_struct_size(hdr.cmd, 0);
	if (len < head)
		return CD_ERR_TRUNCATED;
	out->cmd = hdr.cmd;
	if (hdr.cmd == CD_CMD_RECEIVE)
		err = cd_decode_sr(buf, len, out);
	else
		err = cd_decode_rw(buf, len, out);
	if (err == CD_OK)
		out->size = head + out->data_size;
	return err;
}

// A command larger than cmd_size can say is refused even in a ring, where
// cmd_size is not written, so both directions share one limit.
static bool cd_fits(size_t total, size_t cap)
{
	return total <= cap && total <= UINT16_MAX;
}

static struct cd_header cd_make_header(uint8_t cmd, size_t total, bool in_ring)
{
	struct cd_header hdr = {
		.cmd = cmd,
		.cmd_size = in_ring ? 0 : (uint16_t)total,
	};

	return hdr;
}

size_t cd_encode_init(void *buf, size_t cap, uint32_t query_ring_id,
		      uint32_t channel_ring_id, uint32_t channel_type)
{
	struct cd_init init = {
		.hdr = cd_make_header(CD_CMD_INIT, sizeof(init), false),
		.query_ring_id = query_ring_id,
		.channel_ring_id = channel_ring_id,
		.channel_type = channel_type,
	};

	if (!cd_fits(sizeof(init), cap))
		return 0;
	memcpy(buf, &init, sizeof(init));
	return sizeof(init);
}

size_t cd_encode_get_image_requirements(void *buf, size_t cap, uint32_t width,
					uint32_t height, uint32_t drm_format,
					uint32_t flags)
{
	struct cd_get_image_requirements gir = {
		.hdr = cd_make_header(CD_CMD_GET_IMAGE_REQUIREMENTS,
				      sizeof(gir), false),
		.width = width,
		.height = height,
		.drm_format = drm_format,
		.flags = flags,
	};

	if (!cd_fits(sizeof(gir), cap))
		return 0;
	memcpy(buf, &gir, sizeof(gir));
	return sizeof(gir);
}

size_t cd_encode_poll(void *buf, size_t cap)
{
	struct cd_poll poll = {
		.hdr = cd_make_header(CD_CMD_POLL, sizeof(poll), false),
	};

	if (!cd_fits(sizeof(poll), cap))
		return 0;
	memcpy(buf, &poll, sizeof(poll));
	return sizeof(poll);
}

// Checks shared by both data-carrying encoders; `max` bounds data_size
// before the sum so it cannot wrap.
static size_t cd_data_total(size_t head, const void *data, uint32_t data_size,
			    size_t max, size_t cap)
{
	if (data_size > max || (data_size && !data))
		return 0;
	if (!cd_fits(head + data_size, cap))
		return 0;
	return head + data_size;
}

static bool cd_ids_ok(uint32_t num, const uint32_t *ids, const uint32_t *types,
		      const uint32_t *sizes)
{
	if (num > CD_MAX_IDENTIFIERS)
		return false;
	return num == 0 || (ids && types && sizes);
}

size_t cd_encode_send_receive(void *buf, size_t cap, uint8_t cmd, bool in_ring,
			      uint32_t num_identifiers, const uint32_t *ids,
			      const uint32_t *types, const uint32_t *sizes,
			      const void *data, uint32_t data_size)
{
	struct cd_send_receive sr;
	size_t n = num_identifiers * sizeof(uint32_t);
	size_t total;

	if (cmd != CD_CMD_SEND && cmd != CD_CMD_RECEIVE)
		return 0;
	if (!cd_ids_ok(num_identifiers, ids, types, sizes))
		return 0;
	total = cd_data_total(sizeof(sr), data, data_size, CD_MAX_SEND_DATA, cap);
	if (!total)
		return 0;
	// Unused slots must not leak stack bytes onto the wire.
	memset(&sr, 0, sizeof(sr));
	sr.hdr = cd_make_header(cmd, total, in_ring);
	sr.num_identifiers = num_identifiers;
	sr.opaque_data_size = data_size;
	if (n) {
		memcpy(sr.identifiers, ids, n);
		memcpy(sr.identifier_types, types, n);
		memcpy(sr.identifier_sizes, sizes, n);
	}
	memcpy(buf, &sr, sizeof(sr));
	if (data_size)
		memcpy((uint8_t *)buf + sizeof(sr), data, data_size);
	return total;
}

size_t cd_encode_read_write(void *buf, size_t cap, uint8_t cmd, bool in_ring,
			    uint32_t identifier, bool hang_up, const void *data,
			    uint32_t data_size)
{
	struct cd_read_write rw;
	size_t total;

	if (cmd != CD_CMD_WRITE && cmd != CD_CMD_READ)
		return 0;
	total = cd_data_total(sizeof(rw), data, data_size, CD_MAX_RW_DATA, cap);
	if (!total)
		return 0;
	memset(&rw, 0, sizeof(rw));
	rw.hdr = cd_make_header(cmd, total, in_ring);
	rw.identifier = identifier;
	rw.hang_up = hang_up;
	rw.opaque_data_size = data_size;
	memcpy(buf, &rw, sizeof(rw));
	if (data_size)
		memcpy((uint8_t *)buf + sizeof(rw), data, data_size);
	return total;
}
