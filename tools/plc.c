/* PLC output over Modbus TCP with libmodbus (see plc.h). */
#include "plc.h"

#include <errno.h>
#include <modbus/modbus.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct plc {
    pthread_mutex_t lock; /* libmodbus contexts are not thread-safe */
    modbus_t *ctx;
    int connected;
    long coil, reg;
    char host[256], port[8];
    char label[300]; /* "HOST:PORT" for messages */
};

void plc_opts_init(plc_opts *o)
{
    memset(o, 0, sizeof *o);
    o->coil_ng = o->reg_verdict = -1;
    o->unit = MODBUS_TCP_SLAVE;
    o->timeout = 1;
}

/* HOST[:PORT] or [IPV6][:PORT] into host and port (502 by default); a bare
 * IPv6 address (several colons, no brackets) is all host. 1, or 0 when bad. */
static int split_target(const char *t, char *host, size_t host_cap, char *port, size_t port_cap)
{
    const char *h = t, *he, *p = NULL;
    if (*t == '[') {
        h = t + 1;
        he = strchr(h, ']');
        if (!he || (he[1] && he[1] != ':')) return 0;
        if (he[1] == ':') p = he + 2;
    } else {
        const char *c = strchr(t, ':');
        if (c && !strchr(c + 1, ':')) he = c, p = c + 1;
        else he = t + strlen(t);
    }
    size_t hl = (size_t)(he - h);
    if (!hl || hl >= host_cap) return 0;
    memcpy(host, h, hl), host[hl] = 0;
    if (!p) return snprintf(port, port_cap, "502"), 1;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (!*p || *end || errno || v < 1 || v > 65535) return 0;
    snprintf(port, port_cap, "%ld", v);
    return 1;
}

int plc_parse_opt(plc_opts *o, const char *prog, int argc, char **argv, int *i, int *ok_out)
{
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int ok;
    if (!strcmp(a, "--modbus")) {
        char host[256], port[8];
        ok = v && split_target(v, host, sizeof host, port, sizeof port);
        if (!ok) fprintf(stderr, "%s: --modbus needs HOST[:PORT] (port 1-65535; IPv6 as [ADDR]:PORT), got '%s'\n", prog,
                         v ? v : "nothing");
        o->target = v;
    } else if (!strcmp(a, "--coil-ng")) ok = cli_int(prog, a, v, 0, 65535, &o->coil_ng);
    else if (!strcmp(a, "--register-verdict")) ok = cli_int(prog, a, v, 0, 65535, &o->reg_verdict);
    else if (!strcmp(a, "--modbus-timeout")) ok = cli_float(prog, a, v, 0.001, 3600, &o->timeout);
    else if (!strcmp(a, "--modbus-unit")) {
        ok = cli_int(prog, a, v, 0, 255, &o->unit);
        if (ok && o->unit > 247 && o->unit != MODBUS_TCP_SLAVE) /* what Modbus TCP allows (libmodbus refuses more) */
            ok = 0, fprintf(stderr, "%s: --modbus-unit must be 0-247 or 255 (got %ld)\n", prog, o->unit);
    } else return 0;
    (*i)++;
    if (!ok) *ok_out = 0;
    return 1;
}

int plc_opts_check(const plc_opts *o, const char *prog)
{
    int outputs = o->coil_ng >= 0 || o->reg_verdict >= 0;
    if (o->target && !outputs)
        return fprintf(stderr, "%s: --modbus needs --coil-ng N or --register-verdict N (what to write)\n", prog), 0;
    if (!o->target && outputs)
        return fprintf(stderr, "%s: --coil-ng and --register-verdict need --modbus HOST[:PORT]\n", prog), 0;
    return 1;
}

/* Connects when not connected; 0, or -1 with the reason in why. */
static int ensure_connected(plc *p, char *why, size_t cap)
{
    if (p->connected) return 0;
    /* libmodbus says "Connection refused" for a name it cannot resolve: ask first */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int g = getaddrinfo(p->host, p->port, &hints, &ai);
    if (g) return snprintf(why, cap, "cannot resolve %s: %s", p->host, gai_strerror(g)), -1;
    freeaddrinfo(ai);
    if (modbus_connect(p->ctx) == -1) return snprintf(why, cap, "cannot connect: %s", modbus_strerror(errno)), -1;
    p->connected = 1;
    return 0;
}

int plc_open(plc **pp, const plc_opts *o, char *msg, size_t cap)
{
    *pp = NULL;
    plc *p = calloc(1, sizeof *p);
    if (!p) return snprintf(msg, cap, "modbus %s: out of memory", o->target), -1;
    if (!split_target(o->target, p->host, sizeof p->host, p->port, sizeof p->port)) {
        snprintf(msg, cap, "modbus %s: not HOST[:PORT]", o->target);
        return free(p), -1;
    }
    const char *host = p->host, *port = p->port;
    snprintf(p->label, sizeof p->label, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
    p->coil = o->coil_ng, p->reg = o->reg_verdict;
    /* _pi: host names and IPv6 too; its connect waits at most the response timeout */
    p->ctx = modbus_new_tcp_pi(host, port);
    if (!p->ctx) {
        snprintf(msg, cap, "modbus %s: %s", p->label, modbus_strerror(errno));
        return free(p), -1;
    }
    uint32_t sec = (uint32_t)o->timeout, usec = (uint32_t)((o->timeout - sec) * 1e6);
    char why[300];
    if (modbus_set_slave(p->ctx, (int)o->unit) == -1 || modbus_set_response_timeout(p->ctx, sec, usec) == -1)
        snprintf(why, sizeof why, "%s", modbus_strerror(errno));
    else if (!ensure_connected(p, why, sizeof why))
        why[0] = 0;
    if (why[0]) {
        snprintf(msg, cap, "modbus %s: %s", p->label, why);
        modbus_free(p->ctx);
        return free(p), -1;
    }
    pthread_mutex_init(&p->lock, NULL);
    *pp = p;
    return 0;
}

/* A Modbus exception is the PLC's answer (say, an address it does not have):
 * asking again over a new connection gets the same one. */
static int is_exception(int e) { return e >= EMBXILFUN && e <= EMBXGTAR; }

/* Closes the connection, if open (libmodbus's close is only safe on an open one). */
static void drop(plc *p)
{
    if (p->connected) modbus_close(p->ctx);
    p->connected = 0;
}

int plc_write(plc *p, plc_verdict v, char *msg, size_t cap)
{
    pthread_mutex_lock(&p->lock);
    int rc = -1, e = 0;
    char why[300] = "";
    for (int attempt = 0; attempt < 2 && rc; attempt++) {
        if (attempt) drop(p); /* the connection broke (or never came back): once more on a new one */
        if (ensure_connected(p, why, sizeof why)) continue;
        rc = 0;
        if (p->reg >= 0 && modbus_write_register(p->ctx, (int)p->reg, (uint16_t)v) == -1)
            rc = -1, e = errno, snprintf(why, sizeof why, "writing holding register %ld: %s", p->reg, modbus_strerror(e));
        else if (p->coil >= 0 && modbus_write_bit(p->ctx, (int)p->coil, v != PLC_OK) == -1)
            rc = -1, e = errno, snprintf(why, sizeof why, "writing coil %ld: %s", p->coil, modbus_strerror(e));
        if (rc && is_exception(e)) break;
    }
    if (rc) {
        if (!is_exception(e)) drop(p); /* the next write starts on a new connection */
        snprintf(msg, cap, "modbus %s: %s", p->label, why);
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

const char *plc_verdict_name(plc_verdict v)
{
    static const char *const names[] = {"OK", "NG", "uncertain", "error"};
    return v >= PLC_OK && v <= PLC_ERROR ? names[v] : "?";
}

plc_verdict plc_verdict_of(const char *verdict)
{
    for (int v = PLC_OK; v < PLC_ERROR; v++)
        if (verdict && !strcmp(verdict, plc_verdict_name((plc_verdict)v))) return (plc_verdict)v;
    return PLC_ERROR;
}

void plc_close(plc **pp)
{
    if (!pp || !*pp) return;
    plc *p = *pp;
    drop(p);
    modbus_free(p->ctx);
    pthread_mutex_destroy(&p->lock);
    free(p);
    *pp = NULL;
}
