// SPDX-License-Identifier: MIT
// Test harness: temporary runtime dirs, child processes (weston,
// sommelier-host), waiting for sockets, counting fds.
#ifndef SML_TEST_HARNESS_H
#define SML_TEST_HARNESS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

// Assertions that hold in every build type and say where they failed.
#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			exit(1); \
		} \
	} while (0)
#define CHECK_EQ(a, b) \
	do { \
		long long a_ = (long long)(a), b_ = (long long)(b); \
		if (a_ != b_) { \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", \
				__FILE__, __LINE__, #a, #b, a_, b_); \
			exit(1); \
		} \
	} while (0)

// A private XDG_RUNTIME_DIR (mode 0700), removed by harness_cleanup.
const char *harness_runtime_dir(void);
// Kills every child started here and removes the runtime dir.
void harness_cleanup(void);

// Starts argv[0] (searched in PATH) with XDG_RUNTIME_DIR set; stderr goes
// to the test log. Returns the pid; fails the test when it cannot start.
pid_t harness_spawn(char *const argv[]);
// SIGTERM, then SIGKILL after 5 s; returns the exit status (or -signal).
int harness_stop(pid_t pid);
bool harness_wait_for_path(const char *path, int timeout_ms);

// A headless weston on socket `name` in the runtime dir.
pid_t harness_start_weston(const char *name);
// sommelier-host (from $SML_HOST_BIN) listening on `sock_path`, serving the
// compositor `display`; extra arguments may follow (NULL-terminated).
pid_t harness_start_host(const char *sock_path, const char *display, ...);

// A scripted compositor: a listening Unix socket at `path`, and the next
// connection to it (fails the test after timeout_ms).
int harness_listen_unix(const char *path);
int harness_accept(int listener, int timeout_ms);

struct harness_test {
	const char *name;
	void (*run)(void);
};

// Runs each test in order, announcing it; a failing CHECK ends the process.
// Returns how many ran (all of them passed).
int harness_run(const struct harness_test *tests, size_t count);

int harness_count_fds(pid_t pid);
// printf of one line to stdout, flushed at once: for test programs whose
// output a test reads while they run.
void harness_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Resident memory of a process in KiB.
long harness_rss_kib(pid_t pid);

#endif
