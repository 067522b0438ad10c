// SPDX-License-Identifier: MIT
// Memory layout of linear images, answered to GET_IMAGE_REQUIREMENTS.
#ifndef SML_HOST_IMAGE_H
#define SML_HOST_IMAGE_H

#include <stdint.h>

#include "cross_domain.h"

#define HOST_IMAGE_MAX_DIM 16384u
// Row pitch alignment. Host images are memory for wl_shm pools, not GPU
// buffers: rows are as long as the pixels need, rounded to 4 bytes (pixman's
// rule), the layout clients themselves use. KWin 5.27 ignores a longer
// stride when it first uploads a buffer, and showed sommelier's copies
// skewed with padded rows.
#define HOST_IMAGE_STRIDE_ALIGN 4u

// Fills strides, offsets, modifier (linear), size (page-rounded), map_info,
// memory_idx and physical_device_idx; blob_id is left for the caller.
// Returns 0, -EINVAL for a zero or too large size, -ENOTSUP for an unknown
// DRM format.
int host_image_requirements(uint32_t width, uint32_t height, uint32_t drm_format,
			    struct cd_image_requirements *out);

#endif
