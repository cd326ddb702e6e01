/* Small helpers shared by the command-line tools (header-only, static). */
#ifndef AIBOX_CLI_H
#define AIBOX_CLI_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aibox.h"

static inline double cli_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* --help / -h prints usage and --version the tool's version and BLAS line,
 * both on stdout; returns 1 when a was one of them (the tool then exits 0). */
static inline int cli_help_or_version(const char *prog, const char *a, const char *usage)
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

/* Writes s as a JSON string literal (quotes included). */
static inline void cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p == '\r') fputs("\\r", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* A CSV field: quoted when it holds a comma, quote or newline. */
static inline void cli_csv_str(FILE *f, const char *s)
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

/* Parses a whole string as an integer in [lo, hi]; prints a one-line error naming the option. */
static inline int cli_int(const char *prog, const char *opt, const char *s, long lo, long hi, long *out)
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

static inline int cli_float(const char *prog, const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || !*s || *end || errno || !(v >= lo && v <= hi)) {
        fprintf(stderr, "%s: %s needs a number from %g to %g (got '%s')\n", prog, opt, lo, hi, s ? s : "");
        return 0;
    }
    *out = v;
    return 1;
}

#endif
