// mem.h: byte sizes for people ("4G", "37.2 GiB") and the memory limit a
// run's estimate is checked against before anything large is allocated
// (`--max-ram`, and the machine's physical RAM).
#pragma once
#include <stddef.h>
#include <stdint.h>

// Parses "4G", "512M", "1.5G", "64k", "1048576" (bytes); suffixes K, M, G,
// T are powers of 1024, optionally followed by "B" or "iB". MIM_OK or
// MIM_EARG (with a message naming the text).
int mim_parse_size(const char* s, uint64_t* out);
// "37.2 GiB", "512.0 MiB", "800 B".
void mim_format_bytes(double bytes, char* out, size_t cap);
// Physical RAM of the machine (sysconf), 0 if unknown.
uint64_t mim_phys_ram(void);
// MIM_OK when need fits max_ram (0: no limit) and the physical RAM; else
// MIM_EARG with "WHAT needs ~X (DETAIL), more than --max-ram 8.0 GiB; HINT"
// (or "... than the machine's N GiB of RAM").
int mim_mem_check(uint64_t need, uint64_t max_ram, const char* what, const char* detail, const char* hint);

// What a run with this batch holds, in bytes, with a one-line breakdown
// written into detail; 0 when it cannot tell (an invalid config, which the
// run's own setup reports).
typedef uint64_t (*mim_need_fn)(void* ctx, int batch, char* detail, size_t cap);
// The memory gate of a training command (cmd: "pretrain", "finetune"):
// prints "memory: ~X (detail)" when loud, then mim_mem_check on the estimate
// for batch; a refusal's hint names the largest power-of-two batch below it
// that fits, with the --accum that keeps the effective batch.
int mim_mem_gate(const char* cmd, int batch, int accum, uint64_t max_ram, int loud, mim_need_fn need_at, void* ctx);
