/*
 * libaibox — folder datasets, augmentation and the background batch loader.
 *
 * Self-contained: it includes aibox.h itself (whose images and preprocessing
 * sections it builds on); aibox.h may include this file at its END. The
 * conventions of aibox.h hold: statuses, caller-owned aibox_error, *_free
 * taking a pointer, borrowed getters valid until the owner is freed, all
 * randomness from seeds.
 */
#ifndef AIBOX_DATA_H
#define AIBOX_DATA_H

#include "../aibox.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ folders */
/* The one folder lister of the library (datasets, anomaly folders and the
 * tools use it). Names starting with '.' are skipped; everything else in a
 * folder is listed, sorted by path bytewise, with a note for entries that
 * are not regular files (a FIFO, a device, a looping or broken link, a
 * sub-folder that is not searched): they are reported, never read, never
 * dropped silently. */
typedef enum aibox_subfolders {
    AIBOX_SUBFOLDERS_IGNORE = 0, /* sub-folders are left out */
    AIBOX_SUBFOLDERS_NOTE,       /* listed, with a note saying they are not searched */
    AIBOX_SUBFOLDERS_RECURSE     /* searched, to any depth (up to 64 levels) */
} aibox_subfolders;
typedef struct aibox_list_opts {
    aibox_subfolders subfolders;
    int folders;     /* 1: list the sub-folders themselves (one level), not the files */
    int images_only; /* 1: only names with an image extension (jpg jpeg png bmp pgm ppm pnm tga gif) */
    int skip_masks;  /* 1: a PNG beside an image of another type with the same stem is that image's mask
                        (the magnetic-tile layout), not an entry */
} aibox_list_opts;
typedef struct aibox_file_list {
    int n;
    char **path;       /* "dir/name" (owned) */
    const char **note; /* NULL for a regular file, else why the entry is not one (static text) */
} aibox_file_list;
/* Lists dir (opts NULL: files of dir itself, sub-folders ignored). Free with
 * aibox_file_list_free. A missing folder is AIBOX_E_NOTFOUND. */
AIBOX_API aibox_status aibox_list_files(aibox_file_list *out, const char *dir, const aibox_list_opts *opts,
                                        aibox_error *err);
AIBOX_API void aibox_file_list_free(aibox_file_list *l);
/* 1 when name ends in an image extension (case-insensitive). */
AIBOX_API int aibox_is_image_name(const char *name);
/* 1 when name ends in an extension of a sound format libsndfile reads (WAV,
 * FLAC, Ogg, AIFF, AU, CAF, W64, RF64, MP3; case-insensitive). */
AIBOX_API int aibox_is_sound_name(const char *name);
/* The ground-truth mask of an image: STEM.png beside it (when the image is
 * not a PNG), or in mask_dir as STEM.png or STEM_mask.png (MVTec AD). 1 and
 * the path in out when found. */
AIBOX_API int aibox_find_mask(const char *image, const char *mask_dir, char *out, size_t len);
/* The mask at w x h (nearest neighbour; a pixel >= 128 is defect, 1, else 0)
 * into dst (w * h bytes), or all zeros when the image has no mask. */
AIBOX_API aibox_status aibox_load_mask(const char *image, const char *mask_dir, int w, int h, long long max_pixels,
                                       uint8_t *dst, aibox_error *err);

/* ------------------------------------------------------------------ fingerprints */
/* The 64-bit FNV-1a hash of a file's bytes: an image's identity by content,
 * whatever its name or folder (PaDiM models record the fingerprints of the
 * images they were fitted on, so an evaluation leaves exactly those out,
 * copies included, and nothing else). Reads regular files in 1 MB pieces. */
AIBOX_API aibox_status aibox_file_fingerprint(const char *path, uint64_t *fp, aibox_error *err);

/* ------------------------------------------------------------------ datasets */
/* Layouts (see datasets/README.md):
 *  flat:   DIR/<class>/<image>. Classes sorted by name (byte order). A seeded,
 *          stratified validation split holds out round(val_split * n) images of
 *          each class (at most n - 1), chosen by a permutation seeded from
 *          (seed, class name) over the class's usable files sorted by name: the
 *          split depends only on the seed and the file list.
 *  split:  DIR/train/<class>/<image> + DIR/val/<class>/<image> (+ optional
 *          DIR/test/<class>/<image>), chosen when DIR has a "train" folder.
 *          val_split is then ignored, unless DIR/val is absent: then the
 *          validation split is drawn from train/ as in the flat layout.
 *          Classes are the sorted union over the folders; a class missing from
 *          val/ or test/ is fine.
 * Every regular file directly inside a class folder is a sample (no deeper
 * recursion; names starting with '.' are ignored, as are files lying directly
 * in DIR); anything else in a class folder (a sub-folder, a FIFO, a device, a
 * symbolic link loop or a broken link) is listed in the skip list with what
 * it is, never read. Each is decoded once at open (aibox_image_load, so zero bytes,
 * truncation, non-images and absurd sizes are caught); a file that fails, or
 * whose width or height is below min_side, goes to the skip list with its
 * reason (or, with strict, the open fails naming the first such file in
 * class/name order). A class folder without any usable image is not a class.
 * Decoded images stay in memory (original size and channels) in file order
 * up to cache_mb; the rest are read from disk again when needed. */
typedef enum aibox_split { AIBOX_SPLIT_TRAIN = 0, AIBOX_SPLIT_VAL = 1, AIBOX_SPLIT_TEST = 2 } aibox_split;
#define AIBOX_SPLIT_COUNT 3

typedef enum aibox_dataset_layout { AIBOX_LAYOUT_FLAT = 0, AIBOX_LAYOUT_SPLIT = 1 } aibox_dataset_layout;

/* Options; a zeroed struct (or NULL) gives the defaults. */
typedef struct aibox_dataset_opts {
    float val_split;      /* 0: 0.2; negative: no validation split (all usable images train) */
    uint64_t seed;        /* of the validation split */
    int strict;           /* 1: any unreadable or too-small file fails the open */
    int min_samples;      /* usable images needed over all splits; 0: 30 (as AI-Box) */
    long long max_pixels; /* larger images are skipped; 0: AIBOX_IMAGE_MAX_PIXELS_DEFAULT */
    int min_side;         /* images narrower or lower than this are skipped; 0: 8 */
    long long cache_mb;   /* decoded-image cache; 0: 2048; negative: no cache */
    int threads;          /* decoding threads at open; 0: aibox_default_num_threads() */
} aibox_dataset_opts;

typedef struct aibox_dataset aibox_dataset;

/* Opens DIR. Errors: AIBOX_E_NOTFOUND (no such folder), AIBOX_E_INVALID
 * (fewer than min_samples usable images or fewer than 2 classes; the message
 * names the folder and the counts), the file's status with strict. */
AIBOX_API aibox_status aibox_dataset_open(aibox_dataset **ds, const char *dir, const aibox_dataset_opts *o,
                                          aibox_error *err);
AIBOX_API void aibox_dataset_free(aibox_dataset **ds);

AIBOX_API const char *aibox_dataset_dir(const aibox_dataset *ds);
AIBOX_API aibox_dataset_layout aibox_dataset_layout_of(const aibox_dataset *ds);
AIBOX_API int aibox_dataset_class_count(const aibox_dataset *ds);
AIBOX_API const char *aibox_dataset_class_name(const aibox_dataset *ds, int c); /* NULL out of range */
/* All class names, in label order (for aibox_model_set_meta_strs). */
AIBOX_API const char *const *aibox_dataset_class_names(const aibox_dataset *ds);
/* Samples in a split; per class (for class weights). 0 for an empty split. */
AIBOX_API int aibox_dataset_count(const aibox_dataset *ds, aibox_split split);
AIBOX_API int aibox_dataset_class_samples(const aibox_dataset *ds, aibox_split split, int c);
/* Sample i of a split (ordered by class, then file name): its path and label
 * (NULL / -1 out of range). */
AIBOX_API const char *aibox_dataset_path(const aibox_dataset *ds, aibox_split split, int i);
AIBOX_API int aibox_dataset_label(const aibox_dataset *ds, aibox_split split, int i);
/* Largest channel count among the usable images (1 when all are grey). */
AIBOX_API int aibox_dataset_channels(const aibox_dataset *ds);
/* Bytes of decoded pixels held in memory. */
AIBOX_API size_t aibox_dataset_cached_bytes(const aibox_dataset *ds);
/* A caller-owned copy of sample i's decoded image (free with
 * aibox_image_free); read from disk again when it is not cached.
 * Thread-safe: several threads may call it on one dataset. */
AIBOX_API aibox_status aibox_dataset_image(const aibox_dataset *ds, aibox_split split, int i, aibox_image *out,
                                           aibox_error *err);
/* The skip list, in class/name order: path and a short reason (borrowed). */
AIBOX_API int aibox_dataset_skipped_count(const aibox_dataset *ds);
AIBOX_API aibox_status aibox_dataset_skipped(const aibox_dataset *ds, int i, const char **path, const char **reason);

/* ------------------------------------------------------------------ augmentation */
/* The nine AI-Box augmentations plus Keras-style shear and zoom. Each draws its
 * parameters from the rng it is given:
 *  brightness  adds d * 255 to every colour channel, d uniform in [-0.2, 0.2]
 *  contrast    (v - mean_c) * f + mean_c per channel, f uniform in [0.7, 1.3]
 *  flip        horizontal or vertical (one of the two, equally likely)
 *  hue         HSV hue shifted by h of the colour circle, h uniform in [-0.1, 0.1]
 *  saturation  HSV saturation times s, s uniform in [0.6, 1.4]
 *  jpeg        a real JPEG encode at quality uniform in [30, 95] and decode
 *  rotation    uniform in [-20, 20] degrees about the centre, bilinear
 *  blur        Gaussian, sigma uniform in [0.5, 1.5]
 *  crop        a window of 70-100 % of the area (the image's aspect ratio) at a
 *              random place, resized back with AIBOX_RESIZE_AREA
 *  shear       Keras's shear matrix, angle uniform in [-15, 15] degrees
 *  zoom        Keras's zoom: x and y scaled by factors uniform in [0.8, 1.2]
 *              each (below 1 zooms in)
 * Rotation, shear and zoom sample with border reflection (mirror, edge pixel
 * not repeated) so no constant-coloured corners appear that a model could
 * learn. Hue and saturation act on RGB(A) only: on grey images they are not
 * chosen. Alpha is never changed. The size and channel count never change. */
typedef enum aibox_augment_kind {
    AIBOX_AUG_BRIGHTNESS = 0,
    AIBOX_AUG_CONTRAST,
    AIBOX_AUG_FLIP,
    AIBOX_AUG_HUE,
    AIBOX_AUG_SATURATION,
    AIBOX_AUG_JPEG,
    AIBOX_AUG_ROTATION,
    AIBOX_AUG_BLUR,
    AIBOX_AUG_CROP,
    AIBOX_AUG_SHEAR,
    AIBOX_AUG_ZOOM,
    AIBOX_AUG_KIND_COUNT
} aibox_augment_kind;

#define AIBOX_AUG_BIT(k) (1u << (k))
#define AIBOX_AUG_AIBOX_NINE 0x1ffu                                  /* the paper's nine */
#define AIBOX_AUG_ALL ((1u << AIBOX_AUG_KIND_COUNT) - 1u)            /* the default set */
#define AIBOX_AUG_P_DEFAULT 0.6f
/* Longest chain applied (p close to 1 would otherwise never end). */
#define AIBOX_AUG_MAX_CHAIN 16

/* "brightness", "contrast", "flip", "hue", "saturation", "jpeg", "rotation",
 * "blur", "crop", "shear", "zoom"; NULL out of range. */
AIBOX_API const char *aibox_augment_name(aibox_augment_kind k);
/* A comma-separated list of names (spaces allowed) into a mask; "none" is 0,
 * "all" every kind, "aibox" the paper's nine. An unknown or empty name is
 * AIBOX_E_INVALID naming it and listing the known ones. */
AIBOX_API aibox_status aibox_augment_parse(const char *list, unsigned *mask, aibox_error *err);
/* Writes the mask as a list ("none" for 0) into buf (always terminated). */
AIBOX_API void aibox_augment_format(unsigned mask, char *buf, size_t size);
/* The chain, in place: picks one enabled kind uniformly and applies it; after
 * each, another follows with probability p (0 <= p <= 1), up to
 * AIBOX_AUG_MAX_CHAIN; so the mean chain length is about 1 / (1 - p). The
 * image may get a new pixel buffer of the same size. A zero mask does
 * nothing. The result depends only on the image, mask, p and rng state. */
AIBOX_API aibox_status aibox_augment_apply(aibox_image *img, unsigned mask, float p, aibox_rng *rng,
                                           aibox_error *err);
/* One given kind with random parameters (for previews and tests). */
AIBOX_API aibox_status aibox_augment_one(aibox_image *img, aibox_augment_kind k, aibox_rng *rng, aibox_error *err);

/* Writes n augmented training samples, as PNG, to dir (created if absent):
 * <class>_<sample index>_<k>.png for k = 0..n-1, the samples spread evenly
 * over the training split, each augmented as the loader's epoch k would. */
AIBOX_API aibox_status aibox_dataset_preview_augment(const aibox_dataset *ds, int n, const char *dir, unsigned mask,
                                                     float p, uint64_t seed, aibox_error *err);

/* ------------------------------------------------------------------ loader */
/* Ready batches of one split on background threads: per sample, the image
 * (from the cache) -> augmentation (training split only; other splits are
 * never augmented, whatever the mask) -> aibox_preprocess into the batch's
 * slot. Batches are N x C x H x W floats in pp's shape with int labels; three
 * batch buffers rotate so that the threads prepare the next two while the
 * caller uses one.
 * Determinism: the order of epoch e (a seeded shuffle, or the split's order)
 * depends only on (seed, e), and each sample's augmentation only on
 * (seed, e, sample index): the batches are bit-identical for any thread count
 * and any timing. The last batch of an epoch may be smaller than batch. */
typedef struct aibox_loader aibox_loader;

/* How a loader reads its split; a zeroed struct is the training split in
 * file order, batches of 32, no augmentation, seed 0, default threads. */
typedef struct aibox_loader_opts {
    aibox_split split;
    int batch;        /* samples per batch; 0: 32 */
    int shuffle;      /* 1: a seeded shuffle per epoch */
    unsigned augment; /* AIBOX_AUG_* mask (training split only) */
    float aug_p;      /* probability that another augmentation follows one (0: exactly one;
                         AIBOX_AUG_P_DEFAULT is the AI-Box 0.6) */
    uint64_t seed;    /* of the shuffle and the augmentations */
    int threads;      /* background threads; 0: aibox_default_num_threads() */
} aibox_loader_opts;
/* Starts epoch 0 at once. The loader borrows ds (which must outlive it) and
 * copies pp and opts (NULL: the defaults). One thread at a time calls
 * next/epoch on a loader; several loaders (training and validation) may
 * share one dataset. */
AIBOX_API aibox_status aibox_loader_create(aibox_loader **ld, const aibox_dataset *ds, const aibox_preproc *pp,
                                           const aibox_loader_opts *opts, aibox_error *err);
/* Starts epoch e (any order; the threads begin preparing it at once, so it
 * may be called right after the previous epoch's last batch). */
AIBOX_API aibox_status aibox_loader_epoch(aibox_loader *ld, int epoch, aibox_error *err);
/* The next batch of the current epoch: x (n x C x H x W) and labels (n),
 * borrowed until the next call on the loader. n == 0 (and AIBOX_OK) at the
 * end of the epoch. A sample that fails (its file vanished, ...) makes this
 * return the error naming it, until the next aibox_loader_epoch. */
AIBOX_API aibox_status aibox_loader_next(aibox_loader *ld, const float **x, const int **labels, int *n,
                                         aibox_error *err);
AIBOX_API int aibox_loader_samples(const aibox_loader *ld); /* per epoch */
AIBOX_API int aibox_loader_batches(const aibox_loader *ld); /* per epoch */
AIBOX_API int aibox_loader_threads(const aibox_loader *ld);
/* The loader as aibox_train's batch source (user is ld, borrowed: the loader
 * must outlive the training). Its describe hook writes the loader's
 * preprocessing (aibox_preproc_to_model) and the dataset's class names
 * (AIBOX_META_CLASS_NAMES) into the model. */
AIBOX_API aibox_batch_source aibox_loader_source(aibox_loader *ld);
/* Stops the threads and frees everything; safe on NULL. */
AIBOX_API void aibox_loader_free(aibox_loader **ld);

#ifdef __cplusplus
}
#endif

/* sound.h builds on this header: when this header was read first, aibox.h
 * reached sound.h too early and skipped it; now it can be read. */
#include "sound.h"
#endif
