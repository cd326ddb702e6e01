/* sound_speed: windows per second of the signal models end to end on one
 * thread — the listener (aibox_listener_push: buffering, front end, model,
 * score) over a long recording — at 16 kHz (MIMII fan) and 48 kHz (CWRU
 * normal), for the good-only Gaussian detector (FEATURES) and the two window
 * classifiers (cnn2d on log-mel, cnn1d on raw windows; untrained preset
 * weights: the speed does not depend on them). Also the front end alone.
 *
 *   sound_speed [--data DIR] [--seconds S] [--runs N] [--json]
 *
 * Each figure is the median of N runs (default 5) over S seconds of audio
 * (default 60: the recording repeated). "x real time" is seconds of audio
 * judged per second of compute with windows every hop samples. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aibox.h"
#define BENCH_NAME "sound_speed"
#include "bench.h"

typedef struct {
    long windows;
} counter;

static aibox_status count_window(void *user, const aibox_sound_result *r, const double *probs, aibox_error *err)
{
    (void)r, (void)probs, (void)err;
    ((counter *)user)->windows++;
    return AIBOX_OK;
}

/* The recording repeated to `seconds` of mono audio. */
static float *long_signal(const char *path, double seconds, double *rate, long *n)
{
    aibox_signal s = {0};
    aibox_error e = {0};
    aibox_signal_opts so = {.channel = AIBOX_CHANNEL_MIX};
    check(aibox_signal_load(&s, path, &so, &e), &e, path);
    *rate = s.rate;
    *n = (long)(seconds * s.rate);
    float *x = xalloc_floats((size_t)*n);
    for (long i = 0; i < *n; i++) x[i] = s.data[i % s.frames];
    aibox_signal_free(&s);
    return x;
}

typedef struct {
    double ms_median, windows_per_s, realtime;
    long windows;
} speed;

static speed time_listener(const aibox_model *m, const float *x, long n, double rate, int runs)
{
    double *t = xmalloc(sizeof *t * (size_t)runs);
    aibox_error e = {0};
    long windows = 0;
    for (int r = 0; r < runs; r++) {
        aibox_listener *l = NULL;
        check(aibox_listener_create(&l, m, rate, 1, &e), &e, "listener");
        counter c = {0};
        double t0 = now_ms();
        /* in chunks of 100 ms, as a live stream arrives */
        long chunk = (long)(rate / 10);
        for (long i = 0; i < n; i += chunk)
            check(aibox_listener_push(l, x + i, i + chunk <= n ? chunk : n - i, count_window, &c, &e), &e, "push");
        check(aibox_listener_finish(l, count_window, &c, NULL, &e), &e, "finish");
        t[r] = now_ms() - t0;
        windows = c.windows;
        aibox_listener_free(&l);
    }
    speed s = {.ms_median = quantile(t, runs, 0.5), .windows = windows};
    s.windows_per_s = windows / (s.ms_median / 1e3);
    s.realtime = (n / rate) / (s.ms_median / 1e3);
    free(t);
    return s;
}

static speed time_frontend(const aibox_sound_opts *o, const float *x, long n, int runs)
{
    aibox_error e = {0};
    aibox_sound_frontend *fe = NULL;
    check(aibox_sound_frontend_create(&fe, o, &e), &e, "front end");
    float *out = xalloc_floats(aibox_sound_frontend_size(fe));
    double *t = xmalloc(sizeof *t * (size_t)runs);
    long windows = aibox_sound_window_count(o, n);
    for (int r = 0; r < runs; r++) {
        double t0 = now_ms();
        for (long w = 0; w < windows; w++) check(aibox_sound_frontend_run(fe, x + w * o->hop, out, NULL, &e), &e, "run");
        t[r] = now_ms() - t0;
    }
    speed s = {.ms_median = quantile(t, runs, 0.5), .windows = windows};
    s.windows_per_s = windows / (s.ms_median / 1e3);
    s.realtime = (n / o->spec.rate) / (s.ms_median / 1e3);
    free(t), free(out);
    aibox_sound_frontend_free(&fe);
    return s;
}

static void report(int json, const char *what, double rate, const aibox_sound_opts *o, speed s)
{
    say("| %-28s | %5.0f kHz | %6ld / %6ld | %8ld | %9.1f | %12.0f | %8.0fx |\n", what, rate / 1e3, o->window, o->hop,
        s.windows, s.ms_median, s.windows_per_s, s.realtime);
    if (json)
        printf("{\"bench\":\"sound_speed\",\"what\":\"%s\",\"rate\":%.0f,\"window\":%ld,\"hop\":%ld,\"windows\":%ld,"
               "\"ms\":%.3f,\"windows_per_s\":%.1f,\"x_realtime\":%.1f,\"threads\":1}\n",
               what, rate, o->window, o->hop, s.windows, s.ms_median, s.windows_per_s, s.realtime);
}

int main(int argc, char **argv)
{
    const char *data = getenv("AIBOX_DATA") ? getenv("AIBOX_DATA") : "../shared/data";
    double seconds = 60;
    int runs = 5, json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else die("usage: sound_speed [--data DIR] [--seconds S] [--runs N] [--json]");
    }
    if (!(seconds >= 1) || runs < 1) die("--seconds must be >= 1 and --runs >= 1");
    bench_human = json ? stderr : stdout;
    say("sound_speed: one thread, %.0f s of audio per run, median of %d runs; load %s\n", seconds, runs, loadavg());
    say("| %-28s | %9s | %15s | %8s | %9s | %12s | %9s |\n", "what", "rate", "window / hop", "windows", "ms", "windows/s",
        "real time");
    say("|---|---|---|---|---|---|---|\n");

    const char *files[2] = {"sensors/sound-mimii/fan/normal/id_00_00000000_ch0.wav",
                            "sensors/vibration-cwru/48k/normal/normal_0hp_X097_DE_48k.wav"};
    for (int f = 0; f < 2; f++) {
        char *path = join_path(data, files[f]);
        double rate;
        long n;
        float *x = long_signal(path, seconds, &rate, &n);
        aibox_error e = {0};

        /* the detector, fitted on the recording itself */
        aibox_sound_fit_opts fo;
        aibox_sound_fit_opts_default(&fo, rate);
        fo.threads = 1;
        aibox_signal rec = {.data = x, .frames = n < (long)(10 * rate) ? n : (long)(10 * rate), .channels = 1, .rate = rate};
        aibox_model *det = NULL;
        check(aibox_sound_detector_fit(&det, &rec, 1, &fo, NULL, &e), &e, "fit");
        report(json, "front end: features", rate, &fo.sound, time_frontend(&fo.sound, x, n, runs));
        report(json, "gaussian detector", rate, &fo.sound, time_listener(det, x, n, rate, runs));
        aibox_model_free(&det);

        static const char *const nets[2] = {"cnn2d", "cnn1d"};
        for (int k = 0; k < 2; k++) {
            aibox_sound_opts so;
            aibox_sound_opts_default(&so, rate, k ? AIBOX_SOUND_RAW : AIBOX_SOUND_LOGMEL);
            aibox_model *m = NULL;
            check(aibox_sound_preset(&m, nets[k], &so, 4, 0.25f, 1, &e), &e, nets[k]);
            check(aibox_sound_opts_to_model(&so, m, &e), &e, "settings");
            char what[64];
            snprintf(what, sizeof what, "front end: %s", k ? "raw" : "logmel");
            report(json, what, rate, &so, time_frontend(&so, x, n, runs));
            snprintf(what, sizeof what, "classifier %s", nets[k]);
            report(json, what, rate, &so, time_listener(m, x, n, rate, runs));
            aibox_model_free(&m);
        }
        free(x), free(path);
    }
    return 0;
}
