/* Post-training quantisation to 8 bits (included by aibox.h).
 *
 * aibox_model_quantize makes an 8-bit model (aibox_model_quantized) from a float
 * one and a few representative inputs: batch norms folded into the
 * convolutions before them first; per-output-channel symmetric int8 weights
 * (scale max|w| / 127); int32 biases on the scale input x weight; per-tensor
 * asymmetric uint8 activations whose ranges come from running the float
 * model on the calibration inputs (min/max, or a percentile of the values
 * seen); ReLU-like activations share their convolution's range (so they
 * become its output clamp, as TFLite fuses them), pooling, flattening and
 * dropout keep their input's; softmax outputs 1/256 steps. The result runs
 * in integers in inference contexts (lib/ops/qops.h) and is saved with
 * aibox_model_save (int8/int32 tensors, about a quarter of the float file). */
#ifndef AIBOX_QUANT_PUBLIC_H
#define AIBOX_QUANT_PUBLIC_H

#include "../aibox.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum aibox_calib_method {
    AIBOX_CALIB_MINMAX = 0,     /* the smallest and largest value seen */
    AIBOX_CALIB_PERCENTILE = 1  /* the percentile-th and (100 - percentile)-th of all values seen */
} aibox_calib_method;

typedef struct aibox_quantize_opts {
    aibox_calib_method method;
    double percentile; /* AIBOX_CALIB_PERCENTILE: e.g. 99.99 (0: 99.99) */
    int threads;       /* 0: aibox_default_num_threads() */
} aibox_quantize_opts;

/* The 8-bit model of m into *out (a new model; m is not changed) from n
 * calibration inputs (n x C x H x W floats, preprocessed as the model's
 * inputs are, e.g. with aibox_preprocess). m must be finished, with a node
 * kind the integer plan runs after folding (convolutions, dense, pools,
 * activations, add, concatenation, softmax, flatten, dropout, zero padding,
 * nearest upsampling; batch norm only right after a convolution):
 * AIBOX_E_UNSUPPORTED names the node otherwise. opts may be NULL. */
AIBOX_API aibox_status aibox_model_quantize(aibox_model **out, const aibox_model *m, const float *calib, int n,
                                      const aibox_quantize_opts *opts, aibox_error *err);

/* Quantisation-aware fine-tuning, for a model that loses accuracy in
 * aibox_model_quantize: calibrated and folded as there, then trained
 * (aibox_train with to, on train / val sources of batch samples, threads)
 * with every activation rounded to its 8-bit domain and every convolution
 * and dense weight to per-channel int8 in each forward, gradients straight
 * through (inside an activation's range); then quantised as there: *out is
 * the same kind of 8-bit model. to->epochs and to->optim set the training
 * (a small learning rate, e.g. 1e-4, a few epochs); res may be NULL. */
AIBOX_API aibox_status aibox_model_quantize_aware(aibox_model **out, const aibox_model *m, const float *calib, int n,
                                                  const aibox_quantize_opts *opts, aibox_batch_source *train,
                                                  int batch, aibox_batch_source *val, const aibox_train_opts *to,
                                                  int threads, aibox_train_result *res, aibox_error *err);

#ifdef __cplusplus
}
#endif

#endif
