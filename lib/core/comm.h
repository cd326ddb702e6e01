/* Collectives through a possibly NULL communicator (lib/core/comm.c). */
#ifndef AIBOX_CORE_COMM_H
#define AIBOX_CORE_COMM_H
#include "core/core.h"

/* 1 for NULL or a single process; else the communicator's size / rank. */
AIBOX_INTERNAL int aibox_comm_ranks(const aibox_comm *c);
AIBOX_INTERNAL int aibox_comm_rank(const aibox_comm *c);
/* A usable communicator (or NULL)? */
AIBOX_INTERNAL aibox_status aibox_comm_check(const aibox_comm *c, aibox_error *err);
/* No-ops for a single process. */
AIBOX_INTERNAL aibox_status aibox_comm_sum_f32(const aibox_comm *c, float *v, size_t n, aibox_error *err);
AIBOX_INTERNAL aibox_status aibox_comm_sum_f64(const aibox_comm *c, double *v, size_t n, aibox_error *err);
AIBOX_INTERNAL aibox_status aibox_comm_bcast(const aibox_comm *c, void *buf, size_t bytes, int root, aibox_error *err);
#endif
