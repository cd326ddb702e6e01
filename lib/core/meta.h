/* Typed key/value metadata: what a model carries besides its graph and
 * weights (class names, preprocessing, training state). A plain data
 * structure, used by the model graph and serialised by the .aibox container
 * (lib/io/FORMAT.md names the same limits). Internal. */
#ifndef AIBOX_CORE_META_H
#define AIBOX_CORE_META_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define AIBOX_FILE_MAX_NAME 255           /* bytes in a metadata key or tensor name */
#define AIBOX_FILE_MAX_ENTRIES 1000000    /* metadata entries, and tensors, per file */
#define AIBOX_FILE_MAX_ARRAY (1 << 24)    /* elements in one metadata array */
#define AIBOX_FILE_MAX_STR (1 << 24)      /* bytes in one metadata string */

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

#endif
