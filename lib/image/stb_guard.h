/* Inputs that make the stb_image we link (v2.27, Debian's libstb0
 * 0.0~git20220908) misbehave, recognised before stb sees them. Each case is
 * written up as an upstream report in tests/fuzz/README.md. Internal. */
#ifndef AIBOX_IMAGE_STB_GUARD_H
#define AIBOX_IMAGE_STB_GUARD_H

#include <stddef.h>

#include "core/core.h"

/* NULL when the bytes are safe to hand to stb_image, else a short reason
 * ("corrupt JPEG: ...") and *code the status to refuse with. Reads only
 * [p, p + len). */
AIBOX_INTERNAL const char *aibox_stb_guard(const unsigned char *p, size_t len, aibox_status *code);

/* Inputs stb would decode from memory nothing wrote, rewritten into the
 * equivalent well-defined file (stb_guard.c says why): a palette PNG's short
 * PLTE padded to 256 entries (opaque black), a PNG's empty IDAT chunks left
 * out, a JPEG whose scans use Huffman table 0 or 1 undefined given the
 * standard tables. Returns 1 with *copy a
 * malloc'd file to hand to stb instead, 0 when none is needed (*copy NULL),
 * -1 when out of memory. Call after aibox_stb_guard accepted the bytes. */
AIBOX_INTERNAL int aibox_stb_rewrite(const unsigned char *p, size_t len, unsigned char **copy, size_t *copy_len);

#endif
