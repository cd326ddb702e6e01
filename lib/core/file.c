/* The library's one whole-file reader (files and streams), so every input
 * gets the same refusals: not a regular file, larger than the caller's cap,
 * shrinking while read. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

static void release(unsigned char *p, int aligned)
{
    if (aligned) aibox_free(p);
    else free(p);
}

aibox_status aibox_read_fd_ex(int fd, const char *name, size_t max_bytes, int aligned, unsigned char **bytes,
                              size_t *len, aibox_error *err)
{
    *bytes = NULL, *len = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) return aibox_fail(err, AIBOX_E_IO, "%s: cannot stat: %s", name, strerror(errno));
    if (S_ISDIR(st.st_mode)) return aibox_fail(err, AIBOX_E_IO, "%s: a folder, not a file", name);
    int regular = S_ISREG(st.st_mode);
    if (regular && max_bytes && (uint64_t)st.st_size > max_bytes)
        return aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: %lld bytes exceeds the %zu-byte limit", name,
                          (long long)st.st_size, max_bytes);
    if (regular && (uint64_t)st.st_size > SIZE_MAX - AIBOX_ALIGN)
        return aibox_fail(err, AIBOX_E_NOMEM, "%s: %lld bytes cannot be held in memory", name, (long long)st.st_size);
    /* a regular file is read at its size; a stream grows its buffer */
    size_t cap = regular ? (size_t)st.st_size : (size_t)1 << 16, n = 0;
    unsigned char *p = aligned ? aibox_alloc(cap ? cap : 1) : malloc(cap ? cap : 1);
    if (!p) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory reading %zu bytes", name, cap);
    for (;;) {
        if (n == cap) {
            if (regular) break;
            size_t nc = cap * 2;
            if (max_bytes && nc > max_bytes + 1) nc = max_bytes + 1; /* one byte past the cap tells it was exceeded */
            if (nc <= cap) {
                release(p, aligned);
                return aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: more than %zu bytes of input", name, max_bytes);
            }
            unsigned char *q = aligned ? aibox_alloc(nc) : realloc(p, nc);
            if (!q) {
                release(p, aligned);
                return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory reading %zu bytes", name, nc);
            }
            if (aligned) memcpy(q, p, n), aibox_free(p);
            p = q, cap = nc;
        }
        ssize_t r = read(fd, p + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            aibox_status s = aibox_fail(err, AIBOX_E_IO, "%s: cannot read: %s", name, strerror(errno));
            release(p, aligned);
            return s;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    if (regular && n < cap) {
        release(p, aligned);
        return aibox_fail(err, AIBOX_E_IO, "%s: the file shrank while it was read (%zu of %zu bytes)", name, n, cap);
    }
    if (max_bytes && n > max_bytes) {
        release(p, aligned);
        return aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: more than %zu bytes of input", name, max_bytes);
    }
    *bytes = p, *len = n;
    return AIBOX_OK;
}

aibox_status aibox_read_file_ex(const char *path, size_t max_bytes, int aligned, unsigned char **bytes, size_t *len,
                                aibox_error *err)
{
    if (!bytes || !len) return aibox_fail(err, AIBOX_E_INVALID, "read: NULL output");
    *bytes = NULL, *len = 0;
    if (!path || !*path) return aibox_fail(err, AIBOX_E_INVALID, "read: empty path");
    /* O_NONBLOCK: a FIFO given by mistake cannot hang the open; it is refused */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return aibox_fail(err, errno == ENOENT ? AIBOX_E_NOTFOUND : AIBOX_E_IO, "%s: cannot open: %s", path,
                          strerror(errno));
    struct stat st;
    aibox_status s;
    if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) s = aibox_fail(err, AIBOX_E_IO, "%s: not a regular file", path);
    else s = aibox_read_fd_ex(fd, path, max_bytes, aligned, bytes, len, err);
    close(fd);
    return s;
}

aibox_status aibox_read_file(const char *path, size_t max_bytes, unsigned char **bytes, size_t *len, aibox_error *err)
{
    return aibox_read_file_ex(path, max_bytes, 0, bytes, len, err);
}

aibox_status aibox_read_fd(int fd, const char *name, size_t max_bytes, unsigned char **bytes, size_t *len,
                           aibox_error *err)
{
    if (!bytes || !len) return aibox_fail(err, AIBOX_E_INVALID, "read: NULL output");
    return aibox_read_fd_ex(fd, name ? name : "(stream)", max_bytes, 0, bytes, len, err);
}
