/* Anomaly-detection evaluation: connected regions of a thresholded map,
 * AUROC (Mann-Whitney), F1 and the F1-optimal threshold, and AUPRO (MVTec
 * AD's per-region overlap).
 *
 * Ranking metrics sort scores as 32-bit keys (the float bits flipped into
 * unsigned order) with an LSD radix sort: O(n) and predictable on the tens
 * of millions of pixels a pixel-level evaluation holds, where a comparison
 * qsort would take many seconds. Classes are kept in separate arrays, so a
 * score needs 4 bytes and a label none; tied scores fall together
 * naturally when the sorted arrays are merged. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* ------------------------------------------------------------ sorting */

/* A float's bits as an unsigned key with the same order (-0 made +0 first,
 * so the two zeros tie as they compare). NaN must be excluded by callers. */
static uint32_t fkey(float f)
{
    if (f == 0.0f) f = 0.0f;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static float key_float(uint32_t k)
{
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#define RADIX_BITS 11
#define RADIX_SIZE (1u << RADIX_BITS)

/* Sorts keys[0..n) ascending in place, carrying pay[] along when not NULL,
 * by three stable counting passes of 11, 11 and 10 bits. tmp (and ptmp when
 * pay is set) are scratch of n. A pass whose digit is the same for every
 * key is skipped. Returns 0 when the 48 KB of counters cannot be had. */
static int radix_sort(uint32_t *keys, uint32_t *pay, uint32_t *tmp, uint32_t *ptmp, size_t n)
{
    if (n < 2) return 1;
    size_t *cnt = calloc(3 * RADIX_SIZE, sizeof *cnt); /* heap: threads may have small stacks */
    if (!cnt) return 0;
    for (size_t i = 0; i < n; i++) {
        const uint32_t k = keys[i];
        cnt[k & (RADIX_SIZE - 1)]++;
        cnt[RADIX_SIZE + ((k >> RADIX_BITS) & (RADIX_SIZE - 1))]++;
        cnt[2 * RADIX_SIZE + (k >> (2 * RADIX_BITS))]++;
    }
    uint32_t *src = keys, *dst = tmp, *psrc = pay, *pdst = ptmp;
    for (int d = 0; d < 3; d++) {
        const int shift = d * RADIX_BITS;
        size_t *c = cnt + (size_t)d * RADIX_SIZE;
        if (c[(src[0] >> shift) & (RADIX_SIZE - 1)] == n) continue;
        size_t sum = 0;
        for (unsigned b = 0; b < RADIX_SIZE; b++) {
            const size_t t = c[b];
            c[b] = sum;
            sum += t;
        }
        if (pay) {
            for (size_t i = 0; i < n; i++) {
                const size_t at = c[(src[i] >> shift) & (RADIX_SIZE - 1)]++;
                dst[at] = src[i];
                pdst[at] = psrc[i];
            }
            uint32_t *t = psrc;
            psrc = pdst, pdst = t;
        } else {
            for (size_t i = 0; i < n; i++) dst[c[(src[i] >> shift) & (RADIX_SIZE - 1)]++] = src[i];
        }
        uint32_t *t = src;
        src = dst, dst = t;
    }
    if (src != keys) {
        memcpy(keys, src, n * sizeof *keys);
        if (pay) memcpy(pay, psrc, n * sizeof *pay);
    }
    free(cnt);
    return 1;
}

/* a/b >= c/d for b, d > 0, exactly (F1 values are compared as fractions so
 * that equal F1 at different thresholds really tie). */
static int frac_ge(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
#ifdef __SIZEOF_INT128__
    return (unsigned __int128)a * d >= (unsigned __int128)c * b;
#else
    return (long double)a * (long double)d >= (long double)c * (long double)b;
#endif
}

/* Scores split by class into sorted key arrays: pos[0..n1), neg[0..n0),
 * ascending, in one block (*block, to free). Returns AIBOX_E_INVALID on a NaN
 * score, AIBOX_E_NOMEM without memory. */
static aibox_status split_sorted(const float *scores, const uint8_t *labels, size_t n, uint32_t **block,
                                 uint32_t **pos, size_t *n1, uint32_t **neg, size_t *n0)
{
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        if (scores[i] != scores[i]) return AIBOX_E_INVALID;
        np += labels[i] != 0;
    }
    const size_t nn = n - np, big = AIBOX_MAX(np, nn);
    size_t words, bytes;
    if (__builtin_add_overflow(n, big, &words) || !aibox_mul_ok(words, sizeof(uint32_t), &bytes)) return AIBOX_E_NOMEM;
    uint32_t *b = malloc(bytes);
    if (!b) return AIBOX_E_NOMEM;
    uint32_t *p = b, *q = b + np, *tmp = b + n;
    size_t ip = 0, iq = 0;
    for (size_t i = 0; i < n; i++) {
        if (labels[i]) p[ip++] = fkey(scores[i]);
        else q[iq++] = fkey(scores[i]);
    }
    if (!radix_sort(p, NULL, tmp, NULL, np) || !radix_sort(q, NULL, tmp, NULL, nn)) {
        free(b);
        return AIBOX_E_NOMEM;
    }
    *block = b, *pos = p, *neg = q, *n1 = np, *n0 = nn;
    return AIBOX_OK;
}

/* ------------------------------------------------------------ AUROC, F1 */

double aibox_metric_auroc(const float *scores, const uint8_t *labels, size_t n)
{
    if (!scores || !labels || n == 0) return NAN;
    uint32_t *block, *pos, *neg;
    size_t n1, n0;
    if (split_sorted(scores, labels, n, &block, &pos, &n1, &neg, &n0)) return NAN;
    if (n1 == 0 || n0 == 0) {
        free(block);
        return NAN;
    }
    /* 2U = sum over positives of 2 * (negatives below) + (negatives tied), in
     * integers: exact up to n^2 / 2 < 2^64. */
    uint64_t u2 = 0;
    size_t i = 0, j = 0;
    while (i < n1) {
        const uint32_t k = pos[i];
        size_t c1 = 0, e;
        while (j < n0 && neg[j] < k) j++;
        for (e = j; e < n0 && neg[e] == k; e++) {}
        for (; i < n1 && pos[i] == k; i++) c1++;
        u2 += (uint64_t)c1 * (2 * (uint64_t)j + (uint64_t)(e - j));
        j = e;
    }
    free(block);
    return (double)u2 / (2.0 * (double)n0 * (double)n1);
}

double aibox_metric_f1_at(const float *scores, const uint8_t *labels, size_t n, float threshold)
{
    if (!scores || !labels || n == 0 || threshold != threshold) return NAN;
    size_t tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < n; i++) {
        if (scores[i] != scores[i]) return NAN;
        const int pred = !(scores[i] < threshold); /* a NaN score fails: predicted anomalous */
        if (labels[i]) {
            tp += (size_t)pred;
            fn += (size_t)!pred;
        } else {
            fp += (size_t)pred;
        }
    }
    const double den = 2.0 * (double)tp + (double)fp + (double)fn;
    return den == 0.0 ? 0.0 : 2.0 * (double)tp / den;
}

aibox_status aibox_metric_f1_best(const float *scores, const uint8_t *labels, size_t n, float *threshold, double *f1,
                           aibox_error *err)
{
    if (!scores || !labels || !threshold || !f1) return aibox_fail(err, AIBOX_E_INVALID, "f1 best: NULL argument");
    if (n == 0) return aibox_fail(err, AIBOX_E_INVALID, "f1 best: no samples");
    uint32_t *block, *pos, *neg;
    size_t n1, n0;
    aibox_status st = split_sorted(scores, labels, n, &block, &pos, &n1, &neg, &n0);
    if (st == AIBOX_E_INVALID) return aibox_fail(err, st, "f1 best: a score is NaN");
    if (st) return aibox_fail(err, st, "f1 best: out of memory (%zu samples)", n);
    if (n1 == 0) {
        free(block);
        return aibox_fail(err, AIBOX_E_INVALID, "f1 best: no anomalous sample (F1 is 0 at every threshold)");
    }
    /* Thresholds from the highest score down; everything at or above the
     * current one is predicted anomalous. F1 = 2TP / (TP + FP + P). */
    size_t ip = n1, in = n0, tp = 0, fp = 0;
    uint64_t bnum = 0, bden = 1;
    uint32_t bkey = 0;
    while (ip > 0 || in > 0) {
        uint32_t k = ip > 0 ? pos[ip - 1] : 0;
        if (in > 0 && (ip == 0 || neg[in - 1] > k)) k = neg[in - 1];
        for (; ip > 0 && pos[ip - 1] == k; ip--) tp++;
        for (; in > 0 && neg[in - 1] == k; in--) fp++;
        const uint64_t num = 2 * (uint64_t)tp, den = (uint64_t)tp + fp + n1;
        if (frac_ge(num, den, bnum, bden)) bnum = num, bden = den, bkey = k; /* equal: the lower threshold */
    }
    free(block);
    *threshold = key_float(bkey);
    *f1 = (double)bnum / (double)bden;
    return AIBOX_OK;
}

/* ------------------------------------------------------------ regions */

/* Takes the 8-connected component of the foreground pixel `start` from fg
 * (1: foreground not yet taken; taken pixels become 2) and lists its pixels
 * in *q, a breadth-first queue grown on the heap (capacity *cap, at most
 * w * h). Returns the pixel count, 0 when out of memory. */
static size_t flood(uint8_t *fg, int w, int h, uint32_t start, uint32_t **q, size_t *cap)
{
    const size_t plane = (size_t)w * (size_t)h;
    size_t head = 0, tail = 0;
    if (*cap == 0) {
        size_t c = AIBOX_MIN(plane, (size_t)4096);
        uint32_t *nq = realloc(*q, c * sizeof **q);
        if (!nq) return 0;
        *q = nq, *cap = c;
    }
    fg[start] = 2;
    (*q)[tail++] = start;
    while (head < tail) {
        const uint32_t p = (*q)[head++];
        const int x = (int)(p % (uint32_t)w), y = (int)(p / (uint32_t)w);
        for (int dy = -1; dy <= 1; dy++) {
            const int ny = y + dy;
            if (ny < 0 || ny >= h) continue;
            for (int dx = -1; dx <= 1; dx++) {
                const int nx = x + dx;
                if (nx < 0 || nx >= w) continue;
                const uint32_t np = (uint32_t)ny * (uint32_t)w + (uint32_t)nx;
                if (fg[np] != 1) continue; /* background, taken, or p itself */
                if (tail == *cap) {
                    /* each pixel enters once, so plane is always enough */
                    size_t c = AIBOX_MIN(plane, 2 * *cap);
                    uint32_t *nq = realloc(*q, c * sizeof **q);
                    if (!nq) return 0;
                    *q = nq, *cap = c;
                }
                fg[np] = 2;
                (*q)[tail++] = np;
            }
        }
    }
    return tail;
}

typedef struct {
    aibox_region r;
    size_t first; /* raster index of the first pixel: ties keep discovery order */
} found_region;

static int by_area_desc(const void *a, const void *b)
{
    const found_region *x = a, *y = b;
    if (x->r.area != y->r.area) return x->r.area > y->r.area ? -1 : 1;
    return x->first < y->first ? -1 : (x->first > y->first);
}

aibox_status aibox_map_regions(const float *map, int w, int h, float threshold, aibox_region *out, int max,
                               int *count, aibox_error *err)
{
    if (!map || !count) return aibox_fail(err, AIBOX_E_INVALID, "map regions: NULL %s", map ? "count" : "map");
    *count = 0;
    if (w < 1 || h < 1) return aibox_fail(err, AIBOX_E_INVALID, "map regions: map size %dx%d", w, h);
    const size_t plane = (size_t)w * (size_t)h;
    if (plane > UINT32_MAX) return aibox_fail(err, AIBOX_E_INVALID, "map regions: map %dx%d too large", w, h);
    if (max < 0 || (max > 0 && !out))
        return aibox_fail(err, AIBOX_E_INVALID, "map regions: %s", max < 0 ? "negative max" : "NULL output with max > 0");
    if (threshold != threshold) return aibox_fail(err, AIBOX_E_INVALID, "map regions: NaN threshold");

    uint8_t *fg = malloc(plane);
    uint32_t *q = NULL;
    size_t qcap = 0, nreg = 0, rcap = 0;
    found_region *regs = NULL;
    if (!fg) goto nomem;
    for (size_t i = 0; i < plane; i++) fg[i] = !(map[i] < threshold); /* a NaN pixel fails: defect */
    for (size_t i = 0; i < plane; i++) {
        if (fg[i] != 1) continue;
        const size_t s = flood(fg, w, h, (uint32_t)i, &q, &qcap);
        if (!s) goto nomem;
        if (nreg == rcap) {
            size_t c = rcap ? 2 * rcap : 64;
            found_region *nr = realloc(regs, c * sizeof *regs);
            if (!nr) goto nomem;
            regs = nr, rcap = c;
        }
        int x0 = w, y0 = h, x1 = -1, y1 = -1;
        float peak = map[q[0]];
        for (size_t k = 0; k < s; k++) {
            const int x = (int)(q[k] % (uint32_t)w), y = (int)(q[k] / (uint32_t)w);
            x0 = AIBOX_MIN(x0, x), x1 = AIBOX_MAX(x1, x);
            y0 = AIBOX_MIN(y0, y), y1 = AIBOX_MAX(y1, y);
            if (map[q[k]] > peak) peak = map[q[k]];
        }
        found_region *f = &regs[nreg++];
        f->r.x = x0, f->r.y = y0, f->r.w = x1 - x0 + 1, f->r.h = y1 - y0 + 1;
        f->r.area = (long)s;
        f->r.peak = peak;
        f->first = i;
    }
    if (nreg > 1) qsort(regs, nreg, sizeof *regs, by_area_desc);
    for (size_t k = 0; k < nreg && k < (size_t)max; k++) out[k] = regs[k].r;
    /* 8-connected regions are at least 2 pixels apart: at most about plane / 4 < INT_MAX */
    *count = (int)nreg;
    free(fg), free(q), free(regs);
    return AIBOX_OK;
nomem:
    free(fg), free(q), free(regs);
    return aibox_fail(err, AIBOX_E_NOMEM, "map regions: out of memory (%dx%d map)", w, h);
}

/* ------------------------------------------------------------ AUPRO */

double aibox_metric_aupro(const float *maps, const uint8_t *masks, int n, int w, int h, double fpr_limit)
{
    if (!maps || !masks || n < 1 || w < 1 || h < 1 || !(fpr_limit > 0.0 && fpr_limit <= 1.0)) return NAN;
    const size_t plane = (size_t)w * (size_t)h;
    size_t total;
    if (plane > UINT32_MAX || !aibox_mul_ok(plane, (size_t)n, &total)) return NAN;
    size_t n1 = 0;
    for (size_t i = 0; i < total; i++) {
        if (maps[i] != maps[i]) return NAN;
        n1 += masks[i] != 0;
    }
    const size_t n0 = total - n1;
    if (n0 == 0 || n1 == 0) return NAN;

    /* One block: normal keys (n0), defect keys and their region (2 x n1),
     * then sort scratch for either (max(n0, 2 n1)). */
    size_t words, scratch = AIBOX_MAX(n0, 2 * n1), bytes;
    if (__builtin_add_overflow(n0 + 2 * n1, scratch, &words) || !aibox_mul_ok(words, sizeof(uint32_t), &bytes))
        return NAN;
    uint32_t *block = malloc(bytes), *q = NULL, *rsize = NULL;
    uint8_t *fg = malloc(plane);
    size_t qcap = 0, nreg = 0, rcap = 0;
    double result = NAN;
    if (!block || !fg) goto done;
    uint32_t *nkey = block, *dkey = block + n0, *dreg = dkey + n1, *tmp = dreg + n1;
    size_t a = 0, d = 0;
    for (int img = 0; img < n; img++) {
        const float *map = maps + (size_t)img * plane;
        const uint8_t *mask = masks + (size_t)img * plane;
        for (size_t i = 0; i < plane; i++) {
            fg[i] = mask[i] != 0;
            if (!fg[i]) nkey[a++] = fkey(map[i]);
        }
        for (size_t i = 0; i < plane; i++) {
            if (fg[i] != 1) continue;
            const size_t s = flood(fg, w, h, (uint32_t)i, &q, &qcap);
            if (!s) goto done;
            if (nreg == rcap) {
                size_t c = rcap ? 2 * rcap : 64;
                uint32_t *nr = realloc(rsize, c * sizeof *rsize);
                if (!nr) goto done;
                rsize = nr, rcap = c;
            }
            rsize[nreg] = (uint32_t)s;
            for (size_t k = 0; k < s; k++) {
                dkey[d] = fkey(map[q[k]]);
                dreg[d++] = (uint32_t)nreg;
            }
            nreg++;
        }
    }
    if (!radix_sort(nkey, NULL, tmp, NULL, n0) || !radix_sort(dkey, dreg, tmp, tmp + n1, n1)) goto done;

    /* Thresholds from the highest score down, tied scores taken together;
     * each point (FPR, PRO) closes one trapezoid of the curve that starts at
     * (0, 0); the one crossing fpr_limit is cut there by interpolation. */
    const double L = fpr_limit, inv_n0 = 1.0 / (double)n0, inv_reg = 1.0 / (double)nreg;
    size_t ia = n0, ib = n1, fp = 0;
    double prosum = 0.0, x0 = 0.0, y0 = 0.0, area = 0.0;
    int crossed = 0;
    while (!crossed && (ia > 0 || ib > 0)) {
        uint32_t k = ia > 0 ? nkey[ia - 1] : 0;
        if (ib > 0 && (ia == 0 || dkey[ib - 1] > k)) k = dkey[ib - 1];
        for (; ia > 0 && nkey[ia - 1] == k; ia--) fp++;
        for (; ib > 0 && dkey[ib - 1] == k; ib--) prosum += 1.0 / (double)rsize[dreg[ib - 1]];
        const double x1 = (double)fp * inv_n0;
        const double y1 = AIBOX_MIN(prosum * inv_reg, 1.0); /* rounding may overshoot 1 */
        if (x1 <= L) {
            area += 0.5 * (y0 + y1) * (x1 - x0);
        } else {
            if (x0 < L) area += 0.5 * (y0 + (y0 + (y1 - y0) * (L - x0) / (x1 - x0))) * (L - x0);
            crossed = 1;
        }
        x0 = x1, y0 = y1;
    }
    /* All pixels taken: the last point is (1, ~1); MVTec appends (1, 1),
     * which adds no area. */
    result = area / L;
done:
    free(block), free(fg), free(q), free(rsize);
    return result;
}
