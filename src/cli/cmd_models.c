// cmd_models.c: `mimscale models` lists the ViT presets.
#include "cli/cli.h"
#include "cli/flags.h"
#include "core/check.h"
#include "model/config.h"
#include <stdio.h>

int cmd_models(int argc, char** argv) {
    int img = 224, patch = 0, dec_dim = 128, dec_depth = 2, dec_heads = 4, chans = 3;
    float mask_ratio;
    // decoder defaults = pretrain's (cmd_pretrain.c), so the figures are those of a default run;
    // MAE's paper decoder is --dec-dim 512 --dec-depth 8 --dec-heads 16
    flag f[] = {
        {"img", FLAG_INT, &img, "224", 1, 1 << 16, "square image side for the FLOP figures"},
        {"patch", FLAG_INT, &patch, "0", 0, 1 << 10, "patch size (0: each preset's own; pretrain's default is 4)"},
        {"in-chans", FLAG_INT, &chans, "3", 1, 64, "image channels"},
        {"dec-dim", FLAG_INT, &dec_dim, "128", 4, 1 << 16, "decoder width (pretrain's default; MAE: 512)"},
        {"dec-depth", FLAG_INT, &dec_depth, "2", 0, 1024, "decoder blocks (pretrain's default; MAE: 8)"},
        {"dec-heads", FLAG_INT, &dec_heads, "4", 1, 1024, "decoder heads (pretrain's default; MAE: 16)"},
        {"mask-ratio", FLAG_FLOAT, &mask_ratio, "0.75", 0, 0.99, "fraction of patches masked (pretrain's default)"},
    };
    const char* pos[1];
    int npos, rc = flags_parse(f, (int)(sizeof f / sizeof f[0]), argc, argv, "usage: mimscale models [flags]\n"
                               "Parameters and FLOPs of the ViT presets, for the decoder and input given (defaults: "
                               "pretrain's decoder,\n224x224x3 images, each preset's patch).", pos, 0, &npos);
    if (rc) return rc < 0 ? 2 : 0;
    char pd[32];
    snprintf(pd, sizeof pd, patch ? "patch %d" : "each preset's patch", patch);
    printf("figures for %dx%dx%d images, %s, decoder %d wide x %d blocks x %d heads%s, mask ratio %.2f\n", img, img,
           chans, pd, dec_dim, dec_depth, dec_heads,
           dec_dim == 128 && dec_depth == 2 && dec_heads == 4 ? " (pretrain's default; --dec-dim/--dec-depth/--dec-heads)" : "",
           mask_ratio);
    printf("%-10s %5s %5s %5s %5s %12s %12s %16s %16s\n", "model", "dim", "depth", "heads", "patch",
           "enc params", "MAE params", "enc GFLOP/img", "MAE train GFLOP");
    for (int i = 0; i < mim_config_num_presets(); i++) {
        mim_config c;
        mim_config_preset(&c, mim_config_preset_name(i));
        if (patch) c.patch = patch;
        c.img_h = c.img_w = img; c.in_chans = chans;
        c.dec_dim = dec_dim; c.dec_depth = dec_depth; c.dec_heads = dec_heads;
        c.mask_ratio = mask_ratio;
        if (mim_config_validate(&c)) { fprintf(stderr, "error: %s: %s\n", c.name, mim_err_msg()); return 2; }
        printf("%-10s %5d %5d %5d %5d %11.2fM %11.2fM %16.3f %16.3f\n", c.name, c.dim, c.depth, c.heads, c.patch,
               mim_config_params_encoder(&c) / 1e6, mim_config_params_total(&c) / 1e6,
               mim_config_encoder_flops(&c) / 1e9, mim_config_train_flops(&c) / 1e9);
    }
    printf("(params include the fixed position embeddings; GFLOP = matmul FLOPs, 2 per multiply-add;\n"
           " MAE train = forward + backward of encoder and decoder for one image at the mask ratio)\n");
    return 0;
}
