/* Classify image files with a trained model, through the public API only.
 *
 *   classify MODEL.aibox IMAGE...
 *
 * Prints "IMAGE: LABEL CONFIDENCE" per image. The model's stored
 * preprocessing (input size, channels, resize, mean/std) and class names are
 * used, and its outputs are taken as probabilities when it ends in a softmax
 * (imported classifiers), else through a softmax (aibox-train's models).
 * Build against the installed library:
 *   cc classify.c -o classify $(pkg-config --cflags --libs aibox)
 */
#include <stdio.h>

#include <aibox.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.aibox IMAGE...\n", argv[0]);
        return 2;
    }
    aibox_error err;
    aibox_model *m = NULL;
    aibox_classifier *c = NULL;
    if (aibox_model_load(&m, argv[1], &err) || aibox_classifier_create(&c, m, 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        aibox_model_free(&m);
        return 3;
    }
    printf("%s: %d classes, outputs %s\n", argv[1], aibox_classifier_classes(c),
           aibox_model_outputs_probabilities(m) ? "probabilities" : "logits (softmax applied)");
    int rc = 0;
    for (int i = 2; i < argc; i++) {
        aibox_classification r;
        if (aibox_classifier_file(c, argv[i], 0, &r, NULL, &err)) {
            fprintf(stderr, "%s\n", err.msg); /* names the file and the reason */
            rc = 2;
            continue;
        }
        printf("%s: %s %.4f\n", argv[i], r.name, r.confidence);
    }
    /* the one-call form, for the simple case */
    char name[64];
    double conf;
    if (!aibox_classify_file(argv[1], argv[2], NULL, &conf, name, sizeof name, &err))
        printf("aibox_classify_file: %s %.4f\n", name, conf);
    aibox_classifier_free(&c);
    aibox_model_free(&m);
    return rc;
}
