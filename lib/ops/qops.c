/* 8-bit integer kernels: plain-C references, the packed fast path and its
 * dispatch (the AVX-512 VNNI and AVX2 kernels live in qops_x86.c, the NEON
 * ones in qops_neon.c). Contracts: qops.h. */
#include <math.h>
#include <string.h>

#include "ops/qops.h"
#include "ops/simd.h"
#include "ops/qops_neon.h"
#include "ops/qops_x86.h"

void aibox_q_multiplier(double real, int32_t *mult, int *shift)
{
    if (!(real > 0)) { /* 0 (or a caller's bad value): no output */
        *mult = 0, *shift = 0;
        return;
    }
    int e;
    double q = frexp(real, &e);
    int64_t f = (int64_t)round(q * (double)((int64_t)1 << 31)); /* TfLiteRound: half away from zero */
    if (f == (int64_t)1 << 31) f /= 2, e++;
    if (e < -31) e = 0, f = 0;
    if (e > 30) e = 30, f = INT32_MAX; /* beyond any real layer: saturate rather than overflow */
    *mult = (int32_t)f, *shift = e;
}

static inline uint8_t clamp_u8(int32_t v, int lo, int hi) { return (uint8_t)(v < lo ? lo : v > hi ? hi : v); }

/* ------------------------------------------------------------ reference */
void aibox_qconv_ref(const aibox_qconv *q, int n, const uint8_t *x, uint8_t *y)
{
    const aibox_conv_desc *d = &q->d;
    const int cg = d->in_c / d->groups, ocg = d->out_c / d->groups;
    for (int s = 0; s < n; s++)
        for (int oy = 0; oy < d->out_h; oy++)
            for (int ox = 0; ox < d->out_w; ox++)
                for (int o = 0; o < d->out_c; o++) {
                    int g = o / ocg;
                    int32_t acc = q->bias[o];
                    for (int ky = 0; ky < d->kh; ky++) {
                        int iy = oy * d->sh - d->pt + ky;
                        if (iy < 0 || iy >= d->in_h) continue;
                        for (int kx = 0; kx < d->kw; kx++) {
                            int ix = ox * d->sw - d->pl + kx;
                            if (ix < 0 || ix >= d->in_w) continue;
                            const uint8_t *xp = x + (((size_t)s * d->in_h + iy) * d->in_w + ix) * d->in_c + g * cg;
                            const int8_t *wp = q->w + (((size_t)o * d->kh + ky) * d->kw + kx) * cg;
                            for (int c = 0; c < cg; c++) acc += (xp[c] - q->in_zp) * (wp[c] + q->wofs);
                        }
                    }
                    int32_t v = aibox_q_mbqm(acc, q->mult[o], q->shift[o]) + q->out_zp;
                    y[(((size_t)s * d->out_h + oy) * d->out_w + ox) * d->out_c + o] = clamp_u8(v, q->act_min, q->act_max);
                }
}

/* ------------------------------------------------------------ packed path
 * Per group, the weights as [ocg rounded up to 16 / 16][K4 / 4][16][4]
 * bytes (K4: the patch length kh * kw * cg rounded up to 4, zeros past the
 * patch; for short kernel rows each row in its own 4-aligned slot, geom's
 * row4): four consecutive patch bytes of 16 output channels, what one
 * vpdpbusd takes. Then int32 per output channel (16-padded): the constant
 * part of the accumulator, colc = bias - in_zp * sum(w) - K * in_zp * wofs,
 * the multiplier, the left and the right shift, and colc + 128 * sum(w) for
 * the NEON kernels, whose products take the patch bytes as (a - 128) int8
 * (Arm has no uint8 x int8 dot product before i8mm). An accumulator is then
 * dot(patch, w) + wofs * sum(patch) + colc: the reference's
 * sum((x - in_zp) (w + wofs)) + bias with padded cells read as in_zp. */
typedef struct geom {
    int K, K4, O16, cg, ocg;
    int row, row4;         /* a kernel row's bytes (kw * cg) and its slot in a patch: row rounded up to 4 when
                            * the layer is ungrouped and row <= 16 (short rows: each row starts 4-aligned, so
                            * its cells move as one piece; K4 = kh * row4), else row */
    size_t wbytes, gbytes; /* per group: weights, weights + the int32 tables */
    int direct;            /* 1x1, stride 1, unpadded, ungrouped, in_c % 4 == 0: rows of x are the patches */
    int depthwise;         /* one input and one output channel per group */
} geom;

#define PB 64 /* output pixels per block: their patches stay in L1/L2 */

static geom geometry(const aibox_qconv *q)
{
    const aibox_conv_desc *d = &q->d;
    geom g;
    g.cg = d->in_c / d->groups, g.ocg = d->out_c / d->groups;
    g.K = d->kh * d->kw * g.cg, g.K4 = (g.K + 3) & ~3, g.O16 = (g.ocg + 15) & ~15;
    g.row = g.row4 = d->kw * g.cg;
    if (d->groups == 1 && g.row <= 16) g.row4 = (g.row + 3) & ~3, g.K4 = d->kh * g.row4;
    g.wbytes = (size_t)g.O16 * g.K4;
    g.gbytes = g.wbytes + (size_t)g.O16 * 5 * sizeof(int32_t);
    g.direct = d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->pt == 0 && d->pl == 0 &&
               d->out_h == d->in_h && d->out_w == d->in_w && d->groups == 1 && d->in_c % 4 == 0;
    g.depthwise = g.cg == 1 && g.ocg == 1;
    return g;
}

/* Which vector kernels a CPU with features runs (none without AIBOX_SIMD_X86
 * or AIBOX_SIMD_NEON). */
#define HAS(features, needs) (((features) & (needs)) == (needs))
#ifdef AIBOX_SIMD_X86
static int use_vnni(unsigned features) { return HAS(features, AIBOX_X86_QGEMM_NEEDS); }
static int use_avx2(unsigned features) { return HAS(features, AIBOX_X86_QGEMM2_NEEDS); }
#else
static int use_vnni(unsigned features) { return (void)features, 0; }
static int use_avx2(unsigned features) { return (void)features, 0; }
#endif
/* A layer aibox_qconv_rows_vbmi takes: short kernel rows in slots, 16
 * pixels' rows within two 64-byte loads. */
static int rows_direct(const geom *g, const aibox_conv_desc *d)
{
    return d->groups == 1 && g->row <= 16 && !g->direct && d->sw * d->in_c <= 7;
}
#ifdef AIBOX_SIMD_X86
static int use_rows(unsigned features) { return HAS(features, AIBOX_X86_QROWS_NEEDS); }
#else
static int use_rows(unsigned features) { return (void)features, 0; }
#endif
#ifdef AIBOX_SIMD_NEON
static int use_neon_dot(unsigned features) { return HAS(features, AIBOX_NEON_QGEMM_DOT_NEEDS); }
static int use_neon(unsigned features) { return HAS(features, AIBOX_NEON_QGEMM_NEEDS); }
#else
static int use_neon_dot(unsigned features) { return (void)features, 0; }
static int use_neon(unsigned features) { return (void)features, 0; }
#endif

const char *aibox_qconv_path(const aibox_qconv *q, unsigned features)
{
    geom g = geometry(q);
    if (g.depthwise)
        return use_vnni(features) ? "depthwise-avx512" : use_neon(features) ? "depthwise-neon" : "depthwise-c";
    if (rows_direct(&g, &q->d) && use_rows(features)) return "vnni-rows";
    return use_vnni(features)       ? "vnni"
           : use_avx2(features)     ? "avx2"
           : use_neon_dot(features) ? "neon-dot"
           : use_neon(features)     ? "neon"
                                    : "c";
}

size_t aibox_qconv_packed_bytes(const aibox_qconv *q)
{
    geom g = geometry(q);
    if (g.depthwise) /* int32 (w + wofs) per tap and channel, then bias, mult, shift per channel */
        return ((size_t)q->d.kh * q->d.kw + 3) * q->d.out_c * sizeof(int32_t);
    return g.gbytes * q->d.groups;
}

void aibox_qconv_pack(const aibox_qconv *q, void *packed)
{
    const aibox_conv_desc *d = &q->d;
    geom g = geometry(q);
    if (g.depthwise) {
        int taps = d->kh * d->kw, C = d->out_c;
        int32_t *wv = packed, *t = wv + (size_t)taps * C;
        for (int k = 0; k < taps; k++)
            for (int c = 0; c < C; c++) wv[(size_t)k * C + c] = q->w[(size_t)c * taps + k] + q->wofs;
        for (int c = 0; c < C; c++) t[c] = q->bias[c], t[C + c] = q->mult[c], t[2 * C + c] = q->shift[c];
        return;
    }
    for (int gi = 0; gi < d->groups; gi++) {
        int8_t *w = (int8_t *)packed + g.gbytes * gi;
        int32_t *tab = (int32_t *)(void *)(w + g.wbytes);
        memset(w, 0, g.gbytes);
        for (int o = 0; o < g.ocg; o++) {
            const int8_t *src = q->w + (size_t)(gi * g.ocg + o) * g.K;
            int32_t sum = 0;
            for (int k = 0; k < g.K; k++) {
                int at = k / g.row * g.row4 + k % g.row; /* the patch position of tap byte k */
                w[((size_t)(o / 16) * (g.K4 / 4) + at / 4) * 64 + (o % 16) * 4 + at % 4] = src[k];
                sum += src[k];
            }
            int oc = gi * g.ocg + o, sh = q->shift[oc];
            tab[o] = q->bias[oc] - q->in_zp * sum - g.K * q->in_zp * q->wofs;
            tab[g.O16 + o] = q->mult[oc];
            tab[2 * g.O16 + o] = sh > 0 ? sh : 0;
            tab[3 * g.O16 + o] = sh > 0 ? 0 : -sh;
            tab[4 * g.O16 + o] = (int32_t)((uint32_t)tab[o] + 128u * (uint32_t)sum); /* the NEON (a - 128) products */
        }
    }
}

size_t aibox_qconv_ws_bytes(const aibox_qconv *q)
{
    geom g = geometry(q);
    if (g.depthwise) return (size_t)q->d.out_c * sizeof(int32_t) + 64;
    size_t b = (size_t)PB * g.K4 + PB * sizeof(int32_t) + 128 + 64; /* + slack for im2col's 16-byte moves */
#ifdef AIBOX_SIMD_X86
    if (rows_direct(&g, &q->d)) {
        size_t r = aibox_qconv_rows_ws(q->d.in_c, q->d.out_w, q->d.kh, q->d.sw);
        if (r > b) b = r;
    }
#endif
    return b;
}

/* One block of rows patches (row r at a + r * lda, K4 bytes) times group
 * weights, plain C; y row r at y + r * ldy, ocg bytes. */
static void gemm_c(const uint8_t *a, size_t lda, int rows, const int8_t *w, const int32_t *tab, const int32_t *rowsum,
                   const geom *g, const aibox_qconv *q, uint8_t *y, size_t ldy)
{
    const int32_t *colc = tab, *mult = tab + g->O16, *lsh = tab + 2 * g->O16, *rsh = tab + 3 * g->O16;
    for (int r = 0; r < rows; r++) {
        const uint8_t *ar = a + (size_t)r * lda;
        for (int o = 0; o < g->ocg; o++) {
            const int8_t *wo = w + (size_t)(o / 16) * (g->K4 / 4) * 64 + (o % 16) * 4;
            int32_t acc = 0;
            for (int k4 = 0; k4 < g->K4 / 4; k4++)
                for (int j = 0; j < 4; j++) acc += ar[4 * k4 + j] * wo[(size_t)k4 * 64 + j];
            acc += colc[o] + (rowsum ? q->wofs * rowsum[r] : 0);
            int32_t v = aibox_q_mbqm(acc, mult[o], lsh[o] - rsh[o]);
            y[(size_t)r * ldy + o] = clamp_u8(v + q->out_zp, q->act_min, q->act_max);
        }
    }
}

/* The sum of each of rows patches of K bytes (lda apart). */
AIBOX_CLONES_AVX2 static void row_sums_c(const uint8_t *a, size_t lda, int rows, int K, int32_t *rowsum)
{
    for (int r = 0; r < rows; r++) {
        const uint8_t *ar = a + (size_t)r * lda;
        int32_t sum = 0;
        for (int k = 0; k < K; k++) sum += ar[k];
        rowsum[r] = sum;
    }
}

static void row_sums(const uint8_t *a, size_t lda, int rows, int K, int32_t *rowsum, unsigned features)
{
#ifdef AIBOX_SIMD_X86
    if (use_vnni(features)) {
        aibox_qrowsum_avx512(a, lda, rows, K, rowsum);
        return;
    }
#endif
#ifdef AIBOX_SIMD_NEON
    if (use_neon(features)) {
        aibox_qrowsum_neon(a, lda, rows, K, rowsum);
        return;
    }
#endif
    (void)features;
    row_sums_c(a, lda, rows, K, rowsum);
}

/* Patches of output pixels [p0, p0 + rows) of group gi into col (K4 bytes
 * each, padded cells in_zp, the tail past K zero), with their sums. Byte
 * loops, not memcpy: a first layer's cells are 1 to 4 bytes. */
static void im2col(const aibox_qconv *q, const geom *g, int gi, const uint8_t *x, int p0, int rows, uint8_t *col,
                   int32_t *rowsum, unsigned features)
{
    const aibox_conv_desc *d = &q->d;
    const int per = d->out_h * d->out_w, cg = g->cg;
    const uint8_t zp = (uint8_t)q->in_zp;
    /* the first pixel's sample, row and column by division, the rest by counting */
    int s = p0 / per, oy = p0 % per / d->out_w, ox = p0 % d->out_w;
    for (int r = 0; r < rows; r++, ox = ox + 1 < d->out_w ? ox + 1 : (oy = oy + 1 < d->out_h ? oy + 1 : (s++, 0), 0)) {
        uint8_t *c = col + (size_t)r * g->K4;
        const int ix0 = ox * d->sw - d->pl, inside = ix0 >= 0 && ix0 + d->kw <= d->in_w, row = d->kw * cg;
        const uint8_t *send = x + ((size_t)s + 1) * d->in_h * d->in_w * d->in_c; /* this sample's end */
        for (int ky = 0; ky < d->kh; ky++, c += g->row4 - row) {
            int iy = oy * d->sh - d->pt + ky;
            if (iy < 0 || iy >= d->in_h) {
                for (int k = 0; k < row; k++) c[k] = zp;
            } else if (inside && d->groups == 1) { /* the kernel row's cells are contiguous in NHWC */
                const uint8_t *src = x + (((size_t)s * d->in_h + iy) * d->in_w + ix0) * d->in_c;
                if (row >= 16) memcpy(c, src, (size_t)row);
                else if (src + 16 <= send) memcpy(c, src, 16); /* short rows: one 16-byte move, the excess
                                                                 * overwritten next (or in the block's slack) */
                else for (int k = 0; k < row; k++) c[k] = src[k];
            } else {
                const uint8_t *src = x + (((size_t)s * d->in_h + iy) * d->in_w) * d->in_c + (size_t)gi * cg;
                for (int kx = 0; kx < d->kw; kx++) {
                    int ix = ix0 + kx;
                    if (ix < 0 || ix >= d->in_w) {
                        for (int k = 0; k < cg; k++) c[kx * cg + k] = zp;
                    } else {
                        const uint8_t *sp = src + (size_t)ix * d->in_c;
                        if (cg >= 16) memcpy(c + kx * cg, sp, (size_t)cg);
                        else for (int k = 0; k < cg; k++) c[kx * cg + k] = sp[k];
                    }
                }
            }
            c += row;
            for (int k = 0; k < g->row4 - row; k++) c[k] = 0; /* a short row's slot */
        }
        if (g->K < g->K4 && g->row4 == g->row) memset(c, 0, 4); /* up to 3 tail bytes; a 4th lands on the next row
                                                                  * (written after) or in the slack */
    }
    if (rowsum) row_sums(col, (size_t)g->K4, rows, g->K4, rowsum, features); /* slot and tail zeros add nothing */
}

/* Depthwise (one channel per group), vectorised over channels: int32
 * products of (x - in_zp) and (w + wofs), padded cells skipped. */
AIBOX_CLONES_AVX2 static void depthwise_rows(const aibox_qconv *q, const int32_t *restrict packed,
                                             const uint8_t *restrict x, int p0, int p1, uint8_t *restrict y,
                                             int32_t *restrict acc)
{
    const aibox_conv_desc *d = &q->d;
    const int C = d->out_c, taps = d->kh * d->kw, per = d->out_h * d->out_w, zp = q->in_zp;
    const int32_t *wv = packed, *bias = wv + (size_t)taps * C, *mult = bias + C, *shift = mult + C;
    for (int p = p0; p < p1; p++) {
        int s = p / per, oy = p % per / d->out_w, ox = p % d->out_w;
        for (int c = 0; c < C; c++) acc[c] = bias[c];
        for (int ky = 0; ky < d->kh; ky++) {
            int iy = oy * d->sh - d->pt + ky;
            if (iy < 0 || iy >= d->in_h) continue;
            for (int kx = 0; kx < d->kw; kx++) {
                int ix = ox * d->sw - d->pl + kx;
                if (ix < 0 || ix >= d->in_w) continue;
                const uint8_t *xp = x + (((size_t)s * d->in_h + iy) * d->in_w + ix) * C;
                const int32_t *wk = wv + (size_t)(ky * d->kw + kx) * C;
                for (int c = 0; c < C; c++) acc[c] += ((int32_t)xp[c] - zp) * wk[c];
            }
        }
        uint8_t *yp = y + (size_t)p * C;
        for (int c = 0; c < C; c++)
            yp[c] = clamp_u8(aibox_q_mbqm(acc[c], mult[c], shift[c]) + q->out_zp, q->act_min, q->act_max);
    }
}

void aibox_qconv_run(const aibox_qconv *q, const void *packed, int n, const uint8_t *x, uint8_t *y, void *ws,
                     int part, int parts, unsigned features)
{
    const aibox_conv_desc *d = &q->d;
    geom g = geometry(q);
    int P = n * d->out_h * d->out_w, p0, p1;
    aibox_share(P, 1, part, parts, &p0, &p1);
    uintptr_t at = ((uintptr_t)ws + 63) & ~(uintptr_t)63;
    int vnni = use_vnni(features), dot = use_neon_dot(features), neon = use_neon(features);
    if (g.depthwise) {
#ifdef AIBOX_SIMD_X86
        if (vnni) {
            aibox_qdw_avx512(packed, d->out_c, d->in_h, d->in_w, d->out_h, d->out_w, d->kh, d->kw, d->sh, d->sw, d->pt,
                             d->pl, q->in_zp, q->out_zp, q->act_min, q->act_max, x, p0, p1, y);
            return;
        }
#endif
#ifdef AIBOX_SIMD_NEON
        if (neon) {
            aibox_qdw_neon(packed, d->out_c, d->in_h, d->in_w, d->out_h, d->out_w, d->kh, d->kw, d->sh, d->sw, d->pt,
                           d->pl, q->in_zp, q->out_zp, q->act_min, q->act_max, x, p0, p1, y);
            return;
        }
#endif
        depthwise_rows(q, packed, x, p0, p1, y, (int32_t *)at);
        return;
    }
#ifdef AIBOX_SIMD_X86
    if (rows_direct(&g, d) && use_rows(features)) {
        const int8_t *w = packed;
        aibox_qconv_rows_vbmi(x, d->in_h, d->in_w, d->in_c, d->out_h, d->out_w, d->kh, d->kw, d->sh, d->sw, d->pt,
                              d->pl, q->in_zp, g.row4, w, (const int32_t *)(const void *)(w + g.wbytes), g.O16, g.ocg,
                              q->wofs, q->out_zp, q->act_min, q->act_max, p0, p1, y, (uint8_t *)at);
        return;
    }
#endif
    uint8_t *col = (uint8_t *)at;
    int32_t *rowsum = q->wofs ? (int32_t *)(void *)(col + (size_t)PB * g.K4 + 64 - ((size_t)PB * g.K4) % 64) : NULL;
    for (int gi = 0; gi < d->groups; gi++) {
        const int8_t *w = (const int8_t *)packed + g.gbytes * gi;
        const int32_t *tab = (const int32_t *)(const void *)(w + g.wbytes);
        for (int b = p0; b < p1; b += PB) {
            int rows = p1 - b < PB ? p1 - b : PB;
            const uint8_t *a;
            size_t lda;
            if (g.direct) {
                a = x + (size_t)b * d->in_c, lda = (size_t)d->in_c;
                if (rowsum) row_sums(a, lda, rows, g.K, rowsum, features);
            } else {
#ifdef AIBOX_SIMD_X86
                if (vnni && d->groups == 1 && g.row <= 16)
                    aibox_qim2col_short_avx512(x, d->in_h, d->in_w, d->in_c, d->out_h, d->out_w, d->kh, d->kw, d->sh,
                                               d->sw, d->pt, d->pl, q->in_zp, g.row4, b, rows, col, rowsum);
                else
#endif
                    im2col(q, &g, gi, x, b, rows, col, rowsum, features);
                a = col, lda = (size_t)g.K4;
            }
            uint8_t *yb = y + (size_t)b * d->out_c + (size_t)gi * g.ocg;
#ifdef AIBOX_SIMD_X86
            if (vnni) {
                aibox_qgemm_vnni(a, lda, rows, w, tab, rowsum, g.K4, g.O16, g.ocg, q->wofs, q->out_zp, q->act_min,
                                 q->act_max, yb, (size_t)d->out_c);
                continue;
            }
            if (use_avx2(features)) {
                aibox_qgemm_avx2(a, lda, rows, w, tab, rowsum, g.K4, g.O16, g.ocg, q->wofs, q->out_zp, q->act_min,
                                 q->act_max, yb, (size_t)d->out_c);
                continue;
            }
#endif
#ifdef AIBOX_SIMD_NEON
            if (dot) {
                aibox_qgemm_neon_dot(a, lda, rows, w, tab, rowsum, g.K4, g.O16, g.ocg, q->wofs, q->out_zp,
                                     q->act_min, q->act_max, yb, (size_t)d->out_c);
                continue;
            }
            if (neon) {
                aibox_qgemm_neon(a, lda, rows, w, tab, rowsum, g.K4, g.O16, g.ocg, q->wofs, q->out_zp, q->act_min,
                                 q->act_max, yb, (size_t)d->out_c);
                continue;
            }
#endif
            (void)vnni, (void)dot, (void)neon;
            gemm_c(a, lda, rows, w, tab, rowsum, &g, q, yb, (size_t)d->out_c);
        }
    }
}

/* ------------------------------------------------------------ other layers */
#ifndef AIBOX_SIMD_NEON /* aarch64 has qops_neon.c's twin, whose tail is this loop */
/* Branch-free, so the AVX2 clone vectorises it. */
AIBOX_CLONES_AVX2 static void quantize_c(const float *restrict x, int n, float inv, float zp, uint8_t *restrict q)
{
    for (int k = 0; k < n; k++) {
        float v = x[k] * inv + zp + 0.5f; /* then truncation: round half up, as away from zero above 0 */
        v = v > 0.0f ? v : 0.0f;          /* NaN too */
        v = v < 255.0f ? v : 255.0f;
        q[k] = (uint8_t)(int32_t)v;
    }
}
#endif

/* One output pixel's window, chunk of channels [c0, c0 + cn): vectorised over
 * the channels, which are contiguous in NHWC. */
AIBOX_CLONES_AVX2 static void avg_pixel(const aibox_pool_desc *d, const uint8_t *restrict xs, int ya, int yb, int xa,
                                        int xb, int c0, int cn, int32_t *restrict acc)
{
    const int C = d->c;
    for (int c = 0; c < cn; c++) acc[c] = 0;
    for (int iy = ya; iy < yb; iy++)
        for (int ix = xa; ix < xb; ix++) {
            const uint8_t *xp = xs + ((size_t)iy * d->in_w + ix) * C + c0;
            for (int c = 0; c < cn; c++) acc[c] += xp[c];
        }
}

/* A max pool's output pixel straight into yp (at least one cell), clamped. */
AIBOX_CLONES_AVX2 static void max_pixel(const uint8_t *restrict xs, int in_w, int C, int ya, int yb, int xa, int xb,
                                        uint8_t lo, uint8_t hi, uint8_t *restrict yp)
{
    const uint8_t *first = xs + ((size_t)ya * in_w + xa) * C;
    for (int c = 0; c < C; c++) yp[c] = first[c];
    for (int iy = ya; iy < yb; iy++)
        for (int ix = iy == ya ? xa + 1 : xa; ix < xb; ix++) {
            const uint8_t *xp = xs + ((size_t)iy * in_w + ix) * C;
            for (int c = 0; c < C; c++) yp[c] = xp[c] > yp[c] ? xp[c] : yp[c];
        }
    for (int c = 0; c < C; c++) yp[c] = yp[c] < lo ? lo : yp[c] > hi ? hi : yp[c];
}

/* The common 2x2 stride-2 max pool, count output pixels of one row whose
 * windows lie inside the image, the first window's top-left cell at r0 and
 * its bottom-left at r1. */
AIBOX_CLONES_AVX2 static void max2x2(const uint8_t *restrict r0, const uint8_t *restrict r1, int C, int count,
                                     uint8_t lo, uint8_t hi, uint8_t *restrict yp)
{
    for (int i = 0; i < count; i++, yp += C) {
        const uint8_t *a = r0 + (size_t)2 * i * C, *b = r1 + (size_t)2 * i * C;
        for (int c = 0; c < C; c++) {
            uint8_t m0 = a[c] > a[C + c] ? a[c] : a[C + c], m1 = b[c] > b[C + c] ? b[c] : b[C + c];
            uint8_t m = m0 > m1 ? m0 : m1;
            yp[c] = m < lo ? lo : m > hi ? hi : m;
        }
    }
}

void aibox_qpool(const aibox_pool_desc *d, int n, int is_max, int zp, int act_min, int act_max, const uint8_t *x,
                 uint8_t *y, int part, int parts)
{
    enum { CH = 256 };
    const int C = d->c, per = d->out_h * d->out_w;
    int32_t acc[CH];
    int p0, p1;
    aibox_share(n * per, 1, part, parts, &p0, &p1);
    for (int p = p0; p < p1; p++) {
        const int s = p / per, oy = p % per / d->out_w, ox = p % d->out_w;
        int y0 = oy * d->sh - d->pt, x0 = ox * d->sw - d->pl;
        int ya = y0 < 0 ? 0 : y0, yb = y0 + d->kh > d->in_h ? d->in_h : y0 + d->kh;
        int xa = x0 < 0 ? 0 : x0, xb = x0 + d->kw > d->in_w ? d->in_w : x0 + d->kw;
        int cells = (yb - ya) * (xb - xa), full = d->kh * d->kw;
        const uint8_t *xs = x + (size_t)s * d->in_h * d->in_w * C;
        uint8_t *yp = y + (size_t)p * C;
        if (is_max && d->kh == 2 && d->kw == 2 && d->sh == 2 && d->sw == 2 && y0 >= 0 && y0 + 2 <= d->in_h && x0 >= 0) {
            /* the rest of this row's pixels whose windows are inside, at once */
            int ox1 = d->in_w + d->pl >= 2 ? (d->in_w + d->pl - 2) / 2 + 1 : 0; /* the first whose window leaves */
            if (ox1 > d->out_w) ox1 = d->out_w;
            if (ox1 - ox > p1 - p) ox1 = ox + (p1 - p);
            if (ox1 > ox) {
                const uint8_t *r0 = xs + ((size_t)y0 * d->in_w + x0) * C;
                max2x2(r0, r0 + (size_t)d->in_w * C, C, ox1 - ox, (uint8_t)act_min, (uint8_t)act_max, yp);
                p += ox1 - ox - 1;
                continue;
            }
        }
        if (is_max) {
            if (cells > 0) max_pixel(xs, d->in_w, C, ya, yb, xa, xb, (uint8_t)act_min, (uint8_t)act_max, yp);
            else memset(yp, clamp_u8(zp, act_min, act_max), (size_t)C);
            continue;
        }
        /* average: padded cells count as the zero point when count_include_pad */
        int count = d->count_include_pad ? full : cells, pad = d->count_include_pad ? (full - cells) * zp : 0;
        for (int c0 = 0; c0 < C; c0 += CH) {
            int cn = C - c0 < CH ? C - c0 : CH;
            avg_pixel(d, xs, ya, yb, xa, xb, c0, cn, acc);
            for (int c = 0; c < cn; c++)
                yp[c0 + c] = clamp_u8(count > 0 ? (acc[c] + pad + count / 2) / count : zp, act_min, act_max);
        }
    }
}

void aibox_qmean(int n, int hw, int c, int in_zp, int32_t mult, int shift, int out_zp, const uint8_t *x, uint8_t *y)
{
    for (int s = 0; s < n; s++)
        for (int ch = 0; ch < c; ch++) {
            int32_t acc = 0;
            for (int p = 0; p < hw; p++) acc += x[((size_t)s * hw + p) * c + ch] - in_zp;
            y[(size_t)s * c + ch] = clamp_u8(aibox_q_mbqm(acc, mult, shift) + out_zp, 0, 255);
        }
}

void aibox_q_quantize(const float *x, int n, float inv, float zp, uint8_t *q)
{
#ifdef AIBOX_SIMD_NEON /* NEON is aarch64's baseline: no feature to ask for */
    aibox_q_quantize_neon(x, n, inv, zp, q);
#else
    quantize_c(x, n, inv, zp, q);
#endif
}

void aibox_q_quantize3(const float *x, size_t plane, int n, float inv, float zp, uint8_t *q, unsigned features)
{
#ifdef AIBOX_SIMD_X86
    if (use_vnni(features)) { /* quantisation and interleaving in registers */
        aibox_q_quantize3_avx512(x, plane, n, inv, zp, q);
        return;
    }
#endif
    (void)features;
    enum { BLK = 1024 }; /* the planes in blocks through a small buffer, then interleaved */
    uint8_t tmp[3][BLK];
    for (int k0 = 0; k0 < n; k0 += BLK) {
        int nb = n - k0 < BLK ? n - k0 : BLK;
        for (int c = 0; c < 3; c++) aibox_q_quantize(x + (size_t)c * plane + k0, nb, inv, zp, tmp[c]);
        for (int k = 0; k < nb; k++)
            for (int c = 0; c < 3; c++) q[((size_t)k0 + k) * 3 + c] = tmp[c][k];
    }
}

void aibox_qlut(size_t count, const uint8_t lut[256], const uint8_t *x, uint8_t *y)
{
    for (size_t i = 0; i < count; i++) y[i] = lut[x[i]];
}

void aibox_qadd_setup(aibox_qadd *p, float a_scale, int a_zp, float b_scale, int b_zp, float out_scale, int out_zp,
                      int act_min, int act_max)
{
    /* add.cc's Prepare, with its float and double steps */
    const double twice_max = 2 * (a_scale > b_scale ? a_scale : b_scale);
    p->a_zp = a_zp, p->b_zp = b_zp, p->out_zp = out_zp, p->act_min = act_min, p->act_max = act_max;
    aibox_q_multiplier(a_scale / twice_max, &p->a_mult, &p->a_shift);
    aibox_q_multiplier(b_scale / twice_max, &p->b_mult, &p->b_shift);
    aibox_q_multiplier(twice_max / ((1 << 20) * (double)out_scale), &p->out_mult, &p->out_shift);
}

void aibox_qadd_run(const aibox_qadd *p, size_t count, const uint8_t *a, const uint8_t *b, uint8_t *y)
{
    for (size_t i = 0; i < count; i++) {
        int32_t sa = aibox_q_mbqm((a[i] - p->a_zp) * (1 << 20), p->a_mult, p->a_shift);
        int32_t sb = aibox_q_mbqm((b[i] - p->b_zp) * (1 << 20), p->b_mult, p->b_shift);
        y[i] = clamp_u8(aibox_q_mbqm(sa + sb, p->out_mult, p->out_shift) + p->out_zp, p->act_min, p->act_max);
    }
}

void aibox_qsoftmax_table(float in_scale, float beta, float table[256])
{
    const float scale = -in_scale * beta;
    for (int v = 0; v <= 255; v++) table[255 - v] = expf(scale * (float)v);
}

void aibox_qsoftmax(const float table[256], float out_scale, int out_zp, int rows, int k, const uint8_t *x, uint8_t *y)
{
    for (int r = 0; r < rows; r++, x += k, y += k) {
        int max = 0;
        for (int j = 0; j < k; j++) max = x[j] > max ? x[j] : max;
        const float *t = table + 255 - max;
        float sum = 0.0f;
        for (int j = 0; j < k; j++) sum += t[x[j]];
        const float inv = 1.0f / (sum * out_scale);
        for (int j = 0; j < k; j++) {
            float prob = t[x[j]] * inv;
            int32_t v = (int32_t)(prob + 0.5f) + out_zp; /* QuantizeSoftmaxOutput<uint8_t> off aarch64 */
            y[j] = clamp_u8(v, 0, 255);
        }
    }
}
