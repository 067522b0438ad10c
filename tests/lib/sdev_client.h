// SPDX-License-Identifier: MIT
// A blocking socket-device client for tests: speaks to a real
// sommelier-host the way a guest does, one request at a time.
#ifndef SML_TEST_SDEV_CLIENT_H
#define SML_TEST_SDEV_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cross_domain.h"
#include "socket_device.h"

#define TEST_BACKLOG 64
// For sdev_client_wait: any reply (0x81..0x8f), not an event.
#define TEST_ANY_REPLY 0xffffu

struct test_msg {
	struct sdev_msg msg; // pointers into raw
	uint8_t raw[SDEV_MAX_MSG_SIZE];
	int fds[SDEV_MAX_FDS];
};

struct sdev_client {
	int fd;
	uint32_t seq;
	uint8_t in[2 * SDEV_MAX_MSG_SIZE];
	size_t in_len;
	int in_fds[64];
	size_t in_nfds;
	struct test_msg *backlog[TEST_BACKLOG]; // received, not yet asked for
	size_t nbacklog;
};

// Connects and completes HELLO; NULL on failure.
struct sdev_client *sdev_client_connect(const char *path);
// Connects without the handshake.
struct sdev_client *sdev_client_connect_raw(const char *path);
// Wraps a connected socket (TCP, say), without the handshake.
struct sdev_client *sdev_client_from_fd(int fd);
void sdev_client_destroy(struct sdev_client *c);

// Sends one message with body parts (a, then b), returns its seq.
uint32_t sdev_client_send(struct sdev_client *c, uint16_t type, uint8_t flags,
			  uint32_t ctx_id, const void *a, size_t a_size, const void *b,
			  size_t b_size, const int *fds, uint8_t nfds);
// Sends raw bytes (for malformed input).
void sdev_client_send_raw(struct sdev_client *c, const void *data, size_t size);

// Waits for a message of `type` (0: any) whose seq and ctx match (UINT32_MAX:
// any); other messages are kept for later calls. NULL on timeout or EOF.
// The caller frees the result.
struct test_msg *sdev_client_wait(struct sdev_client *c, uint16_t type, uint32_t seq,
				  uint32_t ctx_id, int timeout_ms);
// True when the host closed the connection within the timeout.
bool sdev_client_wait_eof(struct sdev_client *c, int timeout_ms);

// Request helpers that wait for their reply; they return the error (<0) or 0.
int sdev_client_create_guest_blob(struct sdev_client *c, uint32_t ctx_id, int memfd,
				  uint64_t size, uint32_t *handle);
int sdev_client_create_host_blob(struct sdev_client *c, uint32_t ctx_id, uint64_t blob_id,
				 uint64_t size, uint32_t *handle, int *fd);
int sdev_client_context_init(struct sdev_client *c, uint32_t ctx_id, uint32_t capset,
			     uint32_t num_rings, uint64_t poll_mask);
// EXECBUFFER with the REPLY flag; returns its error or 0, and its seq.
int sdev_client_exec(struct sdev_client *c, uint32_t ctx_id, uint32_t flags, uint32_t ring,
		     const uint32_t *bos, uint32_t nbos, const void *cmd, size_t size,
		     uint32_t *seq);
void test_msg_free(struct test_msg *m);
// The error of a REPLY_ERROR message, or 0 for anything else.
int test_msg_error(const struct test_msg *m);

// A cross-domain guest context with its two rings.
struct test_ctx {
	struct sdev_client *c;
	uint32_t id;
	uint32_t query_res, channel_res;
	int query_fd, channel_fd;
	uint8_t *query, *channel;
	bool polling; // a POLL is outstanding (a wait timed out)
	uint32_t poll_seq;
};

// Creates the context, its rings and sends the cross-domain INIT.
void test_ctx_create(struct sdev_client *c, uint32_t id, struct test_ctx *t);
void test_ctx_destroy(struct test_ctx *t);
// Frees the guest side only (the host ends the context with the connection).
void test_ctx_forget(struct test_ctx *t);
// SEND of Wayland bytes with identifiers; returns the execbuffer's error.
int test_ctx_send(struct test_ctx *t, const void *data, uint32_t size, uint32_t n,
		  const uint32_t *ids, const uint32_t *types);
// POLLs and waits for the ring message; false on timeout. `out` points into
// `copy`, a private copy of the ring page.
bool test_ctx_poll(struct test_ctx *t, struct cd_command *out, uint8_t copy[CD_RING_SIZE],
		   int timeout_ms);

#endif
