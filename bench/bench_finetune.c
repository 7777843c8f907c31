// bench_finetune.c: fine-tuning step throughput of mimscale, the step of
// train/finetune.c on random images: mixup / cutmix with label smoothing,
// drop path, the encoder on every token, the global-pool head
// (model/head.h), soft-target cross-entropy, AdamW with layer-wise lr decay.
// RandAugment and erasing run in the data path and are left out here (and
// in bench/torch_finetune_bench.py). Prints one JSON line with a per-op-class
// profile, comparable with bench/torch_finetune_bench.py. Built by `make bench`.
//   bench_finetune --model vit_tiny --img 32 --patch 4 --batch 128 --steps 5
//                  --warmup 2 --threads 2 --precision fp32   (or bf16)
#include "core/check.h"
#include "core/prof.h"
#include "core/rng.h"
#include "model/head.h"
#include "model/mae.h"
#include "ops/ops.h"
#include "benchutil.h"
#include "train/finetune.h"
#include "train/mixup.h"
#include "train/optim.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

void openblas_set_num_threads(int);

int main(int argc, char** argv) {
    const char *model = "vit_tiny", *precision = "fp32";
    int img = 32, patch = 4, B = 128, steps = 5, warmup = 2, threads = 2, chans = 3, K = 10;
    float drop_path = 0.1f, layer_decay = 0.75f;
    const bench_flag fl[] = {{"model", .s = &model}, {"img", .i = &img}, {"patch", .i = &patch}, {"batch", .i = &B},
                             {"steps", .i = &steps}, {"warmup", .i = &warmup}, {"threads", .i = &threads},
                             {"classes", .i = &K}, {"precision", .s = &precision}};
    if (bench_flags_parse(argc, argv, fl, (int)(sizeof fl / sizeof fl[0]))) return 2;
    if (strcmp(precision, "fp32") && strcmp(precision, "bf16")) { fprintf(stderr, "--precision fp32|bf16\n"); return 2; }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    mim_config c;
    if (mim_config_preset(&c, model)) { fprintf(stderr, "%s\n", mim_err_msg()); return 2; }
    c.img_h = c.img_w = img; c.patch = patch; c.in_chans = chans;
    c.dec_dim = 0; c.dec_depth = 0; c.dec_heads = 1; c.mask_ratio = 0.0f;   // as train/finetune.c
    mim_mae m;
    if (mim_mae_init(&m, &c, B)) { fprintf(stderr, "%s\n", mim_err_msg()); return 1; }
    mim_mae_init_weights(&m, 0);
    if (mim_mae_set_precision(&m, strcmp(precision, "bf16") ? MIM_PREC_FP32 : MIM_PREC_BF16, MIM_BF16_AUTO)) {
        fprintf(stderr, "%s\n", mim_err_msg());
        return 1;
    }
    mim_rng r;
    mim_rng_seed(&r, 1);
    mim_cls_head h;
    CHECK(mim_cls_head_init(&h, c.dim, K, B, m.T, &r) == 0);
    // AdamW groups as train/finetune.c: layer-wise lr decay, no decay on pos_embed / cls_token
    float* lr_scale = malloc(sizeof(float) * (size_t)m.nparams);
    uint8_t* decay = malloc((size_t)m.nparams);
    CHECK(lr_scale && decay);
    for (int i = 0; i < m.nparams; i++) {
        mim_param* p = &m.table[i];
        if (!strcmp(p->name, "pos_embed")) p->trainable = 1;
        if (!strncmp(p->name, "norm.", 5)) p->trainable = 0;   // global pool: unused
        decay[i] = p->decay && strcmp(p->name, "cls_token") && strcmp(p->name, "pos_embed");
        lr_scale[i] = powf(layer_decay, (float)(c.depth + 1 - mim_vit_layer_id(p->name, c.depth)));
    }
    mim_adamw opt, hopt;
    CHECK(mim_adamw_init(&opt, m.num_floats) == 0 && mim_adamw_init(&hopt, h.n) == 0);
    mim_adamw_hparams hp = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.05f};
    mim_mixup mx;
    mim_mixup_default(&mx, K);   // mixup 0.8, cutmix 1.0, switch 0.5, smoothing 0.1 (MAE's defaults)
    size_t ni = (size_t)B * chans * img * img;
    float *base = malloc(ni * sizeof(float)), *imgs = malloc(ni * sizeof(float));
    int32_t* labels = malloc(sizeof(int32_t) * (size_t)B);
    uint64_t* seeds = malloc(sizeof(uint64_t) * (size_t)B);
    CHECK(base && imgs && labels && seeds);
    for (size_t i = 0; i < ni; i++) base[i] = mim_rng_normal(&r);
    for (int b = 0; b < B; b++) labels[b] = (int32_t)(mim_rng_u64(&r) % (uint64_t)K);
    double t0 = 0, loss = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) { mim_prof_on = 1; mim_prof_reset(); t0 = omp_get_wtime(); }
        memcpy(imgs, base, ni * sizeof(float));
        mim_mae_zero_grad(&m);
        memset(h.grads, 0, sizeof(float) * h.n);
        mim_mix_params mp;
        mim_mixup_draw(&mp, &mx, &r, img, img);
        PROF(PROF_ELEMWISE, mim_mixup_apply(imgs, &mp, B, chans, img, img));
        mim_mixup_targets(h.targets, labels, mp.lam, mx.label_smoothing, B, K);
        for (int b = 0; b < B; b++) seeds[b] = mim_rng_u64(&r);
        mim_mae_drop_path_seeded(&m, drop_path, B, seeds);
        const float* lat = mim_mae_encode(&m, imgs, B);
        mim_cls_head_forward(&h, &m, lat, B, 1);
        PROF(PROF_LOSS, loss = mim_soft_ce_forward(h.logits, h.targets, h.probs, B, K));
        memset(h.dlogits, 0, sizeof(float) * (size_t)B * K);
        PROF(PROF_LOSS, mim_soft_ce_backward(h.dlogits, h.probs, h.targets, 1.0f, B, K));
        mim_cls_head_backward(&h, &m, B, 1);
        PROF(PROF_OPTIM, mim_adamw_step_groups(&opt, m.table, m.nparams, m.params, m.grads, &hp, lr_scale, decay));
        PROF(PROF_OPTIM, mim_adamw_step(&hopt, h.table, MIM_HEAD_N, h.params, h.grads, &hp));
    }
    double dt = omp_get_wtime() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    // forward + backward = 3 x the encoder's forward on every token
    double ips = (double)steps * B / dt, flops = 3.0 * mim_config_encoder_flops(&c) * ips;
    printf("{\"impl\": \"mimscale\", \"task\": \"finetune\", \"model\": \"%s\", \"precision\": \"%s\", \"sgemm\": \"%s\", "
           "\"img\": %d, \"patch\": %d, \"batch\": %d, \"threads\": %d, \"img_per_s\": %.2f, \"gflops\": %.1f, "
           "\"peak_rss_mb\": %.1f, \"final_loss\": %.5f, \"profile_ms_per_step\": {",
           model, mim_mae_precision_name(&m), mim_sgemm_backend_name(), img, patch, B, threads, ips, flops / 1e9,
           ru.ru_maxrss / 1024.0, loss);
    double acc = 0;
    for (int k = 0; k < PROF_NCLASS; k++) {
        printf("\"%s\": %.1f, ", mim_prof_name(k), 1e3 * mim_prof_secs[k] / steps);
        acc += mim_prof_secs[k];
    }
    printf("\"other\": %.1f}}\n", 1e3 * (dt - acc) / steps);
    free(base); free(imgs); free(labels); free(seeds); free(lr_scale); free(decay);
    mim_adamw_free(&opt); mim_adamw_free(&hopt);
    mim_cls_head_free(&h);
    mim_mae_free(&m);
    return 0;
}
