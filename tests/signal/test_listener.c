/* The good-only Gaussian detector (lib/signal/sounddet.c) and the listener
 * (lib/signal/listener.c). Synthetic recordings: Gaussian noise plus a
 * 440 Hz tone; an added 1500 Hz tone is the anomaly. Checked: anomalous
 * windows score far above the threshold and held-out normal ones below it
 * (rule max: none NG); the scores equal a naive double-precision Mahalanobis
 * distance (mean, covariance with the same regularisation, a linear solve)
 * within 1e-4 relative; a saved and loaded detector scores identically; the
 * fit does not depend on its thread count; the listener gives the same
 * windows whatever the chunks pushed, at the model's rate or resampled from
 * twice it, with window counts, times and the dropped tail as documented; a
 * classifier's probabilities equal a direct forward; refusals. On CWRU 48 kHz
 * ($AIBOX_DATA/sensors/vibration-cwru/48k) the detector fitted on the first
 * 60 % of the normal recording is scored on its last 40 % against every fault
 * recording: window AUROC > 0.95 and the false-alarm rate, printed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aibox.h"
#include "common/check.h"

static char g_dir[256];

#define RATE 8000.0
#define REC_N 48000 /* 6 s */

/* ------------------------------------------------------------ helpers */
/* Noise (sd 0.1) plus a 440 Hz tone of amplitude amp; with anomaly, a 1500 Hz
 * tone of 0.2 too. At rate (the tone frequencies are in Hz whatever it is). */
static void synth(aibox_signal *s, long n, double rate, uint64_t seed, double amp, int anomaly)
{
    aibox_rng r;
    aibox_rng_seed(&r, seed);
    s->data = aibox_test_floats((size_t)n);
    s->frames = n, s->channels = 1, s->rate = rate;
    double ph = aibox_rng_uniform(&r) * 6.283185307179586;
    for (long i = 0; i < n; i++) {
        double t = (double)i / rate;
        double v = 0.1 * aibox_rng_normal(&r) + amp * sin(2 * M_PI * 440.0 * t + ph);
        if (anomaly) v += 0.2 * sin(2 * M_PI * 1500.0 * t);
        s->data[i] = (float)v;
    }
}

static void fit_opts(aibox_sound_fit_opts *o)
{
    aibox_sound_fit_opts_default(o, RATE);
    o->sound.spec.n_fft = 256, o->sound.spec.hop = 128, o->sound.spec.n_mels = 24;
    o->sound.window = 2048, o->sound.hop = 1024;
    o->threads = 2;
}

#define N_REC 4
static void normal_recs(aibox_signal *recs)
{
    for (int i = 0; i < N_REC; i++) synth(&recs[i], REC_N, RATE, 100 + (uint64_t)i, 0.45 + 0.03 * i, 0);
}

static void free_recs(aibox_signal *recs, int n)
{
    for (int i = 0; i < n; i++) aibox_signal_free(&recs[i]);
}

static aibox_model *fit(const aibox_sound_fit_opts *o, aibox_threshold_stats *st)
{
    aibox_signal recs[N_REC];
    normal_recs(recs);
    aibox_model *m = NULL;
    aibox_error e = {0};
    aibox_status s = aibox_sound_detector_fit(&m, recs, N_REC, o, st, &e);
    if (s) print_message("fit: %s\n", e.msg);
    assert_int_equal(s, AIBOX_OK);
    free_recs(recs, N_REC);
    return m;
}

/* What the listener reported. */
#define MAXC 8
typedef struct {
    long index;
    double t_start, t_end, score, norm_score, threshold, confidence;
    int ng, label, anomaly;
    double probs[MAXC];
} res;
typedef struct {
    res *r;
    long n, cap;
    int classes;
} results;

static aibox_status collect(void *user, const aibox_sound_result *r, const double *probs, aibox_error *err)
{
    (void)err;
    results *v = user;
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 64;
        v->r = realloc(v->r, sizeof *v->r * (size_t)v->cap);
        assert_non_null(v->r);
    }
    res *o = &v->r[v->n++];
    memset(o, 0, sizeof *o);
    o->index = r->index, o->t_start = r->t_start, o->t_end = r->t_end, o->score = r->score;
    o->norm_score = r->norm_score, o->threshold = r->threshold, o->confidence = r->confidence;
    o->ng = r->ng, o->label = r->label, o->anomaly = r->anomaly;
    if (probs)
        for (int k = 0; k < v->classes && k < MAXC; k++) o->probs[k] = probs[k];
    else
        assert_true(r->anomaly);
    return AIBOX_OK;
}

static aibox_listener *listener(const aibox_model *m, double rate)
{
    aibox_listener *l = NULL;
    aibox_error e = {0};
    aibox_status s = aibox_listener_create(&l, m, rate, 1, &e);
    if (s) print_message("listener: %s\n", e.msg);
    assert_int_equal(s, AIBOX_OK);
    return l;
}

/* Pushes x in chunks (sizes cycling through chunk[], 0: one call) and finishes. */
static void listen(aibox_listener *l, const float *x, long n, const long *chunk, int n_chunk, results *out,
                   aibox_sound_summary *sum)
{
    aibox_error e = {0};
    long at = 0;
    for (int c = 0; at < n; c++) {
        long k = n_chunk ? chunk[c % n_chunk] : n;
        if (k > n - at) k = n - at;
        aibox_status s = aibox_listener_push(l, x + at, k, collect, out, &e);
        if (s) print_message("push: %s\n", e.msg);
        assert_int_equal(s, AIBOX_OK);
        at += k;
    }
    assert_int_equal(aibox_listener_finish(l, collect, out, sum, &e), AIBOX_OK);
}

static void results_free(results *v)
{
    free(v->r);
    memset(v, 0, sizeof *v);
}

/* ------------------------------------------------------------ detector */
static void test_detector_fit(void **state)
{
    (void)state;
    aibox_sound_fit_opts o;
    fit_opts(&o);
    aibox_threshold_stats st;
    aibox_model *m = fit(&o, &st);
    const long nw = aibox_sound_window_count(&o.sound, REC_N), n_held = lround(0.2 * nw);
    assert_int_equal(st.good, N_REC * n_held);
    const char *task = NULL;
    assert_int_equal(aibox_model_get_meta_str(m, AIBOX_META_TASK, &task), AIBOX_OK);
    assert_string_equal(task, "gaussian");
    assert_true(aibox_model_is_sound(m));
    int c, h, w;
    aibox_model_input_shape(m, &c, &h, &w);
    assert_int_equal(c, 2 * 24 + 4);
    assert_int_equal(h * w, 1);
    assert_int_equal(aibox_model_node_count(m), 2); /* the input and one dense layer */

    aibox_listener *l = listener(m, RATE);
    assert_true(aibox_listener_is_detector(l));
    assert_int_equal(aibox_listener_classes(l), 0);
    /* the fit recordings again: their held-out windows (the last n_held) are all OK under "max" */
    aibox_signal recs[N_REC];
    normal_recs(recs);
    double held_max = 0, thr = 0;
    for (int i = 0; i < N_REC; i++) {
        results v = {0};
        aibox_sound_summary sum;
        listen(l, recs[i].data, recs[i].frames, NULL, 0, &v, &sum);
        assert_int_equal(v.n, nw);
        for (long j = nw - n_held; j < nw; j++) {
            assert_int_equal(v.r[j].ng, 0);
            assert_true(v.r[j].norm_score <= 0.5);
            if (v.r[j].score > held_max) held_max = v.r[j].score;
        }
        thr = v.r[0].threshold;
        results_free(&v);
    }
    assert_true(fabs(held_max - st.good_max) <= 1e-6 * st.good_max);
    /* unseen normal recordings: mostly OK; the anomalous tone: every window far above */
    aibox_signal fresh, bad;
    synth(&fresh, REC_N, RATE, 900, 0.5, 0);
    synth(&bad, REC_N, RATE, 901, 0.5, 1);
    results vf = {0}, vb = {0};
    aibox_sound_summary sf, sb;
    listen(l, fresh.data, fresh.frames, NULL, 0, &vf, &sf);
    listen(l, bad.data, bad.frames, NULL, 0, &vb, &sb);
    double bad_min = INFINITY;
    for (long j = 0; j < vb.n; j++) {
        bad_min = fmin(bad_min, vb.r[j].score);
        assert_int_equal(vb.r[j].ng, 1);
    }
    print_message("synthetic: threshold %.3f (held-out max %.3f over %d windows), unseen normal: mean %.3f, %ld of %ld "
                  "NG; anomalous tone: min %.3f, mean %.3f\n",
                  thr, held_max, st.good, sf.score, sf.ng_windows, sf.windows, bad_min, sb.score);
    assert_true(bad_min > 3 * thr);
    assert_true(sf.ng_windows <= sf.windows / 5);
    assert_int_equal(sf.ng, 0);
    assert_int_equal(sb.ng, 1);
    assert_int_equal(sb.ng_windows, sb.windows);
    assert_true(sb.anomaly && sb.label == -1);
    results_free(&vf), results_free(&vb);
    aibox_signal_free(&fresh), aibox_signal_free(&bad);
    free_recs(recs, N_REC);
    aibox_listener_free(&l);
    assert_null(l);
    aibox_model_free(&m);
}

/* Naive double precision: mean, sd, covariance of the standardised fit
 * windows + reg trace / d, and z^T C^-1 z by Gaussian elimination with
 * partial pivoting (a different route from the library's Cholesky). */
static void test_detector_naive(void **state)
{
    (void)state;
    aibox_sound_fit_opts o;
    fit_opts(&o);
    aibox_model *m = fit(&o, NULL);
    const int d = 52;
    const long nw = aibox_sound_window_count(&o.sound, REC_N), n_fit1 = nw - lround(0.2 * nw);
    aibox_sound_frontend *fe = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_sound_frontend_create(&fe, &o.sound, &e), AIBOX_OK);
    assert_int_equal((int)aibox_sound_frontend_size(fe), d);
    aibox_signal recs[N_REC];
    normal_recs(recs);
    const long n = N_REC * n_fit1;
    double *X = aibox_test_doubles((size_t)n * d);
    float *f = aibox_test_floats((size_t)d);
    for (int i = 0; i < N_REC; i++)
        for (long j = 0; j < n_fit1; j++) {
            assert_int_equal(aibox_sound_frontend_run(fe, recs[i].data + j * o.sound.hop, f, NULL, &e), AIBOX_OK);
            for (int k = 0; k < d; k++) X[(size_t)(i * n_fit1 + j) * d + k] = f[k];
        }
    double mu[52] = {0}, sd[52] = {0}, C[52 * 52] = {0}, tr = 0;
    for (long i = 0; i < n; i++)
        for (int k = 0; k < d; k++) mu[k] += X[(size_t)i * d + k] / n;
    for (long i = 0; i < n; i++)
        for (int k = 0; k < d; k++) sd[k] += pow(X[(size_t)i * d + k] - mu[k], 2) / (n - 1);
    for (int k = 0; k < d; k++) sd[k] = sqrt(sd[k]);
    for (long i = 0; i < n; i++)
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++)
                C[a * d + b] += (X[(size_t)i * d + a] - mu[a]) / sd[a] * (X[(size_t)i * d + b] - mu[b]) / sd[b] / (n - 1);
    for (int a = 0; a < d; a++) tr += C[a * d + a];
    for (int a = 0; a < d; a++) C[a * d + a] += o.reg * tr / d;

    /* a few windows of a normal and an anomalous recording, through the listener */
    aibox_signal x[2];
    synth(&x[0], 12288, RATE, 77, 0.5, 0);
    synth(&x[1], 12288, RATE, 78, 0.5, 1);
    aibox_listener *l = listener(m, RATE);
    double worst = 0;
    for (int r = 0; r < 2; r++) {
        results v = {0};
        listen(l, x[r].data, x[r].frames, NULL, 0, &v, NULL);
        assert_int_equal(v.n, aibox_sound_window_count(&o.sound, 12288));
        for (long j = 0; j < v.n; j++) {
            assert_int_equal(aibox_sound_frontend_run(fe, x[r].data + j * o.sound.hop, f, NULL, &e), AIBOX_OK);
            double A[52 * 53];
            for (int a = 0; a < d; a++) {
                for (int b = 0; b < d; b++) A[a * 29 + b] = C[a * d + b];
                A[a * 29 + d] = (f[a] - mu[a]) / sd[a];
            }
            double z[52];
            for (int a = 0; a < d; a++) z[a] = A[a * 29 + d];
            for (int col = 0; col < d; col++) { /* elimination with partial pivoting */
                int p = col;
                for (int a = col + 1; a < d; a++)
                    if (fabs(A[a * 29 + col]) > fabs(A[p * 29 + col])) p = a;
                for (int b = 0; b <= d; b++) {
                    double t = A[col * 29 + b];
                    A[col * 29 + b] = A[p * 29 + b], A[p * 29 + b] = t;
                }
                for (int a = col + 1; a < d; a++) {
                    double q = A[a * 29 + col] / A[col * 29 + col];
                    for (int b = col; b <= d; b++) A[a * 29 + b] -= q * A[col * 29 + b];
                }
            }
            double y[52], q = 0;
            for (int a = d - 1; a >= 0; a--) {
                double t = A[a * 29 + d];
                for (int b = a + 1; b < d; b++) t -= A[a * 29 + b] * y[b];
                y[a] = t / A[a * 29 + a];
            }
            for (int a = 0; a < d; a++) q += z[a] * y[a];
            double want = sqrt(q), rel = fabs(v.r[j].score - want) / want;
            if (rel > worst) worst = rel;
            if (rel > 1e-4) print_message("window %d/%ld: listener %.9g, naive %.9g\n", r, j, v.r[j].score, want);
        }
        results_free(&v);
    }
    print_message("Mahalanobis through the dense layer vs naive double: worst relative difference %.2e\n", worst);
    assert_true(worst <= 1e-4);
    aibox_signal_free(&x[0]), aibox_signal_free(&x[1]);
    aibox_listener_free(&l);
    free_recs(recs, N_REC);
    free(X), free(f);
    aibox_sound_frontend_free(&fe);
    aibox_model_free(&m);
}

static void test_detector_roundtrip(void **state)
{
    (void)state;
    aibox_sound_fit_opts o;
    fit_opts(&o);
    aibox_model *m = fit(&o, NULL);
    /* the thread count of the fit changes nothing */
    o.threads = 1;
    aibox_model *m1 = fit(&o, NULL);
    size_t np = aibox_model_param_count(m);
    assert_int_equal(np, aibox_model_param_count(m1));
    assert_memory_equal(aibox_model_params(m), aibox_model_params(m1), np * sizeof(float));
    aibox_model_free(&m1);

    char path[512];
    snprintf(path, sizeof path, "%s/det.aibox", g_dir);
    aibox_error e = {0};
    assert_int_equal(aibox_model_save(m, path, &e), AIBOX_OK);
    aibox_model *back = NULL;
    assert_int_equal(aibox_model_load(&back, path, &e), AIBOX_OK);
    aibox_signal x;
    synth(&x, 20000, RATE, 5, 0.5, 1);
    aibox_listener *la = listener(m, RATE), *lb = listener(back, RATE);
    results va = {0}, vb = {0};
    aibox_sound_summary sa, sb;
    listen(la, x.data, x.frames, NULL, 0, &va, &sa);
    listen(lb, x.data, x.frames, NULL, 0, &vb, &sb);
    assert_int_equal(va.n, vb.n);
    assert_true(va.n > 0);
    for (long j = 0; j < va.n; j++) {
        assert_true(va.r[j].score == vb.r[j].score);
        assert_true(va.r[j].threshold == vb.r[j].threshold);
        assert_true(va.r[j].norm_score == vb.r[j].norm_score);
    }
    assert_true(sa.score == sb.score);
    /* the stored settings came back */
    const aibox_sound_opts *so = aibox_listener_opts(lb);
    assert_int_equal(so->window, 2048);
    assert_int_equal(so->hop, 1024);
    assert_int_equal(so->input, AIBOX_SOUND_FEATURES);
    assert_true(so->in_mean == 0.0f && so->in_std == 1.0f);
    /* an image detector's loader does not take it for one of its own */
    aibox_detector *d = NULL;
    assert_int_equal(aibox_detector_load(&d, path, 1, &e), AIBOX_E_NOTFOUND);
    results_free(&va), results_free(&vb);
    aibox_listener_free(&la), aibox_listener_free(&lb);
    aibox_signal_free(&x);
    aibox_model_free(&back);
    aibox_model_free(&m);
}

static void test_fit_refusals(void **state)
{
    (void)state;
    aibox_sound_fit_opts o;
    fit_opts(&o);
    aibox_model *m = NULL;
    aibox_error e = {0};
    aibox_signal s;
    synth(&s, 2047, RATE, 1, 0.5, 0); /* shorter than a window */
    assert_int_equal(aibox_sound_detector_fit(&m, &s, 1, &o, NULL, &e), AIBOX_E_INVALID);
    assert_non_null(strstr(e.msg, "shorter than one window"));
    aibox_signal_free(&s);
    synth(&s, 3072, RATE, 1, 0.5, 0); /* two windows: one to fit, one held out */
    assert_int_equal(aibox_sound_detector_fit(&m, &s, 1, &o, NULL, &e), AIBOX_E_INVALID);
    print_message("two windows: %s\n", e.msg);
    assert_non_null(strstr(e.msg, "at least 2"));
    o.reg = 0; /* a few windows cannot span 52 dimensions */
    aibox_signal_free(&s);
    synth(&s, 20000, RATE, 1, 0.5, 0);
    assert_int_equal(aibox_sound_detector_fit(&m, &s, 1, &o, NULL, &e), AIBOX_E_INVALID);
    assert_non_null(strstr(e.msg, "reg > 0"));
    fit_opts(&o);
    o.sound.input = AIBOX_SOUND_LOGMEL;
    assert_int_equal(aibox_sound_detector_fit(&m, &s, 1, &o, NULL, &e), AIBOX_E_INVALID);
    assert_non_null(strstr(e.msg, "FEATURES"));
    fit_opts(&o);
    o.threshold.rule = AIBOX_THRESHOLD_F1;
    assert_int_equal(aibox_sound_detector_fit(&m, &s, 1, &o, NULL, &e), AIBOX_E_INVALID);
    assert_non_null(strstr(e.msg, "f1"));
    fit_opts(&o);
    o.held_out = 0;
    assert_int_equal(aibox_sound_detector_fit(&m, &s, 1, &o, NULL, &e), AIBOX_E_INVALID);
    fit_opts(&o);
    s.channels = 2, s.frames /= 2;
    assert_int_equal(aibox_sound_detector_fit(&m, &s, 1, &o, NULL, &e), AIBOX_E_INVALID);
    assert_non_null(strstr(e.msg, "channels"));
    s.channels = 1, s.frames *= 2;
    s.data[15000] = NAN;
    assert_int_equal(aibox_sound_detector_fit(&m, &s, 1, &o, NULL, &e), AIBOX_E_NONFINITE);
    print_message("NaN in a fit recording: %s\n", e.msg);
    assert_non_null(strstr(e.msg, "window 13"));
    const char *missing = "/nonexistent/x.wav";
    assert_int_not_equal(aibox_sound_detector_fit_files(&m, &missing, 1, &o, NULL, &e), AIBOX_OK);
    assert_non_null(strstr(e.msg, missing));
    assert_null(m);
    aibox_signal_free(&s);
}

/* ------------------------------------------------------------ listener */
static void same_results(const results *a, const results *b)
{
    assert_int_equal(a->n, b->n);
    for (long j = 0; j < a->n; j++) {
        const res *x = &a->r[j], *y = &b->r[j];
        assert_int_equal(x->index, j);
        assert_int_equal(y->index, j);
        assert_true(x->t_start == y->t_start && x->t_end == y->t_end);
        assert_true(x->score == y->score && x->ng == y->ng && x->label == y->label);
        assert_memory_equal(x->probs, y->probs, sizeof x->probs);
    }
}

static void test_listener_chunks(void **state)
{
    (void)state;
    aibox_sound_fit_opts o;
    fit_opts(&o);
    aibox_model *m = fit(&o, NULL);
    const long n = 30001;
    aibox_signal x;
    synth(&x, n, RATE, 11, 0.5, 1);
    for (int k = 0; k < 2; k++) { /* at the model's rate, then resampled from twice it */
        aibox_signal in = x;
        aibox_signal twice = {0};
        if (k) {
            synth(&twice, 2 * n, 2 * RATE, 11, 0.5, 1);
            in = twice;
        }
        aibox_listener *l = listener(m, in.rate);
        static const long chunks[][5] = {{1, 7, 1000, 3, 4096}, {2048, 2048, 2048, 2048, 2048}, {1, 1, 1, 1, 1}};
        results whole = {0};
        aibox_sound_summary s0, s1;
        listen(l, in.data, in.frames, NULL, 0, &whole, &s0);
        for (int c = 0; c < 3; c++) {
            results part = {0};
            listen(l, in.data, in.frames, chunks[c], 5, &part, &s1);
            same_results(&whole, &part);
            assert_int_equal(s0.windows, s1.windows);
            assert_int_equal(s0.dropped, s1.dropped);
            assert_int_equal(s0.ng_windows, s1.ng_windows);
            assert_true(s0.score == s1.score);
            results_free(&part);
        }
        /* n model samples: windows every 1024 from 0; the tail past the last one is dropped */
        const long nw = aibox_sound_window_count(&o.sound, n);
        if (!k) {
            assert_int_equal(whole.n, nw);
            assert_int_equal(s0.windows, nw);
            assert_int_equal(s0.dropped, n - ((nw - 1) * 1024 + 2048));
        } else { /* resampled: about as many windows as n samples at the model's rate give */
            print_message("2x input rate: %ld windows (%ld at the model's rate), dropped %ld input samples\n",
                          whole.n, nw, s0.dropped);
            assert_true(labs(whole.n - nw) <= 1);
            long end = lround(whole.r[whole.n - 1].t_end * in.rate);
            assert_int_equal(s0.dropped, in.frames - end);
        }
        for (long j = 0; j < whole.n; j++) { /* times in seconds of input */
            assert_true(fabs(whole.r[j].t_start - j * 1024 / RATE) < 1e-12);
            assert_true(fabs(whole.r[j].t_end - (j * 1024 + 2048) / RATE) < 1e-12);
        }
        assert_int_equal(s0.ng, 1);
        results_free(&whole);
        aibox_listener_free(&l);
        aibox_signal_free(&twice);
    }
    /* a stream shorter than one window */
    aibox_listener *l = listener(m, RATE);
    results v = {0};
    aibox_sound_summary s;
    listen(l, x.data, 2000, NULL, 0, &v, &s);
    assert_int_equal(v.n, 0);
    assert_int_equal(s.windows, 0);
    assert_int_equal(s.dropped, 2000);
    assert_int_equal(s.ng, 0);
    assert_int_equal(s.label, -1);
    aibox_listener_free(&l);
    aibox_signal_free(&x);
    aibox_model_free(&m);
}

/* A classifier: a tiny dense model on FEATURES windows (class names in the
 * metadata), then, if the preset exists, "cnn1d" on RAW windows. */
static void check_classifier(aibox_model *m, const aibox_sound_opts *so, const float *x, long n, int classes)
{
    aibox_listener *l = listener(m, so->spec.rate);
    assert_false(aibox_listener_is_detector(l));
    assert_int_equal(aibox_listener_classes(l), classes);
    results v = {.classes = classes};
    aibox_sound_summary sum;
    listen(l, x, n, (const long[]){777}, 1, &v, &sum);
    assert_int_equal(v.n, aibox_sound_window_count(so, n));
    aibox_sound_frontend *fe = NULL;
    aibox_ctx *ctx = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_sound_frontend_create(&fe, so, &e), AIBOX_OK);
    assert_int_equal(aibox_ctx_create(&ctx, m, &(aibox_ctx_opts){.threads = 1}, &e), AIBOX_OK);
    float *in = aibox_test_floats(aibox_sound_frontend_size(fe));
    double mean[MAXC] = {0}, worst = 0;
    for (long j = 0; j < v.n; j++) {
        assert_int_equal(aibox_sound_frontend_run(fe, x + j * so->hop, in, NULL, &e), AIBOX_OK);
        assert_int_equal(aibox_ctx_infer(ctx, m, in, 1, &e), AIBOX_OK);
        const float *z = aibox_ctx_output(ctx, NULL, NULL, NULL);
        double mx = z[0], s = 0, p[MAXC];
        for (int k = 1; k < classes; k++) mx = fmax(mx, z[k]);
        for (int k = 0; k < classes; k++) s += p[k] = exp((double)z[k] - mx);
        int best = 0;
        for (int k = 0; k < classes; k++) {
            p[k] /= s;
            worst = fmax(worst, fabs(p[k] - v.r[j].probs[k]));
            mean[k] += p[k] / v.n;
            if (p[k] > p[best]) best = k;
        }
        assert_int_equal(v.r[j].label, best);
        assert_false(v.r[j].anomaly);
        assert_true(fabs(v.r[j].confidence - p[best]) < 1e-6);
    }
    print_message("classifier listener vs a direct forward: worst probability difference %.2e over %ld windows\n", worst,
                  v.n);
    assert_true(worst < 1e-6);
    int best = 0;
    for (int k = 1; k < classes; k++)
        if (mean[k] > mean[best]) best = k;
    assert_int_equal(sum.label, best);
    assert_true(fabs(sum.confidence - mean[best]) < 1e-6);
    assert_string_equal(sum.name, aibox_listener_class_name(l, best));
    free(in);
    aibox_ctx_free(&ctx);
    aibox_sound_frontend_free(&fe);
    results_free(&v);
    aibox_listener_free(&l);
}

static void test_classifier(void **state)
{
    (void)state;
    aibox_sound_opts so;
    aibox_sound_opts_default(&so, RATE, AIBOX_SOUND_FEATURES);
    so.spec.n_fft = 256, so.spec.hop = 128, so.spec.n_mels = 16, so.spec.n_mfcc = 1, so.window = 1024, so.hop = 300;
    so.in_mean = -20.0f, so.in_std = 15.0f;
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_create(&m, 2 * 16 + 4, 1, 1, &e), AIBOX_OK);
    aibox_dense(m, 0, 3, 1);
    assert_int_equal(aibox_model_finish(m, 42, &e), AIBOX_OK);
    const char *names[3] = {"idle", "cutting", "worn"};
    assert_int_equal(aibox_model_set_meta_strs(m, AIBOX_META_CLASS_NAMES, 3, names, &e), AIBOX_OK);
    if (aibox_sound_opts_to_model(&so, m, &e)) print_message("%s\n", e.msg);
    assert_int_equal(e.code, AIBOX_OK);
    aibox_signal x;
    synth(&x, 9000, RATE, 3, 0.5, 1);
    check_classifier(m, &so, x.data, x.frames, 3);
    aibox_listener *l = listener(m, RATE);
    assert_string_equal(aibox_listener_class_name(l, 2), "worn");
    assert_null(aibox_listener_class_name(l, 3));
    aibox_listener_free(&l);
    /* windows further apart than they are long: the samples between them are passed over */
    so.hop = 1500;
    assert_int_equal(aibox_sound_opts_to_model(&so, m, &e), AIBOX_OK);
    check_classifier(m, &so, x.data, x.frames, 3);
    aibox_model_free(&m);

    aibox_sound_opts_default(&so, RATE, AIBOX_SOUND_RAW);
    so.window = 2048, so.hop = 1000;
    aibox_status s = aibox_sound_preset(&m, "cnn1d", &so, 4, 0.1f, 7, &e);
    if (s) {
        print_message("cnn1d preset unavailable (%s): the dense classifier only\n", e.msg);
    } else {
        check_classifier(m, &so, x.data, x.frames, 4);
        aibox_model_free(&m);
    }
    aibox_signal_free(&x);
}

static void test_listener_refusals(void **state)
{
    (void)state;
    aibox_model *m = NULL;
    aibox_listener *l = NULL;
    aibox_error e = {0};
    /* an image-style model, no sound settings */
    assert_int_equal(aibox_model_create(&m, 20, 1, 1, &e), AIBOX_OK);
    aibox_dense(m, 0, 3, 1);
    assert_int_equal(aibox_model_finish(m, 1, &e), AIBOX_OK);
    assert_int_equal(aibox_listener_create(&l, m, RATE, 1, &e), AIBOX_E_NOTFOUND);
    print_message("no sound metadata: %s\n", e.msg);
    assert_non_null(strstr(e.msg, "sound"));
    assert_null(l);
    aibox_model_free(&m);

    aibox_sound_fit_opts o;
    fit_opts(&o);
    m = fit(&o, NULL);
    assert_int_equal(aibox_listener_create(&l, m, 0, 1, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_listener_create(&l, m, RATE * 1000, 1, &e), AIBOX_E_UNSUPPORTED);
    /* NaN: the push is refused whole, naming the window; the listener goes on */
    l = listener(m, RATE);
    aibox_signal x;
    synth(&x, 8192, RATE, 4, 0.5, 0);
    results v = {0};
    assert_int_equal(aibox_listener_push(l, x.data, 3000, collect, &v, &e), AIBOX_OK);
    float bad[100];
    memcpy(bad, x.data + 3000, sizeof bad);
    bad[50] = NAN;
    assert_int_equal(aibox_listener_push(l, bad, 100, collect, &v, &e), AIBOX_E_NONFINITE);
    print_message("NaN sample: %s\n", e.msg);
    assert_non_null(strstr(e.msg, "window 1:")); /* 3050 lies in windows 1 and 2: 1 is still open */
    assert_int_equal(aibox_listener_push(l, x.data + 3000, x.frames - 3000, collect, &v, &e), AIBOX_OK);
    aibox_sound_summary sum;
    assert_int_equal(aibox_listener_finish(l, collect, &v, &sum, &e), AIBOX_OK);
    assert_int_equal(sum.windows, aibox_sound_window_count(&o.sound, x.frames));
    /* no thresholds: a detector that cannot judge */
    aibox_listener_free(&l);
    assert_int_equal(aibox_model_set_meta_str(m, AIBOX_META_ANOMALY_THRESHOLD, "x", &e), AIBOX_OK);
    assert_int_equal(aibox_listener_create(&l, m, RATE, 1, &e), AIBOX_E_FORMAT);
    print_message("broken threshold: %s\n", e.msg);
    results_free(&v);
    aibox_signal_free(&x);
    aibox_model_free(&m);
}

/* ------------------------------------------------------------ CWRU 48 kHz */
static int load_wav(aibox_signal *s, const char *path)
{
    aibox_error e = {0};
    aibox_status st = aibox_signal_load(s, path, &(aibox_signal_opts){.channel = 0}, &e);
    if (st) print_message("%s\n", e.msg);
    return st == AIBOX_OK;
}

static void score_all(aibox_listener *l, const float *x, long n, results *v)
{
    aibox_sound_summary sum;
    listen(l, x, n, NULL, 0, v, &sum);
}

static void test_cwru48k(void **state)
{
    (void)state;
    const char *data = getenv("AIBOX_DATA");
    char dir[1024], path[2048];
    snprintf(dir, sizeof dir, "%s/sensors/vibration-cwru/48k", data && *data ? data : "../shared/data");
    snprintf(path, sizeof path, "%s/normal/normal_0hp_X097_DE_48k.wav", dir);
    if (access(path, R_OK) != 0) {
        print_message("skipping: %s not found (set AIBOX_DATA to the shared data folder)\n", path);
        skip();
    }
    aibox_signal nrm = {0};
    assert_true(load_wav(&nrm, path));
    const long a60 = (long)(0.6 * nrm.frames);
    /* 0.25 s windows, 32 mels up to 24 kHz, reg 1e-3 (the first exploration's settings) */
    aibox_sound_fit_opts o;
    aibox_sound_fit_opts_default(&o, 48000);
    o.sound.window = 12000, o.sound.hop = 6000, o.sound.spec.n_mels = 32;
    o.reg = 1e-3;
    aibox_signal fitpart = nrm;
    fitpart.frames = a60;
    aibox_model *m = NULL;
    aibox_error e = {0};
    aibox_threshold_stats st;
    aibox_status s = aibox_sound_detector_fit(&m, &fitpart, 1, &o, &st, &e);
    if (s) print_message("fit: %s\n", e.msg);
    assert_int_equal(s, AIBOX_OK);
    aibox_listener *l = listener(m, 48000);
    results v = {0};
    score_all(l, nrm.data + a60, nrm.frames - a60, &v);
    const long n_norm = v.n;
    long fa = 0;
    for (long j = 0; j < n_norm; j++) fa += v.r[j].ng;
    static const char *const faults[3][3] = {
        {"ball/ball_0.007in_0hp_X122_DE_48k.wav", "ball/ball_0.014in_0hp_X189_DE_48k.wav",
         "ball/ball_0.021in_0hp_X226_DE_48k.wav"},
        {"inner_race/inner_race_0.007in_0hp_X109_DE_48k.wav", "inner_race/inner_race_0.014in_0hp_X173_DE_48k.wav",
         "inner_race/inner_race_0.021in_0hp_X213_DE_48k.wav"},
        {"outer_race/outer_race_0.007in_0hp_DE_48k.wav", "outer_race/outer_race_0.014in_0hp_DE_48k.wav",
         "outer_race/outer_race_0.021in_0hp_DE_48k.wav"}};
    for (int f = 0; f < 3; f++)
        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "%s/%s", dir, faults[f][k]);
            aibox_signal r = {0};
            assert_true(load_wav(&r, path));
            score_all(l, r.data, r.frames, &v);
            aibox_signal_free(&r);
        }
    float *sc = aibox_test_floats((size_t)v.n);
    uint8_t *lab = aibox_test_malloc((size_t)v.n);
    long det = 0;
    for (long j = 0; j < v.n; j++) {
        sc[j] = (float)v.r[j].score, lab[j] = j >= n_norm;
        if (j >= n_norm) det += v.r[j].ng;
    }
    double auroc = aibox_metric_auroc(sc, lab, (size_t)v.n);
    print_message("CWRU 48 kHz: fit on %.1f s (%d held-out windows, threshold %.3f), scored %ld normal windows (last "
                  "40 %%) and %ld fault windows: AUROC %.4f, false alarms %.1f %% (%ld), detected %.1f %%\n",
                  a60 / 48000.0, st.good, v.r[0].threshold, n_norm, v.n - n_norm, auroc, 100.0 * fa / n_norm, fa,
                  100.0 * det / (v.n - n_norm));
    assert_true(auroc > 0.95);
    free(sc), free(lab);
    if (getenv("AIBOX_TEST_VERBOSE")) { /* the library's defaults, for comparison */
        aibox_sound_fit_opts_default(&o, 48000);
        aibox_model *md = NULL;
        assert_int_equal(aibox_sound_detector_fit(&md, &fitpart, 1, &o, &st, &e), AIBOX_OK);
        aibox_listener *ld = listener(md, 48000);
        results vd = {0};
        score_all(ld, nrm.data + a60, nrm.frames - a60, &vd);
        long nn = vd.n, fd = 0;
        for (long j = 0; j < nn; j++) fd += vd.r[j].ng;
        for (int f = 0; f < 3; f++)
            for (int k = 0; k < 3; k++) {
                snprintf(path, sizeof path, "%s/%s", dir, faults[f][k]);
                aibox_signal r = {0};
                assert_true(load_wav(&r, path));
                score_all(ld, r.data, r.frames, &vd);
                aibox_signal_free(&r);
            }
        sc = aibox_test_floats((size_t)vd.n), lab = aibox_test_malloc((size_t)vd.n);
        for (long j = 0; j < vd.n; j++) sc[j] = (float)vd.r[j].score, lab[j] = j >= nn;
        print_message("  with the defaults (window %ld, %d mels, reg %g): %d held-out windows, %ld normal, %ld fault "
                      "windows: AUROC %.4f, false alarms %ld\n",
                      o.sound.window, o.sound.spec.n_mels, o.reg, st.good, nn, vd.n - nn,
                      aibox_metric_auroc(sc, lab, (size_t)vd.n), fd);
        free(sc), free(lab);
        results_free(&vd);
        aibox_listener_free(&ld);
        aibox_model_free(&md);
    }
    results_free(&v);
    aibox_listener_free(&l);
    aibox_model_free(&m);
    aibox_signal_free(&nrm);
}

static int setup(void **state)
{
    (void)state;
    return aibox_test_mkdtemp(g_dir, sizeof g_dir, "listener");
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(g_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detector_fit),       cmocka_unit_test(test_detector_naive),
        cmocka_unit_test(test_detector_roundtrip), cmocka_unit_test(test_fit_refusals),
        cmocka_unit_test(test_listener_chunks),    cmocka_unit_test(test_classifier),
        cmocka_unit_test(test_listener_refusals),  cmocka_unit_test(test_cwru48k),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
