/* A model's preprocessing as metadata (input shape, resize mode, mean/std):
 * stored with the model so training and inference cannot drift. The pixel
 * half, aibox_preprocess, is lib/image/preprocess.c. */
#include <string.h>

#include "core/core.h"

void aibox_preproc_default(aibox_preproc *p, const aibox_model *m)
{
    memset(p, 0, sizeof *p);
    aibox_model_input_shape(m, &p->channels, &p->height, &p->width);
    p->resize = AIBOX_RESIZE_AREA;
    for (int c = 0; c < 4; c++) p->mean[c] = 0.0f, p->std[c] = 1.0f;
}

static aibox_status read_floats(const aibox_model *m, const char *key, int channels, float *out, aibox_error *err)
{
    int n;
    const double *v;
    if (aibox_model_get_meta_floats(m, key, &n, &v) != AIBOX_OK) return AIBOX_OK; /* absent: keep default */
    if (n != channels)
        return aibox_fail(err, AIBOX_E_FORMAT, "model metadata %s has %d values for %d channels", key, n, channels);
    for (int c = 0; c < n; c++) out[c] = (float)v[c];
    return AIBOX_OK;
}

aibox_status aibox_preproc_from_model(aibox_preproc *p, const aibox_model *m, aibox_error *err)
{
    if (!p || !m) return aibox_fail(err, AIBOX_E_INVALID, "preprocessing: NULL argument");
    aibox_preproc_default(p, m);
    if (p->channels < 1 || p->channels > 4)
        return aibox_fail(err, AIBOX_E_UNSUPPORTED, "preprocessing: a model input with %d channels is not an image",
                          p->channels);
    const char *mode;
    if (aibox_model_get_meta_str(m, AIBOX_META_INPUT_RESIZE, &mode) == AIBOX_OK &&
        aibox_resize_mode_parse(mode, &p->resize) != AIBOX_OK)
        return aibox_fail(err, AIBOX_E_FORMAT, "model metadata aibox.input.resize: unknown mode '%s'", mode);
    aibox_status s = read_floats(m, AIBOX_META_INPUT_MEAN, p->channels, p->mean, err);
    if (!s) s = read_floats(m, AIBOX_META_INPUT_STD, p->channels, p->std, err);
    if (s) return s;
    for (int c = 0; c < p->channels; c++)
        if (!(p->std[c] > 0.0f)) return aibox_fail(err, AIBOX_E_FORMAT, "model metadata aibox.input.std[%d] is not > 0", c);
    return AIBOX_OK;
}

aibox_status aibox_preproc_to_model(const aibox_preproc *p, aibox_model *m, aibox_error *err)
{
    if (!p || !m) return aibox_fail(err, AIBOX_E_INVALID, "preprocessing: NULL argument");
    int c, h, w;
    aibox_model_input_shape(m, &c, &h, &w);
    if (p->channels != c || p->height != h || p->width != w)
        return aibox_fail(err, AIBOX_E_SHAPE, "preprocessing %dx%dx%d does not match the model input %dx%dx%d",
                          p->channels, p->height, p->width, c, h, w);
    double mean[4], std[4];
    for (int i = 0; i < c; i++) {
        if (!(p->std[i] > 0.0f)) return aibox_fail(err, AIBOX_E_INVALID, "preprocessing: std[%d] must be > 0", i);
        mean[i] = p->mean[i], std[i] = p->std[i];
    }
    aibox_status s = aibox_model_set_meta_str(m, AIBOX_META_INPUT_RESIZE, aibox_resize_mode_name(p->resize), err);
    if (!s) s = aibox_model_set_meta_floats(m, AIBOX_META_INPUT_MEAN, c, mean, err);
    if (!s) s = aibox_model_set_meta_floats(m, AIBOX_META_INPUT_STD, c, std, err);
    return s;
}
