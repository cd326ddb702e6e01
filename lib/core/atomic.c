/* Atomic whole-file writes (see atomic.h): the library's one writer. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/atomic.h"

struct aibox_atomic {
    int fd;
    char *path, *tmp;
    uint64_t written;
    aibox_atomic_faults faults;
    aibox_status st;
    aibox_error err; /* the first failure's message */
};

/* The folder of path (a new string), "." without a slash. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return !slash ? strdup(".") : slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
}

/* The pid in a name of the form "<anything>.tmp.<pid>.<hex>", or 0. */
static long temp_pid(const char *name)
{
    const char *t = NULL;
    for (const char *p = strstr(name, ".tmp."); p; p = strstr(p + 1, ".tmp.")) t = p; /* the last one */
    if (!t || t == name) return 0;
    const char *d = t + 5, *e = d;
    while (isdigit((unsigned char)*e)) e++;
    if (e == d || e - d > 9 || *e != '.' || !e[1]) return 0;
    for (const char *h = e + 1; *h; h++)
        if (!isxdigit((unsigned char)*h)) return 0;
    return strtol(d, NULL, 10);
}

/* Removes temporary files of ours in dir whose writer process is gone (a
 * save killed before its rename): only regular files of this user, named as
 * this writer names them, whose pid no longer exists. Best effort. */
void aibox_atomic_sweep(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid = temp_pid(e->d_name);
        if (pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
            st.st_uid != geteuid())
            continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

static aibox_status fail(aibox_atomic *a, aibox_status code, const char *what, int e)
{
    if (!a->st) a->st = aibox_fail(&a->err, code, "saving %s: %s %s: %s", a->path, what, a->tmp, strerror(e));
    return a->st;
}

static aibox_status begin(aibox_atomic **out, const char *path, const aibox_atomic_faults *faults, int sweep,
                          aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "saving: NULL writer");
    *out = NULL;
    if (!path || !*path) return aibox_fail(err, AIBOX_E_INVALID, "saving: empty path");
    aibox_atomic *a = calloc(1, sizeof *a);
    size_t cap = strlen(path) + 48;
    char *dir = dir_of(path);
    if (!a || !dir || !(a->path = strdup(path)) || !(a->tmp = malloc(cap))) {
        if (a) free(a->path), free(a->tmp);
        free(a), free(dir);
        return aibox_fail(err, AIBOX_E_NOMEM, "saving %s: out of memory", path);
    }
    a->faults = faults ? *faults : (aibox_atomic_faults){.fail_after_bytes = -1};
    if (sweep) aibox_atomic_sweep(dir);
    free(dir);
    /* a fresh name, created exclusively so concurrent saves (even from
     * threads of one process) never share a temporary file */
    a->fd = -1;
    for (unsigned attempt = 0; attempt < 100 && a->fd < 0; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long salt = ((unsigned long)ts.tv_nsec ^ ((unsigned long)(uintptr_t)&ts >> 4) ^
                              (unsigned long)attempt * 2654435761ul) & 0xffffffful;
        snprintf(a->tmp, cap, "%s.tmp.%ld.%lx", path, (long)getpid(), salt);
        a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (a->fd < 0 && errno != EEXIST) break;
    }
    if (a->fd < 0) {
        aibox_status st = aibox_fail(err, AIBOX_E_IO, "saving %s: cannot create temporary file %s: %s", path, a->tmp,
                                     strerror(errno));
        free(a->path), free(a->tmp), free(a);
        return st;
    }
    *out = a;
    return AIBOX_OK;
}

aibox_status aibox_atomic_begin(aibox_atomic **out, const char *path, const aibox_atomic_faults *faults,
                                aibox_error *err)
{
    return begin(out, path, faults, 1, err);
}

aibox_status aibox_atomic_write(aibox_atomic *a, const void *bytes, size_t n)
{
    if (!a) return AIBOX_E_INVALID;
    const unsigned char *p = bytes;
    while (!a->st && n > 0) {
        size_t k = n;
        ssize_t r;
        if (a->faults.fail_after_bytes >= 0 && a->written + k > (uint64_t)a->faults.fail_after_bytes)
            k = (size_t)((uint64_t)a->faults.fail_after_bytes - a->written);
        if (k == 0) {
            errno = ENOSPC;
            r = -1;
        } else {
            r = write(a->fd, p, k);
        }
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return fail(a, AIBOX_E_IO, "cannot write", r == 0 ? ENOSPC : errno); /* no progress: full */
        p += r, n -= (size_t)r, a->written += (uint64_t)r;
    }
    return a->st;
}

void aibox_atomic_abort(aibox_atomic **pa)
{
    if (!pa || !*pa) return;
    aibox_atomic *a = *pa;
    if (a->fd >= 0) close(a->fd);
    if (a->tmp) unlink(a->tmp);
    free(a->path), free(a->tmp), free(a);
    *pa = NULL;
}

/* Makes the rename durable. Filesystems that cannot sync a directory
 * (EINVAL) are accepted; a real I/O error is reported. */
static aibox_status sync_dir(const char *path, aibox_error *err)
{
    char *dir = dir_of(path);
    if (!dir) return aibox_fail(err, AIBOX_E_NOMEM, "saving %s: out of memory", path);
    aibox_status st = AIBOX_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        if (fsync(fd) != 0 && errno == EIO)
            st = aibox_fail(err, AIBOX_E_IO, "saving %s: written, but syncing directory %s failed: %s", path, dir,
                            strerror(errno));
        close(fd);
    }
    free(dir);
    return st;
}

aibox_status aibox_atomic_commit(aibox_atomic **pa, aibox_error *err)
{
    if (!pa || !*pa) return aibox_fail(err, AIBOX_E_INVALID, "saving: NULL writer");
    aibox_atomic *a = *pa;
    if (!a->st) {
        if (a->faults.fail_fsync) errno = EIO;
        if (a->faults.fail_fsync || fsync(a->fd) != 0) fail(a, AIBOX_E_IO, "cannot sync", errno);
    }
    if (!a->st) {
        int fd = a->fd;
        a->fd = -1;
        if (close(fd) != 0) fail(a, AIBOX_E_IO, "cannot close", errno);
    }
    if (!a->st) {
        if (a->faults.fail_rename) errno = EIO;
        if (a->faults.fail_rename || rename(a->tmp, a->path) != 0) {
            int e = errno;
            if (!a->st) a->st = aibox_fail(&a->err, AIBOX_E_IO, "saving %s: cannot rename %s over it: %s", a->path,
                                           a->tmp, strerror(e));
        }
    }
    if (a->st) {
        aibox_status st = a->st;
        if (err) *err = a->err;
        aibox_atomic_abort(pa);
        return st;
    }
    free(a->tmp);
    a->tmp = NULL; /* renamed: nothing to remove */
    aibox_status st = sync_dir(a->path, err);
    aibox_atomic_abort(pa);
    return st;
}

static aibox_status write_whole(const char *path, const void *bytes, size_t len, int sweep, aibox_error *err)
{
    if (!bytes && len) return aibox_fail(err, AIBOX_E_INVALID, "saving %s: NULL data", path ? path : "(null)");
    aibox_atomic *a = NULL;
    aibox_status st = begin(&a, path, NULL, sweep, err);
    if (st) return st;
    aibox_atomic_write(a, bytes, len);
    return aibox_atomic_commit(&a, err);
}

aibox_status aibox_write_atomic(const char *path, const void *bytes, size_t len, aibox_error *err)
{
    return write_whole(path, bytes, len, 1, err);
}

aibox_status aibox_write_atomic_nosweep(const char *path, const void *bytes, size_t len, aibox_error *err)
{
    return write_whole(path, bytes, len, 0, err);
}
