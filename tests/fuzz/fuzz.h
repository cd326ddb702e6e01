/* Helpers shared by the libFuzzer targets (and by test_corpus.c, which
 * includes the targets to replay their corpora in `make check`). */
#ifndef AIBOX_FUZZ_H
#define AIBOX_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The library must refuse with one non-empty line; anything else is a
 * finding, so the harness stops there (libFuzzer saves the input). */
static inline void fuzz_expect_line(const char *what, const char *msg)
{
    if (!msg[0] || strchr(msg, '\n')) {
        fprintf(stderr, "%s: refusal message '%s' is empty or not one line\n", what, msg);
        abort();
    }
}

/* A refusal comes with a message of one line (aibox_vfail turns control
 * bytes echoed from the input, such as a key with a newline, into '?'). */
static inline void fuzz_expect_msg(const char *what, const char *msg)
{
    if (!msg[0] || strchr(msg, '\n') || strchr(msg, '\r')) {
        fprintf(stderr, "%s: refusal message empty or not one line: %s\n", what, msg);
        abort();
    }
}

/* bytes in an anonymous in-memory file named by path (/proc/self/fd/N), so
 * the path-based entries read exactly these bytes; returns the descriptor
 * to close. A failure here (e.g. descriptors leaked by the library) stops
 * the run. */
static inline int fuzz_memfd(const void *bytes, size_t n, char *path, size_t cap)
{
    int fd = memfd_create("aibox-fuzz", MFD_CLOEXEC);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, (const char *)bytes + done, n - done);
        if (w <= 0) {
            perror("memfd write");
            abort();
        }
        done += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

/* A fresh directory for files the library writes atomically (a temporary
 * beside the target, then rename, so a memfd cannot serve): tmpfs when
 * there is one, since every save fsyncs. */
static inline void fuzz_tmpdir(char *dir, size_t cap)
{
    const char *base = getenv("AIBOX_FUZZ_TMP");
    if (!base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, cap, "%s/aibox-fuzz-XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
}

/* The whole content of a file (malloc'd), or NULL. */
static inline uint8_t *fuzz_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *b = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            uint8_t *nb = realloc(b, cap ? 2 * cap : 4096);
            if (!nb) break;
            b = nb, cap = cap ? 2 * cap : 4096;
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    fclose(f);
    *len = n;
    return b;
}

#endif
