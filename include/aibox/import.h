/*
 * libaibox — importing pretrained models (TensorFlow Lite, safetensors).
 * Included at the end of aibox.h; the conventions of aibox.h hold.
 */
#ifndef AIBOX_IMPORT_H
#define AIBOX_IMPORT_H

#include "../aibox.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ safetensors */
/* Builds the arch preset at 224x224x3 ("resnet18", "resnet50" or
 * "wide_resnet50_2": aibox_preset_resnet18/_resnet50/_wide_resnet50_2) and
 * fills it from a torchvision state dict saved as safetensors (F32, F16,
 * BF16 or F64 tensors; int64 num_batches_tracked entries are ignored).
 * classes_or_0 == 0 takes the class count from fc.weight. Every tensor's
 * shape is checked; a missing or unexpected tensor, or any malformed file
 * structure, is refused with AIBOX_E_FORMAT and a line naming the file and
 * the tensor. arch NULL recognises the architecture from the tensors:
 * without layer1.0.conv3.weight it is resnet18; with it, layer1.0.conv1.weight's
 * output channels tell resnet50 (64) from wide_resnet50_2 (128). The networks
 * are fully convolutional up to the global pool, so a context may run them at
 * other input sizes. The model gets aibox.arch and ImageNet preprocessing (AREA
 * resize, mean 0.485/0.456/0.406, std 0.229/0.224/0.225). BN epsilon is
 * torchvision's 1e-5. *m is NULL on failure. */
AIBOX_API aibox_status aibox_import_safetensors(aibox_model **m, const char *path, const char *arch,
                                                int classes_or_0, aibox_error *err);

/* ------------------------------------------------------------------ TensorFlow Lite */
typedef struct aibox_import_opts {
    int faithful;            /* 1: re-quantise every quantised output, softmax included, onto its 8-bit grid
                              * (AIBOX_LAYER_QUANTIZE); float accumulation, so a value that falls
                              * within float error of a rounding half can differ from TFLite's
                              * exact int32 accumulation by one step (then the difference spreads) */
    const char *labels_path; /* one class name per line (stored as aibox.class_names), or NULL */
    const char *arch;        /* safetensors: the architecture, or NULL to recognise it from the tensors */
    int float_only;          /* 1: an 8-bit TFLite model is kept in float only (its dequantised weights),
                              * without the integer tables it otherwise keeps (aibox_model_quantized) */
} aibox_import_opts;
/* Imports a TensorFlow Lite model (FlatBuffers "TFL3"): float32 and uint8/int8
 * (per-tensor or per-channel) tensors dequantised to float32; CONV_2D,
 * DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, MAX_POOL_2D, FULLY_CONNECTED, RESHAPE, SQUEEZE,
 * SOFTMAX, ADD, PAD, MEAN, CONCATENATION with fused RELU/RELU6. Each quantised
 * output is clamped to its tensor's representable range. The input's
 * quantisation (float: [-1, 1]) becomes the stored preprocessing, with
 * bilinear (TFLite) resizing. Malformed files: AIBOX_E_FORMAT; unsupported
 * operators: AIBOX_E_UNSUPPORTED naming them. opts may be NULL. */
AIBOX_API aibox_status aibox_import_tflite(aibox_model **m, const char *path, const aibox_import_opts *opts,
                                           aibox_error *err);

/* ------------------------------------------------------------------ any file */
/* Which reader a model file needs, recognised from its first bytes (16 are
 * plenty), never from its name: the .aibox magic, TensorFlow Lite's "TFL3"
 * at offset 4, or safetensors' u64 header length (2 bytes to 1 TiB)
 * followed by '{'. aibox_import decides with it. */
typedef enum aibox_model_format {
    AIBOX_FORMAT_UNKNOWN = 0,
    AIBOX_FORMAT_AIBOX,
    AIBOX_FORMAT_TFLITE,
    AIBOX_FORMAT_SAFETENSORS
} aibox_model_format;
AIBOX_API aibox_model_format aibox_model_format_sniff(const void *head, size_t n);
AIBOX_API aibox_model_format aibox_model_format_of(const char *path); /* UNKNOWN when unreadable */
AIBOX_API const char *aibox_model_format_name(aibox_model_format f);  /* "aibox", "tflite", ... "unknown" */

/* Opens any model file libaibox reads, recognised by its content: a .aibox
 * model (aibox_model_load), TensorFlow Lite (aibox_import_tflite with opts)
 * or safetensors (aibox_import_safetensors with opts->arch, or the
 * architecture its tensors show). opts->labels_path, when set, names the
 * classes of every format. opts may be NULL. */
AIBOX_API aibox_status aibox_import(aibox_model **m, const char *path, const aibox_import_opts *opts,
                                    aibox_error *err);

#ifdef __cplusplus
}
#endif
#endif
