/* libFuzzer target for the safetensors reader and the torchvision ResNet
 * importer: the bytes go to the from-memory entry with the architecture
 * recognised from the tensors (arch NULL) and forced to "resnet18". The
 * importer checks every tensor before building a model, so inputs within the
 * fuzzer's length limit never allocate a whole network. `make fuzz` runs it. */
#include <stddef.h>
#include <stdint.h>

#include "aibox.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const archs[2] = {NULL, "resnet18"};
    for (int i = 0; i < 2; i++) {
        aibox_model *m = NULL;
        aibox_error err = {0};
        if (aibox_st_import_buffer(&m, data, size, "fuzz.safetensors", archs[i], 0, &err) == AIBOX_OK)
            aibox_model_free(&m);
    }
    return 0;
}
