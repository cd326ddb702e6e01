/* Dense (fully connected) layer as sgemm calls; the _part variants split the
 * work into disjoint pieces for a thread pool. */
#include <cblas.h>

#include "ops/ops.h"

static void range(int total, int part, int parts, int *a, int *b)
{
    *a = (int)((long)total * part / parts);
    *b = (int)((long)total * (part + 1) / parts);
}

void aibox_dense_fwd_part(int n, int in, int out, const float *x, const float *w, const float *b, float *y, int part,
                          int parts)
{
    int o0, o1;
    range(out, part, parts, &o0, &o1);
    if (o1 <= o0) return;
    if (b)
        for (int s = 0; s < n; s++)
            for (int o = o0; o < o1; o++) y[(size_t)s * out + o] = b[o];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, o1 - o0, in, 1.0f, x, in, w + (size_t)o0 * in, in,
                b ? 1.0f : 0.0f, y + o0, out);
}

void aibox_dense_bwd_part(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx,
                          float *dw, float *db, int part, int parts)
{
    int o0, o1, i0, i1;
    range(out, part, parts, &o0, &o1);
    range(in, part, parts, &i0, &i1);
    if (dw && o1 > o0) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o1 - o0, in, n, 1.0f, dy + o0, out, x, in, 1.0f,
                    dw + (size_t)o0 * in, in);
        if (db)
            for (int s = 0; s < n; s++)
                for (int o = o0; o < o1; o++) db[o] += dy[(size_t)s * out + o];
    }
    if (dx && i1 > i0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, i1 - i0, out, 1.0f, dy, out, w + i0, in, 1.0f,
                    dx + i0, in);
}

void aibox_dense_fwd(int n, int in, int out, const float *x, const float *w, const float *b, float *y)
{
    aibox_dense_fwd_part(n, in, out, x, w, b, y, 0, 1);
}

void aibox_dense_bwd(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx, float *dw,
                     float *db)
{
    aibox_dense_bwd_part(n, in, out, x, w, dy, dx, dw, db, 0, 1);
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
