// SPDX-License-Identifier: MIT
// The libc functions behind the wrappers, found with dlsym(RTLD_NEXT), and
// the library's one logging function.
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emul.h"

struct emul_real emul_real;
static pthread_once_t real_once = PTHREAD_ONCE_INIT;

// A missing symbol is fatal: passing a call on to nothing would corrupt
// the program in ways much harder to find than this message.
static void *must(const char *name)
{
	void *sym = dlsym(RTLD_NEXT, name);
	if (!sym) {
		dprintf(2, "sml-vgpu-emul: libc has no %s\n", name);
		abort();
	}
	return sym;
}

// Optional ones (fortify entry points, fcntl64 on older libcs) fall back
// to their plain counterparts in the wrappers.
static void *maybe(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

static void resolve(void)
{
	emul_real.open = must("open");
	emul_real.open64 = must("open64");
	emul_real.openat = must("openat");
	emul_real.openat64 = must("openat64");
	emul_real.open_2 = maybe("__open_2");
	emul_real.open64_2 = maybe("__open64_2");
	emul_real.openat_2 = maybe("__openat_2");
	emul_real.openat64_2 = maybe("__openat64_2");
	emul_real.close = must("close");
	emul_real.read = must("read");
	emul_real.ioctl = must("ioctl");
	emul_real.mmap = must("mmap");
	emul_real.mmap64 = must("mmap64");
	emul_real.dup = must("dup");
	emul_real.dup2 = must("dup2");
	emul_real.dup3 = must("dup3");
	emul_real.fcntl = must("fcntl");
	emul_real.fcntl64 = maybe("fcntl64");
	emul_real.stat = must("stat");
	emul_real.stat64 = must("stat64");
	emul_real.lstat = must("lstat");
	emul_real.lstat64 = must("lstat64");
	emul_real.fstat = must("fstat");
	emul_real.fstat64 = must("fstat64");
	emul_real.close_range = maybe("close_range");
	emul_real.closefrom = maybe("closefrom");
}

void emul_real_init(void)
{
	pthread_once(&real_once, resolve);
}

void emul_log(const char *fmt, ...)
{
	char line[512];
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	// One write per line, so that lines of several threads do not interleave.
	dprintf(2, "sml-vgpu-emul[%d]: %s\n", (int)getpid(), line);
	errno = saved;
}
