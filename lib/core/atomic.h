/* Writing a whole file so that readers see the old or the new content, never
 * a mix: temporary file beside it, fsync, rename, fsync of the directory. */
#ifndef AIBOX_ATOMIC_H
#define AIBOX_ATOMIC_H

#include "core/core.h"

AIBOX_INTERNAL aibox_status aibox_write_atomic(const char *path, const void *bytes, size_t len, aibox_error *err);

#endif
