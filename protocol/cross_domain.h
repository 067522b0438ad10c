// SPDX-License-Identifier: MIT
// The virtio-gpu cross-domain context type: wire structs, encoders and a
// validating decoder. See ../shared/cross-domain.md (copied into doc/).
// All integers are little-endian; every struct is pinned by static_assert.
#ifndef SML_PROTOCOL_CROSS_DOMAIN_H
#define SML_PROTOCOL_CROSS_DOMAIN_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	      "the cross-domain wire is little-endian; add byte swapping first");

#define CD_CAPSET_ID 5u
#define CD_CAPSET_VERSION 1u

enum cd_cmd {
	CD_CMD_INIT = 1,
	CD_CMD_GET_IMAGE_REQUIREMENTS = 2,
	CD_CMD_POLL = 3,
	CD_CMD_SEND = 4,
	CD_CMD_RECEIVE = 5, // host to guest
	CD_CMD_READ = 6, // host to guest
	CD_CMD_WRITE = 7,
};

enum cd_channel_type {
	CD_CHANNEL_NONE = 0,
	CD_CHANNEL_WAYLAND = 1,
	CD_CHANNEL_CAMERA = 2,
	CD_CHANNEL_PIPEWIRE = 0x10,
	CD_CHANNEL_X11 = 0x11,
};

enum cd_id_type {
	CD_ID_VIRTGPU_BLOB = 1,
	CD_ID_VIRTGPU_SYNC = 2, // defined by the spec, implemented by no host
	CD_ID_READ_PIPE = 3,
	CD_ID_WRITE_PIPE = 4,
};

#define CD_MAX_IDENTIFIERS 28u
#define CD_QUERY_RING 0u
#define CD_CHANNEL_RING 1u
#define CD_RING_NONE 0xFFFFFFFFu
#define CD_RING_SIZE 4096u
// Read-pipe ids are guest-chosen, pre-incremented from this base.
#define CD_READ_PIPE_ID_BASE 0x80000000u

// minigbm BO_USE_* flags carried by GET_IMAGE_REQUIREMENTS.
#define CD_USE_SCANOUT (1u << 0)
#define CD_USE_RENDERING (1u << 2)
#define CD_USE_LINEAR (1u << 4)
#define CD_USE_TEXTURING (1u << 5)
#define CD_USE_SW_READ_OFTEN (1u << 9)
#define CD_USE_SW_WRITE_OFTEN (1u << 11)

// map_info cache kinds (low nibble).
#define CD_MAP_CACHE_NONE 0u
#define CD_MAP_CACHE_CACHED 1u
#define CD_MAP_CACHE_UNCACHED 2u
#define CD_MAP_CACHE_WC 3u

struct cd_header {
	uint8_t cmd;
	uint8_t ring_idx; // ignored by hosts
	uint16_t cmd_size; // whole command including trailing data; 0 in ring messages
	uint32_t pad;
};
static_assert(sizeof(struct cd_header) == 8, "cd_header");

struct cd_capabilities {
	uint32_t version;
	uint32_t supported_channels; // bit (1 << channel type)
	uint32_t supports_dmabuf;
	uint32_t supports_external_gpu_memory;
};
static_assert(sizeof(struct cd_capabilities) == 16, "cd_capabilities");

struct cd_init {
	struct cd_header hdr;
	uint32_t query_ring_id;
	uint32_t channel_ring_id;
	uint32_t channel_type;
};
static_assert(sizeof(struct cd_init) == 20, "cd_init");

// The legacy form, from hosts and guests that predate the channel ring.
struct cd_init_legacy {
	struct cd_header hdr;
	uint32_t query_ring_id;
	uint32_t channel_type;
};
static_assert(sizeof(struct cd_init_legacy) == 16, "cd_init_legacy");

struct cd_get_image_requirements {
	struct cd_header hdr;
	uint32_t width;
	uint32_t height;
	uint32_t drm_format;
	uint32_t flags;
};
static_assert(sizeof(struct cd_get_image_requirements) == 24, "cd_gir");

// Written by the host at query-ring offset 0, without a header.
struct cd_image_requirements {
	uint32_t strides[4];
	uint32_t offsets[4];
	uint64_t modifier;
	uint64_t size; // page-rounded
	uint32_t blob_id;
	uint32_t map_info;
	int32_t memory_idx;
	int32_t physical_device_idx;
};
static_assert(sizeof(struct cd_image_requirements) == 64, "cd_image_requirements");

struct cd_poll {
	struct cd_header hdr;
	uint64_t pad;
};
static_assert(sizeof(struct cd_poll) == 16, "cd_poll");

struct cd_send_receive {
	struct cd_header hdr;
	uint32_t num_identifiers;
	uint32_t opaque_data_size;
	uint32_t identifiers[CD_MAX_IDENTIFIERS];
	uint32_t identifier_types[CD_MAX_IDENTIFIERS];
	uint32_t identifier_sizes[CD_MAX_IDENTIFIERS];
	// followed by opaque_data_size bytes of Wayland wire data
};
static_assert(sizeof(struct cd_send_receive) == 352, "cd_send_receive");

struct cd_read_write {
	struct cd_header hdr;
	uint32_t identifier;
	uint32_t hang_up;
	uint32_t opaque_data_size;
	uint32_t pad;
	// followed by opaque_data_size bytes
};
static_assert(sizeof(struct cd_read_write) == 24, "cd_read_write");

// A SEND or RECEIVE fits one ring page.
#define CD_MAX_SEND_DATA (CD_RING_SIZE - sizeof(struct cd_send_receive)) // 3744
#define CD_MAX_RW_DATA (CD_RING_SIZE - sizeof(struct cd_read_write)) // 4072

enum cd_error {
	CD_OK = 0,
	CD_ERR_TRUNCATED, // fewer bytes than a header, or than the command's struct
	CD_ERR_MISALIGNED, // a command does not start on a 4-byte boundary
	CD_ERR_CMD_SIZE_ZERO, // would make a naive host loop forever
	CD_ERR_CMD_SIZE_SHORT, // cmd_size smaller than the command's struct
	CD_ERR_CMD_SIZE_PAST_BUFFER, // cmd_size larger than the bytes given
	CD_ERR_UNKNOWN_CMD, // includes fork-specific 8..13
	CD_ERR_WRONG_DIRECTION, // e.g. a guest sending RECEIVE
	CD_ERR_TOO_MANY_IDENTIFIERS, // num_identifiers > 28
	CD_ERR_DATA_PAST_CMD, // opaque_data_size past cmd_size (or the ring page)
	CD_ERR_DATA_TOO_LARGE, // more than fits one ring page
	CD_ERR_UNKNOWN_ID_TYPE, // identifier type not 1..4
	CD_ERR_BAD_CHANNEL, // INIT with a channel type that is not known
	CD_ERR_COUNT,
};

// A stable, human-readable name of what is wrong ("cmd_size is zero", ...).
const char *cd_strerror(enum cd_error err);

// A decoded command. Fixed-size parts are copied out (so the source buffer
// may be unaligned); `data` points into the source buffer.
struct cd_command {
	uint8_t cmd;
	size_t size; // bytes consumed: cmd_size, or struct + opaque_data_size for ring messages
	union {
		struct cd_init init; // the legacy form is normalized: channel_ring_id = CD_RING_NONE
		struct cd_get_image_requirements gir;
		struct cd_poll poll;
		struct cd_send_receive sr; // SEND or RECEIVE
		struct cd_read_write rw; // READ or WRITE
	} u;
	bool legacy_init; // INIT came in the 16-byte form
	const uint8_t *data; // opaque bytes of SEND/RECEIVE/READ/WRITE; NULL when data_size is 0
	uint32_t data_size;
};

// Decodes one guest-to-host command (INIT, GET_IMAGE_REQUIREMENTS, POLL,
// SEND, WRITE) at the start of buf. cmd_size decides the extent; several
// commands may follow each other in one execbuffer, each 4-byte aligned.
// `offset` is the command's offset in its execbuffer (for the alignment check).
enum cd_error cd_decode_command(const void *buf, size_t len, size_t offset,
				struct cd_command *out);

// Decodes a host-to-guest ring message (RECEIVE or READ) from a ring page.
// Hosts write cmd_size 0 there, so the extent comes from the struct and its
// opaque_data_size, which must stay inside len (normally CD_RING_SIZE).
enum cd_error cd_decode_ring_event(const void *buf, size_t len, struct cd_command *out);

// Encoders: write the command into buf (at least the returned size), fill in
// the header (cmd, cmd_size) and return the total size, or 0 if it does not
// fit `cap` or breaks a limit (too many identifiers, too much data).
size_t cd_encode_init(void *buf, size_t cap, uint32_t query_ring_id,
		      uint32_t channel_ring_id, uint32_t channel_type);
size_t cd_encode_get_image_requirements(void *buf, size_t cap, uint32_t width,
					uint32_t height, uint32_t drm_format,
					uint32_t flags);
size_t cd_encode_poll(void *buf, size_t cap);
// For SEND (guest) and RECEIVE (host, in_ring sets cmd_size 0).
size_t cd_encode_send_receive(void *buf, size_t cap, uint8_t cmd, bool in_ring,
			      uint32_t num_identifiers, const uint32_t *ids,
			      const uint32_t *types, const uint32_t *sizes,
			      const void *data, uint32_t data_size);
// For WRITE (guest) and READ (host, in_ring sets cmd_size 0).
size_t cd_encode_read_write(void *buf, size_t cap, uint8_t cmd, bool in_ring,
			    uint32_t identifier, bool hang_up, const void *data,
			    uint32_t data_size);

#endif
