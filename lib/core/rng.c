/* xoshiro256** seeded through splitmix64: small, fast, reproducible across
 * platforms, and an object so that no state is global. */
#include <math.h>

#include "core/core.h"

/* splitmix64's step: the one mixing function behind seeding and seed
 * derivation. */
static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void aibox_rng_seed(aibox_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = mix64(seed + (uint64_t)i * 0x9e3779b97f4a7c15ULL);
}

uint64_t aibox_seed_mix(uint64_t a, uint64_t b, uint64_t c) { return mix64(mix64(mix64(a) ^ b) ^ c); }

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t aibox_rng_u64(aibox_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float aibox_rng_uniform(aibox_rng *r)
{
    return (float)(aibox_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

float aibox_rng_normal(aibox_rng *r)
{
    /* Box-Muller; u1 in (0, 1] so the log is finite. */
    double u1 = ((double)(aibox_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(aibox_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint32_t aibox_rng_below(aibox_rng *r, uint32_t n)
{
    if (n == 0) return 0;
    /* Lemire's multiply-shift with rejection: unbiased. */
    uint64_t m = (uint64_t)(uint32_t)(aibox_rng_u64(r) >> 32) * n;
    uint32_t l = (uint32_t)m;
    if (l < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (uint64_t)(uint32_t)(aibox_rng_u64(r) >> 32) * n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}
