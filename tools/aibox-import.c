/* aibox-import: turn a pretrained model file (TensorFlow Lite, safetensors,
 * or an .aibox) into an .aibox model that aibox-infer classifies with and
 * aibox-train --backbone fine-tunes. What was imported on stderr, one JSON
 * summary line on stdout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aibox.h"
#include "cli.h"

static const char usage[] =
    "usage: aibox-import MODEL -o OUT.aibox [options]\n"
    "Converts a pretrained model into an .aibox model (graph, weights, preprocessing, class names).\n"
    "MODEL is recognised by its content: TensorFlow Lite (.tflite: MobileNet-style CONV_2D,\n"
    "DEPTHWISE_CONV_2D, pooling, FULLY_CONNECTED, SOFTMAX...; float32 or 8-bit quantised),\n"
    "safetensors (a torchvision state dict: resnet18), or an .aibox model.\n"
    "  -o, --output FILE    the .aibox model; an existing FILE is replaced, atomically (whole or\n"
    "                       not at all: on failure or interruption the old file stays)\n"
    "  --labels FILE        class names, one per line, as many as the model has outputs\n"
    "                       (e.g. imagenet_labels.txt: 1001 lines, line 0 \"background\")\n"
    "  --arch NAME          safetensors: the architecture (resnet18); default: recognised from the\n"
    "                       tensor names and shapes\n"
    "  --float              TFLite 8-bit models: keep only the dequantised float weights (outputs\n"
    "                       clamped to their quantised ranges) instead of the integer model, which\n"
    "                       is the default and computes what TFLite's built-in kernels do, bit for bit\n"
    "  --faithful           with --float: re-quantise every 8-bit output onto its grid in float\n"
    "                       (close to TFLite; a value within float error of a rounding half can\n"
    "                       differ by one step)\n"
    "  --resize MODE        override the stored resize: bilinear (TFLite's ResizeBilinear, the\n"
    "                       TFLite import's default), bilinear_center (half-pixel centres, as the\n"
    "                       TFLite Task Library's libyuv pipeline), area (safetensors' default) or nearest\n"
    "  --quiet              no description on stderr\n"
    "  --version, --help\n"
    "The model's preprocessing (input size, channels, resize mode, mean/std) is stored with it, so\n"
    "aibox-infer -m OUT.aibox IMAGE repeats it. Stdout: one JSON line {\"model\", \"source\",\n"
    "\"format\", \"arch\", \"input\", \"classes\", \"labels\", \"parameters\", \"nodes\", \"output\"\n"
    "(probabilities: the model ends in a softmax; scores: logits or features), \"resize\", \"mean\",\n"
    "\"std\", \"faithful\", \"int8\" (true: the model runs in integer arithmetic)}.\n"
    "Exit status: 0 imported, 2 bad usage, labels or --arch, 3 the model could not be read or written.\n";

/* The file's kind by its first bytes (as aibox_import decides). */

int main(int argc, char **argv)
{
    const char *prog = "aibox-import", *src = NULL, *out = NULL, *labels = NULL, *arch = NULL;
    int faithful = 0, quiet = 0, float_only = 0;
    const char *resize = NULL;
    aibox_resize_mode resize_mode = AIBOX_RESIZE_BILINEAR;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_help_or_version(prog, a, usage)) {
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && v) out = v, i++;
        else if (!strcmp(a, "--labels") && v) labels = v, i++;
        else if (!strcmp(a, "--arch") && v) arch = v, i++;
        else if (!strcmp(a, "--faithful")) faithful = 1;
        else if (!strcmp(a, "--float")) float_only = 1;
        else if (!strcmp(a, "--resize") && v) {
            if (aibox_resize_mode_parse(v, &resize_mode)) {
                fprintf(stderr, "%s: --resize must be bilinear, bilinear_center, area or nearest (got '%s')\n", prog, v);
                return 2;
            }
            resize = v, i++;
        }
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (a[0] != '-' && !src) src = a;
        else {
            fprintf(stderr, "%s: unknown option, missing value or extra argument '%s' (see --help)\n", prog, a);
            return 2;
        }
    }
    if (!src) {
        fprintf(stderr, "%s: no model file given (see --help)\n", prog);
        return 2;
    }
    if (!out) {
        fprintf(stderr, "%s: no output model given (-o OUT.aibox)\n", prog);
        return 2;
    }
    if (labels) { /* an unreadable labels file is the caller's input, not the model's fault */
        FILE *f = fopen(labels, "r");
        if (!f) {
            fprintf(stderr, "%s: %s: cannot open the labels: %s\n", prog, labels, strerror(errno));
            return 2;
        }
        fclose(f);
    }
    aibox_error err = {0};
    if (faithful && !float_only) {
        fprintf(stderr, "%s: --faithful is the float imitation: give it with --float (the default integer model is "
                "exact)\n", prog);
        return 2;
    }
    aibox_import_opts opts = {.faithful = faithful, .labels_path = labels, .arch = arch, .float_only = float_only};
    aibox_model *m = NULL;
    aibox_status s = aibox_import(&m, src, &opts, &err);
    if (s) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        /* labels that do not fit the outputs, or an --arch this build does not know: bad input */
        return (s == AIBOX_E_INVALID && labels && strstr(err.msg, labels)) || (s == AIBOX_E_UNSUPPORTED && arch) ? 2 : 3;
    }
    aibox_preproc pp;
    s = aibox_preproc_from_model(&pp, m, &err);
    if (!s && resize) {
        pp.resize = resize_mode;
        s = aibox_preproc_to_model(&pp, m, &err);
    }
    if (s || (s = aibox_model_save(m, out, &err))) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        aibox_model_free(&m);
        return 3;
    }
    int oc, oh, ow, n_names = 0;
    aibox_model_node_shape(m, aibox_model_output(m), &oc, &oh, &ow);
    int classes = oc * oh * ow;
    const char *const *names = NULL;
    const char *arch_name = "unknown", *kind = aibox_model_outputs_probabilities(m) ? "probabilities" : "scores",
               *format = aibox_model_format_name(aibox_model_format_of(src));
    aibox_model_get_meta_str(m, AIBOX_META_ARCH, &arch_name);
    aibox_model_get_meta_strs(m, AIBOX_META_CLASS_NAMES, &n_names, &names);
    size_t params = aibox_model_param_count(m);
    if (!quiet) {
        fprintf(stderr, "%s: %s (%s): %s, input %dx%dx%d, %zu parameters, %d nodes\n", prog, src, format, arch_name,
                pp.channels, pp.height, pp.width, params, aibox_model_node_count(m));
        fprintf(stderr, "%s: output %d values (%dx%dx%d), %s", prog, classes, oc, oh, ow, kind);
        if (n_names == classes && n_names > 0) {
            fprintf(stderr, "; classes");
            for (int k = 0; k < n_names; k++) {
                if (k == 3 && n_names > 4) k = n_names - 1, fprintf(stderr, " ...");
                fprintf(stderr, " '%s'", names[k]);
            }
            fputc('\n', stderr);
        } else
            fprintf(stderr, "; no class names%s\n", labels ? "" : " (--labels FILE names them)");
        fprintf(stderr, "%s: preprocessing: %s resize to %dx%d, x = (pixel/255 - mean) / std, mean", prog,
                aibox_resize_mode_name(pp.resize), pp.width, pp.height);
        for (int c = 0; c < pp.channels; c++) fprintf(stderr, "%s%.4g", c ? "," : " ", pp.mean[c]);
        fprintf(stderr, " std");
        for (int c = 0; c < pp.channels; c++) fprintf(stderr, "%s%.4g", c ? "," : " ", pp.std[c]);
        fprintf(stderr, "\n%s: wrote %s\n", prog, out);
    }
    cli_json j;
    cj_begin(&j, stdout);
    cj_str(&j, "model", out);
    cj_str(&j, "source", src);
    cj_str(&j, "format", format);
    cj_str(&j, "arch", arch_name);
    cj_arr(&j, "input");
    cj_int(&j, NULL, pp.channels), cj_int(&j, NULL, pp.height), cj_int(&j, NULL, pp.width);
    cj_close(&j);
    cj_int(&j, "classes", classes);
    cj_bool(&j, "labels", n_names == classes);
    cj_int(&j, "parameters", (long long)params);
    cj_int(&j, "nodes", aibox_model_node_count(m));
    cj_str(&j, "output", kind);
    cj_str(&j, "resize", aibox_resize_mode_name(pp.resize));
    cj_arr(&j, "mean");
    for (int c = 0; c < pp.channels; c++) cj_num(&j, NULL, "%.6g", pp.mean[c]);
    cj_close(&j);
    cj_arr(&j, "std");
    for (int c = 0; c < pp.channels; c++) cj_num(&j, NULL, "%.6g", pp.std[c]);
    cj_close(&j);
    cj_bool(&j, "faithful", faithful);
    cj_bool(&j, "int8", aibox_model_quantized(m));
    cj_end(&j);
    aibox_model_free(&m);
    return 0;
}
