/* PaDiM anomaly detection through the public API only: fit on a folder of
 * good parts, evaluate on good and defect folders, write heatmaps.
 *
 *   padim BACKBONE GOOD_DIR MODEL.aibox [NORMAL_DIR ABNORMAL_DIR [HEATMAP_DIR]]
 *
 * BACKBONE is any pretrained model aibox_import reads (TensorFlow Lite,
 * torchvision safetensors, .aibox). A seeded 20 % of the good images is held
 * out to set the threshold (just above their largest score). With the two
 * folders the model is evaluated as `aibox-infer --eval` does (the images it
 * was fitted on are left out by content), and with HEATMAP_DIR a heatmap of
 * every defect image is written there. Masks: STEM.png beside an image.
 * Build against the installed library:
 *   cc padim.c -o padim $(pkg-config --cflags --libs aibox)
 */
#include <stdio.h>
#include <string.h>

#include <aibox.h>

static void skipped(void *user, const char *path, const aibox_error *why)
{
    (void)user;
    printf("skipped %s (%s)\n", path, why->msg);
}

/* A heatmap per defect image, named after it. */
static int heatmaps(aibox_detector *d, const char *dir, const char *out, aibox_error *err)
{
    aibox_file_list l;
    aibox_list_opts lo = {.subfolders = AIBOX_SUBFOLDERS_RECURSE, .images_only = 1, .skip_masks = 1};
    if (aibox_list_files(&l, dir, &lo, err)) return 0;
    int written = 0;
    for (int i = 0; i < l.n; i++) {
        aibox_image img = {0}, pic = {0};
        aibox_detection det;
        char path[4096];
        const char *leaf = strrchr(l.path[i], '/');
        snprintf(path, sizeof path, "%s/%s.png", out, leaf ? leaf + 1 : l.path[i]);
        if (!aibox_image_load(&img, l.path[i], 0, err) && !aibox_detector_run(d, &img, &det, err) &&
            !aibox_detector_heatmap(d, &img, &pic, err) && !aibox_image_write_png(&pic, path, err))
            written++;
        else fprintf(stderr, "%s\n", err->msg);
        aibox_image_free(&img), aibox_image_free(&pic);
    }
    aibox_file_list_free(&l);
    return written;
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 6 && argc != 7) {
        fprintf(stderr, "usage: %s BACKBONE GOOD_DIR MODEL.aibox [NORMAL_DIR ABNORMAL_DIR [HEATMAP_DIR]]\n", argv[0]);
        return 2;
    }
    aibox_error err;
    aibox_model *bb = NULL;
    aibox_detector *d = NULL;
    aibox_fit_report rep;
    aibox_fit_opts fo = {.seed = 1, .on_skip = skipped}; /* PaDiM's defaults: strides 4, 8, 16; d = 100 */
    int rc = 3;
    if (aibox_import(&bb, argv[1], NULL, &err) || aibox_detector_fit_folder(&d, bb, argv[2], &fo, &rep, &err) ||
        aibox_detector_save(d, argv[3], &err))
        goto done;
    printf("fitted on %d images (%d held out, %d skipped) in %.1f s; threshold %.4g; saved %s\n", rep.fit, rep.holdout,
           rep.skipped, rep.fit_seconds, aibox_detector_thresholds(d)->image, argv[3]);
    if (argc >= 6) {
        aibox_eval_opts eo = {.normal_dir = argv[4], .abnormal_dir = argv[5]};
        aibox_eval_result r;
        if (aibox_detector_evaluate(d, &eo, &r, &err)) goto done;
        printf("image_auroc %.6f pixel_auroc %.6f aupro %.6f f1 %.6f (normal %d, abnormal %d, left out %d, failed %d)\n",
               r.image_auroc, r.pixel_auroc, r.aupro, r.f1, r.normal, r.abnormal, r.excluded, r.failed);
        for (int c = 0; c < r.n_classes; c++)
            printf("  %s: %d images, image AUROC %.4f, %d detected\n", r.classes[c].name, r.classes[c].n,
                   r.classes[c].image_auroc, r.classes[c].detected);
        aibox_eval_result_free(&r);
    }
    if (argc == 7) printf("%d heatmaps written to %s\n", heatmaps(d, argv[5], argv[6], &err), argv[6]);
    rc = 0;
done:
    if (rc) fprintf(stderr, "%s\n", err.msg);
    aibox_detector_free(&d);
    aibox_model_free(&bb);
    return rc;
}
