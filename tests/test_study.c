// test_study.c: the scaling-study harness without training anything: the
// study file's validation, grid expansion and run ids, the results schema,
// skip-finished / retry-failed / resume logic and a SIGKILL in the middle of
// a study, all with a fake `mimscale` (a shell script that writes what the
// real commands write), and the power-law fit on synthetic points.
#include "testutil.h"
#include "model/mae.h"
#include "train/checkpoint.h"
#include "study/fit.h"
#include "study/results.h"
#include "study/study.h"
#include "train/signals.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[256];

// The fake binary. pretrain: one metrics line per step (FAKE_SLEEP seconds
// each), a checkpoint every --save-every steps and at the end, --resume from
// `latest`, fails for --model=$FAKE_FAIL_MODEL; every start is logged in
// <out>/starts. knn/linprobe on --ckpt and finetune: top1 = 1 - (0.5
// size^-0.3 + 0.05) (+0.01 for finetune, whose arguments go to <out>.argv);
// the baselines: --features=pixels 0.6, --init=random 0.3 + seed / 100, and
// exit 2 for a flag set that the real commands refuse.
static const char* fake_sh =
    "#!/bin/sh\n"
    "cmd=$1; shift\n"
    "steps=1; out=; save=1; model=; resume=0; sub=; pos=; feat=; init=; ckpt=; img=; chans=; patch=; seed=; result=\n"
    "emit() { cat > \"$1.tmp\"; cat \"$1.tmp\"; mv \"$1.tmp\" \"$1\"; }   # the result record: stdout and the file, as the real commands\n"
    "for a in \"$@\"; do case $a in\n"
    "  --steps=*) steps=${a#*=};; --out=*) out=${a#*=};; --save-every=*) save=${a#*=};;\n"
    "  --model=*) model=${a#*=};; --resume) resume=1;; --subset=*) sub=${a#*=};; --sizes=*) sizes=${a#*=};;\n"
    "  --strategy=*) strat=${a#*=};; --seed=*) seed=${a#*=};; --features=*) feat=${a#*=};; --init=*) init=${a#*=};;\n"
    "  --ckpt=*) ckpt=${a#*=};; --img=*) img=${a#*=};; --in-chans=*) chans=${a#*=};; --patch=*) patch=${a#*=};; --result=*) result=${a#*=};;\n"
    "  --*) ;; *) pos=$a;; esac; done\n"
    "case $cmd in\n"
    "pack) : > \"$out-000000.tar\";;\n"
    "index) echo fake > \"$out\";;\n"
    "subset) for z in $(echo $sizes | tr , ' '); do echo $z > \"$out-$strat-s$seed-$z.sub\"; done;;\n"
    "pretrain)\n"
    "  if [ -n \"$FAKE_FAIL_MODEL\" ] && [ \"$model\" = \"$FAKE_FAIL_MODEL\" ]; then echo \"error: fake failure\" >&2; exit 1; fi\n"
    "  mkdir -p \"$out\"; start=0\n"
    "  if [ $resume = 1 ] && [ -f \"$out/latest\" ]; then start=$(cat \"$out/latest\" | sed 's/ckpt-0*//'); [ -z \"$start\" ] && start=0; fi\n"
    "  echo $start >> \"$out/starts\"\n"
    "  if [ -f \"$out/metrics.jsonl\" ]; then awk -v s=$start -F'[:,]' '$2+0 <= s' \"$out/metrics.jsonl\" > \"$out/m.tmp\"; mv \"$out/m.tmp\" \"$out/metrics.jsonl\"; fi\n"
    "  i=$start\n"
    "  while [ $i -lt $steps ]; do i=$((i+1)); sleep ${FAKE_SLEEP:-0}\n"
    "    echo \"{\\\"step\\\": $i, \\\"loss\\\": 1.$((100-i)), \\\"time_s\\\": $i}\" >> \"$out/metrics.jsonl\"\n"
    "    if [ $((i % save)) = 0 ] || [ $i = $steps ]; then c=$(printf 'ckpt-%09d' $i); mkdir -p \"$out/$c\"; : > \"$out/$c/model.safetensors\"; echo $c > \"$out/latest.tmp\"; mv \"$out/latest.tmp\" \"$out/latest\"; fi\n"
    "  done;;\n"
    "knn|linprobe)\n"
    "  if [ \"$feat\" = pixels ]; then\n"
    "    [ -z \"$ckpt$init$model$patch\" ] && [ -n \"$img\" ] && [ -n \"$chans\" ] || { echo \"fake: bad pixels flags\" >&2; exit 2; }\n"
    "    echo '{\"top1\": 0.6, \"top5\": 0.9, \"features\": \"pixels\"}' | emit \"$out\"; exit 0; fi\n"
    "  if [ \"$init\" = random ]; then\n"
    "    [ -z \"$ckpt\" ] && [ -n \"$model\" ] && [ -n \"$patch\" ] && [ -n \"$img\" ] && [ -n \"$chans\" ] && [ -n \"$seed\" ] || { echo \"fake: bad random-init flags\" >&2; exit 2; }\n"
    "    awk -v s=$seed 'BEGIN { printf \"{\\\"top1\\\": %.6f, \\\"top5\\\": 0.9, \\\"features\\\": \\\"random-init\\\"}\\n\", 0.3 + s / 100 }' | emit \"$out\"; exit 0; fi\n"
    "  [ -n \"$ckpt\" ] && [ -z \"$feat$init$img$chans\" ] || { echo \"fake: bad ckpt flags\" >&2; exit 2; }\n"
    "  size=$(echo \"$sub\" | sed 's/.*-\\([0-9]*\\)\\.sub$/\\1/')\n"
    "  echo 'progress line'; sleep ${FAKE_SLEEP:-0}\n"
    "  awk -v n=$size 'BEGIN { t = 1 - (0.5 * n^-0.3 + 0.05); printf \"{\\\"top1\\\": %.6f, \\\"top5\\\": 0.99}\\n\", t }' | emit \"$out\";;\n"
    "finetune)\n"
    "  size=$(echo \"$sub\" | sed 's/.*-\\([0-9]*\\)\\.sub$/\\1/')\n"
    "  echo \"$@\" >> \"$out.argv\"\n"
    "  echo 'progress line'; sleep ${FAKE_SLEEP:-0}\n"
    "  awk -v n=$size 'BEGIN { t = 1 - (0.5 * n^-0.3 + 0.05) + 0.01; printf \"{\\\"top1\\\": %.6f, \\\"top5\\\": 0.99}\\n\", t }' | emit \"$result\";;\n"
    "*) echo \"fake: unknown command $cmd\" >&2; exit 2;;\n"
    "esac\n";

static const char* study_json =
    "{\"name\": \"t\", \"data\": {\"shards\": \"%s/x-*.tar\", \"eval_shards\": \"%s/y-*.tar\", \"img\": 28, \"in_chans\": 1},\n"
    " \"subsets\": [{\"sizes\": [1000, 4000], \"strategy\": \"random\"}, {\"sizes\": [4000], \"strategies\": [\"first\"]}],\n"
    " \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7, \"dec_dim\": 32, \"dec_depth\": 1, \"dec_heads\": 2}, {\"preset\": \"vit_tiny\", \"patch\": 7}],\n"
    " \"targets\": [\"pixel\"], \"budget\": {\"images_seen\": %d},\n"
    " \"pretrain\": {\"batch\": 100, \"save_every\": 2, \"threads\": 1},\n"
    " \"evaluations\": {\"knn\": {\"k\": 20}, \"linprobe\": {\"epochs\": 2}, \"scratch\": {\"epochs\": 1}}, \"seeds\": [0]}\n";

static void study_text(char* buf, size_t cap, int images) { snprintf(buf, cap, study_json, dir, dir, images); }

static int count_lines(const char* path) {
    FILE* f = fopen(path, "r");
    if (!f) return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

static void test_parse_errors(void) {
    mim_study s;
    char buf[4096];
    study_text(buf, sizeof buf, 1000);
    TU_CHECK(mim_study_parse(&s, buf, "ok.json") == 0, "study file parses: %s", mim_err_msg());
    TU_CHECK(s.nsubsets == 3 && s.nmodels == 2 && s.ntargets == 1 && s.budget_kind == MIM_BUDGET_IMAGES, "study: 3 subsets, 2 models, 1 target, images budget");
    TU_CHECK(s.evals[MIM_EVAL_KNN] && s.evals[MIM_EVAL_LINPROBE] && !s.evals[MIM_EVAL_FINETUNE] && s.evals[MIM_EVAL_SCRATCH], "study: evaluations knn, linprobe, scratch (no finetune)");
    TU_CHECK(s.eval_extra[MIM_EVAL_KNN].argc == 1 && !strcmp(s.eval_extra[MIM_EVAL_KNN].argv[0], "--k=20"), "study: knn extra argument --k=20");
    mim_study_free(&s);
    struct { const char* json; const char* must; } bad[] = {
        {"{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [1000]}, \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7}], \"targets\": [\"dino\"], \"budget\": {\"epochs\": 1}}", "targets"},
        {"{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [1000]}, \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7}], \"budget\": {\"epochs\": 1, \"images_seen\": 5}}", "budget"},
        {"{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [1000]}, \"models\": [\"vit_nano\"], \"budget\": {\"epochs\": 1}, \"seedz\": [1]}", "seedz"},
        {"{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [100]}, \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7}], \"budget\": {\"epochs\": 1}}", "pretrain.batch"},
        {"{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [1000]}, \"models\": [{\"preset\": \"vit_nano\", \"patch\": 5}], \"budget\": {\"epochs\": 1}}", "models[0]"},
        {"{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [1000]}, \"models\": [\"vit_gigantic\"], \"budget\": {\"epochs\": 1}}", "models[0]"},
        {"{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [1000], \"strategy\": \"best\"}, \"models\": [\"vit_nano\"], \"budget\": {\"epochs\": 1}}", "strategy"},
        {"{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [1000]}, \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7}], \"budget\": {\"epochs\": 1}, \"evaluations\": [\"knn\", \"dino\"]}", "evaluations"},
        {"{\"data\": {\"shards\": \"/x\"}, \"subsets\": {\"sizes\": [1000]}, \"models\": [\"vit_nano\"], \"budget\": {\"epochs\": 1}}", "eval_shards"},
        {"{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [1000]}, \"models\": [\"vit_nano\"],", "JSON"},
        {"{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [1000], \"seeds\": [1, 1]}, \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7}], \"budget\": {\"epochs\": 1}}", "listed twice"},
        {"{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [1000], \"targets\": [\"hog\"]}, \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7}], \"targets\": [\"pixel\"], \"budget\": {\"epochs\": 1}}", "among the study's"},
        {"{\"data\": {\"idx\": \"/x\"}, \"subsets\": [{\"sizes\": [1000]}, {\"sizes\": [1000], \"seeds\": [3]}], \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7}], \"budget\": {\"epochs\": 1}}", "repeats an earlier entry"},
        {"{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [1000]}, \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7}], \"budget\": {\"epochs\": 1}, \"pretrain\": {\"batch\": 100}, \"slurm\": {\"pretrain\": {\"ntasks\": 3}}}", "do not divide pretrain.batch"},
        {"{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [1000]}, \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7}], \"budget\": {\"epochs\": 1}, \"slurm\": {\"eval\": {\"ntasks\": 2}}}", "only pre-training runs as several MPI ranks"},
        {"{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [1000]}, \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7}], \"budget\": {\"epochs\": 1}, \"slurm\": {\"pretrain\": {\"gpus\": 2}}}", "gpus"},
        {"{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [1000]}, \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7}], \"budget\": {\"epochs\": 1}, \"slurm\": {\"mpi\": \"pm ix\"}}", "slurm.mpi"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = mim_study_parse(&s, bad[i].json, "bad.json");
        TU_CHECK(rc < 0 && strstr(mim_err_msg(), bad[i].must), "bad study %zu refused, message names \"%s\": %s",
                 i, bad[i].must, rc < 0 ? mim_err_msg() : "accepted");
        if (rc == 0) mim_study_free(&s);
    }
}

// "subsets" entries with their own seeds and targets narrow the grid: 3 seeds
// at 1000, the study's one seed at 4000, and "first" at 4000 with 2 seeds and
// one of the two targets.
static void test_subset_seeds(void) {
    char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"data\": {\"idx\": \"/x\", \"probe_size\": 500}, \"subsets\": [{\"sizes\": [1000], \"seeds\": [0, 1, 2]}, {\"sizes\": [4000]},"
             " {\"sizes\": [4000], \"strategy\": \"first\", \"seeds\": [5, 6], \"targets\": [\"pixel-norm\"]}],"
             " \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7}], \"targets\": [\"pixel-norm\", \"hog\"], \"pretrain\": {\"hog_cell\": 7},"
             " \"budget\": {\"images_seen\": 1000}, \"evaluations\": {\"knn\": {}, \"finetune\": {\"steps\": 2}, \"scratch\": {}}, \"seeds\": [0]}");
    mim_study s;
    TU_CHECK(mim_study_parse(&s, buf, "seeds.json") == 0, "per-subset seeds and targets parse: %s", mim_err_msg());
    mim_study_run* r;
    int n = mim_study_expand(&s, &r);
    int mim[3] = {0}, scr[3] = {0}, hog_first = 0, first_seeds_ok = 1, nbl = 0;
    for (int i = 0; i < n; i++) {
        int su = r[i].subset;
        if (r[i].kind == MIM_RUN_MIM) mim[su]++;
        if (r[i].kind == MIM_RUN_SCRATCH) scr[su]++;
        if (r[i].kind == MIM_RUN_BASELINE) nbl++;
        if (su == 2 && r[i].kind == MIM_RUN_MIM) hog_first |= r[i].target == MIM_TARGET_HOG;
        if (su == 2 && r[i].kind != MIM_RUN_BASELINE) first_seeds_ok &= r[i].seed == 5 || r[i].seed == 6;
    }
    // 1000: 3 seeds x 2 targets; 4000 random: 1 seed x 2 targets; 4000 first: 2 seeds x 1 target
    TU_CHECK(mim[0] == 6 && mim[1] == 2 && mim[2] == 2, "per-subset seeds: MIM runs 6 / 2 / 2 (got %d / %d / %d)", mim[0], mim[1], mim[2]);
    TU_CHECK(scr[0] == 3 && scr[1] == 1 && scr[2] == 2, "per-subset seeds: scratch runs 3 / 1 / 2 (got %d / %d / %d)", scr[0], scr[1], scr[2]);
    TU_CHECK(!hog_first && first_seeds_ok, "the narrowed entry runs only pixel-norm, with its own seeds 5 and 6");
    TU_CHECK(nbl == 2 && n == 10 + 6 + 2, "baselines follow the study's seeds (2: pixels + random-init), %d runs in all", n);
    free(r);
    mim_study_free(&s);
}

static void test_grid(void) {
    mim_study s;
    char buf[4096];
    study_text(buf, sizeof buf, 1000);
    CHECK(mim_study_parse(&s, buf, "t.json") == 0);
    mim_study_run *r1, *r2;
    int n1 = mim_study_expand(&s, &r1), n2 = mim_study_expand(&s, &r2);
    // MIM runs + scratch runs + baselines (no probe set: per subset, pixels + one random-init per model)
    TU_CHECK(n1 == 3 * 2 * 1 + 3 * 2 + 3 * (1 + 2) && n2 == n1, "grid: %d runs (6 MIM + 6 scratch + 9 baselines), the same twice", n1);
    int stable = 1, distinct = 1, n_mim = 0, budget_ok = 0, epochs_ok = 0, flops_ok = 0;
    for (int i = 0; i < n1 && i < n2; i++) {
        stable &= !strcmp(r1[i].id, r2[i].id);
        for (int k = 0; k < i; k++) distinct &= strcmp(r1[i].id, r1[k].id) != 0;
        if (r1[i].kind == MIM_RUN_MIM) {
            n_mim++;
            budget_ok += r1[i].steps == 10 && r1[i].images_seen == 1000;   // images budget / batch 100
            epochs_ok += fabs(r1[i].epochs - 1000.0 / (100.0 * (double)(r1[i].size / 100))) < 1e-9;
            flops_ok += r1[i].flops > 0 && r1[i].flops_per_image == mim_config_train_flops(&r1[i].cfg);
        }
    }
    TU_CHECK(stable, "grid: a second expansion gives the same run ids");
    TU_CHECK(distinct, "grid: %d distinct run ids", n1);
    TU_CHECK(n_mim == 6 && budget_ok == n_mim, "grid: %d / %d MIM runs have 10 steps, 1000 images (6 MIM runs)", budget_ok, n_mim);
    TU_CHECK(epochs_ok == n_mim, "grid: %d / %d MIM runs have epochs = images / subset size", epochs_ok, n_mim);
    TU_CHECK(flops_ok == n_mim, "grid: %d / %d MIM runs have flops > 0 and the config's train FLOPs per image", flops_ok, n_mim);
    TU_CHECK(strstr(r1[0].id, "vit_nano-p7-pixel-random1000-s0-") == r1[0].id, "grid: first id starts vit_nano-p7-pixel-random1000-s0- (%s)", r1[0].id);
    mim_study s2;
    study_text(buf, sizeof buf, 2000);   // a different budget: different ids
    CHECK(mim_study_parse(&s2, buf, "t.json") == 0);
    mim_study_run* r3;
    CHECK(mim_study_expand(&s2, &r3) == n1);
    TU_CHECK(strcmp(r1[0].id, r3[0].id) != 0, "grid: another budget, another id");
    int bl_kept = 0, nbl = 0;
    for (int i = 0; i < n1; i++)
        if (r1[i].kind == MIM_RUN_BASELINE) { nbl++; bl_kept += !strcmp(r1[i].id, r3[i].id); }
    TU_CHECK(nbl == 9 && bl_kept == nbl, "grid: another budget keeps the %d / %d baseline ids (no pre-training in them)", bl_kept, nbl);
    // The pretrain command line.
    mim_study_paths p;
    mim_study_data_paths(&s, "OUT", &p);
    char sub[1024];
    mim_study_subset_path(&s, &p, &r1[0], sub, sizeof sub);
    TU_CHECK(!strcmp(sub, "OUT/data/subsets/train-random-s0-1000.sub"), "subset path %s", sub);
    char** av = mim_study_pretrain_argv(&s, &r1[0], &p, "BIN", "RUN", sub);
    int has_steps = 0, has_resume = 0, has_patch = 0;
    for (char** a = av; *a; a++) {
        has_steps |= !strcmp(*a, "--steps=10");
        has_resume |= !strcmp(*a, "--resume");
        has_patch |= !strcmp(*a, "--patch=7");
    }
    TU_CHECK(!strcmp(av[0], "BIN") && !strcmp(av[1], "pretrain") && has_steps && has_resume && has_patch, "pretrain argv: BIN pretrain ... --steps=10 --resume --patch=7");
    mim_argv_free(av);
    free(r1); free(r2); free(r3);
    mim_study_free(&s); mim_study_free(&s2);
}

// Feature targets: hog and teacher parse, expand to their own runs and
// reach the pretrain command line; teacher needs a teacher path.
static void test_feature_targets(void) {
    const char* base =
        "{\"data\": {\"idx\": \"/x\", \"img\": 32, \"in_chans\": 3}, \"subsets\": {\"sizes\": [1000]},\n"
        " \"models\": [{\"preset\": \"vit_nano\", \"patch\": 16}], \"budget\": {\"epochs\": 1}, \"pretrain\": {\"hog_cell\": 4}, %s}";
    char buf[2048];
    snprintf(buf, sizeof buf, base, "\"targets\": [\"pixel\", \"pixel-norm\", \"hog\", \"teacher\"], "
             "\"teacher\": {\"path\": \"/t/dinov2.safetensors\", \"layer\": 6, \"norm\": true}");
    mim_study s;
    int rc = mim_study_parse(&s, buf, "ft.json");
    TU_CHECK(rc == 0, "feature targets: study parses");
    if (rc) { fprintf(stderr, "feature targets: %s\n", mim_err_msg()); return; }
    TU_CHECK(s.ntargets == 4 && s.targets[2] == MIM_TARGET_HOG && s.targets[3] == MIM_TARGET_TEACHER, "feature targets: 4 targets, hog and teacher in order");
    TU_CHECK(s.teacher && !strcmp(s.teacher, "/t/dinov2.safetensors") && s.teacher_layer == 6 && s.teacher_norm == 1, "feature targets: teacher path, layer 6, norm");
    mim_study_run* r;
    int n = mim_study_expand(&s, &r);
    TU_CHECK(n == 4, "feature targets: %d runs (want 4)", n);
    mim_study_paths p;
    mim_study_data_paths(&s, "OUT", &p);
    const char* want_target[4] = {NULL, NULL, "--target=hog", "--target=teacher"};
    const char* want_np[4] = {"--norm-pix=0", "--norm-pix=1", NULL, NULL};
    for (int i = 0; i < n && i < 4; i++) {
        TU_CHECK(r[i].target == s.targets[i] && r[i].cfg.target == s.targets[i], "run %d: target %s in the run and its config", i, mim_target_name(r[i].target));
        TU_CHECK(r[i].cfg.target_dim == (r[i].target == MIM_TARGET_HOG ? 3 * 9 * 4 * 4 : 0), "run %d: target_dim %d (hog: 3 x 9 x 4 x 4, else 0)", i, r[i].cfg.target_dim);   // 16 / hog_cell 4 = 4 cells a side
        char idpart[32];
        snprintf(idpart, sizeof idpart, "-%s-", mim_target_name(r[i].target));
        TU_CHECK(strstr(r[i].id, idpart) != NULL, "run %d: id %s names the target", i, r[i].id);
        int distinct = 1;
        for (int k = 0; k < i; k++) distinct &= strcmp(r[i].id, r[k].id) != 0;
        TU_CHECK(distinct, "run %d: id distinct from the earlier runs'", i);
        char** av = mim_study_pretrain_argv(&s, &r[i], &p, "BIN", "RUN", "SUB");
        int has_t = 0, has_np = 0, any_np = 0, any_t = 0, teach = 0, cell = 0;
        for (char** a = av; *a; a++) {
            has_t |= want_target[i] && !strcmp(*a, want_target[i]);
            has_np |= want_np[i] && !strcmp(*a, want_np[i]);
            any_np |= !strncmp(*a, "--norm-pix", 10);
            any_t |= !strncmp(*a, "--target", 8);
            teach += !strcmp(*a, "--teacher=/t/dinov2.safetensors") + !strcmp(*a, "--teacher-layer=6") + !strcmp(*a, "--teacher-norm=1");
            cell += !strncmp(*a, "--hog-cell", 10) ? (!strcmp(*a, "--hog-cell=4") ? 1 : 100) : 0;
        }
        TU_CHECK(cell == (r[i].target == MIM_TARGET_HOG), "run %d: --hog-cell=4 only for the hog run", i);   // only the hog run gets it
        TU_CHECK(want_target[i] ? has_t && !any_np : has_np && !any_t, "run %d: --target=... or --norm-pix=..., not both", i);
        TU_CHECK(teach == (r[i].target == MIM_TARGET_TEACHER ? 3 : 0), "run %d: the 3 teacher flags only for the teacher run (%d)", i, teach);
        mim_argv_free(av);
    }
    // another teacher (or layer) is another run; the other targets keep their ids
    mim_study s2;
    snprintf(buf, sizeof buf, base, "\"targets\": [\"pixel\", \"pixel-norm\", \"hog\", \"teacher\"], \"teacher\": \"/t/other.safetensors\"");
    TU_CHECK(mim_study_parse(&s2, buf, "ft.json") == 0, "other teacher: study parses");
    TU_CHECK(s2.teacher_layer == -1 && s2.teacher_norm == 0, "teacher given as a path: layer -1 (last), norm off");
    mim_study_run* r2;
    TU_CHECK(mim_study_expand(&s2, &r2) == 4, "other teacher: 4 runs");
    for (int i = 0; i < 4; i++) TU_CHECK((strcmp(r[i].id, r2[i].id) == 0) == (i < 3), "run %d: id %s with another teacher (only the teacher run changes)", i, i < 3 ? "kept" : "changed");
    // no readable teacher: the estimate has no teacher term
    mim_study_teacher_shape none;
    mim_study_run* rn;
    TU_CHECK(mim_study_teacher_shape_read(&s, &none) == 0 && !none.ok, "no readable teacher: shape read reports not ok");
    TU_CHECK(mim_study_expand_est(&s, &none, &rn) == 4, "no readable teacher: 4 estimated runs");
    TU_CHECK(rn[3].est_flops == rn[0].est_flops && rn[0].est_flops == r[0].est_flops, "no readable teacher: no teacher term in the estimate");
    free(rn);
    free(r); free(r2);
    mim_study_free(&s); mim_study_free(&s2);
    {   // a real teacher (vit_tiny: another width and depth, patch 8, so
        // 16 x 16 pixels for the student's 2 x 2 grid): a teacher run's time
        // estimate adds its forward per image seen
        char tp[64];
        snprintf(tp, sizeof tp, "/tmp/mim_test_study_teacher_%d.safetensors", (int)getpid());
        mim_config tc;
        CHECK(mim_config_preset(&tc, "vit_tiny") == 0);
        tc.patch = 8; tc.img_h = tc.img_w = 16; tc.in_chans = 3;
        mim_mae tm = {0};
        CHECK(mim_mae_init(&tm, &tc, 1) == 0);
        mim_mae_init_weights(&tm, 1);
        CHECK(mim_ckpt_save_model(tp, &tm, NULL, 0) == 0);
        mim_mae_free(&tm);
        char rest[256];
        snprintf(rest, sizeof rest, "\"targets\": [\"pixel\", \"teacher\"], \"teacher\": \"%s\"", tp);
        snprintf(buf, sizeof buf, base, rest);
        TU_CHECK(mim_study_parse(&s, buf, "ft.json") == 0, "real teacher: study parses");
        mim_study_run* rt;
        mim_study_teacher_shape ts;
        TU_CHECK(mim_study_teacher_shape_read(&s, &ts) == 1 && ts.D == tc.dim && ts.depth == tc.depth && ts.p == 8, "real teacher: shape read from the checkpoint (vit_tiny width, depth, patch 8)");
        TU_CHECK(mim_study_expand_est(&s, &ts, &rt) == 2, "real teacher: 2 estimated runs");
        double extra = rt[1].est_flops - rt[0].est_flops, want = (double)rt[1].images_seen * mim_config_encoder_flops(&tc);
        TU_CHECK(fabs(extra - want) <= 1e-9 * want && want > 0,
                 "teacher run estimate adds the teacher forward per image: +%.6g FLOP, want +%.6g", extra, want);
        free(rt);
        mim_study_free(&s);
        unlink(tp);
    }
    struct { const char* rest; const char* must; } bad[] = {
        {"\"targets\": [\"teacher\"]", "needs the teacher checkpoint"},
        {"\"targets\": [\"hog\"], \"teacher\": \"/t/x\"", "no target is \"teacher\""},
        {"\"targets\": [\"teacher\"], \"teacher\": {\"path\": \"/t/x\", \"depth\": 3}", "unknown key \"depth\""},
        {"\"targets\": [\"teacher\"], \"teacher\": {\"layer\": 3}", "needs \"path\""},
        {"\"targets\": [\"hog\", \"hog\"]", "listed twice"},
        {"\"targets\": [\"dino\"]", "known: pixel, pixel-norm, hog, teacher"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(buf, sizeof buf, base, bad[i].rest);
        rc = mim_study_parse(&s, buf, "bad.json");
        TU_CHECK(rc < 0 && strstr(mim_err_msg(), bad[i].must), "bad target setup %zu refused, message names \"%s\": %s",
                 i, bad[i].must, rc < 0 ? mim_err_msg() : "accepted");
        if (rc == 0) mim_study_free(&s);
    }
}

// 1 when argv holds the exact argument a.
static int has_arg(char** argv, const char* a) {
    for (char** p = argv; *p; p++) if (!strcmp(*p, a)) return 1;
    return 0;
}
static int has_prefix(char** argv, const char* a) {
    for (char** p = argv; *p; p++) if (!strncmp(*p, a, strlen(a))) return 1;
    return 0;
}

// The feature baselines in the grid: how many, their sizes and ids, and
// command lines that are the MIM rows' with the features flag for --ckpt.
static void test_baselines_grid(void) {
    const char* probe_json =
        "{\"data\": {\"idx\": \"/x\", \"probe_size\": 500, \"eval_size\": 300}, \"subsets\": {\"sizes\": [1000, 2000]},\n"
        " \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7}, {\"preset\": \"vit_tiny\", \"patch\": 7}], \"budget\": {\"epochs\": 1},\n"
        " \"pretrain\": {\"threads\": 2}, \"evaluations\": {\"knn\": {\"k\": 10, \"pool\": \"mean\"}, \"linprobe\": {\"epochs\": 3}}, \"seeds\": [0, 1]%s}";
    char buf[4096];
    snprintf(buf, sizeof buf, probe_json, "");
    mim_study s;
    int rc = mim_study_parse(&s, buf, "bl.json");
    TU_CHECK(rc == 0 && s.baselines == 1, "baselines: on by default (%s)", rc ? mim_err_msg() : "parsed");
    if (rc) return;
    mim_study_run* r;
    int n = mim_study_expand(&s, &r);
    int nmim = 0, npx = 0, nrnd = 0, sizes_ok = 0, flops_ok = 0, order_ok = 1;
    for (int i = 0; i < n; i++) {
        if (r[i].kind == MIM_RUN_MIM) { nmim++; order_ok &= npx + nrnd == 0; continue; }
        if (r[i].kind != MIM_RUN_BASELINE) continue;
        npx += r[i].baseline == MIM_BASELINE_PIXELS;
        nrnd += r[i].baseline == MIM_BASELINE_RANDOM;
        sizes_ok += r[i].size == 500 && !strcmp(mim_study_run_strategy(&s, &r[i]), "stratified");
        flops_ok += r[i].flops == 0 && r[i].est_flops > 0 && r[i].steps == 0;
    }
    TU_CHECK(n == 8 + 6 && nmim == 8 && npx == 2 && nrnd == 4 && order_ok,
             "probe set: %d runs = 8 MIM, then %d pixels (one per seed) + %d random-init (per model and seed)", n, npx, nrnd);
    TU_CHECK(sizes_ok == 6, "probe set: %d / 6 baselines train on the probe set (size 500, stratified)", sizes_ok);
    TU_CHECK(flops_ok == 6, "baselines: %d / 6 have no pre-training (flops 0, steps 0) and a time estimate", flops_ok);
    const mim_study_run *px = NULL, *rnd = NULL;
    for (int i = 0; i < n; i++) {
        if (r[i].kind != MIM_RUN_BASELINE || r[i].seed != 1) continue;
        if (r[i].baseline == MIM_BASELINE_PIXELS) px = &r[i];
        else if (!rnd) rnd = &r[i];
    }
    const mim_study_run* mr = NULL;   // a MIM run of the same seed
    for (int i = 0; i < n && !mr; i++) if (r[i].kind == MIM_RUN_MIM && r[i].seed == 1) mr = &r[i];
    CHECK(px && rnd && mr);
    TU_CHECK(strstr(px->id, "pixels-baseline-stratified500-s1-") == px->id && strstr(rnd->id, "vit_nano-p7-random-init-stratified500-s1-") == rnd->id,
             "baseline ids: %s, %s", px->id, rnd->id);
    TU_CHECK(rnd->est_flops > px->est_flops, "random-init estimate (encoder forward) above pixels' (%.3g > %.3g FLOP)", rnd->est_flops, px->est_flops);
    mim_study_paths p;
    mim_study_data_paths(&s, "OUT", &p);
    for (int e = MIM_EVAL_KNN; e <= MIM_EVAL_LINPROBE; e++) {
        char** mim = mim_study_eval_argv(&s, mr, (mim_eval_kind)e, &p, "BIN", "RUN", "SUB", "CK");
        char** ap = mim_study_eval_argv(&s, px, (mim_eval_kind)e, &p, "BIN", "RUNP", "SUB", "");
        char** ar = mim_study_eval_argv(&s, rnd, (mim_eval_kind)e, &p, "BIN", "RUNR", "SUB", "");
        // the same protocol: every argument of the MIM row's command but --ckpt, its feature cache and its
        // result file (in its own run folder) (and, for the pixels knn, the seed it has no use for)
        int same = 1;
        for (char** a = mim; *a; a++) {
            if (!strncmp(*a, "--ckpt=", 7) || !strncmp(*a, "--features-cache=", 17) || !strncmp(*a, "--out=", 6)) continue;
            same &= has_arg(ap, *a) && has_arg(ar, *a);
        }
        const char* en = mim_eval_name((mim_eval_kind)e);
        TU_CHECK(same && has_arg(ap, "--subset=OUT/data/subsets/probe-stratified-s0-500.sub") && has_arg(ap, e == MIM_EVAL_KNN ? "--k=10" : "--epochs=3"),
                 "%s baselines: the MIM row's command (probe set, eval set, flags) with the features flag for --ckpt", en);
        TU_CHECK(has_arg(ap, "--features=pixels") && !has_prefix(ap, "--ckpt") && !has_prefix(ap, "--init") && has_arg(ap, "--img=28") &&
                     has_arg(ap, "--in-chans=1") && has_arg(ap, "--features-cache=RUNP/features.safetensors"),
                 "%s pixels: --features=pixels --img=28 --in-chans=1, no --ckpt, its own feature cache", en);
        TU_CHECK(has_arg(ar, "--init=random") && has_arg(ar, "--model=vit_nano") && has_arg(ar, "--patch=7") && has_arg(ar, "--seed=1") &&
                     !has_prefix(ar, "--ckpt") && has_arg(ar, "--img=28"),
                 "%s random-init: --init=random --model=vit_nano --patch=7 --seed=1, no --ckpt", en);
        mim_argv_free(mim); mim_argv_free(ap); mim_argv_free(ar);
    }
    free(r);
    mim_study_free(&s);
    // off, or nothing to compare with
    snprintf(buf, sizeof buf, probe_json, ", \"baselines\": false");
    CHECK(mim_study_parse(&s, buf, "bl.json") == 0);
    n = mim_study_expand(&s, &r);
    TU_CHECK(s.baselines == 0 && n == 8, "\"baselines\": false: %d runs, no baselines", n);
    free(r); mim_study_free(&s);
    snprintf(buf, sizeof buf, probe_json, ", \"baselines\": 1");
    rc = mim_study_parse(&s, buf, "bl.json");
    TU_CHECK(rc < 0 && strstr(mim_err_msg(), "\"baselines\""), "\"baselines\": 1 refused: %s", rc < 0 ? mim_err_msg() : "accepted");
    if (!rc) mim_study_free(&s);
    const char* ft_only = "{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [1000]}, \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7}],"
                          " \"budget\": {\"epochs\": 1}, \"evaluations\": {\"finetune\": {\"steps\": 5}}}";
    CHECK(mim_study_parse(&s, ft_only, "ft.json") == 0);
    n = mim_study_expand(&s, &r);
    TU_CHECK(n == 1, "finetune only: %d run, no feature baselines (they are knn / linprobe)", n);
    free(r); mim_study_free(&s);
}

// The scratch run fine-tunes with the finetune evaluation's schedule.
static void test_scratch_schedule(void) {
    const char* base = "{\"data\": {\"idx\": \"/x\"}, \"subsets\": {\"sizes\": [1000]}, \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7}],"
                       " \"budget\": {\"epochs\": 1}, \"evaluations\": {%s}}";
    char buf[2048];
    snprintf(buf, sizeof buf, base, "\"finetune\": {\"steps\": 30, \"batch\": 64, \"aa\": \"none\", \"mixup\": 0, \"threads\": 2}, "
                                    "\"scratch\": {\"threads\": 1, \"steps\": 30, \"log-every\": 5}");
    mim_study s;
    int rc = mim_study_parse(&s, buf, "sch.json");
    TU_CHECK(rc == 0, "scratch with finetune's schedule: parses (%s)", rc ? mim_err_msg() : "ok");
    if (rc) return;
    mim_study_run* r;
    int n = mim_study_expand(&s, &r);
    CHECK(n == 2 && r[1].kind == MIM_RUN_SCRATCH);
    mim_study_paths p;
    mim_study_data_paths(&s, "OUT", &p);
    char** av = mim_study_eval_argv(&s, &r[1], MIM_EVAL_SCRATCH, &p, "BIN", "RUN", "SUB", "");
    const mim_argv_list* x = &s.eval_extra[MIM_EVAL_SCRATCH];
    int thr2 = 0;
    for (int i = 0; i < x->argc; i++) thr2 += !strcmp(x->argv[i], "--threads=2");
    TU_CHECK(has_arg(av, "--init=random") && has_arg(av, "--steps=30") && has_arg(av, "--batch=64") && has_arg(av, "--aa=none") &&
                 has_arg(av, "--mixup=0") && has_arg(av, "--threads=1") && has_arg(av, "--log-every=5") && !thr2,
             "scratch argv: finetune's schedule (--steps=30 --batch=64 --aa=none --mixup=0), its own --threads=1 --log-every=5");
    TU_CHECK(s.eval_steps[MIM_EVAL_SCRATCH] == 30 && s.eval_batch[MIM_EVAL_SCRATCH] == 64, "scratch estimate: finetune's steps and batch");
    mim_argv_free(av);
    free(r); mim_study_free(&s);
    // "scratch": {} inherits everything; its id is the one of the same flags written out
    snprintf(buf, sizeof buf, base, "\"finetune\": {\"steps\": 30, \"batch\": 64}, \"scratch\": {}");
    CHECK(mim_study_parse(&s, buf, "sch.json") == 0);
    mim_study_run* r2;
    CHECK(mim_study_expand(&s, &r2) == 2);
    mim_study s2;
    snprintf(buf, sizeof buf, base, "\"finetune\": {\"steps\": 30, \"batch\": 64}, \"scratch\": {\"steps\": 30, \"batch\": 64}");
    CHECK(mim_study_parse(&s2, buf, "sch.json") == 0);
    mim_study_run* r3;
    CHECK(mim_study_expand(&s2, &r3) == 2);
    TU_CHECK(s.eval_extra[MIM_EVAL_SCRATCH].argc == 2 && !strcmp(r2[1].id, r3[1].id),
             "\"scratch\": {} inherits finetune's flags (same scratch id as writing them out)");
    free(r2); free(r3); mim_study_free(&s); mim_study_free(&s2);
    // without finetune, scratch keeps its own schedule
    snprintf(buf, sizeof buf, base, "\"knn\": {}, \"scratch\": {\"steps\": 40}");
    CHECK(mim_study_parse(&s, buf, "sch.json") == 0);
    CHECK(mim_study_expand(&s, &r) >= 2 && r[1].kind == MIM_RUN_SCRATCH);
    av = mim_study_eval_argv(&s, &r[1], MIM_EVAL_SCRATCH, &p, "BIN", "RUN", "SUB", "");
    TU_CHECK(has_arg(av, "--steps=40"), "no finetune evaluation: scratch keeps its own --steps=40");
    mim_argv_free(av);
    free(r); mim_study_free(&s);
    struct { const char* ev; const char* must; } bad[] = {
        {"\"finetune\": {\"steps\": 30}, \"scratch\": {\"steps\": 40}", "\"steps\" is 40 here but 30 in \"finetune\""},
        {"\"finetune\": {\"steps\": 30}, \"scratch\": {\"mixup\": 0}", "\"mixup\" is set for scratch but not for finetune"},
        {"\"finetune\": {\"steps\": 30, \"aa\": \"none\"}, \"scratch\": {\"aa\": \"rand-m9\"}", "\"aa\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(buf, sizeof buf, base, bad[i].ev);
        rc = mim_study_parse(&s, buf, "sch.json");
        TU_CHECK(rc < 0 && strstr(mim_err_msg(), bad[i].must) && strstr(mim_err_msg(), "evaluations.scratch"),
                 "scratch schedule %zu that differs from finetune's refused, naming it: %s", i, rc < 0 ? mim_err_msg() : "accepted");
        if (!rc) mim_study_free(&s);
    }
}

static void test_powerlaw(void) {
    double D[8], E[8];
    for (int i = 0; i < 8; i++) { D[i] = 1000 * pow(2.2, i); E[i] = 3.0 * pow(D[i], -0.35) + 0.08; }
    mim_powerlaw f;
    TU_CHECK(mim_powerlaw_fit(D, E, 8, &f) == 0, "power law: exact points fit");
    TU_CHECK(fabs(f.b - 0.35) < 2e-3 && fabs(f.c - 0.08) < 1e-3 && fabs(f.a - 3.0) / 3.0 < 2e-2 && f.rmse < 1e-5, "power law: a %.4f (3), b %.5f (0.35), c %.5f (0.08), rmse %.2g", f.a, f.b, f.c, f.rmse);
    // Noisy points (deterministic +-0.5%): the exponent within 0.05.
    for (int i = 0; i < 8; i++) E[i] *= 1 + 0.005 * ((i * 7919) % 3 - 1);
    TU_CHECK(mim_powerlaw_fit(D, E, 8, &f) == 0, "power law: noisy points fit");
    TU_CHECK(fabs(f.b - 0.35) < 0.05, "power law, noisy: b %.4f within 0.05 of 0.35", f.b);
    // A pure power law recovered with c = 0; two points: c fixed at 0.
    for (int i = 0; i < 8; i++) E[i] = 0.9 * pow(D[i], -0.2);
    TU_CHECK(mim_powerlaw_fit(D, E, 8, &f) == 0 && fabs(f.b - 0.2) < 2e-3 && f.c < 1e-3, "power law c = 0: b %.5f (0.2), c %.2g", f.b, f.c);
    TU_CHECK(mim_powerlaw_fit(D, E, 2, &f) == 0 && fabs(f.b - 0.2) < 1e-9 && f.c == 0, "power law, two points: b exact, c fixed at 0");
    TU_CHECK(mim_powerlaw_fit(D, E, 1, &f) < 0, "power law, one point refused");
    double same[3] = {5, 5, 5};
    TU_CHECK(mim_powerlaw_fit(same, E, 3, &f) < 0, "power law, equal sizes refused");
}

static void test_results_file(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/r.jsonl", dir);
    FILE* f = fopen(path, "w");
    fputs("{\"id\": \"a\", \"status\": \"failed\"}\n{\"id\": \"b\", \"status\": \"ok\"}\n{\"id\": \"a\", \"sta", f);   // torn
    fclose(f);
    cJSON* row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "id", "a");
    cJSON_AddStringToObject(row, "status", "ok");
    cJSON_AddStringToObject(row, "reason", "x, \"y\"");
    TU_CHECK(mim_results_append(path, row) == 0, "results: append a row after a torn line");
    cJSON_Delete(row);
    mim_results r;
    TU_CHECK(mim_results_load(&r, path) == 0, "results: load");
    TU_CHECK(r.n == 2 && r.torn == 1 && r.lines == 3, "results: %d ids, %d torn, %d lines (want 2, 1, 3)", r.n, r.torn, r.lines);
    const cJSON* st = cJSON_GetObjectItem(mim_results_find(&r, "a"), "status");
    TU_CHECK(cJSON_IsString(st) && !strcmp(st->valuestring, "ok"), "results: the last row of an id wins");   // the last row of an id wins
    char csv[512];
    snprintf(csv, sizeof csv, "%s/r.csv", dir);
    TU_CHECK(mim_results_write_csv(&r, csv) == 0, "results: csv written");
    TU_CHECK(count_lines(csv) == 3, "results csv: header + 2 rows");
    f = fopen(csv, "r");
    char line[4096] = "";
    TU_CHECK(fgets(line, sizeof line, f) && !strncmp(line, "id,study,kind,status,reason,", 28), "results csv: header columns");
    TU_CHECK(fgets(line, sizeof line, f) && strstr(line, "\"x, \"\"y\"\"\""), "results csv: a field with comma and quotes is quoted");
    fclose(f);
    mim_results_free(&r);
}

// Every results row of the study folder: count, distinct ids, all ok.
static void check_rows(const char* out, int n, int expect_lines, int expect_ok) {
    char path[512];
    snprintf(path, sizeof path, "%s/results.jsonl", out);
    mim_results r;
    CHECK(mim_results_load(&r, path) == 0);
    TU_CHECK(r.torn == 0, "%s: no torn line", out);
    TU_CHECK(r.n == n, "%s: %d ids (want %d)", out, r.n, n);
    if (expect_lines) TU_CHECK(r.lines == expect_lines, "%s: %d lines (want %d)", out, r.lines, expect_lines);
    int ok = 0;
    for (int i = 0; i < r.n; i++) {
        const cJSON* st = cJSON_GetObjectItem(r.rows[i], "status");
        ok += cJSON_IsString(st) && !strcmp(st->valuestring, "ok");
    }
    TU_CHECK(ok == expect_ok, "%s: %d ok rows (want %d)", out, ok, expect_ok);
    mim_results_free(&r);
}

static void test_runner(const char* bin) {
    char buf[4096], out[512], path[1024];
    study_text(buf, sizeof buf, 1000);
    mim_study s;
    CHECK(mim_study_parse(&s, buf, "t.json") == 0);
    mim_study_run* runs;
    int n = mim_study_expand(&s, &runs);
    snprintf(out, sizeof out, "%s/study1", dir);
    mim_study_opts o = {.out = out, .bin = bin, .quiet = 1};

    // A failing model: recorded as failed, the study goes on.
    setenv("FAKE_FAIL_MODEL", "vit_tiny", 1);
    TU_CHECK(mim_study_run_all(&s, &o) == 1, "runner with a failing model: status 1, the study goes on");
    unsetenv("FAKE_FAIL_MODEL");
    check_rows(out, n, n, n - 3);
    snprintf(path, sizeof path, "%s/results.jsonl", out);
    mim_results r;
    CHECK(mim_results_load(&r, path) == 0);
    int nfail = 0, why_ok = 0;
    for (int i = 0; i < r.n; i++) {
        const cJSON* why = cJSON_GetObjectItem(r.rows[i], "reason");
        if (why) { nfail++; why_ok += strstr(why->valuestring, "pretrain exited with status 1") && strstr(why->valuestring, "fake failure"); }
    }
    TU_CHECK(why_ok == nfail, "failed rows: %d / %d reasons name the exit status and the error", why_ok, nfail);
    TU_CHECK(nfail == 3, "failed rows: %d (want 3, the vit_tiny runs)", nfail);
    // Schema of an ok MIM row.
    const cJSON* row = mim_results_find(&r, runs[0].id);
    const char* keys[] = {"id", "study", "kind", "status", "model", "preset", "patch", "target", "strategy", "size", "seed", "budget_kind",
                          "budget", "steps", "epochs", "images_seen", "params", "flops_per_image", "flops", "final_loss", "final_loss_avg",
                          "knn_top1", "knn_top5", "linprobe_top1", "pretrain_s", "wall_s", "finished_at"};
    size_t nkeys = sizeof keys / sizeof keys[0], have = 0;
    const char* lacks = "";
    for (size_t k = 0; k < nkeys; k++)
        if (cJSON_GetObjectItem(row, keys[k])) have++; else lacks = keys[k];
    TU_CHECK(row && have == nkeys, "schema: the ok MIM row has %zu / %zu keys%s%s", have, nkeys, *lacks ? ", lacks " : "", lacks);
    TU_CHECK(!strcmp(cJSON_GetObjectItem(row, "budget_kind")->valuestring, "images_seen"), "schema: budget_kind images_seen");
    TU_CHECK(cJSON_GetObjectItem(row, "images_seen")->valuedouble == 1000, "schema: images_seen 1000");
    TU_CHECK(fabs(cJSON_GetObjectItem(row, "final_loss")->valuedouble - 1.90) < 1e-9, "schema: final_loss of the fake metrics (1.90)");
    TU_CHECK(fabs(cJSON_GetObjectItem(row, "knn_top1")->valuedouble - (1 - (0.5 * pow(1000, -0.3) + 0.05))) < 1e-5, "schema: knn_top1 from the fake knn");
    int last_scr = n - 1;
    while (last_scr > 0 && runs[last_scr].kind != MIM_RUN_SCRATCH) last_scr--;
    const cJSON* scr = mim_results_find(&r, runs[last_scr].id);
    TU_CHECK(scr && !strcmp(cJSON_GetObjectItem(scr, "kind")->valuestring, "scratch") && cJSON_GetObjectItem(scr, "scratch_top1"), "schema: scratch row has kind scratch and scratch_top1");
    mim_results_free(&r);
    snprintf(path, sizeof path, "%s/results.csv", out);
    TU_CHECK(count_lines(path) == n + 1, "results csv: %d rows + header", n);

    // Re-running: nothing to do (failed runs are kept), no new rows.
    TU_CHECK(mim_study_run_all(&s, &o) == 1, "re-run: nothing to do, failed runs kept (status 1)");
    check_rows(out, n, n, n - 3);
    // --retry-failed: the three failed runs run again and succeed.
    o.retry_failed = 1;
    TU_CHECK(mim_study_run_all(&s, &o) == 0, "retry failed: status 0");
    check_rows(out, n, n + 3, n);
    o.retry_failed = 0;
    TU_CHECK(mim_study_run_all(&s, &o) == 0, "run again: nothing to do, status 0");
    check_rows(out, n, n + 3, n);
    // The report: Markdown with tables (figures need gnuplot; not required here).
    TU_CHECK(mim_study_report(&s, &o) == 0, "report written");
    snprintf(path, sizeof path, "%s/report.md", out);
    FILE* f = fopen(path, "r");
    TU_CHECK(f != NULL, "report.md readable");
    if (f) {
        char all[65536];
        size_t m = fread(all, 1, sizeof all - 1, f);
        all[m] = 0;
        fclose(f);
        TU_CHECK(strstr(all, "Power-law fit") && strstr(all, "| vit_nano-p7 | pixel | 4000 |") && strstr(all, "Sampling strategy"), "report: power-law fit, the vit_nano-p7 pixel 4000 row, sampling strategy");
        TU_CHECK(strstr(all, "None: every run of the grid has a finished row."), "report: no missing runs");
    }
    free(runs);
    mim_study_free(&s);
}

// The baselines through the runner: a row each, per the report's contract,
// skipped on a re-run; the scratch run gets the finetune schedule; the
// dry run lists them.
static void test_baselines_runner(const char* bin) {
    char buf[4096], out[512], path[1200];
    snprintf(buf, sizeof buf,
             "{\"name\": \"b\", \"data\": {\"shards\": \"%s/x-*.tar\", \"eval_shards\": \"%s/y-*.tar\", \"img\": 28, \"in_chans\": 1, \"probe_size\": 500},\n"
             " \"subsets\": {\"sizes\": [1000]}, \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7, \"dec_dim\": 32, \"dec_depth\": 1, \"dec_heads\": 2}],\n"
             " \"budget\": {\"images_seen\": 200}, \"pretrain\": {\"batch\": 100, \"save_every\": 2, \"threads\": 1},\n"
             " \"evaluations\": {\"knn\": {\"k\": 20}, \"linprobe\": {\"epochs\": 2}, \"finetune\": {\"steps\": 7, \"batch\": 100, \"aa\": \"none\"},\n"
             "                 \"scratch\": {\"threads\": 1}}, \"seeds\": [0, 1]}\n", dir, dir);
    mim_study s;
    int rc = mim_study_parse(&s, buf, "b.json");
    TU_CHECK(rc == 0, "baseline study parses (%s)", rc ? mim_err_msg() : "ok");
    if (rc) return;
    mim_study_run* runs;
    int n = mim_study_expand(&s, &runs);
    snprintf(out, sizeof out, "%s/study-bl", dir);
    mim_study_opts o = {.out = out, .bin = bin, .quiet = 1};
    // the dry run lists them
    snprintf(path, sizeof path, "%s/dry.txt", dir);
    fflush(stdout);
    int keep = dup(1), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(keep >= 0 && fd >= 0);
    dup2(fd, 1); close(fd);
    o.dry_run = 1;
    rc = mim_study_run_all(&s, &o);
    fflush(stdout);
    dup2(keep, 1); close(keep);
    o.dry_run = 0;
    uint8_t* dry = NULL;
    size_t dn = tu_slurp(path, &dry);
    int listed = 0, nbl = 0;
    for (int i = 0; i < n; i++)
        if (runs[i].kind == MIM_RUN_BASELINE) { nbl++; listed += dn && strstr((char*)dry, runs[i].id) != NULL; }
    TU_CHECK(rc == 0 && n == 8 && nbl == 4 && listed == nbl && strstr((char*)dry, "+ 4 feature baselines"),
             "dry run: %d runs, lists the %d / %d baselines", n, listed, nbl);

    TU_CHECK(mim_study_run_all(&s, &o) == 0, "baseline study runs: status 0");
    check_rows(out, n, n, n);
    snprintf(path, sizeof path, "%s/results.jsonl", out);
    mim_results res;
    CHECK(mim_results_load(&res, path) == 0);
    int good = 0;
    for (int i = 0; i < n; i++) {
        const mim_study_run* r = &runs[i];
        if (r->kind != MIM_RUN_BASELINE) continue;
        const cJSON* row = mim_results_find(&res, r->id);
        int px = r->baseline == MIM_BASELINE_PIXELS;
        const cJSON *k = cJSON_GetObjectItem(row, "kind"), *b = cJSON_GetObjectItem(row, "baseline"), *m = cJSON_GetObjectItem(row, "model"),
                    *sd = cJSON_GetObjectItem(row, "seed"), *kt = cJSON_GetObjectItem(row, "knn_top1"), *lt = cJSON_GetObjectItem(row, "linprobe_top1"),
                    *st = cJSON_GetObjectItem(row, "status"), *sz = cJSON_GetObjectItem(row, "size"), *ps = cJSON_GetObjectItem(row, "probe_size"),
                    *es = cJSON_GetObjectItem(row, "eval_size"), *stg = cJSON_GetObjectItem(row, "strategy"), *id = cJSON_GetObjectItem(row, "id"),
                    *sn = cJSON_GetObjectItem(row, "study");
        double want = px ? 0.6 : 0.3 + (double)r->seed / 100;
        int ok = row && cJSON_IsString(k) && !strcmp(k->valuestring, "baseline") && cJSON_IsString(b) &&
                 !strcmp(b->valuestring, px ? "pixels" : "random") && cJSON_IsString(m) && !strcmp(m->valuestring, px ? "pixels" : "vit_nano-p7") &&
                 cJSON_IsNumber(sd) && sd->valuedouble == (double)r->seed && cJSON_IsNumber(kt) && fabs(kt->valuedouble - want) < 1e-6 &&
                 cJSON_IsNumber(lt) && fabs(lt->valuedouble - want) < 1e-6 && cJSON_IsString(st) && !strcmp(st->valuestring, "ok") &&
                 cJSON_IsNumber(sz) && sz->valuedouble == 500 && cJSON_IsNumber(ps) && ps->valuedouble == 500 && cJSON_IsNumber(es) &&
                 cJSON_IsString(stg) && !strcmp(stg->valuestring, "stratified") && cJSON_IsString(id) && cJSON_IsString(sn) &&
                 !cJSON_GetObjectItem(row, "finetune_top1");
        good += ok;
        if (!ok) { char* t = row ? cJSON_PrintUnformatted(row) : NULL; fprintf(stderr, "baseline row: %s\n", t ? t : "(missing)"); free(t); }
    }
    TU_CHECK(good == 4, "baseline rows: %d / 4 per the contract (kind, baseline, model, seed, knn_top1, linprobe_top1, size = probe size)", good);
    mim_results_free(&res);
    {   // the same through workers (--jobs 2: study run-one per run): a baseline on the probe set reads the probe
        // subset, not a subset of the probe's size (it once failed "...-500.sub not found" there)
        char out2[600];
        snprintf(out2, sizeof out2, "%s/study-bl-jobs", dir);
        mim_study_opts o2 = o;
        o2.out = out2; o2.jobs = 2;
        TU_CHECK(mim_study_run_all(&s, &o2) == 0, "baseline study with --jobs 2: status 0");
        check_rows(out2, n, n, n);
    }
    // once each in the file, and not run again on a re-run
    TU_CHECK(mim_study_run_all(&s, &o) == 0, "re-run: status 0");
    check_rows(out, n, n, n);
    int once = 0;
    for (int i = 0; i < n; i++) {
        if (runs[i].kind != MIM_RUN_BASELINE) continue;
        snprintf(path, sizeof path, "%s/runs/%s/knn.log", out, runs[i].id);
        uint8_t* t = NULL;
        size_t tn = tu_slurp(path, &t);
        int cmds = 0;
        for (char* q = tn ? (char*)t : ""; (q = strstr(q, "] $ ")); q++) cmds++;
        once += cmds == 1;
    }
    TU_CHECK(once == 4, "re-run: %d / 4 baselines skipped (their knn ran once)", once);
    // the scratch run's command carries the finetune schedule
    int sched = 0, nscr = 0;
    for (int i = 0; i < n; i++) {
        if (runs[i].kind != MIM_RUN_SCRATCH) continue;
        nscr++;
        snprintf(path, sizeof path, "%s/runs/%s/scratch.argv", out, runs[i].id);
        uint8_t* t = NULL;
        size_t tn = tu_slurp(path, &t);
        sched += tn && strstr((char*)t, "--init=random") && strstr((char*)t, "--steps=7") && strstr((char*)t, "--batch=100") &&
                 strstr((char*)t, "--aa=none") && strstr((char*)t, "--threads=1");
    }
    TU_CHECK(nscr == 2 && sched == nscr, "scratch runs: %d / %d commands carry finetune's --steps=7 --batch=100 --aa=none", sched, nscr);
    TU_CHECK(mim_study_report(&s, &o) == 0, "baseline study: report written");
    snprintf(path, sizeof path, "%s/report.md", out);
    uint8_t* md = NULL;
    size_t mn = tu_slurp(path, &md);
    TU_CHECK(mn && strstr((char*)md, "raw pixels") && strstr((char*)md, "random-init vit_nano-p7"), "report: the raw-pixel and random-init baselines appear");
    free(runs);
    mim_study_free(&s);
}

// SIGKILL the runner in the middle of a pre-training, run again: every run
// gets exactly one row, and the killed run resumed from its checkpoint.
static void test_sigkill(const char* bin) {
    char buf[4096], out[512], path[1024];
    study_text(buf, sizeof buf, 1000);
    mim_study s;
    CHECK(mim_study_parse(&s, buf, "t.json") == 0);
    mim_study_run* runs;
    int n = mim_study_expand(&s, &runs);
    snprintf(out, sizeof out, "%s/study2", dir);
    mim_study_opts o = {.out = out, .bin = bin, .quiet = 1};
    setenv("FAKE_SLEEP", "0.03", 1);
    snprintf(path, sizeof path, "%s/results.jsonl", out);
    int killed_mid_pretrain = 0;
    for (int attempt = 0; attempt < 3 && !killed_mid_pretrain; attempt++) {
        fflush(stdout); fflush(stderr);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) _exit(mim_study_run_all(&s, &o) < 0 ? 3 : 0);
        // Wait for two rows, then kill while the third run is in its pre-training.
        struct timespec ts = {0, 5 * 1000 * 1000};
        int before = count_lines(path);
        for (int i = 0; i < 4000 && count_lines(path) < before + 2; i++) nanosleep(&ts, NULL);
        char starts[1024];
        mim_study_run* next = NULL;
        for (int i = 0; i < n && !next; i++) {
            snprintf(starts, sizeof starts, "%s/runs/%s/pretrain.done", out, runs[i].id);
            struct stat st;
            if (runs[i].kind == MIM_RUN_MIM && stat(starts, &st) != 0) next = &runs[i];
        }
        if (next) {
            snprintf(starts, sizeof starts, "%s/runs/%s/pretrain/latest", out, next->id);
            struct stat st;
            for (int i = 0; i < 4000 && stat(starts, &st) != 0; i++) nanosleep(&ts, NULL);
        }
        kill(pid, SIGKILL);
        int wst;
        waitpid(pid, &wst, 0);
        TU_CHECK(WIFSIGNALED(wst), "runner killed by SIGKILL");
        killed_mid_pretrain = next != NULL;
    }
    TU_CHECK(killed_mid_pretrain, "killed in the middle of a pre-training");
    usleep(100 * 1000);   // children die with the runner (PR_SET_PDEATHSIG)
    unsetenv("FAKE_SLEEP");
    TU_CHECK(mim_study_run_all(&s, &o) == 0, "after the kill: the study completes");
    check_rows(out, n, n, n);
    // Some run started its pre-training at a step > 0: it resumed.
    int resumed = 0;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/runs/%s/pretrain/starts", out, runs[i].id);
        FILE* f = fopen(path, "r");
        if (!f) continue;
        int v;
        while (fscanf(f, "%d", &v) == 1) resumed |= v > 0;
        fclose(f);
    }
    TU_CHECK(resumed, "the killed run resumed from its checkpoint (started at a step > 0)");
    free(runs);
    mim_study_free(&s);
}

// The row of each id with the per-session fields (wall_s, finished_at) taken
// out, as text: equal texts = the same run, config and metrics.
static char* row_text(const mim_results* r, const char* id) {
    const cJSON* row = mim_results_find(r, id);
    if (!row) return NULL;
    cJSON* c = cJSON_Duplicate(row, 1);
    cJSON_DeleteItemFromObject(c, "wall_s");
    cJSON_DeleteItemFromObject(c, "finished_at");
    char* t = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return t;
}

// --jobs N: N forked `study run-one` workers at once give the rows of --jobs
// 1 (same ids, config and metrics), each once, with no torn line; SIGTERM to
// the runner reaches every worker (exit 4, no row for the runs stopped), and
// the re-run finishes them.
static void test_jobs(const char* bin) {
    char buf[4096], out1[512], out3[512], path[1024];
    study_text(buf, sizeof buf, 1000);
    mim_study s;
    CHECK(mim_study_parse(&s, buf, "t.json") == 0);
    mim_study_run* runs;
    int n = mim_study_expand(&s, &runs);
    snprintf(out1, sizeof out1, "%s/jobs1", dir);
    snprintf(out3, sizeof out3, "%s/jobs3", dir);
    mim_study_opts o1 = {.out = out1, .bin = bin, .quiet = 1};
    mim_study_opts o3 = {.out = out3, .bin = bin, .quiet = 1, .jobs = 3};
    TU_CHECK(mim_study_run_all(&s, &o1) == 0, "--jobs 1: status 0");
    TU_CHECK(mim_study_run_all(&s, &o3) == 0, "--jobs 3: status 0");
    check_rows(out3, n, n, n);
    mim_results r1, r3;
    snprintf(path, sizeof path, "%s/results.jsonl", out1);
    CHECK(mim_results_load(&r1, path) == 0);
    snprintf(path, sizeof path, "%s/results.jsonl", out3);
    CHECK(mim_results_load(&r3, path) == 0);
    int same = 0;
    for (int i = 0; i < n; i++) {
        char* a = row_text(&r1, runs[i].id);
        char* b = row_text(&r3, runs[i].id);
        same += a && b && !strcmp(a, b);
        free(a); free(b);
    }
    TU_CHECK(same == n, "--jobs 3: %d / %d rows equal to --jobs 1's (ids, config, metrics)", same, n);
    mim_results_free(&r1);
    mim_results_free(&r3);
    snprintf(path, sizeof path, "%s/results.csv", out3);
    TU_CHECK(count_lines(path) == n + 1, "--jobs 3: results.csv has %d rows + header", n);
    TU_CHECK(mim_study_run_all(&s, &o3) == 0, "--jobs 3 again: nothing to do");
    check_rows(out3, n, n, n);

    // SIGTERM while three workers pre-train.
    snprintf(out3, sizeof out3, "%s/jobs3term", dir);
    setenv("FAKE_SLEEP", "0.05", 1);
    fflush(stdout); fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        mim_signals_install();
        int rc = mim_study_run_all(&s, &o3);
        _exit(rc < 0 ? 3 : rc);
    }
    struct timespec ts = {0, 5 * 1000 * 1000};
    int started = 0;
    for (int k = 0; k < 2000 && started < 3; k++) {   // bounded: 10 s
        started = 0;
        for (int i = 0; i < n; i++) {
            struct stat st;
            snprintf(path, sizeof path, "%s/runs/%s/pretrain/metrics.jsonl", out3, runs[i].id);
            started += stat(path, &st) == 0;
        }
        if (started < 3) nanosleep(&ts, NULL);
    }
    TU_CHECK(started == 3, "--jobs 3: three pre-trainings at once (%d)", started);
    kill(pid, SIGTERM);
    int wst = 0, waited = 0;
    for (int k = 0; k < 2000 && !(waited = waitpid(pid, &wst, WNOHANG) == pid); k++) nanosleep(&ts, NULL);
    if (!waited) { kill(pid, SIGKILL); waitpid(pid, &wst, 0); }
    TU_CHECK(waited && WIFEXITED(wst) && WEXITSTATUS(wst) == 4, "--jobs 3, SIGTERM: the runner exits 4 within 10 s (status %d)",
             WIFEXITED(wst) ? WEXITSTATUS(wst) : -1);
    snprintf(path, sizeof path, "%s/results.jsonl", out3);
    TU_CHECK(count_lines(path) == 0, "--jobs 3, SIGTERM: no row for the three stopped runs (%d lines)", count_lines(path));
    unsetenv("FAKE_SLEEP");
    TU_CHECK(mim_study_run_all(&s, &o3) == 0, "--jobs 3 after SIGTERM: the re-run finishes");
    check_rows(out3, n, n, n);
    free(runs);
    mim_study_free(&s);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/test_study.XXXXXX");
    CHECK(mkdtemp(dir));
    char bin[512];
    snprintf(bin, sizeof bin, "%s/fake-mimscale", dir);
    FILE* f = fopen(bin, "w");
    CHECK(f && fputs(fake_sh, f) >= 0 && fclose(f) == 0);
    CHECK(chmod(bin, 0755) == 0);
    test_parse_errors();
    test_grid();
    test_subset_seeds();
    test_feature_targets();
    test_baselines_grid();
    test_scratch_schedule();
    test_powerlaw();
    test_results_file();
    test_runner(bin);
    test_baselines_runner(bin);
    test_sigkill(bin);
    test_jobs(bin);
    if (!tu_nfail) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd)) {}
    } else {
        printf("files kept in %s\n", dir);
    }
    tu_free_all();
    return tu_summary("test_study", 0, NULL);
}
