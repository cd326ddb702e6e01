/* aibox-serve: judges images posted over HTTP with a .aibox model loaded
 * once (tools/serve: the model holder, the HTTP side, the metrics). This
 * parses options, starts the server and waits for signals: SIGHUP reloads
 * the model, SIGTERM/SIGINT stop it cleanly. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aibox.h"
#include "cli.h"
#include "serve/serve.h"

#ifndef AIBOX_SERVE_WWW /* set by the Makefile: where `make install` puts tools/serve/www */
#define AIBOX_SERVE_WWW "/usr/local/share/aibox/www"
#endif

static const char usage[] =
    "usage: aibox-serve -m MODEL.aibox [options]\n"
    "An HTTP server judging images with a model trained by aibox-train (a classifier or an anomaly\n"
    "model): POST an image, get the record aibox-infer prints for it. The model is loaded once and\n"
    "shared by the requests; a new file at the same path is swapped in by POST /v1/model/reload or\n"
    "SIGHUP without dropping requests. SIGTERM or SIGINT: stop accepting, finish, exit 0.\n"
    "  -m, --model FILE     the .aibox model (required)\n"
    "  --bind ADDR          numeric IPv4/IPv6 address to listen on (default 127.0.0.1); any other\n"
    "                       than a loopback address needs a token\n"
    "  --port N             TCP port (default 8080; 0: any free port)\n"
    "  --token-file FILE    a token (its first line) required as \"Authorization: Bearer TOKEN\" on every\n"
    "                       POST; default: $AIBOX_SERVE_TOKEN; none: no token (loopback only)\n"
    "  --contexts N         inference contexts, images judged at once (default: the CPU count)\n"
    "  --threads N          threads per context (default 1)\n"
    "  --max-body BYTES     largest request body (default 16777216)\n"
    "  --max-pixels N       refuse images whose header announces more pixels (default 25000000)\n"
    "  --min-side N         refuse images narrower or lower than N pixels (default 8)\n"
    "  --max-clients N      connections at once (default 64)\n"
    "  --timeout S          close a connection idle for S seconds (default 10)\n"
    "  --grace S            at SIGTERM, wait at most S seconds for requests in flight (default 30)\n"
    "  --min-conf P         as aibox-infer: below P a classification is \"uncertain\" (default 0)\n"
    "  --ok-class NAME      as aibox-infer: the class of a good part (repeatable or a comma list)\n"
    "  --www DIR            the operator page's folder: GET / is DIR/index.html, GET /static/NAME\n"
    "                       is DIR/NAME (default: " AIBOX_SERVE_WWW " when it exists)\n"
    "The operator loop (the page at GET /):\n"
    "  --store DIR          the Zarr v2 sample store (made for the model when missing; aibox-store):\n"
    "                       every judged image goes into it unlabelled with the model's answer;\n"
    "                       the uncertain ones wait for the operator's label on the page\n"
    "  --runs DIR           where retrainings go (default STORE.runs)\n"
    "  --retrain-args ARGS  more aibox-train options for a retraining, split at spaces (default none; the\n"
    "                       architecture and input size are the current model's when it is a preset)\n"
    PLC_USAGE
    "  --version, --help\n"
    "Endpoints: POST /v1/infer (body: the image's bytes as image/* or application/octet-stream,\n"
    "?name=NAME for the record's \"file\"; or multipart/form-data with one file field) -> aibox-infer's\n"
    "JSON record plus \"sample\" (the stored sample's id; null without a store); GET /v1/model\n"
    "(metadata), GET /v1/health, GET /metrics (Prometheus text), POST /v1/model/reload; the page's:\n"
    "GET /v1/results, /v1/queue, /v1/store, /v1/retrain, /v1/samples/ID/image.png|overlay.png,\n"
    "/v1/plots/current|candidate/results.png|confusion.png; POST /v1/samples/ID/label ({\"label\": C}),\n"
    "/v1/retrain, /v1/retrain/swap.\n"
    "Errors are {\"error\": \"...\"} with a 4xx or 5xx status. On start one JSON line on stdout:\n"
    "{\"listening\": \"ADDR:PORT\", \"port\", \"model\", \"generation\"}.\n"
    "Exit status: 0 after SIGTERM/SIGINT, 1 cannot listen, 2 bad usage, 3 the model could not be loaded.\n";

typedef struct options {
    const char *model, *token_file;
    char **ok;
    int n_ok;
    long contexts, threads, max_clients, timeout, port;
    double grace, min_conf;
    serve_opts so;
    serve_loop_opts lo;
    plc_opts plc;
} options;

static int parse(int argc, char **argv, options *o, int *done)
{
    const char *prog = "aibox-serve";
    long mb = 16L << 20, mp = 25000000, ms = 8;
    o->so.bind = "127.0.0.1", o->port = 8080, o->threads = 1, o->max_clients = 64, o->timeout = 10, o->grace = 30;
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->contexts = n_cpu > 0 ? n_cpu : 1;
    plc_opts_init(&o->plc);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (cli_help_or_version(prog, a, usage)) return *done = 1, 0;
        else if (plc_parse_opt(&o->plc, prog, argc, argv, &i, &ok)) {
        } else if (!strcmp(a, "--store") && v) o->lo.store = v, i++;
        else if (!strcmp(a, "--runs") && v) o->lo.runs = v, i++;
        else if (!strcmp(a, "--retrain-args") && v) o->lo.retrain_args = v, i++;
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) o->model = v, i++;
        else if (!strcmp(a, "--bind") && v) o->so.bind = v, i++;
        else if (!strcmp(a, "--port")) ok = cli_int(prog, a, v, 0, 65535, &o->port), i++;
        else if (!strcmp(a, "--token-file") && v) o->token_file = v, i++;
        else if (!strcmp(a, "--contexts")) ok = cli_int(prog, a, v, 1, 256, &o->contexts), i++;
        else if (!strcmp(a, "--threads")) ok = cli_int(prog, a, v, 1, 1024, &o->threads), i++;
        else if (!strcmp(a, "--max-body")) ok = cli_int(prog, a, v, 1, 1L << 30, &mb), i++;
        else if (!strcmp(a, "--max-pixels")) ok = cli_int(prog, a, v, 1, 2000000000L, &mp), i++;
        else if (!strcmp(a, "--min-side")) ok = cli_int(prog, a, v, 1, 65536, &ms), i++;
        else if (!strcmp(a, "--max-clients")) ok = cli_int(prog, a, v, 1, 10000, &o->max_clients), i++;
        else if (!strcmp(a, "--timeout")) ok = cli_int(prog, a, v, 1, 3600, &o->timeout), i++;
        else if (!strcmp(a, "--grace")) ok = cli_float(prog, a, v, 0, 86400, &o->grace), i++;
        else if (!strcmp(a, "--min-conf")) ok = cli_float(prog, a, v, 0, 1, &o->min_conf), i++;
        else if (!strcmp(a, "--www") && v) o->so.www = v, i++;
        else if (!strcmp(a, "--ok-class") && v) { /* a comma list, or the option repeated */
            for (char *tok = strtok(argv[++i], ","); tok; tok = strtok(NULL, ",")) o->ok[o->n_ok++] = tok;
        } else {
            fprintf(stderr, "%s: unknown option or missing value '%s' (see --help)\n", prog, a);
            return 2;
        }
        if (!ok) return 2;
    }
    if (!o->model) return fprintf(stderr, "%s: no model given (-m MODEL.aibox; see --help)\n", prog), 2;
    if (!plc_opts_check(&o->plc, prog)) return 2;
    o->lo.plc = &o->plc;
    struct stat st;
    if (!o->so.www && !stat(AIBOX_SERVE_WWW, &st) && S_ISDIR(st.st_mode)) o->so.www = AIBOX_SERVE_WWW;
    o->so.port = (int)o->port, o->so.max_body = (size_t)mb, o->so.max_pixels = mp, o->so.min_side = ms;
    o->so.max_clients = (int)o->max_clients, o->so.timeout_s = (int)o->timeout;
    return 0;
}

/* The token: the first line of --token-file, else $AIBOX_SERVE_TOKEN; NULL
 * for none. *bad on an unreadable or empty file. */
static char *read_token(const char *file, int *bad)
{
    *bad = 0;
    if (!file) {
        const char *e = getenv("AIBOX_SERVE_TOKEN");
        return e && *e ? strdup(e) : NULL;
    }
    unsigned char *bytes = NULL;
    size_t len = 0;
    aibox_error err = {0};
    if (aibox_read_file(file, 4096, &bytes, &len, &err)) {
        fprintf(stderr, "aibox-serve: --token-file %s\n", err.msg);
        return *bad = 1, NULL;
    }
    char *t = calloc(1, len + 1);
    if (t) memcpy(t, bytes, len), t[strcspn(t, "\r\n")] = 0;
    free(bytes);
    if (!t || !t[0]) {
        fprintf(stderr, "aibox-serve: --token-file %s: the first line is empty\n", file);
        free(t);
        return *bad = 1, NULL;
    }
    return t;
}

int main(int argc, char **argv)
{
    options o;
    memset(&o, 0, sizeof o);
    o.ok = calloc((size_t)argc * 8 + 1, sizeof *o.ok);
    int done = 0, rc = o.ok ? parse(argc, argv, &o, &done) : 2, bad = 0;
    char *token = NULL;
    if (!rc && !done) token = read_token(o.token_file, &bad), rc = bad ? 2 : 0;
    if (rc || done) return free(o.ok), free(token), rc;
    o.so.token = token;

    /* the signals are taken by sigwait below: blocked before any thread starts, so every thread inherits the mask */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM), sigaddset(&sigs, SIGINT), sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-answer is no reason to die */

    char err[4600];
    serve_holder h;
    record_policy pol = {o.min_conf, o.ok, o.n_ok};
    if (serve_holder_init(&h, o.model, (int)o.contexts, (int)o.threads, pol, err, sizeof err)) {
        fprintf(stderr, "aibox-serve: %s\n", err);
        serve_holder_free(&h);
        return free(o.ok), free(token), 3;
    }
    if (o.plc.target && !o.n_ok) { /* a classifier's "classified" is no verdict for a PLC */
        serve_model *m = serve_model_acquire(&h);
        const char *task = NULL;
        aibox_model_get_meta_str(serve_model_graph(m), AIBOX_META_TASK, &task);
        serve_model_release(&h, m);
        if (!task || !strcmp(task, "classify")) {
            fprintf(stderr, "aibox-serve: --modbus needs --ok-class with a classifier (which verdict is a good part)\n");
            serve_holder_free(&h);
            return free(o.ok), free(token), 2;
        }
    }
    serve_loop *loop = NULL;
    if (serve_loop_create(&loop, &h, &o.lo, err, sizeof err)) {
        fprintf(stderr, "aibox-serve: %s\n", err);
        serve_holder_free(&h);
        return free(o.ok), free(token), 2;
    }
    o.so.sink = serve_loop_sink, o.so.sink_user = loop, o.so.loop = loop;
    serve_server *s = NULL;
    int port = 0;
    if (serve_start(&s, &o.so, &h, &port, err, sizeof err)) {
        fprintf(stderr, "aibox-serve: %s\n", err);
        serve_loop_free(&loop);
        serve_holder_free(&h);
        return free(o.ok), free(token), strstr(err, "token") ? 2 : 1;
    }
    cli_json j;
    char where[300];
    snprintf(where, sizeof where, strchr(o.so.bind, ':') ? "[%s]:%d" : "%s:%d", o.so.bind, port);
    cj_begin(&j, stdout);
    cj_str(&j, "listening", where);
    cj_int(&j, "port", port);
    cj_str(&j, "model", o.model);
    cj_int(&j, "generation", h.generation);
    cj_end(&j);
    fflush(stdout);
    fprintf(stderr, "aibox-serve: listening on http://%s/ (%ld contexts)\n", where, o.contexts);

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig)) continue;
        if (sig == SIGHUP) {
            serve_reload(s, err, sizeof err);
            continue;
        }
        fprintf(stderr, "aibox-serve: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }
    serve_stop(&s, o.grace);
    serve_loop_free(&loop); /* a retraining still running is stopped */
    serve_holder_free(&h);
    free(o.ok), free(token);
    return 0;
}
