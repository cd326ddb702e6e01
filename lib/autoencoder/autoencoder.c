/* The convolutional auto-encoder for anomaly detection (see
 * aibox/autoencoder.h): the network, its training on good images, the SSIM
 * and L2 residual maps. The layers are the library's own (convolution,
 * LeakyReLU, nearest upsampling), so training, gradients and files are the
 * ones every model has. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aibox/data.h"
#include "anomaly/gridmap.h"
#include "core/core.h"
#include "ops/ops.h"

#define TASK "autoencoder"

struct aibox_autoencoder {
    aibox_model *net; /* holds the metadata */
    int C, S;
    aibox_ae_residual residual;
    float sigma;
    long images;
    int epochs;
    double loss;
};

struct aibox_autoencoder_fit {
    aibox_autoencoder_opts o; /* defaults resolved; on_epoch and user the caller's */
    int threads, spent;
    uint8_t *pix; /* n x C x S x S: the good images at the network's size */
    long n, cap;
    aibox_image aug; /* one sample, interleaved, for the augmentations: allocated once (they may swap its buffer) */
};

struct aibox_autoencoder_ctx {
    const aibox_autoencoder *a;
    aibox_ctx *ctx;
    int max_batch;
    float *res, *scratch; /* S x S residual before the blur; the SSIM's scratch */
    aibox_gridmap gmap;   /* the blur (the "grid" is already at the map's size) */
};

/* ------------------------------------------------------------------ options */
static aibox_status resolve(aibox_autoencoder_opts *r, const aibox_autoencoder_opts *o, aibox_error *err)
{
    aibox_autoencoder_opts z = {0};
    *r = o ? *o : z;
    if (!r->size) r->size = 128;
    if (!r->channels) r->channels = 3;
    if (!r->width) r->width = 32;
    if (!r->latent) r->latent = 16;
    if (!r->epochs) r->epochs = 50;
    if (!r->batch) r->batch = 16;
    if (r->lr == 0) r->lr = 2e-4f;
    if (r->weight_decay == 0) r->weight_decay = 1e-5f;
    if (r->weight_decay < 0) r->weight_decay = 0;
    if (!r->augment_mask)
        r->augment_mask = AIBOX_AUG_BIT(AIBOX_AUG_FLIP) | AIBOX_AUG_BIT(AIBOX_AUG_ROTATION) | AIBOX_AUG_BIT(AIBOX_AUG_CROP);
    if (r->augment_mask == AIBOX_AE_NO_AUGMENT) r->augment_mask = 0;
    if (r->augment_p == 0) r->augment_p = AIBOX_AUG_P_DEFAULT;
    if (r->blur_sigma == 0) r->blur_sigma = 4;
    if (r->size < 32 || r->size > 1024 || r->size % 16)
        return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: size %d (a multiple of 16 from 32 to 1024)", r->size);
    if (r->channels != 1 && r->channels != 3)
        return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: %d channels (1 or 3)", r->channels);
    if (r->width < 1 || r->width > 1024 || r->latent < 1 || r->latent > 4096)
        return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: width %d / latent %d out of range (1-1024 / 1-4096)",
                          r->width, r->latent);
    if (r->epochs < 1 || r->epochs > 100000 || r->batch < 1 || r->batch > 4096)
        return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: epochs %d / batch %d out of range", r->epochs, r->batch);
    if (!(r->lr > 0 && r->lr < 10) || !(r->weight_decay < 1))
        return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: learning rate %g / weight decay %g out of range", r->lr,
                          r->weight_decay);
    if (r->residual != AIBOX_AE_SSIM && r->residual != AIBOX_AE_L2)
        return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: unknown residual %d", (int)r->residual);
    if (r->augment_mask & ~AIBOX_AUG_ALL)
        return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: unknown augmentation bits 0x%x", r->augment_mask);
    if (!(r->augment_p >= 0 && r->augment_p <= 1))
        return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: augmentation probability %g (0 to 1)", r->augment_p);
    if (r->blur_sigma > 0 && !aibox_map_blur_kernel_size(r->blur_sigma))
        return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: blur sigma %g out of range", r->blur_sigma);
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ network */
static int conv(aibox_model *m, int in, int out, int k, int stride, int leaky)
{
    int p = k == 4 ? 1 : k / 2; /* 4x4/2 with 1 halves the side; odd kernels keep it */
    aibox_conv_opts c = {.out_channels = out, .kernel_h = k, .kernel_w = k, .stride_h = stride, .stride_w = stride,
                         .pad_top = p, .pad_left = p, .pad_bottom = p, .pad_right = p, .bias = 1};
    int n = aibox_conv2d(m, in, &c);
    return leaky ? aibox_leaky_relu(m, n, 0.2f) : n;
}

static int up(aibox_model *m, int in)
{
    int c, h, w;
    if (in < 0) return in;
    aibox_model_node_shape(m, in, &c, &h, &w);
    return aibox_upsample_nearest(m, in, 2 * h, 2 * w);
}

static aibox_status build(aibox_model **out, const aibox_autoencoder_opts *o, aibox_error *err)
{
    int S = o->size, C = o->channels, w = o->width;
    aibox_model *m = NULL;
    aibox_status s = aibox_model_create(&m, C, S, S, err);
    if (s) return s;
    int x = 0;
    /* encoder (Bergmann et al. 2019, Table 1) */
    x = conv(m, x, w, 4, 2, 1);
    x = conv(m, x, w, 4, 2, 1);
    x = conv(m, x, w, 3, 1, 1);
    x = conv(m, x, 2 * w, 4, 2, 1);
    x = conv(m, x, 2 * w, 3, 1, 1);
    x = conv(m, x, 4 * w, 4, 2, 1);
    x = conv(m, x, 2 * w, 3, 1, 1);
    x = conv(m, x, w, 3, 1, 1);
    x = conv(m, x, o->latent, 1, 1, 1); /* the bottleneck: L x S/16 x S/16 */
    /* decoder: the mirror, upsampling + 3x3 where the paper transposes */
    x = conv(m, x, w, 3, 1, 1);
    x = conv(m, x, 2 * w, 3, 1, 1);
    x = conv(m, up(m, x), 2 * w, 3, 1, 1);
    x = conv(m, x, 2 * w, 3, 1, 1);
    x = conv(m, up(m, x), w, 3, 1, 1);
    x = conv(m, x, w, 3, 1, 1);
    x = conv(m, up(m, x), w, 3, 1, 1);
    x = conv(m, up(m, x), C, 3, 1, 0); /* linear output, pixels / 255 */
    if (x < 0 || (s = aibox_model_finish(m, o->seed, err))) {
        if (!s) s = aibox_fail(err, (aibox_status)-x, "autoencoder: %s", aibox_model_last_error(m));
        aibox_model_free(&m);
        return s;
    }
    *out = m;
    return AIBOX_OK;
}

aibox_status aibox_autoencoder_network(aibox_model **m, const aibox_autoencoder_opts *opts, aibox_error *err)
{
    if (!m) return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: NULL model pointer");
    *m = NULL;
    aibox_autoencoder_opts o;
    aibox_status s = resolve(&o, opts, err);
    return s ? s : build(m, &o, err);
}

/* ------------------------------------------------------------------ SSIM */
#define SSIM_WIN 11
#define SSIM_SIGMA 1.5

/* Gaussian window blur of one w x h plane, separable; near the border the
 * weights inside the image are renormalised. tmp: w x h. */
static void window_blur(const float *in, float *out, float *tmp, int w, int h, const float *g)
{
    const int r = SSIM_WIN / 2;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float acc = 0, ws = 0;
            for (int k = -r; k <= r; k++) {
                int xx = x + k;
                if (xx < 0 || xx >= w) continue;
                acc += g[k + r] * in[(size_t)y * w + xx], ws += g[k + r];
            }
            tmp[(size_t)y * w + x] = acc / ws;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float acc = 0, ws = 0;
            for (int k = -r; k <= r; k++) {
                int yy = y + k;
                if (yy < 0 || yy >= h) continue;
                acc += g[k + r] * tmp[(size_t)yy * w + x], ws += g[k + r];
            }
            out[(size_t)y * w + x] = acc / ws;
        }
}

aibox_status aibox_ssim_map(const float *a, const float *b, int c, int w, int h, float *out, float *scratch,
                            aibox_error *err)
{
    if (!a || !b || !out) return aibox_fail(err, AIBOX_E_INVALID, "ssim: NULL argument");
    if (c < 1 || w < 1 || h < 1 || (size_t)w * h > ((size_t)1 << 28))
        return aibox_fail(err, AIBOX_E_INVALID, "ssim: bad shape %d x %d x %d", c, h, w);
    size_t n = (size_t)w * h;
    float *own = scratch ? NULL : malloc(sizeof(float) * (6 * n));
    float *t = scratch ? scratch : own;
    if (!t) return aibox_fail(err, AIBOX_E_NOMEM, "ssim: out of memory for a %d x %d map", w, h);
    float *mx = t, *my = t + n, *sxx = t + 2 * n, *syy = t + 3 * n, *sxy = t + 4 * n, *tmp = t + 5 * n;
    float g[SSIM_WIN];
    for (int k = 0; k < SSIM_WIN; k++) {
        double d = k - SSIM_WIN / 2;
        g[k] = (float)exp(-d * d / (2 * SSIM_SIGMA * SSIM_SIGMA));
    }
    const float C1 = 0.01f * 0.01f, C2 = 0.03f * 0.03f;
    for (size_t i = 0; i < n; i++) out[i] = 0;
    for (int ch = 0; ch < c; ch++) {
        const float *x = a + n * ch, *y = b + n * ch;
        window_blur(x, mx, tmp, w, h, g);
        window_blur(y, my, tmp, w, h, g);
        /* the products, blurred in place of the raw planes */
        for (size_t i = 0; i < n; i++) sxx[i] = x[i] * x[i], syy[i] = y[i] * y[i], sxy[i] = x[i] * y[i];
        window_blur(sxx, sxx, tmp, w, h, g);
        window_blur(syy, syy, tmp, w, h, g);
        window_blur(sxy, sxy, tmp, w, h, g);
        for (size_t i = 0; i < n; i++) {
            float vx = sxx[i] - mx[i] * mx[i], vy = syy[i] - my[i] * my[i], cxy = sxy[i] - mx[i] * my[i];
            float ssim = ((2 * mx[i] * my[i] + C1) * (2 * cxy + C2)) /
                         ((mx[i] * mx[i] + my[i] * my[i] + C1) * (vx + vy + C2));
            out[i] += (1 - ssim) / c;
        }
    }
    free(own);
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ fit */
void aibox_autoencoder_fit_free(aibox_autoencoder_fit **pf)
{
    if (!pf || !*pf) return;
    free((*pf)->pix);
    aibox_image_free(&(*pf)->aug);
    free(*pf);
    *pf = NULL;
}

aibox_status aibox_autoencoder_fit_begin(aibox_autoencoder_fit **out, const aibox_autoencoder_opts *opts, int threads,
                                         aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: NULL fit pointer");
    *out = NULL;
    if (threads < 0) return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: %d threads", threads);
    aibox_autoencoder_fit *f = calloc(1, sizeof *f);
    if (!f) return aibox_fail(err, AIBOX_E_NOMEM, "autoencoder: out of memory");
    aibox_status s = resolve(&f->o, opts, err);
    if (s) {
        free(f);
        return s;
    }
    f->threads = threads;
    *out = f;
    return AIBOX_OK;
}

aibox_status aibox_autoencoder_fit_preproc(const aibox_autoencoder_fit *f, aibox_preproc *p, aibox_error *err)
{
    if (!f || !p) return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: NULL argument");
    memset(p, 0, sizeof *p);
    p->channels = f->o.channels, p->width = p->height = f->o.size;
    p->resize = AIBOX_RESIZE_AREA;
    for (int c = 0; c < 4; c++) p->mean[c] = 0, p->std[c] = 1;
    return AIBOX_OK;
}

long aibox_autoencoder_fit_count(const aibox_autoencoder_fit *f) { return f ? f->n : 0; }

size_t aibox_autoencoder_fit_bytes(const aibox_autoencoder_fit *f)
{
    return f ? (size_t)f->cap * f->o.channels * f->o.size * f->o.size : 0;
}

aibox_status aibox_autoencoder_fit_add(aibox_autoencoder_fit *f, const float *x, int n, aibox_error *err)
{
    if (!f || (!x && n)) return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: NULL argument");
    if (f->spent) return aibox_fail(err, AIBOX_E_STATE, "autoencoder: the fit has ended");
    if (n < 0) return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: %d images", n);
    size_t len = (size_t)f->o.channels * f->o.size * f->o.size;
    if (f->n + n > f->cap) {
        long cap = f->cap ? f->cap : 64;
        while (cap < f->n + n) cap *= 2;
        uint8_t *p = realloc(f->pix, len * (size_t)cap);
        if (!p) return aibox_fail(err, AIBOX_E_NOMEM, "autoencoder: out of memory for %ld images", cap);
        f->pix = p, f->cap = cap;
    }
    /* the preprocessing is pixel / 255 of 8-bit pixels: kept as those pixels, 4x smaller */
    for (size_t i = 0; i < len * (size_t)n; i++) {
        float v = x[i] * 255.0f;
        if (!(v >= -0.5f && v <= 255.5f))
            return aibox_fail(err, AIBOX_E_NONFINITE, "autoencoder: image %ld: value %g is not a pixel / 255",
                              f->n + (long)(i / len), x[i]);
        f->pix[len * f->n + i] = (uint8_t)lrintf(v);
    }
    f->n += n;
    return AIBOX_OK;
}

/* The preprocessing and the method's record in the network's metadata. */
static aibox_status store_meta(aibox_autoencoder *a, const aibox_autoencoder_opts *o, aibox_error *err)
{
    aibox_preproc pp;
    aibox_preproc_default(&pp, a->net);
    aibox_status s = aibox_preproc_to_model(&pp, a->net, err);
    if (!s) s = aibox_model_set_meta_str(a->net, AIBOX_META_TASK, TASK, err);
    if (!s) s = aibox_model_set_meta_str(a->net, "aibox.autoencoder.residual", a->residual == AIBOX_AE_L2 ? "l2" : "ssim", err);
    if (!s) s = aibox_model_set_meta_float(a->net, "aibox.autoencoder.blur_sigma", a->sigma, err);
    if (!s) s = aibox_model_set_meta_int(a->net, "aibox.autoencoder.images", a->images, err);
    if (!s) s = aibox_model_set_meta_int(a->net, "aibox.autoencoder.epochs", a->epochs, err);
    if (!s) s = aibox_model_set_meta_float(a->net, "aibox.autoencoder.loss", a->loss, err);
    if (!s) s = aibox_model_set_meta_float(a->net, "aibox.autoencoder.lr", o->lr, err);
    if (!s) s = aibox_model_set_meta_int(a->net, "aibox.autoencoder.batch", o->batch, err);
    if (!s) s = aibox_model_set_meta_int(a->net, "aibox.autoencoder.seed", (int64_t)o->seed, err);
    char aug[256];
    aibox_augment_format(o->augment_mask, aug, sizeof aug);
    if (!s) s = aibox_model_set_meta_str(a->net, "aibox.autoencoder.augment", aug, err);
    return s;
}

/* One epoch: every image once, in a seeded order, augmented; the mean loss. */
static aibox_status epoch(aibox_autoencoder_fit *f, aibox_model *m, aibox_ctx *ctx, aibox_optim *opt, aibox_rng *rng,
                          long *order, float *x, double *mean_loss, aibox_error *err)
{
    const aibox_autoencoder_opts *o = &f->o;
    int C = o->channels, S = o->size;
    size_t len = (size_t)C * S * S;
    for (long i = f->n - 1; i > 0; i--) {
        long j = (long)aibox_rng_below(rng, (uint32_t)(i + 1));
        long t = order[i];
        order[i] = order[j], order[j] = t;
    }
    double sum = 0;
    long steps = 0;
    aibox_status s = AIBOX_OK;
    for (long b0 = 0; !s && b0 < f->n; b0 += o->batch) {
        int nb = (int)(f->n - b0 < o->batch ? f->n - b0 : o->batch);
        for (int k = 0; !s && k < nb; k++) {
            const uint8_t *p = f->pix + len * (size_t)order[b0 + k];
            float *xk = x + len * k;
            if (!o->augment_mask) {
                for (size_t i = 0; i < len; i++) xk[i] = p[i] * (1.0f / 255);
                continue;
            }
            /* planes -> interleaved for the augmentations, and back */
            aibox_image *img = &f->aug;
            for (int c = 0; c < C; c++)
                for (int i = 0; i < S * S; i++) img->data[(size_t)i * C + c] = p[(size_t)c * S * S + i];
            s = aibox_augment_apply(img, o->augment_mask, o->augment_p, rng, err);
            for (int c = 0; !s && c < C; c++)
                for (int i = 0; i < S * S; i++) xk[(size_t)c * S * S + i] = img->data[(size_t)i * C + c] * (1.0f / 255);
        }
        float loss = 0;
        aibox_model_zero_grad(m);
        if (!s) s = aibox_ctx_forward(ctx, m, x, nb, err);
        if (!s) s = aibox_ctx_loss_mse(ctx, x, &loss, err); /* the target is the (augmented) input itself */
        if (!s && !isfinite(loss))
            s = aibox_fail(err, AIBOX_E_NONFINITE, "autoencoder: the training loss is not finite (%g); try a lower rate",
                           loss);
        if (!s) s = aibox_ctx_backward(ctx, m, err);
        if (!s) s = aibox_optim_step(opt, m, err);
        sum += loss, steps++;
    }
    *mean_loss = steps ? sum / steps : 0;
    return s;
}

aibox_status aibox_autoencoder_fit_end(aibox_autoencoder_fit *f, aibox_autoencoder **out, aibox_error *err)
{
    if (!f || !out) return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: NULL argument");
    *out = NULL;
    if (f->spent) return aibox_fail(err, AIBOX_E_STATE, "autoencoder: the fit has ended");
    if (f->n < 1) return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: no image to fit");
    f->spent = 1;
    const aibox_autoencoder_opts *o = &f->o;
    aibox_autoencoder *a = calloc(1, sizeof *a);
    if (!a) return aibox_fail(err, AIBOX_E_NOMEM, "autoencoder: out of memory");
    a->C = o->channels, a->S = o->size, a->residual = o->residual, a->sigma = o->blur_sigma, a->images = f->n;
    aibox_status s = build(&a->net, o, err);
    int batch = (int)(f->n < o->batch ? f->n : o->batch);
    aibox_ctx *ctx = NULL;
    aibox_optim *opt = NULL;
    if (!s)
        s = aibox_ctx_create(&ctx, a->net,
                             &(aibox_ctx_opts){.mode = AIBOX_TRAIN, .max_batch = batch, .threads = f->threads,
                                               .seed = o->seed},
                             err);
    if (!s)
        s = aibox_optim_create(&opt, a->net,
                               &(aibox_optim_opts){.kind = AIBOX_ADAM, .lr = o->lr, .weight_decay = o->weight_decay}, err);
    if (!s) aibox_optim_set_ctx(opt, ctx);
    size_t len = (size_t)o->channels * o->size * o->size;
    float *x = s ? NULL : aibox_alloc(sizeof(float) * len * (size_t)batch);
    long *order = s ? NULL : malloc(sizeof(long) * (size_t)f->n);
    f->aug = (aibox_image){o->size, o->size, o->channels, s ? NULL : malloc(len)};
    if (!s && (!x || !order || !f->aug.data)) s = aibox_fail(err, AIBOX_E_NOMEM, "autoencoder: out of memory");
    for (long i = 0; !s && i < f->n; i++) order[i] = i;
    aibox_rng rng;
    aibox_rng_seed(&rng, o->seed ^ 0x6175746f656e63ULL); /* apart from the weights' draws */
    for (int e = 0; !s && e < o->epochs; e++) {
        aibox_optim_set_epoch(opt, e);
        s = epoch(f, a->net, ctx, opt, &rng, order, x, &a->loss, err);
        if (!s) a->epochs = e + 1;
        if (!s && o->on_epoch) o->on_epoch(o->user, e + 1, o->epochs, a->loss);
    }
    aibox_free(x), free(order);
    aibox_optim_free(&opt);
    aibox_ctx_free(&ctx);
    if (!s) s = store_meta(a, o, err);
    if (s) {
        aibox_autoencoder_free(&a);
        return s;
    }
    *out = a;
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ model */
void aibox_autoencoder_free(aibox_autoencoder **pa)
{
    if (!pa || !*pa) return;
    aibox_model_free(&(*pa)->net);
    free(*pa);
    *pa = NULL;
}

aibox_model *aibox_autoencoder_model(aibox_autoencoder *a) { return a ? a->net : NULL; }
const aibox_model *aibox_autoencoder_model_const(const aibox_autoencoder *a) { return a ? a->net : NULL; }

void aibox_autoencoder_info(const aibox_autoencoder *a, aibox_ae_residual *residual, long *images, int *epochs,
                            double *loss)
{
    if (residual) *residual = a ? a->residual : AIBOX_AE_SSIM;
    if (images) *images = a ? a->images : 0;
    if (epochs) *epochs = a ? a->epochs : 0;
    if (loss) *loss = a ? a->loss : 0;
}

aibox_status aibox_autoencoder_save(const aibox_autoencoder *a, const char *path, aibox_error *err)
{
    if (!a || !path) return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: NULL argument");
    return aibox_model_save(a->net, path, err);
}

aibox_status aibox_autoencoder_load(aibox_autoencoder **out, const char *path, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: NULL model pointer");
    *out = NULL;
    aibox_model *m = NULL;
    aibox_status s = aibox_model_load(&m, path, err);
    if (s) return s;
    const char *task = NULL, *res = NULL;
    if (aibox_model_get_meta_str(m, AIBOX_META_TASK, &task) || strcmp(task, TASK)) {
        aibox_model_free(&m);
        return aibox_fail(err, AIBOX_E_NOTFOUND, "%s: not an auto-encoder model", path);
    }
    aibox_autoencoder *a = calloc(1, sizeof *a);
    if (!a) {
        aibox_model_free(&m);
        return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
    }
    a->net = m;
    int C, H, W, oc, oh, ow;
    aibox_model_input_shape(m, &C, &H, &W);
    aibox_model_node_shape(m, aibox_model_output(m), &oc, &oh, &ow);
    /* a map needs the output to be an image of the input's shape */
    if (oc != C || oh != H || ow != W || (C != 1 && C != 3) || H != W)
        s = aibox_fail(err, AIBOX_E_FORMAT, "%s: auto-encoder output %dx%dx%d does not match its input %dx%dx%d", path,
                       oc, oh, ow, C, H, W);
    double sigma = 4, loss = 0;
    int64_t images = 0, epochs = 0;
    if (!s && (aibox_model_get_meta_str(m, "aibox.autoencoder.residual", &res) ||
               (strcmp(res, "ssim") && strcmp(res, "l2"))))
        s = aibox_fail(err, AIBOX_E_FORMAT, "%s: auto-encoder residual missing or unknown", path);
    if (!s) {
        a->C = C, a->S = H, a->residual = strcmp(res, "l2") ? AIBOX_AE_SSIM : AIBOX_AE_L2;
        a->sigma = aibox_model_get_meta_float(m, "aibox.autoencoder.blur_sigma", &sigma) ? 4.0f : (float)sigma;
        if (!(a->sigma <= 0 || aibox_map_blur_kernel_size(a->sigma)))
            s = aibox_fail(err, AIBOX_E_FORMAT, "%s: auto-encoder blur sigma %g out of range", path, sigma);
        aibox_model_get_meta_int(m, "aibox.autoencoder.images", &images);
        aibox_model_get_meta_int(m, "aibox.autoencoder.epochs", &epochs);
        aibox_model_get_meta_float(m, "aibox.autoencoder.loss", &loss);
        a->images = (long)images, a->epochs = (int)epochs, a->loss = loss;
    }
    if (s) {
        aibox_autoencoder_free(&a);
        return s;
    }
    *out = a;
    return AIBOX_OK;
}

/* ------------------------------------------------------------------ scoring */
void aibox_autoencoder_ctx_free(aibox_autoencoder_ctx **pc)
{
    if (!pc || !*pc) return;
    aibox_autoencoder_ctx *c = *pc;
    aibox_ctx_free(&c->ctx);
    aibox_gridmap_free(&c->gmap);
    free(c->res), free(c->scratch);
    free(c);
    *pc = NULL;
}

aibox_status aibox_autoencoder_ctx_create(aibox_autoencoder_ctx **out, const aibox_autoencoder *a, int max_batch,
                                          int threads, aibox_error *err)
{
    if (!out || !a) return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: NULL argument");
    *out = NULL;
    if (max_batch < 1 || threads < 0)
        return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: batch %d / threads %d", max_batch, threads);
    aibox_autoencoder_ctx *c = calloc(1, sizeof *c);
    if (!c) return aibox_fail(err, AIBOX_E_NOMEM, "autoencoder: out of memory");
    c->a = a, c->max_batch = max_batch;
    size_t n = (size_t)a->S * a->S;
    aibox_status s = aibox_ctx_create(&c->ctx, a->net, &(aibox_ctx_opts){.max_batch = max_batch, .threads = threads}, err);
    if (!s) s = aibox_ctx_freeze_weights(c->ctx, a->net, err);
    if (!s) s = aibox_gridmap_init(&c->gmap, a->sigma, a->S, a->S, 1, "autoencoder", err);
    if (!s) {
        c->res = malloc(sizeof(float) * n);
        c->scratch = malloc(sizeof(float) * 6 * n);
        if (!c->res || !c->scratch) s = aibox_fail(err, AIBOX_E_NOMEM, "autoencoder: out of memory");
    }
    if (s) {
        aibox_autoencoder_ctx_free(&c);
        return s;
    }
    *out = c;
    return AIBOX_OK;
}

aibox_status aibox_autoencoder_score(aibox_autoencoder_ctx *c, const float *x, int n, float *recon, float *maps,
                                     float *scores, aibox_error *err)
{
    if (!c || (!x && n)) return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: NULL argument");
    if (n < 0 || n > c->max_batch)
        return aibox_fail(err, AIBOX_E_INVALID, "autoencoder: %d images (the context holds %d)", n, c->max_batch);
    if (!n) return AIBOX_OK;
    const aibox_autoencoder *a = c->a;
    aibox_status s = aibox_ctx_infer(c->ctx, a->net, x, n, err);
    if (s) return s;
    const float *y = aibox_ctx_output(c->ctx, NULL, NULL, NULL);
    size_t px = (size_t)a->S * a->S, len = px * a->C;
    if (recon) memcpy(recon, y, sizeof(float) * len * n);
    for (int b = 0; b < n && !s && (maps || scores); b++) {
        const float *xb = x + len * b, *yb = y + len * b;
        if (a->residual == AIBOX_AE_SSIM) {
            s = aibox_ssim_map(xb, yb, a->C, a->S, a->S, c->res, c->scratch, err);
        } else {
            for (size_t i = 0; i < px; i++) {
                float d = 0;
                for (int ch = 0; ch < a->C; ch++) {
                    float t = xb[px * ch + i] - yb[px * ch + i];
                    d += t * t;
                }
                c->res[i] = d;
            }
        }
        float *m = maps ? maps + px * b : c->scratch; /* the SSIM's scratch is free again */
        if (!s) s = aibox_gridmap_run(&c->gmap, NULL, c->res, a->S, a->S, m, err);
        if (!s && scores) {
            float mx = m[0];
            for (size_t i = 1; i < px; i++) mx = m[i] > mx ? m[i] : mx;
            scores[b] = mx;
        }
    }
    return s;
}
