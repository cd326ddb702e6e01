/* aibox-train sound|sound-outlier and aibox-infer on recordings and streams,
 * as a user runs them: a synthetic data set of WAV files (a tone per class
 * with noise), the JSON summaries, a line per window and per recording,
 * corrupt and truncated WAVs, the good-only detector's verdicts, a live
 * stream through a pipe (each line out before the writer finishes), a stream
 * cut inside a frame, and wrong --rate values. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <cmocka.h>
#include <sndfile.h>

#include "aibox.h"
#include "common/check.h"

#define RATE 8000
#define WINDOW 2000 /* --window 0.25 at 8 kHz */
#define HOP 1000    /* --hop 0.125 */
#define SECONDS 2.0
#define WIN_ARGS "--window 0.25 --hop 0.125"

static char bin[4096], dir[64];

#define PATHF(buf, ...) assert_true(snprintf(buf, sizeof buf, __VA_ARGS__) < (int)sizeof buf)

/* n samples of tones (freq[k] at amp[k], a random phase each) plus white noise. */
static float *tones(aibox_rng *r, long n, const double *freq, const double *amp, int k, double noise)
{
    float *x = aibox_test_floats((size_t)n);
    for (int q = 0; q < k; q++) {
        double ph = 6.283185307179586 * aibox_rng_uniform(r), f = freq[q] * (1 + 0.01 * aibox_rng_normal(r));
        for (long i = 0; i < n; i++) x[i] += (float)(amp[q] * sin(6.283185307179586 * f * i / RATE + ph));
    }
    for (long i = 0; i < n; i++) x[i] += (float)(noise * aibox_rng_normal(r));
    return x;
}

static void write_wav(const char *path, const float *x, long n, int rate)
{
    SF_INFO info = {.samplerate = rate, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    SNDFILE *f = sf_open(path, SFM_WRITE, &info);
    if (!f) fail_msg("cannot write %s: %s", path, sf_strerror(NULL));
    assert_int_equal(sf_writef_float(f, x, n), n);
    sf_close(f);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* DIR/data/{low,mid,high}/rN.wav (six recordings of a tone each), DIR/good
 * (normal operation: 500 Hz and its harmonic), DIR/held.wav (another normal
 * recording), DIR/fault.wav (normal plus a 1700 Hz tone), DIR/bad/ (a
 * corrupt and a truncated WAV beside a good one). */
static int setup(void **state)
{
    (void)state;
    if (aibox_test_mkdtemp(dir, sizeof dir, "sound_tools")) return -1;
    char p[512];
    static const char *const cls[3] = {"low", "mid", "high"};
    static const double freq[3] = {300, 900, 2000};
    const long n = (long)(SECONDS * RATE);
    aibox_rng r;
    aibox_rng_seed(&r, 7);
    for (int c = 0; c < 3; c++) {
        snprintf(p, sizeof p, "%s/data/%s", dir, cls[c]);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "mkdir -p %s", p);
        if (system(cmd)) return -1;
        for (int i = 0; i < 6; i++) {
            double amp = 0.2 + 0.3 * aibox_rng_uniform(&r);
            float *x = tones(&r, n, &freq[c], &amp, 1, 0.05);
            snprintf(p, sizeof p, "%s/data/%s/r%d.wav", dir, cls[c], i);
            write_wav(p, x, n, RATE);
            free(x);
        }
    }
    snprintf(p, sizeof p, "mkdir -p %s/good %s/bad", dir, dir);
    if (system(p)) return -1;
    static const double nf[2] = {500, 1000}, na[2] = {0.3, 0.1};
    static const double ff[3] = {500, 1000, 1700}, fa[3] = {0.3, 0.1, 0.15};
    const long long_n = 4 * RATE;
    for (int i = 0; i < 6; i++) {
        float *x = tones(&r, long_n, nf, na, 2, 0.03);
        snprintf(p, sizeof p, "%s/good/n%d.wav", dir, i);
        write_wav(p, x, long_n, RATE);
        free(x);
    }
    float *x = tones(&r, long_n, nf, na, 2, 0.03);
    snprintf(p, sizeof p, "%s/held.wav", dir);
    write_wav(p, x, long_n, RATE);
    free(x);
    x = tones(&r, long_n, ff, fa, 3, 0.03);
    snprintf(p, sizeof p, "%s/fault.wav", dir);
    write_wav(p, x, long_n, RATE);
    free(x);
    /* bad/: a good recording, text named .wav, and a WAV cut in half (its header promises twice as much) */
    snprintf(p, sizeof p, "%s/data/low/r0.wav", dir);
    size_t len;
    unsigned char *wav = aibox_test_slurp(p, &len);
    if (!wav) return -1;
    snprintf(p, sizeof p, "%s/bad/a_good.wav", dir);
    write_bytes(p, wav, len);
    snprintf(p, sizeof p, "%s/bad/b_garbage.wav", dir);
    write_bytes(p, "this is not a sound file, only text named .wav\n", 47);
    snprintf(p, sizeof p, "%s/bad/c_truncated.wav", dir);
    write_bytes(p, wav, len / 2);
    free(wav);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(dir);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* The index-th line of text (0-based) parsed as JSON; NULL past the end. */
static cJSON *json_line(const char *text, int index)
{
    const char *p = text;
    for (int i = 0; i < index && p; i++) p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL;
    if (!p || !*p) return NULL;
    const char *e = strchr(p, '\n');
    char *line = strndup(p, e ? (size_t)(e - p) : strlen(p));
    cJSON *j = cJSON_Parse(line);
    if (!j) print_message("not JSON: %s\n", line);
    free(line);
    assert_non_null(j);
    return j;
}

static double num(const cJSON *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *v = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
        v = cJSON_GetObjectItemCaseSensitive(v, k);
    if (!cJSON_IsNumber(v)) fail_msg("%s is not a number", path);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) fail_msg("%s is not a string", key);
    return v->valuestring;
}

static long windows_of(long n) { return n < WINDOW ? 0 : 1 + (n - WINDOW) / HOP; }

/* ------------------------------------------------------------ the classifier */
static void test_train_sound(void **state)
{
    (void)state;
    static char out[1 << 16];
    int rc = aibox_test_run(out, sizeof out,
                            "%s/aibox-train sound %s/data -o %s/cls.aibox " WIN_ARGS " --mels 32 --epochs 12 "
                            "--batch 16 --val-split 0.34 --seed 3 --threads 2 --quiet 2>%s/train.log",
                            bin, dir, dir, dir);
    print_message("%s", out);
    assert_int_equal(rc, 0);
    assert_int_equal(count_lines(out), 1);
    cJSON *j = json_line(out, 0);
    assert_int_equal((int)num(j, "rate"), RATE);
    assert_int_equal((int)num(j, "window.samples"), WINDOW);
    assert_int_equal((int)num(j, "hop.samples"), HOP);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "classes")), 3);
    /* split by recording: 2 of each class's 6 in validation, every window of a recording with it */
    assert_int_equal((int)num(j, "recordings.train"), 12);
    assert_int_equal((int)num(j, "recordings.val"), 6);
    const long per = windows_of((long)(SECONDS * RATE));
    assert_int_equal((long)num(j, "windows.train"), 12 * per);
    assert_int_equal((long)num(j, "windows.val"), 6 * per);
    assert_true(num(j, "best_val_acc") >= 0.9);
    assert_true(num(j, "val.window_acc") >= 0.9);
    assert_true(num(j, "val.recording_acc") >= 0.99);
    assert_int_equal((int)num(j, "val.recordings"), 6);
    const cJSON *conf = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "val"), "confusion");
    assert_int_equal(cJSON_GetArraySize(conf), 3);
    long total = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) total += (long)cJSON_GetArrayItem(cJSON_GetArrayItem(conf, a), b)->valuedouble;
    assert_int_equal(total, 6 * per);
    assert_true(num(j, "val.per_class.low.window_acc") >= 0.8);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "test")));
    cJSON_Delete(j);
    /* plain aibox-train on a folder of recordings trains the sound classifier too, saying so */
    rc = aibox_test_run(out, sizeof out,
                        "%s/aibox-train %s/data -o %s/plain.aibox " WIN_ARGS " --epochs 1 --batch 16 --val-split 0.34 "
                        "--seed 3 --threads 2 --quiet 2>%s/plain.log",
                        bin, dir, dir, dir);
    assert_int_equal(rc, 0);
    j = json_line(out, 0);
    assert_string_equal(str(j, "net"), "cnn2d");
    assert_int_equal((int)num(j, "recordings.val"), 6);
    cJSON_Delete(j);
    char p[512];
    PATHF(p, "%s/plain.log", dir);
    FILE *lf = fopen(p, "r");
    assert_non_null(lf);
    char line[512] = "";
    assert_non_null(fgets(line, sizeof line, lf));
    fclose(lf);
    assert_non_null(strstr(line, "holds recordings, not images"));
    PATHF(p, "%s/cls.train/train.csv", dir);
    assert_int_equal(access(p, R_OK), 0);

    /* one recording: a line per window, then the recording's line */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/cls.aibox %s/data/high/r1.wav 2>/dev/null", bin, dir,
                        dir);
    assert_int_equal(rc, 0);
    assert_true(aibox_test_json_lines(out));
    assert_int_equal(count_lines(out), per + 1);
    for (int i = 0; i < per; i++) {
        j = json_line(out, i);
        assert_int_equal((int)num(j, "window"), i);
        const cJSON *t = cJSON_GetObjectItem(j, "t");
        assert_true(fabs(cJSON_GetArrayItem(t, 0)->valuedouble - (double)i * HOP / RATE) < 1e-6);
        assert_true(fabs(cJSON_GetArrayItem(t, 1)->valuedouble - ((double)i * HOP + WINDOW) / RATE) < 1e-6);
        assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "probs"), "mid"));
        assert_string_equal(str(j, "verdict"), "classified");
        cJSON_Delete(j);
    }
    j = json_line(out, (int)per);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "recording")));
    assert_int_equal((long)num(j, "windows"), per);
    assert_string_equal(str(j, "label"), "high");
    assert_int_equal((long)num(j, "dropped"), (long)(SECONDS * RATE) - ((per - 1) * HOP + WINDOW));
    cJSON_Delete(j);

    /* --ok-class: a recording of another class is NG, exit 1; --windows none: the recording lines only */
    rc = aibox_test_run(out, sizeof out,
                        "%s/aibox-infer -m %s/cls.aibox --ok-class low --windows none %s/data/low/r2.wav "
                        "%s/data/mid/r2.wav 2>/dev/null",
                        bin, dir, dir, dir);
    assert_int_equal(rc, 1);
    assert_int_equal(count_lines(out), 2);
    j = json_line(out, 0);
    assert_string_equal(str(j, "verdict"), "OK");
    cJSON_Delete(j);
    j = json_line(out, 1);
    assert_string_equal(str(j, "verdict"), "NG");
    assert_string_equal(str(j, "label"), "mid");
    cJSON_Delete(j);
    /* a folder: every sound file in it */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/cls.aibox --windows none %s/data/mid 2>/dev/null", bin,
                        dir, dir);
    assert_int_equal(rc, 0);
    assert_int_equal(count_lines(out), 6);
    /* csv is refused for sound models, saying so */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/cls.aibox --format csv %s/data/mid/r0.wav 2>&1", bin,
                        dir, dir);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "JSON lines only"));
}

/* A corrupt and a truncated WAV: an error line each, naming the file and the
 * reason; the good file beside them is still judged; exit 2. */
static void test_bad_recordings(void **state)
{
    (void)state;
    static char out[1 << 16];
    char err[512];
    PATHF(err, "%s/bad.err", dir);
    int rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/cls.aibox %s/bad 2>%s", bin, dir, dir, err);
    print_message("%s", out);
    assert_int_equal(rc, 2);
    assert_true(aibox_test_json_lines(out));
    const long per = windows_of((long)(SECONDS * RATE));
    assert_int_equal(count_lines(out), per + 1 + 2);
    cJSON *j = json_line(out, (int)per);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "recording")));
    assert_non_null(strstr(str(j, "file"), "a_good.wav"));
    cJSON_Delete(j);
    j = json_line(out, (int)per + 1);
    assert_non_null(strstr(str(j, "file"), "b_garbage.wav"));
    assert_non_null(strstr(str(j, "error"), "b_garbage.wav"));
    cJSON_Delete(j);
    j = json_line(out, (int)per + 2);
    assert_non_null(strstr(str(j, "file"), "c_truncated.wav"));
    assert_non_null(strstr(str(j, "error"), "c_truncated.wav"));
    assert_non_null(strstr(str(j, "error"), "truncated"));
    print_message("%s\n", str(j, "error"));
    cJSON_Delete(j);
    /* the files one by one in the other order: the good one after the bad ones still judged */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/cls.aibox --windows none %s/bad/c_truncated.wav "
                        "%s/bad/b_garbage.wav %s/bad/a_good.wav 2>/dev/null", bin, dir, dir, dir, dir);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(out), 3);
    j = json_line(out, 2);
    assert_string_equal(str(j, "label"), "low");
    cJSON_Delete(j);
    /* a model that cannot be loaded: exit 3 */
    rc = aibox_test_run(NULL, 0, "%s/aibox-infer -m %s/bad/b_garbage.wav %s/bad/a_good.wav 2>/dev/null", bin, dir, dir);
    assert_int_equal(rc, 3);
}

/* ------------------------------------------------------------ the good-only detector */
static void test_sound_outlier(void **state)
{
    (void)state;
    static char out[1 << 16];
    int rc = aibox_test_run(out, sizeof out,
                            "%s/aibox-train sound-outlier %s/good -o %s/det.aibox " WIN_ARGS " --mels 24 --quiet "
                            "2>%s/outlier.log",
                            bin, dir, dir, dir);
    print_message("%s", out);
    assert_int_equal(rc, 0);
    assert_int_equal(count_lines(out), 1);
    cJSON *j = json_line(out, 0);
    assert_string_equal(str(j, "method"), "gaussian");
    assert_int_equal((int)num(j, "recordings"), 6);
    assert_int_equal((int)num(j, "dims"), 2 * 24 + 4);
    const double thr = num(j, "threshold");
    assert_true(thr > 0 && thr >= num(j, "holdout_scores.max"));
    assert_true(num(j, "holdout_scores.windows") > 0);
    cJSON_Delete(j);

    /* the held normal recording: OK (exit 0); the one with an extra tone: NG (exit 1) */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/det.aibox --windows none %s/held.wav 2>/dev/null", bin,
                        dir, dir);
    print_message("%s", out);
    assert_int_equal(rc, 0);
    j = json_line(out, 0);
    assert_string_equal(str(j, "verdict"), "OK");
    assert_true(num(j, "score") < thr);
    cJSON_Delete(j);
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/det.aibox %s/fault.wav 2>/dev/null", bin, dir, dir);
    assert_int_equal(rc, 1);
    const long per = windows_of(4 * RATE);
    assert_int_equal(count_lines(out), per + 1);
    j = json_line(out, 0); /* a window line: the image anomaly models' fields */
    assert_true(num(j, "score") >= 0);
    assert_true(num(j, "norm_score") >= 0);
    assert_true(fabs(num(j, "threshold") - thr) <= 1e-5 * thr);
    assert_string_equal(str(j, "verdict"), "NG");
    cJSON_Delete(j);
    j = json_line(out, (int)per);
    assert_string_equal(str(j, "verdict"), "NG");
    assert_true(num(j, "score") >= thr);
    assert_int_equal((long)num(j, "ng_windows"), per);
    print_message("fault: mean score %.4g, threshold %.4g\n", num(j, "score"), thr);
    cJSON_Delete(j);
}

/* ------------------------------------------------------------ streams */
/* The first n samples of a recording as s16le (one spare byte at the end). */
static unsigned char *s16_of(const char *wav, long n)
{
    char p[512];
    PATHF(p, "%s/%s", dir, wav);
    aibox_signal s = {0};
    aibox_error e;
    assert_int_equal(aibox_signal_load(&s, p, NULL, &e), AIBOX_OK);
    assert_true(s.frames >= n && s.channels == 1);
    unsigned char *b = aibox_test_malloc((size_t)n * 2 + 1);
    for (long i = 0; i < n; i++) {
        int v = (int)lrint(32767 * s.data[i]);
        b[2 * i] = (unsigned char)(v & 0xff), b[2 * i + 1] = (unsigned char)((v >> 8) & 0xff);
    }
    b[2 * n] = 0;
    aibox_signal_free(&s);
    return b;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Reads from fd until text holds `lines` newlines or timeout_s passes; the newline count. */
static int read_lines(int fd, char *text, size_t cap, size_t *len, int lines, double timeout_s)
{
    double t_end = now_s() + timeout_s;
    int have = 0;
    for (size_t i = 0; i < *len; i++) have += text[i] == '\n';
    while (have < lines) {
        double left = t_end - now_s();
        if (left <= 0) break;
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = poll(&pf, 1, (int)(left * 1000) + 1);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) break;
        ssize_t got = read(fd, text + *len, cap - 1 - *len);
        if (got <= 0) break;
        for (ssize_t i = 0; i < got; i++) have += text[*len + i] == '\n';
        *len += (size_t)got;
    }
    text[*len] = 0;
    return have;
}

static void write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        assert_true(w > 0);
        p += w, n -= (size_t)w;
    }
}

/* The stream through a pipe: after half of it, the windows it completed are
 * already printed (flushed one by one) while the writer still holds the pipe
 * open; then the rest, the summary line, exit 0. */
static void test_stream_pipe(void **state)
{
    (void)state;
    const long n = WINDOW + 9 * HOP, half = WINDOW + 4 * HOP; /* 10 windows, 5 of them in the first half */
    unsigned char *b = s16_of("data/low/r3.wav", n);
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    signal(SIGPIPE, SIG_IGN);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0), dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "exec %s/aibox-infer -m %s/cls.aibox --stream --rate %d --format-raw s16le 2>%s/stream.err",
                 bin, dir, RATE, dir);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    static char text[1 << 16];
    size_t len = 0;
    write_all(in[1], b, (size_t)half * 2);
    int got = read_lines(out[0], text, sizeof text, &len, 5, 120);
    print_message("after half of the stream: %d lines\n", got);
    assert_int_equal(got, 5); /* the writer has not finished: these came out as each window completed */
    write_all(in[1], b + half * 2, (size_t)(n - half) * 2);
    close(in[1]);
    got = read_lines(out[0], text, sizeof text, &len, 11, 120);
    close(out[0]);
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(got, 11);
    assert_true(aibox_test_json_lines(text));
    for (int i = 0; i < 10; i++) {
        cJSON *j = json_line(text, i);
        assert_int_equal((int)num(j, "window"), i);
        assert_string_equal(str(j, "file"), "stdin");
        assert_string_equal(str(j, "label"), "low");
        cJSON_Delete(j);
    }
    cJSON *j = json_line(text, 10);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "recording")));
    assert_int_equal((int)num(j, "windows"), 10);
    assert_int_equal((int)num(j, "dropped"), 0);
    cJSON_Delete(j);
    free(b);
}

/* A stream that ends inside a frame (an odd byte count of s16le): the whole
 * windows before are printed, a clear message on stderr, exit 2. Also a
 * detector on a stream: NG windows give exit 1. */
static void test_stream_cut(void **state)
{
    (void)state;
    static char out[1 << 16];
    char raw[512], err[512];
    const long n = WINDOW + HOP + 500; /* 2 windows, then 500 samples and half a sample */
    unsigned char *b = s16_of("data/mid/r3.wav", n);
    PATHF(raw, "%s/cut.raw", dir);
    write_bytes(raw, b, (size_t)n * 2 + 1);
    free(b);
    PATHF(err, "%s/cut.err", dir);
    int rc = aibox_test_run(out, sizeof out,
                            "cat %s | %s/aibox-infer -m %s/cls.aibox --stream --rate %d --format-raw s16le 2>%s", raw,
                            bin, dir, RATE, err);
    print_message("%s", out);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(out), 3);
    cJSON *j = json_line(out, 2);
    assert_int_equal((int)num(j, "windows"), 2);
    assert_non_null(cJSON_GetObjectItem(j, "error"));
    cJSON_Delete(j);
    size_t len;
    char *msg = (char *)aibox_test_slurp(err, &len);
    assert_non_null(msg);
    msg[len] = 0;
    print_message("stderr: %s", msg);
    assert_int_equal(count_lines(msg), 1);
    assert_non_null(strstr(msg, "inside a frame"));
    assert_non_null(strstr(msg, "500 samples"));
    assert_non_null(strstr(msg, "not judged"));
    free(msg);

    /* the same stream through the detector, from a file given after --stream: NG windows, exit 2 still wins */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/det.aibox --stream %s --rate %d --format-raw s16le "
                        "2>/dev/null", bin, dir, raw, RATE);
    assert_int_equal(rc, 2);
    j = json_line(out, 0);
    assert_string_equal(str(j, "verdict"), "NG"); /* a 900 Hz tone is not the normal machine */
    cJSON_Delete(j);

    /* f32le, two channels: the normal recording's samples in channel 1, silence in channel 0 */
    aibox_signal s = {0};
    aibox_error e;
    char p[512];
    PATHF(p, "%s/held.wav", dir);
    assert_int_equal(aibox_signal_load(&s, p, NULL, &e), AIBOX_OK);
    const long frames = WINDOW + 3 * HOP;
    float *st = aibox_test_floats((size_t)frames * 2);
    for (long i = 0; i < frames; i++) st[2 * i + 1] = s.data[i];
    aibox_signal_free(&s);
    PATHF(raw, "%s/two.f32", dir);
    write_bytes(raw, st, sizeof *st * (size_t)frames * 2);
    free(st);
    rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/det.aibox --stream --rate %d --channels 2 --channel 1 "
                        "< %s 2>/dev/null", bin, dir, RATE, raw);
    print_message("%s", out);
    assert_int_equal(rc, 0);
    assert_int_equal(count_lines(out), 4 + 1);
}

/* --rate wrong or missing: exit 2 and one line on stderr naming the option. */
static void test_bad_rate(void **state)
{
    (void)state;
    static const char *const rates[] = {"--rate 0", "--rate -5", "--rate abc", "--rate 1e99", "--rate nan", "--rate inf",
                                        "--rate", ""};
    static char out[4096];
    for (size_t i = 0; i < sizeof rates / sizeof *rates; i++) {
        int rc = aibox_test_run(out, sizeof out, "printf 'abcd' | %s/aibox-infer -m %s/cls.aibox --stream %s 2>&1", bin,
                                dir, rates[i]);
        print_message("[%s] %s", rates[i], out);
        assert_int_equal(rc, 2);
        assert_int_equal(count_lines(out), 1);
        assert_non_null(strstr(out, "--rate"));
    }
    /* --rate with recordings (not a stream) is refused too */
    int rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/cls.aibox --rate 8000 %s/held.wav 2>&1", bin, dir, dir);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(out), 1);
    /* aibox-train's --rate alike */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-train sound %s/data -o /nonexistent/x.aibox --rate 0 2>&1", bin, dir);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(out), 1);
}

/* ------------------------------------------------------------ odd inputs */
/* Odd files and damaged models, each refused at once in one line naming the file and the reason, with exit 2
 * (the input) or 3 (the model); `timeout` turns a hang into a failure. */
static void test_odd_inputs(void **state)
{
    (void)state;
    static char out[1 << 14];
    char p[512], q[512];
    /* a FIFO named .wav without a writer (opening it used to wait forever), to aibox-infer and sound-outlier */
    PATHF(p, "%s/fifo.wav", dir);
    assert_int_equal(mkfifo(p, 0600), 0);
    int rc = aibox_test_run(out, sizeof out, "timeout 20 %s/aibox-infer -m %s/cls.aibox %s 2>&1 >/dev/null", bin, dir, p);
    print_message("fifo: %s", out);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "fifo.wav: not a regular file"));
    rc = aibox_test_run(out, sizeof out, "timeout 20 %s/aibox-train sound-outlier %s -o %s/x.aibox --quiet 2>&1", bin, p,
                        dir);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "fifo.wav: not a regular file"));
    unlink(p);
    /* sound-outlier on unreadable recordings only: the first one named with its reason */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-train sound-outlier %s/bad/b_garbage.wav %s/bad/c_truncated.wav -o "
                        "%s/x.aibox --quiet 2>&1", bin, dir, dir, dir);
    print_message("unreadable: %s", out);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "b_garbage.wav: not a sound file"));
    /* aibox-train sound on a file instead of a folder */
    rc = aibox_test_run(out, sizeof out, "%s/aibox-train sound %s/held.wav -o %s/x.aibox --quiet 2>&1", bin, dir, dir);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "held.wav: not a folder"));
    /* the detector cut at offsets through its header, metadata and weights, and with aibox.sound.input made an
     * integer: exit 3 and one line, never a crash or an image model's answer */
    PATHF(p, "%s/det.aibox", dir);
    size_t len;
    unsigned char *b = aibox_test_slurp(p, &len);
    assert_non_null(b);
    PATHF(q, "%s/cut.aibox", dir);
    const size_t cuts[] = {0, 1, 7, 8, 15, 16, 31, 64, 200, len / 3, len / 2, len - 5, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_bytes(q, b, cuts[i]);
        rc = aibox_test_run(out, sizeof out, "timeout 20 %s/aibox-infer -m %s %s/held.wav 2>&1 >/dev/null", bin, q, dir);
        if (rc != 3 || count_lines(out) != 1) print_message("cut at %zu: rc %d: %s", cuts[i], rc, out);
        assert_int_equal(rc, 3);
        assert_int_equal(count_lines(out), 1);
        assert_non_null(strstr(out, "cut.aibox"));
    }
    free(b);
    aibox_model *m = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_model_load(&m, p, &e), AIBOX_OK);
    assert_int_equal(aibox_model_set_meta_int(m, "aibox.sound.input", 2, &e), AIBOX_OK);
    assert_int_equal(aibox_model_save(m, q, &e), AIBOX_OK);
    aibox_model_free(&m);
    rc = aibox_test_run(out, sizeof out, "timeout 20 %s/aibox-infer -m %s %s/held.wav 2>&1 >/dev/null", bin, q, dir);
    print_message("input an integer: %s", out);
    assert_int_equal(rc, 3);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "aibox.sound.input"));
}

int main(int argc, char **argv)
{
    (void)argc;
    aibox_test_tools_dir(argv[0], bin, sizeof bin);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/aibox-infer", bin);
    if (access(probe, X_OK) != 0) {
        fprintf(stderr, "test_sound_tools: %s not built\n", probe);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_sound),    cmocka_unit_test(test_bad_recordings),
        cmocka_unit_test(test_sound_outlier),  cmocka_unit_test(test_stream_pipe),
        cmocka_unit_test(test_stream_cut),     cmocka_unit_test(test_bad_rate),
        cmocka_unit_test(test_odd_inputs),
    };
    return cmocka_run_group_tests_name("sound tools", tests, setup, teardown);
}
