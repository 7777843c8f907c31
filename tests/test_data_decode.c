// test_data_decode.c: decode parity with PIL; crop/flip/resize parity with
// torchvision for bilinear and bicubic, up- and downscaling; the eval
// transform (resize shorter side + centre crop) against torchvision's
// Resize + CenterCrop, landscape and portrait; all against
// tests/ref/data_ref.bin (made by tests/ref/data_ref.py); PNG layouts (alpha,
// palette + transparency, gray + alpha) against PIL's convert. Plus
// RandomResizedCrop parameter properties. WebP parity runs when libwebp is
// present at run time; without it WebP must be refused as unsupported. CIFAR-10
// (train-000000.tar under the shared data folder, testutil.h tu_shared_data):
// the reference's 6 samples decode exactly as PIL, and every one of the
// shard's 5,000 images decodes to 32x32x3; without the shard those parts
// make the test a skip (77).
#include "testutil.h"
#include "data/augment.h"
#include "data/decode.h"
#include "data/tar.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t* slurp(const char* p, size_t* n) {
    FILE* f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END); long L = ftell(f); fseek(f, 0, SEEK_SET);
    uint8_t* b = malloc((size_t)L);
    if (fread(b, 1, (size_t)L, f) != (size_t)L) { free(b); fclose(f); return NULL; }
    fclose(f); *n = (size_t)L;
    return b;
}

static uint32_t rd32(const uint8_t* p) { uint32_t v; memcpy(&v, p, 4); return v; }

// k-th sample image bytes of a shard (malloc'd), or NULL
static uint8_t* cifar_sample(const char* shard, int k, size_t* n) {
    mim_tar* t;
    if (mim_tar_open_file(&t, shard) < 0) return NULL;
    mim_wds_sample* s = malloc(sizeof *s);
    uint8_t* out = NULL;
    for (int i = 0; i <= k; i++) if (mim_wds_next(t, s) <= 0) goto done;
    out = malloc(s->img_size); *n = s->img_size;
    CHECK(mim_tar_pread(t, s->img_off, out, s->img_size) == 0);
done:
    free(s); mim_tar_close(t);
    return out;
}

static void test_rrc_params(void) {
    mim_rng r; mim_rng_seed(&r, 1);
    int inside = 1, it = 0, H = 0, W = 0;
    mim_crop c = { 0 };
    for (; it < 20000 && inside; it++) {
        H = 1 + (int)mim_rng_below(&r, 600); W = 1 + (int)mim_rng_below(&r, 600);
        mim_rrc_params(&r, H, W, 0.2f, 1.0f, 0.75f, 4.0f / 3, &c);
        inside = c.h >= 1 && c.w >= 1 && c.i >= 0 && c.j >= 0 && c.i + c.h <= H && c.j + c.w <= W;
    }
    TU_CHECK(inside, "RandomResizedCrop box inside the image for 20000 random sizes%s (last: %dx%d image, box %dx%d+%d+%d)",
             inside ? "" : " FAILED", W, H, c.w, c.h, c.j, c.i);
    // fallback: a 1000x10 strip fails every attempt -> centre crop at ratio 4/3
    mim_rrc_params(&r, 10, 1000, 0.2f, 1.0f, 0.75f, 4.0f / 3, &c);
    TU_CHECK(c.h == 10 && c.w == 13 && c.i == 0 && c.j == (1000 - 13) / 2,
             "RandomResizedCrop fallback on a 1000x10 strip: centre crop 13x10+%d+0 (got %dx%d+%d+%d)", (1000 - 13) / 2, c.w, c.h, c.j, c.i);
}

// Every image of the CIFAR-10 shard decodes to 32x32x3; the count is the
// shard's 5,000 samples (SOURCE.md of the shared data).
static void test_cifar_shard(mim_decoder* d, const char* shard) {
    mim_tar* t;
    int rc = mim_tar_open_file(&t, shard);
    if (!TU_CHECK(rc == 0, "open %s: %s", shard, rc ? mim_err_msg() : "ok")) return;
    mim_wds_sample* s = malloc(sizeof *s);
    uint8_t* buf = NULL; size_t cap = 0;
    int n_img = 0, n_ok = 0, n_label = 0;
    mim_image img; memset(&img, 0, sizeof img);
    while (mim_wds_next(t, s) > 0) {
        if (s->img_format == MIM_IMG_NONE) continue;
        n_img++;
        n_label += s->label >= 0 && s->label < 10;
        if (s->img_size > cap) { cap = s->img_size; buf = realloc(buf, cap); CHECK(buf); }
        if (mim_tar_pread(t, s->img_off, buf, s->img_size) != 0) continue;
        n_ok += mim_decode(d, buf, s->img_size, 3, &img) == 0 && img.w == 32 && img.h == 32 && img.c == 3;
    }
    TU_CHECK(n_img == 5000 && n_ok == 5000 && n_label == 5000,
             "CIFAR-10 train-000000.tar: %d / 5000 images decoded to 32x32x3 (%d images found, %d labelled 0..9)", n_ok, n_img, n_label);
    mim_image_free(&img);
    free(buf); free(s); mim_tar_close(t);
}

int main(void) {
    test_rrc_params();
    char root[2048], refp[4096];
    if (tu_repo_root(root, sizeof root, "tests/ref/data_ref.bin") != 0) snprintf(root, sizeof root, ".");
    snprintf(refp, sizeof refp, "%s/tests/ref/data_ref.bin", root);
    size_t n = 0;
    uint8_t* ref = NULL;
    if (tu_need_file(refp)) { ref = slurp(refp, &n); TU_CHECK(ref != NULL, "read %s", refp); }
    if (!ref) return tu_summary("test_data_decode", 0, NULL);   // absent: a skip (made by tests/ref/data_ref.py)
    mim_aug_scratch* s; CHECK(mim_aug_scratch_init(&s, 0) == 0);
    mim_decoder* d; CHECK(mim_decoder_init(&d, 0) == 0);
    mim_image img; memset(&img, 0, sizeof img);
    int n_cifar = 0, n_cifar_ref = 0, n_crop = 0, n_draft = 0, n_eval = 0, n_bicubic = 0, n_webp = 0, n_png = 0;
    char shard[4096];
    int have_cifar = tu_shared_data(shard, sizeof shard, "cifar10/train-000000.tar");
    const uint8_t* src[2] = { NULL, NULL }; size_t src_len[2] = { 0, 0 };
    double worst_mean[2][2] = { { 0 } };   // [filter][dct] over crops and evals (exact decode rows: dct 0)
    for (size_t off = 0; off + 8 <= n;) {
        uint32_t tag = rd32(ref + off), len = rd32(ref + off + 4);
        const uint8_t* p = ref + off + 8;
        off += 8 + len;
        if (tag == 1) {   // PIL decode of CIFAR sample k: exact
            uint32_t k = rd32(p), w = rd32(p + 4), h = rd32(p + 8);
            n_cifar_ref++;
            if (!have_cifar) continue;   // tu_shared_data made the test a skip
            size_t sn = 0;
            uint8_t* sb = cifar_sample(shard, (int)k, &sn);
            if (!TU_CHECK(sb != NULL, "CIFAR sample %u read from %s", k, shard)) continue;
            int rc = mim_decode(d, sb, sn, 3, &img);
            int dims = rc == 0 && img.w == (int)w && img.h == (int)h && img.c == 3;
            TU_CHECK(dims, "CIFAR sample %u decodes (%d) to %ux%ux3 (got %dx%dx%d)", k, rc, w, h, img.w, img.h, img.c);
            if (dims) TU_CHECK(memcmp(img.px, p + 12, (size_t)w * h * 3) == 0, "CIFAR sample %u pixels == PIL", k);
            free(sb); n_cifar += dims;
        } else if (tag == 4) {   // a source image
            uint32_t k = rd32(p);
            CHECK(k < 2);
            src[k] = p + 8; src_len[k] = rd32(p + 4);
        } else if (tag == 2 || tag == 5) {   // torchvision resized_crop (+hflip) / eval Resize + CenterCrop, on PIL
            int32_t q[9];
            int nq = tag == 2 ? 9 : 5;
            memcpy(q, p, sizeof(int32_t) * (size_t)nq);
            const uint8_t* want = p + sizeof(int32_t) * (size_t)nq;
            CHECK(q[0] >= 0 && q[0] < 2 && src[q[0]]);
            const uint8_t* jpeg = src[q[0]]; size_t jpeg_len = src_len[q[0]];
            mim_crop cr = { 0 };
            int oh, ow, filter, R = 0;
            if (tag == 2) { cr = (mim_crop){ q[1], q[2], q[3], q[4], q[5] }; oh = q[6]; ow = q[7]; filter = q[8]; }
            else { R = q[1]; oh = q[2]; ow = q[3]; filter = q[4]; }
            mim_transform t; mim_transform_default(&t, 3, oh, ow, tag == 2);
            for (int c = 0; c < 3; c++) { t.mean[c] = 0; t.std[c] = 1; }
            t.filter = filter;
            t.resize_short = R;
            float* out = malloc(sizeof(float) * 3 * oh * ow);
            for (int dct = 0; dct <= 1; dct++) {
                t.dct_scale = dct;
                mim_rng rng; mim_rng_seed(&rng, 0);
                mim_crop used;
                char what[160];
                if (tag == 2)
                    snprintf(what, sizeof what, "crop %s src%d %dx%d+%d+%d -> %dx%d flip %d dct %d", filter ? "bicubic " : "bilinear",
                             q[0], cr.w, cr.h, cr.j, cr.i, ow, oh, cr.flip, dct);
                else
                    snprintf(what, sizeof what, "eval %s src%d resize %d + centre crop %dx%d, dct %d", filter ? "bicubic " : "bilinear",
                             q[0], R, ow, oh, dct);
                int rc = tag == 2 ? mim_transform_apply_crop(&t, s, jpeg, jpeg_len, &cr, out)
                                  : mim_transform_apply(&t, s, jpeg, jpeg_len, &rng, out, &used);
                TU_CHECK(rc == 0, "%s: transform runs (%d)", what, rc);
                double sum = 0, mx = 0;
                for (int y = 0; y < oh; y++) for (int x = 0; x < ow; x++) for (int c = 0; c < 3; c++) {
                    double e = fabs(out[(size_t)c * oh * ow + (size_t)y * ow + x] * 255.0 - want[((size_t)y * ow + x) * 3 + c]);
                    sum += e; if (e > mx) mx = e;
                }
                double mean = sum / (3.0 * oh * ow);
                if (mean > worst_mean[filter][dct]) worst_mean[filter][dct] = mean;
                // exact decode path: within 1/255 on average, and no pixel off by more than PIL's
                // rounding of its 8-bit intermediate (both passes clipped, as PIL does)
                if (!dct) {
                    TU_CHECK(mean <= 1.0, "%s vs torchvision: mean |err| %.3f/255 (<= 1)", what, mean);
                    TU_CHECK(mx <= 1.5, "%s vs torchvision: max |err| %.2f/255 (<= 1.5)", what, mx);
                }
                // DCT-scaled source: a slightly different image. The DCT reduction acts like a box
                // filter, sharper than PIL's antialiasing: about 1/255 on the photo-like src0, more
                // on src1's saturated 12-pixel checkerboard, the adversarial case
                else
                    TU_CHECK(mean <= (q[0] == 0 ? 2.0 : 8.0), "%s vs torchvision: mean |err| %.3f/255 (<= %.0f), max %.2f/255",
                             what, mean, q[0] == 0 ? 2.0 : 8.0, mx);
            }
            free(out);
            if (tag == 2) n_crop++; else n_eval++;
            n_bicubic += filter == MIM_FILTER_BICUBIC;
        } else if (tag == 6) {   // WebP vs PIL: exact (the same libwebp decodes both)
            uint32_t wl = rd32(p);
            const uint8_t* wb = p + 4;
            uint32_t w = rd32(p + 4 + wl), h = rd32(p + 8 + wl);
            const uint8_t* want = p + 12 + wl;
            if (!mim_webp_version()) {
                TU_CHECK(mim_decode(d, wb, wl, 3, &img) == MIM_EUNSUPPORTED,
                         "webp #%d without libwebp.so.7: refused as unsupported (%s)", n_webp, mim_err_msg());
                continue;
            }
            int rc = mim_decode(d, wb, wl, 3, &img);
            TU_CHECK(rc == 0, "webp #%d decodes (%d)", n_webp, rc);
            int same = img.w == (int)w && img.h == (int)h && img.c == 3 && !memcmp(img.px, want, (size_t)w * h * 3);
            TU_CHECK(same, "webp #%d %ux%u RGB == PIL", n_webp, w, h);
            rc = mim_decode(d, wb, wl, 1, &img);   // gray: PIL's convert('L') formula
            TU_CHECK(rc == 0 && img.c == 1, "webp #%d decodes to 1 channel (%d, c %d)", n_webp, rc, img.c);
            int gray_same = img.w == (int)w && img.h == (int)h;
            for (uint32_t i = 0; gray_same && i < w * h; i++) {
                const uint8_t* q = want + 3 * i;
                gray_same = img.px[i] == (uint8_t)((q[0] * 19595 + q[1] * 38470 + q[2] * 7471 + 32768) >> 16);
            }
            TU_CHECK(gray_same, "webp #%d gray == PIL convert('L')", n_webp);
            mim_image_info info; mim_image part; memset(&part, 0, sizeof part);
            TU_CHECK(mim_decode_begin(d, wb, wl, &info) == 0 && info.format == MIM_FMT_WEBP && info.w == (int)w,
                     "webp #%d header: format WebP, width %u (got %d)", n_webp, w, info.w);
            TU_CHECK(mim_decode_finish(d, 3, 8, 5, 9, &part) == 0 && part.row0 == 5 && part.h == 4 &&
                     !memcmp(part.px, want + 5 * w * 3, 4 * w * 3), "webp #%d rows 5..8 == the same rows of PIL's decode", n_webp);
            mim_image_free(&part);
            TU_CHECK(mim_decode(d, wb, wl / 2, 3, &img) == MIM_EFORMAT, "webp #%d truncated to half: MIM_EFORMAT, not a crash", n_webp);
            mim_crop cr = { 2, 3, (int)h - 4, (int)w - 6, 1 };
            mim_transform t; mim_transform_default(&t, 3, 16, 16, 1);
            float o16[3 * 16 * 16];
            TU_CHECK(mim_transform_apply_crop(&t, s, wb, wl, &cr, o16) == 0, "webp #%d through the crop transform", n_webp);
            printf("webp %ux%u (libwebp %06x): %s decode vs PIL %s, gray %s\n", w, h, mim_webp_version(),
                   n_webp ? "lossless+alpha" : "lossy", same ? "exact" : "DIFFERS", gray_same ? "exact" : "DIFFERS");
            n_webp++;
        } else if (tag == 7) {   // PNG layouts vs PIL convert('RGB') and convert('L'): exact
            uint32_t pl = rd32(p);
            const uint8_t* pb = p + 4;
            uint32_t w = rd32(p + 4 + pl), h = rd32(p + 8 + pl);
            const uint8_t* want = p + 12 + pl;
            const uint8_t* want_l = want + (size_t)w * h * 3;
            int rgb_ok = mim_decode(d, pb, pl, 3, &img) == 0 && img.w == (int)w && img.h == (int)h && img.c == 3 &&
                         !memcmp(img.px, want, (size_t)w * h * 3);
            int l_ok = mim_decode(d, pb, pl, 1, &img) == 0 && img.w == (int)w && img.h == (int)h && img.c == 1 &&
                       !memcmp(img.px, want_l, (size_t)w * h);
            TU_CHECK(rgb_ok && l_ok, "png #%d (%ux%u, %u bytes) vs PIL: RGB %s, L %s", n_png, w, h, pl,
                     rgb_ok ? "exact" : "DIFFERS", l_ok ? "exact" : "DIFFERS");
            n_png++;
        } else if (tag == 3 && src[0]) {   // PIL draft == our DCT-scaled decode: exact
            const uint8_t* jpeg = src[0]; size_t jpeg_len = src_len[0];
            uint32_t num = rd32(p), w = rd32(p + 4), h = rd32(p + 8);
            mim_image_info info;
            TU_CHECK(mim_decode_begin(d, jpeg, jpeg_len, &info) == 0, "draft %u/8: decode_begin", num);
            TU_CHECK(mim_decode_finish(d, 3, (int)num, 0, 0, &img) == 0, "draft %u/8: decode_finish", num);
            TU_CHECK(img.w == (int)w && img.h == (int)h, "draft %u/8: %ux%u like PIL draft (got %dx%d)", num, w, h, img.w, img.h);
            if (img.w == (int)w && img.h == (int)h)
                TU_CHECK(memcmp(img.px, p + 12, (size_t)w * h * 3) == 0, "draft %u/8: pixels == PIL draft", num);
            // row-range decode equals the same rows of the full decode
            mim_image part; memset(&part, 0, sizeof part);
            TU_CHECK(mim_decode_begin(d, jpeg, jpeg_len, &info) == 0, "draft %u/8 rows: decode_begin", num);
            TU_CHECK(mim_decode_finish(d, 3, (int)num, (int)h / 3, (int)h / 2, &part) == 0, "draft %u/8 rows: decode_finish", num);
            int rows_ok = part.row0 == (int)h / 3 && part.h == (int)h / 2 - (int)h / 3;
            TU_CHECK(rows_ok, "draft %u/8: row range [%u, %u) (got row0 %d, %d rows)", num, h / 3, h / 2, part.row0, part.h);
            TU_CHECK(rows_ok && memcmp(part.px, p + 12 + (size_t)(h / 3) * w * 3, (size_t)part.h * w * 3) == 0,
                     "draft %u/8: row range == the same rows of the full decode", num);
            mim_image_free(&part);
            n_draft++;
        }
    }
    printf("worst mean |err| (/255): bilinear %.3f (DCT-scaled %.3f), bicubic %.3f (DCT-scaled %.3f)\n",
           worst_mean[0][0], worst_mean[0][1], worst_mean[1][0], worst_mean[1][1]);
    printf("decode parity: %d CIFAR samples vs PIL, %d crops and %d eval transforms vs torchvision (%d bicubic), %d DCT scales vs PIL draft\n",
           n_cifar, n_crop, n_eval, n_bicubic, n_draft);
    TU_CHECK(n_crop >= 8 && n_eval >= 6 && n_bicubic >= 7 && n_draft >= 3,
             "reference coverage: %d crops (>= 8), %d evals (>= 6), %d bicubic (>= 7), %d drafts (>= 3)", n_crop, n_eval, n_bicubic, n_draft);
    TU_CHECK(n_webp == (mim_webp_version() ? 2 : 0) && n_png == 5, "reference coverage: %d webp (want %d), %d png (want 5)",
             n_webp, mim_webp_version() ? 2 : 0, n_png);
    // data_ref.py records PIL's decode of the first 6 samples of train-000000.tar
    TU_CHECK(n_cifar_ref == 6, "reference holds %d CIFAR samples (want 6; regenerate with tests/ref/data_ref.py if 0)", n_cifar_ref);
    if (have_cifar) {
        TU_CHECK(n_cifar == 6, "CIFAR: %d / 6 reference samples decoded at PIL's size", n_cifar);
        test_cifar_shard(d, shard);
    }
    mim_image_free(&img);
    mim_decoder_free(d); mim_aug_scratch_free(s); free(ref);
    return tu_summary("test_data_decode", 0, NULL);
}
