/* Image -> model input by a preprocessing record (lib/nn/preproc.c keeps
 * it in the model): the one place both training (validation) and inference
 * go through, so they cannot drift. */
#include <string.h>

#include "core/core.h"

aibox_status aibox_preprocess(const aibox_preproc *p, const aibox_image *img, float *out, aibox_error *err)
{
    if (!p || !img || !img->data || !out) return aibox_fail(err, AIBOX_E_INVALID, "preprocess: NULL argument");
    aibox_image conv = {0}, sized = {0};
    const aibox_image *src = img;
    aibox_status s = AIBOX_OK;
    /* A grey image for a colour model: conversion only replicates the grey
     * value (resizing works per channel), so resize the one channel and read
     * it for every output channel: the same numbers, a third of the work. */
    const int grey_in = src->channels == 1 && p->channels == 3;
    if (src->channels != p->channels && !grey_in) {
        if ((s = aibox_image_convert(&conv, src, p->channels, err))) return s;
        src = &conv;
    }
    if (src->width != p->width || src->height != p->height) {
        if ((s = aibox_image_resize(&sized, src, p->width, p->height, p->resize, err))) goto done;
        src = &sized;
    }
    const size_t plane = (size_t)p->width * p->height;
    for (int c = 0; c < p->channels; c++) {
        float *o = out + c * plane;
        /* one multiply-add per pixel: (v/255 - mean)/std = v*a + b */
        const float a = 1.0f / (255.0f * p->std[c]), b = -p->mean[c] / p->std[c];
        const int stride = grey_in ? 1 : p->channels;
        const uint8_t *px = src->data + (grey_in ? 0 : c);
        for (size_t i = 0; i < plane; i++) o[i] = (float)px[i * stride] * a + b;
    }
done:
    aibox_image_free(&conv);
    aibox_image_free(&sized);
    return s;
}
