/* aibox-train sound|sound-outlier: models on sound and vibration recordings.
 * "sound" trains a classifier of windows (a 2-D CNN on log-mel spectrograms
 * or a 1-D CNN on raw samples) on DATA/<class>/<recording>, split by
 * recording; "sound-outlier" fits the good-only Gaussian detector on normal
 * recordings. The library does the work (aibox_sound_*); this parses, calls,
 * evaluates and prints one JSON summary line on stdout. */
#include <ctype.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aibox.h"
#include "cli.h"
#include "train_sound.h"

static const char usage_sound[] =
    "usage: aibox-train sound DATA -o MODEL.aibox [options]\n"
    "Trains a classifier of windows of sound or vibration recordings (WAV, FLAC, anything\n"
    "libsndfile reads) on DATA/<class>/<recording> (a seeded validation split of each class's\n"
    "recordings is held out) or DATA/train/<class> + DATA/val/<class> (+ DATA/test/<class>).\n"
    "The split is by recording, never by window: all windows of a recording are in one split.\n"
    "Recordings are resampled to the model's rate; the window settings are stored in the model\n"
    "(aibox-infer -m MODEL.aibox RECORDING then prints a line per window and per recording).\n"
    "  -o, --output FILE      the trained model (the best validation epoch); an existing FILE is\n"
    "                         replaced, atomically (on failure or interruption the old file stays)\n"
    "  --net NAME             cnn2d (default: a 2-D CNN on the window's log-mel spectrogram) or\n"
    "                         cnn1d (a 1-D CNN on the raw samples, each window divided by its RMS)\n"
    "  --rate HZ              the model's sample rate (default: the first recording's)\n"
    "  --window SECONDS       window length (default: about 0.5 s, a power of two of samples)\n"
    "  --hop SECONDS          between the starts of two windows (default: half the window)\n"
    "  --mels N               mel bands of the spectrogram (cnn2d; default 64)\n"
    "  --channel N|mix        the channel of multi-channel recordings (0-based), or mix (default:\n"
    "                         the mean of the channels)\n"
    "  --epochs N             default 20\n"
    "  --batch N              windows per step (default 32)\n"
    "  --lr X                 Adam's learning rate (default 0.001)\n"
    "  --patience N           stop after N epochs without a better validation loss and keep the\n"
    "                         best weights (default 0: off)\n"
    "  --val-split F          validation fraction of each class's recordings (default 0.2)\n"
    "  --dropout P            before the last layer (default 0.25)\n"
    "  --seed N               seed of the split, initial weights, shuffling and dropout (default 1)\n"
    "  --threads N            default: $AIBOX_THREADS or all CPUs\n"
    "  --out-dir DIR          best.aibox, last.aibox, train.csv, metrics.json (default: MODEL.train)\n"
    "  --strict               fail on the first unusable recording instead of skipping it\n"
    "  --quiet                no progress output\n"
    "The summary gives the recordings and windows of each split, the best validation accuracy\n"
    "over windows, and for the validation (and test) split the window- and recording-level\n"
    "accuracy (a recording's class: the highest mean probability over its windows), the\n"
    "accuracy per class and the window-level confusion matrix (rows: true class).\n"
    "Exit status: 0 trained, 2 bad usage or data, 3 training failed, 130 interrupted.\n";

static const char usage_outlier[] =
    "usage: aibox-train sound-outlier GOOD... -o MODEL.aibox [options]\n"
    "Fits a good-only detector on recordings of normal operation (files, or folders of them:\n"
    "every sound file in a folder): a Gaussian over per-window features (each log-mel band's\n"
    "mean and standard deviation over the window, RMS, peak, crest factor and kurtosis), scored\n"
    "by the Mahalanobis distance. The\n"
    "last part of each recording's windows is held out to set the threshold; everything\n"
    "inference needs is stored in the model (aibox-infer -m MODEL.aibox prints a score and an\n"
    "OK/NG verdict per window and per recording).\n"
    "  -o, --output FILE      the model; an existing FILE is replaced, atomically\n"
    "  --rate HZ              the model's sample rate (default: the first recording's)\n"
    "  --window SECONDS       window length (default: about 0.5 s, a power of two of samples)\n"
    "  --hop SECONDS          between the starts of two windows (default: half the window)\n"
    "  --mels N               mel bands of the features (default 32)\n"
    "  --channel N|mix        the channel of multi-channel recordings (0-based), or mix (default)\n"
    "  --reg X                added to the covariance's diagonal, times its mean variance\n"
    "                         (default 0.01)\n"
    "  --held-out F           fraction of each recording's windows (its last ones) held out for\n"
    "                         the threshold (default 0.2)\n"
    "  --threshold RULE       max (default: just above the largest held-out score), p99, sigma:K\n"
    "                         (mean + K standard deviations) or a number\n"
    "  --threads N            default: $AIBOX_THREADS or all CPUs\n"
    "  --quiet                no progress output\n"
    "Exit status: 0 fitted, 2 bad usage or data, 3 the fit failed.\n";

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* ------------------------------------------------------------------ shared helpers */
static int parse_channel(const char *prog, const char *v, int *channel)
{
    long c;
    if (v && !strcmp(v, "mix")) return *channel = AIBOX_CHANNEL_MIX, 1;
    char *end;
    c = v ? strtol(v, &end, 10) : -1;
    if (!v || !*v || *end || c < 0 || c > 63) {
        fprintf(stderr, "%s: --channel must be a channel number from 0 to 63 or mix (got '%s')\n", prog, v ? v : "");
        return 0;
    }
    *channel = (int)c;
    return 1;
}

/* A sample rate: a finite number > 0 and at most 10 MHz. */
static int parse_rate(const char *prog, const char *v, double *rate)
{
    char *end;
    double r = v ? strtod(v, &end) : NAN;
    if (!v || !*v || *end || !(r > 0 && r <= 1e7)) {
        fprintf(stderr, "%s: --rate needs a sample rate in Hz, a number above 0 and at most 10000000 (got '%s')\n",
                prog, v ? v : "");
        return 0;
    }
    *rate = r;
    return 1;
}

/* The rate of the first recording of paths that can be read; 0 if none.
 * why (may be NULL): the first failure's message (naming its file), so that
 * "none can be read" can say which file and why. */
static double first_rate(char *const *paths, int n, char *why, size_t why_size)
{
    for (int i = 0; i < n; i++) {
        aibox_signal s = {0};
        aibox_error e = {0};
        if (aibox_signal_load(&s, paths[i], &(aibox_signal_opts){.channel = 0}, &e)) {
            if (why && !why[0]) snprintf(why, why_size, "%s", e.msg);
            continue;
        }
        double r = s.rate;
        aibox_signal_free(&s);
        return r;
    }
    return 0;
}

/* Sorted entries of dir that are regular files (note NULL) with a sound name; appended to *v. */
static int add_sound_files(const char *dir, char ***v, int *n, int *cap)
{
    aibox_file_list l = {0};
    aibox_error e = {0};
    if (aibox_list_files(&l, dir, NULL, &e)) return 0;
    int ok = 1;
    for (int i = 0; ok && i < l.n; i++) {
        if (l.note[i] || !aibox_is_sound_name(l.path[i])) continue;
        if (*n == *cap) {
            int c = *cap ? 2 * *cap : 32;
            char **g = realloc(*v, sizeof *g * (size_t)c);
            if (!g) ok = 0;
            else *v = g, *cap = c;
        }
        if (ok) ok = ((*v)[*n] = strdup(l.path[i])) != NULL, *n += ok;
    }
    aibox_file_list_free(&l);
    return ok;
}

/* The rate of the first readable recording of a dataset folder (DATA/train/<class> or DATA/<class>); why as
 * first_rate's. */
static double data_first_rate(const char *data, char *why, size_t why_size)
{
    char top[4200];
    struct stat st;
    snprintf(top, sizeof top, "%s/train", data);
    const char *root = stat(top, &st) == 0 && S_ISDIR(st.st_mode) ? top : data;
    aibox_file_list classes = {0};
    aibox_error e = {0};
    if (aibox_list_files(&classes, root, &(aibox_list_opts){.folders = 1}, &e)) return 0;
    double rate = 0;
    for (int c = 0; c < classes.n && rate <= 0; c++) {
        char **files = NULL;
        int n = 0, cap = 0;
        add_sound_files(classes.path[c], &files, &n, &cap);
        rate = first_rate(files, n, why, why_size);
        for (int i = 0; i < n; i++) free(files[i]);
        free(files);
    }
    aibox_file_list_free(&classes);
    return rate;
}

/* Window and hop in seconds (<= 0: not given) into samples of o at its rate. */
static int set_window(const char *prog, aibox_sound_opts *o, double window_s, double hop_s)
{
    double rate = o->spec.rate;
    if (window_s > 0) {
        o->window = lround(window_s * rate);
        o->hop = o->window / 2 > 0 ? o->window / 2 : 1;
    }
    if (hop_s > 0) o->hop = lround(hop_s * rate);
    if (o->window < 16 || o->hop < 1) {
        fprintf(stderr, "%s: at %g Hz a window of %g s is %ld samples and a hop of %g s %ld samples: a window "
                        "needs at least 16 and a hop at least 1\n",
                prog, rate, window_s > 0 ? window_s : (double)o->window / rate, o->window,
                hop_s > 0 ? hop_s : (double)o->hop / rate, o->hop);
        return 0;
    }
    /* a spectrogram frame may not be longer than the window */
    if (o->input != AIBOX_SOUND_RAW && o->spec.n_fft > o->window) {
        int nfft = 2;
        while ((long)nfft * 2 <= o->window) nfft *= 2;
        o->spec.n_fft = nfft, o->spec.hop = nfft / 2;
    }
    return 1;
}

static void window_json(cli_json *j, const aibox_sound_opts *o)
{
    cj_num(j, "rate", "%g", o->spec.rate);
    cj_obj(j, "window");
    cj_int(j, "samples", o->window), cj_num(j, "seconds", "%.6g", o->window / o->spec.rate);
    cj_close(j);
    cj_obj(j, "hop");
    cj_int(j, "samples", o->hop), cj_num(j, "seconds", "%.6g", o->hop / o->spec.rate);
    cj_close(j);
    cj_str(j, "input", aibox_sound_input_name(o->input));
    cj_str(j, "norm", aibox_sound_norm_name(o->norm));
    if (o->input != AIBOX_SOUND_RAW) {
        cj_int(j, "n_fft", o->spec.n_fft), cj_int(j, "frame_hop", o->spec.hop), cj_int(j, "mels", o->spec.n_mels);
    }
}

static void install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ------------------------------------------------------------------ sound: the classifier */
typedef struct sound_args {
    const char *data, *out, *net, *out_dir;
    double rate, window_s, hop_s, lr, val_split, dropout;
    long mels, epochs, batch, patience, seed, threads;
    int channel, strict, quiet;
} sound_args;

static int parse_sound(int argc, char **argv, sound_args *a, int *done)
{
    const char *prog = "aibox-train sound";
    *a = (sound_args){.net = "cnn2d", .val_split = 0.2, .dropout = 0.25, .epochs = 20, .batch = 32, .seed = 1,
                      .channel = AIBOX_CHANNEL_MIX};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (cli_help_or_version(prog, o, usage_sound)) return *done = 1, 0;
        else if ((!strcmp(o, "-o") || !strcmp(o, "--output")) && v) a->out = v, i++;
        else if (!strcmp(o, "--out-dir") && v) a->out_dir = v, i++;
        else if (!strcmp(o, "--net") && v) {
            if (strcmp(v, "cnn2d") && strcmp(v, "cnn1d"))
                ok = 0, fprintf(stderr, "%s: --net must be cnn2d or cnn1d (got '%s')\n", prog, v);
            a->net = v, i++;
        } else if (!strcmp(o, "--rate")) ok = parse_rate(prog, v, &a->rate), i++;
        else if (!strcmp(o, "--window")) ok = cli_float(prog, o, v, 1e-6, 3600, &a->window_s), i++;
        else if (!strcmp(o, "--hop")) ok = cli_float(prog, o, v, 1e-6, 3600, &a->hop_s), i++;
        else if (!strcmp(o, "--mels")) ok = cli_int(prog, o, v, 1, 1024, &a->mels), i++;
        else if (!strcmp(o, "--channel")) ok = parse_channel(prog, v, &a->channel), i++;
        else if (!strcmp(o, "--epochs")) ok = cli_int(prog, o, v, 1, 1000000, &a->epochs), i++;
        else if (!strcmp(o, "--batch")) ok = cli_int(prog, o, v, 1, 4096, &a->batch), i++;
        else if (!strcmp(o, "--patience")) ok = cli_int(prog, o, v, 0, 1000000, &a->patience), i++;
        else if (!strcmp(o, "--threads")) ok = cli_int(prog, o, v, 1, 1024, &a->threads), i++;
        else if (!strcmp(o, "--seed")) ok = cli_int(prog, o, v, 0, 0x7fffffffL, &a->seed), i++;
        else if (!strcmp(o, "--lr")) ok = cli_float(prog, o, v, 1e-9, 10, &a->lr), i++;
        else if (!strcmp(o, "--val-split")) ok = cli_float(prog, o, v, 0, 0.9, &a->val_split), i++;
        else if (!strcmp(o, "--dropout")) ok = cli_float(prog, o, v, 0, 0.95, &a->dropout), i++;
        else if (!strcmp(o, "--strict")) a->strict = 1;
        else if (!strcmp(o, "--quiet")) a->quiet = 1;
        else if (o[0] != '-' && !a->data) a->data = o;
        else {
            fprintf(stderr, "%s: unknown option, missing value or extra argument '%s' (see --help)\n", prog, o);
            return 2;
        }
        if (!ok) return 2;
    }
    const char *bad = !a->data ? "no data folder given (see --help)"
                      : !a->out ? "no output model given (-o MODEL.aibox)"
                      : a->mels && !strcmp(a->net, "cnn1d") ? "--mels sets the spectrogram of cnn2d; cnn1d reads raw samples"
                                                            : NULL;
    if (bad) return fprintf(stderr, "%s: %s\n", prog, bad), 2;
    return 0;
}

/* Figures of a model on one split: window level and recording level. */
typedef struct split_eval {
    int K, recs, rec_right;
    long windows, right;
    long *conf;      /* K x K windows, [true][predicted] */
    long *rconf;     /* K x K recordings */
} split_eval;

static void split_eval_free(split_eval *e)
{
    free(e->conf), free(e->rconf);
    memset(e, 0, sizeof *e);
}

static aibox_status fail(aibox_error *e, aibox_status s, const char *msg)
{
    e->code = s;
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    return s;
}

static aibox_status eval_split(const aibox_model *m, const aibox_sound_dataset *ds, aibox_split sp, int batch,
                               int threads, split_eval *ev, aibox_error *err)
{
    const int K = aibox_sound_dataset_class_count(ds), n_rec = aibox_sound_dataset_recordings(ds, sp);
    memset(ev, 0, sizeof *ev);
    ev->K = K;
    int c, h, w;
    aibox_status s = aibox_sound_input_shape(aibox_sound_dataset_opts(ds), &c, &h, &w, err);
    if (s) return s;
    size_t in = (size_t)c * h * w;
    ev->conf = calloc((size_t)K * K, sizeof *ev->conf), ev->rconf = calloc((size_t)K * K, sizeof *ev->rconf);
    float *x = malloc(sizeof *x * in * (size_t)batch);
    double *p = malloc(sizeof *p * (size_t)K), *mean = malloc(sizeof *mean * (size_t)K);
    aibox_ctx *ctx = NULL;
    if (!ev->conf || !ev->rconf || !x || !p || !mean) s = fail(err, AIBOX_E_NOMEM, "out of memory");
    if (!s) s = aibox_ctx_create(&ctx, m, &(aibox_ctx_opts){.max_batch = batch, .threads = threads, .seed = 1}, err);
    if (!s) s = aibox_ctx_freeze_weights(ctx, m, err);
    const int probs = aibox_model_outputs_probabilities(m);
    for (int r = 0; !s && r < n_rec; r++) {
        long first, count;
        aibox_sound_dataset_recording_windows(ds, sp, r, &first, &count);
        const int truth = aibox_sound_dataset_recording_label(ds, sp, r);
        for (int k = 0; k < K; k++) mean[k] = 0;
        for (long j0 = 0; !s && j0 < count; j0 += batch) {
            int n = (int)(count - j0 < batch ? count - j0 : batch), label, k;
            for (int b = 0; b < n; b++)
                memcpy(x + in * b, aibox_sound_dataset_window(ds, sp, first + j0 + b, &label), sizeof *x * in);
            if ((s = aibox_ctx_infer(ctx, m, x, n, err))) break;
            const float *out = aibox_ctx_output(ctx, &k, NULL, NULL);
            if (k != K) {
                s = fail(err, AIBOX_E_INVALID, "the model's outputs are not one per class");
                break;
            }
            for (int b = 0; b < n; b++) {
                const int best = aibox_output_probabilities(out + (size_t)b * k, k, probs, p);
                if (best < 0) {
                    s = fail(err, AIBOX_E_NONFINITE, "the model's outputs are not finite numbers");
                    break;
                }
                for (int q = 0; q < K; q++) mean[q] += p[q] / count;
                ev->conf[truth * K + best]++;
                ev->right += best == truth;
                ev->windows++;
            }
        }
        if (s || count == 0) continue;
        int best = 0;
        for (int q = 1; q < K; q++)
            if (mean[q] > mean[best]) best = q;
        ev->rconf[truth * K + best]++;
        ev->rec_right += best == truth;
        ev->recs++;
    }
    aibox_ctx_free(&ctx);
    free(x), free(p), free(mean);
    if (s) split_eval_free(ev);
    return s;
}

static void eval_json(cli_json *j, const char *key, const split_eval *e, const aibox_sound_dataset *ds)
{
    const int K = e->K;
    cj_obj(j, key);
    cj_int(j, "recordings", e->recs), cj_int(j, "windows", e->windows);
    cj_num(j, "window_acc", "%.6f", e->windows ? (double)e->right / e->windows : NAN);
    cj_num(j, "recording_acc", "%.6f", e->recs ? (double)e->rec_right / e->recs : NAN);
    cj_obj(j, "per_class");
    for (int c = 0; c < K; c++) {
        long nw = 0, nr = 0;
        for (int q = 0; q < K; q++) nw += e->conf[c * K + q], nr += e->rconf[c * K + q];
        cj_obj(j, aibox_sound_dataset_class_name(ds, c));
        cj_int(j, "windows", nw);
        cj_num(j, "window_acc", "%.6f", nw ? (double)e->conf[c * K + c] / nw : NAN);
        cj_int(j, "recordings", nr);
        cj_num(j, "recording_acc", "%.6f", nr ? (double)e->rconf[c * K + c] / nr : NAN);
        cj_close(j);
    }
    cj_close(j);
    cj_arr(j, "confusion"); /* windows; rows: true class, columns: predicted, in "classes" order */
    for (int c = 0; c < K; c++) {
        cj_arr(j, NULL);
        for (int q = 0; q < K; q++) cj_int(j, NULL, e->conf[c * K + q]);
        cj_close(j);
    }
    cj_close(j);
    cj_arr(j, "recording_confusion");
    for (int c = 0; c < K; c++) {
        cj_arr(j, NULL);
        for (int q = 0; q < K; q++) cj_int(j, NULL, e->rconf[c * K + q]);
        cj_close(j);
    }
    cj_close(j);
    cj_close(j);
}

typedef struct progress {
    int tty, quiet;
} progress;

static void on_progress(void *user, const aibox_train_progress *p)
{
    const progress *pr = user;
    if (pr->quiet) return;
    if (!p->end_of_epoch) {
        if (pr->tty)
            fprintf(stderr, "\repoch %d/%d %ld/%ld loss %.4f acc %.4f  ", p->epoch + 1, p->epochs, p->done, p->total,
                    p->loss, p->acc);
        return;
    }
    if (pr->tty) fputc('\r', stderr);
    fprintf(stderr, "epoch %d/%d: loss %.4f acc %.4f", p->epoch + 1, p->epochs, p->loss, p->acc);
    if (!isnan(p->val_loss)) fprintf(stderr, " val_loss %.4f val_acc %.4f", p->val_loss, p->val_acc);
    fprintf(stderr, " lr %.3g %.1fs%s\n", p->lr, p->epoch_seconds, p->improved ? " *" : "");
}

static const char *const split_names[AIBOX_SPLIT_COUNT] = {"train", "val", "test"};

static void print_sound_summary(const sound_args *a, const char *out_dir, const aibox_sound_dataset *ds,
                                const aibox_model *m, const aibox_train_result *res, const split_eval *val,
                                const split_eval *test)
{
    const aibox_sound_opts *so = aibox_sound_dataset_opts(ds);
    const int K = aibox_sound_dataset_class_count(ds);
    int c, h, w;
    aibox_model_input_shape(m, &c, &h, &w);
    cli_json j;
    cj_begin(&j, stdout);
    cj_str(&j, "model", a->out);
    cj_str(&j, "out_dir", out_dir);
    cj_str(&j, "net", a->net);
    window_json(&j, so);
    cj_arr(&j, "input_shape");
    cj_int(&j, NULL, c), cj_int(&j, NULL, h), cj_int(&j, NULL, w);
    cj_close(&j);
    cj_int(&j, "parameters", (long long)aibox_model_param_count(m));
    cj_arr(&j, "classes");
    for (int k = 0; k < K; k++) cj_str(&j, NULL, aibox_sound_dataset_class_name(ds, k));
    cj_close(&j);
    cj_obj(&j, "recordings");
    for (int sp = 0; sp < AIBOX_SPLIT_COUNT; sp++)
        cj_int(&j, split_names[sp], aibox_sound_dataset_recordings(ds, (aibox_split)sp));
    cj_close(&j);
    cj_obj(&j, "windows");
    for (int sp = 0; sp < AIBOX_SPLIT_COUNT; sp++)
        cj_int(&j, split_names[sp], aibox_sound_dataset_windows(ds, (aibox_split)sp));
    cj_close(&j);
    cj_int(&j, "epochs_run", res->epochs_run);
    cj_int(&j, "best_epoch", res->best_epoch + 1);
    cj_num(&j, "best_val_acc", "%.6f", res->best_val_acc);
    cj_num(&j, "best_val_loss", "%.6f", res->best_val_loss);
    cj_bool(&j, "stopped_early", res->stopped_early);
    if (val->K) eval_json(&j, "val", val, ds);
    else cj_null(&j, "val");
    if (test->K) eval_json(&j, "test", test, ds);
    else cj_null(&j, "test");
    cj_num(&j, "seconds", "%.3f", res->seconds);
    cj_arr(&j, "skipped");
    for (int i = 0; i < aibox_sound_dataset_skipped_count(ds); i++) {
        const char *p, *why;
        if (aibox_sound_dataset_skipped(ds, i, &p, &why)) continue;
        cj_obj(&j, NULL);
        cj_str(&j, "file", p), cj_str(&j, "reason", why);
        cj_close(&j);
    }
    cj_close(&j);
    cj_end(&j);
}

static int sound_classifier(int argc, char **argv)
{
    const char *prog = "aibox-train sound";
    sound_args a;
    int done = 0, rc = parse_sound(argc, argv, &a, &done);
    if (rc || done) return rc;
    aibox_error err = {0};
    const int cnn1d = !strcmp(a.net, "cnn1d");
    const aibox_sound_input input = cnn1d ? AIBOX_SOUND_RAW : AIBOX_SOUND_LOGMEL;
    char first_why[sizeof err.msg] = "";
    struct stat dst;
    if (stat(a.data, &dst) || !S_ISDIR(dst.st_mode)) { /* before anything is read from it */
        fprintf(stderr, "%s: %s: %s\n", prog, a.data,
                stat(a.data, &dst) ? "no such folder" : "not a folder (DATA holds a folder per class)");
        return 2;
    }
    double rate = a.rate > 0 ? a.rate : data_first_rate(a.data, first_why, sizeof first_why);
    if (!(rate > 0)) {
        /* the first unreadable recording says why (one line: the reason, naming its file) */
        fprintf(stderr, "%s: %s: no readable recording in its class folders (DATA/<class>/*.wav or "
                        "DATA/train/<class>/*.wav)%s%s\n", prog, a.data, first_why[0] ? "; the first tried: " : "",
                first_why);
        return 2;
    }
    aibox_sound_data_opts dopts;
    aibox_sound_data_opts_default(&dopts, rate, input);
    if (a.mels) dopts.sound.spec.n_mels = (int)a.mels;
    if (!set_window(prog, &dopts.sound, a.window_s, a.hop_s)) return 2;
    dopts.val_split = a.val_split, dopts.seed = (uint64_t)a.seed, dopts.channel = a.channel;
    dopts.strict = a.strict, dopts.threads = (int)a.threads;
    if (aibox_sound_opts_check(&dopts.sound, &err)) return fprintf(stderr, "%s: %s\n", prog, err.msg), 2;

    aibox_sound_dataset *ds = NULL;
    aibox_model *m = NULL;
    aibox_sound_batches *tb = NULL, *vb = NULL;
    split_eval val = {0}, test = {0};
    aibox_status s;
    if (!a.quiet) fprintf(stderr, "%s: reading %s at %g Hz\n", prog, a.data, rate);
    if ((s = aibox_sound_dataset_open(&ds, a.data, &dopts, &err))) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 2;
    }
    const int K = aibox_sound_dataset_class_count(ds);
    for (int i = 0; i < aibox_sound_dataset_skipped_count(ds); i++) {
        const char *p, *why;
        if (!aibox_sound_dataset_skipped(ds, i, &p, &why) && !a.quiet)
            fprintf(stderr, "%s: skipped %s: %s\n", prog, p, why);
    }
    const long n_train = aibox_sound_dataset_windows(ds, AIBOX_SPLIT_TRAIN),
               n_val = aibox_sound_dataset_windows(ds, AIBOX_SPLIT_VAL);
    if (!a.quiet)
        fprintf(stderr, "%s: %d classes; recordings (windows): train %d (%ld), val %d (%ld), test %d (%ld)\n", prog, K,
                aibox_sound_dataset_recordings(ds, AIBOX_SPLIT_TRAIN), n_train,
                aibox_sound_dataset_recordings(ds, AIBOX_SPLIT_VAL), n_val,
                aibox_sound_dataset_recordings(ds, AIBOX_SPLIT_TEST), aibox_sound_dataset_windows(ds, AIBOX_SPLIT_TEST));
    rc = 2;
    if (K < 2) fprintf(stderr, "%s: %s: %d class%s: a classifier needs at least two class folders\n", prog, a.data, K, K == 1 ? "" : "es");
    else if (n_train < 1) fprintf(stderr, "%s: %s: no training windows (every recording shorter than a window of %g s?)\n", prog, a.data,
                                  aibox_sound_dataset_opts(ds)->window / rate);
    else if ((s = aibox_sound_preset(&m, a.net, aibox_sound_dataset_opts(ds), K, (float)a.dropout, (uint64_t)a.seed, &err)) ||
             (s = aibox_sound_batches_create(&tb, ds, AIBOX_SPLIT_TRAIN, (int)a.batch, 1, (uint64_t)a.seed, &err)) ||
             (n_val > 0 && (s = aibox_sound_batches_create(&vb, ds, AIBOX_SPLIT_VAL, (int)a.batch, 0, (uint64_t)a.seed, &err))))
        fprintf(stderr, "%s: %s\n", prog, err.msg);
    else rc = -1;
    char dir_buf[4200];
    const char *out_dir = a.out_dir;
    if (!out_dir) { /* MODEL.train, as aibox-train */
        snprintf(dir_buf, sizeof dir_buf, "%s", a.out);
        char *dot = strrchr(dir_buf, '.');
        if (dot && !strcmp(dot, ".aibox") && !strchr(dot, '/')) *dot = 0;
        strncat(dir_buf, ".train", sizeof dir_buf - strlen(dir_buf) - 1);
        out_dir = dir_buf;
    }
    aibox_train_result res;
    memset(&res, 0, sizeof res);
    if (rc < 0) {
        aibox_batch_source tsrc = aibox_sound_batches_source(tb), vsrc = vb ? aibox_sound_batches_source(vb) : tsrc;
        if ((s = tsrc.describe ? tsrc.describe(tsrc.user, m, &err) : AIBOX_OK) ||
            (s = aibox_model_set_meta_str(m, AIBOX_META_TASK, "classify", &err)) ||
            (s = aibox_model_set_meta_int(m, "aibox.seed", a.seed, &err))) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            rc = 2;
        } else {
            mkdir(out_dir, 0777);
            progress pr = {isatty(2), a.quiet};
            aibox_train_opts to = {.epochs = (int)a.epochs,
                                   .optim = {.kind = AIBOX_ADAM, .lr = (float)a.lr},
                                   .patience = (int)a.patience,
                                   .seed = (uint64_t)a.seed,
                                   .out_dir = out_dir,
                                   .stop = (const volatile int *)&stop_flag,
                                   .on_progress = on_progress,
                                   .user = &pr};
            install_handlers();
            if (!a.quiet) {
                int c, h, w;
                aibox_model_input_shape(m, &c, &h, &w);
                fprintf(stderr, "%s: %s on %dx%dx%d windows, %zu parameters, %d threads\n", prog, a.net, c, h, w,
                        aibox_model_param_count(m), a.threads ? (int)a.threads : aibox_default_num_threads());
            }
            s = aibox_train(m, &tsrc, (int)a.batch, vb ? &vsrc : NULL, &to, (int)a.threads, &res, &err);
            if (s) {
                fprintf(stderr, "%s: %s\n", prog, err.msg);
                rc = s == AIBOX_E_INTERRUPTED ? 130 : 3;
            }
        }
    }
    if (rc < 0) {
        const int batch = (int)a.batch, thr = (int)a.threads;
        if (n_val > 0 && eval_split(m, ds, AIBOX_SPLIT_VAL, batch, thr, &val, &err))
            fprintf(stderr, "%s: validation split: %s\n", prog, err.msg);
        if (aibox_sound_dataset_windows(ds, AIBOX_SPLIT_TEST) > 0 &&
            eval_split(m, ds, AIBOX_SPLIT_TEST, batch, thr, &test, &err))
            fprintf(stderr, "%s: test split: %s\n", prog, err.msg);
        if (!isnan(res.best_val_acc)) aibox_model_set_meta_float(m, "aibox.train.val_acc", res.best_val_acc, NULL);
        if (aibox_model_save(m, a.out, &err)) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            rc = 3;
        } else {
            print_sound_summary(&a, out_dir, ds, m, &res, &val, &test);
            rc = 0;
        }
    }
    split_eval_free(&val), split_eval_free(&test);
    aibox_sound_batches_free(&tb), aibox_sound_batches_free(&vb);
    aibox_model_free(&m);
    aibox_sound_dataset_free(&ds);
    return rc;
}

/* ------------------------------------------------------------------ sound-outlier: the detector */
static int sound_outlier(int argc, char **argv)
{
    const char *prog = "aibox-train sound-outlier", *out = NULL, *rule = "max";
    double rate = 0, window_s = 0, hop_s = 0, reg = 0.01, held = 0.2;
    long mels = 0, threads = 0;
    int channel = AIBOX_CHANNEL_MIX, quiet = 0;
    char **goods = calloc((size_t)argc + 1, sizeof *goods);
    if (!goods) return fprintf(stderr, "%s: out of memory\n", prog), 3;
    int n_goods = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (cli_help_or_version(prog, o, usage_outlier)) return free(goods), 0;
        else if ((!strcmp(o, "-o") || !strcmp(o, "--output")) && v) out = v, i++;
        else if (!strcmp(o, "--threshold") && v) rule = v, i++;
        else if (!strcmp(o, "--rate")) ok = parse_rate(prog, v, &rate), i++;
        else if (!strcmp(o, "--window")) ok = cli_float(prog, o, v, 1e-6, 3600, &window_s), i++;
        else if (!strcmp(o, "--hop")) ok = cli_float(prog, o, v, 1e-6, 3600, &hop_s), i++;
        else if (!strcmp(o, "--mels")) ok = cli_int(prog, o, v, 1, 1024, &mels), i++;
        else if (!strcmp(o, "--channel")) ok = parse_channel(prog, v, &channel), i++;
        else if (!strcmp(o, "--reg")) ok = cli_float(prog, o, v, 1e-9, 1e6, &reg), i++;
        else if (!strcmp(o, "--held-out")) ok = cli_float(prog, o, v, 0.01, 0.9, &held), i++;
        else if (!strcmp(o, "--threads")) ok = cli_int(prog, o, v, 1, 1024, &threads), i++;
        else if (!strcmp(o, "--quiet")) quiet = 1;
        else if (o[0] != '-') goods[n_goods++] = argv[i];
        else {
            fprintf(stderr, "%s: unknown option or missing value '%s' (see --help)\n", prog, o);
            ok = 0;
        }
        if (!ok) return free(goods), 2;
    }
    aibox_error err = {0};
    aibox_sound_fit_opts fo;
    int rc = 2;
    char **paths = NULL;
    int n = 0, cap = 0;
    if (!n_goods || !out) {
        fprintf(stderr, "%s: needs GOOD recordings or folders and -o MODEL.aibox (see --help)\n", prog);
        goto done;
    }
    aibox_threshold_spec spec;
    if (aibox_threshold_parse(rule, &spec, &err)) {
        fprintf(stderr, "%s: --threshold: %s\n", prog, err.msg);
        goto done;
    }
    for (int i = 0; i < n_goods; i++) { /* folders: their sound files, sorted */
        struct stat st;
        if (stat(goods[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            int before = n;
            if (!add_sound_files(goods[i], &paths, &n, &cap)) {
                fprintf(stderr, "%s: %s: cannot list the folder\n", prog, goods[i]);
                goto done;
            }
            if (n == before) {
                fprintf(stderr, "%s: %s: no sound file in the folder\n", prog, goods[i]);
                goto done;
            }
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            char **g = realloc(paths, sizeof *g * (size_t)cap);
            if (!g) goto done;
            paths = g;
        }
        if (!(paths[n] = strdup(goods[i]))) goto done;
        n++;
    }
    char why[sizeof err.msg] = "";
    if (!(rate > 0)) rate = first_rate(paths, n, why, sizeof why);
    if (!(rate > 0)) { /* the first one's reason, naming the file */
        if (n == 1) fprintf(stderr, "%s: %s\n", prog, why);
        else fprintf(stderr, "%s: none of the %d recordings can be read; the first: %s\n", prog, n, why);
        goto done;
    }
    aibox_sound_fit_opts_default(&fo, rate);
    if (mels) fo.sound.spec.n_mels = (int)mels;
    if (!set_window(prog, &fo.sound, window_s, hop_s)) goto done;
    fo.reg = reg, fo.held_out = held, fo.threshold = spec, fo.channel = channel, fo.threads = (int)threads;
    if (aibox_sound_opts_check(&fo.sound, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        goto done;
    }
    if (!quiet)
        fprintf(stderr, "%s: fitting on %d recording%s at %g Hz, windows of %ld samples every %ld\n", prog, n,
                n == 1 ? "" : "s", rate, fo.sound.window, fo.sound.hop);
    double t0 = cli_now();
    aibox_model *m = NULL;
    aibox_threshold_stats st;
    memset(&st, 0, sizeof st);
    aibox_status s = aibox_sound_detector_fit_files(&m, (const char *const *)paths, n, &fo, &st, &err);
    if (s) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        rc = s == AIBOX_E_NOMEM || s == AIBOX_E_NONFINITE ? 3 : 2; /* mostly the data: unreadable, too short */
        goto done;
    }
    double fit_seconds = cli_now() - t0;
    if (aibox_model_save(m, out, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        aibox_model_free(&m);
        rc = 3;
        goto done;
    }
    aibox_thresholds t;
    if (aibox_thresholds_from_model(&t, m, &err)) t.image = NAN;
    aibox_sound_opts so;
    if (aibox_sound_opts_from_model(&so, m, &err)) so = fo.sound;
    int c, h, w;
    aibox_model_input_shape(m, &c, &h, &w);
    struct stat sb;
    cli_json j;
    cj_begin(&j, stdout);
    cj_str(&j, "model", out);
    cj_str(&j, "method", "gaussian");
    cj_int(&j, "recordings", n);
    window_json(&j, &so);
    cj_int(&j, "dims", (long long)c * h * w);
    cj_num(&j, "reg", "%g", reg);
    cj_num(&j, "held_out", "%g", held);
    cj_num(&j, "threshold", "%.6g", t.image);
    cj_str(&j, "threshold_rule", rule);
    cj_obj(&j, "holdout_scores"); /* the held-out normal windows' scores */
    cj_int(&j, "windows", st.good);
    cj_num(&j, "min", "%.6g", st.good_min), cj_num(&j, "mean", "%.6g", st.good_mean);
    cj_num(&j, "sd", "%.6g", st.good > 1 ? st.good_sd : NAN), cj_num(&j, "p99", "%.6g", st.good_p99);
    cj_num(&j, "max", "%.6g", st.good_max);
    cj_close(&j);
    cj_num(&j, "seconds", "%.3f", fit_seconds);
    cj_num(&j, "model_mb", "%.3f", stat(out, &sb) ? NAN : sb.st_size / 1048576.0);
    cj_end(&j);
    aibox_model_free(&m);
    rc = 0;
done:
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
    free(goods);
    return rc;
}

int sound_main(const char *cmd, int argc, char **argv)
{
    return !strcmp(cmd, "sound-outlier") ? sound_outlier(argc, argv) : sound_classifier(argc, argv);
}
