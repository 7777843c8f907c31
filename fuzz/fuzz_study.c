// fuzz_study.c: libFuzzer target for the study file parser (cJSON, field
// validation, model configs) and what the runner does with an accepted
// study: the grid expansion and the command lines of the first runs.
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
//     fuzz/fuzz_study.c src/study/study.c src/model/config.c src/core/check.c -o build/fuzz_study -lcjson -lm
//   build/fuzz_study -max_total_time=60 fuzz/corpus/study
#include "core/check.h"
#include "study/study.h"
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    char* js = malloc(n + 1);
    if (!js) return 0;
    memcpy(js, data, n);
    js[n] = 0;
    mim_study s;
    int rc = mim_study_parse(&s, js, "studies/fuzz.json");
    free(js);
    if (rc) {
        if (rc > 0 || s.name || s.models || !mim_err_msg()[0]) __builtin_trap();
        return 0;
    }
    mim_study_run* runs = NULL;
    int nr = mim_study_expand(&s, &runs);
    if (nr > 0) {
        mim_study_paths p;
        mim_study_data_paths(&s, "runs/study-fuzz", &p);
        // the first runs of each kind (MIM, scratch, baselines come in that order)
        int seen[3] = {0, 0, 0};
        for (int i = 0; i < nr; i++) {
            mim_study_run* r = &runs[i];
            if ((int)r->kind < 0 || r->kind > MIM_RUN_BASELINE) __builtin_trap();
            if (seen[r->kind]++ >= 3) continue;
            if (!r->id[0]) __builtin_trap();
            char sub[2048];
            mim_study_subset_path(&s, &p, r, sub, sizeof sub);
            if (r->kind == MIM_RUN_MIM) {   // only MIM runs pre-train
                if (r->steps < 1) __builtin_trap();
                char** a = mim_study_pretrain_argv(&s, r, &p, "mimscale", "runs/x", sub);
                if (!a) __builtin_trap();
                mim_argv_free(a);
            }
            for (int e = 0; e < MIM_EVAL_COUNT; e++) {
                if (!s.evals[e]) continue;
                int applies = r->kind == MIM_RUN_MIM ? e != MIM_EVAL_SCRATCH
                            : r->kind == MIM_RUN_SCRATCH ? e == MIM_EVAL_SCRATCH
                            : e == MIM_EVAL_KNN || e == MIM_EVAL_LINPROBE;
                if (!applies) continue;
                char** a = mim_study_eval_argv(&s, r, (mim_eval_kind)e, &p, "mimscale", "runs/x", sub, "ckpt");
                if (!a) __builtin_trap();
                mim_argv_free(a);
            }
        }
    }
    free(runs);
    mim_study_free(&s);
    return 0;
}
