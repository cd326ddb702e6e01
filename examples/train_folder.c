/* Train a CNN on a folder of class folders, through the public API only.
 *
 *   train_folder DATA OUT.aibox [EPOCHS [SIZE]]
 *
 * DATA/<class>/<image> (or DATA/train + DATA/val): the images are decoded
 * once (unreadable ones skipped and listed), a seeded 20 % of each class is
 * held out, the background loader augments the training images with the
 * AI-Box chain, and the small preset CNN trains with Adam. The loader is the
 * training loop's batch source (aibox_loader_source), so the saved model
 * carries its preprocessing and class names: aibox-infer and
 * examples/classify use it as is.
 * Build against the installed library:
 *   cc train_folder.c -o train_folder $(pkg-config --cflags --libs aibox)
 */
#include <stdio.h>
#include <stdlib.h>

#include <aibox.h>

static void progress(void *user, const aibox_train_progress *p)
{
    (void)user;
    if (p->end_of_epoch)
        printf("epoch %d/%d: loss %.4f acc %.3f, val_loss %.4f val_acc %.3f (%.1f s)\n", p->epoch + 1, p->epochs, p->loss,
               p->acc, p->val_loss, p->val_acc, p->epoch_seconds);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s DATA OUT.aibox [EPOCHS [SIZE]]\n", argv[0]);
        return 2;
    }
    int epochs = argc > 3 ? atoi(argv[3]) : 10, size = argc > 4 ? atoi(argv[4]) : 32;
    aibox_error err;
    aibox_dataset *ds = NULL;
    aibox_model *m = NULL;
    aibox_loader *train = NULL, *val = NULL;
    int rc = 3;
    aibox_dataset_opts dopts = {.seed = 1, .min_samples = 10};
    if (aibox_dataset_open(&ds, argv[1], &dopts, &err)) goto fail;
    for (int i = 0; i < aibox_dataset_skipped_count(ds); i++) {
        const char *path, *why;
        aibox_dataset_skipped(ds, i, &path, &why);
        printf("skipped %s: %s\n", path, why);
    }
    int classes = aibox_dataset_class_count(ds), channels = aibox_dataset_channels(ds) == 1 ? 1 : 3;
    if (aibox_preset_small(&m, classes, channels, size, &err)) goto fail;
    aibox_preproc pp;
    aibox_preproc_default(&pp, m); /* the model's input size, area resize, mean 0, std 1 */
    aibox_loader_opts lo = {.split = AIBOX_SPLIT_TRAIN, .shuffle = 1, .augment = AIBOX_AUG_AIBOX_NINE,
                            .aug_p = AIBOX_AUG_P_DEFAULT, .seed = 1};
    if (aibox_loader_create(&train, ds, &pp, &lo, &err)) goto fail;
    lo = (aibox_loader_opts){.split = AIBOX_SPLIT_VAL, .seed = 1};
    if (aibox_loader_create(&val, ds, &pp, &lo, &err)) goto fail;
    aibox_batch_source ts = aibox_loader_source(train), vs = aibox_loader_source(val);
    aibox_train_opts o = {.epochs = epochs, .optim = {.kind = AIBOX_ADAM}, .seed = 1, .on_progress = progress};
    aibox_train_result res;
    if (aibox_train(m, &ts, 32, &vs, &o, 0, &res, &err)) goto fail;
    if (aibox_model_save(m, argv[2], &err)) goto fail;
    printf("best validation accuracy %.4f (epoch %d), %.1f s; saved %s\n", res.best_val_acc, res.best_epoch + 1,
           res.seconds, argv[2]);
    rc = 0;
fail:
    if (rc) fprintf(stderr, "%s\n", err.msg);
    aibox_loader_free(&train);
    aibox_loader_free(&val);
    aibox_model_free(&m);
    aibox_dataset_free(&ds);
    return rc;
}
