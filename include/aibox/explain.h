/*
 * libaibox — explaining a classifier's verdict: Grad-CAM (Selvaraju et al.,
 * "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
 * Localization", 2017). Included at the end of aibox.h; the conventions of
 * aibox.h hold.
 *
 * For a class c with score y_c (its logit: the output, or for a model ending
 * in a softmax the softmax's input, as the paper takes the score before the
 * softmax) and a node with activations A (K channels of h x w):
 *   alpha_k = mean over the h x w positions of dy_c / dA_k
 *   cam     = ReLU(sum_k alpha_k A_k)                       (h x w)
 * computed with inference behaviour (batch norm's running statistics, no
 * dropout), the gradients by the library's own backward pass.
 *
 * Ownership and threads: an aibox_gradcam borrows its model (which must
 * outlive it and stay unchanged) and only reads it, so several explainers,
 * classifiers and inference contexts may share one model across threads;
 * one thread per explainer (it holds the pass's memory). Maps it returns are
 * borrowed until its next run or its free.
 */
#ifndef AIBOX_EXPLAIN_H
#define AIBOX_EXPLAIN_H

#include "../aibox.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The node Grad-CAM weighs by default, the end of the last convolution
 * stage: the last node (up to the output, in graph order) whose output the
 * score depends on and which is larger than 1x1 for the model's input
 * size, i.e. the last spatial map before the global pooling or flatten that
 * leads into the classifier (a ReLU after the last convolution, ResNet's
 * last block, AlexNet's last max pool). -1 when there is none or the model
 * is not a classifier (its output is larger than 1x1). */
AIBOX_API int aibox_gradcam_default_node(const aibox_model *m);

typedef struct aibox_gradcam aibox_gradcam;

/* An explainer for a classifier: its stored preprocessing and a context
 * that keeps every node's activations and gradients for one image at the
 * preprocessing's size. node: the node to weigh (as numbered by
 * aibox_model_summary; a named one: aibox_model_get_meta_int of
 * AIBOX_META_TAP_PREFIX "name"), or -1 for aibox_gradcam_default_node. It
 * must lie before the score node, which must depend on it. An 8-bit model
 * is explained through its float twin. threads: 0 for the default. */
AIBOX_API aibox_status aibox_gradcam_create(aibox_gradcam **g, const aibox_model *m, int node, int threads,
                                            aibox_error *err);
AIBOX_API void aibox_gradcam_free(aibox_gradcam **g);
/* The node it weighs and its (channels, height, width) at the explainer's input size. */
AIBOX_API int aibox_gradcam_node(const aibox_gradcam *g, int *c, int *h, int *w);

typedef struct aibox_gradcam_result {
    int label;        /* the class explained */
    float score;      /* its score (logit) */
    int map_w, map_h; /* the node's resolution */
    const float *cam; /* map_h x map_w: ReLU(sum_k alpha_k A_k), not normalised (borrowed) */
    float cam_max;    /* its largest value; 0 when nothing in the image speaks for the class */
} aibox_gradcam_result;

/* Grad-CAM of a preprocessed input (the model's channels x the
 * preprocessing's height x width floats, as aibox_preprocess makes them)
 * for class label, or for the highest-scoring class when label is -1. A
 * score, activation or gradient that is not finite is AIBOX_E_NONFINITE. */
AIBOX_API aibox_status aibox_gradcam_run_input(aibox_gradcam *g, const float *input, int label,
                                               aibox_gradcam_result *res, aibox_error *err);
/* The same for a decoded image, preprocessed as the model says. map (NULL,
 * or img->width x img->height floats) receives the cam resized to the
 * image's size (aibox_map_resize: bilinear, PyTorch's align_corners=False;
 * the preprocessing resizes the whole image, so the map lies on it) and
 * divided by that map's largest value: 0..1, all zero when cam_max is 0. */
AIBOX_API aibox_status aibox_gradcam_run(aibox_gradcam *g, const aibox_image *img, int label, float *map,
                                         aibox_gradcam_result *res, aibox_error *err);
/* The picture of it: aibox_heatmap_overlay of that map (lo 0, hi 1, the
 * jet-like colour map, alpha: the colour's weight, 0..1) on img, into dst
 * (an RGB image of img's size, the caller's: aibox_image_free). res may be NULL. */
AIBOX_API aibox_status aibox_gradcam_overlay(aibox_gradcam *g, const aibox_image *img, int label, float alpha,
                                             aibox_image *dst, aibox_gradcam_result *res, aibox_error *err);

#ifdef __cplusplus
}
#endif

#endif
