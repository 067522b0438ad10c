// SPDX-License-Identifier: MIT
// The INI configuration file that sommelier and sommelier-host share
// ($XDG_CONFIG_HOME/sommelier/sommelier.conf), one section per program,
// read with libinih. Messages are returned, not printed, so that each
// program can prefix them with its own name.
#ifndef SML_CONFIG_H
#define SML_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

// Handles one `name = value` line of the wanted section. On a bad key or
// value it writes why into err (without the file name or line number) and
// returns false.
typedef bool (*sml_config_entry_fn)(void *data, const char *name, const char *value,
				    char *err, size_t err_size);

// The default file: $XDG_CONFIG_HOME/sommelier/sommelier.conf, or
// $HOME/.config/sommelier/sommelier.conf when XDG_CONFIG_HOME is unset or
// not absolute. False when there is no such path (no HOME either, or too
// long).
bool sml_config_default_path(char *buf, size_t size);

// Calls fn for each entry of [section] in the file at path, which must
// exist; with path NULL, in the default file if it exists. Entries of
// other sections are skipped. On the first unreadable file, malformed or
// overlong line, or entry that fn rejects, writes "PATH:LINE: why" (or
// "PATH: why") into err and returns false.
bool sml_config_read(const char *path, const char *section, sml_config_entry_fn fn, void *data,
		     char *err, size_t err_size);

// true/false, yes/no, on/off, 1/0 (as written; no other spellings).
bool sml_config_parse_bool(const char *value, bool *out);

#endif
