/* aibox-train padim|patchcore|autoencoder (tools/train_anomaly.c): fit an anomaly model
 * on a folder of good parts; aibox-train dispatches those subcommands here. */
#ifndef AIBOX_TRAIN_ANOMALY_H
#define AIBOX_TRAIN_ANOMALY_H

/* method: "padim", "patchcore" or "autoencoder"; argv[0] is the subcommand. */
int anomaly_main(const char *method, int argc, char **argv);

#endif
