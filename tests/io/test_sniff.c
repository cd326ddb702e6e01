/* The one model-format sniffer on the heads of each format and of look-alikes
 * (the two older sniffers disagreed on safetensors headers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "aibox.h"

static void test_heads(void **state)
{
    (void)state;
    const unsigned char aibox[] = "AIBOX\0MD\1\0\0\0", tfl[] = "\x18\0\0\0TFL3\0\0", st[] = "\x40\0\0\0\0\0\0\0{\"a\"";
    const unsigned char st_huge[] = "\x40\0\0\0\0\x01\0\0{\"a\"" /* 1 TiB + 64: beyond the rule */;
    const unsigned char st_tiny[] = "\x01\0\0\0\0\0\0\0{}", png[] = "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR";
    assert_int_equal(aibox_model_format_sniff(aibox, 12), AIBOX_FORMAT_AIBOX);
    assert_int_equal(aibox_model_format_sniff(tfl, 10), AIBOX_FORMAT_TFLITE);
    assert_int_equal(aibox_model_format_sniff(st, 12), AIBOX_FORMAT_SAFETENSORS);
    assert_int_equal(aibox_model_format_sniff(st_huge, 12), AIBOX_FORMAT_UNKNOWN);
    assert_int_equal(aibox_model_format_sniff(st_tiny, 10), AIBOX_FORMAT_UNKNOWN);
    assert_int_equal(aibox_model_format_sniff(png, 16), AIBOX_FORMAT_UNKNOWN);
    assert_int_equal(aibox_model_format_sniff(aibox, 7), AIBOX_FORMAT_UNKNOWN); /* too short to tell */
    assert_int_equal(aibox_model_format_sniff(NULL, 0), AIBOX_FORMAT_UNKNOWN);
    assert_string_equal(aibox_model_format_name(AIBOX_FORMAT_SAFETENSORS), "safetensors");
    assert_string_equal(aibox_model_format_name((aibox_model_format)99), "unknown");
    assert_int_equal(aibox_model_format_of("/nonexistent"), AIBOX_FORMAT_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_heads)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
