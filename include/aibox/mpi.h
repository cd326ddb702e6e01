/* libaibox_mpi: an aibox_comm on MPI (make MPI=1 builds libaibox_mpi.a;
 * link it with libaibox and MPI: mpicc ... -laibox_mpi -laibox). Not part of
 * libaibox, which does not depend on MPI; not included by aibox.h. */
#ifndef AIBOX_MPI_H
#define AIBOX_MPI_H

#include "aibox.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A communicator on MPI_COMM_WORLD. MPI must be initialised (MPI_Init) and
 * not finalised while it is used. Sums use MPI_Allreduce (in chunks below
 * 2^31 elements), broadcasts MPI_Bcast. */
AIBOX_API aibox_status aibox_mpi_comm(aibox_comm *c, aibox_error *err);

#ifdef __cplusplus
}
#endif
#endif
