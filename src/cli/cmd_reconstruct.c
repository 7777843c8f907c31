// cmd_reconstruct.c: `mimscale reconstruct`: flags -> mim_reconstruct_args.
#include "cli/cli.h"
#include "cli/flags.h"
#include "core/check.h"
#include "data/idx.h"
#include "eval/reconstruct.h"
#include <stdio.h>

int cmd_reconstruct(int argc, char** argv) {
    mim_reconstruct_args a = {0};
    int64_t seed;
    flag f[] = {
        {"ckpt", FLAG_STR, &a.ckpt, "", 0, 0, "MAE checkpoint with decoder (model.safetensors)"},
        {"data", FLAG_STR, &a.data, MIM_FASHION_MNIST_DIR, 0, 0, "images: IDX folder or sample index"},
        {"split", FLAG_STR, &a.split, "t10k", 0, 0, "IDX split"},
        {"out", FLAG_STR, &a.out, "reconstruction.png", 0, 0, "PNG to write"},
        {"n", FLAG_INT, &a.n, "8", 1, 256, "images (rows of the grid)"},
        {"mask-ratio", FLAG_FLOAT, &a.mask_ratio, "-1", -1, 0.99, "masking ratio (-1: the checkpoint's)"},
        {"scale", FLAG_INT, &a.scale, "0", 0, 64, "pixel zoom per cell (0: auto)"},
        {"seed", FLAG_I64, &seed, "0", 0, 9.2e18, "masking noise seed"},
    };
    const char* pos[1];
    int npos, rc = flags_parse(f, (int)(sizeof f / sizeof f[0]), argc, argv,
                               "usage: mimscale reconstruct --ckpt model.safetensors [flags]\n"
                               "Writes a PNG grid: original | masked | reconstruction | reconstruction + visible.",
                               pos, 0, &npos);
    if (rc) return rc < 0 ? 2 : 0;
    if (!a.ckpt || !a.ckpt[0]) { fprintf(stderr, "error: --ckpt is required\n"); return 2; }
    a.seed = (uint64_t)seed;
    float loss = 0;
    if ((rc = mim_reconstruct_run(&a, &loss))) { fprintf(stderr, "error: %s\n", mim_err_msg()); return 1; }
    printf("{\"png\": \"%s\", \"images\": %d, \"masked_loss\": %.5f}\n", a.out, a.n, loss);
    return 0;
}
