/* aibox-train padim|patchcore|autoencoder (tools/train_anomaly.c): fit an anomaly model
 * on a folder of good parts; aibox-train dispatches those subcommands here. */
#ifndef AIBOX_TRAIN_ANOMALY_H
#define AIBOX_TRAIN_ANOMALY_H

#include "aibox.h"

/* method: "padim", "patchcore" or "autoencoder"; argv[0] is the subcommand.
 * comm: the ranks of an MPI run (aibox-train built with MPI), or NULL. */
int anomaly_main(const char *method, int argc, char **argv, const aibox_comm *comm);

#endif
