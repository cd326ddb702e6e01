/* Internal helpers shared by every box of the library. */
#ifndef AIBOX_CORE_H
#define AIBOX_CORE_H

#include <stdarg.h>
#include <stddef.h>

#include "aibox.h"

#define AIBOX_INTERNAL __attribute__((visibility("hidden")))
#define AIBOX_ALIGN 64

/* Fills err (when not NULL) with code and a printf-style message; returns code
 * so callers can write `return aibox_fail(err, AIBOX_E_IO, "...")`. */
AIBOX_INTERNAL aibox_status aibox_fail(aibox_error *err, aibox_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
AIBOX_INTERNAL aibox_status aibox_vfail(aibox_error *err, aibox_status code, const char *fmt, va_list ap);
AIBOX_INTERNAL void aibox_error_clear(aibox_error *err);

/* Overflow-checked size arithmetic: return 0 on overflow. */
AIBOX_INTERNAL int aibox_mul_ok(size_t a, size_t b, size_t *out);

#define AIBOX_MIN(a, b) ((a) < (b) ? (a) : (b))
#define AIBOX_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
