/* libFuzzer target for the text the library parses: a labels file
 * (aibox_import_set_labels, one class name per line), metadata keys and
 * values given by callers (aibox_model_set_meta_str/_strs/_floats), the
 * resize mode names (aibox_resize_mode_parse), the preprocessing read back
 * from fuzzed aibox.input.* metadata (aibox_preproc_from_model), and the
 * AIBOX_THREADS environment variable. A model that took the metadata is saved
 * and loaded again: every string must come back unchanged.
 *
 * Input: fields separated by NUL bytes,
 *   0 labels file   1 resize mode (also stored as aibox.input.resize)
 *   2 key  3 string value   4 key  5.. string array values (up to 16)
 * with the first byte's bits choosing variations (see below) and
 * aibox.input.mean / .std filled from the input's bytes. */
#include <stddef.h>
#include <stdint.h>
#include <strings.h>

#include "aibox.h"
#include "fuzz.h"
#include "io/model_io.h"

#define MAX_FIELDS 22

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The model the text is attached to: 3x4x4 input, dense to k classes. */
static aibox_model *text_tiny_model(int k)
{
    aibox_model *m = NULL;
    if (aibox_model_create(&m, 3, 4, 4, NULL) != AIBOX_OK) return NULL;
    if (aibox_dense(m, 0, k, 1) < 0 || aibox_model_finish(m, 1, NULL) != AIBOX_OK) aibox_model_free(&m);
    return m;
}

/* Keys a save writes itself (the graph, the library version): a caller's
 * value for them is not expected back. */
static int text_saved_by_library(const char *key)
{
    return !strcmp(key, "aibox.graph") || !strcmp(key, "aibox.library_version");
}

static void text_same_str(const aibox_model *a, const aibox_model *b, const char *key)
{
    const char *x = NULL, *y = NULL;
    if (text_saved_by_library(key)) return;
    if (aibox_model_get_meta_str(a, key, &x) != AIBOX_OK) return;
    if (aibox_model_get_meta_str(b, key, &y) != AIBOX_OK || strcmp(x, y)) {
        fprintf(stderr, "metadata %s did not survive save and load\n", key);
        abort();
    }
}

static void text_round_trip(const aibox_model *m, const char *k1, const char *k2)
{
    char dir[128], path[160];
    aibox_error err = {0};
    fuzz_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/t.aibox", dir);
    if (aibox_model_save(m, path, &err) == AIBOX_OK) {
        aibox_model *back = NULL;
        if (aibox_model_load(&back, path, &err) != AIBOX_OK) {
            fprintf(stderr, "a saved model does not load: %s\n", err.msg);
            abort();
        }
        text_same_str(m, back, k1);
        text_same_str(m, back, "aibox.input.resize");
        int n1 = 0, n2 = 0;
        const char *const *v1, *const *v2;
        if (!text_saved_by_library(k2) && aibox_model_get_meta_strs(m, k2, &n1, &v1) == AIBOX_OK) {
            if (aibox_model_get_meta_strs(back, k2, &n2, &v2) != AIBOX_OK || n1 != n2) abort();
            for (int i = 0; i < n1; i++)
                if (strcmp(v1[i], v2[i])) abort();
        }
        if (aibox_model_meta_count(back) < aibox_model_meta_count(m)) abort();
        aibox_model_free(&back);
        unlink(path);
    } else {
        fuzz_expect_line("save", err.msg);
    }
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* NUL-terminated fields in a copy */
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    const char *field[MAX_FIELDS];
    size_t flen[MAX_FIELDS];
    int nf = 0;
    for (size_t i = 0, start = 0; i <= size && nf < MAX_FIELDS; i++)
        if (i == size || buf[i] == 0) {
            field[nf] = buf + start, flen[nf] = i - start, nf++;
            start = i + 1;
        }
    for (int i = nf; i < MAX_FIELDS; i++) field[i] = "", flen[i] = 0;
    unsigned flags = size ? data[0] : 0;
    aibox_error err = {0};

    /* labels: a model with as many outputs as the text has lines (the
     * accepting path) or one more (the refusal) */
    int lines = 1;
    for (size_t i = 0; i < flen[0]; i++) lines += field[0][i] == '\n';
    if (lines > 4096) lines = 4096;
    aibox_model *m = text_tiny_model(lines + (flags & 1));
    if (!m) {
        free(buf);
        return 0;
    }
    char path[64];
    int fd = fuzz_memfd(field[0], flen[0], path, sizeof path);
    if (aibox_import_set_labels(m, path, &err) != AIBOX_OK) fuzz_expect_line("labels", err.msg);
    close(fd);

    aibox_resize_mode mode;
    if (aibox_resize_mode_parse(field[1], &mode) == AIBOX_OK && strcmp(aibox_resize_mode_name(mode), field[1]) &&
        strcasecmp(aibox_resize_mode_name(mode), field[1]))
        abort();
    if (aibox_model_set_meta_str(m, "aibox.input.resize", field[1], &err) != AIBOX_OK) fuzz_expect_msg("resize", err.msg);
    if (aibox_model_set_meta_str(m, field[2], field[3], &err) != AIBOX_OK) fuzz_expect_msg("meta_str", err.msg);
    int nv = nf > 5 ? nf - 5 : 0;
    if (nv > 16) nv = 16;
    if (aibox_model_set_meta_strs(m, field[4], nv, field + 5, &err) != AIBOX_OK) fuzz_expect_msg("meta_strs", err.msg);
    /* mean / std: raw doubles from the input (NaN, inf, negative, wrong count) */
    if (flags & 2) {
        double v[8] = {0};
        int n = (int)(size / 8 % 5);
        memcpy(v, data, size < sizeof v ? size : sizeof v);
        if (aibox_model_set_meta_floats(m, flags & 4 ? "aibox.input.std" : "aibox.input.mean", n, v, &err) != AIBOX_OK)
            fuzz_expect_line("meta_floats", err.msg);
    }
    aibox_preproc p;
    if (aibox_preproc_from_model(&p, m, &err) == AIBOX_OK) {
        for (int c = 0; c < p.channels; c++)
            if (!(p.std[c] > 0.0f)) abort();
    } else {
        fuzz_expect_msg("preproc", err.msg); /* echoes the stored mode as is: see fuzz.h */
    }
    if (flags & 8) text_round_trip(m, field[2], field[4]);
    aibox_model_free(&m);

    /* the one environment variable read as a number */
    if (flags & 16) {
        setenv("AIBOX_THREADS", field[1], 1);
        int t = aibox_default_num_threads();
        unsetenv("AIBOX_THREADS");
        if (t < 1 || t > 1024) abort();
    }
    free(buf);
    return 0;
}
