/* What the tools built with MPI (make MPI=1, -DAIBOX_MPI) share: starting
 * MPI, the communicator, and ending the whole job when one rank fails (the
 * others would wait for it forever in their next collective). */
#ifndef AIBOX_MPI_TOOL_H
#define AIBOX_MPI_TOOL_H

#include <stdio.h>

#include "aibox.h"

typedef struct mpi_tool {
    int rank, size;
    aibox_comm comm; /* on MPI_COMM_WORLD */
} mpi_tool;

/* MPI_Init (with threads: the library's pools never call MPI, only the
 * calling thread does) and the communicator; 0 on success, else prints why
 * and returns the exit status. */
int mpi_tool_init(int *argc, char ***argv, const char *prog, mpi_tool *t);
/* Ends every rank of the job with status code (MPI_Abort) when there is more
 * than one; returns code for a single process. */
int mpi_tool_fail(const mpi_tool *t, int code);
/* Rank 0 writes every rank's text (len bytes each; rank 0's first) to out,
 * in rank order; the other ranks only send. */
void mpi_tool_print_in_order(const mpi_tool *t, const char *text, size_t len, FILE *out);
/* The largest v over all ranks, on every rank. */
int mpi_tool_max(const mpi_tool *t, int v);
/* MPI_Finalize; returns code. */
int mpi_tool_end(const mpi_tool *t, int code);
#endif
