/* The anomaly box's internals: a detector and the record of scoring calls
 * its method supplies (PaDiM, PatchCore, the auto-encoder; another method
 * adds a record and a constructor). */
#ifndef AIBOX_ANOMALY_INTERNAL_H
#define AIBOX_ANOMALY_INTERNAL_H

#include "core/core.h"

typedef struct aibox_anomaly_ops {
    const char *name;
    /* one preprocessed image x -> its anomaly map (model input size) and score */
    aibox_status (*score)(aibox_detector *d, const float *x, float *map, float *score, aibox_error *err);
    aibox_model *(*model)(const aibox_detector *d); /* the method's network; holds the metadata */
    /* creates the scoring context of d's model (set by the constructor) */
    aibox_status (*open)(aibox_detector *d, int threads, aibox_error *err);
    aibox_status (*save)(const aibox_detector *d, const char *path, aibox_error *err);
    aibox_status (*load)(void **fitted, const char *path, aibox_error *err); /* the method's model file */
    void (*free)(aibox_detector *d); /* the method's own objects */
} aibox_anomaly_ops;

struct aibox_detector {
    const aibox_anomaly_ops *method;
    void *fitted; /* the method's model (owned: aibox_padim, aibox_patchcore, aibox_autoencoder) */
    void *ctx;    /* its scoring context (aibox_padim_ctx, ...) */
    aibox_preproc pp;
    aibox_thresholds thr;
    int has_thresholds;
    float *input, *map; /* the current image (a tile), preprocessed; its map, map_w x map_h */
    size_t map_len;     /* pixels of the model's input: the size of the evaluation maps */
    int map_w, map_h;   /* the last map's size: the input's, or with tiling the resized image's */
    size_t map_cap;
    aibox_tiling tiling;
    float *tile_map, *fixed; /* with tiling: one tile's map; the map resampled to the input size */
    uint8_t *crop;           /* with tiling: one tile's pixels */
    float *big; /* the map at the image's size */
    size_t big_cap;
    int img_w, img_h; /* the last image scored */
};

/* Stores t in the detector's model and scores with it from now on. */
AIBOX_INTERNAL aibox_status aibox_detector_use_tiling(aibox_detector *d, const aibox_tiling *t, aibox_error *err);
/* The last map at the model's input size (evaluation maps, masks of that size). */
AIBOX_INTERNAL const float *aibox_detector_fixed_map(aibox_detector *d, aibox_error *err);

#endif
