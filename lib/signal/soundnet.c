/* Small networks for windows of sound and vibration (aibox_sound_preset):
 * a 2-D CNN on log-mel spectrograms and a WDCNN-like 1-D CNN on raw
 * samples. Both are a few tens of thousands of parameters, so that a CPU
 * trains them on a few thousand windows in seconds per epoch, and they
 * adapt their pooling to the input: a dimension already down to 1 is not
 * pooled again, so short windows (few frames) still build. */
#include <string.h>

#include "core/core.h"

#define BN_EPS 1e-3f
#define BN_MOMENTUM 0.99f

/* conv (kh x kw, stride 1 x sw, 'same' padding for odd kernels, no bias: BN
 * follows) - BN - ReLU */
static int conv_bn_relu(aibox_model *m, int in, int out_ch, int kh, int kw, int sw, int pad_w)
{
    aibox_conv_opts c;
    memset(&c, 0, sizeof c);
    c.out_channels = out_ch, c.kernel_h = kh, c.kernel_w = kw, c.stride_h = 1, c.stride_w = sw;
    c.pad_top = c.pad_bottom = kh / 2, c.pad_left = c.pad_right = pad_w;
    c.bias = 0;
    int x = aibox_conv2d(m, in, &c);
    x = aibox_batchnorm(m, x, BN_EPS, BN_MOMENTUM);
    return aibox_relu(m, x);
}

/* A 2 x 2 max-pool, 1 in a direction whose size is already 1. */
static int pool2(aibox_model *m, int in)
{
    if (in < 0) return in;
    int c, h, w;
    aibox_model_node_shape(m, in, &c, &h, &w);
    if (h < 2 && w < 2) return in;
    aibox_pool_opts p;
    memset(&p, 0, sizeof p);
    p.kernel_h = h >= 2 ? 2 : 1, p.kernel_w = w >= 2 ? 2 : 1;
    return aibox_maxpool(m, in, &p);
}

static aibox_status head(aibox_model **out, aibox_model *m, int x, int classes, float dropout, uint64_t seed,
                         const char *arch, const aibox_sound_opts *o, aibox_error *err)
{
    x = aibox_global_avgpool(m, x);
    if (dropout > 0.0f) x = aibox_dropout(m, x, dropout);
    x = aibox_dense(m, x, classes, 1);
    aibox_status s = x < 0 ? (aibox_status)-x : AIBOX_OK;
    if (!s) s = aibox_model_finish(m, seed, err);
    else aibox_fail(err, s, "sound preset %s: %s", arch, aibox_model_last_error(m));
    if (!s) s = aibox_model_set_meta_str(m, AIBOX_META_ARCH, arch, err);
    /* the window settings travel with the network from the start (a
     * dataset's describe() later adds its in_mean / in_std) */
    if (!s) s = aibox_sound_opts_to_model(o, m, err);
    if (s) {
        aibox_model_free(&m);
        return s;
    }
    *out = m;
    return AIBOX_OK;
}

aibox_status aibox_sound_preset(aibox_model **out, const char *name, const aibox_sound_opts *o, int classes,
                                float dropout, uint64_t seed, aibox_error *err)
{
    if (!out || !name || !o) return aibox_fail(err, AIBOX_E_INVALID, "sound preset: NULL argument");
    *out = NULL;
    if (classes < 2 || classes > 100000)
        return aibox_fail(err, AIBOX_E_INVALID, "sound preset %s: %d classes (need 2 .. 100000)", name, classes);
    if (!(dropout >= 0.0f && dropout < 1.0f))
        return aibox_fail(err, AIBOX_E_INVALID, "sound preset %s: dropout %g must be in [0, 1)", name, (double)dropout);
    int c, h, w;
    aibox_status s = aibox_sound_input_shape(o, &c, &h, &w, err);
    if (s) return s;
    const int is2d = !strcmp(name, "cnn2d"), is1d = !strcmp(name, "cnn1d");
    if (!is2d && !is1d)
        return aibox_fail(err, AIBOX_E_INVALID, "sound preset '%s' is unknown (known: cnn2d, cnn1d)", name);
    if (is2d && o->input != AIBOX_SOUND_LOGMEL)
        return aibox_fail(err, AIBOX_E_INVALID, "sound preset cnn2d takes logmel windows, not %s",
                          aibox_sound_input_name(o->input));
    if (is1d && o->input != AIBOX_SOUND_RAW)
        return aibox_fail(err, AIBOX_E_INVALID, "sound preset cnn1d takes raw windows, not %s",
                          aibox_sound_input_name(o->input));
    /* below these the stages would see single values: nothing to learn from */
    if (is2d && (h < 8 || w < 4))
        return aibox_fail(err, AIBOX_E_SHAPE, "sound preset cnn2d: a %d x %d log-mel is too small (need >= 8 mels x 4 frames)",
                          h, w);
    if (is1d && w < 256)
        return aibox_fail(err, AIBOX_E_SHAPE, "sound preset cnn1d: a window of %d samples is too short (need >= 256)", w);
    aibox_model *m = NULL;
    if ((s = aibox_model_create(&m, c, h, w, err))) return s;
    int x = 0;
    if (is2d) {
        static const int ch[4] = {16, 32, 64, 64};
        for (int i = 0; i < 4; i++) x = pool2(m, conv_bn_relu(m, x, ch[i], 3, 3, 1, 1));
        return head(out, m, x, classes, dropout, seed, "sound_cnn2d", o, err);
    }
    /* WDCNN: a wide first kernel (64 samples, stride 8) sees whole impacts
     * and shortens the sequence at once; padding 28 makes the output
     * window / 8 long for windows that are multiples of 8 */
    static const int ch[4] = {32, 64, 64, 64};
    x = pool2(m, conv_bn_relu(m, x, 16, 1, 64, 8, 28));
    for (int i = 0; i < 4; i++) x = pool2(m, conv_bn_relu(m, x, ch[i], 1, 3, 1, 1));
    return head(out, m, x, classes, dropout, seed, "sound_cnn1d", o, err);
}
