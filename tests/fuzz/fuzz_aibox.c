/* libFuzzer target for the .aibox model loader (lib/io/FORMAT.md).
 *
 * A fuzzer cannot guess a CRC-32, so an input that starts with the magic
 * gets its envelope fixed up before the model loader sees it: file_size (u64
 * at 16) becomes the input length and the last 4 bytes the CRC-32 of the
 * rest; mutations then reach the sections, the graph and the tensors. The
 * unmodified bytes go through the raw container reader, so the envelope
 * checks (magic sniffing, size, checksum) are fuzzed as well.
 *
 * A model that loads is then used: one inference on a zero input (plain and
 * with frozen weights) when its graph is small (FUZZ_MAX_ACT activations,
 * FUZZ_MAX_MACS multiply-adds: a tiny valid file can describe a huge
 * network), and a save/load round trip whose second save must be byte-
 * identical to the first. The same file also goes to aibox_padim_load
 * (PaDiM models are .aibox files with extra tensors). The loader has no
 * from-memory entry, so files are handed over as in-memory files
 * (/proc/self/fd/N); saves go to a fresh directory on tmpfs. */
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "aibox.h"
#include "fuzz.h"
#include "io/aibox_file.h"
#include "nn/nn.h"

#define FUZZ_MAX_ACT (1u << 20)   /* floats over all node outputs */
#define FUZZ_MAX_MACS (1u << 24)  /* rough multiply-adds of one inference */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t AIBOX_MAGIC[8] = {0x41, 0x49, 0x42, 0x4F, 0x58, 0x00, 0x4D, 0x44};

static void aibox_put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A rough cost of one inference at the model's own input size; 0 when it
 * exceeds the limits (or a shape is absurd). White-box: reads the nodes. */
static int aibox_small_enough(const aibox_model *m)
{
    uint64_t act = 0, macs = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        const aibox_node *nd = &m->nodes[i];
        if (nd->c < 1 || nd->h < 1 || nd->w < 1 || nd->c > (int)FUZZ_MAX_ACT || nd->h > (int)FUZZ_MAX_ACT ||
            nd->w > (int)FUZZ_MAX_ACT)
            return 0;
        uint64_t out = (uint64_t)nd->c * (uint64_t)nd->h * (uint64_t)nd->w;
        if (out > FUZZ_MAX_ACT || (act += out) > FUZZ_MAX_ACT) return 0;
        uint64_t per = 2 + (uint64_t)nd->n_in; /* element-wise kinds, concat, add, BN */
        switch (nd->kind) {
        case AIBOX_LAYER_CONV2D: {
            int oc = nd->settings.conv.out_channels;
            per += nd->n_param[0] / (uint64_t)(oc > 0 ? oc : 1);
            break;
        }
        case AIBOX_LAYER_DENSE: per += nd->n_param[0] / out; break;
        case AIBOX_LAYER_MAXPOOL:
        case AIBOX_LAYER_AVGPOOL: {
            int kh = nd->settings.pool.kernel_h, kw = nd->settings.pool.kernel_w;
            per += (uint64_t)(kh > 0 ? kh : 1) * (uint64_t)(kw > 0 ? kw : 1);
            break;
        }
        case AIBOX_LAYER_GLOBAL_AVGPOOL: {
            const aibox_node *in = &m->nodes[nd->in[0]];
            per += (uint64_t)in->h * (uint64_t)in->w;
            break;
        }
        default: break;
        }
        if (per > FUZZ_MAX_MACS || (macs += out * per) > FUZZ_MAX_MACS) return 0;
    }
    return 1;
}

static void aibox_infer_zero(const aibox_model *m)
{
    int c, h, w;
    aibox_model_input_shape(m, &c, &h, &w);
    float *x = calloc((size_t)c * h * w, sizeof *x);
    aibox_ctx *ctx = NULL;
    aibox_error err = {0};
    if (!x) return;
    aibox_ctx_opts o = {0};
    o.mode = AIBOX_INFER, o.max_batch = 1, o.threads = 1; /* one thread: no pool threads per input */
    if (aibox_ctx_create(&ctx, m, &o, &err) == AIBOX_OK) {
        for (int frozen = 0; frozen < 2; frozen++) {
            if (frozen && aibox_ctx_freeze_weights(ctx, m, &err) != AIBOX_OK) {
                fuzz_expect_line("freeze", err.msg);
                break;
            }
            if (aibox_ctx_infer(ctx, m, x, 1, &err) != AIBOX_OK) {
                fuzz_expect_line("infer", err.msg);
                break;
            }
            int oc, oh, ow;
            const float *y = aibox_ctx_output(ctx, &oc, &oh, &ow);
            volatile float sink = 0; /* every output element is read: ASan checks the extent */
            for (size_t i = 0; i < (size_t)oc * oh * ow; i++) sink += y[i];
            (void)sink;
        }
        aibox_ctx_free(&ctx);
    } else {
        fuzz_expect_line("context", err.msg);
    }
    free(x);
}

/* save -> load -> save: the second file must equal the first. */
static void aibox_round_trip(const aibox_model *m)
{
    char dir[128], p1[160], p2[160];
    fuzz_tmpdir(dir, sizeof dir);
    snprintf(p1, sizeof p1, "%s/a.aibox", dir);
    snprintf(p2, sizeof p2, "%s/b.aibox", dir);
    aibox_error err = {0};
    aibox_model *back = NULL;
    if (aibox_model_save(m, p1, &err) == AIBOX_OK) {
        if (aibox_model_load(&back, p1, &err) != AIBOX_OK) {
            fprintf(stderr, "round trip: a saved model does not load: %s\n", err.msg);
            abort();
        }
        if (aibox_model_save(back, p2, &err) != AIBOX_OK) {
            fprintf(stderr, "round trip: a reloaded model does not save: %s\n", err.msg);
            abort();
        }
        size_t n1 = 0, n2 = 0;
        uint8_t *b1 = fuzz_slurp(p1, &n1), *b2 = fuzz_slurp(p2, &n2);
        if (!b1 || !b2 || n1 != n2 || memcmp(b1, b2, n1)) {
            fprintf(stderr, "round trip: saving a reloaded model changed the file (%zu vs %zu bytes)\n", n1, n2);
            abort();
        }
        free(b1);
        free(b2);
        aibox_model_free(&back);
    } else {
        fuzz_expect_line("save", err.msg);
    }
    unlink(p1);
    unlink(p2);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aibox_error err = {0};
    aibox_file *f = NULL;
    /* the container as it is: envelope checks included */
    if (aibox_file_read_mem(data, size, "fuzz.aibox", &f, &err) == AIBOX_OK) aibox_file_free(&f);
    else fuzz_expect_line("read_mem", err.msg);

    uint8_t *b = malloc(size ? size : 1);
    if (!b) return 0;
    memcpy(b, data, size);
    if (size >= 28 && !memcmp(b, AIBOX_MAGIC, 8)) {
        aibox_put_le(b + 16, size, 8);
        aibox_put_le(b + size - 4, crc32_z(0, b, size - 4), 4);
    }
    char path[64];
    int fd = fuzz_memfd(b, size, path, sizeof path);
    aibox_model *m = NULL;
    if (aibox_model_load(&m, path, &err) == AIBOX_OK) {
        if (aibox_small_enough(m)) aibox_infer_zero(m);
        aibox_round_trip(m);
        aibox_model_free(&m);
    } else {
        fuzz_expect_line("load", err.msg);
        if (m) abort();
    }
    /* as an anomaly model (PaDiM or PatchCore, dispatched on its task), and
     * when small, judging a plain grey image */
    aibox_detector *d = NULL;
    if (aibox_detector_load(&d, path, 1, &err) == AIBOX_OK) {
        if (aibox_small_enough(aibox_detector_model(d))) {
            uint8_t px[16 * 16];
            memset(px, 128, sizeof px);
            aibox_image img = {16, 16, 1, px};
            aibox_detection det;
            if (aibox_detector_run(d, &img, &det, &err) != AIBOX_OK) fuzz_expect_line("detector_run", err.msg);
        }
        aibox_detector_free(&d);
    } else {
        fuzz_expect_line("detector_load", err.msg);
        if (d) abort();
    }
    close(fd);
    free(b);
    return 0;
}
