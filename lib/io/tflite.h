/* TensorFlow Lite importer (internal; the public face is aibox_import_tflite).
 * The from-memory entry exists so fuzzers and tests can feed bytes without a
 * temporary file. */
#ifndef AIBOX_IO_TFLITE_H
#define AIBOX_IO_TFLITE_H

#include <stddef.h>

#include "core/core.h"

/* aibox_import_tflite on a file image already in memory (len bytes, borrowed
 * for the call only); name is used in messages and aibox.arch. */
AIBOX_INTERNAL aibox_status aibox_tflite_import_buffer(aibox_model **out, const void *buf, size_t len,
                                                       const char *name, const aibox_import_opts *opts,
                                                       aibox_error *err);

#endif
