/* aibox-infer's PLC output (tools/plc.c) against a libmodbus TCP server this
 * test runs on loopback in a thread: fed one path at a time (--stdin-list),
 * an NG image sets the coil and an OK image clears it, the holding register
 * follows the verdict (error included), the unit identifier reaches the
 * server; a connection the server drops is made again; a closed port is a
 * clear error before any image, and a server that never answers costs the
 * timeout, not a hang.
 *
 * The model is made here: a 1x8x8 input averaged to one number m in [0, 1],
 * logits good 0 and bad 20 m - 10, so a white image is "bad" (NG with
 * --ok-class good) and a black one "good" (OK). */
#include <errno.h>
#include <poll.h>
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
#include <sys/wait.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>
#include <cmocka.h>
#include <modbus/modbus.h>

#include "aibox.h"
#include "common/check.h"

#define PATHF(buf, ...) assert_true(snprintf(buf, sizeof buf, __VA_ARGS__) < (int)sizeof buf)

static char bin[4096], dir[64];

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------ the server */
typedef struct server {
    modbus_t *ctx;
    modbus_mapping_t *map;
    int listen_fd, port;
    int drop_after_reply; /* closes each connection after one reply */
    pthread_mutex_t lock; /* map and counters: the server thread writes, the test reads */
    int stop, requests, connections, last_unit;
    pthread_t thread;
} server;

static int server_stopping(server *s)
{
    pthread_mutex_lock(&s->lock);
    int stop = s->stop;
    pthread_mutex_unlock(&s->lock);
    return stop;
}

static void *serve(void *arg)
{
    server *s = arg;
    uint8_t q[MODBUS_TCP_MAX_ADU_LENGTH];
    while (!server_stopping(s)) {
        struct pollfd pf = {s->listen_fd, POLLIN, 0};
        if (poll(&pf, 1, 50) <= 0) continue; /* wakes to look at stop */
        int c = accept(s->listen_fd, NULL, NULL);
        if (c < 0) continue;
        modbus_set_socket(s->ctx, c);
        pthread_mutex_lock(&s->lock);
        s->connections++;
        pthread_mutex_unlock(&s->lock);
        while (!server_stopping(s)) {
            int n = modbus_receive(s->ctx, q);
            if (n == -1 && errno == ETIMEDOUT) continue; /* the indication timeout: look at stop */
            if (n == -1) break;                           /* the client closed */
            if (n == 0) continue;
            pthread_mutex_lock(&s->lock);
            s->last_unit = q[6]; /* MBAP header: transaction 2, protocol 2, length 2, unit 1 */
            modbus_reply(s->ctx, q, n, s->map);
            s->requests++;
            pthread_mutex_unlock(&s->lock);
            if (s->drop_after_reply) break;
        }
        close(c);
    }
    return NULL;
}

/* On 127.0.0.1 at a port the kernel picks. */
static void server_start(server *s, int drop_after_reply)
{
    memset(s, 0, sizeof *s);
    s->drop_after_reply = drop_after_reply;
    pthread_mutex_init(&s->lock, NULL);
    s->ctx = modbus_new_tcp("127.0.0.1", 0);
    assert_non_null(s->ctx);
    s->map = modbus_mapping_new(16, 0, 16, 0);
    assert_non_null(s->map);
    s->listen_fd = modbus_tcp_listen(s->ctx, 4);
    assert_true(s->listen_fd >= 0);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    assert_true(s->port > 0);
    assert_int_equal(modbus_set_indication_timeout(s->ctx, 0, 100000), 0);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(server *s)
{
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    modbus_mapping_free(s->map);
    modbus_free(s->ctx);
    pthread_mutex_destroy(&s->lock);
}

static int coil(server *s, int i)
{
    pthread_mutex_lock(&s->lock);
    int v = s->map->tab_bits[i];
    pthread_mutex_unlock(&s->lock);
    return v;
}

static int reg(server *s, int i)
{
    pthread_mutex_lock(&s->lock);
    int v = s->map->tab_registers[i];
    pthread_mutex_unlock(&s->lock);
    return v;
}

static void set_coil_reg(server *s, int ci, int cv, int ri, int rv)
{
    pthread_mutex_lock(&s->lock);
    s->map->tab_bits[ci] = (uint8_t)cv, s->map->tab_registers[ri] = (uint16_t)rv;
    pthread_mutex_unlock(&s->lock);
}

static int counter(server *s, const int *field)
{
    pthread_mutex_lock(&s->lock);
    int v = *field;
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* ------------------------------------------------------------ the tool, fed line by line */
typedef struct child {
    pid_t pid;
    FILE *in, *out;
} child;

static void spawn(child *c, const char *cmd)
{
    int to[2], from[2];
    assert_int_equal(pipe(to), 0);
    assert_int_equal(pipe(from), 0);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        dup2(to[0], 0), dup2(from[1], 1);
        close(to[0]), close(to[1]), close(from[0]), close(from[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(to[0]), close(from[1]);
    c->in = fdopen(to[1], "w");
    c->out = fdopen(from[0], "r");
    assert_non_null(c->in);
    assert_non_null(c->out);
}

/* One path in, its result line out (at most 60 s: a hang fails the test). */
static void ask(child *c, const char *path, char *line, size_t cap)
{
    fprintf(c->in, "%s\n", path);
    fflush(c->in);
    struct pollfd pf = {fileno(c->out), POLLIN, 0};
    if (poll(&pf, 1, 60000) != 1) fail_msg("no result line for %s within 60 s", path);
    if (!fgets(line, (int)cap, c->out)) fail_msg("aibox-infer ended before answering %s", path);
    print_message("%s -> %s", path, line);
}

static int finish(child *c)
{
    fclose(c->in);
    fclose(c->out);
    int st;
    assert_int_equal(waitpid(c->pid, &st, 0), c->pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void print_file(const char *path)
{
    size_t n = 0;
    unsigned char *t = aibox_test_slurp(path, &n);
    if (t && n) t[n] = 0, print_message("%s: %s", path, (char *)t);
    free(t);
}

/* ------------------------------------------------------------ fixture */
static void write_pgm(const char *name, int value)
{
    char p[256];
    PATHF(p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fprintf(f, "P5\n8 8\n255\n");
    for (int i = 0; i < 64; i++) fputc(value, f);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    (void)state;
    if (aibox_test_mkdtemp(dir, sizeof dir, "modbus")) return -1;
    aibox_model *m = NULL;
    aibox_error e = {0};
    if (aibox_model_create(&m, 1, 8, 8, &e)) return -1;
    int x = aibox_dense(m, aibox_flatten(m, aibox_global_avgpool(m, 0)), 2, 1);
    static const char *const names[] = {"good", "bad"};
    if (x < 0 || aibox_model_finish(m, 1, &e) || aibox_model_set_meta_strs(m, AIBOX_META_CLASS_NAMES, 2, names, &e))
        return -1;
    size_t nw = 0, nb = 0;
    float *w = aibox_model_node_param(m, x, 0, &nw), *b = aibox_model_node_param(m, x, 1, &nb);
    if (nw != 2 || nb != 2) return -1;
    w[0] = 0, w[1] = 20, b[0] = 0, b[1] = -10;
    char p[256];
    snprintf(p, sizeof p, "%s/m.aibox", dir);
    if (aibox_model_save(m, p, &e)) return -1;
    aibox_model_free(&m);
    write_pgm("white.pgm", 255);
    write_pgm("black.pgm", 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(dir);
}

/* ------------------------------------------------------------ tests */
/* NG sets coil 3, OK clears it; register 5 says 1 NG, 0 OK, 3 error; unit 7. */
static void test_coil_follows_verdicts(void **state)
{
    (void)state;
    server s;
    server_start(&s, 0);
    set_coil_reg(&s, 3, 0, 5, 99);
    char cmd[8192], line[4096], p[256];
    PATHF(cmd, "%s/aibox-infer -m %s/m.aibox --ok-class good --stdin-list --modbus 127.0.0.1:%d --coil-ng 3 "
               "--register-verdict 5 --modbus-unit 7 2>%s/err.log",
          bin, dir, s.port, dir);
    child c;
    spawn(&c, cmd);

    PATHF(p, "%s/white.pgm", dir);
    ask(&c, p, line, sizeof line);
    assert_non_null(strstr(line, "\"verdict\":\"NG\""));
    assert_int_equal(coil(&s, 3), 1);
    assert_int_equal(reg(&s, 5), 1);
    assert_int_equal(counter(&s, &s.last_unit), 7);

    PATHF(p, "%s/black.pgm", dir);
    ask(&c, p, line, sizeof line);
    assert_non_null(strstr(line, "\"verdict\":\"OK\""));
    assert_int_equal(coil(&s, 3), 0);
    assert_int_equal(reg(&s, 5), 0);

    PATHF(p, "%s/missing.pgm", dir); /* cannot be judged: not a good part */
    ask(&c, p, line, sizeof line);
    assert_non_null(strstr(line, "\"error\""));
    assert_int_equal(coil(&s, 3), 1);
    assert_int_equal(reg(&s, 5), 3);

    PATHF(p, "%s/black.pgm", dir);
    ask(&c, p, line, sizeof line);
    assert_int_equal(coil(&s, 3), 0);
    assert_int_equal(reg(&s, 5), 0);

    int rc = finish(&c);
    PATHF(p, "%s/err.log", dir);
    print_file(p);
    assert_int_equal(rc, 2); /* the missing image */
    assert_int_equal(counter(&s, &s.requests), 8); /* register and coil per image, one connection */
    assert_int_equal(counter(&s, &s.connections), 1);
    assert_int_equal(coil(&s, 2) + coil(&s, 4) + reg(&s, 4) + reg(&s, 6), 0); /* nothing else written */
    server_stop(&s);
}

/* POSTs a file to 127.0.0.1:port/v1/infer; the answer's body into out. */
static int post_file(int port, const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char body[8192];
    size_t n = fread(body, 1, sizeof body, f);
    fclose(f);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char head[256];
    int hn = snprintf(head, sizeof head, "POST /v1/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                         "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n", n);
    assert_int_equal(write(fd, head, (size_t)hn), hn);
    assert_int_equal(write(fd, body, n), (ssize_t)n);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = read(fd, out + got, cap - 1 - got)) > 0) got += (size_t)r;
    out[got] = 0;
    close(fd);
    return atoi(out + 9); /* "HTTP/1.1 200" */
}

/* aibox-serve drives the same coil per posted image (its sample sink). */
static void test_serve_coil(void **state)
{
    (void)state;
    server s;
    server_start(&s, 0);
    set_coil_reg(&s, 3, 0, 0, 0);
    char cmd[8192], line[1024] = "", p[256], ans[8192];
    PATHF(cmd, "exec %s/aibox-serve -m %s/m.aibox --ok-class good --port 0 --contexts 1 --modbus 127.0.0.1:%d "
               "--coil-ng 3 2>%s/serve.log",
          bin, dir, s.port, dir);
    child c;
    spawn(&c, cmd);
    if (!fgets(line, sizeof line, c.out)) line[0] = 0;
    const char *pp = strstr(line, "\"port\":");
    assert_non_null(pp);
    int port = atoi(pp + 7);
    PATHF(p, "%s/white.pgm", dir);
    assert_int_equal(post_file(port, p, ans, sizeof ans), 200);
    assert_non_null(strstr(ans, "\"verdict\":\"NG\""));
    assert_int_equal(coil(&s, 3), 1);
    PATHF(p, "%s/black.pgm", dir);
    assert_int_equal(post_file(port, p, ans, sizeof ans), 200);
    assert_non_null(strstr(ans, "\"verdict\":\"OK\""));
    assert_int_equal(coil(&s, 3), 0);
    kill(c.pid, SIGTERM);
    assert_int_equal(finish(&c), 0);
    server_stop(&s);
}

/* The server closes the connection after each reply: every write after the
 * first finds it broken and makes it again, without an error. */
static void test_reconnects(void **state)
{
    (void)state;
    server s;
    server_start(&s, 1);
    char out[4096], p[256];
    int rc = aibox_test_run(out, sizeof out,
                            "%s/aibox-infer -m %s/m.aibox --ok-class good --modbus 127.0.0.1:%d --coil-ng 0 "
                            "%s/white.pgm %s/black.pgm %s/white.pgm 2>%s/err.log",
                            bin, dir, s.port, dir, dir, dir, dir);
    PATHF(p, "%s/err.log", dir);
    print_file(p);
    assert_int_equal(rc, 1); /* NG among them, and no failure */
    assert_int_equal(counter(&s, &s.requests), 3);
    assert_int_equal(counter(&s, &s.connections), 3);
    assert_int_equal(coil(&s, 0), 1);
    server_stop(&s);
}

/* A free port nobody listens on: refused at start, exit 2, no result line. */
static void test_refused(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    int port = ntohs(a.sin_port);
    close(fd); /* bound, never listened: the port is free now */
    char out[4096], err[4096], want[128];
    double t0 = now();
    int rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/m.aibox --ok-class good --modbus 127.0.0.1:%d "
                                             "--coil-ng 1 %s/white.pgm 2>&1 >/dev/null",
                            bin, dir, port, dir);
    print_message("exit %d after %.2f s: %s", rc, now() - t0, out);
    assert_int_equal(rc, 2);
    snprintf(want, sizeof want, "aibox-infer: modbus 127.0.0.1:%d: cannot connect: ", port);
    assert_non_null(strstr(out, want));
    rc = aibox_test_run(err, sizeof err, "%s/aibox-infer -m %s/m.aibox --ok-class good --modbus 127.0.0.1:%d "
                                         "--coil-ng 1 %s/white.pgm 2>/dev/null",
                        bin, dir, port, dir);
    assert_int_equal(rc, 2);
    assert_string_equal(err, ""); /* no line: the tool stopped before the images */
}

/* A server that accepts the connection (the kernel's backlog) and never
 * answers: each write waits --modbus-timeout, once more on a new connection,
 * then the image's line is printed, the error named on stderr, exit 2. */
static void test_silent_server_times_out(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    int port = ntohs(a.sin_port);
    char out[4096], p[256], want[128];
    double t0 = now();
    int rc = aibox_test_run(out, sizeof out,
                            "%s/aibox-infer -m %s/m.aibox --ok-class good --modbus 127.0.0.1:%d --coil-ng 1 "
                            "--modbus-timeout 0.2 %s/black.pgm 2>%s/err.log",
                            bin, dir, port, dir, dir);
    double s = now() - t0;
    close(fd);
    PATHF(p, "%s/err.log", dir);
    print_file(p);
    print_message("exit %d after %.2f s\n", rc, s);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "\"verdict\":\"OK\"")); /* the verdict itself stands */
    size_t n = 0;
    char *log = (char *)aibox_test_slurp(p, &n);
    assert_non_null(log);
    log[n] = 0;
    snprintf(want, sizeof want, "modbus 127.0.0.1:%d: writing coil 1: ", port);
    assert_non_null(strstr(log, want));
    assert_non_null(strstr(log, "(verdict OK not delivered)"));
    free(log);
    assert_true(s < 30); /* two 0.2 s waits, plus start-up (slow under an emulator) */
}

static void test_usage(void **state)
{
    (void)state;
    char out[4096];
    static const char *const bad[] = {
        "--ok-class good --coil-ng 1",                          /* no --modbus */
        "--ok-class good --modbus 127.0.0.1:502",               /* nothing to write */
        "--ok-class good --modbus 127.0.0.1:0 --coil-ng 1",     /* port */
        "--ok-class good --modbus :502 --coil-ng 1",            /* host */
        "--ok-class good --modbus h --coil-ng 65536",           /* address */
        "--ok-class good --modbus h --coil-ng 1 --modbus-unit 250",
        "--ok-class good --modbus h --coil-ng 1 --modbus-timeout 0",
        "--modbus 127.0.0.1:9 --coil-ng 1",                     /* a classifier without --ok-class */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = aibox_test_run(out, sizeof out, "%s/aibox-infer -m %s/m.aibox %s %s/white.pgm 2>&1", bin, dir, bad[i],
                                dir);
        print_message("%s: exit %d: %s", bad[i], rc, out);
        assert_int_equal(rc, 2);
        assert_null(strstr(out, "\"verdict\""));
        assert_non_null(strstr(out, "--"));
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    signal(SIGPIPE, SIG_IGN); /* a tool that dies early must fail the test, not kill it */
    aibox_test_tools_dir(argv[0], bin, sizeof bin);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coil_follows_verdicts),
        cmocka_unit_test(test_reconnects),
        cmocka_unit_test(test_serve_coil),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests_name("aibox-infer --modbus", tests, setup, teardown);
}
