/* Internal to lib/train: what the training loop and transfer learning share. */
#ifndef AIBOX_TRAIN_INTERNAL_H
#define AIBOX_TRAIN_INTERNAL_H

#include "core/core.h"

/* Monotonic seconds (epoch and feature timings). */
AIBOX_INTERNAL double aibox_train_now(void);

/* out_dir/results.png (plots.c): loss and accuracy of the n epochs so far,
 * training and validation; each column's i-th value lies i * stride bytes
 * after its first (an array of rows); best_epoch (0-based, -1: none) gets a
 * dashed line: the epoch whose weights are kept. */
AIBOX_INTERNAL aibox_status aibox_train_plot_results(const char *out_dir, int n, const float *loss, const float *acc,
                                                     const float *val_loss, const float *val_acc, size_t stride,
                                                     int best_epoch, aibox_error *err);
/* out_dir/confusion.png: the validation confusion matrix (rows true,
 * columns predicted) with m's class names. */
AIBOX_INTERNAL aibox_status aibox_train_plot_confusion(const char *out_dir, const aibox_model *m, const long *conf,
                                                       int classes, aibox_error *err);

#endif
