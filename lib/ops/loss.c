/* Losses: each returns the mean loss and WRITES its gradient into dx (when
 * not NULL). Loss sums are accumulated in double; an empty batch gives 0. */
#include <math.h>

#include "ops/ops.h"

/* Softmax cross-entropy over k classes per row, Keras class_weight semantics:
 *   loss = sum_i w[y_i] * (logsumexp(x_i) - x_i[y_i]) / n
 *   dx_i = w[y_i] * (softmax(x_i) - onehot(y_i)) / n
 * (divided by n, not by the sum of weights as PyTorch's weighted mean).
 * A label outside [0, k) contributes neither loss nor gradient. */
float aibox_softmax_ce(int n, int k, const float *logits, const int *labels, const float *class_weights, float *dx)
{
    if (n <= 0 || k <= 0) return 0.0f;
    double total = 0.0;
    const double inv_n = 1.0 / n;
    for (int i = 0; i < n; i++) {
        const float *x = logits + (size_t)i * k;
        float *d = dx ? dx + (size_t)i * k : NULL;
        const int y = labels[i];
        if (y < 0 || y >= k) {
            if (d)
                for (int j = 0; j < k; j++) d[j] = 0.0f;
            continue;
        }
        const double wy = class_weights ? class_weights[y] : 1.0;
        /* log-sum-exp around the max: every exp in (0, 1] */
        float m = x[0];
        for (int j = 1; j < k; j++) m = x[j] > m ? x[j] : m;
        double s = 0.0;
        for (int j = 0; j < k; j++) s += exp((double)x[j] - m);
        const double lse = m + log(s);
        total += wy * (lse - x[y]);
        if (d) {
            const double scale = wy * inv_n / s;
            for (int j = 0; j < k; j++) d[j] = (float)(exp((double)x[j] - m) * scale);
            d[y] -= (float)(wy * inv_n);
        }
    }
    return (float)(total * inv_n);
}

/* Binary cross-entropy on logits, per element in the overflow-free form
 *   max(x, 0) - x*t + log1p(exp(-|x|)),  d/dx = sigmoid(x) - t. */
float aibox_sigmoid_bce(size_t count, const float *logits, const float *targets, float *dx)
{
    if (count == 0) return 0.0f;
    double total = 0.0;
    const double inv = 1.0 / (double)count;
    for (size_t i = 0; i < count; i++) {
        const double x = logits[i], t = targets[i];
        const double e = exp(-fabs(x));
        total += (x > 0 ? x : 0.0) - x * t + log1p(e);
        if (dx) {
            const double sig = x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
            dx[i] = (float)((sig - t) * inv);
        }
    }
    return (float)(total * inv);
}

/* Mean squared error: mean (y - t)^2, d/dy = 2 (y - t) / count. */
float aibox_mse(size_t count, const float *y, const float *targets, float *dx)
{
    if (count == 0) return 0.0f;
    double total = 0.0;
    const double inv = 1.0 / (double)count;
    for (size_t i = 0; i < count; i++) {
        const double r = (double)y[i] - targets[i];
        total += r * r;
        if (dx) dx[i] = (float)(2.0 * r * inv);
    }
    return (float)(total * inv);
}
