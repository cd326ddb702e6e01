/* aibox-serve's HTTP side on libmicrohttpd (serve.h): a thread per
 * connection, so a slow or stalled client holds only its own thread (and
 * is cut off after the connection timeout) while inference runs on the
 * model's context pool; a table of routes; every error a JSON object. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../cli.h"
#include "serve.h"

struct serve_server {
    struct MHD_Daemon *d;
    int listen_fd;
    serve_opts o;
    serve_holder *h;
    serve_metrics metrics;
    pthread_mutex_t mu; /* guards inflight and stopping */
    pthread_cond_t idle;
    int inflight, stopping;
    double started;
};

typedef struct req req;
typedef enum MHD_Result (*route_fn)(req *r, struct MHD_Connection *c);

/* A route: method and path (a prefix when the path ends in '/'); body:
 * 1 the request carries an image (raw or multipart), 2 a JSON object. Every POST changes state
 * and needs the token when one is set. */
typedef struct route {
    const char *method, *path;
    int body;
    route_fn fn;
} route;

struct req {
    serve_server *s;
    const route *rt;
    double t0;
    int replied;
    /* the body */
    unsigned char *data;
    size_t len, cap, dropped;
    int too_big, multipart, bad_form, files;
    struct MHD_PostProcessor *pp;
    char ctype[128], filename[512], field_key[128];
    size_t field_bytes;
    const char *url, *method;
};

/* ------------------------------------------------------------------ answers */
static enum MHD_Result reply(req *r, struct MHD_Connection *c, int code, const char *ctype, void *buf, size_t len,
                             const char *hname, const char *hval)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
    if (!resp) return free(buf), MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (hname) MHD_add_response_header(resp, hname, hval);
    pthread_mutex_lock(&r->s->mu);
    int stopping = r->s->stopping;
    pthread_mutex_unlock(&r->s->mu);
    if (stopping) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)code, resp);
    MHD_destroy_response(resp);
    r->replied = 1;
    serve_metrics_request(&r->s->metrics, code, cli_now() - r->t0);
    return ret;
}

static enum MHD_Result reply_json(req *r, struct MHD_Connection *c, int code, char *body, size_t len)
{
    if (!body) {
        static const char oom[] = "{\"error\":\"out of memory\"}\n";
        return reply(r, c, 500, "application/json", strdup(oom), sizeof oom - 1, NULL, NULL);
    }
    return reply(r, c, code, "application/json", body, len, NULL, NULL);
}

/* {"error": msg} with code (and one extra header). */
static enum MHD_Result reply_error_h(req *r, struct MHD_Connection *c, int code, const char *hname, const char *hval,
                                     const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    if (f) {
        cli_json j;
        cj_begin(&j, f);
        cj_str(&j, "error", msg);
        cj_end(&j);
        if (fclose(f)) free(body), body = NULL;
    }
    if (!body) return reply_json(r, c, 500, NULL, 0);
    return reply(r, c, code, "application/json", body, len, hname, hval);
}
#define reply_error(r, c, code, ...) reply_error_h(r, c, code, NULL, NULL, __VA_ARGS__)

/* ------------------------------------------------------------------ routes */
static enum MHD_Result on_health(req *r, struct MHD_Connection *c)
{
    serve_server *s = r->s;
    pthread_mutex_lock(&s->mu);
    int inflight = s->inflight, stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&s->h->mu);
    long gen = serve_model_generation(s->h->cur);
    pthread_mutex_unlock(&s->h->mu);
    char *body = malloc(256);
    if (!body) return reply_json(r, c, 500, NULL, 0);
    int n = snprintf(body, 256, "{\"status\":\"%s\",\"generation\":%ld,\"uptime_s\":%.3f,\"in_flight\":%d}\n",
                     stopping ? "stopping" : "ok", gen, cli_now() - s->started, inflight);
    return reply_json(r, c, 200, body, (size_t)n);
}

static enum MHD_Result on_model(req *r, struct MHD_Connection *c)
{
    serve_model *m = serve_model_acquire(r->s->h);
    char *body = strdup(serve_model_info(m));
    serve_model_release(r->s->h, m);
    return reply_json(r, c, 200, body, body ? strlen(body) : 0);
}

long serve_reload(serve_server *s, char *err, size_t cap)
{
    long gen = serve_holder_reload(s->h, NULL, err, cap);
    serve_metrics_reload(&s->metrics, gen > 0);
    if (gen > 0) fprintf(stderr, "aibox-serve: serving %s, generation %ld\n", s->h->path, gen);
    else fprintf(stderr, "aibox-serve: reload failed, still serving generation %ld: %s\n", s->h->generation, err);
    return gen;
}

static enum MHD_Result on_reload(req *r, struct MHD_Connection *c)
{
    char err[4600];
    double t0 = cli_now();
    long gen = serve_reload(r->s, err, sizeof err);
    if (gen < 0) return reply_error(r, c, 500, "reload failed, still serving generation %ld: %s", r->s->h->generation, err);
    char *body = malloc(128);
    if (!body) return reply_json(r, c, 500, NULL, 0);
    int n = snprintf(body, 128, "{\"generation\":%ld,\"ms\":%.3f}\n", gen, (cli_now() - t0) * 1e3);
    return reply_json(r, c, 200, body, (size_t)n);
}

static enum MHD_Result on_metrics(req *r, struct MHD_Connection *c)
{
    serve_server *s = r->s;
    pthread_mutex_lock(&s->mu);
    int inflight = s->inflight;
    pthread_mutex_unlock(&s->mu);
    size_t len = 0;
    char *text = serve_metrics_text(&s->metrics, s->h->generation, inflight, &len);
    if (!text) return reply_json(r, c, 500, NULL, 0);
    return reply(r, c, 200, "text/plain; version=0.0.4", text, len, NULL, NULL);
}

int serve_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (!n || n > 255 || name[0] == '/') return 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '\\') return 0;
    for (const char *seg = name; seg; seg = strchr(seg, '/') ? strchr(seg, '/') + 1 : NULL) {
        size_t l = strcspn(seg, "/");
        if (l == 0 || (l == 1 && seg[0] == '.') || (l == 2 && seg[0] == '.' && seg[1] == '.')) return 0;
    }
    return 1;
}

static enum MHD_Result on_infer(req *r, struct MHD_Connection *c)
{
    serve_server *s = r->s;
    if (r->too_big) return reply_error(r, c, 413, "the body is larger than --max-body (%zu bytes)", s->o.max_body);
    if (r->bad_form) return reply_error(r, c, 400, "malformed multipart/form-data body");
    if (r->multipart && r->files != 1)
        return reply_error(r, c, 400, r->files ? "one image per request (the form has %d file fields)"
                                               : "the form has no file field%.0d", r->files);
    const char *name = r->filename[0] ? r->filename : MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "name");
    if (!name) name = "upload";
    if (!serve_name_ok(name))
        return reply_error(r, c, 400, "bad image name (a relative path without '.' or '..' parts, at most 255 bytes)");
    if (!r->len) return reply_error(r, c, 400, "empty body: POST the image's bytes (or a multipart form with one file)");
    char *body = NULL;
    size_t len = 0;
    const char *verdict = NULL;
    long gen = 0;
    serve_judge_opts jo = {s->o.max_pixels, s->o.min_side, s->o.sink, s->o.sink_user};
    int code = serve_judge(s->h, &jo, name, r->data, r->len, r->ctype, &body, &len, &verdict, &gen);
    if (verdict) serve_metrics_verdict(&s->metrics, verdict);
    if (!body) return reply_json(r, c, 500, NULL, 0);
    char g[32];
    snprintf(g, sizeof g, "%ld", gen);
    return reply(r, c, code, "application/json", body, len, gen ? "X-Aibox-Model-Generation" : NULL, g);
}

/* ------------------------------------------------------------------ the operator page */
static const char *mime(const char *name)
{
    static const char *const map[][2] = {{".html", "text/html; charset=utf-8"}, {".js", "text/javascript"},
                                         {".css", "text/css"}, {".json", "application/json"}, {".png", "image/png"},
                                         {".svg", "image/svg+xml"}, {".ico", "image/x-icon"}, {".txt", "text/plain"}};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof map / sizeof *map; i++)
        if (!strcasecmp(dot, map[i][0])) return map[i][1];
    return "application/octet-stream";
}

/* A file of the --www folder: one plain name (letters, digits, . _ -; no
 * leading dot), a regular file, no symbolic link. */
static enum MHD_Result serve_file(req *r, struct MHD_Connection *c, const char *name)
{
    size_t n = strlen(name);
    int ok = n > 0 && n <= 128 && name[0] != '.';
    for (size_t i = 0; ok && i < n; i++) ok = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", name[i]) != NULL;
    if (!ok) return reply_error(r, c, 400, "bad file name: one name of letters, digits, '.', '_' or '-'");
    if (!r->s->o.www) return reply_error(r, c, 404, "no operator page: start aibox-serve with --www DIR");
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", r->s->o.www, name);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        return reply_error(r, c, 404, "no such file: %s", name);
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd); /* closes fd */
    if (!resp) return close(fd), reply_json(r, c, 500, NULL, 0);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, mime(name));
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    r->replied = 1;
    serve_metrics_request(&r->s->metrics, 200, cli_now() - r->t0);
    return ret;
}

static enum MHD_Result on_index(req *r, struct MHD_Connection *c) { return serve_file(r, c, "index.html"); }

/* The operator loop's routes (loop.c). */
static enum MHD_Result on_loop(req *r, struct MHD_Connection *c)
{
    if (!r->s->o.loop) return reply_error(r, c, 404, "no such endpoint");
    if (r->too_big) return reply_error(r, c, 413, "the body is larger than --max-body (%zu bytes)", r->s->o.max_body);
    serve_reply out;
    const char *after = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after");
    serve_loop_route(r->s->o.loop, r->method, r->url, after, (const char *)r->data, r->len, &out);
    if (!out.body) return reply_json(r, c, 500, NULL, 0);
    return reply(r, c, out.code, out.ctype, out.body, out.len, NULL, NULL);
}
static enum MHD_Result on_static(req *r, struct MHD_Connection *c) { return serve_file(r, c, r->url + strlen("/static/")); }

/* Add a route here (and document it in man/aibox-serve.1). */
static const route routes[] = {
    {"GET", "/v1/health", 0, on_health},
    {"GET", "/v1/model", 0, on_model},
    {"POST", "/v1/model/reload", 0, on_reload},
    {"POST", "/v1/infer", 1, on_infer},
    {"GET", "/metrics", 0, on_metrics},
    {"GET", "/", 0, on_index},
    {"GET", "/v1/results", 0, on_loop},
    {"GET", "/v1/queue", 0, on_loop},
    {"GET", "/v1/store", 0, on_loop},
    {"GET", "/v1/retrain", 0, on_loop},
    {"POST", "/v1/retrain", 0, on_loop},
    {"POST", "/v1/retrain/swap", 0, on_loop},
    {"GET", "/v1/samples/", 0, on_loop},
    {"POST", "/v1/samples/", 2, on_loop},
    {"GET", "/v1/plots/", 0, on_loop},
    {"GET", "/static/", 0, on_static},
};

/* ------------------------------------------------------------------ requests */
static int path_matches(const route *rt, const char *url)
{
    size_t n = strlen(rt->path);
    if (n > 1 && rt->path[n - 1] == '/') return !strncmp(url, rt->path, n);
    return !strcmp(url, rt->path);
}

/* Appends a piece of the image to the request's buffer (grown by doubling,
 * never past --max-body); too_big once it would not fit. */
static enum MHD_Result append_body(req *r, const char *data, size_t size)
{
    size_t max = r->s->o.max_body;
    if (r->len + size > max) return r->too_big = 1, MHD_YES;
    if (r->len + size > r->cap) {
        size_t cap = r->cap ? r->cap : 65536;
        while (cap < r->len + size) cap *= 2;
        if (cap > max) cap = max;
        unsigned char *p = realloc(r->data, cap);
        if (!p) return r->too_big = 1, MHD_YES;
        r->data = p, r->cap = cap;
    }
    memcpy(r->data + r->len, data, size);
    r->len += size;
    return MHD_YES;
}

static enum MHD_Result on_form(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                               const char *content_type, const char *encoding, const char *data, uint64_t off,
                               size_t size)
{
    req *r = cls;
    if (!filename) return MHD_YES; /* plain fields are not used */
    /* a file field starts at offset 0; an empty first piece of the same field is no new field */
    if (off == 0 && !(r->files && !r->field_bytes && !strcmp(r->field_key, key ? key : "") && !strcmp(r->filename, filename))) {
        if (++r->files > 1) return MHD_YES;
        snprintf(r->field_key, sizeof r->field_key, "%s", key ? key : "");
        snprintf(r->filename, sizeof r->filename, "%s", filename);
        snprintf(r->ctype, sizeof r->ctype, "%s", content_type ? content_type : "application/octet-stream");
    }
    r->field_bytes += size;
    if (r->files > 1 || !size) return MHD_YES;
    return append_body(r, data, size);
}

/* Takes a piece of the body; MHD_NO drops the connection (a client that
 * goes on sending long after it was told the body is too large). */
static enum MHD_Result take_body(req *r, const char *data, size_t size)
{
    size_t max = r->s->o.max_body;
    if (!r->rt->body || r->too_big) {
        r->dropped += size;
        if (!r->rt->body && r->dropped > 65536) return MHD_NO;
        return r->dropped > max ? MHD_NO : MHD_YES;
    }
    if (r->multipart) {
        if (!r->bad_form && MHD_post_process(r->pp, data, size) != MHD_YES) r->bad_form = 1;
        if (r->too_big) r->dropped += size;
        return MHD_YES;
    }
    append_body(r, data, size);
    if (r->too_big) r->dropped += size;
    return MHD_YES;
}

static int token_ok(const serve_server *s, struct MHD_Connection *c)
{
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!a || strncasecmp(a, "Bearer ", 7)) return 0;
    a += 7;
    size_t n = strlen(a), m = strlen(s->o.token);
    unsigned diff = n != m;
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)a[i] ^ (unsigned char)s->o.token[i % (m ? m : 1)];
    return diff == 0; /* compared in full whatever matches: no timing hint */
}

/* The first call of a request: its route, token and declared body. */
static enum MHD_Result begin(req *r, struct MHD_Connection *c, const char *url, const char *method)
{
    serve_server *s = r->s;
    const char *m = !strcmp(method, "HEAD") ? "GET" : method;
    const route *path_hit = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        if (!path_matches(&routes[i], url)) continue;
        path_hit = &routes[i];
        if (!strcmp(routes[i].method, m)) {
            r->rt = &routes[i];
            break;
        }
    }
    if (!r->rt) {
        if (path_hit) return reply_error_h(r, c, 405, "Allow", path_hit->method, "%s is not allowed here (use %s)", method, path_hit->method);
        return reply_error(r, c, 404, "no such endpoint (see GET /v1/health, /v1/model, /metrics; POST /v1/infer)");
    }
    if (s->o.token && !strcmp(m, "POST") && !token_ok(s, c))
        return reply_error_h(r, c, 401, "WWW-Authenticate", "Bearer", "a token is needed: Authorization: Bearer TOKEN");
    r->method = r->rt->method;
    if (!r->rt->body) return MHD_YES;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > s->o.max_body)
        return reply_error(r, c, 413, "the body is larger than --max-body (%zu bytes)", s->o.max_body);
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct) ct = "";
    size_t base = strcspn(ct, "; \t");
    if (r->rt->body == 2) {
        if (base == strlen("application/json") && !strncasecmp(ct, "application/json", base)) return MHD_YES;
        return reply_error(r, c, 415, "content type '%.60s': send application/json", ct);
    }
    if (!strncasecmp(ct, "multipart/form-data", base) && base == strlen("multipart/form-data")) {
        r->multipart = 1;
        r->pp = MHD_create_post_processor(c, 65536, on_form, r);
        if (!r->pp) return reply_error(r, c, 400, "multipart/form-data without a usable boundary");
        return MHD_YES;
    }
    if ((base > 6 && !strncasecmp(ct, "image/", 6)) ||
        (base == strlen("application/octet-stream") && !strncasecmp(ct, "application/octet-stream", base))) {
        snprintf(r->ctype, sizeof r->ctype, "%.*s", (int)base, ct);
        return MHD_YES;
    }
    return reply_error(r, c, 415, "content type '%.60s' is not an image: send image/*, application/octet-stream or "
                                  "multipart/form-data", ct);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *data, size_t *size, void **con_cls)
{
    serve_server *s = cls;
    req *r = *con_cls;
    if (!r) {
        if (!(r = calloc(1, sizeof *r))) return MHD_NO;
        r->s = s, r->t0 = cli_now(), r->url = url;
        *con_cls = r;
        pthread_mutex_lock(&s->mu);
        s->inflight++;
        pthread_mutex_unlock(&s->mu);
        return begin(r, c, url, method);
    }
    if (r->replied) return *size = 0, MHD_YES;
    if (*size) {
        enum MHD_Result ret = take_body(r, data, *size);
        *size = 0;
        return ret;
    }
    return r->rt->fn(r, c);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why)
{
    serve_server *s = cls;
    req *r = *con_cls;
    if (!r) return;
    if (r->pp) MHD_destroy_post_processor(r->pp);
    free(r->data);
    free(r);
    *con_cls = NULL;
    pthread_mutex_lock(&s->mu);
    if (--s->inflight == 0) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = 0;
    if (strstr(line, "Error processing request")) return; /* a client's malformed request: its answer says so */
    fprintf(stderr, "aibox-serve: %s\n", line);
}

/* ------------------------------------------------------------------ start, stop */
static int is_loopback(const struct sockaddr *a)
{
    if (a->sa_family == AF_INET) return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
    if (a->sa_family == AF_INET6) return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
    return 0;
}

static int listen_on(const char *host, int port, int *bound, int *loopback, char *err, size_t cap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICHOST};
    struct addrinfo *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc) return snprintf(err, cap, "--bind %s: not a numeric IPv4 or IPv6 address (%s)", host, gai_strerror(rc)), -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    *loopback = is_loopback(ai->ai_addr);
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 128)) {
        snprintf(err, cap, "cannot listen on %s port %d: %s", host, port, strerror(errno));
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int serve_start(serve_server **out, const serve_opts *o, serve_holder *h, int *port, char *err, size_t cap)
{
    *out = NULL;
    int loopback = 0, fd = listen_on(o->bind, o->port, port, &loopback, err, cap);
    if (fd < 0) return -1;
    if (!loopback && !o->token) {
        close(fd);
        return snprintf(err, cap, "--bind %s is not a loopback address: give a token (--token-file or AIBOX_SERVE_TOKEN)",
                        o->bind), -1;
    }
    serve_server *s = calloc(1, sizeof *s);
    if (!s) return close(fd), snprintf(err, cap, "out of memory"), -1;
    s->o = *o, s->h = h, s->listen_fd = fd, s->started = cli_now();
    serve_metrics_init(&s->metrics);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->idle, NULL);
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ITC |
                                MHD_USE_ERROR_LOG,
                            0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_log, s, /* first: from the start */
                            MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_clients,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                            (size_t)128 * 1024, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, cap, "libmicrohttpd could not start on port %d", *port);
        close(fd);
        serve_metrics_free(&s->metrics);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void serve_stop(serve_server **sp, double grace_s)
{
    serve_server *s = *sp;
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_mutex_unlock(&s->mu);
    int fd = MHD_quiesce_daemon(s->d); /* no new connections from here on */
    if (fd >= 0) close(fd);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)grace_s;
    pthread_mutex_lock(&s->mu);
    while (s->inflight > 0 && pthread_cond_timedwait(&s->idle, &s->mu, &until) != ETIMEDOUT) {
    }
    int left = s->inflight;
    pthread_mutex_unlock(&s->mu);
    if (left) fprintf(stderr, "aibox-serve: %d request%s still unfinished after %.0f s: dropped\n", left, left == 1 ? "" : "s", grace_s);
    MHD_stop_daemon(s->d);
    serve_metrics_free(&s->metrics);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->idle);
    free(s);
    *sp = NULL;
}
