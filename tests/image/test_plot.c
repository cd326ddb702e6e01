/* The charts of lib/image/plot.c: sizes, data points landing on the pixels
 * the axes say, series without data left out, confusion cells darker for
 * larger shares of their row, and a font whose glyphs differ. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "aibox.h"
#include "image/plot.h"

static int is(const aibox_image *img, int x, int y, const uint8_t c[3])
{
    const uint8_t *p = img->data + ((size_t)y * img->width + x) * 3;
    return p[0] == c[0] && p[1] == c[1] && p[2] == c[2];
}

static int count_colour(const aibox_image *img, const uint8_t c[3])
{
    int n = 0;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++) n += is(img, x, y, c);
    return n;
}

/* The mapping written out again from the frame, independently of aibox_plot_map. */
static void expect_point(const aibox_image *img, const aibox_plot_frame *f, int epoch, double v, const uint8_t c[3])
{
    int px = (int)lround(f->x0 + (epoch - f->xmin) / (f->xmax - f->xmin) * (f->x1 - f->x0));
    int py = (int)lround(f->y1 - (v - f->ymin) / (f->ymax - f->ymin) * (f->y1 - f->y0));
    int q, r;
    aibox_plot_map(f, epoch, v, &q, &r);
    assert_int_equal(q, px);
    assert_int_equal(r, py);
    assert_true(is(img, px, py, c));
    /* in that column the series' pixels gather around py: its marker and the line leaving it */
    double sum = 0;
    int n = 0;
    for (int y = f->y0 - 8; y <= f->y1 + 8; y++)
        if (is(img, px, y, c)) sum += y, n++;
    assert_true(n >= 7 && n <= 12);
    assert_true(fabs(sum / n - py) <= 1.5);
}

static void test_curves(void **state)
{
    enum { N = 12 };
    float loss[N], vloss[N], acc[N], none[N];
    for (int i = 0; i < N; i++) {
        loss[i] = 2.0f - 0.15f * i; /* monotone: 2.0 down to 0.35 */
        vloss[i] = 2.1f - 0.1f * i;
        acc[i] = 0.3f + 0.05f * i;
        none[i] = NAN;
    }
    vloss[4] = NAN; /* a gap */
    const uint8_t red[3] = {200, 0, 0}, green[3] = {0, 160, 0}, blue[3] = {0, 0, 210}, pink[3] = {250, 0, 250};
    aibox_plot_series s[4] = {{"train", loss, {200, 0, 0}, 0}, {"val", vloss, {0, 160, 0}, 1},
                              {"acc", acc, {0, 0, 210}, 0}, {"nothing", none, {250, 0, 250}, 1}};
    aibox_plot_panel p[2] = {{"loss", "epoch", N, s, 2, 0, 0, 3, "best"},
                             {"accuracy", "epoch", N, s + 2, 2, 0, 1, 0, NULL}};
    aibox_image img = {0};
    aibox_plot_frame f[2];
    aibox_error e = {0};
    assert_int_equal(aibox_plot_curves(&img, p, 2, 500, 360, f, &e), AIBOX_OK);
    assert_int_equal(img.width, 1000);
    assert_int_equal(img.height, 360);
    assert_int_equal(img.channels, 3);
    /* the loss axis covers the data, rounded out to ticks; the second panel is right of the first */
    printf("# loss axis %g..%g, pixels x %d..%d, y %d..%d\n", f[0].ymin, f[0].ymax, f[0].x0, f[0].x1, f[0].y0, f[0].y1);
    assert_true(f[0].ymin <= 0.35 && f[0].ymin > 0.35 - 0.5 && f[0].ymax >= 2.1 && f[0].ymax < 2.1 + 0.5);
    assert_true(f[0].xmin == 1 && f[0].xmax == N && f[0].x1 > f[0].x0 && f[0].y1 > f[0].y0);
    assert_true(f[1].x0 > 500 && f[1].x1 < 1000);
    assert_true(f[1].ymin == 0 && f[1].ymax == 1); /* the fixed range */
    expect_point(&img, &f[0], 1, loss[0], red);
    expect_point(&img, &f[0], N, loss[N - 1], red);
    expect_point(&img, &f[0], 1, vloss[0], green);
    expect_point(&img, &f[1], N, acc[N - 1], blue);
    /* the loss falls: its last point is lower in the picture than its first */
    int ax, ay, bx, by;
    aibox_plot_map(&f[0], 1, loss[0], &ax, &ay);
    aibox_plot_map(&f[0], N, loss[N - 1], &bx, &by);
    assert_true(ay < by && ax < bx);
    /* the gap at epoch 5: no green marker there, and no segment spans it */
    int gx, gy;
    aibox_plot_map(&f[0], 5, 2.1 - 0.1 * 4, &gx, &gy);
    for (int y = f[0].y0; y <= f[0].y1; y++) assert_false(is(&img, gx, y, green));
    /* a series without data is neither drawn nor in the legend */
    assert_int_equal(count_colour(&img, pink), 0);
    aibox_image_free(&img);

    /* no data at all, and one epoch, still give a picture; bad sizes are refused */
    p[0].n = 1, p[1].n = 0;
    assert_int_equal(aibox_plot_curves(&img, p, 2, 200, 150, f, &e), AIBOX_OK);
    expect_point(&img, &f[0], 1, loss[0], red);
    aibox_image_free(&img);
    /* values at the ends of the float range: a picture, in bounded time */
    float wild[3] = {3e38f, -3e38f, 1};
    aibox_plot_series ws = {"wild", wild, {1, 2, 3}, 0};
    aibox_plot_panel wp = {"wild", NULL, 3, &ws, 1, 0, 0, 0, NULL};
    assert_int_equal(aibox_plot_curves(&img, &wp, 1, 200, 150, f, &e), AIBOX_OK);
    aibox_image_free(&img);
    wp.ymin = 0, wp.ymax = 1e-30f; /* a fixed range the data leaves by far */
    assert_int_equal(aibox_plot_curves(&img, &wp, 1, 200, 150, f, &e), AIBOX_OK);
    aibox_image_free(&img);
    assert_int_equal(aibox_plot_curves(&img, p, 2, 20, 150, f, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_plot_curves(&img, p, 0, 200, 150, f, &e), AIBOX_E_INVALID);
}

static double luma(const aibox_image *img, int x, int y)
{
    const uint8_t *p = img->data + ((size_t)y * img->width + x) * 3;
    return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
}

static void test_confusion(void **state)
{
    /* row 0 spread 50/30/20, row 1 all right, row 2 without samples */
    const long counts[9] = {50, 30, 20, 0, 10, 0, 0, 0, 0};
    const char *names[3] = {"crazing", "rolled-in_scale_with_a_long_name", "caf\xc3\xa9"};
    aibox_image img = {0};
    aibox_plot_frame f;
    aibox_error e = {0};
    assert_int_equal(aibox_plot_confusion(&img, counts, 3, names, 3, "confusion", &f, &e), AIBOX_OK);
    printf("# confusion %dx%d, cells of %d px at (%d, %d)\n", img.width, img.height, f.cell, f.x0, f.y0);
    assert_int_equal(f.cell, 72);
    assert_true(f.x0 > 0 && f.y0 > 0 && f.x0 + 3 * f.cell < img.width && f.y0 + 3 * f.cell < img.height);
    assert_int_equal(img.channels, 3);
    /* a cell's corner (away from its count) has its heat colour; darker for a larger share of the row */
    double l[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            int x = f.x0 + j * f.cell + 3, y = f.y0 + i * f.cell + 3;
            l[i][j] = luma(&img, x, y);
            uint8_t want[3] = {215, 215, 215};
            if (i < 2) aibox_plot_heat(counts[i * 3 + j] / (i == 0 ? 100.0 : 10.0), want);
            assert_true(is(&img, x, y, want));
        }
    assert_true(l[0][0] < l[0][1] && l[0][1] < l[0][2]);
    assert_true(l[1][1] < l[0][0] && l[1][0] > l[0][2]); /* all of a row is darkest, none lightest */
    assert_true(l[2][0] == l[2][1] && l[2][1] == l[2][2]);
    for (int k = 1; k <= 10; k++) {
        uint8_t a[3], b[3];
        aibox_plot_heat((k - 1) / 10.0, a);
        aibox_plot_heat(k / 10.0, b);
        assert_true(0.299 * b[0] + 0.587 * b[1] + 0.114 * b[2] < 0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2]);
    }
    /* counts are written: the centre of cell (0, 0) has ink that is not its colour */
    uint8_t fill[3];
    aibox_plot_heat(0.5, fill);
    int ink = 0;
    for (int y = f.y0 + f.cell / 3; y < f.y0 + 2 * f.cell / 3; y++)
        for (int x = f.x0 + f.cell / 4; x < f.x0 + 3 * f.cell / 4; x++) ink += !is(&img, x, y, fill);
    assert_true(ink > 20);
    aibox_image_free(&img);

    /* many classes: small cells, no names, still a picture; bad input refused */
    enum { K = 300 };
    long *big = calloc((size_t)K * K, sizeof *big);
    for (int i = 0; i < K; i++) big[i * K + i] = 3, big[i * K + (i + 1) % K] = 1;
    assert_int_equal(aibox_plot_confusion(&img, big, K, NULL, 0, NULL, &f, &e), AIBOX_OK);
    assert_int_equal(f.cell, 2);
    assert_true(luma(&img, f.x0, f.y0) < luma(&img, f.x0 + 2, f.y0)); /* 3/4 darker than 1/4 */
    aibox_image_free(&img);
    big[5] = -1;
    assert_int_equal(aibox_plot_confusion(&img, big, K, NULL, 0, NULL, &f, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_plot_confusion(&img, big, 0, NULL, 0, NULL, &f, &e), AIBOX_E_INVALID);
    free(big);
}

/* One string drawn at scale 1 on a fresh white 64 x 16 canvas. */
static void render(uint8_t *px, const char *s)
{
    aibox_image img = {64, 16, 3, px};
    memset(px, 255, 64 * 16 * 3);
    const uint8_t black[3] = {0, 0, 0};
    aibox_plot_text(&img, 1, 1, s, 1, black);
}

static void test_font(void **state)
{
    static uint8_t a[64 * 16 * 3], b[64 * 16 * 3];
    /* every printable character but the space has ink, and no two look alike */
    for (int c = 33; c < 127; c++) {
        char s[2] = {(char)c, 0};
        render(a, s);
        int ink = 0;
        for (size_t i = 0; i < sizeof a; i++) ink += a[i] == 0;
        assert_true(ink > 0);
        for (int d = 33; d < c; d++) {
            char t[2] = {(char)d, 0};
            render(b, t);
            if (!memcmp(a, b, sizeof a)) fail_msg("'%c' and '%c' look the same", c, d);
        }
    }
    /* widths: 6 pixels a character less the last gap, times the scale */
    assert_int_equal(aibox_plot_text_width("0123456789", 1), 59);
    assert_int_equal(aibox_plot_text_width("12", 2), 22);
    assert_int_equal(aibox_plot_text_width("", 3), 0);
    /* a character beyond ASCII is one '?', whatever its UTF-8 length */
    render(a, "caf\xc3\xa9");
    render(b, "caf?");
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(aibox_plot_text_width("\xe2\x82\xac", 1), 5);
    /* clipped at the edges, never outside the picture */
    aibox_image img = {64, 16, 3, a};
    const uint8_t black[3] = {0, 0, 0};
    assert_int_equal(aibox_plot_text(&img, 50, 10, "88888", 3, black), 87);
    aibox_plot_text(&img, -40, -5, "WWWW", 2, black);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curves),
        cmocka_unit_test(test_confusion),
        cmocka_unit_test(test_font),
    };
    return cmocka_run_group_tests_name("plot", tests, NULL, NULL);
}
