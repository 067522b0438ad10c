// SPDX-License-Identifier: MIT
// The bounded write queue: direct sends, partial writes, limits, fds never
// arriving after their bytes, and every fd closed on every path.
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"
#include "wqueue.h"

static void socket_pair(int sv[2], int sndbuf)
{
	assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	assert(sml_fd_set_nonblock(sv[0]));
	if (sndbuf)
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
}

static void test_direct_send(void)
{
	int sv[2], base = sml_count_open_fds();
	struct sml_wqueue q;
	socket_pair(sv, 0);
	sml_wqueue_init(&q, 1024);
	assert(sml_wqueue_send(&q, sv[0], "hello", 5, NULL, 0) == 0);
	assert(sml_wqueue_empty(&q) && q.data == NULL); // nothing was copied
	char buf[8];
	assert(read(sv[1], buf, sizeof(buf)) == 5 && memcmp(buf, "hello", 5) == 0);
	sml_wqueue_finish(&q);
	close(sv[0]);
	close(sv[1]);
	assert(sml_count_open_fds() == base);
}

// A peer that does not read: bytes queue up to the limit, then -ENOBUFS,
// and the fds of a refused push are closed, not leaked.
static void test_limit(void)
{
	int sv[2], base = sml_count_open_fds();
	struct sml_wqueue q;
	static uint8_t chunk[4096];
	socket_pair(sv, 4096);
	sml_wqueue_init(&q, 64 * 1024);
	int ret = 0;
	size_t pushed = 0;
	while ((ret = sml_wqueue_send(&q, sv[0], chunk, sizeof(chunk), NULL, 0)) >= 0)
		pushed += sizeof(chunk);
	assert(ret == -ENOBUFS);
	assert(q.len <= 64 * 1024 && q.len + sizeof(chunk) > 64 * 1024);
	int p[2];
	assert(pipe2(p, O_CLOEXEC) == 0);
	assert(sml_wqueue_send(&q, sv[0], chunk, sizeof(chunk), p, 2) == -ENOBUFS);
	assert(fcntl(p[0], F_GETFD) < 0 && fcntl(p[1], F_GETFD) < 0); // closed
	printf("limit: %zu bytes accepted with a 64 KiB queue\n", pushed);
	sml_wqueue_finish(&q);
	close(sv[0]);
	close(sv[1]);
	assert(sml_count_open_fds() == base);
}

// 60 messages of 100 bytes with one fd each, through a small send buffer
// read in odd-sized pieces: every fd arrives with or before its message's
// first byte, in order, and the bytes are intact.
static void test_fd_order(void)
{
	int sv[2], base = sml_count_open_fds();
	struct sml_wqueue q;
	socket_pair(sv, 2048);
	sml_wqueue_init(&q, 1 << 20);
	enum { N = 60, SIZE = 100 };
	for (int i = 0; i < N; i++) {
		uint8_t msg[SIZE];
		memset(msg, i, sizeof(msg));
		int fd = memfd_create("marker", MFD_CLOEXEC);
		assert(fd >= 0 && ftruncate(fd, i + 1) == 0);
		assert(sml_wqueue_send(&q, sv[0], msg, sizeof(msg), &fd, 1) >= 0);
	}
	size_t received = 0;
	int fds_seen = 0;
	uint8_t all[N * SIZE];
	while (received < sizeof(all)) {
		assert(sml_wqueue_flush(&q, sv[0]) >= 0);
		union {
			char buf[CMSG_SPACE(sizeof(int) * 64)];
			struct cmsghdr align;
		} ctrl;
		struct iovec iov = { all + received, SML_MIN((size_t)37, sizeof(all) - received) };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf,
				    .msg_controllen = sizeof(ctrl.buf) };
		ssize_t n = recvmsg(sv[1], &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EAGAIN)
			continue;
		assert(n > 0 && !(m.msg_flags & MSG_CTRUNC));
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (int i = 0; i < k; i++, fds_seen++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				assert(lseek(fd, 0, SEEK_END) == fds_seen + 1); // in order
				assert(received <= (size_t)fds_seen * SIZE); // not late
				close(fd);
			}
		}
		received += (size_t)n;
	}
	assert(fds_seen == N);
	for (int i = 0; i < N * SIZE; i++)
		assert(all[i] == i / SIZE);
	assert(sml_wqueue_empty(&q));
	sml_wqueue_finish(&q);
	close(sv[0]);
	close(sv[1]);
	assert(sml_count_open_fds() == base);
}

// Pipes take write(); a reader that left yields -EPIPE, and fds still
// queued are closed by finish.
static void test_pipe_and_finish(void)
{
	int p[2], base = sml_count_open_fds();
	struct sml_wqueue q;
	assert(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
	sml_wqueue_init(&q, 1 << 20);
	assert(sml_wqueue_send(&q, p[1], "abc", 3, NULL, 0) == 0);
	close(p[0]);
	assert(sml_wqueue_send(&q, p[1], "def", 3, NULL, 0) == -EPIPE);
	sml_wqueue_finish(&q);
	close(p[1]);

	int sv[2], extra[3];
	static uint8_t big[256 * 1024];
	socket_pair(sv, 4096);
	assert(sml_wqueue_send(&q, sv[0], big, sizeof(big), NULL, 0) == 1);
	for (int i = 0; i < 3; i++)
		extra[i] = memfd_create("queued", MFD_CLOEXEC);
	assert(sml_wqueue_send(&q, sv[0], "x", 1, extra, 3) == 1);
	sml_wqueue_finish(&q); // closes the three queued fds
	close(sv[0]);
	close(sv[1]);
	assert(sml_count_open_fds() == base);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_direct_send();
	test_limit();
	test_fd_order();
	test_pipe_and_finish();
	printf("wqueue: ok\n");
	return 0;
}
