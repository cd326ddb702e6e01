/* The one way libaibox writes a file: readers see the old or the new
 * content, never a mix, and an interruption at any point (kill -9, a full
 * disk) leaves a previous file intact. A temporary file
 * "<path>.tmp.<pid>.<hex>" is created exclusively beside the target, written
 * in full, fsync'ed, renamed over the target, and the directory is fsync'ed.
 * Temporary files of this form left in that folder by processes that no
 * longer exist (a kill -9 during a save) are removed when the next one
 * begins. */
#ifndef AIBOX_ATOMIC_H
#define AIBOX_ATOMIC_H

#include <stdint.h>

#include "core/core.h"

/* Test hooks for the failures a real disk rarely shows on demand. */
typedef struct aibox_atomic_faults {
    int64_t fail_after_bytes; /* >= 0: writes past this many bytes fail with ENOSPC */
    int fail_fsync;           /* 1: the file's fsync fails with EIO */
    int fail_rename;          /* 1: the final rename fails with EIO */
} aibox_atomic_faults;

typedef struct aibox_atomic aibox_atomic;
/* Creates the temporary file (faults may be NULL). Messages start "saving <path>:". */
AIBOX_INTERNAL aibox_status aibox_atomic_begin(aibox_atomic **a, const char *path, const aibox_atomic_faults *faults,
                                               aibox_error *err);
/* Appends n bytes; the first failure is kept (sticky) and returned by
 * every later call and by commit. */
AIBOX_INTERNAL aibox_status aibox_atomic_write(aibox_atomic *a, const void *bytes, size_t n);
/* fsync, close, rename, directory fsync; frees *a. On any failure (now or
 * earlier) the temporary file is removed and the target left as it was. */
AIBOX_INTERNAL aibox_status aibox_atomic_commit(aibox_atomic **a, aibox_error *err);
/* Gives up: removes the temporary file, frees *a (safe on NULL). */
AIBOX_INTERNAL void aibox_atomic_abort(aibox_atomic **a);

/* aibox_write_atomic without the sweep of dead writers' temporary files:
 * for a folder of many files written often (the sample store's chunks),
 * whose owner sweeps once with aibox_atomic_sweep when it opens it. */
AIBOX_INTERNAL aibox_status aibox_write_atomic_nosweep(const char *path, const void *bytes, size_t len,
                                                       aibox_error *err);
AIBOX_INTERNAL void aibox_atomic_sweep(const char *dir);

#endif
