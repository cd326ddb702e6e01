/* Test helpers shared by the cmocka suites (see check.h). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/check.h"

void aibox_test_fill_uniform(aibox_rng *rng, float *x, size_t count, float lo, float hi)
{
    for (size_t i = 0; i < count; i++) x[i] = lo + (hi - lo) * aibox_rng_uniform(rng);
}

void aibox_test_fill_uniform_d(aibox_rng *rng, double *x, size_t count, double lo, double hi)
{
    for (size_t i = 0; i < count; i++) x[i] = lo + (hi - lo) * (double)aibox_rng_uniform(rng);
}

void aibox_test_fill_distinct(aibox_rng *rng, float *x, size_t count, float lo, float spacing)
{
    /* Fisher-Yates on the ranks 0..count-1 */
    for (size_t i = 0; i < count; i++) x[i] = (float)i;
    for (size_t i = count; i > 1; i--) {
        size_t j = aibox_rng_below(rng, (uint32_t)i);
        float t = x[i - 1];
        x[i - 1] = x[j];
        x[j] = t;
    }
    for (size_t i = 0; i < count; i++) x[i] = lo + (x[i] + 0.5f) * spacing;
}

void aibox_test_fill_away(aibox_rng *rng, float *x, size_t count, float lo, float hi, const float *kinks, int nk,
                          float gap)
{
    for (size_t i = 0; i < count; i++) {
        for (int tries = 0;; tries++) {
            float v = lo + (hi - lo) * aibox_rng_uniform(rng);
            int ok = 1;
            for (int k = 0; k < nk; k++)
                if (fabsf(v - kinks[k]) < gap) ok = 0;
            if (ok) {
                x[i] = v;
                break;
            }
            if (tries > 1000) fail_msg("aibox_test_fill_away: no value in [%g, %g) is %g away from the kinks", lo,
                                       hi, gap);
        }
    }
}

void *aibox_test_malloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) fail_msg("out of memory (%zu bytes)", bytes);
    return p;
}

float *aibox_test_floats(size_t count)
{
    float *p = calloc(count ? count : 1, sizeof *p);
    if (!p) fail_msg("out of memory (%zu floats)", count);
    return p;
}

double *aibox_test_doubles(size_t count)
{
    double *p = calloc(count ? count : 1, sizeof *p);
    if (!p) fail_msg("out of memory (%zu doubles)", count);
    return p;
}

void aibox_test_f2d(const float *x, double *y, size_t count)
{
    for (size_t i = 0; i < count; i++) y[i] = x[i];
}

void aibox_test_d2f(const double *x, float *y, size_t count)
{
    for (size_t i = 0; i < count; i++) y[i] = (float)x[i];
}

/* Core of the comparisons: values accessed through a getter so float and
 * double arrays share one implementation. */
typedef double (*getter)(const void *a, size_t i);
static double get_f(const void *a, size_t i) { return ((const float *)a)[i]; }
static double get_d(const void *a, size_t i) { return ((const double *)a)[i]; }

static int close_any(const char *what, const void *got, getter gg, const void *want, getter gw, size_t count,
                     double atol, double rtol)
{
    size_t worst = 0, bad = 0;
    double worst_excess = -INFINITY, worst_ratio = 0;
    for (size_t i = 0; i < count; i++) {
        const double g = gg(got, i), w = gw(want, i);
        const double tol = atol + rtol * fabs(w);
        const double err = fabs(g - w);
        /* NaN on either side is an infinite excess */
        const double excess = (err == err) ? err - tol : INFINITY;
        if (excess > 0) bad++;
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
        if (err == err && tol > 0 && err / tol > worst_ratio) worst_ratio = err / tol;
    }
    /* AIBOX_TEST_VERBOSE: how much of each tolerance was used (to tune them) */
    if (getenv("AIBOX_TEST_VERBOSE"))
        fprintf(stderr, "  %s: %zu values, worst error %.3g of tolerance\n", what, count, worst_ratio);
    if (bad == 0) return 1;
    const double g = gg(got, worst), w = gw(want, worst);
    fprintf(stderr,
            "%s: %zu of %zu elements out of tolerance; worst at index %zu: got %.9g, want %.9g, |diff| %.3g > "
            "tol %.3g (atol %.3g + rtol %.3g * |want|)\n",
            what, bad, count, worst, g, w, fabs(g - w), atol + rtol * fabs(w), atol, rtol);
    return 0;
}

int aibox_test_close(const char *what, const float *got, const double *want, size_t count, double atol, double rtol)
{
    return close_any(what, got, get_f, want, get_d, count, atol, rtol);
}

int aibox_test_close_ff(const char *what, const float *got, const float *want, size_t count, double atol,
                        double rtol)
{
    return close_any(what, got, get_f, want, get_f, count, atol, rtol);
}

int aibox_test_close_dd(const char *what, const double *got, const double *want, size_t count, double atol,
                        double rtol)
{
    return close_any(what, got, get_d, want, get_d, count, atol, rtol);
}

int aibox_test_close1(const char *what, double got, double want, double atol, double rtol)
{
    return close_any(what, &got, get_d, &want, get_d, 1, atol, rtol);
}

double aibox_test_dot(const double *x, const double *r, size_t count)
{
    double s = 0;
    for (size_t i = 0; i < count; i++) s += x[i] * r[i];
    return s;
}

/* Both variants of the numerical gradient go through one loop; eval runs the
 * forward at xp (double) and returns L = sum y*r. */
typedef struct numgrad_ctx {
    aibox_test_fwd_d fwd_d;
    aibox_test_fwd_f fwd_f;
    void *user;
    size_t nx, ny;
    const double *r;
    double *y;             /* ny */
    float *xf, *yf;        /* float variant: nx, ny */
} numgrad_ctx;

static double eval_loss(numgrad_ctx *c, const double *xp)
{
    if (c->fwd_d) {
        c->fwd_d(c->user, xp, c->y);
    } else {
        aibox_test_d2f(xp, c->xf, c->nx);
        c->fwd_f(c->user, c->xf, c->yf);
        aibox_test_f2d(c->yf, c->y, c->ny);
    }
    return aibox_test_dot(c->y, c->r, c->ny);
}

static void numgrad(numgrad_ctx *c, const double *x, double step, double *g)
{
    double *xp = aibox_test_doubles(c->nx);
    c->y = aibox_test_doubles(c->ny);
    c->xf = c->fwd_f ? aibox_test_floats(c->nx) : NULL;
    c->yf = c->fwd_f ? aibox_test_floats(c->ny) : NULL;
    memcpy(xp, x, c->nx * sizeof *xp);
    for (size_t i = 0; i < c->nx; i++) {
        double h = step;
        if (c->fwd_f) {
            /* the step actually taken after rounding x +- h to float */
            const float up = (float)(x[i] + step), dn = (float)(x[i] - step);
            h = 0.5 * ((double)up - (double)dn);
            xp[i] = up;
            const double lp = eval_loss(c, xp);
            xp[i] = dn;
            const double lm = eval_loss(c, xp);
            g[i] = (lp - lm) / (2 * h);
        } else {
            xp[i] = x[i] + h;
            const double lp = eval_loss(c, xp);
            xp[i] = x[i] - h;
            const double lm = eval_loss(c, xp);
            g[i] = (lp - lm) / (2 * h);
        }
        xp[i] = x[i];
    }
    free(xp);
    free(c->y);
    free(c->xf);
    free(c->yf);
}

void aibox_test_numgrad_d(aibox_test_fwd_d fwd, void *user, const double *x, size_t nx, const double *r, size_t ny,
                          double step, double *g)
{
    numgrad_ctx c = {.fwd_d = fwd, .user = user, .nx = nx, .ny = ny, .r = r};
    numgrad(&c, x, step, g);
}

void aibox_test_numgrad_f(aibox_test_fwd_f fwd, void *user, const double *x, size_t nx, const double *r, size_t ny,
                          double step, double *g)
{
    numgrad_ctx c = {.fwd_f = fwd, .user = user, .nx = nx, .ny = ny, .r = r};
    numgrad(&c, x, step, g);
}

int aibox_test_gradcheck(const char *what, aibox_test_fwd_d fwd_d, aibox_test_fwd_f fwd_f, void *user,
                         const double *x, size_t nx, const double *r, size_t ny, double step, const float *dx,
                         double atol, double rtol)
{
    if ((fwd_d == NULL) == (fwd_f == NULL)) fail_msg("aibox_test_gradcheck: pass exactly one forward");
    double *g = aibox_test_doubles(nx);
    numgrad_ctx c = {.fwd_d = fwd_d, .fwd_f = fwd_f, .user = user, .nx = nx, .ny = ny, .r = r};
    numgrad(&c, x, step, g);
    const int ok = aibox_test_close(what, dx, g, nx, atol, rtol);
    free(g);
    return ok;
}

int aibox_test_bwd_accumulates(const char *what, aibox_test_bwd bwd, void *user, size_t nx, const double *g,
                               double atol, double rtol, uint64_t seed)
{
    aibox_rng rng;
    aibox_rng_seed(&rng, seed);
    float *base = aibox_test_floats(nx), *dx = aibox_test_floats(nx);
    double *diff = aibox_test_doubles(nx), *want = aibox_test_doubles(nx);
    aibox_test_fill_uniform(&rng, base, nx, -1.0f, 1.0f);
    memcpy(dx, base, nx * sizeof *dx);
    char label[256];
    int ok = 1;
    for (int times = 1; times <= 2 && ok; times++) {
        bwd(user, dx);
        for (size_t i = 0; i < nx; i++) {
            diff[i] = (double)dx[i] - base[i];
            want[i] = times * g[i];
        }
        snprintf(label, sizeof label, "%s (backward call %d, accumulated onto a random base)", what, times);
        /* the base (|base| < 1) adds one float rounding of dx: 2^-24 */
        ok = aibox_test_close_dd(label, diff, want, nx, times * atol + 1.2e-7, rtol);
    }
    free(base);
    free(dx);
    free(diff);
    free(want);
    return ok;
}

int aibox_test_run(char *out, size_t out_len, const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = 0;
    char sink[4096];
    for (;;) {
        size_t r = out ? fread(out + n, 1, out_len - 1 - n, p) : fread(sink, 1, sizeof sink, p);
        if (r == 0) break;
        if (out) n += r;
        if (out && n >= out_len - 1) break;
    }
    if (out) out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

long aibox_test_status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

long aibox_test_peak_kb(int (*fn)(void *arg), void *arg, int *child_rc)
{
    int fds[2];
    if (pipe(fds)) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(fds[0]);
        long r[2] = {-1, -1};
        FILE *cr = fopen("/proc/self/clear_refs", "w");
        int reset = cr && fputs("5", cr) >= 0;
        if (cr && fclose(cr)) reset = 0;
        long base = aibox_test_status_kb("VmRSS");
        int rc = 0;
        if (reset && base >= 0) {
            rc = fn(arg);
            long hwm = aibox_test_status_kb("VmHWM");
            if (hwm >= 0) r[0] = hwm - base, r[1] = hwm;
        }
        if (write(fds[1], r, sizeof r) != (ssize_t)sizeof r) rc = 125;
        _exit(rc);
    }
    close(fds[1]);
    long r[2] = {-1, -1};
    ssize_t got = read(fds[0], r, sizeof r);
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (child_rc) *child_rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return got == (ssize_t)sizeof r ? r[0] : -1;
}

const char *aibox_test_emulator(void)
{
    const char *e = getenv("AIBOX_EMULATOR");
    return e && *e ? e : NULL;
}

void aibox_test_tools_dir(const char *argv0, char *buf, size_t len)
{
    const char *env = getenv("AIBOX_TEST_BIN");
    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return;
    }
    snprintf(buf, len, "%s", argv0);
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(buf, '/');
        if (slash) *slash = 0;
    }
    size_t n = strlen(buf);
    snprintf(buf + n, len - n, "/bin");
}

/* Runs this test binary again with argv[1..] (argv[0] is kept as given):
 * directly, or through the emulator's words when there is one (the emulated
 * binary cannot exec another foreign binary itself; /proc/self/exe reads as
 * the emulated program under qemu-user). Only returns on failure. */
static void exec_self(char *const argv[])
{
    const char *emu = aibox_test_emulator();
    if (!emu) {
        execv("/proc/self/exe", argv);
        return;
    }
    char self[4096], words[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return;
    self[n] = 0;
    snprintf(words, sizeof words, "%s", emu);
    char *args[64];
    int k = 0;
    char *save = NULL;
    for (char *w = strtok_r(words, " ", &save); w && k < 40; w = strtok_r(NULL, " ", &save)) args[k++] = w;
    args[k++] = self;
    for (int i = 1; argv[i] && k < 63; i++) args[k++] = argv[i];
    args[k] = NULL;
    execvp(args[0], args);
}

long aibox_test_child_verdict(char *const argv[], aibox_status *st, char *msg, size_t cap)
{
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 1);
        exec_self(argv);
        _exit(127);
    }
    close(fd[1]);
    char out[AIBOX_ERROR_MSG_LEN + 32] = "";
    ssize_t got = 0, r;
    while ((size_t)got < sizeof out - 1 && (r = read(fd[0], out + got, sizeof out - 1 - (size_t)got)) > 0) got += r;
    close(fd[0]);
    int ws, code = -1, used = 0;
    long kb = -1;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    assert_int_equal(sscanf(out, "%d %ld %n", &code, &kb, &used), 2);
    *st = (aibox_status)code;
    snprintf(msg, cap, "%s", out + used);
    char *nl = strrchr(msg, '\n');
    if (nl) *nl = 0;
    return kb * 1024L;
}

void aibox_test_print_verdict(aibox_status st, const char *msg)
{
    printf("%d %ld %s\n", (int)st, aibox_test_status_kb("VmHWM"), msg ? msg : "");
}

int aibox_test_mkdtemp(char *buf, size_t len, const char *tag)
{
    snprintf(buf, len, "/tmp/aibox_%s_XXXXXX", tag);
    return mkdtemp(buf) ? 0 : -1;
}

int aibox_test_rm_rf(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

void aibox_test_write_part(aibox_rng *r, const char *stem, int w, int h, int ch, int defect)
{
    aibox_image img = {w, h, ch, malloc((size_t)w * h * ch)};
    aibox_image mask = {w, h, 1, calloc((size_t)w * h, 1)};
    assert_non_null(img.data);
    assert_non_null(mask.data);
    int sx = w / 2, sy = h / 3, side = w / 6;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int v = 100 + (int)(30 * sin(x * 0.7) * cos(y * 0.5)) + (int)aibox_rng_below(r, 20);
            int in = defect && x >= sx && x < sx + side && y >= sy && y < sy + side;
            if (in) v = 250, mask.data[y * w + x] = 255;
            for (int c = 0; c < ch; c++) img.data[(y * w + x) * ch + c] = (uint8_t)v;
        }
    char path[4200];
    aibox_error e = {0};
    snprintf(path, sizeof path, "%s.jpg", stem);
    assert_int_equal(aibox_image_write_jpg(&img, path, 95, &e), AIBOX_OK);
    snprintf(path, sizeof path, "%s.png", stem);
    assert_int_equal(aibox_image_write_png(&mask, path, &e), AIBOX_OK);
    aibox_image_free(&img), aibox_image_free(&mask);
}

int aibox_test_torch_script(const char *script, const char *args, const char *skip_rmdir)
{
    const char *why = access(script, R_OK) != 0 ? "the script is not found (run from the source tree)"
                      : access("/usr/bin/python3", X_OK) != 0 ? "/usr/bin/python3 is absent"
                      : aibox_test_emulator()                 ? "emulated run (make check compares with PyTorch natively)"
                                                              : NULL;
    int rc = 0;
    if (!why) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", script, args);
        rc = system(cmd);
        if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77) why = "/usr/bin/python3 cannot import torch (Debian python3-torch)";
    }
    if (why) {
        if (skip_rmdir) rmdir(skip_rmdir);
        print_message("parity skipped (%s): %s\n", script, why);
        skip();
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

/* ------------------------------------------------------------ strict JSON */
typedef struct jp {
    const unsigned char *p, *end, *start;
    const char *why;
    int depth;
} jp;

static int jp_fail(jp *j, const char *why)
{
    if (!j->why) j->why = why;
    return 0;
}
static void jp_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}
static int jp_lit(jp *j, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n)) return jp_fail(j, "invalid literal");
    j->p += n;
    return 1;
}
static int jp_hex4(jp *j, unsigned *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++, j->p++) {
        if (j->p >= j->end) return jp_fail(j, "short \\u escape");
        unsigned c = *j->p;
        unsigned d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : 99;
        if (d == 99) return jp_fail(j, "bad hex digit in \\u escape");
        *v = *v * 16 + d;
    }
    return 1;
}
static int jp_string(jp *j)
{
    j->p++; /* the opening quote */
    while (j->p < j->end) {
        unsigned c = *j->p;
        if (c == '"') {
            j->p++;
            return 1;
        }
        if (c < 0x20) return jp_fail(j, "raw control character in a string");
        if (c == '\\') {
            j->p++;
            if (j->p >= j->end) break;
            c = *j->p;
            if (c == 'u') {
                unsigned v;
                j->p++;
                if (!jp_hex4(j, &v)) return 0;
                continue;
            }
            if (!strchr("\"\\/bfnrt", (int)c) || !c) return jp_fail(j, "bad escape");
            j->p++;
            continue;
        }
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || (size_t)(j->end - j->p) < len) return jp_fail(j, "invalid UTF-8");
        unsigned cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
        for (size_t k = 1; k < len; k++) {
            if ((j->p[k] & 0xC0) != 0x80) return jp_fail(j, "invalid UTF-8");
            cp = cp << 6 | (j->p[k] & 0x3F);
        }
        static const unsigned least[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return jp_fail(j, "invalid UTF-8");
        j->p += len;
    }
    return jp_fail(j, "unterminated string");
}
static int jp_number(jp *j)
{
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return jp_fail(j, "not a number (NaN, Infinity?)");
    if (*j->p == '0') {
        j->p++;
        if (j->p < j->end && *j->p >= '0' && *j->p <= '9') return jp_fail(j, "leading zero");
    } else {
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    }
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9') return jp_fail(j, "no digit after the decimal point");
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9') return jp_fail(j, "bad exponent");
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    }
    return 1;
}
static int jp_value(jp *j)
{
    jp_ws(j);
    if (j->p >= j->end) return jp_fail(j, "missing value");
    if (++j->depth > 64) return jp_fail(j, "nested too deeply");
    int ok;
    unsigned c = *j->p;
    if (c == '{' || c == '[') {
        unsigned close = c == '{' ? '}' : ']';
        j->p++;
        jp_ws(j);
        ok = 1;
        if (j->p < j->end && *j->p == close) {
            j->p++;
        } else {
            for (;;) {
                if (c == '{') {
                    jp_ws(j);
                    if (j->p >= j->end || *j->p != '"') { ok = jp_fail(j, "expected a key"); break; }
                    if (!jp_string(j)) { ok = 0; break; }
                    jp_ws(j);
                    if (j->p >= j->end || *j->p != ':') { ok = jp_fail(j, "expected ':'"); break; }
                    j->p++;
                }
                if (!jp_value(j)) { ok = 0; break; }
                jp_ws(j);
                if (j->p < j->end && *j->p == ',') { j->p++; continue; }
                if (j->p < j->end && *j->p == close) { j->p++; break; }
                ok = jp_fail(j, "expected ',' or a closing bracket");
                break;
            }
        }
    } else if (c == '"') {
        ok = jp_string(j);
    } else if (c == 't') {
        ok = jp_lit(j, "true");
    } else if (c == 'f') {
        ok = jp_lit(j, "false");
    } else if (c == 'n') {
        ok = jp_lit(j, "null");
    } else {
        ok = jp_number(j);
    }
    j->depth--;
    return ok;
}

int aibox_test_json_valid(const char *text, size_t len, char *why, size_t why_len)
{
    jp j = {(const unsigned char *)text, (const unsigned char *)text + len, (const unsigned char *)text, NULL, 0};
    int ok = jp_value(&j);
    if (ok) {
        jp_ws(&j);
        if (j.p != j.end) ok = jp_fail(&j, "text after the value");
    }
    if (!ok && why) snprintf(why, why_len, "%s at byte %ld", j.why, (long)(j.p - j.start));
    return ok;
}

int aibox_test_json_lines(const char *text)
{
    int lines = 0;
    for (const char *s = text; *s;) {
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n) {
            char why[128];
            if (!aibox_test_json_valid(s, n, why, sizeof why)) {
                print_message("not strict JSON (%s): %.*s\n", why, (int)(n > 400 ? 400 : n), s);
                return 0;
            }
            lines++;
        }
        s += n + (e != NULL);
    }
    return lines > 0;
}

aibox_model *aibox_test_strided_backbone(int size, const int ch[4], uint64_t seed)
{
    aibox_model *m = NULL;
    aibox_error err;
    assert_int_equal(aibox_model_create(&m, 3, size, size, &err), AIBOX_OK);
    int x = 0;
    for (int i = 0; i < 4; i++) {
        aibox_conv_opts o = {ch[i], 3, 3, 2, 2, 1, 1, 1, 1, 1, 1};
        x = aibox_relu(m, aibox_conv2d(m, x, &o));
    }
    assert_int_equal(aibox_model_finish(m, seed, &err), AIBOX_OK);
    return m;
}

float *aibox_test_normal_images(int n, int size, uint64_t seed)
{
    size_t count = (size_t)n * 3 * size * size;
    float *x = aibox_test_malloc(sizeof(float) * count);
    aibox_rng r;
    aibox_rng_seed(&r, seed);
    for (size_t i = 0; i < count; i++) x[i] = aibox_rng_normal(&r);
    return x;
}

unsigned char *aibox_test_slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    assert_true(n >= 0);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

double aibox_test_half_value(uint16_t h)
{
    int e = h >> 10 & 0x1f, m = h & 0x3ff;
    double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
    return h & 0x8000 ? -v : v;
}

float *aibox_test_read_f32(const char *path, size_t count)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    float *x = aibox_test_malloc(sizeof(float) * count);
    assert_int_equal(fread(x, sizeof(float), count, f), count);
    fclose(f);
    return x;
}

void aibox_test_parity_inputs(const char *script, const char *dir, aibox_model **bb, float **fit, int n_fit,
                              float **test, int n_test)
{
    char cmd[1200], path[1200];
    snprintf(cmd, sizeof cmd, "gen %s", dir);
    assert_int_equal(aibox_test_torch_script(script, cmd, NULL), 0);
    aibox_error err;
    snprintf(path, sizeof path, "%s/resnet18.safetensors", dir);
    assert_int_equal(aibox_import(bb, path, NULL, &err), AIBOX_OK);
    const size_t img = 3 * 224 * 224;
    snprintf(path, sizeof path, "%s/fit.f32", dir);
    *fit = aibox_test_read_f32(path, (size_t)n_fit * img);
    snprintf(path, sizeof path, "%s/test.f32", dir);
    *test = aibox_test_read_f32(path, (size_t)n_test * img);
}
