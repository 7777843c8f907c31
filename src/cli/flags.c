// flags.c: see flags.h.
#include "cli/flags.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int set_value(flag* f, const char* v) {
    char* end = NULL;
    errno = 0;
    switch (f->type) {
    case FLAG_INT: case FLAG_I64: {
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || (double)x < f->lo || (double)x > f->hi) {
            fprintf(stderr, "error: --%s expects an integer in [%.0f, %.0f], got '%s'\n", f->name, f->lo, f->hi, v);
            return -1;
        }
        if (f->type == FLAG_INT) *(int*)f->target = (int)x; else *(int64_t*)f->target = x;
        return 0;
    }
    case FLAG_FLOAT: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x) || x < f->lo || x > f->hi) {
            fprintf(stderr, "error: --%s expects a number in [%g, %g], got '%s'\n", f->name, f->lo, f->hi, v);
            return -1;
        }
        *(float*)f->target = (float)x;
        return 0;
    }
    case FLAG_STR:
        *(const char**)f->target = v;
        return 0;
    case FLAG_BOOL:
        if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes")) *(int*)f->target = 1;
        else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no")) *(int*)f->target = 0;
        else { fprintf(stderr, "error: --%s expects true/false, got '%s'\n", f->name, v); return -1; }
        return 0;
    }
    return -1;
}

void flags_help(const flag* f, int nf, const char* usage) {
    printf("%s\n\nflags (default in brackets):\n", usage);
    for (int i = 0; i < nf; i++) {
        char lhs[64];
        snprintf(lhs, sizeof lhs, "--%s%s", f[i].name, f[i].type == FLAG_BOOL ? "" : " X");
        printf("  %-22s %s [%s]\n", lhs, f[i].help, f[i].def[0] ? f[i].def : "none");
    }
}

int flags_parse(flag* f, int nf, int argc, char** argv, const char* usage,
                const char** pos, int max_pos, int* npos) {
    for (int i = 0; i < nf; i++) {
        f[i].set = 0;
        if (f[i].type == FLAG_STR) *(const char**)f[i].target = f[i].def[0] ? f[i].def : NULL;
        else if (set_value(&f[i], f[i].def[0] ? f[i].def : "0")) return -1;
    }
    *npos = 0;
    for (int a = 1; a < argc; a++) {
        const char* arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) { flags_help(f, nf, usage); return 1; }
        if (strncmp(arg, "--", 2) != 0) {
            if (*npos >= max_pos) { fprintf(stderr, "error: unexpected argument '%s' (see --help)\n", arg); return -1; }
            pos[(*npos)++] = arg;
            continue;
        }
        const char* name = arg + 2;
        const char* eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        flag* hit = NULL;
        for (int i = 0; i < nf; i++)
            if (strlen(f[i].name) == len && !strncmp(f[i].name, name, len)) hit = &f[i];
        if (!hit) { fprintf(stderr, "error: unknown flag '--%.*s' (see --help)\n", (int)len, name); return -1; }
        const char* v;
        if (eq) v = eq + 1;
        else if (hit->type == FLAG_BOOL) v = "1";
        else if (a + 1 < argc) v = argv[++a];
        else { fprintf(stderr, "error: --%s needs a value\n", hit->name); return -1; }
        if (set_value(hit, v)) return -1;
        hit->set = 1;
    }
    return 0;
}
