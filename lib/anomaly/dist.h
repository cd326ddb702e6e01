/* The anomaly fits across ranks (lib/anomaly/dist.c): agreement on a status
 * and on settings, contiguous shares, gathering them. Every function is a
 * collective: every rank calls it, in the same order; with a NULL or size-1
 * communicator each is local and cheap. */
#ifndef AIBOX_ANOMALY_DIST_H
#define AIBOX_ANOMALY_DIST_H
#include "core/comm.h"

/* One collective that makes a local failure everyone's (so no rank waits in
 * a later collective for one that gave up) and checks that every rank holds
 * the same k (<= 8) values (what names them in the message). Returns s where
 * this rank failed; else, where another failed, that rank's code (or
 * AIBOX_E_STATE for several) with a message; else AIBOX_E_INVALID where the
 * values differ. The verdict is the same on every rank. */
AIBOX_INTERNAL aibox_status aibox_dist_agree(const aibox_comm *c, aibox_status s, const char *what, const uint32_t *v,
                                             int k, aibox_error *err);
/* The share of rank r of n items, [*a, *b): contiguous, in rank order, its
 * boundaries on multiples of unit. */
AIBOX_INTERNAL void aibox_dist_share(const aibox_comm *c, int r, int n, int unit, int *a, int *b);
/* buf holds n items of elem bytes, of which this rank filled its share (of
 * the same unit): after it, every rank holds all of them (each share
 * broadcast by its owner). */
AIBOX_INTERNAL aibox_status aibox_dist_gather(const aibox_comm *c, void *buf, size_t elem, int n, int unit,
                                              aibox_error *err);
/* 32 bits of FNV-1a over bytes, continuing from h (start with 2166136261). */
AIBOX_INTERNAL uint32_t aibox_dist_hash(uint32_t h, const void *bytes, size_t n);
#endif
