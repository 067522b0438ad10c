// SPDX-License-Identifier: MIT
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

bool sml_fd_set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return false;
	return sml_fd_set_cloexec(fd);
}

bool sml_fd_set_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);
	return flags >= 0 && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) >= 0;
}

void sml_close(int *fd)
{
	if (*fd < 0)
		return;
	int saved = errno;
	close(*fd);
	*fd = -1;
	errno = saved;
}

int sml_memfd_create(const char *name, uint64_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) < 0) {
		sml_close(&fd);
		return -1;
	}
	// Nobody may shrink memory that a peer has mapped.
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK);
	return fd;
}

int sml_count_open_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	if (!dir)
		return -1;
	int n = 0;
	struct dirent *ent;
	while ((ent = readdir(dir)))
		if (ent->d_name[0] != '.')
			n++;
	closedir(dir);
	return n - 1; // the directory's own fd
}

static rlim_t soft_fd_limit_found = RLIM_INFINITY; // RLIM_INFINITY: not raised

unsigned long sml_raise_fd_limit(void)
{
	struct rlimit lim;
	if (getrlimit(RLIMIT_NOFILE, &lim) < 0)
		return 0;
	if (lim.rlim_cur < lim.rlim_max) {
		soft_fd_limit_found = lim.rlim_cur;
		lim.rlim_cur = lim.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &lim) < 0)
			getrlimit(RLIMIT_NOFILE, &lim);
	}
	return (unsigned long)lim.rlim_cur;
}

void sml_restore_fd_limit(void)
{
	struct rlimit lim;
	if (soft_fd_limit_found == RLIM_INFINITY || getrlimit(RLIMIT_NOFILE, &lim) < 0)
		return;
	lim.rlim_cur = soft_fd_limit_found;
	setrlimit(RLIMIT_NOFILE, &lim);
}

uint64_t sml_fd_size(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return 0;
	if (S_ISREG(st.st_mode)) // memfds too
		return (uint64_t)st.st_size;
	off_t end = lseek(fd, 0, SEEK_END);
	if (end > 0)
		lseek(fd, 0, SEEK_SET);
	return end > 0 ? (uint64_t)end : 0;
}

uint64_t sml_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
