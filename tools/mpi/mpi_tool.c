/* tools/mpi/mpi_tool.h: MPI start, communicator and job-wide failure. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "aibox/mpi.h"
#include "mpi/mpi_tool.h"

int mpi_tool_init(int *argc, char ***argv, const char *prog, mpi_tool *t)
{
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "%s: MPI_Init failed\n", prog);
        return 1;
    }
    aibox_error err = {0};
    if (aibox_mpi_comm(&t->comm, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        MPI_Finalize();
        return 1;
    }
    t->rank = t->comm.rank, t->size = t->comm.size;
    return 0;
}

int mpi_tool_fail(const mpi_tool *t, int code)
{
    if (t->size > 1) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    }
    return code;
}

int mpi_tool_end(const mpi_tool *t, int code)
{
    MPI_Finalize();
    return code;
}

void mpi_tool_print_in_order(const mpi_tool *t, const char *text, size_t len, FILE *out)
{
    int n = (int)len, *lens = NULL, *offs = NULL;
    char *all = NULL;
    if (t->rank == 0 && !(lens = calloc((size_t)t->size, 2 * sizeof *lens))) {
        fprintf(stderr, "out of memory gathering the ranks' lines\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    MPI_Gather(&n, 1, MPI_INT, lens, 1, MPI_INT, 0, MPI_COMM_WORLD);
    long total = 0;
    if (t->rank == 0) {
        offs = lens + t->size;
        for (int r = 0; r < t->size; r++) offs[r] = (int)total, total += lens[r];
        if (!(all = malloc((size_t)total + 1))) {
            fprintf(stderr, "out of memory gathering the ranks' lines\n");
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
    }
    MPI_Gatherv(text, n, MPI_CHAR, all, lens, offs, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (t->rank == 0) fwrite(all, 1, (size_t)total, out);
    free(all);
    free(lens);
}

int mpi_tool_max(const mpi_tool *t, int v)
{
    int m = v;
    MPI_Allreduce(&v, &m, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return m;
}
