/* 8-bit integer kernels (lib/ops/qops.c, qops_x86.c): TFLite's fixed-point
 * arithmetic against an independent 128-bit formulation; every convolution
 * path (packed plain C, AVX2, AVX-512 VNNI, NEON with and without DotProd,
 * depthwise) equal to the direct reference bit for bit, and the input
 * quantisation equal to its formula; the reference, pools, ADD and softmax within one
 * output step of the same layer computed in double on the dequantised
 * values (the fixed-point path rounds twice, so one step, never more). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "core/core.h"
#include "ops/qops.h"

static uint64_t g_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    g_state ^= g_state << 13, g_state ^= g_state >> 7, g_state ^= g_state << 17;
    return (uint32_t)(g_state >> 16);
}
static int rnd_in(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }

/* TFLite's MultiplyByQuantizedMultiplier written another way: the doubling
 * high product rounded half up (toward +inf) in 128 bits, then the right
 * shift rounded half away from zero. */
static int32_t mbqm_ref(int32_t x, int32_t mult, int shift)
{
    int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    __int128 ab = (__int128)((int64_t)x * ((int64_t)1 << left)) * mult;
    __int128 q = ab + ((__int128)1 << 30);
    int64_t hi = (int64_t)(q >= 0 ? q / ((__int128)1 << 31) : -((-q + ((__int128)1 << 31) - 1) / ((__int128)1 << 31)));
    if (!right) return (int32_t)hi;
    int64_t d = (int64_t)1 << right, mag = hi < 0 ? -hi : hi, r = (mag + d / 2) / d;
    return (int32_t)(hi < 0 ? -r : r);
}

static void test_fixed_point(void **state)
{
    (void)state;
    for (int t = 0; t < 200000; t++) {
        double real = ldexp((double)rnd() / 4294967296.0 + 0.5, rnd_in(-20, 2));
        int32_t mult;
        int shift;
        aibox_q_multiplier(real, &mult, &shift);
        assert_true(mult >= (1 << 30) && mult <= INT32_MAX);
        /* mult 2^(shift - 31) is real to within half a unit of mult */
        assert_true(fabs(ldexp((double)mult, shift - 31) - real) <= ldexp(0.5, shift - 31) * 1.0000001);
        int lim = shift > 0 ? (1 << (30 - shift)) : (1 << 30);
        int32_t x = (int32_t)((int64_t)(rnd() % (2u * (uint32_t)lim)) - lim);
        if (t % 7 == 0) x -= x & 4095; /* exact halves are where the two roundings show */
        if (mbqm_ref(x, mult, shift) != aibox_q_mbqm(x, mult, shift))
            fail_msg("x %d mult %d shift %d: %d, reference %d", x, mult, shift, aibox_q_mbqm(x, mult, shift),
                     mbqm_ref(x, mult, shift));
    }
    int32_t m;
    int sh;
    aibox_q_multiplier(0.0, &m, &sh);
    assert_int_equal(m, 0);
    aibox_q_multiplier(1.0, &m, &sh); /* 1 = 2^30 * 2^(1 - 31) */
    assert_int_equal(m, 1 << 30);
    assert_int_equal(sh, 1);
}

typedef struct qcase {
    aibox_qconv q;
    int n;
    uint8_t *x;
    int8_t *w;
    int32_t *bias, *mult;
    int8_t *shift;
    float in_scale, out_scale, *wscale;
} qcase;

/* A random layer: shapes, zero points, weight offset, scales and a bias in
 * range. groups_kind 0: ungrouped, 1: depthwise (multiplier 1 or 2), 2: two
 * groups; 3: a first layer (1-4 input channels, 1-8 outputs or now and
 * then 9-40, wider images), 4: a depthwise layer of 8 channels, 5: ungrouped, of 8 or 16
 * input channels (4 and 5 with wider images too): the shapes of the fast
 * paths for narrow layers. */
static void make_case(qcase *c, int groups_kind, int k, int s, int wofs)
{
    memset(c, 0, sizeof *c);
    aibox_conv_desc *d = &c->q.d;
    int cin = groups_kind == 1 ? rnd_in(1, 40) : groups_kind == 3 ? rnd_in(1, 4) : groups_kind == 4 ? 8
              : groups_kind == 5 ? 8 * rnd_in(1, 2) : rnd_in(1, 24);
    d->groups = groups_kind == 0 || groups_kind == 3 || groups_kind == 5 ? 1 : groups_kind == 1 || groups_kind == 4 ? cin
                                                                             : (cin = 2 * rnd_in(1, 6), 2);
    d->in_c = cin;
    d->out_c = groups_kind == 1 ? cin * rnd_in(1, 2) : groups_kind == 3 ? (rnd() % 4 ? rnd_in(1, 8) : rnd_in(9, 40)) : groups_kind == 4 ? 8
                                                                             : d->groups * rnd_in(1, 40);
    d->in_h = rnd_in(1, 13), d->in_w = rnd_in(1, 13);
    if (groups_kind >= 3) d->in_h = rnd_in(1, 20), d->in_w = rnd_in(1, 40);
    d->kh = k, d->kw = groups_kind == 0 && k == 1 ? 1 : k, d->sh = s, d->sw = s;
    d->pt = rnd_in(0, k / 2 + 1 > k - 1 ? k - 1 : k / 2 + 1), d->pl = rnd_in(0, k - 1);
    int pb = rnd_in(0, k - 1), pr = rnd_in(0, k - 1);
    d->out_h = (d->in_h + d->pt + pb - d->kh) / s + 1, d->out_w = (d->in_w + d->pl + pr - d->kw) / s + 1;
    if (d->out_h < 1) d->out_h = 1;
    if (d->out_w < 1) d->out_w = 1;
    c->n = rnd_in(1, 3);
    int cg = d->in_c / d->groups;
    size_t nx = (size_t)c->n * d->in_h * d->in_w * d->in_c, nw = (size_t)d->out_c * d->kh * d->kw * cg;
    c->x = malloc(nx), c->w = malloc(nw);
    c->bias = malloc(sizeof(int32_t) * (size_t)d->out_c), c->mult = malloc(sizeof(int32_t) * (size_t)d->out_c);
    c->shift = malloc((size_t)d->out_c), c->wscale = malloc(sizeof(float) * (size_t)d->out_c);
    for (size_t i = 0; i < nx; i++) c->x[i] = (uint8_t)rnd();
    for (size_t i = 0; i < nw; i++) c->w[i] = (int8_t)rnd_in(wofs ? -128 : -127, 127);
    c->q.in_zp = rnd_in(0, 255), c->q.out_zp = rnd_in(0, 255), c->q.wofs = wofs;
    c->q.act_min = rnd_in(0, 40), c->q.act_max = rnd_in(200, 255);
    c->in_scale = 0.01f + (float)(rnd() % 1000) * 1e-4f;
    c->out_scale = 0.05f + (float)(rnd() % 1000) * 1e-3f;
    for (int o = 0; o < d->out_c; o++) {
        c->wscale[o] = 0.001f + (float)(rnd() % 1000) * 1e-5f;
        c->bias[o] = rnd_in(-20000, 20000);
        int sh;
        aibox_q_multiplier((double)c->in_scale * c->wscale[o] / c->out_scale, &c->mult[o], &sh);
        c->shift[o] = (int8_t)sh;
    }
    c->q.w = c->w, c->q.bias = c->bias, c->q.mult = c->mult, c->q.shift = c->shift;
}

static void free_case(qcase *c)
{
    free(c->x), free(c->w), free(c->bias), free(c->mult), free(c->shift), free(c->wscale);
}

/* The paths a run compared, with how many cases and output bytes. */
typedef struct seen {
    const char *name[16];
    size_t cases[16], bytes[16];
    int n;
} seen;

static void seen_add(seen *s, const char *name, size_t bytes)
{
    int i = 0;
    while (i < s->n && strcmp(s->name[i], name)) i++;
    if (i == s->n) {
        assert_true(s->n < 16);
        s->name[s->n++] = name;
    }
    s->cases[i]++, s->bytes[i] += bytes;
}

static void test_conv_paths(void **state)
{
    (void)state;
    unsigned all = aibox_cpu_features();
    seen sn = {0};
    for (int t = 0; t < 560; t++) {
        qcase c;
        int kind = t < 400 ? t % 3 : t < 500 ? 3 + t % 2 : 5, k = kind == 0 && t % 4 == 0 ? 1 : kind == 5 ? 1 : kind >= 3 && t % 5 ? 3 : rnd_in(1, 4),
            s = rnd_in(1, 2);
        make_case(&c, kind, k, s, t % 5 == 0 || (kind >= 3 && t % 3 == 0) || kind == 5 ? rnd_in(-120, 120) : 0);
        const aibox_conv_desc *d = &c.q.d;
        size_t ny = (size_t)c.n * d->out_h * d->out_w * d->out_c;
        uint8_t *ref = malloc(ny), *got = malloc(ny);
        aibox_qconv_ref(&c.q, c.n, c.x, ref);
        /* the reference against the layer in double on dequantised values */
        const int cg = d->in_c / d->groups, ocg = d->out_c / d->groups;
        for (size_t i = 0; i < ny; i++) {
            int o = (int)(i % (size_t)d->out_c);
            size_t pix = i / (size_t)d->out_c;
            int smp = (int)(pix / ((size_t)d->out_h * d->out_w)), oy = (int)(pix / d->out_w % d->out_h),
                ox = (int)(pix % d->out_w), g = o / ocg;
            double acc = c.bias[o] * (double)c.in_scale * c.wscale[o];
            for (int ky = 0; ky < d->kh; ky++)
                for (int kx = 0; kx < d->kw; kx++) {
                    int iy = oy * d->sh - d->pt + ky, ix = ox * d->sw - d->pl + kx;
                    if (iy < 0 || iy >= d->in_h || ix < 0 || ix >= d->in_w) continue;
                    for (int ci = 0; ci < cg; ci++) {
                        double xv = c.in_scale * (double)(c.x[(((size_t)smp * d->in_h + iy) * d->in_w + ix) * d->in_c +
                                                             g * cg + ci] - c.q.in_zp);
                        double wv = c.wscale[o] * (double)(c.w[(((size_t)o * d->kh + ky) * d->kw + kx) * cg + ci] + c.q.wofs);
                        acc += xv * wv;
                    }
                }
            double q = acc / c.out_scale + c.q.out_zp;
            q = q < c.q.act_min ? c.q.act_min : q > c.q.act_max ? c.q.act_max : q;
            if (fabs(q - ref[i]) > 1.0 + 1e-6) fail_msg("case %d: output %zu is %d, double %.3f", t, i, ref[i], q);
        }
        /* every fast path equals the reference, in one piece and in three:
         * plain C, AVX2 alone (VNNI masked off) or NEON alone (DotProd
         * masked off), everything this CPU has */
        unsigned feats[4] = {0,
                             all & (AIBOX_CPU_AVX | AIBOX_CPU_AVX2 | AIBOX_CPU_FMA | AIBOX_CPU_F16C | AIBOX_CPU_NEON |
                                    AIBOX_CPU_FP16),
                             all & ~AIBOX_CPU_AVX512VBMI, /* VNNI through patches, not the first layers' direct rows */
                             all};
        for (int f = 0; f < 4; f++) {
            if (f >= 2 && feats[f] == feats[f - 1]) continue; /* nothing masked off: run once */
            size_t pb = aibox_qconv_packed_bytes(&c.q), wb = aibox_qconv_ws_bytes(&c.q);
            void *packed = aibox_alloc(pb + 64), *ws = aibox_alloc(wb * 3 + 64);
            aibox_qconv_pack(&c.q, packed);
            for (int parts = 1; parts <= 3; parts += 2) {
                memset(got, 0xA5, ny);
                for (int part = 0; part < parts; part++)
                    aibox_qconv_run(&c.q, packed, c.n, c.x, got, (char *)ws + (size_t)part * wb, part, parts, feats[f]);
                for (size_t i = 0; i < ny; i++)
                    if (got[i] != ref[i])
                        fail_msg("case %d (%s, %d parts, groups %d, k %d, s %d, wofs %d): output %zu is %d, "
                                 "reference %d", t, aibox_qconv_path(&c.q, feats[f]), parts, d->groups, d->kh, d->sh,
                                 c.q.wofs, i, got[i], ref[i]);
                seen_add(&sn, aibox_qconv_path(&c.q, feats[f]), ny);
            }
            aibox_free(packed), aibox_free(ws);
        }
        free(ref), free(got);
        free_case(&c);
    }
    print_message("paths compared with the reference (features 0x%x):\n", all);
    for (int i = 0; i < sn.n; i++)
        print_message("  %-17s 0 of %zu bytes differ over %zu runs\n", sn.name[i], sn.bytes[i], sn.cases[i]);
}

/* aibox_q_quantize (a NEON twin on aarch64) against its formula written out:
 * ties, both clamps, infinities and NaN, every length's tail. */
static void test_quantize(void **state)
{
    (void)state;
    size_t bytes = 0;
    for (int t = 0; t < 300; t++) {
        int n = rnd_in(0, 70);
        float inv = 1.0f / (0.005f + (float)(rnd() % 1000) * 1e-4f), zp = (float)rnd_in(0, 255);
        float x[70];
        uint8_t got[70];
        for (int i = 0; i < n; i++) {
            int kind = rnd_in(0, 15);
            x[i] = kind == 0   ? NAN
                   : kind == 1 ? (rnd() % 2 ? INFINITY : -INFINITY)
                   : kind == 2 ? ((float)rnd_in(-300, 300) - zp + 0.5f) / inv /* near halves */
                   : kind == 3 ? -0.0f
                               : ((float)(rnd() % 200001) - 100000.0f) * 1e-4f * (float)(rnd() % 4 + 1);
        }
        aibox_q_quantize(x, n, inv, zp, got);
        for (int i = 0; i < n; i++) {
            float v = x[i] * inv + zp + 0.5f;
            int want = isnan(v) || v <= 0.0f ? 0 : v >= 255.0f ? 255 : (int)v;
            if (got[i] != want) fail_msg("quantize %d/%d: x %a gives %d, formula %d", t, i, (double)x[i], got[i], want);
        }
        bytes += (size_t)n;
    }
    print_message("quantize: 0 of %zu bytes differ from the formula\n", bytes);
    /* three planes to interleaved pixels, every path, against one plane at a time */
    size_t bytes3 = 0;
    for (int t = 0; t < 100; t++) {
        int n = rnd_in(0, 100), plane = n + rnd_in(0, 5);
        float inv = 1.0f / (0.005f + (float)(rnd() % 1000) * 1e-4f), zp = (float)rnd_in(0, 255);
        float x[3 * 105];
        uint8_t want[300], got[301];
        for (int i = 0; i < 3 * plane; i++) {
            int kind = rnd_in(0, 15);
            x[i] = kind == 0   ? NAN
                   : kind == 1 ? (rnd() % 2 ? INFINITY : -INFINITY)
                   : kind == 2 ? ((float)rnd_in(-300, 300) - zp + 0.5f) / inv
                               : ((float)(rnd() % 200001) - 100000.0f) * 1e-4f * (float)(rnd() % 4 + 1);
        }
        for (int c = 0; c < 3; c++) {
            uint8_t one[100];
            aibox_q_quantize(x + (size_t)c * plane, n, inv, zp, one);
            for (int i = 0; i < n; i++) want[3 * i + c] = one[i];
        }
        unsigned feats[2] = {0, aibox_cpu_features()};
        for (int f = 0; f < 2; f++) {
            memset(got, 0xA5, sizeof got);
            aibox_q_quantize3(x, (size_t)plane, n, inv, zp, got, feats[f]);
            for (int i = 0; i < 3 * n; i++)
                if (got[i] != want[i]) fail_msg("quantize3 %d/%d (features 0x%x): %d, one plane at a time %d", t, i,
                                                feats[f], got[i], want[i]);
            if (got[3 * n] != 0xA5) fail_msg("quantize3 %d: wrote past its %d pixels", t, n);
        }
        bytes3 += 3 * (size_t)n;
    }
    print_message("quantize3: 0 of %zu bytes differ from aibox_q_quantize's\n", bytes3);
}

static void test_pool_add_softmax(void **state)
{
    (void)state;
    for (int t = 0; t < 200; t++) {
        aibox_pool_desc d = {0};
        d.c = rnd_in(1, 20), d.in_h = rnd_in(1, 9), d.in_w = rnd_in(1, 9);
        d.kh = rnd_in(1, 4), d.kw = rnd_in(1, 4), d.sh = rnd_in(1, 2), d.sw = rnd_in(1, 2);
        if (t % 4 == 0) d.kh = d.kw = d.sh = d.sw = 2; /* the common max pool has a fast path */
        d.pt = rnd_in(0, d.kh - 1), d.pl = rnd_in(0, d.kw - 1), d.count_include_pad = t % 2;
        d.out_h = (d.in_h + 2 * d.pt - d.kh) / d.sh + 1, d.out_w = (d.in_w + 2 * d.pl - d.kw) / d.sw + 1;
        if (d.out_h < 1 || d.out_w < 1) continue;
        int n = 2, zp = rnd_in(0, 255);
        size_t nx = (size_t)n * d.in_h * d.in_w * d.c, ny = (size_t)n * d.out_h * d.out_w * d.c;
        uint8_t *x = malloc(nx), *y = malloc(ny);
        for (size_t i = 0; i < nx; i++) x[i] = (uint8_t)rnd();
        const int lo = t % 3 ? 0 : rnd_in(0, 40), hi = t % 3 ? 255 : rnd_in(200, 255); /* a fused clamp now and then */
        for (int run = 0; run < 4; run++) { /* average and max, in one piece and in three */
            const int is_max = run % 2, parts = run < 2 ? 1 : 3;
            memset(y, 0xA5, ny);
            for (int part = 0; part < parts; part++) aibox_qpool(&d, n, is_max, zp, lo, hi, x, y, part, parts);
            for (size_t i = 0; i < ny; i++) {
                int c = (int)(i % (size_t)d.c);
                size_t pix = i / (size_t)d.c;
                int s = (int)(pix / ((size_t)d.out_h * d.out_w)), oy = (int)(pix / d.out_w % d.out_h), ox = (int)(pix % d.out_w);
                double sum = 0, best = -1;
                int cells = 0;
                for (int ky = 0; ky < d.kh; ky++)
                    for (int kx = 0; kx < d.kw; kx++) {
                        int iy = oy * d.sh - d.pt + ky, ix = ox * d.sw - d.pl + kx;
                        if (iy < 0 || iy >= d.in_h || ix < 0 || ix >= d.in_w) {
                            if (d.count_include_pad && !is_max) sum += zp, cells++;
                            continue;
                        }
                        double v = x[(((size_t)s * d.in_h + iy) * d.in_w + ix) * d.c + c];
                        sum += v, cells++, best = v > best ? v : best;
                    }
                double want = is_max ? best : sum / cells;
                want = want < lo ? lo : want > hi ? hi : want;
                if (fabs(want - y[i]) > (is_max ? 0 : 0.5 + 1e-9))
                    fail_msg("pool case %d (%s, %d parts): %d, double %.3f", t, is_max ? "max" : "avg", parts, y[i], want);
            }
        }
        free(x), free(y);
    }
    /* ADD: within one step of the double sum */
    for (int t = 0; t < 200; t++) {
        float sa = 0.01f + (float)(rnd() % 100) * 1e-3f, sb = 0.01f + (float)(rnd() % 100) * 1e-3f,
              so = 0.02f + (float)(rnd() % 100) * 2e-3f;
        int za = rnd_in(0, 255), zb = rnd_in(0, 255), zo = rnd_in(0, 255);
        aibox_qadd p;
        aibox_qadd_setup(&p, sa, za, sb, zb, so, zo, 0, 255);
        uint8_t a[256], b[256], y[256];
        for (int i = 0; i < 256; i++) a[i] = (uint8_t)rnd(), b[i] = (uint8_t)rnd();
        aibox_qadd_run(&p, 256, a, b, y);
        for (int i = 0; i < 256; i++) {
            double want = ((double)sa * (a[i] - za) + (double)sb * (b[i] - zb)) / so + zo;
            want = want < 0 ? 0 : want > 255 ? 255 : want;
            if (fabs(want - y[i]) > 1.0) fail_msg("add %d/%d: %d, double %.3f", t, i, y[i], want);
        }
    }
    /* softmax: probabilities on the 1/256 grid within one step */
    for (int t = 0; t < 100; t++) {
        float table[256], sc = 0.02f + (float)(rnd() % 100) * 1e-3f;
        aibox_qsoftmax_table(sc, 1.0f, table);
        int k = rnd_in(2, 300);
        uint8_t *x = malloc((size_t)k), *y = malloc((size_t)k);
        for (int i = 0; i < k; i++) x[i] = (uint8_t)rnd();
        aibox_qsoftmax(table, 1.0f / 256.0f, 0, 1, k, x, y);
        double mx = 0, sum = 0;
        for (int i = 0; i < k; i++) mx = x[i] > mx ? x[i] : mx;
        for (int i = 0; i < k; i++) sum += exp(sc * (x[i] - mx));
        for (int i = 0; i < k; i++) {
            double want = 256.0 * exp(sc * (x[i] - mx)) / sum;
            want = want > 255 ? 255 : want;
            if (fabs(want - y[i]) > 1.0) fail_msg("softmax %d/%d: %d, double %.3f", t, i, y[i], want);
        }
        free(x), free(y);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_point),
        cmocka_unit_test(test_conv_paths),
        cmocka_unit_test(test_quantize),
        cmocka_unit_test(test_pool_add_softmax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
