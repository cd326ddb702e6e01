/* The tools' one JSON writer (tools/cli.c) against a strict RFC 8259
 * validator: non-finite numbers become null, every string (control
 * characters, quotes, bytes that are not UTF-8) stays valid JSON, nesting
 * closes. And the validator itself refuses what it must (NaN, Infinity,
 * invalid UTF-8, trailing commas), so a passing check means something. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cli.h"
#include "common/check.h"

/* Runs the writer into a memory stream; returns the text (free it). */
static char *render(void (*fn)(cli_json *j))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    cli_json j;
    cj_begin(&j, f);
    fn(&j);
    cj_end(&j);
    fclose(f);
    return buf;
}

static void numbers(cli_json *j)
{
    cj_num(j, "nan", "%.6f", NAN);
    cj_num(j, "minus_nan", "%.6g", -NAN);
    cj_num(j, "inf", "%.3f", INFINITY);
    cj_num(j, "minus_inf", "%.17g", -INFINITY);
    cj_num(j, "pi", "%.6f", 3.14159265);
    cj_num(j, "tiny", "%.6g", 1e-300);
    cj_int(j, "big", INT64_MIN);
    cj_arr(j, "list");
    cj_num(j, NULL, "%.6f", NAN);
    cj_num(j, NULL, "%.6f", 1.0);
    cj_close(j);
}

static void strings(cli_json *j)
{
    cj_str(j, "quote\"back\\slash", "a\"b\\c");
    cj_str(j, "controls", "tab\tnl\ncr\rbell\x07" "del\x7f");
    cj_str(j, "not_utf8", "caf\xe9 \xff\xfe end \xc3");     /* Latin-1 bytes, a cut sequence */
    cj_str(j, "overlong", "\xc0\xaf \xe0\x80\xaf \xed\xa0\x80"); /* overlong '/', and a UTF-16 surrogate */
    cj_str(j, "utf8", "Gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80");
    cj_str(j, "null", NULL);
    cj_obj(j, "nested");
    cj_arr(j, "a");
    cj_obj(j, NULL);
    cj_bool(j, "t", 1);
    cj_null(j, "n");
    /* left open on purpose: cj_end closes every level */
}

static void test_writer_output_is_strict_json(void **state)
{
    (void)state;
    char *a = render(numbers), *b = render(strings);
    printf("# %s# %s", a, b);
    assert_true(aibox_test_json_lines(a));
    assert_true(aibox_test_json_lines(b));
    assert_non_null(strstr(a, "\"nan\":null"));
    assert_non_null(strstr(a, "\"minus_inf\":null"));
    assert_non_null(strstr(a, "\"list\":[null,1.000000]"));
    assert_non_null(strstr(a, "\"pi\":3.141593"));
    assert_non_null(strstr(b, "caf\\udce9 \\udcff\\udcfe end \\udcc3")); /* surrogateescape */
    assert_non_null(strstr(b, "\"Gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80\"")); /* UTF-8 kept */
    assert_non_null(strstr(b, "\\u0007del\\u007f"));
    assert_non_null(strstr(b, "\"null\":null"));
    assert_non_null(strstr(b, "}]}}\n"));
    free(a);
    free(b);
}

static void test_validator_refuses(void **state)
{
    (void)state;
    const char *bad[] = {"{\"a\":nan}", "{\"a\":-nan}", "{\"a\":inf}", "{\"a\":NaN}", "{\"a\":Infinity}",
                         "{\"a\":1,}", "[1,2,]", "{\"a\":01}", "{\"a\":1.}", "{\"a\":\"\xff\"}", "{\"a\":\"x\ty\"}",
                         "{\"a\":1}{", "{'a':1}", "", "{\"a\":\"\\x\"}", "{\"a\":\"\xed\xa0\x80\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char why[128];
        assert_false(aibox_test_json_valid(bad[i], strlen(bad[i]), why, sizeof why));
    }
    const char *good[] = {"{}", "[]", "{\"a\":[1,-0.5e-3,true,false,null,\"\\udcff\"]}", " 0 ", "\"\\u00e9\""};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char why[128] = "";
        if (!aibox_test_json_valid(good[i], strlen(good[i]), why, sizeof why)) fail_msg("%s: %s", good[i], why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_output_is_strict_json),
        cmocka_unit_test(test_validator_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
