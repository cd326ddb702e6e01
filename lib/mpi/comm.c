/* aibox_comm on MPI_COMM_WORLD (libaibox_mpi.a, built by make MPI=1 only:
 * libaibox itself never links MPI). */
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>

#include "aibox.h"
#include "aibox/mpi.h"

/* Sums go in pieces of 16 MiB: Open MPI takes a temporary buffer the size of
 * the message on every call, and above glibc's 32 MiB mmap threshold that is
 * fresh memory each time: one sum of AlexNet's 68 MB of gradients took
 * 580-1070 ms in page faults on this VM under load, in 16 MiB pieces
 * 51-120 ms; on a quieter run 12.4 ms against 15.3 in pieces (bench/README.md,
 * "Across processes"): the pieces bound the worst case at a small cost. Broadcasts need no buffer: 1 GiB pieces,
 * since MPI counts are int. */
#define SUM_BYTES ((size_t)16 << 20)
#define CHUNK ((size_t)1 << 30)

/* Only the public API: this archive may link against the shared libaibox. */
static aibox_status fail(aibox_error *err, aibox_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

static aibox_status mpi_failed(aibox_error *err, const char *what, int rc)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len] = 0;
    return fail(err, AIBOX_E_IO, "MPI: %s failed: %s", what, len ? msg : "unknown error");
}

static aibox_status sum(void *buf, size_t n, size_t elem, MPI_Datatype t, aibox_error *err)
{
    const size_t piece = SUM_BYTES / elem;
    for (size_t at = 0; at < n; at += piece) {
        size_t k = n - at < piece ? n - at : piece;
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + at * elem, (int)k, t, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_failed(err, "MPI_Allreduce", rc);
    }
    return AIBOX_OK;
}

static aibox_status sum_f32(void *user, float *v, size_t n, aibox_error *err)
{
    (void)user;
    return sum(v, n, sizeof *v, MPI_FLOAT, err);
}

static aibox_status sum_f64(void *user, double *v, size_t n, aibox_error *err)
{
    (void)user;
    return sum(v, n, sizeof *v, MPI_DOUBLE, err);
}

static aibox_status bcast(void *user, void *buf, size_t bytes, int root, aibox_error *err)
{
    (void)user;
    for (size_t at = 0; at < bytes; at += CHUNK) {
        size_t k = bytes - at < CHUNK ? bytes - at : CHUNK;
        int rc = MPI_Bcast((char *)buf + at, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_failed(err, "MPI_Bcast", rc);
    }
    return AIBOX_OK;
}

aibox_status aibox_mpi_comm(aibox_comm *c, aibox_error *err)
{
    int init = 0, fin = 0;
    if (!c) return fail(err, AIBOX_E_INVALID, "MPI: NULL argument");
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin) return fail(err, AIBOX_E_STATE, "MPI: not initialised (call MPI_Init first)");
    *c = (aibox_comm){.sum_f32 = sum_f32, .sum_f64 = sum_f64, .bcast = bcast};
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    return AIBOX_OK;
}
