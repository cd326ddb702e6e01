/* The result records of aibox-infer and aibox-serve (record.h). */
#include <string.h>

#include "record.h"

const char *record_cls_verdict(const record_policy *p, const aibox_classification *r)
{
    if (!(r->confidence >= p->min_conf)) return "uncertain"; /* written so that NaN fails */
    if (!p->n_ok) return "classified";
    for (int i = 0; i < p->n_ok; i++)
        if (!strcmp(p->ok[i], r->name)) return "OK";
    return "NG";
}

void record_cls_json(cli_json *j, const char *file, const aibox_classification *r, const aibox_classifier *c,
                     const double *probs, const char *verdict, double ms)
{
    cj_str(j, "file", file);
    cj_str(j, "label", r->name);
    cj_num(j, "confidence", "%.6f", r->confidence);
    cj_obj(j, "probs");
    for (int k = 0; k < aibox_classifier_classes(c); k++)
        cj_num(j, aibox_classifier_class_name(c, k), "%.6f", probs[k]);
    cj_close(j);
    cj_str(j, "verdict", verdict);
    cj_num(j, "ms", "%.3f", ms);
}

void record_det_json(cli_json *j, const char *file, const aibox_detection *r, double threshold, double decode_ms,
                     double total_ms)
{
    int shown = r->n_regions < AIBOX_DETECTION_MAX_REGIONS ? r->n_regions : AIBOX_DETECTION_MAX_REGIONS;
    cj_str(j, "file", file);
    cj_num(j, "score", "%.6g", r->score);
    cj_num(j, "norm_score", "%.6f", r->norm_score);
    cj_num(j, "threshold", "%.6g", threshold);
    cj_str(j, "verdict", r->ng ? "NG" : "OK");
    cj_arr(j, "regions");
    for (int i = 0; i < shown; i++) {
        const aibox_region *g = &r->regions[i];
        cj_obj(j, NULL);
        cj_int(j, "x", g->x), cj_int(j, "y", g->y), cj_int(j, "w", g->w), cj_int(j, "h", g->h);
        cj_int(j, "area", g->area);
        cj_num(j, "peak", "%.6g", g->peak);
        cj_close(j);
    }
    cj_close(j);
    cj_int(j, "n_regions", r->n_regions);
    cj_obj(j, "ms");
    cj_num(j, "decode", "%.3f", decode_ms);
    cj_num(j, "score", "%.3f", r->ms_score);
    cj_num(j, "total", "%.3f", total_ms);
    cj_close(j);
}

/* aibox-infer --info's fields: input shape, sizes, int8, every metadata key. */
void record_model_info(cli_json *j, const aibox_model *m)
{
    int c, h, w, n;
    aibox_model_input_shape(m, &c, &h, &w);
    cj_arr(j, "input");
    cj_int(j, NULL, c), cj_int(j, NULL, h), cj_int(j, NULL, w);
    cj_close(j);
    cj_int(j, "parameters", (long long)aibox_model_param_count(m));
    cj_int(j, "nodes", aibox_model_node_count(m));
    cj_bool(j, "int8", aibox_model_quantized(m));
    cj_obj(j, "metadata");
    for (int i = 0; i < aibox_model_meta_count(m); i++) {
        const char *k = aibox_model_meta_key(m, i);
        int64_t iv;
        double fv;
        const char *sv;
        const int64_t *ia;
        const double *fa;
        const char *const *sa;
        switch (aibox_model_meta_kind(m, k)) {
        case AIBOX_META_KIND_INT: aibox_model_get_meta_int(m, k, &iv), cj_int(j, k, iv); break;
        case AIBOX_META_KIND_FLOAT: aibox_model_get_meta_float(m, k, &fv), cj_num(j, k, "%.17g", fv); break;
        case AIBOX_META_KIND_STR: aibox_model_get_meta_str(m, k, &sv), cj_str(j, k, sv); break;
        case AIBOX_META_KIND_INTS:
            aibox_model_get_meta_ints(m, k, &n, &ia), cj_arr(j, k);
            for (int q = 0; q < n; q++) cj_int(j, NULL, ia[q]);
            cj_close(j);
            break;
        case AIBOX_META_KIND_FLOATS:
            aibox_model_get_meta_floats(m, k, &n, &fa), cj_arr(j, k);
            for (int q = 0; q < n; q++) cj_num(j, NULL, "%.17g", fa[q]);
            cj_close(j);
            break;
        case AIBOX_META_KIND_STRS:
            aibox_model_get_meta_strs(m, k, &n, &sa), cj_arr(j, k);
            for (int q = 0; q < n; q++) cj_str(j, NULL, sa[q]);
            cj_close(j);
            break;
        default: cj_null(j, k);
        }
    }
    cj_close(j);
}
