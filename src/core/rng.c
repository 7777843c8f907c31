// rng.c: xoshiro256** seeded by SplitMix64 (see rng.h).
#include "core/rng.h"
#include <math.h>

static uint64_t splitmix64(uint64_t* x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void mim_rng_seed(mim_rng* r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mim_rng_u64(mim_rng* r) {
    uint64_t* s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return result;
}

float mim_rng_uniform(mim_rng* r) { return (float)(mim_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

double mim_rng_uniform_d(mim_rng* r) { return (double)(mim_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

float mim_rng_normal(mim_rng* r) {
    double u1 = mim_rng_uniform_d(r), u2 = mim_rng_uniform_d(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint64_t mim_rng_below(mim_rng* r, uint64_t n) {
    // Lemire's multiply-shift with rejection: unbiased.
    unsigned __int128 m = (unsigned __int128)mim_rng_u64(r) * n;
    uint64_t l = (uint64_t)m;
    if (l < n) {
        uint64_t t = -n % n;
        while (l < t) { m = (unsigned __int128)mim_rng_u64(r) * n; l = (uint64_t)m; }
    }
    return (uint64_t)(m >> 64);
}

void mim_rng_shuffle_u32(mim_rng* r, uint32_t* a, uint64_t n) {
    for (uint64_t i = n; i > 1; i--) {
        uint64_t j = mim_rng_below(r, i);
        uint32_t t = a[i - 1]; a[i - 1] = a[j]; a[j] = t;
    }
}
