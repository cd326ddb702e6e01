/* The convolution reference the kernel tests check against: naive loops in
 * double over any kernel, stride, padding and groups (NCHW; weights
 * out_c x in_c/groups x kh x kw; b NULL for no bias). */
#ifndef AIBOX_TEST_CONV_REF_H
#define AIBOX_TEST_CONV_REF_H

#include "ops/ops.h"

static void conv_ref(const aibox_conv_desc *d, int n, const double *x, const double *w, const double *b, double *y)
{
    int cg = d->in_c / d->groups, og = d->out_c / d->groups;
    for (int s = 0; s < n; s++)
        for (int o = 0; o < d->out_c; o++)
            for (int oy = 0; oy < d->out_h; oy++)
                for (int ox = 0; ox < d->out_w; ox++) {
                    double acc = b ? b[o] : 0;
                    for (int c = 0; c < cg; c++)
                        for (int ky = 0; ky < d->kh; ky++)
                            for (int kx = 0; kx < d->kw; kx++) {
                                int iy = oy * d->sh + ky - d->pt, ix = ox * d->sw + kx - d->pl;
                                if (iy >= 0 && iy < d->in_h && ix >= 0 && ix < d->in_w)
                                    acc += x[(((size_t)s * d->in_c + (o / og) * cg + c) * d->in_h + iy) * d->in_w +
                                             ix] *
                                           w[(((size_t)o * cg + c) * d->kh + ky) * d->kw + kx];
                            }
                    y[(((size_t)s * d->out_c + o) * d->out_h + oy) * d->out_w + ox] = acc;
                }
}

#endif
