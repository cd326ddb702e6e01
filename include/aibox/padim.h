/*
 * libaibox — PaDiM anomaly detection (Defard et al., 2020): per-patch
 * Gaussian statistics of pretrained CNN features, fitted on good parts only,
 * and Mahalanobis anomaly maps. Included at the end of aibox.h; the
 * conventions of aibox.h hold.
 *
 * A PaDiM model is one .aibox file: the backbone cut after its deepest tap
 * (aibox_model_extract), the metadata (aibox.task = "padim", taps, channel
 * choice, thresholds, preprocessing) and the tensors padim.mean [P][d] and
 * padim.linv [P][d(d+1)/2] — per patch the inverse of the covariance's
 * Cholesky factor, lower triangle packed by rows — plus padim.projection
 * [F][d] for the orthogonal projection. P is the first tap's grid (56 x 56
 * at 224 px, stride 4), d the kept dimensions. Size: 4 * P * (d + d(d+1)/2)
 * bytes besides the backbone: 64.6 MB for d = 100 at 224 px, 1.9 GB for
 * d = 550 (float32 in the file; aibox_padim_set_half adds a half-precision copy
 * in memory for scoring).
 *
 * Ownership: aibox_padim and its fit/ctx objects are created and freed by the
 * caller. Thread-safety: a fitted aibox_padim is read-only while scoring, so
 * several threads may score with one model, each with its own
 * aibox_padim_ctx. A fit object is used by one thread at a time.
 */
#ifndef AIBOX_PADIM_H
#define AIBOX_PADIM_H

#include "../aibox.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum aibox_padim_projection {
    AIBOX_PADIM_RANDOM = 0,    /* a seeded random subset of the channels (PaDiM's R18-Rd100) */
    AIBOX_PADIM_ORTHOGONAL = 1 /* a seeded semi-orthogonal projection F -> d (Kim et al. 2021) */
} aibox_padim_projection;

#define AIBOX_PADIM_MAX_TAPS 4
typedef struct aibox_padim_opts {
    int n_taps;                        /* 0: the stage ends at strides 4, 8, 16 */
    int strides[AIBOX_PADIM_MAX_TAPS]; /* taps by stride (aibox_model_stride_node), ascending */
    int dims;                          /* kept dimensions d; 0: 100 (or all channels if fewer) */
    aibox_padim_projection projection;
    uint64_t seed;                     /* channel subset / projection */
    double reg;                        /* added to the covariance's diagonal; 0: 0.01 as PaDiM */
    float blur_sigma;                  /* anomaly map smoothing; 0: 4 as Anomalib; < 0: none */
} aibox_padim_opts;

typedef struct aibox_padim aibox_padim;
typedef struct aibox_padim_fit aibox_padim_fit;
typedef struct aibox_padim_ctx aibox_padim_ctx;

/* Starts a fit on a backbone (not modified; copied). Features are taken at
 * the taps, nearest-upsampled to the first tap's grid and concatenated (F
 * channels), then reduced to d. Memory is fixed here and does not grow with
 * the images: double sums of 8 * P * (d + d*d) bytes (251 MB for d = 100 at
 * 224 px) plus one batch of features. threads 0: the default. */
AIBOX_API aibox_status aibox_padim_fit_begin(aibox_padim_fit **f, const aibox_model *backbone,
                                             const aibox_padim_opts *opts, int batch, int threads,
                                             aibox_error *err);
/* The preprocessing images need before aibox_padim_fit_add (the backbone's). */
AIBOX_API aibox_status aibox_padim_fit_preproc(const aibox_padim_fit *f, aibox_preproc *p, aibox_error *err);
/* Adds n (any count) preprocessed good images to the statistics. */
AIBOX_API aibox_status aibox_padim_fit_add(aibox_padim_fit *f, const float *x, int n, aibox_error *err);
AIBOX_API long aibox_padim_fit_count(const aibox_padim_fit *f);
/* Bytes the fit holds (sums, features, backbone context). */
AIBOX_API size_t aibox_padim_fit_bytes(const aibox_padim_fit *f);
/* Mean and covariance per patch (unbiased, n - 1; a single image gives a
 * zero covariance, so the model is then reg * I: distances are Euclidean
 * / sqrt(reg), finite), Cholesky factorisation (LAPACK dpotrf/dtrtri in
 * double), and the fitted model, handed over to *p: the fit is then spent
 * (further calls return AIBOX_E_STATE; free it). */
AIBOX_API aibox_status aibox_padim_fit_end(aibox_padim_fit *f, aibox_padim **p, aibox_error *err);
AIBOX_API void aibox_padim_fit_free(aibox_padim_fit **f);

/* Files: aibox_padim_load returns AIBOX_E_NOTFOUND (and *p NULL) for a
 * valid .aibox model that is not a PaDiM model (a classifier). */
AIBOX_API aibox_status aibox_padim_save(const aibox_padim *p, const char *path, aibox_error *err);
AIBOX_API aibox_status aibox_padim_load(aibox_padim **p, const char *path, aibox_error *err);
AIBOX_API void aibox_padim_free(aibox_padim **p);
/* The backbone trunk and the metadata (borrowed; thresholds are stored here
 * with aibox_model_set_meta_*). */
AIBOX_API aibox_model *aibox_padim_model(aibox_padim *p);
AIBOX_API const aibox_model *aibox_padim_model_const(const aibox_padim *p);
/* Scores with the factor in IEEE half precision too (on CPUs with F16C):
 * half the memory traffic of the scoring's one big operand, distances
 * within about 1e-3 relative. ON by default: aibox_padim_fit_end turns it
 * on (as aibox-train padim does, unless --float32), so the API and the
 * tools score alike; call with on = 0 for float32 scoring. Stored as
 * metadata (aibox.padim.half), so a loaded model converts again; the file
 * keeps float32. */
AIBOX_API aibox_status aibox_padim_set_half(aibox_padim *p, int on, aibox_error *err);
/* Patch grid (P = gw * gh), kept dimensions, images fitted. */
AIBOX_API void aibox_padim_info(const aibox_padim *p, int *gw, int *gh, int *dims, long *images);

/* Scoring context: one per thread, for up to max_batch images at once. */
AIBOX_API aibox_status aibox_padim_ctx_create(aibox_padim_ctx **c, const aibox_padim *p, int max_batch, int threads,
                                              aibox_error *err);
AIBOX_API void aibox_padim_ctx_free(aibox_padim_ctx **c);
/* Scores n preprocessed images. Any output may be NULL:
 *   grid   n x gh x gw Mahalanobis distances per patch (never NaN)
 *   maps   n x H x W (the model input size): the grid upsampled bilinearly
 *          (align_corners = false) and blurred with the stored sigma
 *   scores n image scores: each map's maximum */
AIBOX_API aibox_status aibox_padim_score(aibox_padim_ctx *c, const float *x, int n, float *grid, float *maps,
                                         float *scores, aibox_error *err);

#ifdef __cplusplus
}
#endif
#endif
