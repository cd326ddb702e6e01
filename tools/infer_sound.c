/* aibox-infer on sound and vibration models (infer_sound.h): each recording
 * or stream goes through an aibox_listener, which judges its windows with
 * the model (a classifier or the good-only detector); this prints a JSON line
 * per window and per recording and keeps the exit status. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "aibox.h"
#include "cli.h"
#include "infer_sound.h"
#include "record.h"

static const char prog[] = "aibox-infer";

void sound_cli_init(sound_cli *o)
{
    memset(o, 0, sizeof *o);
    o->raw = AIBOX_RAW_F32LE;
    o->channels = 1;
    o->channel = AIBOX_CHANNEL_MIX;
}

int sound_cli_parse_opt(sound_cli *o, const char *p, int argc, char **argv, int *i, int *ok)
{
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!strcmp(a, "--stream")) {
        o->stream = o->given = 1;
        return 1;
    }
    if (strcmp(a, "--rate") && strcmp(a, "--format-raw") && strcmp(a, "--channels") && strcmp(a, "--channel") &&
        strcmp(a, "--windows"))
        return 0;
    o->given = 1;
    (*i)++;
    if (!strcmp(a, "--rate")) {
        char *end;
        double r = v ? strtod(v, &end) : NAN;
        o->stream_only = 1;
        if (!v || !*v || *end || !(r > 0 && r <= 1e7))
            *ok = 0, fprintf(stderr, "%s: --rate needs the stream's sample rate in Hz, a number above 0 and at most "
                                     "10000000 (got '%s')\n", p, v ? v : "");
        else o->rate = r;
    } else if (!strcmp(a, "--format-raw")) {
        o->stream_only = 1;
        if (v && !strcmp(v, "f32le")) o->raw = AIBOX_RAW_F32LE;
        else if (v && !strcmp(v, "s16le")) o->raw = AIBOX_RAW_S16LE;
        else *ok = 0, fprintf(stderr, "%s: --format-raw must be f32le or s16le (got '%s')\n", p, v ? v : "");
    } else if (!strcmp(a, "--channels")) {
        o->stream_only = 1;
        *ok = cli_int(p, a, v, 1, 64, &o->channels);
    } else if (!strcmp(a, "--channel")) {
        char *end;
        long c = v ? strtol(v, &end, 10) : -1;
        if (v && !strcmp(v, "mix")) o->channel = AIBOX_CHANNEL_MIX;
        else if (!v || !*v || *end || c < 0 || c > 63)
            *ok = 0, fprintf(stderr, "%s: --channel must be a channel number from 0 to 63 or mix (got '%s')\n", p,
                             v ? v : "");
        else o->channel = (int)c;
    } else {
        if (v && !strcmp(v, "none")) o->no_windows = 1;
        else if (v && !strcmp(v, "all")) o->no_windows = 0;
        else *ok = 0, fprintf(stderr, "%s: --windows must be all or none (got '%s')\n", p, v ? v : "");
    }
    return 1;
}

int sound_infer_wanted(const sound_cli *o, const char *model)
{
    if (o->given) return 1;
    aibox_model *m = NULL;
    aibox_error err = {0};
    if (aibox_model_load_info(&m, model, &err)) return 0; /* aibox-infer says why */
    int yes = aibox_model_is_sound(m);
    aibox_model_free(&m);
    return yes;
}

/* ------------------------------------------------------------------ the run */
typedef struct run {
    const sound_cli *o;
    const sound_infer_args *a;
    aibox_model *m;
    aibox_listener *l;
    double l_rate;     /* the input rate l was made for */
    int K;             /* classes; 0 for a detector */
    double *sum_probs; /* K: the probabilities summed over the current input's windows */
    double threshold;  /* detector */
    const char *file;  /* the input being judged */
    int worst;         /* exit status so far */
    long bad_windows;  /* NG or uncertain windows of the current input */
} run;

static void worse(run *r, int rc)
{
    if (r->worst < rc) r->worst = rc;
}

/* {"file", "error"} on stdout, the message (naming the file) on stderr. */
static void emit_error(run *r, const char *file, const char *msg)
{
    char buf[4600];
    if (strncmp(msg, file, strlen(file))) snprintf(buf, sizeof buf, "%s: %s", file, msg);
    else snprintf(buf, sizeof buf, "%s", msg);
    cli_json j;
    cj_begin(&j, stdout);
    cj_str(&j, "file", file);
    cj_str(&j, "error", buf);
    cj_end(&j);
    fflush(stdout);
    fprintf(stderr, "%s: %s\n", prog, buf);
    worse(r, 2);
}

static const char *cls_verdict(const run *r, int label, double confidence, const char *name)
{
    const record_policy pol = {r->a->min_conf, r->a->ok, r->a->n_ok};
    const aibox_classification c = {label, confidence, name};
    return record_cls_verdict(&pol, &c);
}

static int bad_verdict(const char *v) { return strcmp(v, "OK") && strcmp(v, "classified"); }

static aibox_status on_window(void *user, const aibox_sound_result *res, const double *probs, aibox_error *err)
{
    run *r = user;
    const char *verdict;
    if (res->anomaly) {
        verdict = res->ng ? "NG" : "OK";
    } else {
        verdict = cls_verdict(r, res->label, res->confidence, res->name);
        for (int k = 0; probs && k < r->K; k++) r->sum_probs[k] += probs[k];
    }
    if (bad_verdict(verdict)) r->bad_windows++;
    if (r->o->stream && bad_verdict(verdict)) worse(r, 1);
    if (r->o->no_windows) return AIBOX_OK;
    cli_json j;
    cj_begin(&j, stdout);
    cj_str(&j, "file", r->file);
    cj_int(&j, "window", res->index);
    cj_arr(&j, "t");
    cj_num(&j, NULL, "%.6f", res->t_start), cj_num(&j, NULL, "%.6f", res->t_end);
    cj_close(&j);
    if (res->anomaly) {
        cj_num(&j, "score", "%.6g", res->score);
        cj_num(&j, "norm_score", "%.6f", res->norm_score);
        cj_num(&j, "threshold", "%.6g", res->threshold);
    } else {
        cj_str(&j, "label", res->name);
        cj_num(&j, "confidence", "%.6f", res->confidence);
        cj_obj(&j, "probs");
        for (int k = 0; probs && k < r->K; k++) cj_num(&j, aibox_listener_class_name(r->l, k), "%.6f", probs[k]);
        cj_close(&j);
    }
    cj_str(&j, "verdict", verdict);
    cj_end(&j);
    if (fflush(stdout)) { /* the reader went away: stop */
        snprintf(err->msg, sizeof err->msg, "cannot write the result lines");
        return err->code = AIBOX_E_IO;
    }
    return AIBOX_OK;
}

/* The listener for input at rate (re-made when the rate changes). */
static aibox_status listener_for(run *r, double rate, aibox_error *err)
{
    if (r->l && r->l_rate == rate) return AIBOX_OK;
    aibox_listener_free(&r->l);
    aibox_status s = aibox_listener_create(&r->l, r->m, rate, r->a->threads, err);
    if (!s) r->l_rate = rate;
    return s;
}

static void begin_input(run *r, const char *file)
{
    r->file = file;
    r->bad_windows = 0;
    for (int k = 0; k < r->K; k++) r->sum_probs[k] = 0;
}

/* The recording's line; extra: an error to state in it (a stream cut short), or NULL. */
static void emit_summary(run *r, const aibox_sound_summary *sum, double seconds, double ms, const char *extra)
{
    cli_json j;
    const char *verdict;
    if (sum->windows == 0) verdict = NULL; /* nothing judged (a stream shorter than one window) */
    else if (sum->anomaly) verdict = sum->ng ? "NG" : "OK";
    else verdict = cls_verdict(r, sum->label, sum->confidence, sum->name);
    if (!r->o->stream && verdict && bad_verdict(verdict)) worse(r, 1);
    cj_begin(&j, stdout);
    cj_str(&j, "file", r->file);
    cj_bool(&j, "recording", 1);
    cj_int(&j, "windows", sum->windows);
    cj_num(&j, "seconds", "%.6f", seconds);
    if (sum->anomaly) {
        cj_num(&j, "score", "%.6g", sum->windows ? sum->score : NAN);
        cj_num(&j, "norm_score", "%.6f", sum->windows ? sum->norm_score : NAN);
        cj_num(&j, "threshold", "%.6g", r->threshold);
        cj_int(&j, "ng_windows", sum->ng_windows);
    } else {
        cj_str(&j, "label", sum->name);
        cj_num(&j, "confidence", "%.6f", sum->windows ? sum->confidence : NAN);
        cj_obj(&j, "probs"); /* the mean over the windows */
        for (int k = 0; k < r->K; k++)
            cj_num(&j, aibox_listener_class_name(r->l, k), "%.6f", sum->windows ? r->sum_probs[k] / sum->windows : NAN);
        cj_close(&j);
        cj_int(&j, "ng_windows", r->bad_windows); /* NG or uncertain */
    }
    cj_str(&j, "verdict", verdict);
    cj_int(&j, "dropped", sum->dropped);
    cj_num(&j, "ms", "%.3f", ms);
    if (extra) cj_str(&j, "error", extra);
    cj_end(&j);
    fflush(stdout);
}

static void judge_file(run *r, const char *path)
{
    double t0 = cli_now();
    aibox_signal sig = {0};
    aibox_error err = {0};
    aibox_sound_summary sum;
    begin_input(r, path);
    if (aibox_signal_load(&sig, path, &(aibox_signal_opts){.channel = r->o->channel}, &err))
        return emit_error(r, path, err.msg);
    if (listener_for(r, sig.rate, &err) || aibox_listener_push(r->l, sig.data, sig.frames, on_window, r, &err) ||
        aibox_listener_finish(r->l, on_window, r, &sum, &err)) {
        aibox_listener_free(&r->l); /* whatever it held is not carried to the next input */
        aibox_signal_free(&sig);
        return emit_error(r, path, err.msg);
    }
    const double seconds = sig.frames / sig.rate;
    aibox_signal_free(&sig);
    if (sum.windows == 0) {
        const aibox_sound_opts *so = aibox_listener_opts(r->l);
        char msg[512];
        snprintf(msg, sizeof msg, "too short: %.6g s, shorter than one window of the model (%.6g s)", seconds,
                 so->window / so->spec.rate);
        return emit_error(r, path, msg);
    }
    emit_summary(r, &sum, seconds, (cli_now() - t0) * 1e3, NULL);
}

static void judge_dir(run *r, const char *dir)
{
    aibox_file_list l = {0};
    aibox_error err = {0};
    if (aibox_list_files(&l, dir, NULL, &err)) return emit_error(r, dir, err.msg);
    int n = 0;
    for (int i = 0; i < l.n; i++) {
        if (!aibox_is_sound_name(l.path[i])) continue;
        n++;
        if (l.note[i]) emit_error(r, l.path[i], l.note[i]); /* a FIFO, a broken link */
        else judge_file(r, l.path[i]);
    }
    aibox_file_list_free(&l);
    if (!n) emit_error(r, dir, "no sound file in the folder (wav, flac, ogg, aiff, au, caf, w64, rf64, mp3)");
}

static long gcd(long a, long b)
{
    while (b) {
        long t = a % b;
        a = b, b = t;
    }
    return a;
}

/* --stream: chunks of the raw stream through the listener, a line per window as it completes. */
static int judge_stream(run *r)
{
    const sound_cli *o = r->o;
    const char *path = r->a->n_inputs ? r->a->inputs[0] : "-";
    const int use_stdin = !strcmp(path, "-");
    const char *name = use_stdin ? "stdin" : path;
    aibox_error err = {0};
    if (o->channel >= o->channels) {
        fprintf(stderr, "%s: --channel %d: the stream has %ld channel%s (--channels)\n", prog, o->channel,
                o->channels, o->channels == 1 ? "" : "s");
        return 2;
    }
    if (listener_for(r, o->rate, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 2;
    }
    const aibox_sound_opts *so = aibox_listener_opts(r->l);
    long chunk;
    if (o->rate == so->spec.rate) chunk = gcd(so->window, so->hop); /* every window ends on a chunk's end */
    else chunk = (long)(so->hop * (o->rate / so->spec.rate) / 4);
    if (chunk < 1) chunk = 1;
    while (chunk > 65536 && chunk % 2 == 0) chunk /= 2; /* small, and still a divisor where possible */
    if (chunk > 65536) chunk = 65536;
    FILE *f = use_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s: cannot open: %s\n", prog, path, strerror(errno));
        return 2;
    }
    aibox_signal_stream *st = NULL;
    float *buf = malloc(sizeof *buf * (size_t)chunk * (size_t)o->channels), *mono = malloc(sizeof *mono * (size_t)chunk);
    aibox_status s = !buf || !mono ? (snprintf(err.msg, sizeof err.msg, "out of memory"), AIBOX_E_NOMEM)
                                   : aibox_signal_stream_open(&st, f, name, o->raw, (int)o->channels, o->rate, chunk, &err);
    if (s) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        free(buf), free(mono);
        if (!use_stdin) fclose(f);
        return 2;
    }
    begin_input(r, name);
    double t0 = cli_now();
    long frames = 0;
    aibox_status read_s = AIBOX_OK, push_s = AIBOX_OK;
    char read_msg[sizeof err.msg] = "";
    for (;;) {
        long got = 0;
        read_s = aibox_signal_stream_next(st, buf, &got, &err);
        if (read_s) snprintf(read_msg, sizeof read_msg, "%s", err.msg);
        for (long i = 0; i < got; i++) {
            if (o->channel >= 0) mono[i] = buf[i * o->channels + o->channel];
            else {
                double sum = 0;
                for (long c = 0; c < o->channels; c++) sum += buf[i * o->channels + c];
                mono[i] = (float)(sum / o->channels);
            }
        }
        frames += got;
        if (got && (push_s = aibox_listener_push(r->l, mono, got, on_window, r, &err))) break;
        if (read_s || got == 0) break;
    }
    aibox_sound_summary sum;
    memset(&sum, 0, sizeof sum);
    if (push_s) {
        fprintf(stderr, "%s: %s: %s\n", prog, name, err.msg);
        worse(r, 2);
    } else if (aibox_listener_finish(r->l, on_window, r, &sum, &err)) {
        fprintf(stderr, "%s: %s: %s\n", prog, name, err.msg);
        worse(r, 2);
    } else {
        char msg[1400] = "", part[160] = "";
        const long partial = (long)aibox_signal_stream_partial_bytes(st);
        if (partial > 0)
            snprintf(part, sizeof part, "inside a frame (%ld byte%s of a %ld-byte frame left over)", partial,
                     partial == 1 ? "" : "s", o->channels * (o->raw == AIBOX_RAW_S16LE ? 2 : 4));
        if (read_s && read_s != AIBOX_E_CORRUPT) { /* a read error, a non-finite sample */
            snprintf(msg, sizeof msg, "%s (the windows before it were judged)", read_msg);
        } else if (sum.windows == 0 && !partial) {
            snprintf(msg, sizeof msg, "%s: the stream ended before its first window was complete: %ld sample%s, a "
                     "window takes %.6g s (%ld samples at the model's %g Hz)", name, frames, frames == 1 ? "" : "s",
                     so->window / so->spec.rate, so->window, so->spec.rate);
        } else if (partial > 0 || sum.dropped > 0) { /* CORRUPT with neither: whole frames, whole windows: clean */
            snprintf(msg, sizeof msg, "%s: the stream ends %s: %ld sample%s after the last whole window %s not judged",
                     name, part[0] ? part : "inside a window", sum.dropped, sum.dropped == 1 ? "" : "s",
                     sum.dropped == 1 ? "was" : "were");
        }
        emit_summary(r, &sum, frames / o->rate, (cli_now() - t0) * 1e3, msg[0] ? msg : NULL);
        if (msg[0]) fprintf(stderr, "%s: %s\n", prog, msg), worse(r, 2);
    }
    aibox_signal_stream_close(&st);
    free(buf), free(mono);
    if (!use_stdin) fclose(f);
    return r->worst;
}

/* --ok-class names classes of the model. */
static int check_ok_classes(const run *r)
{
    for (int i = 0; i < r->a->n_ok; i++) {
        int found = 0;
        for (int k = 0; k < r->K; k++) found |= !strcmp(aibox_listener_class_name(r->l, k), r->a->ok[i]);
        if (found) continue;
        fprintf(stderr, "%s: --ok-class '%s' is not one of the model's classes (", prog, r->a->ok[i]);
        for (int k = 0; k < r->K && k < 12; k++) fprintf(stderr, "%s%s", k ? ", " : "", aibox_listener_class_name(r->l, k));
        fprintf(stderr, "%s)\n", r->K > 12 ? ", ..." : "");
        return 0;
    }
    return 1;
}

/* Usage that does not fit a sound run; 0 or 2 (printed). */
static int check_usage(const sound_cli *o, const sound_infer_args *a)
{
    const char *bad = NULL;
    char msg[256];
    if (a->refused) {
        snprintf(msg, sizeof msg, "%s applies to image models, not to a sound model", a->refused);
        bad = msg;
    } else if (!a->jsonl) bad = "sound models print JSON lines only: --format csv and text are not supported for them";
    else if (o->stream && o->rate <= 0) bad = "--stream needs --rate HZ (a raw stream carries no sample rate)";
    else if (o->stream && a->n_inputs > 1) bad = "--stream reads one stream: standard input or one FILE";
    else if (!o->stream && o->stream_only) bad = "--rate, --format-raw and --channels describe a raw --stream";
    else if (!o->stream && a->n_inputs == 0) bad = "no recordings given (files, folders, or --stream; see --help)";
    for (int i = 0; !bad && !o->stream && i < a->n_inputs; i++)
        if (!strcmp(a->inputs[i], "-")) bad = "samples on standard input need --stream --rate HZ (raw samples)";
    if (!bad) return 0;
    fprintf(stderr, "%s: %s\n", prog, bad);
    return 2;
}

int sound_infer_main(const sound_cli *o, const sound_infer_args *a)
{
    int rc = check_usage(o, a);
    if (rc) return rc;
    run r = {.o = o, .a = a};
    aibox_error err = {0};
    aibox_sound_opts so;
    if (aibox_model_load(&r.m, a->model, &err)) {
        fprintf(stderr, "%s: %s%s%s\n", prog, strstr(err.msg, a->model) ? "" : a->model,
                strstr(err.msg, a->model) ? "" : ": ", err.msg);
        return 3;
    }
    if (!aibox_model_is_sound(r.m)) {
        fprintf(stderr, "%s: %s is not a sound or vibration model (aibox-train sound or sound-outlier): --stream, "
                        "--rate, --format-raw, --channels, --channel and --windows do not apply\n", prog, a->model);
        aibox_model_free(&r.m);
        return 2;
    }
    if (aibox_sound_opts_from_model(&so, r.m, &err) || listener_for(&r, so.spec.rate, &err)) {
        fprintf(stderr, "%s: %s: %s\n", prog, a->model, err.msg);
        aibox_model_free(&r.m);
        return 3;
    }
    r.K = aibox_listener_is_detector(r.l) ? 0 : aibox_listener_classes(r.l);
    r.sum_probs = calloc((size_t)r.K + 1, sizeof *r.sum_probs);
    aibox_thresholds t;
    r.threshold = aibox_thresholds_from_model(&t, r.m, &err) ? NAN : t.image;
    if (!r.sum_probs) fprintf(stderr, "%s: out of memory\n", prog), rc = 3;
    else if (r.K && !check_ok_classes(&r)) rc = 2;
    else if (o->stream) rc = judge_stream(&r);
    else {
        for (int i = 0; i < a->n_inputs; i++) {
            struct stat st;
            if (stat(a->inputs[i], &st) == 0 && S_ISDIR(st.st_mode)) judge_dir(&r, a->inputs[i]);
            else judge_file(&r, a->inputs[i]);
        }
        rc = r.worst;
    }
    aibox_listener_free(&r.l);
    aibox_model_free(&r.m);
    free(r.sum_probs);
    return rc;
}
