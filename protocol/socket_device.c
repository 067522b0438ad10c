// SPDX-License-Identifier: MIT
// The socket device wire format: a validating decoder and a message writer.
// The decoder is the first thing untrusted bytes meet on the host, so every
// length is checked before it is used, counts are bounded before they are
// multiplied, and all multiplication happens in 64 bits.
#include "socket_device.h"

#include <string.h>

#include "common/util.h"

#define SDEV_HDR_SIZE ((uint32_t)sizeof(struct sdev_header))
#define SDEV_MAX_CAPSET_SIZE 1024u

// Where a message's variable contents lie after its fixed struct: an array
// (its byte size and the msg field that points at it), then a payload.
struct sdev_extent {
	uint64_t array_size;
	const uint8_t **array;
	uint32_t payload_size;
};

// Reads the counts of a body whose fixed struct is already in msg->u,
// bounds them and describes the extent they declare.
typedef enum sdev_error (*sdev_extent_fn)(struct sdev_msg *msg,
					  struct sdev_extent *ext);

struct sdev_type_info {
	bool known;
	uint8_t max_fds;
	uint16_t fixed_size; // bytes of the body's fixed struct
	sdev_extent_fn extent; // NULL: the body is exactly the fixed struct
};

static enum sdev_error sdev_extent_hello(struct sdev_msg *msg, struct sdev_extent *ext)
{
	return msg->u.hello.magic == SDEV_MAGIC ? SDEV_OK : SDEV_ERR_BAD_MAGIC;
}

static enum sdev_error sdev_extent_init(struct sdev_msg *msg, struct sdev_extent *ext)
{
	uint32_t n = msg->u.init.num_params;

	if (n > SDEV_MAX_CONTEXT_PARAMS)
		return SDEV_ERR_BAD_COUNT;
	ext->array = &msg->params;
	ext->array_size = (uint64_t)n * sizeof(struct sdev_context_param);
	return SDEV_OK;
}

static enum sdev_error sdev_extent_blob(struct sdev_msg *msg, struct sdev_extent *ext)
{
	// HOST3D memory lives on the host: a guest fd could only be a mistake
	// or an attempt to make the host hold a descriptor it never uses.
	if (msg->u.blob.blob_mem == SDEV_BLOB_MEM_HOST3D && msg->hdr.num_fds)
		return SDEV_ERR_TOO_MANY_FDS;
	if (msg->u.blob.cmd_size > SDEV_MAX_MSG_SIZE)
		return SDEV_ERR_BAD_COUNT;
	ext->payload_size = msg->u.blob.cmd_size;
	return SDEV_OK;
}

static enum sdev_error sdev_extent_exec(struct sdev_msg *msg, struct sdev_extent *ext)
{
	uint32_t n = msg->u.exec.num_bo_handles;

	if (n > SDEV_MAX_BO_HANDLES || msg->u.exec.cmd_size > SDEV_MAX_MSG_SIZE)
		return SDEV_ERR_BAD_COUNT;
	ext->array = &msg->bo_handles;
	ext->array_size = (uint64_t)n * sizeof(uint32_t);
	ext->payload_size = msg->u.exec.cmd_size;
	return SDEV_OK;
}

static enum sdev_error sdev_extent_caps(struct sdev_msg *msg, struct sdev_extent *ext)
{
	if (msg->u.caps.size > SDEV_MAX_CAPSET_SIZE)
		return SDEV_ERR_BAD_COUNT;
	ext->payload_size = msg->u.caps.size;
	return SDEV_OK;
}

// REPLY_ERROR and EVENT_CONTEXT_LOST share the error body.
static enum sdev_error sdev_extent_error(struct sdev_msg *msg, struct sdev_extent *ext)
{
	if (msg->u.error.reason_len > SDEV_MAX_REASON)
		return SDEV_ERR_BAD_COUNT;
	ext->payload_size = msg->u.error.reason_len;
	return SDEV_OK;
}

#define SDEV_TYPE(fixed, fds, fn) { true, (fds), (uint16_t)(fixed), (fn) }

// Indexed by type. Types >= 0x80 travel host to guest, the rest guest to
// host. TRANSFER_TO_HOST and TRANSFER_TO_GUEST are absent on purpose: they
// are reserved for the copy transport and unknown to version 1.
static const struct sdev_type_info sdev_types[] = {
	[SDEV_HELLO] = SDEV_TYPE(sizeof(struct sdev_hello), 0, sdev_extent_hello),
	[SDEV_GET_CAPS] = SDEV_TYPE(sizeof(struct sdev_get_caps), 0, NULL),
	[SDEV_CONTEXT_INIT] = SDEV_TYPE(sizeof(struct sdev_context_init), 0, sdev_extent_init),
	[SDEV_CONTEXT_DESTROY] = SDEV_TYPE(0, 0, NULL),
	// One fd for GUEST blobs (their memory); HOST3D is refused in its extent.
	[SDEV_RESOURCE_CREATE_BLOB] = SDEV_TYPE(sizeof(struct sdev_create_blob), 1,
						sdev_extent_blob),
	[SDEV_RESOURCE_DESTROY] = SDEV_TYPE(sizeof(struct sdev_resource), 0, NULL),
	[SDEV_EXECBUFFER] = SDEV_TYPE(sizeof(struct sdev_execbuffer), 0, sdev_extent_exec),
	[SDEV_WAIT] = SDEV_TYPE(sizeof(struct sdev_wait), 0, NULL),
	[SDEV_RESOURCE_INFO] = SDEV_TYPE(sizeof(struct sdev_resource), 0, NULL),
	[SDEV_REPLY_HELLO] = SDEV_TYPE(sizeof(struct sdev_hello), 0, sdev_extent_hello),
	[SDEV_REPLY_CAPS] = SDEV_TYPE(sizeof(struct sdev_reply_caps), 0, sdev_extent_caps),
	[SDEV_REPLY_OK] = SDEV_TYPE(0, 0, NULL),
	[SDEV_REPLY_RESOURCE] = SDEV_TYPE(sizeof(struct sdev_reply_resource), 1, NULL),
	[SDEV_REPLY_ERROR] = SDEV_TYPE(sizeof(struct sdev_reply_error), 0, sdev_extent_error),
	[SDEV_EVENT_FENCE] = SDEV_TYPE(sizeof(struct sdev_event_fence), 0, NULL),
	[SDEV_EVENT_CONTEXT_LOST] = SDEV_TYPE(sizeof(struct sdev_reply_error), 0,
					      sdev_extent_error),
};

// Every fixed part must fit the union it is copied into.
static_assert(sizeof(((struct sdev_msg *)0)->u) >= sizeof(struct sdev_create_blob),
	      "sdev_msg union");

static const char *const sdev_error_text[SDEV_ERR_COUNT] = {
	[SDEV_OK] = "ok",
	[SDEV_ERR_NEED_MORE] = "message incomplete",
	[SDEV_ERR_SIZE_SMALL] = "message smaller than its contents",
	[SDEV_ERR_SIZE_LARGE] = "message larger than the maximum",
	[SDEV_ERR_MISALIGNED] = "message size not a multiple of 4",
	[SDEV_ERR_UNKNOWN_TYPE] = "unknown message type",
	[SDEV_ERR_WRONG_DIRECTION] = "message type sent in the wrong direction",
	[SDEV_ERR_BAD_FLAGS] = "unknown header flags",
	[SDEV_ERR_TOO_MANY_FDS] = "too many file descriptors",
	[SDEV_ERR_BAD_COUNT] = "count above its limit",
	[SDEV_ERR_TRAILING] = "trailing bytes after the contents",
	[SDEV_ERR_BAD_MAGIC] = "bad magic",
};

const char *sdev_strerror(enum sdev_error err)
{
	if ((unsigned)err >= SDEV_ERR_COUNT)
		return "unknown error";
	return sdev_error_text[err];
}

static const struct sdev_type_info *sdev_type_info(uint16_t type)
{
	if (type >= SML_ARRAY_LEN(sdev_types) || !sdev_types[type].known)
		return NULL;
	return &sdev_types[type];
}

static bool sdev_type_from_host(uint16_t type)
{
	return type >= 0x80;
}

static enum sdev_error sdev_check_header(const struct sdev_header *hdr, bool from_guest)
{
	const struct sdev_type_info *info;
	// Only requests may ask for a reply: nobody answers a reply.
	uint8_t allowed_flags = from_guest ? SDEV_FLAG_REPLY : 0;

	if (hdr->size < SDEV_HDR_SIZE)
		return SDEV_ERR_SIZE_SMALL;
	if (hdr->size > SDEV_MAX_MSG_SIZE)
		return SDEV_ERR_SIZE_LARGE;
	if (hdr->size % 4)
		return SDEV_ERR_MISALIGNED;
	info = sdev_type_info(hdr->type);
	if (!info)
		return SDEV_ERR_UNKNOWN_TYPE;
	if (sdev_type_from_host(hdr->type) == from_guest)
		return SDEV_ERR_WRONG_DIRECTION;
	if (hdr->flags & ~allowed_flags)
		return SDEV_ERR_BAD_FLAGS;
	if (hdr->num_fds > SDEV_MAX_FDS || hdr->num_fds > info->max_fds)
		return SDEV_ERR_TOO_MANY_FDS;
	return SDEV_OK;
}

// Points msg at the validated variable contents; empty parts stay NULL.
static void sdev_set_pointers(struct sdev_msg *msg, const uint8_t *contents,
			      const struct sdev_extent *ext)
{
	if (ext->array && ext->array_size)
		*ext->array = contents;
	msg->payload_size = ext->payload_size;
	if (ext->payload_size)
		msg->payload = contents + ext->array_size;
}

static enum sdev_error sdev_decode_body(const uint8_t *body, struct sdev_msg *msg)
{
	const struct sdev_type_info *info = sdev_type_info(msg->hdr.type);
	struct sdev_extent ext = { 0 };
	uint32_t body_size = msg->hdr.size - SDEV_HDR_SIZE;
	uint64_t declared;
	enum sdev_error err;

	if (body_size < info->fixed_size)
		return SDEV_ERR_SIZE_SMALL;
	memcpy(&msg->u, body, info->fixed_size);
	err = info->extent ? info->extent(msg, &ext) : SDEV_OK;
	if (err != SDEV_OK)
		return err;
	// Counts are bounded above, so this cannot wrap; align as the writer pads.
	declared = info->fixed_size + ext.array_size + ext.payload_size;
	declared = (declared + 3) & ~(uint64_t)3;
	if (declared > body_size)
		return SDEV_ERR_SIZE_SMALL;
	if (declared < body_size)
		return SDEV_ERR_TRAILING;
	sdev_set_pointers(msg, body + info->fixed_size, &ext);
	return SDEV_OK;
}

enum sdev_error sdev_decode(const void *buf, size_t len, bool from_guest,
			    struct sdev_msg *msg)
{
	enum sdev_error err;

	memset(msg, 0, sizeof(*msg));
	if (len < SDEV_HDR_SIZE)
		return SDEV_ERR_NEED_MORE;
	memcpy(&msg->hdr, buf, SDEV_HDR_SIZE);
	// The header is judged before waiting for the body, so a peer cannot
	// make the receiver buffer up to a bogus size first.
	err = sdev_check_header(&msg->hdr, from_guest);
	if (err != SDEV_OK)
		return err;
	if (len < msg->hdr.size)
		return SDEV_ERR_NEED_MORE;
	return sdev_decode_body((const uint8_t *)buf + SDEV_HDR_SIZE, msg);
}

uint32_t sdev_msg_bo_handle(const struct sdev_msg *msg, uint32_t i)
{
	uint32_t handle;

	// 0 is never a valid handle, so out of range reads stay harmless.
	if (!msg->bo_handles || i >= msg->u.exec.num_bo_handles)
		return 0;
	memcpy(&handle, msg->bo_handles + (size_t)i * sizeof(handle), sizeof(handle));
	return handle;
}

struct sdev_context_param sdev_msg_param(const struct sdev_msg *msg, uint32_t i)
{
	struct sdev_context_param param = { 0, 0 };

	// Param 0 is unknown to every server, so out of range reads are refused.
	if (!msg->params || i >= msg->u.init.num_params)
		return param;
	memcpy(&param, msg->params + (size_t)i * sizeof(param), sizeof(param));
	return param;
}

void sdev_writer_begin(struct sdev_writer *w, void *buf, size_t cap, uint16_t type,
		       uint8_t flags, uint32_t seq, uint32_t ctx_id, uint8_t num_fds)
{
	struct sdev_header hdr = {
		.type = type,
		.flags = flags,
		.num_fds = num_fds,
		.size = 0, // fixed by sdev_writer_end
		.seq = seq,
		.ctx_id = ctx_id,
	};

	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = false;
	sdev_writer_put(w, &hdr, sizeof(hdr));
}

void sdev_writer_put(struct sdev_writer *w, const void *data, size_t size)
{
	if (w->overflow || size > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	if (size)
		memcpy(w->buf + w->len, data, size);
	w->len += size;
}

size_t sdev_writer_end(struct sdev_writer *w)
{
	static const uint8_t zeros[3];
	uint32_t size;

	sdev_writer_put(w, zeros, sml_align4(w->len) - w->len);
	if (w->overflow || w->len > SDEV_MAX_MSG_SIZE)
		return 0;
	size = (uint32_t)w->len;
	memcpy(w->buf + offsetof(struct sdev_header, size), &size, sizeof(size));
	return size;
}
