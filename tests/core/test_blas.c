/* OpenBLAS kernel choice on aarch64: aibox_blas_arm_core on /proc/cpuinfo
 * texts in the kernel's own format (one block per core, as on a Raspberry
 * Pi 5, a Pi 4, a Jetson Orin, a Neoverse N1 server, a big.LITTLE RK3588),
 * the class order that keeps setup to upgrades, and the active set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include "aibox.h"
#include "core/core.h"

/* Features lines as the arm64 kernel prints them */
#define F_V80 "fp asimd evtstrm crc32 cpuid"
#define F_V80C "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
#define F_V82 "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
#define F_A78 F_V82 " uscat ilrcpc flagm paca pacg"
#define F_V1                                                                                                         \
    F_V82 " sha3 sm3 sm4 asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng " \
          "sve"

/* Appends n cores' blocks (processor first .. first+n-1) to buf. */
static void cores(char *buf, size_t cap, int first, int n, const char *features, const char *impl, const char *variant,
                  const char *part, const char *rev)
{
    for (int i = first; i < first + n; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, cap - used,
                 "processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: %s\n"
                 "CPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n",
                 i, features, impl, variant, part, rev);
    }
}

static void tail(char *buf, size_t cap, const char *text)
{
    size_t used = strlen(buf);
    snprintf(buf + used, cap - used, "%s", text);
}

/* The set chosen for text, with the description checked to contain want_desc. */
static const char *choose(const char *text, const char *want_desc)
{
    char desc[200];
    const char *set = aibox_blas_arm_core(text, desc, sizeof desc);
    printf("# %-10s <- %s\n", set ? set : "(keep)", desc);
    if (want_desc && !strstr(desc, want_desc)) fail_msg("description '%s' lacks '%s'", desc, want_desc);
    return set;
}

static char buf[16384];

static void test_pi5_a76(void **state)
{
    buf[0] = 0;
    cores(buf, sizeof buf, 0, 4, F_V82, "0x41", "0x4", "0xd0b", "1");
    tail(buf, sizeof buf, "Revision\t: c04170\nSerial\t\t: 6a3b1e0c5f8d2a47\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n");
    assert_string_equal(choose(buf, "Cortex-A76 x4"), "NeoverseN1");
}

static void test_a78(void **state)
{
    buf[0] = 0;
    cores(buf, sizeof buf, 0, 8, F_A78, "0x41", "0x1", "0xd41", "1");
    assert_string_equal(choose(buf, "Cortex-A78 x8"), "NeoverseN1");
    /* Jetson Orin's cores are the A78AE */
    buf[0] = 0;
    cores(buf, sizeof buf, 0, 6, F_A78, "0x41", "0x0", "0xd42", "1");
    assert_string_equal(choose(buf, "Cortex-A78AE x6"), "NeoverseN1");
}

static void test_pi4_a72(void **state)
{
    buf[0] = 0;
    cores(buf, sizeof buf, 0, 4, F_V80, "0x41", "0x0", "0xd08", "3");
    tail(buf, sizeof buf, "Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n");
    assert_string_equal(choose(buf, "Cortex-A72 x4"), "CortexA72");
}

static void test_neoverse(void **state)
{
    buf[0] = 0;
    cores(buf, sizeof buf, 0, 4, F_V82 " ssbs", "0x41", "0x3", "0xd0c", "1");
    assert_string_equal(choose(buf, "Neoverse-N1 x4"), "NeoverseN1");
    /* V1 with SVE keeps its own set; an N2 whose kernel hides SVE gets N1's,
     * as OpenBLAS itself does */
    buf[0] = 0;
    cores(buf, sizeof buf, 0, 2, F_V1, "0x41", "0x1", "0xd40", "1");
    assert_string_equal(choose(buf, "Neoverse-V1 x2"), "NeoverseV1");
    buf[0] = 0;
    cores(buf, sizeof buf, 0, 2, F_V82 " ssbs", "0x41", "0x0", "0xd49", "0");
    assert_string_equal(choose(buf, "without SVE"), "NeoverseN1");
    buf[0] = 0;
    cores(buf, sizeof buf, 0, 2, F_V1 " sve2", "0x41", "0x0", "0xd49", "0");
    assert_string_equal(choose(buf, "Neoverse-N2 x2"), "NeoverseN2");
}

static void test_little_and_big_little(void **state)
{
    /* RK3588: four A55 then four A76: the big cores decide */
    buf[0] = 0;
    cores(buf, sizeof buf, 0, 4, F_V82, "0x41", "0x2", "0xd05", "0");
    cores(buf, sizeof buf, 4, 4, F_V82, "0x41", "0x4", "0xd0b", "0");
    assert_string_equal(choose(buf, "Cortex-A76 x4 + Cortex-A55 x4, by the big cores"), "NeoverseN1");
    /* RK3399: four A53 and two A72 */
    buf[0] = 0;
    cores(buf, sizeof buf, 0, 4, F_V80C, "0x41", "0x0", "0xd03", "4");
    cores(buf, sizeof buf, 4, 2, F_V80C, "0x41", "0x0", "0xd08", "2");
    assert_string_equal(choose(buf, "Cortex-A72 x2 + Cortex-A53 x4"), "CortexA72");
    /* A55 alone, A53 alone (Pi 3) */
    buf[0] = 0;
    cores(buf, sizeof buf, 0, 4, F_V82, "0x41", "0x2", "0xd05", "0");
    assert_string_equal(choose(buf, "Cortex-A55 x4"), "CortexA55");
    buf[0] = 0;
    cores(buf, sizeof buf, 0, 4, F_V80, "0x41", "0x0", "0xd03", "4");
    assert_string_equal(choose(buf, "Cortex-A53 x4"), "CortexA53");
}

static void test_unknown(void **state)
{
    /* an Arm part the table does not know: keep OpenBLAS's choice */
    buf[0] = 0;
    cores(buf, sizeof buf, 0, 2, F_V82, "0x41", "0x0", "0xd8f", "0");
    assert_null(choose(buf, "implementer 0x41 part 0xd8f x2: not a core this table knows"));
    /* an x86 /proc/cpuinfo (what qemu-user shows an emulated program) */
    const char *x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
                      "model name\t: AMD EPYC\nstepping\t: 1\ncpu MHz\t\t: 2694.860\ncache size\t: 1024 KB\n"
                      "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep sse sse2 avx avx2 fma\n"
                      "bogomips\t: 5389.72\n\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\n";
    assert_null(choose(x86, "CPU not identified"));
    /* empty, NULL and garbage texts */
    assert_null(choose("", "CPU not identified"));
    assert_null(choose(NULL, "CPU not identified"));
    assert_null(choose("CPU part\t: 0xd0b\n", "CPU not identified")); /* no implementer */
    assert_null(choose("CPU implementer\t: banana\nCPU part\t: 0xd0b\n", "CPU not identified"));
    assert_null(choose("CPU implementer\t: 0x41\nCPU part\t: 0xd0bz\n", "CPU not identified"));
    assert_null(choose(":::\n\n\x01\xff garbage : : CPU part\nCPU implementer", "CPU not identified"));
    /* no trailing newline, no Features line: still read */
    assert_string_equal(choose("CPU implementer\t: 0x41\nCPU part\t: 0xd0b", "Cortex-A76 x1"), "NeoverseN1");
    /* a desc buffer too small, or none */
    char tiny[6];
    assert_string_equal(aibox_blas_arm_core("CPU implementer\t: 0x41\nCPU part\t: 0xd0b\n", tiny, sizeof tiny),
                        "NeoverseN1");
    assert_string_equal(tiny, "Corte");
    assert_string_equal(aibox_blas_arm_core("CPU implementer\t: 0x41\nCPU part\t: 0xd08\n", NULL, 0), "CortexA72");
}

/* setup switches only to a higher class: the order must hold for Arm names */
static void test_core_class(void **state)
{
    assert_true(aibox_blas_core_class("NeoverseN1") > aibox_blas_core_class("armv8"));
    assert_true(aibox_blas_core_class("neoversen1") > aibox_blas_core_class("cortexa73"));
    assert_true(aibox_blas_core_class("CortexA72") > aibox_blas_core_class("cortexa53"));
    assert_true(aibox_blas_core_class("CortexA55") > aibox_blas_core_class("armv8"));
    assert_true(aibox_blas_core_class("NeoverseN2") > aibox_blas_core_class("neoversen1"));
    assert_int_equal(aibox_blas_core_class("CortexA72"), aibox_blas_core_class("cortexa72"));
    assert_int_equal(aibox_blas_core_class("NeoverseV1"), aibox_blas_core_class("neoversen2"));
    /* the x86 order is unchanged */
    assert_true(aibox_blas_core_class("SkylakeX") > aibox_blas_core_class("haswell"));
    assert_true(aibox_blas_core_class("Haswell") > aibox_blas_core_class("prescott"));
    assert_int_equal(aibox_blas_core_class("no such set"), 1);
}

/* The active set and the line that explains it. */
static void test_info(void **state)
{
    const char *info = aibox_blas_info();
    printf("# %s\n", info);
    assert_non_null(strstr(info, aibox_blas_core()));
    assert_non_null(strstr(info, "OpenBLAS chose"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pi5_a76),  cmocka_unit_test(test_a78),       cmocka_unit_test(test_pi4_a72),
        cmocka_unit_test(test_neoverse), cmocka_unit_test(test_little_and_big_little),
        cmocka_unit_test(test_unknown),  cmocka_unit_test(test_core_class), cmocka_unit_test(test_info),
    };
    return cmocka_run_group_tests_name("core/blas", tests, NULL, NULL);
}
