/* OpenBLAS kernel selection.
 *
 * Debian's OpenBLAS is built with DYNAMIC_ARCH: at load it picks a kernel set
 * from the CPUID it recognises. On CPUs newer than the package (or when
 * OPENBLAS_CORETYPE pins an older set) it runs generic kernels several times
 * slower than the CPU allows (measured: 30 vs 145 GFLOPS per core). We ask
 * OpenBLAS to re-run its own dynamic initialisation with the best set this
 * CPU supports, through its exported gotoblas_dynamic_{quit,init}. Symbols
 * are weak so a non-DYNAMIC_ARCH BLAS simply keeps its kernels. x86: from
 * cpuid; aarch64: from the cores /proc/cpuinfo names (Debian 12's 0.3.21
 * runs a Raspberry Pi 5's Cortex-A76 or a Jetson Orin's A78AE on generic
 * armv8 kernels), through the table below.
 *
 * This touches process-wide state (OpenBLAS's kernel table), exactly once,
 * under pthread_once; nothing else in libaibox is global. */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include "core/core.h"
#include "core/pool.h"

extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));
extern char *openblas_get_corename(void) __attribute__((weak));
extern void openblas_set_num_threads(int) __attribute__((weak));

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
/* Written once inside blas_once, read-only afterwards. */
static char blas_info[512];

/* Capability class of a kernel set, so that setup only ever upgrades.
 * x86: 3 AVX-512, 2 AVX2+FMA, 1 older. aarch64 (OpenBLAS 0.3.21's names):
 * 5 the SVE generation (neoversen2, neoversev1), 4 neoversen1 (Armv8.2),
 * 3 the Armv8.0 out-of-order cores and the vendor sets (cortexa57/72/73,
 * thunderx*, falkor, tsv110, emag8180), 2 the in-order little cores
 * (cortexa53/55), 1 generic armv8. A process only ever sees one
 * architecture's names, so the two scales never meet. */
int aibox_blas_core_class(const char *name)
{
    static const struct {
        const char *name;
        int cls;
    } sets[] = {
        {"skylakex", 3},     {"cooperlake", 3},   {"sapphirerapids", 3}, {"haswell", 2},      {"zen", 2},
        {"excavator", 2},    {"steamroller", 2},  {"skylake", 2},        {"neoversen2", 5},   {"neoversev1", 5},
        {"neoversen1", 4},   {"cortexa57", 3},    {"cortexa72", 3},      {"cortexa73", 3},    {"thunderx", 3},
        {"thunderx2t99", 3}, {"thunderx3t110", 3}, {"falkor", 3},        {"tsv110", 3},       {"emag8180", 3},
        {"cortexa53", 2},    {"cortexa55", 2},
    };
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++)
        if (!strcasecmp(name, sets[i].name)) return sets[i].cls;
    return 1;
}

/* aarch64: the Arm cores OpenBLAS 0.3.21 (Debian 12) does not place, or
 * places by whichever core its MIDR read happened to run on, mapped to the
 * best kernel set that package has. What the sets need (checked in the
 * package's libopenblas.a): no set but neoversen2 contains an instruction
 * beyond Armv8.0 NEON; neoversen2 holds SVE code (its matrix copies) and
 * OpenBLAS itself gives neoversen1 to a V1/N2 without SVE; neoversen1 is
 * built for Armv8.2 (-march=armv8.2-a), so it goes only to Armv8.2 cores.
 * The single-precision GEMM micro-kernel is one and the same in armv8,
 * cortexa72/73 and the neoverse sets; what a set adds is its blocking for
 * the core's caches, its copy and dot routines and its tuning.
 *   Cortex-A76/A77/A78/X1 (and their AE/C variants): neoversen1. Neoverse N1
 *     is the A76's infrastructure twin (one microarchitecture, Armv8.2 with
 *     DotProd, 64 KB L1); A77, A78 and X1 are its direct successors.
 *   A710/A715/A720/X2/X3/X4, Neoverse V2/N3: neoversen2 when every core has
 *     SVE (Armv9 with SVE2 and 128-bit vectors, like N2, whose A710 sibling
 *     it is), else neoversen1 (as OpenBLAS does for a V1/N2 without SVE).
 *   A75 (Armv8.2, the A73's successor) and Qualcomm's A75-based Kryo 3xx Gold:
 *     cortexa73. A35/A53: cortexa53; A55, A510, A520 and the A55-based Kryo
 *     Silver: cortexa55 (in-order little cores).
 * rank orders the cores by speed: on a big.LITTLE CPU the big ones decide
 * (the heavy work runs there; the little cores of the same generation run
 * the same instructions). arch is the ISA level (80 Armv8.0, 82 Armv8.2 or
 * later): a set for Armv8.2 is chosen only when every core is one. */
typedef struct arm_core {
    unsigned impl, part; /* part 0x1000: any part of that implementer */
    const char *name, *set;
    int rank, arch;
} arm_core;

static const arm_core arm_cores[] = {
    {0x41, 0xd04, "Cortex-A35", "CortexA53", 1, 80},
    {0x41, 0xd03, "Cortex-A53", "CortexA53", 2, 80},
    {0x41, 0xd05, "Cortex-A55", "CortexA55", 3, 82},
    {0x41, 0xd46, "Cortex-A510", "CortexA55", 3, 82},
    {0x41, 0xd80, "Cortex-A520", "CortexA55", 3, 82},
    {0x41, 0xd07, "Cortex-A57", "CortexA57", 5, 80},
    {0x41, 0xd08, "Cortex-A72", "CortexA72", 6, 80},
    {0x41, 0xd09, "Cortex-A73", "CortexA73", 7, 80},
    {0x41, 0xd0a, "Cortex-A75", "CortexA73", 8, 82},
    {0x41, 0xd0b, "Cortex-A76", "NeoverseN1", 10, 82},
    {0x41, 0xd0e, "Cortex-A76AE", "NeoverseN1", 10, 82},
    {0x41, 0xd0c, "Neoverse-N1", "NeoverseN1", 10, 82},
    {0x41, 0xd0d, "Cortex-A77", "NeoverseN1", 11, 82},
    {0x41, 0xd41, "Cortex-A78", "NeoverseN1", 12, 82},
    {0x41, 0xd42, "Cortex-A78AE", "NeoverseN1", 12, 82},
    {0x41, 0xd4b, "Cortex-A78C", "NeoverseN1", 12, 82},
    {0x41, 0xd44, "Cortex-X1", "NeoverseN1", 13, 82},
    {0x41, 0xd4c, "Cortex-X1C", "NeoverseN1", 13, 82},
    {0x41, 0xd47, "Cortex-A710", "NeoverseN2", 13, 82},
    {0x41, 0xd40, "Neoverse-V1", "NeoverseV1", 14, 82},
    {0x41, 0xd4d, "Cortex-A715", "NeoverseN2", 14, 82},
    {0x41, 0xd49, "Neoverse-N2", "NeoverseN2", 15, 82},
    {0x41, 0xd48, "Cortex-X2", "NeoverseN2", 15, 82},
    {0x41, 0xd81, "Cortex-A720", "NeoverseN2", 15, 82},
    {0x41, 0xd8e, "Neoverse-N3", "NeoverseN2", 15, 82},
    {0x41, 0xd4e, "Cortex-X3", "NeoverseN2", 16, 82},
    {0x41, 0xd4f, "Neoverse-V2", "NeoverseN2", 16, 82},
    {0x41, 0xd82, "Cortex-X4", "NeoverseN2", 17, 82},
    {0x51, 0x802, "Kryo 3xx Gold (Cortex-A75)", "CortexA73", 8, 82},
    {0x51, 0x803, "Kryo 3xx Silver (Cortex-A55)", "CortexA55", 3, 82},
    {0x51, 0x804, "Kryo 4xx Gold (Cortex-A76)", "NeoverseN1", 10, 82},
    {0x51, 0x805, "Kryo 4xx Silver (Cortex-A55)", "CortexA55", 3, 82},
    {0xc0, 0xac3, "AmpereOne", "NeoverseN1", 12, 82},
    {0x61, 0x1000, "Apple M-series", "NeoverseN1", 12, 82},
};

static const arm_core *arm_core_find(unsigned impl, unsigned part)
{
    for (size_t i = 0; i < sizeof arm_cores / sizeof *arm_cores; i++)
        if (arm_cores[i].impl == impl && (arm_cores[i].part == part || arm_cores[i].part == 0x1000))
            return &arm_cores[i];
    return NULL;
}

static int has_word(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    for (size_t i = 0; i + wl <= n; i++)
        if ((i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t') && !memcmp(s + i, w, wl) &&
            (i + wl == n || s[i + wl] == ' ' || s[i + wl] == '\t'))
            return 1;
    return 0;
}

const char *aibox_blas_arm_core(const char *cpuinfo, char *desc, size_t desc_len)
{
    enum { KINDS = 8 };
    struct kind {
        unsigned impl, part;
        int count;
    } kind[KINDS];
    int kinds = 0, cores = 0, features = 0, sve = 1, min_arch = 99;
    unsigned impl = 0x100; /* none yet */
    const arm_core *big = NULL;
    char scratch[8];
    if (!desc || !desc_len) desc = scratch, desc_len = sizeof scratch;
    desc[0] = 0;
    for (const char *l = cpuinfo ? cpuinfo : ""; *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) : strlen(l);
        const char *colon = memchr(l, ':', n);
        if (colon) {
            size_t kn = (size_t)(colon - l);
            while (kn && (l[kn - 1] == ' ' || l[kn - 1] == '\t')) kn--;
            const char *v = colon + 1;
            size_t vn = n - (size_t)(v - l);
            while (vn && (*v == ' ' || *v == '\t')) v++, vn--;
            char num[16] = {0}, *end;
            memcpy(num, v, vn < sizeof num - 1 ? vn : sizeof num - 1);
            unsigned long x = strtoul(num, &end, 0);
            int valid = end != num && (*end == 0 || *end == ' ' || *end == '\t' || *end == '\r');
            if (kn == 9 && !memcmp(l, "processor", 9)) {
                impl = 0x100;
            } else if (kn == 15 && !memcmp(l, "CPU implementer", 15)) {
                impl = valid && x < 0x100 ? (unsigned)x : 0x100;
            } else if (kn == 8 && !memcmp(l, "CPU part", 8) && valid && x < 0x1000 && impl < 0x100) {
                unsigned part = (unsigned)x;
                const arm_core *c = arm_core_find(impl, part);
                cores++;
                if (!c) min_arch = 80; /* unknown: assume Armv8.0 */
                else if (c->arch < min_arch) min_arch = c->arch;
                if (c && (!big || c->rank > big->rank)) big = c;
                int k = 0;
                while (k < kinds && (kind[k].impl != impl || kind[k].part != part)) k++;
                if (k == kinds && kinds < KINDS) kind[kinds++] = (struct kind){impl, part, 0};
                if (k < kinds) kind[k].count++;
            } else if (kn == 8 && !memcmp(l, "Features", 8)) {
                features++;
                sve &= has_word(v, vn, "sve");
            }
        }
        l += n + (e != NULL);
    }
    if (!cores) {
        snprintf(desc, desc_len, "CPU not identified (no CPU implementer and part)");
        return NULL;
    }
    /* "Cortex-A76 x4 + Cortex-A55 x4": the kinds, fastest first */
    size_t used = 0;
    for (int done = 0; done < kinds; done++) {
        int best = -1, best_rank = -1;
        for (int k = 0; k < kinds; k++) {
            if (kind[k].count < 0) continue;
            const arm_core *c = arm_core_find(kind[k].impl, kind[k].part);
            int r = c ? c->rank : 0;
            if (r > best_rank) best = k, best_rank = r;
        }
        const arm_core *c = arm_core_find(kind[best].impl, kind[best].part);
        char name[48];
        if (c && c->part != 0x1000) snprintf(name, sizeof name, "%s", c->name);
        else snprintf(name, sizeof name, "%s%simplementer 0x%02x part 0x%03x", c ? c->name : "", c ? " " : "",
                      kind[best].impl, kind[best].part);
        if (used < desc_len)
            used += (size_t)snprintf(desc + used, desc_len - used, "%s%s x%d", done ? " + " : "", name, kind[best].count);
        kind[best].count = -1;
    }
    const char *set = big ? big->set : NULL;
    const char *note = "";
    if (!big) note = ": not a core this table knows";
    else if (kinds > 1) note = ", by the big cores";
    if (set && (!strcmp(set, "NeoverseN2") || !strcmp(set, "NeoverseV1")) && !(features && sve))
        set = "NeoverseN1", note = ", without SVE";
    if (set && !strcmp(set, "NeoverseN1") && min_arch < 82)
        set = "CortexA72", note = ", some cores older than Armv8.2";
    if (used < desc_len) snprintf(desc + used, desc_len - used, "%s", note);
    return set;
}

/* x86 only (cpuid through aibox_cpu_features, which also checks that the OS
 * saves the vector state; __builtin_cpu_supports is x86- and compiler-
 * specific): SkylakeX or Haswell. aarch64: the cores /proc/cpuinfo lists
 * (or, without them, cpu0's MIDR from sysfs) through aibox_blas_arm_core,
 * whose description of the CPU lands in desc. Elsewhere OpenBLAS keeps its
 * own choice. Independent of AIBOX_NO_SIMD, which concerns libaibox's own
 * kernels. */
static const char *best_core_for_cpu(char *desc, size_t desc_len)
{
    desc[0] = 0;
#if defined(__x86_64__) || defined(__i386__)
    unsigned f = aibox_cpu_features();
    if ((f & AIBOX_CPU_AVX512_SKX) == AIBOX_CPU_AVX512_SKX) return "SkylakeX";
    if ((f & (AIBOX_CPU_AVX2 | AIBOX_CPU_FMA)) == (AIBOX_CPU_AVX2 | AIBOX_CPU_FMA)) return "Haswell";
#elif defined(__aarch64__)
    size_t cap = 1 << 20, len = 0;
    char *text = malloc(cap);
    if (!text) return NULL;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) len = fread(text, 1, cap - 1, f), fclose(f);
    text[len] = 0;
    if (!strstr(text, "CPU part")) {
        /* no /proc/cpuinfo, or one without the ID registers: cpu0's MIDR_EL1 */
        unsigned long midr = 0;
        char line[64] = {0};
        f = fopen("/sys/devices/system/cpu/cpu0/regs/identification/midr_el1", "r");
        if (f && fgets(line, sizeof line, f)) midr = strtoul(line, NULL, 16);
        if (f) fclose(f);
        if (midr)
            snprintf(text, cap, "CPU implementer\t: 0x%02lx\nCPU part\t: 0x%03lx\nFeatures\t: %s\n", (midr >> 24) & 0xff,
                     (midr >> 4) & 0xfff, getauxval(AT_HWCAP) & (1ul << 22) ? "sve" : ""); /* HWCAP_SVE */
    }
    const char *set = aibox_blas_arm_core(text, desc, desc_len);
    free(text);
    return set;
#endif
    return NULL;
}

static const char *corename(void)
{
    const char *c = openblas_get_corename ? openblas_get_corename() : NULL;
    return c ? c : "unknown";
}

static void switch_core(const char *target)
{
    /* gotoblas_dynamic_init reads OPENBLAS_CORETYPE; set it only around the
     * call, then restore the user's environment as it was. */
    const char *old = getenv("OPENBLAS_CORETYPE");
    char saved[64] = {0};
    if (old) snprintf(saved, sizeof saved, "%s", old);
    setenv("OPENBLAS_CORETYPE", target, 1);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    if (old) setenv("OPENBLAS_CORETYPE", saved, 1);
    else unsetenv("OPENBLAS_CORETYPE");
}

static void blas_setup_once(void)
{
    char before[48], cpu[200], why[288];
    snprintf(before, sizeof before, "%s", corename());
    const char *want = getenv("AIBOX_BLAS_CORE");
    snprintf(why, sizeof why, "kept");
    if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit || !openblas_get_corename) {
        snprintf(why, sizeof why, "BLAS without runtime kernel selection");
    } else if (want && !strcasecmp(want, "keep")) {
        snprintf(why, sizeof why, "kept (AIBOX_BLAS_CORE=keep)");
    } else if (want && *want) {
        switch_core(want);
        snprintf(why, sizeof why, "forced by AIBOX_BLAS_CORE");
    } else {
        const char *best = best_core_for_cpu(cpu, sizeof cpu);
        if (best && aibox_blas_core_class(best) > aibox_blas_core_class(before)) {
            switch_core(best);
            if (cpu[0]) snprintf(why, sizeof why, "upgraded for %s", cpu);
            else snprintf(why, sizeof why, "upgraded to the best set this CPU supports");
        } else if (cpu[0]) {
            snprintf(why, sizeof why, "kept: %s%s", cpu, best ? ", no better set" : "");
        }
    }
    /* libaibox's contexts run their own threads; nested BLAS threads would
     * compete with them for the same cores. */
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    snprintf(blas_info, sizeof blas_info, "OpenBLAS %s kernels (%s; OpenBLAS chose %s), single-threaded under libaibox's pools",
             corename(), why, before);
}

void aibox_blas_setup(void) { pthread_once(&blas_once, blas_setup_once); }

const char *aibox_blas_core(void)
{
    aibox_blas_setup();
    return corename();
}

const char *aibox_blas_info(void)
{
    aibox_blas_setup();
    return blas_info;
}


int aibox_default_num_threads(void) { return aibox_default_threads(); }
