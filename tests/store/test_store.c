/* The sample store (lib/store): C round trips, refused files, Python's zarr
 * both ways (tests/store/zarr_roundtrip.py), kill -9 during appends, the
 * store as a training dataset, and the aibox-store tool. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "aibox.h"
#include "common/check.h"

static char bin[4096];
static const char *const classes[] = {"a", "b", "c"};
#define C 3
#define H 7
#define W 9
#define SCRIPT "tests/store/zarr_roundtrip.py"

/* The pattern zarr_roundtrip.py shares: pixel (i, c, y, x), label of i. */
static uint8_t pix(long i, int c, int y, int x) { return (uint8_t)((i * 31 + c * 7 + y * 3 + x * 5) % 256); }
static int label_of(long i) { return i % 4 == 3 ? -1 : (int)(i % 3); }

static aibox_image pattern_image(long i)
{
    aibox_image img = {W, H, C, aibox_test_malloc(W * H * C)};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) img.data[(y * W + x) * C + c] = pix(i, c, y, x);
    return img;
}

/* 1 when sample i holds the pattern (prints the first difference). */
static int sample_ok(const aibox_store *st, long i)
{
    aibox_image img;
    aibox_error err = {0};
    if (aibox_store_image(st, i, &img, &err)) {
        print_message("sample %ld: %s\n", i, err.msg);
        return 0;
    }
    int ok = img.width == W && img.height == H && img.channels == C;
    for (int y = 0; ok && y < H; y++)
        for (int x = 0; ok && x < W; x++)
            for (int c = 0; ok && c < C; c++)
                if (img.data[(y * W + x) * C + c] != pix(i, c, y, x)) {
                    print_message("sample %ld (%d,%d,%d): %d, want %d\n", i, c, y, x, img.data[(y * W + x) * C + c],
                                  pix(i, c, y, x));
                    ok = 0;
                }
    aibox_image_free(&img);
    if (ok && aibox_store_label(st, i) != label_of(i)) {
        print_message("sample %ld: label %d, want %d\n", i, aibox_store_label(st, i), label_of(i));
        ok = 0;
    }
    return ok;
}

static void append_pattern(aibox_store *st, long i)
{
    aibox_image img = pattern_image(i);
    char src[32];
    snprintf(src, sizeof src, "s%ld", i);
    aibox_store_info info = {.source = src, .verdict = "a", .extra_json = "{\"score\": 0.5}"};
    aibox_error err = {0};
    long id = -1;
    aibox_status s = aibox_store_append(st, &img, label_of(i), &info, &id, &err);
    if (s) fail_msg("append %ld: %s", i, err.msg);
    assert_int_equal(id, i);
    aibox_image_free(&img);
}

static aibox_store *new_store(const char *dir, int block)
{
    aibox_store *st = NULL;
    aibox_error err = {0};
    aibox_store_opts o = {.channels = C, .height = H, .width = W, .block = block};
    if (aibox_store_create(&st, dir, &o, 3, classes, &err)) fail_msg("create: %s", err.msg);
    return st;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *path)
{
    size_t n;
    char *t = (char *)aibox_test_slurp(path, &n);
    assert_non_null(t);
    t[n] = 0;
    return t;
}

/* Replaces the first occurrence of from in a file by to. */
static void edit_file(const char *path, const char *from, const char *to)
{
    char *t = read_text(path), *p = strstr(t, from);
    if (!p) fail_msg("%s: no '%s'", path, from);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fwrite(t, 1, (size_t)(p - t), f);
    fputs(to, f);
    fputs(p + strlen(from), f);
    fclose(f);
    free(t);
}

/* ------------------------------------------------------------ C round trip */

static void test_round_trip(void **state)
{
    (void)state;
    char dir[256], path[512];
    assert_int_equal(aibox_test_mkdtemp(dir, sizeof dir, "store"), 0);
    snprintf(path, sizeof path, "%s/s", dir);
    aibox_store *st = new_store(path, 4); /* blocks of 4: several labels chunks and metadata blocks */
    for (long i = 0; i < 11; i++) append_pattern(st, i);
    /* a different size and channel count: converted and resized on append */
    aibox_image big = {30, 20, 1, aibox_test_malloc(600)};
    memset(big.data, 77, 600);
    aibox_error err = {0};
    long id;
    assert_int_equal(aibox_store_append(st, &big, 2, NULL, &id, &err), AIBOX_OK);
    assert_int_equal(id, 11);
    aibox_image_free(&big);
    /* bad labels and a read-only mistake are refused */
    aibox_image one = pattern_image(0);
    assert_int_equal(aibox_store_append(st, &one, 3, NULL, NULL, &err), AIBOX_E_INVALID);
    assert_non_null(strstr(err.msg, "label 3"));
    assert_int_equal(aibox_store_append(st, &one, 0, &(aibox_store_info){.extra_json = "[1]"}, NULL, &err),
                     AIBOX_E_INVALID);
    /* a second writer is refused while the first holds the store; a reader is fine */
    aibox_store *other = NULL, *ro = NULL;
    assert_int_equal(aibox_store_open(&other, path, 0, &err), AIBOX_E_STATE);
    assert_int_equal(aibox_store_open(&ro, path, AIBOX_STORE_READONLY, &err), AIBOX_OK);
    assert_int_equal(aibox_store_count(ro), 12);
    assert_int_equal(aibox_store_append(ro, &one, 0, NULL, NULL, &err), AIBOX_E_STATE);
    aibox_store_free(&ro);
    aibox_image_free(&one);
    /* relabel: the operator's answer */
    assert_int_equal(aibox_store_set_label(st, 5, 0, &err), AIBOX_OK);
    assert_int_equal(aibox_store_set_label(st, 12, 0, &err), AIBOX_E_NOTFOUND);
    aibox_store_free(&st);

    assert_int_equal(aibox_store_open(&st, path, 0, &err), AIBOX_OK);
    assert_int_equal(aibox_store_count(st), 12);
    assert_int_equal(aibox_store_class_count(st), 3);
    assert_string_equal(aibox_store_class_name(st, 2), "c");
    for (long i = 0; i < 11; i++) {
        if (i == 5) {
            assert_int_equal(aibox_store_label(st, 5), 0);
            continue;
        }
        assert_true(sample_ok(st, i));
    }
    aibox_image g;
    assert_int_equal(aibox_store_image(st, 11, &g, &err), AIBOX_OK);
    for (int k = 0; k < W * H * C; k++) assert_int_equal(g.data[k], 77); /* grey 77 everywhere, resized and tripled */
    aibox_image_free(&g);
    char *meta = NULL;
    assert_int_equal(aibox_store_meta(st, 6, &meta, &err), AIBOX_OK);
    assert_non_null(strstr(meta, "\"source\":\"s6\""));
    assert_non_null(strstr(meta, "\"verdict\":\"a\""));
    assert_non_null(strstr(meta, "\"score\":0.5"));
    assert_null(strstr(meta, "operator"));
    free(meta);
    assert_int_equal(aibox_store_meta(st, 5, &meta, &err), AIBOX_OK);
    assert_non_null(strstr(meta, "\"operator\":\"a\""));
    assert_non_null(strstr(meta, "\"label_time\":"));
    free(meta);
    long counts[4];
    aibox_store_class_counts(st, counts);
    /* labels 0,1,2,-1,1,0 (relabelled from 2),0,-1,2,0,1 and 2 */
    assert_int_equal(counts[0], 4);
    assert_int_equal(counts[1], 3);
    assert_int_equal(counts[2], 3);
    assert_int_equal(counts[3], 2);
    int c;
    assert_int_equal(aibox_store_add_class(st, "d", &c, &err), AIBOX_OK);
    assert_int_equal(c, 3);
    assert_int_equal(aibox_store_add_class(st, "b", &c, &err), AIBOX_OK);
    assert_int_equal(c, 1);
    aibox_store_free(&st);
    assert_int_equal(aibox_store_open(&st, path, AIBOX_STORE_READONLY, &err), AIBOX_OK);
    assert_int_equal(aibox_store_class_find(st, "d"), 3);
    assert_int_equal(aibox_store_image(st, 12, &g, &err), AIBOX_E_NOTFOUND);
    aibox_store_free(&st);
    /* a new store needs an empty folder */
    assert_int_equal(aibox_store_create(&st, path, NULL, 0, NULL, &err), AIBOX_E_INVALID);
    assert_non_null(strstr(err.msg, "not empty"));
    aibox_test_rm_rf(dir);
}

/* An append cut short after its images header: the labels' N rules, the
 * images header is put back, the next append takes the slot. */
static void test_interrupted_append(void **state)
{
    (void)state;
    char dir[256], path[512], f[600];
    assert_int_equal(aibox_test_mkdtemp(dir, sizeof dir, "store"), 0);
    snprintf(path, sizeof path, "%s/s", dir);
    aibox_store *st = new_store(path, 256);
    for (long i = 0; i < 3; i++) append_pattern(st, i);
    aibox_store_free(&st);
    snprintf(f, sizeof f, "%s/images/.zarray", path);
    edit_file(f, "[3, 3, 7, 9]", "[4, 3, 7, 9]");
    snprintf(f, sizeof f, "%s/images/3.0.0.0", path);
    write_text(f, "half-written garbage");
    aibox_error err = {0};
    assert_int_equal(aibox_store_open(&st, path, 0, &err), AIBOX_OK);
    assert_int_equal(aibox_store_count(st), 3);
    snprintf(f, sizeof f, "%s/images/.zarray", path);
    char *t = read_text(f);
    assert_non_null(strstr(t, "[3, 3, 7, 9]")); /* repaired on open */
    free(t);
    append_pattern(st, 3);
    for (long i = 0; i < 4; i++) assert_true(sample_ok(st, i));
    aibox_store_free(&st);
    aibox_test_rm_rf(dir);
}

/* ------------------------------------------------------------ refused files */

typedef struct {
    const char *file;   /* under the store */
    const char *from, *to; /* an edit (from NULL: replace the whole file by to) */
    aibox_status want;
    const char *msg;    /* in the message */
    int at_read;        /* 1: the open succeeds, reading sample 1 fails */
} bad_case;

static void test_refused(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"labels/.zarray", NULL, "{\"zarr_format\": 2, \"shape\": [", AIBOX_E_FORMAT, "not valid JSON", 0},
        {"images/.zarray", "\"|u1\"", "\"<f4\"", AIBOX_E_UNSUPPORTED, "dtype \"<f4\"", 0},
        {"images/.zarray", "\"zlib\"", "\"blosc\"", AIBOX_E_UNSUPPORTED, "compressor \"blosc\"", 0},
        {"images/.zarray", "\"C\"", "\"F\"", AIBOX_E_UNSUPPORTED, "order", 0},
        {"images/.zarray", "[3, 3, 7, 9]", "[2, 3, 7, 9]", AIBOX_E_CORRUPT, "but", 0},
        {"images/.zarray", "[1, 3, 7, 9]", "[1, 3, 7, 3]", AIBOX_E_UNSUPPORTED, "chunks split a sample", 0},
        {"images/.zarray", "[3, 3, 7, 9]", "[3, 3, 7, 9, 1]", AIBOX_E_FORMAT, "shape", 0},
        {"labels/.zarray", "[3]", "[1000000000000000]", AIBOX_E_UNSUPPORTED, "samples (at most", 0},
        {"labels/.zarray", "[3]", "[-3]", AIBOX_E_FORMAT, "shape entry", 0},
        {"labels/0", NULL, "\x07\0\0\0\x01\0\0\0\x02\0\0\0", AIBOX_E_CORRUPT, "truncated", 0},
        {".zattrs", "\"c\"]", "\"c\", 5]", AIBOX_E_FORMAT, "class 3", 0},
        {".zattrs", "\"b\", \"c\"]", "\"b\"]", AIBOX_E_FORMAT, "sample 2 has label 2", 0},
        {".zgroup", NULL, "{\"zarr_format\": 3}", AIBOX_E_FORMAT, "zarr_format", 0},
        {"images/1.0.0.0", NULL, "x\x9c\xcb", AIBOX_E_CORRUPT, "images/1.0.0.0", 1},
        {"images/1.0.0.0", NULL, "not zlib at all", AIBOX_E_CORRUPT, "not a valid zlib stream", 1},
    };
    char dir[256], path[512], f[600];
    assert_int_equal(aibox_test_mkdtemp(dir, sizeof dir, "store"), 0);
    snprintf(path, sizeof path, "%s/s", dir);
    int bad = 0;
    char good[600];
    snprintf(good, sizeof good, "%s/good", dir);
    aibox_store *st = new_store(good, 4);
    for (long i = 0; i < 3; i++) append_pattern(st, i);
    aibox_store_free(&st);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const bad_case *b = &cases[k];
        aibox_test_rm_rf(path);
        assert_int_equal(aibox_test_run(NULL, 0, "cp -R %s %s", good, path), 0);
        snprintf(f, sizeof f, "%s/%s", path, b->file);
        if (b->from) edit_file(f, b->from, b->to);
        else if (!strcmp(b->file, "labels/0")) { /* 12 of the chunk's 16 bytes */
            FILE *o = fopen(f, "wb");
            fwrite(b->to, 1, 12, o);
            fclose(o);
        } else {
            write_text(f, b->to);
        }
        aibox_error err = {0};
        aibox_status s = aibox_store_open(&st, path, AIBOX_STORE_READONLY, &err);
        if (b->at_read && !s) {
            aibox_image img;
            assert_true(sample_ok(st, 0));
            s = aibox_store_image(st, 1, &img, &err);
            aibox_store_free(&st);
        }
        if (s != b->want || !strstr(err.msg, b->msg) || !strstr(err.msg, path)) {
            print_message("case %zu (%s): status %d (want %d), message \"%s\" (want \"%s\" and the path)\n", k,
                          b->file, (int)s, (int)b->want, err.msg, b->msg);
            bad++;
        }
        aibox_store_free(&st);
    }
    aibox_error err = {0};
    assert_int_equal(aibox_store_open(&st, dir, 0, &err), AIBOX_E_NOTFOUND); /* no store there */
    assert_non_null(strstr(err.msg, "no .zgroup"));
    aibox_test_rm_rf(dir);
    assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------ Python's zarr */

static int python(const char *args)
{
    if (access("/usr/bin/python3", X_OK) != 0) return 77;
    return aibox_test_run(NULL, 0, "/usr/bin/python3 " SCRIPT " %s", args);
}

static void test_python_reads_c(void **state)
{
    (void)state;
    char dir[256], path[512], args[700];
    assert_int_equal(aibox_test_mkdtemp(dir, sizeof dir, "store"), 0);
    snprintf(path, sizeof path, "%s/s", dir);
    aibox_store *st = new_store(path, 4);
    for (long i = 0; i < 10; i++) append_pattern(st, i);
    aibox_store_free(&st);
    snprintf(args, sizeof args, "check %s", path);
    int rc = python(args);
    if (rc == 77) {
        aibox_test_rm_rf(dir);
        skip(); /* printed by the script: no zarr */
    }
    assert_int_equal(rc, 0);
    /* the check is able to fail: one pixel changed */
    aibox_image img = pattern_image(4);
    img.data[17] ^= 1;
    aibox_error err = {0};
    assert_int_equal(aibox_store_open(&st, path, 0, &err), AIBOX_OK);
    char src[] = "s10";
    assert_int_equal(aibox_store_append(st, &img, label_of(10), &(aibox_store_info){.source = src}, NULL, &err), AIBOX_OK);
    aibox_store_free(&st);
    aibox_image_free(&img);
    assert_int_not_equal(python(args), 0);
    aibox_test_rm_rf(dir);
}

static void test_c_reads_python(void **state)
{
    (void)state;
    char dir[256], path[512], args[700];
    assert_int_equal(aibox_test_mkdtemp(dir, sizeof dir, "store"), 0);
    aibox_error err = {0};
    aibox_store *st = NULL;
    /* chunks of 2 samples: read, but not appended to */
    snprintf(path, sizeof path, "%s/p2", dir);
    snprintf(args, sizeof args, "write %s 10 2", path);
    int rc = python(args);
    if (rc == 77) {
        aibox_test_rm_rf(dir);
        skip();
    }
    assert_int_equal(rc, 0);
    assert_int_equal(aibox_store_open(&st, path, 0, &err), AIBOX_OK);
    assert_int_equal(aibox_store_count(st), 10);
    for (long i = 0; i < 10; i++) assert_true(sample_ok(st, i));
    char *meta = NULL;
    assert_int_equal(aibox_store_meta(st, 7, &meta, &err), AIBOX_OK);
    assert_non_null(strstr(meta, "\"source\":\"s7\""));
    free(meta);
    aibox_image img = pattern_image(10);
    assert_int_equal(aibox_store_append(st, &img, 0, NULL, NULL, &err), AIBOX_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "chunked by 2"));
    aibox_store_free(&st);
    /* chunks of 1: C appends, and Python reads the whole again */
    snprintf(path, sizeof path, "%s/p1", dir);
    snprintf(args, sizeof args, "write %s 5 1", path);
    assert_int_equal(python(args), 0);
    assert_int_equal(aibox_store_open(&st, path, 0, &err), AIBOX_OK);
    for (long i = 0; i < 5; i++) assert_true(sample_ok(st, i));
    for (long i = 5; i < 9; i++) append_pattern(st, i);
    aibox_store_free(&st);
    snprintf(args, sizeof args, "check %s", path);
    assert_int_equal(python(args), 0);
    aibox_image_free(&img);
    aibox_test_rm_rf(dir);
}

/* ------------------------------------------------------------ kill -9 */

/* The child: opens (or creates) the store and appends the pattern from its
 * count on, writing each id to fd once its append has returned. */
static void appender(const char *path, int fd)
{
    aibox_store *st = NULL;
    aibox_error err = {0};
    aibox_store_opts o = {.channels = C, .height = H, .width = W, .block = 4};
    if (access(path, F_OK) == 0 ? aibox_store_open(&st, path, 0, &err) : aibox_store_create(&st, path, &o, 3, classes, &err)) {
        fprintf(stderr, "appender: %s\n", err.msg);
        _exit(1);
    }
    for (long i = aibox_store_count(st);; i++) {
        aibox_image img = pattern_image(i);
        char src[32];
        snprintf(src, sizeof src, "s%ld", i);
        long id;
        if (aibox_store_append(st, &img, label_of(i), &(aibox_store_info){.source = src}, &id, &err) || id != i) {
            fprintf(stderr, "appender: %s\n", err.msg);
            _exit(1);
        }
        aibox_image_free(&img);
        if (write(fd, &id, sizeof id) != (ssize_t)sizeof id) _exit(1);
    }
}

static void test_kill9(void **state)
{
    (void)state;
    char dir[256], path[512];
    assert_int_equal(aibox_test_mkdtemp(dir, sizeof dir, "store"), 0);
    snprintf(path, sizeof path, "%s/s", dir);
    aibox_rng r;
    aibox_rng_seed(&r, 15);
    long acked = -1, total_kills_mid = 0, residue = 0;
    for (int round = 0; round < 20; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            appender(path, p[1]);
        }
        close(p[1]);
        /* a random moment: appends take some milliseconds each (several fsyncs) */
        struct timespec t = {0, (long)(aibox_rng_below(&r, 250) + 5) * 1000000L};
        nanosleep(&t, NULL);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) fail_msg("round %d: the appender ended on its own (status %d)", round, status);
        long id;
        while (read(p[0], &id, sizeof id) == (ssize_t)sizeof id) {
            if (id != acked + 1) fail_msg("round %d: acknowledged %ld after %ld", round, id, acked);
            acked = id;
        }
        close(p[0]);
        /* every acknowledged sample is there, every committed one intact */
        aibox_store *st = NULL;
        aibox_error err = {0};
        if (access(path, F_OK) != 0 && acked < 0) continue; /* killed before the store existed */
        if (aibox_store_open(&st, path, 0, &err)) fail_msg("round %d: %s", round, err.msg);
        long n = aibox_store_count(st);
        char next[700];
        snprintf(next, sizeof next, "%s/images/%ld.0.0.0", path, n);
        residue += access(next, F_OK) == 0; /* killed inside an append, after its image chunk */
        if (n < acked + 1) fail_msg("round %d: %ld samples, %ld acknowledged", round, n, acked + 1);
        total_kills_mid += n > acked + 1; /* killed after a commit, before its acknowledgement */
        for (long i = 0; i < n; i++)
            if (!sample_ok(st, i)) fail_msg("round %d: sample %ld of %ld damaged", round, i, n);
        acked = n - 1; /* the next child goes on from here */
        aibox_store_free(&st);
    }
    /* further appends are accepted, and every sample reads back */
    aibox_store *st = NULL;
    aibox_error err = {0};
    assert_int_equal(aibox_store_open(&st, path, 0, &err), AIBOX_OK);
    long n = aibox_store_count(st);
    append_pattern(st, n);
    aibox_store_free(&st);
    assert_int_equal(aibox_store_open(&st, path, AIBOX_STORE_READONLY, &err), AIBOX_OK);
    assert_int_equal(aibox_store_count(st), n + 1);
    for (long i = 0; i <= n; i++) assert_true(sample_ok(st, i));
    aibox_store_free(&st);
    print_message("kill -9: 20 rounds, %ld samples at the end; %ld kills inside an append after its image chunk, "
                  "%ld after a commit before its acknowledgement\n",
                  n + 1, residue, total_kills_mid);
    assert_true(n >= 10); /* the rounds did append */
    assert_true(residue >= 1); /* and some kills did land inside an append */
    char args[700];
    snprintf(args, sizeof args, "check %s", path);
    int rc = python(args);
    if (rc != 77) assert_int_equal(rc, 0); /* Python's zarr reads the store the kills left */
    aibox_test_rm_rf(dir);
}

/* ------------------------------------------------------------ dataset, tools */

static void test_dataset(void **state)
{
    (void)state;
    char dir[256], path[512];
    assert_int_equal(aibox_test_mkdtemp(dir, sizeof dir, "store"), 0);
    snprintf(path, sizeof path, "%s/s", dir);
    aibox_store *st = new_store(path, 4);
    for (long i = 0; i < 12; i++) append_pattern(st, i);
    aibox_error err = {0};
    int d;
    assert_int_equal(aibox_store_add_class(st, "unused", &d, &err), AIBOX_OK);
    aibox_store_free(&st);
    aibox_dataset *ds = NULL;
    aibox_dataset_opts o = {.val_split = -1, .min_samples = 4};
    assert_int_equal(aibox_store_dataset_open(&ds, path, &o, &err), AIBOX_OK);
    assert_int_equal(aibox_dataset_class_count(ds), 3); /* "unused" has no sample */
    assert_int_equal(aibox_dataset_count(ds, AIBOX_SPLIT_TRAIN), 9); /* 3 of 12 unlabelled */
    for (int i = 0; i < 9; i++) {
        const char *p = aibox_dataset_path(ds, AIBOX_SPLIT_TRAIN, i);
        long id = atol(strrchr(p, '/') + 1);
        assert_int_equal(aibox_dataset_label(ds, AIBOX_SPLIT_TRAIN, i), label_of(id));
        aibox_image img;
        assert_int_equal(aibox_dataset_image(ds, AIBOX_SPLIT_TRAIN, i, &img, &err), AIBOX_OK);
        assert_int_equal(img.data[5], pix(id, 2, 0, 1)); /* pixel (0, 1), channel 2 */
        aibox_image_free(&img);
    }
    aibox_dataset_free(&ds);
    o.min_samples = 30;
    assert_int_equal(aibox_store_dataset_open(&ds, path, &o, &err), AIBOX_E_INVALID);
    assert_non_null(strstr(err.msg, "at least 30"));
    aibox_test_rm_rf(dir);
}

static void test_tool(void **state)
{
    (void)state;
    char dir[256], p[700], out[4096];
    assert_int_equal(aibox_test_mkdtemp(dir, sizeof dir, "store"), 0);
    aibox_error err = {0};
    for (int c = 0; c < 2; c++) {
        snprintf(p, sizeof p, "%s/in/%s", dir, classes[c]);
        assert_int_equal(aibox_test_run(NULL, 0, "mkdir -p %s", p), 0);
        for (long i = 0; i < 6; i++) {
            aibox_image img = pattern_image(i + 10 * c);
            snprintf(p, sizeof p, "%s/in/%s/%ld.png", dir, classes[c], i);
            assert_int_equal(aibox_image_write_png(&img, p, &err), AIBOX_OK);
            aibox_image_free(&img);
        }
    }
    snprintf(p, sizeof p, "%s/in/b/broken.png", dir);
    write_text(p, "not an image");
    assert_int_equal(aibox_test_run(out, sizeof out, "%s/aibox-store import %s/in --store %s/st --size 9 --rgb --quiet",
                                    bin, dir, dir), 0);
    assert_true(aibox_test_json_lines(out));
    assert_non_null(strstr(out, "\"imported\":12,\"skipped\":1,\"samples\":12"));
    assert_int_equal(aibox_test_run(out, sizeof out, "%s/aibox-store list %s/st", bin, dir), 0);
    assert_true(aibox_test_json_lines(out));
    assert_non_null(strstr(out, "\"classes\":{\"a\":6,\"b\":6},\"unlabelled\":0"));
    assert_int_equal(aibox_test_run(out, sizeof out, "%s/aibox-store export %s/st %s/out", bin, dir, dir), 0);
    assert_non_null(strstr(out, "\"exported\":12"));
    /* exported PNGs hold the imported pixels (9 x 9 store: resized from 9 x 7, so compare with the store) */
    aibox_store *st = NULL;
    assert_int_equal(aibox_store_open(&st, p, AIBOX_STORE_READONLY, &err), AIBOX_E_NOTFOUND);
    snprintf(p, sizeof p, "%s/st", dir);
    assert_int_equal(aibox_store_open(&st, p, AIBOX_STORE_READONLY, &err), AIBOX_OK);
    aibox_image a, b;
    assert_int_equal(aibox_store_image(st, 7, &a, &err), AIBOX_OK);
    snprintf(p, sizeof p, "%s/out/b/7.png", dir);
    assert_int_equal(aibox_image_load(&b, p, 0, &err), AIBOX_OK);
    assert_int_equal(a.width * a.height * a.channels, b.width * b.height * b.channels);
    assert_memory_equal(a.data, b.data, (size_t)(a.width * a.height * a.channels));
    aibox_image_free(&a), aibox_image_free(&b);
    aibox_store_free(&st);
    /* bad usage: exit 2 with one line */
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-store import %s/in 2>/dev/null", bin, dir), 2);
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-store list %s/nothing 2>/dev/null", bin, dir), 2);
    assert_int_equal(aibox_test_run(NULL, 0, "%s/aibox-store frobnicate x 2>/dev/null", bin), 2);
    /* aibox-train --store trains from it */
    assert_int_equal(aibox_test_run(out, sizeof out,
                                    "%s/aibox-train --store %s/st -o %s/m.aibox --epochs 1 --size 16 --min-samples 4 "
                                    "--threads 1 --quiet",
                                    bin, dir, dir),
                     0);
    assert_true(aibox_test_json_lines(out));
    assert_non_null(strstr(out, "\"classes\":2"));
    aibox_test_rm_rf(dir);
}

int main(int argc, char **argv)
{
    (void)argc;
    aibox_test_tools_dir(argv[0], bin, sizeof bin);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_interrupted_append),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_python_reads_c),
        cmocka_unit_test(test_c_reads_python),
        cmocka_unit_test(test_kill9),
        cmocka_unit_test(test_dataset),
        cmocka_unit_test(test_tool),
    };
    return cmocka_run_group_tests_name("sample store", tests, NULL, NULL);
}
