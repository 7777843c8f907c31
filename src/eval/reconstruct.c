// reconstruct.c: see reconstruct.h.
#include "eval/reconstruct.h"
#include "core/check.h"
#include "core/rng.h"
#include "data/source.h"
#include "model/mae.h"
#include "ops/ops.h"
#include "train/checkpoint.h"
#include <math.h>
#include <png.h>
#include <string.h>

// Writes patch-space values (L, P) of one image back to pixels (C, H, W).
static void unpatch(float* chw, const float* patches, const mim_config* c) {
    memset(chw, 0, sizeof(float) * (size_t)c->in_chans * c->img_h * c->img_w);
    patchify_backward(chw, patches, 1, c->in_chans, c->img_h, c->img_w, c->patch);
}

int mim_reconstruct_run(const mim_reconstruct_args* a, float* loss_out) {
    mim_config c;
    int rc = mim_ckpt_read_config(a->ckpt, &c);
    if (rc) return rc;
    if (c.dec_dim == 0)
        return mim_err(MIM_EARG, "%s has no decoder (an encoder-only or fine-tuned checkpoint); "
                       "reconstruct needs an MAE pre-training checkpoint", a->ckpt);
    if (c.target != MIM_TARGET_PIXEL && c.target != MIM_TARGET_PIXEL_NORM)
        return mim_err(MIM_EARG, "%s was pre-trained with --target %s: its decoder predicts %s, not pixels, so there is "
                       "no picture to reconstruct (reconstruct needs a pixel or pixel-norm target)", a->ckpt,
                       mim_target_name(c.target),
                       c.target == MIM_TARGET_HOG ? "HOG histograms" : "teacher features");
    if (a->mask_ratio >= 0) c.mask_ratio = a->mask_ratio;
    if ((rc = mim_config_validate(&c))) return rc;
    int n = a->n > 0 ? a->n : 8;
    mim_source_config sc = {.path = a->data, .split = a->split ? a->split : "t10k", .channels = c.in_chans,
                            .height = c.img_h, .width = c.img_w, .batch = n, .augment = 0, .shuffle = 0,
                            .world = 1, .threads = 2, .no_replace = 1};   // a bad image is not swapped for another
    mim_source* src = NULL;
    mim_mae m = {0};
    float *imgs = NULL, *noise = NULL, *cells = NULL;
    int64_t* ids = NULL;
    uint8_t* png = NULL;
    if ((rc = mim_source_open(&src, &sc))) return rc;
    if ((rc = mim_mae_init(&m, &c, n))) goto done;
    if ((rc = mim_ckpt_load_model(a->ckpt, &m, 0))) goto done;
    size_t per = (size_t)c.in_chans * c.img_h * c.img_w;
    imgs = mim_malloc(sizeof(float) * per * n);
    noise = mim_malloc(sizeof(float) * (size_t)n * m.L);
    cells = mim_malloc(sizeof(float) * per * 4 + sizeof(float) * (size_t)m.L * m.P * 2);
    ids = mim_malloc(sizeof(int64_t) * (size_t)n);
    if (!imgs || !noise || !cells || !ids) { rc = MIM_ENOMEM; goto done; }
    if ((rc = mim_source_next_ids(src, imgs, NULL, ids))) goto done;
    int bad = 0;
    for (int b = 0; b < n; b++)
        if (ids[b] < 0) {
            if (!bad++) fprintf(stderr, "warning: %s:", a->data);
            fprintf(stderr, " sample %d", b);
        }
    if (bad) fprintf(stderr, " could not be read (corrupt or unreadable): %s left blank\n", bad > 1 ? "their rows are" : "its row is");
    if (bad == n) { rc = mim_err(MIM_EDATA, "%s: none of the first %d samples could be read", a->data, n); goto done; }
    mim_rng r;
    mim_rng_seed(&r, a->seed);
    for (size_t i = 0; i < (size_t)n * m.L; i++) noise[i] = mim_rng_uniform(&r);
    float loss = mim_mae_forward(&m, imgs, noise, n);
    if (loss_out) *loss_out = loss;

    float mean[3], stdv[3];
    mim_source_normalization(src, mean, stdv);
    int H = c.img_h, W = c.img_w, C = c.in_chans, L = m.L, P = m.P;
    int zoom = a->scale > 0 ? a->scale : (H >= 96 ? 1 : (96 + H - 1) / H);
    int gap = 2, cw = W * zoom, ch = H * zoom;
    int gw = 4 * cw + 5 * gap, gh = n * ch + (n + 1) * gap;
    png = calloc((size_t)gw * gh * 3, 1);
    if (!png) { rc = mim_err(MIM_ENOMEM, "out of memory for a %dx%d picture", gw, gh); goto done; }
    memset(png, 255, (size_t)gw * gh * 3);
    float* col[4] = {cells, cells + per, cells + 2 * per, cells + 3 * per};
    float* pred = cells + 4 * per;       // (L, P) predictions in pixel-normalised space
    float* orig = pred + (size_t)L * P;  // (L, P) the image's patches
    for (int b = 0; b < n; b++) {
        if (ids[b] < 0) continue;   // unreadable: a blank row, said above
        const float* x = imgs + per * b;
        const float* mask = m.mask + (size_t)b * L;
        patchify_forward(orig, x, 1, C, H, W, c.patch);
        memcpy(pred, m.pred + (size_t)b * L * P, sizeof(float) * L * P);
        if (c.target == MIM_TARGET_PIXEL_NORM)   // predictions are per-patch normalised: use each patch's own statistics
            for (int l = 0; l < L; l++) {
                double mu = 0, var = 0;
                for (int k = 0; k < P; k++) mu += orig[(size_t)l * P + k];
                mu /= P;
                for (int k = 0; k < P; k++) { double d = orig[(size_t)l * P + k] - mu; var += d * d; }
                var = P > 1 ? var / (P - 1) : 0;
                for (int k = 0; k < P; k++) pred[(size_t)l * P + k] = (float)(pred[(size_t)l * P + k] * sqrt(var + 1e-6) + mu);
            }
        memcpy(col[0], x, sizeof(float) * per);
        // masked input, reconstruction, reconstruction + visible, in patch space
        float* tmp = col[1];
        for (int l = 0; l < L; l++)
            for (int k = 0; k < P; k++) orig[(size_t)l * P + k] = mask[l] > 0 ? NAN : orig[(size_t)l * P + k];
        unpatch(tmp, orig, &c);
        unpatch(col[2], pred, &c);
        for (int l = 0; l < L; l++)
            if (mask[l] == 0)
                for (int k = 0; k < P; k++) pred[(size_t)l * P + k] = orig[(size_t)l * P + k];
        unpatch(col[3], pred, &c);
        for (int k = 0; k < 4; k++)
            for (int y = 0; y < ch; y++)
                for (int xx = 0; xx < cw; xx++) {
                    uint8_t* o = png + ((size_t)(gap + b * (ch + gap) + y) * gw + gap + k * (cw + gap) + xx) * 3;
                    for (int q = 0; q < 3; q++) {
                        int cc = C == 3 ? q : 0;
                        float v = col[k][((size_t)cc * H + y / zoom) * W + xx / zoom];
                        float u = isnan(v) ? 0.5f : v * stdv[cc] + mean[cc];   // removed patches grey
                        o[q] = (uint8_t)(u <= 0 ? 0 : u >= 1 ? 255 : u * 255.0f + 0.5f);
                    }
                }
    }
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)gw; img.height = (png_uint_32)gh;
    img.format = PNG_FORMAT_RGB;
    if (!png_image_write_to_file(&img, a->out, 0, png, gw * 3, NULL))
        rc = mim_err(MIM_EIO, "cannot write %s: %s", a->out, img.message);
done:
    free(png); free(imgs); free(noise); free(cells); free(ids);
    if (m.params) mim_mae_free(&m);
    mim_source_close(src);
    return rc;
}
