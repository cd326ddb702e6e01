/* Reusable helpers for the cmocka suites: seeded fills, tolerant array
 * comparison that names the worst element, and a central finite-difference
 * gradient checker in double precision.
 *
 * Include after <cmocka.h> (and its prerequisites) when using the
 * AIBOX_TEST_* assertion macros. */
#ifndef AIBOX_TEST_CHECK_H
#define AIBOX_TEST_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "aibox.h"

/* ------------------------------------------------------------ fills */
/* Uniform in [lo, hi) from a seeded generator (reproducible runs). */
void aibox_test_fill_uniform(aibox_rng *rng, float *x, size_t count, float lo, float hi);
void aibox_test_fill_uniform_d(aibox_rng *rng, double *x, size_t count, double lo, double hi);
/* Values lo + (perm[i] + 0.5)*spacing for a random permutation perm of
 * 0..count-1: all distinct, at least `spacing` apart. For max pooling and
 * kinks, where ties or values near a kink make finite differences useless. */
void aibox_test_fill_distinct(aibox_rng *rng, float *x, size_t count, float lo, float spacing);
/* Same as fill_uniform, but keeps every value at least `gap` away from each
 * of the kinks k[0..nk-1] (resampling), so a central difference with a step
 * below gap never straddles one. */
void aibox_test_fill_away(aibox_rng *rng, float *x, size_t count, float lo, float hi, const float *kinks, int nk,
                          float gap);

/* Runs a shell command (printf-style), captures its stdout into out (NULL:
 * discarded; truncated to out_len - 1 bytes, NUL-terminated) and returns the
 * exit status (128 + signal when killed). For the tools' tests. */
int aibox_test_run(char *out, size_t out_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Peak memory of a piece of work: runs fn(arg) in a forked child whose
 * peak-RSS mark is reset first (/proc/self/clear_refs), and returns how far
 * the child's peak resident set rose above its starting RSS, in kB; -1 when
 * this kernel cannot reset the mark (the caller then skips). The child's exit
 * status is fn's return value (*child_rc). For "refusing costs no more than
 * the file's size" checks. */
long aibox_test_peak_kb(int (*fn)(void *arg), void *arg, int *child_rc);
/* Verdicts measured in a fresh process: this test binary runs itself again
 * (/proc/self/exe with argv) and the child prints one line with
 * aibox_test_print_verdict: its status, its peak RSS (VmHWM, which starts
 * anew with the exec: wait4's ru_maxrss would also count the parent's
 * memory, inherited through fork) and the message. Returns the child's peak
 * RSS in bytes; *st and msg receive the verdict. */
long aibox_test_child_verdict(char *const argv[], aibox_status *st, char *msg, size_t cap);
/* The command that runs this build's programs when they are not native:
 * AIBOX_EMULATOR, set by `make check-arm64` to "qemu-aarch64 -U ...", or
 * NULL on a native run. Children of the tests go through it, and checks the
 * emulator cannot honour (an address-space limit on qemu itself, peak RSS
 * that includes qemu's own memory, PyTorch parity on big shapes, which
 * `make check` runs natively) skip or relax, saying so. */
const char *aibox_test_emulator(void);
/* The folder of this build's tools for a test binary at argv0
 * (<build>/tests/<suite>/<name> -> <build>/bin), or $AIBOX_TEST_BIN when set:
 * `make check-arm64` points it at wrappers that run each aarch64 tool under
 * the emulator, so the tool suites' commands (pipes and redirections
 * included) run unchanged. */
void aibox_test_tools_dir(const char *argv0, char *buf, size_t len);
void aibox_test_print_verdict(aibox_status st, const char *msg);
/* A "Field:   123 kB" line of /proc/self/status (VmRSS, VmHWM, ...), or -1. */
long aibox_test_status_kb(const char *field);

/* Strict JSON (RFC 8259) of one text: a single value, valid UTF-8, no NaN,
 * Infinity, trailing commas, leading zeros or raw control characters.
 * Returns 1, or 0 with the reason and byte offset in why. */
int aibox_test_json_valid(const char *text, size_t len, char *why, size_t why_len);
/* Every non-empty line of text is strict JSON (prints the first bad line). */
int aibox_test_json_lines(const char *text);

/* A fresh folder /tmp/aibox_<tag>_XXXXXX into buf (0 on success), and its
 * removal with everything in it. For suites' setup and teardown. */
int aibox_test_mkdtemp(char *buf, size_t len, const char *tag);
int aibox_test_rm_rf(const char *dir);

/* A synthetic textured part, w x h with ch channels, written as stem.jpg;
 * with defect, a bright square (x from w/2, y from h/3, side w/6) whose mask
 * is written beside it as stem.png (for good parts an all-zero mask). For
 * the anomaly tests. */
void aibox_test_write_part(aibox_rng *r, const char *stem, int w, int h, int ch, int defect);
/* The anomaly suites' backbone: a random CNN on 3 x size x size input, four
 * 3x3 stride-2 conv + ReLU stages of ch[0..3] channels (stage ends at strides
 * 2, 4, 8, 16), initialised from seed; and n images of N(0, 1) pixels. */
aibox_model *aibox_test_strided_backbone(int size, const int ch[4], uint64_t seed);
float *aibox_test_normal_images(int n, int size, uint64_t seed);
/* count floats (host order) read from a file a reference script wrote; the test fails otherwise. */
float *aibox_test_read_f32(const char *path, size_t count);
/* A whole file (NULL when it cannot be opened; one spare byte at the end);
 * the caller frees it. */
unsigned char *aibox_test_slurp(const char *path, size_t *len);
/* The value of a finite IEEE half from its fields, in double: the independent
 * reference of the float16 tests. */
double aibox_test_half_value(uint16_t h);
/* The anomaly parity tests' inputs: runs `script gen dir` (skips the test
 * without torch, as aibox_test_torch_script), imports dir/resnet18.safetensors
 * into *bb and reads dir/fit.f32 (n_fit images) and dir/test.f32 (n_test) of
 * 3 x 224 x 224. */
void aibox_test_parity_inputs(const char *script, const char *dir, aibox_model **bb, float **fit, int n_fit,
                              float **test, int n_test);

/* Runs "/usr/bin/python3 script args" (a PyTorch parity fixture) from the
 * source tree and returns its exit status; skips the calling test with a
 * message when the script or python3 is absent or torch cannot be imported
 * (the script exits 77), removing the empty folder skip_rmdir first (may be NULL). */
int aibox_test_torch_script(const char *script, const char *args, const char *skip_rmdir);

/* Conversions and allocation that abort the test on failure. */
void *aibox_test_malloc(size_t bytes);
float *aibox_test_floats(size_t count);   /* zero-filled */
double *aibox_test_doubles(size_t count); /* zero-filled */
void aibox_test_f2d(const float *x, double *y, size_t count);
void aibox_test_d2f(const double *x, float *y, size_t count);

/* ------------------------------------------------------------ comparison */
/* 1 when every |got[i] - want[i]| <= atol + rtol*|want[i]| (NaN never
 * passes); otherwise prints `what`, the worst index (largest excess over its
 * tolerance), both values and the tolerance, and returns 0. With the
 * environment variable AIBOX_TEST_VERBOSE set, every comparison prints the
 * largest fraction of its tolerance used (to tune tolerances). */
int aibox_test_close(const char *what, const float *got, const double *want, size_t count, double atol, double rtol);
int aibox_test_close_ff(const char *what, const float *got, const float *want, size_t count, double atol,
                        double rtol);
int aibox_test_close_dd(const char *what, const double *got, const double *want, size_t count, double atol,
                        double rtol);
/* One scalar, same rule. */
int aibox_test_close1(const char *what, double got, double want, double atol, double rtol);

#define AIBOX_TEST_CLOSE(what, got, want, count, atol, rtol) \
    assert_true(aibox_test_close((what), (got), (want), (count), (atol), (rtol)))
#define AIBOX_TEST_CLOSE_FF(what, got, want, count, atol, rtol) \
    assert_true(aibox_test_close_ff((what), (got), (want), (count), (atol), (rtol)))
#define AIBOX_TEST_CLOSE1(what, got, want, atol, rtol) \
    assert_true(aibox_test_close1((what), (got), (want), (atol), (rtol)))

/* ------------------------------------------------------------ gradient check */
/* A forward pass y = f(x) of nx inputs and ny outputs, in double or in float;
 * `user` carries the shape and any fixed operands. A layer with parameters
 * packs them into x (e.g. [x, gamma, beta]) so one check covers all. */
typedef void (*aibox_test_fwd_d)(void *user, const double *x, double *y);
typedef void (*aibox_test_fwd_f)(void *user, const float *x, float *y);

/* Numerical gradient of L(x) = sum_j y_j * r_j by central differences with
 * the given step: g_i = (L(x + step e_i) - L(x - step e_i)) / (2 step), L in
 * double. The float variant rounds x to float, runs fwd in float and widens y
 * (use a larger step, ~1e-3, since y carries float rounding). */
void aibox_test_numgrad_d(aibox_test_fwd_d fwd, void *user, const double *x, size_t nx, const double *r, size_t ny,
                          double step, double *g);
void aibox_test_numgrad_f(aibox_test_fwd_f fwd, void *user, const double *x, size_t nx, const double *r, size_t ny,
                          double step, double *g);

/* Numerical gradient (either forward; pass exactly one of fwd_d, fwd_f)
 * compared with an analytic gradient `dx` (dL/dx for dy = r) at tolerance
 * atol + rtol*|numeric|; prints the worst index on failure. */
int aibox_test_gradcheck(const char *what, aibox_test_fwd_d fwd_d, aibox_test_fwd_f fwd_f, void *user,
                         const double *x, size_t nx, const double *r, size_t ny, double step, const float *dx,
                         double atol, double rtol);

/* A backward pass that ACCUMULATES dL/dx into dx (nx values; a layer with
 * parameters lays out [dx, dparams...] as its forward packs x). */
typedef void (*aibox_test_bwd)(void *user, float *dx);

/* Checks an accumulating backward against a reference gradient g (nx): fills
 * dx with a random base from seed, runs bwd once and requires dx - base = g,
 * runs it again and requires dx - base = 2g, at tolerance atol + rtol*|want|
 * (scaled by the factor). Prints the worst index on failure. */
int aibox_test_bwd_accumulates(const char *what, aibox_test_bwd bwd, void *user, size_t nx, const double *g,
                               double atol, double rtol, uint64_t seed);

/* Sum of x[i]*r[i] in double. */
double aibox_test_dot(const double *x, const double *r, size_t count);

#endif
