// SPDX-License-Identifier: MIT
// Fuzzes the socket device decoder, which is the first code on the host to
// read guest bytes. The input is a byte stream, split into messages in each
// direction. Every decoded message is read through all its pointers (so a
// sanitizer sees any that stray out of the input) and re-encoded with the
// writer, which must reproduce the declared fields byte for byte.
#include <stdlib.h>
#include <string.h>

#include "protocol/socket_device.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// Keeps the reads below from being optimised away.
static volatile uint32_t sink;

static void touch(const uint8_t *p, size_t n)
{
	uint32_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc += p[i];
	sink += acc;
}

// The fixed struct of each type, from the header's definitions alone: an
// oracle independent of the decoder's own table.
static size_t fixed_size(uint16_t type)
{
	switch (type) {
	case SDEV_HELLO:
	case SDEV_REPLY_HELLO:
		return sizeof(struct sdev_hello);
	case SDEV_GET_CAPS:
		return sizeof(struct sdev_get_caps);
	case SDEV_CONTEXT_INIT:
		return sizeof(struct sdev_context_init);
	case SDEV_RESOURCE_CREATE_BLOB:
		return sizeof(struct sdev_create_blob);
	case SDEV_RESOURCE_DESTROY:
	case SDEV_RESOURCE_INFO:
		return sizeof(struct sdev_resource);
	case SDEV_EXECBUFFER:
		return sizeof(struct sdev_execbuffer);
	case SDEV_WAIT:
		return sizeof(struct sdev_wait);
	case SDEV_REPLY_CAPS:
		return sizeof(struct sdev_reply_caps);
	case SDEV_REPLY_RESOURCE:
		return sizeof(struct sdev_reply_resource);
	case SDEV_REPLY_ERROR:
	case SDEV_EVENT_CONTEXT_LOST:
		return sizeof(struct sdev_reply_error);
	case SDEV_EVENT_FENCE:
		return sizeof(struct sdev_event_fence);
	default: // CONTEXT_DESTROY, REPLY_OK
		return 0;
	}
}

static size_t array_size(const struct sdev_msg *msg)
{
	if (msg->params)
		return (size_t)msg->u.init.num_params * sizeof(struct sdev_context_param);
	if (msg->bo_handles)
		return (size_t)msg->u.exec.num_bo_handles * sizeof(uint32_t);
	return 0;
}

static void touch_arrays(const struct sdev_msg *msg)
{
	touch(msg->params ? msg->params : msg->bo_handles, array_size(msg));
	if (msg->params) {
		for (uint32_t i = 0; i <= msg->u.init.num_params; i++) {
			struct sdev_context_param p = sdev_msg_param(msg, i);
			sink += (uint32_t)(p.param ^ p.value);
		}
	}
	if (msg->bo_handles) {
		for (uint32_t i = 0; i <= msg->u.exec.num_bo_handles; i++)
			sink += sdev_msg_bo_handle(msg, i);
	}
	touch(msg->payload, msg->payload_size);
}

static void check_reencode(const uint8_t *data, const struct sdev_msg *msg,
			   bool from_guest)
{
	static uint8_t out[SDEV_MAX_MSG_SIZE];
	const struct sdev_header *hdr = &msg->hdr;
	size_t fixed = fixed_size(hdr->type);
	size_t declared = sizeof(*hdr) + fixed + array_size(msg) + msg->payload_size;
	struct sdev_writer w;
	struct sdev_msg again;

	sdev_writer_begin(&w, out, sizeof(out), hdr->type, hdr->flags, hdr->seq,
			  hdr->ctx_id, hdr->num_fds);
	sdev_writer_put(&w, &msg->u, fixed);
	sdev_writer_put(&w, msg->params ? msg->params : msg->bo_handles, array_size(msg));
	sdev_writer_put(&w, msg->payload, msg->payload_size);
	// Only the padding may differ: it is not a declared field.
	if (sdev_writer_end(&w) != hdr->size || declared > hdr->size ||
	    memcmp(out, data, declared))
		abort();
	if (sdev_decode(out, hdr->size, from_guest, &again) != SDEV_OK ||
	    memcmp(&again.hdr, hdr, sizeof(*hdr)))
		abort();
}

static void decode_stream(const uint8_t *data, size_t size, bool from_guest)
{
	struct sdev_msg msg;
	enum sdev_error err;

	while ((err = sdev_decode(data, size, from_guest, &msg)) == SDEV_OK) {
		if (msg.hdr.size < sizeof(msg.hdr) || msg.hdr.size > size)
			abort();
		touch_arrays(&msg);
		check_reencode(data, &msg, from_guest);
		data += msg.hdr.size;
		size -= msg.hdr.size;
	}
	if (!sdev_strerror(err))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	decode_stream(data, size, true);
	decode_stream(data, size, false);
	return 0;
}
