// SPDX-License-Identifier: MIT
// The socket device: the operations of the virtio-gpu kernel UAPI that the
// guest uses, carried as framed messages over a stream socket to the host
// peer. doc/socket-device.md is the normative description.
//
// Framing: every message is a 16-byte header followed by `size - 16` bytes of
// body. File descriptors travel with SCM_RIGHTS on Unix sockets, attached to
// the first byte of the message that declares them in `num_fds`.
#ifndef SML_PROTOCOL_SOCKET_DEVICE_H
#define SML_PROTOCOL_SOCKET_DEVICE_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SDEV_MAGIC 0x76645373u // "SsdV" little-endian
#define SDEV_VERSION 1u
#define SDEV_MAX_MSG_SIZE (64u * 1024u) // header included
#define SDEV_MAX_FDS 4u // per message
#define SDEV_MAX_REASON 256u // bytes of error text, without NUL
// WAITs outstanding per connection; more fail with -EBUSY. A kernel WAIT
// blocks the guest thread that makes it, so a guest has one per thread.
#define SDEV_MAX_WAITS 64u
#define SDEV_PAGE_SIZE 4096u

// Feature bits, negotiated by HELLO (the server answers the intersection).
#define SDEV_FEATURE_FD_PASSING (1ull << 0) // SCM_RIGHTS works on this transport
// Reserved for the copy transport (TCP, vsock): TRANSFER messages keep shadow
// copies in sync instead of sharing memory. Not implemented by version 1.
#define SDEV_FEATURE_SHADOW_COPY (1ull << 1)

enum sdev_type {
	// requests, guest to host
	SDEV_HELLO = 1,
	SDEV_GET_CAPS = 2,
	SDEV_CONTEXT_INIT = 3,
	SDEV_CONTEXT_DESTROY = 4,
	SDEV_RESOURCE_CREATE_BLOB = 5,
	SDEV_RESOURCE_DESTROY = 6,
	SDEV_EXECBUFFER = 7,
	SDEV_WAIT = 8,
	SDEV_RESOURCE_INFO = 9,
	SDEV_TRANSFER_TO_HOST = 10, // reserved (shadow copy)
	// replies and events, host to guest
	SDEV_REPLY_HELLO = 0x81,
	SDEV_REPLY_CAPS = 0x82,
	SDEV_REPLY_OK = 0x83, // success without payload (flag REPLY, WAIT)
	SDEV_REPLY_RESOURCE = 0x85, // CREATE_BLOB and RESOURCE_INFO
	SDEV_REPLY_ERROR = 0x8f,
	SDEV_EVENT_FENCE = 0x90,
	SDEV_EVENT_CONTEXT_LOST = 0x91,
	SDEV_TRANSFER_TO_GUEST = 0x92, // reserved (shadow copy)
};

// Header flags.
#define SDEV_FLAG_REPLY (1u << 0) // reply even on success (REPLY_OK if no payload)

struct sdev_header {
	uint16_t type;
	uint8_t flags;
	uint8_t num_fds;
	uint32_t size; // whole message, header included, multiple of 4
	uint32_t seq; // chosen by the requester; replies and fences echo it
	uint32_t ctx_id; // 0 when no context is involved
};
static_assert(sizeof(struct sdev_header) == 16, "sdev_header");

struct sdev_hello {
	uint32_t magic;
	uint32_t version;
	uint64_t features;
};
static_assert(sizeof(struct sdev_hello) == 16, "sdev_hello");

struct sdev_get_caps {
	uint32_t capset_id;
	uint32_t capset_version;
};
static_assert(sizeof(struct sdev_get_caps) == 8, "sdev_get_caps");

struct sdev_reply_caps {
	uint32_t capset_id;
	uint32_t size; // bytes of capset that follow
	// followed by `size` bytes, padded to 4
};
static_assert(sizeof(struct sdev_reply_caps) == 8, "sdev_reply_caps");

// Parameters as in DRM_IOCTL_VIRTGPU_CONTEXT_INIT.
#define SDEV_CONTEXT_PARAM_CAPSET_ID 1u
#define SDEV_CONTEXT_PARAM_NUM_RINGS 2u
#define SDEV_CONTEXT_PARAM_POLL_RINGS_MASK 3u
#define SDEV_MAX_CONTEXT_PARAMS 8u
#define SDEV_MAX_RINGS 64u

struct sdev_context_param {
	uint64_t param;
	uint64_t value;
};
static_assert(sizeof(struct sdev_context_param) == 16, "sdev_context_param");

struct sdev_context_init {
	uint32_t num_params;
	uint32_t pad;
	// followed by num_params struct sdev_context_param
};
static_assert(sizeof(struct sdev_context_init) == 8, "sdev_context_init");

// As VIRTGPU_BLOB_MEM_* and VIRTGPU_BLOB_FLAG_*.
#define SDEV_BLOB_MEM_GUEST 1u // backed by the fd the guest attaches
#define SDEV_BLOB_MEM_HOST3D 2u // backed by host memory named by blob_id
#define SDEV_BLOB_FLAG_USE_MAPPABLE 1u
#define SDEV_BLOB_FLAG_USE_SHAREABLE 2u
#define SDEV_BLOB_FLAG_USE_CROSS_DEVICE 4u

struct sdev_create_blob {
	uint32_t blob_mem;
	uint32_t blob_flags;
	uint64_t size; // page-aligned, non-zero
	uint64_t blob_id; // HOST3D: the id the context handed out; GUEST: 0
	uint32_t cmd_size; // execbuffer bytes to submit before creating (may be 0)
	uint32_t pad;
	// followed by cmd_size bytes, padded to 4
};
static_assert(sizeof(struct sdev_create_blob) == 32, "sdev_create_blob");

struct sdev_reply_resource {
	uint32_t res_handle;
	uint32_t blob_mem;
	uint64_t size;
	// HOST3D creations carry the blob's fd (num_fds 1) when fds pass
};
static_assert(sizeof(struct sdev_reply_resource) == 16, "sdev_reply_resource");

struct sdev_resource {
	uint32_t res_handle; // RESOURCE_DESTROY, RESOURCE_INFO
	uint32_t pad;
};
static_assert(sizeof(struct sdev_resource) == 8, "sdev_resource");

// As VIRTGPU_EXECBUF_*; fence fds stay local to the guest, so only RING_IDX
// has a meaning on the wire.
#define SDEV_EXECBUF_RING_IDX 0x04u
#define SDEV_MAX_BO_HANDLES 64u

struct sdev_execbuffer {
	uint32_t flags;
	uint32_t ring_idx; // used when flags has RING_IDX, else ring 0
	uint32_t num_bo_handles;
	uint32_t cmd_size;
	// followed by num_bo_handles u32 handles, then cmd_size bytes, padded to 4
};
static_assert(sizeof(struct sdev_execbuffer) == 16, "sdev_execbuffer");

#define SDEV_WAIT_NOWAIT 1u

struct sdev_wait {
	uint32_t res_handle;
	uint32_t flags;
};
static_assert(sizeof(struct sdev_wait) == 8, "sdev_wait");

struct sdev_reply_error {
	int32_t error; // negative errno
	uint16_t request_type;
	uint16_t reason_len; // bytes of text that follow, no NUL, <= SDEV_MAX_REASON
	// followed by reason_len bytes, padded to 4
};
static_assert(sizeof(struct sdev_reply_error) == 8, "sdev_reply_error");

// A fence of an execbuffer signalled, on a ring of the context's poll mask.
// header.seq is the seq of that EXECBUFFER.
struct sdev_event_fence {
	uint32_t ring_idx;
	uint32_t pad;
};
static_assert(sizeof(struct sdev_event_fence) == 8, "sdev_event_fence");

// CONTEXT_LOST uses the sdev_reply_error body (request_type 0): the host
// ended the context; every later request on it fails with -ENODEV.

enum sdev_error {
	SDEV_OK = 0,
	SDEV_ERR_NEED_MORE, // not an error: fewer bytes than the header says
	SDEV_ERR_SIZE_SMALL, // size below the header, or below the body's struct
	SDEV_ERR_SIZE_LARGE, // size above SDEV_MAX_MSG_SIZE
	SDEV_ERR_MISALIGNED, // size not a multiple of 4
	SDEV_ERR_UNKNOWN_TYPE,
	SDEV_ERR_WRONG_DIRECTION, // a reply sent as a request or the reverse
	SDEV_ERR_BAD_FLAGS,
	SDEV_ERR_TOO_MANY_FDS, // num_fds above SDEV_MAX_FDS or what the type allows
	SDEV_ERR_BAD_COUNT, // num_params, num_bo_handles, reason_len, capset size
	SDEV_ERR_TRAILING, // body longer than its declared contents (plus padding)
	SDEV_ERR_BAD_MAGIC,
	SDEV_ERR_COUNT,
};

const char *sdev_strerror(enum sdev_error err);

// A decoded message; pointers point into the source buffer.
struct sdev_msg {
	struct sdev_header hdr;
	union {
		struct sdev_hello hello;
		struct sdev_get_caps get_caps;
		struct sdev_reply_caps caps;
		struct sdev_context_init init;
		struct sdev_create_blob blob;
		struct sdev_reply_resource resource;
		struct sdev_resource res;
		struct sdev_execbuffer exec;
		struct sdev_wait wait;
		struct sdev_reply_error error;
		struct sdev_event_fence fence;
	} u;
	const uint8_t *params; // CONTEXT_INIT: num_params sdev_context_param (unaligned)
	const uint8_t *bo_handles; // EXECBUFFER: num_bo_handles u32 (unaligned)
	const uint8_t *payload; // capset bytes, execbuffer/blob cmd, reason text
	uint32_t payload_size;
};

// Decodes one message at the start of buf. On SDEV_OK, msg->hdr.size bytes
// form the message. SDEV_ERR_NEED_MORE asks for more bytes (the header is
// checked as soon as 16 bytes are there, so a bad size fails early).
// `from_guest` selects which types are acceptable.
enum sdev_error sdev_decode(const void *buf, size_t len, bool from_guest,
			    struct sdev_msg *msg);

// Reads a u32/param out of the unaligned arrays of a decoded message.
uint32_t sdev_msg_bo_handle(const struct sdev_msg *msg, uint32_t i);
struct sdev_context_param sdev_msg_param(const struct sdev_msg *msg, uint32_t i);

// Encoding: a message is built into a caller buffer of SDEV_MAX_MSG_SIZE.
// sdev_encode_begin writes the header; the appenders add body bytes; the
// end call pads to 4, fixes size and returns it (0 if it overflowed).
struct sdev_writer {
	uint8_t *buf;
	size_t cap;
	size_t len;
	bool overflow;
};

void sdev_writer_begin(struct sdev_writer *w, void *buf, size_t cap, uint16_t type,
		       uint8_t flags, uint32_t seq, uint32_t ctx_id, uint8_t num_fds);
void sdev_writer_put(struct sdev_writer *w, const void *data, size_t size);
size_t sdev_writer_end(struct sdev_writer *w);

#endif
