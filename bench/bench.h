/* Helpers shared by the benchmark programs (header-only). Define BENCH_NAME
 * (the program's name, for messages) before including. Human-readable lines
 * go to bench_human: stdout, or stderr when a program prints JSON. */
#ifndef AIBOX_BENCH_H
#define AIBOX_BENCH_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "aibox.h"

static FILE *bench_human;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(bench_human ? bench_human : stdout, fmt, ap);
    va_end(ap);
    fflush(bench_human ? bench_human : stdout);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(BENCH_NAME ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static inline void check(aibox_status s, const aibox_error *err, const char *what)
{
    if (s != AIBOX_OK) die("%s: %s", what, err->msg[0] ? err->msg : aibox_strerror(s));
}

static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
