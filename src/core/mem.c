// mem.c: see mem.h.
#include "core/mem.h"
#include "core/check.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int mim_parse_size(const char* s, uint64_t* out) {
    char* end;
    double v = s ? strtod(s, &end) : -1;
    if (!s || end == s || !(v >= 0)) return mim_err(MIM_EARG, "'%s' is not a size (e.g. 4G, 512M)", s ? s : "");
    double mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
    case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (mul > 1 && (*end == 'i' || *end == 'I')) end++;
    if (*end == 'b' || *end == 'B') end++;
    if (*end || v * mul >= 1.8e19) return mim_err(MIM_EARG, "'%s' is not a size (e.g. 4G, 512M)", s);
    *out = (uint64_t)(v * mul);
    return MIM_OK;
}

void mim_format_bytes(double b, char* out, size_t cap) {
    static const char* unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (b >= 1024 && u < 5) { b /= 1024; u++; }
    if (u == 0) snprintf(out, cap, "%.0f B", b);
    else snprintf(out, cap, "%.1f %s", b, unit[u]);
}

uint64_t mim_phys_ram(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

int mim_mem_check(uint64_t need, uint64_t max_ram, const char* what, const char* detail, const char* hint) {
    uint64_t phys = mim_phys_ram();
    char n[32], l[32];
    mim_format_bytes((double)need, n, sizeof n);
    if (max_ram > 0 && need > max_ram) {
        mim_format_bytes((double)max_ram, l, sizeof l);
        return mim_err(MIM_EARG, "%s needs ~%s (%s), more than --max-ram %s%s%s", what, n, detail, l, hint && *hint ? "; " : "",
                       hint ? hint : "");
    }
    if (phys > 0 && need > phys) {
        mim_format_bytes((double)phys, l, sizeof l);
        return mim_err(MIM_EARG, "%s needs ~%s (%s), more than this machine's %s of RAM%s%s", what, n, detail, l,
                       hint && *hint ? "; " : "", hint ? hint : "");
    }
    return MIM_OK;
}

int mim_mem_gate(const char* cmd, int batch, int accum, uint64_t max_ram, int loud, mim_need_fn need_at, void* ctx) {
    char detail[512], d2[512], what[64], hint[160];
    uint64_t need = need_at(ctx, batch, detail, sizeof detail);
    if (!need) return MIM_OK;
    if (loud) {
        char n[32];
        mim_format_bytes((double)need, n, sizeof n);
        fprintf(stderr, "memory: ~%s (%s)\n", n, detail);
    }
    uint64_t limit = mim_phys_ram();
    if (max_ram > 0 && (limit == 0 || max_ram < limit)) limit = max_ram;
    if (limit == 0 || need <= limit) return MIM_OK;
    int b = 1;   // the largest power of two below the batch that fits
    while (2 * b < batch) b *= 2;
    while (b > 1 && need_at(ctx, b, d2, sizeof d2) > limit) b /= 2;
    if (b < batch && need_at(ctx, b, d2, sizeof d2) <= limit) {
        int acc = accum * ((batch + b - 1) / b);
        snprintf(hint, sizeof hint, "try --batch %d --accum %d (effective batch %lld, now %lld)", b, acc, (long long)b * acc,
                 (long long)batch * accum);
    } else {
        snprintf(hint, sizeof hint, "even batch 1 does not fit: pick a smaller --model or raise the limit");
    }
    snprintf(what, sizeof what, "%s with batch %d", cmd, batch);
    return mim_mem_check(need, max_ram, what, detail, hint);
}
