/* Small charts drawn into RGB images with plain C rasterisation and a
 * built-in 5x7 bitmap font (printable ASCII; any other character shows as
 * '?'): line charts of series per epoch, and a confusion matrix as a heat
 * grid. For the pictures the training loop leaves in its output folder
 * (results.png, confusion.png), so a person sees a run without a plotting
 * stack. Internal: the layout is ours to change. */
#ifndef AIBOX_PLOT_H
#define AIBOX_PLOT_H

#include <stdint.h>

#include "core/core.h"

/* One line of a panel: y[i] is the value at x = i + 1 (epochs count from 1);
 * non-finite values are left out (a gap). A series with no finite value is
 * neither drawn nor listed in the legend. */
typedef struct aibox_plot_series {
    const char *label; /* legend text */
    const float *y;
    uint8_t rgb[3];
    int square; /* markers: 0 discs, 1 squares (told apart without colour) */
} aibox_plot_series;

typedef struct aibox_plot_panel {
    const char *title;  /* top left */
    const char *xlabel; /* under the x axis, e.g. "epoch" */
    int n;              /* points per series (x = 1..n), >= 0 */
    const aibox_plot_series *series;
    int n_series;
    float ymin, ymax; /* a fixed y range when ymin < ymax; otherwise from the data, rounded out to ticks */
    int mark_x;       /* > 0: a dashed vertical line at this x, labelled mark_label */
    const char *mark_label;
} aibox_plot_panel;

/* Where a chart's data landed, for callers and tests: data x maps linearly
 * from [xmin, xmax] to pixel columns [x0, x1], y from [ymin, ymax] to pixel
 * rows [y1, y0] (up is larger), each rounded to the nearest pixel. For a
 * confusion matrix: the grid's top-left corner (x0, y0) and its cell side
 * (cell), class i's row at y0 + i * cell. */
typedef struct aibox_plot_frame {
    int x0, y0, x1, y1, cell;
    double xmin, xmax, ymin, ymax;
} aibox_plot_frame;

/* The pixel of data point (x, y) in a frame (the same rounding the drawing uses). */
AIBOX_INTERNAL void aibox_plot_map(const aibox_plot_frame *f, double x, double y, int *px, int *py);

/* n_panels panels side by side, each panel_w x panel_h (>= 160 x 120), into
 * a new RGB image (*img; aibox_image_free). frames: NULL, or n_panels
 * frames filled with each panel's mapping. */
AIBOX_INTERNAL aibox_status aibox_plot_curves(aibox_image *img, const aibox_plot_panel *panels, int n_panels,
                                              int panel_w, int panel_h, aibox_plot_frame *frames, aibox_error *err);

/* A k x k confusion matrix (counts[true * k + predicted], >= 0; k in
 * 1..2048) as a heat grid: each cell coloured by its share of its row (the
 * true class), from white (none) to dark blue (all); a row without samples
 * is grey. Counts are written in cells large enough, class names
 * (names[i], i < n_names, else the index; truncated) beside the rows and
 * under the columns, title above. *img is new RGB (aibox_image_free). */
AIBOX_INTERNAL aibox_status aibox_plot_confusion(aibox_image *img, const long *counts, int k,
                                                 const char *const *names, int n_names, const char *title,
                                                 aibox_plot_frame *frame, aibox_error *err);

/* The colour of a confusion cell holding `share` (0..1) of its row. */
AIBOX_INTERNAL void aibox_plot_heat(double share, uint8_t rgb[3]);

/* Text with the built-in font at an integer scale (each font pixel a
 * scale x scale block), top-left at (x, y), clipped to the image; returns
 * the width in pixels. aibox_plot_text_width measures without drawing. Each
 * glyph is 5 x 8 font pixels (row 7 for descenders), advancing 6. */
AIBOX_INTERNAL int aibox_plot_text(aibox_image *img, int x, int y, const char *s, int scale, const uint8_t rgb[3]);
AIBOX_INTERNAL int aibox_plot_text_width(const char *s, int scale);

#endif
