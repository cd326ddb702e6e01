/* The model holder of aibox-serve (serve.h): generations of a model file,
 * each with a pool of inference contexts, swapped atomically on reload. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../cli.h"
#include "serve.h"

typedef struct serve_ctx {
    aibox_classifier *cls;
    double *probs;
    aibox_detector *det;
} serve_ctx;

struct serve_model {
    int refs; /* under the holder's mu */
    long generation;
    aibox_model *m; /* a classifier's shared model (NULL for an anomaly model) */
    int n_ctx;
    serve_ctx *ctx;
    pthread_mutex_t mu; /* guards the free list */
    pthread_cond_t cv;
    int *free_ctx, n_free;
    char *info;
    size_t info_len;
};

static void model_free(serve_model *m)
{
    if (!m) return;
    for (int i = 0; m->ctx && i < m->n_ctx; i++) {
        aibox_classifier_free(&m->ctx[i].cls);
        aibox_detector_free(&m->ctx[i].det);
        free(m->ctx[i].probs);
    }
    aibox_model_free(&m->m);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m->ctx), free(m->free_ctx), free(m->info);
    free(m);
}

/* GET /v1/model: what was loaded, and aibox-infer --info's fields. */
static int model_describe(serve_model *m, const char *path)
{
    FILE *f = open_memstream(&m->info, &m->info_len);
    if (!f) return 0;
    const serve_ctx *c = &m->ctx[0];
    const aibox_model *am = c->det ? aibox_detector_model(c->det) : m->m;
    cli_json j;
    cj_begin(&j, f);
    cj_str(&j, "file", path);
    cj_int(&j, "generation", m->generation);
    cj_int(&j, "loaded_at", (long long)time(NULL));
    cj_str(&j, "kind", c->det ? "anomaly" : "classifier");
    if (c->det) {
        cj_str(&j, "method", aibox_detector_method(c->det));
        cj_num(&j, "threshold", "%.6g", aibox_detector_thresholds(c->det)->image);
    } else {
        cj_arr(&j, "classes");
        for (int k = 0; k < aibox_classifier_classes(c->cls); k++) cj_str(&j, NULL, aibox_classifier_class_name(c->cls, k));
        cj_close(&j);
    }
    cj_int(&j, "contexts", m->n_ctx);
    record_model_info(&j, am);
    cj_end(&j);
    return fclose(f) == 0;
}

/* Loads every context of one generation; NULL with err on failure. */
static serve_model *model_load(const serve_holder *h, const char *path, long generation, char *err, size_t cap)
{
    serve_model *m = calloc(1, sizeof *m);
    aibox_error e = {0};
    aibox_status s = AIBOX_OK;
    if (!m) return snprintf(err, cap, "out of memory"), NULL;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->generation = generation;
    m->n_ctx = h->contexts;
    m->ctx = calloc((size_t)m->n_ctx, sizeof *m->ctx);
    m->free_ctx = calloc((size_t)m->n_ctx, sizeof *m->free_ctx);
    if (!m->ctx || !m->free_ctx) return model_free(m), snprintf(err, cap, "out of memory"), NULL;
    /* an anomaly model first, as aibox-infer: AIBOX_E_NOTFOUND means another kind */
    s = aibox_detector_load(&m->ctx[0].det, path, h->threads, &e);
    if (s == AIBOX_E_NOTFOUND) s = aibox_model_load(&m->m, path, &e);
    for (int i = 0; !s && i < m->n_ctx; i++) {
        serve_ctx *c = &m->ctx[i];
        if (m->m) {
            s = aibox_classifier_create(&c->cls, m->m, h->threads, &e);
            if (!s && !(c->probs = malloc(sizeof(double) * (size_t)aibox_classifier_classes(c->cls))))
                s = AIBOX_E_NOMEM, snprintf(e.msg, sizeof e.msg, "out of memory");
        } else if (i > 0) {
            s = aibox_detector_load(&c->det, path, h->threads, &e);
        }
        m->free_ctx[m->n_free++] = i;
    }
    if (s) {
        snprintf(err, cap, "%s%s%s", strstr(e.msg, path) ? "" : path, strstr(e.msg, path) ? "" : ": ", e.msg);
        return model_free(m), NULL;
    }
    for (int i = 0; m->m && i < h->policy.n_ok; i++) /* the labels --ok-class names must exist */
        if (aibox_classifier_class_index(m->ctx[0].cls, h->policy.ok[i]) < 0) {
            snprintf(err, cap, "%s: --ok-class '%s' is not one of the model's classes", path, h->policy.ok[i]);
            return model_free(m), NULL;
        }
    if (!model_describe(m, path)) return model_free(m), snprintf(err, cap, "out of memory"), NULL;
    return m;
}

int serve_holder_init(serve_holder *h, const char *path, int contexts, int threads, record_policy policy,
                      char *err, size_t cap)
{
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->reload_mu, NULL);
    h->path = path, h->path_owned = NULL, h->contexts = contexts, h->threads = threads, h->policy = policy;
    h->cur = model_load(h, path, 1, err, cap);
    if (!h->cur) return -1;
    h->cur->refs = 1; /* the holder's own reference */
    h->generation = 1;
    return 0;
}

void serve_holder_free(serve_holder *h)
{
    if (h->cur) serve_model_release(h, h->cur);
    h->cur = NULL;
    free(h->path_owned), h->path_owned = NULL;
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->reload_mu);
}

long serve_holder_reload(serve_holder *h, const char *path, char *err, size_t cap)
{
    pthread_mutex_lock(&h->reload_mu);
    /* loaded completely before the swap: requests never wait on a load */
    serve_model *m = model_load(h, path ? path : h->path, h->generation + 1, err, cap);
    char *kept = m && path ? strdup(path) : NULL;
    long gen = -1;
    if (m && path && !kept) model_free(m), m = NULL, snprintf(err, cap, "out of memory");
    if (m) {
        m->refs = 1;
        pthread_mutex_lock(&h->mu);
        serve_model *old = h->cur;
        h->cur = m;
        gen = h->generation = m->generation;
        if (kept) { /* another file (a retrained model): later reloads read it */
            free(h->path_owned);
            h->path = h->path_owned = kept;
        }
        pthread_mutex_unlock(&h->mu);
        serve_model_release(h, old); /* freed here or by the last request using it */
    }
    pthread_mutex_unlock(&h->reload_mu);
    return gen;
}

serve_model *serve_model_acquire(serve_holder *h)
{
    pthread_mutex_lock(&h->mu);
    serve_model *m = h->cur;
    m->refs++;
    pthread_mutex_unlock(&h->mu);
    return m;
}

void serve_model_release(serve_holder *h, serve_model *m)
{
    pthread_mutex_lock(&h->mu);
    int last = --m->refs == 0;
    pthread_mutex_unlock(&h->mu);
    if (last) model_free(m);
}

long serve_model_generation(const serve_model *m) { return m->generation; }
const char *serve_model_info(const serve_model *m) { return m->info; }

static serve_ctx *ctx_take(serve_model *m)
{
    pthread_mutex_lock(&m->mu);
    while (!m->n_free) pthread_cond_wait(&m->cv, &m->mu);
    serve_ctx *c = &m->ctx[m->free_ctx[--m->n_free]];
    pthread_mutex_unlock(&m->mu);
    return c;
}

static void ctx_give(serve_model *m, serve_ctx *c)
{
    pthread_mutex_lock(&m->mu);
    m->free_ctx[m->n_free++] = (int)(c - m->ctx);
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* An {"error"} body. */
static int fail(char **body, size_t *len, int code, const char *fmt, const char *a, const char *b)
{
    char msg[4600];
    snprintf(msg, sizeof msg, fmt, a, b);
    FILE *f = open_memstream(body, len);
    if (!f) return *body = NULL, 500;
    cli_json j;
    cj_begin(&j, f);
    cj_str(&j, "error", msg);
    cj_end(&j);
    fclose(f);
    return code;
}

/* The record, as aibox-infer writes it. */
static char *write_record(serve_ctx *c, const char *name, const aibox_classification *rc, const aibox_detection *rd,
                          const char *verdict, double t0, double t1, double t2, size_t *len)
{
    char *rec = NULL;
    FILE *f = open_memstream(&rec, len);
    if (!f) return NULL;
    cli_json j;
    cj_begin(&j, f);
    if (c->det) record_det_json(&j, name, rd, aibox_detector_thresholds(c->det)->image, (t1 - t0) * 1e3, (t2 - t0) * 1e3);
    else record_cls_json(&j, name, rc, c->cls, c->probs, verdict, (t2 - t0) * 1e3);
    cj_end(&j);
    if (fclose(f)) free(rec), rec = NULL;
    return rec;
}

/* The record with the server's fields appended: "sample" (the id or null)
 * and, when the sink failed, "sample_error". */
static char *add_sample(const char *rec, size_t rec_len, const char *id, const char *id_err, size_t *len)
{
    char *out = NULL;
    FILE *f = open_memstream(&out, len);
    if (!f) return NULL;
    fwrite(rec, 1, rec_len - 2, f); /* without its closing "}\n" */
    fputs(",\"sample\":", f);
    if (id) cli_json_str(f, id);
    else fputs("null", f);
    if (id_err) fputs(",\"sample_error\":", f), cli_json_str(f, id_err);
    fputs("}\n", f);
    if (fclose(f)) free(out), out = NULL;
    return out;
}

int serve_judge(serve_holder *h, const serve_judge_opts *o, const char *name, const unsigned char *bytes, size_t len,
                const char *content_type, char **body, size_t *body_len, const char **verdict, long *generation)
{
    double t0 = cli_now();
    aibox_image img = {0};
    aibox_error e = {0};
    *verdict = NULL, *generation = 0;
    if (aibox_image_decode(&img, bytes, len, name, o->max_pixels, &e)) /* the pixel cap is read from the header */
        return fail(body, body_len, strstr(e.msg, "-pixel limit") ? 413 : e.code == AIBOX_E_NOMEM ? 503 : 400, "%s%s",
                    e.msg, "");
    if (img.width < o->min_side || img.height < o->min_side) {
        char msg[200];
        snprintf(msg, sizeof msg, "too small: %dx%d (each side must be at least %ld pixels)", img.width, img.height,
                 o->min_side);
        aibox_image_free(&img);
        return fail(body, body_len, 422, "%s: %s", name, msg);
    }
    double t1 = cli_now();
    serve_model *m = serve_model_acquire(h);
    serve_ctx *c = ctx_take(m);
    aibox_classification rc;
    aibox_detection rd;
    aibox_status s = c->det ? aibox_detector_run(c->det, &img, &rd, &e) : aibox_classifier_run(c->cls, &img, &rc, c->probs, &e);
    int code = 200;
    char *rec = NULL, label[128] = "";
    size_t rec_len = 0;
    double conf = NAN, score = NAN, t2 = cli_now();
    if (s) {
        code = fail(body, body_len, s == AIBOX_E_NOMEM ? 503 : 422, "%s: %s", name, e.msg);
    } else {
        *verdict = c->det ? (rd.ng ? "NG" : "OK") : record_cls_verdict(&h->policy, &rc);
        *generation = m->generation;
        rec = write_record(c, name, &rc, &rd, *verdict, t0, t1, t2, &rec_len);
        if (c->det) score = rd.norm_score;
        else conf = rc.confidence, snprintf(label, sizeof label, "%s", rc.name); /* the name is the model's: copied */
    }
    ctx_give(m, c); /* before the sink, which may be slow */
    serve_model_release(h, m);
    if (!s) {
        char id[256] = "", msg[512] = "";
        const char *id_err = NULL;
        int stored = 0;
        if (rec && o->sink) {
            serve_sample smp = {name,    bytes, len,   content_type, &img, rec, *verdict, *generation,
                                label[0] ? label : NULL, conf, score, (t2 - t0) * 1e3};
            stored = !o->sink(o->sink_user, &smp, id, sizeof id, msg, sizeof msg);
            if (!stored) id_err = msg[0] ? msg : "the sample could not be stored";
        }
        *body = rec ? add_sample(rec, rec_len, stored && id[0] ? id : NULL, id_err, body_len) : NULL;
        if (!*body) code = fail(body, body_len, 500, "%s%s", "out of memory", "");
    }
    free(rec);
    aibox_image_free(&img);
    return code;
}

int serve_model_picture(serve_holder *h, const aibox_image *img, aibox_image *pic, char *err, size_t cap)
{
    serve_model *m = serve_model_acquire(h);
    aibox_error e = {0};
    aibox_status s;
    if (m->m) { /* a classifier: Grad-CAM of its answer (an explainer per picture: asked for rarely) */
        aibox_gradcam *g = NULL;
        s = aibox_gradcam_create(&g, m->m, -1, 1, &e);
        if (!s) s = aibox_gradcam_overlay(g, img, -1, 0.5f, pic, NULL, &e);
        aibox_gradcam_free(&g);
    } else {
        serve_ctx *c = ctx_take(m);
        s = aibox_detector_heatmap(c->det, img, pic, &e);
        ctx_give(m, c);
    }
    serve_model_release(h, m);
    if (s) snprintf(err, cap, "%s", e.msg);
    return s ? -1 : 0;
}

const aibox_model *serve_model_graph(const serve_model *m)
{
    return m->m ? m->m : aibox_detector_model(m->ctx[0].det);
}
