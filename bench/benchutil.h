// benchutil.h: the benchmarks' `--name value` flags. Each flag points at an
// int, a double or a string; an unknown flag is an error (exit 2).
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char* name;      // without the leading "--"
    int* i;                // exactly one of i, d, s is set
    double* d;
    const char** s;
} bench_flag;

// 0, or 2 after printing the unknown flag.
static inline int bench_flags_parse(int argc, char** argv, const bench_flag* f, int n) {
    for (int a = 1; a + 1 < argc; a += 2) {
        const char *k = argv[a], *v = argv[a + 1];
        int j = 0;
        while (j < n && !(k[0] == '-' && k[1] == '-' && !strcmp(k + 2, f[j].name))) j++;
        if (j == n) { fprintf(stderr, "unknown flag %s\n", k); return 2; }
        if (f[j].i) *f[j].i = atoi(v);
        else if (f[j].d) *f[j].d = atof(v);
        else *f[j].s = v;
    }
    return 0;
}
