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
#include "core/meta.h" /* typed metadata and the name/size limits */

/* Format constants (FORMAT.md names the same numbers). The container's
 * version; a model's graph encoding has its own version inside it (the first
 * value of "aibox.graph", lib/io/model_io.c; FORMAT.md "graph versions"). */
#define AIBOX_FILE_VERSION 1
#define AIBOX_FILE_ALIGN 64               /* tensor data offsets, from file start */
#define AIBOX_FILE_MAX_DIM 2147483647LL   /* one tensor dimension (fits aibox_tensor's int) */
/* Tensor dtypes as the index stores them. In memory a tensor is float32
 * whatever its dtype: float16 is a storage choice (half the bytes, 11
 * significant bits), converted on writing and reading by lib/ops/half.c;
 * int8 and int32 store integers (quantised weights and biases) exactly, so
 * the writer refuses a value that is not an integer in range, and int32 is
 * limited to |v| <= 2^24, the integers a float holds exactly (the reader
 * refuses a file with a larger one). */
#define AIBOX_FILE_F32 1
#define AIBOX_FILE_F16 2
#define AIBOX_FILE_I8 3
#define AIBOX_FILE_I32 4
#define AIBOX_FILE_I32_MAX 16777216 /* 2^24 */

/* ------------------------------------------------------------------ writing */
/* A tensor to write: float32, row-major, ndim 1..4, dims >= 0. data may be
 * NULL only when the element count is 0. dtype says how it is stored: 0 or
 * AIBOX_FILE_F32 as float32 (bit for bit), AIBOX_FILE_F16 as IEEE binary16,
 * rounded to nearest with ties to even (beyond +-65504 to +-inf, NaN stays
 * NaN: the container stores what it is given; lib/io/model_io.c refuses
 * non-finite values before they get here), AIBOX_FILE_I8 / _I32 as
 * integers (refused unless every value is one in range). Last, so that
 * initialisers without it mean float32. */
typedef struct aibox_file_tensor {
    const char *name;
    int ndim;
    int64_t dims[4];
    const float *data;
    int dtype;
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
    float *data;       /* float32, 64-byte aligned, host byte order: into blob (float32 tensors) or into
                        * wide (the other dtypes, converted exactly); NULL: read without data */
    size_t count;      /* element count */
    int dtype;         /* as stored: AIBOX_FILE_F32, _F16, _I8 or _I32 */
} aibox_file_entry;

typedef struct aibox_file {
    aibox_meta_list meta;
    int n_tensors;
    aibox_file_entry *tensors; /* in file order */
    void *blob;                /* the whole file (aibox_alloc), owns float32 tensor data */
    void *wide;                /* float32 copies of the tensors not stored as float32 (aibox_alloc), or NULL */
} aibox_file;

/* Reads and verifies a file: magic, size, CRC-32 (before any parsing),
 * version, then every structural rule of FORMAT.md. Refusals are one line
 * naming the file and the cause. *out is NULL on failure. path must be a
 * regular file (pipes and devices: read them yourself and use _read_mem). */
AIBOX_INTERNAL aibox_status aibox_file_read(const char *path, aibox_file **out, aibox_error *err);
/* Same from memory (copied; buf need not be aligned). name is used in messages. */
AIBOX_INTERNAL aibox_status aibox_file_read_mem(const void *buf, size_t len, const char *name_for_messages,
                                                aibox_file **out, aibox_error *err);
/* aibox_file_read without the tensor data: the header, metadata and tensor
 * index are read and verified (the CRC-32 streamed over the whole file), each
 * entry's data is NULL. Memory: the metadata and index sections, not the file. */
AIBOX_INTERNAL aibox_status aibox_file_read_index(const char *path, aibox_file **out, aibox_error *err);
AIBOX_INTERNAL void aibox_file_free(aibox_file **f);
/* A tensor's data by name, or NULL when absent; ndim and dims may be NULL. */
AIBOX_INTERNAL const float *aibox_file_tensor_data(const aibox_file *f, const char *name, int *ndim,
                                                   int64_t dims[4]);

#endif
