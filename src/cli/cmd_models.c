// cmd_models.c: `mimscale models` lists the ViT presets.
#include "cli/cli.h"
#include "cli/flags.h"
#include "core/check.h"
#include "model/config.h"
#include <stdio.h>

int cmd_models(int argc, char** argv) {
    int img = 224, patch = 0, dec_dim = 512, dec_depth = 8, dec_heads = 16, chans = 3;
    flag f[] = {
        {"img", FLAG_INT, &img, "224", 1, 1 << 16, "square image side for the FLOP figures"},
        {"patch", FLAG_INT, &patch, "0", 0, 1 << 10, "patch size (0: each preset's own)"},
        {"in-chans", FLAG_INT, &chans, "3", 1, 64, "image channels"},
        {"dec-dim", FLAG_INT, &dec_dim, "512", 4, 1 << 16, "decoder width"},
        {"dec-depth", FLAG_INT, &dec_depth, "8", 0, 1024, "decoder blocks"},
        {"dec-heads", FLAG_INT, &dec_heads, "16", 1, 1024, "decoder heads"},
    };
    const char* pos[1];
    int npos, rc = flags_parse(f, 6, argc, argv, "usage: mimscale models [flags]", pos, 0, &npos);
    if (rc) return rc < 0 ? 2 : 0;
    printf("%-10s %5s %5s %5s %5s %12s %12s %16s %16s\n", "model", "dim", "depth", "heads", "patch",
           "enc params", "MAE params", "enc GFLOP/img", "MAE train GFLOP");
    for (int i = 0; i < mim_config_num_presets(); i++) {
        mim_config c;
        mim_config_preset(&c, mim_config_preset_name(i));
        if (patch) c.patch = patch;
        c.img_h = c.img_w = img; c.in_chans = chans;
        c.dec_dim = dec_dim; c.dec_depth = dec_depth; c.dec_heads = dec_heads;
        if (mim_config_validate(&c)) { fprintf(stderr, "error: %s: %s\n", c.name, mim_err_msg()); return 2; }
        printf("%-10s %5d %5d %5d %5d %11.2fM %11.2fM %16.3f %16.3f\n", c.name, c.dim, c.depth, c.heads, c.patch,
               mim_config_params_encoder(&c) / 1e6, mim_config_params_total(&c) / 1e6,
               mim_config_encoder_flops(&c) / 1e9, mim_config_train_flops(&c) / 1e9);
    }
    printf("(params include the fixed position embeddings; GFLOP = matmul FLOPs, 2 per multiply-add;\n"
           " MAE train = forward + backward of one image at the given mask ratio 0.75)\n");
    return 0;
}
