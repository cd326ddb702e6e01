/*
 * libaibox — building blocks for anomaly maps (PaDiM and friends): resizing
 * and smoothing float maps, thresholded regions, colour overlays and masks,
 * and the evaluation metrics (AUROC, F1, AUPRO).
 * Included at the end of aibox.h; the conventions of aibox.h hold.
 *
 * A map is one float per pixel, row-major, height rows of width values, one
 * map per image. Every function here is reentrant: no state is kept between
 * calls, inputs are only read, and scratch memory is allocated per call and
 * freed before it returns, so distinct calls may run on several threads at
 * once (a map being written must of course not be shared).
 */
#ifndef AIBOX_ANOMALY_H
#define AIBOX_ANOMALY_H

#include "../aibox.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ maps */
/* Bilinear resize of a sw x sh map into a dw x dh one with PyTorch's
 * F.interpolate(mode="bilinear", align_corners=False) rule (no antialias, so
 * shrinking by more than 2 skips pixels as PyTorch does): source coordinate
 * (i + 0.5) * in/out - 0.5 for output index i, clamped at 0, in float. Equal
 * sizes copy. src and dst must not overlap (the same buffer is refused).
 * Allocates nothing. */
AIBOX_API aibox_status aibox_map_resize(const float *src, int sw, int sh, float *dst, int dw, int dh,
                                        aibox_error *err);

/* The kernel size aibox_map_blur uses for sigma: 2 * (int)(4 * sigma + 0.5) + 1
 * (Anomalib's), or 0 when sigma is not in (0, AIBOX_BLUR_SIGMA_MAX]. */
#define AIBOX_BLUR_SIGMA_MAX 1.0e5f
AIBOX_API int aibox_map_blur_kernel_size(float sigma);

/* In-place Gaussian blur as Anomalib's GaussianBlur2d (kornia): the kernel
 * above, exp(-x^2 / (2 sigma^2)) normalised to sum 1, applied separably (rows,
 * then columns) with 'reflect' borders (mirror without repeating the edge:
 * ... c b | a b c ... | ... ; numpy's 'reflect'). Where the kernel radius
 * reaches past the map (PyTorch refuses that), the mirroring repeats,
 * numpy-style; a 1-pixel side is constant. Weights are float and sums are
 * accumulated in float (relative error ~1e-6 for ~30 taps).
 * Scratch: allocates (w * h + w + 4 * radius + 1) floats per call.
 * Refuses sigma <= 0, NaN, or above AIBOX_BLUR_SIGMA_MAX (AIBOX_E_INVALID). */
AIBOX_API aibox_status aibox_map_blur(float *map, int w, int h, float sigma, aibox_error *err);

/* One connected region of a thresholded map: its bounding box (x, y, w, h in
 * pixels), pixel count and largest map value. */
typedef struct aibox_region {
    int x, y, w, h;
    long area;
    float peak;
} aibox_region;

/* Connected components (8-connectivity) of the pixels with map >= threshold
 * (a NaN pixel fails every threshold: it is foreground), found by an iterative flood fill (a queue on
 * the heap, no recursion, so one region may cover the whole map). Writes the
 * min(max, *count) largest regions to out, by area descending (equal areas in
 * raster order of their first pixel); *count receives the number of regions
 * found. out may be NULL when max is 0. Scratch: w * h bytes plus up to
 * 4 bytes per pixel of the largest region, plus 40 bytes per region.
 * w * h must stay below 2^32. A NaN threshold is refused. */
AIBOX_API aibox_status aibox_map_regions(const float *map, int w, int h, float threshold, aibox_region *out,
                                         int max, int *count, aibox_error *err);

/* ------------------------------------------------------------------ pictures */
/* A heatmap overlay: the map normalised to v = (map - lo) / (hi - lo),
 * clamped to 0..1 (NaN: 1, as it fails every threshold), coloured by a jet-like colour map (0 dark blue,
 * 0.25 sky blue, 0.5 light green, 0.75 orange, 1 dark red: r, g, b =
 * clamp(1.5 - |4v - 3|), clamp(1.5 - |4v - 2|), clamp(1.5 - |4v - 1|)) and
 * blended as alpha * colour + (1 - alpha) * image, rounded. img is grey, RGB or
 * RGBA (alpha ignored); dst becomes an RGB image of img's size, owned by the
 * caller (aibox_image_free); it is zeroed on failure (dst == img is refused
 * untouched). A map of another size than the image is first resized to it
 * with aibox_map_resize (bilinear).
 * Needs lo < hi (both finite) and 0 <= alpha <= 1. */
AIBOX_API aibox_status aibox_heatmap_overlay(aibox_image *dst, const aibox_image *img, const float *map, int mw,
                                             int mh, float lo, float hi, float alpha, aibox_error *err);

/* A w x h grey image, 255 where map >= threshold and 0 elsewhere (a NaN
 * pixel fails every threshold: 255);
 * owned by the caller (aibox_image_free). A NaN threshold is refused. */
AIBOX_API aibox_status aibox_map_mask(aibox_image *dst, const float *map, int w, int h, float threshold,
                                      aibox_error *err);

/* ------------------------------------------------------------------ metrics */
/* Common rules: labels and masks are 0 for normal and anything else (1, 255)
 * for anomalous, so ground-truth masks serve as pixel labels. Scores are
 * ordered as floats, -0 equal to +0; a NaN score makes the result NaN (or
 * AIBOX_E_INVALID). Functions returning a double return NaN, too, for NULL
 * pointers, n == 0 and when their scratch memory cannot be allocated. */

/* Area under the ROC curve, i.e. the Mann-Whitney U statistic divided by
 * n_pos * n_neg, counting a tied positive-negative pair as half. NaN when
 * one class is absent. O(n) time (radix sort of the 32-bit score keys, then
 * one merge); exact integer counts until the final division. Scratch:
 * 4 * (n + max(n_pos, n_neg)) bytes, e.g. ~400 MB for 50 million pixels. */
AIBOX_API double aibox_metric_auroc(const float *scores, const uint8_t *labels, size_t n);

/* F1 = 2 TP / (2 TP + FP + FN) of the predictions 'score >= threshold' (a
 * NaN score fails every threshold: predicted anomalous);
 * 0 when there is neither a positive label nor a positive prediction
 * (scikit-learn's and torchmetrics' zero_division = 0). Allocates nothing. */
AIBOX_API double aibox_metric_f1_at(const float *scores, const uint8_t *labels, size_t n, float threshold);

/* The threshold with the highest F1 over every distinct score used as a
 * threshold (equal F1, compared exactly: the lowest such threshold). The
 * threshold returned is a score of the data (+0 for -0). Refuses (invalid)
 * NULL pointers, n == 0, NaN scores and data without an anomalous label.
 * Scratch as aibox_metric_auroc. */
AIBOX_API aibox_status aibox_metric_f1_best(const float *scores, const uint8_t *labels, size_t n, float *threshold,
                                     double *f1, aibox_error *err);

/* Area under the per-region-overlap curve, as the MVTec AD evaluation code
 * (and Anomalib's AUPRO) define it. maps and masks hold n images of w x h,
 * concatenated; a mask pixel != 0 is defect. Regions are the 8-connected
 * components of each image's mask. For every distinct threshold t (scores
 * descending, tied scores added together): FPR = normal pixels with score >= t
 * over all normal pixels (all images), PRO = mean over all regions of the
 * fraction of the region with score >= t. The curve (0, 0), these points,
 * (1, 1) is integrated (trapezoids) from FPR 0 to fpr_limit, the segment
 * crossing fpr_limit linearly interpolated there, and divided by fpr_limit
 * (MVTec's 0.3). NaN without regions, without normal pixels, with a NaN
 * score, or fpr_limit outside (0, 1]. Time O(n w h) (radix sorts). Scratch:
 * 8 bytes per normal pixel, 16 per defect pixel, 5 per pixel of one image,
 * 4 per region. w * h must stay below 2^32. */
AIBOX_API double aibox_metric_aupro(const float *maps, const uint8_t *masks, int n, int w, int h, double fpr_limit);

/* ------------------------------------------------------------------ thresholds */
/* How an anomaly model's image threshold is set from scores of held-out good
 * images (and, for F1, defect examples): */
typedef enum aibox_threshold_rule {
    AIBOX_THRESHOLD_MAX = 0, /* just above the largest good score (no held-out good part is NG) */
    AIBOX_THRESHOLD_P99,     /* the good scores' 99th percentile (linear interpolation) */
    AIBOX_THRESHOLD_SIGMA,   /* mean + value x standard deviation of the good scores */
    AIBOX_THRESHOLD_F1,      /* the F1-optimal threshold over good and defect scores */
    AIBOX_THRESHOLD_FIXED    /* value itself */
} aibox_threshold_rule;
typedef struct aibox_threshold_spec {
    aibox_threshold_rule rule;
    double value; /* SIGMA: K; FIXED: the threshold */
} aibox_threshold_spec;
/* "max", "p99", "sigma:K", "f1" or a number; and back ("sigma:3"). */
AIBOX_API aibox_status aibox_threshold_parse(const char *text, aibox_threshold_spec *spec, aibox_error *err);
AIBOX_API void aibox_threshold_format(const aibox_threshold_spec *spec, char *buf, size_t size);

/* What an anomaly model decides with. A part is NG when score >= image
 * (anything that fails the comparison, NaN included, is NG); regions and
 * masks are the map's pixels >= pixel; scores are normalised with
 * aibox_anomaly_normalise(score, image, score_min, score_max). */
typedef struct aibox_thresholds {
    double image, pixel;
    double score_min, score_max; /* the scores seen when the thresholds were set */
    double image_f1;             /* the F1-optimal image threshold; NaN without defect examples */
    aibox_threshold_spec spec;   /* the rule that set image */
} aibox_thresholds;
/* Figures of the scores a threshold was set from (NaN where undefined). */
typedef struct aibox_threshold_stats {
    int good, bad;
    double good_min, good_mean, good_sd, good_p99, good_max;
    double image_auroc, f1;                 /* defect examples against the good scores */
    double pixel_f1, pixel_threshold_f1;    /* with masks: the F1-optimal pixel threshold */
} aibox_threshold_stats;
/* Sets t from good (n_good held-out good images' scores) and bad (defect
 * examples, may be 0), and, with maps and masks (map_len pixels per image, the
 * good images' first, then the defects'; NULL: none) the F1-optimal pixel
 * threshold, which then becomes t->pixel (else pixel = image). Non-finite
 * scores are refused (AIBOX_E_NONFINITE); a rule its data cannot serve (max
 * without good scores, f1 without defects) is AIBOX_E_INVALID. st may be NULL. */
AIBOX_API aibox_status aibox_thresholds_compute(const aibox_threshold_spec *spec, const float *good, int n_good,
                                                const float *bad, int n_bad, const float *maps, const uint8_t *masks,
                                                size_t map_len, aibox_thresholds *t, aibox_threshold_stats *st,
                                                aibox_error *err);
/* Stores t in a model's metadata (the AIBOX_META_ANOMALY_* keys) and reads it
 * back; reading also accepts 0.1.0's "aibox.padim.*" keys and refuses
 * non-finite values (AIBOX_E_FORMAT), a model without any is AIBOX_E_NOTFOUND. */
#define AIBOX_META_ANOMALY_THRESHOLD "aibox.anomaly.threshold"
#define AIBOX_META_ANOMALY_PIXEL_THRESHOLD "aibox.anomaly.pixel_threshold"
#define AIBOX_META_ANOMALY_SCORE_MIN "aibox.anomaly.score_min"
#define AIBOX_META_ANOMALY_SCORE_MAX "aibox.anomaly.score_max"
#define AIBOX_META_ANOMALY_THRESHOLD_F1 "aibox.anomaly.threshold_f1"
#define AIBOX_META_ANOMALY_THRESHOLD_RULE "aibox.anomaly.threshold_rule"
#define AIBOX_META_ANOMALY_FIT_FINGERPRINTS "aibox.anomaly.fit_fingerprints" /* ints: aibox_file_fingerprint per fitted image */
#define AIBOX_META_ANOMALY_FIT_FILES "aibox.anomaly.fit_files"               /* strs: their names, for people */
#define AIBOX_META_ANOMALY_BACKBONE "aibox.anomaly.backbone"                 /* str: the backbone file's name */
AIBOX_API aibox_status aibox_thresholds_to_model(const aibox_thresholds *t, aibox_model *m, aibox_error *err);
AIBOX_API aibox_status aibox_thresholds_from_model(aibox_thresholds *t, const aibox_model *m, aibox_error *err);
/* Anomalib's min-max normalisation: 0.5 at the threshold, (score - threshold)
 * / (hi - lo) + 0.5, clamped to [0, 1]; NaN stays NaN. */
AIBOX_API double aibox_anomaly_normalise(double score, double threshold, double lo, double hi);

/* ------------------------------------------------------------------ detectors */
/* An anomaly model ready to judge images of parts: its method (PaDiM,
 * PatchCore, the auto-encoder), stored preprocessing, thresholds and one
 * scoring context. It owns its model. One thread per detector (several may
 * load the same file). */

/* Tiling, for images far from the model's square input (a 500 x 1250 part
 * with a hair-thin crack loses it when squashed to 224 x 224). With side > 0
 * an image is resized keeping its aspect ratio so that its short side is
 * side pixels (at least the model's input side), then covered by tiles of
 * the model's input size, evenly spaced, neighbours overlapping by at least
 * overlap (a share of a tile; 0.25 when fitting with 0), the last flush with
 * the far edge. The fit learns from every tile; a score runs every tile: the
 * map is the tiles' maps averaged where they overlap, at the resized image's
 * size, and the image score is the largest tile score. Stored in the model
 * ("aibox.anomaly.tile_side", "aibox.anomaly.tile_overlap") like the rest
 * of the preprocessing. An image needing more than 1024 tiles is refused. */
typedef struct aibox_tiling {
    int side;       /* 0: no tiling (the whole image resized to the input size) */
    double overlap; /* 0 to 0.9 */
} aibox_tiling;
typedef struct aibox_padim aibox_padim;
typedef struct aibox_detector aibox_detector;
#define AIBOX_DETECTION_MAX_REGIONS 64
typedef struct aibox_detection {
    double score;      /* the image score (PaDiM: the map's maximum; PatchCore: the re-weighted largest patch distance) */
    double norm_score; /* aibox_anomaly_normalise: 0.5 at the image threshold */
    int ng;            /* 1: score >= the image threshold */
    int n_regions;     /* regions found: the map at or above the pixel threshold, in the image's pixels */
    aibox_region regions[AIBOX_DETECTION_MAX_REGIONS]; /* the largest min(n_regions, 64), largest first */
    double ms_score;   /* preprocessing and scoring time */
} aibox_detection;
/* Loads an anomaly model file (AIBOX_E_NOTFOUND for a valid model of
 * another kind, e.g. a classifier; AIBOX_E_FORMAT when it lacks finite
 * thresholds). threads: 0 for the default. */
AIBOX_API aibox_status aibox_detector_load(aibox_detector **d, const char *path, int threads, aibox_error *err);
/* A detector around a fitted PaDiM, PatchCore or auto-encoder model, which it takes over
 * (freed with the detector; on failure the caller still owns it).
 * Thresholds come from the model's metadata if it has them, else
 * aibox_detector_set_thresholds. */
AIBOX_API aibox_status aibox_detector_from_padim(aibox_detector **d, aibox_padim *p, int threads, aibox_error *err);
typedef struct aibox_patchcore aibox_patchcore;
AIBOX_API aibox_status aibox_detector_from_patchcore(aibox_detector **d, aibox_patchcore *p, int threads,
                                                     aibox_error *err);
typedef struct aibox_autoencoder aibox_autoencoder;
AIBOX_API aibox_status aibox_detector_from_autoencoder(aibox_detector **d, aibox_autoencoder *a, int threads,
                                                       aibox_error *err);
AIBOX_API void aibox_detector_free(aibox_detector **d);
AIBOX_API aibox_status aibox_detector_save(const aibox_detector *d, const char *path, aibox_error *err);
AIBOX_API const char *aibox_detector_method(const aibox_detector *d); /* "padim", "patchcore", "autoencoder" */
/* The model behind a detector of that method (NULL for another method), borrowed. */
AIBOX_API const aibox_padim *aibox_detector_padim(const aibox_detector *d);
AIBOX_API const aibox_patchcore *aibox_detector_patchcore(const aibox_detector *d);
AIBOX_API const aibox_autoencoder *aibox_detector_autoencoder(const aibox_detector *d);
AIBOX_API const aibox_model *aibox_detector_model(const aibox_detector *d);
AIBOX_API const aibox_preproc *aibox_detector_preproc(const aibox_detector *d);
/* The stored tiling (side 0: none). */
AIBOX_API aibox_tiling aibox_detector_tiling(const aibox_detector *d);
/* NULL until the detector has thresholds. */
AIBOX_API const aibox_thresholds *aibox_detector_thresholds(const aibox_detector *d);
/* Sets (and stores in the model's metadata) the thresholds. */
AIBOX_API aibox_status aibox_detector_set_thresholds(aibox_detector *d, const aibox_thresholds *t, aibox_error *err);
/* The image score alone (no thresholds needed); a non-finite score or map
 * is AIBOX_E_NONFINITE. */
AIBOX_API aibox_status aibox_detector_score(aibox_detector *d, const aibox_image *img, float *score, aibox_error *err);
/* Score, verdict and regions of one decoded image. */
AIBOX_API aibox_status aibox_detector_run(aibox_detector *d, const aibox_image *img, aibox_detection *out,
                                          aibox_error *err);
/* The last image's anomaly map (borrowed until the next call): at the
 * model's input size, or with tiling at the resized image's size. */
AIBOX_API const float *aibox_detector_map(const aibox_detector *d, int *w, int *h);
/* Pictures of the last image run: a heatmap over img (an RGB image of img's
 * size; colours normalised as the scores, 0.5 at the pixel threshold) and a
 * binary defect mask (grey, 255 where the map is at or above the pixel
 * threshold) at the image's size. The caller frees them (aibox_image_free). */
AIBOX_API aibox_status aibox_detector_heatmap(aibox_detector *d, const aibox_image *img, aibox_image *out,
                                              aibox_error *err);
AIBOX_API aibox_status aibox_detector_mask(aibox_detector *d, aibox_image *out, aibox_error *err);

/* ------------------------------------------------------------------ fitting on a folder */
/* What `aibox-train padim` does, in one call: the good images of good_dir
 * (recursive; masks beside images are not samples) are split by a seeded
 * draw into a fit list and a hold-out; the backbone's features of the fit
 * list give the PaDiM statistics (streamed: memory does not grow with the
 * image count); the held-out images (and defect examples, with masks for the
 * pixel threshold) are scored and set the thresholds; the fitted images'
 * fingerprints, their names and the backbone's name are stored. Unusable
 * images (unreadable, truncated, smaller than min_side) are skipped and
 * reported, or with strict stop the fit. */
typedef struct aibox_padim_opts aibox_padim_opts;
typedef struct aibox_patchcore_opts aibox_patchcore_opts;
typedef struct aibox_autoencoder_opts aibox_autoencoder_opts;
typedef enum aibox_anomaly_method {
    AIBOX_ANOMALY_PADIM = 0,
    AIBOX_ANOMALY_PATCHCORE = 1,
    AIBOX_ANOMALY_AUTOENCODER = 2 /* no backbone: aibox_detector_fit_folder's backbone may be NULL */
} aibox_anomaly_method;
typedef struct aibox_fit_opts {
    const aibox_padim_opts *padim;   /* PaDiM's options (NULL: its defaults) */
    int float32;                     /* 1: no half-precision scoring copy (aibox_padim_set_half) */
    double holdout;                  /* share of the good images held out: 0 means 0.2, negative none */
    uint64_t seed;                   /* of the hold-out draw */
    aibox_threshold_spec threshold;  /* zeroed: max */
    const char *abnormal_dir;        /* defect examples (optional): the F1-optimal thresholds too */
    const char *mask_dir;            /* masks of the defect examples, if not beside them */
    const char *backbone_name;       /* stored as AIBOX_META_ANOMALY_BACKBONE (NULL: not stored) */
    int batch;                       /* images per backbone pass; 0: 8 */
    int threads;                     /* 0: the default */
    long long max_pixels;            /* <= 0: the default cap */
    int min_side;                    /* 0: 8 */
    int strict;                      /* 1: the first unusable image fails the fit (AIBOX_E_INVALID) */
    void (*on_skip)(void *user, const char *path, const aibox_error *why); /* may be NULL */
    void (*on_progress)(void *user, const char *phase, int done, int total); /* "fit", "score"; may be NULL */
    void *user;
    aibox_anomaly_method method;           /* zeroed: PaDiM */
    const aibox_patchcore_opts *patchcore; /* PatchCore's options (NULL: its defaults) */
    /* the auto-encoder's options (NULL: its defaults); channels 0 there: 1 when the first usable good
       image is grey, else 3 */
    const aibox_autoencoder_opts *autoencoder;
    aibox_tiling tiling; /* zeroed: none */
} aibox_fit_opts;
typedef struct aibox_fit_report {
    int fit, holdout, abnormal, skipped; /* images fitted, held out, defect examples scored, skipped */
    aibox_threshold_stats stats;
    double fit_seconds, seconds;
    size_t fit_bytes; /* what the fit held before it ended (PaDiM: its statistics; PatchCore: the bank before
                         subsampling) */
} aibox_fit_report;
/* Data that cannot make a model (too few images, a rule its data cannot
 * serve, strict and an unusable image) is AIBOX_E_INVALID; rep may be NULL. */
AIBOX_API aibox_status aibox_detector_fit_folder(aibox_detector **d, const aibox_model *backbone, const char *good_dir,
                                                 const aibox_fit_opts *o, aibox_fit_report *rep, aibox_error *err);

/* ------------------------------------------------------------------ evaluation */
/* Folder evaluation as Anomalib reports it. Normal images: the files of
 * normal_dir (recursive); defects: abnormal_dir, whose first-level
 * sub-folders are the defect classes; masks beside the images (STEM.png) or
 * in mask_dir (STEM.png, STEM_mask.png; normal images only use masks beside
 * them). Images the model was fitted on are left out by content (the
 * fingerprints it records; a model without them leaves nothing out and says
 * so in fingerprints = 0). */
typedef struct aibox_eval_opts {
    const char *normal_dir, *abnormal_dir, *mask_dir;
    long long max_pixels; /* <= 0: the default cap */
    double fpr_limit;     /* AUPRO's FPR limit; 0: 0.3 as MVTec */
    /* an image that could not be scored (counted in failed), and progress; may be NULL */
    void (*on_failure)(void *user, const char *path, const aibox_error *e);
    void (*on_progress)(void *user, int done, int total);
    void *user;
} aibox_eval_opts;
typedef struct aibox_eval_class {
    char *name; /* the sub-folder ("" for images directly in abnormal_dir) */
    int n, detected;
    double image_auroc; /* its images against all normal ones */
} aibox_eval_class;
typedef struct aibox_eval_result {
    int normal, abnormal, excluded, failed;
    int fingerprints;  /* 1: fitted images recognised by content */
    double image_auroc, pixel_auroc, aupro, threshold, f1;
    int tp, fp, fn, tn; /* at the image threshold */
    int n_classes;
    aibox_eval_class *classes;
    double seconds;
} aibox_eval_result;
/* Keeps every map for the pixel metrics: 4 bytes per model-input pixel per image. */
AIBOX_API aibox_status aibox_detector_evaluate(aibox_detector *d, const aibox_eval_opts *o, aibox_eval_result *r,
                                               aibox_error *err);
AIBOX_API void aibox_eval_result_free(aibox_eval_result *r);

#ifdef __cplusplus
}
#endif

/* sound.h builds on this header: when this header was read first, aibox.h
 * reached sound.h too early and skipped it; now it can be read. */
#include "sound.h"
#endif
