// SPDX-License-Identifier: MIT
// sommelier's command line: its own options, Sommelier's spellings where
// they mean the same, and SOMMELIER_* environment variables as defaults.
#ifndef SML_GUEST_OPTIONS_H
#define SML_GUEST_OPTIONS_H

#include <stdbool.h>

#include "client.h"

struct guest_options {
	struct guest_config config;
	char peer[256]; // socket device path; empty: direct or default
	char display[256]; // host compositor for direct mode
	char socket[108]; // --parent: listening socket name
	char sd_notify[64]; // sent to $NOTIFY_SOCKET once listening
	bool parent;
	bool direct; // --noop-driver: no peer even if one exists
	bool exit_with_child;
	bool help, version;
	char **program; // NULL-terminated argv of PROGRAM; NULL in parent mode
};

// Parses argv and the environment and picks the host side. Returns false
// after printing why.
bool guest_options_parse(struct guest_options *opts, int argc, char **argv);
void guest_options_usage(const char *argv0);

#endif
