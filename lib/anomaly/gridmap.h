/* Patch grids into anomaly maps, one way for every method (PaDiM,
 * PatchCore): bilinear upsampling to the model's input size, then the
 * Gaussian blur, its two passes split by rows over a context's pool.
 * Scratch is sized once per scoring context. Internal. */
#ifndef AIBOX_ANOMALY_GRIDMAP_H
#define AIBOX_ANOMALY_GRIDMAP_H

#include "core/core.h"
#include "core/pool.h"

typedef struct aibox_gridmap {
    int w, h, threads, ks; /* ks 0: no blur */
    float *tmp, *pad, *k;  /* h x w, threads x (w + ks), ks */
} aibox_gridmap;

/* sigma <= 0: no blur; a sigma the blur refuses is AIBOX_E_FORMAT (it came
 * from a model file), named with who. */
AIBOX_INTERNAL aibox_status aibox_gridmap_init(aibox_gridmap *g, float sigma, int w, int h, int threads,
                                               const char *who, aibox_error *err);
/* grid (gw x gh) -> map (w x h); on the pool's threads (NULL: the caller's). */
AIBOX_INTERNAL aibox_status aibox_gridmap_run(aibox_gridmap *g, aibox_pool *pool, const float *grid, int gw, int gh,
                                              float *map, aibox_error *err);
AIBOX_INTERNAL void aibox_gridmap_free(aibox_gridmap *g);

#endif
