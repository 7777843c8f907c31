// precision.h: the --precision policy of the training commands: which
// matmul precision and bf16 backend a request means on this CPU and build.
// A policy over the ops (ops.h: MIM_PREC_*, MIM_BF16_*, the oneDNN probe)
// and the CPU facts (core/cpu.h), kept out of the op files.
#pragma once
#include "ops/ops.h"

typedef struct {
    mim_precision precision;
    mim_bf16_backend backend;   // for bf16: ONEDNN or EMULATED
    int slow;                   // 1: bf16 asked for without native support (emulated)
    char desc[320];             // "precision bf16 (oneDNN, amx_bf16)", ...
} mim_precision_choice;
// Resolves a --precision value: "auto" (bf16 with oneDNN where the CPU has
// AMX-BF16 / AVX512-BF16 and oneDNN serves it natively, else fp32), "fp32"
// or "bf16" (emulated where not native). Returns 0 or MIM_EARG.
int mim_precision_resolve(const char* request, mim_precision_choice* out);
