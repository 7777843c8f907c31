// cpu.c: see cpu.h.
#include "core/cpu.h"
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static mim_cpu g_cpu;
static int g_done;

static uint32_t xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return lo;
}

const mim_cpu* mim_cpu_get(void) {
    if (g_done) return &g_cpu;
    mim_cpu c;
    memset(&c, 0, sizeof c);
    unsigned a, b, cx, d;
    if (__get_cpuid(1, &a, &b, &cx, &d) && (cx & (1u << 27))) {   // OSXSAVE: XCR0 readable
        uint32_t x = xcr0();
        int ymm_os = (x & 0x6) == 0x6;
        c.zmm_os = (x & 0xe6) == 0xe6;                 // XMM, YMM, opmask, ZMM state
        c.amx_os = (x & (3u << 17)) == (3u << 17);     // XTILECFG, XTILEDATA
        if (__get_cpuid_max(0, NULL) >= 7) {
            __cpuid_count(7, 0, a, b, cx, d);
            c.avx2 = ymm_os && ((b >> 5) & 1);
            c.avx512f = (b >> 16) & 1;
            c.amx_bf16 = (d >> 22) & 1;
            c.amx_tile = (d >> 24) & 1;
            __cpuid_count(7, 1, a, b, cx, d);
            c.avx512_bf16 = (a >> 5) & 1;
        }
    }
    g_cpu = c;
    g_done = 1;
    return &g_cpu;
}

int mim_cpu_avx512(void) {
    const mim_cpu* c = mim_cpu_get();
    return c->avx512f && c->zmm_os;
}

const char* mim_cpu_bf16_isa(void) {
    const mim_cpu* c = mim_cpu_get();
    if (c->amx_bf16 && c->amx_os) return "amx_bf16";
    if (c->avx512_bf16 && c->avx512f && c->zmm_os) return "avx512_bf16";
    return NULL;
}

int mim_onednn_built(void) {
#ifdef MIM_DNNL
    return 1;
#else
    return 0;
#endif
}

void mim_cpu_describe(char* out, unsigned long cap) {
    const mim_cpu* c = mim_cpu_get();
    snprintf(out, cap, "%s%s%s%s", c->avx2 ? "avx2 " : "", mim_cpu_avx512() ? "avx512f " : "",
             c->avx512_bf16 && mim_cpu_avx512() ? "avx512_bf16 " : "", c->amx_bf16 && c->amx_os ? "amx_bf16 " : "");
    size_t n = strlen(out);
    if (n && out[n - 1] == ' ') out[n - 1] = 0;
    if (!n) snprintf(out, cap, "no avx2");
}
