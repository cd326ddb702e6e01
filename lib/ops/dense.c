/* Dense (fully connected) layer as one sgemm per direction. */
#include <cblas.h>

#include "ops/ops.h"

void aibox_dense_fwd(int n, int in, int out, const float *x, const float *w, const float *b, float *y)
{
    if (b)
        for (int s = 0; s < n; s++)
            for (int o = 0; o < out; o++) y[(size_t)s * out + o] = b[o];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in, b ? 1.0f : 0.0f, y, out);
}

void aibox_dense_bwd(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx, float *dw,
                     float *db)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in);
    if (db)
        for (int s = 0; s < n; s++)
            for (int o = 0; o < out; o++) db[o] += dy[(size_t)s * out + o];
}

void aibox_dense_fwd_ref(int n, int in, int out, const float *x, const float *w, const float *b, float *y)
{
    for (int s = 0; s < n; s++)
        for (int o = 0; o < out; o++) {
            double acc = b ? b[o] : 0.0;
            for (int i = 0; i < in; i++) acc += (double)x[(size_t)s * in + i] * w[(size_t)o * in + i];
            y[(size_t)s * out + o] = (float)acc;
        }
}

void aibox_dense_bwd_ref(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx,
                         float *dw, float *db)
{
    for (int s = 0; s < n; s++)
        for (int o = 0; o < out; o++) {
            float g = dy[(size_t)s * out + o];
            if (db) db[o] += g;
            for (int i = 0; i < in; i++) {
                dw[(size_t)o * in + i] += g * x[(size_t)s * in + i];
                if (dx) dx[(size_t)s * in + i] += g * w[(size_t)o * in + i];
            }
        }
}
