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
/* Builds the arch preset ("resnet18": aibox_preset_resnet18 at 224x224x3)
 * and fills it from a torchvision state dict saved as safetensors (F32, F16,
 * BF16 or F64 tensors; int64 num_batches_tracked entries are ignored).
 * classes_or_0 == 0 takes the class count from fc.weight. Every tensor's
 * shape is checked; a missing or unexpected tensor, or any malformed file
 * structure, is refused with AIBOX_E_FORMAT and a line naming the file and
 * the tensor. The model gets aibox.arch and ImageNet preprocessing (AREA
 * resize, mean 0.485/0.456/0.406, std 0.229/0.224/0.225). BN epsilon is
 * torchvision's 1e-5. *m is NULL on failure. */
AIBOX_API aibox_status aibox_import_safetensors(aibox_model **m, const char *path, const char *arch,
                                                int classes_or_0, aibox_error *err);

#ifdef __cplusplus
}
#endif
#endif
