/* safetensors reader and the torchvision ResNet importer (resnet18,
 * resnet50, wide_resnet50_2).
 *
 * Reader (safetensors.h): the whole file is read into memory, the header
 * length and JSON are checked, then every entry: a known dtype, a shape of
 * at most AIBOX_ST_MAX_DIMS non-negative integer dimensions, data_offsets of
 * two integers with begin <= end inside the data area, and
 * product(shape) * element size == end - begin (overflow-checked). Names are
 * non-empty and unique. Overlapping ranges are allowed (the format does not
 * forbid them for readers): data are not copied at parse time, so they cost
 * nothing. Float dtypes (F32, F16, BF16, F64) convert to float32 when copied
 * out (aibox_st_to_float); the others (integers, BOOL, 8-bit floats) are
 * validated and never converted, so a torchvision state dict's int64
 * num_batches_tracked scalars do not stop a load. Unknown dtypes are refused.
 * Before cJSON parses the header, its values are counted (strings skipped)
 * and a header of more than AIBOX_ST_MAX_JSON_VALUES refused: cJSON's tree
 * costs ~40 times the bytes of a header like "[0,0,0,...]".
 *
 * Importer: every tensor the architecture needs is checked (name, shape,
 * dtype) and unexpected ones refused before the preset is built; then the
 * preset's conv / batch-norm / dense nodes, in graph order, are matched to
 * torchvision's parameter names in registration order (conv1, bn1,
 * layerL.B.{conv1,bn1,conv2,bn2[,conv3,bn3],downsample.0,downsample.1}, fc);
 * both orders are the same because the presets build a block's main path
 * first, then the shortcut. Layouts need no conversion: torch conv
 * weights are OIHW and Linear weights [out][in], as libaibox's. The preset's
 * batch-norm epsilon is torchvision's 1e-5 (TV_BN_EPS in presets.c). */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ops/ops.h" /* aibox_half_to_float */

#define NAME_FMT "%.120s"

/* ------------------------------------------------------------------ dtypes */
typedef struct dtype_info {
    const char *name;
    size_t size;
    int kind; /* 0 not convertible, 1 F32, 2 F16, 3 BF16, 4 F64 */
} dtype_info;

static const dtype_info DTYPES[] = {
    {"F32", 4, 1},  {"F16", 2, 2},  {"BF16", 2, 3},    {"F64", 8, 4},    {"I64", 8, 0},
    {"U64", 8, 0},  {"I32", 4, 0},  {"U32", 4, 0},     {"I16", 2, 0},    {"U16", 2, 0},
    {"I8", 1, 0},   {"U8", 1, 0},   {"BOOL", 1, 0},    {"F8_E4M3", 1, 0}, {"F8_E5M2", 1, 0},
};

static const dtype_info *dtype_find(const char *s)
{
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
        if (!strcmp(DTYPES[i].name, s)) return &DTYPES[i];
    return NULL;
}

static uint64_t rd_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void convert(float *dst, const unsigned char *src, size_t count, int kind)
{
    for (size_t i = 0; i < count; i++) {
        switch (kind) {
        case 1: dst[i] = bits_to_float((uint32_t)rd_le(src + 4 * i, 4)); break;
        case 2: dst[i] = aibox_half_to_float((uint16_t)rd_le(src + 2 * i, 2)); break; /* lib/ops/half.c's */
        case 3: dst[i] = bits_to_float((uint32_t)rd_le(src + 2 * i, 2) << 16); break;
        default: {
            uint64_t u = rd_le(src + 8 * i, 8);
            double d;
            memcpy(&d, &u, sizeof d);
            dst[i] = (float)d;
        }
        }
    }
}

/* ------------------------------------------------------------------ reader */
void aibox_st_free(aibox_st_file **f)
{
    if (!f || !*f) return;
    for (int i = 0; i < (*f)->n; i++) free((*f)->t[i].name);
    free((*f)->t);
    free((*f)->owned);
    free(*f);
    *f = NULL;
}

int aibox_st_to_float(const aibox_st_tensor *t, float *dst)
{
    if (!t || !t->kind) return 0;
    if (t->count) convert(dst, t->raw, t->count, t->kind);
    return 1;
}

/* An upper bound on the values cJSON would make of the header: one per ','
 * '[' '{' outside strings, plus the root (each container's first member
 * follows its bracket, the others a comma). */
static size_t json_values(const char *h, size_t n)
{
    size_t v = 1;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == ',' || c == '[' || c == '{') {
            v++;
        }
    }
    return v;
}

int aibox_st_find(const aibox_st_file *f, const char *name)
{
    if (!f || !name) return -1;
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return i;
    return -1;
}

/* A JSON number that is an exact integer in [0, 2^53]. */
static int json_uint(const cJSON *j, uint64_t *v)
{
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0.0 && d <= 9007199254740992.0) || d != floor(d)) return 0;
    *v = (uint64_t)d;
    return 1;
}

static int cmp_names(const void *a, const void *b)
{
    const aibox_st_tensor *x = *(const aibox_st_tensor *const *)a, *y = *(const aibox_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

/* Validates one header entry and fills t (data converted from the data area). */
static aibox_status parse_entry(const cJSON *e, const unsigned char *data, uint64_t data_len, const char *fname,
                                aibox_st_tensor *t, aibox_error *err)
{
    const char *tn = e->string;
    if (!cJSON_IsObject(e))
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor '" NAME_FMT "': entry is not a JSON object", fname, tn);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !dt->valuestring)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor '" NAME_FMT "': missing or non-string \"dtype\"", fname,
                          tn);
    const dtype_info *di = dtype_find(dt->valuestring);
    if (!di)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor '" NAME_FMT "': unsupported dtype '%.20s'", fname, tn,
                          dt->valuestring);
    if (!cJSON_IsArray(sh))
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor '" NAME_FMT "': missing or non-array \"shape\"", fname,
                          tn);
    int nd = cJSON_GetArraySize(sh);
    if (nd > AIBOX_ST_MAX_DIMS)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor '" NAME_FMT "': %d dimensions (at most %d supported)",
                          fname, tn, nd, AIBOX_ST_MAX_DIMS);
    size_t count = 1;
    int k = 0;
    for (const cJSON *d = sh->child; d; d = d->next, k++) {
        uint64_t v;
        if (!json_uint(d, &v) || v > (uint64_t)INT32_MAX)
            return aibox_fail(err, AIBOX_E_FORMAT,
                              "%s: tensor '" NAME_FMT "': shape dimension %d is not an integer in [0, 2^31)", fname,
                              tn, k);
        t->shape[k] = (int64_t)v;
        if (!aibox_mul_ok(count, (size_t)v, &count))
            return aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor '" NAME_FMT "': absurd shape (element count overflows)",
                              fname, tn);
    }
    t->ndim = nd;
    t->count = count;
    snprintf(t->dtype, sizeof t->dtype, "%s", di->name);
    uint64_t b, en;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !json_uint(off->child, &b) ||
        !json_uint(off->child->next, &en))
        return aibox_fail(err, AIBOX_E_FORMAT,
                          "%s: tensor '" NAME_FMT "': \"data_offsets\" is not two non-negative integers", fname, tn);
    if (b > en || en > data_len)
        return aibox_fail(err, AIBOX_E_FORMAT,
                          "%s: tensor '" NAME_FMT "': data_offsets [%llu, %llu] outside the data area of %llu bytes",
                          fname, tn, (unsigned long long)b, (unsigned long long)en, (unsigned long long)data_len);
    size_t bytes;
    if (!aibox_mul_ok(count, di->size, &bytes) || bytes != en - b)
        return aibox_fail(err, AIBOX_E_FORMAT,
                          "%s: tensor '" NAME_FMT "': shape needs %zu elements of %zu bytes but data_offsets span %llu "
                          "bytes",
                          fname, tn, count, di->size, (unsigned long long)(en - b));
    t->kind = di->kind;
    t->raw = data + b;
    return AIBOX_OK;
}

aibox_status aibox_st_parse(const void *buf, size_t len, const char *name, aibox_st_file **out, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "safetensors: NULL output pointer");
    *out = NULL;
    const char *fname = name ? name : "safetensors";
    if (!buf && len) return aibox_fail(err, AIBOX_E_INVALID, "%s: NULL buffer", fname);
    const unsigned char *p = buf;
    if (len < 8)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: %zu bytes, too short for the 8-byte header length", fname, len);
    uint64_t n = rd_le(p, 8);
    if (n < 2 || n > len - 8)
        return aibox_fail(err, AIBOX_E_FORMAT,
                          "%s: header length %llu does not fit the file (%zu bytes after the length field); "
                          "truncated or not a safetensors file",
                          fname, (unsigned long long)n, len - 8);
    if (n > AIBOX_ST_MAX_HEADER)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: header of %llu bytes exceeds the %u-byte limit", fname,
                          (unsigned long long)n, AIBOX_ST_MAX_HEADER);
    const char *hdr = (const char *)p + 8, *end = NULL;
    size_t values = json_values(hdr, (size_t)n);
    if (values > AIBOX_ST_MAX_JSON_VALUES)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: the header holds up to %zu JSON values, more than the %d libaibox "
                          "reads", fname, values, AIBOX_ST_MAX_JSON_VALUES);
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, 0);
    if (!root)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: the %llu-byte header is not valid JSON", fname,
                          (unsigned long long)n);
    /* anything after the JSON value must be padding (spaces, as writers pad) */
    for (const char *q = end ? end : hdr + n; q < hdr + n; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r' && *q != '\0') {
            cJSON_Delete(root);
            return aibox_fail(err, AIBOX_E_FORMAT, "%s: bytes after the header's JSON value are not padding", fname);
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: the header is not a JSON object", fname);
    }
    const unsigned char *data = p + 8 + n;
    uint64_t data_len = len - 8 - n;
    aibox_status s = AIBOX_OK;
    aibox_st_file *f = calloc(1, sizeof *f);
    int cap = cJSON_GetArraySize(root);
    aibox_st_tensor **sorted = NULL;
    if (!f || (cap > 0 && !(f->t = calloc((size_t)cap, sizeof *f->t)))) {
        s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory for %d header entries", fname, cap);
        goto done;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string || !e->string[0]) {
            s = aibox_fail(err, AIBOX_E_FORMAT, "%s: a header entry has an empty name", fname);
            goto done;
        }
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                s = aibox_fail(err, AIBOX_E_FORMAT, "%s: \"__metadata__\" is not a JSON object", fname);
                goto done;
            }
            for (const cJSON *m = e->child; m; m = m->next)
                if (!cJSON_IsString(m)) {
                    s = aibox_fail(err, AIBOX_E_FORMAT, "%s: \"__metadata__\" value '" NAME_FMT "' is not a string",
                                   fname, m->string ? m->string : "");
                    goto done;
                }
            continue;
        }
        aibox_st_tensor *t = &f->t[f->n];
        if (!(t->name = strdup(e->string))) {
            s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", fname);
            goto done;
        }
        f->n++;
        if ((s = parse_entry(e, data, data_len, fname, t, err)) != AIBOX_OK) goto done;
    }
    if (f->n > 1) {
        if (!(sorted = malloc((size_t)f->n * sizeof *sorted))) {
            s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", fname);
            goto done;
        }
        for (int i = 0; i < f->n; i++) sorted[i] = &f->t[i];
        qsort(sorted, (size_t)f->n, sizeof *sorted, cmp_names);
        for (int i = 1; i < f->n; i++)
            if (!strcmp(sorted[i - 1]->name, sorted[i]->name)) {
                s = aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor '" NAME_FMT "' appears twice in the header", fname,
                               sorted[i]->name);
                goto done;
            }
    }
done:
    free(sorted);
    cJSON_Delete(root);
    if (s != AIBOX_OK) {
        aibox_st_free(&f);
        return s;
    }
    *out = f;
    return AIBOX_OK;
}

aibox_status aibox_st_read(const char *path, aibox_st_file **out, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "safetensors: NULL output pointer");
    *out = NULL;
    if (!path) return aibox_fail(err, AIBOX_E_INVALID, "safetensors: NULL path");
    unsigned char *buf = NULL;
    size_t len = 0;
    aibox_status rs = aibox_read_file(path, 0, &buf, &len, err); /* the library's one reader */
    if (rs) return rs;
    aibox_status s = aibox_st_parse(buf, len, path, out, err);
    if (s == AIBOX_OK) (*out)->owned = buf; /* the tensors point into it */
    else free(buf);
    return s;
}

/* ------------------------------------------------------------------ torchvision ResNet import */
typedef aibox_status (*preset_fn)(aibox_model **m, int classes, int channels, int size, aibox_error *err);

/* The torchvision ResNets the importer knows: blocks per stage (0 in
 * blocks[0] never happens), BasicBlock or Bottleneck, the Bottleneck inner
 * width factor (width_per_group / 64) and the preset that builds them. */
typedef struct tv_arch {
    const char *name;
    int bottleneck, width_factor;
    int blocks[4];
    preset_fn preset;
} tv_arch;

static const tv_arch ARCHS[] = {
    {"resnet18", 0, 1, {2, 2, 2, 2}, aibox_preset_resnet18},
    {"resnet50", 1, 1, {3, 4, 6, 3}, aibox_preset_resnet50},
    {"wide_resnet50_2", 1, 2, {3, 4, 6, 3}, aibox_preset_wide_resnet50_2},
};
#define N_ARCHS (int)(sizeof ARCHS / sizeof ARCHS[0])
#define KNOWN_ARCHS "resnet18, resnet50, wide_resnet50_2"
#define MAX_MODULES 128 /* resnet50: 2 stem + 16 blocks x 6 + 4 x 2 downsample + fc = 107 */

typedef struct tv_param {
    char name[48];              /* module name, e.g. "layer2.0.downsample.0" */
    aibox_layer_kind kind;
    int64_t shape[4];           /* conv/dense weight shape; BN: shape[0] channels */
    int ndim;
    int idx[4];                 /* file tensors: weight, bias (BN, fc), running_mean, running_var */
} tv_param;

static void add_conv(tv_param *p, int *n, const char *nm, int o, int i, int k)
{
    tv_param *q = &p[(*n)++];
    snprintf(q->name, sizeof q->name, "%s", nm);
    q->kind = AIBOX_LAYER_CONV2D, q->ndim = 4;
    q->shape[0] = o, q->shape[1] = i, q->shape[2] = k, q->shape[3] = k;
}

static void add_bn(tv_param *p, int *n, const char *nm, int c)
{
    tv_param *q = &p[(*n)++];
    snprintf(q->name, sizeof q->name, "%s", nm);
    q->kind = AIBOX_LAYER_BATCHNORM, q->ndim = 1, q->shape[0] = c;
}

/* The architecture's parameterised modules in torchvision's registration
 * order: conv1, bn1, then per block conv1, bn1, conv2, bn2[, conv3, bn3] and
 * downsample.0/.1 on a stage's first block when the shape changes, then fc. */
static int tv_modules(const tv_arch *a, tv_param *p, int classes)
{
    int n = 0, in = 64;
    char nm[48];
    add_conv(p, &n, "conv1", 64, 3, 7);
    add_bn(p, &n, "bn1", 64);
    for (int l = 1; l <= 4; l++) {
        int planes = 32 << l, width = a->bottleneck ? planes * a->width_factor : planes;
        int out = a->bottleneck ? planes * 4 : planes;
        for (int b = 0; b < a->blocks[l - 1]; b++) {
            int bin = b == 0 ? in : out, stride = b == 0 && l > 1 ? 2 : 1;
            snprintf(nm, sizeof nm, "layer%d.%d.conv1", l, b), add_conv(p, &n, nm, width, bin, a->bottleneck ? 1 : 3);
            snprintf(nm, sizeof nm, "layer%d.%d.bn1", l, b), add_bn(p, &n, nm, width);
            snprintf(nm, sizeof nm, "layer%d.%d.conv2", l, b), add_conv(p, &n, nm, a->bottleneck ? width : out, width, 3);
            snprintf(nm, sizeof nm, "layer%d.%d.bn2", l, b), add_bn(p, &n, nm, a->bottleneck ? width : out);
            if (a->bottleneck) {
                snprintf(nm, sizeof nm, "layer%d.%d.conv3", l, b), add_conv(p, &n, nm, out, width, 1);
                snprintf(nm, sizeof nm, "layer%d.%d.bn3", l, b), add_bn(p, &n, nm, out);
            }
            if (stride != 1 || bin != out) {
                snprintf(nm, sizeof nm, "layer%d.%d.downsample.0", l, b), add_conv(p, &n, nm, out, bin, 1);
                snprintf(nm, sizeof nm, "layer%d.%d.downsample.1", l, b), add_bn(p, &n, nm, out);
            }
        }
        in = out;
    }
    tv_param *q = &p[n++];
    snprintf(q->name, sizeof q->name, "fc");
    q->kind = AIBOX_LAYER_DENSE, q->ndim = 2, q->shape[0] = classes, q->shape[1] = in;
    return n;
}

/* Finds module.leaf, checks its shape and that it holds float data; *idx
 * receives its index and the tensor is marked used. */
static aibox_status check_tensor(const aibox_st_file *f, char *used, const char *path, const char *arch,
                                 const char *module, const char *leaf, int ndim, const int64_t *shape, int *idx,
                                 aibox_error *err)
{
    char full[64];
    snprintf(full, sizeof full, "%.47s.%.15s", module, leaf);
    int i = aibox_st_find(f, full);
    if (i < 0) return aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor '%s' is missing (needed by %s)", path, full, arch);
    const aibox_st_tensor *t = &f->t[i];
    int same = t->ndim == ndim;
    for (int k = 0; same && k < ndim; k++) same = t->shape[k] == shape[k];
    if (!same) {
        char want[64] = "", got[96] = "";
        for (int k = 0; k < ndim; k++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", k ? "x" : "", (long long)shape[k]);
        for (int k = 0; k < t->ndim && strlen(got) < 80; k++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", k ? "x" : "", (long long)t->shape[k]);
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor '%s' has shape [%s], %s needs [%s]", path, full,
                          t->ndim ? got : "scalar", arch, want);
    }
    if (!t->kind && t->count)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor '%s' has dtype %s (needs F32, F16, BF16 or F64)", path,
                          full, t->dtype);
    used[i] = 1;
    *idx = i;
    return AIBOX_OK;
}

/* Checks every tensor the architecture needs (names, shapes, dtypes, BN
 * variances) and refuses unexpected ones, before any model is built: a bad
 * file costs no 100-MB allocation. */
static aibox_status check_all(const aibox_st_file *f, tv_param *mods, int nm, const char *path, const char *arch,
                              aibox_error *err)
{
    char *used = calloc((size_t)f->n + 1, 1);
    if (!used) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
    aibox_status s = AIBOX_OK;
    for (int k = 0; k < nm && !s; k++) {
        tv_param *mp = &mods[k];
        if (mp->kind == AIBOX_LAYER_BATCHNORM) {
            static const char *const leaves[4] = {"weight", "bias", "running_mean", "running_var"};
            for (int j = 0; j < 4 && !s; j++)
                s = check_tensor(f, used, path, arch, mp->name, leaves[j], 1, mp->shape, &mp->idx[j], err);
            const aibox_st_tensor *v = s ? NULL : &f->t[mp->idx[3]];
            float *var = v ? malloc((v->count ? v->count : 1) * sizeof *var) : NULL; /* channels: at most 2048 */
            if (v && !var) s = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
            if (var) aibox_st_to_float(v, var);
            for (size_t i = 0; var && i < v->count && !s; i++)
                if (!(var[i] >= 0.0f) || isinf(var[i]))
                    s = aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor '%s.running_var' has value %g at %zu (a variance "
                                   "must be finite and >= 0)", path, mp->name, var[i], i);
            free(var);
            /* ignored: an int64 counter that inference does not use */
            char nb[80];
            snprintf(nb, sizeof nb, "%.47s.num_batches_tracked", mp->name);
            int i = aibox_st_find(f, nb);
            if (i >= 0) used[i] = 1;
        } else {
            s = check_tensor(f, used, path, arch, mp->name, "weight", mp->ndim, mp->shape, &mp->idx[0], err);
            if (!s && mp->kind == AIBOX_LAYER_DENSE)
                s = check_tensor(f, used, path, arch, mp->name, "bias", 1, mp->shape, &mp->idx[1], err);
        }
    }
    for (int i = 0; i < f->n && !s; i++)
        if (!used[i])
            s = aibox_fail(err, AIBOX_E_FORMAT, "%s: unexpected tensor '" NAME_FMT "' (not part of %s)", path,
                           f->t[i].name, arch);
    free(used);
    return s;
}

/* Copies file tensor idx into a model array of count floats. */
static aibox_status copy_to(const aibox_st_file *f, int idx, float *dst, size_t count, const char *path,
                            aibox_error *err)
{
    const aibox_st_tensor *t = &f->t[idx];
    if (!dst || t->count != count)
        return aibox_fail(err, AIBOX_E_SHAPE, "%s: tensor '" NAME_FMT "': %zu values but the model node holds %zu",
                          path, t->name, t->count, count);
    if (!aibox_st_to_float(t, dst))
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor '" NAME_FMT "' has dtype %s", path, t->name, t->dtype);
    return AIBOX_OK;
}

/* The preset's conv / BN / dense nodes, in graph order, take the checked
 * modules in registration order. */
static aibox_status fill(aibox_model *m, const aibox_st_file *f, const tv_param *mods, int nm, const char *path,
                         const char *arch, aibox_error *err)
{
    int k = 0;
    const int nodes = aibox_model_node_count(m);
    aibox_status s = AIBOX_OK;
    for (int node = 0; node < nodes && s == AIBOX_OK; node++) {
        aibox_layer_kind kind = aibox_model_node_kind(m, node);
        if (kind != AIBOX_LAYER_CONV2D && kind != AIBOX_LAYER_BATCHNORM && kind != AIBOX_LAYER_DENSE) continue;
        if (k >= nm || mods[k].kind != kind)
            return aibox_fail(err, AIBOX_E_STATE, "%s: the %s preset's node %d (%s) does not match torchvision's "
                              "module order at '%s'", path, arch, node, aibox_layer_kind_name(kind),
                              k < nm ? mods[k].name : "(end)");
        const tv_param *mp = &mods[k++];
        size_t c0 = 0, c1 = 0;
        float *w = aibox_model_node_param(m, node, 0, &c0), *b = aibox_model_node_param(m, node, 1, &c1);
        s = copy_to(f, mp->idx[0], w, c0, path, err);
        if (!s && kind != AIBOX_LAYER_CONV2D) s = copy_to(f, mp->idx[1], b, c1, path, err);
        if (!s && kind == AIBOX_LAYER_BATCHNORM) {
            size_t cm = 0, cv = 0;
            float *mean = aibox_model_node_state(m, node, 0, &cm), *var = aibox_model_node_state(m, node, 1, &cv);
            s = copy_to(f, mp->idx[2], mean, cm, path, err);
            if (!s) s = copy_to(f, mp->idx[3], var, cv, path, err);
        }
    }
    if (s != AIBOX_OK) return s;
    if (k != nm)
        return aibox_fail(err, AIBOX_E_STATE, "%s: the %s preset has %d parameterised nodes, torchvision %d", path,
                          arch, k, nm);
    return AIBOX_OK;
}

/* The architecture a state dict shows: no layer1.0.conv3 means BasicBlocks
 * (resnet18); Bottlenecks are told apart by layer1.0.conv1's output channels
 * (64: resnet50, 128: wide_resnet50_2). */
static aibox_status recognise(const aibox_st_file *f, const char *path, const tv_arch **out, aibox_error *err)
{
    if (aibox_st_find(f, "layer1.0.conv3.weight") < 0) {
        *out = &ARCHS[0];
        return AIBOX_OK;
    }
    int i = aibox_st_find(f, "layer1.0.conv1.weight");
    if (i < 0)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: has 'layer1.0.conv3.weight' (a Bottleneck ResNet) but no "
                          "'layer1.0.conv1.weight'", path);
    int64_t oc = f->t[i].ndim == 4 ? f->t[i].shape[0] : -1;
    for (int a = 1; a < N_ARCHS; a++)
        if (oc == 64 * ARCHS[a].width_factor) {
            *out = &ARCHS[a];
            return AIBOX_OK;
        }
    return aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: a Bottleneck ResNet whose 'layer1.0.conv1.weight' has %lld "
                      "output channels is not a known architecture (64: resnet50, 128: wide_resnet50_2)", path,
                      (long long)oc);
}

static aibox_status import_parsed(aibox_model **out, const aibox_st_file *f, const char *path, const char *arch_name,
                                  int classes_or_0, aibox_error *err)
{
    const tv_arch *a = NULL;
    aibox_status s;
    if (arch_name) {
        for (int i = 0; i < N_ARCHS && !a; i++)
            if (!strcmp(arch_name, ARCHS[i].name)) a = &ARCHS[i];
        if (!a)
            return aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: architecture '%.40s' is not supported (known: "
                              KNOWN_ARCHS ")", path, arch_name);
    } else if ((s = recognise(f, path, &a, err)) != AIBOX_OK) {
        return s;
    }
    const int fc_in = a->bottleneck ? 2048 : 512;
    int classes = classes_or_0;
    int fi = aibox_st_find(f, "fc.weight");
    if (fi < 0) return aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor 'fc.weight' is missing (needed by %s)", path, a->name);
    if (f->t[fi].ndim != 2 || f->t[fi].shape[0] < 1 || f->t[fi].shape[1] != fc_in)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor 'fc.weight' is not a [classes][%d] matrix (%s)", path,
                          fc_in, a->name);
    if (classes == 0) classes = (int)f->t[fi].shape[0];
    else if (f->t[fi].shape[0] != classes)
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: tensor 'fc.weight' has %lld classes, %d were asked for", path,
                          (long long)f->t[fi].shape[0], classes);

    tv_param mods[MAX_MODULES];
    int nm = tv_modules(a, mods, classes);
    if ((s = check_all(f, mods, nm, path, a->name, err)) != AIBOX_OK) return s;
    aibox_model *m = NULL;
    if ((s = a->preset(&m, classes, 3, 224, err)) != AIBOX_OK) return s;
    s = fill(m, f, mods, nm, path, a->name, err);
    if (!s) s = aibox_model_set_meta_str(m, AIBOX_META_ARCH, a->name, err);
    if (!s) {
        aibox_preproc p;
        aibox_preproc_default(&p, m);
        static const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
        p.resize = AIBOX_RESIZE_AREA;
        for (int c = 0; c < 3; c++) p.mean[c] = mean[c], p.std[c] = sd[c];
        s = aibox_preproc_to_model(&p, m, err);
    }
    if (s != AIBOX_OK) aibox_model_free(&m);
    else *out = m;
    return s;
}

aibox_status aibox_st_import_buffer(aibox_model **out, const void *buf, size_t len, const char *name,
                                    const char *arch, int classes_or_0, aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "import: NULL model pointer");
    *out = NULL;
    if (!name) name = "safetensors";
    if (classes_or_0 < 0) return aibox_fail(err, AIBOX_E_INVALID, "%s: %d classes", name, classes_or_0);
    aibox_st_file *f = NULL;
    aibox_status s = aibox_st_parse(buf, len, name, &f, err);
    if (s == AIBOX_OK) s = import_parsed(out, f, name, arch, classes_or_0, err);
    aibox_st_free(&f);
    return s;
}

aibox_status aibox_import_safetensors(aibox_model **out, const char *path, const char *arch, int classes_or_0,
                                      aibox_error *err)
{
    if (!out) return aibox_fail(err, AIBOX_E_INVALID, "import: NULL model pointer");
    *out = NULL;
    if (!path) return aibox_fail(err, AIBOX_E_INVALID, "import: NULL path");
    if (classes_or_0 < 0) return aibox_fail(err, AIBOX_E_INVALID, "%s: %d classes", path, classes_or_0);
    aibox_st_file *f = NULL;
    aibox_status s = aibox_st_read(path, &f, err);
    if (s == AIBOX_OK) s = import_parsed(out, f, path, arch, classes_or_0, err);
    aibox_st_free(&f);
    return s;
}
