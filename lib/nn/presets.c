/* Preset networks, built with the public graph builder only (so they double
 * as worked examples of it). Every preset takes a square input of `size`
 * pixels with `channels` channels, ends in a classes x 1 x 1 output node, is
 * finished with PRESET_SEED (so parameter counts and shapes are available;
 * callers wanting other initial values re-initialise), and records
 * AIBOX_META_ARCH = its name as model metadata.
 *
 * Builder calls return node ids or a negative status and errors are sticky,
 * so each preset builds its whole chain and lets aibox_model_finish() report
 * the first builder error with its message. Input sizes are checked up front
 * against each preset's smallest workable size, for a message that names the
 * preset and the limit rather than one layer deep inside it.
 *
 * Parameter counts (aibox_model_param_count: trainable only, BN running
 * statistics excluded), checked by tests/nn/test_presets.c:
 *   alexnet     2 classes, 256x256x3: 16,888,226 (AI-Box paper Table 1)
 *   squeezenet  2 classes, any size:     736,450 (torchvision 1.0 features)
 *   resnet18 1000 classes, any size:  11,689,512 (torchvision)
 *   resnet50 1000 classes, any size:  25,557,032 (torchvision)
 *   wide_resnet50_2 1000 classes:     68,883,240 (torchvision; any size)
 *   resnext     2 classes, any size:   3,731,906 (Table 1; see the ResNeXt note)
 *   small       2 classes, 64x64x3:    1,142,210; 10 classes, 28x28x1: 241,546
 */
#include <stdio.h>
#include <string.h>

#include "core/core.h"

#define PRESET_SEED 0x5eedu

/* Dropout rate used when AlexNet is built by name (aibox_preset). */
#define ALEXNET_DEFAULT_DROPOUT 0.25f

/* Smallest input sizes (see each preset for the arithmetic). */
#define ALEXNET_MIN_SIZE 8     /* three 2x2 floor poolings: 8 -> 4 -> 2 -> 1 */
#define SMALL_MIN_SIZE 8       /* same */
#define SQUEEZENET_MIN_SIZE 29 /* 7x7/2 conv then three 3x3/2 ceil poolings: 29 -> 12 -> 6 -> 3 -> 1 */
#define RESNET_MIN_SIZE 32     /* total stride 32: below it the last stride-2 stages get 1x1 maps and
                                * stop reducing, so the stage taps no longer sit at strides 4..32 */

/* ------------------------------------------------------------ builder helpers */
static int conv(aibox_model *m, int in, int out, int k, int stride, int pad, int groups, int bias)
{
    aibox_conv_opts o = {.out_channels = out, .kernel_h = k, .kernel_w = k, .stride_h = stride, .stride_w = stride,
                         .pad_top = pad, .pad_left = pad, .pad_bottom = pad, .pad_right = pad, .groups = groups,
                         .bias = bias};
    return aibox_conv2d(m, in, &o);
}

static int maxpool(aibox_model *m, int in, int k, int stride, int pad, int ceil_mode)
{
    aibox_pool_opts o = {.kernel_h = k, .kernel_w = k, .stride_h = stride, .stride_w = stride, .pad_top = pad,
                         .pad_left = pad, .pad_bottom = pad, .pad_right = pad, .ceil_mode = ceil_mode};
    return aibox_maxpool(m, in, &o);
}

/* Conv (no bias: BN's beta replaces it) + BN, optionally + ReLU. */
static int conv_bn(aibox_model *m, int in, int out, int k, int stride, int pad, int groups, float eps,
                   float momentum, int relu)
{
    int x = conv(m, in, out, k, stride, pad, groups, 0);
    x = aibox_batchnorm(m, x, eps, momentum);
    return relu ? aibox_relu(m, x) : x;
}

static aibox_status check_args(aibox_model **m, const char *name, int classes, int channels, int size, int min_size,
                               aibox_error *err)
{
    if (!m) return aibox_fail(err, AIBOX_E_INVALID, "%s: NULL model pointer", name);
    *m = NULL;
    if (classes < 1) return aibox_fail(err, AIBOX_E_INVALID, "%s: %d classes (needs at least 1)", name, classes);
    if (channels < 1)
        return aibox_fail(err, AIBOX_E_INVALID, "%s: %d input channels (needs at least 1)", name, channels);
    if (size < min_size)
        return aibox_fail(err, AIBOX_E_SHAPE, "%s: input size %dx%d is too small (the smallest is %dx%d)", name,
                          size, size, min_size, min_size);
    return AIBOX_OK;
}

/* Finishes the model (reporting the first builder error) and names it; frees
 * it on any failure so the caller gets either a model or NULL. */
static aibox_status finish(aibox_model **out, aibox_model *m, const char *name, aibox_error *err)
{
    aibox_status s = aibox_model_finish(m, PRESET_SEED, err);
    if (s == AIBOX_OK) s = aibox_model_set_meta_str(m, AIBOX_META_ARCH, name, err);
    if (s != AIBOX_OK) {
        size_t k = strlen(name);
        if (err && err->msg[0] && strncmp(err->msg, name, k) != 0 && k + 2 < sizeof err->msg) {
            /* prefix the preset's name so the message says what was built
             * (shifting in place; the tail may be cut at the buffer's end) */
            size_t len = strnlen(err->msg, sizeof err->msg - 1);
            if (len > sizeof err->msg - 1 - (k + 2)) len = sizeof err->msg - 1 - (k + 2);
            memmove(err->msg + k + 2, err->msg, len);
            memcpy(err->msg, name, k);
            err->msg[k] = ':', err->msg[k + 1] = ' ';
            err->msg[k + 2 + len] = 0;
        }
        aibox_model_free(&m);
        return s;
    }
    *out = m;
    return AIBOX_OK;
}

/* Feature taps for PaDiM-style users: the node ids of the residual stages'
 * outputs, as int metadata "aibox.tap.layer1" .. "aibox.tap.layer4" (strides
 * 4, 8, 16, 32 of the input). Metadata travels with saved models, so a loaded
 * model still names its taps. Called after finish (node ids are final). */
static aibox_status record_taps(aibox_model *m, const int *stage_out, int n, aibox_error *err)
{
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "aibox.tap.layer%d", i + 1);
        aibox_status s = aibox_model_set_meta_int(m, key, stage_out[i], err);
        if (s != AIBOX_OK) return s;
    }
    return AIBOX_OK;
}

static aibox_status finish_with_taps(aibox_model **out, aibox_model *m, const char *name, const int *taps, int n,
                                     aibox_error *err)
{
    aibox_status s = finish(out, m, name, err);
    if (s != AIBOX_OK) return s;
    s = record_taps(*out, taps, n, err);
    if (s != AIBOX_OK) aibox_model_free(out);
    return s;
}

/* ------------------------------------------------------------ AlexNet (AI-Box) */
/* AI-Box paper Table 1: 2x Conv(32,3), MaxPool(2), Conv(64,3), MaxPool(2),
 * Conv(128,3), MaxPool(2), Flatten, Dense(128), Dense(64), Dense(classes);
 * 'same' 3x3 convolutions with bias, ReLU after each conv and hidden dense.
 * Dropout(rate) follows each pooling (the paper's Keras model drops after the
 * conv blocks), the last one therefore just before the dense layers; rate 0
 * adds no dropout nodes. Dropout has no parameters, so the count is the
 * paper's either way: at 256x256x3 the flatten has 32*32*128 = 131,072
 * features, and Dense(128) alone holds 16.8 M of the 16,888,226. */
aibox_status aibox_preset_alexnet(aibox_model **out, int classes, int channels, int size, float dropout,
                                  aibox_error *err)
{
    aibox_status s = check_args(out, "alexnet", classes, channels, size, ALEXNET_MIN_SIZE, err);
    if (s != AIBOX_OK) return s;
    if (!(dropout >= 0.0f && dropout < 1.0f))
        return aibox_fail(err, AIBOX_E_INVALID, "alexnet: dropout rate %g not in [0, 1)", dropout);
    aibox_model *m = NULL;
    if ((s = aibox_model_create(&m, channels, size, size, err)) != AIBOX_OK) return s;

    static const int widths[4] = {32, 32, 64, 128};
    int x = 0;
    for (int i = 0; i < 4; i++) {
        x = aibox_relu(m, conv(m, x, widths[i], 3, 1, 1, 1, 1));
        if (i == 0) continue; /* the first two convolutions share a block */
        x = maxpool(m, x, 2, 2, 0, 0);
        if (dropout > 0.0f) x = aibox_dropout(m, x, dropout);
    }
    x = aibox_flatten(m, x);
    x = aibox_relu(m, aibox_dense(m, x, 128, 1));
    x = aibox_relu(m, aibox_dense(m, x, 64, 1));
    aibox_dense(m, x, classes, 1);
    return finish(out, m, "alexnet", err);
}

/* ------------------------------------------------------------ SqueezeNet 1.0 */
/* Fire module: squeeze 1x1 + ReLU, then expand 1x1 + ReLU and expand 3x3
 * (pad 1) + ReLU side by side, concatenated along channels (1x1 first, as
 * torchvision). */
static int fire(aibox_model *m, int in, int squeeze, int e1, int e3)
{
    int sq = aibox_relu(m, conv(m, in, squeeze, 1, 1, 0, 1, 1));
    int parts[2] = {aibox_relu(m, conv(m, sq, e1, 1, 1, 0, 1, 1)), aibox_relu(m, conv(m, sq, e3, 3, 1, 1, 1, 1))};
    return aibox_concat(m, 2, parts);
}

/* torchvision squeezenet1_0: the features as published, then the classifier
 * Dropout(0.5), Conv(classes, 1x1), ReLU, global average pool. The poolings
 * use ceil_mode (Caffe's rounding), which torchvision keeps. Being fully
 * convolutional, the count does not depend on the size: 735,424 in the
 * features plus 512*classes + classes (736,450 for 2 classes). */
aibox_status aibox_preset_squeezenet(aibox_model **out, int classes, int channels, int size, aibox_error *err)
{
    aibox_status s = check_args(out, "squeezenet", classes, channels, size, SQUEEZENET_MIN_SIZE, err);
    if (s != AIBOX_OK) return s;
    aibox_model *m = NULL;
    if ((s = aibox_model_create(&m, channels, size, size, err)) != AIBOX_OK) return s;

    int x = aibox_relu(m, conv(m, 0, 96, 7, 2, 0, 1, 1));
    x = maxpool(m, x, 3, 2, 0, 1);
    x = fire(m, x, 16, 64, 64);
    x = fire(m, x, 16, 64, 64);
    x = fire(m, x, 32, 128, 128);
    x = maxpool(m, x, 3, 2, 0, 1);
    x = fire(m, x, 32, 128, 128);
    x = fire(m, x, 48, 192, 192);
    x = fire(m, x, 48, 192, 192);
    x = fire(m, x, 64, 256, 256);
    x = maxpool(m, x, 3, 2, 0, 1);
    x = fire(m, x, 64, 256, 256);
    x = aibox_dropout(m, x, 0.5f);
    x = aibox_relu(m, conv(m, x, classes, 1, 1, 0, 1, 1));
    aibox_global_avgpool(m, x);
    return finish(out, m, "squeezenet", err);
}

/* ------------------------------------------------------------ ResNet-18 */
/* torchvision's BN: eps 1e-5, momentum 0.1 (libaibox uses PyTorch's
 * convention: the weight of the new batch in the running statistics). */
#define TV_BN_EPS 1e-5f
#define TV_BN_MOMENTUM 0.1f

/* BasicBlock: 3x3 conv (stride) + BN + ReLU, 3x3 conv + BN, plus the input
 * (through a 1x1 strided conv + BN when the shape changes), then ReLU. */
static int basic_block(aibox_model *m, int in, int in_ch, int out_ch, int stride)
{
    int y = conv_bn(m, in, out_ch, 3, stride, 1, 1, TV_BN_EPS, TV_BN_MOMENTUM, 1);
    y = conv_bn(m, y, out_ch, 3, 1, 1, 1, TV_BN_EPS, TV_BN_MOMENTUM, 0);
    int shortcut = in;
    if (stride != 1 || in_ch != out_ch) shortcut = conv_bn(m, in, out_ch, 1, stride, 0, 1, TV_BN_EPS, TV_BN_MOMENTUM, 0);
    return aibox_relu(m, aibox_add(m, shortcut, y));
}

/* torchvision resnet18: conv1 7x7/2 pad 3 (no bias) + BN + ReLU, maxpool
 * 3x3/2 pad 1, layer1..layer4 of two BasicBlocks each (64, 128, 256, 512
 * channels; the first block of layer2..4 has stride 2), global average pool,
 * fc with bias. The outputs of layer1..layer4 (strides 4, 8, 16, 32) are
 * recorded as taps (record_taps). */
aibox_status aibox_preset_resnet18(aibox_model **out, int classes, int channels, int size, aibox_error *err)
{
    aibox_status s = check_args(out, "resnet18", classes, channels, size, RESNET_MIN_SIZE, err);
    if (s != AIBOX_OK) return s;
    aibox_model *m = NULL;
    if ((s = aibox_model_create(&m, channels, size, size, err)) != AIBOX_OK) return s;

    int x = conv_bn(m, 0, 64, 7, 2, 3, 1, TV_BN_EPS, TV_BN_MOMENTUM, 1);
    x = maxpool(m, x, 3, 2, 1, 0);
    int taps[4], ch = 64;
    for (int stage = 0; stage < 4; stage++) {
        int width = 64 << stage;
        x = basic_block(m, x, ch, width, stage == 0 ? 1 : 2);
        x = basic_block(m, x, width, width, 1);
        ch = width;
        taps[stage] = x;
    }
    x = aibox_global_avgpool(m, x);
    aibox_dense(m, x, classes, 1);
    return finish_with_taps(out, m, "resnet18", taps, 4, err);
}

/* ------------------------------------------------------------ ResNet-50, Wide ResNet-50-2 */
/* torchvision's Bottleneck (v1.5: the stride sits on the 3x3 conv): 1x1 conv
 * to `width` + BN + ReLU, 3x3 conv (stride) + BN + ReLU, 1x1 conv to 4 x
 * planes + BN, plus the input (through a 1x1 strided conv + BN when the shape
 * changes, which includes layer1's first block: 64 -> 256), then ReLU. The
 * node order (conv1, bn1, conv2, bn2, conv3, bn3, then the shortcut) is
 * torchvision's registration order, which the safetensors importer relies on. */
static int bottleneck(aibox_model *m, int in, int in_ch, int width, int out_ch, int stride)
{
    int y = conv_bn(m, in, width, 1, 1, 0, 1, TV_BN_EPS, TV_BN_MOMENTUM, 1);
    y = conv_bn(m, y, width, 3, stride, 1, 1, TV_BN_EPS, TV_BN_MOMENTUM, 1);
    y = conv_bn(m, y, out_ch, 1, 1, 0, 1, TV_BN_EPS, TV_BN_MOMENTUM, 0);
    int shortcut = in;
    if (stride != 1 || in_ch != out_ch) shortcut = conv_bn(m, in, out_ch, 1, stride, 0, 1, TV_BN_EPS, TV_BN_MOMENTUM, 0);
    return aibox_relu(m, aibox_add(m, shortcut, y));
}

/* torchvision resnet50 (width_factor 1) and wide_resnet50_2 (width_factor 2:
 * width_per_group 128, so each block's inner width is 2 x planes while the
 * block outputs stay 4 x planes): the ResNet-18 stem, layer1..layer4 of 3, 4,
 * 6, 3 Bottlenecks (planes 64, 128, 256, 512; the first block of layer2..4
 * has stride 2), global average pool, fc 2048 -> classes with bias. Taps as
 * ResNet-18 (layer1..layer4 outputs: 256, 512, 1024, 2048 channels). */
static aibox_status bottleneck_resnet(aibox_model **out, const char *name, int width_factor, int classes,
                                      int channels, int size, aibox_error *err)
{
    aibox_status s = check_args(out, name, classes, channels, size, RESNET_MIN_SIZE, err);
    if (s != AIBOX_OK) return s;
    aibox_model *m = NULL;
    if ((s = aibox_model_create(&m, channels, size, size, err)) != AIBOX_OK) return s;

    static const int blocks[4] = {3, 4, 6, 3};
    int x = conv_bn(m, 0, 64, 7, 2, 3, 1, TV_BN_EPS, TV_BN_MOMENTUM, 1);
    x = maxpool(m, x, 3, 2, 1, 0);
    int taps[4], ch = 64;
    for (int stage = 0; stage < 4; stage++) {
        int planes = 64 << stage, width = planes * width_factor, out_ch = planes * 4;
        for (int b = 0; b < blocks[stage]; b++) {
            x = bottleneck(m, x, ch, width, out_ch, b == 0 && stage > 0 ? 2 : 1);
            ch = out_ch;
        }
        taps[stage] = x;
    }
    x = aibox_global_avgpool(m, x);
    aibox_dense(m, x, classes, 1);
    return finish_with_taps(out, m, name, taps, 4, err);
}

aibox_status aibox_preset_resnet50(aibox_model **out, int classes, int channels, int size, aibox_error *err)
{
    return bottleneck_resnet(out, "resnet50", 1, classes, channels, size, err);
}

aibox_status aibox_preset_wide_resnet50_2(aibox_model **out, int classes, int channels, int size, aibox_error *err)
{
    return bottleneck_resnet(out, "wide_resnet50_2", 2, classes, channels, size, err);
}

/* ------------------------------------------------------------ ResNeXt (AI-Box) */
/* AI-Box paper Table 1: ZeroPad(3), Conv(64,7,2), BatchNorm, ReLU, ZeroPad(1),
 * MaxPool(3, stride 2), 3x R.Block(64,1,32), 3x R.Block(128,2,32),
 * 3x R.Block(256,2,32), 2x R.Block(512,2,32), GlobalAvgPool, Dense(classes).
 * R.Block(filters, stride, groups) is keras_applications' resnet_common.py
 * block3 as stacked by stack3 (conv shortcut on the first block of a stack):
 *   shortcut: 1x1 conv to 2*filters (= (64 // groups) * filters), stride, + BN
 *   1x1 conv to filters + BN + ReLU
 *   ZeroPad(1), DepthwiseConv2D(3x3, stride, depth_multiplier c = filters /
 *     groups), Reshape (groups, c, c), sum over the input-channel axis,
 *     Reshape back to filters channels, + BN + ReLU
 *   1x1 conv to 2*filters + BN; add the shortcut; ReLU.
 * Every conv has no bias; BN has epsilon 1.001e-5 and Keras' momentum 0.99,
 * which is 0.01 in libaibox's (PyTorch's) convention.
 *
 * The depthwise/reshape/sum trick computes exactly a grouped convolution:
 * depthwise output channel i*c + j is input channel i (= g*c + a) under
 * kernel j; summing the reshaped (g, a, j) over a gives output g*c + j from
 * the c inputs of group g, each with its own 3x3 kernel. So it is built here
 * as one conv with groups = 32 (weight[g*c + j][a] = Keras kernel[.., g*c + a,
 * j]), with the same 9*c*filters weights. ZeroPad(3)/ZeroPad(1) before the
 * valid stem conv, pooling and grouped convs are folded into their padding:
 * identical for convolutions, and for the max pool as well because it follows
 * a ReLU (inputs >= 0, so a zero pad never wins over the real values).
 *
 * Count for 2 classes (any size; global pooling): 3,731,906 trainable
 * parameters (aibox_model_param_count). Keras' model.count_params() also
 * counts each BN's moving mean and variance: 11,456 BN channels * 2 =
 * 22,912 more, 3,754,818 (PyTorch's equivalent module gives the same two
 * numbers). The paper's 22,576,706 is not reproducible from Table 1 with this
 * block, with or without the moving statistics, conv biases, a Flatten head
 * or per-block conv shortcuts; it is of the size of Keras' ResNeXt50
 * (stack3 widths 128/256/512/1024, 3/4/6/3 blocks), which for 2 classes has
 * 23,052,226 (22,984,002 trainable) - still 475,520 away. Table 1 is what is
 * built. */
#define KERAS_BN_EPS 1.001e-5f
#define KERAS_BN_MOMENTUM 0.01f
#define RESNEXT_GROUPS 32

static int resnext_block(aibox_model *m, int in, int filters, int stride, int groups, int conv_shortcut)
{
    const int out_ch = (64 / groups) * filters;
    int shortcut = in;
    if (conv_shortcut) shortcut = conv_bn(m, in, out_ch, 1, stride, 0, 1, KERAS_BN_EPS, KERAS_BN_MOMENTUM, 0);
    int y = conv_bn(m, in, filters, 1, 1, 0, 1, KERAS_BN_EPS, KERAS_BN_MOMENTUM, 1);
    y = conv_bn(m, y, filters, 3, stride, 1, groups, KERAS_BN_EPS, KERAS_BN_MOMENTUM, 1);
    y = conv_bn(m, y, out_ch, 1, 1, 0, 1, KERAS_BN_EPS, KERAS_BN_MOMENTUM, 0);
    return aibox_relu(m, aibox_add(m, shortcut, y));
}

aibox_status aibox_preset_resnext(aibox_model **out, int classes, int channels, int size, aibox_error *err)
{
    aibox_status s = check_args(out, "resnext", classes, channels, size, RESNET_MIN_SIZE, err);
    if (s != AIBOX_OK) return s;
    aibox_model *m = NULL;
    if ((s = aibox_model_create(&m, channels, size, size, err)) != AIBOX_OK) return s;

    static const int filters[4] = {64, 128, 256, 512}, blocks[4] = {3, 3, 3, 2}, strides[4] = {1, 2, 2, 2};
    int x = conv_bn(m, 0, 64, 7, 2, 3, 1, KERAS_BN_EPS, KERAS_BN_MOMENTUM, 1);
    x = maxpool(m, x, 3, 2, 1, 0);
    int taps[4];
    for (int stage = 0; stage < 4; stage++) {
        for (int b = 0; b < blocks[stage]; b++)
            x = resnext_block(m, x, filters[stage], b == 0 ? strides[stage] : 1, RESNEXT_GROUPS, b == 0);
        taps[stage] = x;
    }
    x = aibox_global_avgpool(m, x);
    aibox_dense(m, x, classes, 1);
    return finish_with_taps(out, m, "resnext", taps, 4, err);
}

/* ------------------------------------------------------------ small */
/* A Keras-tutorial-sized CNN: three blocks of 'same' 3x3 Conv + ReLU + 2x2
 * MaxPool (32, 64, 128 channels), Flatten, Dense(128) + ReLU, Dropout(0.5),
 * Dense(classes). Meant for 64x64 inputs (8x8x128 = 8,192 features; 1.14 M
 * parameters for 2 classes) and for 28x28 Fashion-MNIST, where the floor
 * poolings go 28 -> 14 -> 7 -> 3 and the last row/column of the 7x7 map is
 * dropped (3x3x128 = 1,152 features; 241,546 parameters for 10 classes at one
 * channel). The smallest size is 8 (8 -> 4 -> 2 -> 1). */
aibox_status aibox_preset_small(aibox_model **out, int classes, int channels, int size, aibox_error *err)
{
    aibox_status s = check_args(out, "small", classes, channels, size, SMALL_MIN_SIZE, err);
    if (s != AIBOX_OK) return s;
    aibox_model *m = NULL;
    if ((s = aibox_model_create(&m, channels, size, size, err)) != AIBOX_OK) return s;

    int x = 0;
    for (int i = 0; i < 3; i++) x = maxpool(m, aibox_relu(m, conv(m, x, 32 << i, 3, 1, 1, 1, 1)), 2, 2, 0, 0);
    x = aibox_flatten(m, x);
    x = aibox_relu(m, aibox_dense(m, x, 128, 1));
    x = aibox_dropout(m, x, 0.5f);
    aibox_dense(m, x, classes, 1);
    return finish(out, m, "small", err);
}

/* ------------------------------------------------------------ by name */
aibox_status aibox_preset(aibox_model **out, const char *name, int classes, int channels, int size,
                          aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "preset: NULL model pointer");
    *out = NULL;
    if (!name) return aibox_fail(err, AIBOX_E_INVALID, "preset: NULL name");
    if (!strcmp(name, "alexnet"))
        return aibox_preset_alexnet(out, classes, channels, size, ALEXNET_DEFAULT_DROPOUT, err);
    if (!strcmp(name, "squeezenet")) return aibox_preset_squeezenet(out, classes, channels, size, err);
    if (!strcmp(name, "resnext")) return aibox_preset_resnext(out, classes, channels, size, err);
    if (!strcmp(name, "resnet18")) return aibox_preset_resnet18(out, classes, channels, size, err);
    if (!strcmp(name, "resnet50")) return aibox_preset_resnet50(out, classes, channels, size, err);
    if (!strcmp(name, "wide_resnet50_2")) return aibox_preset_wide_resnet50_2(out, classes, channels, size, err);
    if (!strcmp(name, "small")) return aibox_preset_small(out, classes, channels, size, err);
    return aibox_fail(err, AIBOX_E_INVALID,
                      "preset: unknown name '%.64s' (known: alexnet, squeezenet, resnext, resnet18, resnet50, "
                      "wide_resnet50_2, small)", name);
}
