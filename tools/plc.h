/* PLC output over Modbus TCP (tools/plc.c, on Debian's libmodbus): each
 * verdict sets a coil and/or a holding register of a PLC, besides the exit
 * code and the result line. Shared by aibox-infer and aibox-serve; a tool
 * that calls plc_* links -lmodbus (the Makefile's EXTRA_TOOL_LIBS), the
 * others need nothing.
 *
 * Addresses are Modbus protocol addresses, 0-based, as libmodbus and the wire
 * use them (a PLC's coil "00001" is 0). */
#ifndef AIBOX_PLC_H
#define AIBOX_PLC_H

#include <stddef.h>

/* The values of --register-verdict; the coil is 0 for PLC_OK, 1 otherwise
 * (an image that could not be judged must not pass as a good part). */
typedef enum plc_verdict { PLC_OK = 0, PLC_NG = 1, PLC_UNCERTAIN = 2, PLC_ERROR = 3 } plc_verdict;

typedef struct plc_opts {
    const char *target; /* --modbus HOST[:PORT] as given; NULL: no PLC */
    long coil_ng;       /* --coil-ng N, -1: none */
    long reg_verdict;   /* --register-verdict N, -1: none */
    long unit;          /* --modbus-unit ID (default 255, libmodbus's TCP default) */
    double timeout;     /* --modbus-timeout S: connect and each reply (default 1) */
} plc_opts;

/* The options' lines for a tool's --help (each tool's man page documents them). */
#define PLC_USAGE                                                                                          \
    "PLC output (Modbus TCP; addresses 0-based, as on the wire):\n"                                        \
    "  --modbus HOST[:PORT] write each verdict to this Modbus TCP server (port 502 by default, IPv6\n"     \
    "                       as [ADDR]:PORT); a broken connection is made again once per write\n"         \
    "  --coil-ng N          coil N: 1 on NG, uncertain or error, 0 on OK\n"                                \
    "  --register-verdict N holding register N: 0 OK, 1 NG, 2 uncertain, 3 error\n"                       \
    "  --modbus-unit ID     the unit identifier (0-247 or 255, default 255)\n"                             \
    "  --modbus-timeout S   seconds to wait for the connection and for each reply (default 1)\n"

void plc_opts_init(plc_opts *o);

/* One command-line option at argv[*i]: 0 when it is none of the above, 1
 * when taken (*i advanced past its value; on a bad value *ok = 0 and a
 * one-line error naming the option printed with prog). */
int plc_parse_opt(plc_opts *o, const char *prog, int argc, char **argv, int *i, int *ok);

/* The options together: --modbus needs --coil-ng or --register-verdict, and
 * those need --modbus. 1 when consistent, else 0 with the error printed. */
int plc_opts_check(const plc_opts *o, const char *prog);

/* A connection to the PLC, internally locked: worker threads may share one
 * handle (each write is one exchange at a time, in call order). */
typedef struct plc plc;

/* Connects (waiting at most o->timeout); 0 on success, else -1 with
 * "modbus HOST:PORT: reason" in msg. */
int plc_open(plc **p, const plc_opts *o, char *msg, size_t cap);

/* Writes one verdict: the register, then the coil (a PLC latching on the
 * coil then reads a register already set). A broken connection is made again
 * once and the write repeated (writes of one value are idempotent). 0 on
 * success, else -1 with "modbus HOST:PORT: what: reason" in msg. */
int plc_write(plc *p, plc_verdict v, char *msg, size_t cap);

const char *plc_verdict_name(plc_verdict v);
/* The verdict a tool prints ("OK", "NG", "uncertain") as the PLC's; any
 * other (an error) is PLC_ERROR. */
plc_verdict plc_verdict_of(const char *verdict);
void plc_close(plc **p); /* NULL or *p NULL: nothing */

#endif
