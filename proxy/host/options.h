// SPDX-License-Identifier: MIT
// sommelier-host settings: defaults, the [host] section of the config file,
// then the command line, each overriding the one before.
#ifndef SML_HOST_OPTIONS_H
#define SML_HOST_OPTIONS_H

#include <stdbool.h>

#include "device.h"

struct host_options {
	struct host_config config;
	char display_path[256]; // resolved compositor socket
	char socket_path[256]; // Unix listener; empty = none
	char tcp[128]; // empty = none
	int vsock_port; // -1 = none
	char config_file[256]; // empty = the default, if it exists
	bool help, version;
};

// Fills defaults, reads the config file and argv. Returns false after
// printing why on a bad option or value.
bool host_options_parse(struct host_options *opts, int argc, char **argv);
void host_options_usage(const char *argv0);

#endif
