// SPDX-License-Identifier: MIT
// Small helpers shared by every binary: fds, memfds, sizes.
#ifndef SML_UTIL_H
#define SML_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SML_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SML_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SML_MAX(a, b) ((a) > (b) ? (a) : (b))

#define SML_PAGE_SIZE 4096u

static inline uint64_t sml_page_round_up(uint64_t n)
{
	return (n + SML_PAGE_SIZE - 1) & ~(uint64_t)(SML_PAGE_SIZE - 1);
}

static inline size_t sml_align4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

// Sets O_NONBLOCK (and FD_CLOEXEC); returns false with errno set.
bool sml_fd_set_nonblock(int fd);
bool sml_fd_set_cloexec(int fd);
// Closes fd if >= 0 and sets it to -1; keeps errno.
void sml_close(int *fd);
// A sealed-growable memfd of `size` bytes; -1 with errno set on failure.
int sml_memfd_create(const char *name, uint64_t size);
// Number of open fds of this process (for leak checks).
int sml_count_open_fds(void);
// Raises the soft limit on open fds to the hard one (a daemon that holds
// guests' fds should not stop at the historical 1024); returns the limit.
unsigned long sml_raise_fd_limit(void);
// Puts back the soft limit sml_raise_fd_limit found, in a child before it
// runs a program: select() users expect 1024.
void sml_restore_fd_limit(void);
// Bytes behind an fd: memfds and files tell fstat; dma-bufs report 0 there
// and tell lseek (SEEK_END, then back to 0). 0 when neither knows.
uint64_t sml_fd_size(int fd);
// Monotonic time in nanoseconds.
uint64_t sml_now_ns(void);

#endif
