/* The pictures the training loop leaves in its output folder: results.png
 * (loss and accuracy per epoch, training and validation, as Ultralytics'
 * results.png) rewritten after every epoch, and confusion.png beside
 * metrics.json at the end. Written atomically like every file we write. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "image/plot.h"
#include "train/train.h"

/* matplotlib's first two colours; validation also gets square markers */
#define TRAIN_RGB {31, 119, 180}
#define VAL_RGB {255, 127, 14}

/* The i-th value of a column of an array of rows `stride` bytes apart. */
static float column(const float *first, size_t stride, int i)
{
    return *(const float *)((const char *)first + stride * (size_t)i);
}

/* "name 0.123" with the last finite value, or the bare name. */
static void legend(char *buf, size_t cap, const char *name, const float *y, int n)
{
    for (int i = n - 1; i >= 0; i--)
        if (isfinite(y[i])) {
            snprintf(buf, cap, "%s %.3f", name, y[i]);
            return;
        }
    snprintf(buf, cap, "%s", name);
}

aibox_status aibox_train_plot_results(const char *out_dir, int n, const float *loss, const float *acc,
                                      const float *val_loss, const float *val_acc, size_t stride, int best_epoch,
                                      aibox_error *err)
{
    if (n < 1) return AIBOX_OK;
    float *v = malloc(sizeof *v * 4 * (size_t)n);
    if (!v) return aibox_fail(err, AIBOX_E_NOMEM, "results.png: out of memory");
    const float *cols[4] = {loss, val_loss, acc, val_acc};
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < n; i++) v[c * n + i] = column(cols[c], stride, i);
    char lb[4][48];
    const char *names[4] = {"train", "val", "train", "val"};
    for (int c = 0; c < 4; c++) legend(lb[c], sizeof lb[c], names[c], v + c * n, n);
    aibox_plot_series s[4] = {{lb[0], v, TRAIN_RGB, 0}, {lb[1], v + n, VAL_RGB, 1},
                              {lb[2], v + 2 * n, TRAIN_RGB, 0}, {lb[3], v + 3 * n, VAL_RGB, 1}};
    /* accuracy on a fixed 0..1 axis, so two runs' pictures compare at a glance */
    aibox_plot_panel p[2] = {
        {"loss", "epoch", n, s, 2, 0, 0, best_epoch + 1, "best"},
        {"accuracy", "epoch", n, s + 2, 2, 0, 1, best_epoch + 1, "best"},
    };
    aibox_image img = {0};
    aibox_status st = aibox_plot_curves(&img, p, 2, 560, 400, NULL, err);
    free(v);
    if (st) return st;
    char path[4200];
    snprintf(path, sizeof path, "%s/results.png", out_dir);
    st = aibox_image_write_png(&img, path, err);
    aibox_image_free(&img);
    return st;
}

aibox_status aibox_train_plot_confusion(const char *out_dir, const aibox_model *m, const long *conf, int classes,
                                        aibox_error *err)
{
    if (classes > 2048) return AIBOX_OK; /* too many to look at; metrics.json has the figures */
    int n_names = 0;
    const char *const *names = NULL;
    aibox_model_get_meta_strs(m, AIBOX_META_CLASS_NAMES, &n_names, &names);
    long total = 0, right = 0;
    for (int i = 0; i < classes; i++)
        for (int j = 0; j < classes; j++) total += conf[i * classes + j], right += i == j ? conf[i * classes + j] : 0;
    char title[128];
    snprintf(title, sizeof title, "confusion matrix: %ld validation images, accuracy %.1f%%", total,
             total ? 100.0 * right / total : 0.0);
    aibox_image img = {0};
    aibox_status st = aibox_plot_confusion(&img, conf, classes, names, n_names, title, NULL, err);
    if (st) return st;
    char path[4200];
    snprintf(path, sizeof path, "%s/confusion.png", out_dir);
    st = aibox_image_write_png(&img, path, err);
    aibox_image_free(&img);
    return st;
}
