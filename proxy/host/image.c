// SPDX-License-Identifier: MIT
#include "image.h"

#include <drm_fourcc.h>
#include <errno.h>
#include <string.h>

#include "util.h"

struct format_layout {
	uint32_t fourcc;
	uint8_t planes;
	uint8_t cpp[3]; // bytes per pixel of each plane
	uint8_t hsub, vsub; // chroma subsampling of planes after the first
};

static const struct format_layout formats[] = {
	{ DRM_FORMAT_ARGB8888, 1, { 4 }, 1, 1 },
	{ DRM_FORMAT_XRGB8888, 1, { 4 }, 1, 1 },
	{ DRM_FORMAT_ABGR8888, 1, { 4 }, 1, 1 },
	{ DRM_FORMAT_XBGR8888, 1, { 4 }, 1, 1 },
	{ DRM_FORMAT_RGBA8888, 1, { 4 }, 1, 1 },
	{ DRM_FORMAT_RGBX8888, 1, { 4 }, 1, 1 },
	{ DRM_FORMAT_BGRA8888, 1, { 4 }, 1, 1 },
	{ DRM_FORMAT_BGRX8888, 1, { 4 }, 1, 1 },
	{ DRM_FORMAT_ARGB2101010, 1, { 4 }, 1, 1 },
	{ DRM_FORMAT_XRGB2101010, 1, { 4 }, 1, 1 },
	{ DRM_FORMAT_ABGR2101010, 1, { 4 }, 1, 1 },
	{ DRM_FORMAT_XBGR2101010, 1, { 4 }, 1, 1 },
	{ DRM_FORMAT_ABGR16161616F, 1, { 8 }, 1, 1 },
	{ DRM_FORMAT_XBGR16161616F, 1, { 8 }, 1, 1 },
	{ DRM_FORMAT_RGB888, 1, { 3 }, 1, 1 },
	{ DRM_FORMAT_BGR888, 1, { 3 }, 1, 1 },
	{ DRM_FORMAT_RGB565, 1, { 2 }, 1, 1 },
	{ DRM_FORMAT_BGR565, 1, { 2 }, 1, 1 },
	{ DRM_FORMAT_GR88, 1, { 2 }, 1, 1 },
	{ DRM_FORMAT_R8, 1, { 1 }, 1, 1 },
	{ DRM_FORMAT_R16, 1, { 2 }, 1, 1 },
	{ DRM_FORMAT_NV12, 2, { 1, 2 }, 2, 2 },
	{ DRM_FORMAT_NV21, 2, { 1, 2 }, 2, 2 },
	{ DRM_FORMAT_P010, 2, { 2, 4 }, 2, 2 },
	{ DRM_FORMAT_YUV420, 3, { 1, 1, 1 }, 2, 2 },
	{ DRM_FORMAT_YVU420, 3, { 1, 1, 1 }, 2, 2 },
};

static const struct format_layout *find_format(uint32_t fourcc)
{
	for (size_t i = 0; i < SML_ARRAY_LEN(formats); i++)
		if (formats[i].fourcc == fourcc)
			return &formats[i];
	return NULL;
}

static uint64_t align_up(uint64_t n, uint64_t a)
{
	return (n + a - 1) / a * a;
}

int host_image_requirements(uint32_t width, uint32_t height, uint32_t drm_format,
			    struct cd_image_requirements *out)
{
	if (width == 0 || height == 0 || width > HOST_IMAGE_MAX_DIM ||
	    height > HOST_IMAGE_MAX_DIM)
		return -EINVAL;
	const struct format_layout *f = find_format(drm_format);
	if (!f)
		return -ENOTSUP;

	memset(out, 0, sizeof(*out));
	uint64_t offset = 0;
	for (uint32_t p = 0; p < f->planes; p++) {
		uint32_t w = p ? (width + f->hsub - 1) / f->hsub : width;
		uint32_t h = p ? (height + f->vsub - 1) / f->vsub : height;
		uint64_t stride = align_up((uint64_t)w * f->cpp[p], HOST_IMAGE_STRIDE_ALIGN);
		out->strides[p] = (uint32_t)stride;
		out->offsets[p] = (uint32_t)offset;
		offset += stride * h;
	}
	out->modifier = DRM_FORMAT_MOD_LINEAR;
	out->size = sml_page_round_up(offset);
	out->map_info = CD_MAP_CACHE_CACHED;
	out->memory_idx = -1;
	out->physical_device_idx = -1;
	return 0;
}
