// SPDX-License-Identifier: MIT
// sml-chaos: a Wayland client that sends random requests, to show that no
// client can take down the proxy it talks through, nor the other clients
// (tests/guest/e2e_weston.py, random_requests).
//
// Each session binds every global whose interface the proxy compiles in and
// then sends requests of random live objects, with arguments of the kinds
// the message declares, drawn from values at the edges (0, -1, INT32_MAX,
// sizes that fit a small pool and sizes that do not), objects mostly of the
// interface asked for (sometimes of another, or none), and fds of every kind
// (memfds of several sizes, pipe ends, /dev/null, a socket). Objects the
// compositor creates (data offers, say) join the pool. Most sessions end in
// a protocol error; the next one reconnects.
//
// Exit status: 0 when every session ran; 1 when the display stopped
// answering for 10 s or could not be reached (the proxy died or hung);
// 2 on a bad command line. The last line counts sessions, requests and how
// sessions ended.
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wayland-client.h>

#include "protocols.h"

#define POOL_MAX 512
#define MAX_ARGS 20 // WL_CLOSURE_MAX_ARGS
#define ANSWER_TIMEOUT_MS 10000
#define REFUSED_MAX 32

struct object {
	struct wl_proxy *proxy;
	const struct wl_interface *iface;
	bool global; // bound from the registry (the rest were made since)
};

struct chaos {
	uint64_t rng;
	struct wl_display *display;
	struct object pool[POOL_MAX];
	int n;
	// Globals not bound: --skip, and those whose mere binding ended a
	// session (weston's input panel is for its own keyboard only).
	const struct wl_interface *refused[REFUSED_MAX];
	int nrefused;
	// What every session did, for the summary.
	unsigned long requests, sessions, protocol_errors, hangups, clean;
	unsigned long starts; // sessions that began with session_starter
	unsigned long attaches, commits; // random wl_surface ones: of a buffer, all
	struct wl_proxy *focus; // may be NULL: session_starter's surface
};

static uint64_t next_random(struct chaos *c)
{
	// xorshift64*: reproducible from the seed, good enough to pick values.
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return c->rng * 2685821657736338717ull;
}

static uint32_t pick(struct chaos *c, uint32_t n)
{
	return (uint32_t)(next_random(c) >> 32) % n;
}

static bool chance(struct chaos *c, uint32_t percent)
{
	return pick(c, 100) < percent;
}

// ---- the pool of live objects ----------------------------------------------

static int on_event(const void *impl, void *target, uint32_t opcode,
		    const struct wl_message *msg, union wl_argument *args);

static void pool_add(struct chaos *c, struct wl_proxy *proxy, const struct wl_interface *iface,
		     bool global)
{
	if (!proxy || c->n == POOL_MAX || !iface)
		return; // left without a dispatcher: its events are dropped
	wl_proxy_add_dispatcher(proxy, on_event, c, NULL);
	c->pool[c->n++] = (struct object){ proxy, iface, global };
}

static void pool_forget(struct chaos *c, int i)
{
	if (c->pool[i].proxy == c->focus)
		c->focus = NULL;
	c->pool[i] = c->pool[--c->n];
}

// An object of this interface, or -1.
static int pool_find(struct chaos *c, const struct wl_interface *iface)
{
	int start = c->n ? (int)pick(c, (uint32_t)c->n) : 0;
	for (int k = 0; k < c->n; k++) {
		int i = (start + k) % c->n;
		if (strcmp(c->pool[i].iface->name, iface->name) == 0)
			return i;
	}
	return -1;
}

// Events: objects the compositor creates join the pool; fds are closed.
static int on_event(const void *impl, void *target, uint32_t opcode,
		    const struct wl_message *msg, union wl_argument *args)
{
	struct chaos *c = (struct chaos *)impl;
	int i = 0;
	for (const char *s = msg->signature; *s; s++) {
		if (*s == '?' || (*s >= '0' && *s <= '9'))
			continue;
		if (*s == 'n' && args[i].o)
			pool_add(c, (struct wl_proxy *)args[i].o, msg->types[i], false);
		else if (*s == 'h')
			close(args[i].h);
		i++;
	}
	return 0;
}

// ---- argument values ---------------------------------------------------------

// Mostly small values (valid sizes, offsets, enums), else the edges.
static int32_t edge_int(struct chaos *c)
{
	static const int32_t small[] = { 0, 1, 2, 3, 4, 16, 64, 100, 256 };
	static const int32_t edges[] = { 4096,	-1,    -4096,	  65536,    1024,
					 32768, 16384, INT32_MAX, INT32_MIN };
	if (chance(c, 75))
		return small[pick(c, sizeof(small) / sizeof(small[0]))];
	uint32_t k = pick(c, sizeof(edges) / sizeof(edges[0]) + 1);
	return k < sizeof(edges) / sizeof(edges[0]) ? edges[k] : (int32_t)next_random(c);
}

static int memfd_of(size_t size)
{
	int fd = memfd_create("sml-chaos", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

// An fd of a random kind; the caller closes it once marshalled (libwayland
// sends a dup). Mostly what can cross (memory, a pipe's write end); the
// rest ends the session with the proxy's error.
static int random_fd(struct chaos *c)
{
	static const size_t sizes[] = { 4096, 65536, 1u << 20, 8u << 20 };
	int p[2];
	uint32_t kind = pick(c, 100);
	if (kind < 60)
		return memfd_of(sizes[pick(c, 4)]);
	if (kind < 80 || kind >= 90) {
		if (pipe2(p, O_CLOEXEC) < 0)
			return -1;
		bool write_end = kind < 80 || kind >= 95;
		close(p[write_end ? 0 : 1]);
		return p[write_end ? 1 : 0];
	}
	if (kind < 84)
		return memfd_of(0);
	if (kind < 87)
		return open("/dev/null", O_RDWR | O_CLOEXEC);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0)
		return -1;
	close(p[1]);
	return p[0];
}

static const char *random_string(struct chaos *c, bool nullable)
{
	static char longer[300];
	static const char *values[] = { "", "a", "wl_compositor", "text/plain;charset=utf-8",
					"UTF8_STRING", "org.example.app" };
	if (nullable && chance(c, 20))
		return NULL;
	if (chance(c, 10)) {
		memset(longer, 'x', sizeof(longer) - 1);
		return longer;
	}
	return values[pick(c, sizeof(values) / sizeof(values[0]))];
}

static struct wl_array *random_array(struct chaos *c, struct wl_array *array)
{
	static const size_t sizes[] = { 0, 4, 16, 64 };
	wl_array_init(array);
	size_t size = sizes[pick(c, 4)];
	uint8_t *bytes = wl_array_add(array, size);
	for (size_t i = 0; bytes && i < size; i++)
		bytes[i] = (uint8_t)pick(c, 256);
	return array;
}

// An object argument: of the interface asked for, or none where allowed;
// rarely one of another interface (a type error for the proxy to catch).
// False to skip the message: nothing fits.
static bool random_object(struct chaos *c, const struct wl_interface *iface, bool nullable,
			  union wl_argument *arg)
{
	int i = iface ? pool_find(c, iface) : -1;
	if (iface && chance(c, 2))
		i = -1;
	if ((i < 0 || chance(c, 10)) && nullable) {
		arg->o = NULL;
		return true;
	}
	if (i < 0 && (c->n == 0 || !chance(c, 1)))
		return false;
	arg->o = (struct wl_object *)c->pool[i >= 0 ? i : (int)pick(c, (uint32_t)c->n)].proxy;
	return true;
}

// ---- one request -----------------------------------------------------------

struct request {
	union wl_argument args[MAX_ARGS];
	int fds[MAX_ARGS];
	int nfds;
	struct wl_array arrays[MAX_ARGS];
	int narrays;
	const struct wl_interface *new_iface; // may be NULL
};

static uint32_t since_of(const struct wl_message *msg)
{
	uint32_t since = 0;
	for (const char *s = msg->signature; *s >= '0' && *s <= '9'; s++)
		since = since * 10 + (uint32_t)(*s - '0');
	return since ? since : 1;
}

static bool fill_arg(struct chaos *c, struct request *r, char kind, bool nullable,
		     const struct wl_interface *type, union wl_argument *arg)
{
	switch (kind) {
	case 'i':
	case 'u':
		arg->i = edge_int(c);
		return true;
	case 'f':
		arg->f = wl_fixed_from_int(edge_int(c) % 100000);
		return true;
	case 's':
		arg->s = random_string(c, nullable);
		return true;
	case 'a':
		arg->a = random_array(c, &r->arrays[r->narrays++]);
		return true;
	case 'h':
		arg->h = r->fds[r->nfds++] = random_fd(c);
		return arg->h >= 0;
	case 'o':
		return random_object(c, type, nullable, arg);
	case 'n':
		// Untyped new_ids (wl_registry.bind) are made by session_bind.
		r->new_iface = type;
		arg->n = 0;
		return type && c->n < POOL_MAX;
	}
	return false;
}

static bool build_request(struct chaos *c, const struct wl_message *msg, struct request *r)
{
	int i = 0;
	bool nullable = false;
	for (const char *s = msg->signature; *s; s++) {
		if (*s >= '0' && *s <= '9')
			continue;
		if (*s == '?') {
			nullable = true;
			continue;
		}
		if (i == MAX_ARGS || !fill_arg(c, r, *s, nullable, msg->types[i], &r->args[i]))
			return false;
		nullable = false;
		i++;
	}
	return true;
}

static void request_release(struct request *r)
{
	for (int i = 0; i < r->nfds; i++)
		if (r->fds[i] >= 0)
			close(r->fds[i]);
	for (int i = 0; i < r->narrays; i++)
		wl_array_release(&r->arrays[i]);
}

// Often the starter's surface, else half the time an object made in this
// session: where the state is.
static int pick_target(struct chaos *c)
{
	for (int k = 0; c->focus && k < c->n; k++)
		if (c->pool[k].proxy == c->focus && chance(c, 40))
			return k;
	int i = (int)pick(c, (uint32_t)c->n);
	for (int tries = 0; tries < 8 && c->pool[i].global && chance(c, 50); tries++)
		i = (int)pick(c, (uint32_t)c->n);
	return i;
}

static void send_random_request(struct chaos *c)
{
	int i = pick_target(c);
	struct object obj = c->pool[i];
	if (obj.iface->method_count == 0)
		return;
	uint32_t opcode = pick(c, (uint32_t)obj.iface->method_count);
	uint32_t version = wl_proxy_get_version(obj.proxy);
	const struct wl_message *msg = &obj.iface->methods[opcode];
	bool destroy = (sml_protocols_destructors(obj.iface) >> opcode) & 1;
	struct request r = { .nfds = 0 };
	if (since_of(msg) > (version ? version : 1) || !build_request(c, msg, &r)) {
		request_release(&r);
		return;
	}
	struct wl_proxy *made = wl_proxy_marshal_array_flags(
		obj.proxy, opcode, r.new_iface, version, destroy ? WL_MARSHAL_FLAG_DESTROY : 0,
		r.args);
	request_release(&r);
	if (obj.iface == &wl_surface_interface && opcode == WL_SURFACE_ATTACH && r.args[0].o)
		c->attaches++;
	if (obj.iface == &wl_surface_interface && opcode == WL_SURFACE_COMMIT)
		c->commits++;
	if (destroy)
		pool_forget(c, i);
	if (made)
		pool_add(c, made, r.new_iface, false);
	c->requests++;
}

// ---- sessions ----------------------------------------------------------------

struct global_list {
	uint32_t name[128];
	const struct wl_interface *iface[128];
	uint32_t version[128];
	int n;
};

static void on_global(void *data, struct wl_registry *registry, uint32_t name,
		      const char *interface, uint32_t version)
{
	struct global_list *g = data;
	const struct wl_interface *iface = sml_protocols_find(interface);
	if (!iface || g->n == 128)
		return;
	g->name[g->n] = name;
	g->iface[g->n] = iface;
	g->version[g->n++] = version < (uint32_t)iface->version ? version : (uint32_t)iface->version;
}

static void on_global_remove(void *data, struct wl_registry *registry, uint32_t name)
{
}

static const struct wl_registry_listener registry_listener = { on_global, on_global_remove };

static void on_done(void *data, struct wl_callback *cb, uint32_t serial)
{
	*(bool *)data = true;
}

static const struct wl_callback_listener done_listener = { on_done };

// 0 once the compositor answered, -ETIMEDOUT, or -1 when the connection
// failed (wl_display_get_error says how).
static int roundtrip(struct wl_display *d)
{
	bool done = false;
	struct wl_callback *cb = wl_display_sync(d);
	int ret = cb ? 0 : -1;
	if (cb)
		wl_callback_add_listener(cb, &done_listener, &done);
	while (ret == 0 && !done) {
		struct pollfd pfd = { wl_display_get_fd(d), POLLIN, 0 };
		while (wl_display_prepare_read(d) != 0)
			if (wl_display_dispatch_pending(d) < 0)
				goto out;
		if (wl_display_flush(d) < 0 && errno != EAGAIN)
			ret = -1;
		else if (poll(&pfd, 1, ANSWER_TIMEOUT_MS) == 0)
			ret = -ETIMEDOUT;
		if (ret < 0) {
			wl_display_cancel_read(d);
			break;
		}
		if (wl_display_read_events(d) < 0 || wl_display_dispatch_pending(d) < 0)
			ret = -1;
	}
out:
	if (cb)
		wl_callback_destroy(cb);
	return ret < 0 || done ? ret : -1;
}

static bool refuse(struct chaos *c, const char *name)
{
	const struct wl_interface *iface = sml_protocols_find(name);
	if (!iface || c->nrefused == REFUSED_MAX)
		return iface != NULL;
	c->refused[c->nrefused++] = iface;
	return true;
}

static bool refused(struct chaos *c, const struct wl_interface *iface)
{
	for (int i = 0; i < c->nrefused; i++)
		if (c->refused[i] == iface)
			return true;
	return false;
}

// Binds most globals (each session a different set); remembers one whose
// binding the compositor refused.
static int session_bind(struct chaos *c, struct wl_registry *registry, struct global_list *g)
{
	for (int i = 0; i < g->n; i++) {
		if (refused(c, g->iface[i]) || chance(c, 25))
			continue;
		struct wl_proxy *p = wl_registry_bind(registry, g->name[i], g->iface[i],
						      g->version[i]);
		pool_add(c, p, g->iface[i], true);
	}
	int ret = roundtrip(c->display);
	const struct wl_interface *iface = NULL;
	wl_display_get_protocol_error(c->display, &iface, NULL);
	if (ret == -1 && iface && iface != &wl_display_interface && c->nrefused < REFUSED_MAX)
		c->refused[c->nrefused++] = iface;
	return ret;
}

// Half the sessions start where a drawing client is: a surface showing one
// of two buffers of an shm pool, so that random requests meet committed
// buffers (the copy path's state).
static void session_starter(struct chaos *c)
{
	int comp = pool_find(c, &wl_compositor_interface);
	int shm = pool_find(c, &wl_shm_interface);
	int fd = comp >= 0 && shm >= 0 && chance(c, 50) ? memfd_of(1u << 20) : -1;
	if (fd < 0)
		return;
	struct wl_shm_pool *pool =
		wl_shm_create_pool((struct wl_shm *)c->pool[shm].proxy, fd, 1 << 20);
	close(fd);
	struct wl_surface *surface =
		wl_compositor_create_surface((struct wl_compositor *)c->pool[comp].proxy);
	struct wl_buffer *buffers[2];
	for (int k = 0; k < 2; k++)
		buffers[k] = wl_shm_pool_create_buffer(pool, k * 65536, 64, 64, 256,
						       WL_SHM_FORMAT_ARGB8888);
	for (int k = 0; k < 2; k++) { // both shown: the copy path tracks both
		wl_surface_attach(surface, buffers[k], 0, 0);
		wl_surface_damage_buffer(surface, 0, 0, 64, 64);
		wl_surface_commit(surface);
	}
	c->starts++;
	pool_add(c, (struct wl_proxy *)pool, &wl_shm_pool_interface, false);
	pool_add(c, (struct wl_proxy *)surface, &wl_surface_interface, false);
	c->focus = (struct wl_proxy *)surface;
	for (int k = 0; k < 2; k++)
		pool_add(c, (struct wl_proxy *)buffers[k], &wl_buffer_interface, false);
}

static void session_end(struct chaos *c, struct wl_registry *registry)
{
	for (int i = 0; i < c->n; i++)
		wl_proxy_destroy(c->pool[i].proxy);
	c->n = 0;
	c->focus = NULL;
	if (registry)
		wl_registry_destroy(registry);
	wl_display_disconnect(c->display);
	c->display = NULL;
}

// Counts how the session ended; false if the display stopped answering.
static bool session_outcome(struct chaos *c, int ret)
{
	if (ret == -ETIMEDOUT) {
		fprintf(stderr, "sml-chaos: no answer in %d ms\n", ANSWER_TIMEOUT_MS);
		return false;
	}
	uint32_t id = 0;
	wl_display_get_protocol_error(c->display, NULL, &id);
	if (ret == 0)
		c->clean++;
	else if (id != 0 || wl_display_get_error(c->display) == EPROTO) // EPROTO: on a
		c->protocol_errors++;					// destroyed object
	else {
		c->hangups++;
		fprintf(stderr, "sml-chaos: session %lu: connection lost: %s\n", c->sessions,
			strerror(wl_display_get_error(c->display)));
	}
	return true;
}

static bool session(struct chaos *c, int requests)
{
	struct global_list globals = { .n = 0 };
	c->display = wl_display_connect(NULL);
	if (!c->display) {
		perror("sml-chaos: connect");
		return false;
	}
	struct wl_registry *registry = wl_display_get_registry(c->display);
	wl_registry_add_listener(registry, &registry_listener, &globals);
	int ret = roundtrip(c->display);
	if (ret == 0)
		ret = session_bind(c, registry, &globals);
	if (ret == 0)
		session_starter(c);
	for (int i = 0; ret == 0 && i < requests; i++) {
		if (c->n)
			send_random_request(c);
		if (i % 16 == 15 || i == requests - 1)
			ret = roundtrip(c->display);
	}
	c->sessions++;
	bool ok = session_outcome(c, ret);
	session_end(c, registry);
	return ok;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "sessions", required_argument, NULL, 'n' },
		{ "requests", required_argument, NULL, 'r' },
		{ "skip", required_argument, NULL, 'x' },
		{ 0 },
	};
	struct chaos c = { .rng = 1 };
	long sessions = 100, requests = 200;
	bool ok = true;
	for (int o; (o = getopt_long(argc, argv, "s:n:r:x:", opts, NULL)) != -1;) {
		if (o == 's')
			c.rng = (strtoull(optarg, NULL, 0) + 1) * 0x9e3779b97f4a7c15ull | 1;
		else if (o == 'n')
			sessions = strtol(optarg, NULL, 0);
		else if (o == 'r')
			requests = strtol(optarg, NULL, 0);
		else if (o == 'x')
			for (char *save, *name = strtok_r(optarg, ",", &save); ok && name;
			     name = strtok_r(NULL, ",", &save))
				ok = refuse(&c, name);
		else
			return 2;
	}
	if (!ok || optind < argc || sessions < 1 || requests < 1 || requests > 1000000) {
		fprintf(stderr, "usage: sml-chaos [--seed=N] [--sessions=N] [--requests=N] "
				"[--skip=INTERFACE,...]\n");
		return 2;
	}
	for (long i = 0; ok && i < sessions; i++)
		ok = session(&c, (int)requests);
	printf("sessions=%lu requests=%lu protocol_errors=%lu hangups=%lu clean=%lu starts=%lu "
	       "attaches=%lu commits=%lu\n",
	       c.sessions, c.requests, c.protocol_errors, c.hangups, c.clean, c.starts,
	       c.attaches, c.commits);
	return ok ? 0 : 1;
}
