/* The result record of one judged image, shared by aibox-infer and
 * aibox-serve (tools/record.c) so that both print the same JSON. The
 * functions write fields into an object the caller opened (cj_begin) and
 * closes (cj_end), so a tool may append its own fields after "ms". */
#ifndef AIBOX_RECORD_H
#define AIBOX_RECORD_H

#include "aibox.h"
#include "cli.h"

/* How a classification becomes a verdict: below min_conf "uncertain"; with
 * ok classes "OK" or "NG", else "classified". */
typedef struct record_policy {
    double min_conf;
    char *const *ok; /* labels as aibox_classifier_class_name gives them */
    int n_ok;
} record_policy;

const char *record_cls_verdict(const record_policy *p, const aibox_classification *r);
/* {"file", "label", "confidence", "probs": {...}, "verdict", "ms"} */
void record_cls_json(cli_json *j, const char *file, const aibox_classification *r, const aibox_classifier *c,
                     const double *probs, const char *verdict, double ms);
/* {"file", "score", "norm_score", "threshold", "verdict", "regions", "n_regions", "ms": {...}} */
void record_det_json(cli_json *j, const char *file, const aibox_detection *r, double threshold, double decode_ms,
                     double total_ms);
/* {"input": [c, h, w], "parameters", "nodes", "int8", "metadata": {key: value}} (aibox-infer --info) */
void record_model_info(cli_json *j, const aibox_model *m);

#endif
