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

/* ------------------------------------------------------------ atomic files */

/* The process umask, read without changing it (umask(2) would race with
 * other threads); -1 when /proc is not available. */
static int current_umask(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f) return -1;
    char line[256];
    int mask = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Umask:", 6) == 0) {
            mask = (int)strtol(line + 6, NULL, 8);
            break;
        }
    fclose(f);
    return mask;
}

/* Makes the rename durable. Filesystems that cannot sync a directory
 * (EINVAL) are accepted; a real I/O error is reported. */
static aibox_status sync_dir(const char *path, aibox_error *err)
{
    const char *slash = strrchr(path, '/');
    char *dir = !slash ? strdup(".") : slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    if (!dir) return aibox_fail(err, AIBOX_E_NOMEM, "writing %s: out of memory", path);
    aibox_status st = AIBOX_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        if (fsync(fd) != 0 && errno == EIO)
            st = aibox_fail(err, AIBOX_E_IO, "writing %s: written, but syncing directory %s failed: %s", path, dir,
                            strerror(errno));
        close(fd);
    }
    free(dir);
    return st;
}

/* Temporary file beside path, full write, fsync, rename over path, fsync of
 * the directory. On failure the temporary file is removed and any existing
 * file at path is left as it was. */
static aibox_status write_atomic(const char *path, const uint8_t *data, size_t len, aibox_error *err)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + sizeof ".tmp.XXXXXX");
    if (!tmp) return aibox_fail(err, AIBOX_E_NOMEM, "writing %s: out of memory", path);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    aibox_status st = AIBOX_OK;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        st = aibox_fail(err, AIBOX_E_IO, "writing %s: cannot create temporary file %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return st;
    }
    /* mkstemp creates mode 0600; give the image the mode a plain creat(2)
     * would (0666 less the umask). Unknown umask: keep 0600, the safe side. */
    int mask = current_umask();
    if (mask >= 0) (void)fchmod(fd, (mode_t)(0666 & ~mask)); /* cosmetic: a failure leaves 0600 */
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            st = aibox_fail(err, AIBOX_E_IO, "writing %s: cannot write %s: %s", path, tmp,
                            w < 0 ? strerror(errno) : "no progress");
            goto fail;
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0) {
        st = aibox_fail(err, AIBOX_E_IO, "writing %s: cannot sync %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    int cfd = fd;
    fd = -1;
    if (close(cfd) != 0) {
        st = aibox_fail(err, AIBOX_E_IO, "writing %s: cannot close %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        st = aibox_fail(err, AIBOX_E_IO, "writing %s: cannot rename %s over it: %s", path, tmp, strerror(errno));
        goto fail;
    }
    free(tmp);
    return sync_dir(path, err);
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    return st;
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
    st = write_atomic(path, bytes, len, err);
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
