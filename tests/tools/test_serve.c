/* aibox-serve as a client sees it, over plain sockets: a small classifier
 * trained on NEU (one epoch; $AIBOX_DATA/neu-cls, else the suite skips), the
 * server on a free loopback port; health, model and metrics; /v1/infer's
 * records equal aibox-infer's for the same files (but "ms"; both with one
 * thread per inference context, as the thread count moves last digits); 4 concurrent
 * clients posting AIBOX_SERVE_LOAD images (default 1000) with a model
 * reload in the middle, every answer 200 and equal, requests/s and p50/p99
 * printed; bad inputs each a 4xx with a JSON error while the server stays
 * up; a token; SIGTERM with a request in flight exits 0; and the operator
 * loop: the page in Debian's headless Chromium (tests/serve/browser.js,
 * playwright-core from $AIBOX_PLAYWRIGHT, which make check fetches from
 * npm): results shown, an uncertain sample labelled into the Zarr store, a
 * retraining run and its model swapped in, a screenshot kept beside this
 * binary (serve_page.png); PLC coils follow the verdicts through the store
 * sink; the store's samples hold what was posted. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "aibox.h"
#include "common/check.h"

static char bin[4096], dir[256], data[4096], model[4400];
static int have_data;

typedef struct server {
    pid_t pid;
    int port;
} server;
static server main_srv;

/* ------------------------------------------------------------ the server */
/* Starts aibox-serve with extra arguments (and env "K=V" or NULL); the
 * port from its first stdout line. */
static server start(const char *extra, const char *env)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    server s = {0};
    s.pid = fork();
    assert_true(s.pid >= 0);
    if (s.pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]), close(fds[1]);
        char cmd[16384], log[400];
        snprintf(log, sizeof log, "%s/serve.log", dir);
        snprintf(cmd, sizeof cmd, "%s%sexec %s/aibox-serve -m %s --port 0 --contexts 2 --timeout 2 --www tools/serve/www %s 2>>%s",
                 env ? env : "", env ? " " : "", bin, model, extra, log);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[1024] = "";
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    fclose(f);
    const char *p = strstr(line, "\"port\":");
    if (!p) fail_msg("aibox-serve did not start (see %s/serve.log): '%s'", dir, line);
    s.port = atoi(p + 7);
    return s;
}

static int stop(server *s, int sig)
{
    int st = 0;
    kill(s->pid, sig);
    waitpid(s->pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int alive(const server *s) { return waitpid(s->pid, NULL, WNOHANG) == 0; }

/* ------------------------------------------------------------ a client */
static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) return close(fd), -1;
    return fd;
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        c += w, n -= (size_t)w;
    }
    return 0;
}

typedef struct answer {
    int status; /* 0: closed without an answer */
    char head[2048];
    char *body;
    size_t len;
} answer;

/* Reads an answer to its end (every request says Connection: close). */
static answer read_answer(int fd)
{
    answer a = {0};
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    ssize_t r;
    while ((r = recv(fd, buf + n, cap - n, 0)) > 0) {
        n += (size_t)r;
        if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
    }
    buf[n] = 0;
    char *end = strstr(buf, "\r\n\r\n");
    if (n > 12 && !strncmp(buf, "HTTP/1.", 7) && end) {
        a.status = atoi(buf + 9);
        snprintf(a.head, sizeof a.head, "%.*s", (int)(end - buf), buf);
        a.len = n - (size_t)(end + 4 - buf);
        a.body = malloc(a.len + 1);
        memcpy(a.body, end + 4, a.len);
        a.body[a.len] = 0;
    } else {
        a.body = calloc(1, 1);
    }
    free(buf);
    return a;
}

/* One request: head lines (without the request line's CRLF ending), a body. */
static answer http(int port, const char *method, const char *path, const char *headers, const void *body, size_t len)
{
    int fd = dial(port);
    if (fd < 0) return (answer){0, "", calloc(1, 1), 0};
    char head[4096];
    int hn = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s", method, path,
                      headers ? headers : "");
    if (body) hn += snprintf(head + hn, sizeof head - (size_t)hn, "Content-Length: %zu\r\n", len);
    hn += snprintf(head + hn, sizeof head - (size_t)hn, "\r\n");
    send_all(fd, head, (size_t)hn);
    if (body && len) send_all(fd, body, len);
    answer a = read_answer(fd);
    close(fd);
    return a;
}

static void answer_free(answer *a) { free(a->body), a->body = NULL; }

/* A 4xx whose body is one JSON object with "error". */
static void expect_json_error(answer a, int status, const char *what)
{
    if (a.status != status || !strstr(a.body, "{\"error\":") || !aibox_test_json_lines(a.body))
        fail_msg("%s: status %d (want %d), body '%s'", what, a.status, status, a.body);
    answer_free(&a);
}

static void expect_up(int port)
{
    answer a = http(port, "GET", "/v1/health", NULL, NULL, 0);
    if (a.status != 200 || !strstr(a.body, "\"status\":\"ok\"")) fail_msg("health after: %d '%s'", a.status, a.body);
    answer_free(&a);
}

/* ------------------------------------------------------------ records */
/* The record without "ms" (a time) and the server's "sample":null. */
static void strip(char *s)
{
    char *p = strstr(s, ",\"ms\":");
    if (p) {
        char *e = p + 6;
        if (*e == '{') e = strchr(e, '}') + 1; /* an anomaly record's {"decode", "score", "total"} */
        else
            while ((*e >= '0' && *e <= '9') || *e == '.') e++;
        memmove(p, e, strlen(e) + 1);
    }
    if ((p = strstr(s, ",\"sample\":null"))) memmove(p, p + 14, strlen(p + 14) + 1);
    s[strcspn(s, "\n")] = 0;
}

/* NEU's files, relative to neu-cls, and aibox-infer's record for each. */
typedef struct { char name[96]; char *want; } item;
static item *items;
static int n_items;

static void load_expected(void)
{
    static const char *const classes[] = {"crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"};
    items = calloc(6 * 300, sizeof *items);
    for (int c = 0; c < 6; c++)
        for (int i = 1; i <= 300; i++) snprintf(items[n_items++].name, sizeof items[0].name, "%s/%s_%d.jpg", classes[c], classes[c], i);
    /* aibox-infer on them all, from neu-cls so that "file" is the same relative name, with the
     * server's threads per context (1): the thread count moves the last digit of a few probabilities */
    char list[4400], cmd[32768];
    snprintf(list, sizeof list, "%s/list.txt", dir);
    FILE *f = fopen(list, "w");
    for (int i = 0; i < n_items; i++) fprintf(f, "%s\n", items[i].name);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd %s && %s/aibox-infer -m %s --threads 1 --stdin-list < %s > %s/want.jsonl", data, bin, model, list, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(list, sizeof list, "%s/want.jsonl", dir);
    f = fopen(list, "r");
    char line[4096];
    for (int i = 0; i < n_items && fgets(line, sizeof line, f); i++) {
        strip(line);
        items[i].want = strdup(line);
    }
    fclose(f);
    for (int i = 0; i < n_items; i++) assert_non_null(items[i].want);
}

static unsigned char *slurp_item(int i, size_t *len)
{
    char p[8400];
    snprintf(p, sizeof p, "%s/%s", data, items[i].name);
    unsigned char *b = aibox_test_slurp(p, len);
    assert_non_null(b);
    return b;
}

static answer post_image(int port, const char *name, const unsigned char *b, size_t len, const char *extra_head)
{
    char path[512], head[512];
    snprintf(path, sizeof path, "/v1/infer?name=%s", name);
    snprintf(head, sizeof head, "Content-Type: image/jpeg\r\n%s", extra_head ? extra_head : "");
    return http(port, "POST", path, head, b, len);
}

/* ------------------------------------------------------------ setup */
static int setup(void **state)
{
    (void)state;
    const char *d = getenv("AIBOX_DATA");
    snprintf(data, sizeof data, "%s/neu-cls", d ? d : "");
    struct stat st;
    have_data = d && !stat(data, &st) && S_ISDIR(st.st_mode);
    if (!have_data) return 0;
    if (aibox_test_mkdtemp(dir, sizeof dir, "serve")) return -1;
    snprintf(model, sizeof model, "%s/m.aibox", dir);
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "%s/aibox-train %s -o %s --model small --size 32 --epochs 1 --batch 16 --seed 1 --threads 2 "
                              "--quiet --no-augment >/dev/null 2>%s/train.log", bin, data, model, dir);
    if (system(cmd)) return fprintf(stderr, "test_serve: aibox-train failed (%s/train.log)\n", dir), -1;
    load_expected();
    main_srv = start("--max-body 1000000", NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (!have_data) return 0;
    if (main_srv.pid > 0 && alive(&main_srv)) stop(&main_srv, SIGKILL);
    for (int i = 0; i < n_items; i++) free(items[i].want);
    free(items);
    aibox_test_rm_rf(dir);
    return 0;
}

#define NEED_DATA()                                                                                    \
    do {                                                                                               \
        if (!have_data) {                                                                              \
            print_message("skipping: %s not found (set AIBOX_DATA to the shared data folder)\n", data); \
            skip();                                                                                    \
        }                                                                                              \
    } while (0)

/* ------------------------------------------------------------ tests */
static void test_endpoints(void **state)
{
    (void)state;
    NEED_DATA();
    int port = main_srv.port;
    answer a = http(port, "GET", "/v1/health", NULL, NULL, 0);
    assert_int_equal(a.status, 200);
    assert_true(aibox_test_json_lines(a.body));
    assert_non_null(strstr(a.body, "\"status\":\"ok\""));
    answer_free(&a);
    a = http(port, "GET", "/v1/model", NULL, NULL, 0);
    assert_int_equal(a.status, 200);
    assert_true(aibox_test_json_lines(a.body));
    assert_non_null(strstr(a.body, "\"kind\":\"classifier\""));
    assert_non_null(strstr(a.body, "\"classes\":[\"crazing\","));
    answer_free(&a);
    a = http(port, "GET", "/", NULL, NULL, 0);
    assert_int_equal(a.status, 200);
    assert_non_null(strstr(a.head, "text/html"));
    answer_free(&a);
    size_t len;
    unsigned char *b = slurp_item(0, &len);
    a = post_image(port, items[0].name, b, len, NULL);
    assert_int_equal(a.status, 200);
    answer_free(&a);
    free(b);
    a = http(port, "GET", "/metrics", NULL, NULL, 0);
    assert_int_equal(a.status, 200);
    assert_non_null(strstr(a.head, "text/plain"));
    assert_non_null(strstr(a.body, "aibox_requests_total{code=\"200\"}"));
    assert_non_null(strstr(a.body, "aibox_request_seconds_bucket{le=\"+Inf\"}"));
    assert_non_null(strstr(a.body, "aibox_verdicts_total{verdict=\"classified\"}"));
    assert_non_null(strstr(a.body, "aibox_model_reloads_total{result=\"ok\"}"));
    answer_free(&a);
}

/* Raw bytes and a multipart form give aibox-infer's record (but "ms"). */
static void test_same_as_infer(void **state)
{
    (void)state;
    NEED_DATA();
    for (int i = 0; i < n_items; i += 150) {
        size_t len;
        unsigned char *b = slurp_item(i, &len);
        answer a = post_image(main_srv.port, items[i].name, b, len, NULL);
        assert_int_equal(a.status, 200);
        assert_true(aibox_test_json_lines(a.body));
        assert_non_null(strstr(a.body, ",\"sample\":null}"));
        strip(a.body);
        assert_string_equal(a.body, items[i].want);
        answer_free(&a);
        /* the same image as a form's file field, named by its filename */
        const char *bnd = "xYzBoUnDaRy";
        char *form = malloc(len + 1024);
        int h = sprintf(form, "--%s\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--%s\r\n"
                              "Content-Disposition: form-data; name=\"image\"; filename=\"%s\"\r\nContent-Type: image/jpeg\r\n\r\n",
                        bnd, bnd, items[i].name);
        memcpy(form + h, b, len);
        int t = sprintf(form + h + len, "\r\n--%s--\r\n", bnd);
        a = http(main_srv.port, "POST", "/v1/infer", "Content-Type: multipart/form-data; boundary=xYzBoUnDaRy\r\n", form,
                 (size_t)h + len + (size_t)t);
        assert_int_equal(a.status, 200);
        strip(a.body);
        assert_string_equal(a.body, items[i].want);
        answer_free(&a);
        free(form), free(b);
    }
}

/* ------------------------------------------------------------ load */
typedef struct load {
    int port, total, errors, mismatches;
    int next, done;
    double *lat;
    int gen_seen[8];
    pthread_mutex_t mu;
} load;

static void *client(void *arg)
{
    load *L = arg;
    for (;;) {
        pthread_mutex_lock(&L->mu);
        int k = L->next < L->total ? L->next++ : -1;
        pthread_mutex_unlock(&L->mu);
        if (k < 0) break;
        int i = (int)(((long long)k * 7919) % n_items); /* every class, spread */
        size_t len;
        unsigned char *b = slurp_item(i, &len);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        answer a = post_image(L->port, items[i].name, b, len, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        free(b);
        const char *g = strstr(a.head, "X-Aibox-Model-Generation: ");
        int gen = g ? atoi(g + 26) : 0;
        if (a.status == 200) strip(a.body);
        pthread_mutex_lock(&L->mu);
        L->lat[k] = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        if (a.status != 200) {
            if (L->errors++ < 3) fprintf(stderr, "# load: %s: status %d '%s'\n", items[i].name, a.status, a.body);
        } else if (strcmp(a.body, items[i].want)) {
            if (L->mismatches++ < 3) fprintf(stderr, "# load: %s:\n#  got  %s\n#  want %s\n", items[i].name, a.body, items[i].want);
        }
        if (gen > 0 && gen < 8) L->gen_seen[gen]++;
        L->done++;
        pthread_mutex_unlock(&L->mu);
        answer_free(&a);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_load_with_reload(void **state)
{
    (void)state;
    NEED_DATA();
    /* under qemu (make check-arm64) 200: the same checks, a fifth of the emulated minutes */
    load L = {.port = main_srv.port, .total = aibox_test_emulator() ? 200 : 1000};
    if (getenv("AIBOX_SERVE_LOAD")) L.total = atoi(getenv("AIBOX_SERVE_LOAD"));
    if (L.total < 8) L.total = 8;
    L.lat = calloc((size_t)L.total, sizeof *L.lat);
    pthread_mutex_init(&L.mu, NULL);
    answer a = http(L.port, "GET", "/v1/health", NULL, NULL, 0);
    const char *g = strstr(a.body, "\"generation\":");
    int gen0 = g ? atoi(g + 13) : 0;
    answer_free(&a);
    pthread_t th[4];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int t = 0; t < 4; t++) pthread_create(&th[t], NULL, client, &L);
    for (;;) { /* the reload, in the middle of the run */
        pthread_mutex_lock(&L.mu);
        int done = L.done;
        pthread_mutex_unlock(&L.mu);
        if (done >= L.total / 2) break;
        usleep(2000);
    }
    a = http(L.port, "POST", "/v1/model/reload", NULL, NULL, 0);
    assert_int_equal(a.status, 200);
    answer_free(&a);
    for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    qsort(L.lat, (size_t)L.total, sizeof *L.lat, cmp_double);
    printf("# aibox-serve: %d images by 4 clients in %.2f s: %.0f requests/s, latency p50 %.1f ms, p99 %.1f ms; "
           "generations %d: %d answers, %d: %d answers\n",
           L.total, secs, L.total / secs, L.lat[L.total / 2] * 1e3, L.lat[(int)(L.total * 0.99)] * 1e3, gen0,
           gen0 > 0 && gen0 < 8 ? L.gen_seen[gen0] : -1, gen0 + 1, gen0 + 1 < 8 ? L.gen_seen[gen0 + 1] : -1);
    assert_int_equal(L.errors, 0);
    assert_int_equal(L.mismatches, 0);
    assert_true(gen0 > 0 && gen0 + 1 < 8);
    assert_int_equal(L.gen_seen[gen0] + L.gen_seen[gen0 + 1], L.total); /* every answer from one of the two */
    assert_true(L.gen_seen[gen0 + 1] > 0);
    free(L.lat);
    pthread_mutex_destroy(&L.mu);
    expect_up(main_srv.port);
}

/* ------------------------------------------------------------ bad input */
/* A PNG whose header claims w x h (valid signature and IHDR CRC, no data). */
static size_t huge_png(unsigned char *p, uint32_t w, uint32_t h)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(p, sig, 8);
    unsigned char ihdr[17] = {'I', 'H', 'D', 'R', w >> 24, w >> 16, w >> 8, w, h >> 24, h >> 16, h >> 8, h, 8, 0, 0, 0, 0};
    p[8] = 0, p[9] = 0, p[10] = 0, p[11] = 13;
    memcpy(p + 12, ihdr, 17);
    uLong c = crc32(0, ihdr, 17);
    p[29] = (unsigned char)(c >> 24), p[30] = (unsigned char)(c >> 16), p[31] = (unsigned char)(c >> 8), p[32] = (unsigned char)c;
    return 33;
}

static void test_bad_input(void **state)
{
    (void)state;
    NEED_DATA();
    int port = main_srv.port;
    size_t len;
    unsigned char *b = slurp_item(3, &len);
    /* a truncated image (the body as long as it says) */
    expect_json_error(post_image(port, "cut.jpg", b, len / 3, NULL), 400, "truncated JPEG");
    expect_up(port);
    /* a body shorter than its Content-Length, the client then half-closing:
     * no answer can follow, the connection is closed; others are unaffected */
    int fd = dial(port);
    char head[512];
    int hn = snprintf(head, sizeof head, "POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: %zu\r\n\r\n", len);
    send_all(fd, head, (size_t)hn);
    send_all(fd, b, 100);
    shutdown(fd, SHUT_WR);
    answer a = read_answer(fd);
    assert_true(a.status == 0 || (a.status >= 400 && a.status < 500));
    answer_free(&a);
    close(fd);
    /* ... or stalling: cut off after --timeout 2 while other clients are served at once */
    fd = dial(port);
    send_all(fd, head, (size_t)hn);
    send_all(fd, b, 100);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_up(port);
    answer ok = post_image(port, items[3].name, b, len, NULL);
    assert_int_equal(ok.status, 200);
    answer_free(&ok);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 2);
    a = read_answer(fd); /* returns when the server closes it */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(a.status == 0 || (a.status >= 400 && a.status < 500));
    assert_true(t1.tv_sec - t0.tv_sec <= 6);
    answer_free(&a);
    close(fd);
    /* oversized: the declared length refused before the body is read */
    fd = dial(port);
    hn = snprintf(head, sizeof head, "POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 900000000\r\n\r\n");
    send_all(fd, head, (size_t)hn);
    expect_json_error(read_answer(fd), 413, "900 MB declared");
    close(fd);
    /* ... and a chunked body that outgrows --max-body (1 MB for this server) */
    fd = dial(port);
    hn = snprintf(head, sizeof head, "POST /v1/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: image/jpeg\r\n"
                                     "Transfer-Encoding: chunked\r\n\r\n");
    send_all(fd, head, (size_t)hn);
    static char chunk[65536 + 16];
    int cn = sprintf(chunk, "10000\r\n");
    memset(chunk + cn, 'A', 65536);
    memcpy(chunk + cn + 65536, "\r\n", 2);
    for (int i = 0; i < 20; i++)
        if (send_all(fd, chunk, (size_t)cn + 65538)) break;
    send_all(fd, "0\r\n\r\n", 5);
    a = read_answer(fd);
    if (a.status) expect_json_error(a, 413, "chunked 1.3 MB");
    else answer_free(&a); /* or cut off for sending on after the limit */
    close(fd);
    expect_up(port);
    /* wrong content types */
    expect_json_error(http(port, "POST", "/v1/infer", "Content-Type: text/plain\r\n", "hello", 5), 415, "text/plain");
    expect_json_error(http(port, "POST", "/v1/infer", NULL, b, len), 415, "no content type");
    expect_json_error(http(port, "POST", "/v1/infer", "Content-Type: application/json\r\n", "{}", 2), 415, "json");
    /* a PNG header claiming 100000 x 100000 pixels */
    unsigned char png[64];
    size_t pn = huge_png(png, 100000, 100000);
    expect_json_error(http(port, "POST", "/v1/infer?name=big.png", "Content-Type: image/png\r\n", png, pn), 413, "huge PNG");
    expect_json_error(http(port, "POST", "/v1/infer", "Content-Type: image/png\r\n", "", 0), 400, "empty body");
    expect_json_error(http(port, "POST", "/v1/infer", "Content-Type: image/png\r\n", "garbage!", 8), 400, "garbage");
    /* path traversal, in the URL and in names */
    expect_json_error(http(port, "GET", "/static/../../etc/passwd", NULL, NULL, 0), 400, "/static/../..");
    expect_json_error(http(port, "GET", "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd", NULL, NULL, 0), 400, "escaped ../..");
    expect_json_error(http(port, "GET", "/static/.hidden", NULL, NULL, 0), 400, "hidden name");
    expect_json_error(http(port, "GET", "/static/nothere.js", NULL, NULL, 0), 404, "missing file");
    expect_json_error(post_image(port, "../../etc/passwd", b, len, NULL), 400, "name ../..");
    expect_json_error(post_image(port, "/etc/passwd", b, len, NULL), 400, "absolute name");
    expect_json_error(post_image(port, "a/%2e%2e/b", b, len, NULL), 400, "escaped .. name");
    const char *form = "--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"../x.jpg\"\r\n"
                       "Content-Type: image/jpeg\r\n\r\nAAAA\r\n--B--\r\n";
    expect_json_error(http(port, "POST", "/v1/infer", "Content-Type: multipart/form-data; boundary=B\r\n", form, strlen(form)),
                      400, "multipart filename ../");
    /* routes and methods */
    expect_json_error(http(port, "GET", "/v1/nothing", NULL, NULL, 0), 404, "unknown path");
    expect_json_error(http(port, "GET", "/v1/infer", NULL, NULL, 0), 405, "GET /v1/infer");
    expect_json_error(http(port, "PUT", "/v1/model/reload", NULL, "x", 1), 405, "PUT reload");
    free(b);
    expect_up(port);
    assert_true(alive(&main_srv));
}

static void test_token(void **state)
{
    (void)state;
    NEED_DATA();
    server s = start("", "AIBOX_SERVE_TOKEN=s3cret");
    size_t len;
    unsigned char *b = slurp_item(5, &len);
    expect_json_error(post_image(s.port, items[5].name, b, len, NULL), 401, "no token");
    expect_json_error(post_image(s.port, items[5].name, b, len, "Authorization: Bearer s3cre\r\n"), 401, "wrong token");
    expect_json_error(http(s.port, "POST", "/v1/model/reload", NULL, NULL, 0), 401, "reload without token");
    answer a = post_image(s.port, items[5].name, b, len, "Authorization: Bearer s3cret\r\n");
    assert_int_equal(a.status, 200);
    answer_free(&a);
    expect_up(s.port); /* reading needs no token */
    assert_int_equal(stop(&s, SIGTERM), 0);
    free(b);
    /* elsewhere than loopback, no token: refused at start */
    char out[512];
    assert_int_equal(aibox_test_run(out, sizeof out, "env -u AIBOX_SERVE_TOKEN %s/aibox-serve -m %s --bind 0.0.0.0 --port 0 2>/dev/null",
                                    bin, model), 2);
}

/* An anomaly model (an auto-encoder fitted in a second on 20 NEU crazing
 * images): the records equal aibox-infer's, the model says what it is. */
static void test_anomaly_model(void **state)
{
    (void)state;
    NEED_DATA();
    char cmd[32768], line[8192];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/good && for i in $(seq 1 20); do cp %s/crazing/crazing_$i.jpg %s/good/; done && "
                              "%s/aibox-train autoencoder %s/good -o %s/ae.aibox --size 32 --width 8 --epochs 2 --threads 1 "
                              ">/dev/null 2>>%s/train.log", dir, data, dir, bin, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    char saved[4400];
    memcpy(saved, model, sizeof saved);
    snprintf(model, sizeof model, "%s/ae.aibox", dir);
    server s = start("", NULL);
    memcpy(model, saved, sizeof saved);
    answer a = http(s.port, "GET", "/v1/model", NULL, NULL, 0);
    assert_non_null(strstr(a.body, "\"kind\":\"anomaly\",\"method\":\"autoencoder\""));
    answer_free(&a);
    for (int i = 0; i < n_items; i += 300) {
        snprintf(cmd, sizeof cmd, "cd %s && %s/aibox-infer -m %s/ae.aibox --threads 1 %s", data, bin, dir, items[i].name);
        aibox_test_run(line, sizeof line, "%s", cmd);
        strip(line);
        size_t len;
        unsigned char *b = slurp_item(i, &len);
        a = post_image(s.port, items[i].name, b, len, NULL);
        free(b);
        assert_int_equal(a.status, 200);
        assert_true(aibox_test_json_lines(a.body));
        strip(a.body);
        assert_string_equal(a.body, line);
        answer_free(&a);
    }
    assert_int_equal(stop(&s, SIGTERM), 0);
}

/* SIGTERM with a request in flight: it is answered, then exit 0. */
/* The browser test: skipped, saying why, without node, playwright-core or chromium. */
static void test_page(void **state)
{
    (void)state;
    NEED_DATA();
    const char *pw = getenv("AIBOX_PLAYWRIGHT"), *chrome = getenv("AIBOX_CHROMIUM");
    char probe[4600];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/node_modules/playwright-core/package.json", pw ? pw : "");
    if (!pw || stat(probe, &st) || stat(chrome ? chrome : "/usr/bin/chromium", &st) ||
        aibox_test_run(NULL, 0, "node --version >/dev/null 2>&1")) {
        print_message("skipping: the browser test needs node, playwright-core ($AIBOX_PLAYWRIGHT, fetched by make "
                      "check) and /usr/bin/chromium (Debian's chromium)\n");
        skip();
    }
    /* a store of 8 NEU images a class, at the model's 32 x 32 */
    char sub[600], store[600], cmd[32768];
    snprintf(sub, sizeof sub, "%s/page_subset", dir);
    snprintf(store, sizeof store, "%s/page_store", dir);
    snprintf(cmd, sizeof cmd,
             "set -e; mkdir -p %s; for c in $(ls %s); do mkdir -p %s/$c; for f in $(ls %s/$c | sed -n 1,8p); do "
             "ln -sf %s/$c/$f %s/$c/$f; done; done; %s/aibox-store import %s --store %s --size 32 --gray >/dev/null",
             sub, data, sub, data, data, sub, bin, sub, store);
    assert_int_equal(aibox_test_run(NULL, 0, "%s", cmd), 0);
    char extra[2048];
    snprintf(extra, sizeof extra,
             "--store %s --min-conf 0.999 --retrain-args '--epochs 1 --no-augment --min-samples 6 --batch 8 --threads 2'",
             store);
    server s = start(extra, NULL);
    /* three scratches from the end of the class, which the store does not hold */
    char self[4096], shot[4200], out[65536];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    *strrchr(self, '/') = 0;
    snprintf(shot, sizeof shot, "%s/serve_page.png", self);
    int rc = aibox_test_run(out, sizeof out,
                            "cd %s/scratches && AIBOX_PLAYWRIGHT=%s node %s/tests/serve/browser.js http://127.0.0.1:%d/ %s "
                            "scratches $(ls | tail -n 3 | sed 's|^|%s/scratches/|') 2>&1",
                            data, pw, getcwd(probe, sizeof probe), s.port, shot, data);
    print_message("browser: %s", out);
    print_message("screenshot: %s\n", shot);
    assert_int_equal(rc, 0);
    /* the server agrees: one more labelled scratch, a second model generation */
    answer a = http(s.port, "GET", "/v1/store", NULL, NULL, 0);
    assert_int_equal(a.status, 200);
    assert_non_null(strstr(a.body, "\"scratches\":9"));
    answer_free(&a);
    a = http(s.port, "GET", "/v1/health", NULL, NULL, 0);
    assert_non_null(strstr(a.body, "\"generation\":2"));
    answer_free(&a);
    assert_int_equal(stop(&s, SIGTERM), 0);
    /* the store holds what was posted: 48 imported + 3 judged samples, readable by the library */
    aibox_store *stq = NULL;
    aibox_error e = {0};
    assert_int_equal(aibox_store_open(&stq, store, AIBOX_STORE_READONLY, &e), AIBOX_OK);
    assert_int_equal(aibox_store_count(stq), 51);
    assert_int_equal(aibox_store_label(stq, 50) >= -1, 1);
    aibox_store_free(&stq);
}

static void test_sigterm(void **state)
{
    (void)state;
    NEED_DATA();
    server s = start("", NULL);
    size_t len;
    unsigned char *b = slurp_item(7, &len);
    int fd = dial(s.port);
    char head[512];
    int hn = snprintf(head, sizeof head, "POST /v1/infer?name=%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: image/jpeg\r\n"
                                         "Content-Length: %zu\r\n\r\n", items[7].name, len);
    send_all(fd, head, (size_t)hn);
    send_all(fd, b, len / 2);
    usleep(200000); /* the request is being read when the signal comes */
    kill(s.pid, SIGTERM);
    usleep(100000);
    send_all(fd, b + len / 2, len - len / 2);
    answer a = read_answer(fd);
    close(fd);
    assert_int_equal(a.status, 200);
    strip(a.body);
    assert_string_equal(a.body, items[7].want);
    answer_free(&a);
    int st = 0;
    waitpid(s.pid, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(dial(s.port) < 0); /* no longer listening */
    free(b);
    /* SIGHUP reloads the main server's model */
    answer h = http(main_srv.port, "GET", "/v1/health", NULL, NULL, 0);
    int gen = atoi(strstr(h.body, "\"generation\":") + 13);
    answer_free(&h);
    kill(main_srv.pid, SIGHUP);
    for (int i = 0; i < 100; i++) {
        h = http(main_srv.port, "GET", "/v1/health", NULL, NULL, 0);
        int now = atoi(strstr(h.body, "\"generation\":") + 13);
        answer_free(&h);
        if (now == gen + 1) break;
        assert_true(i < 99);
        usleep(50000);
    }
    assert_int_equal(stop(&main_srv, SIGINT), 0);
}

int main(int argc, char **argv)
{
    (void)argc;
    aibox_test_tools_dir(argv[0], bin, sizeof bin);
    char abs_bin[PATH_MAX]; /* the commands below cd into the data first */
    if (realpath(bin, abs_bin)) snprintf(bin, sizeof bin, "%s", abs_bin);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_same_as_infer),
        cmocka_unit_test(test_load_with_reload),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_anomaly_model),
        cmocka_unit_test(test_page),
        cmocka_unit_test(test_sigterm),
    };
    return cmocka_run_group_tests_name("aibox-serve", tests, setup, teardown);
}
