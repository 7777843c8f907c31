// randaug.c: timm RandAugment with PIL-exact ops, and timm RandomErasing
// (see randaug.h). Each op names the PIL routine it reproduces; the order of
// floating-point operations follows PIL's C code (libImaging Geometry.c,
// Filter.c, Blend.c, Convert.c) and ImageOps.py / ImageEnhance.py of Pillow
// 9.x, so that results are bit-identical, not merely close. This relies on
// the build not contracting a*b+c into FMA (-std=c11 implies
// -ffp-contract=off in GCC; PIL's own build on x86-64 has no FMA either).
#include "data/randaug.h"
#include "core/check.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEVEL_DENOM 10.0  // timm _LEVEL_DENOM: magnitudes are on a 0..10 scale

static const char* const op_names[MIM_RA_NOPS] = {
    [MIM_RA_AUTOCONTRAST] = "AutoContrast",
    [MIM_RA_EQUALIZE] = "Equalize",
    [MIM_RA_INVERT] = "Invert",
    [MIM_RA_ROTATE] = "Rotate",
    [MIM_RA_POSTERIZE] = "Posterize",
    [MIM_RA_POSTERIZE_INC] = "PosterizeIncreasing",
    [MIM_RA_SOLARIZE] = "Solarize",
    [MIM_RA_SOLARIZE_INC] = "SolarizeIncreasing",
    [MIM_RA_SOLARIZE_ADD] = "SolarizeAdd",
    [MIM_RA_COLOR] = "Color",
    [MIM_RA_COLOR_INC] = "ColorIncreasing",
    [MIM_RA_CONTRAST] = "Contrast",
    [MIM_RA_CONTRAST_INC] = "ContrastIncreasing",
    [MIM_RA_BRIGHTNESS] = "Brightness",
    [MIM_RA_BRIGHTNESS_INC] = "BrightnessIncreasing",
    [MIM_RA_SHARPNESS] = "Sharpness",
    [MIM_RA_SHARPNESS_INC] = "SharpnessIncreasing",
    [MIM_RA_SHEAR_X] = "ShearX",
    [MIM_RA_SHEAR_Y] = "ShearY",
    [MIM_RA_TRANSLATE_X_REL] = "TranslateXRel",
    [MIM_RA_TRANSLATE_Y_REL] = "TranslateYRel",
};

// timm _RAND_TRANSFORMS and _RAND_INCREASING_TRANSFORMS, in timm's order.
static const int rand_transforms[] = {
    MIM_RA_AUTOCONTRAST, MIM_RA_EQUALIZE, MIM_RA_INVERT, MIM_RA_ROTATE, MIM_RA_POSTERIZE,
    MIM_RA_SOLARIZE, MIM_RA_SOLARIZE_ADD, MIM_RA_COLOR, MIM_RA_CONTRAST, MIM_RA_BRIGHTNESS,
    MIM_RA_SHARPNESS, MIM_RA_SHEAR_X, MIM_RA_SHEAR_Y, MIM_RA_TRANSLATE_X_REL, MIM_RA_TRANSLATE_Y_REL,
};
static const int rand_increasing_transforms[] = {
    MIM_RA_AUTOCONTRAST, MIM_RA_EQUALIZE, MIM_RA_INVERT, MIM_RA_ROTATE, MIM_RA_POSTERIZE_INC,
    MIM_RA_SOLARIZE_INC, MIM_RA_SOLARIZE_ADD, MIM_RA_COLOR_INC, MIM_RA_CONTRAST_INC,
    MIM_RA_BRIGHTNESS_INC, MIM_RA_SHARPNESS_INC, MIM_RA_SHEAR_X, MIM_RA_SHEAR_Y,
    MIM_RA_TRANSLATE_X_REL, MIM_RA_TRANSLATE_Y_REL,
};
#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

const char* mim_randaug_op_name(int op) {
    return op >= 0 && op < MIM_RA_NOPS ? op_names[op] : NULL;
}

int mim_randaug_op_from_name(const char* name) {
    for (int i = 0; name && i < MIM_RA_NOPS; i++)
        if (strcmp(name, op_names[i]) == 0) return i;
    return -1;
}

// The ops whose level_to_arg calls timm's _randomly_negate.
static int op_signed(int op) {
    switch (op) {
    case MIM_RA_ROTATE: case MIM_RA_SHEAR_X: case MIM_RA_SHEAR_Y:
    case MIM_RA_TRANSLATE_X_REL: case MIM_RA_TRANSLATE_Y_REL:
    case MIM_RA_COLOR_INC: case MIM_RA_CONTRAST_INC: case MIM_RA_BRIGHTNESS_INC: case MIM_RA_SHARPNESS_INC:
        return 1;
    default:
        return 0;
    }
}

// ---------------------------------------------------------------- parsing
static void set_ops(mim_randaug* ra) {
    const int* set = ra->increasing ? rand_increasing_transforms : rand_transforms;
    ra->nops = ra->increasing ? NELEM(rand_increasing_transforms) : NELEM(rand_transforms);
    memcpy(ra->ops, set, (size_t)ra->nops * sizeof(int));
}

static int parse_int(const char* s, long lo, long hi, long* out) {
    char* end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int parse_num(const char* s, double lo, double hi, double* out) {
    char* end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int mim_randaug_parse(mim_randaug* out, const char* spec) {
    CHECK(out != NULL);
    memset(out, 0, sizeof *out);
    out->num_layers = 2;
    out->magnitude = LEVEL_DENOM;      // timm's default when no m section
    out->magnitude_std = 0.0;
    out->magnitude_max = LEVEL_DENOM;
    out->prob = 0.5;
    out->increasing = 0;
    out->interp = MIM_RA_BILINEAR;
    out->translate_pct = 0.45;
    out->fill[0] = 124; out->fill[1] = 116; out->fill[2] = 104;
    out->fill_gray = 114;
    if (!spec) return mim_err(MIM_EARG, "RandAugment spec: missing (want e.g. \"rand-m9-mstd0.5-inc1\")");
    if (strncmp(spec, "rand", 4) != 0 || (spec[4] != '\0' && spec[4] != '-'))
        return mim_err(MIM_EARG, "RandAugment spec \"%s\": must start with \"rand\" (e.g. \"rand-m9-mstd0.5-inc1\")", spec);
    char sec[64];
    const char* p = spec + 4;
    while (*p == '-') {
        p++;
        size_t n = strcspn(p, "-");
        if (n == 0 || n >= sizeof sec)
            return mim_err(MIM_EARG, "RandAugment spec \"%s\": %s section", spec, n ? "overlong" : "empty");
        memcpy(sec, p, n);
        sec[n] = 0;
        p += n;
        // timm splits each section at its first digit: key, then value
        size_t k = 0;
        while (sec[k] && !isdigit((unsigned char)sec[k])) k++;
        const char* val = sec + k;
        char key[64];
        memcpy(key, sec, k);
        key[k] = 0;
        if (!*val)
            return mim_err(MIM_EARG, "RandAugment spec \"%s\": section \"%s\" has no number "
                           "(sections: m<int> n<int> mstd<float> mmax<int> p<float> inc<0|1>)", spec, sec);
        long iv;
        double dv;
        if (strcmp(key, "m") == 0) {
            if (!parse_int(val, 0, 1000, &iv)) goto bad;
            out->magnitude = (double)iv;
        } else if (strcmp(key, "n") == 0) {
            if (!parse_int(val, 0, 64, &iv)) goto bad;
            out->num_layers = (int)iv;
        } else if (strcmp(key, "mstd") == 0) {
            if (!parse_num(val, 0.0, HUGE_VAL, &dv)) goto bad;
            out->magnitude_std = dv > 100.0 ? INFINITY : dv;  // timm: > 100 means uniform
        } else if (strcmp(key, "mmax") == 0) {
            if (!parse_int(val, 1, 1000, &iv)) goto bad;
            out->magnitude_max = (double)iv;
        } else if (strcmp(key, "p") == 0) {
            if (!parse_num(val, 0.0, 1.0, &dv)) goto bad;
            out->prob = dv;
        } else if (strcmp(key, "inc") == 0) {
            if (!parse_int(val, 0, 1, &iv)) goto bad;
            out->increasing = (int)iv;
        } else {
            return mim_err(MIM_EARG, "RandAugment spec \"%s\": unknown section \"%s\" "
                           "(known: m<int> n<int> mstd<float> mmax<int> p<float> inc<0|1>; "
                           "timm's w<k> op weights and t<set> are not supported)", spec, sec);
        }
        continue;
    bad:
        return mim_err(MIM_EARG, "RandAugment spec \"%s\": bad value in section \"%s\" "
                       "(m: int 0..1000, n: int 0..64, mstd: number >= 0, mmax: int 1..1000, "
                       "p: number in [0, 1], inc: 0 or 1)", spec, sec);
    }
    if (*p) return mim_err(MIM_EARG, "RandAugment spec \"%s\": sections must be separated by '-'", spec);
    set_ops(out);
    return MIM_OK;
}

size_t mim_randaug_scratch_size(int h, int w, int c) {
    CHECK(h > 0 && w > 0 && c > 0);
    return (size_t)h * (size_t)w * (size_t)c;
}

// ---------------------------------------------------------------- point ops
// ImageOps._lut / Image.point: one 256-entry table per channel.
static void apply_lut(uint8_t* img, size_t npix, int c, uint8_t lut[][256]) {
    for (size_t i = 0; i < npix; i++)
        for (int ch = 0; ch < c; ch++) img[i * c + ch] = lut[ch][img[i * c + ch]];
}

static void histogram(const uint8_t* img, size_t npix, int c, uint64_t hist[][256]) {
    memset(hist, 0, sizeof(uint64_t) * 256 * (size_t)c);
    for (size_t i = 0; i < npix; i++)
        for (int ch = 0; ch < c; ch++) hist[ch][img[i * c + ch]]++;
}

// ImageOps.autocontrast(img) (cutoff 0): per channel, [lo, hi] -> [0, 255]
// with lut[i] = int(i * scale + offset) clipped, in doubles.
static void op_autocontrast(uint8_t* img, size_t npix, int c) {
    uint64_t hist[3][256];
    uint8_t lut[3][256];
    histogram(img, npix, c, hist);
    for (int ch = 0; ch < c; ch++) {
        int lo, hi;
        for (lo = 0; lo < 255 && !hist[ch][lo]; lo++) {}
        for (hi = 255; hi > 0 && !hist[ch][hi]; hi--) {}
        if (hi <= lo) {
            for (int i = 0; i < 256; i++) lut[ch][i] = (uint8_t)i;
            continue;
        }
        double scale = 255.0 / (hi - lo), offset = -lo * scale;
        for (int i = 0; i < 256; i++) {
            int v = (int)(i * scale + offset);  // Python int(): truncation
            lut[ch][i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    apply_lut(img, npix, c, lut);
}

// ImageOps.equalize(img): integer cumulative histogram, step = (n - count of
// the last used level) // 255; lut[i] = (step // 2 + sum_{j<i} h[j]) // step.
// Image.point clips the table to 0..255 (the last level can give 256).
static void op_equalize(uint8_t* img, size_t npix, int c) {
    uint64_t hist[3][256];
    uint8_t lut[3][256];
    histogram(img, npix, c, hist);
    for (int ch = 0; ch < c; ch++) {
        uint64_t total = 0, last = 0;
        int used = 0;
        for (int i = 0; i < 256; i++)
            if (hist[ch][i]) { total += hist[ch][i]; last = hist[ch][i]; used++; }
        uint64_t step = used <= 1 ? 0 : (total - last) / 255;
        if (!step) {
            for (int i = 0; i < 256; i++) lut[ch][i] = (uint8_t)i;
            continue;
        }
        uint64_t n = step / 2;
        for (int i = 0; i < 256; i++) {
            uint64_t v = n / step;
            lut[ch][i] = (uint8_t)(v > 255 ? 255 : v);
            n += hist[ch][i];
        }
    }
    apply_lut(img, npix, c, lut);
}

// Builds one LUT and applies it to every channel.
static void op_point(uint8_t* img, size_t npix, int c, int kind, int arg) {
    uint8_t lut[3][256];
    for (int i = 0; i < 256; i++) {
        int v = i;
        switch (kind) {
        case MIM_RA_INVERT: v = 255 - i; break;
        case MIM_RA_POSTERIZE:  // ImageOps.posterize: keep the top `arg` bits
            v = arg >= 8 ? i : arg <= 0 ? 0 : (i & ~((1 << (8 - arg)) - 1));
            break;
        case MIM_RA_SOLARIZE: v = i < arg ? i : 255 - i; break;   // ImageOps.solarize
        case MIM_RA_SOLARIZE_ADD: v = i < 128 ? (i + arg > 255 ? 255 : i + arg) : i; break;  // timm solarize_add
        default: CHECK(0);
        }
        for (int ch = 0; ch < c; ch++) lut[ch][i] = (uint8_t)v;
    }
    apply_lut(img, npix, c, lut);
}

// ---------------------------------------------------------------- enhance ops
// PIL ImagingBlend(degenerate, img, alpha): alpha is a C float; inside [0, 1]
// a truncating cast, outside it a clip to [0, 255] then the cast.
static inline uint8_t blend(int deg, int src, float alpha) {
    float t = (float)deg + alpha * (float)(src - deg);
    if (alpha >= 0 && alpha <= 1.0) return (uint8_t)t;
    return t <= 0.0f ? 0 : t >= 255.0f ? 255 : (uint8_t)t;
}

// PIL's RGB -> L conversion (Convert.c rgb2l, ITU-R 601-2 in 16.16 fixed point).
static inline int rgb_to_l(const uint8_t* p) {
    return (int)(((uint32_t)p[0] * 19595u + (uint32_t)p[1] * 38470u + (uint32_t)p[2] * 7471u + 0x8000u) >> 16);
}

// ImageEnhance.Color: degenerate = img.convert("L").convert(img.mode); a
// gray image is its own degenerate, so the op leaves it unchanged.
static void op_color(uint8_t* img, size_t npix, int c, float alpha) {
    if (c == 1) return;
    for (size_t i = 0; i < npix; i++) {
        uint8_t* p = img + i * 3;
        int l = rgb_to_l(p);
        for (int ch = 0; ch < 3; ch++) p[ch] = blend(l, p[ch], alpha);
    }
}

// ImageEnhance.Contrast: degenerate = constant int(mean(L) + 0.5).
static void op_contrast(uint8_t* img, size_t npix, int c, float alpha) {
    uint64_t sum = 0;
    for (size_t i = 0; i < npix; i++) sum += (uint64_t)(c == 3 ? rgb_to_l(img + i * 3) : img[i]);
    int mean = (int)((double)sum / (double)npix + 0.5);  // ImageStat: float sum / count
    for (size_t i = 0; i < npix * (size_t)c; i++) img[i] = blend(mean, img[i], alpha);
}

// ImageEnhance.Brightness: degenerate = black.
static void op_brightness(uint8_t* img, size_t npix, int c, float alpha) {
    for (size_t i = 0; i < npix * (size_t)c; i++) img[i] = blend(0, img[i], alpha);
}

// ImageFilter.SMOOTH ((3, 3) kernel [1 1 1; 1 5 1; 1 1 1] / 13) as PIL's
// ImagingFilter3x3: float taps, +0.5 then a truncating clip; the outermost
// rows and columns are copied. Images smaller than 3 x 3 are copied.
static void smooth3x3(uint8_t* dst, const uint8_t* src, int h, int w, int c) {
    size_t row = (size_t)w * c;
    memcpy(dst, src, (size_t)h * row);
    if (h < 3 || w < 3) return;
    const float k1 = 1.0f / 13.0f, k5 = 5.0f / 13.0f;
    const float kern[9] = { k1, k1, k1, k1, k5, k1, k1, k1, k1 };
    const float offset = 0.5f;
    for (int y = 1; y < h - 1; y++) {
        const uint8_t* in_1 = src + (size_t)(y - 1) * row;
        const uint8_t* in0 = src + (size_t)y * row;
        const uint8_t* in1 = src + (size_t)(y + 1) * row;
        uint8_t* out = dst + (size_t)y * row;
        for (int x = 1; x < w - 1; x++) {
            for (int ch = 0; ch < c; ch++) {
                size_t i = (size_t)x * c + ch;
                float ss = offset;
                // KERNEL1x3 rows in PIL's order: y+1 with kernel[0..2], y, then y-1
                ss += (float)in1[i - c] * kern[0] + (float)in1[i] * kern[1] + (float)in1[i + c] * kern[2];
                ss += (float)in0[i - c] * kern[3] + (float)in0[i] * kern[4] + (float)in0[i + c] * kern[5];
                ss += (float)in_1[i - c] * kern[6] + (float)in_1[i] * kern[7] + (float)in_1[i + c] * kern[8];
                out[i] = ss <= 0.0f ? 0 : ss >= 255.0f ? 255 : (uint8_t)ss;
            }
        }
    }
}

// ImageEnhance.Sharpness: degenerate = img.filter(SMOOTH).
static void op_sharpness(uint8_t* img, int h, int w, int c, float alpha, uint8_t* scratch) {
    smooth3x3(scratch, img, h, w, c);
    for (size_t i = 0; i < (size_t)h * w * c; i++) img[i] = blend(scratch[i], img[i], alpha);
}

// ---------------------------------------------------------------- geometric ops
static inline int clampi(int v, int n) { return v < 0 ? 0 : v < n ? v : n - 1; }

// PIL's bicubic (Geometry.c BICUBIC, a = -1), in its operation order.
static inline double cubic(double v1, double v2, double v3, double v4, double d) {
    double p1 = v2;
    double p2 = -v1 + v3;
    double p3 = 2 * (v1 - v2) + v3 - v4;
    double p4 = -v1 + v2 - v3 + v4;
    return p1 + d * (p2 + d * (p3 + d * p4));
}

// Image.transform(size, AFFINE, a, resample, fillcolor) with a bilinear or
// bicubic filter (PIL ImagingGenericTransform + affine_transform): output
// pixel centre (x + .5, y + .5) maps to (a0 x' + a1 y' + a2, a3 x' + a4 y' + a5)
// in the source; outside [0, w) x [0, h) it keeps the fill colour; inside,
// taps beyond the border are clamped (columns, first row) or repeat the
// previous row (later rows), as PIL does.
static void affine(uint8_t* dst, const uint8_t* src, int h, int w, int c, const double a[6],
                   int interp, const uint8_t* fill) {
    size_t row = (size_t)w * c;
    for (int y = 0; y < h; y++) {
        uint8_t* out = dst + (size_t)y * row;
        for (int x = 0; x < w; x++, out += c) {
            double xin = x + 0.5, yin = y + 0.5;
            double xx = a[0] * xin + a[1] * yin + a[2];
            double yy = a[3] * xin + a[4] * yin + a[5];
            if (xx < 0.0 || xx >= w || yy < 0.0 || yy >= h) {
                memcpy(out, fill, (size_t)c);
                continue;
            }
            xx -= 0.5;
            yy -= 0.5;
            int ix = (int)floor(xx), iy = (int)floor(yy);
            double dx = xx - ix, dy = yy - iy;
            if (interp == MIM_RA_BILINEAR) {
                const uint8_t* r0 = src + (size_t)clampi(iy, h) * row;
                const uint8_t* r1 = iy + 1 >= 0 && iy + 1 < h ? src + (size_t)(iy + 1) * row : NULL;
                size_t x0 = (size_t)clampi(ix, w) * c, x1 = (size_t)clampi(ix + 1, w) * c;
                for (int ch = 0; ch < c; ch++) {
                    double v1 = r0[x0 + ch] + (r0[x1 + ch] - r0[x0 + ch]) * dx;
                    double v2 = r1 ? r1[x0 + ch] + (r1[x1 + ch] - r1[x0 + ch]) * dx : v1;
                    v1 = v1 + (v2 - v1) * dy;
                    out[ch] = (uint8_t)v1;
                }
            } else {
                ix--;
                iy--;
                size_t xs[4];
                for (int k = 0; k < 4; k++) xs[k] = (size_t)clampi(ix + k, w) * c;
                for (int ch = 0; ch < c; ch++) {
                    double v[4];
                    for (int k = 0; k < 4; k++) {
                        int yk = iy + k;
                        if (k == 0 || (yk >= 0 && yk < h)) {
                            const uint8_t* r = src + (size_t)(k == 0 ? clampi(yk, h) : yk) * row;
                            v[k] = cubic(r[xs[0] + ch], r[xs[1] + ch], r[xs[2] + ch], r[xs[3] + ch], dx);
                        } else {
                            v[k] = v[k - 1];
                        }
                    }
                    double r = cubic(v[0], v[1], v[2], v[3], dy);
                    out[ch] = r <= 0.0 ? 0 : r >= 255.0 ? 255 : (uint8_t)r;
                }
            }
        }
    }
}

// Python's round(x, 15), which PIL applies to the rotation matrix: correctly
// rounded to 15 decimals then parsed back (glibc's printf and strtod are
// correctly rounded, as CPython's dtoa is).
static double round15(double x) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.15f", x);
    return strtod(buf, NULL);
}

// Image.rotate(degrees, resample, fillcolor=...) with expand=0, centre = image
// centre: PIL's exact transposes for 0 / 180 (and 90 / 270 on square images),
// else the affine transform with PIL's inverse matrix.
static void op_rotate(uint8_t* img, int h, int w, int c, double degrees, int interp,
                      const uint8_t* fill, uint8_t* scratch) {
    double angle = fmod(degrees, 360.0);  // Python float %: sign of the divisor
    if (angle != 0.0) { if (angle < 0) angle += 360.0; } else angle = 0.0;
    size_t n = (size_t)h * w * c, row = (size_t)w * c;
    if (angle == 0.0) return;
    if (angle == 180.0 || ((angle == 90.0 || angle == 270.0) && w == h)) {
        memcpy(scratch, img, n);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int sy, sx;  // source pixel of output (y, x)
                if (angle == 180.0) { sy = h - 1 - y; sx = w - 1 - x; }
                else if (angle == 90.0) { sy = x; sx = w - 1 - y; }   // Transpose.ROTATE_90 (counter-clockwise)
                else { sy = h - 1 - x; sx = y; }                      // ROTATE_270
                memcpy(img + (size_t)y * row + (size_t)x * c, scratch + (size_t)sy * row + (size_t)sx * c, (size_t)c);
            }
        return;
    }
    const double deg_to_rad = M_PI / 180.0;  // CPython math.radians
    double rad = -(angle * deg_to_rad);
    double m[6] = { round15(cos(rad)), round15(sin(rad)), 0.0, round15(-sin(rad)), round15(cos(rad)), 0.0 };
    double cx = w / 2.0, cy = h / 2.0;
    double tx = m[0] * -cx + m[1] * -cy + m[2];
    double ty = m[3] * -cx + m[4] * -cy + m[5];
    m[2] = tx + cx;
    m[5] = ty + cy;
    affine(scratch, img, h, w, c, m, interp, fill);
    memcpy(img, scratch, n);
}

static void op_affine(uint8_t* img, int h, int w, int c, const double m[6], int interp,
                      const uint8_t* fill, uint8_t* scratch) {
    affine(scratch, img, h, w, c, m, interp, fill);
    memcpy(img, scratch, (size_t)h * w * c);
}

// ---------------------------------------------------------------- ops
void mim_randaug_apply_op(const mim_randaug* ra, int op, double magnitude, int negate,
                          uint8_t* img, int h, int w, int c, uint8_t* scratch) {
    CHECK(ra != NULL && img != NULL && h > 0 && w > 0 && (c == 1 || c == 3));
    CHECK(op >= 0 && op < MIM_RA_NOPS && isfinite(magnitude) && fabs(magnitude) <= 1e6);
    size_t npix = (size_t)h * w;
    double lv = magnitude / LEVEL_DENOM;          // timm: level / _LEVEL_DENOM
    int neg = op_signed(op) && negate;
    const uint8_t* fill = c == 3 ? ra->fill : &ra->fill_gray;
    switch (op) {
    case MIM_RA_AUTOCONTRAST: op_autocontrast(img, npix, c); break;
    case MIM_RA_EQUALIZE: op_equalize(img, npix, c); break;
    case MIM_RA_INVERT: op_point(img, npix, c, MIM_RA_INVERT, 0); break;
    case MIM_RA_POSTERIZE: op_point(img, npix, c, MIM_RA_POSTERIZE, (int)(lv * 4)); break;
    case MIM_RA_POSTERIZE_INC: op_point(img, npix, c, MIM_RA_POSTERIZE, 4 - (int)(lv * 4)); break;
    case MIM_RA_SOLARIZE: {
        int t = (int)(lv * 256);
        op_point(img, npix, c, MIM_RA_SOLARIZE, t < 256 ? t : 256);
        break;
    }
    case MIM_RA_SOLARIZE_INC: {
        int t = (int)(lv * 256);
        op_point(img, npix, c, MIM_RA_SOLARIZE, 256 - (t < 256 ? t : 256));
        break;
    }
    case MIM_RA_SOLARIZE_ADD: {
        int add = (int)(lv * 110);
        op_point(img, npix, c, MIM_RA_SOLARIZE_ADD, add < 128 ? add : 128);
        break;
    }
    case MIM_RA_COLOR: case MIM_RA_CONTRAST: case MIM_RA_BRIGHTNESS: case MIM_RA_SHARPNESS:
    case MIM_RA_COLOR_INC: case MIM_RA_CONTRAST_INC: case MIM_RA_BRIGHTNESS_INC: case MIM_RA_SHARPNESS_INC: {
        double f;
        if (op == MIM_RA_COLOR || op == MIM_RA_CONTRAST || op == MIM_RA_BRIGHTNESS || op == MIM_RA_SHARPNESS) {
            f = lv * 1.8 + 0.1;                              // _enhance_level_to_arg
        } else {
            double l = lv * .9;                              // _enhance_increasing_level_to_arg
            f = 1.0 + (neg ? -l : l);
            if (f < 0.1) f = 0.1;
        }
        float alpha = (float)f;                              // PIL blend takes a C float
        if (op == MIM_RA_COLOR || op == MIM_RA_COLOR_INC) op_color(img, npix, c, alpha);
        else if (op == MIM_RA_CONTRAST || op == MIM_RA_CONTRAST_INC) op_contrast(img, npix, c, alpha);
        else if (op == MIM_RA_BRIGHTNESS || op == MIM_RA_BRIGHTNESS_INC) op_brightness(img, npix, c, alpha);
        else op_sharpness(img, h, w, c, alpha, scratch);
        break;
    }
    case MIM_RA_ROTATE: {
        double deg = lv * 30.;
        op_rotate(img, h, w, c, neg ? -deg : deg, ra->interp, fill, scratch);
        break;
    }
    case MIM_RA_SHEAR_X: case MIM_RA_SHEAR_Y: {
        double s = lv * 0.3;
        if (neg) s = -s;
        double mx[6] = { 1, s, 0, 0, 1, 0 }, my[6] = { 1, 0, 0, s, 1, 0 };
        op_affine(img, h, w, c, op == MIM_RA_SHEAR_X ? mx : my, ra->interp, fill, scratch);
        break;
    }
    case MIM_RA_TRANSLATE_X_REL: case MIM_RA_TRANSLATE_Y_REL: {
        double pct = lv * ra->translate_pct;
        if (neg) pct = -pct;
        double mx[6] = { 1, 0, pct * w, 0, 1, 0 }, my[6] = { 1, 0, 0, 0, 1, pct * h };
        op_affine(img, h, w, c, op == MIM_RA_TRANSLATE_X_REL ? mx : my, ra->interp, fill, scratch);
        break;
    }
    default: CHECK(0);
    }
}

double mim_randaug_draw_magnitude(const mim_randaug* ra, mim_rng* rng) {
    double m = ra->magnitude;
    if (isinf(ra->magnitude_std)) m = m * mim_rng_uniform_d(rng);               // random.uniform(0, m)
    else if (ra->magnitude_std > 0) m = m + ra->magnitude_std * mim_rng_normal(rng);  // random.gauss(m, std)
    double hi = ra->magnitude_max > 0 ? ra->magnitude_max : LEVEL_DENOM;
    return m < 0.0 ? 0.0 : m > hi ? hi : m;
}

void mim_randaug_apply(const mim_randaug* ra, mim_rng* rng, uint8_t* img, int h, int w, int c,
                       uint8_t* scratch) {
    CHECK(ra != NULL && rng != NULL && ra->nops > 0 && ra->nops <= MIM_RA_NOPS);
    for (int l = 0; l < ra->num_layers; l++) {
        int op = ra->ops[mim_rng_below(rng, (uint64_t)ra->nops)];     // np.random.choice, replace=True
        if (ra->prob < 1.0 && mim_rng_uniform_d(rng) > ra->prob) continue;
        double m = mim_randaug_draw_magnitude(ra, rng);
        int neg = op_signed(op) ? mim_rng_uniform_d(rng) > 0.5 : 0;   // _randomly_negate
        mim_randaug_apply_op(ra, op, m, neg, img, h, w, c, scratch);
    }
}

// ---------------------------------------------------------------- random erasing
int mim_random_erase_box(mim_rng* rng, int H, int W, double min_area, double max_area,
                         double min_aspect, double max_aspect, mim_erase_box* out) {
    CHECK(H > 0 && W > 0 && out != NULL && min_aspect > 0 && max_aspect >= min_aspect);
    double area = (double)H * (double)W;
    double la = log(min_aspect), lb = log(max_aspect);
    memset(out, 0, sizeof *out);
    for (int attempt = 1; attempt <= 10; attempt++) {
        double t = (min_area + (max_area - min_area) * mim_rng_uniform_d(rng)) * area;
        double a = exp(la + (lb - la) * mim_rng_uniform_d(rng));
        int eh = (int)nearbyint(sqrt(t * a));   // Python round(): half to even
        int ew = (int)nearbyint(sqrt(t / a));
        out->attempts = attempt;
        if (ew < W && eh < H) {
            out->h = eh;
            out->w = ew;
            out->top = (int)mim_rng_below(rng, (uint64_t)(H - eh + 1));   // random.randint(0, H - h)
            out->left = (int)mim_rng_below(rng, (uint64_t)(W - ew + 1));
            out->target_area = t;
            out->aspect = a;
            return 1;
        }
    }
    return 0;
}

int mim_random_erase(float* chw, int c, int h, int w, float prob, mim_rng* rng) {
    CHECK(chw != NULL && c > 0 && h > 0 && w > 0);
    if (prob <= 0.0f || mim_rng_uniform_d(rng) > prob) return 0;
    mim_erase_box b;
    if (!mim_random_erase_box(rng, h, w, 0.02, 1.0 / 3.0, 0.3, 1.0 / 0.3, &b)) return 0;
    // torch.empty((chan, h, w)).normal_(): channel-major fill order
    for (int ch = 0; ch < c; ch++)
        for (int y = b.top; y < b.top + b.h; y++) {
            float* r = chw + ((size_t)ch * h + y) * w;
            for (int x = b.left; x < b.left + b.w; x++) r[x] = mim_rng_normal(rng);
        }
    return 1;
}
