/* Internal to lib/train: what the training loop and transfer learning share. */
#ifndef AIBOX_TRAIN_INTERNAL_H
#define AIBOX_TRAIN_INTERNAL_H

#include "core/core.h"

/* Monotonic seconds (epoch and feature timings). */
AIBOX_INTERNAL double aibox_train_now(void);

#endif
