/* aibox-serve's counters and their Prometheus text exposition (serve.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

/* seconds; an inference on this class of machine takes 1 ms to 1 s */
static const double bounds[SERVE_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

void serve_metrics_init(serve_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void serve_metrics_free(serve_metrics *m) { pthread_mutex_destroy(&m->mu); }

void serve_metrics_request(serve_metrics *m, int code, double seconds)
{
    int b = 0;
    while (b < SERVE_BUCKETS && seconds > bounds[b]) b++;
    pthread_mutex_lock(&m->mu);
    if (code >= 100 && code < 600) m->by_code[code]++;
    m->bucket[b]++;
    m->seconds_sum += seconds;
    m->count++;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_verdict(serve_metrics *m, const char *verdict)
{
    pthread_mutex_lock(&m->mu);
    if (!strcmp(verdict, "OK")) m->ok++;
    else if (!strcmp(verdict, "NG")) m->ng++;
    else if (!strcmp(verdict, "uncertain")) m->uncertain++;
    else m->classified++;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_reload(serve_metrics *m, int ok)
{
    pthread_mutex_lock(&m->mu);
    if (ok) m->reloads_ok++;
    else m->reloads_failed++;
    pthread_mutex_unlock(&m->mu);
}

char *serve_metrics_text(serve_metrics *m, long generation, int inflight, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f) return NULL;
    pthread_mutex_lock(&m->mu);
    fputs("# HELP aibox_requests_total HTTP requests answered, by status code.\n"
          "# TYPE aibox_requests_total counter\n", f);
    for (int c = 100; c < 600; c++)
        if (m->by_code[c]) fprintf(f, "aibox_requests_total{code=\"%d\"} %llu\n", c, m->by_code[c]);
    fputs("# HELP aibox_request_seconds Time from a request's headers to its answer.\n"
          "# TYPE aibox_request_seconds histogram\n", f);
    unsigned long long cum = 0;
    for (int b = 0; b < SERVE_BUCKETS; b++)
        cum += m->bucket[b], fprintf(f, "aibox_request_seconds_bucket{le=\"%g\"} %llu\n", bounds[b], cum);
    fprintf(f, "aibox_request_seconds_bucket{le=\"+Inf\"} %llu\n", cum + m->bucket[SERVE_BUCKETS]);
    fprintf(f, "aibox_request_seconds_sum %.6f\naibox_request_seconds_count %llu\n", m->seconds_sum, m->count);
    fputs("# HELP aibox_verdicts_total Images judged, by verdict.\n# TYPE aibox_verdicts_total counter\n", f);
    fprintf(f, "aibox_verdicts_total{verdict=\"OK\"} %llu\naibox_verdicts_total{verdict=\"NG\"} %llu\n", m->ok, m->ng);
    fprintf(f, "aibox_verdicts_total{verdict=\"uncertain\"} %llu\naibox_verdicts_total{verdict=\"classified\"} %llu\n",
            m->uncertain, m->classified);
    fputs("# HELP aibox_model_reloads_total Model reloads (POST /v1/model/reload, SIGHUP), by result.\n"
          "# TYPE aibox_model_reloads_total counter\n", f);
    fprintf(f, "aibox_model_reloads_total{result=\"ok\"} %llu\naibox_model_reloads_total{result=\"failed\"} %llu\n",
            m->reloads_ok, m->reloads_failed);
    pthread_mutex_unlock(&m->mu);
    fprintf(f, "# HELP aibox_model_generation The model generation being served (1 at start).\n"
               "# TYPE aibox_model_generation gauge\naibox_model_generation %ld\n", generation);
    fprintf(f, "# HELP aibox_requests_in_flight Requests being read or answered.\n"
               "# TYPE aibox_requests_in_flight gauge\naibox_requests_in_flight %d\n", inflight);
    if (fclose(f)) free(text), text = NULL;
    return text;
}
