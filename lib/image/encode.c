/* PNG and JPEG encoding through stb_image_write, into memory or atomically
 * into files. We never change stb_image_write's process-wide settings
 * (stbi_write_png_compression_level, stbi_write_force_png_filter,
 * stbi_flip_vertically_on_write); their defaults apply. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image_write.h>

#include "core/atomic.h"
#include "image/image.h"

/* A growing malloc'd buffer that stb's write callback appends to. */
typedef struct {
    uint8_t *p;
    size_t len, cap;
    int failed;
} membuf;

static void membuf_put(void *ctx, void *data, int size)
{
    membuf *b = ctx;
    if (b->failed || size <= 0) return;
    if ((size_t)size > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while ((size_t)size > cap - b->len) {
            if (cap > SIZE_MAX / 2) {
                b->failed = 1;
                return;
            }
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, (size_t)size);
    b->len += (size_t)size;
}

static aibox_status check_encode(const aibox_image *img, uint8_t **bytes, size_t *len, const char *what,
                                 aibox_error *err)
{
    if (!bytes || !len) return aibox_fail(err, AIBOX_E_INVALID, "%s: NULL output", what);
    *bytes = NULL;
    *len = 0;
    aibox_status st = aibox_img_check(img, what, err);
    if (st) return st;
    /* stb's PNG writer allocates (width * channels + 1) * height bytes in int. */
    unsigned long long filt = ((unsigned long long)img->width * (unsigned)img->channels + 1) * (unsigned)img->height;
    if (filt > AIBOX_IMG_MAX_BYTES)
        return aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: %dx%d image too large for stb_image_write", what, img->width,
                          img->height);
    return AIBOX_OK;
}

static aibox_status finish(int ok, membuf *b, uint8_t **bytes, size_t *len, const char *what, aibox_error *err)
{
    if (!ok || b->failed || !b->len) {
        free(b->p);
        return aibox_fail(err, AIBOX_E_NOMEM, "%s: stb_image_write failed (out of memory)", what);
    }
    *bytes = b->p;
    *len = b->len;
    return AIBOX_OK;
}

/* The buffer is malloc'd: the caller releases it with free(). */
aibox_status aibox_image_encode_png(const aibox_image *img, uint8_t **bytes, size_t *len, aibox_error *err)
{
    aibox_status st = check_encode(img, bytes, len, "PNG encode", err);
    if (st) return st;
    membuf b = {0};
    int ok = stbi_write_png_to_func(membuf_put, &b, img->width, img->height, img->channels, img->data,
                                    img->width * img->channels);
    return finish(ok, &b, bytes, len, "PNG encode", err);
}

/* Baseline JPEG; alpha is ignored and grey is stored as YCbCr (decodes as 3
 * channels), as stb_image_write does. Quality above 90 keeps full-resolution
 * chroma, 90 and below subsamples it 2x2. */
aibox_status aibox_image_encode_jpg(const aibox_image *img, int quality, uint8_t **bytes, size_t *len,
                                    aibox_error *err)
{
    aibox_status st = check_encode(img, bytes, len, "JPEG encode", err);
    if (st) return st;
    if (quality < 1 || quality > 100)
        return aibox_fail(err, AIBOX_E_INVALID, "JPEG encode: quality %d (want 1..100)", quality);
    membuf b = {0};
    int ok = stbi_write_jpg_to_func(membuf_put, &b, img->width, img->height, img->channels, img->data, quality);
    return finish(ok, &b, bytes, len, "JPEG encode", err);
}

static aibox_status write_image(const aibox_image *img, const char *path, int jpeg, int quality, aibox_error *err)
{
    if (!path || !*path) return aibox_fail(err, AIBOX_E_INVALID, "image write: empty path");
    uint8_t *bytes;
    size_t len;
    aibox_status st = jpeg ? aibox_image_encode_jpg(img, quality, &bytes, &len, err)
                           : aibox_image_encode_png(img, &bytes, &len, err);
    if (st) {
        /* name the file the caller is writing, keeping the encoder's reason */
        if (err) {
            char why[AIBOX_ERROR_MSG_LEN];
            memcpy(why, err->msg, sizeof why);
            aibox_fail(err, st, "writing %s: %s", path, why);
        }
        return st;
    }
    st = aibox_write_atomic(path, bytes, len, err);
    free(bytes);
    return st;
}

aibox_status aibox_image_write_png(const aibox_image *img, const char *path, aibox_error *err)
{
    return write_image(img, path, 0, 0, err);
}

aibox_status aibox_image_write_jpg(const aibox_image *img, const char *path, int quality, aibox_error *err)
{
    return write_image(img, path, 1, quality, err);
}
