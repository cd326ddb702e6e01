/* Batch normalisation over (n, h*w) per channel, forward (training and
 * inference) and training-mode backward.
 *
 * Channel ch of sample s is the contiguous plane x + (s*c + ch)*hw, so every
 * pass walks n contiguous planes per channel. Sums over n*hw values are
 * accumulated in double (with four lanes to break the dependency chain):
 * float sums over a 64x128x128 channel would lose several digits.
 *
 * gamma NULL means 1 and beta NULL means 0 (no affine parameters);
 * save_mean/save_invstd, run_mean/run_var, dx, dgamma and dbeta may be NULL
 * when not wanted.
 */
#include <math.h>

#include "ops/ops.h"

static double sum_f(const float *x, size_t len)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        s0 += x[i];
        s1 += x[i + 1];
        s2 += x[i + 2];
        s3 += x[i + 3];
    }
    for (; i < len; i++) s0 += x[i];
    return (s0 + s1) + (s2 + s3);
}

/* sum of (x - m)^2: two-pass variance, no cancellation as in E[x^2]-E[x]^2 */
static double sumsq_dev(const float *x, size_t len, double m)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        double a = x[i] - m, b = x[i + 1] - m, c = x[i + 2] - m, d = x[i + 3] - m;
        s0 += a * a;
        s1 += b * b;
        s2 += c * c;
        s3 += d * d;
    }
    for (; i < len; i++) s0 += (x[i] - m) * (x[i] - m);
    return (s0 + s1) + (s2 + s3);
}

/* sum of g and of g*(x - m) together, one sweep over both arrays */
static void sum_g_gx(const float *g, const float *x, size_t len, double m, double *sg, double *sgx)
{
    double a0 = 0, a1 = 0, b0 = 0, b1 = 0;
    size_t i = 0;
    for (; i + 2 <= len; i += 2) {
        a0 += g[i];
        a1 += g[i + 1];
        b0 += g[i] * (x[i] - m);
        b1 += g[i + 1] * (x[i + 1] - m);
    }
    for (; i < len; i++) {
        a0 += g[i];
        b0 += g[i] * (x[i] - m);
    }
    *sg += a0 + a1;
    *sgx += b0 + b1;
}

/* y = (x - m)*scale + shift over channel ch of every sample. Subtracting the
 * mean first (rather than folding it into shift) keeps precision when
 * |mean| >> std. */
static void affine_channel(int n, int c, int hw, int ch, float m, float scale, float shift, const float *x,
                           float *y)
{
    for (int s = 0; s < n; s++) {
        const size_t off = ((size_t)s * c + ch) * hw;
        const float *xp = x + off;
        float *yp = y + off;
        for (int i = 0; i < hw; i++) yp[i] = (xp[i] - m) * scale + shift;
    }
}

void aibox_bn_fwd_train(int n, int c, int hw, float eps, float momentum, const float *x, const float *gamma,
                        const float *beta, float *y, float *save_mean, float *save_invstd, float *run_mean,
                        float *run_var)
{
    if (n <= 0 || c <= 0 || hw < 0) return;
    const double cnt = (double)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double s = 0;
        for (int k = 0; k < n; k++) s += sum_f(x + ((size_t)k * c + ch) * hw, (size_t)hw);
        const double mean = cnt > 0 ? s / cnt : 0.0;
        double ss = 0;
        for (int k = 0; k < n; k++) ss += sumsq_dev(x + ((size_t)k * c + ch) * hw, (size_t)hw, mean);
        const double var = cnt > 0 ? ss / cnt : 0.0; /* biased: what the batch is normalised with */
        const double invstd = 1.0 / sqrt(var + eps);
        const double g = gamma ? gamma[ch] : 1.0, b = beta ? beta[ch] : 0.0;
        affine_channel(n, c, hw, ch, (float)mean, (float)(g * invstd), (float)b, x, y);
        if (save_mean) save_mean[ch] = (float)mean;
        if (save_invstd) save_invstd[ch] = (float)invstd;
        /* running variance is unbiased (PyTorch); a single value per channel
         * has no unbiased estimate, so the biased one (0) is used instead */
        const double uvar = cnt > 1 ? ss / (cnt - 1) : var;
        if (run_mean) run_mean[ch] = (float)((1.0 - momentum) * run_mean[ch] + momentum * mean);
        if (run_var) run_var[ch] = (float)((1.0 - momentum) * run_var[ch] + momentum * uvar);
    }
}

void aibox_bn_fwd_infer(int n, int c, int hw, float eps, const float *x, const float *gamma, const float *beta,
                        const float *run_mean, const float *run_var, float *y)
{
    if (n <= 0 || c <= 0 || hw <= 0) return;
    for (int ch = 0; ch < c; ch++) {
        const double invstd = 1.0 / sqrt((double)run_var[ch] + eps);
        const double g = gamma ? gamma[ch] : 1.0, b = beta ? beta[ch] : 0.0;
        affine_channel(n, c, hw, ch, run_mean[ch], (float)(g * invstd), (float)b, x, y);
    }
}

/* With xhat = (x - mean)*invstd and N = n*hw (batch statistics depend on x):
 *   dbeta  += sum dy
 *   dgamma += sum dy*xhat
 *   dx     += gamma*invstd * (dy - sum(dy)/N - xhat*sum(dy*xhat)/N) */
void aibox_bn_bwd(int n, int c, int hw, const float *x, const float *gamma, const float *save_mean,
                  const float *save_invstd, const float *dy, float *dx, float *dgamma, float *dbeta)
{
    if (n <= 0 || c <= 0 || hw <= 0) return;
    const double cnt = (double)n * hw;
    for (int ch = 0; ch < c; ch++) {
        const double mean = save_mean[ch], invstd = save_invstd[ch];
        double sg = 0, sgx = 0;
        for (int k = 0; k < n; k++) {
            const size_t off = ((size_t)k * c + ch) * hw;
            sum_g_gx(dy + off, x + off, (size_t)hw, mean, &sg, &sgx);
        }
        const double sgxhat = sgx * invstd; /* sum dy*xhat */
        if (dbeta) dbeta[ch] += (float)sg;
        if (dgamma) dgamma[ch] += (float)sgxhat;
        if (!dx) continue;
        const double g = gamma ? gamma[ch] : 1.0;
        /* dx += a*dy + bx*(x - mean) + e, with the per-channel constants folded */
        const float a = (float)(g * invstd);
        const float bx = (float)(-g * invstd * invstd * sgxhat / cnt);
        const float e = (float)(-g * invstd * sg / cnt);
        const float m = (float)mean;
        for (int k = 0; k < n; k++) {
            const size_t off = ((size_t)k * c + ch) * hw;
            const float *xp = x + off, *gp = dy + off;
            float *dp = dx + off;
            for (int i = 0; i < hw; i++) dp[i] += a * gp[i] + bx * (xp[i] - m) + e;
        }
    }
}
