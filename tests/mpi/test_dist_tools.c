/* The MPI builds of the tools as a user runs them under mpirun: aibox-infer
 * splits a folder over the ranks and prints what one process prints, in
 * the same order; a rank killed in the middle of aibox-train ends the whole
 * job within seconds with a message and a non-zero status, and the last
 * checkpoint resumes (on another number of ranks). Real data: NEU. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/check.h"

#define MPIRUN "mpirun --allow-run-as-root --oversubscribe"

static char dir[256], neu[1024], bin[1024], mpibin[1024], model[512];

static int setup(void **state)
{
    const char *data = getenv("AIBOX_DATA"), *mb = getenv("AIBOX_MPI_BIN");
    snprintf(neu, sizeof neu, "%s/neu-cls", data ? data : "../shared/data");
    char self[900];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 20);
    if (len <= 0) return -1;
    self[len] = 0;
    /* <build>/mpi/tests/test_dist_tools: the tools are in <build>/bin and <build>/mpi/bin */
    char *cut = strstr(self, "/mpi/tests/");
    if (!cut) return -1;
    *cut = 0;
    snprintf(bin, sizeof bin, "%s/bin", self);
    snprintf(mpibin, sizeof mpibin, "%s", mb ? mb : strcat(self, "/mpi/bin"));
    return aibox_test_mkdtemp(dir, sizeof dir, "mpi_tools");
}
static int teardown(void **state) { return aibox_test_rm_rf(dir); }

static int have_neu(void)
{
    struct stat st;
    if (stat(neu, &st) == 0) return 1;
    printf("skipping: %s not found (set AIBOX_DATA to the shared data folder)\n", neu);
    return 0;
}

/* A classifier for the inference test: one quick epoch (the answers only
 * have to be the same, not good). */
static void need_model(void)
{
    snprintf(model, sizeof model, "%s/neu.aibox", dir);
    struct stat st;
    if (stat(model, &st) == 0) return;
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-train %s -o %s --epochs 1 --no-augment --quiet --threads 2", bin,
                                    neu, model),
                     0);
}

/* The lines without their timings ("ms" fields differ run to run). */
static void strip_ms(char *s)
{
    char *p;
    while ((p = strstr(s, "\"ms\":"))) {
        char *e = p + 5;
        if (*e == '{') e = strchr(e, '}') + 1;
        else e += strspn(e, "0123456789.");
        memmove(p, e, strlen(e) + 1);
    }
}

static char *run_out(int *rc, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    size_t cap = 1 << 22;
    char *out = malloc(cap);
    assert_non_null(out);
    *rc = aibox_test_run(out, cap, "%s", cmd);
    strip_ms(out);
    return out;
}

/* 2 and 4 ranks print one process's lines, in its order; a file that is not
 * an image keeps its place (an error record) and the status (2) is the
 * same. */
static void test_infer_in_order(void **state)
{
    if (!have_neu()) skip();
    need_model();
    char bad[600];
    snprintf(bad, sizeof bad, "%s/not-an-image.png", dir);
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fputs("not a png", f);
    fclose(f);
    int rc1, rcn;
    char *one = run_out(&rc1, "%s/aibox-infer -m %s %s/scratches %s %s/patches 2>/dev/null", bin, model, neu, bad, neu);
    assert_int_equal(rc1, 2);
    int lines = 0;
    for (const char *p = one; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 601);
    for (int ranks = 2; ranks <= 4; ranks += 2) {
        char *many = run_out(&rcn, MPIRUN " -np %d %s/aibox-infer -m %s %s/scratches %s %s/patches 2>/dev/null", ranks,
                             mpibin, model, neu, bad, neu);
        printf("aibox-infer on %d lines: 1 process status %d, %d ranks status %d, output %s\n", lines, rc1, ranks, rcn,
               strcmp(one, many) ? "DIFFERS" : "identical");
        assert_int_equal(rcn, rc1);
        assert_string_equal(one, many);
        free(many);
    }
    free(one);
    /* standard input is not split: refused with a message, not half done */
    char *piped = run_out(&rcn, "echo x | " MPIRUN " -np 2 %s/aibox-infer -m %s --stdin-list 2>&1", mpibin, model);
    assert_int_not_equal(rcn, 0);
    assert_non_null(strstr(piped, "standard input"));
    free(piped);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Lines of a file (0 when missing). */
static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

/* The pid of a rank: a process named aibox-train whose command line holds
 * tag (mpirun's own command line holds it too, but not its name). */
static pid_t find_rank(const char *tag)
{
    char out[4096];
    if (aibox_test_run(out, sizeof out, "pgrep -x aibox-train -f 2>/dev/null; pgrep -f '%s' 2>/dev/null", tag) < 0) return -1;
    /* a pid listed by both (name aibox-train and the tag) */
    for (char *a = out; *a;) {
        pid_t p = (pid_t)strtol(a, &a, 10);
        if (p <= 0) break;
        char comm[64] = "", path[64];
        snprintf(path, sizeof path, "/proc/%d/comm", (int)p);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
            fclose(f);
        }
        char cmdl[4096] = "";
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)p);
        f = fopen(path, "r");
        size_t len = 0;
        if (f) {
            len = fread(cmdl, 1, sizeof cmdl - 1, f);
            fclose(f);
        }
        for (size_t i = 0; i < len; i++)
            if (!cmdl[i]) cmdl[i] = ' ';
        cmdl[len] = 0;
        if (!strncmp(comm, "aibox-train", 11) && strstr(cmdl, tag)) return p;
    }
    return -1;
}

/* kill -9 of one rank mid-training: mpirun ends within seconds, non-zero,
 * saying which rank died; last.aibox resumes on 2 ranks, then on 1. */
static void test_killed_rank(void **state)
{
    if (!have_neu()) skip();
    char out_dir[600], csv[700], log[700], cmd[4096];
    snprintf(out_dir, sizeof out_dir, "%s/killrun", dir);
    snprintf(csv, sizeof csv, "%s/train.csv", out_dir);
    snprintf(log, sizeof log, "%s/kill.log", dir);
    snprintf(cmd, sizeof cmd,
             MPIRUN " -np 2 %s/aibox-train %s -o %s/kill.aibox --out-dir %s --epochs 40 --batch 16 --threads 1 "
                    "--quiet >%s 2>&1",
             mpibin, neu, dir, out_dir, log);
    pid_t job = fork();
    assert_true(job >= 0);
    if (job == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    /* wait for the first finished epoch (a row under train.csv's header) */
    double t0 = now();
    while (count_lines(csv) < 2 && now() - t0 < 300) usleep(200000);
    assert_true(count_lines(csv) >= 2);
    pid_t victim = find_rank(out_dir);
    assert_true(victim > 0);
    double t_kill = now();
    assert_int_equal(kill(victim, SIGKILL), 0);
    int status = 0;
    pid_t w;
    while ((w = waitpid(job, &status, WNOHANG)) == 0 && now() - t_kill < 60) usleep(50000);
    double waited = now() - t_kill;
    if (w == 0) kill(job, SIGKILL), waitpid(job, &status, 0);
    size_t tl = 0;
    char *text = (char *)aibox_test_slurp(log, &tl);
    if (text) text[tl] = 0;
    printf("killed rank pid %d: mpirun ended after %.2f s with status %d; its message:\n%s\n", (int)victim, waited,
           WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), text ? text : "(none)");
    assert_int_not_equal(w, 0);
    assert_true(waited < 10);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    assert_true(text && strstr(text, "signal 9"));
    free(text);
    int done = count_lines(csv) - 1;
    /* the checkpoint resumes: 2 ranks for one more epoch, then one process for another */
    char ck[700], out[8192];
    snprintf(ck, sizeof ck, "%s/last.aibox", out_dir);
    int rc = aibox_test_run(out, sizeof out,
                            MPIRUN " -np 2 %s/aibox-train %s -o %s/kill.aibox --out-dir %s --epochs %d --batch 16 "
                                   "--threads 1 --quiet --resume %s",
                            mpibin, neu, dir, out_dir, done + 1, ck);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"epochs_run\":"));
    int epochs = atoi(strstr(out, "\"epochs_run\":") + 13);
    assert_int_equal(epochs, done + 1);
    rc = aibox_test_run(out, sizeof out,
                        "%s/aibox-train %s -o %s/kill.aibox --out-dir %s --epochs %d --batch 32 --threads 2 --quiet "
                        "--resume %s",
                        bin, neu, dir, out_dir, done + 2, ck);
    assert_int_equal(rc, 0);
    assert_int_equal(atoi(strstr(out, "\"epochs_run\":") + 13), done + 2);
    printf("resumed after epoch %d on 2 ranks, then on 1 process: %d epochs, %d rows in train.csv\n", done, done + 2,
           count_lines(csv) - 1);
    assert_int_equal(count_lines(csv) - 1, done + 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_infer_in_order),
        cmocka_unit_test(test_killed_rank),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
