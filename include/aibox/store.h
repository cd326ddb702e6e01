/*
 * libaibox — the sample store: images the line has seen, with labels and
 * per-sample metadata, in a Zarr v2 folder that Python's zarr reads and writes.
 *
 * Self-contained: it includes aibox.h itself; aibox.h includes this file at
 * its END. The conventions of aibox.h hold.
 *
 * Layout (Zarr v2, every file plain JSON or a chunk):
 *   DIR/.zgroup              {"zarr_format": 2}
 *   DIR/.zattrs              {"aibox_store": 1, "classes": [names...]}
 *   DIR/images/.zarray       shape [N, C, H, W], chunks [1, C, H, W], dtype "|u1",
 *                            compressor {"id": "zlib", "level": L}, order "C", fill_value 0
 *   DIR/images/i.0.0.0       sample i: its C x H x W bytes (planes), one zlib stream
 *   DIR/labels/.zarray       shape [N], chunks [B], dtype "<i4", compressor null, fill_value -1
 *   DIR/labels/j             labels of samples jB .. jB+B-1 (-1: unlabelled)
 *   DIR/meta/j/.zattrs       {"samples": [{...}, ...]}: the JSON objects of samples
 *                            jB .. jB+B-1 (groups DIR/meta and DIR/meta/j)
 * Sample metadata objects hold "time" (seconds since 1970), "source",
 * "verdict" (the model's answer), any caller keys, and after
 * aibox_store_set_label "operator" (the class name given) and "label_time".
 * The labels array is authoritative for labels.
 *
 * Crash safety: every file is replaced atomically (aibox_write_atomic). An
 * append writes the sample's image chunk, its labels chunk and metadata
 * block, then images/.zarray and last labels/.zarray, whose N is the commit
 * point: a kill -9 at any moment leaves a store that opens with every sample
 * whose append returned (files beyond N are ignored and overwritten by the
 * next append). Relabelling rewrites one labels chunk (4B bytes) and one
 * metadata block.
 *
 * Reading accepts what Python's zarr writes: images chunked [k, C, H, W] for
 * any k, labels "<i4" chunked [k], compressor zlib or null, "." or "/" as
 * the dimension separator, absent chunks as the fill value, absent
 * metadata. Appending needs images chunked [1, C, H, W]. Every size read
 * from a store is checked before anything is allocated; a bad file is
 * refused with its path and what is wrong.
 */
#ifndef AIBOX_STORE_H
#define AIBOX_STORE_H

#include "../aibox.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aibox_store aibox_store;

/* A new store's shape; a zeroed field takes the default. */
typedef struct aibox_store_opts {
    int channels;            /* 1 (default) or 3 */
    int height, width;       /* sample size (default 224 x 224; each 1..8192) */
    int level;               /* zlib level 1..9 (default 1: fast; pixels compress little) */
    int block;               /* labels per labels chunk and per metadata block (default 256) */
    aibox_resize_mode resize; /* how appended images reach height x width (default AREA) */
} aibox_store_opts;

/* What an append records about a sample (all optional; NULL: nothing). */
typedef struct aibox_store_info {
    double time;            /* seconds since 1970; 0: now */
    const char *source;     /* where the image came from (a path, a camera, a client) */
    const char *verdict;    /* the model's answer, e.g. its class name */
    const char *extra_json; /* a JSON object whose keys are added (e.g. "{\"score\": 0.93}") */
} aibox_store_info;

#define AIBOX_STORE_READONLY 1

/* Creates DIR (absent, or an empty folder) as a store with n_classes class
 * names (n_classes may be 0: add them later) and opens it for writing. */
AIBOX_API aibox_status aibox_store_create(aibox_store **st, const char *dir, const aibox_store_opts *o, int n_classes,
                                          const char *const *classes, aibox_error *err);
/* Opens a store. Without AIBOX_STORE_READONLY it is opened for writing,
 * which one process at a time may do (an advisory lock on DIR/.zgroup,
 * released when the store is freed or the process ends); a second writer
 * gets AIBOX_E_STATE. A read-only store sees the samples committed when it
 * was opened. Errors: AIBOX_E_NOTFOUND (no store), AIBOX_E_FORMAT /
 * AIBOX_E_CORRUPT (naming the file), AIBOX_E_UNSUPPORTED (a valid Zarr array
 * this reader does not handle: another dtype, compressor or order). */
AIBOX_API aibox_status aibox_store_open(aibox_store **st, const char *dir, int flags, aibox_error *err);
AIBOX_API void aibox_store_free(aibox_store **st);

/* Thread-safety: every call may be made from several threads on one store;
 * appends and relabels are serialised by a lock inside the store. */
AIBOX_API const char *aibox_store_dir(const aibox_store *st);
AIBOX_API long aibox_store_count(const aibox_store *st); /* samples */
AIBOX_API int aibox_store_channels(const aibox_store *st);
AIBOX_API int aibox_store_height(const aibox_store *st);
AIBOX_API int aibox_store_width(const aibox_store *st);
AIBOX_API int aibox_store_class_count(const aibox_store *st);
/* Class c's name (NULL out of range); valid until the store is freed. */
AIBOX_API const char *aibox_store_class_name(const aibox_store *st, int c);
/* The class named name, or -1. */
AIBOX_API int aibox_store_class_find(const aibox_store *st, const char *name);
/* Adds a class (an existing name is not added again); its label in *label. */
AIBOX_API aibox_status aibox_store_add_class(aibox_store *st, const char *name, int *label, aibox_error *err);
/* Sample i's label: -1 unlabelled (and out of range). */
AIBOX_API int aibox_store_label(const aibox_store *st, long i);
/* counts[c] samples of class c for c < class count, counts[class count]
 * unlabelled ones (class count + 1 entries). */
AIBOX_API void aibox_store_class_counts(const aibox_store *st, long *counts);

/* Appends img (any size and channels: converted to the store's channels and
 * resized to its height x width) with label (-1: unlabelled; else a class
 * index) and info (NULL: the time only). On AIBOX_OK the sample is on disk
 * and *id (may be NULL) is its index. */
AIBOX_API aibox_status aibox_store_append(aibox_store *st, const aibox_image *img, int label,
                                          const aibox_store_info *info, long *id, aibox_error *err);
/* The operator's answer: sample id gets label (-1: unlabelled again), and its
 * metadata "operator" (the class name, or null) and "label_time". */
AIBOX_API aibox_status aibox_store_set_label(aibox_store *st, long id, int label, aibox_error *err);
/* Sample i's pixels as a caller-owned image (height x width x channels,
 * interleaved; free with aibox_image_free). */
AIBOX_API aibox_status aibox_store_image(const aibox_store *st, long i, aibox_image *out, aibox_error *err);
/* Sample i's metadata as JSON object text (caller-owned: free()); "{}" when
 * the store holds none for it. */
AIBOX_API aibox_status aibox_store_meta(const aibox_store *st, long i, char **json, aibox_error *err);

/* A dataset of the store's labelled samples, for the loader and training
 * (the options as for aibox_dataset_open: the seeded split, min_samples;
 * classes without a labelled sample are left out, like empty class folders).
 * The dataset opens DIR read-only itself and owns that store; sample paths
 * read "DIR/images/i.0.0.0". Pixels are read from the store when needed
 * (none are cached up front beyond cache_mb). */
typedef struct aibox_dataset aibox_dataset; /* aibox/data.h (a C11 repeat of its typedef) */
struct aibox_dataset_opts;
AIBOX_API aibox_status aibox_store_dataset_open(aibox_dataset **ds, const char *dir,
                                                const struct aibox_dataset_opts *o, aibox_error *err);

#ifdef __cplusplus
}
#endif
#endif
