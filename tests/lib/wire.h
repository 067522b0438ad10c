// SPDX-License-Identifier: MIT
// Raw Wayland wire messages for tests that talk below libwayland.
#ifndef SML_TEST_WIRE_H
#define SML_TEST_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Appends a message to buf at *len. sig: u/i/o/n (32-bit), s (string);
// fds travel out of band, so 'h' takes no argument and adds no bytes.
void wire_put(uint8_t *buf, size_t *len, uint32_t obj, uint16_t opcode, const char *sig, ...);

struct wire_stream {
	uint8_t buf[1 << 16];
	size_t len;
};

struct wire_message {
	uint32_t obj;
	uint16_t opcode;
	uint16_t size;
	const uint8_t *args; // size - 8 bytes
};

void wire_stream_push(struct wire_stream *s, const void *data, size_t size);
// Takes the next complete message (valid until the next call).
bool wire_stream_next(struct wire_stream *s, struct wire_message *m);

uint32_t wire_arg_u32(const struct wire_message *m, size_t index);
// The string at word `index` (a length word then bytes); "" if malformed.
const char *wire_arg_string(const struct wire_message *m, size_t index, char *out, size_t cap);

#endif
