// rng.h: a small deterministic RNG (SplitMix64 seeding + xoshiro256**).
// State is 4 x uint64 so that it can be saved in checkpoints and restored
// exactly. Not cryptographic.
#pragma once
#include <stdint.h>

typedef struct { uint64_t s[4]; } mim_rng;

void mim_rng_seed(mim_rng* r, uint64_t seed);
uint64_t mim_rng_u64(mim_rng* r);
// Uniform in [0, 1) with 24 random bits (exactly representable as float).
float mim_rng_uniform(mim_rng* r);
// Uniform in [0, 1) with 53 random bits.
double mim_rng_uniform_d(mim_rng* r);
// Standard normal (Box-Muller, one value per call; deterministic).
float mim_rng_normal(mim_rng* r);
// Uniform integer in [0, n).
uint64_t mim_rng_below(mim_rng* r, uint64_t n);
// Fisher-Yates shuffle of an index array.
void mim_rng_shuffle_u32(mim_rng* r, uint32_t* a, uint64_t n);
