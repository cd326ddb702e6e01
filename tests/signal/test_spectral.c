/* Signal features (lib/signal/features.c). Exact checks: a sine's STFT
 * peak bin and its Hann-window amplitude, Parseval's energy, frame counts,
 * RMS / peak / crest / Fisher kurtosis of a sine, a square wave and constant
 * frames; refusals; the settings' round trip through a model's metadata.
 * Parity: STFT, mel filterbank, log-mel, MFCC and time statistics against
 * SciPy/NumPy in float64 (tests/signal/spectral_ref.py) on a CWRU bearing
 * recording ($AIBOX_DATA/sensors/vibration-cwru, 12 kHz) and on Gaussian
 * noise: max |C - ref| / max |ref| per matrix (per statistic for the time
 * statistics) within 1e-4, printed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aibox.h"
#include "common/check.h"

static char g_dir[256];

static aibox_spectral *make(const aibox_spectral_opts *o)
{
    aibox_spectral *sp = NULL;
    aibox_error e = {0};
    aibox_status s = aibox_spectral_create(&sp, o, &e);
    if (s) print_message("create: %s\n", e.msg);
    assert_int_equal(s, AIBOX_OK);
    return sp;
}

/* A sine on an exact bin: the periodic Hann window sums to n_fft / 2, so the
 * peak bin holds A n_fft / 4 and each neighbour A n_fft / 8 (the window's
 * cosine splits half its weight there); nothing elsewhere. */
static void test_sine_stft(void **state)
{
    (void)state;
    aibox_spectral_opts o;
    aibox_spectral_opts_default(&o, 1000.0);
    o.n_fft = 256, o.hop = 64, o.pad = AIBOX_PAD_NONE, o.power = 1;
    aibox_spectral *sp = make(&o);
    const size_t n = 1024;
    const int k0 = 32, nb = aibox_spectral_bins(sp);
    const double amp = 1.5;
    float *x = aibox_test_floats(n);
    for (size_t i = 0; i < n; i++) x[i] = (float)(amp * sin(2.0 * M_PI * k0 * (double)i / o.n_fft + 0.3));
    const size_t frames = aibox_spectral_frames(sp, n);
    assert_int_equal(frames, 1 + (n - 256) / 64);
    assert_int_equal(nb, 129);
    float *s = aibox_test_floats(frames * nb);
    aibox_error e = {0};
    assert_int_equal(aibox_spectral_stft(sp, x, n, s, &e), AIBOX_OK);
    const double peak = amp * o.n_fft / 4, side = amp * o.n_fft / 8;
    for (size_t t = 0; t < frames; t++) {
        const float *r = s + t * nb;
        int best = 0;
        for (int k = 1; k < nb; k++)
            if (r[k] > r[best]) best = k;
        assert_int_equal(best, k0);
        assert_true(fabs(r[k0] - peak) < 1e-5 * peak);
        assert_true(fabs(r[k0 - 1] - side) < 1e-5 * peak && fabs(r[k0 + 1] - side) < 1e-5 * peak);
        for (int k = 0; k < nb; k++)
            if (abs(k - k0) > 1) assert_true(r[k] < 1e-5 * peak);
    }
    free(s);
    free(x);
    aibox_spectral_free(&sp);
    assert_null(sp);
}

/* Parseval with a rectangular window: sum |X_k|^2 over the whole spectrum
 * (the one-sided bins other than DC and Nyquist count twice) is n_fft times
 * the frame's energy. */
static void test_parseval(void **state)
{
    (void)state;
    aibox_spectral_opts o;
    aibox_spectral_opts_default(&o, 8000.0);
    o.n_fft = 512, o.hop = 300, o.window = AIBOX_WINDOW_RECT, o.pad = AIBOX_PAD_NONE, o.power = 2;
    aibox_spectral *sp = make(&o);
    const size_t n = 2000;
    aibox_rng rng;
    aibox_rng_seed(&rng, 7);
    float *x = aibox_test_floats(n);
    aibox_test_fill_uniform(&rng, x, n, -1.0f, 1.0f);
    const size_t frames = aibox_spectral_frames(sp, n);
    const int nb = aibox_spectral_bins(sp);
    float *s = aibox_test_floats(frames * nb);
    aibox_error e = {0};
    assert_int_equal(aibox_spectral_stft(sp, x, n, s, &e), AIBOX_OK);
    for (size_t t = 0; t < frames; t++) {
        double energy = 0.0, spec = 0.0;
        for (int i = 0; i < o.n_fft; i++) energy += (double)x[t * o.hop + i] * x[t * o.hop + i];
        for (int k = 0; k < nb; k++) spec += (k == 0 || k == nb - 1 ? 1.0 : 2.0) * s[t * nb + k];
        assert_true(fabs(spec - o.n_fft * energy) < 1e-5 * o.n_fft * energy);
    }
    free(s);
    free(x);
    aibox_spectral_free(&sp);
}

static void stats_of(const aibox_spectral_opts *o, const float *x, size_t n, float *out)
{
    aibox_spectral *sp = make(o);
    aibox_error e = {0};
    assert_int_equal(aibox_spectral_stats(sp, x, n, out, &e), AIBOX_OK);
    aibox_spectral_free(&sp);
}

/* A sine over whole periods: mean 0, RMS A / sqrt 2, peak A, crest sqrt 2,
 * Fisher kurtosis -1.5 (m4 / m2^2 = (3/8) / (1/4)). A square wave: crest 1,
 * kurtosis -2. A constant frame: kurtosis 0 by definition, crest 1; zeros:
 * crest 0. */
static void test_time_stats(void **state)
{
    (void)state;
    aibox_spectral_opts o;
    aibox_spectral_opts_default(&o, 1000.0);
    o.n_fft = 400, o.hop = 400, o.pad = AIBOX_PAD_NONE;
    const size_t n = 800;
    float *x = aibox_test_floats(n), r[2 * AIBOX_STAT_COUNT];
    for (size_t i = 0; i < n; i++) x[i] = (float)(2.0 * sin(2.0 * M_PI * (double)i / 40.0));
    stats_of(&o, x, n, r);
    for (int t = 0; t < 2; t++) {
        const float *v = r + t * AIBOX_STAT_COUNT;
        assert_true(fabs(v[AIBOX_STAT_MEAN]) < 1e-6);
        assert_true(fabs(v[AIBOX_STAT_RMS] - sqrt(2.0)) < 1e-6);
        assert_true(fabs(v[AIBOX_STAT_PEAK] - 2.0) < 1e-6);
        assert_true(fabs(v[AIBOX_STAT_CREST] - sqrt(2.0)) < 1e-6);
        assert_true(fabs(v[AIBOX_STAT_KURTOSIS] + 1.5) < 1e-5);
    }
    for (size_t i = 0; i < 400; i++) x[i] = (i / 10) % 2 ? 0.5f : -0.5f;
    for (size_t i = 400; i < n; i++) x[i] = 3.0f;
    stats_of(&o, x, n, r);
    assert_true(fabs(r[AIBOX_STAT_MEAN]) < 1e-7 && fabs(r[AIBOX_STAT_RMS] - 0.5) < 1e-7);
    assert_true(fabs(r[AIBOX_STAT_CREST] - 1.0) < 1e-6 && fabs(r[AIBOX_STAT_KURTOSIS] + 2.0) < 1e-6);
    const float *c = r + AIBOX_STAT_COUNT;
    assert_true(c[AIBOX_STAT_MEAN] == 3.0f && c[AIBOX_STAT_PEAK] == 3.0f && fabs(c[AIBOX_STAT_CREST] - 1.0) < 1e-6);
    assert_true(c[AIBOX_STAT_KURTOSIS] == 0.0f);
    memset(x, 0, n * sizeof *x);
    stats_of(&o, x, n, r);
    assert_true(r[AIBOX_STAT_RMS] == 0.0f && r[AIBOX_STAT_CREST] == 0.0f && r[AIBOX_STAT_KURTOSIS] == 0.0f);
    free(x);
}

static void test_frames_and_refusals(void **state)
{
    (void)state;
    aibox_spectral_opts o;
    aibox_spectral_opts_default(&o, 16000.0);
    aibox_spectral *sp = make(&o); /* n_fft 2048, hop 512, reflect centre padding */
    assert_int_equal(aibox_spectral_frames(sp, 16000), 1 + 16000 / 512);
    assert_int_equal(aibox_spectral_frames(sp, 1), 1); /* padded to 2049 samples */
    assert_int_equal(aibox_spectral_frames(sp, 0), 0);
    float x[4] = {1, 2, NAN, 4}, out[AIBOX_STAT_COUNT * 4];
    aibox_error e = {0};
    assert_int_equal(aibox_spectral_stats(sp, x, 4, out, &e), AIBOX_E_NONFINITE);
    assert_non_null(strstr(e.msg, "sample 2"));
    assert_int_equal(aibox_spectral_stft(sp, x, 0, out, &e), AIBOX_E_SHAPE);
    aibox_spectral_free(&sp);
    o.pad = AIBOX_PAD_NONE;
    sp = make(&o);
    assert_int_equal(aibox_spectral_frames(sp, 2047), 0);
    assert_int_equal(aibox_spectral_frames(sp, 2048 + 511), 1);
    assert_int_equal(aibox_spectral_frames(sp, 2048 + 512), 2);
    assert_int_equal(aibox_spectral_mfcc(sp, x, 4, out, &e), AIBOX_E_SHAPE);
    aibox_spectral_free(&sp);

    /* numpy's reflect, repeated when the padding exceeds the signal:
     * np.pad([1 2 3 4 5], 7, 'reflect') is 2 3 4 5 4 3 2 | 1 2 3 4 5 | 4 3 2 1 2 3 4 */
    aibox_spectral_opts_default(&o, 100.0);
    o.n_fft = 14, o.hop = 1, o.n_mels = 2, o.n_mfcc = 1;
    sp = make(&o);
    const float y[5] = {1, 2, 3, 4, 5};
    float st[6 * AIBOX_STAT_COUNT];
    assert_int_equal(aibox_spectral_frames(sp, 5), 6);
    assert_int_equal(aibox_spectral_stats(sp, y, 5, st, &e), AIBOX_OK);
    assert_true(fabs(st[AIBOX_STAT_MEAN] - 45.0 / 14) < 1e-6);
    assert_true(fabs(st[5 * AIBOX_STAT_COUNT + AIBOX_STAT_MEAN] - 39.0 / 14) < 1e-6);
    aibox_spectral_free(&sp);

    aibox_spectral_opts b;
    aibox_spectral_opts_default(&b, 16000.0), b.n_fft = 511;
    assert_int_equal(aibox_spectral_create(&sp, &b, &e), AIBOX_E_INVALID);
    assert_null(sp);
    assert_non_null(strstr(e.msg, "n_fft"));
    aibox_spectral_opts_default(&b, 16000.0), b.n_mfcc = 200;
    assert_int_equal(aibox_spectral_create(&sp, &b, &e), AIBOX_E_INVALID);
    aibox_spectral_opts_default(&b, 16000.0), b.fmax = 9000.0;
    assert_int_equal(aibox_spectral_create(&sp, &b, &e), AIBOX_E_INVALID);
    aibox_spectral_opts_default(&b, 16000.0), b.win_length = 4096;
    assert_int_equal(aibox_spectral_create(&sp, &b, &e), AIBOX_E_INVALID);
    aibox_spectral_opts_default(&b, 16000.0), b.power = 3;
    assert_int_equal(aibox_spectral_create(&sp, &b, &e), AIBOX_E_INVALID);
    aibox_spectral_opts_default(&b, 0.0);
    assert_int_equal(aibox_spectral_create(&sp, &b, &e), AIBOX_E_INVALID);
    aibox_spectral_opts_default(&b, 16000.0), b.log = AIBOX_LOG_LN, b.eps = 0.0;
    assert_int_equal(aibox_spectral_create(&sp, &b, &e), AIBOX_E_INVALID);
}

static void test_model_roundtrip(void **state)
{
    (void)state;
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 1, 40, 13, &e), AIBOX_OK);
    aibox_spectral_opts o, back;
    assert_int_equal(aibox_spectral_opts_from_model(&back, m, &e), AIBOX_E_NOTFOUND);
    aibox_spectral_opts_default(&o, 12000.0);
    o.n_fft = 512, o.hop = 128, o.win_length = 400, o.window = AIBOX_WINDOW_RECT, o.pad = AIBOX_PAD_ZEROS;
    o.power = 1, o.n_mels = 40, o.fmin = 20.0, o.fmax = 5000.0, o.mel_scale = AIBOX_MEL_HTK;
    o.mel_norm = AIBOX_MELNORM_NONE, o.log = AIBOX_LOG_LN, o.eps = 1e-5, o.top_db = 60.0, o.n_mfcc = 13;
    assert_int_equal(aibox_spectral_opts_to_model(&o, m, &e), AIBOX_OK);
    assert_int_equal(aibox_spectral_opts_from_model(&back, m, &e), AIBOX_OK);
    assert_memory_equal(&o, &back, sizeof o); /* no padding in the struct: plain fields */
    assert_int_equal(aibox_model_set_meta_str(m, "aibox.signal.mel_scale", "bark", &e), AIBOX_OK);
    assert_int_equal(aibox_spectral_opts_from_model(&back, m, &e), AIBOX_E_FORMAT);
    assert_non_null(strstr(e.msg, "bark"));
    assert_int_equal(aibox_model_set_meta_str(m, "aibox.signal.mel_scale", "htk", &e), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_int(m, "aibox.signal.n_fft", 513, &e), AIBOX_OK);
    assert_int_equal(aibox_spectral_opts_from_model(&back, m, &e), AIBOX_E_FORMAT);
    o.hop = 0;
    assert_int_equal(aibox_spectral_opts_to_model(&o, m, &e), AIBOX_E_INVALID);
    aibox_model_free(&m);
}

/* ------------------------------------------------------------------ parity with SciPy */
static double *read_f64(const char *path, size_t count)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    double *v = aibox_test_malloc(count * sizeof *v);
    assert_int_equal(fread(v, sizeof *v, count, f), count);
    assert_int_equal(fgetc(f), EOF); /* exactly the size the C side expects */
    fclose(f);
    return v;
}

/* max |c - r| over columns [c0, c0 + nc) of rows x width, relative to the
 * largest |r| there */
static double rel_err(const float *c, const double *r, size_t rows, int width, int c0, int nc)
{
    double err = 0.0, top = 0.0;
    for (size_t t = 0; t < rows; t++)
        for (int k = c0; k < c0 + nc; k++) {
            const double d = fabs((double)c[t * width + k] - r[t * width + k]), a = fabs(r[t * width + k]);
            if (d > err) err = d;
            if (a > top) top = a;
        }
    return top > 0.0 ? err / top : err;
}

static int run_ref(const char *name, const char *source, const aibox_spectral_opts *o)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 tests/signal/spectral_ref.py %s %s '%s' %.17g %d %d %d %s %s %d %d %.17g %.17g %s %s %s "
             "%.17g %.17g %.17g %d",
             g_dir, name, source, o->rate, o->n_fft, o->hop, o->win_length ? o->win_length : o->n_fft,
             aibox_window_name(o->window), aibox_pad_name(o->pad), o->power, o->n_mels, o->fmin,
             o->fmax == 0.0 ? o->rate / 2 : o->fmax, aibox_mel_scale_name(o->mel_scale), aibox_mel_norm_name(o->mel_norm),
             aibox_log_kind_name(o->log), o->amin, o->top_db, o->eps, o->n_mfcc);
    const int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static void parity_case(const char *name, const char *source, const aibox_spectral_opts *o, size_t n)
{
    assert_int_equal(run_ref(name, source, o), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/%s.x.f32", g_dir, name);
    float *x = aibox_test_read_f32(path, n);
    aibox_spectral *sp = make(o);
    const size_t frames = aibox_spectral_frames(sp, n);
    const int nb = aibox_spectral_bins(sp), nm = o->n_mels, nc = o->n_mfcc;
    aibox_error e = {0};
    static const char *const what[] = {"stft", "logmel", "mfcc", "stats"};
    const int width[] = {nb, nm, nc, AIBOX_STAT_COUNT};
    double worst = 0.0;
    char line[512];
    int len = snprintf(line, sizeof line, "%s: %zu frames; max |C - SciPy| / max |SciPy|:", name, frames);
    for (int f = 0; f < 4; f++) {
        float *c = aibox_test_floats(frames * width[f]);
        aibox_status s = f == 0   ? aibox_spectral_stft(sp, x, n, c, &e)
                         : f == 1 ? aibox_spectral_logmel(sp, x, n, c, &e)
                         : f == 2 ? aibox_spectral_mfcc(sp, x, n, c, &e)
                                  : aibox_spectral_stats(sp, x, n, c, &e);
        assert_int_equal(s, AIBOX_OK);
        snprintf(path, sizeof path, "%s/%s.%s.f64", g_dir, name, what[f]);
        double *r = read_f64(path, frames * width[f]);
        if (f < 3) {
            const double err = rel_err(c, r, frames, width[f], 0, width[f]);
            len += snprintf(line + len, sizeof line - len, " %s %.2e", what[f], err);
            if (err > worst) worst = err;
        } else {
            static const char *const stat[] = {"mean", "rms", "peak", "crest", "kurtosis"};
            for (int k = 0; k < AIBOX_STAT_COUNT; k++) {
                const double err = rel_err(c, r, frames, AIBOX_STAT_COUNT, k, 1);
                len += snprintf(line + len, sizeof line - len, " %s %.2e", stat[k], err);
                if (err > worst) worst = err;
            }
        }
        free(r);
        free(c);
    }
    snprintf(path, sizeof path, "%s/%s.mel.f64", g_dir, name);
    double *fb = read_f64(path, (size_t)nm * nb), ferr = 0.0, ftop = 0.0;
    const double *mine = aibox_spectral_mel_filters(sp);
    for (size_t i = 0; i < (size_t)nm * nb; i++) {
        if (fabs(mine[i] - fb[i]) > ferr) ferr = fabs(mine[i] - fb[i]);
        if (fabs(fb[i]) > ftop) ftop = fabs(fb[i]);
    }
    free(fb);
    print_message("%s; mel filters %.2e\n", line, ferr / ftop);
    assert_true(ferr <= 1e-12 * ftop); /* both double: only rounding apart */
    assert_true(worst <= 1e-4);
    aibox_spectral_free(&sp);
    free(x);
}

static void skip_unless_python(void)
{
    const char *why = access("tests/signal/spectral_ref.py", R_OK) != 0 ? "run from the source tree"
                      : access("/usr/bin/python3", X_OK) != 0        ? "/usr/bin/python3 is absent"
                      : aibox_test_emulator() ? "emulated run (make check compares with SciPy natively)"
                                              : NULL;
    if (!why && system("/usr/bin/python3 -c 'import scipy.signal, scipy.stats, scipy.fft' 2>/dev/null") != 0)
        why = "/usr/bin/python3 cannot import scipy (Debian python3-scipy)";
    if (why) {
        print_message("SciPy parity skipped: %s\n", why);
        skip();
    }
}

/* The librosa-like defaults on a bearing-fault recording (24000 samples,
 * 2 s), then HTK mels without normalisation, no centre padding, no top_db. */
static void test_parity_cwru(void **state)
{
    (void)state;
    skip_unless_python();
    const char *data = getenv("AIBOX_DATA");
    char wav[1024];
    snprintf(wav, sizeof wav, "%s/sensors/vibration-cwru/12k/inner_race/inner_race_0.007in_0hp_X105_DE_12k.wav",
             data && *data ? data : "../shared/data");
    if (access(wav, R_OK) != 0) {
        print_message("skipping: %s not found (set AIBOX_DATA to the shared data folder)\n", wav);
        skip();
    }
    aibox_spectral_opts o;
    aibox_spectral_opts_default(&o, 12000.0);
    o.n_fft = 512, o.hop = 128, o.n_mels = 40, o.fmin = 20.0, o.n_mfcc = 13;
    parity_case("cwru_slaney", wav, &o, 24000);
    aibox_spectral_opts_default(&o, 12000.0);
    o.n_fft = 1024, o.hop = 256, o.pad = AIBOX_PAD_NONE, o.n_mels = 64, o.fmax = 5000.0;
    o.mel_scale = AIBOX_MEL_HTK, o.mel_norm = AIBOX_MELNORM_NONE, o.top_db = 0.0;
    parity_case("cwru_htk", wav, &o, 24000);
}

/* Noise: magnitude (power 1) with ln(x + eps), a window shorter than the
 * frame, zero centre padding, an n_fft that is not a power of two. */
static void test_parity_noise(void **state)
{
    (void)state;
    skip_unless_python();
    aibox_spectral_opts o;
    aibox_spectral_opts_default(&o, 16000.0);
    o.n_fft = 400, o.hop = 160, o.win_length = 320, o.pad = AIBOX_PAD_ZEROS, o.power = 1, o.n_mels = 32;
    o.log = AIBOX_LOG_LN, o.eps = 1e-6, o.n_mfcc = 20, o.mel_scale = AIBOX_MEL_HTK;
    parity_case("noise_ln", "noise:5:8000", &o, 8000);
    aibox_spectral_opts_default(&o, 8000.0);
    o.n_fft = 256, o.hop = 100, o.window = AIBOX_WINDOW_RECT, o.pad = AIBOX_PAD_REFLECT, o.n_mels = 24;
    o.n_mfcc = 24, o.top_db = 40.0;
    parity_case("noise_db", "noise:9:3000", &o, 3000);
}

static int setup(void **state)
{
    (void)state;
    return aibox_test_mkdtemp(g_dir, sizeof g_dir, "spectral");
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(g_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sine_stft),        cmocka_unit_test(test_parseval),
        cmocka_unit_test(test_time_stats),       cmocka_unit_test(test_frames_and_refusals),
        cmocka_unit_test(test_model_roundtrip),  cmocka_unit_test(test_parity_cwru),
        cmocka_unit_test(test_parity_noise),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
