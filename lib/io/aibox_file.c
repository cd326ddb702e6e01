/* .aibox file codec: atomic writer and verifying reader (layout: FORMAT.md).
 *
 * Every field is encoded byte by byte in little-endian order, so files are
 * identical whatever the host; a little-endian host merely takes a memcpy
 * shortcut for float arrays (define AIBOX_IO_PORTABLE to test the generic
 * path). The reader trusts nothing: every length and offset is checked
 * against the buffer with subtraction-based (overflow-free) comparisons, and
 * every allocation is bounded by the number of bytes actually present
 * (float16 tensors widen to twice their bytes). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "core/atomic.h"
#include "io/aibox_file.h"
#include "ops/ops.h" /* the float16 conversion (half.c) */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && !defined(AIBOX_IO_PORTABLE)
#define HOST_LE 1
#else
#define HOST_LE 0
#endif

static const unsigned char MAGIC[8] = {'A', 'I', 'B', 'O', 'X', 0x00, 'M', 'D'};

enum {
    ENVELOPE = 24,   /* magic, version, flags, file_size: the same in every version */
    TRAILER = 4,     /* CRC-32 */
    HEADER_V1 = 80,
    HEAD_PEEK = 64,  /* bytes inspected to recognise foreign formats */
    META_MIN = 8,    /* smallest metadata entry: u16 len, 1-byte key, u8 type, u32 (empty string) */
    INDEX_MIN = 29   /* smallest index entry: u16, 1-byte name, u8, u8, one u64 dim, u64, u64 */
};

/* ------------------------------------------------------------------ byte codecs */
static uint16_t get_u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get_u64(const unsigned char *p) { return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32); }
static void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void put_u32(unsigned char *p, uint32_t v)
{
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(v >> (8 * k));
}
static void put_u64(unsigned char *p, uint64_t v)
{
    for (int k = 0; k < 8; k++) p[k] = (unsigned char)(v >> (8 * k));
}
/* Two's complement without implementation-defined conversions. */
static int64_t u64_to_i64(uint64_t v) { return v <= INT64_MAX ? (int64_t)v : -(int64_t)(~v) - 1; }
static uint64_t f64_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

/* zlib's crc32 takes a uInt length: feed large buffers in pieces. */
static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t n)
{
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return crc;
}

/* ------------------------------------------------------------------ recognising files */
static int has(const unsigned char *p, size_t n, size_t off, const char *lit, size_t litlen)
{
    return n >= off + litlen && memcmp(p + off, lit, litlen) == 0;
}
#define HAS(off, lit) has(p, n, (off), (lit), sizeof(lit) - 1)

static int looks_like_text(const unsigned char *p, size_t n)
{
    if (n == 0) return 0;
    for (size_t k = 0; k < n; k++) {
        unsigned char c = p[k];
        if (c == '\t' || c == '\n' || c == '\r' || (c >= 0x20 && c < 0x7f) || c >= 0x80) continue;
        return 0;
    }
    return 1;
}

static int starts_ci(const unsigned char *p, size_t n, const char *lit)
{
    size_t k = 0;
    while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r' || p[k] == '\n')) k++;
    for (size_t j = 0; lit[j]; j++, k++) {
        if (k >= n) return 0;
        unsigned char c = p[k];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)lit[j]) return 0;
    }
    return 1;
}

/* Names the format a wrong file seems to be, so the message says what to do. */
static const char *guess_format(const unsigned char *p, size_t n)
{
    switch (aibox_model_format_sniff(p, n)) { /* the formats aibox_import (aibox-import) converts */
    case AIBOX_FORMAT_TFLITE: return "a TensorFlow Lite model (aibox-import or aibox_import turns it into .aibox)";
    case AIBOX_FORMAT_SAFETENSORS: return "a safetensors file (aibox-import or aibox_import turns it into .aibox)";
    default: break;
    }
    if (HAS(0, "\x89PNG\r\n\x1a\n")) return "a PNG image";
    if (HAS(0, "\xff\xd8\xff")) return "a JPEG image";
    if (HAS(0, "GIF8")) return "a GIF image";
    if (HAS(0, "II*\0") || HAS(0, "MM\0*")) return "a TIFF image";
    if (HAS(0, "PK\x03\x04") || HAS(0, "PK\x05\x06"))
        return "a ZIP archive (a PyTorch .pt/.pth checkpoint or a Keras .keras file?)";
    if (HAS(0, "\x89HDF\r\n\x1a\n")) return "an HDF5 file (a Keras .h5 model?)";
    if (HAS(0, "GGUF")) return "a GGUF model";
    if (HAS(0, "\x93NUMPY")) return "a NumPy array";
    if (HAS(0, "\x1f\x8b")) return "a gzip-compressed file (decompress it first)";
    if (n >= 2 && p[0] == 0x80 && p[1] >= 2 && p[1] <= 5) return "a Python pickle (an old PyTorch checkpoint?)";
    if (HAS(0, "version https://git-lfs"))
        return "a Git LFS pointer, not the model itself (run `git lfs pull`)";
    if (looks_like_text(p, n)) {
        if (starts_ci(p, n, "<!doctype html") || starts_ci(p, n, "<html"))
            return "an HTML page (a failed download?)";
        return "a text file";
    }
    return NULL;
}

/* The checks that need only the first bytes: used before reading a whole
 * file so a wrong file costs no big allocation. */
static aibox_status check_magic(const unsigned char *head, size_t head_len, uint64_t total, const char *name,
                                aibox_error *err)
{
    if (total == 0) return aibox_fail(err, AIBOX_E_CORRUPT, "%s: file is empty (0 bytes): an interrupted copy or save?", name);
    size_t m = head_len < sizeof MAGIC ? head_len : sizeof MAGIC;
    if (memcmp(head, MAGIC, m) == 0) {
        if (total < sizeof MAGIC)
            return aibox_fail(err, AIBOX_E_CORRUPT, "%s: truncated: only %llu bytes, less than the %d-byte header",
                              name, (unsigned long long)total, HEADER_V1);
        return AIBOX_OK;
    }
    const char *g = guess_format(head, head_len);
    if (g) return aibox_fail(err, AIBOX_E_FORMAT, "%s: not an aibox model file: this looks like %s", name, g);
    char hex[3 * sizeof MAGIC + 1] = "";
    for (size_t k = 0; k < m; k++) snprintf(hex + (k ? 3 * k - 1 : 0), 4, "%s%02x", k ? " " : "", head[k]);
    return aibox_fail(err, AIBOX_E_FORMAT,
                      "%s: not an aibox model file (it starts with bytes %s, not the aibox magic 41 49 42 4f 58 00 4d 44)",
                      name, hex);
}

/* CRC of the body as it would be with file_size set to `size`: tells a
 * damaged size field apart from a really truncated or extended file. */
static uint32_t crc_with_size(const unsigned char *b, size_t len, uint64_t size)
{
    unsigned char s[8];
    put_u64(s, size);
    uint32_t crc = crc_update(0, b, 16);
    crc = crc_update(crc, s, 8);
    return crc_update(crc, b + ENVELOPE, len - TRAILER - ENVELOPE);
}

/* Magic, size, CRC, version — in that order, and before any parsing. */
static aibox_status check_envelope(const unsigned char *b, size_t len, const char *name, aibox_error *err)
{
    aibox_status st = check_magic(b, len < HEAD_PEEK ? len : HEAD_PEEK, len, name, err);
    if (st) return st;
    if (len < ENVELOPE)
        return aibox_fail(err, AIBOX_E_CORRUPT, "%s: truncated: only %zu bytes, less than the %d-byte header", name,
                          len, HEADER_V1);
    uint64_t fsz = get_u64(b + 16);
    if (fsz != len && len >= ENVELOPE + TRAILER) {
        if (crc_with_size(b, len, len) == get_u32(b + len - TRAILER))
            return aibox_fail(err, AIBOX_E_CORRUPT,
                              "%s: checksum mismatch: the file is damaged (its size field says %llu bytes, it has %zu)",
                              name, (unsigned long long)fsz, len);
        if (fsz < len) {
            if (fsz >= ENVELOPE + TRAILER &&
                crc_update(0, b, (size_t)fsz - TRAILER) == get_u32(b + (size_t)fsz - TRAILER))
                return aibox_fail(err, AIBOX_E_CORRUPT,
                                  "%s: %llu unexpected bytes after the end of the model (which ends at byte %llu): "
                                  "were they appended?",
                                  name, (unsigned long long)(len - fsz), (unsigned long long)fsz);
            return aibox_fail(err, AIBOX_E_CORRUPT, "%s: damaged: the header says %llu bytes but the file has %zu",
                              name, (unsigned long long)fsz, len);
        }
    }
    if (fsz > len)
        return aibox_fail(err, AIBOX_E_CORRUPT,
                          "%s: truncated: expected %llu bytes, got %zu (an interrupted copy, download or save?)", name,
                          (unsigned long long)fsz, len);
    if (fsz != len)
        return aibox_fail(err, AIBOX_E_CORRUPT, "%s: damaged: the header says %llu bytes but the file has %zu", name,
                          (unsigned long long)fsz, len);
    if (len < ENVELOPE + TRAILER)
        return aibox_fail(err, AIBOX_E_CORRUPT, "%s: truncated: only %zu bytes, less than the %d-byte header", name,
                          len, HEADER_V1);
    uint32_t stored = get_u32(b + len - TRAILER), computed = crc_update(0, b, len - TRAILER);
    if (stored != computed)
        return aibox_fail(err, AIBOX_E_CORRUPT,
                          "%s: checksum mismatch: the file is damaged (stored CRC-32 %08x, computed %08x); "
                          "copy or save it again",
                          name, (unsigned)stored, (unsigned)computed);
    uint32_t version = get_u32(b + 8);
    if (version == 0)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: invalid format version 0 (this library reads version %d)", name,
                          AIBOX_FILE_VERSION);
    if (version != AIBOX_FILE_VERSION)
        return aibox_fail(err, AIBOX_E_UNSUPPORTED,
                          "%s: unsupported format version %u: this library (libaibox %s) reads version %d; "
                          "a newer libaibox wrote it",
                          name, (unsigned)version, AIBOX_VERSION, AIBOX_FILE_VERSION);
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ parsing v1 */
typedef struct cursor {
    const unsigned char *b;
    uint64_t pos, end;
} cursor;

static int take(cursor *c, uint64_t n, const unsigned char **p)
{
    if (c->end - c->pos < n) return 0;
    *p = c->b + c->pos;
    c->pos += n;
    return 1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* The first name that occurs twice, or NULL. Sorting keeps this
 * O(n log n) for a hostile file with a million entries. */
static const char *first_duplicate(const char **names, size_t n)
{
    if (n < 2) return NULL;
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t k = 1; k < n; k++)
        if (strcmp(names[k - 1], names[k]) == 0) return names[k];
    return NULL;
}

static char *dup_bytes(const unsigned char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

#define STRUCT_FAIL(...) aibox_fail(err, AIBOX_E_FORMAT, __VA_ARGS__)
#define NOMEM_FAIL(what) aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory reading %s", name, what)

/* Reads a string value (u32 length, UTF-8 bytes) into a new C string. */
static aibox_status read_string(cursor *c, const char *name, const char *key, char **out, aibox_error *err)
{
    const unsigned char *p;
    if (!take(c, 4, &p)) return STRUCT_FAIL("%s: metadata \"%s\" runs past the end of the metadata section", name, key);
    uint32_t len = get_u32(p);
    if (len > AIBOX_FILE_MAX_STR)
        return STRUCT_FAIL("%s: metadata \"%s\" has a %u-byte string (at most %d allowed)", name, key, (unsigned)len,
                           AIBOX_FILE_MAX_STR);
    if (!take(c, len, &p)) return STRUCT_FAIL("%s: metadata \"%s\" runs past the end of the metadata section", name, key);
    if (!aibox_utf8_valid((const char *)p, len))
        return STRUCT_FAIL("%s: metadata \"%s\" has a string that is not valid UTF-8 (or contains NUL)", name, key);
    if (!(*out = dup_bytes(p, len))) return NOMEM_FAIL("metadata");
    return AIBOX_OK;
}

/* Reads one name (u16 length, bytes) shared by keys and tensor names. */
static aibox_status read_name(cursor *c, const char *name, const char *what, uint32_t idx, const char *section,
                              char **out, aibox_error *err)
{
    const unsigned char *p;
    if (!take(c, 2, &p)) return STRUCT_FAIL("%s: %s %u runs past the end of the %s section", name, what, (unsigned)idx, section);
    uint16_t len = get_u16(p);
    if (len == 0 || len > AIBOX_FILE_MAX_NAME)
        return STRUCT_FAIL("%s: %s %u has a %u-byte name (1 to %d allowed)", name, what, (unsigned)idx, (unsigned)len,
                           AIBOX_FILE_MAX_NAME);
    if (!take(c, len, &p)) return STRUCT_FAIL("%s: %s %u runs past the end of the %s section", name, what, (unsigned)idx, section);
    if (aibox_meta_name_problem((const char *)p, len))
        return STRUCT_FAIL("%s: %s %u has a name with bytes outside printable ASCII", name, what, (unsigned)idx);
    if (!(*out = dup_bytes(p, len))) return NOMEM_FAIL(section);
    return AIBOX_OK;
}

static aibox_status parse_meta(const unsigned char *b, uint64_t off, uint64_t size, uint32_t count, const char *name,
                               aibox_meta_list *l, aibox_error *err)
{
    /* Bound the allocation by the bytes present, not by the claimed count. */
    if (count > size / META_MIN)
        return STRUCT_FAIL("%s: %u metadata entries cannot fit in a %llu-byte metadata section", name,
                           (unsigned)count, (unsigned long long)size);
    if (count == 0) {
        if (size != 0) return STRUCT_FAIL("%s: %llu unused bytes in the metadata section", name, (unsigned long long)size);
        return AIBOX_OK;
    }
    l->items = calloc(count, sizeof *l->items);
    if (!l->items) return NOMEM_FAIL("metadata");
    l->cap = (int)count;
    cursor c = {b, off, off + size};
    aibox_status st;
    const unsigned char *p;
    for (uint32_t k = 0; k < count; k++) {
        aibox_meta *m = &l->items[k];
        l->count = (int)k + 1; /* so a failure below frees this partial entry */
        if ((st = read_name(&c, name, "metadata entry", k, "metadata", &m->key, err))) return st;
        if (!take(&c, 1, &p)) return STRUCT_FAIL("%s: metadata \"%s\" runs past the end of the metadata section", name, m->key);
        unsigned type = p[0];
        m->n = 1;
        switch (type) {
        case AIBOX_META_INT:
        case AIBOX_META_FLOAT:
            if (!take(&c, 8, &p))
                return STRUCT_FAIL("%s: metadata \"%s\" runs past the end of the metadata section", name, m->key);
            if (type == AIBOX_META_INT) m->i = u64_to_i64(get_u64(p));
            else {
                uint64_t u = get_u64(p);
                memcpy(&m->f, &u, sizeof u);
            }
            break;
        case AIBOX_META_STR:
            if ((st = read_string(&c, name, m->key, &m->s, err))) return st;
            break;
        case AIBOX_META_INTS:
        case AIBOX_META_FLOATS:
        case AIBOX_META_STRS: {
            if (!take(&c, 4, &p))
                return STRUCT_FAIL("%s: metadata \"%s\" runs past the end of the metadata section", name, m->key);
            uint32_t n = get_u32(p);
            if (n > AIBOX_FILE_MAX_ARRAY)
                return STRUCT_FAIL("%s: metadata \"%s\" claims %u elements (at most %d allowed)", name, m->key,
                                   (unsigned)n, AIBOX_FILE_MAX_ARRAY);
            /* Every element takes at least 4 (strings) or 8 bytes: check before allocating. */
            uint64_t least = (uint64_t)n * (type == AIBOX_META_STRS ? 4 : 8);
            if (c.end - c.pos < least)
                return STRUCT_FAIL("%s: metadata \"%s\" has %u elements that run past the end of the metadata section",
                                   name, m->key, (unsigned)n);
            m->n = (int)n;
            if (n == 0) break;
            if (type == AIBOX_META_STRS) {
                if (!(m->strs = calloc(n, sizeof *m->strs))) return NOMEM_FAIL("metadata");
                for (uint32_t j = 0; j < n; j++)
                    if ((st = read_string(&c, name, m->key, &m->strs[j], err))) return st;
            } else {
                take(&c, least, &p);
                if (type == AIBOX_META_INTS) {
                    if (!(m->ints = malloc(n * sizeof *m->ints))) return NOMEM_FAIL("metadata");
                    for (uint32_t j = 0; j < n; j++) m->ints[j] = u64_to_i64(get_u64(p + 8 * j));
                } else {
                    if (!(m->floats = malloc(n * sizeof *m->floats))) return NOMEM_FAIL("metadata");
                    for (uint32_t j = 0; j < n; j++) {
                        uint64_t u = get_u64(p + 8 * j);
                        memcpy(&m->floats[j], &u, sizeof u);
                    }
                }
            }
            break;
        }
        default:
            return STRUCT_FAIL("%s: metadata \"%s\" has unknown type %u (1 to 6 are defined)", name, m->key, type);
        }
        m->type = (aibox_meta_type)type;
    }
    if (c.pos != c.end)
        return STRUCT_FAIL("%s: %llu unused bytes at the end of the metadata section", name,
                           (unsigned long long)(c.end - c.pos));
    const char **keys = malloc(count * sizeof *keys);
    if (!keys) return NOMEM_FAIL("metadata");
    for (uint32_t k = 0; k < count; k++) keys[k] = l->items[k].key;
    const char *dup = first_duplicate(keys, count);
    st = dup ? STRUCT_FAIL("%s: duplicate metadata key \"%s\"", name, dup) : AIBOX_OK;
    free(keys);
    return st;
}

/* Bytes per stored element of a dtype (0 on writing: float32). */
static uint64_t dtype_size(int dtype) { return dtype == AIBOX_FILE_F16 ? 2 : dtype == AIBOX_FILE_I8 ? 1 : 4; }
static int dtype_known(int dtype) { return dtype >= AIBOX_FILE_F32 && dtype <= AIBOX_FILE_I32; }

/* The tensors not stored as float32, checked by parse_index, to float32
 * copies in one buffer (each 64-byte aligned, as tensors in the blob are),
 * exactly: every half and int8 is a float; an int32 beyond +-2^24 (which a
 * float would round) is refused. At most 4 bytes per byte of the file, plus
 * alignment. */
static aibox_status widen(aibox_file *f, const char *name, aibox_error *err)
{
    size_t total = 0;
    for (int k = 0; k < f->n_tensors; k++) {
        const aibox_file_entry *t = &f->tensors[k];
        if (t->dtype == AIBOX_FILE_F32) continue;
        size_t bytes = (t->count * sizeof(float) + AIBOX_FILE_ALIGN - 1) / AIBOX_FILE_ALIGN * AIBOX_FILE_ALIGN;
        if (__builtin_add_overflow(total, bytes, &total))
            return aibox_fail(err, AIBOX_E_NOMEM, "%s: the float16 and integer tensors are too large to widen", name);
    }
    if (!total) return AIBOX_OK;
    if (!(f->wide = aibox_alloc(total)))
        return aibox_fail(err, AIBOX_E_NOMEM, "%s: cannot allocate %zu bytes for the float16 and integer tensors as "
                          "float32", name, total);
    unsigned features = aibox_cpu_features(); /* once per file: cpuid is slow in a VM */
    unsigned char *at = f->wide;
    for (int k = 0; k < f->n_tensors; k++) {
        aibox_file_entry *t = &f->tensors[k];
        if (t->dtype == AIBOX_FILE_F32) continue;
        const unsigned char *src = (const unsigned char *)t->data;
        float *dst = (float *)(void *)at;
        if (t->dtype == AIBOX_FILE_I8) {
            for (size_t j = 0; j < t->count; j++) dst[j] = (float)(int8_t)src[j];
        } else if (t->dtype == AIBOX_FILE_I32) {
            for (size_t j = 0; j < t->count; j++) {
                int32_t v = (int32_t)get_u32(src + 4 * j);
                if (v < -AIBOX_FILE_I32_MAX || v > AIBOX_FILE_I32_MAX)
                    return STRUCT_FAIL("%s: tensor \"%s\" holds the int32 %ld at %zu, beyond the +-2^24 a model's "
                                       "integers may reach", name, t->name, (long)v, j);
                dst[j] = (float)v;
            }
        } else if (HOST_LE) {
            aibox_f16_to_f32((const uint16_t *)(const void *)src, dst, t->count, features); /* 64-aligned in blob */
        } else {
            uint16_t tmp[1024];
            for (size_t j = 0; j < t->count; j += 1024) {
                size_t n = t->count - j < 1024 ? t->count - j : 1024;
                for (size_t i = 0; i < n; i++) tmp[i] = get_u16(src + 2 * (j + i));
                aibox_f16_to_f32(tmp, dst + j, n, features);
            }
        }
        t->data = dst;
        at += (t->count * sizeof(float) + AIBOX_FILE_ALIGN - 1) / AIBOX_FILE_ALIGN * AIBOX_FILE_ALIGN;
    }
    return AIBOX_OK;
}

static aibox_status parse_index(unsigned char *b, uint64_t off, uint64_t size, uint32_t count, uint64_t data_off,
                                uint64_t data_end, int have_data, const char *name, aibox_file *f, aibox_error *err)
{
    if (count > size / INDEX_MIN)
        return STRUCT_FAIL("%s: %u tensors cannot fit in a %llu-byte tensor index", name, (unsigned)count,
                           (unsigned long long)size);
    if (count == 0) {
        if (size != 0) return STRUCT_FAIL("%s: %llu unused bytes in the tensor index", name, (unsigned long long)size);
        return AIBOX_OK;
    }
    f->tensors = calloc(count, sizeof *f->tensors);
    if (!f->tensors) return NOMEM_FAIL("the tensor index");
    cursor c = {b, off, off + size};
    uint64_t prev_end = data_off;
    aibox_status st;
    const unsigned char *p;
    for (uint32_t k = 0; k < count; k++) {
        aibox_file_entry *t = &f->tensors[k];
        f->n_tensors = (int)k + 1; /* so a failure below frees this name */
        if ((st = read_name(&c, name, "tensor", k, "tensor index", &t->name, err))) return st;
        const char *tn = t->name;
        if (!take(&c, 2, &p)) return STRUCT_FAIL("%s: tensor \"%s\" runs past the end of the tensor index", name, tn);
        unsigned dtype = p[0], ndim = p[1];
        if (ndim < 1 || ndim > 4)
            return STRUCT_FAIL("%s: tensor \"%s\" has %u dimensions (1 to 4 allowed)", name, tn, ndim);
        if (!take(&c, 8 * (uint64_t)ndim + 16, &p))
            return STRUCT_FAIL("%s: tensor \"%s\" runs past the end of the tensor index", name, tn);
        uint64_t count_el = 1;
        char shape[128] = "";
        size_t sl = 0;
        for (unsigned d = 0; d < ndim; d++) {
            uint64_t v = get_u64(p + 8 * d);
            if (v > (uint64_t)AIBOX_FILE_MAX_DIM)
                return STRUCT_FAIL("%s: tensor \"%s\" dimension %u is %llu (at most %lld allowed)", name, tn, d,
                                   (unsigned long long)v, AIBOX_FILE_MAX_DIM);
            t->dims[d] = (int64_t)v;
            /* Each factor < 2^31 and at most 4 of them: overflow is still
             * possible in 64 bits, so check. */
            if (__builtin_mul_overflow(count_el, v, &count_el))
                return STRUCT_FAIL("%s: tensor \"%s\" element count overflows", name, tn);
            sl += (size_t)snprintf(shape + sl, sizeof shape - sl, "%s%llu", d ? "x" : "", (unsigned long long)v);
        }
        t->ndim = (int)ndim;
        uint64_t toff = get_u64(p + 8 * ndim), nbytes = get_u64(p + 8 * ndim + 8);
        if (!dtype_known((int)dtype))
            return STRUCT_FAIL("%s: tensor \"%s\" has unknown dtype %u (1 float32, 2 float16, 3 int8 and 4 int32 "
                               "are defined)",
                               name, tn, dtype);
        t->dtype = (int)dtype;
        uint64_t want, es = dtype_size((int)dtype);
        /* the float32 count (what a float16 tensor widens to) must fit in memory too */
        if (__builtin_mul_overflow(count_el, es, &want) || count_el > SIZE_MAX / sizeof(float))
            return STRUCT_FAIL("%s: tensor \"%s\" of shape %s is too large", name, tn, shape);
        if (nbytes != want)
            return STRUCT_FAIL("%s: tensor \"%s\" has %llu data bytes, but shape %s needs %llu%s", name, tn,
                               (unsigned long long)nbytes, shape, (unsigned long long)want,
                               dtype == AIBOX_FILE_F16 ? " (float16)" : dtype == AIBOX_FILE_I8 ? " (int8)" : "");
        if (toff % AIBOX_FILE_ALIGN)
            return STRUCT_FAIL("%s: tensor \"%s\" data offset %llu is not a multiple of %d", name, tn,
                               (unsigned long long)toff, AIBOX_FILE_ALIGN);
        if (toff < data_off || toff > data_end || nbytes > data_end - toff)
            return STRUCT_FAIL("%s: tensor \"%s\" data (offset %llu, %llu bytes) lies outside the data section "
                               "(bytes %llu to %llu)",
                               name, tn, (unsigned long long)toff, (unsigned long long)nbytes,
                               (unsigned long long)data_off, (unsigned long long)data_end);
        if (toff < prev_end)
            return STRUCT_FAIL("%s: tensor \"%s\" data at offset %llu overlaps the previous tensor's "
                               "(tensors must be stored in index order)",
                               name, tn, (unsigned long long)toff);
        prev_end = toff + nbytes;
        /* a tensor not stored as float32 points at its bytes until widen replaces it */
        t->data = have_data ? (float *)(void *)(b + toff) : NULL;
        t->count = (size_t)count_el;
    }
    if (c.pos != c.end)
        return STRUCT_FAIL("%s: %llu unused bytes at the end of the tensor index", name,
                           (unsigned long long)(c.end - c.pos));
    const char **names = malloc(count * sizeof *names);
    if (!names) return NOMEM_FAIL("the tensor index");
    for (uint32_t k = 0; k < count; k++) names[k] = f->tensors[k].name;
    const char *dup = first_duplicate(names, count);
    st = dup ? STRUCT_FAIL("%s: duplicate tensor name \"%s\"", name, dup) : AIBOX_OK;
    free(names);
    if (st) return st;
    if (!HOST_LE && have_data) {
        /* Little-endian bytes to host floats, in place. */
        for (uint32_t k = 0; k < count; k++) {
            if (f->tensors[k].dtype != AIBOX_FILE_F32) continue;
            unsigned char *q = (unsigned char *)f->tensors[k].data;
            for (size_t j = 0; j < f->tensors[k].count; j++, q += 4) {
                uint32_t v = get_u32(q);
                memcpy(q, &v, 4);
            }
        }
    }
    return have_data ? widen(f, name, err) : AIBOX_OK;
}

/* Does [off, off+size) fit in [lo, hi]? Written without off+size overflow. */
static int section_fits(uint64_t off, uint64_t size, uint64_t lo, uint64_t hi)
{
    return off >= lo && off <= hi && size <= hi - off;
}

/* Everything after the envelope: header fields, sections, metadata, index.
 * blob holds the file's first `have` bytes of `len` (all of them, or with
 * have_data 0 at least up to data_offset). Takes ownership of blob. */
static aibox_status parse_body(unsigned char *blob, size_t have, size_t len, int have_data, const char *name,
                               aibox_file **out, aibox_error *err)
{
    aibox_status st;
    aibox_file *f = calloc(1, sizeof *f);
    if (!f) {
        aibox_free(blob);
        return NOMEM_FAIL("the file");
    }
    f->blob = blob;
    uint64_t body_end = len - TRAILER;
    if (len < HEADER_V1 + TRAILER) {
        st = STRUCT_FAIL("%s: %zu bytes cannot hold the %d-byte version 1 header and the checksum", name, len, HEADER_V1);
        goto fail;
    }
    uint32_t flags = get_u32(blob + 12), meta_count = get_u32(blob + 24), tensor_count = get_u32(blob + 28);
    uint64_t meta_off = get_u64(blob + 32), meta_size = get_u64(blob + 40);
    uint64_t idx_off = get_u64(blob + 48), idx_size = get_u64(blob + 56);
    uint64_t data_off = get_u64(blob + 64), data_size = get_u64(blob + 72);
    if (flags) {
        st = STRUCT_FAIL("%s: unknown header flags %08x (version 1 defines none)", name, (unsigned)flags);
        goto fail;
    }
    if (meta_count > AIBOX_FILE_MAX_ENTRIES || tensor_count > AIBOX_FILE_MAX_ENTRIES) {
        st = STRUCT_FAIL("%s: %u metadata entries and %u tensors claimed (at most %d each)", name,
                         (unsigned)meta_count, (unsigned)tensor_count, AIBOX_FILE_MAX_ENTRIES);
        goto fail;
    }
    if (!section_fits(meta_off, meta_size, HEADER_V1, body_end)) {
        st = STRUCT_FAIL("%s: metadata section (offset %llu, %llu bytes) lies outside bytes %d to %llu", name,
                         (unsigned long long)meta_off, (unsigned long long)meta_size, HEADER_V1,
                         (unsigned long long)body_end);
        goto fail;
    }
    if (!section_fits(idx_off, idx_size, meta_off + meta_size, body_end)) {
        st = STRUCT_FAIL("%s: tensor index (offset %llu, %llu bytes) lies outside bytes %llu to %llu", name,
                         (unsigned long long)idx_off, (unsigned long long)idx_size,
                         (unsigned long long)(meta_off + meta_size), (unsigned long long)body_end);
        goto fail;
    }
    if (!section_fits(data_off, data_size, idx_off + idx_size, body_end) || data_off % AIBOX_FILE_ALIGN) {
        st = STRUCT_FAIL("%s: data section (offset %llu, %llu bytes) lies outside bytes %llu to %llu or is not "
                         "%d-byte aligned",
                         name, (unsigned long long)data_off, (unsigned long long)data_size,
                         (unsigned long long)(idx_off + idx_size), (unsigned long long)body_end, AIBOX_FILE_ALIGN);
        goto fail;
    }
    if (!have_data && data_off > have) { /* the caller read up to data_offset: never true, kept as a guard */
        st = aibox_fail(err, AIBOX_E_STATE, "%s: internal error: %zu bytes read, the index ends at %llu", name, have,
                        (unsigned long long)data_off);
        goto fail;
    }
    if ((st = parse_meta(blob, meta_off, meta_size, meta_count, name, &f->meta, err))) goto fail;
    if ((st = parse_index(blob, idx_off, idx_size, tensor_count, data_off, data_off + data_size, have_data, name, f,
                          err)))
        goto fail;
    *out = f;
    return AIBOX_OK;
fail:
    aibox_file_free(&f);
    return st;
}

/* Takes ownership of blob (freed on failure). */
static aibox_status parse_blob(unsigned char *blob, size_t len, const char *name, aibox_file **out, aibox_error *err)
{
    aibox_status st = check_envelope(blob, len, name, err);
    if (st) {
        aibox_free(blob);
        return st;
    }
    return parse_body(blob, len, len, 1, name, out, err);
}

aibox_status aibox_file_read_mem(const void *buf, size_t len, const char *name, aibox_file **out, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "aibox file: NULL output");
    *out = NULL;
    if (!name) name = "(memory)";
    if (!buf && len) return aibox_fail(err, AIBOX_E_INVALID, "%s: NULL buffer of %zu bytes", name, len);
    aibox_status st = check_magic(buf, len < HEAD_PEEK ? len : HEAD_PEEK, len, name, err);
    if (st) return st;
    /* A copy: the caller's bytes need not be aligned, and the file owns its data. */
    unsigned char *blob = aibox_alloc(len);
    if (!blob) return aibox_fail(err, AIBOX_E_NOMEM, "%s: cannot allocate %zu bytes for the file", name, len);
    memcpy(blob, buf, len);
    return parse_blob(blob, len, name, out, err);
}

/* pread until n bytes or end of file; returns bytes read or -1 (errno). */
static ssize_t read_full(int fd, unsigned char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t ask = n - got > ((size_t)1 << 30) ? ((size_t)1 << 30) : n - got;
        ssize_t r = pread(fd, p + got, ask, (off_t)got);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break; /* the file shrank; the parser reports truncation */
        got += (size_t)r;
    }
    return (ssize_t)got;
}

aibox_status aibox_file_read(const char *path, aibox_file **out, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "aibox file: NULL output");
    *out = NULL;
    if (!path) return aibox_fail(err, AIBOX_E_INVALID, "aibox file: NULL path");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return aibox_fail(err, errno == ENOENT ? AIBOX_E_NOTFOUND : AIBOX_E_IO, "%s: cannot open: %s", path,
                          strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        aibox_status st = aibox_fail(err, AIBOX_E_IO, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return st;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return aibox_fail(err, AIBOX_E_IO, "%s: not a regular file", path);
    }
    uint64_t size = (uint64_t)sb.st_size;
    unsigned char head[HEAD_PEEK];
    ssize_t hn = read_full(fd, head, size < HEAD_PEEK ? (size_t)size : HEAD_PEEK);
    aibox_status st = hn < 0 ? aibox_fail(err, AIBOX_E_IO, "%s: cannot read: %s", path, strerror(errno))
                             : check_magic(head, (size_t)hn, size, path, err);
    if (st) {
        close(fd);
        return st;
    }
    /* the magic is right: the whole file, through the library's one reader (aligned for the tensors) */
    unsigned char *blob = NULL;
    size_t len = 0;
    if (lseek(fd, 0, SEEK_SET) != 0) st = aibox_fail(err, AIBOX_E_IO, "%s: cannot seek: %s", path, strerror(errno));
    else st = aibox_read_fd_ex(fd, path, 0, 1, &blob, &len, err);
    close(fd);
    return st ? st : parse_blob(blob, len, path, out, err);
}

/* The metadata and index only: the first data_offset bytes are kept, the
 * rest streams through the CRC in 1 MB pieces. Anything unusual in the
 * envelope (size, CRC, version) goes to the whole-file reader, whose
 * diagnosis is the same and whose cost is still the file's own size. */
aibox_status aibox_file_read_index(const char *path, aibox_file **out, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "aibox file: NULL output");
    *out = NULL;
    if (!path) return aibox_fail(err, AIBOX_E_INVALID, "aibox file: NULL path");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return aibox_file_read(path, out, err);
    struct stat sb;
    unsigned char head[HEADER_V1];
    uint64_t size = 0, data_off = 0;
    int simple = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && (size = (uint64_t)sb.st_size) >= HEADER_V1 + TRAILER &&
                 read_full(fd, head, HEADER_V1) == HEADER_V1 && memcmp(head, MAGIC, sizeof MAGIC) == 0 &&
                 get_u64(head + 16) == size && get_u32(head + 8) == AIBOX_FILE_VERSION &&
                 (data_off = get_u64(head + 64)) >= HEADER_V1 && data_off <= size - TRAILER && data_off <= SIZE_MAX;
    unsigned char *blob = simple ? aibox_alloc((size_t)data_off) : NULL;
    unsigned char *buf = simple ? malloc((size_t)1 << 20) : NULL;
    uint32_t crc = 0;
    if (blob && buf && read_full(fd, blob, (size_t)data_off) == (ssize_t)data_off) {
        crc = crc_update(0, blob, (size_t)data_off);
        uint64_t pos = data_off, end = size - TRAILER;
        while (simple && pos < end) {
            size_t n = end - pos < ((uint64_t)1 << 20) ? (size_t)(end - pos) : (size_t)1 << 20;
            ssize_t r = pread(fd, buf, n, (off_t)pos);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) simple = 0;
            else crc = crc_update(crc, buf, (size_t)r), pos += (uint64_t)r;
        }
        unsigned char t[TRAILER];
        simple = simple && pread(fd, t, TRAILER, (off_t)end) == TRAILER && get_u32(t) == crc;
    } else {
        simple = 0;
    }
    free(buf);
    close(fd);
    if (!simple) {
        aibox_free(blob);
        return aibox_file_read(path, out, err);
    }
    return parse_body(blob, (size_t)data_off, (size_t)size, 0, path, out, err);
}

void aibox_file_free(aibox_file **pf)
{
    if (!pf || !*pf) return;
    aibox_file *f = *pf;
    aibox_meta_list_free(&f->meta);
    if (f->tensors)
        for (int k = 0; k < f->n_tensors; k++) free(f->tensors[k].name);
    free(f->tensors);
    aibox_free(f->blob);
    aibox_free(f->wide);
    free(f);
    *pf = NULL;
}

const float *aibox_file_tensor_data(const aibox_file *f, const char *name, int *ndim, int64_t dims[4])
{
    if (!f || !name) return NULL;
    for (int k = 0; k < f->n_tensors; k++) {
        if (strcmp(f->tensors[k].name, name) != 0) continue;
        if (ndim) *ndim = f->tensors[k].ndim;
        if (dims) memcpy(dims, f->tensors[k].dims, sizeof f->tensors[k].dims);
        return f->tensors[k].data;
    }
    return NULL;
}

/* ------------------------------------------------------------------ writing */
typedef struct writer {
    aibox_atomic *out;
    unsigned char *buf;
    size_t used, cap;
    uint64_t pos; /* bytes handed to the writer */
    uint32_t crc;
} writer;

static void w_flush(writer *w)
{
    aibox_atomic_write(w->out, w->buf, w->used); /* a failure is sticky in the atomic writer */
    w->used = 0;
}

static void w_bytes(writer *w, const void *p, size_t n, int in_crc)
{
    const unsigned char *q = p;
    if (in_crc) w->crc = crc_update(w->crc, q, n);
    w->pos += n;
    while (n > 0) {
        size_t k = w->cap - w->used < n ? w->cap - w->used : n;
        memcpy(w->buf + w->used, q, k);
        w->used += k;
        q += k;
        n -= k;
        if (w->used == w->cap) w_flush(w);
    }
}

static void w_u8(writer *w, unsigned v)
{
    unsigned char b = (unsigned char)v;
    w_bytes(w, &b, 1, 1);
}
static void w_u16(writer *w, uint16_t v)
{
    unsigned char b[2];
    put_u16(b, v);
    w_bytes(w, b, 2, 1);
}
static void w_u32(writer *w, uint32_t v)
{
    unsigned char b[4];
    put_u32(b, v);
    w_bytes(w, b, 4, 1);
}
static void w_u64(writer *w, uint64_t v)
{
    unsigned char b[8];
    put_u64(b, v);
    w_bytes(w, b, 8, 1);
}
static void w_name(writer *w, const char *s)
{
    size_t n = strlen(s);
    w_u16(w, (uint16_t)n);
    w_bytes(w, s, n, 1);
}
static void w_str(writer *w, const char *s)
{
    size_t n = strlen(s);
    w_u32(w, (uint32_t)n);
    w_bytes(w, s, n, 1);
}
static void w_zeros_to(writer *w, uint64_t target)
{
    static const unsigned char zero[AIBOX_FILE_ALIGN];
    while (w->pos < target) {
        uint64_t n = target - w->pos;
        w_bytes(w, zero, n < sizeof zero ? (size_t)n : sizeof zero, 1);
    }
}
static void w_floats(writer *w, const float *v, size_t n)
{
    if (HOST_LE) {
        w_bytes(w, v, n * sizeof *v, 1);
        return;
    }
    unsigned char tmp[4096];
    while (n > 0) {
        size_t k = n < sizeof tmp / 4 ? n : sizeof tmp / 4;
        for (size_t j = 0; j < k; j++) {
            uint32_t u;
            memcpy(&u, &v[j], 4);
            put_u32(tmp + 4 * j, u);
        }
        w_bytes(w, tmp, 4 * k, 1);
        v += k;
        n -= k;
    }
}

/* float16 storage: converted in pieces (the same bits on every path, so the
 * file stays a pure function of the tensors), little-endian. */
static void w_halves(writer *w, const float *v, size_t n, unsigned features)
{
    uint16_t h[2048];
    unsigned char tmp[sizeof h];
    while (n > 0) {
        size_t k = n < sizeof h / sizeof *h ? n : sizeof h / sizeof *h;
        aibox_f32_to_f16(v, h, k, features);
        if (HOST_LE) {
            w_bytes(w, h, 2 * k, 1);
        } else {
            for (size_t j = 0; j < k; j++) put_u16(tmp + 2 * j, h[j]);
            w_bytes(w, tmp, 2 * k, 1);
        }
        v += k;
        n -= k;
    }
}

static uint64_t elem_size(const aibox_file_tensor *t) { return dtype_size(t->dtype); }

/* int8 / int32 storage: every value an integer in range (checked before
 * anything is written: validate_and_layout), little-endian. */
static void w_ints(writer *w, const float *v, size_t n, int dtype)
{
    unsigned char tmp[4096];
    while (n > 0) {
        size_t k = n < sizeof tmp / 4 ? n : sizeof tmp / 4, bytes = 0;
        for (size_t j = 0; j < k; j++) {
            int32_t i = (int32_t)v[j];
            if (dtype == AIBOX_FILE_I8) tmp[bytes++] = (unsigned char)(int8_t)i;
            else put_u32(tmp + bytes, (uint32_t)i), bytes += 4;
        }
        w_bytes(w, tmp, bytes, 1);
        v += k;
        n -= k;
    }
}

static int add_ok(uint64_t *acc, uint64_t v) { return !__builtin_add_overflow(*acc, v, acc); }

static aibox_status meta_entry_size(const aibox_meta *m, uint64_t *size)
{
    uint64_t s = 2 + strlen(m->key) + 1;
    switch (m->type) {
    case AIBOX_META_INT:
    case AIBOX_META_FLOAT: s += 8; break;
    case AIBOX_META_STR: s += 4 + strlen(m->s); break;
    case AIBOX_META_INTS:
    case AIBOX_META_FLOATS: s += 4 + 8 * (uint64_t)m->n; break;
    case AIBOX_META_STRS:
        s += 4;
        for (int k = 0; k < m->n; k++)
            if (!add_ok(&s, 4 + strlen(m->strs[k]))) return AIBOX_E_INVALID;
        break;
    }
    return add_ok(size, s) ? AIBOX_OK : AIBOX_E_INVALID;
}

static void write_meta_entry(writer *w, const aibox_meta *m)
{
    w_name(w, m->key);
    w_u8(w, (unsigned)m->type);
    switch (m->type) {
    case AIBOX_META_INT: w_u64(w, (uint64_t)m->i); break;
    case AIBOX_META_FLOAT: w_u64(w, f64_bits(m->f)); break;
    case AIBOX_META_STR: w_str(w, m->s); break;
    case AIBOX_META_INTS:
        w_u32(w, (uint32_t)m->n);
        for (int k = 0; k < m->n; k++) w_u64(w, (uint64_t)m->ints[k]);
        break;
    case AIBOX_META_FLOATS:
        w_u32(w, (uint32_t)m->n);
        for (int k = 0; k < m->n; k++) w_u64(w, f64_bits(m->floats[k]));
        break;
    case AIBOX_META_STRS:
        w_u32(w, (uint32_t)m->n);
        for (int k = 0; k < m->n; k++) w_str(w, m->strs[k]);
        break;
    }
}

static uint64_t align_up(uint64_t v) { return (v + AIBOX_FILE_ALIGN - 1) & ~(uint64_t)(AIBOX_FILE_ALIGN - 1); }

/* Layout computed before anything touches the disk. */
typedef struct layout {
    uint64_t meta_size, idx_size, idx_off, data_off, data_size, file_size;
    uint64_t *offsets, *counts; /* per tensor */
} layout;

static aibox_status validate_and_layout(const char *path, const aibox_meta_list *meta, int n_tensors,
                                        const aibox_file_tensor *tensors, layout *lay, aibox_error *err)
{
    aibox_status st;
    int n_meta = meta ? meta->count : 0;
    if (n_meta < 0 || n_meta > AIBOX_FILE_MAX_ENTRIES || (n_meta > 0 && !meta->items))
        return aibox_fail(err, AIBOX_E_INVALID, "saving %s: %d metadata entries (0 to %d allowed)", path, n_meta,
                          AIBOX_FILE_MAX_ENTRIES);
    if (n_tensors < 0 || n_tensors > AIBOX_FILE_MAX_ENTRIES || (n_tensors > 0 && !tensors))
        return aibox_fail(err, AIBOX_E_INVALID, "saving %s: %d tensors (0 to %d allowed)", path, n_tensors,
                          AIBOX_FILE_MAX_ENTRIES);
    for (int k = 0; k < n_meta; k++) {
        aibox_error e2;
        if ((st = aibox_meta_check(&meta->items[k], &e2)))
            return aibox_fail(err, st, "saving %s: %s", path, e2.msg);
        if ((st = meta_entry_size(&meta->items[k], &lay->meta_size)))
            return aibox_fail(err, st, "saving %s: metadata too large", path);
    }
    for (int k = 0; k < n_tensors; k++) {
        const aibox_file_tensor *t = &tensors[k];
        const char *why = t->name ? aibox_meta_name_problem(t->name, strnlen(t->name, AIBOX_FILE_MAX_NAME + 1))
                                  : "is missing";
        if (why)
            return aibox_fail(err, AIBOX_E_INVALID, "saving %s: tensor %d: name %s (1 to %d printable ASCII bytes)",
                              path, k, why, AIBOX_FILE_MAX_NAME);
        if (t->ndim < 1 || t->ndim > 4)
            return aibox_fail(err, AIBOX_E_INVALID, "saving %s: tensor \"%s\": %d dimensions (1 to 4 allowed)", path,
                              t->name, t->ndim);
        if (t->dtype != 0 && !dtype_known(t->dtype))
            return aibox_fail(err, AIBOX_E_INVALID,
                              "saving %s: tensor \"%s\": dtype %d (float32 %d, float16 %d, int8 %d or int32 %d)", path,
                              t->name, t->dtype, AIBOX_FILE_F32, AIBOX_FILE_F16, AIBOX_FILE_I8, AIBOX_FILE_I32);
        uint64_t count = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->dims[d] < 0 || t->dims[d] > AIBOX_FILE_MAX_DIM)
                return aibox_fail(err, AIBOX_E_INVALID, "saving %s: tensor \"%s\": dimension %d is %lld", path,
                                  t->name, d, (long long)t->dims[d]);
            if (__builtin_mul_overflow(count, (uint64_t)t->dims[d], &count))
                return aibox_fail(err, AIBOX_E_INVALID, "saving %s: tensor \"%s\": element count overflows", path,
                                  t->name);
        }
        if (count > SIZE_MAX / sizeof(float))
            return aibox_fail(err, AIBOX_E_INVALID, "saving %s: tensor \"%s\" is too large", path, t->name);
        if (count > 0 && !t->data)
            return aibox_fail(err, AIBOX_E_INVALID, "saving %s: tensor \"%s\": NULL data", path, t->name);
        if (t->dtype == AIBOX_FILE_I8 || t->dtype == AIBOX_FILE_I32) {
            float lo = t->dtype == AIBOX_FILE_I8 ? -128.0f : (float)-AIBOX_FILE_I32_MAX;
            float hi = t->dtype == AIBOX_FILE_I8 ? 127.0f : (float)AIBOX_FILE_I32_MAX;
            for (uint64_t j = 0; j < count; j++)
                if (!(t->data[j] >= lo && t->data[j] <= hi && t->data[j] == truncf(t->data[j])))
                    return aibox_fail(err, AIBOX_E_INVALID,
                                      "saving %s: tensor \"%s\": value %g at %llu is not an integer in [%g, %g] "
                                      "(its dtype %s)",
                                      path, t->name, (double)t->data[j], (unsigned long long)j, (double)lo, (double)hi,
                                      t->dtype == AIBOX_FILE_I8 ? "int8" : "int32");
        }
        lay->counts[k] = count;
        if (!add_ok(&lay->idx_size, 2 + strlen(t->name) + 2 + 8 * (uint64_t)t->ndim + 16))
            return aibox_fail(err, AIBOX_E_INVALID, "saving %s: tensor index too large", path);
    }
    /* Names must be unique for the reader to accept the file. */
    if (n_meta > 1 || n_tensors > 1) {
        int most = n_meta > n_tensors ? n_meta : n_tensors;
        const char **names = malloc((size_t)most * sizeof *names);
        if (!names) return aibox_fail(err, AIBOX_E_NOMEM, "saving %s: out of memory", path);
        for (int k = 0; k < n_meta; k++) names[k] = meta->items[k].key;
        const char *dup = first_duplicate(names, (size_t)n_meta);
        if (dup) st = aibox_fail(err, AIBOX_E_INVALID, "saving %s: duplicate metadata key \"%s\"", path, dup);
        if (!dup) {
            for (int k = 0; k < n_tensors; k++) names[k] = tensors[k].name;
            dup = first_duplicate(names, (size_t)n_tensors);
            if (dup) st = aibox_fail(err, AIBOX_E_INVALID, "saving %s: duplicate tensor name \"%s\"", path, dup);
        }
        free(names);
        if (dup) return st;
    }
    uint64_t pos = HEADER_V1;
    int ok = add_ok(&pos, lay->meta_size);
    lay->idx_off = pos;
    ok = ok && add_ok(&pos, lay->idx_size) && pos < UINT64_MAX - AIBOX_FILE_ALIGN;
    lay->data_off = pos = align_up(pos);
    for (int k = 0; ok && k < n_tensors; k++) {
        if (pos >= UINT64_MAX - AIBOX_FILE_ALIGN) ok = 0;
        else lay->offsets[k] = pos = align_up(pos);
        ok = ok && add_ok(&pos, lay->counts[k] * elem_size(&tensors[k]));
    }
    lay->data_size = pos - lay->data_off;
    ok = ok && add_ok(&pos, TRAILER);
    if (!ok) return aibox_fail(err, AIBOX_E_INVALID, "saving %s: the file would be too large", path);
    lay->file_size = pos;
    return AIBOX_OK;
}

aibox_status aibox_file_write_ex(const char *path, const aibox_meta_list *meta, int n_tensors,
                                 const aibox_file_tensor *tensors, const aibox_file_write_opts *opts,
                                 aibox_error *err)
{
    if (!path || !*path) return aibox_fail(err, AIBOX_E_INVALID, "aibox file: empty path");
    aibox_atomic_faults faults = {.fail_after_bytes = -1};
    if (opts) faults = (aibox_atomic_faults){opts->fail_after_bytes, opts->fail_fsync, opts->fail_rename};
    layout lay = {0};
    size_t nt = n_tensors > 0 ? (size_t)n_tensors : 1;
    lay.offsets = calloc(nt, sizeof *lay.offsets);
    lay.counts = calloc(nt, sizeof *lay.counts);
    writer w = {.cap = (size_t)1 << 18};
    w.buf = malloc(w.cap);
    aibox_status st;
    if (!lay.offsets || !lay.counts || !w.buf) {
        st = aibox_fail(err, AIBOX_E_NOMEM, "saving %s: out of memory", path);
        goto done;
    }
    if ((st = validate_and_layout(path, meta, n_tensors, tensors, &lay, err))) goto done;
    if ((st = aibox_atomic_begin(&w.out, path, &faults, err))) goto done;
    int n_meta = meta ? meta->count : 0;
    unsigned char hdr[HEADER_V1] = {0};
    memcpy(hdr, MAGIC, sizeof MAGIC);
    put_u32(hdr + 8, AIBOX_FILE_VERSION);
    put_u32(hdr + 12, 0);
    put_u64(hdr + 16, lay.file_size);
    put_u32(hdr + 24, (uint32_t)n_meta);
    put_u32(hdr + 28, (uint32_t)n_tensors);
    put_u64(hdr + 32, HEADER_V1);
    put_u64(hdr + 40, lay.meta_size);
    put_u64(hdr + 48, lay.idx_off);
    put_u64(hdr + 56, lay.idx_size);
    put_u64(hdr + 64, lay.data_off);
    put_u64(hdr + 72, lay.data_size);
    w_bytes(&w, hdr, sizeof hdr, 1);
    for (int k = 0; k < n_meta; k++) write_meta_entry(&w, &meta->items[k]);
    for (int k = 0; k < n_tensors; k++) {
        const aibox_file_tensor *t = &tensors[k];
        w_name(&w, t->name);
        w_u8(&w, t->dtype ? (unsigned)t->dtype : AIBOX_FILE_F32); /* 0 means float32 */
        w_u8(&w, (unsigned)t->ndim);
        for (int d = 0; d < t->ndim; d++) w_u64(&w, (uint64_t)t->dims[d]);
        w_u64(&w, lay.offsets[k]);
        w_u64(&w, lay.counts[k] * elem_size(t));
    }
    w_zeros_to(&w, lay.data_off); /* also when there are no tensors */
    int any_f16 = 0;
    for (int k = 0; k < n_tensors; k++) any_f16 |= tensors[k].dtype == AIBOX_FILE_F16;
    unsigned features = any_f16 ? aibox_cpu_features() : 0; /* once: cpuid is slow in a VM */
    for (int k = 0; k < n_tensors; k++) {
        w_zeros_to(&w, lay.offsets[k]);
        if (tensors[k].dtype == AIBOX_FILE_F16) w_halves(&w, tensors[k].data, (size_t)lay.counts[k], features);
        else if (tensors[k].dtype == AIBOX_FILE_I8 || tensors[k].dtype == AIBOX_FILE_I32)
            w_ints(&w, tensors[k].data, (size_t)lay.counts[k], tensors[k].dtype);
        else w_floats(&w, tensors[k].data, (size_t)lay.counts[k]);
    }
    unsigned char trailer[TRAILER];
    put_u32(trailer, w.crc);
    w_bytes(&w, trailer, sizeof trailer, 0);
    w_flush(&w);
    if (w.pos != lay.file_size) {
        aibox_atomic_abort(&w.out);
        st = aibox_fail(err, AIBOX_E_STATE, "saving %s: internal error: wrote %llu bytes, planned %llu", path,
                        (unsigned long long)w.pos, (unsigned long long)lay.file_size);
        goto done;
    }
    st = aibox_atomic_commit(&w.out, err);
done:
    aibox_atomic_abort(&w.out);
    free(w.buf);
    free(lay.offsets);
    free(lay.counts);
    return st;
}

aibox_status aibox_file_write(const char *path, const aibox_meta_list *meta, int n_tensors,
                              const aibox_file_tensor *tensors, aibox_error *err)
{
    return aibox_file_write_ex(path, meta, n_tensors, tensors, NULL, err);
}
