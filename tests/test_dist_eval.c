// test_dist_eval.c: data-parallel fine-tuning and evaluation with MPI
// (mpirun --oversubscribe -np 2), against one process:
//  - finetune, 2 ranks x batch 16 = 1 process x batch 16 x accum 2, with
//    RandAugment, random erasing, mixup/cutmix and drop path on: the same
//    bits (losses, weights after 6 steps) and eval top-1; a 2-rank run
//    resumed from its step-3 checkpoint ends with the same bits as the
//    uninterrupted one and the same log; the same checkpoint resumed by 1
//    process x accum 2 (the data position is global) too;
//  - knn: features extracted by 2 ranks (each a run of whole batches, the
//    remainder on the last) and gathered on rank 0 have the same bits as one
//    process's, and top-1 is equal; linprobe runs and prints once;
//  - pretrain --teacher-cache on 2 ranks: every sample computed once.
// On a synthetic 10-class IDX set (train 250: a remainder batch, t10k 100).
// Skips when built without MPI or when mpirun is missing.
#include "distutil.h"

#ifndef MIM_MPI
int main(void) {
    printf("SKIP: built without MPI\n");
    return TU_SKIP;
}
#else
static char bin[512], tmpdir[256];

#define MPIRUN "mpirun --oversubscribe -np 2"

// class c: a square of side 4 + c % 4 and grey level 20 c + 10 on noise
static void write_split(const char* dir, const char* split, int n, uint64_t seed) {
    enum { H = 16, W = 16 };
    mim_rng r;
    mim_rng_seed(&r, seed);
    uint8_t* px = tu_alloc_bytes((size_t)n * H * W);
    uint8_t* lab = tu_alloc_bytes((size_t)n);
    for (int i = 0; i < n; i++) {
        uint8_t* img = px + (size_t)i * H * W;
        int c = (int)mim_rng_below(&r, 10), s = 4 + c % 4;
        int y = (int)mim_rng_below(&r, H - s), x = (int)mim_rng_below(&r, W - s);
        for (int k = 0; k < H * W; k++) img[k] = 100 + (uint8_t)mim_rng_below(&r, 20);
        for (int a = y; a < y + s; a++)
            for (int b = x; b < x + s; b++) img[a * W + b] = (uint8_t)(20 * c + 10);
        lab[i] = (uint8_t)c;
    }
    tu_write_idx(dir, split, n, H, W, px, lab);
}

// The number after "key": in the first line of FILE (the command's JSON), or NAN.
static double json_num(const char* file, const char* key) {
    uint8_t* s = NULL;
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    if (!tu_slurp(file, &s)) return NAN;
    const char* q = strstr((const char*)s, pat);
    return q ? strtod(q + strlen(pat), NULL) : NAN;
}

static int count_lines(const char* file) {
    uint8_t* s = NULL;
    size_t n = tu_slurp(file, &s);
    int k = 0;
    for (size_t i = 0; i < n; i++) k += s[i] == '\n';
    return k;
}

int main(void) {
    const char* why = NULL;
    if (du_setup(bin, sizeof bin, &why)) { printf("SKIP: %s\n", why); return TU_SKIP; }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mim_test_dist_eval_XXXXXX");
    CHECK(mkdtemp(tmpdir));
    char data[600], a[700], b[700];
    snprintf(data, sizeof data, "%s/data", tmpdir);
    mkdir(data, 0755);
    write_split(data, "train", 250, 1);
    write_split(data, "t10k", 100, 2);

    // fine-tuning with the full MAE recipe (RandAugment, erasing, mixup/cutmix, drop path 0.1)
#define FT "finetune --init random --model vit_nano --patch 4 --threads 1 --steps 6 --log-every 1 --lr 1e-3 " \
           "--warmup-epochs 0 --drop-path 0.1 --seed 3 --quiet"
    int rc = du_sh("%s " FT " --data %s --batch 16 --accum 2 --out %s/ft1 >%s/ft1.json", bin, data, tmpdir, tmpdir);
    TU_CHECK(rc == 0, "finetune, 1 process x batch 16 x accum 2, 6 steps: exit %d", rc);
    rc = du_sh(MPIRUN " %s " FT " --data %s --batch 16 --out %s/ft2 >%s/ft2.json", bin, data, tmpdir, tmpdir);
    TU_CHECK(rc == 0, "finetune, 2 ranks x batch 16: exit %d", rc);
    snprintf(a, sizeof a, "%s/ft1", tmpdir);
    snprintf(b, sizeof b, "%s/ft2", tmpdir);
    float la[6], lb[6];
    if (TU_CHECK(du_metric(a, "loss", la, 6) == 6 && du_metric(b, "loss", lb, 6) == 6, "6 step losses logged by each"))
        TU_CHECK(!memcmp(la, lb, sizeof la), "finetune 2 ranks vs 1 process x accum 2: losses bit-identical (step 6: "
                 "%.9g vs %.9g)", lb[5], la[5]);
    snprintf(a, sizeof a, "%s/ft1/checkpoint-last.safetensors", tmpdir);
    snprintf(b, sizeof b, "%s/ft2/checkpoint-last.safetensors", tmpdir);
    int same = 0;
    double d = du_st_diff(a, b, NULL, &same);
    TU_CHECK(same, "finetune 2 ranks vs 1 process x accum 2: weights after 6 steps bit-identical (maxrel %.2e)", d);
    snprintf(a, sizeof a, "%s/ft1.json", tmpdir);
    snprintf(b, sizeof b, "%s/ft2.json", tmpdir);
    double t1 = json_num(a, "top1"), t2 = json_num(b, "top1");
    TU_CHECK(isfinite(t1) && t1 == t2 && count_lines(b) == 1, "eval top-1 split over 2 ranks: %.4f vs %.4f, "
             "one result line", t2, t1);

    // resume on 2 ranks: the same 2-rank run with checkpoints every 3 steps,
    // then a copy of its step-3 checkpoint resumed to step 6 (as after a
    // crash between the two) ends with the same bits
    rc = du_sh(MPIRUN " %s " FT " --data %s --batch 16 --save-every 3 --out %s/ft3 >%s/ft3.json", bin, data, tmpdir, tmpdir);
    rc |= du_sh("mkdir -p %s/ft4 && cp -r %s/ft3/ckpt-000000003 %s/ft3/metrics.jsonl %s/ft4/ && "
                "printf ckpt-000000003 >%s/ft4/latest", tmpdir, tmpdir, tmpdir, tmpdir, tmpdir);
    rc |= du_sh(MPIRUN " %s " FT " --data %s --batch 16 --save-every 3 --resume --out %s/ft4 >%s/ft4.json", bin, data,
                tmpdir, tmpdir);
    TU_CHECK(rc == 0, "finetune on 2 ranks with checkpoints, and resumed from its step-3 checkpoint: exit %d", rc);
    snprintf(a, sizeof a, "%s/ft3/checkpoint-last.safetensors", tmpdir);
    snprintf(b, sizeof b, "%s/ft4/checkpoint-last.safetensors", tmpdir);
    d = du_st_diff(a, b, NULL, &same);
    snprintf(a, sizeof a, "%s/ft3.json", tmpdir);
    snprintf(b, sizeof b, "%s/ft4.json", tmpdir);
    t1 = json_num(a, "top1"); t2 = json_num(b, "top1");
    TU_CHECK(same && isfinite(t1) && t1 == t2, "2-rank finetune resumed at step 3: final weights bit-identical to the "
             "uninterrupted run (maxrel %.2e), top-1 %.4f vs %.4f", d, t2, t1);
    // the log (copied with the checkpoint, as a crash leaves it: steps 1-6)
    // is cut back to step 3 by rank 0 alone, then continued: steps 1..6
    // once each, the same losses
    float l3[8], l4[8];
    snprintf(a, sizeof a, "%s/ft3", tmpdir);
    snprintf(b, sizeof b, "%s/ft4", tmpdir);
    int n3 = du_metric(a, "loss", l3, 8), n4 = du_metric(b, "loss", l4, 8);
    TU_CHECK(n3 == 6 && n4 == 6 && !memcmp(l3, l4, sizeof(float) * 6),
             "the resumed run's metrics.jsonl: the 6 step losses once each, equal to the uninterrupted run's (%d rows)", n4);

    // the 2-rank step-3 checkpoint resumed by one process x accum 2: the
    // checkpoint's data position is global, so it takes the samples the
    // ranks would have and ends with the 1-process run's bits
    rc = du_sh("mkdir -p %s/ft5 && cp -r %s/ft3/ckpt-000000003 %s/ft5/ && printf ckpt-000000003 >%s/ft5/latest", tmpdir,
               tmpdir, tmpdir, tmpdir);
    rc |= du_sh("%s " FT " --data %s --batch 16 --accum 2 --save-every 3 --resume --out %s/ft5 >%s/ft5.json", bin, data,
                tmpdir, tmpdir);
    snprintf(a, sizeof a, "%s/ft1/checkpoint-last.safetensors", tmpdir);
    snprintf(b, sizeof b, "%s/ft5/checkpoint-last.safetensors", tmpdir);
    d = du_st_diff(a, b, NULL, &same);
    TU_CHECK(rc == 0 && same, "2-rank finetune checkpoint (step 3) resumed by 1 process x accum 2: exit %d, final "
             "weights bit-identical to the uninterrupted 1-process run (maxrel %.2e)", rc, d);

    // features: a short pre-training for a checkpoint, then kNN by 1 and 2 processes
    rc = du_sh("%s pretrain --model vit_nano --patch 4 --dec-dim 64 --dec-depth 1 --dec-heads 2 --threads 1 "
               "--data %s --batch 32 --steps 2 --quiet --out %s/pre", bin, data, tmpdir);
    char ck[700];
    snprintf(ck, sizeof ck, "%s/pre/ckpt-000000002/model.safetensors", tmpdir);
#define KNN "knn --batch 16 --threads 1 --quiet"
    rc |= du_sh("%s " KNN " --ckpt %s --data %s --save-features %s/f1.st >%s/knn1.json", bin, ck, data, tmpdir, tmpdir);
    rc |= du_sh(MPIRUN " %s " KNN " --ckpt %s --data %s --save-features %s/f2.st >%s/knn2.json", bin, ck, data,
                tmpdir, tmpdir);
    TU_CHECK(rc == 0, "pretrain 2 steps, knn by 1 process and by 2 ranks: exit %d", rc);
    snprintf(a, sizeof a, "%s/f1.st", tmpdir);
    snprintf(b, sizeof b, "%s/f2.st", tmpdir);
    int bits = 0;
    d = du_st_diff(a, b, NULL, &bits);
    TU_CHECK(bits, "features of 250 + 100 images from 2 ranks == 1 process, bit for bit (maxrel %.2e)", d);
    snprintf(a, sizeof a, "%s/knn1.json", tmpdir);
    snprintf(b, sizeof b, "%s/knn2.json", tmpdir);
    t1 = json_num(a, "top1"); t2 = json_num(b, "top1");
    TU_CHECK(isfinite(t1) && t1 == t2 && count_lines(b) == 1 && json_num(b, "n_train") == 250,
             "knn top-1 from 2 ranks %.4f == 1 process %.4f, printed once, 250 train features", t2, t1);
    rc = du_sh(MPIRUN " %s linprobe --batch 16 --threads 1 --quiet --epochs 2 --ckpt %s --data %s >%s/lp.json", bin,
               ck, data, tmpdir);
    snprintf(a, sizeof a, "%s/lp.json", tmpdir);
    TU_CHECK(rc == 0 && count_lines(a) == 1 && isfinite(json_num(a, "top1")), "linprobe on 2 ranks: exit %d, one "
             "result line", rc);

    // the teacher cache shared by 2 ranks: 3 epochs without augmentation, each
    // sample's tokens computed once by whichever rank met it first and read
    // by both ranks afterwards
    rc = du_sh(MPIRUN " %s pretrain --model vit_nano --patch 4 --dec-dim 64 --dec-depth 1 --dec-heads 2 --threads 1 "
               "--data %s --batch 16 --steps 21 --save-every 0 --target teacher --teacher %s --teacher-norm --augment=0 "
               "--teacher-cache %s/tc.tfc --out %s/tc 2>%s/tc.log", bin, data, ck, tmpdir, tmpdir, tmpdir);
    snprintf(a, sizeof a, "%s/tc.log", tmpdir);
    uint8_t* log = NULL;
    tu_slurp(a, &log);
    const char* q = log ? strstr((const char*)log, "tc.tfc: ") : NULL;
    long rd = -1, comp = -1, stored = -1, badn = -1, cached = -1, total = -1;
    if (q) sscanf(q + 8, "%ld read, %ld computed (%ld stored), %ld bad; %ld of %ld", &rd, &comp, &stored, &badn, &cached, &total);
    TU_CHECK(rc == 0 && rd + comp == 3 * 224 && comp == stored && comp == cached && badn == 0 && total == 250,
             "teacher cache on 2 ranks, 3 epochs of 224: %ld read + %ld computed, each computed sample stored once "
             "(%ld of %ld cached)", rd, comp, cached, total);

    du_sh("rm -rf %s", tmpdir);
    tu_free_all();
    return tu_summary("test_dist_eval", 0, NULL);
}
#endif
