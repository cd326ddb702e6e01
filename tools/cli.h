/* Helpers shared by the command-line tools (tools/cli.c): option parsing,
 * --help/--version, and the one writer of their machine-readable output. */
#ifndef AIBOX_CLI_H
#define AIBOX_CLI_H

#include <stdio.h>

#include "aibox.h"

double cli_now(void); /* monotonic seconds */

/* --help / -h prints usage and --version the tool's version and BLAS line,
 * both on stdout; returns 1 when a was one of them (the tool then exits 0). */
int cli_help_or_version(const char *prog, const char *a, const char *usage);

/* Parses a whole string as an integer / a finite number in [lo, hi]; prints a
 * one-line error naming the option and returns 0 otherwise. */
int cli_int(const char *prog, const char *opt, const char *s, long lo, long hi, long *out);
int cli_float(const char *prog, const char *opt, const char *s, double lo, double hi, double *out);

/* ------------------------------------------------------------------ JSON */
/* One JSON value written in order to a stream. Every tool's JSON goes
 * through it, so none can print invalid JSON: a non-finite number becomes
 * null, strings are escaped and always valid UTF-8 (a byte that is not UTF-8,
 * as in a file name, is written as \udcXX, Python's surrogateescape, so
 * scripts can map it back to the bytes). key is NULL inside arrays. */
#define CLI_JSON_DEPTH 16
typedef struct cli_json {
    FILE *f;
    int depth;
    unsigned char empty[CLI_JSON_DEPTH]; /* per open level: nothing written in it yet */
    char closer[CLI_JSON_DEPTH];         /* per open level: '}' or ']' */
} cli_json;
void cj_begin(cli_json *j, FILE *f);                 /* opens the top-level object */
void cj_end(cli_json *j);                            /* closes every open level, then a newline */
void cj_obj(cli_json *j, const char *key);           /* opens an object */
void cj_arr(cli_json *j, const char *key);           /* opens an array */
void cj_close(cli_json *j);                          /* closes the innermost object or array */
void cj_str(cli_json *j, const char *key, const char *v); /* NULL: null */
void cj_int(cli_json *j, const char *key, long long v);
void cj_num(cli_json *j, const char *key, const char *fmt, double v); /* fmt: "%.6f", "%.3f", "%.6g"...; non-finite: null */
void cj_bool(cli_json *j, const char *key, int v);
void cj_null(cli_json *j, const char *key);
/* A JSON string literal alone (quotes included), with the same escaping. */
void cli_json_str(FILE *f, const char *s);

/* A CSV field: quoted when it holds a comma, quote or newline. */
void cli_csv_str(FILE *f, const char *s);
/* A CSV number, or an empty field when it is not finite. */
void cli_csv_num(FILE *f, const char *fmt, double v);

#endif
