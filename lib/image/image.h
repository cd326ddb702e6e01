/* Internal helpers shared by the image files (decode, resize, encode). */
#ifndef AIBOX_IMAGE_INTERNAL_H
#define AIBOX_IMAGE_INTERNAL_H

#include <stddef.h>

#include "core/core.h"

/* Largest width or height accepted anywhere: stb_image's own limit
 * (STBI_MAX_DIMENSIONS), so every image we hand out can be re-encoded. */
#define AIBOX_IMG_MAX_DIM (1 << 24)

/* stb_image, stb_image_resize and stb_image_write count bytes in int, so an
 * image's pixel buffer is capped at INT_MAX bytes (2 GiB - 1). */
#define AIBOX_IMG_MAX_BYTES 2147483647ull

/* Bytes of a width x height x channels image, or 0 when a dimension is < 1,
 * above AIBOX_IMG_MAX_DIM, channels is not 1, 3 or 4, or the total is above
 * AIBOX_IMG_MAX_BYTES. */
AIBOX_INTERNAL size_t aibox_img_bytes(int width, int height, int channels);

/* Checks that img is a usable image (non-NULL, data set, sizes in range);
 * `what` names the call in the message, e.g. "image resize". */
AIBOX_INTERNAL aibox_status aibox_img_check(const aibox_image *img, const char *what, aibox_error *err);

#endif
