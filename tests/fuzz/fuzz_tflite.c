/* libFuzzer target for the TensorFlow Lite importer: the bytes go straight
 * to the from-memory entry (no temporary file), plain and faithful mode.
 * Whatever the input, the importer must return a status and free what it
 * allocated; a model it accepts is freed here. `make fuzz` runs it. */
#include <stddef.h>
#include <stdint.h>

#include "aibox.h"
#include "io/tflite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int faithful = 0; faithful < 2; faithful++) {
        aibox_import_opts o = {faithful, NULL, NULL, 0};
        aibox_model *m = NULL;
        aibox_error err = {0};
        if (aibox_tflite_import_buffer(&m, data, size, "fuzz.tflite", &o, &err) == AIBOX_OK) aibox_model_free(&m);
    }
    return 0;
}
