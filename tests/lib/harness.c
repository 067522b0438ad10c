// SPDX-License-Identifier: MIT
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 16

static char runtime_dir[64];
static pid_t children[MAX_CHILDREN];

const char *harness_runtime_dir(void)
{
	if (runtime_dir[0])
		return runtime_dir;
	snprintf(runtime_dir, sizeof(runtime_dir), "/tmp/sml-test-XXXXXX");
	CHECK(mkdtemp(runtime_dir) != NULL);
	CHECK(chmod(runtime_dir, 0700) == 0);
	setenv("XDG_RUNTIME_DIR", runtime_dir, 1);
	unsetenv("WAYLAND_DISPLAY");
	unsetenv("WAYLAND_SOCKET");
	return runtime_dir;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void harness_cleanup(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] > 0)
			harness_stop(children[i]);
	if (runtime_dir[0])
		nftw(runtime_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	runtime_dir[0] = '\0';
}

pid_t harness_spawn(char *const argv[])
{
	harness_runtime_dir();
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (children[i] <= 0) {
			children[i] = pid;
			break;
		}
	}
	return pid;
}

static void forget_child(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

int harness_stop(pid_t pid)
{
	int status = 0;
	forget_child(pid);
	kill(pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -SIGKILL;
}

bool harness_wait_for_path(const char *path, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 10) {
		if (access(path, F_OK) == 0)
			return true;
		usleep(10000);
	}
	return false;
}

pid_t harness_start_weston(const char *name)
{
	char socket_arg[128], path[256];
	snprintf(socket_arg, sizeof(socket_arg), "--socket=%s", name);
	char *argv[] = { "weston", "--backend=headless-backend.so", socket_arg,
			 "--idle-time=0", "--no-config", NULL };
	pid_t pid = harness_spawn(argv);
	snprintf(path, sizeof(path), "%s/%s", harness_runtime_dir(), name);
	if (!harness_wait_for_path(path, 20000)) {
		fprintf(stderr, "weston did not create %s (is weston installed? "
				"tools/deps.sh --install)\n", path);
		exit(1);
	}
	return pid;
}

pid_t harness_start_host(const char *sock_path, const char *display, ...)
{
	const char *bin = getenv("SML_HOST_BIN");
	char sock_arg[300], display_arg[300];
	char *argv[32] = { (char *)(bin ? bin : "sommelier-host") };
	int argc = 1;
	snprintf(sock_arg, sizeof(sock_arg), "--socket=%s", sock_path);
	snprintf(display_arg, sizeof(display_arg), "--display=%s", display);
	argv[argc++] = sock_arg;
	argv[argc++] = display_arg;
	va_list ap;
	va_start(ap, display);
	for (char *arg; argc < 31 && (arg = va_arg(ap, char *));)
		argv[argc++] = arg;
	va_end(ap);
	argv[argc] = NULL;
	pid_t pid = harness_spawn(argv);
	CHECK(harness_wait_for_path(sock_path, 10000));
	return pid;
}

int harness_listen_unix(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	CHECK(strlen(path) < sizeof(addr.sun_path));
	memcpy(addr.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
	CHECK(listen(fd, 16) == 0);
	return fd;
}

int harness_accept(int listener, int timeout_ms)
{
	struct pollfd pfd = { .fd = listener, .events = POLLIN };
	CHECK(poll(&pfd, 1, timeout_ms) == 1);
	int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
	CHECK(fd >= 0);
	return fd;
}

int harness_run(const struct harness_test *tests, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		printf("--- %s\n", tests[i].name);
		fflush(stdout);
		tests[i].run();
	}
	return (int)count;
}

int harness_count_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *dir = opendir(path);
	CHECK(dir != NULL);
	int n = 0;
	for (struct dirent *ent; (ent = readdir(dir));)
		n += ent->d_name[0] != '.';
	closedir(dir);
	return pid == getpid() ? n - 1 : n;
}

long harness_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	CHECK(f != NULL);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

void harness_say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}
