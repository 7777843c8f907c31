// precision.c: see precision.h.
#include "model/precision.h"
#include "core/check.h"
#include "core/cpu.h"
#include <stdio.h>
#include <string.h>

int mim_precision_resolve(const char* req, mim_precision_choice* o) {
    memset(o, 0, sizeof *o);
    int is_auto = !strcmp(req, "auto");
    if (!is_auto && strcmp(req, "fp32") && strcmp(req, "bf16"))
        return mim_err(MIM_EARG, "--precision must be auto, fp32 or bf16, got '%s'", req);
    if (!strcmp(req, "fp32")) {
        o->precision = MIM_PREC_FP32;
        snprintf(o->desc, sizeof o->desc, "precision fp32 (requested)");
        return 0;
    }
    const char* isa = mim_cpu_bf16_isa();
    char why[256];
    int native = mim_onednn_bf16_native(why, sizeof why);
    if (isa && native) {
        o->precision = MIM_PREC_BF16;
        o->backend = MIM_BF16_ONEDNN;
        snprintf(o->desc, sizeof o->desc, "precision bf16 (oneDNN, %s; %s)", isa, why);
        return 0;
    }
    if (is_auto) {
        o->precision = MIM_PREC_FP32;
        if (!isa) snprintf(o->desc, sizeof o->desc, "precision fp32 (no AMX/AVX512-BF16 on this CPU)");
        else snprintf(o->desc, sizeof o->desc, "precision fp32 (the CPU has %s but %s)", isa, why);
        return 0;
    }
    o->precision = MIM_PREC_BF16;
    o->backend = MIM_BF16_EMULATED;
    o->slow = 1;
    snprintf(o->desc, sizeof o->desc, "precision bf16 (emulated: %s; inputs rounded to bf16, fp32 sgemm)",
             isa ? why : "no AMX/AVX512-BF16 on this CPU");
    return 0;
}
