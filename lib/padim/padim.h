/* PaDiM internals the tests read (lib/padim/padim.c). */
#ifndef AIBOX_PADIM_PADIM_H
#define AIBOX_PADIM_PADIM_H
#include "core/core.h"

/* The fit's statistics so far, in double: per patch the mean (P x d) and the
 * covariance without regularisation (P x d x d, full; divided by n - 1),
 * each optional (NULL). */
AIBOX_INTERNAL aibox_status aibox_padim_fit_moments(const aibox_padim_fit *f, double *mean, double *cov,
                                                    aibox_error *err);
/* A fitted model's float32 tensors: mean P x d, linv P x d(d+1)/2 (borrowed). */
AIBOX_INTERNAL void aibox_padim_tensors(const aibox_padim *p, const float **mean, const float **linv);
#endif
