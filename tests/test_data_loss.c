// test_data_loss.c: no command may report success after working on no data
// or on fewer samples than it allows, and no evaluation may count a sample
// twice. Each case is one a user hit (issue 18), reproduced through the CLI
// on fixtures made here: generated JPEG image folders packed to shards.
//   - a shard deleted or truncated after `index`: pretrain and knn exit 6
//     naming the shard and the fix; --max-skip-frac lets it through;
//   - every image corrupt: pretrain stops after step 1 (exit 6);
//   - corrupt images in the evaluation split are left out (n_skipped_eval),
//     never replaced, and past the threshold the command exits 6;
//     reconstruct leaves their rows blank and says so;
//   - a JPEG damaged in its scan data decodes as an error, not a grey half;
//   - `pack` of a layout without images fails and writes nothing; images
//     below <class>/images/ are found; --labels-from + --classes label a
//     validation split like its training split;
//   - `index` over shards of which one is missing exits 6 with the reason
//     and keeps no index;
//   - train and eval data whose class lists differ are refused, naming the
//     first difference;
//   - a subset is refused against another index with the same counts.
#include "distutil.h"   // du_sh
#include "data/decode.h"
#include <sys/stat.h>

static char tmp[256], bin[4096];

// Runs `bin ARGS` with stdout and stderr into tmp/NAME.out and tmp/NAME.err;
// returns the exit status (-1 if it did not exit).
__attribute__((format(printf, 2, 3)))
static int cli(const char* name, const char* fmt, ...) {
    char args[4096], cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd %s && %s %s >%s.out 2>%s.err", tmp, bin, args, name, name);
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The text of tmp/NAME.EXT ("" when absent).
static const char* text(const char* name, const char* ext) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s.%s", tmp, name, ext);
    uint8_t* s = NULL;
    tu_slurp(p, &s);
    return s ? (const char*)s : "";
}

static int has(const char* name, const char* what) { return strstr(text(name, "err"), what) != NULL; }

// The number after "key": in tmp/NAME.out, or NAN.
static double json_num(const char* name, const char* key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char* q = strstr(text(name, "out"), pat);
    return q ? strtod(q + strlen(pat), NULL) : NAN;
}

// A fixture step (shell, printf-style) that must succeed.
#define sh(...) CHECK(du_sh(__VA_ARGS__) == 0)

// A 32x32 RGB JPEG of class c: a square whose side and colour follow c, at
// a random place on noise (learnable, different per image).
static void write_jpeg(const char* path, int c, mim_rng* r) {
    uint8_t px[32 * 32 * 3];
    int s = 6 + c, y0 = (int)mim_rng_below(r, (uint64_t)(32 - s)), x0 = (int)mim_rng_below(r, (uint64_t)(32 - s));
    for (int i = 0; i < 32 * 32 * 3; i++) px[i] = (uint8_t)(60 + mim_rng_below(r, 40));
    for (int y = y0; y < y0 + s; y++)
        for (int x = x0; x < x0 + s; x++) {
            px[(y * 32 + x) * 3 + 0] = (uint8_t)(25 * c);
            px[(y * 32 + x) * 3 + 1] = (uint8_t)(250 - 25 * c);
            px[(y * 32 + x) * 3 + 2] = 200;
        }
    uint8_t* jpg = NULL;
    size_t n = 0;
    CHECK(mim_jpeg_encode(px, 32, 32, 3, 90, &jpg, &n) == 0);
    FILE* f = fopen(path, "wb");
    CHECK(f && fwrite(jpg, 1, n, f) == n);
    fclose(f);
    free(jpg);
}

// ROOT/cC/SUB/iI.jpg for classes [0, nc) but `skip`, n images each.
static void write_folder(const char* root, const char* sub, int nc, int n, int skip, uint64_t seed) {
    mim_rng r;
    mim_rng_seed(&r, seed);
    char p[1024];
    for (int c = 0; c < nc; c++) {
        if (c == skip) continue;
        snprintf(p, sizeof p, "mkdir -p %s/c%d/%s", root, c, sub);
        sh("%s", p);
        for (int i = 0; i < n; i++) {
            snprintf(p, sizeof p, "%s/c%d/%s/i%03d.jpg", root, c, sub, i);
            write_jpeg(p, c, &r);
        }
    }
}

// A JPEG whose entropy-coded data is damaged in the middle: libjpeg warns
// and fills the rest grey; it must decode as an error.
static void check_half_jpeg(void) {
    enum { H = 64, W = 64 };
    uint8_t px[H * W * 3];
    mim_rng r;
    mim_rng_seed(&r, 3);
    for (int i = 0; i < H * W * 3; i++) px[i] = (uint8_t)mim_rng_below(&r, 256);
    uint8_t* jpg = NULL;
    size_t n = 0;
    CHECK(mim_jpeg_encode(px, W, H, 3, 95, &jpg, &n) == 0);
    mim_decoder* d;
    CHECK(mim_decoder_init(&d, 0) == 0);
    mim_image im = {0};
    int ok = mim_decode(d, jpg, n, 3, &im);
    // the scan starts after the SOS marker (FF DA); damage bytes well inside it
    size_t sos = 0;
    for (size_t i = 0; i + 1 < n; i++) if (jpg[i] == 0xFF && jpg[i + 1] == 0xDA) { sos = i; break; }
    for (size_t i = sos + (n - sos) / 2; i < sos + (n - sos) / 2 + 40 && i + 2 < n; i++) jpg[i] = (uint8_t)(i * 37);
    int bad = mim_decode(d, jpg, n, 3, &im);
    TU_CHECK(ok == 0 && sos > 0 && bad == MIM_EFORMAT, "a JPEG damaged in the middle of its scan: intact %d, damaged %d "
             "(want MIM_EFORMAT: %s)", ok, bad, bad ? mim_err_msg() : "decoded");
    free(im.px);
    mim_decoder_free(d);
    free(jpg);
}

int main(void) {
    const char* build = getenv("MIM_BUILD") ? getenv("MIM_BUILD") : "build";
    char cwd[2048];
    CHECK(getcwd(cwd, sizeof cwd));
    snprintf(bin, sizeof bin, "%s/%s/mimscale", build[0] == '/' ? "" : cwd, build);
    struct stat sb;
    if (stat(bin, &sb)) { printf("SKIP: needs the mimscale binary (%s)\n", bin); return TU_SKIP; }
    snprintf(tmp, sizeof tmp, "/tmp/mim_test_data_loss_XXXXXX");
    CHECK(mkdtemp(tmp));

    check_half_jpeg();

    // fixtures: train 10 classes x 16 in ImageFolder (Tiny-ImageNet's
    // <class>/images/ layout), packed into 2 shards of 80
    char root[512];
    snprintf(root, sizeof root, "%s/train", tmp);
    write_folder(root, "images", 10, 16, -1, 1);
    sh("for c in %s/c*; do echo box > $c/boxes.txt; done", root);
    int rc = cli("pack", "pack train --out tr --per-shard 80");
    TU_CHECK(rc == 0 && strstr(text("pack", "out"), "160 samples, 10 classes, 2 shards"),
             "pack finds the images below <class>/images/ (exit %d): %s", rc, text("pack", "out"));
    rc = cli("index", "index 'tr-{000000..000001}.tar' --out tr.idx");
    TU_CHECK(rc == 0, "index of the 2 shards: exit %d", rc);
    rc = cli("pre", "pretrain --data tr.idx --model vit_nano --patch 4 --img 32 --dec-dim 16 --dec-depth 1 --dec-heads 2 "
             "--steps 2 --batch 16 --threads 1 --quiet --out pre");
    TU_CHECK(rc == 0, "pretrain 2 steps on the packed data: exit %d", rc);
#define KNN "knn --ckpt pre/ckpt-000000002/model.safetensors --batch 16 --threads 1 --quiet"

    // packing a layout without images: an error, nothing written
    sh("mkdir -p %s/empty/a %s/empty/b && echo x > %s/empty/a/notes.txt", tmp, tmp, tmp);
    rc = cli("pack_empty", "pack empty --out em");
    snprintf(root, sizeof root, "%s/em-classes.txt", tmp);
    TU_CHECK(rc != 0 && has("pack_empty", "no image") && stat(root, &sb) != 0,
             "pack of folders without images: exit %d, says no image, no classes file", rc);

    // a missing shard at index time: exit 6, the reason, no index kept
    rc = cli("index_missing", "index 'tr-{000000..000002}.tar' --out partial.idx");
    snprintf(root, sizeof root, "%s/partial.idx", tmp);
    TU_CHECK(rc == 6 && has("index_missing", "tr-000002.tar") && has("index_missing", "No such file") &&
             stat(root, &sb) != 0, "index with one of 3 shards missing: exit %d (want 6), names the shard and why, "
             "no partial index", rc);

    // a shard deleted after `index`: training and evaluation refuse
    sh("cd %s && cp tr-000000.tar tr0.tar && cp tr-000001.tar tr1.tar && %s index 'tr{0..1}.tar' --out del.idx "
       "--quiet >/dev/null && rm tr1.tar", tmp, bin);
    rc = cli("pre_del", "pretrain --data del.idx --model vit_nano --patch 4 --img 32 --dec-dim 16 --dec-depth 1 "
             "--dec-heads 2 --steps 2 --batch 16 --threads 1 --quiet --out pre_del");
    TU_CHECK(rc == 6 && has("pre_del", "tr1.tar") && has("pre_del", "mimscale index") && has("pre_del", "--max-skip-frac"),
             "pretrain after a shard was deleted: exit %d (want 6), names the shard, the fix and the flag", rc);
    rc = cli("knn_del", KNN " --data tr.idx --eval-data del.idx");
    TU_CHECK(rc == 6 && has("knn_del", "tr1.tar"), "knn on an eval index with a deleted shard: exit %d (want 6)", rc);
    rc = cli("pre_del_ok", "pretrain --data del.idx --model vit_nano --patch 4 --img 32 --dec-dim 16 --dec-depth 1 "
             "--dec-heads 2 --steps 2 --batch 16 --threads 1 --quiet --max-skip-frac 0.6 --out pre_del_ok");
    TU_CHECK(rc == 0 && has("pre_del_ok", "warning") && has("pre_del_ok", "allowed by --max-skip-frac"),
             "the same with --max-skip-frac 0.6: exit %d, a warning", rc);
    // truncated instead of deleted
    sh("cd %s && cp tr-000001.tar tr1.tar && truncate -s 20000 tr1.tar", tmp);
    rc = cli("pre_trunc", "pretrain --data del.idx --model vit_nano --patch 4 --img 32 --dec-dim 16 --dec-depth 1 "
             "--dec-heads 2 --steps 2 --batch 16 --threads 1 --quiet --out pre_trunc");
    TU_CHECK(rc == 6 && has("pre_trunc", "truncated"), "pretrain after a shard was truncated: exit %d (want 6), "
             "says truncated", rc);

    // every image corrupt: stop after the first step
    sh("mkdir -p %s/junk/c0 %s/junk/c1 && for i in 0 1 2 3 4 5 6 7 8 9; do head -c 700 /dev/urandom > %s/junk/c0/$i.jpg; "
       "head -c 700 /dev/urandom > %s/junk/c1/$i.jpg; done", tmp, tmp, tmp, tmp);
    rc = cli("pack_junk", "pack junk --out junk");
    rc |= cli("index_junk", "index junk-000000.tar --out junk.idx");
    rc = rc ? rc : cli("pre_junk", "pretrain --data junk.idx --model vit_nano --patch 4 --img 32 --dec-dim 16 "
                       "--dec-depth 1 --dec-heads 2 --steps 50 --batch 8 --threads 1 --quiet --out pre_junk");
    snprintf(root, sizeof root, "%s/pre_junk/ckpt-000000050", tmp);
    TU_CHECK(rc == 6 && has("pre_junk", "no usable sample") && stat(root, &sb) != 0,
             "pretrain on 20 corrupt JPEGs: exit %d (want 6), 'no usable sample', stopped before step 50", rc);

    // corrupt images in the evaluation split are left out, not replaced
    snprintf(root, sizeof root, "%s/val", tmp);
    write_folder(root, "", 10, 5, -1, 2);
    sh("head -c 600 /dev/urandom > %s/val/c3/i001.jpg && head -c 600 /dev/urandom > %s/val/c7/i004.jpg", tmp, tmp);
    rc = cli("pack_val", "pack val --classes tr-classes.txt --out va --per-shard 1000");
    rc |= cli("index_val", "index va-000000.tar --out va.idx");
    TU_CHECK(rc == 0, "validation split (50 images, 2 corrupt) packed with the training classes: exit %d", rc);
    rc = cli("knn_bad", KNN " --data tr.idx --eval-data va.idx");
    TU_CHECK(rc == 6 && has("knn_bad", "2 of 50"), "knn with 2 of 50 eval images corrupt (4%% > 1%%): exit %d (want 6), "
             "counts them", rc);
    rc = cli("knn_skip", KNN " --data tr.idx --eval-data va.idx --max-skip-frac 0.05");
    TU_CHECK(rc == 0 && json_num("knn_skip", "n_eval") == 48 && json_num("knn_skip", "n_skipped_eval") == 2 &&
             json_num("knn_skip", "n_train") == 160, "knn allowed 5%%: exit %d, n_eval %g (want 48), n_skipped_eval %g "
             "(want 2), n_train %g", rc, json_num("knn_skip", "n_eval"), json_num("knn_skip", "n_skipped_eval"),
             json_num("knn_skip", "n_train"));
    rc = cli("ft_skip", "finetune --ckpt pre/ckpt-000000002/model.safetensors --data tr.idx --eval-data va.idx --steps 2 "
             "--batch 16 --threads 1 --quiet --max-skip-frac 0.05 --out ft_skip");
    TU_CHECK(rc == 0 && json_num("ft_skip", "n_eval") == 48 && json_num("ft_skip", "n_skipped") == 2,
             "finetune evaluation: exit %d, n_eval %g (want 48), n_skipped %g (want 2)", rc, json_num("ft_skip", "n_eval"),
             json_num("ft_skip", "n_skipped"));

    // reconstruct shows the readable images and says which were not (it used
    // to draw a flat grey row for a corrupt one, silently)
    rc = cli("recon", "reconstruct --ckpt pre/ckpt-000000002/model.safetensors --data va.idx --n 50 --out recon.png");
    TU_CHECK(rc == 0 && has("recon", "could not be read") && has("recon", "left blank"),
             "reconstruct over the 50 validation images: exit %d, names the 2 unreadable ones", rc);

    // labels follow names: a validation split without class c4, packed
    // without the training class list, would shift every label above 4
    snprintf(root, sizeof root, "%s/val4", tmp);
    write_folder(root, "", 10, 3, 4, 3);
    rc = cli("pack_val4", "pack val4 --out v4 --per-shard 1000");
    rc |= cli("index_val4", "index v4-000000.tar --out v4.idx");
    rc |= cli("knn_shift", KNN " --data tr.idx --eval-data v4.idx");
    TU_CHECK(rc != 0 && has("knn_shift", "label 4 is 'c4' in the training data and 'c5' in the evaluation data"),
             "knn with an eval split missing class c4: refused (exit %d), naming label 4's two names", rc);
    rc = cli("pack_val4c", "pack val4 --classes tr-classes.txt --out v4c --per-shard 1000");
    rc |= cli("index_val4c", "index v4c-000000.tar --out v4c.idx");
    rc |= cli("knn_shift_ok", KNN " --data tr.idx --eval-data v4c.idx");
    TU_CHECK(rc == 0 && json_num("knn_shift_ok", "n_eval") == 27, "the same split packed with --classes "
             "tr-classes.txt: accepted (exit %d, n_eval %g)", rc, json_num("knn_shift_ok", "n_eval"));

    // an annotation file labels a flat folder (Tiny-ImageNet's val/images + val_annotations.txt)
    sh("mkdir -p %s/flat/images && cd %s && n=0; for f in val/c*/*.jpg; do c=$(basename $(dirname $f)); "
       "cp $f flat/images/v$n.jpg; printf 'v%%d.jpg\\t%%s\\t0\\t0\\t8\\t8\\n' $n $c >> flat/ann.txt; n=$((n+1)); done",
       tmp, tmp);
    rc = cli("pack_flat", "pack flat --labels-from flat/ann.txt --classes tr-classes.txt --out fl --per-shard 1000 "
             "--max-skip-frac 0.05");
    rc |= cli("index_flat", "index fl-000000.tar --out fl.idx");
    rc |= cli("knn_flat", KNN " --data tr.idx --eval-data fl.idx --max-skip-frac 0.05");
    TU_CHECK(rc == 0 && json_num("knn_flat", "n_eval") == 48 && json_num("knn_flat", "top1") ==
             json_num("knn_skip", "top1"), "pack --labels-from: the same 48 readable images, the same kNN top-1 "
             "(%.4f vs %.4f; exit %d)", json_num("knn_flat", "top1"), json_num("knn_skip", "top1"), rc);

    // a subset is bound to its index's content, not just its counts
    rc = cli("pack_seed", "pack train --seed 9 --out trs --per-shard 80");
    rc |= cli("index_seed", "index 'trs-{000000..000001}.tar' --out trs.idx");
    rc |= cli("subset", "subset tr.idx --sizes 64 --out trsub");
    rc |= cli("subset_ok", "pretrain --data tr.idx --subset trsub-random-s0-64.sub --model vit_nano --patch 4 --img 32 "
              "--dec-dim 16 --dec-depth 1 --dec-heads 2 --steps 1 --batch 16 --threads 1 --quiet --out sub_ok");
    TU_CHECK(rc == 0, "a subset of tr.idx trains on tr.idx: exit %d", rc);
    rc = cli("subset_other", "pretrain --data trs.idx --subset trsub-random-s0-64.sub --model vit_nano --patch 4 "
             "--img 32 --dec-dim 16 --dec-depth 1 --dec-heads 2 --steps 1 --batch 16 --threads 1 --quiet --out sub_x");
    TU_CHECK(rc != 0 && has("subset_other", "content hash"), "the same subset on the same images packed with another "
             "seed (same counts): refused (exit %d), content hash named", rc);

    sh("rm -rf %s", tmp);
    tu_free_all();
    return tu_summary("test_data_loss", 0, NULL);
}
