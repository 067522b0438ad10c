// SPDX-License-Identifier: MIT
#include "wire.h"

#include <stdarg.h>
#include <string.h>

#include "harness.h"

static void put_u32(uint8_t *buf, size_t *len, uint32_t v)
{
	memcpy(buf + *len, &v, 4);
	*len += 4;
}

void wire_put(uint8_t *buf, size_t *len, uint32_t obj, uint16_t opcode, const char *sig, ...)
{
	size_t start = *len;
	put_u32(buf, len, obj);
	put_u32(buf, len, 0); // size and opcode, below
	va_list ap;
	va_start(ap, sig);
	for (const char *c = sig; *c; c++) {
		if (*c == 's') {
			const char *str = va_arg(ap, const char *);
			uint32_t n = (uint32_t)strlen(str) + 1;
			put_u32(buf, len, n);
			memset(buf + *len, 0, (n + 3) & ~3u);
			memcpy(buf + *len, str, n);
			*len += (n + 3) & ~3u;
		} else if (*c != 'h') {
			put_u32(buf, len, va_arg(ap, uint32_t));
		}
	}
	va_end(ap);
	uint32_t word = (uint32_t)(*len - start) << 16 | opcode;
	memcpy(buf + start + 4, &word, 4);
}

void wire_stream_push(struct wire_stream *s, const void *data, size_t size)
{
	CHECK(s->len + size <= sizeof(s->buf));
	memcpy(s->buf + s->len, data, size);
	s->len += size;
}

bool wire_stream_next(struct wire_stream *s, struct wire_message *m)
{
	static uint8_t current[1 << 16];
	if (s->len < 8)
		return false;
	uint32_t word;
	memcpy(&m->obj, s->buf, 4);
	memcpy(&word, s->buf + 4, 4);
	m->size = (uint16_t)(word >> 16);
	m->opcode = (uint16_t)word;
	CHECK(m->size >= 8 && m->size % 4 == 0);
	if (s->len < m->size)
		return false;
	memcpy(current, s->buf, m->size);
	m->args = current + 8;
	memmove(s->buf, s->buf + m->size, s->len - m->size);
	s->len -= m->size;
	return true;
}

uint32_t wire_arg_u32(const struct wire_message *m, size_t index)
{
	uint32_t v = 0;
	if ((index + 1) * 4 <= (size_t)m->size - 8)
		memcpy(&v, m->args + index * 4, 4);
	return v;
}

const char *wire_arg_string(const struct wire_message *m, size_t index, char *out, size_t cap)
{
	uint32_t n = wire_arg_u32(m, index);
	size_t off = (index + 1) * 4;
	out[0] = '\0';
	if (n == 0 || n > cap || off + n > (size_t)m->size - 8)
		return out;
	memcpy(out, m->args + off, n);
	out[n - 1] = '\0';
	return out;
}
