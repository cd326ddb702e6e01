/* Windows of recordings as model inputs (lib/signal/sound.c, sounddata.c,
 * soundnet.c). The front end against independent references: LOGMEL is
 * aibox_spectral_logmel transposed, FEATURES each band's log-mel mean and deviation plus per-frame
 * statistics computed naively in double here, RAW with RMS normalisation
 * exactly x / rms. The settings' round trip through a model and its
 * refusals. Datasets on synthetic folders of sines written with libsndfile:
 * split by recording (never a recording in two splits, every window with
 * its recording, the same split for the same seed, the train/val layout),
 * unreadable and too-short files skipped with reasons, strict refusals, the
 * same bits for any thread count; batches covering every window once per
 * epoch in a seeded order; a preset trained on the sines to high validation
 * accuracy. With $AIBOX_DATA (default ../shared/data): windows per CWRU
 * recording. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aibox.h"
#include "common/check.h"

static char g_dir[256];

static aibox_sound_frontend *make_fe(const aibox_sound_opts *o)
{
    aibox_sound_frontend *fe = NULL;
    aibox_error e = {0};
    aibox_status s = aibox_sound_frontend_create(&fe, o, &e);
    if (s) print_message("front end: %s\n", e.msg);
    assert_int_equal(s, AIBOX_OK);
    return fe;
}

static void noise(float *x, long n, uint64_t seed, float amp)
{
    aibox_rng r;
    aibox_rng_seed(&r, seed);
    for (long i = 0; i < n; i++) x[i] = amp * aibox_rng_normal(&r) + 0.3f * amp * sinf(0.05f * (float)i);
}

/* ------------------------------------------------------------------ settings */
static void test_defaults_and_counts(void **state)
{
    (void)state;
    aibox_sound_opts o;
    int c, h, w;
    aibox_error e = {0};
    aibox_sound_opts_default(&o, 16000.0, AIBOX_SOUND_LOGMEL);
    assert_int_equal(o.window, 8192);
    assert_int_equal(o.hop, 4096);
    assert_int_equal(o.spec.n_fft, 512);
    assert_int_equal(o.spec.hop, 256);
    assert_int_equal(o.spec.n_mels, 64);
    assert_int_equal(o.spec.pad, AIBOX_PAD_NONE);
    assert_true(o.spec.top_db == 0.0);
    assert_int_equal(o.norm, AIBOX_SOUND_NORM_NONE);
    assert_int_equal(aibox_sound_input_shape(&o, &c, &h, &w, &e), AIBOX_OK);
    assert_int_equal(c, 1), assert_int_equal(h, 64), assert_int_equal(w, 1 + (8192 - 512) / 256);
    aibox_sound_opts_default(&o, 48000.0, AIBOX_SOUND_RAW);
    assert_int_equal(o.window, 16384);
    assert_int_equal(o.spec.n_fft, 1024);
    assert_int_equal(o.norm, AIBOX_SOUND_NORM_RMS);
    assert_int_equal(aibox_sound_input_shape(&o, &c, &h, &w, &e), AIBOX_OK);
    assert_int_equal(c, 1), assert_int_equal(h, 1), assert_int_equal(w, 16384);
    aibox_sound_opts_default(&o, 12000.0, AIBOX_SOUND_FEATURES);
    assert_int_equal(o.window, 4096);
    assert_int_equal(aibox_sound_input_shape(&o, &c, &h, &w, &e), AIBOX_OK);
    assert_int_equal(c, 132), assert_int_equal(h, 1), assert_int_equal(w, 1);
    /* a very low rate: the frame shrinks to the window */
    aibox_sound_opts_default(&o, 100.0, AIBOX_SOUND_LOGMEL);
    o.spec.n_mels = 8;
    if (aibox_sound_opts_check(&o, &e)) print_message("100 Hz: %s\n", e.msg);
    assert_int_equal(aibox_sound_opts_check(&o, &e), AIBOX_OK);
    /* window counts */
    aibox_sound_opts_default(&o, 16000.0, AIBOX_SOUND_RAW);
    o.window = 1000, o.hop = 300;
    assert_int_equal(aibox_sound_window_count(&o, 0), 0);
    assert_int_equal(aibox_sound_window_count(&o, 999), 0);
    assert_int_equal(aibox_sound_window_count(&o, 1000), 1);
    assert_int_equal(aibox_sound_window_count(&o, 1299), 1);
    assert_int_equal(aibox_sound_window_count(&o, 1300), 2);
    assert_int_equal(aibox_sound_window_count(&o, 10000), 31);
    /* names */
    assert_string_equal(aibox_sound_input_name(AIBOX_SOUND_LOGMEL), "logmel");
    assert_string_equal(aibox_sound_input_name(AIBOX_SOUND_RAW), "raw");
    assert_string_equal(aibox_sound_input_name(AIBOX_SOUND_FEATURES), "features");
    assert_string_equal(aibox_sound_norm_name(AIBOX_SOUND_NORM_NONE), "none");
    assert_string_equal(aibox_sound_norm_name(AIBOX_SOUND_NORM_RMS), "rms");
    /* refusals */
    aibox_sound_opts b;
    aibox_sound_opts_default(&o, 16000.0, AIBOX_SOUND_LOGMEL);
    b = o, b.window = 8;
    assert_int_equal(aibox_sound_opts_check(&b, &e), AIBOX_E_INVALID);
    print_message("window 8: %s\n", e.msg);
    b = o, b.window = 256; /* shorter than n_fft 512 */
    assert_int_equal(aibox_sound_opts_check(&b, &e), AIBOX_E_INVALID);
    b = o, b.hop = 0;
    assert_int_equal(aibox_sound_opts_check(&b, &e), AIBOX_E_INVALID);
    b = o, b.in_std = 0.0f;
    assert_int_equal(aibox_sound_opts_check(&b, &e), AIBOX_E_INVALID);
    b = o, b.input = (aibox_sound_input)7;
    assert_int_equal(aibox_sound_opts_check(&b, &e), AIBOX_E_INVALID);
    b = o, b.spec.rate = -1.0;
    assert_int_equal(aibox_sound_opts_check(&b, &e), AIBOX_E_INVALID);
    b = o, b.input = AIBOX_SOUND_RAW, b.window = 256; /* RAW needs no frame */
    assert_int_equal(aibox_sound_opts_check(&b, &e), AIBOX_OK);
    /* the work of one window is bounded, whatever settings a model file carries: frames x n_fft (hop 1 over
     * 2^22 samples took minutes per window) and an n_fft with a large prime factor (kissfft's generic radix) */
    static const struct { int input, n_fft, hop; long window; double rate; aibox_status want; } work[] = {
        {AIBOX_SOUND_FEATURES, 65536, 1, 1L << 22, 16000.0, AIBOX_E_INVALID},
        {AIBOX_SOUND_LOGMEL, 1024, 1, 1L << 20, 16000.0, AIBOX_E_INVALID},
        {AIBOX_SOUND_FEATURES, 2 * 32749, 256, 65536, 16000.0, AIBOX_E_INVALID},
        {AIBOX_SOUND_FEATURES, 1024, 512, 1L << 22, 48000.0, AIBOX_OK}, /* the largest the tools make */
        {AIBOX_SOUND_FEATURES, 1000, 500, 1L << 22, 48000.0, AIBOX_OK}, /* 2^3 5^3: kissfft's fast radices */
        {AIBOX_SOUND_FEATURES, 512, 256, 4096, 2e9, AIBOX_E_INVALID},   /* above what a reader or listener takes */
        {AIBOX_SOUND_RAW, 512, 1, 1L << 22, 16000.0, AIBOX_OK},        /* RAW computes no frame */
    };
    for (size_t i = 0; i < sizeof work / sizeof *work; i++) {
        aibox_sound_opts_default(&b, work[i].rate, (aibox_sound_input)work[i].input);
        b.spec.n_fft = work[i].n_fft, b.spec.hop = work[i].hop, b.window = work[i].window;
        b.spec.fmax = 0.0;
        aibox_status st = aibox_sound_opts_check(&b, &e);
        if (st != work[i].want) print_message("work case %zu: %d %s\n", i, (int)st, e.msg);
        assert_int_equal(st, work[i].want);
    }
}

/* ------------------------------------------------------------------ front end */
static void test_frontend_logmel(void **state)
{
    (void)state;
    aibox_sound_opts o;
    aibox_sound_opts_default(&o, 16000.0, AIBOX_SOUND_LOGMEL);
    o.window = 4000, o.spec.n_mels = 40, o.in_mean = -30.0f, o.in_std = 12.5f;
    aibox_sound_frontend *fe = make_fe(&o);
    aibox_spectral *sp = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_spectral_create(&sp, &o.spec, &e), AIBOX_OK);
    const long F = (long)aibox_spectral_frames(sp, 4000), M = 40;
    assert_int_equal(aibox_sound_frontend_size(fe), (size_t)(F * M));
    float *x = aibox_test_floats(4000), *out = aibox_test_floats((size_t)(F * M)), *raw = aibox_test_floats((size_t)(F * M));
    float *ref = aibox_test_floats((size_t)(F * M));
    noise(x, 4000, 3, 0.2f);
    assert_int_equal(aibox_sound_frontend_run(fe, x, out, raw, &e), AIBOX_OK);
    assert_int_equal(aibox_spectral_logmel(sp, x, 4000, ref, &e), AIBOX_OK);
    for (long t = 0; t < F; t++)
        for (long m = 0; m < M; m++) {
            assert_true(raw[m * F + t] == ref[t * M + m]);
            assert_true(out[m * F + t] == (ref[t * M + m] - o.in_mean) / o.in_std);
        }
    /* NULL raw: the same output */
    float *out2 = aibox_test_floats((size_t)(F * M));
    assert_int_equal(aibox_sound_frontend_run(fe, x, out2, NULL, &e), AIBOX_OK);
    assert_memory_equal(out, out2, sizeof(float) * (size_t)(F * M));
    x[17] = NAN;
    assert_int_equal(aibox_sound_frontend_run(fe, x, out, NULL, &e), AIBOX_E_NONFINITE);
    print_message("NaN sample: %s\n", e.msg);
    assert_true(aibox_sound_frontend_opts(fe)->window == 4000);
    free(x), free(out), free(out2), free(raw), free(ref);
    aibox_spectral_free(&sp);
    aibox_sound_frontend_free(&fe);
    assert_null(fe);
    aibox_sound_frontend_free(&fe); /* NULL: nothing */
}

/* FEATURES against a naive reference: log-mel means from the library's
 * log-mel (checked against SciPy in test_spectral), statistics from scratch
 * in double over the frames of n_fft samples every hop. */
static void features_case(aibox_sound_norm norm, double amp)
{
    aibox_sound_opts o;
    aibox_sound_opts_default(&o, 12000.0, AIBOX_SOUND_FEATURES);
    o.window = 3000, o.spec.n_fft = 256, o.spec.hop = 100, o.spec.n_mels = 24, o.norm = norm;
    const long n = o.window, M = 24, d = 2 * M + 4;
    aibox_sound_frontend *fe = make_fe(&o);
    assert_int_equal(aibox_sound_frontend_size(fe), (size_t)d);
    float *x = aibox_test_floats((size_t)n), *xs = aibox_test_floats((size_t)n), *out = aibox_test_floats((size_t)d);
    noise(x, n, 11, (float)amp);
    for (long i = 0; i < n; i += 97) x[i] += (float)(3 * amp); /* impacts: kurtosis well above 0 */
    aibox_error e = {0};
    assert_int_equal(aibox_sound_frontend_run(fe, x, out, NULL, &e), AIBOX_OK);
    double rms = 0;
    for (long i = 0; i < n; i++) rms += (double)x[i] * x[i];
    rms = sqrt(rms / n);
    for (long i = 0; i < n; i++) xs[i] = norm == AIBOX_SOUND_NORM_RMS ? (float)(x[i] / rms) : x[i];
    aibox_spectral *sp = NULL;
    assert_int_equal(aibox_spectral_create(&sp, &o.spec, &e), AIBOX_OK);
    const long F = (long)aibox_spectral_frames(sp, (size_t)n);
    assert_int_equal(F, 1 + (n - 256) / 100);
    float *lm = aibox_test_floats((size_t)(F * M));
    assert_int_equal(aibox_spectral_logmel(sp, xs, (size_t)n, lm, &e), AIBOX_OK);
    double *want = aibox_test_doubles((size_t)d);
    for (long m = 0; m < M; m++) { /* mean, then the population standard deviation, of each band */
        double s1 = 0, s2 = 0;
        for (long t = 0; t < F; t++) s1 += lm[t * M + m];
        for (long t = 0; t < F; t++) s2 += (lm[t * M + m] - s1 / F) * (lm[t * M + m] - s1 / F);
        want[m] = s1 / F, want[M + m] = sqrt(s2 / F);
    }
    for (long t = 0; t < F; t++) {
        const float *f = xs + t * 100;
        double mean = 0, sq = 0, peak = 0, m2 = 0, m4 = 0;
        for (int i = 0; i < 256; i++) mean += f[i], sq += (double)f[i] * f[i], peak = fmax(peak, fabs(f[i]));
        mean /= 256;
        for (int i = 0; i < 256; i++) {
            double c = f[i] - mean;
            m2 += c * c, m4 += c * c * c * c;
        }
        m2 /= 256, m4 /= 256;
        const double r = sqrt(sq / 256);
        want[2 * M + 0] += r / F;
        want[2 * M + 1] += peak / F;
        want[2 * M + 2] += peak / r / F;
        want[2 * M + 3] += (m4 / (m2 * m2) - 3.0) / F;
    }
    AIBOX_TEST_CLOSE("features", out, want, (size_t)d, 1e-6, 1e-5);
    free(x), free(xs), free(out), free(lm), free(want);
    aibox_spectral_free(&sp);
    aibox_sound_frontend_free(&fe);
}

static void test_frontend_features(void **state)
{
    (void)state;
    features_case(AIBOX_SOUND_NORM_NONE, 0.05);
    features_case(AIBOX_SOUND_NORM_RMS, 3.0);
}

static void test_frontend_raw(void **state)
{
    (void)state;
    aibox_sound_opts o;
    aibox_sound_opts_default(&o, 8000.0, AIBOX_SOUND_RAW);
    o.window = 1000, o.in_mean = 0.25f, o.in_std = 2.0f;
    assert_int_equal(o.norm, AIBOX_SOUND_NORM_RMS);
    aibox_sound_frontend *fe = make_fe(&o);
    assert_int_equal(aibox_sound_frontend_size(fe), 1000);
    float *x = aibox_test_floats(1000), *out = aibox_test_floats(1000), *raw = aibox_test_floats(1000);
    noise(x, 1000, 5, 0.7f);
    aibox_error e = {0};
    assert_int_equal(aibox_sound_frontend_run(fe, x, out, raw, &e), AIBOX_OK);
    double rms = 0;
    for (int i = 0; i < 1000; i++) rms += (double)x[i] * x[i];
    rms = sqrt(rms / 1000);
    for (int i = 0; i < 1000; i++) {
        const float v = (float)((double)x[i] / rms);
        assert_true(raw[i] == v);
        assert_true(out[i] == (v - 0.25f) / 2.0f);
    }
    /* a silent window stays as it is */
    memset(x, 0, sizeof(float) * 1000);
    assert_int_equal(aibox_sound_frontend_run(fe, x, out, raw, &e), AIBOX_OK);
    for (int i = 0; i < 1000; i++) assert_true(raw[i] == 0.0f && out[i] == -0.125f);
    /* without normalisation: the samples */
    o.norm = AIBOX_SOUND_NORM_NONE, o.in_mean = 0.0f, o.in_std = 1.0f;
    aibox_sound_frontend_free(&fe);
    fe = make_fe(&o);
    noise(x, 1000, 6, 0.7f);
    assert_int_equal(aibox_sound_frontend_run(fe, x, out, NULL, &e), AIBOX_OK);
    assert_memory_equal(out, x, sizeof(float) * 1000);
    x[999] = INFINITY;
    assert_int_equal(aibox_sound_frontend_run(fe, x, out, NULL, &e), AIBOX_E_NONFINITE);
    free(x), free(out), free(raw);
    aibox_sound_frontend_free(&fe);
    /* bad settings make no front end */
    o.window = 3;
    assert_int_equal(aibox_sound_frontend_create(&fe, &o, &e), AIBOX_E_INVALID);
    assert_null(fe);
}

/* ------------------------------------------------------------------ model metadata */
static aibox_model *model_for(const aibox_sound_opts *o)
{
    int c, h, w;
    assert_int_equal(aibox_sound_input_shape(o, &c, &h, &w, NULL), AIBOX_OK);
    aibox_model *m = NULL;
    assert_int_equal(aibox_model_create(&m, c, h, w, NULL), AIBOX_OK);
    return m;
}

static void test_model_roundtrip(void **state)
{
    (void)state;
    aibox_error e = {0};
    aibox_sound_opts o, r;
    aibox_sound_opts_default(&o, 22050.0, AIBOX_SOUND_LOGMEL);
    o.window = 5000, o.hop = 1234, o.norm = AIBOX_SOUND_NORM_RMS, o.in_mean = -41.5f, o.in_std = 17.25f;
    o.spec.n_mels = 48, o.spec.fmin = 50.0, o.spec.fmax = 8000.0;
    aibox_model *m = model_for(&o);
    assert_false(aibox_model_is_sound(m));
    assert_int_equal(aibox_sound_opts_from_model(&r, m, &e), AIBOX_E_NOTFOUND);
    print_message("no keys: %s\n", e.msg);
    /* aibox.sound.input of the wrong kind: still a (damaged) sound model, refused as one, not taken for an image
     * model */
    assert_int_equal(aibox_model_set_meta_int(m, "aibox.sound.input", 0, &e), AIBOX_OK);
    assert_true(aibox_model_is_sound(m));
    assert_int_equal(aibox_sound_opts_from_model(&r, m, &e), AIBOX_E_FORMAT);
    assert_non_null(strstr(e.msg, "aibox.sound.input"));
    assert_int_equal(aibox_sound_opts_to_model(&o, m, &e), AIBOX_OK);
    assert_true(aibox_model_is_sound(m));
    memset(&r, 0, sizeof r);
    assert_int_equal(aibox_sound_opts_from_model(&r, m, &e), AIBOX_OK);
    assert_int_equal(r.window, 5000), assert_int_equal(r.hop, 1234);
    assert_int_equal(r.input, AIBOX_SOUND_LOGMEL), assert_int_equal(r.norm, AIBOX_SOUND_NORM_RMS);
    assert_true(r.in_mean == o.in_mean && r.in_std == o.in_std);
    assert_true(r.spec.rate == 22050.0 && r.spec.n_mels == 48 && r.spec.fmin == 50.0 && r.spec.fmax == 8000.0);
    assert_true(r.spec.n_fft == o.spec.n_fft && r.spec.hop == o.spec.hop && r.spec.pad == AIBOX_PAD_NONE);
    assert_true(r.spec.top_db == 0.0);
    /* through a file too */
    char path[512];
    snprintf(path, sizeof path, "%s/rt.aibox", g_dir);
    int x = aibox_dense(m, 0, 2, 1);
    assert_true(x > 0);
    assert_int_equal(aibox_model_finish(m, 1, &e), AIBOX_OK);
    assert_int_equal(aibox_model_save(m, path, &e), AIBOX_OK);
    aibox_model *l = NULL;
    assert_int_equal(aibox_model_load(&l, path, &e), AIBOX_OK);
    memset(&r, 0, sizeof r);
    assert_int_equal(aibox_sound_opts_from_model(&r, l, &e), AIBOX_OK);
    assert_true(r.window == 5000 && r.in_std == o.in_std && r.spec.n_mels == 48);
    aibox_model_free(&l);
    /* garbage values */
    assert_int_equal(aibox_model_set_meta_str(m, "aibox.sound.input", "banana", NULL), AIBOX_OK);
    assert_int_equal(aibox_sound_opts_from_model(&r, m, &e), AIBOX_E_FORMAT);
    print_message("garbage input: %s\n", e.msg);
    assert_int_equal(aibox_model_set_meta_str(m, "aibox.sound.input", "logmel", NULL), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_int(m, "aibox.sound.window", -5, NULL), AIBOX_OK);
    assert_int_equal(aibox_sound_opts_from_model(&r, m, &e), AIBOX_E_FORMAT);
    print_message("window -5: %s\n", e.msg);
    assert_int_equal(aibox_model_set_meta_int(m, "aibox.sound.window", 5000, NULL), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_float(m, "aibox.sound.in_std", 0.0, NULL), AIBOX_OK);
    assert_int_equal(aibox_sound_opts_from_model(&r, m, &e), AIBOX_E_FORMAT);
    assert_int_equal(aibox_model_set_meta_float(m, "aibox.sound.in_std", 2.0, NULL), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_str(m, "aibox.sound.norm", "loud", NULL), AIBOX_OK);
    assert_int_equal(aibox_sound_opts_from_model(&r, m, &e), AIBOX_E_FORMAT);
    assert_int_equal(aibox_model_set_meta_str(m, "aibox.sound.norm", "none", NULL), AIBOX_OK);
    /* a window whose spectrogram is not the model's input */
    assert_int_equal(aibox_model_set_meta_int(m, "aibox.sound.window", 6000, NULL), AIBOX_OK);
    assert_int_equal(aibox_sound_opts_from_model(&r, m, &e), AIBOX_E_FORMAT);
    print_message("wrong window for the graph: %s\n", e.msg);
    assert_int_equal(aibox_model_set_meta_int(m, "aibox.sound.window", 5000, NULL), AIBOX_OK);
    assert_int_equal(aibox_sound_opts_from_model(&r, m, &e), AIBOX_OK);
    aibox_model_free(&m);
    /* storing settings in a model whose input differs */
    aibox_sound_opts raw;
    aibox_sound_opts_default(&raw, 8000.0, AIBOX_SOUND_RAW);
    m = model_for(&o);
    assert_int_equal(aibox_sound_opts_to_model(&raw, m, &e), AIBOX_E_SHAPE);
    print_message("wrong input: %s\n", e.msg);
    raw.hop = 0;
    assert_int_equal(aibox_sound_opts_to_model(&raw, m, &e), AIBOX_E_INVALID);
    aibox_model_free(&m);
}

/* ------------------------------------------------------------------ synthetic folders */
#define SR 8000
static const double FREQ[3] = {350.0, 1100.0, 2600.0};
static const char *const CLS[3] = {"high", "low", "mid"}; /* sorted: labels 0, 1, 2 */
static const int CLS_F[3] = {2, 0, 1};                    /* which frequency each class holds */

static void mkdir_p(const char *path)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}

/* A recording of a class: its sine (random amplitude and phase, a slow
 * frequency wobble) in noise, channels ch, at rate. */
static void write_rec(const char *path, int cls, long frames, int ch, int rate, uint64_t seed)
{
    SF_INFO info = {.samplerate = rate, .channels = ch, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    if (!sf) print_message("%s: %s\n", path, sf_strerror(NULL));
    assert_non_null(sf);
    aibox_rng r;
    aibox_rng_seed(&r, seed);
    const double amp = 0.05 + 0.5 * aibox_rng_uniform(&r), ph = 6.283 * aibox_rng_uniform(&r);
    const double f = FREQ[CLS_F[cls]] * (0.95 + 0.1 * aibox_rng_uniform(&r));
    float *v = aibox_test_floats((size_t)(frames * ch));
    for (long i = 0; i < frames; i++) {
        const double s = amp * sin(6.283185307179586 * f * i / rate + ph) + 0.3 * amp * aibox_rng_normal(&r);
        for (int c = 0; c < ch; c++) v[i * ch + c] = (float)(c ? 0.5 * s : s);
    }
    assert_int_equal(sf_writef_float(sf, v, frames), frames);
    assert_int_equal(sf_close(sf), 0);
    free(v);
}

static void write_bytes(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

#define PER_CLASS 6
#define REC_FRAMES 8000L

/* DIR/<class>/rNN.wav, one recording at 16 kHz (resampled) and one stereo
 * (mixed), plus a corrupt file, a too-short recording and a hidden file. */
static void make_flat(const char *dir)
{
    char p[1024];
    for (int c = 0; c < 3; c++) {
        snprintf(p, sizeof p, "%s/%s", dir, CLS[c]);
        mkdir_p(p);
        for (int i = 0; i < PER_CLASS; i++) {
            snprintf(p, sizeof p, "%s/%s/r%02d.wav", dir, CLS[c], i);
            const int rate = i == 1 ? 2 * SR : SR;
            write_rec(p, c, i == 1 ? 2 * REC_FRAMES : REC_FRAMES, i == 2 ? 2 : 1, rate, 100u * c + i);
        }
    }
    snprintf(p, sizeof p, "%s/low/corrupt.wav", dir);
    write_bytes(p, "RIFF\x10\0\0\0WAVEjunkjunkjunk this is not a sound file at all");
    snprintf(p, sizeof p, "%s/mid/short.wav", dir);
    write_rec(p, 2, 300, 1, SR, 999);
    snprintf(p, sizeof p, "%s/mid/.hidden.wav", dir);
    write_bytes(p, "hidden");
    snprintf(p, sizeof p, "%s/high/notes.txt", dir);
    write_bytes(p, "recorded on the test bench\n");
    /* a WAV cut short: its header promises more than it holds */
    snprintf(p, sizeof p, "%s/high/truncated.wav", dir);
    write_rec(p, 0, REC_FRAMES, 1, SR, 555);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(truncate(p, st.st_size / 2), 0);
}

static void data_opts(aibox_sound_data_opts *o, aibox_sound_input input)
{
    aibox_sound_data_opts_default(o, SR, input);
    o->sound.window = 1024, o->sound.hop = 512;
    o->sound.spec.n_fft = 256, o->sound.spec.hop = 128, o->sound.spec.n_mels = 32;
    o->val_split = 0.34, o->seed = 7, o->threads = 2;
}

static aibox_sound_dataset *open_ds(const char *dir, const aibox_sound_data_opts *o)
{
    aibox_sound_dataset *ds = NULL;
    aibox_error e = {0};
    aibox_status s = aibox_sound_dataset_open(&ds, dir, o, &e);
    if (s) print_message("open %s: %s\n", dir, e.msg);
    assert_int_equal(s, AIBOX_OK);
    return ds;
}

/* Every recording in exactly one split, its windows contiguous with its
 * label, each window the front end's output for that stretch of the file. */
static void check_dataset(const aibox_sound_dataset *ds, const aibox_sound_data_opts *o)
{
    const aibox_sound_opts *so = aibox_sound_dataset_opts(ds);
    aibox_sound_frontend *fe = make_fe(so);
    const size_t size = aibox_sound_frontend_size(fe);
    float *out = aibox_test_floats(size);
    for (int sp = 0; sp < AIBOX_SPLIT_COUNT; sp++) {
        long next = 0;
        for (int i = 0; i < aibox_sound_dataset_recordings(ds, sp); i++) {
            const char *path = aibox_sound_dataset_recording_path(ds, sp, i);
            const int label = aibox_sound_dataset_recording_label(ds, sp, i);
            assert_true(strstr(path, aibox_sound_dataset_class_name(ds, label)) != NULL);
            for (int sp2 = 0; sp2 < AIBOX_SPLIT_COUNT; sp2++)
                for (int k = 0; k < aibox_sound_dataset_recordings(ds, sp2); k++)
                    if (sp2 != sp || k != i) assert_string_not_equal(path, aibox_sound_dataset_recording_path(ds, sp2, k));
            long first, count;
            aibox_sound_dataset_recording_windows(ds, sp, i, &first, &count);
            assert_int_equal(first, next);
            next += count;
            aibox_signal sig = {0}, rs = {0};
            aibox_error e = {0};
            aibox_signal_opts lo = {.channel = o->channel};
            assert_int_equal(aibox_signal_load(&sig, path, &lo, &e), AIBOX_OK);
            if (sig.rate != so->spec.rate) {
                assert_int_equal(aibox_signal_resample(&sig, so->spec.rate, &rs, &e), AIBOX_OK);
                aibox_signal_free(&sig);
                sig = rs;
            }
            assert_int_equal(count, aibox_sound_window_count(so, sig.frames));
            for (long j = 0; j < count; j++) {
                int lab;
                const float *w = aibox_sound_dataset_window(ds, sp, first + j, &lab);
                assert_non_null(w);
                assert_int_equal(lab, label);
                assert_int_equal(aibox_sound_frontend_run(fe, sig.data + j * so->hop, out, NULL, &e), AIBOX_OK);
                assert_memory_equal(w, out, sizeof(float) * size);
            }
            aibox_signal_free(&sig);
        }
        assert_int_equal(next, aibox_sound_dataset_windows(ds, sp));
    }
    free(out);
    aibox_sound_frontend_free(&fe);
}

static void test_dataset_flat(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/flat", g_dir);
    make_flat(dir);
    aibox_sound_data_opts o;
    data_opts(&o, AIBOX_SOUND_LOGMEL);
    aibox_sound_dataset *ds = open_ds(dir, &o);
    assert_int_equal(aibox_sound_dataset_class_count(ds), 3);
    for (int c = 0; c < 3; c++) assert_string_equal(aibox_sound_dataset_class_name(ds, c), CLS[c]);
    assert_null(aibox_sound_dataset_class_name(ds, 3));
    assert_string_equal(aibox_sound_dataset_class_names(ds)[1], "low");
    /* 18 usable recordings: per class 2 in validation (round(0.34 * 6)) */
    const int ntr = aibox_sound_dataset_recordings(ds, AIBOX_SPLIT_TRAIN), nva = aibox_sound_dataset_recordings(ds, AIBOX_SPLIT_VAL);
    assert_int_equal(ntr + nva, 18);
    assert_int_equal(nva, 6);
    assert_int_equal(aibox_sound_dataset_recordings(ds, AIBOX_SPLIT_TEST), 0);
    int per[3] = {0};
    for (int i = 0; i < nva; i++) per[aibox_sound_dataset_recording_label(ds, AIBOX_SPLIT_VAL, i)]++;
    assert_true(per[0] == 2 && per[1] == 2 && per[2] == 2);
    assert_int_equal(aibox_sound_dataset_windows(ds, AIBOX_SPLIT_TRAIN) + aibox_sound_dataset_windows(ds, AIBOX_SPLIT_VAL),
                     18 * 14);
    /* skipped: the corrupt file and the short one, with reasons; the hidden one is not listed */
    assert_int_equal(aibox_sound_dataset_skipped_count(ds), 4);
    for (int i = 0; i < 4; i++) {
        const char *p, *why;
        assert_int_equal(aibox_sound_dataset_skipped(ds, i, &p, &why), AIBOX_OK);
        print_message("skipped %s: %s\n", p, why);
        if (strstr(p, "short.wav")) assert_non_null(strstr(why, "too short"));
        else if (strstr(p, "truncated.wav")) assert_non_null(strstr(why, "truncated"));
        else if (strstr(p, "notes.txt") || strstr(p, "corrupt.wav")) assert_non_null(strstr(why, "not a sound file"));
        else fail_msg("unexpected skip %s", p);
    }
    assert_int_equal(aibox_sound_dataset_skipped(ds, 4, NULL, NULL), AIBOX_E_NOTFOUND);
    /* the training windows are standardised: mean 0, standard deviation 1 */
    const aibox_sound_opts *so = aibox_sound_dataset_opts(ds);
    print_message("in_mean %g in_std %g\n", (double)so->in_mean, (double)so->in_std);
    assert_true(so->in_std > 0.0f && so->in_mean < 0.0f); /* dB of small powers */
    double sum = 0, sq = 0;
    const long ntw = aibox_sound_dataset_windows(ds, AIBOX_SPLIT_TRAIN);
    size_t size = 32 * 7, cnt = (size_t)ntw * size;
    for (long j = 0; j < ntw; j++) {
        const float *w = aibox_sound_dataset_window(ds, AIBOX_SPLIT_TRAIN, j, NULL);
        for (size_t k = 0; k < size; k++) sum += w[k], sq += (double)w[k] * w[k];
    }
    assert_true(fabs(sum / cnt) < 1e-4 && fabs(sqrt(sq / cnt) - 1.0) < 1e-4);
    assert_null(aibox_sound_dataset_window(ds, AIBOX_SPLIT_TRAIN, ntw, NULL));
    check_dataset(ds, &o);
    /* the same seed: the same split, the same bits on one thread */
    o.threads = 1;
    aibox_sound_dataset *d1 = open_ds(dir, &o);
    for (int sp = 0; sp < 2; sp++) {
        assert_int_equal(aibox_sound_dataset_recordings(d1, sp), aibox_sound_dataset_recordings(ds, sp));
        for (int i = 0; i < aibox_sound_dataset_recordings(ds, sp); i++)
            assert_string_equal(aibox_sound_dataset_recording_path(d1, sp, i), aibox_sound_dataset_recording_path(ds, sp, i));
        const long n = aibox_sound_dataset_windows(ds, sp);
        assert_int_equal(n, aibox_sound_dataset_windows(d1, sp));
        assert_memory_equal(aibox_sound_dataset_window(ds, sp, 0, NULL), aibox_sound_dataset_window(d1, sp, 0, NULL),
                            sizeof(float) * size * (size_t)n);
    }
    assert_true(aibox_sound_dataset_opts(d1)->in_mean == so->in_mean);
    aibox_sound_dataset_free(&d1);
    /* another seed: usually another split (some seed among a few differs) */
    int differs = 0;
    for (uint64_t seed = 8; seed < 12 && !differs; seed++) {
        o.seed = seed;
        d1 = open_ds(dir, &o);
        for (int i = 0; i < nva; i++)
            differs |= strcmp(aibox_sound_dataset_recording_path(d1, AIBOX_SPLIT_VAL, i),
                              aibox_sound_dataset_recording_path(ds, AIBOX_SPLIT_VAL, i)) != 0;
        aibox_sound_dataset_free(&d1);
    }
    assert_true(differs);
    /* no validation */
    o.val_split = 0;
    d1 = open_ds(dir, &o);
    assert_int_equal(aibox_sound_dataset_recordings(d1, AIBOX_SPLIT_VAL), 0);
    assert_int_equal(aibox_sound_dataset_recordings(d1, AIBOX_SPLIT_TRAIN), 18);
    aibox_sound_dataset_free(&d1);
    /* strict: the corrupt file fails the open */
    o.val_split = 0.34, o.strict = 1;
    aibox_error e = {0};
    aibox_sound_dataset *bad = NULL;
    aibox_status s = aibox_sound_dataset_open(&bad, dir, &o, &e);
    print_message("strict: %s\n", e.msg);
    assert_true(s != AIBOX_OK);
    assert_null(bad);
    assert_non_null(strstr(e.msg, "notes.txt")); /* the first in class/name order: high/ */
    /* refusals */
    o.strict = 0, o.val_split = 0.95;
    assert_int_equal(aibox_sound_dataset_open(&bad, dir, &o, &e), AIBOX_E_INVALID);
    o.val_split = 0.2;
    assert_int_equal(aibox_sound_dataset_open(&bad, "/nonexistent/sounds", &o, &e), AIBOX_E_NOTFOUND);
    o.sound.window = 100; /* shorter than n_fft */
    assert_int_equal(aibox_sound_dataset_open(&bad, dir, &o, &e), AIBOX_E_INVALID);
    aibox_sound_dataset_free(&ds);
    assert_null(ds);
}

static void test_dataset_layout(void **state)
{
    (void)state;
    char dir[512], p[1024];
    snprintf(dir, sizeof dir, "%s/layout", g_dir);
    static const char *const SPLITS[3] = {"train", "val", "test"};
    for (int sp = 0; sp < 3; sp++)
        for (int c = 0; c < 3; c++) {
            if (sp == 2 && c == 1) continue; /* a class missing from test/ is fine */
            snprintf(p, sizeof p, "%s/%s/%s", dir, SPLITS[sp], CLS[c]);
            mkdir_p(p);
            for (int i = 0; i < (sp == 0 ? 3 : 1); i++) {
                snprintf(p, sizeof p, "%s/%s/%s/x%d.wav", dir, SPLITS[sp], CLS[c], i);
                write_rec(p, c, REC_FRAMES, 1, SR, 1000u + 100u * sp + 10u * c + i);
            }
        }
    aibox_sound_data_opts o;
    data_opts(&o, AIBOX_SOUND_FEATURES);
    aibox_sound_dataset *ds = open_ds(dir, &o);
    assert_int_equal(aibox_sound_dataset_class_count(ds), 3);
    assert_int_equal(aibox_sound_dataset_recordings(ds, AIBOX_SPLIT_TRAIN), 9);
    assert_int_equal(aibox_sound_dataset_recordings(ds, AIBOX_SPLIT_VAL), 3);
    assert_int_equal(aibox_sound_dataset_recordings(ds, AIBOX_SPLIT_TEST), 2);
    for (int sp = 0; sp < 3; sp++)
        for (int i = 0; i < aibox_sound_dataset_recordings(ds, sp); i++) {
            char want[32];
            snprintf(want, sizeof want, "/%s/", SPLITS[sp]);
            assert_non_null(strstr(aibox_sound_dataset_recording_path(ds, sp, i), want));
        }
    assert_int_equal(aibox_sound_dataset_skipped_count(ds), 0);
    check_dataset(ds, &o);
    aibox_sound_dataset_free(&ds);
}

/* ------------------------------------------------------------------ batches */
static long find_window(const aibox_sound_dataset *ds, aibox_split sp, const float *x, size_t size)
{
    for (long j = 0; j < aibox_sound_dataset_windows(ds, sp); j++)
        if (!memcmp(aibox_sound_dataset_window(ds, sp, j, NULL), x, sizeof(float) * size)) return j;
    return -1;
}

/* The order of one epoch as window indices. */
static void epoch_order(aibox_batch_source *src, const aibox_sound_dataset *ds, aibox_split sp, int epoch, size_t size,
                        long *order, long n)
{
    aibox_error e = {0};
    assert_int_equal(src->begin_epoch(src->user, epoch, &e), AIBOX_OK);
    long k = 0;
    char *seen = calloc((size_t)n, 1);
    for (;;) {
        const float *x;
        const int *lab;
        int m;
        assert_int_equal(src->next(src->user, &x, &lab, &m, &e), AIBOX_OK);
        if (m == 0) break;
        assert_true(m <= 5);
        for (int i = 0; i < m; i++) {
            long j = find_window(ds, sp, x + (size_t)i * size, size);
            assert_true(j >= 0);
            int want;
            aibox_sound_dataset_window(ds, sp, j, &want);
            assert_int_equal(lab[i], want);
            assert_false(seen[j]);
            seen[j] = 1;
            order[k++] = j;
        }
    }
    assert_int_equal(k, n);
    free(seen);
}

static void test_batches(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/flat", g_dir);
    aibox_sound_data_opts o;
    data_opts(&o, AIBOX_SOUND_RAW);
    aibox_sound_dataset *ds = open_ds(dir, &o);
    const size_t size = 1024;
    const long n = aibox_sound_dataset_windows(ds, AIBOX_SPLIT_TRAIN);
    aibox_sound_batches *b = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_sound_batches_create(&b, ds, AIBOX_SPLIT_TRAIN, 5, 1, 42, &e), AIBOX_OK);
    aibox_batch_source src = aibox_sound_batches_source(b);
    assert_int_equal(src.samples, n);
    long *o0 = calloc((size_t)n, sizeof(long)), *o1 = calloc((size_t)n, sizeof(long)), *o0b = calloc((size_t)n, sizeof(long));
    epoch_order(&src, ds, AIBOX_SPLIT_TRAIN, 0, size, o0, n);
    epoch_order(&src, ds, AIBOX_SPLIT_TRAIN, 1, size, o1, n);
    epoch_order(&src, ds, AIBOX_SPLIT_TRAIN, 0, size, o0b, n);
    assert_memory_equal(o0, o0b, sizeof(long) * (size_t)n); /* epoch 0 again: the same order */
    assert_memory_not_equal(o0, o1, sizeof(long) * (size_t)n);
    long inorder = 0;
    for (long i = 0; i < n; i++) inorder += o0[i] == i;
    assert_true(inorder < n / 2);
    aibox_sound_batches_free(&b);
    assert_null(b);
    /* validation: in order */
    const long nv = aibox_sound_dataset_windows(ds, AIBOX_SPLIT_VAL);
    assert_int_equal(aibox_sound_batches_create(&b, ds, AIBOX_SPLIT_VAL, 5, 0, 42, &e), AIBOX_OK);
    src = aibox_sound_batches_source(b);
    long *ov = calloc((size_t)nv, sizeof(long));
    epoch_order(&src, ds, AIBOX_SPLIT_VAL, 3, size, ov, nv);
    for (long i = 0; i < nv; i++) assert_int_equal(ov[i], i);
    /* describe: the settings and the class names go into a model */
    aibox_model *m = model_for(aibox_sound_dataset_opts(ds));
    assert_int_equal(src.describe(src.user, m, &e), AIBOX_OK);
    aibox_sound_opts r;
    assert_int_equal(aibox_sound_opts_from_model(&r, m, &e), AIBOX_OK);
    assert_true(r.in_std == aibox_sound_dataset_opts(ds)->in_std && r.input == AIBOX_SOUND_RAW && r.window == 1024);
    int k;
    const char *const *names;
    assert_int_equal(aibox_model_get_meta_strs(m, AIBOX_META_CLASS_NAMES, &k, &names), AIBOX_OK);
    assert_int_equal(k, 3);
    assert_string_equal(names[2], "mid");
    aibox_model_free(&m);
    aibox_sound_batches_free(&b);
    assert_int_equal(aibox_sound_batches_create(&b, ds, AIBOX_SPLIT_VAL, 0, 0, 0, &e), AIBOX_E_INVALID);
    assert_null(b);
    free(o0), free(o1), free(o0b), free(ov);
    aibox_sound_dataset_free(&ds);
}

/* ------------------------------------------------------------------ presets and training */
static void test_presets(void **state)
{
    (void)state;
    aibox_error e = {0};
    aibox_model *m = NULL;
    aibox_sound_opts o;
    aibox_sound_opts_default(&o, 16000.0, AIBOX_SOUND_LOGMEL);
    o.window = 7936; /* 30 frames */
    struct { const char *name; aibox_sound_input in; long window; } ok[] = {
        {"cnn2d", AIBOX_SOUND_LOGMEL, 7936}, {"cnn2d", AIBOX_SOUND_LOGMEL, 8192}, {"cnn2d", AIBOX_SOUND_LOGMEL, 2048},
        {"cnn1d", AIBOX_SOUND_RAW, 2048},    {"cnn1d", AIBOX_SOUND_RAW, 4096},    {"cnn1d", AIBOX_SOUND_RAW, 8192},
        {"cnn1d", AIBOX_SOUND_RAW, 1000}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        aibox_sound_opts_default(&o, 16000.0, ok[i].in);
        o.window = ok[i].window;
        aibox_status s = aibox_sound_preset(&m, ok[i].name, &o, 4, 0.2f, 1, &e);
        if (s) print_message("%s: %s\n", ok[i].name, e.msg);
        assert_int_equal(s, AIBOX_OK);
        int c, h, w;
        aibox_model_input_shape(m, &c, &h, &w);
        aibox_model_node_shape(m, aibox_model_output(m), &c, &h, &w);
        assert_true(c == 4 && h == 1 && w == 1);
        print_message("%s window %ld: %zu parameters\n", ok[i].name, ok[i].window, aibox_model_param_count(m));
        assert_true(aibox_model_param_count(m) < 100000);
        assert_true(aibox_model_is_sound(m));
        aibox_model_free(&m);
    }
    aibox_sound_opts_default(&o, 16000.0, AIBOX_SOUND_LOGMEL);
    assert_int_equal(aibox_sound_preset(&m, "cnn1d", &o, 3, 0, 1, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_sound_preset(&m, "resnet", &o, 3, 0, 1, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_sound_preset(&m, "cnn2d", &o, 1, 0, 1, &e), AIBOX_E_INVALID);
    o.window = 600; /* 1 frame */
    assert_int_equal(aibox_sound_preset(&m, "cnn2d", &o, 3, 0, 1, &e), AIBOX_E_SHAPE);
    print_message("too small: %s\n", e.msg);
    aibox_sound_opts_default(&o, 16000.0, AIBOX_SOUND_RAW);
    o.window = 128;
    assert_int_equal(aibox_sound_preset(&m, "cnn1d", &o, 3, 0, 1, &e), AIBOX_E_SHAPE);
    assert_null(m);
}

static void train_case(const char *preset, aibox_sound_input input, float min_acc)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/flat", g_dir);
    aibox_sound_data_opts o;
    data_opts(&o, input);
    aibox_sound_dataset *ds = open_ds(dir, &o);
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_sound_preset(&m, preset, aibox_sound_dataset_opts(ds), 3, 0.1f, 3, &e), AIBOX_OK);
    aibox_sound_batches *tb = NULL, *vb = NULL;
    assert_int_equal(aibox_sound_batches_create(&tb, ds, AIBOX_SPLIT_TRAIN, 16, 1, 9, &e), AIBOX_OK);
    assert_int_equal(aibox_sound_batches_create(&vb, ds, AIBOX_SPLIT_VAL, 16, 0, 0, &e), AIBOX_OK);
    aibox_batch_source ts = aibox_sound_batches_source(tb), vs = aibox_sound_batches_source(vb);
    aibox_train_opts to = {.epochs = 6, .optim = {.kind = AIBOX_ADAM, .lr = 3e-3f}, .seed = 4};
    aibox_train_result res;
    aibox_status s = aibox_train(m, &ts, 16, &vs, &to, 2, &res, &e);
    if (s) print_message("train: %s\n", e.msg);
    assert_int_equal(s, AIBOX_OK);
    print_message("%s on %ld training / %ld validation windows: best val acc %.3f (epoch %d), %.1f s\n", preset,
                  aibox_sound_dataset_windows(ds, AIBOX_SPLIT_TRAIN), aibox_sound_dataset_windows(ds, AIBOX_SPLIT_VAL),
                  (double)res.best_val_acc, res.best_epoch, res.seconds);
    assert_true(res.best_val_acc >= min_acc);
    /* the model describes itself */
    aibox_sound_opts r;
    assert_int_equal(aibox_sound_opts_from_model(&r, m, &e), AIBOX_OK);
    assert_true(r.in_mean == aibox_sound_dataset_opts(ds)->in_mean);
    assert_int_equal(aibox_model_meta_kind(m, AIBOX_META_CLASS_NAMES), AIBOX_META_KIND_STRS);
    aibox_sound_batches_free(&tb), aibox_sound_batches_free(&vb);
    aibox_model_free(&m);
    aibox_sound_dataset_free(&ds);
}

static void test_train(void **state)
{
    (void)state;
    train_case("cnn2d", AIBOX_SOUND_LOGMEL, 0.9f);
    train_case("cnn1d", AIBOX_SOUND_RAW, 0.9f);
}

/* ------------------------------------------------------------------ CWRU */
static void test_cwru(void **state)
{
    (void)state;
    const char *data = getenv("AIBOX_DATA");
    char root[1024];
    snprintf(root, sizeof root, "%s/sensors/vibration-cwru/12k", data && *data ? data : "../shared/data");
    static const char *const FILES[3][2] = {
        {"ball", "ball_0.007in_0hp_X118_DE_12k.wav"},
        {"inner_race", "inner_race_0.007in_0hp_X105_DE_12k.wav"},
        {"outer_race", "outer_race_0.007in_0hp_X130_DE_12k.wav"}};
    char src[1400], dst[1400], dir[600];
    for (int c = 0; c < 3; c++) {
        snprintf(src, sizeof src, "%s/%s/%s", root, FILES[c][0], FILES[c][1]);
        if (access(src, R_OK) != 0) {
            print_message("skipping: %s not found (set AIBOX_DATA to the shared data folder)\n", src);
            skip();
        }
    }
    snprintf(dir, sizeof dir, "%s/cwru", g_dir);
    for (int c = 0; c < 3; c++) {
        char abs[PATH_MAX];
        snprintf(src, sizeof src, "%s/%s/%s", root, FILES[c][0], FILES[c][1]);
        assert_non_null(realpath(src, abs));
        snprintf(dst, sizeof dst, "%s/%s", dir, FILES[c][0]);
        mkdir_p(dst);
        snprintf(dst, sizeof dst, "%s/%s/%s", dir, FILES[c][0], FILES[c][1]);
        assert_int_equal(symlink(abs, dst), 0);
    }
    aibox_sound_data_opts o;
    aibox_sound_data_opts_default(&o, 12000.0, AIBOX_SOUND_RAW);
    o.sound.window = 2048, o.sound.hop = 1024, o.val_split = 0;
    aibox_sound_dataset *ds = open_ds(dir, &o);
    assert_int_equal(aibox_sound_dataset_recordings(ds, AIBOX_SPLIT_TRAIN), 3);
    for (int i = 0; i < 3; i++) {
        aibox_signal sig = {0};
        aibox_error e = {0};
        const char *p = aibox_sound_dataset_recording_path(ds, AIBOX_SPLIT_TRAIN, i);
        assert_int_equal(aibox_signal_load(&sig, p, &(aibox_signal_opts){.channel = AIBOX_CHANNEL_MIX}, &e), AIBOX_OK);
        long first, count;
        aibox_sound_dataset_recording_windows(ds, AIBOX_SPLIT_TRAIN, i, &first, &count);
        print_message("%s: %ld samples at %g Hz, %ld windows\n", p, sig.frames, sig.rate, count);
        assert_true(sig.rate == 12000.0);
        assert_int_equal(count, aibox_sound_window_count(aibox_sound_dataset_opts(ds), sig.frames));
        assert_true(count > 50);
        aibox_signal_free(&sig);
    }
    aibox_sound_dataset_free(&ds);
}

static int setup(void **state)
{
    (void)state;
    return aibox_test_mkdtemp(g_dir, sizeof g_dir, "sound");
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(g_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_counts), cmocka_unit_test(test_frontend_logmel),
        cmocka_unit_test(test_frontend_features),   cmocka_unit_test(test_frontend_raw),
        cmocka_unit_test(test_model_roundtrip),     cmocka_unit_test(test_dataset_flat),
        cmocka_unit_test(test_dataset_layout),      cmocka_unit_test(test_batches),
        cmocka_unit_test(test_presets),             cmocka_unit_test(test_train),
        cmocka_unit_test(test_cwru),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
