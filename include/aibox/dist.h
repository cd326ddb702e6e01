/* Work across processes: data-parallel training and anomaly fits merged
 * across ranks.
 *
 * libaibox itself knows nothing of MPI: the caller supplies the collectives
 * as an aibox_comm. libaibox_mpi (make MPI=1; include/aibox/mpi.h) fills one
 * from MPI_COMM_WORLD; a test may build one on anything else. Every rank
 * calls the same libaibox functions in the same order with the same
 * options, only its share of the data differs. A failed collective is an
 * error like any other; a rank that stops calling (it died, it failed
 * alone) leaves the others waiting, so a program ends the job then
 * (MPI_Abort), as the MPI tools do.
 *
 * Thread-safety: a communicator is used by one thread at a time.
 * Ownership: the struct and what user points to are the caller's. */
#ifndef AIBOX_DIST_H
#define AIBOX_DIST_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aibox_loader aibox_loader; /* aibox/data.h */

typedef struct aibox_comm {
    int rank, size; /* this process (0-based) of size; size 1: alone */
    void *user;
    /* Element-wise sums over all ranks, in place: afterwards every rank
     * holds the same sums, bit for bit. */
    aibox_status (*sum_f32)(void *user, float *v, size_t n, aibox_error *err);
    aibox_status (*sum_f64)(void *user, double *v, size_t n, aibox_error *err);
    /* root's bytes to every rank. */
    aibox_status (*bcast)(void *user, void *buf, size_t bytes, int root, aibox_error *err);
} aibox_comm;

/* A communicator of one process (rank 0 of 1; sums and broadcasts do
 * nothing), for code that is written once for both cases. */
AIBOX_API aibox_comm aibox_comm_single(void);

/* Shards a loader for data-parallel training: with a local batch B, rank r
 * of N takes, from every global batch of N x B consecutive samples of the
 * epoch's (seeded, shared) order, the B at offset r x B. Over an epoch every
 * sample goes to exactly one rank, and global batch g is the batch g a
 * single process with batch N x B and the same seed would take. The last
 * global batch may leave a rank a short batch or none. Restarts the current
 * epoch. size 1 undoes the sharding. */
AIBOX_API aibox_status aibox_loader_shard(aibox_loader *ld, int rank, int size, aibox_error *err);

/* aibox_train across the ranks of comm (NULL or size 1: aibox_train).
 * Each rank passes its shard of the data (aibox_loader_shard, training and
 * validation) and the same options. Rank 0's weights go to every rank
 * first; every step sums the gradients (each weighted by its rank's share of
 * the global batch, so the step is the one a single process takes on the
 * global batch: the loss is the global batch's mean); validation loss,
 * accuracy and the confusion matrix are the global figures, so early
 * stopping and the best model agree on every rank; batch norm's running
 * statistics are averaged over the ranks after each epoch (each rank
 * normalises with its own batch, as PyTorch's DDP without SyncBatchNorm);
 * dropout draws differ per rank. Only rank 0 writes out_dir; every rank
 * reads o->resume (a checkpoint resumes with any number of ranks). The stop
 * flag of any rank stops all after the same step. */
AIBOX_API aibox_status aibox_train_dist(aibox_model *m, aibox_batch_source *train, int train_batch,
                                        aibox_batch_source *val, const aibox_train_opts *o, const aibox_comm *comm,
                                        int threads, aibox_train_result *res, aibox_error *err);

/* ------------------------------------------------------------------ anomaly fits across ranks */
/* Every rank streams its share of the good images into its own fit
 * (aibox_padim_fit_add, aibox_patchcore_fit_add), then all call the merge
 * below, then aibox_*_fit_end: every rank ends with the same model, the one
 * a single process fitting all images would make. NULL or a size-1 comm:
 * nothing happens. A fit is merged once, after its last add (an add after it
 * is AIBOX_E_STATE). Ranks whose fits differ (options, backbone) get
 * AIBOX_E_INVALID on every rank; a rank may hold no image. "One process's"
 * assumes the same features: a backbone's float32 features of an image can
 * change in the last bits with the batch it is computed in (the GEMM's
 * blocking), so shards of whole batches (or batch 1) match one process
 * exactly, others to about 1e-6. The fit object is the caller's as before;
 * one thread at a time. */

/* PaDiM: sums the image count, the feature sums and the sums of outer
 * products (float64) over the ranks, after moving each rank's sums to a
 * common shift (the first image of the lowest rank with images: with
 * contiguous shards in rank order, one process's). Means and covariances
 * then equal one process's to rounding (about 1e-12 relative), not bit for
 * bit. Sends P x (d + d(d+1)/2) doubles, 16 MB at a time. */
AIBOX_API aibox_status aibox_padim_fit_reduce(aibox_padim_fit *f, const aibox_comm *comm, aibox_error *err);

/* PatchCore: every rank receives the feature banks of all ranks,
 * concatenated in rank order, so with contiguous image shards in rank order
 * the bank is one process's, bit for bit, and the seeded coreset (chosen on
 * every rank by aibox_patchcore_fit_end) the same. The bank travels as
 * float32 (a float16 bank is rounded after the selection, as in one
 * process); each rank then holds the whole bank, as one process would. */
AIBOX_API aibox_status aibox_patchcore_fit_gather(aibox_patchcore_fit *f, const aibox_comm *comm, aibox_error *err);

/* aibox_detector_fit_folder across the ranks of comm (NULL or size 1:
 * aibox_detector_fit_folder itself). Every rank passes the same folders and
 * options (it lists them itself: the lists must agree) and gets the same
 * detector: rank r of N fits the r-th contiguous block of the (sorted) fit
 * list, the statistics are merged as above, held-out and defect images are
 * scored in shares and the scores (and maps) gathered, so the thresholds, the
 * stored fit files and the report are every rank's; skipped images are
 * counted over all ranks, times are the slowest rank's. on_skip and
 * on_progress report this rank's images (progress over its share). PaDiM and
 * PatchCore only: the auto-encoder is AIBOX_E_UNSUPPORTED across ranks. */
AIBOX_API aibox_status aibox_detector_fit_folder_dist(aibox_detector **d, const aibox_model *backbone,
                                                      const char *good_dir, const aibox_fit_opts *o,
                                                      const aibox_comm *comm, aibox_fit_report *rep,
                                                      aibox_error *err);

#ifdef __cplusplus
}
#endif
#endif
