/* The manual pages (man/NAME.1) and the tools' --help agree: for each page, the
 * options its OPTIONS sections document (the tags of their .TP entries) are
 * exactly the options the matching `--help` prints, in both directions, and
 * every --option the page mentions anywhere is one some --help of that tool
 * prints. aibox-train's help is split by subcommand (aibox-train padim
 * --help, ...): its page has a section per subcommand, mapped below. A page
 * section whose title ends in OPTIONS and is not mapped here fails the test,
 * so no options list goes unchecked.
 *
 * Options from --help: every --long option anywhere in the text, and short
 * options (-o) where an entry starts ("  -o, --output FILE").
 * Options from a page: roff escapes removed (\-, \fB...), then the same
 * scan over the tag line after each .TP.
 * The pages are read from man/ under the current folder (make check runs
 * the tests from the source tree) or from $AIBOX_MAN_DIR. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "aibox.h"
#include "common/check.h"

static char bin[4096];
static const char *man_dir = "man";

/* ------------------------------------------------------------ option sets */
#define MAX_OPTS 160
typedef struct {
    int n;
    char name[MAX_OPTS][48];
} optset;

static int has(const optset *s, const char *o)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->name[i], o)) return 1;
    return 0;
}

static void add(optset *s, const char *o, size_t len)
{
    char buf[48];
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, o, len);
    buf[len] = 0;
    if (has(s, buf)) return;
    assert_true(s->n < MAX_OPTS);
    strcpy(s->name[s->n++], buf);
}

static void merge(optset *dst, const optset *src)
{
    for (int i = 0; i < src->n; i++) add(dst, src->name[i], strlen(src->name[i]));
}

static int boundary_before(const char *text, const char *p)
{
    return p == text || strchr(" \t([|,\"'", p[-1]) != NULL;
}

/* --long options anywhere in text (into s); with shorts, also -x options
 * standing alone (a space, comma, bracket or the end after the letter). */
static void scan(const char *text, optset *s, int shorts)
{
    for (const char *p = text; *p; p++) {
        if (*p != '-' || !boundary_before(text, p)) continue;
        if (p[1] == '-' && isalnum((unsigned char)p[2])) {
            const char *e = p + 2;
            while (isalnum((unsigned char)*e) || *e == '-' || *e == '_') e++;
            while (e[-1] == '-') e--;
            add(s, p, (size_t)(e - p));
            p = e - 1;
        } else if (shorts && isalpha((unsigned char)p[1]) && (!p[2] || strchr(" \t,)]|\"'\n", p[2]))) {
            add(s, p, 2);
            p++;
        }
    }
}

/* --help text: long options anywhere, short ones where an entry starts. */
static void scan_help(const char *text, optset *s)
{
    scan(text, s, 0);
    for (const char *line = text; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : line + strlen(line)) {
        const char *p = line;
        while (*p == ' ') p++;
        if (p > line && p[0] == '-' && isalpha((unsigned char)p[1]) && (p[2] == ',' || p[2] == ' ')) add(s, p, 2);
    }
}

/* One roff line as text: \-, \e, \&, \fX, \f(XX, \(xx, \*X and quotes out. */
static void unroff(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = in; *p && n + 2 < cap; p++) {
        if (*p == '\\' && p[1]) {
            char c = p[1];
            if (c == '-' || c == 'e') out[n++] = c == '-' ? '-' : '\\', p++;
            else if (c == '&' || c == '/' || c == ',' || c == '|' || c == '^') p++;
            else if (c == 'f' && p[2] == '(' && p[3] && p[4]) p += 4;
            else if (c == 'f' && p[2]) p += 2;
            else if (c == '(' && p[2] && p[3]) out[n++] = ' ', p += 3;
            else if (c == '*' && p[2]) p += 2;
            else out[n++] = c, p++;
        } else if (*p == '"') {
            out[n++] = ' ';
        } else if (*p != '\n') {
            out[n++] = *p;
        }
    }
    out[n] = 0;
}

/* ------------------------------------------------------------ pages */
typedef struct {
    int n;
    char title[24][64];
    optset tags[24];  /* options in the .TP tags of each section */
    optset anywhere;  /* every --long option anywhere on the page */
} page;

static void read_page(const char *file, page *pg)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", man_dir, file);
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s (run the test from the source tree, or set AIBOX_MAN_DIR)", path);
    memset(pg, 0, sizeof *pg);
    char line[2048], text[2048];
    int tag_next = 0, sec = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, ".\\\"", 3) || !strncmp(line, "'\\\"", 3)) continue; /* comment */
        unroff(line, text, sizeof text);
        if (!strncmp(line, ".SH", 3) && (line[3] == ' ' || line[3] == '\t')) {
            assert_true(pg->n < 24);
            sec = pg->n++;
            const char *t = text + 3;
            while (*t == ' ') t++;
            snprintf(pg->title[sec], sizeof pg->title[sec], "%.63s", t);
            size_t l = strlen(pg->title[sec]); /* trailing blanks (the closing quote) */
            while (l && pg->title[sec][l - 1] == ' ') pg->title[sec][--l] = 0;
            continue;
        }
        /* a macro's name is no option: scan after it */
        const char *body = text;
        if (text[0] == '.') {
            while (*body && *body != ' ') body++;
        }
        scan(body, &pg->anywhere, 0);
        if (tag_next && sec >= 0) scan(body, &pg->tags[sec], 1);
        tag_next = !strncmp(line, ".TP", 3);
    }
    fclose(f);
}

static int section_index(const page *pg, const char *title)
{
    for (int i = 0; i < pg->n; i++)
        if (!strcmp(pg->title[i], title)) return i;
    return -1;
}

/* ------------------------------------------------------------ the checks */
typedef struct {
    const char *args;            /* after the tool's name */
    const char *sections[4];     /* the page sections documenting what this --help prints */
} help_map;

/* Compares one page with its tool; returns the number of differences (each
 * printed). */
static int check_page(const char *tool, const char *file, const help_map *maps, int n_maps)
{
    page *pg = calloc(1, sizeof *pg);
    assert_non_null(pg);
    read_page(file, pg);
    int bad = 0;
    optset all_help = {0};
    /* every OPTIONS section is mapped */
    for (int s = 0; s < pg->n; s++) {
        size_t l = strlen(pg->title[s]);
        if (l < 7 || strcmp(pg->title[s] + l - 7, "OPTIONS")) continue;
        int mapped = 0;
        for (int m = 0; m < n_maps; m++)
            for (int k = 0; k < 4 && maps[m].sections[k]; k++) mapped |= !strcmp(maps[m].sections[k], pg->title[s]);
        if (!mapped) {
            print_message("%s: section \"%s\" is not compared with any --help (add it to test_man.c)\n", file,
                          pg->title[s]);
            bad++;
        }
    }
    for (int m = 0; m < n_maps; m++) {
        static char help[1 << 16];
        int rc = aibox_test_run(help, sizeof help, "%s/%s %s 2>&1", bin, tool, maps[m].args);
        if (rc != 0) {
            print_message("%s %s: exit %d\n", tool, maps[m].args, rc);
            bad++;
            continue;
        }
        optset want = {0}, got = {0};
        scan_help(help, &want);
        merge(&all_help, &want);
        char where[256] = "";
        for (int k = 0; k < 4 && maps[m].sections[k]; k++) {
            int s = section_index(pg, maps[m].sections[k]);
            if (s < 0) {
                print_message("%s: no section \"%s\" (where `%s %s` is documented)\n", file, maps[m].sections[k],
                              tool, maps[m].args);
                bad++;
                continue;
            }
            if (!pg->tags[s].n) {
                print_message("%s: section \"%s\" documents no option\n", file, maps[m].sections[k]);
                bad++;
            }
            merge(&got, &pg->tags[s]);
            snprintf(where + strlen(where), sizeof where - strlen(where), "%s\"%s\"", k ? ", " : "",
                     maps[m].sections[k]);
        }
        for (int i = 0; i < want.n; i++)
            if (!has(&got, want.name[i])) {
                print_message("%s: `%s %s` prints %s, which the page does not document (sections %s)\n", file, tool,
                              maps[m].args, want.name[i], where);
                bad++;
            }
        for (int i = 0; i < got.n; i++)
            if (!has(&want, got.name[i])) {
                print_message("%s: documents %s (sections %s), which `%s %s` does not print\n", file, got.name[i],
                              where, tool, maps[m].args);
                bad++;
            }
    }
    /* no mention of an option the tool does not have (prose, examples) */
    for (int i = 0; i < pg->anywhere.n; i++)
        if (!has(&all_help, pg->anywhere.name[i])) {
            print_message("%s: mentions %s, which no --help of %s prints\n", file, pg->anywhere.name[i], tool);
            bad++;
        }
    free(pg);
    return bad;
}

static void test_train(void **state)
{
    (void)state;
    static const help_map maps[] = {
        {"--help", {"OPTIONS", "FINE-TUNING OPTIONS"}},
        {"padim --help", {"COMMON ANOMALY OPTIONS", "PADIM OPTIONS"}},
        {"patchcore --help", {"COMMON ANOMALY OPTIONS", "PATCHCORE OPTIONS"}},
        {"autoencoder --help", {"COMMON ANOMALY OPTIONS", "AUTOENCODER OPTIONS"}},
        {"sound --help", {"SOUND OPTIONS"}},
        {"sound-outlier --help", {"SOUND OUTLIER OPTIONS"}},
    };
    assert_int_equal(check_page("aibox-train", "aibox-train.1", maps, 6), 0);
}

static void test_infer(void **state)
{
    (void)state;
    static const help_map maps[] = {{"--help", {"OPTIONS", "ANOMALY MODEL OPTIONS", "PLC OPTIONS"}}};
    assert_int_equal(check_page("aibox-infer", "aibox-infer.1", maps, 1), 0);
}

static void test_import(void **state)
{
    (void)state;
    static const help_map maps[] = {{"--help", {"OPTIONS"}}};
    assert_int_equal(check_page("aibox-import", "aibox-import.1", maps, 1), 0);
}

static void test_bench(void **state)
{
    (void)state;
    static const help_map maps[] = {{"--help", {"OPTIONS"}}};
    assert_int_equal(check_page("aibox-bench", "aibox-bench.1", maps, 1), 0);
}

static void test_quantize(void **state)
{
    (void)state;
    static const help_map maps[] = {{"--help", {"OPTIONS", "QUANTISATION-AWARE TRAINING OPTIONS"}}};
    assert_int_equal(check_page("aibox-quantize", "aibox-quantize.1", maps, 1), 0);
}

static void test_store(void **state)
{
    (void)state;
    static const help_map maps[] = {{"--help", {"OPTIONS"}}};
    assert_int_equal(check_page("aibox-store", "aibox-store.1", maps, 1), 0);
}

static void test_serve(void **state)
{
    (void)state;
    static const help_map maps[] = {{"--help", {"OPTIONS", "OPERATOR LOOP OPTIONS", "PLC OPTIONS"}}};
    assert_int_equal(check_page("aibox-serve", "aibox-serve.1", maps, 1), 0);
}

/* Every tool has a page, and the library one exists (the Makefile installs
 * the pages of man/ by section). */
static void test_every_tool_has_a_page(void **state)
{
    (void)state;
    static const char *const tools[] = {"aibox-train", "aibox-infer", "aibox-import", "aibox-bench", "aibox-quantize",
                                         "aibox-store", "aibox-serve"};
    char p[4300];
    for (size_t i = 0; i < sizeof tools / sizeof *tools; i++) {
        snprintf(p, sizeof p, "%s/%s.1", man_dir, tools[i]);
        if (access(p, R_OK)) fail_msg("%s is missing", p);
    }
    snprintf(p, sizeof p, "%s/libaibox.3", man_dir);
    if (access(p, R_OK)) fail_msg("%s is missing", p);
}

int main(int argc, char **argv)
{
    (void)argc;
    /* tools live in <build>/bin, this test in <build>/tests/tools */
    aibox_test_tools_dir(argv[0], bin, sizeof bin);
    if (getenv("AIBOX_MAN_DIR")) man_dir = getenv("AIBOX_MAN_DIR");
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/aibox-train", bin);
    if (access(probe, X_OK) != 0) {
        fprintf(stderr, "test_man: %s not built\n", probe);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_tool_has_a_page),
        cmocka_unit_test(test_train),
        cmocka_unit_test(test_infer),
        cmocka_unit_test(test_import),
        cmocka_unit_test(test_bench),
        cmocka_unit_test(test_quantize),
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_serve),
    };
    return cmocka_run_group_tests_name("man pages", tests, NULL, NULL);
}
