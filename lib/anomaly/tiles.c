/* Tiling for anomaly models (see tiles.h and aibox/anomaly.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "anomaly/tiles.h"

#define KEY_SIDE "aibox.anomaly.tile_side"
#define KEY_OVERLAP "aibox.anomaly.tile_overlap"

aibox_status aibox_tiling_check(const aibox_tiling *t, const aibox_preproc *pp, aibox_error *err)
{
    if (!t->side) return AIBOX_OK;
    int lo = pp->width > pp->height ? pp->width : pp->height;
    if (t->side < lo || t->side > 16384)
        return aibox_fail(err, AIBOX_E_INVALID, "tiling: short side %d (from the model's input side %d to 16384)",
                          t->side, lo);
    if (!(t->overlap >= 0 && t->overlap <= 0.9))
        return aibox_fail(err, AIBOX_E_INVALID, "tiling: overlap %g (0 to 0.9 of a tile)", t->overlap);
    return AIBOX_OK;
}

aibox_status aibox_tiling_from_model(aibox_tiling *t, const aibox_model *m, aibox_error *err)
{
    memset(t, 0, sizeof *t);
    int64_t side = 0;
    double ov = 0.25;
    if (aibox_model_get_meta_int(m, KEY_SIDE, &side) || side == 0) return AIBOX_OK;
    aibox_model_get_meta_float(m, KEY_OVERLAP, &ov);
    aibox_preproc pp;
    aibox_status s = aibox_preproc_from_model(&pp, m, err);
    if (s) return s;
    t->side = side > 0 && side <= 16384 ? (int)side : -1, t->overlap = ov;
    aibox_error e = {0};
    if (aibox_tiling_check(t, &pp, &e)) return aibox_fail(err, AIBOX_E_FORMAT, "stored %s", e.msg);
    return AIBOX_OK;
}

aibox_status aibox_tiling_to_model(const aibox_tiling *t, aibox_model *m, aibox_error *err)
{
    aibox_status s = aibox_model_set_meta_int(m, KEY_SIDE, t->side, err);
    return s || !t->side ? s : aibox_model_set_meta_float(m, KEY_OVERLAP, t->overlap, err);
}

/* n tile positions along a side of len for tiles of size: evenly spaced,
 * the first at 0 and the last at len - size, steps of at most size * (1 - overlap). */
static int positions(int len, int size, double overlap, int *pos)
{
    if (len <= size) return pos[0] = 0, 1;
    double step = size * (1 - overlap);
    if (step < 1) step = 1;
    long n = (long)ceil((len - size) / step - 1e-9) + 1;
    if (n > AIBOX_TILES_MAX) return -1;
    for (long i = 0; i < n; i++) pos[i] = (int)((long long)(len - size) * i / (n - 1));
    return (int)n;
}

aibox_status aibox_tile_plan_make(const aibox_tiling *t, const aibox_preproc *pp, int w, int h, aibox_tile_plan *p,
                                  aibox_error *err)
{
    if (w < 1 || h < 1) return aibox_fail(err, AIBOX_E_INVALID, "tiling: a %dx%d image", w, h);
    /* the short side to t->side, the long one in proportion (rounded, never below a tile) */
    double k = (double)t->side / (w < h ? w : h);
    double rw = w * k, rh = h * k;
    if (rw * rh > 4.0e8)
        return aibox_fail(err, AIBOX_E_INVALID, "tiling: a %dx%d image would be %.0fx%.0f pixels at short side %d", w,
                          h, rw, rh, t->side);
    p->rw = (int)lround(rw), p->rh = (int)lround(rh);
    if (p->rw < pp->width) p->rw = pp->width;
    if (p->rh < pp->height) p->rh = pp->height;
    p->nx = positions(p->rw, pp->width, t->overlap, p->x);
    p->ny = positions(p->rh, pp->height, t->overlap, p->y);
    if (p->nx < 0 || p->ny < 0 || (long)p->nx * p->ny > AIBOX_TILES_MAX)
        return aibox_fail(err, AIBOX_E_INVALID, "tiling: a %dx%d image needs more than %d tiles at short side %d", w, h,
                          AIBOX_TILES_MAX, t->side);
    return AIBOX_OK;
}

aibox_status aibox_tile_source(const aibox_preproc *pp, const aibox_image *img, const aibox_tile_plan *p,
                               aibox_image *out, aibox_error *err)
{
    memset(out, 0, sizeof *out);
    aibox_image conv = {0};
    const aibox_image *src = img;
    aibox_status s = AIBOX_OK;
    if (img->channels != pp->channels) {
        if ((s = aibox_image_convert(&conv, img, pp->channels, err))) return s;
        src = &conv;
    }
    if (src->width == p->rw && src->height == p->rh) s = aibox_image_copy(out, src, err);
    else s = aibox_image_resize(out, src, p->rw, p->rh, pp->resize, err);
    aibox_image_free(&conv);
    return s;
}

aibox_status aibox_tile_input(const aibox_preproc *pp, const aibox_image *src, int x0, int y0, uint8_t *crop,
                              float *out, aibox_error *err)
{
    int W = pp->width, H = pp->height, C = src->channels;
    for (int y = 0; y < H; y++)
        memcpy(crop + (size_t)y * W * C, src->data + ((size_t)(y0 + y) * src->width + x0) * C, (size_t)W * C);
    aibox_image tile = {W, H, C, crop};
    return aibox_preprocess(pp, &tile, out, err); /* same size: channels and normalisation only */
}
