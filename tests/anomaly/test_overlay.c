/* Heatmap overlays and binary masks: sizes and channels, the colour map at
 * hand-computed points (r, g, b = clamp(1.5 - |4v - 3|), clamp(1.5 - |4v - 2|),
 * clamp(1.5 - |4v - 1|), blended alpha * 255 * colour + (1 - alpha) * pixel,
 * rounded: exact byte values), cold versus hot pixels, map resizing, and
 * refusals of bad arguments. */
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
#include "common/check.h"

static aibox_image grey(int w, int h, uint8_t v)
{
    aibox_image img = {w, h, 1, malloc((size_t)w * h)};
    assert_non_null(img.data);
    memset(img.data, v, (size_t)w * h);
    return img;
}

static void expect_px(const aibox_image *img, int x, int y, int r, int g, int b)
{
    const uint8_t *p = img->data + ((size_t)y * img->width + x) * 3;
    if (p[0] != r || p[1] != g || p[2] != b)
        fail_msg("pixel (%d,%d): got (%d,%d,%d), want (%d,%d,%d)", x, y, p[0], p[1], p[2], r, g, b);
}

static void test_overlay_colours(void **state)
{
    (void)state;
    aibox_image img = grey(9, 1, 100), out;
    aibox_error err = {0};
    /* v = -1 (clamped), 0, .25, .5, .75, 1, 2 (clamped), NaN, and 0.5 via lo/hi */
    const float map[9] = {-1.0f, 0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 2.0f, NAN, 0.5f};
    assert_int_equal(aibox_heatmap_overlay(&out, &img, map, 9, 1, 0.0f, 1.0f, 1.0f, &err), AIBOX_OK);
    assert_int_equal(out.width, 9);
    assert_int_equal(out.height, 1);
    assert_int_equal(out.channels, 3);
    expect_px(&out, 0, 0, 0, 0, 128);     /* below lo: as lo, dark blue */
    expect_px(&out, 1, 0, 0, 0, 128);
    expect_px(&out, 2, 0, 0, 128, 255);   /* sky blue */
    expect_px(&out, 3, 0, 128, 255, 128); /* light green */
    expect_px(&out, 4, 0, 255, 128, 0);   /* orange */
    expect_px(&out, 5, 0, 128, 0, 0);     /* dark red */
    expect_px(&out, 6, 0, 128, 0, 0);     /* above hi: as hi */
    expect_px(&out, 7, 0, 128, 0, 0);     /* NaN fails: hot */
    aibox_image_free(&out);
    /* another range: lo 10, hi 20 puts 15 at the middle; alpha 0 keeps the image */
    const float m2[9] = {10, 15, 20, 12.5f, 17.5f, 0, 0, 0, 0};
    assert_int_equal(aibox_heatmap_overlay(&out, &img, m2, 9, 1, 10.0f, 20.0f, 1.0f, &err), AIBOX_OK);
    expect_px(&out, 0, 0, 0, 0, 128);
    expect_px(&out, 1, 0, 128, 255, 128);
    expect_px(&out, 2, 0, 128, 0, 0);
    expect_px(&out, 3, 0, 0, 128, 255);
    expect_px(&out, 4, 0, 255, 128, 0);
    aibox_image_free(&out);
    assert_int_equal(aibox_heatmap_overlay(&out, &img, m2, 9, 1, 10.0f, 20.0f, 0.0f, &err), AIBOX_OK);
    for (int x = 0; x < 9; x++) expect_px(&out, x, 0, 100, 100, 100);
    aibox_image_free(&out);
    aibox_image_free(&img);
}

static void test_overlay_blend_rgb(void **state)
{
    (void)state;
    /* RGB and RGBA pixels (10, 200, 30) at v = 1 (colour .5, 0, 0), alpha .5:
     * r = 63.75 + 5 = 68.75 -> 69, g = 100, b = 15 */
    for (int c = 3; c <= 4; c++) {
        aibox_image img = {2, 1, c, calloc(2, (size_t)c)}, out;
        assert_non_null(img.data);
        for (int x = 0; x < 2; x++) {
            img.data[x * c + 0] = 10, img.data[x * c + 1] = 200, img.data[x * c + 2] = 30;
            if (c == 4) img.data[x * c + 3] = 7; /* alpha: ignored */
        }
        const float map[2] = {1.0f, 0.0f};
        assert_int_equal(aibox_heatmap_overlay(&out, &img, map, 2, 1, 0.0f, 1.0f, 0.5f, NULL), AIBOX_OK);
        assert_int_equal(out.channels, 3);
        expect_px(&out, 0, 0, 69, 100, 15);
        /* v = 0: colour (0, 0, .5): b = 63.75 + 15 = 78.75 -> 79 */
        expect_px(&out, 1, 0, 5, 100, 79);
        aibox_image_free(&out);
        aibox_image_free(&img);
    }
}

/* A map smaller than the image is resized bilinearly first: the overlay
 * equals the one of the pre-resized map, and the hot side ends up red, the
 * cold side blue. */
static void test_overlay_resized_map(void **state)
{
    (void)state;
    aibox_image img = grey(64, 48, 128), a, b;
    float map[4 * 3], big[64 * 48];
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 4; x++) map[y * 4 + x] = (float)x / 3.0f; /* cold left, hot right */
    aibox_error err = {0};
    assert_int_equal(aibox_heatmap_overlay(&a, &img, map, 4, 3, 0.0f, 1.0f, 0.6f, &err), AIBOX_OK);
    assert_int_equal(a.width, 64);
    assert_int_equal(a.height, 48);
    assert_int_equal(a.channels, 3);
    assert_int_equal(aibox_map_resize(map, 4, 3, big, 64, 48, &err), AIBOX_OK);
    assert_int_equal(aibox_heatmap_overlay(&b, &img, big, 64, 48, 0.0f, 1.0f, 0.6f, &err), AIBOX_OK);
    assert_memory_equal(a.data, b.data, (size_t)64 * 48 * 3);
    for (int y = 0; y < 48; y += 47) {
        const uint8_t *cold = a.data + (size_t)y * 64 * 3, *hot = a.data + ((size_t)y * 64 + 63) * 3;
        assert_true(cold[2] > cold[0]); /* blue over red */
        assert_true(hot[0] > hot[2]);   /* red over blue */
        assert_true(hot[0] > cold[0] && cold[2] > hot[2]);
    }
    aibox_image_free(&a);
    aibox_image_free(&b);
    aibox_image_free(&img);
}

static void test_overlay_bad_args(void **state)
{
    (void)state;
    aibox_image img = grey(4, 4, 50), out;
    float map[16] = {0};
    aibox_error err = {0};
    assert_int_equal(aibox_heatmap_overlay(NULL, &img, map, 4, 4, 0, 1, 0.5f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_heatmap_overlay(&out, NULL, map, 4, 4, 0, 1, 0.5f, &err), AIBOX_E_INVALID);
    assert_null(out.data);
    assert_int_equal(aibox_heatmap_overlay(&out, &img, NULL, 4, 4, 0, 1, 0.5f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_heatmap_overlay(&out, &img, map, 0, 4, 0, 1, 0.5f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_heatmap_overlay(&out, &img, map, 4, -1, 0, 1, 0.5f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_heatmap_overlay(&out, &img, map, 4, 4, 1, 1, 0.5f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_heatmap_overlay(&out, &img, map, 4, 4, 2, 1, 0.5f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_heatmap_overlay(&out, &img, map, 4, 4, NAN, 1, 0.5f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_heatmap_overlay(&out, &img, map, 4, 4, 0, INFINITY, 0.5f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_heatmap_overlay(&out, &img, map, 4, 4, 0, 1, -0.1f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_heatmap_overlay(&out, &img, map, 4, 4, 0, 1, 1.5f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_heatmap_overlay(&out, &img, map, 4, 4, 0, 1, NAN, NULL), AIBOX_E_INVALID);
    assert_int_equal(aibox_heatmap_overlay(&img, &img, map, 4, 4, 0, 1, 0.5f, &err), AIBOX_E_INVALID);
    printf("  refused as expected: %s\n", err.msg);
    aibox_image bad = {4, 4, 2, img.data}; /* two channels */
    assert_int_equal(aibox_heatmap_overlay(&out, &bad, map, 4, 4, 0, 1, 0.5f, &err), AIBOX_E_INVALID);
    assert_null(out.data);
    assert_int_equal(out.width, 0);
    aibox_image_free(&img);
}

static void test_mask(void **state)
{
    (void)state;
    const float map[6] = {0.1f, 0.5f, 0.49f, NAN, 0.7f, -2.0f};
    aibox_image m;
    aibox_error err = {0};
    assert_int_equal(aibox_map_mask(&m, map, 3, 2, 0.5f, &err), AIBOX_OK);
    assert_int_equal(m.width, 3);
    assert_int_equal(m.height, 2);
    assert_int_equal(m.channels, 1);
    const uint8_t want[6] = {0, 255, 0, 255, 255, 0}; /* inclusive; a NaN pixel fails: defect */
    assert_memory_equal(m.data, want, 6);
    aibox_image_free(&m);
    assert_int_equal(aibox_map_mask(NULL, map, 3, 2, 0.5f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_mask(&m, NULL, 3, 2, 0.5f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_mask(&m, map, 0, 2, 0.5f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_mask(&m, map, 3, -2, 0.5f, &err), AIBOX_E_INVALID);
    assert_int_equal(aibox_map_mask(&m, map, 3, 2, NAN, NULL), AIBOX_E_INVALID);
    assert_null(m.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overlay_colours),
        cmocka_unit_test(test_overlay_blend_rgb),
        cmocka_unit_test(test_overlay_resized_map),
        cmocka_unit_test(test_overlay_bad_args),
        cmocka_unit_test(test_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
