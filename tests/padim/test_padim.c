/* PaDiM: the streaming fit and the Mahalanobis grid against a naive double
 * reference (explicit covariance, Gauss-Jordan inverse), the orthogonal
 * projection's invariance, one-image fits, batch invariance, files. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "aibox.h"
#include "common/check.h"

#define S 64 /* input size: taps at 16x16, 8x8, 4x4 */

static char g_tmp[256];

/* A small random backbone with stages at strides 2, 4, 8, 16. */
static aibox_model *backbone(void) { return aibox_test_strided_backbone(S, (const int[4]){6, 8, 12, 16}, 3); }

static float *images(int n, uint64_t seed) { return aibox_test_normal_images(n, S, seed); }

/* Features of one image at every patch of the 16x16 grid: 36 channels
 * (8 + 12 + 16), nearest-upsampled, in double. */
#define F 36
#define G 16
static void features(const aibox_model *m, const float *x, double *feat /* G*G x F */)
{
    aibox_ctx *c = NULL;
    aibox_error err;
    assert_int_equal(aibox_ctx_create(&c, m, &(aibox_ctx_opts){.height = S, .width = S}, &err), AIBOX_OK);
    assert_int_equal(aibox_ctx_infer(c, m, x, 1, &err), AIBOX_OK);
    int base = 0;
    for (int s = 4; s <= 16; s *= 2) {
        int node = aibox_model_stride_node(m, s), cc, h, w;
        const float *a = aibox_ctx_node_output(c, node, &cc, &h, &w);
        int k = G / h;
        for (int ci = 0; ci < cc; ci++)
            for (int y = 0; y < G; y++)
                for (int xx = 0; xx < G; xx++) feat[(y * G + xx) * F + base + ci] = a[(ci * h + y / k) * w + xx / k];
        base += cc;
    }
    aibox_ctx_free(&c);
}

/* In-place inverse of a d x d matrix by Gauss-Jordan with partial pivoting. */
static void invert(double *a, int d)
{
    double *inv = calloc((size_t)d * d, sizeof(double));
    for (int i = 0; i < d; i++) inv[i * d + i] = 1;
    for (int c = 0; c < d; c++) {
        int piv = c;
        for (int r = c + 1; r < d; r++)
            if (fabs(a[r * d + c]) > fabs(a[piv * d + c])) piv = r;
        for (int k = 0; k < d; k++) {
            double t = a[c * d + k];
            a[c * d + k] = a[piv * d + k], a[piv * d + k] = t;
            t = inv[c * d + k];
            inv[c * d + k] = inv[piv * d + k], inv[piv * d + k] = t;
        }
        double p = a[c * d + c];
        for (int k = 0; k < d; k++) a[c * d + k] /= p, inv[c * d + k] /= p;
        for (int r = 0; r < d; r++) {
            if (r == c) continue;
            double f = a[r * d + c];
            for (int k = 0; k < d; k++) a[r * d + k] -= f * a[c * d + k], inv[r * d + k] -= f * inv[c * d + k];
        }
    }
    memcpy(a, inv, sizeof(double) * (size_t)d * d);
    free(inv);
}

/* Reference Mahalanobis grid of test images against n fit images, on the
 * channels chan[0..d). */
static void reference(const aibox_model *m, const float *fit, int n, const float *test, int nt, const int *chan, int d,
                      double reg, double *out /* nt x G*G */)
{
    size_t in = 3 * S * S;
    double *feat = malloc(sizeof(double) * (size_t)n * G * G * F), *one = malloc(sizeof(double) * G * G * F);
    for (int i = 0; i < n; i++) features(m, fit + in * i, feat + (size_t)i * G * G * F);
    double *mu = malloc(sizeof(double) * d), *cov = malloc(sizeof(double) * d * d), *v = malloc(sizeof(double) * d);
    for (int t = 0; t < nt; t++) {
        features(m, test + in * t, one);
        for (int p = 0; p < G * G; p++) {
            for (int a = 0; a < d; a++) {
                mu[a] = 0;
                for (int i = 0; i < n; i++) mu[a] += feat[((size_t)i * G * G + p) * F + chan[a]];
                mu[a] /= n;
            }
            for (int a = 0; a < d; a++)
                for (int b = 0; b < d; b++) {
                    double s = 0;
                    for (int i = 0; i < n; i++)
                        s += (feat[((size_t)i * G * G + p) * F + chan[a]] - mu[a]) *
                             (feat[((size_t)i * G * G + p) * F + chan[b]] - mu[b]);
                    cov[a * d + b] = s / (n > 1 ? n - 1 : 1) + (a == b ? reg : 0);
                }
            invert(cov, d);
            for (int a = 0; a < d; a++) v[a] = one[p * F + chan[a]] - mu[a];
            double q = 0;
            for (int a = 0; a < d; a++)
                for (int b = 0; b < d; b++) q += v[a] * cov[a * d + b] * v[b];
            out[(size_t)t * G * G + p] = sqrt(q);
        }
    }
    free(feat), free(one), free(mu), free(cov), free(v);
}

static aibox_padim *fit(const aibox_model *m, const aibox_padim_opts *o, const float *x, int n, int batch)
{
    aibox_padim_fit *f = NULL;
    aibox_padim *p = NULL;
    aibox_error err;
    aibox_status s = aibox_padim_fit_begin(&f, m, o, batch, 2, &err);
    if (s) print_message("%s\n", err.msg);
    assert_int_equal(s, AIBOX_OK);
    /* uneven chunks: the statistics must not depend on how images arrive */
    int done = 0, step = 1;
    while (done < n) {
        int k = step < n - done ? step : n - done;
        assert_int_equal(aibox_padim_fit_add(f, x + (size_t)done * 3 * S * S, k, &err), AIBOX_OK);
        done += k, step = step * 2 + 1;
    }
    assert_int_equal(aibox_padim_fit_count(f), n);
    s = aibox_padim_fit_end(f, &p, &err);
    if (s) print_message("%s\n", err.msg);
    assert_int_equal(s, AIBOX_OK);
    aibox_padim_fit_free(&f);
    /* the default is the half-precision copy (checked below); these tests compare the float32 scoring */
    int64_t half = 0;
    assert_int_equal(aibox_model_get_meta_int(aibox_padim_model(p), "aibox.padim.half", &half), AIBOX_OK);
    assert_int_equal(half, 1);
    assert_int_equal(aibox_padim_set_half(p, 0, NULL), AIBOX_OK);
    return p;
}

static void grid(const aibox_padim *p, const float *x, int n, float *out)
{
    aibox_padim_ctx *c = NULL;
    aibox_error err;
    assert_int_equal(aibox_padim_ctx_create(&c, p, n, 2, &err), AIBOX_OK);
    assert_int_equal(aibox_padim_score(c, x, n, out, NULL, NULL, &err), AIBOX_OK);
    aibox_padim_ctx_free(&c);
}

/* Random subset: the grid matches the double reference within 1e-4 relative. */
static void test_fit_matches_reference(void **state)
{
    (void)state;
    aibox_model *m = backbone();
    int n = 23, nt = 3;
    float *x = images(n, 1), *t = images(nt, 2);
    for (size_t i = 0; i < (size_t)3 * S * S; i++) t[i] *= 1.5f; /* one test image off the training distribution */
    aibox_padim_opts o = {0};
    o.dims = 10, o.seed = 7;
    aibox_padim *p = fit(m, &o, x, n, 4);
    int gw, gh, d;
    long imgs;
    aibox_padim_info(p, &gw, &gh, &d, &imgs);
    assert_int_equal(gw, G), assert_int_equal(gh, G), assert_int_equal(d, 10), assert_int_equal(imgs, n);
    int nc = 0;
    const int64_t *ch = NULL;
    assert_int_equal(aibox_model_get_meta_ints(aibox_padim_model(p), "aibox.padim.channels", &nc, &ch), AIBOX_OK);
    assert_int_equal(nc, 10);
    int chan[10];
    for (int i = 0; i < 10; i++) chan[i] = (int)ch[i];
    float got[3 * G * G];
    double want[3 * G * G];
    grid(p, t, nt, got);
    reference(m, x, n, t, nt, chan, 10, 0.01, want);
    double worst = 0, scale = 0;
    for (int i = 0; i < nt * G * G; i++) {
        worst = fmax(worst, fabs(got[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    print_message("PaDiM grid vs double reference: max |diff| %.3g, max |ref| %.3g\n", worst, scale);
    assert_true(worst <= 1e-4 * scale);
    assert_true(scale > 1); /* not a degenerate all-zero case */

    /* The portable kernel agrees with the vectorised one. */
    float gen[3 * G * G];
    setenv("AIBOX_PADIM_KERNEL", "generic", 1);
    grid(p, t, nt, gen);
    unsetenv("AIBOX_PADIM_KERNEL");
    for (int i = 0; i < nt * G * G; i++) assert_float_equal(gen[i], got[i], 1e-5f * fabsf(got[i]) + 1e-6f);

    /* The half-precision factor: within 2e-3 relative, and it survives a save/load. */
    float half[3 * G * G], back[3 * G * G];
    assert_int_equal(aibox_padim_set_half(p, 1, NULL), AIBOX_OK);
    grid(p, t, nt, half);
    double hw = 0;
    for (int i = 0; i < nt * G * G; i++) hw = fmax(hw, fabs(half[i] - got[i]) / fmax(1e-3, fabs(got[i])));
    print_message("half-precision factor: max relative diff %.3g\n", hw);
    assert_true(hw < 2e-3);
    char hp[300];
    snprintf(hp, sizeof hp, "%s.half.aibox", g_tmp);
    aibox_padim *ph = NULL;
    assert_int_equal(aibox_padim_save(p, hp, NULL), AIBOX_OK);
    assert_int_equal(aibox_padim_load(&ph, hp, NULL), AIBOX_OK);
    grid(ph, t, nt, back);
    assert_memory_equal(half, back, sizeof half);
    aibox_padim_free(&ph);
    unlink(hp);
    assert_int_equal(aibox_padim_set_half(p, 0, NULL), AIBOX_OK);

    /* Scoring several images at once gives what one at a time gives. */
    float one[G * G];
    for (int k = 0; k < nt; k++) {
        grid(p, t + (size_t)k * 3 * S * S, 1, one);
        for (int i = 0; i < G * G; i++) assert_float_equal(one[i], got[k * G * G + i], 1e-5f * fabsf(one[i]) + 1e-6f);
    }

    /* A different seed picks other channels. */
    aibox_padim_opts o2 = o;
    o2.seed = 8;
    aibox_padim *p2 = fit(m, &o2, x, 4, 4);
    const int64_t *ch2 = NULL;
    assert_int_equal(aibox_model_get_meta_ints(aibox_padim_model(p2), "aibox.padim.channels", &nc, &ch2), AIBOX_OK);
    assert_true(memcmp(ch, ch2, sizeof(int64_t) * 10) != 0);
    aibox_padim_free(&p2);
    aibox_padim_free(&p);
    aibox_model_free(&m);
    free(x), free(t);
}

/* A square orthogonal projection leaves Mahalanobis distances unchanged
 * (W^T (S + rI) W = W^T S W + rI): orthogonal with d = F equals all channels. */
static void test_orthogonal_invariance(void **state)
{
    (void)state;
    aibox_model *m = backbone();
    int n = 40;
    float *x = images(n, 3), *t = images(2, 4);
    aibox_padim_opts a = {0}, b = {0};
    a.dims = F, b.dims = F, b.projection = AIBOX_PADIM_ORTHOGONAL, b.seed = 11;
    aibox_padim *pa = fit(m, &a, x, n, 8), *pb = fit(m, &b, x, n, 8);
    float ga[2 * G * G], gb[2 * G * G];
    grid(pa, t, 2, ga);
    grid(pb, t, 2, gb);
    double worst = 0;
    for (int i = 0; i < 2 * G * G; i++) worst = fmax(worst, fabs(ga[i] - gb[i]) / fmax(1e-3, fabs(ga[i])));
    print_message("orthogonal d=F vs all channels: max relative diff %.3g\n", worst);
    assert_true(worst < 2e-3);
    /* and a real reduction gives other (finite, positive) distances */
    aibox_padim_opts c = b;
    c.dims = 12;
    aibox_padim *pc = fit(m, &c, x, n, 8);
    grid(pc, t, 2, gb);
    for (int i = 0; i < 2 * G * G; i++) assert_true(isfinite(gb[i]) && gb[i] > 0);
    aibox_padim_free(&pa), aibox_padim_free(&pb), aibox_padim_free(&pc);
    aibox_model_free(&m);
    free(x), free(t);
}

/* One good image: a regularised model (covariance 0.01 I), finite distances. */
static void test_one_image(void **state)
{
    (void)state;
    aibox_model *m = backbone();
    float *x = images(1, 5), *t = images(1, 6);
    aibox_padim_opts o = {0};
    o.dims = 8;
    aibox_padim *p = fit(m, &o, x, 1, 1);
    float g[G * G];
    grid(p, t, 1, g);
    for (int i = 0; i < G * G; i++) assert_true(isfinite(g[i]));
    grid(p, x, 1, g); /* the fitted image itself: distance 0 */
    for (int i = 0; i < G * G; i++) assert_float_equal(g[i], 0, 1e-3);
    aibox_padim_free(&p);
    aibox_model_free(&m);
    free(x), free(t);
}

static void test_bad_options(void **state)
{
    (void)state;
    aibox_model *m = backbone();
    aibox_padim_fit *f = NULL;
    aibox_padim *p = NULL;
    aibox_error err;
    aibox_padim_opts o = {0};
    o.dims = F + 1;
    assert_int_equal(aibox_padim_fit_begin(&f, m, &o, 2, 1, &err), AIBOX_E_INVALID);
    assert_non_null(strstr(err.msg, "channels"));
    assert_null(f);
    o.dims = 0, o.n_taps = 1, o.strides[0] = 3;
    assert_int_equal(aibox_padim_fit_begin(&f, m, &o, 2, 1, &err), AIBOX_E_INVALID);
    assert_non_null(strstr(err.msg, "stride 3"));
    o.n_taps = 2, o.strides[0] = 8, o.strides[1] = 4;
    assert_int_equal(aibox_padim_fit_begin(&f, m, &o, 2, 1, &err), AIBOX_E_INVALID);
    memset(&o, 0, sizeof o);
    assert_int_equal(aibox_padim_fit_begin(&f, m, &o, 2, 1, &err), AIBOX_OK);
    assert_int_equal(aibox_padim_fit_end(f, &p, &err), AIBOX_E_STATE); /* no images */
    assert_null(p);
    aibox_padim_fit_free(&f);
    aibox_model_free(&m);
}

/* Save/load keeps every distance; a classifier is NOTFOUND; damage is refused. */
static void test_files(void **state)
{
    (void)state;
    aibox_model *m = backbone();
    float *x = images(6, 7), *t = images(1, 8);
    aibox_error err;
    char path[300];
    snprintf(path, sizeof path, "%s.aibox", g_tmp);
    for (int proj = 0; proj < 2; proj++) {
        aibox_padim_opts o = {0};
        o.dims = 9, o.projection = proj ? AIBOX_PADIM_ORTHOGONAL : AIBOX_PADIM_RANDOM;
        aibox_padim *p = fit(m, &o, x, 6, 3), *q = NULL;
        assert_int_equal(aibox_padim_save(p, path, &err), AIBOX_OK);
        assert_int_equal(aibox_padim_load(&q, path, &err), AIBOX_OK);
        float a[G * G], b[G * G];
        grid(p, t, 1, a);
        grid(q, t, 1, b);
        assert_memory_equal(a, b, sizeof a);
        aibox_padim_free(&q);
        aibox_padim_free(&p);
    }
    /* truncated copies */
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    unsigned char *buf = malloc((size_t)len);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    char cut[320];
    snprintf(cut, sizeof cut, "%s.cut", path);
    for (long k = 0; k < len; k += len / 7 + 1) {
        f = fopen(cut, "wb");
        fwrite(buf, 1, (size_t)k, f);
        fclose(f);
        aibox_padim *q = NULL;
        assert_int_not_equal(aibox_padim_load(&q, cut, &err), AIBOX_OK);
        assert_null(q);
        assert_non_null(strstr(err.msg, cut));
    }
    unlink(cut);
    free(buf);
    /* a classifier */
    assert_int_equal(aibox_model_save(m, path, &err), AIBOX_OK);
    aibox_padim *q = NULL;
    assert_int_equal(aibox_padim_load(&q, path, &err), AIBOX_E_NOTFOUND);
    unlink(path);
    aibox_model_free(&m);
    free(x), free(t);
}

/* Parity with a straightforward PyTorch PaDiM (tests/padim/padim_parity.py):
 * same ResNet-18 weights (safetensors), channels and images; the blurred
 * 224x224 maps agree within 1e-3 relative. Skipped without torch. */
static void test_torch_parity(void **state)
{
    (void)state;
    char dir[300], cmd[1200], path[600];
    snprintf(dir, sizeof dir, "%s.parity", g_tmp);
    const char *script = "tests/padim/padim_parity.py";
    aibox_error err;
    aibox_model *bb = NULL;
    float *x, *t;
    aibox_test_parity_inputs(script, dir, &bb, &x, 24, &t, 2);
    aibox_padim_opts o = {0};
    o.seed = 3;
    aibox_padim_fit *f = NULL;
    aibox_padim *p = NULL;
    assert_int_equal(aibox_padim_fit_begin(&f, bb, &o, 8, 2, &err), AIBOX_OK);
    assert_int_equal(aibox_padim_fit_add(f, x, 24, &err), AIBOX_OK);
    assert_int_equal(aibox_padim_fit_end(f, &p, &err), AIBOX_OK);
    aibox_padim_fit_free(&f);
    assert_int_equal(aibox_padim_set_half(p, 0, NULL), AIBOX_OK); /* parity is for the float32 scoring */
    int nc = 0;
    const int64_t *ch = NULL;
    assert_int_equal(aibox_model_get_meta_ints(aibox_padim_model(p), "aibox.padim.channels", &nc, &ch), AIBOX_OK);
    assert_int_equal(nc, 100);
    snprintf(path, sizeof path, "%s/channels.txt", dir);
    FILE *cf = fopen(path, "w");
    for (int i = 0; i < nc; i++) fprintf(cf, "%lld\n", (long long)ch[i]);
    fclose(cf);
    aibox_padim_ctx *c = NULL;
    float *maps = malloc(sizeof(float) * 2 * 224 * 224), scores[2];
    assert_int_equal(aibox_padim_ctx_create(&c, p, 2, 2, &err), AIBOX_OK);
    assert_int_equal(aibox_padim_score(c, t, 2, NULL, maps, scores, &err), AIBOX_OK);
    snprintf(cmd, sizeof cmd, "ref %s", dir);
    assert_int_equal(aibox_test_torch_script(script, cmd, NULL), 0);
    snprintf(path, sizeof path, "%s/ref.f32", dir);
    float *ref = aibox_test_read_f32(path, 2 * 224 * 224);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < 2 * 224 * 224; i++) {
        worst = fmax(worst, fabs(maps[i] - ref[i]));
        scale = fmax(scale, fabs(ref[i]));
    }
    print_message("PaDiM maps vs PyTorch reference: max |diff| %.3g, max |ref| %.3g (relative %.2e)\n", worst, scale,
                  worst / scale);
    assert_true(scale > 1);
    assert_true(worst <= 1e-3 * scale);
    for (int k = 0; k < 2; k++) { /* the image score is the map's maximum */
        float mx = maps[k * 224 * 224];
        for (int i = 1; i < 224 * 224; i++) mx = fmaxf(mx, maps[k * 224 * 224 + i]);
        assert_true(scores[k] == mx);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    aibox_padim_ctx_free(&c);
    aibox_padim_free(&p);
    aibox_model_free(&bb);
    free(x), free(t), free(maps), free(ref);
}

int main(void)
{
    snprintf(g_tmp, sizeof g_tmp, "/tmp/aibox_test_padim_%d", (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_matches_reference), cmocka_unit_test(test_orthogonal_invariance),
        cmocka_unit_test(test_one_image),             cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_files),                 cmocka_unit_test(test_torch_parity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
