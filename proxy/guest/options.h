// SPDX-License-Identifier: MIT
// sommelier's settings: its own options, Sommelier's spellings where they
// mean the same; from SOMMELIER_* environment variables, the [sommelier]
// section of the config file and the command line, each overriding the
// one before (options.c says why in that order).
#ifndef SML_GUEST_OPTIONS_H
#define SML_GUEST_OPTIONS_H

#include <stdbool.h>

#include "client.h"

struct guest_options {
	struct guest_config config;
	char peer[256]; // socket device path; empty: direct or default
	char display[256]; // host compositor for direct mode
	char drm_device[256]; // --force-drm-device
	char socket[108]; // --parent: listening socket name
	char sd_notify[64]; // sent to $NOTIFY_SOCKET once listening
	bool parent;
	bool direct; // the host side chosen is a compositor, no peer
	bool exit_with_child;
	bool help, version;
	char **program; // NULL-terminated argv of PROGRAM; NULL in parent mode
};

// Reads the environment, the config file (--config, else the default one if
// it exists) and argv, and picks the host side. Returns false after
// printing why. With --help or --version, reads nothing but argv.
bool guest_options_parse(struct guest_options *opts, int argc, char **argv);
void guest_options_usage(const char *argv0);

#endif
