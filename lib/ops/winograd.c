/* Winograd F(2x2, 3x3) convolution (Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2016) for 3x3, stride-1, ungrouped layers
 * in inference. Each 2x2 output tile is A^T [(G g G^T) . (B^T d B)] A of the
 * 4x4 input tile d at twice its position, so summing over input channels
 * becomes 16 GEMMs (one per element of the 4x4 transformed tile: out_c x
 * tiles, inner in_c) doing 16 / 36 of im2col's multiply-adds.
 *
 * The batch's tiles are done in blocks of tile rows (sample s's tile row ty
 * is row s * tiles_h + ty), so small layers share GEMMs across samples and
 * large ones keep their transformed tiles in cache. Layouts: u
 * [16][out_c][in_c] (from the weights, once); for a block of T tiles v
 * [16][in_c][T] and m [16][out_c][T], one after the other in the caller's vm.
 * Element e = 4 i + j of a 4x4 tile is row i, column j. */
#include <cblas.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/simd.h" /* AIBOX_CLONES_AVX2: AVX2 clones of the transforms on x86 only */

/* Transformed tiles of one block at most (floats): 4 MB, well inside this
 * machine's 32 MB L3 next to the weights and activations. Measured on one
 * thread: whole-image blocks of 64 MB (224-256 px, 16-32 channels) ran
 * 1.5-2x slower than 2-4 MB ones; on ResNet-18's shapes 2-8 MB were alike. */
#define BLOCK_FLOATS (1u << 20)

/* The input transform is vectorised over tiles when the compiler is told
 * that the rows do not overlap. Clang (14) also needs NEXT_COLUMN: left to
 * itself, its load PRE carries the loads of column tx + 1 over to the next
 * iteration, a recurrence its vectoriser refuses (-Wpass-failed on the
 * pragma); an offset of 1 it cannot see through keeps them loads. GCC's
 * code is as before (the offset folds to 1). */
#ifdef __clang__
#define NO_ALIASING _Pragma("clang loop vectorize(assume_safety)")
#define NEXT_COLUMN(one) __asm__("" : "+r"(one))
#else
#define NO_ALIASING _Pragma("GCC ivdep")
#define NEXT_COLUMN(one) (void)0
#endif

static int tiles_h(const aibox_conv_desc *d) { return (d->out_h + 1) / 2; }
static int tiles_w(const aibox_conv_desc *d) { return (d->out_w + 1) / 2; }

/* Besides the shape, where it was measured faster than im2col (one thread of
 * a Zen 5 EPYC, OpenBLAS 0.3.21 SkylakeX kernels; bench_layers --winograd):
 *  - 8 input channels or more, or 3 or more on outputs of 56x56 or more: with
 *    fewer, the GEMMs' inner dimension is too short to pay for the transforms
 *    (1-4 channels into 64: 0.2-0.9x at 14x14-28x28, 1.1-1.4x from 56x56 with
 *    3 or 4, 0.75x for 1 at 112x112; 8 channels: 1.2-1.7x from 28x28);
 *  - 36 tiles (12x12 outputs) or more, unless there are at most 256 x 256
 *    channels: a GEMM does only 2 flops per transformed weight and tile, and
 *    past 4 MB of them (a core's L2) reading them costs more than the saved
 *    multiplications (384-1024 channels: 0.6-1.0x at 3x3-10x10 outputs,
 *    1.2-1.6x from 12x12; up to 256: 1.4-2.6x at every size). */
int aibox_wino_eligible(const aibox_conv_desc *d)
{
    int shape = d->kh == 3 && d->kw == 3 && d->sh == 1 && d->sw == 1 && d->groups == 1 && d->pt <= 2 && d->pl <= 2;
    int tiles = tiles_h(d) * tiles_w(d);
    int channels = d->in_c >= 8 || (d->in_c >= 3 && tiles >= 28 * 28);
    return shape && channels && (tiles >= 36 || (long)d->in_c * d->out_c <= 256 * 256);
}

int aibox_wino_tile_rows(const aibox_conv_desc *d) { return tiles_h(d); }

size_t aibox_wino_u_floats(const aibox_conv_desc *d) { return 16 * (size_t)d->out_c * d->in_c; }

/* Floats from one of the 16 matrices (rows x T) to the next: a multiple of
 * 4 KB would put a column's 16 elements in one L1 cache set (ResNet's 64 x
 * 784 is), thrashing it, so the stride is 64 bytes past a 4 KB boundary. */
static size_t mat_stride(int rows, size_t T) { return (rows * T + 1023) / 1024 * 1024 + 16; }

size_t aibox_wino_vm_floats(const aibox_conv_desc *d, int rows)
{
    size_t T = (size_t)rows * tiles_w(d);
    return 16 * (mat_stride(d->in_c, T) + mat_stride(d->out_c, T));
}

int aibox_wino_block_rows(const aibox_conv_desc *d, int n, size_t vm_floats)
{
    int rows = 1;
    while (rows < n * tiles_h(d) && aibox_wino_vm_floats(d, rows + 1) <= vm_floats) rows++;
    return rows;
}

/* Blocks of at most BLOCK_FLOATS, or as large as the transformed weights:
 * every block reads all of u, so splitting a sample whose tiles take less
 * room than u would only multiply the larger traffic (measured: 768 and 1024
 * channels at 14x14 in two blocks ran 1.2x slower than im2col). */
size_t aibox_wino_scratch_floats(const aibox_conv_desc *d)
{
    return aibox_wino_vm_floats(d, aibox_wino_block_rows(d, 1, AIBOX_MAX(BLOCK_FLOATS, aibox_wino_u_floats(d))));
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

static float at(const float *row, int w, int x) { return x >= 0 && x < w ? row[x] : 0.0f; }

/* E[k] = row[2k - pl], O[k] = row[2k + 1 - pl] for k < n, zero outside [0, w). */
static inline __attribute__((always_inline)) void split_row(const float *row, int w, int pl, float *E, float *O,
                                                            int n)
{
    int lo = AIBOX_MIN((pl + 1) / 2, n), hi = AIBOX_MAX(AIBOX_MIN((w + pl) / 2, n), lo);
    for (int k = 0; k < lo; k++) E[k] = at(row, w, 2 * k - pl), O[k] = at(row, w, 2 * k + 1 - pl);
    for (int k = lo; k < hi; k++) E[k] = row[2 * k - pl], O[k] = row[2 * k + 1 - pl]; /* both inside */
    for (int k = hi; k < n; k++) E[k] = at(row, w, 2 * k - pl), O[k] = at(row, w, 2 * k + 1 - pl);
}

/* V = B^T d B, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], for one tile row
 * of tw tiles: rows r0..r3 of the padded plane (E at r, O at r + n2); element
 * e goes to v[e * ld + tx]. */
static inline __attribute__((always_inline)) void input_tiles(const float *restrict r0, const float *restrict r1,
                                                              const float *restrict r2, const float *restrict r3,
                                                              int n2, int tw, float *restrict v, size_t ld)
{
    int one = 1;
    NEXT_COLUMN(one);
    NO_ALIASING /* the 16 elements' rows do not overlap: vectorise over tx */
    for (int tx = 0; tx < tw; tx++) {
        /* B^T on the four columns 2tx .. 2tx + 3 (E, O, E + 1, O + 1) */
        float a0 = r0[tx] - r2[tx], a1 = r1[tx] + r2[tx], a2 = r2[tx] - r1[tx], a3 = r1[tx] - r3[tx];
        const float *o0 = r0 + n2, *o1 = r1 + n2, *o2 = r2 + n2, *o3 = r3 + n2;
        float b0 = o0[tx] - o2[tx], b1 = o1[tx] + o2[tx], b2 = o2[tx] - o1[tx], b3 = o1[tx] - o3[tx];
        int t1 = tx + one;
        float c0 = r0[t1] - r2[t1], c1 = r1[t1] + r2[t1], c2 = r2[t1] - r1[t1], c3 = r1[t1] - r3[t1];
        float d0 = o0[t1] - o2[t1], d1 = o1[t1] + o2[t1], d2 = o2[t1] - o1[t1], d3 = o1[t1] - o3[t1];
        /* then B on each row */
        v[0 * ld + tx] = a0 - c0, v[1 * ld + tx] = b0 + c0, v[2 * ld + tx] = c0 - b0, v[3 * ld + tx] = b0 - d0;
        v[4 * ld + tx] = a1 - c1, v[5 * ld + tx] = b1 + c1, v[6 * ld + tx] = c1 - b1, v[7 * ld + tx] = b1 - d1;
        v[8 * ld + tx] = a2 - c2, v[9 * ld + tx] = b2 + c2, v[10 * ld + tx] = c2 - b2, v[11 * ld + tx] = b2 - d2;
        v[12 * ld + tx] = a3 - c3, v[13 * ld + tx] = b3 + c3, v[14 * ld + tx] = c3 - b3, v[15 * ld + tx] = b3 - d3;
    }
}

/* This part's share of units x rows work items (unit-major, e.g. channel and
 * tile row): calls fn for each unit's run of rows [r0, r1) of the block. */
typedef void (*run_fn)(const void *job, int unit, int r0, int r1);
static void unit_rows(int units, int rows, int part, int parts, run_fn fn, const void *job)
{
    int a, b;
    aibox_share(units * rows, 1, part, parts, &a, &b);
    for (int u = a / rows; u < units && u * rows < b; u++) {
        int r0 = AIBOX_MAX(a - u * rows, 0), r1 = AIBOX_MIN(b - u * rows, rows);
        if (r1 > r0) fn(job, u, r0, r1);
    }
}

typedef struct {
    const aibox_conv_desc *d;
    int g0, rows;
    const float *x;
    float *v, *ws;
} input_job;

/* Channel c's tile rows [g0 + r0, g0 + r1) of the block, one sample's run at a
 * time: the input rows they read, zero-padded and split into even and odd
 * columns, then the tiles. */
AIBOX_CLONES_AVX2 static void input_run(const void *job, int c, int r0, int r1)
{
    const input_job *j = job;
    const aibox_conv_desc *d = j->d;
    const int C = d->in_c, H = d->in_h, W = d->in_w, th = tiles_h(d), tw = tiles_w(d), n2 = tw + 1;
    const size_t T = (size_t)j->rows * tw, ld = mat_stride(C, T);
    for (int g = j->g0 + r0, end = j->g0 + r1; g < end;) {
        int s = g / th, ty0 = g % th, ty1 = AIBOX_MIN(th, ty0 + end - g);
        const float *xc = j->x + ((size_t)s * C + c) * H * W;
        for (int ry = 2 * ty0; ry < 2 * ty1 + 2; ry++) {
            float *E = j->ws + (size_t)(ry - 2 * ty0) * 2 * n2;
            int iy = ry - d->pt;
            if (iy < 0 || iy >= H) memset(E, 0, sizeof(float) * 2 * n2);
            else split_row(xc + (size_t)iy * W, W, d->pl, E, E + n2, n2);
        }
        float *vc = j->v + (size_t)c * T + (size_t)(g - j->g0) * tw;
        for (int ty = ty0; ty < ty1; ty++) {
            const float *q = j->ws + (size_t)2 * (ty - ty0) * 2 * n2;
            input_tiles(q, q + 2 * n2, q + 4 * n2, q + 6 * n2, n2, tw, vc + (size_t)(ty - ty0) * tw, ld);
        }
        g += ty1 - ty0;
    }
}

void aibox_wino_input(const aibox_conv_desc *d, int g0, int g1, const float *x, float *vm, float *ws, int part,
                      int parts)
{
    input_job j = {d, g0, g1 - g0, x, vm, ws};
    unit_rows(d->in_c, g1 - g0, part, parts, input_run, &j);
}

typedef struct {
    const aibox_conv_desc *d;
    int T;
    const float *u;
    float *vm;
} gemm_job;

/* Matrix e's columns [16 c0, 16 c1) (column blocks of 16, so any part count
 * gets an even share; a matrix may be split between two parts). */
static void gemm_run(const void *job, int e, int c0, int c1)
{
    const gemm_job *j = job;
    const int K = j->d->out_c, C = j->d->in_c, T = j->T, a = 16 * c0, n = AIBOX_MIN(16 * c1, T) - a;
    const float *v = j->vm + e * mat_stride(C, T);
    float *m = j->vm + 16 * mat_stride(C, T) + e * mat_stride(K, T);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, n, C, 1.0f, j->u + (size_t)e * K * C, C, v + a, T, 0.0f,
                m + a, T);
}

void aibox_wino_gemm(const aibox_conv_desc *d, int rows, const float *u, float *vm, int part, int parts)
{
    gemm_job j = {d, rows * tiles_w(d), u, vm};
    unit_rows(16, (j.T + 15) / 16, part, parts, gemm_run, &j);
}

/* Y = A^T M A, A^T = [1 1 1 0; 0 1 -1 -1], for one tile row of n whole tiles
 * (2n columns), then y * scale + shift and max(0, .) when relu, into rows
 * y0 and y1 (rows 1: the tiles' second row is past the output, y1 is not
 * written). Inlined per constant rows and relu, so each variant is a
 * branch-free vector loop. */
static inline __attribute__((always_inline)) void output_tiles(const float *restrict m, size_t ld, int n, float scale,
                                                               float shift, int relu, int rows, float *restrict y0,
                                                               float *restrict y1)
{
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

static inline __attribute__((always_inline)) void output_row(const float *m, size_t ld, int n, float scale,
                                                             float shift, int relu, int rows, float *y0, float *y1)
{
    if (relu && rows == 2) output_tiles(m, ld, n, scale, shift, 1, 2, y0, y1);
    else if (relu) output_tiles(m, ld, n, scale, shift, 1, 1, y0, y1);
    else if (rows == 2) output_tiles(m, ld, n, scale, shift, 0, 2, y0, y1);
    else output_tiles(m, ld, n, scale, shift, 0, 1, y0, y1);
}

typedef struct {
    const aibox_conv_desc *d;
    int g0, rows, relu;
    const float *m, *scale, *b;
    float *y;
} output_job;

/* Output channel k of the block's tile rows [g0 + r0, g0 + r1). */
AIBOX_CLONES_AVX2 static void output_run(const void *job, int k, int r0, int r1)
{
    const output_job *j = job;
    const aibox_conv_desc *d = j->d;
    const int K = d->out_c, OH = d->out_h, OW = d->out_w, th = tiles_h(d), tw = tiles_w(d);
    const size_t T = (size_t)j->rows * tw, ld = mat_stride(K, T);
    const float sv = j->scale ? j->scale[k] : 1.0f, bv = j->b ? j->b[k] : 0.0f;
    for (int r = r0; r < r1; r++) {
        int g = j->g0 + r, s = g / th, ty = g % th;
        const float *mt = j->m + (size_t)k * T + (size_t)r * tw;
        float *y0 = j->y + (((size_t)s * K + k) * OH + 2 * ty) * OW, *y1 = y0 + OW;
        int two = 2 * ty + 1 < OH ? 2 : 1;
        output_row(mt, ld, OW / 2, sv, bv, j->relu, two, y0, y1);
        if (OW % 2) { /* the last tile has one column inside */
            float e[2][2];
            output_row(mt + tw - 1, ld, 1, sv, bv, j->relu, two, e[0], e[1]);
            y0[OW - 1] = e[0][0];
            if (two == 2) y1[OW - 1] = e[1][0];
        }
    }
}

void aibox_wino_output(const aibox_conv_desc *d, int g0, int g1, const float *vm, const float *scale, const float *b,
                       float *y, int relu, int part, int parts)
{
    size_t T = (size_t)(g1 - g0) * tiles_w(d);
    output_job j = {d, g0, g1 - g0, relu, vm + 16 * mat_stride(d->in_c, T), scale, b, y};
    unit_rows(d->out_c, g1 - g0, part, parts, output_run, &j);
}
