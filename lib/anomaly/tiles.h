/* Tiling for anomaly models (aibox/anomaly.h, "tiling"): an image resized
 * with its aspect kept so its short side is `side` pixels, covered by
 * overlapping tiles of the model's input size; the fit sees every tile, a
 * score stitches the tiles' maps back. One plan for the fit and the scoring,
 * so both see the same tiles. Internal. */
#ifndef AIBOX_ANOMALY_TILES_H
#define AIBOX_ANOMALY_TILES_H

#include "core/core.h"

#define AIBOX_TILES_MAX 1024 /* per image: a hostile aspect ratio must not turn one image into millions */

typedef struct aibox_tile_plan {
    int rw, rh; /* the resized image */
    int nx, ny; /* tiles across and down */
    int *x, *y; /* nx left edges, ny top edges (the caller's arrays of AIBOX_TILES_MAX) */
} aibox_tile_plan;

/* The tiling stored in a model (side 0: none); a stored value out of range
 * is AIBOX_E_FORMAT. */
AIBOX_INTERNAL aibox_status aibox_tiling_from_model(aibox_tiling *t, const aibox_model *m, aibox_error *err);
AIBOX_INTERNAL aibox_status aibox_tiling_to_model(const aibox_tiling *t, aibox_model *m, aibox_error *err);
AIBOX_INTERNAL aibox_status aibox_tiling_check(const aibox_tiling *t, const aibox_preproc *pp, aibox_error *err);
/* The tiles of a w x h image (side >= the tile's sides): evenly spaced, the
 * last flush with the far edge, neighbours overlapping by at least the
 * tiling's share. Too many tiles: AIBOX_E_INVALID. */
AIBOX_INTERNAL aibox_status aibox_tile_plan_make(const aibox_tiling *t, const aibox_preproc *pp, int w, int h,
                                                 aibox_tile_plan *p, aibox_error *err);
/* img in pp's channels, resized to the plan's rw x rh with pp's resize mode (out owned by the caller). */
AIBOX_INTERNAL aibox_status aibox_tile_source(const aibox_preproc *pp, const aibox_image *img, const aibox_tile_plan *p,
                                              aibox_image *out, aibox_error *err);
/* The tile at (x0, y0) of src, preprocessed into out (pp's C x H x W);
 * crop is scratch of H x W x channels bytes. */
AIBOX_INTERNAL aibox_status aibox_tile_input(const aibox_preproc *pp, const aibox_image *src, int x0, int y0,
                                             uint8_t *crop, float *out, aibox_error *err);

#endif
