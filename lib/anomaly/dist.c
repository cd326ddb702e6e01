/* Collectives of the anomaly fits across ranks (see anomaly/dist.h). They
 * use only the communicator's sums and broadcasts, on small fixed vectors,
 * so an agreement cannot itself fail for want of memory. */
#include <stdio.h>
#include <string.h>

#include "anomaly/dist.h"

#define AGREE_MAX 8

aibox_status aibox_dist_agree(const aibox_comm *c, aibox_status s, const char *what, const uint32_t *v, int k,
                              aibox_error *err)
{
    int n = aibox_comm_ranks(c), me = aibox_comm_rank(c);
    if (n == 1) return s;
    if (k < 0 || k > AGREE_MAX) k = AGREE_MAX; /* an internal call: never more */
    /* failures, their ranks and codes summed; each value as two 16-bit halves,
     * summed and squared-summed: all equal iff n * sum(h^2) == sum(h)^2 (exact in double) */
    double a[3 + 4 * AGREE_MAX] = {0};
    if (s) a[0] = 1, a[1] = me, a[2] = (double)s;
    for (int i = 0; i < k; i++)
        for (int half = 0; half < 2; half++) {
            double h = (double)((v[i] >> (16 * half)) & 0xffffu);
            a[3 + 2 * (2 * i + half)] = h, a[4 + 2 * (2 * i + half)] = h * h;
        }
    aibox_error e = {0};
    aibox_status cs = aibox_comm_sum_f64(c, a, (size_t)(3 + 4 * k), &e);
    if (s) return s; /* this rank's own message stands */
    if (cs) return aibox_fail(err, cs, "%s", e.msg);
    if (a[0] == 1)
        return aibox_fail(err, (aibox_status)(int)a[2], "rank %d of %d failed (%s)", (int)a[1], n,
                          aibox_strerror((aibox_status)(int)a[2]));
    if (a[0] > 1) return aibox_fail(err, AIBOX_E_STATE, "%d of %d ranks failed", (int)a[0], n);
    for (int i = 0; i < 2 * k; i++)
        if ((double)n * a[4 + 2 * i] != a[3 + 2 * i] * a[3 + 2 * i])
            return aibox_fail(err, AIBOX_E_INVALID,
                              "the ranks differ in %s (every rank must pass the same options and data)", what);
    return AIBOX_OK;
}

void aibox_dist_share(const aibox_comm *c, int r, int n, int unit, int *a, int *b)
{
    aibox_share(n, unit, r, aibox_comm_ranks(c), a, b);
}

aibox_status aibox_dist_gather(const aibox_comm *c, void *buf, size_t elem, int n, int unit, aibox_error *err)
{
    int ranks = aibox_comm_ranks(c);
    aibox_status s = AIBOX_OK;
    for (int r = 0; r < ranks && !s && ranks > 1; r++) {
        int a, b;
        aibox_dist_share(c, r, n, unit, &a, &b);
        s = aibox_comm_bcast(c, (char *)buf + elem * (size_t)a, elem * (size_t)(b - a), r, err);
    }
    return s;
}

uint32_t aibox_dist_hash(uint32_t h, const void *bytes, size_t n)
{
    const unsigned char *p = bytes;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}
