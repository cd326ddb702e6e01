/* Augmentations: each kind does what aibox/data.h documents (exact where the
 * operation is exact), the chain's length follows p, seeds fix the result,
 * and the list parser names what it does not know. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "aibox/data.h"
#include "data/data.h"

/* ------------------------------------------------------------ helpers */

static aibox_image make(int w, int h, int ch)
{
    aibox_image img = {w, h, ch, malloc((size_t)w * h * ch)};
    assert_non_null(img.data);
    return img;
}

/* Noise: every pixel independent (for exact geometric checks). */
static aibox_image noise(int w, int h, int ch, uint64_t seed)
{
    aibox_image img = make(w, h, ch);
    aibox_rng r;
    aibox_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)w * h * ch; i++) img.data[i] = (uint8_t)aibox_rng_below(&r, 256);
    return img;
}

/* Smooth colour gradients with mid-range values (room to move either way). */
static aibox_image smooth(int w, int h, int ch)
{
    aibox_image img = make(w, h, ch);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++)
                img.data[((size_t)y * w + x) * ch + c] =
                    (uint8_t)(c == 3 ? 200 : 60 + (x * 90 / w + y * 50 / h + c * 30) % 140);
    return img;
}

static aibox_image clone(const aibox_image *src)
{
    aibox_image d;
    aibox_error e = {0};
    assert_int_equal(aibox_image_copy(&d, src, &e), AIBOX_OK);
    return d;
}

static size_t nbytes(const aibox_image *img) { return (size_t)img->width * img->height * img->channels; }

static int same(const aibox_image *a, const aibox_image *b)
{
    return a->width == b->width && a->height == b->height && a->channels == b->channels &&
           !memcmp(a->data, b->data, nbytes(a));
}

static uint8_t px(const aibox_image *img, int x, int y, int c)
{
    return img->data[((size_t)y * img->width + x) * img->channels + c];
}

static double mean_of(const aibox_image *img, int c)
{
    double s = 0;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++) s += px(img, x, y, c);
    return s / ((double)img->width * img->height);
}

static double var_of(const aibox_image *img, int c)
{
    double m = mean_of(img, c), s = 0;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++) s += (px(img, x, y, c) - m) * (px(img, x, y, c) - m);
    return s / ((double)img->width * img->height);
}

static int max_abs_diff(const aibox_image *a, const aibox_image *b)
{
    int m = 0;
    for (size_t i = 0; i < nbytes(a); i++) m = AIBOX_MAX(m, abs((int)a->data[i] - (int)b->data[i]));
    return m;
}

/* ------------------------------------------------------------ names */

static void test_parse(void **state)
{
    unsigned m = 123;
    aibox_error e = {0};
    assert_int_equal(aibox_augment_parse("brightness,flip", &m, &e), AIBOX_OK);
    assert_int_equal(m, AIBOX_AUG_BIT(AIBOX_AUG_BRIGHTNESS) | AIBOX_AUG_BIT(AIBOX_AUG_FLIP));
    assert_int_equal(aibox_augment_parse(" blur ,  Crop", &m, &e), AIBOX_OK);
    assert_int_equal(m, AIBOX_AUG_BIT(AIBOX_AUG_BLUR) | AIBOX_AUG_BIT(AIBOX_AUG_CROP));
    assert_int_equal(aibox_augment_parse("none", &m, &e), AIBOX_OK);
    assert_int_equal(m, 0);
    assert_int_equal(aibox_augment_parse("all", &m, &e), AIBOX_OK);
    assert_int_equal(m, AIBOX_AUG_ALL);
    assert_int_equal(aibox_augment_parse("aibox", &m, &e), AIBOX_OK);
    assert_int_equal(m, AIBOX_AUG_AIBOX_NINE);
    assert_false(m & AIBOX_AUG_BIT(AIBOX_AUG_SHEAR));
    assert_true(m & AIBOX_AUG_BIT(AIBOX_AUG_CROP));
    /* every name round-trips, and format() is parse()'s inverse */
    for (int k = 0; k < AIBOX_AUG_KIND_COUNT; k++) {
        assert_int_equal(aibox_augment_parse(aibox_augment_name((aibox_augment_kind)k), &m, &e), AIBOX_OK);
        assert_int_equal(m, AIBOX_AUG_BIT(k));
    }
    char buf[256];
    unsigned masks[] = {0, AIBOX_AUG_ALL, AIBOX_AUG_AIBOX_NINE, 0x155};
    for (int i = 0; i < 4; i++) {
        aibox_augment_format(masks[i], buf, sizeof buf);
        assert_int_equal(aibox_augment_parse(buf, &m, &e), AIBOX_OK);
        assert_int_equal(m, masks[i]);
    }
    assert_null(aibox_augment_name(AIBOX_AUG_KIND_COUNT));
    /* errors name the culprit and the known names, and leave the mask alone */
    m = 77;
    assert_int_equal(aibox_augment_parse("brightness,sharpen", &m, &e), AIBOX_E_INVALID);
    assert_int_equal(m, 77);
    assert_non_null(strstr(e.msg, "'sharpen'"));
    assert_non_null(strstr(e.msg, "saturation"));
    assert_int_equal(aibox_augment_parse("", &m, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_augment_parse("flip,,blur", &m, &e), AIBOX_E_INVALID);
    assert_non_null(strstr(e.msg, "empty"));
    assert_int_equal(aibox_augment_parse("flip,", &m, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_augment_parse(NULL, &m, &e), AIBOX_E_INVALID);
}

/* ------------------------------------------------------------ each kind */

static void test_flip(void **state)
{
    aibox_image a = noise(7, 5, 3, 1), b = clone(&a);
    aibox_aug_flip(&b, 0);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 7; x++)
            for (int c = 0; c < 3; c++) assert_int_equal(px(&b, x, y, c), px(&a, 6 - x, y, c));
    aibox_aug_flip(&b, 0);
    assert_true(same(&a, &b));
    aibox_aug_flip(&b, 1);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 7; x++)
            for (int c = 0; c < 3; c++) assert_int_equal(px(&b, x, y, c), px(&a, x, 4 - y, c));
    aibox_image_free(&a);
    aibox_image_free(&b);
    /* the random kind is one of the two, and both occur */
    aibox_image g = noise(6, 4, 1, 2);
    aibox_rng r;
    aibox_rng_seed(&r, 3);
    int seen_h = 0, seen_v = 0;
    for (int i = 0; i < 40; i++) {
        aibox_image h = clone(&g), v = clone(&g), t = clone(&g);
        aibox_aug_flip(&h, 0);
        aibox_aug_flip(&v, 1);
        assert_int_equal(aibox_augment_one(&t, AIBOX_AUG_FLIP, &r, NULL), AIBOX_OK);
        assert_true(same(&t, &h) || same(&t, &v));
        seen_h |= same(&t, &h), seen_v |= same(&t, &v);
        aibox_image_free(&h);
        aibox_image_free(&v);
        aibox_image_free(&t);
    }
    assert_true(seen_h && seen_v);
    aibox_image_free(&g);
}

static void test_brightness(void **state)
{
    aibox_image a = smooth(16, 12, 4);
    aibox_image prev = clone(&a);
    aibox_aug_brightness(&prev, -0.2f);
    /* monotonic in the delta, pixel by pixel; alpha untouched */
    for (float d = -0.15f; d <= 0.2001f; d += 0.05f) {
        aibox_image b = clone(&a);
        aibox_aug_brightness(&b, d);
        for (size_t i = 0; i < nbytes(&a); i++) {
            assert_true(b.data[i] >= prev.data[i]);
            if (i % 4 == 3) assert_int_equal(b.data[i], a.data[i]);
        }
        if (d > 0) assert_true(mean_of(&b, 0) > mean_of(&a, 0) + 255 * d - 1.5);
        aibox_image_free(&prev);
        prev = b;
    }
    aibox_image z = clone(&a);
    aibox_aug_brightness(&z, 0.0f);
    assert_true(same(&z, &a));
    aibox_image_free(&z);
    aibox_image_free(&prev);
    aibox_image_free(&a);
}

static void test_contrast(void **state)
{
    aibox_image a = smooth(20, 20, 3);
    aibox_image one = clone(&a), lo = clone(&a), hi = clone(&a);
    aibox_aug_contrast(&one, 1.0f);
    assert_true(same(&one, &a));
    aibox_aug_contrast(&lo, 0.7f);
    aibox_aug_contrast(&hi, 1.3f);
    for (int c = 0; c < 3; c++) {
        /* variance scales by f^2 (up to rounding); the mean stays */
        assert_true(fabs(var_of(&lo, c) - 0.49 * var_of(&a, c)) < 0.05 * var_of(&a, c) + 1);
        assert_true(fabs(var_of(&hi, c) - 1.69 * var_of(&a, c)) < 0.05 * var_of(&a, c) + 1);
        assert_true(fabs(mean_of(&lo, c) - mean_of(&a, c)) < 0.6);
        assert_true(fabs(mean_of(&hi, c) - mean_of(&a, c)) < 0.6);
    }
    aibox_image_free(&one);
    aibox_image_free(&lo);
    aibox_image_free(&hi);
    aibox_image_free(&a);
}

static void test_hue_saturation(void **state)
{
    /* pure red turns green after a third of the circle, blue after two */
    aibox_image r = make(1, 1, 3);
    r.data[0] = 255, r.data[1] = 0, r.data[2] = 0;
    aibox_aug_hue(&r, 1.0f / 3);
    assert_int_equal(r.data[0], 0);
    assert_int_equal(r.data[1], 255);
    assert_int_equal(r.data[2], 0);
    aibox_aug_hue(&r, 1.0f / 3);
    assert_int_equal(r.data[2], 255);
    aibox_image_free(&r);
    /* no shift and factor 1 change at most rounding; saturation 0 gives grey */
    aibox_image a = smooth(12, 10, 3), b = clone(&a), c = clone(&a);
    aibox_aug_hue(&b, 0.0f);
    aibox_aug_saturation(&c, 1.0f);
    assert_true(max_abs_diff(&a, &b) <= 1);
    assert_true(max_abs_diff(&a, &c) <= 1);
    aibox_aug_saturation(&c, 0.0f);
    for (int i = 0; i < 120; i++) {
        assert_int_equal(c.data[3 * i], c.data[3 * i + 1]);
        assert_int_equal(c.data[3 * i], c.data[3 * i + 2]);
    }
    /* more saturation spreads the channels apart */
    aibox_image_free(&b);
    b = clone(&a);
    aibox_aug_saturation(&b, 1.4f);
    double spread_a = 0, spread_b = 0;
    for (int i = 0; i < 120; i++) {
        spread_a += abs(a.data[3 * i] - a.data[3 * i + 2]);
        spread_b += abs(b.data[3 * i] - b.data[3 * i + 2]);
    }
    assert_true(spread_b > spread_a * 1.2);
    /* grey images and grey content are left alone */
    aibox_image g = noise(9, 9, 1, 4), g2 = clone(&g);
    aibox_aug_hue(&g2, 0.3f);
    aibox_aug_saturation(&g2, 0.5f);
    assert_true(same(&g, &g2));
    aibox_image grey_rgb = make(4, 4, 3);
    for (int i = 0; i < 48; i++) grey_rgb.data[i] = (uint8_t)(i / 3 * 13);
    aibox_image gr2 = clone(&grey_rgb);
    aibox_aug_hue(&gr2, 0.25f);
    aibox_aug_saturation(&gr2, 1.4f);
    assert_true(same(&grey_rgb, &gr2));
    aibox_image_free(&a);
    aibox_image_free(&b);
    aibox_image_free(&c);
    aibox_image_free(&g);
    aibox_image_free(&g2);
    aibox_image_free(&grey_rgb);
    aibox_image_free(&gr2);
}

static void test_jpeg(void **state)
{
    aibox_error e = {0};
    const int chans[] = {1, 3, 4};
    for (int t = 0; t < 3; t++) {
        aibox_image a = smooth(33, 21, chans[t]), b = clone(&a);
        /* noise makes JPEG visibly lossy even at these sizes */
        for (size_t i = 0; i < nbytes(&a); i += 7) a.data[i] ^= 0x3c, b.data[i] ^= 0x3c;
        assert_int_equal(aibox_aug_jpeg(&b, 30, &e), AIBOX_OK);
        assert_int_equal(b.width, 33);
        assert_int_equal(b.height, 21);
        assert_int_equal(b.channels, chans[t]);
        assert_false(same(&a, &b)); /* a real, lossy re-encode */
        if (chans[t] == 4)
            for (size_t i = 3; i < nbytes(&a); i += 4) assert_int_equal(b.data[i], a.data[i]);
        if (chans[t] == 3) { /* exactly what the encoder and decoder make */
            uint8_t *bytes;
            size_t len;
            aibox_image d;
            assert_int_equal(aibox_image_encode_jpg(&a, 30, &bytes, &len, &e), AIBOX_OK);
            assert_int_equal(aibox_image_decode(&d, bytes, len, "test", 0, &e), AIBOX_OK);
            free(bytes);
            assert_true(same(&d, &b));
            aibox_image_free(&d);
        }
        aibox_image_free(&a);
        aibox_image_free(&b);
    }
}

static void test_rotation(void **state)
{
    aibox_error e = {0};
    aibox_image a = noise(9, 9, 3, 5), b = clone(&a);
    assert_int_equal(aibox_aug_rotate(&b, 0.0f, &e), AIBOX_OK);
    assert_true(same(&a, &b)); /* 0 degrees: identity, exactly */
    /* 90 degrees counter-clockwise on a square: dst(x, y) = src(w-1-y, x) */
    assert_int_equal(aibox_aug_rotate(&b, 90.0f, &e), AIBOX_OK);
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 9; x++)
            for (int c = 0; c < 3; c++) assert_int_equal(px(&b, x, y, c), px(&a, 8 - y, x, c));
    aibox_image_free(&b);
    /* a small turn keeps the size and moves pixels; the centre stays */
    aibox_image s = smooth(31, 17, 3), t = clone(&s);
    assert_int_equal(aibox_aug_rotate(&t, 15.0f, &e), AIBOX_OK);
    assert_int_equal(t.width, 31);
    assert_int_equal(t.height, 17);
    assert_false(same(&s, &t));
    for (int c = 0; c < 3; c++) assert_int_equal(px(&t, 15, 8, c), px(&s, 15, 8, c));
    aibox_image_free(&s);
    aibox_image_free(&t);
    aibox_image_free(&a);
}

static void test_shear_zoom(void **state)
{
    aibox_error e = {0};
    aibox_image a = noise(12, 10, 3, 6), b = clone(&a);
    assert_int_equal(aibox_aug_shear(&b, 0.0f, &e), AIBOX_OK);
    assert_true(same(&a, &b));
    assert_int_equal(aibox_aug_zoom(&b, 1.0f, 1.0f, &e), AIBOX_OK);
    assert_true(same(&a, &b));
    /* zoom factor 1/2 about the centre (odd size: centre on a pixel) doubles
     * distances: dst(c + 2k) = src(c + k) */
    aibox_image o = noise(11, 11, 1, 7), z = clone(&o);
    assert_int_equal(aibox_aug_zoom(&z, 0.5f, 0.5f, &e), AIBOX_OK);
    for (int k = -2; k <= 2; k++) assert_int_equal(px(&z, 5 + 2 * k, 5, 0), px(&o, 5 + k, 5, 0));
    /* zooming out reflects at the border: no constant fill */
    aibox_image_free(&z);
    z = clone(&o);
    assert_int_equal(aibox_aug_zoom(&z, 2.0f, 2.0f, &e), AIBOX_OK);
    /* dst(0) samples src(5 - 10) = src(-5), reflected = src(5) */
    assert_int_equal(px(&z, 0, 5, 0), px(&o, 5, 5, 0));
    /* shear moves rows sideways by a growing amount, keeps the centre row */
    aibox_image s = noise(15, 15, 1, 8), t = clone(&s);
    assert_int_equal(aibox_aug_shear(&t, 10.0f, &e), AIBOX_OK);
    assert_false(same(&s, &t));
    assert_int_equal(t.width, 15);
    aibox_image_free(&s);
    aibox_image_free(&t);
    aibox_image_free(&o);
    aibox_image_free(&z);
    aibox_image_free(&a);
    aibox_image_free(&b);
}

static void test_blur(void **state)
{
    aibox_error e = {0};
    aibox_image k = make(10, 10, 3);
    memset(k.data, 97, nbytes(&k));
    aibox_image k2 = clone(&k);
    assert_int_equal(aibox_aug_blur(&k2, 1.2f, &e), AIBOX_OK);
    assert_true(same(&k, &k2)); /* a constant image stays constant */
    /* a checkerboard loses most of its variation; the mean stays */
    aibox_image cb = make(16, 16, 1);
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++) cb.data[y * 16 + x] = (uint8_t)(((x + y) & 1) ? 200 : 40);
    aibox_image b = clone(&cb);
    assert_int_equal(aibox_aug_blur(&b, 1.0f, &e), AIBOX_OK);
    assert_true(var_of(&b, 0) < 0.05 * var_of(&cb, 0));
    assert_true(fabs(mean_of(&b, 0) - 120) < 1.0);
    /* a larger sigma smooths more (noise) */
    aibox_image n = noise(24, 24, 3, 9), n1 = clone(&n), n2 = clone(&n);
    assert_int_equal(aibox_aug_blur(&n1, 0.5f, &e), AIBOX_OK);
    assert_int_equal(aibox_aug_blur(&n2, 1.5f, &e), AIBOX_OK);
    assert_true(var_of(&n2, 0) < var_of(&n1, 0));
    assert_true(var_of(&n1, 0) < var_of(&n, 0));
    aibox_image_free(&k);
    aibox_image_free(&k2);
    aibox_image_free(&cb);
    aibox_image_free(&b);
    aibox_image_free(&n);
    aibox_image_free(&n1);
    aibox_image_free(&n2);
}

static void test_crop(void **state)
{
    aibox_error e = {0};
    /* left half dark, right half bright: cropping inside the left half gives
     * a uniformly dark image of the original size */
    aibox_image a = make(40, 30, 3);
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < 40; x++)
            for (int c = 0; c < 3; c++) a.data[((size_t)y * 40 + x) * 3 + c] = (uint8_t)(x < 20 ? 30 + c : 220);
    aibox_image b = clone(&a);
    assert_int_equal(aibox_aug_crop(&b, 2, 3, 16, 12, &e), AIBOX_OK);
    assert_int_equal(b.width, 40);
    assert_int_equal(b.height, 30);
    assert_int_equal(b.channels, 3);
    for (size_t i = 0; i < nbytes(&b); i++) assert_int_equal(b.data[i], 30 + i % 3);
    aibox_image c = clone(&a);
    assert_int_equal(aibox_aug_crop(&c, 0, 0, 40, 30, &e), AIBOX_OK); /* the whole image: unchanged */
    assert_true(same(&a, &c));
    assert_int_equal(aibox_aug_crop(&c, 30, 0, 16, 12, &e), AIBOX_E_INVALID);
    /* random crops keep the size and zoom in (the bright share changes) */
    aibox_rng r;
    aibox_rng_seed(&r, 10);
    int changed = 0;
    for (int i = 0; i < 10; i++) {
        aibox_image d = clone(&a);
        assert_int_equal(aibox_augment_one(&d, AIBOX_AUG_CROP, &r, &e), AIBOX_OK);
        assert_int_equal(d.width, 40);
        assert_int_equal(d.height, 30);
        changed += !same(&a, &d);
        aibox_image_free(&d);
    }
    assert_true(changed >= 8);
    aibox_image_free(&a);
    aibox_image_free(&b);
    aibox_image_free(&c);
}

/* ------------------------------------------------------------ the chain */

static void test_every_kind_random(void **state)
{
    /* each kind with random parameters keeps size and channels on every
     * channel count; it changes a textured image (within three draws: a
     * draw close to the identity, e.g. a tiny turn, may round to no change)
     * unless it is a colour kind on a grey image */
    aibox_error e = {0};
    aibox_rng r;
    aibox_rng_seed(&r, 11);
    for (int ch = 1; ch <= 4; ch++)
        for (int k = 0; ch != 2 && k < AIBOX_AUG_KIND_COUNT; k++) { /* aibox images have 1, 3 or 4 */
            const int noop = ch < 3 && (k == AIBOX_AUG_HUE || k == AIBOX_AUG_SATURATION);
            int changed = 0;
            for (int t = 0; t < 3; t++) {
                aibox_image a = smooth(21, 13, ch), b;
                for (size_t i = 0; i < nbytes(&a); i += 5) a.data[i] = (uint8_t)(a.data[i] + 40);
                b = clone(&a);
                assert_int_equal(aibox_augment_one(&b, (aibox_augment_kind)k, &r, &e), AIBOX_OK);
                assert_int_equal(b.width, 21);
                assert_int_equal(b.height, 13);
                assert_int_equal(b.channels, ch);
                changed += !same(&a, &b);
                aibox_image_free(&a);
                aibox_image_free(&b);
            }
            if (noop) assert_int_equal(changed, 0);
            else assert_true(changed > 0);
        }
}

static void test_determinism(void **state)
{
    aibox_error e = {0};
    aibox_image a = smooth(24, 20, 3);
    int differ = 0;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        aibox_image b = clone(&a), c = clone(&a), d = clone(&a);
        aibox_rng r1, r2, r3;
        aibox_rng_seed(&r1, seed);
        aibox_rng_seed(&r2, seed);
        aibox_rng_seed(&r3, seed + 100);
        assert_int_equal(aibox_augment_apply(&b, AIBOX_AUG_ALL, 0.6f, &r1, &e), AIBOX_OK);
        assert_int_equal(aibox_augment_apply(&c, AIBOX_AUG_ALL, 0.6f, &r2, &e), AIBOX_OK);
        assert_int_equal(aibox_augment_apply(&d, AIBOX_AUG_ALL, 0.6f, &r3, &e), AIBOX_OK);
        assert_true(same(&b, &c));
        assert_int_equal(r1.s[0], r2.s[0]); /* the same number of draws */
        differ += !same(&b, &d);
        aibox_image_free(&b);
        aibox_image_free(&c);
        aibox_image_free(&d);
    }
    assert_true(differ >= 5);
    aibox_image_free(&a);
}

static void test_chain_length(void **state)
{
    aibox_error e = {0};
    aibox_rng r;
    aibox_rng_seed(&r, 12);
    aibox_image a = smooth(12, 12, 3);
    int kinds[AIBOX_AUG_MAX_CHAIN], n, count[AIBOX_AUG_KIND_COUNT] = {0};
    const int draws = 6000;
    double sum = 0;
    for (int i = 0; i < draws; i++) {
        aibox_image b = clone(&a);
        assert_int_equal(aibox_augment_chain(&b, AIBOX_AUG_ALL, 0.6f, &r, kinds, &n, &e), AIBOX_OK);
        assert_true(n >= 1 && n <= AIBOX_AUG_MAX_CHAIN);
        sum += n;
        for (int j = 0; j < n; j++) count[kinds[j]]++;
        aibox_image_free(&b);
    }
    /* geometric: mean 1/(1-p) = 2.5 (2.4993 with the cap), sd 1.94/sqrt(draws) = 0.025 */
    const double mean = sum / draws;
    printf("mean chain length %.3f over %d draws (p = 0.6, expected 2.50)\n", mean, draws);
    assert_true(fabs(mean - 2.4993) < 0.1);
    /* kinds picked uniformly: each about sum/11 */
    for (int k = 0; k < AIBOX_AUG_KIND_COUNT; k++) assert_true(fabs(count[k] - sum / 11) < 0.15 * sum / 11);
    /* p = 0: one step; p = 1: the cap */
    aibox_image b = clone(&a);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(aibox_augment_chain(&b, AIBOX_AUG_ALL, 0.0f, &r, kinds, &n, &e), AIBOX_OK);
        assert_int_equal(n, 1);
    }
    assert_int_equal(aibox_augment_chain(&b, AIBOX_AUG_BIT(AIBOX_AUG_FLIP), 1.0f, &r, kinds, &n, &e), AIBOX_OK);
    assert_int_equal(n, AIBOX_AUG_MAX_CHAIN);
    aibox_image_free(&b);
    /* grey images never spend a step on hue or saturation */
    aibox_image g = smooth(12, 12, 1);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(aibox_augment_chain(&g, AIBOX_AUG_ALL, 0.6f, &r, kinds, &n, &e), AIBOX_OK);
        for (int j = 0; j < n; j++) assert_true(kinds[j] != AIBOX_AUG_HUE && kinds[j] != AIBOX_AUG_SATURATION);
    }
    const unsigned colour = AIBOX_AUG_BIT(AIBOX_AUG_HUE) | AIBOX_AUG_BIT(AIBOX_AUG_SATURATION);
    aibox_image g2 = clone(&g);
    assert_int_equal(aibox_augment_chain(&g2, colour, 0.6f, &r, kinds, &n, &e), AIBOX_OK);
    assert_int_equal(n, 0);
    assert_true(same(&g, &g2));
    aibox_image_free(&g);
    aibox_image_free(&g2);
    aibox_image_free(&a);
}

static void test_apply_errors(void **state)
{
    aibox_error e = {0};
    aibox_rng r;
    aibox_rng_seed(&r, 13);
    aibox_image a = smooth(8, 8, 3), b = clone(&a);
    assert_int_equal(aibox_augment_apply(&b, 0, 0.6f, &r, &e), AIBOX_OK); /* nothing enabled */
    assert_true(same(&a, &b));
    assert_int_equal(aibox_augment_apply(&b, AIBOX_AUG_ALL, 1.5f, &r, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_augment_apply(&b, AIBOX_AUG_ALL, -0.1f, &r, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_augment_apply(&b, AIBOX_AUG_ALL, NAN, &r, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_augment_apply(&b, 1u << 20, 0.5f, &r, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_augment_apply(NULL, AIBOX_AUG_ALL, 0.5f, &r, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_augment_apply(&b, AIBOX_AUG_ALL, 0.5f, NULL, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_augment_one(&b, AIBOX_AUG_KIND_COUNT, &r, &e), AIBOX_E_INVALID);
    assert_true(same(&a, &b));
    aibox_image_free(&a);
    aibox_image_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),          cmocka_unit_test(test_flip),
        cmocka_unit_test(test_brightness),     cmocka_unit_test(test_contrast),
        cmocka_unit_test(test_hue_saturation), cmocka_unit_test(test_jpeg),
        cmocka_unit_test(test_rotation),       cmocka_unit_test(test_shear_zoom),
        cmocka_unit_test(test_blur),           cmocka_unit_test(test_crop),
        cmocka_unit_test(test_every_kind_random), cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_chain_length),   cmocka_unit_test(test_apply_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
