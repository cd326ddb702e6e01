/* safetensors reader (internal; the public face is aibox_import_safetensors).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON mapping
 * tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the first byte after the header) plus an optional
 * "__metadata__" object, then the raw little-endian tensor bytes. Every
 * structural rule is checked before any data is used; refusals are
 * AIBOX_E_FORMAT with one line naming the file and the tensor. */
#ifndef AIBOX_IO_SAFETENSORS_H
#define AIBOX_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define AIBOX_ST_MAX_DIMS 8
#define AIBOX_ST_MAX_HEADER (100u << 20) /* the reference implementation's cap */

typedef struct aibox_st_tensor {
    char *name;
    char dtype[12];   /* as in the file: "F32", "F16", "BF16", "I64", ... */
    int ndim;         /* 0 for a scalar */
    int64_t shape[AIBOX_ST_MAX_DIMS];
    size_t count;     /* element count (1 for a scalar) */
    float *data;      /* converted to float32 (F32/F16/BF16/F64), else NULL */
} aibox_st_tensor;

typedef struct aibox_st_file {
    int n;
    aibox_st_tensor *t; /* in header order */
} aibox_st_file;

/* Parses and validates a whole safetensors image held in memory; name is
 * used in messages. *out is NULL on failure. */
AIBOX_INTERNAL aibox_status aibox_st_parse(const void *buf, size_t len, const char *name, aibox_st_file **out,
                                           aibox_error *err);
/* Reads a regular file and parses it. */
AIBOX_INTERNAL aibox_status aibox_st_read(const char *path, aibox_st_file **out, aibox_error *err);
/* Index of the named tensor, or -1. */
AIBOX_INTERNAL int aibox_st_find(const aibox_st_file *f, const char *name);
AIBOX_INTERNAL void aibox_st_free(aibox_st_file **f);
/* aibox_import_safetensors on a file image in memory (borrowed for the call);
 * name is used in messages. Fuzzers and tests use it without a file. */
AIBOX_INTERNAL aibox_status aibox_st_import_buffer(aibox_model **out, const void *buf, size_t len, const char *name,
                                                   const char *arch, int classes_or_0, aibox_error *err);

#endif
