/* Charts in plain C: a canvas of RGB bytes, lines drawn with Bresenham's
 * algorithm and a square brush, discs, rectangles and a 5x7 bitmap font
 * (plus a descender row) of printable ASCII. No anti-aliasing: the pictures
 * are for reading figures off, and exact pixels keep them testable. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/plot.h"

/* Printable ASCII 32..126, 8 rows of 5 bits each (bit 4 is the leftmost
 * column); drawn for this library. */
static const uint8_t FONT[95][8] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ' ' */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00}, /* '!' */
    {0x0a, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '"' */
    {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a, 0x00}, /* '#' */
    {0x04, 0x0f, 0x14, 0x0e, 0x05, 0x1e, 0x04, 0x00}, /* '$' */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00}, /* '%' */
    {0x0c, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0d, 0x00}, /* '&' */
    {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '\'' */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00}, /* '(' */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00}, /* ')' */
    {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00, 0x00}, /* '*' */
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00, 0x00}, /* '+' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08}, /* ',' */
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00}, /* '-' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c, 0x00}, /* '.' */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00}, /* '/' */
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e, 0x00}, /* '0' */
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00}, /* '1' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f, 0x00}, /* '2' */
    {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e, 0x00}, /* '3' */
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02, 0x00}, /* '4' */
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e, 0x00}, /* '5' */
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e, 0x00}, /* '6' */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00}, /* '7' */
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e, 0x00}, /* '8' */
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c, 0x00}, /* '9' */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00, 0x00}, /* ':' */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x04, 0x08, 0x00}, /* ';' */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00}, /* '<' */
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00, 0x00}, /* '=' */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00}, /* '>' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00}, /* '?' */
    {0x0e, 0x11, 0x01, 0x0d, 0x15, 0x15, 0x0e, 0x00}, /* '@' */
    {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00}, /* 'A' */
    {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e, 0x00}, /* 'B' */
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e, 0x00}, /* 'C' */
    {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c, 0x00}, /* 'D' */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f, 0x00}, /* 'E' */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10, 0x00}, /* 'F' */
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f, 0x00}, /* 'G' */
    {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00}, /* 'H' */
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00}, /* 'I' */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c, 0x00}, /* 'J' */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00}, /* 'K' */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f, 0x00}, /* 'L' */
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00}, /* 'M' */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00}, /* 'N' */
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00}, /* 'O' */
    {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10, 0x00}, /* 'P' */
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d, 0x00}, /* 'Q' */
    {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11, 0x00}, /* 'R' */
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e, 0x00}, /* 'S' */
    {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00}, /* 'T' */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00}, /* 'U' */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00}, /* 'V' */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a, 0x00}, /* 'W' */
    {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11, 0x00}, /* 'X' */
    {0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04, 0x00}, /* 'Y' */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f, 0x00}, /* 'Z' */
    {0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e, 0x00}, /* '[' */
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00}, /* '\\' */
    {0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e, 0x00}, /* ']' */
    {0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '^' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f}, /* '_' */
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '`' */
    {0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f, 0x00}, /* 'a' */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e, 0x00}, /* 'b' */
    {0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e, 0x00}, /* 'c' */
    {0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f, 0x00}, /* 'd' */
    {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e, 0x00}, /* 'e' */
    {0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08, 0x00}, /* 'f' */
    {0x00, 0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* 'g' */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00}, /* 'h' */
    {0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e, 0x00}, /* 'i' */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x12, 0x0c}, /* 'j' */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00}, /* 'k' */
    {0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00}, /* 'l' */
    {0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11, 0x00}, /* 'm' */
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00}, /* 'n' */
    {0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e, 0x00}, /* 'o' */
    {0x00, 0x00, 0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10}, /* 'p' */
    {0x00, 0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x01}, /* 'q' */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00}, /* 'r' */
    {0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e, 0x00}, /* 's' */
    {0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06, 0x00}, /* 't' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d, 0x00}, /* 'u' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00}, /* 'v' */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a, 0x00}, /* 'w' */
    {0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x00}, /* 'x' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* 'y' */
    {0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f, 0x00}, /* 'z' */
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00}, /* '{' */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00}, /* '|' */
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00}, /* '}' */
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00}, /* '~' */
};

enum { GLYPH_W = 5, GLYPH_H = 8, ADVANCE = 6 };

static const uint8_t WHITE[3] = {255, 255, 255}, INK[3] = {34, 34, 34}, GREY[3] = {120, 120, 120},
                     GRID[3] = {228, 228, 228}, FRAME[3] = {160, 160, 160};

static void put(aibox_image *img, int x, int y, const uint8_t c[3])
{
    if (x < 0 || y < 0 || x >= img->width || y >= img->height) return;
    uint8_t *p = img->data + ((size_t)y * img->width + x) * 3;
    p[0] = c[0], p[1] = c[1], p[2] = c[2];
}

/* Inclusive corners, clipped. */
static void fill(aibox_image *img, int xa, int ya, int xb, int yb, const uint8_t c[3])
{
    if (xa < 0) xa = 0;
    if (ya < 0) ya = 0;
    if (xb >= img->width) xb = img->width - 1;
    if (yb >= img->height) yb = img->height - 1;
    for (int y = ya; y <= yb; y++)
        for (int x = xa; x <= xb; x++) put(img, x, y, c);
}

static void outline(aibox_image *img, int xa, int ya, int xb, int yb, const uint8_t c[3])
{
    fill(img, xa, ya, xb, ya, c);
    fill(img, xa, yb, xb, yb, c);
    fill(img, xa, ya, xa, yb, c);
    fill(img, xb, ya, xb, yb, c);
}

/* A line of width 2 (a 2 x 2 brush at every Bresenham step). */
static void line(aibox_image *img, int xa, int ya, int xb, int yb, const uint8_t c[3])
{
    int dx = abs(xb - xa), dy = -abs(yb - ya), sx = xa < xb ? 1 : -1, sy = ya < yb ? 1 : -1, e = dx + dy;
    for (;;) {
        fill(img, xa, ya, xa + 1, ya + 1, c);
        if (xa == xb && ya == yb) break;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, xa += sx;
        if (e2 <= dx) e += dx, ya += sy;
    }
}

static void disc(aibox_image *img, int cx, int cy, int r, const uint8_t c[3])
{
    for (int y = -r; y <= r; y++)
        for (int x = -r; x <= r; x++)
            if (x * x + y * y <= r * r + r) put(img, cx + x, cy + y, c);
}

/* The glyph of the next character of UTF-8 text s, advancing *s: printable
 * ASCII as itself, a control byte or a whole multi-byte sequence as '?'. */
static int next_glyph(const char **s)
{
    unsigned char b = (unsigned char)*(*s)++;
    if (b >= 0x80) {
        while ((**s & 0xc0) == 0x80) (*s)++; /* continuation bytes belong to this character */
        return '?' - 32;
    }
    return b >= 32 && b < 127 ? b - 32 : '?' - 32;
}

static int glyphs(const char *s)
{
    int n = 0;
    while (s && *s) next_glyph(&s), n++;
    return n;
}

int aibox_plot_text_width(const char *s, int scale)
{
    int n = glyphs(s);
    return n ? (n * ADVANCE - 1) * scale : 0;
}

/* Text at (x, y) top-left; up: rotated a quarter turn anticlockwise, (x, y)
 * then the bottom-left corner and the text reading upwards. */
static int text(aibox_image *img, int x, int y, const char *s, int scale, const uint8_t c[3], int up)
{
    int w = aibox_plot_text_width(s, scale);
    for (int i = 0; s && *s; i++) {
        const uint8_t *g = FONT[next_glyph(&s)];
        for (int gy = 0; gy < GLYPH_H; gy++)
            for (int gx = 0; gx < GLYPH_W; gx++) {
                if (!(g[gy] >> (GLYPH_W - 1 - gx) & 1)) continue;
                int along = (i * ADVANCE + gx) * scale, across = gy * scale;
                if (up) fill(img, x + across, y - along - scale, x + across + scale - 1, y - along - 1, c);
                else fill(img, x + along, y + across, x + along + scale - 1, y + across + scale - 1, c);
            }
    }
    return w;
}

int aibox_plot_text(aibox_image *img, int x, int y, const char *s, int scale, const uint8_t rgb[3])
{
    return text(img, x, y, s, scale, rgb, 0);
}

/* Printable ASCII of at most max glyphs (the last two ".." when cut). */
static void fit(char *out, size_t cap, const char *s, int max)
{
    size_t n = 0;
    int total = glyphs(s), keep = total > max ? max - 2 : total;
    for (int g = 0; g < keep && n + 1 < cap; g++) out[n++] = (char)(next_glyph(&s) + 32);
    if (total > max)
        for (int i = 0; i < 2 && n + 1 < cap; i++) out[n++] = '.';
    out[n] = 0;
}

static aibox_status canvas(aibox_image *img, int w, int h, const char *what, aibox_error *err)
{
    img->data = NULL;
    img->width = w, img->height = h, img->channels = 3;
    img->data = malloc((size_t)w * h * 3);
    if (!img->data) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory (%dx%d image)", what, w, h);
    memset(img->data, 255, (size_t)w * h * 3);
    return AIBOX_OK;
}

void aibox_plot_map(const aibox_plot_frame *f, double x, double y, int *px, int *py)
{
    double fx = f->xmax > f->xmin ? (x - f->xmin) / (f->xmax - f->xmin) : 0;
    double fy = f->ymax > f->ymin ? (y - f->ymin) / (f->ymax - f->ymin) : 0;
    /* far outside the axes (or NaN): pinned, so a line to it stays a bounded number of steps */
    fx = fx > -8 ? fx < 8 ? fx : 8 : -8;
    fy = fy > -8 ? fy < 8 ? fy : 8 : -8;
    *px = (int)lround(f->x0 + fx * (f->x1 - f->x0));
    *py = (int)lround(f->y1 - fy * (f->y1 - f->y0));
}

/* A step of 1, 2 or 5 times a power of ten giving about `ticks` intervals over range. */
static double nice_step(double range, int ticks)
{
    double raw = range / (ticks > 0 ? ticks : 1), p = pow(10, floor(log10(raw))), f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/* A tick's label with as many decimals as the step needs. */
static void tick_label(char *buf, size_t cap, double v, double step)
{
    if (fabs(v) < step * 1e-6) v = 0; /* no "-0.0" */
    if (step >= 1e5 || step < 1e-5) {
        snprintf(buf, cap, "%.3g", v);
        return;
    }
    int d = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    snprintf(buf, cap, "%.*f", d, v);
}

enum { PAD = 8 }; /* between the data and the plot box, so markers at the edges stay inside */

static void panel(aibox_image *img, int ox, int w, int h, const aibox_plot_panel *p, aibox_plot_frame *f)
{
    const int s = 2, left = 74, right = 18, top = 44, bottom = 56;
    /* the y range: fixed, or the finite data's rounded out to whole ticks */
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < p->n_series; k++)
        for (int i = 0; i < p->n; i++) {
            double v = p->series[k].y[i];
            if (isfinite(v)) lo = fmin(lo, v), hi = fmax(hi, v);
        }
    double ystep;
    if (p->ymin < p->ymax) {
        lo = p->ymin, hi = p->ymax;
        ystep = nice_step(hi - lo, 5);
    } else {
        if (!(lo <= hi)) lo = 0, hi = 1; /* no data */
        if (hi - lo <= 1e-9 * fmax(1, fabs(hi))) {
            double half = hi != 0 ? fabs(hi) * 0.05 : 0.5;
            lo -= half, hi += half;
        }
        ystep = nice_step(hi - lo, 5);
        lo = floor(lo / ystep + 1e-9) * ystep, hi = ceil(hi / ystep - 1e-9) * ystep;
    }
    *f = (aibox_plot_frame){.x0 = ox + left + PAD, .y0 = top + PAD, .x1 = ox + w - right - PAD,
                            .y1 = h - bottom - PAD, .xmin = 1, .xmax = p->n > 1 ? p->n : 2, .ymin = lo, .ymax = hi};
    int bx0 = f->x0 - PAD, by0 = f->y0 - PAD, bx1 = f->x1 + PAD, by1 = f->y1 + PAD;
    char buf[64];
    /* y ticks: grid lines and labels */
    for (long k = (long)ceil(lo / ystep - 1e-9), n = 0; k * ystep <= hi + ystep * 1e-9 && n < 60; k++, n++) {
        int px, py;
        aibox_plot_map(f, f->xmin, k * ystep, &px, &py);
        fill(img, bx0 + 1, py, bx1 - 1, py, GRID);
        fill(img, bx0 - 5, py, bx0 - 1, py, FRAME);
        tick_label(buf, sizeof buf, k * ystep, ystep);
        text(img, bx0 - 8 - aibox_plot_text_width(buf, s), py - 7, buf, s, INK, 0);
    }
    /* x ticks: whole epochs, a label at least every ~70 pixels */
    double xstep = fmax(1, nice_step(f->xmax - f->xmin, (f->x1 - f->x0) / 70));
    for (long k = (long)ceil(f->xmin / xstep), n = 0; k * xstep <= f->xmax && n < 60; k++, n++) {
        int px, py;
        aibox_plot_map(f, k * xstep, f->ymin, &px, &py);
        fill(img, px, by0 + 1, px, by1 - 1, GRID);
        fill(img, px, by1 + 1, px, by1 + 5, FRAME);
        tick_label(buf, sizeof buf, k * xstep, xstep);
        text(img, px - aibox_plot_text_width(buf, s) / 2, by1 + 9, buf, s, INK, 0);
    }
    outline(img, bx0, by0, bx1, by1, FRAME);
    if (p->xlabel) text(img, (bx0 + bx1 - aibox_plot_text_width(p->xlabel, s)) / 2, h - 22, p->xlabel, s, GREY, 0);
    if (p->mark_x > 0 && p->mark_x <= f->xmax) {
        int px, py;
        aibox_plot_map(f, p->mark_x, f->ymax, &px, &py);
        for (int y = by0 + 1; y < by1; y++)
            if ((y - by0) % 8 < 4) put(img, px, y, GREY);
        if (p->mark_label) {
            int tw = aibox_plot_text_width(p->mark_label, s);
            text(img, px + 4 + tw > bx1 ? px - 4 - tw : px + 4, by0 + 4, p->mark_label, s, GREY, 0);
        }
    }
    /* the series: lines between consecutive finite points, then markers */
    for (int k = 0; k < p->n_series; k++) {
        const aibox_plot_series *se = &p->series[k];
        int have = 0, lx = 0, ly = 0;
        for (int i = 0; i < p->n; i++) {
            if (!isfinite(se->y[i])) {
                have = 0;
                continue;
            }
            int px, py;
            aibox_plot_map(f, i + 1, se->y[i], &px, &py);
            if (have) line(img, lx, ly, px, py, se->rgb);
            have = 1, lx = px, ly = py;
        }
        for (int i = 0; i < p->n; i++) {
            if (!isfinite(se->y[i])) continue;
            int px, py;
            aibox_plot_map(f, i + 1, se->y[i], &px, &py);
            if (se->square) fill(img, px - 3, py - 3, px + 3, py + 3, se->rgb);
            else disc(img, px, py, 3, se->rgb);
        }
    }
    /* title at the left above the box, the legend at the right */
    if (p->title) text(img, bx0, 14, p->title, s, INK, 0);
    int lx = bx1;
    for (int k = p->n_series - 1; k >= 0; k--) {
        const aibox_plot_series *se = &p->series[k];
        int any = 0;
        for (int i = 0; i < p->n && !any; i++) any = isfinite(se->y[i]);
        if (!any) continue;
        const char *label = se->label ? se->label : "";
        lx -= aibox_plot_text_width(label, s);
        text(img, lx, 14, label, s, INK, 0);
        lx -= 30;
        line(img, lx, 20, lx + 22, 20, se->rgb);
        if (se->square) fill(img, lx + 8, 17, lx + 14, 23, se->rgb);
        else disc(img, lx + 11, 20, 3, se->rgb);
        lx -= 18;
    }
}

aibox_status aibox_plot_curves(aibox_image *img, const aibox_plot_panel *panels, int n_panels, int panel_w, int panel_h,
                               aibox_plot_frame *frames, aibox_error *err)
{
    if (!img || !panels || n_panels < 1) return aibox_fail(err, AIBOX_E_INVALID, "plot: NULL image or no panels");
    if (panel_w < 160 || panel_h < 120 || panel_w > 4096 || panel_h > 4096 || n_panels > 16)
        return aibox_fail(err, AIBOX_E_INVALID, "plot: %d panels of %dx%d (want 1..16 of 160..4096 x 120..4096)",
                          n_panels, panel_w, panel_h);
    for (int i = 0; i < n_panels; i++) {
        const aibox_plot_panel *p = &panels[i];
        if (p->n < 0 || p->n_series < 0 || (p->n_series && !p->series))
            return aibox_fail(err, AIBOX_E_INVALID, "plot: panel %d has %d points of %d series", i, p->n, p->n_series);
        for (int k = 0; k < p->n_series; k++)
            if (p->n > 0 && !p->series[k].y)
                return aibox_fail(err, AIBOX_E_INVALID, "plot: panel %d series %d has no values", i, k);
    }
    aibox_status s = canvas(img, panel_w * n_panels, panel_h, "plot", err);
    if (s) return s;
    for (int i = 0; i < n_panels; i++) {
        aibox_plot_frame f;
        panel(img, i * panel_w, panel_w, panel_h, &panels[i], &f);
        if (frames) frames[i] = f;
    }
    return AIBOX_OK;
}

/* matplotlib's "Blues" at five stops: the darker, the larger the share. */
void aibox_plot_heat(double share, uint8_t rgb[3])
{
    static const uint8_t stops[5][3] = {{247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
    double t = !(share > 0) ? 0 : share > 1 ? 1 : share;
    int i = t >= 1 ? 3 : (int)(t * 4);
    double u = t * 4 - i;
    for (int c = 0; c < 3; c++) rgb[c] = (uint8_t)lround(stops[i][c] + u * (stops[i + 1][c] - stops[i][c]));
}

enum { NAME_MAX_GLYPHS = 16 };

aibox_status aibox_plot_confusion(aibox_image *img, const long *counts, int k, const char *const *names, int n_names,
                                  const char *title, aibox_plot_frame *frame, aibox_error *err)
{
    if (!img || !counts) return aibox_fail(err, AIBOX_E_INVALID, "confusion plot: NULL argument");
    if (k < 1 || k > 2048) return aibox_fail(err, AIBOX_E_INVALID, "confusion plot: %d classes (want 1..2048)", k);
    for (size_t i = 0; i < (size_t)k * k; i++)
        if (counts[i] < 0) return aibox_fail(err, AIBOX_E_INVALID, "confusion plot: a negative count");
    /* cells shrink with the classes; names and counts are written where they fit */
    int cell = 480 / k;
    cell = cell > 72 ? 72 : cell < 2 ? 2 : cell;
    int ns = cell >= 18 ? 2 : 1, named = cell >= 8;
    char label[NAME_MAX_GLYPHS + 4];
    int name_w = 0;
    for (int i = 0; i < k && named; i++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", i);
        fit(label, sizeof label, i < n_names && names && names[i] ? names[i] : idx, NAME_MAX_GLYPHS);
        int w = aibox_plot_text_width(label, ns);
        name_w = w > name_w ? w : name_w;
    }
    const int grid = cell * k, top = 48, axis = 30;
    int left = axis + name_w + 10, bottom = name_w + 10 + axis, right = 100;
    int tw = title ? aibox_plot_text_width(title, 2) + 24 : 0, w = left + grid + right;
    if (tw > w) left += (tw - w) / 2, w = tw; /* a long title widens the picture; the grid stays centred */
    aibox_status s = canvas(img, w, top + grid + bottom, "confusion plot", err);
    if (s) return s;
    const int gx = left, gy = top;
    if (frame) *frame = (aibox_plot_frame){.x0 = gx, .y0 = gy, .x1 = gx + grid - 1, .y1 = gy + grid - 1, .cell = cell};
    if (title) text(img, 12, 14, title, 2, INK, 0);
    char buf[32];
    for (int i = 0; i < k; i++) {
        long row = 0;
        for (int j = 0; j < k; j++) row += counts[(size_t)i * k + j];
        for (int j = 0; j < k; j++) {
            long c = counts[(size_t)i * k + j];
            double share = row ? (double)c / row : 0;
            uint8_t rgb[3] = {215, 215, 215}; /* no samples of this class */
            if (row) aibox_plot_heat(share, rgb);
            int x = gx + j * cell, y = gy + i * cell;
            fill(img, x, y, x + cell - 1, y + cell - 1, rgb);
            snprintf(buf, sizeof buf, "%ld", c);
            /* the count, at the largest scale that fits with a margin */
            for (int cs = 2; cs >= 1; cs--) {
                int bw = aibox_plot_text_width(buf, cs), bh = 7 * cs;
                if (bw + 6 > cell || bh + 6 > cell) continue;
                text(img, x + (cell - bw) / 2, y + (cell - bh) / 2, buf, cs, share > 0.5 ? WHITE : INK, 0);
                break;
            }
        }
    }
    /* thin white lines between cells, when cells are large enough to spare them */
    if (cell >= 12)
        for (int i = 1; i < k; i++) {
            fill(img, gx + i * cell, gy, gx + i * cell, gy + grid - 1, WHITE);
            fill(img, gx, gy + i * cell, gx + grid - 1, gy + i * cell, WHITE);
        }
    outline(img, gx - 1, gy - 1, gx + grid, gy + grid, FRAME);
    for (int i = 0; i < k && named; i++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", i);
        fit(label, sizeof label, i < n_names && names && names[i] ? names[i] : idx, NAME_MAX_GLYPHS);
        int lw = aibox_plot_text_width(label, ns), mid = i * cell + cell / 2 - 4 * ns;
        text(img, gx - 8 - lw, gy + mid, label, ns, INK, 0);                /* rows: true classes */
        text(img, gx + mid, gy + grid + 8 + lw, label, ns, INK, 1);         /* columns: predicted, reading upwards */
    }
    text(img, gx - name_w - 32, gy + grid / 2 + aibox_plot_text_width("true", 2) / 2, "true", 2, GREY, 1);
    text(img, gx + (grid - aibox_plot_text_width("predicted", 2)) / 2, gy + grid + bottom - 24, "predicted", 2, GREY,
         0);
    /* the colour bar: share of the true class's samples */
    int cx = gx + grid + 20;
    for (int y = 0; y < grid; y++) {
        uint8_t rgb[3];
        aibox_plot_heat(grid > 1 ? 1.0 - (double)y / (grid - 1) : 1, rgb);
        fill(img, cx, gy + y, cx + 14, gy + y, rgb);
    }
    outline(img, cx - 1, gy - 1, cx + 15, gy + grid, FRAME);
    int bs = grid >= 60 ? 2 : 1; /* labels as large as the bar's height allows */
    text(img, cx + 20, gy, "100%", bs, INK, 0);
    if (grid >= 60) text(img, cx + 20, gy + grid / 2 - 7, "50%", bs, INK, 0);
    text(img, cx + 20, gy + grid - 7 * bs, "0%", bs, INK, 0);
    return AIBOX_OK;
}
