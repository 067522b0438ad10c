// SPDX-License-Identifier: MIT
// Replays files through a fuzz target without libFuzzer, so `meson test`
// keeps every target building and its seed corpus sane. A crash aborts the
// process; reaching the end means none happened. An unreadable argument or
// an empty directory fails: a corpus that silently vanished must not pass.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// Reads the whole file into an exactly-sized heap buffer, so a sanitizer
// catches a target reading past the input.
static int run_file(const char *path)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0)
		goto fail;
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf)
		goto fail;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = 0; // the file shrank under us
		if (n <= 0)
			goto fail;
		got += (size_t)n;
	}
	close(fd);
	LLVMFuzzerTestOneInput(buf, got);
	free(buf);
	return 0;
fail:
	fprintf(stderr, "%s: %s\n", path, errno ? strerror(errno) : "short read");
	if (fd >= 0)
		close(fd);
	free(buf);
	return -1;
}

static bool is_regular(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// Runs each regular file of dir (not recursing); returns how many, or -1.
static long run_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *ent;
	char path[4096];
	long count = 0;

	if (!d) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((ent = readdir(d))) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
				     ent->d_name) >= sizeof(path))
			continue;
		if (!is_regular(path))
			continue;
		if (run_file(path) < 0) {
			closedir(d);
			return -1;
		}
		count++;
	}
	closedir(d);
	if (count == 0)
		fprintf(stderr, "%s: no inputs\n", dir);
	return count ? count : -1;
}

static long run_arg(const char *arg)
{
	struct stat st;

	if (stat(arg, &st) < 0) {
		fprintf(stderr, "%s: %s\n", arg, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode))
		return run_dir(arg);
	return run_file(arg) < 0 ? -1 : 1;
}

int main(int argc, char **argv)
{
	long total = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		long n = run_arg(argv[i]);

		if (n < 0)
			return 1;
		total += n;
	}
	printf("%ld inputs, 0 crashes\n", total);
	return 0;
}
