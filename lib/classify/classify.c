/* Classifying images with a model's own preprocessing: what aibox-infer
 * does for a classifier, as library calls (see aibox.h, "classification"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

struct aibox_classifier {
    const aibox_model *m;
    aibox_preproc pp;
    aibox_ctx *ctx;
    float *input;
    double *p;
    int classes, probs; /* probs: the output already is probabilities */
    const char *const *names;
    int n_names;
    char (*numbers)[16]; /* "0", "1", ... for classes without a name */
};

int aibox_model_outputs_probabilities(const aibox_model *m)
{
    for (int i = aibox_model_output(m); i > 0;) {
        aibox_layer_kind k = aibox_model_node_kind(m, i);
        if (k == AIBOX_LAYER_SOFTMAX) return 1;
        /* nodes that only reshape or re-quantise keep a softmax's meaning */
        if (k != AIBOX_LAYER_QUANTIZE && k != AIBOX_LAYER_CLAMP && k != AIBOX_LAYER_FLATTEN) return 0;
        if (aibox_model_node_inputs(m, i, &i, 1) != 1) return 0;
    }
    return 0;
}

void aibox_classifier_free(aibox_classifier **pc)
{
    if (!pc || !*pc) return;
    aibox_classifier *c = *pc;
    aibox_ctx_free(&c->ctx);
    free(c->input), free(c->p), free(c->numbers), free(c);
    *pc = NULL;
}

int aibox_output_probabilities(const float *out, int k, int is_probs, double *p)
{
    if (!out || !p || k < 1) return -1;
    for (int j = 0; j < k; j++)
        if (!isfinite(out[j])) return -1;
    if (is_probs) { /* the model's own probabilities */
        for (int j = 0; j < k; j++) p[j] = out[j];
    } else { /* softmax of the logits, in double for the sum */
        double mx = out[0], sum = 0;
        for (int j = 1; j < k; j++) mx = out[j] > mx ? out[j] : mx;
        for (int j = 0; j < k; j++) sum += p[j] = exp((double)out[j] - mx);
        for (int j = 0; j < k; j++) p[j] /= sum;
    }
    int best = 0;
    for (int j = 1; j < k; j++)
        if (p[j] > p[best]) best = j;
    return best;
}

aibox_status aibox_classifier_create(aibox_classifier **out, const aibox_model *m, int threads, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "classifier: NULL output pointer");
    *out = NULL;
    if (!m) return aibox_fail(err, AIBOX_E_INVALID, "classifier: NULL model");
    aibox_classifier *c = calloc(1, sizeof *c);
    if (!c) return aibox_fail(err, AIBOX_E_NOMEM, "classifier: out of memory");
    c->m = m;
    int oc, oh, ow;
    aibox_model_node_shape(m, aibox_model_output(m), &oc, &oh, &ow);
    c->classes = oc * oh * ow;
    c->probs = aibox_model_outputs_probabilities(m);
    if (aibox_model_get_meta_strs(m, AIBOX_META_CLASS_NAMES, &c->n_names, &c->names)) c->n_names = 0;
    aibox_status s = aibox_preproc_from_model(&c->pp, m, err);
    if (!s) s = aibox_ctx_create(&c->ctx, m, &(aibox_ctx_opts){.height = c->pp.height, .width = c->pp.width, .threads = threads}, err);
    if (!s) s = aibox_ctx_freeze_weights(c->ctx, m, err);
    if (!s) {
        c->input = malloc(sizeof(float) * (size_t)c->pp.channels * c->pp.height * c->pp.width);
        c->p = malloc(sizeof(double) * (size_t)c->classes);
        c->numbers = calloc((size_t)c->classes, sizeof *c->numbers);
        if (!c->input || !c->p || !c->numbers) s = aibox_fail(err, AIBOX_E_NOMEM, "classifier: out of memory");
    }
    for (int k = 0; !s && k < c->classes; k++) snprintf(c->numbers[k], sizeof c->numbers[k], "%d", k);
    if (s) {
        aibox_classifier_free(&c);
        return s;
    }
    *out = c;
    return AIBOX_OK;
}

int aibox_classifier_classes(const aibox_classifier *c) { return c ? c->classes : 0; }

const char *aibox_classifier_class_name(const aibox_classifier *c, int k)
{
    if (!c || k < 0 || k >= c->classes) return NULL;
    return k < c->n_names ? c->names[k] : c->numbers[k];
}

int aibox_classifier_class_index(const aibox_classifier *c, const char *label)
{
    for (int k = 0; c && label && k < c->classes; k++)
        if (!strcmp(aibox_classifier_class_name(c, k), label)) return k;
    return -1;
}

aibox_status aibox_classifier_run(aibox_classifier *c, const aibox_image *img, aibox_classification *out, double *probs,
                                  aibox_error *err)
{
    if (!c || !img || !out) return aibox_fail(err, AIBOX_E_INVALID, "classifier: NULL argument");
    memset(out, 0, sizeof *out);
    aibox_status s = aibox_preprocess(&c->pp, img, c->input, err);
    if (!s) s = aibox_ctx_infer(c->ctx, c->m, c->input, 1, err);
    if (s) return s;
    const float *z = aibox_ctx_output(c->ctx, NULL, NULL, NULL);
    double *p = c->p;
    const int best = aibox_output_probabilities(z, c->classes, c->probs, p);
    if (best < 0) /* a broken model or an input it overflows on: never a verdict */
        for (int k = 0; k < c->classes; k++)
            if (!isfinite(z[k]))
                return aibox_fail(err, AIBOX_E_NONFINITE, "the model's output %d is not a finite number (%g)", k, z[k]);
    if (probs)
        for (int k = 0; k < c->classes; k++) probs[k] = p[k];
    out->label = best;
    out->confidence = p[best];
    out->name = aibox_classifier_class_name(c, best);
    return AIBOX_OK;
}

aibox_status aibox_classifier_file(aibox_classifier *c, const char *path, long long max_pixels,
                                   aibox_classification *out, double *probs, aibox_error *err)
{
    if (out) memset(out, 0, sizeof *out);
    aibox_image img = {0};
    aibox_status s = aibox_image_load(&img, path, max_pixels, err);
    if (!s) {
        s = aibox_classifier_run(c, &img, out, probs, err);
        if (s == AIBOX_E_NONFINITE) { /* name the image, as every other refusal does */
            char msg[AIBOX_ERROR_MSG_LEN];
            snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
            s = aibox_fail(err, s, "%s: %s", path, msg);
        }
    }
    aibox_image_free(&img);
    return s;
}

aibox_status aibox_classify_file(const char *model_path, const char *image_path, int *label, double *confidence,
                                 char *name, size_t name_len, aibox_error *err)
{
    aibox_model *m = NULL;
    aibox_classifier *c = NULL;
    aibox_classification r;
    aibox_status s = aibox_model_load(&m, model_path, err);
    if (!s) s = aibox_classifier_create(&c, m, 0, err);
    if (!s) s = aibox_classifier_file(c, image_path, 0, &r, NULL, err);
    if (!s) {
        if (label) *label = r.label;
        if (confidence) *confidence = r.confidence;
        if (name && name_len) snprintf(name, name_len, "%s", r.name);
    }
    aibox_classifier_free(&c);
    aibox_model_free(&m);
    return s;
}
