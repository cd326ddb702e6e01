/* Typed key/value metadata lists (in memory); the file codec is aibox_file.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/meta.h"

const char *aibox_meta_name_problem(const char *name, size_t len)
{
    if (!name || len == 0) return "is empty";
    if (len > AIBOX_FILE_MAX_NAME) return "is longer than 255 bytes";
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)name[k];
        /* Printable ASCII without spaces keeps names safe to print in one-line
         * messages and to use as identifiers in tools. */
        if (c < 0x21 || c > 0x7e) return "contains a space, control or non-ASCII byte";
    }
    return NULL;
}

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above
 * U+10FFFF, and no NUL since values are C strings. */
int aibox_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t k = 0;
    while (k < len) {
        unsigned c = p[k];
        if (c == 0) return 0;
        if (c < 0x80) {
            k++;
            continue;
        }
        size_t need;
        unsigned lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) need = 1;
        else if (c == 0xe0) { need = 2; lo = 0xa0; }
        else if (c >= 0xe1 && c <= 0xec) need = 2;
        else if (c == 0xed) { need = 2; hi = 0x9f; }
        else if (c >= 0xee && c <= 0xef) need = 2;
        else if (c == 0xf0) { need = 3; lo = 0x90; }
        else if (c >= 0xf1 && c <= 0xf3) need = 3;
        else if (c == 0xf4) { need = 3; hi = 0x8f; }
        else return 0;
        if (len - k - 1 < need) return 0;
        if (p[k + 1] < lo || p[k + 1] > hi) return 0;
        for (size_t j = 2; j <= need; j++)
            if (p[k + j] < 0x80 || p[k + j] > 0xbf) return 0;
        k += need + 1;
    }
    return 1;
}

static aibox_status check_key(const char *key, aibox_error *err)
{
    if (!key) return aibox_fail(err, AIBOX_E_INVALID, "metadata: NULL key");
    size_t len = strnlen(key, AIBOX_FILE_MAX_NAME + 1);
    const char *why = aibox_meta_name_problem(key, len);
    if (why) {
        if (len == 0 || len > AIBOX_FILE_MAX_NAME) return aibox_fail(err, AIBOX_E_INVALID, "metadata key %s", why);
        return aibox_fail(err, AIBOX_E_INVALID, "metadata key \"%.*s\" %s (printable ASCII only)", (int)len, key,
                          why);
    }
    return AIBOX_OK;
}

static aibox_status check_str(const char *key, int idx, const char *s, aibox_error *err)
{
    char where[32] = "";
    if (idx >= 0) snprintf(where, sizeof where, " [%d]", idx);
    if (!s) return aibox_fail(err, AIBOX_E_INVALID, "metadata \"%s\"%s: NULL string", key, where);
    size_t len = strnlen(s, (size_t)AIBOX_FILE_MAX_STR + 1);
    if (len > AIBOX_FILE_MAX_STR)
        return aibox_fail(err, AIBOX_E_INVALID, "metadata \"%s\"%s: string longer than %d bytes", key, where,
                          AIBOX_FILE_MAX_STR);
    if (!aibox_utf8_valid(s, len))
        return aibox_fail(err, AIBOX_E_INVALID, "metadata \"%s\"%s: string is not valid UTF-8", key, where);
    return AIBOX_OK;
}

static aibox_status check_n(const char *key, int n, const void *v, aibox_error *err)
{
    if (n < 0 || n > AIBOX_FILE_MAX_ARRAY)
        return aibox_fail(err, AIBOX_E_INVALID, "metadata \"%s\": %d elements (0 to %d allowed)", key, n,
                          AIBOX_FILE_MAX_ARRAY);
    if (n > 0 && !v) return aibox_fail(err, AIBOX_E_INVALID, "metadata \"%s\": NULL values for %d elements", key, n);
    return AIBOX_OK;
}

aibox_status aibox_meta_check(const aibox_meta *m, aibox_error *err)
{
    aibox_status st = check_key(m->key, err);
    if (st) return st;
    switch (m->type) {
    case AIBOX_META_INT:
    case AIBOX_META_FLOAT: return AIBOX_OK;
    case AIBOX_META_STR: return check_str(m->key, -1, m->s, err);
    case AIBOX_META_INTS: return check_n(m->key, m->n, m->ints, err);
    case AIBOX_META_FLOATS: return check_n(m->key, m->n, m->floats, err);
    case AIBOX_META_STRS:
        if ((st = check_n(m->key, m->n, m->strs, err))) return st;
        for (int k = 0; k < m->n; k++)
            if ((st = check_str(m->key, k, m->strs[k], err))) return st;
        return AIBOX_OK;
    }
    return aibox_fail(err, AIBOX_E_INVALID, "metadata \"%s\": unknown type %d", m->key, (int)m->type);
}

static void item_free(aibox_meta *m)
{
    free(m->key);
    free(m->s);
    free(m->ints);
    free(m->floats);
    if (m->strs)
        for (int k = 0; k < m->n; k++) free(m->strs[k]);
    free(m->strs);
    memset(m, 0, sizeof *m);
}

static char *dup_str(const char *s)
{
    size_t len = strlen(s);
    char *d = malloc(len + 1);
    if (d) memcpy(d, s, len + 1);
    return d;
}

/* Deep copy of a checked entry; 0 on allocation failure (dst then freed). */
static int item_clone(aibox_meta *dst, const aibox_meta *src)
{
    memset(dst, 0, sizeof *dst);
    dst->type = src->type;
    dst->n = src->n;
    dst->i = src->i;
    dst->f = src->f;
    if (!(dst->key = dup_str(src->key))) goto fail;
    switch (src->type) {
    case AIBOX_META_STR:
        if (!(dst->s = dup_str(src->s))) goto fail;
        break;
    case AIBOX_META_INTS:
        if (src->n > 0) {
            if (!(dst->ints = malloc((size_t)src->n * sizeof *dst->ints))) goto fail;
            memcpy(dst->ints, src->ints, (size_t)src->n * sizeof *dst->ints);
        }
        break;
    case AIBOX_META_FLOATS:
        if (src->n > 0) {
            if (!(dst->floats = malloc((size_t)src->n * sizeof *dst->floats))) goto fail;
            memcpy(dst->floats, src->floats, (size_t)src->n * sizeof *dst->floats);
        }
        break;
    case AIBOX_META_STRS:
        if (src->n > 0) {
            /* calloc so a partial copy can be freed element by element. */
            if (!(dst->strs = calloc((size_t)src->n, sizeof *dst->strs))) goto fail;
            for (int k = 0; k < src->n; k++)
                if (!(dst->strs[k] = dup_str(src->strs[k]))) goto fail;
        }
        break;
    default: break;
    }
    return 1;
fail:
    item_free(dst);
    return 0;
}

static int find_index(const aibox_meta_list *l, const char *key)
{
    if (!l || !key) return -1;
    for (int k = 0; k < l->count; k++)
        if (strcmp(l->items[k].key, key) == 0) return k;
    return -1;
}

const aibox_meta *aibox_meta_find(const aibox_meta_list *l, const char *key)
{
    int k = find_index(l, key);
    return k < 0 ? NULL : &l->items[k];
}

/* Validates the borrowed description in tmpl, copies it, then replaces or
 * appends, so a failure leaves the list as it was. */
static aibox_status set_item(aibox_meta_list *l, const aibox_meta *tmpl, aibox_error *err)
{
    if (!l) return aibox_fail(err, AIBOX_E_INVALID, "metadata: NULL list");
    aibox_status st = aibox_meta_check(tmpl, err);
    if (st) return st;
    int at = find_index(l, tmpl->key);
    if (at < 0 && l->count >= l->cap) {
        if (l->count >= AIBOX_FILE_MAX_ENTRIES)
            return aibox_fail(err, AIBOX_E_INVALID, "metadata: more than %d entries", AIBOX_FILE_MAX_ENTRIES);
        int cap = l->cap ? l->cap * 2 : 8;
        if (cap > AIBOX_FILE_MAX_ENTRIES) cap = AIBOX_FILE_MAX_ENTRIES;
        aibox_meta *items = realloc(l->items, (size_t)cap * sizeof *items);
        if (!items) return aibox_fail(err, AIBOX_E_NOMEM, "metadata: cannot grow the list to %d entries", cap);
        l->items = items;
        l->cap = cap;
    }
    aibox_meta copy;
    if (!item_clone(&copy, tmpl))
        return aibox_fail(err, AIBOX_E_NOMEM, "metadata \"%s\": cannot allocate the value", tmpl->key);
    if (at >= 0) {
        item_free(&l->items[at]);
        l->items[at] = copy;
    } else {
        l->items[l->count++] = copy;
    }
    return AIBOX_OK;
}

aibox_status aibox_meta_set_int(aibox_meta_list *l, const char *key, int64_t v, aibox_error *err)
{
    aibox_meta t = {.key = (char *)key, .type = AIBOX_META_INT, .n = 1, .i = v};
    return set_item(l, &t, err);
}

aibox_status aibox_meta_set_float(aibox_meta_list *l, const char *key, double v, aibox_error *err)
{
    aibox_meta t = {.key = (char *)key, .type = AIBOX_META_FLOAT, .n = 1, .f = v};
    return set_item(l, &t, err);
}

aibox_status aibox_meta_set_str(aibox_meta_list *l, const char *key, const char *v, aibox_error *err)
{
    aibox_meta t = {.key = (char *)key, .type = AIBOX_META_STR, .n = 1, .s = (char *)v};
    return set_item(l, &t, err);
}

aibox_status aibox_meta_set_ints(aibox_meta_list *l, const char *key, int n, const int64_t *v, aibox_error *err)
{
    aibox_meta t = {.key = (char *)key, .type = AIBOX_META_INTS, .n = n, .ints = (int64_t *)v};
    return set_item(l, &t, err);
}

aibox_status aibox_meta_set_floats(aibox_meta_list *l, const char *key, int n, const double *v, aibox_error *err)
{
    aibox_meta t = {.key = (char *)key, .type = AIBOX_META_FLOATS, .n = n, .floats = (double *)v};
    return set_item(l, &t, err);
}

aibox_status aibox_meta_set_strs(aibox_meta_list *l, const char *key, int n, const char *const *v, aibox_error *err)
{
    aibox_meta t = {.key = (char *)key, .type = AIBOX_META_STRS, .n = n, .strs = (char **)v};
    return set_item(l, &t, err);
}

aibox_status aibox_meta_copy(aibox_meta_list *dst, const aibox_meta_list *src, aibox_error *err)
{
    if (!dst) return aibox_fail(err, AIBOX_E_INVALID, "metadata copy: NULL destination");
    if (dst == src) return AIBOX_OK;
    aibox_meta_list tmp = {0};
    int n = src ? src->count : 0;
    if (n > 0) {
        tmp.items = malloc((size_t)n * sizeof *tmp.items);
        if (!tmp.items) return aibox_fail(err, AIBOX_E_NOMEM, "metadata copy: cannot allocate %d entries", n);
        tmp.cap = n;
        for (int k = 0; k < n; k++) {
            if (!item_clone(&tmp.items[k], &src->items[k])) {
                aibox_meta_list_free(&tmp);
                return aibox_fail(err, AIBOX_E_NOMEM, "metadata copy: cannot allocate entry \"%s\"",
                                  src->items[k].key);
            }
            tmp.count++;
        }
    }
    aibox_meta_list_free(dst);
    *dst = tmp;
    return AIBOX_OK;
}

void aibox_meta_list_free(aibox_meta_list *l)
{
    if (!l) return;
    for (int k = 0; k < l->count; k++) item_free(&l->items[k]);
    free(l->items);
    memset(l, 0, sizeof *l);
}
