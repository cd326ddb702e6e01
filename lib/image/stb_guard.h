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

#endif
