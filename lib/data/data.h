/* Internal to lib/data: per-sample seeding, the borrowed-image path of the
 * loader, and the augmentations with explicit parameters (tested directly). */
#ifndef AIBOX_DATA_INTERNAL_H
#define AIBOX_DATA_INTERNAL_H

#include "aibox/data.h"
#include "core/core.h"

/* Seeds of an epoch's shuffle and of one sample's augmentation. */
AIBOX_INTERNAL void aibox_data_shuffle_rng(aibox_rng *r, uint64_t seed, int epoch);
AIBOX_INTERNAL void aibox_data_sample_rng(aibox_rng *r, uint64_t seed, int epoch, int index);

/* Sample i's image without a copy: *ref is the cached image, or tmp after
 * reading the file again (tmp is zeroed first; free it with aibox_image_free
 * in either case). */
AIBOX_INTERNAL aibox_status aibox_dataset_image_ref(const aibox_dataset *ds, aibox_split split, int i,
                                                    const aibox_image **ref, aibox_image *tmp, aibox_error *err);

/* A dataset over samples held elsewhere (the sample store): n samples with
 * labels in [0, n_classes) and names (for messages and aibox_dataset_path),
 * each read by read(user, src[i], ...) when needed. The open reads every
 * sample once (a failure goes to the skip list, or fails the open with
 * strict) and caches them up to cache_mb, as aibox_dataset_open does; the
 * split, class counts and checks are the flat layout's. The dataset owns
 * user: release(user) runs when it is freed (also when this fails). read
 * must be safe from several threads. */
typedef aibox_status (*aibox_dataset_read_fn)(void *user, long src, aibox_image *out, aibox_error *err);
typedef struct aibox_dataset_source {
    const char *dir; /* the dataset's name (aibox_dataset_dir) */
    int n_classes;
    const char *const *classes;
    int n;
    const long *src;           /* the reader's index of each sample */
    const int *labels;
    const char *const *names;  /* each sample's path-like name */
    aibox_dataset_read_fn read;
    void *user;
    void (*release)(void *user);
} aibox_dataset_source;
AIBOX_INTERNAL aibox_status aibox_dataset_from_source(aibox_dataset **ds, const aibox_dataset_source *src,
                                                      const aibox_dataset_opts *o, aibox_error *err);

/* Augmentations with explicit parameters (ranges in aibox/data.h). */
AIBOX_INTERNAL void aibox_aug_brightness(aibox_image *img, float delta);
AIBOX_INTERNAL void aibox_aug_contrast(aibox_image *img, float factor);
AIBOX_INTERNAL void aibox_aug_flip(aibox_image *img, int vertical);
AIBOX_INTERNAL void aibox_aug_hue(aibox_image *img, float shift);
AIBOX_INTERNAL void aibox_aug_saturation(aibox_image *img, float factor);
AIBOX_INTERNAL aibox_status aibox_aug_jpeg(aibox_image *img, int quality, aibox_error *err);
/* Output pixel (x, y) samples the input at M (x - cx, y - cy) + (cx, cy),
 * M = {m[0], m[1]; m[2], m[3]}, bilinear, reflected borders. */
AIBOX_INTERNAL aibox_status aibox_aug_warp(aibox_image *img, const float m[4], aibox_error *err);
AIBOX_INTERNAL aibox_status aibox_aug_rotate(aibox_image *img, float degrees, aibox_error *err);
AIBOX_INTERNAL aibox_status aibox_aug_shear(aibox_image *img, float degrees, aibox_error *err);
AIBOX_INTERNAL aibox_status aibox_aug_zoom(aibox_image *img, float zx, float zy, aibox_error *err);
AIBOX_INTERNAL aibox_status aibox_aug_blur(aibox_image *img, float sigma, aibox_error *err);
/* Crops the w x h window at (x, y) and resizes it back to the image's size. */
AIBOX_INTERNAL aibox_status aibox_aug_crop(aibox_image *img, int x, int y, int w, int h, aibox_error *err);
/* aibox_augment_apply that also records the kinds applied (kinds may be NULL;
 * room for AIBOX_AUG_MAX_CHAIN). */
AIBOX_INTERNAL aibox_status aibox_augment_chain(aibox_image *img, unsigned mask, float p, aibox_rng *rng, int *kinds,
                                                int *n, aibox_error *err);

#endif
