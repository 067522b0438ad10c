// SPDX-License-Identifier: MIT
#undef NDEBUG
#include <assert.h>
#include <drm_fourcc.h>
#include <errno.h>
#include <stdio.h>

#include "image.h"

static void test_argb(void)
{
	struct cd_image_requirements r;
	assert(host_image_requirements(1920, 1080, DRM_FORMAT_ARGB8888, &r) == 0);
	assert(r.strides[0] == 7680 && r.offsets[0] == 0);
	assert(r.strides[1] == 0);
	assert(r.size == 7680u * 1080u); // already a page multiple
	assert(r.modifier == DRM_FORMAT_MOD_LINEAR);
	assert(r.map_info == CD_MAP_CACHE_CACHED);
	assert(r.memory_idx == -1 && r.physical_device_idx == -1);
}

static void test_odd_sizes(void)
{
	struct cd_image_requirements r;
	assert(host_image_requirements(1, 1, DRM_FORMAT_XRGB8888, &r) == 0);
	assert(r.strides[0] == 4 && r.size == 4096);
	// Rows as long as the pixels, as clients lay them out (KWin 5.27 shows
	// a padded stride skewed).
	assert(host_image_requirements(307, 544, DRM_FORMAT_ARGB8888, &r) == 0);
	assert(r.strides[0] == 1228 && r.size == 1228u * 544u / 4096u * 4096u + 4096u);
	assert(host_image_requirements(333, 7, DRM_FORMAT_RGB565, &r) == 0);
	assert(r.strides[0] == 668 && r.size == 8192); // 666 rounded to 4 bytes
	assert(host_image_requirements(5, 3, DRM_FORMAT_R8, &r) == 0);
	assert(r.strides[0] == 8 && r.size == 4096);
}

static void test_planar(void)
{
	struct cd_image_requirements r;
	assert(host_image_requirements(101, 51, DRM_FORMAT_NV12, &r) == 0);
	assert(r.strides[0] == 104 && r.strides[1] == 104); // 101, and 51 pairs of 2 bytes
	assert(r.offsets[1] == 104u * 51u);
	assert(r.size == 8192); // 104 * 51 + 104 * 26 = 8008, page-rounded
}

static void test_yuv420(void)
{
	struct cd_image_requirements r;
	assert(host_image_requirements(640, 480, DRM_FORMAT_YUV420, &r) == 0);
	assert(r.strides[0] == 640 && r.strides[1] == 320 && r.strides[2] == 320);
	assert(r.offsets[1] == 640u * 480u);
	assert(r.offsets[2] == 640u * 480u + 320u * 240u);
	assert(r.size % 4096 == 0 && r.size >= r.offsets[2] + 320u * 240u);
}

static void test_rejects(void)
{
	struct cd_image_requirements r;
	assert(host_image_requirements(0, 10, DRM_FORMAT_ARGB8888, &r) == -EINVAL);
	assert(host_image_requirements(10, 0, DRM_FORMAT_ARGB8888, &r) == -EINVAL);
	assert(host_image_requirements(16385, 10, DRM_FORMAT_ARGB8888, &r) == -EINVAL);
	assert(host_image_requirements(10, 10, 0x12345678, &r) == -ENOTSUP);
	// The largest image still has a size that fits the u64 field exactly.
	assert(host_image_requirements(16384, 16384, DRM_FORMAT_ABGR16161616F, &r) == 0);
	assert(r.size == 16384ull * 16384ull * 8ull);
}

int main(void)
{
	test_argb();
	test_odd_sizes();
	test_planar();
	test_yuv420();
	test_rejects();
	printf("image requirements: ok\n");
	return 0;
}
