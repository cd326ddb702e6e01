/* Whole-file atomic writes: temporary file beside the target, full write,
 * fsync, rename over the target, fsync of the directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic.h"

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
aibox_status aibox_write_atomic(const char *path, const void *bytes, size_t len, aibox_error *err)
{
    if (!path || !*path || (!bytes && len)) return aibox_fail(err, AIBOX_E_INVALID, "write: empty path or NULL data");
    const uint8_t *data = bytes;
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
    /* mkstemp creates mode 0600; give the file the mode a plain creat(2)
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

