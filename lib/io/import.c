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
    unsigned char h[16] = {0};
    size_t got = fread(h, 1, sizeof h, f);
    fclose(f);
    aibox_status s;
    switch (aibox_model_format_sniff(h, got)) {
    case AIBOX_FORMAT_TFLITE:
        s = aibox_import_tflite(m, path, opts, err);
        if (!s && (s = aibox_model_check_finite(*m, path, err))) aibox_model_free(m);
        return s;
    case AIBOX_FORMAT_AIBOX: s = aibox_model_load(m, path, err); break; /* checks finiteness itself */
    case AIBOX_FORMAT_SAFETENSORS:
        s = aibox_import_safetensors(m, path, opts ? opts->arch : NULL, 0, err);
        if (!s && (s = aibox_model_check_finite(*m, path, err))) aibox_model_free(m);
        break;
    default:
        return aibox_fail(err, AIBOX_E_FORMAT,
                          "%s: not a model file libaibox reads (.aibox, TensorFlow Lite .tflite, safetensors)", path);
    }
    /* the TFLite importer reads the labels itself; the other formats get them here */
    if (!s && opts && opts->labels_path && (s = aibox_import_set_labels(*m, opts->labels_path, err)))
        aibox_model_free(m);
    return s;
}
