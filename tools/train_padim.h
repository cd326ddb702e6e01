/* aibox-train padim (tools/train_padim.c): fit a PaDiM anomaly model on a
 * folder of good parts; aibox-train dispatches its "padim" subcommand here. */
#ifndef AIBOX_TRAIN_PADIM_H
#define AIBOX_TRAIN_PADIM_H

int padim_main(int argc, char **argv);

#endif
