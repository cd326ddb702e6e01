/* aibox-store: the sample store (a Zarr v2 folder) from the command line:
 * import class folders, export them back, list the counts. One JSON line
 * on stdout; messages on stderr. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aibox.h"
#include "cli.h"

static const char prog[] = "aibox-store";

static const char usage[] =
    "usage: aibox-store import FOLDER --store DIR [options]\n"
    "       aibox-store export DIR OUT\n"
    "       aibox-store list DIR\n"
    "The sample store is a Zarr v2 folder (images N x C x H x W uint8, labels, per-sample metadata)\n"
    "that Python's zarr reads; appends survive kill -9.\n"
    "  import    appends FOLDER/<class>/<image> as labelled samples (source: the file's path),\n"
    "            creating DIR when absent; classes new to the store are added\n"
    "  export    writes every labelled sample as OUT/<class>/<id>.png\n"
    "  list      the samples per class and the unlabelled ones\n"
    "Import options:\n"
    "  --store DIR            the store\n"
    "  --size N               a new store's samples are N x N (default 224)\n"
    "  --gray | --rgb         a new store's channels (default: 1 when the first image is grey, else 3)\n"
    "  --level L              a new store's zlib level 1..9 (default 1)\n"
    "  --quiet                no per-file messages\n"
    "  --version, --help\n"
    "Stdout: one JSON line: import {\"store\", \"imported\", \"skipped\", \"samples\"}; export {\"store\",\n"
    "\"out\", \"exported\", \"unlabelled\"}; list {\"store\", \"samples\", \"channels\", \"height\", \"width\",\n"
    "\"classes\" (name: count), \"unlabelled\"}.\n"
    "Exit status: 0 done, 2 bad usage or input, 3 the store could not be read or written.\n";

static int fail(const aibox_error *err, int code)
{
    fprintf(stderr, "%s: %s\n", prog, err->msg);
    return code;
}

static int cmd_list(const char *dir)
{
    aibox_error err = {0};
    aibox_store *st = NULL;
    if (aibox_store_open(&st, dir, AIBOX_STORE_READONLY, &err)) return fail(&err, err.code == AIBOX_E_NOTFOUND ? 2 : 3);
    int K = aibox_store_class_count(st);
    long *counts = calloc((size_t)K + 1, sizeof *counts);
    if (!counts) {
        aibox_store_free(&st);
        fprintf(stderr, "%s: out of memory\n", prog);
        return 3;
    }
    aibox_store_class_counts(st, counts);
    cli_json j;
    cj_begin(&j, stdout);
    cj_str(&j, "store", dir);
    cj_int(&j, "samples", aibox_store_count(st));
    cj_int(&j, "channels", aibox_store_channels(st));
    cj_int(&j, "height", aibox_store_height(st));
    cj_int(&j, "width", aibox_store_width(st));
    cj_obj(&j, "classes");
    for (int c = 0; c < K; c++) cj_int(&j, aibox_store_class_name(st, c), counts[c]);
    cj_close(&j);
    cj_int(&j, "unlabelled", counts[K]);
    cj_end(&j);
    free(counts);
    aibox_store_free(&st);
    return 0;
}

static int cmd_export(const char *dir, const char *out)
{
    aibox_error err = {0};
    aibox_store *st = NULL;
    if (aibox_store_open(&st, dir, AIBOX_STORE_READONLY, &err)) return fail(&err, err.code == AIBOX_E_NOTFOUND ? 2 : 3);
    int rc = 0;
    long n = aibox_store_count(st), done = 0, unlabelled = 0;
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: %s: cannot create folder: %s\n", prog, out, strerror(errno));
        rc = 3;
    }
    for (long i = 0; !rc && i < n; i++) {
        int l = aibox_store_label(st, i);
        if (l < 0) {
            unlabelled++;
            continue;
        }
        char path[4300];
        snprintf(path, sizeof path, "%s/%s", out, aibox_store_class_name(st, l));
        if (mkdir(path, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "%s: %s: cannot create folder: %s\n", prog, path, strerror(errno));
            rc = 3;
            break;
        }
        snprintf(path, sizeof path, "%s/%s/%ld.png", out, aibox_store_class_name(st, l), i);
        aibox_image img = {0};
        if (aibox_store_image(st, i, &img, &err) || aibox_image_write_png(&img, path, &err)) rc = fail(&err, 3);
        else done++;
        aibox_image_free(&img);
    }
    if (!rc) {
        cli_json j;
        cj_begin(&j, stdout);
        cj_str(&j, "store", dir);
        cj_str(&j, "out", out);
        cj_int(&j, "exported", done);
        cj_int(&j, "unlabelled", unlabelled);
        cj_end(&j);
    }
    aibox_store_free(&st);
    return rc;
}

static int cmd_import(const char *folder, const char *dir, long size, int gray, long level, int quiet)
{
    aibox_error err = {0};
    aibox_file_list classes = {0};
    if (aibox_list_files(&classes, folder, &(aibox_list_opts){.folders = 1}, &err)) return fail(&err, 2);
    aibox_store *st = NULL;
    struct stat sb;
    int rc = 0;
    long imported = 0, skipped = 0;
    if (stat(dir, &sb) == 0) {
        char probe[4200];
        snprintf(probe, sizeof probe, "%s/.zgroup", dir);
        if (access(probe, F_OK) == 0 && aibox_store_open(&st, dir, 0, &err)) rc = fail(&err, 3);
    }
    for (int c = 0; !rc && c < classes.n; c++) {
        const char *name = strrchr(classes.path[c], '/') ? strrchr(classes.path[c], '/') + 1 : classes.path[c];
        aibox_file_list files = {0};
        if (aibox_list_files(&files, classes.path[c], &(aibox_list_opts){.images_only = 1}, &err)) {
            rc = fail(&err, 2);
            break;
        }
        for (int i = 0; !rc && i < files.n; i++) {
            if (files.note[i]) continue;
            aibox_image img = {0};
            if (aibox_image_load(&img, files.path[i], 0, &err)) {
                if (!quiet) fprintf(stderr, "%s: skipped %s\n", prog, err.msg);
                skipped++;
                continue;
            }
            if (!st) { /* a new store takes its channels from the first image unless told */
                aibox_store_opts o = {.channels = gray == 1 || (gray < 0 && img.channels == 1) ? 1 : 3,
                                      .height = (int)size, .width = (int)size, .level = (int)level};
                if (aibox_store_create(&st, dir, &o, 0, NULL, &err)) rc = fail(&err, 3);
            }
            int label = -1;
            aibox_store_info info = {.source = files.path[i]};
            long id;
            if (!rc && (aibox_store_add_class(st, name, &label, &err) ||
                        aibox_store_append(st, &img, label, &info, &id, &err)))
                rc = fail(&err, 3);
            else if (!rc)
                imported++;
            aibox_image_free(&img);
        }
        aibox_file_list_free(&files);
    }
    aibox_file_list_free(&classes);
    if (!rc && !st) {
        fprintf(stderr, "%s: %s: no images in class folders (expected %s/<class>/<image>)\n", prog, folder, folder);
        rc = 2;
    }
    if (!rc) {
        cli_json j;
        cj_begin(&j, stdout);
        cj_str(&j, "store", dir);
        cj_int(&j, "imported", imported);
        cj_int(&j, "skipped", skipped);
        cj_int(&j, "samples", aibox_store_count(st));
        cj_end(&j);
    }
    aibox_store_free(&st);
    return rc;
}

int main(int argc, char **argv)
{
    const char *cmd = NULL, *pos[2] = {NULL, NULL}, *store = NULL;
    long size = 224, level = 1;
    int gray = -1, quiet = 0, npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (cli_help_or_version(prog, a, usage)) return 0;
        else if (!strcmp(a, "--store") && v) store = v, i++;
        else if (!strcmp(a, "--size")) ok = cli_int(prog, a, v, 1, 8192, &size), i++;
        else if (!strcmp(a, "--level")) ok = cli_int(prog, a, v, 1, 9, &level), i++;
        else if (!strcmp(a, "--gray")) gray = 1;
        else if (!strcmp(a, "--rgb")) gray = 0;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (a[0] != '-' && !cmd) cmd = a;
        else if (a[0] != '-' && npos < 2) pos[npos++] = a;
        else {
            fprintf(stderr, "%s: unknown option, missing value or extra argument '%s' (see --help)\n", prog, a);
            return 2;
        }
        if (!ok) return 2;
    }
    if (!cmd) {
        fprintf(stderr, "%s: no command given: import, export or list (see --help)\n", prog);
        return 2;
    }
    int import = !strcmp(cmd, "import"), export = !strcmp(cmd, "export"), list = !strcmp(cmd, "list");
    const char *bad = NULL;
    if (!import && !export && !list) bad = "the command must be import, export or list";
    else if (import && (npos != 1 || !store)) bad = "import needs FOLDER and --store DIR";
    else if (export && npos != 2) bad = "export needs DIR and OUT";
    else if (list && npos != 1) bad = "list needs DIR";
    else if (!import && (store || gray >= 0 || size != 224 || level != 1)) bad = "--store, --size, --gray, --rgb and --level are import options";
    if (bad) {
        fprintf(stderr, "%s: %s (see --help)\n", prog, bad);
        return 2;
    }
    if (list) return cmd_list(pos[0]);
    if (export) return cmd_export(pos[0], pos[1]);
    return cmd_import(pos[0], store, size, gray, level, quiet);
}
