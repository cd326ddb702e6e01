/* aibox-train sound|sound-outlier (tools/train_sound.c): classify windows of
 * recordings, or fit the good-only Gaussian detector on normal recordings;
 * aibox-train dispatches those subcommands here. */
#ifndef AIBOX_TRAIN_SOUND_H
#define AIBOX_TRAIN_SOUND_H

#include "aibox.h"

/* cmd: "sound" or "sound-outlier"; argv[0] is the subcommand. Returns the
 * exit status (0, 2 bad usage or data, 3 training or fit failed, 130
 * interrupted by SIGINT/SIGTERM). */
int sound_main(const char *cmd, int argc, char **argv);

#endif
