/*
 * libaibox — the convolutional auto-encoder for anomaly detection (Bergmann
 * et al., "Improving Unsupervised Defect Segmentation by Applying Structural
 * Similarity to Autoencoders", 2019): a small network trained on good parts
 * only to reproduce its input through a narrow bottleneck; where a part
 * differs from what it learnt, the reconstruction differs from the image.
 * No pretrained backbone is needed. Included at the end of aibox.h; the
 * conventions of aibox.h hold.
 *
 * Network (S = size, w = width, L = latent; LeakyReLU 0.2 after every
 * convolution but the last): the encoder is Bergmann's, 4 x 4 stride-2
 * convolutions (padding 1) alternating with 3 x 3 ones,
 *   4x4/2 w, 4x4/2 w, 3x3 w, 4x4/2 2w, 3x3 2w, 4x4/2 4w, 3x3 2w, 3x3 w,
 *   1x1 L  (the bottleneck: L x S/16 x S/16),
 * and the decoder mirrors it with nearest-neighbour upsampling by 2 and a
 * 3 x 3 convolution in place of each transposed convolution (the same
 * shapes without a transposed convolution's checkerboard artefacts):
 *   3x3 w, 3x3 2w, up 3x3 2w, 3x3 2w, up 3x3 w, 3x3 w, up 3x3 w, up 3x3 C.
 * Bergmann's 1 x 1 x d dense bottleneck is a spatial one here (L channels
 * at S/16): it keeps a part's layout without a fully connected layer and its
 * parameters. Inputs are pixels / 255 (mean 0, std 1); the output is linear.
 *
 * Fit: the good images are kept at the network's size as 8-bit pixels
 * (C x S x S bytes each), then the network is trained with Adam on the mean
 * squared error of its reconstruction, each epoch over every image in a
 * seeded order, each sample augmented (aibox_augment_apply: the kinds of
 * augment_mask chained with probability augment_p).
 *
 * Scoring: the residual map between an image and its reconstruction, either
 *   ssim  1 - SSIM per pixel (Wang et al. 2004, as Bergmann: an 11 x 11
 *         Gaussian window, sigma 1.5, C1 = 0.01^2, C2 = 0.03^2 for pixels in
 *         [0, 1]; near the border the window is the part inside the image,
 *         its weights renormalised), averaged over the channels; or
 *   l2    the squared difference summed over the channels,
 * then blurred (blur_sigma); the image score is the map's largest value.
 *
 * File: an ordinary .aibox model (aibox.task = "autoencoder") whose metadata
 * holds the residual ("aibox.autoencoder.residual"), the blur and the fit's
 * record; aibox_model_load reads it as any network.
 *
 * Ownership: objects are created and freed by the caller. Thread-safety: a
 * fitted aibox_autoencoder is read-only while scoring; each thread scores
 * with its own aibox_autoencoder_ctx. A fit object is used by one thread at
 * a time.
 */
#ifndef AIBOX_AUTOENCODER_H
#define AIBOX_AUTOENCODER_H

#include "../aibox.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum aibox_ae_residual { AIBOX_AE_SSIM = 0, AIBOX_AE_L2 = 1 } aibox_ae_residual;

typedef struct aibox_autoencoder_opts {
    int size;          /* S, the network's input side: 0: 128; a multiple of 16 from 32 to 1024 */
    int channels;      /* 1 (grey) or 3; 0: 3 */
    int width;         /* w: 0: 32 */
    int latent;        /* L: 0: 16 */
    int epochs;        /* 0: 50 */
    int batch;         /* images per Adam step; 0: 16 */
    float lr;          /* Adam's rate; 0: 2e-4 (Bergmann's) */
    float weight_decay; /* L2 on the weights; 0: 1e-5 (Bergmann's); < 0: none */
    aibox_ae_residual residual;
    unsigned augment_mask; /* aibox_augment kinds; 0: flip, rotation, crop; AIBOX_AE_NO_AUGMENT: none */
    float augment_p;       /* 0: AIBOX_AUG_P_DEFAULT */
    float blur_sigma;      /* map smoothing; 0: 4; < 0: none */
    uint64_t seed;         /* initial weights, sample order, augmentation */
    /* after each epoch (may be NULL): the mean training loss of the epoch */
    void (*on_epoch)(void *user, int epoch, int epochs, double loss);
    void *user;
} aibox_autoencoder_opts;
#define AIBOX_AE_NO_AUGMENT 0x80000000u

typedef struct aibox_autoencoder aibox_autoencoder;
typedef struct aibox_autoencoder_fit aibox_autoencoder_fit;
typedef struct aibox_autoencoder_ctx aibox_autoencoder_ctx;

/* The untrained network of opts (for inspection and tests). */
AIBOX_API aibox_status aibox_autoencoder_network(aibox_model **m, const aibox_autoencoder_opts *opts,
                                                 aibox_error *err);

/* Starts a fit. threads 0: the default. */
AIBOX_API aibox_status aibox_autoencoder_fit_begin(aibox_autoencoder_fit **f, const aibox_autoencoder_opts *opts,
                                                   int threads, aibox_error *err);
/* The preprocessing images need before aibox_autoencoder_fit_add. */
AIBOX_API aibox_status aibox_autoencoder_fit_preproc(const aibox_autoencoder_fit *f, aibox_preproc *p,
                                                     aibox_error *err);
/* Adds n preprocessed good images (values pixel / 255). */
AIBOX_API aibox_status aibox_autoencoder_fit_add(aibox_autoencoder_fit *f, const float *x, int n, aibox_error *err);
AIBOX_API long aibox_autoencoder_fit_count(const aibox_autoencoder_fit *f);
/* Bytes the fit holds now (the images kept). */
AIBOX_API size_t aibox_autoencoder_fit_bytes(const aibox_autoencoder_fit *f);
/* Trains and hands the fitted model over to *a; the fit is then spent. */
AIBOX_API aibox_status aibox_autoencoder_fit_end(aibox_autoencoder_fit *f, aibox_autoencoder **a, aibox_error *err);
AIBOX_API void aibox_autoencoder_fit_free(aibox_autoencoder_fit **f);

/* Files: aibox_autoencoder_load returns AIBOX_E_NOTFOUND (and *a NULL) for a
 * valid .aibox model that is not an auto-encoder. */
AIBOX_API aibox_status aibox_autoencoder_save(const aibox_autoencoder *a, const char *path, aibox_error *err);
AIBOX_API aibox_status aibox_autoencoder_load(aibox_autoencoder **a, const char *path, aibox_error *err);
AIBOX_API void aibox_autoencoder_free(aibox_autoencoder **a);
/* The network and the metadata (borrowed). */
AIBOX_API aibox_model *aibox_autoencoder_model(aibox_autoencoder *a);
AIBOX_API const aibox_model *aibox_autoencoder_model_const(const aibox_autoencoder *a);
/* The residual, the images fitted, the epochs trained and the last epoch's
 * mean loss (any pointer may be NULL). */
AIBOX_API void aibox_autoencoder_info(const aibox_autoencoder *a, aibox_ae_residual *residual, long *images,
                                      int *epochs, double *loss);

/* Scoring context: one per thread, for up to max_batch images at once. */
AIBOX_API aibox_status aibox_autoencoder_ctx_create(aibox_autoencoder_ctx **c, const aibox_autoencoder *a,
                                                    int max_batch, int threads, aibox_error *err);
AIBOX_API void aibox_autoencoder_ctx_free(aibox_autoencoder_ctx **c);
/* Scores n preprocessed images. Any output may be NULL:
 *   recon  n x C x S x S reconstructions
 *   maps   n x S x S residual maps (blurred)
 *   scores n image scores (each map's largest value) */
AIBOX_API aibox_status aibox_autoencoder_score(aibox_autoencoder_ctx *c, const float *x, int n, float *recon,
                                               float *maps, float *scores, aibox_error *err);

/* The SSIM residual map above, 1 - SSIM(a, b) averaged over the channels,
 * of two c x h x w images (values in [0, 1]); exposed for tests and other
 * callers. scratch: 5 * w * h + w + h floats, or NULL to allocate. */
AIBOX_API aibox_status aibox_ssim_map(const float *a, const float *b, int c, int w, int h, float *out,
                                      float *scratch, aibox_error *err);

#ifdef __cplusplus
}
#endif
#endif
