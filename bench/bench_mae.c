// bench_mae.c: pre-training step throughput of mimscale (forward + backward +
// AdamW on random images), with a per-op-class profile. Prints one JSON line
// comparable with bench/torch_mae_bench.py. Built by `make bench`.
//   bench_mae --model vit_tiny --img 32 --patch 4 --dec-dim 128 --dec-depth 2
//             --dec-heads 4 --batch 256 --steps 5 --warmup 2 --threads 2
//             --precision fp32   (or bf16: oneDNN where native, else emulated)
#include "core/check.h"
#include "core/prof.h"
#include "core/rng.h"
#include "model/mae.h"
#include "ops/ops.h"
#include "benchutil.h"
#include "train/optim.h"
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

void openblas_set_num_threads(int);

int main(int argc, char** argv) {
    const char *model = "vit_tiny", *precision = "fp32";
    int img = 32, patch = 4, dd = 128, ddep = 2, dh = 4, B = 256, steps = 5, warmup = 2, threads = 2, chans = 3;
    const bench_flag fl[] = {{"model", .s = &model}, {"img", .i = &img}, {"patch", .i = &patch}, {"dec-dim", .i = &dd},
                             {"dec-depth", .i = &ddep}, {"dec-heads", .i = &dh}, {"batch", .i = &B},
                             {"steps", .i = &steps}, {"warmup", .i = &warmup}, {"threads", .i = &threads},
                             {"precision", .s = &precision}};
    if (bench_flags_parse(argc, argv, fl, (int)(sizeof fl / sizeof fl[0]))) return 2;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    mim_config c;
    if (mim_config_preset(&c, model)) { fprintf(stderr, "%s\n", mim_err_msg()); return 2; }
    c.img_h = c.img_w = img; c.patch = patch; c.in_chans = chans;
    c.dec_dim = dd; c.dec_depth = ddep; c.dec_heads = dh;
    mim_mae m;
    if (mim_mae_init(&m, &c, B)) { fprintf(stderr, "%s\n", mim_err_msg()); return 1; }
    mim_mae_init_weights(&m, 0);
    if (strcmp(precision, "fp32") && strcmp(precision, "bf16")) { fprintf(stderr, "--precision fp32|bf16\n"); return 2; }
    if (mim_mae_set_precision(&m, strcmp(precision, "bf16") ? MIM_PREC_FP32 : MIM_PREC_BF16, MIM_BF16_AUTO)) {
        fprintf(stderr, "%s\n", mim_err_msg());
        return 1;
    }
    mim_adamw opt;
    CHECK(mim_adamw_init(&opt, m.num_floats) == 0);
    mim_adamw_hparams hp = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.05f};
    size_t ni = (size_t)B * chans * img * img;
    float* imgs = malloc(ni * sizeof(float));
    float* noise = malloc((size_t)B * m.L * sizeof(float));
    mim_rng r;
    mim_rng_seed(&r, 1);
    for (size_t i = 0; i < ni; i++) imgs[i] = mim_rng_normal(&r);
    double t0 = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) { mim_prof_on = 1; mim_prof_reset(); t0 = omp_get_wtime(); }
        for (size_t i = 0; i < (size_t)B * m.L; i++) noise[i] = mim_rng_uniform(&r);
        mim_mae_zero_grad(&m);
        mim_mae_forward(&m, imgs, noise, B);
        mim_mae_backward(&m, 1.0f);
        PROF(PROF_OPTIM, mim_adamw_step(&opt, m.table, m.nparams, m.params, m.grads, &hp));
    }
    double dt = omp_get_wtime() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double ips = (double)steps * B / dt, flops = mim_config_train_flops(&c) * ips;
    printf("{\"impl\": \"mimscale\", \"model\": \"%s\", \"precision\": \"%s\", \"sgemm\": \"%s\", \"img\": %d, \"patch\": %d, "
           "\"batch\": %d, \"threads\": %d, \"img_per_s\": %.2f, \"gflops\": %.1f, \"peak_rss_mb\": %.1f, \"profile_ms_per_step\": {",
           model, mim_mae_precision_name(&m), mim_sgemm_backend_name(), img, patch, B, threads, ips, flops / 1e9, ru.ru_maxrss / 1024.0);
    double acc = 0;
    for (int k = 0; k < PROF_NCLASS; k++) {
        printf("\"%s\": %.1f, ", mim_prof_name(k), 1e3 * mim_prof_secs[k] / steps);
        acc += mim_prof_secs[k];
    }
    printf("\"other\": %.1f}}\n", 1e3 * (dt - acc) / steps);
    free(imgs); free(noise);
    mim_adamw_free(&opt);
    mim_mae_free(&m);
    return 0;
}
