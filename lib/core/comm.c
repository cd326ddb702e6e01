/* The caller's collectives (aibox_comm, include/aibox/dist.h) as the library
 * uses them: a NULL communicator or one of size 1 is a single process, whose
 * sums and broadcasts do nothing. */
#include "core/comm.h"

static aibox_status single_sum_f32(void *user, float *v, size_t n, aibox_error *err) { return AIBOX_OK; }
static aibox_status single_sum_f64(void *user, double *v, size_t n, aibox_error *err) { return AIBOX_OK; }
static aibox_status single_bcast(void *user, void *buf, size_t bytes, int root, aibox_error *err) { return AIBOX_OK; }

aibox_comm aibox_comm_single(void)
{
    return (aibox_comm){0, 1, NULL, single_sum_f32, single_sum_f64, single_bcast};
}

int aibox_comm_ranks(const aibox_comm *c) { return c && c->size > 1 ? c->size : 1; }
int aibox_comm_rank(const aibox_comm *c) { return c && c->size > 1 ? c->rank : 0; }

aibox_status aibox_comm_check(const aibox_comm *c, aibox_error *err)
{
    if (!c || c->size <= 1) return AIBOX_OK;
    if (c->rank < 0 || c->rank >= c->size)
        return aibox_fail(err, AIBOX_E_INVALID, "communicator: rank %d of %d", c->rank, c->size);
    if (!c->sum_f32 || !c->sum_f64 || !c->bcast)
        return aibox_fail(err, AIBOX_E_INVALID, "communicator: a collective is missing");
    return AIBOX_OK;
}

aibox_status aibox_comm_sum_f32(const aibox_comm *c, float *v, size_t n, aibox_error *err)
{
    return aibox_comm_ranks(c) > 1 && n ? c->sum_f32(c->user, v, n, err) : AIBOX_OK;
}

aibox_status aibox_comm_sum_f64(const aibox_comm *c, double *v, size_t n, aibox_error *err)
{
    return aibox_comm_ranks(c) > 1 && n ? c->sum_f64(c->user, v, n, err) : AIBOX_OK;
}

aibox_status aibox_comm_bcast(const aibox_comm *c, void *buf, size_t bytes, int root, aibox_error *err)
{
    return aibox_comm_ranks(c) > 1 && bytes ? c->bcast(c->user, buf, bytes, root, err) : AIBOX_OK;
}
