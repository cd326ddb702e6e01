/* safetensors reader (internal; the public face is aibox_import_safetensors).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON mapping
 * tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the first byte after the header) plus an optional
 * "__metadata__" object, then the raw little-endian tensor bytes. Every
 * structural rule is checked before any data is used; refusals are
 * AIBOX_E_FORMAT with one line naming the file and the tensor.
 *
 * Memory: parsing costs the header's JSON tree (its value count is capped
 * before cJSON sees it) and one record per tensor; tensor data stay in the
 * file image and are converted only when copied out (aibox_st_to_float), so
 * overlapping ranges or half-precision data cannot multiply memory. */
#ifndef AIBOX_IO_SAFETENSORS_H
#define AIBOX_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define AIBOX_ST_MAX_DIMS 8
#define AIBOX_ST_MAX_HEADER (100u << 20) /* the reference implementation's cap */
/* JSON values (objects, arrays, numbers, strings) in a header: cJSON spends
 * ~100 bytes on each, and "[0,0,..." is 2 bytes per value. 200,000 values
 * (~30 MB of tree) is ~50 times a ResNet-50 header's. */
#define AIBOX_ST_MAX_JSON_VALUES 200000

typedef struct aibox_st_tensor {
    char *name;
    char dtype[12];   /* as in the file: "F32", "F16", "BF16", "I64", ... */
    int ndim;         /* 0 for a scalar */
    int64_t shape[AIBOX_ST_MAX_DIMS];
    size_t count;     /* element count (1 for a scalar) */
    int kind;         /* 0: not convertible to float; 1 F32, 2 F16, 3 BF16, 4 F64 */
    const unsigned char *raw; /* count elements in the file image (little-endian) */
} aibox_st_tensor;

typedef struct aibox_st_file {
    int n;
    aibox_st_tensor *t;   /* in header order */
    unsigned char *owned; /* the file image when aibox_st_read read it, else NULL (borrowed) */
} aibox_st_file;

/* Parses and validates a whole safetensors image held in memory; name is
 * used in messages. *out is NULL on failure. The tensors point into buf,
 * which must outlive *out. */
AIBOX_INTERNAL aibox_status aibox_st_parse(const void *buf, size_t len, const char *name, aibox_st_file **out,
                                           aibox_error *err);
/* Reads a regular file and parses it. */
AIBOX_INTERNAL aibox_status aibox_st_read(const char *path, aibox_st_file **out, aibox_error *err);
/* Converts tensor t's count values to float32 into dst; 0 (nothing written)
 * when its dtype is not a float type. */
AIBOX_INTERNAL int aibox_st_to_float(const aibox_st_tensor *t, float *dst);
/* Index of the named tensor, or -1. */
AIBOX_INTERNAL int aibox_st_find(const aibox_st_file *f, const char *name);
AIBOX_INTERNAL void aibox_st_free(aibox_st_file **f);
/* aibox_import_safetensors on a file image in memory (borrowed for the call);
 * name is used in messages. Fuzzers and tests use it without a file. */
AIBOX_INTERNAL aibox_status aibox_st_import_buffer(aibox_model **out, const void *buf, size_t len, const char *name,
                                                   const char *arch, int classes_or_0, aibox_error *err);

#endif
