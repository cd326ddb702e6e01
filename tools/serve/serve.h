/* aibox-serve's parts (the .c files of tools/serve, linked into aibox-serve only):
 * the model holder (model.c), the HTTP side on libmicrohttpd (http.c) and
 * the metrics (metrics.c). tools/aibox-serve.c parses options, starts and
 * stops. */
#ifndef AIBOX_SERVE_H
#define AIBOX_SERVE_H

#include <pthread.h>
#include <stddef.h>

#include "aibox.h"
#include "../plc.h"
#include "../record.h"

/* ------------------------------------------------------------------ models */
/* One loaded model file (a "generation") with its pool of inference
 * contexts: a classifier per context over one shared read-only model, or,
 * for an anomaly model, a detector per context (a detector owns its model,
 * so the file is loaded once per context). Reference-counted: a request
 * holds a reference from the start of its judgement to its end, so a reload
 * never frees a model in use. */
typedef struct serve_model serve_model;

typedef struct serve_holder {
    pthread_mutex_t mu;        /* guards cur and every model's refs */
    pthread_mutex_t reload_mu; /* one reload at a time */
    serve_model *cur;
    long generation;           /* of the last model loaded */
    const char *path;          /* the model file (reloads read it again) */
    char *path_owned;          /* path, when a reload named another file */
    int contexts, threads;     /* per model: contexts, and threads per context */
    record_policy policy;
} serve_holder;

/* Loads path as generation 1; a one-line message in err on failure. */
int serve_holder_init(serve_holder *h, const char *path, int contexts, int threads, record_policy policy,
                      char *err, size_t cap);
void serve_holder_free(serve_holder *h);
/* Loads the file again (path NULL: h->path) completely, then swaps it in;
 * requests already running finish on the old model. On failure the old
 * model stays and err says why. Returns the new generation or -1. */
long serve_holder_reload(serve_holder *h, const char *path, char *err, size_t cap);
serve_model *serve_model_acquire(serve_holder *h);
void serve_model_release(serve_holder *h, serve_model *m);
long serve_model_generation(const serve_model *m);
/* GET /v1/model's body (owned by the model). */
const char *serve_model_info(const serve_model *m);
/* The model's graph and metadata (borrowed while m is held). */
const aibox_model *serve_model_graph(const serve_model *m);
/* What the current model looks at in img: a classifier's Grad-CAM overlay
 * of its answer, an anomaly model's heatmap; pic is the caller's. */
int serve_model_picture(serve_holder *h, const aibox_image *img, aibox_image *pic, char *err, size_t cap);

/* What the sample sink receives for each judged image (all borrowed for
 * the call). */
typedef struct serve_sample {
    const char *name;          /* the client's name for it (checked: relative, no "..") */
    const unsigned char *bytes;
    size_t len;
    const char *content_type;  /* of the image part */
    const aibox_image *image;  /* decoded */
    const char *record;        /* the JSON record, one line, without "sample" */
    const char *verdict;       /* OK, NG, uncertain or classified */
    long model_generation;
    /* the record's figures: a classifier's label and confidence (else NULL,
     * NaN), an anomaly model's norm_score (else NaN), the total ms */
    const char *label;
    double confidence, norm_score, ms;
} serve_sample;
/* Where judged images go (the sample store): writes the sample's id into id
 * (NUL-terminated) and returns 0, or returns nonzero with a message in msg.
 * Called from many request threads at once. */
typedef int (*serve_sink_fn)(void *user, const serve_sample *s, char *id, size_t id_cap, char *msg, size_t msg_cap);

/* One image judged: status is the HTTP status (200, or 4xx/5xx with
 * *body an {"error"} object); *body is malloc'ed JSON ending in a newline. */
typedef struct serve_judge_opts {
    long long max_pixels;
    long min_side;
    serve_sink_fn sink; /* NULL: "sample": null */
    void *sink_user;
} serve_judge_opts;
int serve_judge(serve_holder *h, const serve_judge_opts *o, const char *name, const unsigned char *bytes, size_t len,
                const char *content_type, char **body, size_t *body_len, const char **verdict, long *generation);

/* ------------------------------------------------------------------ metrics */
#define SERVE_BUCKETS 12
typedef struct serve_metrics {
    pthread_mutex_t mu;
    unsigned long long by_code[600];
    unsigned long long bucket[SERVE_BUCKETS + 1]; /* the last: +Inf */
    double seconds_sum;
    unsigned long long count;
    unsigned long long ok, ng, uncertain, classified;
    unsigned long long reloads_ok, reloads_failed;
} serve_metrics;
void serve_metrics_init(serve_metrics *m);
void serve_metrics_free(serve_metrics *m);
void serve_metrics_request(serve_metrics *m, int code, double seconds);
void serve_metrics_verdict(serve_metrics *m, const char *verdict);
void serve_metrics_reload(serve_metrics *m, int ok);
/* The Prometheus text exposition (malloc'ed). */
char *serve_metrics_text(serve_metrics *m, long generation, int inflight, size_t *len);

/* ------------------------------------------------------------------ the loop */
/* The sample store, the operator's queue and labels, retraining, the PLC
 * (loop.c). One per server; its calls are safe from every request thread. */
typedef struct serve_loop serve_loop;
typedef struct serve_loop_opts {
    const char *store;        /* the Zarr sample store (made for the model when missing), or NULL */
    const char *runs;         /* retraining runs' folder (NULL: STORE.runs) */
    const char *retrain_args; /* more aibox-train options for a retraining ("--epochs 10") */
    const plc_opts *plc;      /* the PLC output, or NULL */
} serve_loop_opts;
int serve_loop_create(serve_loop **l, serve_holder *h, const serve_loop_opts *o, char *err, size_t cap);
void serve_loop_free(serve_loop **l);
/* The sample sink (serve_sink_fn): the PLC, the store, the page's results. */
int serve_loop_sink(void *user, const serve_sample *s, char *id, size_t id_cap, char *msg, size_t msg_cap);
/* An answer of the loop's routes: body malloc'ed (the caller frees or hands it on). */
typedef struct serve_reply {
    int code;
    const char *ctype;
    char *body;
    size_t len;
} serve_reply;
/* GET /v1/results[?after=N], /v1/queue, /v1/store, /v1/retrain,
 * /v1/samples/ID/image.png|overlay.png, /v1/plots/current|candidate/NAME;
 * POST /v1/samples/ID/label, /v1/retrain, /v1/retrain/swap. */
void serve_loop_route(serve_loop *l, const char *method, const char *url, const char *after, const char *body,
                      size_t body_len, serve_reply *out);

/* ------------------------------------------------------------------ the server */
typedef struct serve_opts {
    const char *bind, *www; /* www: the operator page's folder (NULL: none) */
    int port;
    const char *token;      /* required on every POST when set */
    size_t max_body;
    long long max_pixels;
    long min_side;
    int max_clients, timeout_s;
    serve_sink_fn sink;
    void *sink_user;
    serve_loop *loop; /* the operator loop's routes (NULL: none) */
} serve_opts;

typedef struct serve_server serve_server;
/* Binds and starts the HTTP threads; the bound port in *port. */
int serve_start(serve_server **s, const serve_opts *o, serve_holder *h, int *port, char *err, size_t cap);
/* SIGHUP's reload (counted in the metrics like POST /v1/model/reload). */
long serve_reload(serve_server *s, char *err, size_t cap);
/* Stops accepting, waits up to grace_s for the requests in flight, stops. */
void serve_stop(serve_server **s, double grace_s);

/* A name a client gave (multipart filename, ?name=): 1 when it is a
 * relative path without "." or ".." parts, backslashes or control bytes. */
int serve_name_ok(const char *name);

#endif
