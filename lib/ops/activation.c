/* Element-wise activations, dropout and channel softmax, forward and backward.
 *
 * Loops are plain so that gcc vectorises them (they are memory-bound). Both
 * operands of a select are loaded unconditionally: a load or multiply done
 * only on one side is a branch gcc will not if-convert (it might trap).
 * Note: GCC 12 at plain -O2 uses the "very-cheap" cost model, which skips
 * any loop that needs a scalar tail; -O3 or -fvect-cost-model=cheap turns
 * these loops into SSE/AVX code.
 * Gradients at a kink take the value of the flat side (relu'(0) = 0, clamp'
 * at lo or hi = 0), as PyTorch's relu and hardtanh/relu6 do.
 */
#include <math.h>
#include <string.h>

#include "ops/ops.h"

void aibox_relu_fwd(size_t count, const float *x, float *y)
{
    for (size_t i = 0; i < count; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void aibox_relu_bwd(size_t count, const float *x, const float *dy, float *dx)
{
    for (size_t i = 0; i < count; i++) {
        const float g = dy[i];
        dx[i] += x[i] > 0.0f ? g : 0.0f;
    }
}

void aibox_relu_bwd_set(size_t count, const float *x, const float *dy, float *dx)
{
    for (size_t i = 0; i < count; i++) {
        const float g = dy[i];
        dx[i] = x[i] > 0.0f ? g : 0.0f;
    }
}

void aibox_clamp_fwd(size_t count, float lo, float hi, const float *x, float *y)
{
    for (size_t i = 0; i < count; i++) {
        float v = x[i] < lo ? lo : x[i];
        y[i] = v > hi ? hi : v;
    }
}

/* Gradient passes strictly inside (lo, hi): relu6 is clamp(0, 6) and must
 * agree with relu at 0. */
void aibox_clamp_bwd(size_t count, float lo, float hi, const float *x, const float *dy, float *dx)
{
    for (size_t i = 0; i < count; i++) {
        const float g = dy[i], v = x[i];
        dx[i] += (v > lo && v < hi) ? g : 0.0f;
    }
}

/* The slope is selected, then multiplied (x*1 == x exactly): the form gcc
 * vectorises. */
void aibox_leaky_fwd(size_t count, float alpha, const float *x, float *y)
{
    for (size_t i = 0; i < count; i++) {
        float s = alpha;
        if (x[i] > 0.0f) s = 1.0f;
        y[i] = x[i] * s;
    }
}

void aibox_leaky_bwd(size_t count, float alpha, const float *x, const float *dy, float *dx)
{
    for (size_t i = 0; i < count; i++) {
        float s = alpha;
        if (x[i] > 0.0f) s = 1.0f;
        dx[i] += dy[i] * s;
    }
}

/* exp of a non-positive argument only: no overflow for any x, and no
 * cancellation in 1 - y for large negative x. */
void aibox_sigmoid_fwd(size_t count, const float *x, float *y)
{
    for (size_t i = 0; i < count; i++) {
        float v = x[i];
        float e = expf(-fabsf(v));
        y[i] = v >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }
}

void aibox_sigmoid_bwd(size_t count, const float *y, const float *dy, float *dx)
{
    for (size_t i = 0; i < count; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

/* Inverted dropout: kept cells are scaled by 1/(1-rate) so inference needs no
 * rescaling. A cell is kept when u >= rate, u uniform in [0, 1): probability
 * 1-rate. rate <= 0 copies x (mask all 1) without drawing from rng; rate >= 1
 * drops everything (mask all 0). mask may be NULL when no backward follows. */
#define DROPOUT_DRAWS 512 /* cells per block of draws (even) */
void aibox_dropout_fwd(size_t count, float rate, aibox_rng *rng, const float *x, float *y, float *mask)
{
    if (!(rate > 0.0f)) { /* also catches a NaN rate */
        if (y != x) memmove(y, x, count * sizeof *y);
        if (mask)
            for (size_t i = 0; i < count; i++) mask[i] = 1.0f;
        return;
    }
    if (rate >= 1.0f) {
        for (size_t i = 0; i < count; i++) y[i] = 0.0f;
        if (mask)
            for (size_t i = 0; i < count; i++) mask[i] = 0.0f;
        return;
    }
    const float scale = 1.0f / (1.0f - rate);
    /* keep when a 32-bit uniform is >= rate * 2^32: two draws per generator
     * call, integer compares (this loop is a visible part of a training step) */
    const double t = (double)rate * 4294967296.0;
    const uint32_t thr = t >= 4294967295.0 ? 0xffffffffu : (uint32_t)t;
    /* the generator's steps inline on a local copy of its state (the same
     * sequence as aibox_rng_u64, without a call per pair of cells), a block
     * of draws at a time (low half for the even cell, high for the odd:
     * an odd count leaves the last high half unused, as one pair at a time
     * did), then the cells in a loop that vectorises */
    uint64_t s0 = rng->s[0], s1 = rng->s[1], s2 = rng->s[2], s3 = rng->s[3];
    uint32_t u[DROPOUT_DRAWS];
    for (size_t i0 = 0; i0 < count; i0 += DROPOUT_DRAWS) {
        size_t len = count - i0 < DROPOUT_DRAWS ? count - i0 : DROPOUT_DRAWS;
        for (size_t k = 0; k < len; k += 2) {
            uint64_t r = s1 * 5;
            r = ((r << 7) | (r >> 57)) * 9;
            uint64_t sh = s1 << 17;
            s2 ^= s0, s3 ^= s1, s1 ^= s2, s0 ^= s3, s2 ^= sh;
            s3 = (s3 << 45) | (s3 >> 19);
            u[k] = (uint32_t)r, u[k + 1] = (uint32_t)(r >> 32);
        }
        const float *xb = x + i0;
        float *yb = y + i0;
        if (mask) {
            float *mb = mask + i0;
            for (size_t k = 0; k < len; k++) {
                float m = u[k] >= thr ? scale : 0.0f;
                mb[k] = m;
                yb[k] = xb[k] * m;
            }
        } else {
            for (size_t k = 0; k < len; k++) yb[k] = xb[k] * (u[k] >= thr ? scale : 0.0f);
        }
    }
    rng->s[0] = s0, rng->s[1] = s1, rng->s[2] = s2, rng->s[3] = s3;
}

void aibox_dropout_bwd(size_t count, const float *mask, const float *dy, float *dx)
{
    for (size_t i = 0; i < count; i++) dx[i] += dy[i] * mask[i];
}

void aibox_dropout_bwd_set(size_t count, const float *mask, const float *dy, float *dx)
{
    for (size_t i = 0; i < count; i++) dx[i] = dy[i] * mask[i];
}

/* Softmax over channels: channel j of position p sits at p + j*hw, so the
 * loops run channel-outer over a block of positions, each inner loop being
 * a contiguous stride-1 sweep; the per-position max and sum live in small
 * stack blocks (kernels never allocate). */
#define SOFTMAX_BLOCK 256

void aibox_softmax_fwd(int n, int c, int hw, const float *x, float *y)
{
    if (n <= 0 || c <= 0 || hw <= 0) return;
    float mx[SOFTMAX_BLOCK], sum[SOFTMAX_BLOCK];
    const size_t plane = (size_t)hw, sample = (size_t)c * hw;
    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * sample;
        float *ys = y + (size_t)s * sample;
        for (size_t p0 = 0; p0 < plane; p0 += SOFTMAX_BLOCK) {
            const size_t b = plane - p0 < SOFTMAX_BLOCK ? plane - p0 : SOFTMAX_BLOCK;
            /* subtracting the max keeps every exp in (0, 1]: no overflow */
            memcpy(mx, xs + p0, b * sizeof *mx);
            for (int j = 1; j < c; j++) {
                const float *xj = xs + (size_t)j * plane + p0;
                for (size_t i = 0; i < b; i++) mx[i] = xj[i] > mx[i] ? xj[i] : mx[i];
            }
            memset(sum, 0, b * sizeof *sum);
            for (int j = 0; j < c; j++) {
                const float *xj = xs + (size_t)j * plane + p0;
                float *yj = ys + (size_t)j * plane + p0;
                for (size_t i = 0; i < b; i++) {
                    yj[i] = expf(xj[i] - mx[i]);
                    sum[i] += yj[i];
                }
            }
            /* sum >= 1 (the max term is exp(0)), so the division is safe */
            for (size_t i = 0; i < b; i++) sum[i] = 1.0f / sum[i];
            for (int j = 0; j < c; j++) {
                float *yj = ys + (size_t)j * plane + p0;
                for (size_t i = 0; i < b; i++) yj[i] *= sum[i];
            }
        }
    }
}

/* dx_j += y_j * (dy_j - sum_k dy_k y_k) */
void aibox_softmax_bwd(int n, int c, int hw, const float *y, const float *dy, float *dx)
{
    if (n <= 0 || c <= 0 || hw <= 0) return;
    float dot[SOFTMAX_BLOCK];
    const size_t plane = (size_t)hw, sample = (size_t)c * hw;
    for (int s = 0; s < n; s++) {
        const float *ys = y + (size_t)s * sample;
        const float *gs = dy + (size_t)s * sample;
        float *dxs = dx + (size_t)s * sample;
        for (size_t p0 = 0; p0 < plane; p0 += SOFTMAX_BLOCK) {
            const size_t b = plane - p0 < SOFTMAX_BLOCK ? plane - p0 : SOFTMAX_BLOCK;
            memset(dot, 0, b * sizeof *dot);
            for (int j = 0; j < c; j++) {
                const float *yj = ys + (size_t)j * plane + p0, *gj = gs + (size_t)j * plane + p0;
                for (size_t i = 0; i < b; i++) dot[i] += yj[i] * gj[i];
            }
            for (int j = 0; j < c; j++) {
                const float *yj = ys + (size_t)j * plane + p0, *gj = gs + (size_t)j * plane + p0;
                float *dj = dxs + (size_t)j * plane + p0;
                for (size_t i = 0; i < b; i++) dj[i] += yj[i] * (gj[i] - dot[i]);
            }
        }
    }
}
