// SPDX-License-Identifier: MIT
#include "shm_copy.h"

#include <drm_fourcc.h>
#include <errno.h>
#include <inttypes.h>
#include <pixman.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <wayland-server-protocol.h>

#include "channel.h"
#include "client.h"
#include "forward.h"
#include "log.h"
#include "util.h"

// Opcodes from the client-side XML (see forward.c).
#define SHM_CREATE_POOL 0
#define POOL_CREATE_BUFFER 0
#define POOL_DESTROY 1
#define POOL_RESIZE 2
#define SURFACE_ATTACH 1
#define SURFACE_DAMAGE 2
#define SURFACE_COMMIT 6
#define SURFACE_DAMAGE_BUFFER 9
#define BUFFER_DESTROY 0

// A guest pool: the client's memory, mapped read-only. Buffers keep it.
struct copy_pool {
	int refs;
	uint8_t *map;
	size_t size;
	bool broken; // the client shrank the file under us
};

// A guest wl_buffer: a view of its pool. It stays in the guest; its pixels
// reach the host through the slots of the surfaces it is committed to.
struct copy_buffer {
	struct guest_client *gc;
	struct wl_resource *resource;
	struct copy_pool *pool;
	int32_t offset, width, height, stride;
	uint32_t format, bpp;
	int holds; // slots copied from it that the host has not released
	struct copy_slot *twin; // may be NULL: its host memory where a request other than attach names it
};

// Host memory that shows a surface: a blob and a host wl_buffer over it.
// Slots belong to the surface, not to the client's buffers: a compositor
// that releases a buffer as soon as it has taken the pixels (mutter, for
// one) lets one slot take every commit, so each damaged row
// is copied once, whatever the number of buffers the client rotates.
struct copy_slot {
	struct guest_client *gc;
	struct copy_surface *surface; // may be NULL: a buffer's twin
	struct wl_proxy *proxy; // may be NULL until made: the host wl_buffer
	struct guest_image image;
	uint8_t *map; // may be NULL until mapped
	int32_t width, height;
	uint32_t format, bpp;
	pixman_region32_t stale; // where it lacks the surface's content
	bool held; // attached on the host and not released yet
	struct copy_buffer *holder; // may be NULL: released when the host releases this
	uint64_t attached_at; // copy_surface.attaches when last attached
	uint64_t attached_ns; // sml_now_ns() then
	struct wl_list link; // copy_surface.slots (not for twins)
};

struct copy_surface {
	struct guest_client *gc;
	struct copy_buffer *pending; // may be NULL: attached since the last commit
	int32_t dx, dy; // of that attach
	bool attached;
	bool deferred; // the attach was of a copy buffer: sent with the commit
	bool full_damage; // surface-coordinate damage: copy all rather than guess
	bool catch_up; // a slot may be brought up to date ahead of a commit
	pixman_region32_t damage; // buffer coordinates
	struct copy_slot *current; // may be NULL: the slot of the last commit
	uint64_t attaches;
	int nslots;
	struct wl_list slots; // struct copy_slot.link
	struct wl_list link; // guest_client.copy_surfaces
};

// ---- reading client memory without dying of it ---------------------------

static struct copy_pool *accessing; // the pool being read, for the SIGBUS handler
static struct sigaction previous_sigbus;

// A client that truncates its pool makes our reads fault. Like
// libwayland's wl_shm, replace the vanished pages with zeros and report.
static void on_sigbus(int sig, siginfo_t *info, void *context)
{
	struct copy_pool *p = accessing;
	uint8_t *addr = info->si_addr;
	if (!p || addr < p->map || addr >= p->map + p->size ||
	    mmap(p->map, p->size, PROT_READ, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0) ==
		    MAP_FAILED) {
		sigaction(SIGBUS, &previous_sigbus, NULL);
		raise(SIGBUS);
		return;
	}
	p->broken = true;
}

static void install_sigbus_handler(void)
{
	static bool installed;
	if (installed)
		return;
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &previous_sigbus);
	installed = true;
}

static void pool_unref(struct copy_pool *pool)
{
	if (!pool || --pool->refs > 0)
		return;
	if (pool->map)
		munmap(pool->map, pool->size);
	free(pool);
}

// ---- formats ----------------------------------------------------------------

// wl_shm formats are DRM fourccs, except the first two.
static uint32_t drm_format(uint32_t shm_format)
{
	if (shm_format == WL_SHM_FORMAT_ARGB8888)
		return DRM_FORMAT_ARGB8888;
	if (shm_format == WL_SHM_FORMAT_XRGB8888)
		return DRM_FORMAT_XRGB8888;
	return shm_format;
}

// Bytes per pixel of the single-plane formats the copy path carries; 0 for
// others.
static uint32_t format_bpp(uint32_t fourcc)
{
	switch (fourcc) {
	case DRM_FORMAT_ARGB8888: case DRM_FORMAT_XRGB8888: case DRM_FORMAT_ABGR8888:
	case DRM_FORMAT_XBGR8888: case DRM_FORMAT_RGBA8888: case DRM_FORMAT_RGBX8888:
	case DRM_FORMAT_BGRA8888: case DRM_FORMAT_BGRX8888: case DRM_FORMAT_ARGB2101010:
	case DRM_FORMAT_XRGB2101010: case DRM_FORMAT_ABGR2101010: case DRM_FORMAT_XBGR2101010:
		return 4;
	case DRM_FORMAT_RGB888: case DRM_FORMAT_BGR888:
		return 3;
	case DRM_FORMAT_RGB565: case DRM_FORMAT_BGR565: case DRM_FORMAT_GR88:
		return 2;
	case DRM_FORMAT_R8:
		return 1;
	case DRM_FORMAT_ABGR16161616F: case DRM_FORMAT_XBGR16161616F:
		return 8;
	}
	return 0;
}

// ---- guest buffers ---------------------------------------------------------

static void slot_destroy(struct copy_slot *slot);
static struct wl_proxy *buffer_twin(struct fwd_object *obj, const struct fwd_object *requester);

static void buffer_destroy(void *data)
{
	struct copy_buffer *b = data;
	struct copy_surface *s;
	struct copy_slot *slot;
	wl_list_for_each(s, &b->gc->copy_surfaces, link) {
		if (s->pending == b)
			s->pending = NULL; // its commit attaches nothing, as a compositor's would
		wl_list_for_each(slot, &s->slots, link)
			if (slot->holder == b)
				slot->holder = NULL;
	}
	if (b->twin) {
		b->twin->holder = NULL;
		slot_destroy(b->twin);
	}
	pool_unref(b->pool);
	free(b);
}

static int buffer_request(const void *impl, void *target, uint32_t opcode,
			  const struct wl_message *msg, union wl_argument *args)
{
	if (opcode == BUFFER_DESTROY)
		wl_resource_destroy(target);
	return 0;
}

// The host let go of a slot copied from b: once no slot holds b, so does
// its client.
static void buffer_unhold(struct copy_buffer *b)
{
	if (b && --b->holds == 0 && !b->gc->dying)
		wl_buffer_send_release(b->resource);
}

// ---- host memory: slots ----------------------------------------------------

// Without a channel (direct mode, for testing the copy logic) a local memfd
// stands in for host memory, laid out as sommelier-host lays out images.
static int alloc_local(uint32_t width, uint32_t height, uint32_t bpp, struct guest_image *out)
{
	uint64_t stride = ((uint64_t)width * bpp + 3) & ~(uint64_t)3;
	*out = (struct guest_image){ .stride = (uint32_t)stride,
				     .size = sml_page_round_up(stride * height) };
	out->fd = sml_memfd_create("sommelier-copy", out->size);
	return out->fd < 0 ? -errno : 0;
}

static int alloc_image(struct copy_slot *slot, struct guest_client *gc)
{
	uint32_t fourcc = drm_format(slot->format);
	int ret = gc->channel ?
		guest_channel_alloc_image(gc->channel, (uint32_t)slot->width,
					  (uint32_t)slot->height, fourcc, slot->bpp, &slot->image) :
		alloc_local((uint32_t)slot->width, (uint32_t)slot->height, slot->bpp, &slot->image);
	if (ret < 0)
		return ret;
	slot->map = mmap(NULL, slot->image.size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 slot->image.fd, 0);
	return slot->map == MAP_FAILED ? (slot->map = NULL, -errno) : 0;
}

static void free_image(struct copy_slot *slot, struct guest_client *gc)
{
	if (slot->map)
		munmap(slot->map, slot->image.size);
	if (gc->channel && slot->image.res)
		guest_channel_free_image(gc->channel, &slot->image);
	else
		sml_close(&slot->image.fd);
}

// A host wl_buffer over the image, through a pool that lives only as long
// as it takes to make the buffer.
static struct wl_proxy *host_buffer(struct copy_slot *slot, struct wl_proxy *shm)
{
	uint32_t version = wl_proxy_get_version(shm);
	struct wl_proxy *pool = wl_proxy_marshal_flags(shm, SHM_CREATE_POOL, &wl_shm_pool_interface,
						       version, 0, NULL, slot->image.fd,
						       (int32_t)slot->image.size);
	if (!pool)
		return NULL;
	struct wl_proxy *buffer = wl_proxy_marshal_flags(pool, POOL_CREATE_BUFFER,
							 &wl_buffer_interface, version, 0, NULL,
							 (int32_t)slot->image.offset, slot->width,
							 slot->height, (int32_t)slot->image.stride,
							 slot->format);
	wl_proxy_marshal_flags(pool, POOL_DESTROY, NULL, version, WL_MARSHAL_FLAG_DESTROY);
	// The request holds its own dup and the mapping keeps the memory: a
	// client with many surfaces must not cost sommelier an fd for each slot.
	sml_close(&slot->image.fd);
	return buffer;
}

static void slot_destroy(struct copy_slot *slot)
{
	struct copy_surface *s = slot->surface;
	if (slot->proxy)
		wl_proxy_marshal_flags(slot->proxy, BUFFER_DESTROY, NULL,
				       wl_proxy_get_version(slot->proxy), WL_MARSHAL_FLAG_DESTROY);
	buffer_unhold(slot->holder);
	free_image(slot, slot->gc);
	pixman_region32_fini(&slot->stale);
	if (s) {
		wl_list_remove(&slot->link);
		s->nslots--;
		if (s->current == slot)
			s->current = NULL;
	}
	free(slot);
}

static bool slot_fits(const struct copy_slot *slot, int32_t width, int32_t height,
		      uint32_t format)
{
	return slot->width == width && slot->height == height && slot->format == format;
}

// The host let go of the slot: it may be written for the next commit, or
// caught up before it. A slot of an older size goes, and so do those of a
// surface that shows no copy buffer any more.
static void on_slot_release(void *data, struct wl_proxy *proxy)
{
	struct copy_slot *slot = data;
	struct copy_surface *s = slot->surface;
	struct copy_slot *cur = s ? s->current : NULL;
	struct copy_buffer *holder = slot->holder;
	slot->held = false;
	slot->holder = NULL;
	buffer_unhold(holder);
	if (s && (!cur || !slot_fits(slot, cur->width, cur->height, cur->format)))
		slot_destroy(slot);
	else if (s && slot != cur)
		s->catch_up = true; // the host holds the current slot: the next commit goes here
}

// wl_buffer's one event; libwayland-client calls listeners through this table.
static void (*const slot_listener[])(void) = { (void (*)(void))on_slot_release };

// Host memory of b's size and format, wholly stale.
static struct copy_slot *slot_alloc(struct guest_client *gc, const struct copy_buffer *b)
{
	struct copy_slot *slot = calloc(1, sizeof(*slot));
	if (!slot)
		return NULL;
	*slot = (struct copy_slot){ .gc = gc, .width = b->width, .height = b->height,
				    .format = b->format, .bpp = b->bpp, .image.fd = -1 };
	pixman_region32_init_rect(&slot->stale, 0, 0, (unsigned)b->width, (unsigned)b->height);
	if (!gc->host_shm || alloc_image(slot, gc) < 0 ||
	    !(slot->proxy = host_buffer(slot, gc->host_shm))) {
		slot_destroy(slot);
		return NULL;
	}
	wl_proxy_add_listener(slot->proxy, (void (**)(void))slot_listener, slot);
	return slot;
}

static struct copy_slot *slot_create(struct copy_surface *s, const struct copy_buffer *b)
{
	struct copy_slot *slot = slot_alloc(s->gc, b);
	if (!slot)
		return NULL;
	slot->surface = s;
	wl_list_insert(&s->slots, &slot->link);
	s->nslots++;
	s->gc->copy_stats.slots_max = SML_MAX(s->gc->copy_stats.slots_max, s->nslots);
	return slot;
}

// ---- wl_shm_pool and wl_shm -------------------------------------------------

// Checked here: the host's error would come on the host pool that
// host_buffer has already destroyed, too late to name the client's object.
// Before the host has announced anything, the host decides.
static bool host_has_format(struct guest_client *gc, uint32_t format)
{
	const uint32_t *f;
	if (format <= WL_SHM_FORMAT_XRGB8888 || gc->host_formats.size == 0)
		return true; // every compositor supports these two
	wl_array_for_each(f, &gc->host_formats)
		if (*f == format)
			return true;
	return false;
}

// The checks libwayland's own wl_shm makes, with its error codes, and a
// stride that holds a row of pixels (which it leaves to the renderer).
static bool buffer_args_valid(struct wl_resource *pool_res, struct copy_pool *pool,
			      const union wl_argument *args, uint32_t bpp)
{
	int32_t offset = args[1].i, width = args[2].i, height = args[3].i, stride = args[4].i;
	if (bpp == 0) {
		wl_resource_post_error(pool_res, WL_SHM_ERROR_INVALID_FORMAT,
				       "format %#x is not carried by the copy path", args[5].u);
		return false;
	}
	if (!host_has_format(fwd_from_resource(pool_res)->gc, args[5].u)) {
		wl_resource_post_error(pool_res, WL_SHM_ERROR_INVALID_FORMAT,
				       "format %#x is not offered by the host compositor", args[5].u);
		return false;
	}
	if (offset < 0 || width <= 0 || height <= 0 || stride < width * (int64_t)bpp ||
	    (int64_t)offset + (int64_t)stride * height > (int64_t)pool->size) {
		wl_resource_post_error(pool_res, WL_SHM_ERROR_INVALID_STRIDE,
				       "invalid width, height or stride (%dx%d, %d)", width,
				       height, stride);
		return false;
	}
	return true;
}

static void pool_create_buffer(struct wl_resource *pool_res, struct copy_pool *pool,
			       union wl_argument *args)
{
	struct guest_client *gc = fwd_from_resource(pool_res)->gc;
	uint32_t bpp = format_bpp(drm_format(args[5].u));
	if (!buffer_args_valid(pool_res, pool, args, bpp))
		return;
	struct copy_buffer *b = calloc(1, sizeof(*b));
	struct wl_resource *res = b ?
		wl_resource_create(gc->client, &wl_buffer_interface, 1, args[0].n) : NULL;
	struct fwd_object *obj = res ? fwd_pair_with(gc, res, NULL, buffer_request, NULL) : NULL;
	if (!obj) {
		free(b);
		if (res)
			wl_resource_destroy(res);
		wl_client_post_no_memory(gc->client);
		return;
	}
	*b = (struct copy_buffer){ .gc = gc, .resource = res, .pool = pool, .offset = args[1].i,
				   .width = args[2].i, .height = args[3].i, .stride = args[4].i,
				   .format = args[5].u, .bpp = bpp };
	pool->refs++;
	obj->data = b;
	obj->data_destroy = buffer_destroy;
	obj->host_twin = buffer_twin;
}

static void pool_resize(struct wl_resource *pool_res, struct copy_pool *pool, int32_t size)
{
	if (size <= 0) {
		wl_resource_post_error(pool_res, WL_SHM_ERROR_INVALID_FD, "invalid pool size %d",
				       size);
		return;
	}
	if (size < (int64_t)pool->size) {
		wl_resource_post_error(pool_res, WL_SHM_ERROR_INVALID_FD,
				       "a pool cannot shrink (%zu to %d bytes)", pool->size, size);
		return;
	}
	void *map = mremap(pool->map, pool->size, (size_t)size, MREMAP_MAYMOVE);
	if (map == MAP_FAILED) {
		wl_resource_post_error(pool_res, WL_SHM_ERROR_INVALID_FD,
				       "cannot grow the pool to %d bytes: %s", size, strerror(errno));
		return;
	}
	pool->map = map;
	pool->size = (size_t)size;
}

static int pool_request(const void *impl, void *target, uint32_t opcode,
			const struct wl_message *msg, union wl_argument *args)
{
	struct fwd_object *obj = fwd_from_resource(target);
	struct copy_pool *pool = obj->data;
	if (opcode == POOL_CREATE_BUFFER)
		pool_create_buffer(target, pool, args);
	else if (opcode == POOL_DESTROY)
		wl_resource_destroy(target);
	else if (opcode == POOL_RESIZE)
		pool_resize(target, pool, args[0].i);
	return 0;
}

static void pool_release(void *data)
{
	pool_unref(data);
}

// wl_shm.create_pool: the pool stays in the guest; only buffers cross.
static void shm_create_pool(struct wl_resource *shm_res, union wl_argument *args)
{
	struct guest_client *gc = fwd_from_resource(shm_res)->gc;
	int fd = args[1].h;
	int32_t size = args[2].i;
	struct copy_pool *pool = size > 0 ? calloc(1, sizeof(*pool)) : NULL;
	if (!pool) {
		close(fd);
		wl_resource_post_error(shm_res, WL_SHM_ERROR_INVALID_STRIDE, "invalid pool size %d",
				       size);
		return;
	}
	pool->refs = 1;
	pool->size = (size_t)size;
	pool->map = mmap(NULL, pool->size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	struct wl_resource *res = pool->map == MAP_FAILED ? NULL :
		wl_resource_create(gc->client, &wl_shm_pool_interface,
				   wl_resource_get_version(shm_res), args[0].n);
	struct fwd_object *obj = res ? fwd_pair_with(gc, res, NULL, pool_request, NULL) : NULL;
	if (!obj) {
		if (pool->map == MAP_FAILED)
			pool->map = NULL;
		pool_unref(pool);
		if (res)
			wl_resource_destroy(res);
		wl_resource_post_error(shm_res, WL_SHM_ERROR_INVALID_FD, "cannot map the pool");
		return;
	}
	obj->data = pool;
	obj->data_destroy = pool_release;
	install_sigbus_handler();
}

static int shm_request(const void *impl, void *target, uint32_t opcode,
		       const struct wl_message *msg, union wl_argument *args)
{
	if (opcode == SHM_CREATE_POOL) {
		shm_create_pool(target, args);
		return 0;
	}
	return fwd_request_dispatch(impl, target, opcode, msg, args);
}

// ---- wl_surface: copy on commit ---------------------------------------------

#if defined(__SSE2__)
#include <emmintrin.h>

// Large copies into host memory use non-temporal stores: the compositor,
// not us, reads those lines next, so fetching them into our cache first
// (what ordinary stores do) only costs bandwidth.
#define STREAM_MIN (256u * 1024u)

static void copy_bytes(uint8_t *dst, const uint8_t *src, size_t n)
{
	if (n < STREAM_MIN || ((uintptr_t)dst & 15)) {
		memcpy(dst, src, n);
		return;
	}
	size_t blocks = n / 64;
	for (size_t i = 0; i < blocks; i++, src += 64, dst += 64) {
		__m128i a = _mm_loadu_si128((const __m128i *)src);
		__m128i b = _mm_loadu_si128((const __m128i *)(src + 16));
		__m128i c = _mm_loadu_si128((const __m128i *)(src + 32));
		__m128i d = _mm_loadu_si128((const __m128i *)(src + 48));
		_mm_stream_si128((__m128i *)dst, a);
		_mm_stream_si128((__m128i *)(dst + 16), b);
		_mm_stream_si128((__m128i *)(dst + 32), c);
		_mm_stream_si128((__m128i *)(dst + 48), d);
	}
	_mm_sfence();
	memcpy(dst, src, n % 64);
}
#else
static void copy_bytes(uint8_t *dst, const uint8_t *src, size_t n)
{
	memcpy(dst, src, n);
}
#endif

// Copies a box of the client's buffer into a slot of the same size and
// format.
static void copy_rows(struct copy_slot *to, const struct copy_buffer *from,
		      const pixman_box32_t *box)
{
	size_t bytes = (size_t)(box->x2 - box->x1) * to->bpp;
	const uint8_t *src = from->pool->map + from->offset + (size_t)box->y1 * (size_t)from->stride +
			     (size_t)box->x1 * to->bpp;
	uint8_t *dst = to->map + to->image.offset + (size_t)box->y1 * to->image.stride +
		       (size_t)box->x1 * to->bpp;
	if (box->x1 == 0 && box->x2 == to->width && (uint32_t)from->stride == to->image.stride) {
		copy_bytes(dst, src, (size_t)from->stride * (size_t)(box->y2 - box->y1));
		return;
	}
	for (int32_t y = box->y1; y < box->y2; y++, src += from->stride, dst += to->image.stride)
		memcpy(dst, src, bytes);
}

// Copies the slot's stale region from the buffer and clears it, counting
// the bytes. False if the client's memory vanished meanwhile (zeros were
// copied).
static bool copy_stale(struct copy_slot *to, const struct copy_buffer *from, uint64_t *bytes)
{
	int n;
	const pixman_box32_t *boxes = pixman_region32_rectangles(&to->stale, &n);
	accessing = from->pool;
	for (int i = 0; i < n; i++) {
		copy_rows(to, from, &boxes[i]);
		*bytes += (uint64_t)(boxes[i].x2 - boxes[i].x1) * (uint64_t)(boxes[i].y2 - boxes[i].y1) *
			  to->bpp;
	}
	accessing = NULL;
	pixman_region32_clear(&to->stale);
	return !from->pool->broken;
}

// Adds damage to what a slot lacks; damage outside it means nothing
// (clients damage generously, and compositors ignore the excess).
static void add_stale(struct copy_slot *slot, pixman_region32_t *damage)
{
	pixman_region32_union(&slot->stale, &slot->stale, damage);
	pixman_region32_intersect_rect(&slot->stale, &slot->stale, 0, 0, (unsigned)slot->width,
				       (unsigned)slot->height);
}

static void set_all_stale(struct copy_surface *s)
{
	struct copy_slot *slot;
	wl_list_for_each(slot, &s->slots, link)
		pixman_region32_reset(&slot->stale, &(pixman_box32_t){ 0, 0, slot->width,
								       slot->height });
	s->current = NULL;
}

// Released slots of another size or format will not be written again.
static void drop_misfits(struct copy_surface *s, const struct copy_buffer *b)
{
	struct copy_slot *slot, *tmp;
	wl_list_for_each_safe(slot, tmp, &s->slots, link)
		if (!slot->held && !slot_fits(slot, b->width, b->height, b->format))
			slot_destroy(slot);
}

// Slots of one size a surface keeps: more than a compositor holds at once.
#define SLOTS_FIT_MAX 4
// Slots of a surface in all, each a mapping in sommelier: the sizes of a
// resize still in flight. One client must not use up the mappings of all.
#define SLOTS_MAX 16

// The oldest slot of another size than b's: superseded by a later commit,
// so the host no longer shows it, and it may be destroyed though the host
// has not released it yet (it keeps its own mapping).
static struct copy_slot *oldest_misfit(struct copy_surface *s, const struct copy_buffer *b)
{
	struct copy_slot *slot, *oldest = NULL;
	wl_list_for_each(slot, &s->slots, link)
		if (!slot_fits(slot, b->width, b->height, b->format) &&
		    (!oldest || slot->attached_at < oldest->attached_at))
			oldest = slot;
	return oldest;
}

// A new slot for b, making room among the sizes in flight.
static struct copy_slot *new_slot(struct copy_surface *s, const struct copy_buffer *b)
{
	struct copy_slot *victim = s->nslots >= SLOTS_MAX ? oldest_misfit(s, b) : NULL;
	if (victim)
		slot_destroy(victim);
	return s->nslots < SLOTS_MAX ? slot_create(s, b) : NULL;
}

// The free slot of b's size the next commit should take: one that lacks
// nothing, else the one attached last, which lacks the fewest commits.
// The current slot, if the host has let go of it, is both: a compositor
// that takes the pixels at commit (mutter) gets every commit in one slot,
// and slots it does not need grow old (retire_spares).
static struct copy_slot *best_free(struct copy_surface *s, int32_t width, int32_t height,
				   uint32_t format)
{
	struct copy_slot *slot, *best = NULL;
	wl_list_for_each(slot, &s->slots, link) {
		if (slot->held || !slot_fits(slot, width, height, format))
			continue;
		bool complete = !pixman_region32_not_empty(&slot->stale);
		bool best_complete = best && !pixman_region32_not_empty(&best->stale);
		if (!best || complete > best_complete ||
		    (complete == best_complete && slot->attached_at > best->attached_at))
			best = slot;
	}
	return best;
}

// The newest slot of b's size, and how many there are.
static struct copy_slot *newest_fitting(struct copy_surface *s, const struct copy_buffer *b,
					int *count)
{
	struct copy_slot *slot, *newest = NULL;
	*count = 0;
	wl_list_for_each(slot, &s->slots, link) {
		if (!slot_fits(slot, b->width, b->height, b->format))
			continue;
		++*count;
		if (!newest || slot->attached_at > newest->attached_at)
			newest = slot;
	}
	return newest;
}

// A slot the host does not hold, else a new one. When the host holds all
// four slots of the size, or no memory is left for another, the client
// commits faster than the host takes frames: the newest slot is written
// and attached again, and the host may show this commit's pixels for the
// frame before (a torn frame at worst; and a host that releases once per
// attach frees it early), where a slot for each commit in flight would
// pile up host memory without bound. NULL only when no slot of the size
// can be made at all.
static struct copy_slot *pick_slot(struct copy_surface *s, const struct copy_buffer *b)
{
	struct copy_slot *slot = best_free(s, b->width, b->height, b->format), *made = NULL;
	if (slot)
		return slot;
	int fitting;
	struct copy_slot *newest = newest_fitting(s, b, &fitting);
	if (fitting < SLOTS_FIT_MAX)
		made = new_slot(s, b);
	return made ? made : newest;
}

// A slot nobody attached for this many of its surface's commits, or for
// this long, is given back. A burst makes slots (up to SLOTS_FIT_MAX of a
// size) that the compositor needed only while it lasted; kept, they would
// hold host memory and a mapping each for the surface's life. The count
// frees them soon on a surface that keeps drawing, the time on one that
// stopped (a timer: no commit comes to do it). The time is long enough that
// a surface drawing every second or two keeps the slots it takes turns with.
#define SLOT_SPARE_COMMITS 60
#define SLOT_SPARE_MS 5000

static bool slot_spare(const struct copy_surface *s, const struct copy_slot *slot, uint64_t now)
{
	return !slot->held && slot != s->current &&
	       (s->attaches - slot->attached_at > SLOT_SPARE_COMMITS ||
		now - slot->attached_ns >= (uint64_t)SLOT_SPARE_MS * 1000000u);
}

static void retire_spares(struct copy_surface *s, uint64_t now)
{
	struct copy_slot *slot, *tmp;
	wl_list_for_each_safe(slot, tmp, &s->slots, link) {
		if (!slot_spare(s, slot, now))
			continue;
		slot_destroy(slot);
		s->gc->copy_stats.spares_retired++;
	}
}

// When the next slot of s would be spare by time, in ms from now (at
// least 1); SLOT_SPARE_MS while the host holds every slot but the current.
static int spare_due_ms(const struct copy_surface *s, uint64_t now)
{
	const uint64_t period = (uint64_t)SLOT_SPARE_MS * 1000000u;
	uint64_t due = period;
	struct copy_slot *slot;
	wl_list_for_each(slot, &s->slots, link) {
		uint64_t at = slot->attached_ns + period;
		if (!slot->held && slot != s->current)
			due = SML_MIN(due, at > now ? at - now : 0);
	}
	return (int)(due / 1000000u) + 1;
}

static int on_spare_timer(void *data);

static void arm_spare_timer(struct guest_client *gc, int ms)
{
	if (!gc->copy_spare_timer)
		gc->copy_spare_timer = wl_event_loop_add_timer(gc->server->loop, on_spare_timer, gc);
	// Without a timer, spares wait for their surface's commits.
	gc->copy_spare_armed = gc->copy_spare_timer &&
			       wl_event_source_timer_update(gc->copy_spare_timer, ms) == 0;
}

static int on_spare_timer(void *data)
{
	struct guest_client *gc = data;
	struct copy_surface *s;
	int next = 0;
	gc->copy_spare_armed = false;
	if (gc->dying)
		return 0;
	uint64_t now = sml_now_ns();
	wl_list_for_each(s, &gc->copy_surfaces, link) {
		retire_spares(s, now);
		int due = s->nslots > 1 ? spare_due_ms(s, now) : 0;
		if (due && (!next || due < next))
			next = due;
	}
	if (next)
		arm_spare_timer(gc, next);
	return 0;
}

// The slot holds b's pixels for the host; b goes back to its client when
// the host lets go of the slot.
static void slot_hold(struct copy_slot *slot, struct copy_buffer *b)
{
	struct copy_buffer *previous = slot->holder;
	b->holds++;
	slot->holder = b;
	slot->held = true;
	buffer_unhold(previous);
}

static void host_attach(struct wl_proxy *host_surface, struct copy_slot *slot, int32_t dx,
			int32_t dy)
{
	if (host_surface)
		wl_proxy_marshal_flags(host_surface, SURFACE_ATTACH, NULL,
				       wl_proxy_get_version(host_surface), 0,
				       slot ? slot->proxy : NULL, dx, dy);
}

// Copies b into a slot: what this commit damaged, and what the slot lacked
// of the surface before it. Negative errno when nothing can be shown.
static int commit_buffer(struct copy_surface *s, struct copy_buffer *b,
			 struct wl_proxy *host_surface)
{
	drop_misfits(s, b);
	struct copy_slot *slot = pick_slot(s, b), *other;
	if (!slot)
		return -ENOMEM;
	if (s->full_damage)
		pixman_region32_reset(&s->damage, &(pixman_box32_t){ 0, 0, b->width, b->height });
	add_stale(slot, &s->damage);
	bool ok = copy_stale(slot, b, &s->gc->copy_stats.commit_bytes);
	s->gc->copy_stats.commits++;
	wl_list_for_each(other, &s->slots, link)
		if (other != slot)
			add_stale(other, &s->damage);
	slot_hold(slot, b);
	slot->attached_at = ++s->attaches;
	slot->attached_ns = sml_now_ns();
	s->current = slot;
	retire_spares(s, slot->attached_ns);
	if (s->nslots > 1 && !s->gc->copy_spare_armed)
		arm_spare_timer(s->gc, SLOT_SPARE_MS);
	host_attach(host_surface, slot, s->dx, s->dy);
	return ok ? 0 : -EFAULT;
}

static int surface_commit(struct copy_surface *s, struct wl_proxy *host_surface)
{
	int ret = 0;
	if (s->attached && s->deferred && s->pending)
		ret = commit_buffer(s, s->pending, host_surface);
	else if (s->attached)
		set_all_stale(s); // the surface shows something else, or nothing
	if (s->attached && s->deferred && !s->pending)
		host_attach(host_surface, NULL, s->dx, s->dy); // the client destroyed it
	s->attached = s->deferred = s->full_damage = false;
	pixman_region32_clear(&s->damage);
	return ret;
}

// Buffer pixels lie in [0, INT32_MAX): a rectangle clamped to that range
// covers the same pixels, and its edges cannot overflow in pixman, which
// would drop it.
static int32_t clamp_edge(int64_t v)
{
	return (int32_t)SML_MAX(SML_MIN(v, INT32_MAX), 0);
}

static void add_damage(pixman_region32_t *damage, int32_t x, int32_t y, int32_t w, int32_t h)
{
	if (w <= 0 || h <= 0)
		return;
	pixman_box32_t box = { clamp_edge(x), clamp_edge(y), clamp_edge((int64_t)x + w),
			       clamp_edge((int64_t)y + h) };
	if (box.x1 < box.x2 && box.y1 < box.y2)
		pixman_region32_union_rect(damage, damage, box.x1, box.y1,
					   (unsigned)(box.x2 - box.x1), (unsigned)(box.y2 - box.y1));
}

// True when the request is held back (an attach of a copy buffer, sent
// with its commit).
static bool surface_track(struct copy_surface *s, uint32_t opcode, union wl_argument *args)
{
	if (opcode == SURFACE_ATTACH) {
		struct fwd_object *buf = args[0].o ?
			fwd_from_resource((struct wl_resource *)args[0].o) : NULL;
		s->attached = true;
		s->pending = buf && buf->data_destroy == buffer_destroy ? buf->data : NULL;
		s->deferred = s->pending != NULL;
		s->dx = args[1].i;
		s->dy = args[2].i;
		return s->deferred;
	}
	if (opcode == SURFACE_DAMAGE) {
		s->full_damage = true; // surface coordinates: scale and transform unknown here
	} else if (opcode == SURFACE_DAMAGE_BUFFER) {
		add_damage(&s->damage, args[0].i, args[1].i, args[2].i, args[3].i);
	}
	return false;
}

static void surface_destroy(void *data)
{
	struct copy_surface *s = data;
	struct copy_slot *slot, *tmp;
	wl_list_for_each_safe(slot, tmp, &s->slots, link)
		slot_destroy(slot);
	pixman_region32_fini(&s->damage);
	wl_list_remove(&s->link);
	free(s);
}

// Surfaces are created by the generic forwarder; their state is attached
// at their first request. NULL if it cannot be allocated (the surface is
// then forwarded as it is).
static struct copy_surface *surface_state(struct fwd_object *obj)
{
	struct copy_surface *s = obj->data ? obj->data : calloc(1, sizeof(*s));
	if (!s || obj->data)
		return s;
	s->gc = obj->gc;
	pixman_region32_init(&s->damage);
	wl_list_init(&s->slots);
	wl_list_insert(&obj->gc->copy_surfaces, &s->link);
	obj->data = s;
	obj->data_destroy = surface_destroy;
	return s;
}

static int surface_dispatch(const void *impl, void *target, uint32_t opcode,
			    const struct wl_message *msg, union wl_argument *args)
{
	struct fwd_object *obj = fwd_from_resource(target);
	struct copy_surface *s = surface_state(obj);
	if (s && surface_track(s, opcode, args))
		return 0;
	int ret = s && opcode == SURFACE_COMMIT ? surface_commit(s, obj->proxy) : 0;
	if (ret == -EFAULT) {
		wl_resource_post_error(target, WL_SHM_ERROR_INVALID_FD,
				       "the buffer's pool shrank while in use");
		return 0;
	}
	if (ret < 0) {
		sml_warn("copy path: no host memory for a surface");
		wl_client_post_no_memory(obj->gc->client);
		return 0;
	}
	return fwd_request_dispatch(impl, target, opcode, msg, args);
}

// A request other than wl_surface.attach names a copy buffer. Where the
// host only reads it, once (KDE shadows, which Qt sets on menus under
// KWin), the host gets a copy of the whole buffer as it is now, in host
// memory of the buffer's own, and the buffer is released with it. Where
// the host would write into it (captures) or never release it, a one-way
// copy would be wrong: the request fails as the host's object is missing.
static struct wl_proxy *buffer_twin(struct fwd_object *obj, const struct fwd_object *requester)
{
	struct copy_buffer *b = obj->data;
	if (strcmp(requester->iface->name, "org_kde_kwin_shadow") != 0)
		return NULL;
	if (!b->twin && !(b->twin = slot_alloc(b->gc, b)))
		return NULL;
	if (b->twin->held)
		return b->twin->proxy; // the client may not have changed it since
	pixman_region32_reset(&b->twin->stale, &(pixman_box32_t){ 0, 0, b->width, b->height });
	copy_stale(b->twin, b, &b->gc->copy_stats.commit_bytes);
	slot_hold(b->twin, b);
	return b->twin->proxy;
}

// ---- catching up between commits -------------------------------------------

// With a compositor that holds the buffer on screen (weston, wlroots with
// pixman), the next commit goes to another slot, which lacks what the
// commits since its own changed. Once the host has released that slot, it
// is brought up to date while the client is busy drawing, from the buffer
// on screen: the host holds that one, so its client leaves it alone.
static bool worth_catching_up(const struct copy_slot *slot)
{
	if (!pixman_region32_not_empty(&slot->stale))
		return false;
	// Wholly stale: a client that redraws everything, whose next commit
	// copies it all anyway.
	const pixman_box32_t *e = pixman_region32_extents(&slot->stale);
	return pixman_region32_n_rects(&slot->stale) > 1 || e->x1 > 0 || e->y1 > 0 ||
	       e->x2 < slot->width || e->y2 < slot->height;
}

static void surface_catch_up(struct copy_surface *s)
{
	struct copy_slot *from = s->current;
	s->catch_up = false;
	if (!from || !from->holder || from->holder->pool->broken)
		return;
	// Only the slot the next commit takes: rows copied into others might
	// never be shown.
	struct copy_slot *next = best_free(s, from->width, from->height, from->format);
	if (next && worth_catching_up(next))
		copy_stale(next, from->holder, &s->gc->copy_stats.catch_up_bytes);
}

// ---- entry points ----------------------------------------------------------

wl_dispatcher_func_t shm_copy_hook(struct guest_client *gc, const char *interface_name)
{
	if (!gc->copy_shm)
		return NULL;
	if (strcmp(interface_name, "wl_shm") == 0)
		return shm_request;
	if (strcmp(interface_name, "wl_surface") == 0)
		return surface_dispatch;
	return NULL;
}

void shm_copy_idle(struct guest_client *gc)
{
	struct copy_surface *s;
	if (!gc->copy_shm || gc->dying)
		return;
	wl_list_for_each(s, &gc->copy_surfaces, link)
		if (s->catch_up)
			surface_catch_up(s);
}

// More than any compositor announces: the list stays bounded whatever the
// host sends.
#define HOST_FORMATS_MAX 1024

static void on_host_format(void *data, struct wl_proxy *shm, uint32_t format)
{
	struct guest_client *gc = data;
	uint32_t *slot = gc->host_formats.size < HOST_FORMATS_MAX * sizeof(*slot) ?
		wl_array_add(&gc->host_formats, sizeof(*slot)) : NULL;
	if (slot)
		*slot = format;
}

// wl_shm's one event; libwayland-client calls listeners through this table.
static void (*const host_shm_listener[])(void) = { (void (*)(void))on_host_format };

void shm_copy_bound(struct guest_client *gc, struct wl_proxy *registry, uint32_t name)
{
	if (!gc->copy_shm || gc->host_shm)
		return;
	gc->host_shm = wl_proxy_marshal_flags(registry, 0 /* bind */, &wl_shm_interface, 1, 0,
					      name, wl_shm_interface.name, 1, NULL);
	if (gc->host_shm)
		wl_proxy_add_listener(gc->host_shm, (void (**)(void))host_shm_listener, gc);
}

void shm_copy_release(struct guest_client *gc)
{
	const struct guest_copy_stats *st = &gc->copy_stats;
	if (st->commits)
		sml_info("client %p: copy path: %" PRIu64 " commits, %" PRIu64 " KiB copied at "
			 "commit, %" PRIu64 " KiB ahead of commits, at most %d slots on a surface, "
			 "%" PRIu64 " spare slots given back",
			 (void *)gc->client, st->commits, st->commit_bytes / 1024,
			 st->catch_up_bytes / 1024, st->slots_max, st->spares_retired);
	if (gc->copy_spare_timer)
		wl_event_source_remove(gc->copy_spare_timer);
	gc->copy_spare_timer = NULL;
	if (gc->host_shm)
		wl_proxy_destroy(gc->host_shm);
	gc->host_shm = NULL;
}
