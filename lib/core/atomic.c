#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/atomic.h"

aibox_status aibox_write_atomic(const char *path, const void *bytes, size_t len, aibox_error *err)
{
    if (!path || (!bytes && len)) return aibox_fail(err, AIBOX_E_INVALID, "write: NULL argument");
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16), *dir = strdup(path);
    if (!tmp || !dir) {
        free(tmp), free(dir);
        return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    aibox_status s = AIBOX_OK;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        s = aibox_fail(err, AIBOX_E_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        goto out;
    }
    const char *p = bytes;
    for (size_t left = len; left > 0;) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            s = aibox_fail(err, AIBOX_E_IO, "%s: write failed: %s", path, w < 0 ? strerror(errno) : "no progress");
            break;
        }
        p += w, left -= (size_t)w;
    }
    if (!s && fsync(fd) != 0) s = aibox_fail(err, AIBOX_E_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && !s) s = aibox_fail(err, AIBOX_E_IO, "%s: close failed: %s", path, strerror(errno));
    if (!s && rename(tmp, path) != 0) s = aibox_fail(err, AIBOX_E_IO, "%s: rename failed: %s", path, strerror(errno));
    if (s) {
        unlink(tmp);
        goto out;
    }
    /* make the rename itself durable */
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
out:
    free(tmp);
    free(dir);
    return s;
}
