/* The .aibox model file container (byte layout: lib/io/FORMAT.md).
 *
 * This box knows typed metadata and named float tensors, nothing of models:
 * the graph code decides which keys and tensor names a model uses. Internal to
 * the library (hidden symbols); the public face is aibox_model_save/_load. */
#ifndef AIBOX_IO_AIBOX_FILE_H
#define AIBOX_IO_AIBOX_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* Format constants (FORMAT.md names the same numbers). */
#define AIBOX_FILE_VERSION 1
#define AIBOX_FILE_ALIGN 64               /* tensor data offsets, from file start */
#define AIBOX_FILE_MAX_NAME 255           /* bytes in a metadata key or tensor name */
#define AIBOX_FILE_MAX_ENTRIES 1000000    /* metadata entries, and tensors, per file */
#define AIBOX_FILE_MAX_ARRAY (1 << 24)    /* elements in one metadata array */
#define AIBOX_FILE_MAX_STR (1 << 24)      /* bytes in one metadata string */
#define AIBOX_FILE_MAX_DIM 2147483647LL   /* one tensor dimension (fits aibox_tensor's int) */

/* ------------------------------------------------------------------ metadata */
typedef enum aibox_meta_type {
    AIBOX_META_INT = 1,
    AIBOX_META_FLOAT = 2,
    AIBOX_META_STR = 3,
    AIBOX_META_INTS = 4,
    AIBOX_META_FLOATS = 5,
    AIBOX_META_STRS = 6
} aibox_meta_type;

/* One key/value. Only the fields of its type are meaningful:
 *   INT: i.  FLOAT: f.  STR: s (NUL-terminated UTF-8).  n is 1 for these.
 *   INTS: n, ints.  FLOATS: n, floats.  STRS: n, strs (each NUL-terminated UTF-8).
 * Arrays are NULL when n == 0. Everything is owned by the list. */
typedef struct aibox_meta {
    char *key;
    aibox_meta_type type;
    int n;
    int64_t i;
    double f;
    char *s;
    int64_t *ints;
    double *floats;
    char **strs;
} aibox_meta;

/* Insertion-ordered list; a zeroed struct is an empty list. Setting an
 * existing key replaces its value (and type) in place, keeping its position,
 * so a loaded-then-saved file keeps its order. */
typedef struct aibox_meta_list {
    aibox_meta *items;
    int count, cap;
} aibox_meta_list;

/* Setters copy key and values. Keys: 1..255 bytes of printable ASCII without
 * spaces (0x21..0x7E). Strings: valid UTF-8, at most AIBOX_FILE_MAX_STR bytes.
 * Arrays: 0..AIBOX_FILE_MAX_ARRAY elements (values may be NULL when n == 0).
 * On failure the list is unchanged. */
AIBOX_INTERNAL aibox_status aibox_meta_set_int(aibox_meta_list *l, const char *key, int64_t v, aibox_error *err);
AIBOX_INTERNAL aibox_status aibox_meta_set_float(aibox_meta_list *l, const char *key, double v, aibox_error *err);
AIBOX_INTERNAL aibox_status aibox_meta_set_str(aibox_meta_list *l, const char *key, const char *v, aibox_error *err);
AIBOX_INTERNAL aibox_status aibox_meta_set_ints(aibox_meta_list *l, const char *key, int n, const int64_t *v,
                                                aibox_error *err);
AIBOX_INTERNAL aibox_status aibox_meta_set_floats(aibox_meta_list *l, const char *key, int n, const double *v,
                                                  aibox_error *err);
AIBOX_INTERNAL aibox_status aibox_meta_set_strs(aibox_meta_list *l, const char *key, int n,
                                                const char *const *v, aibox_error *err);
/* The entry for key, or NULL (borrowed; valid until the list changes). */
AIBOX_INTERNAL const aibox_meta *aibox_meta_find(const aibox_meta_list *l, const char *key);
/* Deep copy of src into dst; dst's previous contents are freed on success and
 * left untouched on failure. dst may be a zeroed list. */
AIBOX_INTERNAL aibox_status aibox_meta_copy(aibox_meta_list *dst, const aibox_meta_list *src, aibox_error *err);
/* Frees every entry and zeroes the list (safe on a zeroed list). */
AIBOX_INTERNAL void aibox_meta_list_free(aibox_meta_list *l);

/* Shared validators (meta.c): NULL when acceptable, else a short reason. */
AIBOX_INTERNAL const char *aibox_meta_name_problem(const char *name, size_t len);
AIBOX_INTERNAL int aibox_utf8_valid(const char *s, size_t len);
/* Checks one entry as the writer needs it (key, type, n, pointers, strings). */
AIBOX_INTERNAL aibox_status aibox_meta_check(const aibox_meta *m, aibox_error *err);

/* ------------------------------------------------------------------ writing */
/* A tensor to write: float32, row-major, ndim 1..4, dims >= 0. data may be
 * NULL only when the element count is 0. */
typedef struct aibox_file_tensor {
    const char *name;
    int ndim;
    int64_t dims[4];
    const float *data;
} aibox_file_tensor;

/* Writes meta (may be NULL) and the tensors to path atomically: a temporary
 * file beside path, every write checked, fsync, rename over path, fsync of the
 * directory. On failure the temporary file is removed and any previous file at
 * path is left as it was. Tensor names must be unique. */
AIBOX_INTERNAL aibox_status aibox_file_write(const char *path, const aibox_meta_list *meta, int n_tensors,
                                             const aibox_file_tensor *tensors, aibox_error *err);

/* Test hooks for the failure paths a real disk rarely shows on demand. */
typedef struct aibox_file_write_opts {
    int64_t fail_after_bytes; /* >= 0: writes past this many bytes fail with ENOSPC */
    int fail_fsync;           /* 1: the file's fsync fails with EIO */
    int fail_rename;          /* 1: the final rename fails with EIO */
} aibox_file_write_opts;
AIBOX_INTERNAL aibox_status aibox_file_write_ex(const char *path, const aibox_meta_list *meta, int n_tensors,
                                                const aibox_file_tensor *tensors, const aibox_file_write_opts *opts,
                                                aibox_error *err);

/* ------------------------------------------------------------------ reading */
typedef struct aibox_file_entry {
    char *name;
    int ndim;
    int64_t dims[4];   /* unused trailing dims are 0 */
    float *data;       /* points into blob, 64-byte aligned, host byte order */
    size_t count;      /* element count */
} aibox_file_entry;

typedef struct aibox_file {
    aibox_meta_list meta;
    int n_tensors;
    aibox_file_entry *tensors; /* in file order */
    void *blob;                /* the whole file (aibox_alloc), owns tensor data */
} aibox_file;

/* Reads and verifies a file: magic, size, CRC-32 (before any parsing),
 * version, then every structural rule of FORMAT.md. Refusals are one line
 * naming the file and the cause. *out is NULL on failure. path must be a
 * regular file (pipes and devices: read them yourself and use _read_mem). */
AIBOX_INTERNAL aibox_status aibox_file_read(const char *path, aibox_file **out, aibox_error *err);
/* Same from memory (copied; buf need not be aligned). name is used in messages. */
AIBOX_INTERNAL aibox_status aibox_file_read_mem(const void *buf, size_t len, const char *name_for_messages,
                                                aibox_file **out, aibox_error *err);
AIBOX_INTERNAL void aibox_file_free(aibox_file **f);
/* A tensor's data by name, or NULL when absent; ndim and dims may be NULL. */
AIBOX_INTERNAL const float *aibox_file_tensor_data(const aibox_file *f, const char *name, int *ndim,
                                                   int64_t dims[4]);

#endif
