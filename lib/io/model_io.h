/* Model files with extra tensors (resumable training checkpoints keep the
 * optimizer's moments next to the model). Internal. */
#ifndef AIBOX_MODEL_IO_H
#define AIBOX_MODEL_IO_H

#include "io/aibox_file.h"

/* aibox_model_save plus extra named tensors (names must not look like
 * "n<node>.p<k>" / "n<node>.s<k>", which the model uses), each stored as
 * its dtype says; a float16 one holding a value beyond +-65504 is refused,
 * as a non-finite value in any tensor is. */
AIBOX_INTERNAL aibox_status aibox_model_save_ex(const aibox_model *m, const char *path, int n_extra,
                                                const aibox_file_tensor *extra, aibox_error *err);
/* aibox_model_load that also hands back the parsed file (for its extra
 * tensors) when file is not NULL; the caller frees it with aibox_file_free. */
AIBOX_INTERNAL aibox_status aibox_model_load_ex(aibox_model **m, const char *path, aibox_file **file,
                                                aibox_error *err);
/* Refuses a model holding a non-finite parameter or statistic (naming the
 * node), as the .aibox loader does for its files: for the importers. */
AIBOX_INTERNAL aibox_status aibox_model_check_finite(const aibox_model *m, const char *path, aibox_error *err);
/* Reads one class name per line (trailing spaces and CRs dropped) into
 * aibox.class_names; the count must equal the output size. */
AIBOX_INTERNAL aibox_status aibox_import_set_labels(aibox_model *m, const char *path, aibox_error *err);

#endif
