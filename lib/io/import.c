/* One entry point for every model file libaibox reads, chosen by content
 * (never by the file name): .aibox, TensorFlow Lite, safetensors. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "aibox.h"
#include "core/core.h"
#include "io/model_io.h"

aibox_status aibox_import(aibox_model **m, const char *path, const aibox_import_opts *opts, aibox_error *err)
{
    if (!m) return aibox_fail(err, AIBOX_E_INVALID, "import: NULL model pointer");
    *m = NULL;
    if (!path) return aibox_fail(err, AIBOX_E_INVALID, "import: NULL path");
    FILE *f = fopen(path, "rb");
    if (!f) return aibox_fail(err, AIBOX_E_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char h[9] = {0};
    size_t got = fread(h, 1, sizeof h, f);
    fclose(f);
    aibox_status s;
    if (got >= 8 && !memcmp(h + 4, "TFL3", 4)) {
        s = aibox_import_tflite(m, path, opts, err);
        if (!s && (s = aibox_model_check_finite(*m, path, err))) aibox_model_free(m);
        return s;
    }
    if (got >= 8 && !memcmp(h, "AIBOX\0MD", 8)) s = aibox_model_load(m, path, err); /* checks finiteness itself */
    /* safetensors: a little-endian u64 header length, then a JSON object */
    else if (got == 9 && h[8] == '{' && h[7] == 0 && h[6] == 0 && h[5] == 0)
    {
        s = aibox_import_safetensors(m, path, opts ? opts->arch : NULL, 0, err);
        if (!s && (s = aibox_model_check_finite(*m, path, err))) aibox_model_free(m);
    }
    else
        return aibox_fail(err, AIBOX_E_FORMAT,
                          "%s: not a model file libaibox reads (.aibox, TensorFlow Lite .tflite, safetensors)", path);
    /* the TFLite importer reads the labels itself; the other formats get them here */
    if (!s && opts && opts->labels_path && (s = aibox_import_set_labels(*m, opts->labels_path, err)))
        aibox_model_free(m);
    return s;
}
