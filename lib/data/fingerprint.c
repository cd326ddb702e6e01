/* Content fingerprints of files (see aibox/data.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

aibox_status aibox_file_fingerprint(const char *path, uint64_t *fp, aibox_error *err)
{
    if (!path || !fp) return aibox_fail(err, AIBOX_E_INVALID, "fingerprint: NULL argument");
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not hang the open */
    if (fd < 0)
        return aibox_fail(err, errno == ENOENT ? AIBOX_E_NOTFOUND : AIBOX_E_IO, "%s: cannot open: %s", path,
                          strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return aibox_fail(err, AIBOX_E_IO, "%s: not a regular file", path);
    }
    unsigned char *buf = malloc((size_t)1 << 20);
    if (!buf) {
        close(fd);
        return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
    }
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, 64 bits */
    aibox_status s = AIBOX_OK;
    for (;;) {
        ssize_t r = read(fd, buf, (size_t)1 << 20);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            s = aibox_fail(err, AIBOX_E_IO, "%s: cannot read: %s", path, strerror(errno));
            break;
        }
        if (r == 0) break;
        for (ssize_t i = 0; i < r; i++) h = (h ^ buf[i]) * 0x100000001b3ULL;
    }
    free(buf);
    close(fd);
    if (!s) *fp = h;
    return s;
}
