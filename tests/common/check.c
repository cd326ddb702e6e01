/* Test helpers shared by the cmocka suites (see check.h). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int aibox_test_torch_script(const char *script, const char *args, const char *skip_rmdir)
{
    const char *why = access(script, R_OK) != 0 ? "the script is not found (run from the source tree)"
                      : access("/usr/bin/python3", X_OK) != 0 ? "/usr/bin/python3 is absent"
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
