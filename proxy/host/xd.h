// SPDX-License-Identifier: MIT
// The cross-domain context on the host: the channel between one guest
// context and its own connection to the host compositor.
#ifndef SML_HOST_XD_H
#define SML_HOST_XD_H

#include <stdbool.h>
#include <stdint.h>

#include "cross_domain.h"

struct host_ctx;
struct host_xd;

struct host_xd *host_xd_create(struct host_ctx *ctx);
void host_xd_destroy(struct host_xd *xd);

// Runs the commands of one EXECBUFFER. Returns 0 when its fence may signal
// now, 1 when it stays pending (POLL: signalled by the xd later), or a
// negative errno after the xd has ended the context with the reason.
int host_xd_submit(struct host_xd *xd, const uint8_t *cmds, size_t size, uint32_t seq);

// The context is being lost: a pending POLL is answered with host-socket
// EOF so that the guest is not left waiting, and nothing else happens.
void host_xd_hangup(struct host_xd *xd);

// HOST3D blob creation: the fd for blob_id (a received fd or a fresh
// allocation from image requirements). -ENOENT for an unknown id, -EINVAL
// when size exceeds what the id covers.
int host_xd_create_blob(struct host_xd *xd, uint64_t blob_id, uint64_t size, int *fd_out);

// What GET_CAPS answers for capset 5.
void host_xd_capabilities(struct cd_capabilities *caps);

#endif
