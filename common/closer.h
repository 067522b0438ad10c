// SPDX-License-Identifier: MIT
// Closing fds that came from an untrusted peer, off the event loop. The
// last close of a socket with SO_LINGER and unsent data waits out the
// linger time, whatever length the peer chose: a daemon that closed such an
// fd on its loop would stop serving everyone meanwhile.
#ifndef SML_CLOSER_H
#define SML_CLOSER_H

#include <stdbool.h>

// Starts the closing thread (with every signal blocked: the event loop's
// signalfds need that). False, with errno set, if it cannot; then
// sml_close_untrusted closes at once.
bool sml_closer_start(void);
// Hands fd over to be closed (a negative fd is ignored). With the thread's
// backlog full (16384 fds: it is stuck on earlier ones), closes it here.
void sml_close_untrusted(int fd);

#endif
