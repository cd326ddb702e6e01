/* The one model-format sniffer: which reader a file needs, from its first
 * bytes (never its name). aibox_import, the .aibox reader's "this looks
 * like ..." message and aibox-import all ask it. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

aibox_model_format aibox_model_format_sniff(const void *head, size_t n)
{
    const unsigned char *p = head;
    if (!p) return AIBOX_FORMAT_UNKNOWN;
    if (n >= 8 && !memcmp(p, "AIBOX\0MD", 8)) return AIBOX_FORMAT_AIBOX;
    if (n >= 8 && !memcmp(p + 4, "TFL3", 4)) return AIBOX_FORMAT_TFLITE;
    /* safetensors: a little-endian u64 header length (2 bytes to 1 TiB), then a JSON object */
    if (n >= 9 && p[8] == '{') {
        uint64_t len = 0;
        for (int k = 7; k >= 0; k--) len = len << 8 | p[k];
        if (len >= 2 && len < ((uint64_t)1 << 40)) return AIBOX_FORMAT_SAFETENSORS;
    }
    return AIBOX_FORMAT_UNKNOWN;
}

aibox_model_format aibox_model_format_of(const char *path)
{
    unsigned char h[16];
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) : -1;
    if (fd < 0) return AIBOX_FORMAT_UNKNOWN;
    ssize_t got = read(fd, h, sizeof h);
    close(fd);
    return got > 0 ? aibox_model_format_sniff(h, (size_t)got) : AIBOX_FORMAT_UNKNOWN;
}

const char *aibox_model_format_name(aibox_model_format f)
{
    switch (f) {
    case AIBOX_FORMAT_AIBOX: return "aibox";
    case AIBOX_FORMAT_TFLITE: return "tflite";
    case AIBOX_FORMAT_SAFETENSORS: return "safetensors";
    default: return "unknown";
    }
}
