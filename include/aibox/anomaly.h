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

#ifdef __cplusplus
}
#endif
#endif
