// cpu.h: what this CPU and this build can do, read once (cpuid, xgetbv):
// the facts behind the run-time choice of kernels (the sgemm backend,
// --precision auto). Only facts here; the choices live with their ops.
#pragma once

typedef struct {
    int avx2, avx512f, avx512_bf16;   // instruction sets the CPU reports ...
    int amx_bf16, amx_tile;
    int zmm_os, amx_os;               // ... and whether the OS saves their state (XCR0)
} mim_cpu;

// The CPU's features (computed on first call, then cached; thread-safe after).
const mim_cpu* mim_cpu_get(void);
// 1 when AVX-512F is usable (CPU and OS).
int mim_cpu_avx512(void);
// The CPU's native bf16 matmul ISA: "amx_bf16", "avx512_bf16", or NULL when
// it has neither (or the OS does not enable it).
const char* mim_cpu_bf16_isa(void);
// 1 when this build links oneDNN (-DMIM_DNNL).
int mim_onednn_built(void);
// "avx2 avx512f avx512_bf16" (usable ones), for start-up lines and reports.
void mim_cpu_describe(char* out, unsigned long cap);
