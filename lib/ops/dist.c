/* Squared Euclidean distances of many rows to one point: the inner loop of
 * greedy k-centre (PatchCore's coreset). Eight running sums per row, added
 * pairwise at the end: the AVX2 clone (8 lanes) and the baseline one compute
 * the very same float operations in the same order, so every build chooses
 * the same coreset. */
#include "ops/ops.h"
#include "ops/simd.h"

/* The clones are static and reached through a plain wrapper: clang 14 names
 * the ifunc of an external multi-versioned function "<name>.ifunc", so the
 * external name would stay undefined in a clang build (the fuzzers). */
AIBOX_CLONES_AVX2 static void sqdist_rows(const float *y, int k, const int *rows, int n, const float *z, float *out)
{
    for (int r = 0; r < n; r++) {
        const float *a = y + (size_t)rows[r] * k;
        float acc[8] = {0};
        int j = 0;
        for (; j + 8 <= k; j += 8)
            for (int l = 0; l < 8; l++) {
                float d = a[j + l] - z[j + l];
                acc[l] += d * d;
            }
        for (int l = 0; j < k; j++, l++) {
            float d = a[j] - z[j];
            acc[l] += d * d;
        }
        out[r] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
}

void aibox_sqdist_rows(const float *y, int k, const int *rows, int n, const float *z, float *out)
{
    sqdist_rows(y, k, rows, n, z, out);
}
