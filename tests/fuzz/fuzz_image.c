/* libFuzzer target for image decoding through the library's own entries:
 * aibox_image_decode on the bytes (stb_image compiled in and instrumented,
 * see stb_impl.c), then what a decoded image goes through before a model
 * sees it: channel conversion to grey, RGB and RGBA, copies, every resize
 * mode to a small size taken from the input, and aibox_preprocess. The same
 * bytes also go through aibox_image_load from an in-memory file, capped at
 * one pixel so that second pass costs a header read, not a second decode.
 * Decoding is capped at 2^16 pixels and each resize mode runs once (the
 * antialiased AREA mode costs in proportion to the input, and instrumented
 * it is slow), so the fuzzer spends its time on parsing, not on giant blank
 * images; the cap's refusal path is covered too. */
#include <stddef.h>
#include <stdint.h>

#include "aibox.h"
#include "fuzz.h"

#define FUZZ_IMAGE_PIXELS (1 << 16)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void image_exercise(const aibox_image *img, const uint8_t *data, size_t size)
{
    aibox_error err = {0};
    /* target sizes from the last bytes: upscaling and downscaling both */
    int tw = 1 + (size > 1 ? data[size - 1] % 40 : 7), th = 1 + (size > 2 ? data[size - 2] % 40 : 5);
    static const int chans[3] = {1, 3, 4};
    aibox_image cv[3] = {{0}};
    for (int k = 0; k < 3; k++)
        if (aibox_image_convert(&cv[k], img, chans[k], &err) != AIBOX_OK) fuzz_expect_line("convert", err.msg);
    /* each mode once, on a channel count that varies with the input */
    for (int mode = 0; mode < 4; mode++) {
        const aibox_image *src = &cv[(mode + size) % 3];
        if (!src->data) continue;
        aibox_image r = {0};
        if (aibox_image_resize(&r, src, tw, th, (aibox_resize_mode)mode, &err) == AIBOX_OK) {
            if (r.width != tw || r.height != th || r.channels != src->channels) abort();
            aibox_image_free(&r);
        } else {
            fuzz_expect_line("resize", err.msg);
        }
    }
    for (int k = 0; k < 3; k++) aibox_image_free(&cv[k]);
    aibox_image copy = {0};
    if (aibox_image_copy(&copy, img, &err) == AIBOX_OK) {
        if (memcmp(copy.data, img->data, (size_t)img->width * img->height * img->channels)) abort();
        aibox_image_free(&copy);
    }
    aibox_preproc p = {0};
    p.channels = size % 3 ? 3 : 1, p.width = th, p.height = tw;
    p.resize = (aibox_resize_mode)(1 + size % 3); /* not AREA: that mode ran above */
    for (int c = 0; c < 4; c++) p.mean[c] = 0.5f, p.std[c] = 0.25f;
    float *x = malloc((size_t)p.channels * p.width * p.height * sizeof *x);
    if (x) {
        if (aibox_preprocess(&p, img, x, &err) != AIBOX_OK) fuzz_expect_line("preprocess", err.msg);
        free(x);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aibox_image img = {0};
    aibox_error err = {0};
    if (aibox_image_decode(&img, data, size, "fuzz.img", FUZZ_IMAGE_PIXELS, &err) == AIBOX_OK) {
        if (!img.data || img.width < 1 || img.height < 1 || (img.channels != 1 && img.channels != 3 && img.channels != 4))
            abort();
        image_exercise(&img, data, size);
        aibox_image_free(&img);
    } else {
        fuzz_expect_line("decode", err.msg);
        if (img.data) abort(); /* a refusal leaves no image behind */
    }
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    if (aibox_image_load(&img, path, 1, &err) == AIBOX_OK) aibox_image_free(&img);
    else fuzz_expect_line("load", err.msg);
    close(fd);
    return 0;
}
