/* Helpers shared by the command-line tools (see cli.h). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

double cli_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int cli_help_or_version(const char *prog, const char *a, const char *usage)
{
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
        fputs(usage, stdout);
        return 1;
    }
    if (!strcmp(a, "--version")) {
        printf("%s %s\n%s\n", prog, aibox_version(), aibox_blas_info());
        return 1;
    }
    return 0;
}

int cli_int(const char *prog, const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "%s: %s needs an integer from %ld to %ld (got '%s')\n", prog, opt, lo, hi, s ? s : "");
        return 0;
    }
    *out = v;
    return 1;
}

int cli_float(const char *prog, const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || !*s || *end || errno || !(v >= lo && v <= hi)) { /* NaN fails the range test */
        fprintf(stderr, "%s: %s needs a number from %g to %g (got '%s')\n", prog, opt, lo, hi, s ? s : "");
        return 0;
    }
    *out = v;
    return 1;
}

/* ------------------------------------------------------------------ JSON */
/* Length of the valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || len > n) return 0;
    for (size_t k = 1; k < len; k++)
        if ((p[k] & 0xC0) != 0x80) return 0;
    unsigned cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; k < len; k++) cp = cp << 6 | (p[k] & 0x3F);
    static const unsigned least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0; /* overlong, surrogate */
    return len;
}

void cli_json_str(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p);
    fputc('"', f);
    while (n > 0) {
        size_t len = utf8_len(p, n);
        if (!len) {
            fprintf(f, "\\u%04x", 0xDC00 | *p); /* a byte that is not UTF-8 */
            len = 1;
        } else if (*p == '"' || *p == '\\') {
            fprintf(f, "\\%c", *p);
        } else if (*p == '\n') {
            fputs("\\n", f);
        } else if (*p == '\t') {
            fputs("\\t", f);
        } else if (*p == '\r') {
            fputs("\\r", f);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(f, "\\u%04x", *p);
        } else {
            fwrite(p, 1, len, f);
        }
        p += len, n -= len;
    }
    fputc('"', f);
}

/* The separator and key before a value at the current level. */
static void cj_value(cli_json *j, const char *key)
{
    if (j->depth > 0) {
        if (!j->empty[j->depth - 1]) fputc(',', j->f);
        j->empty[j->depth - 1] = 0;
    }
    if (key) {
        cli_json_str(j->f, key);
        fputc(':', j->f);
    }
}

static void cj_open(cli_json *j, const char *key, char c)
{
    cj_value(j, key);
    fputc(c, j->f);
    if (j->depth < CLI_JSON_DEPTH) { /* the tools nest three levels at most */
        j->empty[j->depth] = 1;
        j->closer[j->depth] = c == '{' ? '}' : ']';
        j->depth++;
    }
}

void cj_begin(cli_json *j, FILE *f)
{
    memset(j, 0, sizeof *j);
    j->f = f;
    cj_open(j, NULL, '{');
}

void cj_obj(cli_json *j, const char *key) { cj_open(j, key, '{'); }
void cj_arr(cli_json *j, const char *key) { cj_open(j, key, '['); }

void cj_close(cli_json *j)
{
    if (j->depth > 0) fputc(j->closer[--j->depth], j->f);
}

void cj_end(cli_json *j)
{
    while (j->depth > 0) cj_close(j);
    fputc('\n', j->f);
}

void cj_str(cli_json *j, const char *key, const char *v)
{
    cj_value(j, key);
    if (v) cli_json_str(j->f, v);
    else fputs("null", j->f);
}

void cj_int(cli_json *j, const char *key, long long v)
{
    cj_value(j, key);
    fprintf(j->f, "%lld", v);
}

void cj_num(cli_json *j, const char *key, const char *fmt, double v)
{
    cj_value(j, key);
    if (isfinite(v)) fprintf(j->f, fmt, v);
    else fputs("null", j->f);
}

void cj_bool(cli_json *j, const char *key, int v)
{
    cj_value(j, key);
    fputs(v ? "true" : "false", j->f);
}

void cj_null(cli_json *j, const char *key)
{
    cj_value(j, key);
    fputs("null", j->f);
}

/* ------------------------------------------------------------------ CSV */
void cli_csv_str(FILE *f, const char *s)
{
    if (!s) s = "";
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void cli_csv_num(FILE *f, const char *fmt, double v)
{
    if (isfinite(v)) fprintf(f, fmt, v);
}
