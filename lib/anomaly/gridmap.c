/* Patch grids into anomaly maps (see gridmap.h). */
#include <stdlib.h>
#include <string.h>

#include "anomaly/gridmap.h"
#include "ops/ops.h"

aibox_status aibox_gridmap_init(aibox_gridmap *g, float sigma, int w, int h, int threads, const char *who,
                                aibox_error *err)
{
    memset(g, 0, sizeof *g);
    g->w = w, g->h = h, g->threads = threads < 1 ? 1 : threads;
    if (!(sigma > 0)) return AIBOX_OK;
    g->ks = aibox_map_blur_kernel_size(sigma);
    if (!g->ks) return aibox_fail(err, AIBOX_E_FORMAT, "%s: blur sigma %g out of range", who, (double)sigma);
    g->tmp = aibox_alloc(sizeof(float) * (size_t)h * w);
    g->pad = aibox_alloc(sizeof(float) * (size_t)g->threads * (w + g->ks));
    g->k = aibox_alloc(sizeof(float) * (size_t)g->ks);
    if (!g->tmp || !g->pad || !g->k) {
        aibox_gridmap_free(g);
        return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory for the map blur", who);
    }
    aibox_map_blur_kernel(sigma, g->k);
    return AIBOX_OK;
}

void aibox_gridmap_free(aibox_gridmap *g)
{
    aibox_free(g->tmp), aibox_free(g->pad), aibox_free(g->k);
    g->tmp = g->pad = g->k = NULL;
    g->ks = 0;
}

typedef struct blur_job {
    aibox_gridmap *g;
    float *map;
    int pass;
} blur_job;

static void blur_task(void *arg, int task, int thread)
{
    blur_job *j = arg;
    aibox_gridmap *g = j->g;
    int y0, y1;
    aibox_share(g->h, 1, task, g->threads, &y0, &y1);
    if (j->pass == 0)
        aibox_map_blur_rows(j->map, g->tmp, g->pad + (size_t)thread * (g->w + g->ks), g->w, g->k, g->ks, y0, y1);
    else
        aibox_map_blur_cols(j->map, g->tmp, g->w, g->h, g->k, g->ks, y0, y1);
}

aibox_status aibox_gridmap_run(aibox_gridmap *g, aibox_pool *pool, const float *grid, int gw, int gh, float *map,
                               aibox_error *err)
{
    aibox_status s = aibox_map_resize(grid, gw, gh, map, g->w, g->h, err);
    if (s || !g->ks) return s;
    blur_job j = {g, map, 0};
    aibox_pool_run(pool, g->threads, blur_task, &j); /* rows, then columns (each pass reads all of the other) */
    j.pass = 1;
    aibox_pool_run(pool, g->threads, blur_task, &j);
    return AIBOX_OK;
}
