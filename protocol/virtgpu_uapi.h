// SPDX-License-Identifier: MIT
// The parts of Linux's include/uapi/drm/virtgpu_drm.h (as of 6.x) that
// Debian 12's libdrm header lacks: blobs, context init, ring indices, the
// 64-byte execbuffer. Written from the UAPI layout; every struct is pinned.
// Shared by the guest's kernel backend and the emulated render node.
// Names carry a VGPU_UAPI_ / vgpu_uapi_ prefix so that they never collide
// with whichever virtgpu_drm.h a program also includes.
#ifndef SML_VGPU_UAPI_H
#define SML_VGPU_UAPI_H

#include <assert.h>
#include <stdint.h>

#include <drm.h>

// Driver ioctl numbers (DRM_COMMAND_BASE + n).
#define VGPU_UAPI_MAP 0x01
#define VGPU_UAPI_EXECBUFFER 0x02
#define VGPU_UAPI_GETPARAM 0x03
#define VGPU_UAPI_RESOURCE_CREATE 0x04
#define VGPU_UAPI_RESOURCE_INFO 0x05
#define VGPU_UAPI_TRANSFER_FROM_HOST 0x06
#define VGPU_UAPI_TRANSFER_TO_HOST 0x07
#define VGPU_UAPI_WAIT 0x08
#define VGPU_UAPI_GET_CAPS 0x09
#define VGPU_UAPI_RESOURCE_CREATE_BLOB 0x0a
#define VGPU_UAPI_CONTEXT_INIT 0x0b

#define VGPU_UAPI_EXECBUF_FENCE_FD_IN 0x01u
#define VGPU_UAPI_EXECBUF_FENCE_FD_OUT 0x02u
#define VGPU_UAPI_EXECBUF_RING_IDX 0x04u
#define VGPU_UAPI_EXECBUF_FLAGS 0x07u

#define VGPU_UAPI_PARAM_3D_FEATURES 1
#define VGPU_UAPI_PARAM_CAPSET_QUERY_FIX 2
#define VGPU_UAPI_PARAM_RESOURCE_BLOB 3
#define VGPU_UAPI_PARAM_HOST_VISIBLE 4
#define VGPU_UAPI_PARAM_CROSS_DEVICE 5
#define VGPU_UAPI_PARAM_CONTEXT_INIT 6
#define VGPU_UAPI_PARAM_SUPPORTED_CAPSET_IDS 7

#define VGPU_UAPI_BLOB_MEM_GUEST 1u
#define VGPU_UAPI_BLOB_MEM_HOST3D 2u
#define VGPU_UAPI_BLOB_MEM_HOST3D_GUEST 3u
#define VGPU_UAPI_BLOB_FLAG_USE_MAPPABLE 1u
#define VGPU_UAPI_BLOB_FLAG_USE_SHAREABLE 2u
#define VGPU_UAPI_BLOB_FLAG_USE_CROSS_DEVICE 4u
#define VGPU_UAPI_BLOB_FLAG_USE_MASK 7u

#define VGPU_UAPI_CONTEXT_PARAM_CAPSET_ID 1u
#define VGPU_UAPI_CONTEXT_PARAM_NUM_RINGS 2u
#define VGPU_UAPI_CONTEXT_PARAM_POLL_RINGS_MASK 3u
#define VGPU_UAPI_CONTEXT_PARAM_DEBUG_NAME 4u // 6.8+; not emulated

#define VGPU_UAPI_WAIT_NOWAIT 1u
#define VGPU_UAPI_EVENT_FENCE_SIGNALED 0x90000000u

struct vgpu_uapi_map {
	uint64_t offset; // out: for mmap on the DRM fd
	uint32_t handle;
	uint32_t pad;
};
static_assert(sizeof(struct vgpu_uapi_map) == 16, "map");

struct vgpu_uapi_execbuffer {
	uint32_t flags;
	uint32_t size;
	uint64_t command; // user pointer
	uint64_t bo_handles; // user pointer to u32[num_bo_handles]
	uint32_t num_bo_handles;
	int32_t fence_fd;
	uint32_t ring_idx; // with VGPU_UAPI_EXECBUF_RING_IDX
	uint32_t syncobj_stride; // 6.4+
	uint32_t num_in_syncobjs;
	uint32_t num_out_syncobjs;
	uint64_t in_syncobjs;
	uint64_t out_syncobjs;
};
static_assert(sizeof(struct vgpu_uapi_execbuffer) == 64, "execbuffer");

struct vgpu_uapi_getparam {
	uint64_t param;
	uint64_t value; // user pointer to int
};
static_assert(sizeof(struct vgpu_uapi_getparam) == 16, "getparam");

struct vgpu_uapi_resource_info {
	uint32_t bo_handle;
	uint32_t res_handle;
	uint32_t size;
	uint32_t blob_mem; // "stride" before 5.11
};
static_assert(sizeof(struct vgpu_uapi_resource_info) == 16, "resource_info");

struct vgpu_uapi_wait {
	uint32_t handle;
	uint32_t flags;
};
static_assert(sizeof(struct vgpu_uapi_wait) == 8, "wait");

struct vgpu_uapi_get_caps {
	uint32_t cap_set_id;
	uint32_t cap_set_ver;
	uint64_t addr; // user pointer
	uint32_t size;
	uint32_t pad;
};
static_assert(sizeof(struct vgpu_uapi_get_caps) == 24, "get_caps");

struct vgpu_uapi_create_blob {
	uint32_t blob_mem;
	uint32_t blob_flags;
	uint32_t bo_handle; // out
	uint32_t res_handle; // out
	uint64_t size;
	uint32_t pad;
	uint32_t cmd_size;
	uint64_t cmd; // user pointer
	uint64_t blob_id;
};
static_assert(sizeof(struct vgpu_uapi_create_blob) == 48, "create_blob");

struct vgpu_uapi_context_param {
	uint64_t param;
	uint64_t value;
};
static_assert(sizeof(struct vgpu_uapi_context_param) == 16, "context_param");

struct vgpu_uapi_context_init {
	uint32_t num_params;
	uint32_t pad;
	uint64_t ctx_set_params; // user pointer to vgpu_uapi_context_param[]
};
static_assert(sizeof(struct vgpu_uapi_context_init) == 16, "context_init");

#define VGPU_UAPI_IOCTL(nr, type) DRM_IOWR(DRM_COMMAND_BASE + (nr), type)
#define VGPU_IOCTL_MAP VGPU_UAPI_IOCTL(VGPU_UAPI_MAP, struct vgpu_uapi_map)
#define VGPU_IOCTL_EXECBUFFER VGPU_UAPI_IOCTL(VGPU_UAPI_EXECBUFFER, struct vgpu_uapi_execbuffer)
#define VGPU_IOCTL_GETPARAM VGPU_UAPI_IOCTL(VGPU_UAPI_GETPARAM, struct vgpu_uapi_getparam)
#define VGPU_IOCTL_RESOURCE_INFO \
	VGPU_UAPI_IOCTL(VGPU_UAPI_RESOURCE_INFO, struct vgpu_uapi_resource_info)
#define VGPU_IOCTL_WAIT VGPU_UAPI_IOCTL(VGPU_UAPI_WAIT, struct vgpu_uapi_wait)
#define VGPU_IOCTL_GET_CAPS VGPU_UAPI_IOCTL(VGPU_UAPI_GET_CAPS, struct vgpu_uapi_get_caps)
#define VGPU_IOCTL_RESOURCE_CREATE_BLOB \
	VGPU_UAPI_IOCTL(VGPU_UAPI_RESOURCE_CREATE_BLOB, struct vgpu_uapi_create_blob)
#define VGPU_IOCTL_CONTEXT_INIT \
	VGPU_UAPI_IOCTL(VGPU_UAPI_CONTEXT_INIT, struct vgpu_uapi_context_init)

// The numbers cross-domain.md quotes, so a typo here cannot go unnoticed.
static_assert(VGPU_IOCTL_GETPARAM == 0xC0106443u, "GETPARAM");
static_assert(VGPU_IOCTL_GET_CAPS == 0xC0186449u, "GET_CAPS");
static_assert(VGPU_IOCTL_CONTEXT_INIT == 0xC010644Bu, "CONTEXT_INIT");
static_assert(VGPU_IOCTL_RESOURCE_CREATE_BLOB == 0xC030644Au, "CREATE_BLOB");
static_assert(VGPU_IOCTL_MAP == 0xC0106441u, "MAP");
static_assert(VGPU_IOCTL_EXECBUFFER == 0xC0406442u, "EXECBUFFER");
static_assert(VGPU_IOCTL_WAIT == 0xC0086448u, "WAIT");
static_assert(VGPU_IOCTL_RESOURCE_INFO == 0xC0106445u, "RESOURCE_INFO");
static_assert(DRM_IOCTL_PRIME_HANDLE_TO_FD == 0xC00C642Du, "PRIME_HANDLE_TO_FD");
static_assert(DRM_IOCTL_PRIME_FD_TO_HANDLE == 0xC00C642Eu, "PRIME_FD_TO_HANDLE");
static_assert(DRM_IOCTL_GEM_CLOSE == 0x40086409u, "GEM_CLOSE");

#endif
