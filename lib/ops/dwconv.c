/* Depthwise 3x3 forward (MobileNet's): one input plane per output channel,
 * NCHW, so the kernels run along output rows, 8 (AVX2), 16 (AVX-512) or
 * 4 (NEON) outputs a vector, with the epilogue (scale, shift, ReLU)
 * applied before the store: one read of the input, one write of the output.
 *
 * Every kernel computes each output in the order of conv.c's general direct
 * loops: acc = bias (0 with a scale), then acc += w[ky][kx] * x for the taps
 * inside the input in (ky, kx) order, each product rounded before the add
 * (no FMA), then y = acc * scale + shift, then max(0, y). So every path
 * (plain C, AVX2, AVX-512, NEON; any build) gives the same bits as the general
 * scalar path did; tests/ops/test_dwconv.c checks it bit for bit. (FMA
 * measured 5-9 % faster on the stride-1 layers, 0.03 ms per MobileNet
 * image: not worth results that differ by CPU.)
 *
 * Columns: the interior [lo, hi) where every tap lies inside the row, the
 * borders where some fall into the padding. Plain C and AVX2 run one row
 * at a time, the borders per pixel in scalar code; AVX-512 runs whole rows
 * in blocks of 16, the border and last blocks with per-tap lane masks
 * (masked loads and masked adds: a tap in the padding is skipped, never
 * added as 0), and six rows at once where all their tap rows are inside:
 * the sums' fixed order makes each a chain of ten dependent adds, so only
 * independent rows fill the pipes (bench_layers --depthwise, sum of the
 * MobileNet layers: 0.83 ms a row at a time, 0.64 four rows, 0.56 six).
 * Stride 2 along the row deinterleaves two loaded vectors by permutes
 * (gathers measured 3x slower on the stride-2 layers). NEON (aarch64) runs
 * a row at a time as AVX2, 4 outputs a vector and four independent vectors
 * a step, stride 2 by its deinterleaving load. The x86 kernels sit behind
 * AIBOX_SIMD_X86 (simd.h) with target attributes, the NEON one behind
 * AIBOX_SIMD_NEON; the choice among them is a pure function of a feature
 * mask (aibox_dwconv_pick): the convolution layer asks it with its context's
 * features (read once per context: cpuid is slow in a VM). */
#include "ops/ops.h"
#include "ops/simd.h"

/* One output channel's plane and its constants. */
struct aibox_dwconv_plane {
    const float *x;     /* input plane, in_h x in_w */
    float *y;           /* output plane, out_h x out_w */
    float w[9];         /* 3x3 taps */
    float init;         /* accumulator start: the bias, or 0 with a scale */
    float scale, shift; /* epilogue y * scale + shift (has_scale) */
    int has_scale, relu;
    int lo, hi; /* interior output columns */
};
typedef struct aibox_dwconv_plane dw_plane;

int aibox_dwconv_eligible(const aibox_conv_desc *d)
{
    return d->groups > 1 && d->in_c == d->groups && d->out_c % d->groups == 0 && d->kh == 3 && d->kw == 3 &&
           d->sh >= 1 && (d->sw == 1 || d->sw == 2) && d->pt >= 0 && d->pl >= 0;
}

/* Interior columns: every tap ox * sw - pl + kx (kx 0..2) inside [0, in_w). */
static void interior(const aibox_conv_desc *d, int *lo, int *hi)
{
    int a = (d->pl + d->sw - 1) / d->sw;
    long r = (long)d->in_w - 3 + d->pl; /* ox * sw <= r */
    long b = r < 0 ? 0 : r / d->sw + 1;
    if (a > d->out_w) a = d->out_w;
    if (b > d->out_w) b = d->out_w;
    if (b < a) b = a;
    *lo = a;
    *hi = (int)b;
}

/* The input rows of output row oy (NULL: in the padding). */
static inline void tap_rows(const aibox_conv_desc *d, const dw_plane *p, int oy, const float *r[3])
{
    for (int ky = 0; ky < 3; ky++) {
        int iy = oy * d->sh - d->pt + ky;
        r[ky] = iy >= 0 && iy < d->in_h ? p->x + (size_t)iy * d->in_w : NULL;
    }
}

static inline float finish(const dw_plane *p, float v)
{
    if (p->has_scale) v = v * p->scale + p->shift;
    if (p->relu) v = v > 0.0f ? v : 0.0f;
    return v;
}

/* Output columns [a, b) of a row, per pixel, skipping taps in the padding. */
static inline void border(const aibox_conv_desc *d, const dw_plane *p, const float *const r[3], float *yr, int a,
                          int b)
{
    for (int ox = a; ox < b; ox++) {
        int ix0 = ox * d->sw - d->pl;
        float acc = p->init;
        for (int ky = 0; ky < 3; ky++) {
            if (!r[ky]) continue;
            for (int kx = 0; kx < 3; kx++) {
                int ix = ix0 + kx;
                if (ix >= 0 && ix < d->in_w) acc += p->w[ky * 3 + kx] * r[ky][ix];
            }
        }
        yr[ox] = finish(p, acc);
    }
}

/* ------------------------------------------------------------ plain C */
/* The interior a tap at a time over the row (kept in L1, where the general
 * path swept the whole plane nine times); the compiler vectorises each pass
 * for the baseline target. sw a constant after inlining. */
static inline void row_c(const dw_plane *p, const float *const r[3], float *yr, int pl, int sw)
{
    const int lo = p->lo, hi = p->hi;
    for (int j = lo; j < hi; j++) yr[j] = p->init;
    for (int ky = 0; ky < 3; ky++) {
        if (!r[ky]) continue;
        for (int kx = 0; kx < 3; kx++) {
            const float wv = p->w[ky * 3 + kx], *src = r[ky];
            const int off = kx - pl;
            for (int j = lo; j < hi; j++) yr[j] += wv * src[j * sw + off];
        }
    }
    if (p->has_scale)
        for (int j = lo; j < hi; j++) yr[j] = yr[j] * p->scale + p->shift;
    if (p->relu)
        for (int j = lo; j < hi; j++) yr[j] = yr[j] > 0.0f ? yr[j] : 0.0f;
}

static void plane_c(const aibox_conv_desc *d, const dw_plane *p)
{
    for (int oy = 0; oy < d->out_h; oy++) {
        const float *r[3];
        float *yr = p->y + (size_t)oy * d->out_w;
        tap_rows(d, p, oy, r);
        border(d, p, r, yr, 0, p->lo);
        if (d->sw == 1) row_c(p, r, yr, d->pl, 1);
        else row_c(p, r, yr, d->pl, 2);
        border(d, p, r, yr, p->hi, d->out_w);
    }
}

/* ------------------------------------------------------------ x86 */
#ifdef AIBOX_SIMD_X86 /* (x86-64 or i386) and not AIBOX_NO_SIMD: see simd.h */
#include <immintrin.h>

/* Rows whose three tap rows are all inside: [a, b). */
static void full_rows(const aibox_conv_desc *d, int *a, int *b)
{
    int lo = (d->pt + d->sh - 1) / d->sh; /* oy * sh - pt >= 0 */
    long r = (long)d->in_h - 3 + d->pt;   /* oy * sh <= r */
    long hi = r < 0 ? 0 : r / d->sh + 1;
    if (lo > d->out_h) lo = d->out_h;
    if (hi > d->out_h) hi = d->out_h;
    if (hi < lo) hi = lo;
    *a = lo, *b = (int)hi;
}

#define AVX2_TARGET __attribute__((target("avx2")))
#define AVX512_TARGET __attribute__((target("avx2,avx512f")))
#define INLINE __attribute__((always_inline)) static inline

/* 8 outputs from output column j of rows r (v0..v2: which rows are inside,
 * constants after inlining), stride sw; the interior guarantees the loads. */
AVX2_TARGET INLINE __m256 avx2_taps(const __m256 *w, const float *const r[3], int v0, int v1, int v2, int base, int sw,
                                    __m256 acc)
{
    const int valid[3] = {v0, v1, v2};
    for (int ky = 0; ky < 3; ky++) {
        if (!valid[ky]) continue;
        const float *s = r[ky] + base;
        __m256 x0, x1, x2;
        if (sw == 1) {
            x0 = _mm256_loadu_ps(s), x1 = _mm256_loadu_ps(s + 1), x2 = _mm256_loadu_ps(s + 2);
        } else {
            /* s[0..16]: evens of s[0..15], odds of s[0..15], odds of s[1..16] */
            __m256 a0 = _mm256_loadu_ps(s), a1 = _mm256_loadu_ps(s + 8);
            __m256 b0 = _mm256_loadu_ps(s + 1), b1 = _mm256_loadu_ps(s + 9);
            x0 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a0, a1, 0x88)), 0xd8));
            x1 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a0, a1, 0xdd)), 0xd8));
            x2 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(b0, b1, 0xdd)), 0xd8));
        }
        acc = _mm256_add_ps(acc, _mm256_mul_ps(w[ky * 3], x0));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(w[ky * 3 + 1], x1));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(w[ky * 3 + 2], x2));
    }
    return acc;
}

AVX2_TARGET INLINE void avx2_block(const dw_plane *p, const __m256 *w, const float *const r[3], int v0, int v1,
                                   int v2, float *yr, int j, int pl, int sw)
{
    __m256 acc = avx2_taps(w, r, v0, v1, v2, j * sw - pl, sw, _mm256_set1_ps(p->init));
    if (p->has_scale) acc = _mm256_add_ps(_mm256_mul_ps(acc, _mm256_set1_ps(p->scale)), _mm256_set1_ps(p->shift));
    if (p->relu) acc = _mm256_max_ps(acc, _mm256_setzero_ps()); /* max(NaN or -0, +0) = +0, as finish() */
    _mm256_storeu_ps(yr + j, acc);
}

/* The interior of a row: whole vectors, then one overlapping the last of
 * them (the same values again) or, when the interior is narrower than a
 * vector, scalars. */
AVX2_TARGET INLINE void avx2_span(const aibox_conv_desc *d, const dw_plane *p, const __m256 *w,
                                  const float *const r[3], int v0, int v1, int v2, float *yr, int sw)
{
    const int lo = p->lo, hi = p->hi;
    if (hi - lo < 8) {
        border(d, p, r, yr, lo, hi);
        return;
    }
    int j = lo;
    for (; j + 8 <= hi; j += 8) avx2_block(p, w, r, v0, v1, v2, yr, j, d->pl, sw);
    if (j < hi) avx2_block(p, w, r, v0, v1, v2, yr, hi - 8, d->pl, sw);
}

/* One row at a time: border pixels scalar, the interior in vectors of 8.
 * (Several rows at once, as the AVX-512 kernel runs them, measured no
 * faster here: 16 registers.) */
AVX2_TARGET INLINE void avx2_plane(const aibox_conv_desc *d, const dw_plane *p, int sw)
{
    __m256 w[9];
    for (int k = 0; k < 9; k++) w[k] = _mm256_set1_ps(p->w[k]);
    for (int oy = 0; oy < d->out_h; oy++) {
        const float *r[3];
        float *yr = p->y + (size_t)oy * d->out_w;
        tap_rows(d, p, oy, r);
        border(d, p, r, yr, 0, p->lo);
        if (r[0] && r[1] && r[2]) avx2_span(d, p, w, r, 1, 1, 1, yr, sw);
        else avx2_span(d, p, w, r, r[0] != NULL, r[1] != NULL, r[2] != NULL, yr, sw);
        border(d, p, r, yr, p->hi, d->out_w);
    }
}

AVX2_TARGET static void plane_avx2(const aibox_conv_desc *d, const dw_plane *p)
{
    if (d->sw == 1) avx2_plane(d, p, 1);
    else avx2_plane(d, p, 2);
}

/* Lanes l < cnt of the block at output column j whose tap kx lies inside
 * the row: 0 <= (j + l) * sw - pl + kx < in_w. */
__attribute__((always_inline)) static inline unsigned tap_lanes(const aibox_conv_desc *d, int j, int cnt, int kx,
                                                                int sw)
{
    int base = j * sw - d->pl + kx, a = 0, b;
    if (base < 0) a = (-base + sw - 1) / sw;
    b = d->in_w - base <= 0 ? 0 : (d->in_w - base + sw - 1) / sw;
    if (b > cnt) b = cnt;
    if (a >= b) return 0;
    return ((1u << b) - 1) & ~((1u << a) - 1);
}

/* A block of 16 output columns from j: full (every tap of every lane
 * inside the row) or with the lanes of tap kx in m[kx]; at stride 2 also
 * the floats s[0..31] those lanes read (in) and whether they read s[32]. */
typedef struct {
    int full, cnt;
    __mmask16 m[3];
    unsigned in;
    int top;
} blk;

__attribute__((always_inline)) static inline void blk_init(const aibox_conv_desc *d, int j, int sw, int full, blk *k)
{
    k->full = full, k->cnt = d->out_w - j < 16 ? d->out_w - j : 16;
    k->m[0] = k->m[1] = k->m[2] = 0xffff, k->in = 0xffffffffu, k->top = 1;
    if (full) return;
    for (int kx = 0; kx < 3; kx++) k->m[kx] = (__mmask16)tap_lanes(d, j, k->cnt, kx, sw);
    k->in = 0, k->top = 0;
    unsigned any = (unsigned)(k->m[0] | k->m[1] | k->m[2]);
    if (sw != 2 || !any) return;
    int lo = __builtin_ctz(any), hi = 31 - __builtin_clz(any);
    int e0 = 2 * lo + (k->m[0] & (1u << lo) ? 0 : k->m[1] & (1u << lo) ? 1 : 2);
    int e1 = 2 * hi + (k->m[2] & (1u << hi) ? 2 : k->m[1] & (1u << hi) ? 1 : 0);
    unsigned long long bits = ((2ull << e1) - 1) & ~((1ull << e0) - 1);
    k->in = (unsigned)(bits & 0xffffffffu);
    k->top = e1 >= 32;
}

/* The inputs of taps kx = 0, 1, 2 for a block, s = row + j * sw - pl. Not
 * full: loads masked to the floats the lanes read (a masked-out float is
 * never touched, even before the row or past the buffer). Stride 2: evens
 * and odds of s[0..31] by two permutes (measured faster than gathers), the
 * third tap the evens moved down a lane with s[32] on top. */
AVX512_TARGET INLINE void avx512_load3(const float *s, int sw, const blk *k, __m512 x[3])
{
    if (sw == 1) {
        if (k->full) x[0] = _mm512_loadu_ps(s), x[1] = _mm512_loadu_ps(s + 1), x[2] = _mm512_loadu_ps(s + 2);
        else
            x[0] = _mm512_maskz_loadu_ps(k->m[0], s), x[1] = _mm512_maskz_loadu_ps(k->m[1], s + 1),
            x[2] = _mm512_maskz_loadu_ps(k->m[2], s + 2);
        return;
    }
    const __m512i ie = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i io = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __m512 a0, a1, top;
    if (k->full) {
        a0 = _mm512_loadu_ps(s), a1 = _mm512_loadu_ps(s + 16), top = _mm512_set1_ps(s[32]);
    } else {
        a0 = _mm512_maskz_loadu_ps((__mmask16)(k->in & 0xffff), s);
        a1 = _mm512_maskz_loadu_ps((__mmask16)(k->in >> 16), s + 16);
        top = k->top ? _mm512_set1_ps(s[32]) : _mm512_setzero_ps();
    }
    x[0] = _mm512_permutex2var_ps(a0, ie, a1);
    x[1] = _mm512_permutex2var_ps(a0, io, a1);
    x[2] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(top), _mm512_castps_si512(x[0]), 1));
}

/* acc += w[ky][kx] * x[kx] in kx order; not full: only in the lanes of
 * tap kx (a tap in the padding is skipped, not added as 0). */
AVX512_TARGET INLINE __m512 avx512_add3(const __m512 *w, int ky, const __m512 x[3], const blk *k, __m512 acc)
{
#pragma GCC unroll 3
    for (int kx = 0; kx < 3; kx++) {
        __m512 prod = _mm512_mul_ps(w[ky * 3 + kx], x[kx]);
        acc = k->full ? _mm512_add_ps(acc, prod) : _mm512_mask_add_ps(acc, k->m[kx], acc, prod);
    }
    return acc;
}

AVX512_TARGET INLINE void avx512_store(const dw_plane *p, const blk *k, float *dst, __m512 v)
{
    if (p->has_scale) v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_set1_ps(p->scale)), _mm512_set1_ps(p->shift));
    if (p->relu) v = _mm512_max_ps(v, _mm512_setzero_ps()); /* max(NaN or -0, +0) = +0, as finish() */
    if (k->full) _mm512_storeu_ps(dst, v);
    else _mm512_mask_storeu_ps(dst, (__mmask16)((1u << k->cnt) - 1), v);
}

/* One row with tap rows r (NULL: in the padding), blocks of 16 from column
 * 0: those inside the interior full, the others (borders, the last partial
 * block) masked. */
AVX512_TARGET INLINE void avx512_row(const aibox_conv_desc *d, const dw_plane *p, const __m512 *w,
                                     const float *const r[3], float *yr, int sw)
{
    for (int j = 0; j < d->out_w; j += 16) {
        blk k;
        blk_init(d, j, sw, j >= p->lo && j + 16 <= p->hi, &k);
        __m512 acc = _mm512_set1_ps(p->init), x[3];
        for (int ky = 0; ky < 3; ky++) {
            if (!r[ky]) continue;
            avx512_load3(r[ky] + j * sw - d->pl, sw, &k, x);
            acc = avx512_add3(w, ky, x, &k, acc);
        }
        avx512_store(p, &k, yr + j, acc);
    }
}

/* R output rows whose tap rows are all inside, block by block: R
 * independent sums per block (the order inside each is fixed, so their
 * latency hides only across them), each input row loaded once for the rows
 * that read it. xr: the input row of the first output row's top tap; R,
 * sh, sw, full constants after inlining, the loops unrolled whole so that
 * the sums stay in registers. */
AVX512_TARGET INLINE void avx512_rows(const aibox_conv_desc *d, const dw_plane *p, const __m512 *w, const float *xr,
                                      float *yr, int R, int sh, int sw, int j, int full)
{
    blk k;
    blk_init(d, j, sw, full, &k);
    __m512 acc[6];
    for (int i = 0; i < R; i++) acc[i] = _mm512_set1_ps(p->init);
#pragma GCC unroll 16
    for (int t = 0; t < (R - 1) * sh + 3; t++) {
        __m512 x[3];
        avx512_load3(xr + (size_t)t * d->in_w + j * sw - d->pl, sw, &k, x);
#pragma GCC unroll 6
        for (int i = 0; i < R; i++)
            if (t - i * sh >= 0 && t - i * sh <= 2) acc[i] = avx512_add3(w, t - i * sh, x, &k, acc[i]);
    }
#pragma GCC unroll 6
    for (int i = 0; i < R; i++) avx512_store(p, &k, yr + (size_t)i * d->out_w + j, acc[i]);
}

AVX512_TARGET INLINE void avx512_group(const aibox_conv_desc *d, const dw_plane *p, const __m512 *w, int oy, int R,
                                       int sh, int sw)
{
    const float *xr = p->x + (size_t)(oy * sh - d->pt) * d->in_w;
    float *yr = p->y + (size_t)oy * d->out_w;
    for (int j = 0; j < d->out_w; j += 16) {
        if (j >= p->lo && j + 16 <= p->hi) avx512_rows(d, p, w, xr, yr, R, sh, sw, j, 1);
        else avx512_rows(d, p, w, xr, yr, R, sh, sw, j, 0);
    }
}

/* sh 0: any row stride, one row at a time. */
AVX512_TARGET INLINE void avx512_plane(const aibox_conv_desc *d, const dw_plane *p, int sh, int sw)
{
    __m512 w[9];
    for (int k = 0; k < 9; k++) w[k] = _mm512_set1_ps(p->w[k]);
    int a, b;
    full_rows(d, &a, &b);
    for (int oy = 0; oy < d->out_h;) {
        if (sh && oy >= a && oy < b) {
            /* rows with all their taps inside: six at a time (measured 6 >
             * 4 > 2 sums in flight), then fewer */
            int R = b - oy >= 6 ? 6 : b - oy >= 4 ? 4 : b - oy >= 2 ? 2 : 1;
            if (R == 6) avx512_group(d, p, w, oy, 6, sh, sw);
            else if (R == 4) avx512_group(d, p, w, oy, 4, sh, sw);
            else if (R == 2) avx512_group(d, p, w, oy, 2, sh, sw);
            else avx512_group(d, p, w, oy, 1, sh, sw);
            oy += R;
            continue;
        }
        const float *r[3];
        tap_rows(d, p, oy, r);
        avx512_row(d, p, w, r, p->y + (size_t)oy * d->out_w, sw);
        oy++;
    }
}

AVX512_TARGET static void plane_avx512(const aibox_conv_desc *d, const dw_plane *p)
{
    int sh = d->sh == 1 || d->sh == 2 ? d->sh : 0;
    if (sh == 1 && d->sw == 1) avx512_plane(d, p, 1, 1);
    else if (sh == 2 && d->sw == 2) avx512_plane(d, p, 2, 2);
    else if (sh == 1) avx512_plane(d, p, 1, 2);
    else if (sh == 2) avx512_plane(d, p, 2, 1);
    else if (d->sw == 1) avx512_plane(d, p, 0, 1);
    else avx512_plane(d, p, 0, 2);
}
#endif

/* ------------------------------------------------------------ aarch64 */
#ifdef AIBOX_SIMD_NEON /* aarch64 and not AIBOX_NO_SIMD: see simd.h */
#include <arm_neon.h>

#define NEON_INLINE __attribute__((always_inline)) static inline

/* The inputs of taps kx = 0, 1, 2 for 4 outputs, s = row + j * sw - pl.
 * Stride 2: evens and odds of s[0..7] by one deinterleaving load, the third
 * tap the evens moved down a lane with s[8] on top (read alone: the last
 * interior output's last tap, where the row may end). */
NEON_INLINE void neon_load3(const float *s, int sw, float32x4_t x[3])
{
    if (sw == 1) {
        x[0] = vld1q_f32(s), x[1] = vld1q_f32(s + 1), x[2] = vld1q_f32(s + 2);
        return;
    }
    float32x4x2_t e = vld2q_f32(s);
    x[0] = e.val[0], x[1] = e.val[1];
    x[2] = vextq_f32(e.val[0], vld1q_dup_f32(s + 8), 1);
}

/* B vectors of 4 outputs from interior column j (B independent sums: each
 * is a chain of up to ten dependent adds in the fixed order, so only several
 * chains keep the pipes busy); products rounded before the adds, as row_c
 * (vmulq and vaddq, never fused under -ffp-contract=off). */
NEON_INLINE void neon_block(const dw_plane *p, const float32x4_t *w, const float *const r[3], float *yr, int j,
                            int pl, int sw, int B)
{
    float32x4_t acc[4];
    for (int b = 0; b < B; b++) acc[b] = vdupq_n_f32(p->init);
    for (int ky = 0; ky < 3; ky++) {
        if (!r[ky]) continue;
        for (int b = 0; b < B; b++) {
            float32x4_t x[3];
            neon_load3(r[ky] + (j + 4 * b) * sw - pl, sw, x);
            for (int kx = 0; kx < 3; kx++) acc[b] = vaddq_f32(acc[b], vmulq_f32(w[ky * 3 + kx], x[kx]));
        }
    }
    const float32x4_t zero = vdupq_n_f32(0.0f);
    for (int b = 0; b < B; b++) {
        float32x4_t v = acc[b];
        if (p->has_scale) v = vaddq_f32(vmulq_f32(v, vdupq_n_f32(p->scale)), vdupq_n_f32(p->shift));
        /* v > 0 ? v : 0 as finish(): NaN and -0 to +0 (FMAX would keep a NaN) */
        if (p->relu) v = vbslq_f32(vcgtq_f32(v, zero), v, zero);
        vst1q_f32(yr + j + 4 * b, v);
    }
}

/* One row at a time as the AVX2 kernel: border pixels scalar, the interior
 * 16 outputs a step, then 4, then one vector overlapping the last (the same
 * values again) or, when the interior is narrower than a vector, scalars. */
NEON_INLINE void neon_plane(const aibox_conv_desc *d, const dw_plane *p, int sw)
{
    float32x4_t w[9];
    for (int k = 0; k < 9; k++) w[k] = vdupq_n_f32(p->w[k]);
    const int lo = p->lo, hi = p->hi;
    for (int oy = 0; oy < d->out_h; oy++) {
        const float *r[3];
        float *yr = p->y + (size_t)oy * d->out_w;
        tap_rows(d, p, oy, r);
        border(d, p, r, yr, 0, lo);
        if (hi - lo < 4) {
            border(d, p, r, yr, lo, hi);
        } else {
            int j = lo;
            for (; j + 16 <= hi; j += 16) neon_block(p, w, r, yr, j, d->pl, sw, 4);
            for (; j + 4 <= hi; j += 4) neon_block(p, w, r, yr, j, d->pl, sw, 1);
            if (j < hi) neon_block(p, w, r, yr, hi - 4, d->pl, sw, 1);
        }
        border(d, p, r, yr, hi, d->out_w);
    }
}

static void plane_neon(const aibox_conv_desc *d, const dw_plane *p)
{
    if (d->sw == 1) neon_plane(d, p, 1);
    else neon_plane(d, p, 2);
}
#endif

/* ------------------------------------------------------------ dispatch */
int aibox_dwconv_kernels(unsigned features, aibox_dwconv_kernel *k, int max)
{
    aibox_dwconv_kernel all[3];
    int n = 0;
    all[n++] = (aibox_dwconv_kernel){plane_c, "c"};
#ifdef AIBOX_SIMD_X86
    if (features & AIBOX_CPU_AVX2) all[n++] = (aibox_dwconv_kernel){plane_avx2, "avx2"};
    if ((features & (AIBOX_CPU_AVX2 | AIBOX_CPU_AVX512F)) == (AIBOX_CPU_AVX2 | AIBOX_CPU_AVX512F))
        all[n++] = (aibox_dwconv_kernel){plane_avx512, "avx512"};
#endif
#ifdef AIBOX_SIMD_NEON
    if (features & AIBOX_CPU_NEON) all[n++] = (aibox_dwconv_kernel){plane_neon, "neon"};
#endif
    (void)features;
    for (int i = 0; i < n && i < max; i++) k[i] = all[i];
    return n < max ? n : max;
}

aibox_dwconv_kernel aibox_dwconv_pick(unsigned features)
{
    aibox_dwconv_kernel k[3];
    int n = aibox_dwconv_kernels(features, k, 3);
    return k[n - 1]; /* the widest */
}

void aibox_dwconv_fwd_part(const aibox_dwconv_kernel *k, const aibox_conv_desc *d, int n, const float *x,
                           const float *w, const float *scale, const float *b, float *y, int relu, int part, int parts)
{
    const int mult = d->out_c / d->groups;
    const size_t HW = (size_t)d->in_h * d->in_w, P = (size_t)d->out_h * d->out_w;
    int o0, o1;
    aibox_share(d->out_c, 1, part, parts, &o0, &o1);
    dw_plane p = {.has_scale = scale != NULL, .relu = relu};
    interior(d, &p.lo, &p.hi);
    for (int s = 0; s < n; s++)
        for (int oc = o0; oc < o1; oc++) {
            p.x = x + ((size_t)s * d->in_c + oc / mult) * HW;
            p.y = y + ((size_t)s * d->out_c + oc) * P;
            memcpy(p.w, w + (size_t)oc * 9, sizeof p.w);
            p.init = !scale && b ? b[oc] : 0.0f;
            p.scale = scale ? scale[oc] : 1.0f;
            p.shift = scale && b ? b[oc] : 0.0f;
            k->fn(d, &p);
        }
}
