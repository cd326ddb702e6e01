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

#ifdef __cplusplus
}
#endif
#endif
