/*
 * libaibox — PatchCore anomaly detection (Roth et al., 2022): a memory bank
 * of locally aware patch features of good parts, subsampled by greedy
 * k-centre coreset selection, and nearest-neighbour anomaly maps. Included
 * at the end of aibox.h; the conventions of aibox.h hold.
 *
 * Features: the backbone is cut after its deepest tap; every tap (a stage
 * end by stride, default 8 and 16: ResNet's layer2 and layer3) is averaged
 * over its 3 x 3 neighbourhood (zero padding, divided by 9: PyTorch's
 * AvgPool2d(3, 1, 1)), the deeper taps are upsampled bilinearly
 * (align_corners = false) to the first tap's grid and all are concatenated:
 * F channels per patch, as Anomalib's PatchCore. Optionally reduced to D by
 * adaptive average pooling over the channels (the paper's reduction, a fixed
 * 1 x 1 convolution). These steps are ordinary graph nodes of the stored
 * model, so the file needs nothing else to compute them.
 *
 * Fit: the features of every good image are kept (the bank before
 * subsampling: 4 * N * P * D bytes for N images of P patches), then a
 * coreset of a fraction of them is chosen: greedy k-centre on a seeded
 * Gaussian random projection to a few dimensions (never an N x N matrix:
 * one pass over the projected points per chosen centre).
 *
 * Scoring: per patch the Euclidean distance to its nearest bank entry,
 * found exactly without comparing every patch with every entry in full: the
 * bank, centred, is indexed by its projection on its 32 main directions
 * (eigenvectors of its covariance) and the norm of the rest, which bound
 * every distance from below (|q_h - m_h|^2 + (|q_t| - |m_t|)^2, one thin
 * sgemm); only the entries whose bound does not exceed the exact distance to
 * the entry of the smallest bound are measured in full (a handful per patch
 * on real features). The index is built when a model is fitted or loaded
 * (4 * K * (32 + 2) bytes);
 * the image score is the largest patch distance s* re-weighted as the
 * paper (and Anomalib) do: with m* the nearest bank entry of that patch and
 * N_b its b nearest bank entries (m* first), s = (1 - softmax(-)[0]) * s*,
 * the softmax taken over the patch's distances to N_b. The map is the
 * patch distances upsampled bilinearly to the input size and blurred
 * (sigma 4 as Anomalib).
 *
 * File: a .aibox model (aibox.task = "patchcore") with the tensor
 * patchcore.bank [K][D]: float32, or with half_bank IEEE float16 (2 K D
 * bytes instead of 4 K D; metadata aibox.patchcore.half = 1). Scoring is
 * float32 either way: a float16 bank is widened exactly when loaded.
 *
 * Ownership: objects are created and freed by the caller. Thread-safety: a
 * fitted aibox_patchcore is read-only while scoring; each thread scores with
 * its own aibox_patchcore_ctx. A fit object is used by one thread at a time.
 */
#ifndef AIBOX_PATCHCORE_H
#define AIBOX_PATCHCORE_H

#include "../aibox.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AIBOX_PATCHCORE_MAX_TAPS 4
typedef struct aibox_patchcore_opts {
    int n_taps;                            /* 0: strides 8 and 16 */
    int strides[AIBOX_PATCHCORE_MAX_TAPS]; /* taps by stride (aibox_model_stride_node), ascending */
    int dims;                              /* D: 0 keeps all F channels; else adaptive average pooling to D <= F */
    double coreset;                        /* share of the patches kept: 0: 0.1; 1: all (no selection) */
    int proj_dims;                         /* random projection for the selection; 0: 128; < 0: none */
    int neighbours;                        /* b of the image-score re-weighting; 0: 9; 1: no re-weighting */
    uint64_t seed;                         /* first centre and projection */
    float blur_sigma;                      /* anomaly map smoothing; 0: 4; < 0: none */
    int half_bank;                         /* 1: the file stores the bank as float16 (half its bytes; the
                                            * fitted bank is rounded to float16 at the end of the fit, so
                                            * the model scores the same before saving and after loading,
                                            * and a feature beyond +-65504 fails the fit); 0: float32 */
} aibox_patchcore_opts;

typedef struct aibox_patchcore aibox_patchcore;
typedef struct aibox_patchcore_fit aibox_patchcore_fit;
typedef struct aibox_patchcore_ctx aibox_patchcore_ctx;

/* Starts a fit on a backbone (not modified; copied). threads 0: the default. */
AIBOX_API aibox_status aibox_patchcore_fit_begin(aibox_patchcore_fit **f, const aibox_model *backbone,
                                                 const aibox_patchcore_opts *opts, int batch, int threads,
                                                 aibox_error *err);
/* The preprocessing images need before aibox_patchcore_fit_add (the backbone's). */
AIBOX_API aibox_status aibox_patchcore_fit_preproc(const aibox_patchcore_fit *f, aibox_preproc *p, aibox_error *err);
/* Adds n (up to the batch) preprocessed good images to the bank. */
AIBOX_API aibox_status aibox_patchcore_fit_add(aibox_patchcore_fit *f, const float *x, int n, aibox_error *err);
AIBOX_API long aibox_patchcore_fit_count(const aibox_patchcore_fit *f);
/* Bytes the fit holds now (bank so far, backbone context). */
AIBOX_API size_t aibox_patchcore_fit_bytes(const aibox_patchcore_fit *f);
/* Coreset selection and the fitted model, handed over to *p; the fit is then
 * spent (further calls AIBOX_E_STATE). Peak memory: the bank so far, plus
 * 4 * (N * P) * (proj_dims + 1) bytes for the projection and distances, plus
 * the coreset. */
AIBOX_API aibox_status aibox_patchcore_fit_end(aibox_patchcore_fit *f, aibox_patchcore **p, aibox_error *err);
AIBOX_API void aibox_patchcore_fit_free(aibox_patchcore_fit **f);

/* Greedy k-centre (the selection the fit uses, exposed for tests and other
 * memory banks): x holds n points of dim floats; the first centre is drawn
 * from the seed, each next one is the point farthest (squared Euclidean,
 * float sums) from all chosen ones, the lowest index on ties; a chosen point
 * is never chosen again. With proj_dims > 0 the distances are taken after a
 * seeded projection x R, R dim x proj_dims of N(0, 1 / proj_dims) draws
 * (aibox_patchcore_projection). Writes k indices to idx, in the order chosen.
 * threads 0: the default. Scratch: 4 * n * (proj_dims + 1) bytes. */
AIBOX_API aibox_status aibox_patchcore_coreset(const float *x, long n, int dim, long k, int proj_dims, uint64_t seed,
                                               int threads, long *idx, aibox_error *err);
/* The projection matrix R above (dim x proj_dims, row-major). */
AIBOX_API aibox_status aibox_patchcore_projection(int dim, int proj_dims, uint64_t seed, float *r, aibox_error *err);

/* Files: aibox_patchcore_load returns AIBOX_E_NOTFOUND (and *p NULL) for a
 * valid .aibox model that is not a PatchCore model. */
AIBOX_API aibox_status aibox_patchcore_save(const aibox_patchcore *p, const char *path, aibox_error *err);
AIBOX_API aibox_status aibox_patchcore_load(aibox_patchcore **p, const char *path, aibox_error *err);
AIBOX_API void aibox_patchcore_free(aibox_patchcore **p);
/* The feature network and the metadata (borrowed). */
AIBOX_API aibox_model *aibox_patchcore_model(aibox_patchcore *p);
AIBOX_API const aibox_model *aibox_patchcore_model_const(const aibox_patchcore *p);
/* Patch grid, feature dimensions D, bank entries K, images fitted, patches
 * before subsampling (any pointer may be NULL). */
AIBOX_API void aibox_patchcore_info(const aibox_patchcore *p, int *gw, int *gh, int *dims, long *bank, long *images,
                                    long *patches);
/* The bank (K x D, borrowed). */
AIBOX_API const float *aibox_patchcore_bank(const aibox_patchcore *p);

/* Scoring context: one per thread, for up to max_batch images at once. */
AIBOX_API aibox_status aibox_patchcore_ctx_create(aibox_patchcore_ctx **c, const aibox_patchcore *p, int max_batch,
                                                  int threads, aibox_error *err);
AIBOX_API void aibox_patchcore_ctx_free(aibox_patchcore_ctx **c);
/* Scores n preprocessed images. Any output may be NULL:
 *   grid   n x gh x gw nearest-neighbour distances per patch
 *   maps   n x H x W (the model input size): the grid upsampled bilinearly
 *          (align_corners = false) and blurred with the stored sigma
 *   scores n image scores (the re-weighted largest patch distance)
 *   nn     n x gh x gw index of each patch's nearest bank entry */
AIBOX_API aibox_status aibox_patchcore_score(aibox_patchcore_ctx *c, const float *x, int n, float *grid, float *maps,
                                             float *scores, long *nn, aibox_error *err);

#ifdef __cplusplus
}
#endif
#endif
