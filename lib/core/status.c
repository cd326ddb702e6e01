#include <stdio.h>
#include <string.h>

#include "core/core.h"

const char *aibox_version(void) { return AIBOX_VERSION; }

const char *aibox_strerror(aibox_status s)
{
    switch (s) {
    case AIBOX_OK: return "success";
    case AIBOX_E_INVALID: return "invalid argument";
    case AIBOX_E_NOMEM: return "out of memory";
    case AIBOX_E_IO: return "input/output error";
    case AIBOX_E_FORMAT: return "bad file format";
    case AIBOX_E_CORRUPT: return "corrupt or truncated data";
    case AIBOX_E_UNSUPPORTED: return "unsupported";
    case AIBOX_E_SHAPE: return "shape mismatch";
    case AIBOX_E_STATE: return "invalid state";
    case AIBOX_E_NOTFOUND: return "not found";
    case AIBOX_E_INTERRUPTED: return "interrupted";
    case AIBOX_E_NONFINITE: return "non-finite result";
    }
    return "unknown status";
}

aibox_status aibox_vfail(aibox_error *err, aibox_status code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        /* one line, always: bytes echoed from a file or a caller (a key, a
         * name, a mode) cannot add lines or terminal controls to a message */
        for (char *c = err->msg; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f) *c = '?';
    }
    return code;
}

aibox_status aibox_fail(aibox_error *err, aibox_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    aibox_vfail(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void aibox_error_clear(aibox_error *err)
{
    if (err) {
        err->code = AIBOX_OK;
        err->msg[0] = 0;
    }
}

int aibox_mul_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
