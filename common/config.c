// SPDX-License-Identifier: MIT
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct read_state {
	FILE *file;
	int line; // of the line last handed to inih
	int why_line; // where why was found; 0: nowhere yet
	const char *section;
	sml_config_entry_fn fn;
	void *data;
	char why[320]; // the first error; parsing stops there
};

bool sml_config_default_path(char *buf, size_t size)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	int n;
	// The XDG base directory spec says to ignore relative paths.
	if (xdg && xdg[0] == '/')
		n = snprintf(buf, size, "%s/sommelier/sommelier.conf", xdg);
	else if (home && *home)
		n = snprintf(buf, size, "%s/.config/sommelier/sommelier.conf", home);
	else
		return false;
	return n > 0 && (size_t)n < size;
}

bool sml_config_parse_bool(const char *value, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(value, yes[i]) == 0 || strcmp(value, no[i]) == 0) {
			*out = strcmp(value, yes[i]) == 0;
			return true;
		}
	}
	return false;
}

// fgets for inih that counts lines and stops at a line longer than inih's
// buffer, which inih would otherwise cut into two lines without a word.
static char *read_line(char *str, int num, void *stream)
{
	struct read_state *st = stream;
	if (st->why_line || !fgets(str, num, st->file))
		return NULL;
	st->line++;
	if (!strchr(str, '\n') && !feof(st->file)) {
		int c = getc(st->file);
		if (c != '\n' && c != EOF) {
			st->why_line = st->line;
			snprintf(st->why, sizeof(st->why), "line longer than %d characters", num - 1);
			return NULL;
		}
	}
	return str;
}

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
	struct read_state *st = user;
	if (st->why_line || strcmp(section, st->section) != 0)
		return 1;
	if (st->fn(st->data, name, value ? value : "", st->why, sizeof(st->why)))
		return 1;
	if (!st->why[0])
		snprintf(st->why, sizeof(st->why), "bad setting '%s'", name);
	st->why_line = st->line;
	return 0;
}

static bool parse_file(struct read_state *st, const char *path, char *err, size_t err_size)
{
	int ret = ini_parse_stream(read_line, st, on_entry, st);
	if (ferror(st->file)) {
		snprintf(err, err_size, "%s: %s", path, strerror(errno));
		return false;
	}
	if (ret < 0) {
		snprintf(err, err_size, "%s: out of memory", path);
		return false;
	}
	// inih goes on after a malformed line and returns the first one; the
	// reader stops at the first rejected or overlong one. Report the earlier.
	if (ret != 0 && (!st->why_line || ret < st->why_line)) {
		snprintf(err, err_size, "%s:%d: expected 'name = value', '[section]' or a comment",
			 path, ret);
		return false;
	}
	if (!st->why_line)
		return true;
	snprintf(err, err_size, "%s:%d: %s", path, st->why_line, st->why);
	return false;
}

bool sml_config_read(const char *path, const char *section, sml_config_entry_fn fn, void *data,
		     char *err, size_t err_size)
{
	char default_path[512];
	if (!path) {
		if (!sml_config_default_path(default_path, sizeof(default_path)))
			return true;
		path = default_path;
	}
	struct read_state st = { .section = section, .fn = fn, .data = data };
	st.file = fopen(path, "re");
	if (!st.file) {
		if (path == default_path && (errno == ENOENT || errno == ENOTDIR))
			return true;
		snprintf(err, err_size, "%s: %s", path, strerror(errno));
		return false;
	}
	sml_info("reading [%s] of %s", section, path);
	bool ok = parse_file(&st, path, err, err_size);
	fclose(st.file);
	return ok;
}
