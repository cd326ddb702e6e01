/* The AI-Box loop in aibox-serve (serve.h): every judged image goes into
 * the sample store (unlabelled, with the model's answer as metadata) and to
 * the PLC; the uncertain ones wait in a queue for the operator, whose answer
 * labels them; a retraining runs aibox-train on the store's labelled
 * samples in the background and offers its model, which a swap puts in
 * service. The operator page (tools/serve/www) drives it through the
 * /v1/results, /v1/queue, /v1/samples, /v1/store, /v1/retrain and /v1/plots
 * routes. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../cli.h"
#include "serve.h"

#define RING 256        /* results the page can still fetch */
#define QUEUE_MAX 4096  /* uncertain samples waiting (oldest dropped from the queue, not the store) */
#define BAND 0.1        /* anomaly models: |norm_score - 0.5| below this is uncertain */

typedef struct result {
    long seq, sample; /* sample: the store's id, -1 without */
    char verdict[16], label[128];
    double confidence, score, ms; /* NAN when absent */
} result;

typedef enum { T_IDLE, T_RUNNING, T_DONE, T_FAILED, T_SWAPPED } train_state;
static const char *const state_names[] = {"idle", "running", "done", "failed", "swapped"};

struct serve_loop {
    serve_holder *h;
    aibox_store *store; /* NULL: no store (results and PLC only) */
    plc *plc;
    pthread_mutex_t mu; /* everything below */
    result ring[RING];
    long seq, judged, ok, ng, uncertain;
    long *queue;
    int n_queue;
    /* retraining */
    char train_bin[4096], runs[4096], current_dir[4400], run_dir[4200], args[1024];
    train_state state;
    long runs_started;
    int epochs;
    pid_t child;
    pthread_t waiter;
    int have_waiter;
    char error[512];
    double cand_acc, cur_acc;
};

/* ------------------------------------------------------------------ helpers */
static double num_or_nan(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void put_num(FILE *f, const char *k, double v)
{
    if (isfinite(v)) fprintf(f, ",\"%s\":%.6g", k, v);
}

/* The folder of the running program (the other tools are beside it). */
static void exe_dir(char *buf, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    buf[n > 0 ? n : 0] = 0;
    char *slash = strrchr(buf, '/');
    if (slash) *slash = 0;
}

/* An anomaly record near its threshold, or a classification below --min-conf. */
static int uncertain(const result *r)
{
    if (!strcmp(r->verdict, "uncertain")) return 1;
    return isfinite(r->score) && isnan(r->confidence) && fabs(r->score - 0.5) < BAND;
}

static void queue_push(serve_loop *l, long id)
{
    if (l->n_queue == QUEUE_MAX) memmove(l->queue, l->queue + 1, sizeof *l->queue * --l->n_queue);
    l->queue[l->n_queue++] = id;
}

/* Startup: the store's unlabelled samples the model was unsure of. */
static void queue_from_store(serve_loop *l)
{
    long n = aibox_store_count(l->store);
    for (long i = 0; i < n; i++) {
        if (aibox_store_label(l->store, i) >= 0) continue;
        char *meta = NULL;
        if (aibox_store_meta(l->store, i, &meta, NULL)) continue;
        cJSON *j = cJSON_Parse(meta);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "verdict");
        result r = {.confidence = num_or_nan(j, "confidence"), .score = num_or_nan(j, "norm_score")};
        if (cJSON_IsString(v)) snprintf(r.verdict, sizeof r.verdict, "%s", v->valuestring);
        if (uncertain(&r)) queue_push(l, i);
        cJSON_Delete(j);
        free(meta);
    }
}

/* The classes a store made for this model holds: the classifier's, or OK and NG. */
static int open_store(serve_loop *l, const char *dir, char *err, size_t cap)
{
    aibox_error e = {0};
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (aibox_store_open(&l->store, dir, 0, &e)) return snprintf(err, cap, "--store %s", e.msg), -1;
        return 0;
    }
    serve_model *m = serve_model_acquire(l->h);
    const aibox_model *g = serve_model_graph(m);
    int c, hh, w, n = 0;
    aibox_model_input_shape(g, &c, &hh, &w);
    const char *const *names = NULL;
    const char *ok_ng[] = {"OK", "NG"};
    const char *task = NULL;
    aibox_model_get_meta_str(g, AIBOX_META_TASK, &task);
    if (task && strcmp(task, "classify")) names = ok_ng, n = 2;
    else aibox_model_get_meta_strs(g, AIBOX_META_CLASS_NAMES, &n, &names);
    aibox_store_opts o = {.channels = c == 1 ? 1 : 3, .height = hh, .width = w};
    aibox_status s = aibox_store_create(&l->store, dir, &o, n, (const char **)names, &e);
    serve_model_release(l->h, m);
    if (s) return snprintf(err, cap, "--store %s", e.msg), -1;
    return 0;
}

int serve_loop_create(serve_loop **out, serve_holder *h, const serve_loop_opts *o, char *err, size_t cap)
{
    serve_loop *l = calloc(1, sizeof *l);
    *out = NULL;
    if (!l || !(l->queue = malloc(sizeof *l->queue * QUEUE_MAX))) return free(l), snprintf(err, cap, "out of memory"), -1;
    l->h = h;
    pthread_mutex_init(&l->mu, NULL);
    l->cand_acc = l->cur_acc = NAN;
    if (o->store && open_store(l, o->store, err, cap)) return serve_loop_free(&l), -1;
    if (l->store) queue_from_store(l);
    if (o->plc && o->plc->target && plc_open(&l->plc, o->plc, err, cap)) return serve_loop_free(&l), -1;
    exe_dir(l->train_bin, sizeof l->train_bin - 16);
    strcat(l->train_bin, "/aibox-train");
    snprintf(l->args, sizeof l->args, "%s", o->retrain_args ? o->retrain_args : "");
    if (l->store) snprintf(l->runs, sizeof l->runs, "%s", o->runs ? o->runs : "");
    if (l->store && !o->runs) snprintf(l->runs, sizeof l->runs, "%s.runs", aibox_store_dir(l->store));
    /* the current model's pictures: aibox-train's default out-dir beside it */
    snprintf(l->current_dir, sizeof l->current_dir, "%s", h->path);
    char *dot = strrchr(l->current_dir, '.');
    if (dot && !strcmp(dot, ".aibox")) *dot = 0;
    strncat(l->current_dir, ".train", sizeof l->current_dir - strlen(l->current_dir) - 1);
    serve_model *m = serve_model_acquire(h);
    double acc;
    if (!aibox_model_get_meta_float(serve_model_graph(m), "aibox.train.val_acc", &acc)) l->cur_acc = acc;
    serve_model_release(h, m);
    *out = l;
    return 0;
}

void serve_loop_free(serve_loop **lp)
{
    serve_loop *l = *lp;
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    if (l->state == T_RUNNING && l->child > 0) kill(l->child, SIGTERM);
    int wait = l->have_waiter;
    pthread_mutex_unlock(&l->mu);
    if (wait) pthread_join(l->waiter, NULL);
    aibox_store_free(&l->store);
    plc_close(&l->plc);
    pthread_mutex_destroy(&l->mu);
    free(l->queue);
    free(l);
    *lp = NULL;
}

/* ------------------------------------------------------------------ the sink */
int serve_loop_sink(void *user, const serve_sample *s, char *id, size_t id_cap, char *msg, size_t msg_cap)
{
    serve_loop *l = user;
    result r = {.sample = -1, .confidence = s->confidence, .score = s->norm_score, .ms = s->ms};
    snprintf(r.verdict, sizeof r.verdict, "%s", s->verdict);
    if (s->label) snprintf(r.label, sizeof r.label, "%s", s->label);
    int rc = 0;
    id[0] = 0;
    if (l->plc) { /* the line's PLC first: the answer the client gets is then already there */
        char pm[512];
        if (plc_write(l->plc, plc_verdict_of(s->verdict), pm, sizeof pm)) {
            fprintf(stderr, "aibox-serve: %s: %s\n", s->name, pm);
            snprintf(msg, msg_cap, "PLC: %s", pm), rc = -1;
        }
    }
    if (l->store) {
        char extra[512];
        FILE *f = fmemopen(extra, sizeof extra, "w");
        if (f) {
            fprintf(f, "{\"model_generation\":%ld", s->model_generation);
            put_num(f, "confidence", r.confidence);
            put_num(f, "norm_score", r.score);
            if (r.label[0]) fputs(",\"model_label\":", f), cli_json_str(f, r.label);
            fputc('}', f);
            fputc(0, f);
            fclose(f);
        }
        extra[sizeof extra - 1] = 0;
        aibox_store_info info = {.source = s->name, .verdict = s->verdict, .extra_json = f ? extra : NULL};
        aibox_error e = {0};
        long sid = -1;
        if (aibox_store_append(l->store, s->image, -1, &info, &sid, &e)) {
            snprintf(msg, msg_cap, "%s", e.msg), rc = -1;
        } else {
            r.sample = sid;
            snprintf(id, id_cap, "%ld", sid);
        }
    }
    pthread_mutex_lock(&l->mu);
    r.seq = ++l->seq;
    l->ring[r.seq % RING] = r;
    l->judged++;
    if (!strcmp(r.verdict, "OK")) l->ok++;
    else if (!strcmp(r.verdict, "NG")) l->ng++;
    else if (!strcmp(r.verdict, "uncertain")) l->uncertain++;
    if (r.sample >= 0 && uncertain(&r)) queue_push(l, r.sample);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* ------------------------------------------------------------------ retraining */
static int count_rows(const char *csv)
{
    FILE *f = fopen(csv, "r");
    if (!f) return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n > 0 ? n - 1 : 0;
}

/* Waits for the training child; its summary line gives the validation accuracy. */
static void *wait_child(void *arg)
{
    serve_loop *l = arg;
    int status = 0;
    pid_t pid = l->child;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    char path[4400];
    snprintf(path, sizeof path, "%s/summary.json", l->run_dir);
    unsigned char *text = NULL;
    size_t len = 0;
    double acc = NAN;
    if (!aibox_read_file(path, 1 << 20, &text, &len, NULL)) {
        char *z = realloc(text, len + 1);
        if (z) text = (unsigned char *)z, z[len] = 0;
        cJSON *j = z ? cJSON_Parse(z) : NULL;
        acc = num_or_nan(j, "val_acc");
        cJSON_Delete(j);
    }
    free(text);
    pthread_mutex_lock(&l->mu);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    l->state = ok ? T_DONE : T_FAILED;
    l->cand_acc = acc;
    if (!ok) {
        snprintf(path, sizeof path, "%s/train.log", l->run_dir);
        FILE *f = fopen(path, "r");
        char line[512] = "", last[512] = "aibox-train failed";
        while (f && fgets(line, sizeof line, f))
            if (line[0] != '\n') snprintf(last, sizeof last, "%s", line);
        if (f) fclose(f);
        last[strcspn(last, "\n")] = 0;
        snprintf(l->error, sizeof l->error, "%s", last);
    }
    l->child = 0;
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* POST /v1/retrain: aibox-train --store on the labelled samples, the
 * current model's architecture and input size, into a new run folder. */
static int retrain(serve_loop *l, char *msg, size_t cap)
{
    if (!l->store) return snprintf(msg, cap, "no sample store: start aibox-serve with --store DIR"), 409;
    pthread_mutex_lock(&l->mu);
    if (l->state == T_RUNNING) return pthread_mutex_unlock(&l->mu), snprintf(msg, cap, "a training is running"), 409;
    if (l->have_waiter) pthread_join(l->waiter, NULL), l->have_waiter = 0;
    mkdir(l->runs, 0777);
    for (int k = 1; k < 100000; k++) {
        snprintf(l->run_dir, sizeof l->run_dir, "%s/run%d", l->runs, k);
        if (mkdir(l->run_dir, 0777) == 0) break;
        if (errno != EEXIST) {
            pthread_mutex_unlock(&l->mu);
            return snprintf(msg, cap, "cannot create %s: %s", l->run_dir, strerror(errno)), 500;
        }
    }
    /* the arguments: the architecture when it is a preset, then the operator's --retrain-args */
    char *argv[64];
    int n = 0;
    char model[4400], out_dir[4400], arch[64] = "", size[16] = "";
    snprintf(model, sizeof model, "%s/model.aibox", l->run_dir);
    snprintf(out_dir, sizeof out_dir, "%s/train", l->run_dir);
    serve_model *m = serve_model_acquire(l->h);
    const aibox_model *g = serve_model_graph(m);
    const char *a = NULL;
    int c, hh, w;
    aibox_model_input_shape(g, &c, &hh, &w);
    if (!aibox_model_get_meta_str(g, AIBOX_META_ARCH, &a) && a)
        for (const char *const *p = (const char *const[]){"small", "alexnet", "squeezenet", "resnext", "resnet18", NULL}; *p; p++)
            if (!strcmp(a, *p)) snprintf(arch, sizeof arch, "%s", a), snprintf(size, sizeof size, "%d", hh);
    serve_model_release(l->h, m);
    char args[sizeof l->args];
    snprintf(args, sizeof args, "%s", l->args);
    argv[n++] = l->train_bin;
    argv[n++] = "--store", argv[n++] = (char *)aibox_store_dir(l->store);
    argv[n++] = "-o", argv[n++] = model, argv[n++] = "--out-dir", argv[n++] = out_dir, argv[n++] = "--quiet";
    if (arch[0]) argv[n++] = "--model", argv[n++] = arch, argv[n++] = "--size", argv[n++] = size;
    int epochs = 20;
    for (char *save = NULL, *t = strtok_r(args, " \t", &save); t && n < 62; t = strtok_r(NULL, " \t", &save)) {
        if (n > 0 && !strcmp(argv[n - 1], "--epochs")) epochs = atoi(t);
        argv[n++] = t;
    }
    argv[n] = NULL;
    char log[4400], sum[4400];
    snprintf(log, sizeof log, "%s/train.log", l->run_dir);
    snprintf(sum, sizeof sum, "%s/summary.json", l->run_dir);
    pid_t pid = fork();
    if (pid == 0) { /* the child: stdout the summary, stderr the log */
        int so = open(sum, O_WRONLY | O_CREAT | O_TRUNC, 0666), se = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        if (so >= 0) dup2(so, 1);
        if (se >= 0) dup2(se, 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL); /* the server blocks its signals for sigwait */
        execv(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (pid < 0) {
        pthread_mutex_unlock(&l->mu);
        return snprintf(msg, cap, "cannot start aibox-train: %s", strerror(errno)), 500;
    }
    l->child = pid, l->state = T_RUNNING, l->epochs = epochs, l->error[0] = 0, l->cand_acc = NAN;
    l->runs_started++;
    l->have_waiter = pthread_create(&l->waiter, NULL, wait_child, l) == 0;
    pthread_mutex_unlock(&l->mu);
    fprintf(stderr, "aibox-serve: retraining on %s into %s\n", aibox_store_dir(l->store), l->run_dir);
    return 202;
}

static int swap(serve_loop *l, char *msg, size_t cap)
{
    pthread_mutex_lock(&l->mu);
    if (l->state != T_DONE) {
        pthread_mutex_unlock(&l->mu);
        return snprintf(msg, cap, "no new model to swap in (state %s)", state_names[l->state]), 409;
    }
    char model[4400], err[4000];
    snprintf(model, sizeof model, "%s/model.aibox", l->run_dir);
    pthread_mutex_unlock(&l->mu);
    long gen = serve_holder_reload(l->h, model, err, sizeof err);
    if (gen < 0) return snprintf(msg, cap, "the new model could not be loaded: %s", err), 500;
    pthread_mutex_lock(&l->mu);
    l->state = T_SWAPPED;
    snprintf(l->current_dir, sizeof l->current_dir, "%s/train", l->run_dir);
    l->cur_acc = l->cand_acc;
    pthread_mutex_unlock(&l->mu);
    fprintf(stderr, "aibox-serve: serving %s, generation %ld\n", model, gen);
    return snprintf(msg, cap, "{\"generation\":%ld,\"model\":", gen), 200;
}

/* ------------------------------------------------------------------ the routes */
static char *memfile(FILE **f, char **buf, size_t *len)
{
    *buf = NULL, *len = 0;
    *f = open_memstream(buf, len);
    return *f ? *buf : NULL;
}

/* ver changes with the pictures (a generation, a run), so that a browser
 * never shows an older picture it kept under the same address. */
static void model_card(FILE *f, const char *which, double acc, const char *dir, long ver)
{
    fprintf(f, "{\"dir\":");
    cli_json_str(f, dir);
    put_num(f, "val_acc", acc);
    char p[4400];
    struct stat st;
    snprintf(p, sizeof p, "%s/results.png", dir);
    if (!stat(p, &st)) fprintf(f, ",\"results\":\"/v1/plots/%s/results.png?v=%ld\"", which, ver);
    snprintf(p, sizeof p, "%s/confusion.png", dir);
    if (!stat(p, &st)) fprintf(f, ",\"confusion\":\"/v1/plots/%s/confusion.png?v=%ld\"", which, ver);
    fputc('}', f);
}

static int png_reply(const aibox_image *img, serve_reply *out)
{
    aibox_error e = {0};
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (aibox_image_encode_png(img, &bytes, &len, &e)) return -1;
    out->body = (char *)bytes, out->len = len, out->ctype = "image/png", out->code = 200;
    return 0;
}

static void error_reply(serve_reply *out, int code, const char *msg)
{
    FILE *f;
    memfile(&f, &out->body, &out->len);
    if (f) {
        cli_json j;
        cj_begin(&j, f);
        cj_str(&j, "error", msg);
        cj_end(&j);
        fclose(f);
    }
    out->code = code, out->ctype = "application/json";
}

/* GET /v1/samples/ID/image.png and /overlay.png, POST /v1/samples/ID/label. */
static void sample_route(serve_loop *l, const char *method, const char *rest, const char *body, size_t body_len,
                         serve_reply *out)
{
    char *end = NULL;
    long id = strtol(rest, &end, 10);
    if (!l->store) return error_reply(out, 404, "no sample store: start aibox-serve with --store DIR");
    if (end == rest || id < 0 || id >= aibox_store_count(l->store)) return error_reply(out, 404, "no such sample");
    aibox_error e = {0};
    if (!strcmp(method, "POST") && !strcmp(end, "/label")) {
        char text[4096];
        snprintf(text, sizeof text, "%.*s", (int)(body_len < sizeof text ? body_len : sizeof text - 1), body ? body : "");
        cJSON *j = cJSON_Parse(text);
        const cJSON *lab = cJSON_GetObjectItemCaseSensitive(j, "label");
        int k = cJSON_IsString(lab) ? aibox_store_class_find(l->store, lab->valuestring) : -2;
        cJSON_Delete(j);
        if (k == -2) return error_reply(out, 400, "the body must be {\"label\": \"CLASS\"}");
        if (k < 0) return error_reply(out, 400, "not one of the store's classes");
        if (aibox_store_set_label(l->store, id, k, &e)) return error_reply(out, 500, e.msg);
        pthread_mutex_lock(&l->mu);
        for (int i = 0; i < l->n_queue; i++)
            if (l->queue[i] == id) memmove(l->queue + i, l->queue + i + 1, sizeof *l->queue * (size_t)(--l->n_queue - i)), i--;
        pthread_mutex_unlock(&l->mu);
        FILE *f;
        memfile(&f, &out->body, &out->len);
        if (f) {
            fprintf(f, "{\"sample\":%ld,\"label\":", id);
            cli_json_str(f, aibox_store_class_name(l->store, k));
            fputs("}\n", f);
            fclose(f);
        }
        out->code = 200, out->ctype = "application/json";
        return;
    }
    if (strcmp(method, "GET") || (strcmp(end, "/image.png") && strcmp(end, "/overlay.png")))
        return error_reply(out, 404, "no such endpoint (GET /v1/samples/ID/image.png or overlay.png, POST .../label)");
    aibox_image img = {0}, pic = {0};
    if (aibox_store_image(l->store, id, &img, &e)) return error_reply(out, 500, e.msg);
    char err[4600];
    if (!strcmp(end, "/overlay.png")) {
        if (serve_model_picture(l->h, &img, &pic, err, sizeof err)) error_reply(out, 422, err);
        else if (png_reply(&pic, out)) error_reply(out, 500, "cannot encode the picture");
    } else if (png_reply(&img, out)) {
        error_reply(out, 500, "cannot encode the picture");
    }
    aibox_image_free(&img), aibox_image_free(&pic);
}

void serve_loop_route(serve_loop *l, const char *method, const char *url, const char *after, const char *body,
                      size_t body_len, serve_reply *out)
{
    FILE *f = NULL;
    char msg[4600];
    out->code = 200, out->ctype = "application/json", out->body = NULL, out->len = 0;
    if (!strncmp(url, "/v1/samples/", 12)) return sample_route(l, method, url + 12, body, body_len, out);
    if (!strncmp(url, "/v1/plots/", 10)) {
        const char *rest = url + 10, *file = strchr(rest, '/');
        char dir[4400], path[4500];
        pthread_mutex_lock(&l->mu);
        int cur = !strncmp(rest, "current/", 8), cand = !strncmp(rest, "candidate/", 10);
        if (cur) snprintf(dir, sizeof dir, "%s", l->current_dir);
        else if (cand) snprintf(dir, sizeof dir, "%s/train", l->run_dir);
        pthread_mutex_unlock(&l->mu);
        if ((!cur && !cand) || !file || (strcmp(file, "/results.png") && strcmp(file, "/confusion.png")))
            return error_reply(out, 404, "no such picture (/v1/plots/current|candidate/results.png|confusion.png)");
        snprintf(path, sizeof path, "%s%s", dir, file);
        unsigned char *bytes = NULL;
        if (aibox_read_file(path, 64 << 20, &bytes, &out->len, NULL)) return error_reply(out, 404, "no such picture yet");
        out->body = (char *)bytes, out->ctype = "image/png";
        return;
    }
    if (!strcmp(url, "/v1/retrain") && !strcmp(method, "POST")) {
        int code = retrain(l, msg, sizeof msg);
        if (code >= 400) return error_reply(out, code, msg);
        out->code = code;
        memfile(&f, &out->body, &out->len);
        if (f) fputs("{\"state\":\"running\"}\n", f), fclose(f);
        return;
    }
    if (!strcmp(url, "/v1/retrain/swap") && !strcmp(method, "POST")) {
        int code = swap(l, msg, sizeof msg);
        if (code >= 400) return error_reply(out, code, msg);
        memfile(&f, &out->body, &out->len);
        if (f) fputs(msg, f), cli_json_str(f, l->h->path), fputs("}\n", f), fclose(f);
        return;
    }
    if (strcmp(method, "GET")) return error_reply(out, 405, "use GET here");
    if (!memfile(&f, &out->body, &out->len) && !f) return error_reply(out, 500, "out of memory");
    pthread_mutex_lock(&l->mu);
    if (!strcmp(url, "/v1/results")) {
        long from = after ? strtol(after, NULL, 10) : -1, first = l->seq - RING + 1;
        if (from + 1 > first) first = from + 1;
        if (first < 1) first = 1;
        fprintf(f, "{\"counts\":{\"requests\":%ld,\"OK\":%ld,\"NG\":%ld,\"uncertain\":%ld},\"results\":[", l->judged,
                l->ok, l->ng, l->uncertain);
        for (long q = first; q <= l->seq; q++) {
            const result *r = &l->ring[q % RING];
            fprintf(f, "%s{\"id\":%ld,\"verdict\":", q > first ? "," : "", r->seq);
            cli_json_str(f, r->verdict);
            if (r->label[0]) fputs(",\"label\":", f), cli_json_str(f, r->label);
            put_num(f, "confidence", r->confidence);
            put_num(f, "score", r->score);
            put_num(f, "ms", r->ms);
            if (r->sample >= 0)
                fprintf(f, ",\"sample\":%ld,\"image\":\"/v1/samples/%ld/image.png\",\"overlay\":\"/v1/samples/%ld/overlay.png\"",
                        r->sample, r->sample, r->sample);
            fputc('}', f);
        }
        fputs("]}\n", f);
    } else if (!strcmp(url, "/v1/queue")) {
        fputs("{\"classes\":[", f);
        for (int k = 0; l->store && k < aibox_store_class_count(l->store); k++)
            fputs(k ? "," : "", f), cli_json_str(f, aibox_store_class_name(l->store, k));
        fputs("],\"samples\":[", f);
        int shown = 0;
        for (int i = l->n_queue - 1; i >= 0 && shown < 20; i--, shown++) {
            long id = l->queue[i];
            fprintf(f, "%s{\"id\":%ld,\"image\":\"/v1/samples/%ld/image.png\",\"overlay\":\"/v1/samples/%ld/overlay.png\"",
                    shown ? "," : "", id, id, id);
            int found = 0;
            for (long q = l->seq; q > 0 && q > l->seq - RING && !found; q--) /* the model's answer, from the ring */
                if (l->ring[q % RING].sample == id) {
                    const result *r = &l->ring[q % RING];
                    fputs(",\"verdict\":", f), cli_json_str(f, r->verdict);
                    if (r->label[0]) fputs(",\"label\":", f), cli_json_str(f, r->label);
                    put_num(f, "confidence", r->confidence);
                    put_num(f, "score", r->score);
                    found = 1;
                }
            char *meta = NULL; /* or from the store (a sample of an earlier run) */
            if (!found && !aibox_store_meta(l->store, id, &meta, NULL)) {
                cJSON *j = cJSON_Parse(meta);
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "verdict"),
                            *lab = cJSON_GetObjectItemCaseSensitive(j, "model_label");
                if (cJSON_IsString(v)) fputs(",\"verdict\":", f), cli_json_str(f, v->valuestring);
                if (cJSON_IsString(lab)) fputs(",\"label\":", f), cli_json_str(f, lab->valuestring);
                put_num(f, "confidence", num_or_nan(j, "confidence"));
                put_num(f, "score", num_or_nan(j, "norm_score"));
                cJSON_Delete(j);
            }
            free(meta);
            fputc('}', f);
        }
        fprintf(f, "],\"waiting\":%d}\n", l->n_queue);
    } else if (!strcmp(url, "/v1/store")) {
        int k = l->store ? aibox_store_class_count(l->store) : 0;
        long *counts = calloc((size_t)k + 1, sizeof *counts);
        if (l->store && counts) aibox_store_class_counts(l->store, counts);
        fputs("{\"classes\":{", f);
        for (int i = 0; counts && i < k; i++) {
            fputs(i ? "," : "", f);
            cli_json_str(f, aibox_store_class_name(l->store, i));
            fprintf(f, ":%ld", counts[i]);
        }
        fprintf(f, "},\"unlabelled\":%ld,\"samples\":%ld,\"dir\":", counts ? counts[k] : 0,
                l->store ? aibox_store_count(l->store) : 0);
        cli_json_str(f, l->store ? aibox_store_dir(l->store) : "");
        fputs("}\n", f);
        free(counts);
    } else if (!strcmp(url, "/v1/retrain")) {
        char csv[4400];
        snprintf(csv, sizeof csv, "%s/train/train.csv", l->run_dir);
        int done = l->state == T_RUNNING ? count_rows(csv) : 0;
        fprintf(f, "{\"state\":\"%s\",\"epoch\":%d,\"epochs\":%d,\"done\":%d,\"total\":%d", state_names[l->state], done,
                l->epochs, done, l->epochs);
        if (l->error[0]) fputs(",\"error\":", f), cli_json_str(f, l->error);
        fputs(",\"current\":", f);
        model_card(f, "current", l->cur_acc, l->current_dir, l->h->generation);
        if (l->state == T_DONE || l->state == T_RUNNING || l->state == T_SWAPPED) {
            char d[4400];
            snprintf(d, sizeof d, "%s/train", l->run_dir);
            fputs(",\"candidate\":", f);
            model_card(f, "candidate", l->cand_acc, d, l->runs_started * 1000 + count_rows(csv));
        }
        fputs("}\n", f);
    } else {
        pthread_mutex_unlock(&l->mu);
        fclose(f), free(out->body), out->body = NULL;
        return error_reply(out, 404, "no such endpoint");
    }
    pthread_mutex_unlock(&l->mu);
    if (fclose(f)) free(out->body), out->body = NULL, error_reply(out, 500, "out of memory");
}
