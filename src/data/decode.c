// decode.c: JPEG (libjpeg-turbo), PNG (libpng simplified API) and WebP
// (libwebp, loaded at run time) decoding with error recovery and a pixel cap
// (see decode.h).
#include "data/decode.h"
#include "core/check.h"
#include <dlfcn.h>
#include <png.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int truncated;   // premature end of data seen (a warning to libjpeg)
    int corrupt;     // a warning that the entropy-coded data is damaged: libjpeg fills the rest grey
    int in_scan;     // decoding scanlines (warnings during the header are about odd but whole files)
    char msg[JMSG_LENGTH_MAX];
} jerr_mgr;

struct mim_decoder {
    int64_t max_pixels;
    struct jpeg_decompress_struct cinfo;
    jerr_mgr jerr;
    int jpeg_active;   // header read, decompress not finished
    int png_active;
    int webp_active;   // header read (nothing held: the decode is one call)
    png_image png;
    const uint8_t* buf;
    size_t n;
    mim_image_info info;
    uint8_t* row;      // scratch row for CMYK / skipped rows
    size_t row_cap;
};

static void j_error_exit(j_common_ptr c) {
    jerr_mgr* e = (jerr_mgr*)c->err;
    (*c->err->format_message)(c, e->msg);
    longjmp(e->jb, 1);
}

static void j_emit_message(j_common_ptr c, int level) {
    jerr_mgr* e = (jerr_mgr*)c->err;
    if (level < 0) {
        c->err->num_warnings++;
        int code = c->err->msg_code;
        if (code == JWRN_JPEG_EOF) e->truncated = 1;
        // damaged scan data: the decoder resynchronises and paints what it
        // lost grey, a half-image that must count as corrupt (not the benign
        // warnings of odd but complete files, e.g. extraneous bytes)
        if (code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE || code == JWRN_MUST_RESYNC ||
            code == JWRN_NOT_SEQUENTIAL || code == JWRN_BOGUS_PROGRESSION)
            e->corrupt = 1;
        // bytes left over between the last MCU and the next marker: the scan
        // decoded to its end on fewer bytes than it has, i.e. it decoded
        // garbage (an intact scan ends at its marker)
        if (code == JWRN_EXTRANEOUS_DATA && e->in_scan) e->corrupt = 1;
    }
}

int mim_decoder_init(mim_decoder** out, int64_t max_pixels) {
    mim_decoder* d = calloc(1, sizeof *d);
    if (!d) return mim_err(MIM_ENOMEM, "out of memory");
    d->max_pixels = max_pixels > 0 ? max_pixels : MIM_DECODE_MAX_PIXELS;
    d->cinfo.err = jpeg_std_error(&d->jerr.pub);
    d->jerr.pub.error_exit = j_error_exit;
    d->jerr.pub.emit_message = j_emit_message;
    if (setjmp(d->jerr.jb)) { free(d); return mim_err(MIM_ENOMEM, "jpeg init failed"); }
    jpeg_create_decompress(&d->cinfo);
    *out = d;
    return MIM_OK;
}

void mim_decode_abort(mim_decoder* d) {
    if (d->jpeg_active) { jpeg_abort_decompress(&d->cinfo); d->jpeg_active = 0; }
    if (d->png_active) { png_image_free(&d->png); d->png_active = 0; }
    d->webp_active = 0;
}

void mim_decoder_free(mim_decoder* d) {
    if (!d) return;
    mim_decode_abort(d);
    jpeg_destroy_decompress(&d->cinfo);
    free(d->row);
    free(d);
}

void mim_image_free(mim_image* img) { free(img->px); memset(img, 0, sizeof *img); }

// ---- WebP through libwebp, opened with dlopen -----------------------------
// Two entry points of libwebp's stable simple API (unchanged since 0.1),
// declared here so that neither the header nor a link flag is needed: a
// build without libwebp-dev still compiles and links, and WebP decodes
// wherever the runtime library (Debian libwebp7, which PIL also uses) exists.
typedef int (*webp_info_fn)(const uint8_t* data, size_t size, int* w, int* h);
typedef uint8_t* (*webp_rgb_fn)(const uint8_t* data, size_t size, uint8_t* out, size_t out_size, int stride);
typedef int (*webp_version_fn)(void);
static struct { webp_info_fn info; webp_rgb_fn rgb; int version; } webp;
static pthread_once_t webp_once = PTHREAD_ONCE_INIT;

static void webp_load(void) {
    static const char* names[] = { "libwebp.so.7", "libwebp.so" };
    for (size_t i = 0; i < sizeof names / sizeof *names && !webp.rgb; i++) {
        void* h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!h) continue;
        webp_info_fn info = (webp_info_fn)dlsym(h, "WebPGetInfo");
        webp_rgb_fn rgb = (webp_rgb_fn)dlsym(h, "WebPDecodeRGBInto");
        webp_version_fn ver = (webp_version_fn)dlsym(h, "WebPGetDecoderVersion");
        if (info && rgb) { webp.info = info; webp.rgb = rgb; webp.version = ver ? ver() : 0; }
        else dlclose(h);   // kept open on success: the pointers live as long as the process
    }
}

int mim_webp_version(void) {
    pthread_once(&webp_once, webp_load);
    return webp.rgb ? (webp.version ? webp.version : 1) : 0;
}

int mim_image_sniff(const uint8_t* b, size_t n) {
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return MIM_FMT_JPEG;
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return MIM_FMT_PNG;
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) return MIM_FMT_WEBP;
    return MIM_FMT_UNKNOWN;
}

static int check_dims(mim_decoder* d, int64_t w, int64_t h) {
    if (w <= 0 || h <= 0) return mim_err(MIM_EFORMAT, "image has zero size");
    if (w > 65535 || h > 65535 || w * h > d->max_pixels)
        return mim_err(MIM_ETOOBIG, "image %lldx%lld exceeds the pixel cap (%lld)", (long long)w, (long long)h, (long long)d->max_pixels);
    return MIM_OK;
}

int mim_decode_begin(mim_decoder* d, const uint8_t* buf, size_t n, mim_image_info* info) {
    mim_decode_abort(d);
    memset(&d->info, 0, sizeof d->info);
    d->buf = buf; d->n = n;
    int fmt = mim_image_sniff(buf, n);
    if (fmt == MIM_FMT_WEBP && !mim_webp_version())
        return mim_err(MIM_EUNSUPPORTED, "WebP needs libwebp.so.7 at run time (Debian package libwebp7), not found");
    if (fmt == MIM_FMT_UNKNOWN) return mim_err(MIM_EFORMAT, "not a JPEG/PNG/WebP image (bad magic)");
    if (n > (size_t)0x7fffffff) return mim_err(MIM_ETOOBIG, "image file over 2 GiB");
    d->info.format = fmt;
    if (fmt == MIM_FMT_WEBP) {
        int w = 0, h = 0;
        if (!webp.info(buf, n, &w, &h)) return mim_err(MIM_EFORMAT, "webp: bad header");
        int rc = check_dims(d, w, h);
        if (rc < 0) return rc;
        d->info.w = w; d->info.h = h; d->info.channels = 3;
        d->webp_active = 1;
        *info = d->info;
        return MIM_OK;
    }
    if (fmt == MIM_FMT_PNG) {
        memset(&d->png, 0, sizeof d->png);
        d->png.version = PNG_IMAGE_VERSION;
        if (!png_image_begin_read_from_memory(&d->png, buf, n)) {
            int rc = mim_err(MIM_EFORMAT, "png: %s", d->png.message);
            png_image_free(&d->png);
            return rc;
        }
        d->png_active = 1;
        d->info.w = (int)(d->png.width > 0x7fffffff ? 0x7fffffff : d->png.width);
        d->info.h = (int)(d->png.height > 0x7fffffff ? 0x7fffffff : d->png.height);
        d->info.channels = PNG_IMAGE_PIXEL_CHANNELS(d->png.format);
        int rc = check_dims(d, d->png.width, d->png.height);
        if (rc < 0) { mim_decode_abort(d); return rc; }
        *info = d->info;
        return MIM_OK;
    }
    struct jpeg_decompress_struct* c = &d->cinfo;
    d->jerr.truncated = 0;
    d->jerr.corrupt = 0;
    d->jerr.in_scan = 0;
    if (setjmp(d->jerr.jb)) {
        jpeg_abort_decompress(c);
        d->jpeg_active = 0;
        return mim_err(MIM_EFORMAT, "jpeg: %s", d->jerr.msg);
    }
    jpeg_mem_src(c, buf, (unsigned long)n);
    d->jpeg_active = 1;
    jpeg_read_header(c, TRUE);
    int rc = check_dims(d, c->image_width, c->image_height);
    if (rc < 0) { mim_decode_abort(d); return rc; }
    d->info.w = (int)c->image_width; d->info.h = (int)c->image_height;
    d->info.channels = c->num_components;
    *info = d->info;
    return MIM_OK;
}

void mim_jpeg_scaled_size(const mim_image_info* info, int num, int* w, int* h) {
    *w = (int)(((int64_t)info->w * num + 7) / 8);
    *h = (int)(((int64_t)info->h * num + 7) / 8);
}

int mim_jpeg_pick_scale(const mim_image_info* info, double crop_w, double crop_h, int need_w, int need_h) {
    if (info->format != MIM_FMT_JPEG || need_w <= 0 || need_h <= 0) return 8;
    // powers of two only: libjpeg-turbo has SIMD IDCTs for 1/8, 1/4, 1/2 and 1;
    // the other scales use slow generic code and lose to a full decode.
    for (int num = 1; num < 8; num *= 2) {
        // crop size at this scale, measured in scaled pixels
        int sw, sh;
        mim_jpeg_scaled_size(info, num, &sw, &sh);
        double cw = crop_w * sw / info->w, ch = crop_h * sh / info->h;
        if (cw >= need_w && ch >= need_h) return num;
    }
    return 8;
}

static int ensure(uint8_t** p, size_t* cap, size_t n) {
    if (*cap >= n && *p) return 1;
    uint8_t* q = realloc(*p, n ? n : 1);
    if (!q) return 0;
    *p = q; *cap = n;
    return 1;
}

// CMYK (Adobe files store it inverted) -> RGB, as libjpeg-turbo's tjDecompress.
static void cmyk_row(uint8_t* dst, const uint8_t* src, int w, int channels, int inverted) {
    for (int x = 0; x < w; x++) {
        int C = src[4 * x], M = src[4 * x + 1], Y = src[4 * x + 2], K = src[4 * x + 3];
        if (!inverted) { C = 255 - C; M = 255 - M; Y = 255 - Y; K = 255 - K; }
        int r = C * K / 255, g = M * K / 255, b = Y * K / 255;
        if (channels == 3) { dst[3 * x] = (uint8_t)r; dst[3 * x + 1] = (uint8_t)g; dst[3 * x + 2] = (uint8_t)b; }
        else dst[x] = (uint8_t)((r * 19595 + g * 38470 + b * 7471 + 32768) >> 16);
    }
}

// PIL's RGB -> L (ITU-R 601-2 luma, the fixed-point form PIL uses).
static inline uint8_t luma(const uint8_t* p) { return (uint8_t)((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 32768) >> 16); }

// Decoded in the file's own layout (gray or RGB, with alpha if it has any;
// palettes expanded), then alpha dropped and channels converted as PIL's
// convert('RGB') / convert('L') do: gray replicated, RGB to luma. libpng's
// own alpha removal would composite on a background instead. 16-bit files go
// through libpng's sRGB reduction, not PIL's top-byte truncation: a small
// difference, on files that web crawls rarely hold.
static int finish_png(mim_decoder* d, int channels, int num, int row0, int row1, mim_image* out) {
    if (num != 8) { mim_decode_abort(d); return mim_err(MIM_EARG, "png has no scaled decode"); }
    uint32_t ff = d->png.format;
    uint32_t fmt = (ff & PNG_FORMAT_FLAG_COLOR) | (ff & PNG_FORMAT_FLAG_ALPHA);   // 8-bit, not color-mapped
    int nc = (int)PNG_IMAGE_SAMPLE_CHANNELS(fmt);
    d->png.format = fmt;
    size_t w = d->png.width, h = d->png.height, bytes, native;
    int direct = nc == channels;
    if (!mim_mul_ok(w * h, (size_t)channels, &bytes) || !mim_mul_ok(w * h, (size_t)nc, &native) ||
        !ensure(&out->px, &out->cap, bytes) || (!direct && !ensure(&d->row, &d->row_cap, native))) {
        mim_decode_abort(d);
        return mim_err(MIM_ENOMEM, "png: out of memory for %zux%zu", w, h);
    }
    uint8_t* dst = direct ? out->px : d->row;
    int ok = png_image_finish_read(&d->png, NULL, dst, (png_int_32)(w * (size_t)nc), NULL);
    if (!ok) {
        int rc = mim_err(MIM_EFORMAT, "png: %s", d->png.message);
        mim_decode_abort(d);
        return rc;
    }
    d->png_active = 0;
    png_image_free(&d->png);
    if (!direct) {
        int color = (fmt & PNG_FORMAT_FLAG_COLOR) != 0;
        for (size_t i = 0; i < w * h; i++) {
            const uint8_t* q = d->row + i * (size_t)nc;
            uint8_t* o = out->px + i * (size_t)channels;
            if (channels == 3) { if (color) { o[0] = q[0]; o[1] = q[1]; o[2] = q[2]; } else o[0] = o[1] = o[2] = q[0]; }
            else o[0] = color ? luma(q) : q[0];
        }
    }
    if (row1 <= 0 || row1 > (int)h) row1 = (int)h;
    if (row0 < 0) row0 = 0;
    if (row0 > row1) row0 = row1;
    if (row0 > 0) memmove(out->px, out->px + (size_t)row0 * w * (size_t)channels, (size_t)(row1 - row0) * w * (size_t)channels);
    out->w = (int)w; out->h = row1 - row0; out->c = channels; out->row0 = row0; out->full_h = (int)h;
    return MIM_OK;
}

// Whole image as RGB (alpha dropped, as PIL's convert('RGB') does), then the
// row range is kept; gray output by PIL's ITU-R 601-2 luma.
static int finish_webp(mim_decoder* d, int channels, int num, int row0, int row1, mim_image* out) {
    d->webp_active = 0;
    if (num != 8) return mim_err(MIM_EARG, "webp has no scaled decode");
    size_t w = (size_t)d->info.w, h = (size_t)d->info.h, bytes;
    if (!mim_mul_ok(w * h, 3, &bytes)) return mim_err(MIM_ENOMEM, "webp: %zux%zu too big", w, h);
    uint8_t** dst = channels == 3 ? &out->px : &d->row;
    size_t* cap = channels == 3 ? &out->cap : &d->row_cap;
    if (!ensure(dst, cap, bytes) || (channels == 1 && !ensure(&out->px, &out->cap, w * h)))
        return mim_err(MIM_ENOMEM, "webp: out of memory for %zux%zu", w, h);
    if (!webp.rgb(d->buf, d->n, *dst, bytes, (int)(w * 3)))
        return mim_err(MIM_EFORMAT, "webp: decode failed (corrupt, truncated or animated)");
    if (channels == 1)
        for (size_t i = 0; i < w * h; i++) out->px[i] = luma(d->row + 3 * i);
    if (row1 <= 0 || row1 > (int)h) row1 = (int)h;
    if (row0 < 0) row0 = 0;
    if (row0 > row1) row0 = row1;
    size_t rowb = w * (size_t)channels;
    if (row0 > 0) memmove(out->px, out->px + (size_t)row0 * rowb, (size_t)(row1 - row0) * rowb);
    out->w = (int)w; out->h = row1 - row0; out->c = channels; out->row0 = row0; out->full_h = (int)h;
    return MIM_OK;
}

__attribute__((noinline)) static int jpeg_rows(mim_decoder* d, int channels, int num, int row0, int row1, mim_image* out);

// setjmp lives here, in a frame that modifies nothing after it.
__attribute__((noinline)) static int jpeg_guarded(mim_decoder* d, int channels, int num, int row0, int row1, mim_image* out) {
    if (setjmp(d->jerr.jb)) {
        jpeg_abort_decompress(&d->cinfo);
        d->jpeg_active = 0;
        return mim_err(MIM_EFORMAT, "jpeg: %s", d->jerr.msg);
    }
    return jpeg_rows(d, channels, num, row0, row1, out);
}

int mim_decode_finish(mim_decoder* d, int channels, int num, int row0, int row1, mim_image* out) {
    CHECK(channels == 1 || channels == 3);
    CHECK(num >= 1 && num <= 8);
    if (d->png_active) return finish_png(d, channels, num, row0, row1, out);
    if (d->webp_active) return finish_webp(d, channels, num, row0, row1, out);
    if (!d->jpeg_active) return mim_err(MIM_EARG, "decode_finish without a successful decode_begin");
    return jpeg_guarded(d, channels, num, row0, row1, out);
}

// The body of mim_decode_finish for JPEG; libjpeg errors longjmp to its caller.
static int jpeg_rows(mim_decoder* d, int channels, int num, int row0, int row1, mim_image* out) {
    struct jpeg_decompress_struct* c = &d->cinfo;
    int cmyk = c->jpeg_color_space == JCS_CMYK || c->jpeg_color_space == JCS_YCCK;
    if (cmyk) c->out_color_space = JCS_CMYK;
    else c->out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    c->scale_num = (unsigned)num; c->scale_denom = 8;
    c->dct_method = JDCT_ISLOW;   // what PIL uses: parity over speed of IFAST
    d->jerr.in_scan = 1;
    jpeg_start_decompress(c);
    int W = (int)c->output_width, H = (int)c->output_height, oc = c->output_components;
    if (row1 <= 0 || row1 > H) row1 = H;
    if (row0 < 0) row0 = 0;
    if (row0 > row1) row0 = row1;
    size_t rowb = (size_t)W * (size_t)channels, bytes;
    if (!mim_mul_ok(rowb, (size_t)(row1 - row0 > 0 ? row1 - row0 : 1), &bytes) || !ensure(&out->px, &out->cap, bytes) ||
        !ensure(&d->row, &d->row_cap, (size_t)W * (size_t)oc)) {
        jpeg_abort_decompress(c); d->jpeg_active = 0;
        return mim_err(MIM_ENOMEM, "jpeg: out of memory for %dx%d", W, H);
    }
    if (row0 > 0) {
        JDIMENSION skipped = jpeg_skip_scanlines(c, (JDIMENSION)row0);
        if ((int)skipped != row0) { jpeg_abort_decompress(c); d->jpeg_active = 0; return mim_err(MIM_EFORMAT, "jpeg: skip failed"); }
    }
    while ((int)c->output_scanline < row1) {
        int y = (int)c->output_scanline - row0;
        JSAMPROW rp = cmyk ? d->row : out->px + (size_t)y * rowb;
        if (jpeg_read_scanlines(c, &rp, 1) != 1) break;
        if (cmyk) cmyk_row(out->px + (size_t)y * rowb, d->row, W, channels, c->saw_Adobe_marker);
        if (d->jerr.truncated) break;
    }
    int truncated = d->jerr.truncated || (int)c->output_scanline < row1;
    if (c->output_scanline == c->output_height && !truncated) jpeg_finish_decompress(c);
    else jpeg_abort_decompress(c);   // early stop after the rows we need
    d->jpeg_active = 0;
    if (truncated || d->jerr.truncated) return mim_err(MIM_EFORMAT, "jpeg: premature end of data (truncated file)");
    if (d->jerr.corrupt) return mim_err(MIM_EFORMAT, "jpeg: corrupt scan data (the image would decode partly grey)");
    out->w = W; out->h = row1 - row0; out->c = channels; out->row0 = row0; out->full_h = H;
    return MIM_OK;
}

int mim_decode(mim_decoder* d, const uint8_t* buf, size_t n, int channels, mim_image* out) {
    mim_image_info info;
    int rc = mim_decode_begin(d, buf, n, &info);
    if (rc < 0) return rc;
    return mim_decode_finish(d, channels, 8, 0, 0, out);
}

int mim_jpeg_encode(const uint8_t* px, int w, int h, int c, int quality, uint8_t** out, size_t* n) {
    CHECK(c == 1 || c == 3);
    struct jpeg_compress_struct ci;
    jerr_mgr e;
    ci.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = j_error_exit;
    e.pub.emit_message = j_emit_message;
    unsigned char* mem = NULL;
    unsigned long len = 0;
    if (setjmp(e.jb)) {
        jpeg_destroy_compress(&ci);
        free(mem);
        return mim_err(MIM_EFORMAT, "jpeg encode: %s", e.msg);
    }
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, &mem, &len);
    ci.image_width = (JDIMENSION)w; ci.image_height = (JDIMENSION)h;
    ci.input_components = c; ci.in_color_space = c == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)ci.next_scanline * w * c);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    *out = mem; *n = len;
    return MIM_OK;
}
