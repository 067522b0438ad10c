// SPDX-License-Identifier: MIT
// Guest clients: each gets its own host connection, read and flushed from
// the one event loop. Teardown is two-step: libwayland-server destroys the
// client's resources (which drop their host twins), then an idle callback
// closes the host connection.
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wayland-server-protocol.h>

#include "channel.h"
#include "forward.h"
#include "log.h"
#include "shm_copy.h"
#include "vgpu.h"

static void client_reap(void *data)
{
	struct guest_client *gc = data;
	if (gc->host_source)
		wl_event_source_remove(gc->host_source);
	shm_copy_release(gc);
	if (gc->host)
		wl_display_disconnect(gc->host);
	guest_channel_destroy(gc->channel);
	wl_array_release(&gc->globals);
	wl_array_release(&gc->host_formats);
	wl_list_remove(&gc->link);
	free(gc);
}

static void client_destroyed(struct wl_listener *listener, void *data)
{
	struct guest_client *gc = wl_container_of(listener, gc, destroy);
	gc->dying = true;
	if (gc->kill)
		wl_event_source_remove(gc->kill);
	gc->kill = NULL;
	// Resources are destroyed after this signal and still use the host.
	wl_event_loop_add_idle(gc->server->loop, client_reap, gc);
}

static void client_kill_idle(void *data)
{
	struct guest_client *gc = data;
	gc->kill = NULL;
	wl_client_flush(gc->client); // the error, if one was posted, goes first
	wl_client_destroy(gc->client);
}

void guest_client_kill(struct guest_client *gc, const char *reason)
{
	if (gc->dying || gc->kill)
		return;
	sml_info("client %p: %s", (void *)gc->client, reason);
	gc->kill = wl_event_loop_add_idle(gc->server->loop, client_kill_idle, gc);
}

// Why a host connection ended without an error on a live object; returns
// the short form for sommelier's log.
static const char *describe_loss(struct guest_client *gc, uint32_t code, char *buf,
				 size_t size)
{
	int err = wl_display_get_error(gc->host);
	const char *why = gc->channel ? guest_channel_failure(gc->channel) : NULL;
	// First: the host hangs up after any error, which the channel may have
	// seen (and named) before libwayland-client read the error.
	if (err == EPROTO) { // on a host object already destroyed
		snprintf(buf, size, "host compositor: error %u on an object that no longer "
			 "exists", code);
		return "host protocol error";
	}
	if (why) {
		snprintf(buf, size, "sommelier: %s", why);
		return "channel closed";
	}
	snprintf(buf, size, "sommelier: the host compositor connection was lost (%s)",
		 strerror(err ? err : EPIPE));
	return "host connection lost";
}

// A host connection that failed: a protocol error goes to the guest object
// it concerns; anything else (compositor gone, a client fd the channel
// refused) ends the client with the reason.
static void host_failed(struct guest_client *gc)
{
	uint32_t id = 0;
	char why[320];
	const char *reason = "host protocol error";
	// Not EPROTO alone: errors on wl_display come as EINVAL or ENOMEM.
	uint32_t code = wl_display_get_protocol_error(gc->host, NULL, &id);
	if (id != 0) {
		fwd_post_host_error(gc);
	} else {
		reason = describe_loss(gc, code, why, sizeof(why));
		wl_resource_post_error(wl_client_get_object(gc->client, 1),
				       WL_DISPLAY_ERROR_IMPLEMENTATION, "%s", why);
	}
	guest_client_kill(gc, reason);
	if (gc->host_source)
		wl_event_source_remove(gc->host_source);
	gc->host_source = NULL;
}

static bool host_read(struct wl_display *host)
{
	while (wl_display_prepare_read(host) != 0)
		if (wl_display_dispatch_pending(host) < 0)
			return false;
	if (wl_display_read_events(host) < 0)
		return false;
	return wl_display_dispatch_pending(host) >= 0;
}

static void host_set_mask(struct guest_client *gc, uint32_t mask)
{
	if (gc->host_source && mask != gc->host_mask)
		wl_event_source_fd_update(gc->host_source, mask);
	gc->host_mask = mask;
}

// Through a channel, the bytes go on at once: waiting for the loop to
// report the socketpair would cost a loop turn per message.
static void host_flush(struct guest_client *gc)
{
	if (!gc->host_source)
		return;
	int ret = wl_display_flush(gc->host);
	if (ret < 0 && errno != EAGAIN)
		host_failed(gc);
	else
		host_set_mask(gc, WL_EVENT_READABLE | (ret < 0 ? WL_EVENT_WRITABLE : 0));
	if (ret > 0 && gc->channel)
		guest_channel_pump(gc->channel);
}

static int on_host_event(int fd, uint32_t mask, void *data)
{
	struct guest_client *gc = data;
	if (gc->dying || !gc->host_source)
		return 0;
	if (mask & WL_EVENT_WRITABLE)
		host_flush(gc);
	if (gc->host_source && (mask & (WL_EVENT_READABLE | WL_EVENT_HANGUP | WL_EVENT_ERROR)) &&
	    !host_read(gc->host))
		host_failed(gc);
	return 0;
}

static void channel_closed(void *data, const char *reason)
{
	struct guest_client *gc = data;
	// libwayland-client reads what is left, then EOF: host_failed follows.
	sml_info("client %p: channel closed: %s", (void *)gc->client, reason);
}

static void channel_delivered(void *data)
{
	struct guest_client *gc = data;
	gc->host_pending = true;
}

static const struct guest_channel_listener channel_listener = {
	.closed = channel_closed,
	.delivered = channel_delivered,
};

static int open_channel(struct guest_client *gc, const struct guest_config *config)
{
	struct vgpu_dev *dev = NULL;
	int fd = -1;
	int err = config->virtgpu ? vgpu_kernel_open(config->drm_device, &dev) :
				    vgpu_socket_open(config->peer_path, &dev);
	if (err < 0)
		return err;
	gc->shares_memory = dev->guest_memory;
	gc->channel = guest_channel_create(gc->server->loop, dev, &channel_listener, gc, &fd);
	return gc->channel ? fd : -EIO;
}

static bool connect_host(struct guest_client *gc)
{
	const struct guest_config *config = gc->server->config;
	if (config->peer_path || config->virtgpu) {
		int fd = open_channel(gc, config);
		if (fd < 0) {
			errno = -fd;
			sml_log_errno(SML_LOG_WARN, "cannot open a channel through %s",
				      config->virtgpu ? "the virtio-gpu device" : config->peer_path);
			return false;
		}
		gc->host = wl_display_connect_to_fd(fd);
	} else {
		gc->shares_memory = true;
		gc->host = wl_display_connect(config->host_display);
	}
	if (!gc->host)
		return false;
	gc->copy_shm = config->shm_copy || !gc->shares_memory;
	gc->host_source = wl_event_loop_add_fd(gc->server->loop, wl_display_get_fd(gc->host),
					       WL_EVENT_READABLE, on_host_event, gc);
	gc->host_mask = WL_EVENT_READABLE;
	return gc->host_source != NULL;
}

static void client_created(struct wl_listener *listener, void *data)
{
	struct guest_server *server = wl_container_of(listener, server, client_created);
	struct wl_client *client = data;
	struct guest_client *gc = calloc(1, sizeof(*gc));
	if (!gc) {
		wl_client_post_no_memory(client);
		return;
	}
	gc->server = server;
	gc->client = client;
	wl_array_init(&gc->globals);
	wl_array_init(&gc->host_formats);
	wl_list_init(&gc->copy_surfaces);
	wl_list_insert(&server->clients, &gc->link);
	gc->destroy.notify = client_destroyed;
	wl_client_add_destroy_listener(client, &gc->destroy);
	fwd_display_init(gc);
	if (!connect_host(gc)) {
		wl_resource_post_error(wl_client_get_object(client, 1),
				       WL_DISPLAY_ERROR_IMPLEMENTATION,
				       "sommelier cannot reach the host compositor");
		guest_client_kill(gc, "no host connection");
	}
}

struct guest_server *guest_server_create(struct wl_display *display,
					 const struct guest_config *config)
{
	struct guest_server *server = calloc(1, sizeof(*server));
	if (!server)
		return NULL;
	server->display = display;
	server->loop = wl_display_get_event_loop(display);
	server->config = config;
	wl_list_init(&server->clients);
	server->client_created.notify = client_created;
	wl_display_add_client_created_listener(display, &server->client_created);
	return server;
}

void guest_server_destroy(struct guest_server *server)
{
	if (!server)
		return;
	wl_list_remove(&server->client_created.link);
	wl_display_destroy_clients(server->display);
	wl_event_loop_dispatch_idle(server->loop); // the reaps
	free(server);
}

void guest_server_flush(struct guest_server *server)
{
	struct guest_client *gc;
	wl_list_for_each(gc, &server->clients, link) {
		if (gc->dying)
			continue;
		// Events the channel delivered are dispatched now, so that they
		// reach the guest client in this turn's flush.
		if (gc->host_pending)
			on_host_event(wl_display_get_fd(gc->host), WL_EVENT_READABLE, gc);
		gc->host_pending = false;
		host_flush(gc);
	}
}

void guest_server_idle(struct guest_server *server)
{
	struct guest_client *gc;
	wl_list_for_each(gc, &server->clients, link) {
		shm_copy_idle(gc);
		// Last: whatever used the device this turn may have deferred it.
		if (gc->channel)
			guest_channel_poll(gc->channel);
	}
}
