// SPDX-License-Identifier: MIT
// One logging family for every binary and test: level, file:line, message.
#ifndef SML_LOG_H
#define SML_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <errno.h>

enum sml_log_level {
	SML_LOG_SILENT = 0,
	SML_LOG_ERROR,
	SML_LOG_WARN,
	SML_LOG_INFO,
	SML_LOG_DEBUG,
};

void sml_log_set_level(enum sml_log_level level);
enum sml_log_level sml_log_get_level(void);
// Parses "error", "warn", "info", "debug", "silent" or a digit; false if unknown.
bool sml_log_parse_level(const char *name, enum sml_log_level *out);
void sml_log_set_prefix(const char *prefix);

void sml_log_write(enum sml_log_level level, const char *file, int line,
		   int errnum, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#define sml_log(level, ...) \
	do { \
		if ((level) <= sml_log_get_level()) \
			sml_log_write((level), __FILE__, __LINE__, 0, __VA_ARGS__); \
	} while (0)

// Appends strerror(errno) (captured before any other call can clobber it).
#define sml_log_errno(level, ...) \
	do { \
		int sml_log_errnum_ = errno; \
		if ((level) <= sml_log_get_level()) \
			sml_log_write((level), __FILE__, __LINE__, \
				      sml_log_errnum_, __VA_ARGS__); \
		errno = sml_log_errnum_; \
	} while (0)

#define sml_err(...) sml_log(SML_LOG_ERROR, __VA_ARGS__)
#define sml_warn(...) sml_log(SML_LOG_WARN, __VA_ARGS__)
#define sml_info(...) sml_log(SML_LOG_INFO, __VA_ARGS__)
#define sml_dbg(...) sml_log(SML_LOG_DEBUG, __VA_ARGS__)

#endif
