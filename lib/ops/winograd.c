/* Winograd F(2x2, 3x3) convolution (Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2016) for 3x3, stride-1, ungrouped layers
 * in inference. Each 2x2 output tile is A^T [(G g G^T) . (B^T d B)] A of the
 * 4x4 input tile d at twice its position, so summing over input channels
 * becomes 16 GEMMs (one per element of the 4x4 transformed tile: out_c x
 * tiles, inner in_c) doing 16 / 36 of im2col's multiply-adds.
 *
 * Layouts: u [16][out_c][in_c] (from the weights, once), v [16][in_c][T] and
 * m [16][out_c][T] one after the other in the caller's vm, with T = ns *
 * tiles, tiles numbered row-major per sample.
 * Element e = 4 i + j of a 4x4 tile is row i, column j. */
#include <cblas.h>
#include <string.h>

#include "ops/ops.h"

static int tiles_h(const aibox_conv_desc *d) { return (d->out_h + 1) / 2; }
static int tiles_w(const aibox_conv_desc *d) { return (d->out_w + 1) / 2; }

int aibox_wino_eligible(const aibox_conv_desc *d)
{
    return d->kh == 3 && d->kw == 3 && d->sh == 1 && d->sw == 1 && d->groups == 1 && d->pt <= 2 && d->pl <= 2;
}

int aibox_wino_tiles(const aibox_conv_desc *d) { return tiles_h(d) * tiles_w(d); }

size_t aibox_wino_u_floats(const aibox_conv_desc *d) { return 16 * (size_t)d->out_c * d->in_c; }

/* Floats from one of the 16 matrices (rows x T) to the next: a multiple of
 * 4 KB would put a column's 16 elements in one L1 cache set (ResNet's 64 x
 * 784 is), thrashing it, so the stride is 64 bytes past a 4 KB boundary. */
static size_t mat_stride(int rows, size_t T) { return (rows * T + 1023) / 1024 * 1024 + 16; }

size_t aibox_wino_vm_floats(const aibox_conv_desc *d, int ns)
{
    size_t T = (size_t)ns * aibox_wino_tiles(d);
    return 16 * (mat_stride(d->in_c, T) + mat_stride(d->out_c, T));
}

/* The input plane of one channel, zero-padded and split into even and odd
 * columns: 2 tiles_h + 2 rows of E[tiles_w + 1], O[tiles_w + 1]. */
size_t aibox_wino_ws_floats(const aibox_conv_desc *d) { return (size_t)(2 * tiles_h(d) + 2) * 2 * (tiles_w(d) + 1); }

/* U = G g G^T, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1], in double. */
void aibox_wino_weights(const aibox_conv_desc *d, const float *w, float *u)
{
    const int K = d->out_c, C = d->in_c;
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++) {
            const float *g = w + ((size_t)k * C + c) * 9;
            double t[4][3], r[4][4];
            for (int j = 0; j < 3; j++) {
                t[0][j] = g[j];
                t[1][j] = 0.5 * ((double)g[j] + g[3 + j] + g[6 + j]);
                t[2][j] = 0.5 * ((double)g[j] - g[3 + j] + g[6 + j]);
                t[3][j] = g[6 + j];
            }
            for (int i = 0; i < 4; i++) {
                r[i][0] = t[i][0];
                r[i][1] = 0.5 * (t[i][0] + t[i][1] + t[i][2]);
                r[i][2] = 0.5 * (t[i][0] - t[i][1] + t[i][2]);
                r[i][3] = t[i][2];
            }
            for (int e = 0; e < 16; e++) u[((size_t)e * K + k) * C + c] = (float)r[e / 4][e % 4];
        }
}

/* Splits [0, total) into parts pieces. */
static void share(int total, int part, int parts, int *a, int *b)
{
    *a = (int)((long)total * part / parts);
    *b = (int)((long)total * (part + 1) / parts);
}

static float at(const float *row, int w, int x) { return x >= 0 && x < w ? row[x] : 0.0f; }

/* E[k] = row[2k - pl], O[k] = row[2k + 1 - pl] for k < n, zero outside [0, w). */
static void split_row(const float *row, int w, int pl, float *E, float *O, int n)
{
    int lo = AIBOX_MIN((pl + 1) / 2, n), hi = AIBOX_MAX(AIBOX_MIN((w + pl) / 2, n), lo);
    for (int k = 0; k < lo; k++) E[k] = at(row, w, 2 * k - pl), O[k] = at(row, w, 2 * k + 1 - pl);
    for (int k = lo; k < hi; k++) E[k] = row[2 * k - pl], O[k] = row[2 * k + 1 - pl]; /* both inside */
    for (int k = hi; k < n; k++) E[k] = at(row, w, 2 * k - pl), O[k] = at(row, w, 2 * k + 1 - pl);
}

/* V = B^T d B, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], for one tile row
 * of tw tiles: rows r0..r3 of the padded plane (E at r, O at r + n2); element
 * e goes to v[e * ld + tx]. */
static void input_tiles(const float *restrict r0, const float *restrict r1, const float *restrict r2,
                        const float *restrict r3, int n2, int tw, float *restrict v, size_t ld)
{
#pragma GCC ivdep
    for (int tx = 0; tx < tw; tx++) {
        /* B^T on the four columns 2tx .. 2tx + 3 (E, O, E + 1, O + 1) */
        float a0 = r0[tx] - r2[tx], a1 = r1[tx] + r2[tx], a2 = r2[tx] - r1[tx], a3 = r1[tx] - r3[tx];
        const float *o0 = r0 + n2, *o1 = r1 + n2, *o2 = r2 + n2, *o3 = r3 + n2;
        float b0 = o0[tx] - o2[tx], b1 = o1[tx] + o2[tx], b2 = o2[tx] - o1[tx], b3 = o1[tx] - o3[tx];
        int t1 = tx + 1;
        float c0 = r0[t1] - r2[t1], c1 = r1[t1] + r2[t1], c2 = r2[t1] - r1[t1], c3 = r1[t1] - r3[t1];
        float d0 = o0[t1] - o2[t1], d1 = o1[t1] + o2[t1], d2 = o2[t1] - o1[t1], d3 = o1[t1] - o3[t1];
        /* then B on each row */
        v[0 * ld + tx] = a0 - c0, v[1 * ld + tx] = b0 + c0, v[2 * ld + tx] = c0 - b0, v[3 * ld + tx] = b0 - d0;
        v[4 * ld + tx] = a1 - c1, v[5 * ld + tx] = b1 + c1, v[6 * ld + tx] = c1 - b1, v[7 * ld + tx] = b1 - d1;
        v[8 * ld + tx] = a2 - c2, v[9 * ld + tx] = b2 + c2, v[10 * ld + tx] = c2 - b2, v[11 * ld + tx] = b2 - d2;
        v[12 * ld + tx] = a3 - c3, v[13 * ld + tx] = b3 + c3, v[14 * ld + tx] = c3 - b3, v[15 * ld + tx] = b3 - d3;
    }
}

void aibox_wino_input(const aibox_conv_desc *d, int ns, const float *x, float *vm, float *ws, int part, int parts)
{
    const int C = d->in_c, H = d->in_h, W = d->in_w, th = tiles_h(d), tw = tiles_w(d), n2 = tw + 1;
    const size_t T = (size_t)ns * th * tw, ld = mat_stride(C, T);
    int a, b;
    share(ns * C, part, parts, &a, &b); /* (sample, channel) planes */
    for (int sc = a; sc < b; sc++) {
        int s = sc / C, c = sc % C;
        const float *xc = x + (size_t)sc * H * W;
        for (int ry = 0; ry < 2 * th + 2; ry++) {
            float *E = ws + (size_t)ry * 2 * n2;
            int iy = ry - d->pt;
            if (iy < 0 || iy >= H) memset(E, 0, sizeof(float) * 2 * n2);
            else split_row(xc + (size_t)iy * W, W, d->pl, E, E + n2, n2);
        }
        float *vc = vm + (size_t)c * T + (size_t)s * th * tw;
        for (int ty = 0; ty < th; ty++) {
            const float *r0 = ws + (size_t)2 * ty * 2 * n2;
            input_tiles(r0, r0 + 2 * n2, r0 + 4 * n2, r0 + 6 * n2, n2, tw, vc + (size_t)ty * tw, ld);
        }
    }
}

void aibox_wino_gemm(const aibox_conv_desc *d, int ns, const float *u, float *vm, int part, int parts)
{
    const int K = d->out_c, C = d->in_c, T = ns * aibox_wino_tiles(d);
    const size_t vld = mat_stride(C, T), mld = mat_stride(K, T);
    const float *v = vm;
    float *m = vm + 16 * vld;
    /* this part's share of the 16 x T columns, in blocks of 16, so any part
     * count gets an even share (a matrix may be split between two parts) */
    int blocks = (T + 15) / 16, a, b;
    share(16 * blocks, part, parts, &a, &b);
    for (int e = a / blocks; e < 16 && e * blocks < b; e++) {
        int c0 = AIBOX_MAX(a - e * blocks, 0) * 16, c1 = AIBOX_MIN(AIBOX_MIN(b - e * blocks, blocks) * 16, T);
        if (c1 <= c0) continue;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, c1 - c0, C, 1.0f, u + (size_t)e * K * C, C,
                    v + e * vld + c0, T, 0.0f, m + e * mld + c0, T);
    }
}

/* Y = A^T M A, A^T = [1 1 1 0; 0 1 -1 -1], for one tile row of n whole tiles
 * (2n columns), then y * scale + shift and max(0, .) when relu; rows 2 or 1
 * (the output's last row is even: y1 is not written). Inlined per constant
 * rows and relu, so each variant is a branch-free vector loop. */
static inline __attribute__((always_inline)) void output_tiles(const float *restrict m, size_t ld, int n, float scale,
                                                               float shift, int relu, int rows, float *restrict y0,
                                                               float *restrict y1)
{
#pragma GCC ivdep
    for (int t = 0; t < n; t++) {
        float s[2][4];
        for (int j = 0; j < 4; j++) {
            s[0][j] = m[j * ld + t] + m[(4 + j) * ld + t] + m[(8 + j) * ld + t];
            s[1][j] = m[(4 + j) * ld + t] - m[(8 + j) * ld + t] - m[(12 + j) * ld + t];
        }
        for (int i = 0; i < rows; i++) {
            float o0 = (s[i][0] + s[i][1] + s[i][2]) * scale + shift;
            float o1 = (s[i][1] - s[i][2] - s[i][3]) * scale + shift;
            if (relu) o0 = o0 > 0.0f ? o0 : 0.0f, o1 = o1 > 0.0f ? o1 : 0.0f;
            float *yi = i ? y1 : y0;
            yi[2 * t] = o0, yi[2 * t + 1] = o1;
        }
    }
}

static void output_row(const float *m, size_t ld, int n, float scale, float shift, int relu, int rows, float *y0,
                       float *y1)
{
    if (relu && rows == 2) output_tiles(m, ld, n, scale, shift, 1, 2, y0, y1);
    else if (relu) output_tiles(m, ld, n, scale, shift, 1, 1, y0, y1);
    else if (rows == 2) output_tiles(m, ld, n, scale, shift, 0, 2, y0, y1);
    else output_tiles(m, ld, n, scale, shift, 0, 1, y0, y1);
}

void aibox_wino_output(const aibox_conv_desc *d, int ns, const float *vm, const float *scale, const float *b,
                       float *y, int relu, int part, int parts)
{
    const int K = d->out_c, OH = d->out_h, OW = d->out_w, th = tiles_h(d), tw = tiles_w(d);
    const size_t T = (size_t)ns * th * tw, ld = mat_stride(K, T), P = (size_t)OH * OW;
    const float *m = vm + 16 * mat_stride(d->in_c, T);
    int a, bb;
    share(ns * K, part, parts, &a, &bb); /* (sample, output channel) planes */
    for (int sk = a; sk < bb; sk++) {
        int s = sk / K, k = sk % K;
        float sv = scale ? scale[k] : 1.0f, bv = b ? b[k] : 0.0f;
        const float *mk = m + (size_t)k * T + (size_t)s * th * tw;
        float *yk = y + (size_t)sk * P;
        for (int ty = 0; ty < th; ty++) {
            const float *mt = mk + (size_t)ty * tw;
            float *y0 = yk + (size_t)2 * ty * OW, *y1 = y0 + OW;
            int rows = 2 * ty + 1 < OH ? 2 : 1;
            output_row(mt, ld, OW / 2, sv, bv, relu, rows, y0, y1);
            if (OW % 2) { /* the last tile has one column inside */
                float e[2][2];
                output_row(mt + tw - 1, ld, 1, sv, bv, relu, rows, e[0], e[1]);
                y0[OW - 1] = e[0][0];
                if (rows == 2) y1[OW - 1] = e[1][0];
            }
        }
    }
}
