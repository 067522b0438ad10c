// SPDX-License-Identifier: MIT
// The system calls behind the kernel vgpu backend (vgpu_kernel.c), as a
// table that a test can replace to play the kernel at the ioctl boundary.
// Each call behaves like its libc namesake: -1 (MAP_FAILED for mmap) with
// errno set on failure.
#ifndef SML_GUEST_VGPU_KERNEL_H
#define SML_GUEST_VGPU_KERNEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vgpu_kernel_ops {
	int (*open)(const char *path, int flags);
	int (*close)(int fd);
	int (*ioctl)(int fd, unsigned long request, void *arg);
	void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd, off_t offset);
	int (*munmap)(void *addr, size_t len);
	ssize_t (*read)(int fd, void *buf, size_t count);
	// The monotonic clock (ns) that bounds wait() by VGPU_TIMEOUT_MS.
	uint64_t (*now_ns)(void);
};

// Replaces the calls for every device opened or used afterwards. NULL
// members, and a NULL table, mean the real calls.
void vgpu_kernel_set_ops(const struct vgpu_kernel_ops *ops);

#endif
