/* Training augmentations (the AI-Box nine plus Keras's shear and zoom) and
 * the AI-Box chain: one random kind, then another with probability p, ...
 * Every draw comes from the rng passed in, so a seed fixes the result. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data/data.h"

static const char *const kind_names[AIBOX_AUG_KIND_COUNT] = {
    "brightness", "contrast", "flip", "hue", "saturation", "jpeg", "rotation", "blur", "crop", "shear", "zoom",
};

const char *aibox_augment_name(aibox_augment_kind k)
{
    return (unsigned)k < AIBOX_AUG_KIND_COUNT ? kind_names[k] : NULL;
}

static void known_list(char *buf, size_t size)
{
    aibox_augment_format(AIBOX_AUG_ALL, buf, size);
    size_t l = strlen(buf);
    snprintf(buf + l, size - l, ", none, all, aibox");
}

aibox_status aibox_augment_parse(const char *list, unsigned *mask, aibox_error *err)
{
    if (!list || !mask) return aibox_fail(err, AIBOX_E_INVALID, "augmentations: NULL argument");
    unsigned m = 0;
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t')) p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        char known[256];
        if (n == 0) {
            known_list(known, sizeof known);
            return aibox_fail(err, AIBOX_E_INVALID, "augmentations '%s': an empty name (known: %s)", list, known);
        }
        int found = 0;
        if (n == 4 && !strncasecmp(p, "none", 4)) found = 1;
        else if (n == 3 && !strncasecmp(p, "all", 3)) found = 1, m |= AIBOX_AUG_ALL;
        else if (n == 5 && !strncasecmp(p, "aibox", 5)) found = 1, m |= AIBOX_AUG_AIBOX_NINE;
        for (int k = 0; !found && k < AIBOX_AUG_KIND_COUNT; k++)
            if (strlen(kind_names[k]) == n && !strncasecmp(p, kind_names[k], n)) found = 1, m |= AIBOX_AUG_BIT(k);
        if (!found) {
            known_list(known, sizeof known);
            return aibox_fail(err, AIBOX_E_INVALID, "unknown augmentation '%.*s' (known: %s)", (int)n, p, known);
        }
        if (!end) break;
        p = end + 1;
    }
    *mask = m;
    return AIBOX_OK;
}

void aibox_augment_format(unsigned mask, char *buf, size_t size)
{
    if (!buf || !size) return;
    buf[0] = 0;
    size_t l = 0;
    for (int k = 0; k < AIBOX_AUG_KIND_COUNT; k++)
        if (mask & AIBOX_AUG_BIT(k)) {
            int w = snprintf(buf + l, size - l, "%s%s", l ? "," : "", kind_names[k]);
            if (w < 0 || (size_t)w >= size - l) return; /* truncated, still terminated */
            l += (size_t)w;
        }
    if (!l) snprintf(buf, size, "none");
}

/* ------------------------------------------------------------ helpers */

/* Channels that carry colour (RGBA's alpha is left alone). */
static int colour_channels(const aibox_image *img) { return img->channels == 4 ? 3 : img->channels; }

static uint8_t clamp_u8(float v)
{
    v = v + 0.5f; /* round half up: values here are never far below 0 */
    return v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)v;
}

static size_t pixels(const aibox_image *img) { return (size_t)img->width * (size_t)img->height; }

static float uniform(aibox_rng *r, float lo, float hi) { return lo + (hi - lo) * aibox_rng_uniform(r); }

/* Index into [0, n) mirrored at the edges without repeating the edge pixel
 * (OpenCV's BORDER_REFLECT_101), periodic for far-away coordinates. */
static int reflect(int i, int n)
{
    if (n == 1) return 0;
    int period = 2 * n - 2;
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

static void replace_data(aibox_image *img, uint8_t *data)
{
    free(img->data);
    img->data = data;
}

/* ------------------------------------------------------------ photometric */

void aibox_aug_brightness(aibox_image *img, float delta)
{
    const int cc = colour_channels(img), ch = img->channels;
    const float add = delta * 255.0f;
    const size_t np = pixels(img);
    for (size_t i = 0; i < np; i++)
        for (int c = 0; c < cc; c++) {
            uint8_t *v = &img->data[i * ch + c];
            *v = clamp_u8((float)*v + add);
        }
}

void aibox_aug_contrast(aibox_image *img, float factor)
{
    const int cc = colour_channels(img), ch = img->channels;
    const size_t np = pixels(img);
    for (int c = 0; c < cc; c++) {
        double sum = 0; /* exact for any image size: integers well below 2^53 */
        for (size_t i = 0; i < np; i++) sum += img->data[i * ch + c];
        const float mean = (float)(sum / (double)np);
        for (size_t i = 0; i < np; i++) {
            uint8_t *v = &img->data[i * ch + c];
            *v = clamp_u8(((float)*v - mean) * factor + mean);
        }
    }
}

void aibox_aug_flip(aibox_image *img, int vertical)
{
    const int w = img->width, h = img->height, ch = img->channels;
    const size_t row = (size_t)w * ch;
    if (vertical) {
        for (int y = 0; y < h / 2; y++) {
            uint8_t *a = img->data + (size_t)y * row, *b = img->data + (size_t)(h - 1 - y) * row;
            for (size_t i = 0; i < row; i++) {
                uint8_t t = a[i];
                a[i] = b[i], b[i] = t;
            }
        }
        return;
    }
    for (int y = 0; y < h; y++) {
        uint8_t *r = img->data + (size_t)y * row;
        for (int x = 0; x < w / 2; x++)
            for (int c = 0; c < ch; c++) {
                uint8_t *a = &r[(size_t)x * ch + c], *b = &r[(size_t)(w - 1 - x) * ch + c];
                uint8_t t = *a;
                *a = *b, *b = t;
            }
    }
}

/* HSV with h in [0, 1) */
static void rgb_to_hsv(float r, float g, float b, float *h, float *s, float *v)
{
    float mx = fmaxf(r, fmaxf(g, b)), mn = fminf(r, fminf(g, b)), d = mx - mn;
    *v = mx;
    *s = mx > 0 ? d / mx : 0;
    if (d <= 0) {
        *h = 0;
        return;
    }
    float hh;
    if (mx == r) hh = (g - b) / d;
    else if (mx == g) hh = (b - r) / d + 2.0f;
    else hh = (r - g) / d + 4.0f;
    hh /= 6.0f;
    *h = hh < 0 ? hh + 1.0f : hh;
}

static void hsv_to_rgb(float h, float s, float v, float *r, float *g, float *b)
{
    h = (h - floorf(h)) * 6.0f;
    int i = (int)h;
    if (i > 5) i = 5;
    float f = h - (float)i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    switch (i) {
    case 0: *r = v, *g = t, *b = p; break;
    case 1: *r = q, *g = v, *b = p; break;
    case 2: *r = p, *g = v, *b = t; break;
    case 3: *r = p, *g = q, *b = v; break;
    case 4: *r = t, *g = p, *b = v; break;
    default: *r = v, *g = p, *b = q; break;
    }
}

/* Hue shift (fraction of the circle) and saturation factor in one pass. */
static void hsv_adjust(aibox_image *img, float shift, float sat)
{
    if (colour_channels(img) < 3) return; /* grey has no hue or saturation */
    const int ch = img->channels;
    const size_t np = pixels(img);
    for (size_t i = 0; i < np; i++) {
        uint8_t *px = img->data + i * ch;
        float h, s, v, r, g, b;
        rgb_to_hsv(px[0] / 255.0f, px[1] / 255.0f, px[2] / 255.0f, &h, &s, &v);
        s = fminf(1.0f, s * sat);
        hsv_to_rgb(h + shift, s, v, &r, &g, &b);
        px[0] = clamp_u8(r * 255.0f), px[1] = clamp_u8(g * 255.0f), px[2] = clamp_u8(b * 255.0f);
    }
}

void aibox_aug_hue(aibox_image *img, float shift) { hsv_adjust(img, shift, 1.0f); }
void aibox_aug_saturation(aibox_image *img, float factor) { hsv_adjust(img, 0.0f, factor); }

aibox_status aibox_aug_jpeg(aibox_image *img, int quality, aibox_error *err)
{
    const int cc = colour_channels(img);
    aibox_image colour = {0}, dec = {0}, conv = {0};
    const aibox_image *src = img;
    uint8_t *bytes = NULL;
    size_t len = 0;
    aibox_status s = AIBOX_OK;
    if (cc != img->channels) { /* JPEG has no alpha: code the colour, keep the alpha */
        if ((s = aibox_image_convert(&colour, img, cc, err))) return s;
        src = &colour;
    }
    if (!(s = aibox_image_encode_jpg(src, quality, &bytes, &len, err)))
        s = aibox_image_decode(&dec, bytes, len, "jpeg augmentation", 0, err);
    free(bytes);
    const aibox_image *res = &dec;
    if (!s && dec.channels != cc) {
        s = aibox_image_convert(&conv, &dec, cc, err);
        res = &conv;
    }
    if (!s && (res->width != img->width || res->height != img->height))
        s = aibox_fail(err, AIBOX_E_STATE, "jpeg augmentation: %dx%d came back as %dx%d", img->width, img->height,
                       res->width, res->height);
    if (!s) {
        const size_t np = pixels(img);
        for (size_t i = 0; i < np; i++)
            for (int c = 0; c < cc; c++) img->data[i * img->channels + c] = res->data[i * cc + c];
    }
    aibox_image_free(&colour);
    aibox_image_free(&dec);
    aibox_image_free(&conv);
    return s;
}

/* ------------------------------------------------------------ geometric */

aibox_status aibox_aug_warp(aibox_image *img, const float m[4], aibox_error *err)
{
    const int w = img->width, h = img->height, ch = img->channels;
    uint8_t *out = malloc(pixels(img) * (size_t)ch);
    if (!out) return aibox_fail(err, AIBOX_E_NOMEM, "augmentation: out of memory");
    const float cx = (float)(w - 1) * 0.5f, cy = (float)(h - 1) * 0.5f;
    const uint8_t *src = img->data;
    for (int y = 0; y < h; y++) {
        const float dy = (float)y - cy;
        for (int x = 0; x < w; x++) {
            const float dx = (float)x - cx;
            const float sx = m[0] * dx + m[1] * dy + cx, sy = m[2] * dx + m[3] * dy + cy;
            const float fx0 = floorf(sx), fy0 = floorf(sy);
            const float fx = sx - fx0, fy = sy - fy0;
            /* clamp far-out coordinates before the int conversion */
            const int x0 = (int)fmaxf(-1e6f, fminf(1e6f, fx0)), y0 = (int)fmaxf(-1e6f, fminf(1e6f, fy0));
            const int xa = reflect(x0, w), xb = reflect(x0 + 1, w), ya = reflect(y0, h), yb = reflect(y0 + 1, h);
            const uint8_t *p00 = src + ((size_t)ya * w + xa) * ch, *p01 = src + ((size_t)ya * w + xb) * ch;
            const uint8_t *p10 = src + ((size_t)yb * w + xa) * ch, *p11 = src + ((size_t)yb * w + xb) * ch;
            uint8_t *o = out + ((size_t)y * w + x) * ch;
            for (int c = 0; c < ch; c++) {
                /* a + (b - a) * 0 == a exactly, so integer positions copy */
                const float top = p00[c] + ((float)p01[c] - p00[c]) * fx;
                const float bot = p10[c] + ((float)p11[c] - p10[c]) * fx;
                o[c] = clamp_u8(top + (bot - top) * fy);
            }
        }
    }
    replace_data(img, out);
    return AIBOX_OK;
}

aibox_status aibox_aug_rotate(aibox_image *img, float degrees, aibox_error *err)
{
    /* inverse map of a counter-clockwise turn on screen (y down) */
    const double t = degrees * (3.14159265358979323846 / 180.0);
    const float c = (float)cos(t), s = (float)sin(t);
    const float m[4] = {c, -s, s, c};
    return aibox_aug_warp(img, m, err);
}

aibox_status aibox_aug_shear(aibox_image *img, float degrees, aibox_error *err)
{
    /* Keras's apply_affine_transform: [[1, -sin(shear)], [0, cos(shear)]] */
    const double t = degrees * (3.14159265358979323846 / 180.0);
    const float m[4] = {1.0f, (float)-sin(t), 0.0f, (float)cos(t)};
    return aibox_aug_warp(img, m, err);
}

aibox_status aibox_aug_zoom(aibox_image *img, float zx, float zy, aibox_error *err)
{
    const float m[4] = {zx, 0.0f, 0.0f, zy}; /* Keras: output coordinates times z */
    return aibox_aug_warp(img, m, err);
}

#define BLUR_MAX_RADIUS 8

aibox_status aibox_aug_blur(aibox_image *img, float sigma, aibox_error *err)
{
    if (!(sigma > 0)) return AIBOX_OK;
    const int w = img->width, h = img->height, ch = img->channels;
    int r = (int)ceilf(3.0f * sigma);
    if (r > BLUR_MAX_RADIUS) r = BLUR_MAX_RADIUS;
    float k[2 * BLUR_MAX_RADIUS + 1], sum = 0;
    for (int i = -r; i <= r; i++) sum += k[i + r] = expf(-(float)(i * i) / (2.0f * sigma * sigma));
    for (int i = 0; i <= 2 * r; i++) k[i] /= sum;
    float *tmp = malloc(pixels(img) * (size_t)ch * sizeof *tmp);
    if (!tmp) return aibox_fail(err, AIBOX_E_NOMEM, "augmentation: out of memory");
    /* separable: rows into floats, then columns back to bytes */
    for (int y = 0; y < h; y++) {
        const uint8_t *row = img->data + (size_t)y * w * ch;
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++) {
                float a = 0;
                for (int i = -r; i <= r; i++) a += k[i + r] * row[(size_t)reflect(x + i, w) * ch + c];
                tmp[((size_t)y * w + x) * ch + c] = a;
            }
    }
    const int cc = colour_channels(img);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < cc; c++) { /* alpha keeps its values */
                float a = 0;
                for (int i = -r; i <= r; i++) a += k[i + r] * tmp[((size_t)reflect(y + i, h) * w + x) * ch + c];
                img->data[((size_t)y * w + x) * ch + c] = clamp_u8(a);
            }
    free(tmp);
    return AIBOX_OK;
}

aibox_status aibox_aug_crop(aibox_image *img, int x, int y, int w, int h, aibox_error *err)
{
    if (x < 0 || y < 0 || w < 1 || h < 1 || x + w > img->width || y + h > img->height)
        return aibox_fail(err, AIBOX_E_INVALID, "crop %dx%d at (%d, %d) is outside the %dx%d image", w, h, x, y,
                          img->width, img->height);
    if (w == img->width && h == img->height) return AIBOX_OK;
    const int ch = img->channels;
    aibox_image win = {w, h, ch, malloc((size_t)w * h * ch)}, big = {0};
    if (!win.data) return aibox_fail(err, AIBOX_E_NOMEM, "augmentation: out of memory");
    for (int r = 0; r < h; r++)
        memcpy(win.data + (size_t)r * w * ch, img->data + ((size_t)(y + r) * img->width + x) * ch, (size_t)w * ch);
    aibox_status s = aibox_image_resize(&big, &win, img->width, img->height, AIBOX_RESIZE_AREA, err);
    aibox_image_free(&win);
    if (s) return s;
    if (big.width != img->width || big.height != img->height || big.channels != ch) {
        aibox_image_free(&big);
        return aibox_fail(err, AIBOX_E_STATE, "crop augmentation: the resize returned another shape");
    }
    replace_data(img, big.data);
    return AIBOX_OK;
}

/* ------------------------------------------------------------ random application */

static aibox_status check_image(const aibox_image *img, aibox_error *err)
{
    if (!img || !img->data || img->width < 1 || img->height < 1 ||
        (img->channels != 1 && img->channels != 3 && img->channels != 4))
        return aibox_fail(err, AIBOX_E_INVALID, "augmentation: not a valid image (1, 3 or 4 channels)");
    return AIBOX_OK;
}

static aibox_status apply_kind(aibox_image *img, aibox_augment_kind k, aibox_rng *r, aibox_error *err)
{
    switch (k) {
    case AIBOX_AUG_BRIGHTNESS: aibox_aug_brightness(img, uniform(r, -0.2f, 0.2f)); return AIBOX_OK;
    case AIBOX_AUG_CONTRAST: aibox_aug_contrast(img, uniform(r, 0.7f, 1.3f)); return AIBOX_OK;
    case AIBOX_AUG_FLIP: aibox_aug_flip(img, (int)aibox_rng_below(r, 2)); return AIBOX_OK;
    case AIBOX_AUG_HUE: aibox_aug_hue(img, uniform(r, -0.1f, 0.1f)); return AIBOX_OK;
    case AIBOX_AUG_SATURATION: aibox_aug_saturation(img, uniform(r, 0.6f, 1.4f)); return AIBOX_OK;
    case AIBOX_AUG_JPEG: return aibox_aug_jpeg(img, 30 + (int)aibox_rng_below(r, 66), err);
    case AIBOX_AUG_ROTATION: return aibox_aug_rotate(img, uniform(r, -20.0f, 20.0f), err);
    case AIBOX_AUG_BLUR: return aibox_aug_blur(img, uniform(r, 0.5f, 1.5f), err);
    case AIBOX_AUG_CROP: {
        const float side = sqrtf(uniform(r, 0.7f, 1.0f)); /* area fraction -> side fraction */
        int w = (int)lrintf((float)img->width * side), h = (int)lrintf((float)img->height * side);
        w = AIBOX_MAX(1, AIBOX_MIN(w, img->width)), h = AIBOX_MAX(1, AIBOX_MIN(h, img->height));
        const int x = (int)aibox_rng_below(r, (uint32_t)(img->width - w + 1));
        const int y = (int)aibox_rng_below(r, (uint32_t)(img->height - h + 1));
        return aibox_aug_crop(img, x, y, w, h, err);
    }
    case AIBOX_AUG_SHEAR: return aibox_aug_shear(img, uniform(r, -15.0f, 15.0f), err);
    case AIBOX_AUG_ZOOM: {
        const float zx = uniform(r, 0.8f, 1.2f), zy = uniform(r, 0.8f, 1.2f);
        return aibox_aug_zoom(img, zx, zy, err);
    }
    case AIBOX_AUG_KIND_COUNT: break;
    }
    return aibox_fail(err, AIBOX_E_INVALID, "augmentation: unknown kind %d", (int)k);
}

aibox_status aibox_augment_one(aibox_image *img, aibox_augment_kind k, aibox_rng *rng, aibox_error *err)
{
    aibox_status s = check_image(img, err);
    if (s) return s;
    if (!rng) return aibox_fail(err, AIBOX_E_INVALID, "augmentation: NULL rng");
    return apply_kind(img, k, rng, err);
}

aibox_status aibox_augment_chain(aibox_image *img, unsigned mask, float p, aibox_rng *rng, int *kinds, int *n,
                                 aibox_error *err)
{
    if (n) *n = 0;
    if (mask & ~AIBOX_AUG_ALL) return aibox_fail(err, AIBOX_E_INVALID, "augmentation mask 0x%x has unknown bits", mask);
    if (!(p >= 0.0f && p <= 1.0f))
        return aibox_fail(err, AIBOX_E_INVALID, "augmentation probability %g must be in [0, 1]", (double)p);
    if (!mask) return AIBOX_OK;
    aibox_status s = check_image(img, err);
    if (s) return s;
    if (!rng) return aibox_fail(err, AIBOX_E_INVALID, "augmentation: NULL rng");
    /* only kinds that can change this image: a no-op must not use up a step */
    int avail[AIBOX_AUG_KIND_COUNT], na = 0;
    for (int k = 0; k < AIBOX_AUG_KIND_COUNT; k++) {
        if (!(mask & AIBOX_AUG_BIT(k))) continue;
        if ((k == AIBOX_AUG_HUE || k == AIBOX_AUG_SATURATION) && colour_channels(img) < 3) continue;
        avail[na++] = k;
    }
    if (!na) return AIBOX_OK;
    int len = 0;
    do {
        const int k = avail[aibox_rng_below(rng, (uint32_t)na)];
        if ((s = apply_kind(img, (aibox_augment_kind)k, rng, err))) return s;
        if (kinds) kinds[len] = k;
        len++;
        if (n) *n = len;
    } while (len < AIBOX_AUG_MAX_CHAIN && aibox_rng_uniform(rng) < p);
    return AIBOX_OK;
}

aibox_status aibox_augment_apply(aibox_image *img, unsigned mask, float p, aibox_rng *rng, aibox_error *err)
{
    return aibox_augment_chain(img, mask, p, rng, NULL, NULL, err);
}
