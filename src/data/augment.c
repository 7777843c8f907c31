// augment.c: RandomResizedCrop / eval crop, PIL-compatible resampling,
// flip and normalisation (see augment.h).
#include "data/augment.h"
#include "core/check.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct mim_aug_scratch {
    mim_decoder* dec;
    mim_image img;
    float* tmp; size_t tmp_cap;     // horizontal pass output (rows, out_w, C)
    float* kx; size_t kx_cap;       // (out_w, kmax) taps
    float* ky; size_t ky_cap;
    int* bx; size_t bx_cap;         // (out_w, 2): first tap, tap count
    int* by; size_t by_cap;
};

void mim_transform_default(mim_transform* t, int channels, int out_h, int out_w, int train) {
    static const float mean[3] = { 0.485f, 0.456f, 0.406f }, std[3] = { 0.229f, 0.224f, 0.225f };
    memset(t, 0, sizeof *t);
    t->out_w = out_w; t->out_h = out_h; t->channels = channels; t->train = train;
    t->scale_min = 0.2f; t->scale_max = 1.0f;
    t->ratio_min = 3.0f / 4.0f; t->ratio_max = 4.0f / 3.0f;
    t->flip_p = 0.5f;
    t->resize_short = (int)lround((out_h < out_w ? out_h : out_w) / 0.875);
    t->filter = MIM_FILTER_BILINEAR;
    t->dct_scale = 1;
    for (int c = 0; c < 3; c++) { t->mean[c] = mean[c]; t->std[c] = std[c]; }
    if (channels == 1) { t->mean[0] = (mean[0] + mean[1] + mean[2]) / 3; t->std[0] = (std[0] + std[1] + std[2]) / 3; }
    t->max_pixels = MIM_DECODE_MAX_PIXELS;
}

int mim_aug_scratch_init(mim_aug_scratch** out, int64_t max_pixels) {
    mim_aug_scratch* s = calloc(1, sizeof *s);
    if (!s) return mim_err(MIM_ENOMEM, "out of memory");
    int rc = mim_decoder_init(&s->dec, max_pixels);
    if (rc < 0) { free(s); return rc; }
    *out = s;
    return MIM_OK;
}

void mim_aug_scratch_free(mim_aug_scratch* s) {
    if (!s) return;
    mim_decoder_free(s->dec);
    mim_image_free(&s->img);
    free(s->tmp); free(s->kx); free(s->ky); free(s->bx); free(s->by);
    free(s);
}

// ---- crop parameters ----------------------------------------------------------

void mim_rrc_params(mim_rng* rng, int H, int W, float scale_min, float scale_max,
                    float ratio_min, float ratio_max, mim_crop* out) {
    double area = (double)H * W;
    double lr0 = log(ratio_min), lr1 = log(ratio_max);
    for (int a = 0; a < 10; a++) {
        double target = area * (scale_min + (scale_max - scale_min) * mim_rng_uniform_d(rng));
        double aspect = exp(lr0 + (lr1 - lr0) * mim_rng_uniform_d(rng));
        int w = (int)nearbyint(sqrt(target * aspect));   // round half to even, as Python
        int h = (int)nearbyint(sqrt(target / aspect));
        if (w > 0 && w <= W && h > 0 && h <= H) {
            out->i = (int)mim_rng_below(rng, (uint64_t)(H - h + 1));
            out->j = (int)mim_rng_below(rng, (uint64_t)(W - w + 1));
            out->h = h; out->w = w; out->flip = 0;
            return;
        }
    }
    double in_ratio = (double)W / H;
    int w, h;
    if (in_ratio < ratio_min) { w = W; h = (int)nearbyint(w / ratio_min); }
    else if (in_ratio > ratio_max) { h = H; w = (int)nearbyint(h * ratio_max); }
    else { w = W; h = H; }
    if (h > H) h = H;
    if (w > W) w = W;
    out->i = (H - h) / 2; out->j = (W - w) / 2; out->h = h; out->w = w; out->flip = 0;
}

// ---- resampling -----------------------------------------------------------------

static double filt(int f, double x) {
    if (x < 0) x = -x;
    if (f == MIM_FILTER_BILINEAR) return x < 1 ? 1 - x : 0;
    const double a = -0.5;
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

static int grow(void** p, size_t* cap, size_t bytes) {
    if (*cap >= bytes && *p) return 1;
    void* q = realloc(*p, bytes ? bytes : 1);
    CHECK(q);   // scratch sizes are bounded by out dims x taps: small
    *p = q; *cap = bytes;
    return 1;
}

// PIL precompute_coeffs for box [in0, in1) -> n outputs, taps clamped to
// [lo, hi). b[2x] = first tap, b[2x+1] = tap count; k (n, kmax).
static int coeffs(int f, double in0, double in1, int lo, int hi, int n, float** k, size_t* kcap, int** b, size_t* bcap) {
    double scale = (in1 - in0) / n;
    double fscale = scale > 1 ? scale : 1;
    double support = (f == MIM_FILTER_BILINEAR ? 1.0 : 2.0) * fscale;
    int kmax = (int)ceil(support) * 2 + 1;
    grow((void**)k, kcap, (size_t)n * (size_t)kmax * sizeof(float));
    grow((void**)b, bcap, (size_t)n * 2 * sizeof(int));
    double ss = 1.0 / fscale;
    int size = hi - lo;
    double off = in0 - lo;   // box start relative to the clamp window
    for (int x = 0; x < n; x++) {
        double center = off + (x + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > size) xmax = size;
        xmax -= xmin;
        if (xmax > kmax) xmax = kmax;
        if (xmax < 1) { xmax = 1; if (xmin >= size) xmin = size - 1; }
        double w[64], ww = 0;
        float* kk = *k + (size_t)x * kmax;
        for (int t = 0; t < xmax; t++) {
            double v = t < 64 ? filt(f, (t + xmin - center + 0.5) * ss) : 0;
            if (t < 64) w[t] = v;
            ww += v;
        }
        for (int t = 0; t < xmax; t++) kk[t] = (float)(ww != 0 && t < 64 ? w[t] / ww : (t == 0));
        (*b)[2 * x] = xmin + lo; (*b)[2 * x + 1] = xmax;
    }
    return kmax;
}

// PIL stores each pass in 8 bits, so bicubic overshoot is clipped after the
// horizontal pass too, not only at the end (bilinear weights are positive
// and sum to 1: nothing to clip, and the loop stays as it was).
static inline float clip255(float v) { return v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v; }

void mim_resample_chw(float* out, const mim_image* img, double x0, double y0, double x1, double y1,
                      int lo_x, int hi_x, int lo_y, int hi_y, int out_w, int out_h, int filter, int flip,
                      const float* mean, const float* std, mim_aug_scratch* s) {
    CHECK(img->w > 0 && img->h > 0 && out_w > 0 && out_h > 0);
    if (lo_x < 0) lo_x = 0;
    if (hi_x > img->w) hi_x = img->w;
    if (lo_y < 0) lo_y = 0;
    if (hi_y > img->row0 + img->h) hi_y = img->row0 + img->h;
    if (hi_x <= lo_x) { lo_x = lo_x < img->w ? lo_x : img->w - 1; hi_x = lo_x + 1; }
    if (hi_y <= lo_y) { lo_y = lo_y < img->row0 + img->h ? lo_y : img->row0 + img->h - 1; hi_y = lo_y + 1; }
    const int C = img->c;
    int kxm = coeffs(filter, x0, x1, lo_x, hi_x, out_w, &s->kx, &s->kx_cap, &s->bx, &s->bx_cap);
    int kym = coeffs(filter, y0, y1, lo_y, hi_y, out_h, &s->ky, &s->ky_cap, &s->by, &s->by_cap);
    int r0 = s->by[0], r1 = s->by[2 * (out_h - 1)] + s->by[2 * (out_h - 1) + 1];
    for (int y = 0; y < out_h; y++) {   // rows the vertical pass touches
        if (s->by[2 * y] < r0) r0 = s->by[2 * y];
        if (s->by[2 * y] + s->by[2 * y + 1] > r1) r1 = s->by[2 * y] + s->by[2 * y + 1];
    }
    size_t rw = (size_t)out_w * C;
    grow((void**)&s->tmp, &s->tmp_cap, (size_t)(r1 - r0) * rw * sizeof(float));
    const int clip = filter == MIM_FILTER_BICUBIC;
    // horizontal pass: rows [r0, r1) -> tmp (rows, out_w, C)
    for (int r = r0; r < r1; r++) {
        int sr = r - img->row0;
        if (sr < 0) sr = 0;
        if (sr >= img->h) sr = img->h - 1;
        const uint8_t* src = img->px + (size_t)sr * img->w * C;
        float* dst = s->tmp + (size_t)(r - r0) * rw;
        for (int x = 0; x < out_w; x++) {
            const float* k = s->kx + (size_t)x * kxm;
            const uint8_t* p = src + (size_t)s->bx[2 * x] * C;
            int nt = s->bx[2 * x + 1];
            if (C == 3) {
                float a0 = 0, a1 = 0, a2 = 0;
                for (int t = 0; t < nt; t++) { a0 += k[t] * p[3 * t]; a1 += k[t] * p[3 * t + 1]; a2 += k[t] * p[3 * t + 2]; }
                if (clip) { a0 = clip255(a0); a1 = clip255(a1); a2 = clip255(a2); }
                dst[3 * x] = a0; dst[3 * x + 1] = a1; dst[3 * x + 2] = a2;
            } else {
                for (int c = 0; c < C; c++) {
                    float a = 0;
                    for (int t = 0; t < nt; t++) a += k[t] * p[C * t + c];
                    dst[C * x + c] = clip ? clip255(a) : a;
                }
            }
        }
    }
    // vertical pass + normalise: out (C, out_h, out_w)
    float sc[3], bi[3];
    for (int c = 0; c < C; c++) { sc[c] = 1.0f / (255.0f * std[c]); bi[c] = -mean[c] / std[c]; }
    size_t plane = (size_t)out_w * out_h;
    float acc[3 * 1024];
    float* accp = rw <= 3 * 1024 ? acc : NULL;
    float* heap = NULL;
    if (!accp) { heap = malloc(rw * sizeof(float)); CHECK(heap); accp = heap; }
    for (int y = 0; y < out_h; y++) {
        const float* k = s->ky + (size_t)y * kym;
        int first = s->by[2 * y] - r0, nt = s->by[2 * y + 1];
        memset(accp, 0, rw * sizeof(float));
        for (int t = 0; t < nt; t++) {
            const float* row = s->tmp + (size_t)(first + t) * rw;
            float kt = k[t];
            for (size_t q = 0; q < rw; q++) accp[q] += kt * row[q];
        }
        for (int x = 0; x < out_w; x++) {
            int xo = flip ? out_w - 1 - x : x;
            for (int c = 0; c < C; c++) {
                float v = accp[C * x + c];
                v = v < 0 ? 0 : v > 255 ? 255 : v;   // PIL clips each pass to [0, 255]
                out[c * plane + (size_t)y * out_w + xo] = v * sc[c] + bi[c];
            }
        }
    }
    free(heap);
}

// ---- whole transform ---------------------------------------------------------------

static int run_box(const mim_transform* t, mim_aug_scratch* s, const mim_image_info* info,
                   double bx0, double by0, double bx1, double by1, int clo_x, int chi_x, int clo_y, int chi_y,
                   int flip, float* out) {
    int num = t->dct_scale ? mim_jpeg_pick_scale(info, bx1 - bx0, by1 - by0, t->out_w, t->out_h) : 8;
    int sw = info->w, sh = info->h;
    if (num != 8) mim_jpeg_scaled_size(info, num, &sw, &sh);
    double sx = (double)sw / info->w, sy = (double)sh / info->h;
    double x0 = bx0 * sx, x1 = bx1 * sx, y0 = by0 * sy, y1 = by1 * sy;
    int lo_x = num == 8 ? clo_x : (int)floor(clo_x * sx), hi_x = num == 8 ? chi_x : (int)ceil(chi_x * sx);
    int lo_y = num == 8 ? clo_y : (int)floor(clo_y * sy), hi_y = num == 8 ? chi_y : (int)ceil(chi_y * sy);
    if (hi_x > sw) hi_x = sw;
    if (hi_y > sh) hi_y = sh;
    int rc = mim_decode_finish(s->dec, t->channels, num, lo_y, hi_y, &s->img);
    if (rc < 0) return rc;
    mim_resample_chw(out, &s->img, x0, y0, x1, y1, lo_x, hi_x, lo_y, hi_y, t->out_w, t->out_h, t->filter, flip,
                     t->mean, t->std, s);
    return MIM_OK;
}

int mim_transform_apply_crop(const mim_transform* t, mim_aug_scratch* s, const uint8_t* buf, size_t n,
                             const mim_crop* cr, float* out) {
    mim_image_info info;
    int rc = mim_decode_begin(s->dec, buf, n, &info);
    if (rc < 0) return rc;
    if (cr->i < 0 || cr->j < 0 || cr->h <= 0 || cr->w <= 0 || cr->i + cr->h > info.h || cr->j + cr->w > info.w) {
        mim_decode_abort(s->dec);
        return mim_err(MIM_EARG, "crop outside the %dx%d image", info.w, info.h);
    }
    return run_box(t, s, &info, cr->j, cr->i, cr->j + cr->w, cr->i + cr->h, cr->j, cr->j + cr->w, cr->i, cr->i + cr->h,
                   cr->flip, out);
}

int mim_transform_apply(const mim_transform* t, mim_aug_scratch* s, const uint8_t* buf, size_t n,
                        mim_rng* rng, float* out, mim_crop* crop_out) {
    CHECK(t->channels == 1 || t->channels == 3);
    mim_image_info info;
    int rc = mim_decode_begin(s->dec, buf, n, &info);
    if (rc < 0) return rc;
    mim_crop cr;
    if (t->train) {
        mim_rrc_params(rng, info.h, info.w, t->scale_min, t->scale_max, t->ratio_min, t->ratio_max, &cr);
        cr.flip = mim_rng_uniform(rng) < t->flip_p;
        if (crop_out) *crop_out = cr;
        return run_box(t, s, &info, cr.j, cr.i, cr.j + cr.w, cr.i + cr.h, cr.j, cr.j + cr.w, cr.i, cr.i + cr.h, cr.flip, out);
    }
    // eval: torchvision Resize(resize_short) then CenterCrop(out), as one box
    int R = t->resize_short > 0 ? t->resize_short : (t->out_h < t->out_w ? t->out_h : t->out_w);
    int W = info.w, H = info.h, rw, rh;
    if (W <= H) { rw = R; rh = (int)((int64_t)R * H / W); } else { rh = R; rw = (int)((int64_t)R * W / H); }
    int top = (int)nearbyint((rh - t->out_h) / 2.0), left = (int)nearbyint((rw - t->out_w) / 2.0);
    double fx = (double)W / rw, fy = (double)H / rh;
    double x0 = left * fx, x1 = (left + t->out_w) * fx, y0 = top * fy, y1 = (top + t->out_h) * fy;
    if (crop_out) {
        crop_out->j = (int)floor(x0); crop_out->i = (int)floor(y0);
        crop_out->w = (int)ceil(x1) - crop_out->j; crop_out->h = (int)ceil(y1) - crop_out->i; crop_out->flip = 0;
    }
    return run_box(t, s, &info, x0, y0, x1, y1, 0, W, 0, H, 0, out);
}
