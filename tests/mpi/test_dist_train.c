/* Data-parallel training across MPI ranks (aibox_train_dist, the loader's
 * shard, libaibox_mpi): mpirun runs this binary again as workers
 * (--worker ...), and the suite compares their model with one process
 * trained on the same global batches in the same order. Real data: NEU
 * steel surfaces ($AIBOX_DATA/neu-cls), one epoch without augmentation.
 *
 * Tolerance: the ranks sum partial gradients where one process sums the
 * whole batch at once, so the float sums round differently (1e-7 relative
 * per step); 45 steps of a ReLU network amplify that (flipped ReLU and
 * max-pool decisions). At a small learning rate (SGD 1e-4) the trajectory
 * stays smooth and the weights agree within 1e-4 relative (||a - b|| /
 * ||a||: 3e-7 at 2 ranks, 2.4e-6 at 4 when written); at SGD 1e-3 they
 * drift to 6e-4, the size of the drift between one process on 1 and on 2
 * threads. A wrong shard, share or order is off by far more: the same
 * epoch at learning rate 1e-7 agrees within 4e-10. */
#include <math.h>
#include <mpi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "aibox.h"
#include "aibox/mpi.h"
#include "common/check.h"

#define SEED 7
#define GLOBAL_BATCH 32

static char dir[256];
static char neu[1024];

/* The small preset's layers without its dropout (dropout draws differ per
 * rank by design): 3 x (conv 3x3, ReLU, max-pool 2), dense 128, ReLU, dense. */
static aibox_model *small_net(int classes, aibox_error *err)
{
    aibox_model *m = NULL;
    if (aibox_model_create(&m, 1, 64, 64, err)) return NULL;
    int x = 0;
    for (int i = 0; i < 3; i++) {
        x = aibox_relu(m, aibox_conv2d_simple(m, x, 32 << i, 3, 1, 1));
        x = aibox_maxpool(m, x, &(aibox_pool_opts){.kernel_h = 2, .kernel_w = 2});
    }
    x = aibox_relu(m, aibox_dense(m, aibox_flatten(m, x), 128, 1));
    aibox_dense(m, x, classes, 1);
    if (aibox_model_finish(m, SEED, err)) aibox_model_free(&m);
    return m;
}

typedef struct {
    double lr;
    int epochs;
    const char *resume, *out_dir;
} train_cfg;

/* Trains on NEU with a local batch; comm NULL: one process. Saves to path. */
static aibox_status train_neu(const aibox_comm *comm, int batch, const train_cfg *cfg, const char *path,
                              aibox_train_result *res, aibox_error *err)
{
    aibox_dataset *ds = NULL;
    aibox_loader *tl = NULL, *vl = NULL;
    aibox_model *m = NULL;
    aibox_status s = aibox_dataset_open(&ds, neu, &(aibox_dataset_opts){.seed = SEED, .threads = 1}, err);
    if (!s && !(m = small_net(aibox_dataset_class_count(ds), err))) s = err->code ? err->code : AIBOX_E_NOMEM;
    aibox_preproc pp;
    if (!s) aibox_preproc_default(&pp, m);
    if (!s)
        s = aibox_loader_create(&tl, ds, &pp,
                                &(aibox_loader_opts){.split = AIBOX_SPLIT_TRAIN, .batch = batch, .shuffle = 1,
                                                     .seed = SEED, .threads = 1},
                                err);
    if (!s)
        s = aibox_loader_create(&vl, ds, &pp,
                                &(aibox_loader_opts){.split = AIBOX_SPLIT_VAL, .batch = batch, .seed = SEED, .threads = 1},
                                err);
    if (!s && comm && (s = aibox_loader_shard(tl, comm->rank, comm->size, err)) == AIBOX_OK)
        s = aibox_loader_shard(vl, comm->rank, comm->size, err);
    if (!s) {
        aibox_batch_source ts = aibox_loader_source(tl), vs = aibox_loader_source(vl);
        aibox_train_opts o = {.epochs = cfg->epochs,
                              .optim = {.kind = AIBOX_SGD, .lr = (float)cfg->lr, .momentum = 0.9f},
                              .seed = SEED,
                              .out_dir = cfg->out_dir,
                              .resume = cfg->resume};
        s = aibox_train_dist(m, &ts, batch, &vs, &o, comm, 1, res, err);
    }
    if (!s && (!comm || comm->rank == 0)) s = aibox_model_save(m, path, err);
    aibox_loader_free(&tl);
    aibox_loader_free(&vl);
    aibox_model_free(&m);
    aibox_dataset_free(&ds);
    return s;
}

/* Worker: --worker LOCAL_BATCH LR EPOCHS OUT.aibox [OUT_DIR [RESUME]] under
 * mpirun; rank 0 saves and prints the result. */
static int worker(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    aibox_comm comm;
    aibox_error err = {0};
    aibox_train_result res = {0};
    const char *data = getenv("AIBOX_DATA");
    snprintf(neu, sizeof neu, "%s/neu-cls", data ? data : ".");
    train_cfg cfg = {atof(argv[3]), atoi(argv[4]), argc > 7 ? argv[7] : NULL, argc > 6 ? argv[6] : NULL};
    aibox_status s = aibox_mpi_comm(&comm, &err);
    if (!s) s = train_neu(&comm, atoi(argv[2]), &cfg, argv[5], &res, &err);
    if (s) {
        fprintf(stderr, "rank %d: %s\n", comm.rank, err.msg);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    if (comm.rank == 0) printf("val_acc %.6f epochs %d\n", res.best_val_acc, res.epochs_run);
    MPI_Finalize();
    return 0;
}

static int setup(void **state)
{
    const char *data = getenv("AIBOX_DATA");
    snprintf(neu, sizeof neu, "%s/neu-cls", data ? data : "../shared/data");
    return aibox_test_mkdtemp(dir, sizeof dir, "mpi_train");
}
static int teardown(void **state) { return aibox_test_rm_rf(dir); }

static int have_neu(void)
{
    struct stat st;
    if (stat(neu, &st) == 0) return 1;
    printf("skipping: %s not found (set AIBOX_DATA to the shared data folder)\n", neu);
    return 0;
}

/* ||a - b|| / ||a|| over every parameter of two saved models. */
static double rel_diff(const char *pa, const char *pb)
{
    aibox_model *a = NULL, *b = NULL;
    aibox_error err = {0};
    assert_int_equal(aibox_model_load(&a, pa, &err), AIBOX_OK);
    assert_int_equal(aibox_model_load(&b, pb, &err), AIBOX_OK);
    size_t n = aibox_model_param_count(a);
    assert_int_equal(n, aibox_model_param_count(b));
    const float *x = aibox_model_params(a), *y = aibox_model_params(b);
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]), den += (double)x[i] * x[i];
    aibox_model_free(&a);
    aibox_model_free(&b);
    return sqrt(num / den);
}

/* mpirun -np ranks of this binary as workers; returns the exit status. */
static int run_ranks(int ranks, double lr, int epochs, const char *out, const char *out_dir, const char *resume,
                     char *stdout_buf, size_t cap)
{
    char self[1024];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(len > 0);
    self[len] = 0;
    return aibox_test_run(stdout_buf, cap,
                          "mpirun --allow-run-as-root --oversubscribe -np %d %s --worker %d %g %d %s %s %s 2>&1", ranks,
                          self, GLOBAL_BATCH / ranks, lr, epochs, out, out_dir ? out_dir : "", resume ? resume : "");
}

static double one_process(double lr, int epochs, const char *out)
{
    aibox_error err = {0};
    aibox_train_result res;
    train_cfg cfg = {lr, epochs, NULL, NULL};
    assert_int_equal(train_neu(NULL, GLOBAL_BATCH, &cfg, out, &res, &err), AIBOX_OK);
    return res.best_val_acc;
}

/* One epoch: 2 and 4 ranks give the one-process model of the same global batch. */
static void test_ranks_equal_one_process(void **state)
{
    if (!have_neu()) skip();
    char one[512], many[512], log[4096];
    snprintf(one, sizeof one, "%s/one.aibox", dir);
    double acc1 = one_process(1e-4, 1, one);
    for (int ranks = 2; ranks <= 4; ranks += 2) {
        snprintf(many, sizeof many, "%s/ranks%d.aibox", dir, ranks);
        int rc = run_ranks(ranks, 1e-4, 1, many, NULL, NULL, log, sizeof log);
        if (rc) printf("%s", log);
        assert_int_equal(rc, 0);
        double d = rel_diff(one, many);
        double acc = -1;
        sscanf(log, "val_acc %lf", &acc);
        printf("1 epoch NEU, global batch %d: %d ranks x %d vs 1 process: weights differ by %.3g relative "
               "(||a-b||/||a||); val_acc %.4f vs %.4f\n",
               GLOBAL_BATCH, ranks, GLOBAL_BATCH / ranks, d, acc, acc1);
        assert_true(d < 1e-4);
        assert_true(fabs(acc - acc1) <= 1.0 / 360 + 1e-9); /* at most one of the 360 validation images */
    }
}

/* A checkpoint of one process resumes on 2 ranks (and the result is the
 * uninterrupted one-process run's). */
static void test_resume_other_ranks(void **state)
{
    if (!have_neu()) skip();
    char one[512], ckdir[512], resumed[512], ck[600], log[4096], scratch[512];
    snprintf(one, sizeof one, "%s/two_epochs.aibox", dir);
    one_process(1e-4, 2, one);
    snprintf(ckdir, sizeof ckdir, "%s/ck", dir);
    snprintf(scratch, sizeof scratch, "%s/ck_first.aibox", dir);
    aibox_error err = {0};
    aibox_train_result res;
    train_cfg cfg = {1e-4, 1, NULL, ckdir};
    assert_int_equal(train_neu(NULL, GLOBAL_BATCH, &cfg, scratch, &res, &err), AIBOX_OK);
    snprintf(ck, sizeof ck, "%s/last.aibox", ckdir);
    snprintf(resumed, sizeof resumed, "%s/resumed.aibox", dir);
    int rc = run_ranks(2, 1e-4, 2, resumed, ckdir, ck, log, sizeof log);
    if (rc) printf("%s", log);
    assert_int_equal(rc, 0);
    int epochs = 0;
    sscanf(log, "val_acc %*f epochs %d", &epochs);
    assert_int_equal(epochs, 2);
    double d = rel_diff(one, resumed);
    printf("epoch 1 in 1 process, epoch 2 resumed on 2 ranks vs 2 epochs in 1 process: %.3g relative\n", d);
    assert_true(d < 2e-4);
}

int main(int argc, char **argv)
{
    if (argc > 5 && !strcmp(argv[1], "--worker")) return worker(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranks_equal_one_process),
        cmocka_unit_test(test_resume_other_ranks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
