// SPDX-License-Identifier: MIT
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum sml_log_level log_level = SML_LOG_WARN;
static const char *log_prefix = "sommelier";

static const char *const level_names[] = {
	[SML_LOG_SILENT] = "silent",
	[SML_LOG_ERROR] = "error",
	[SML_LOG_WARN] = "warn",
	[SML_LOG_INFO] = "info",
	[SML_LOG_DEBUG] = "debug",
};

void sml_log_set_level(enum sml_log_level level)
{
	log_level = level;
}

enum sml_log_level sml_log_get_level(void)
{
	return log_level;
}

void sml_log_set_prefix(const char *prefix)
{
	log_prefix = prefix;
}

bool sml_log_parse_level(const char *name, enum sml_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum sml_log_level)i;
			return true;
		}
	}
	if (name[0] >= '0' && name[0] <= '4' && name[1] == '\0') {
		*out = (enum sml_log_level)(name[0] - '0');
		return true;
	}
	return false;
}

static const char *basename_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

void sml_log_write(enum sml_log_level level, const char *file, int line,
		   int errnum, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	// One fprintf per line so that lines from several processes do not interleave.
	if (errnum)
		fprintf(stderr, "%s[%ld.%03ld] %s %s:%d: %s: %s\n", log_prefix,
			(long)ts.tv_sec, ts.tv_nsec / 1000000L, level_names[level],
			basename_of(file), line, msg, strerror(errnum));
	else
		fprintf(stderr, "%s[%ld.%03ld] %s %s:%d: %s\n", log_prefix,
			(long)ts.tv_sec, ts.tv_nsec / 1000000L, level_names[level],
			basename_of(file), line, msg);
}
