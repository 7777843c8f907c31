// cmd_teacher.c: `mimscale teacher-check FILE`: what the teacher loader
// recognises in a safetensors file (scheme, architecture, geometry), or the
// reason it refuses it. Exit 0 recognised, 1 refused, 2 bad flags.
#include "cli/cli.h"
#include "cli/flags.h"
#include "core/check.h"
#include "core/rng.h"
#include "model/teacher.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int cmd_teacher_check(int argc, char** argv) {
    int img = 0, patch = 0, chans = 0, run = 0, layer = -1;
    flag f[] = {
        {"img", FLAG_INT, &img, "0", 0, 1 << 16, "student image side (0: the teacher's native size)"},
        {"patch", FLAG_INT, &patch, "0", 0, 1 << 10, "student patch size (0: the teacher's)"},
        {"in-chans", FLAG_INT, &chans, "0", 0, 3, "student image channels (0: the teacher's)"},
        {"run", FLAG_BOOL, &run, "0", 0, 1, "also run one forward on a random image and summarise the features"},
        {"layer", FLAG_INT, &layer, "-1", -1, 1 << 10, "block whose patch tokens --run takes (-1: last, normed)"},
    };
    const char* pos[1];
    int npos, rc = flags_parse(f, (int)(sizeof f / sizeof f[0]), argc, argv,
                               "usage: mimscale teacher-check FILE [--img H --patch p] [--run]\n"
                               "Prints what the frozen-teacher loader recognises in a safetensors file\n"
                               "(timm/MAE, OpenAI CLIP or HF CLIP names), or why it refuses it.",
                               pos, 1, &npos);
    if (rc) return rc < 0 ? 2 : 0;
    if (npos != 1) { fprintf(stderr, "error: teacher-check takes one FILE (see --help)\n"); return 2; }
    const char* path = pos[0];

    mim_teacher t;
    if ((rc = mim_teacher_load(&t, path, 0, 0, 1))) { fprintf(stderr, "error: %s\n", mim_err_msg()); return 1; }
    if (!img) {   // the student at the teacher's native geometry
        if ((rc = mim_teacher_set_input(&t, chans ? chans : t.C, t.H, t.W, NULL, NULL))) {
            fprintf(stderr, "error: %s\n", mim_err_msg());
            mim_teacher_free(&t);
            return 1;
        }
    } else {   // the student's grid: img / patch, the teacher at grid * its patch
        int sp = patch ? patch : t.p, C = chans ? chans : t.C;
        mim_teacher_free(&t);
        if (img % sp) { fprintf(stderr, "error: --img %d is not a multiple of the patch %d\n", img, sp); return 1; }
        if ((rc = mim_teacher_load(&t, path, img / sp, img / sp, 1)) ||
            (rc = mim_teacher_set_input(&t, C, img, img, NULL, NULL))) {
            fprintf(stderr, "error: %s\n", mim_err_msg());
            mim_teacher_free(&t);
            return 1;
        }
    }
    printf("file          %s\n", path);
    mim_teacher_describe(&t, stdout);
    if (run) {
        if (layer >= t.depth) {
            fprintf(stderr, "error: --layer %d: the teacher has %d blocks\n", layer, t.depth);
            mim_teacher_free(&t);
            return 1;
        }
        size_t ni = (size_t)t.in_C * t.in_H * t.in_W, nf = (size_t)t.L * t.D;
        float *im = malloc(ni * sizeof(float)), *out = malloc(nf * sizeof(float));
        if (!im || !out) { fprintf(stderr, "error: out of memory\n"); free(im); free(out); mim_teacher_free(&t); return 1; }
        mim_rng r;
        mim_rng_seed(&r, 0);
        for (size_t i = 0; i < ni; i++) im[i] = mim_rng_normal(&r);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        mim_teacher_forward(&t, out, im, 1, layer);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double s = 0, s2 = 0;
        size_t bad = 0;
        for (size_t i = 0; i < nf; i++) { if (!isfinite(out[i])) { bad++; continue; } s += out[i]; s2 += (double)out[i] * out[i]; }
        double m = s / (double)nf;
        printf("run           layer %d on one N(0,1) image: feature mean %.4g, std %.4g, %zu non-finite, %.3f s\n",
               layer, m, sqrt(fmax(s2 / (double)nf - m * m, 0)), bad,
               (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec));
        free(im);
        free(out);
        rc = bad ? 1 : 0;
    }
    mim_teacher_free(&t);
    return rc;
}
