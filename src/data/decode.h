// decode.h: image decoding from memory for the loader. JPEG through
// libjpeg-turbo (setjmp error recovery, optional DCT scaling and row-range
// decoding), PNG through libpng's simplified API, WebP (still images) through
// libwebp's simple API. libwebp is opened at run time (dlopen of
// libwebp.so.7), so it is neither a build nor a link dependency; without it
// WebP is refused with MIM_EUNSUPPORTED (counted, not fatal). Output is 8-bit
// interleaved (H, W, C) with C = 1 or 3, whatever the file holds (gray, RGB,
// CMYK/YCCK, palette; alpha is dropped, as PIL's convert("RGB") does).
//
// Two-step use so that the crop can be chosen from the header before any
// pixel is decoded (this is how DCT scaling pays off):
//
//     mim_decoder* d; mim_decoder_init(&d, MIM_DECODE_MAX_PIXELS);
//     mim_image_info info;
//     if (mim_decode_begin(d, buf, n, &info) < 0) skip();          // header only
//     int num = mim_jpeg_pick_scale(&info, crop_w, crop_h, out_w, out_h);
//     if (mim_decode_finish(d, 3, num, row0, row1, &img) < 0) skip();
//
// Not thread-safe per decoder; use one decoder per thread.
#pragma once
#include <stddef.h>
#include <stdint.h>

// Per-sample error codes beyond core/check.h (the loader counts each kind).
enum {
    MIM_ETOOBIG = -20,       // header declares more pixels than the cap (decompression bomb)
    MIM_EUNSUPPORTED = -21,  // recognised but unsupported format (WebP without libwebp)
};

#define MIM_DECODE_MAX_PIXELS ((int64_t)64 * 1024 * 1024)  // 64 MPix default cap

enum { MIM_FMT_UNKNOWN = 0, MIM_FMT_JPEG = 1, MIM_FMT_PNG = 2, MIM_FMT_WEBP = 3 };

typedef struct {
    int format;      // MIM_FMT_*
    int w, h;        // full-size dimensions
    int channels;    // in the file: 1 gray, 3 colour, 4 CMYK or with alpha
} mim_image_info;

typedef struct {
    uint8_t* px;     // (h, w, c), owned; grown by the decoder, reused across calls
    size_t cap;      // capacity of px in bytes
    int w, h, c;     // decoded size (after DCT scaling)
    int row0;        // px row 0 is row row0 of the (scaled) image
    int full_h;      // height of the whole (scaled) image
} mim_image;

typedef struct mim_decoder mim_decoder;

int mim_decoder_init(mim_decoder** out, int64_t max_pixels);
void mim_decoder_free(mim_decoder* d);

// libwebp's decoder version (0x010204 for 1.2.4), or 0 when libwebp is not
// available (WebP then decodes as MIM_EUNSUPPORTED). Thread-safe.
int mim_webp_version(void);

// Sniff the format from magic bytes (not the file extension).
int mim_image_sniff(const uint8_t* buf, size_t n);

// Parse the header of an in-memory image. The buffer must stay valid until
// mim_decode_finish/abort. Returns MIM_OK, MIM_EFORMAT (corrupt),
// MIM_ETOOBIG (w*h over the cap, or w or h over 65535) or MIM_EUNSUPPORTED.
int mim_decode_begin(mim_decoder* d, const uint8_t* buf, size_t n, mim_image_info* info);

// Smallest JPEG scale num (of num/8, num in 1, 2, 4, 8: the SIMD paths) such that a crop of
// crop_w x crop_h full-size pixels still has at least need_w x need_h pixels
// after scaling, so the final resize never upsamples because of the DCT
// scale. 8 for non-JPEG formats or when need_w/need_h are 0.
int mim_jpeg_pick_scale(const mim_image_info* info, double crop_w, double crop_h, int need_w, int need_h);

// Size of the image decoded at scale num/8 (libjpeg rounds up).
void mim_jpeg_scaled_size(const mim_image_info* info, int num, int* w, int* h);

// Decode the image begun with mim_decode_begin at scale num/8 (PNG, WebP: num
// must be 8) into out with `channels` (1 or 3), keeping only rows [row0, row1) of
// the scaled image (row1 <= 0 means all rows; JPEG skips and stops early,
// PNG and WebP decode all then keep the range). Truncated JPEG data is an error
// (MIM_EFORMAT), not grey fill.
int mim_decode_finish(mim_decoder* d, int channels, int num, int row0, int row1, mim_image* out);
// Abandon a begun decode (also done implicitly by the next begin).
void mim_decode_abort(mim_decoder* d);

// Convenience: begin + finish at full size, all rows.
int mim_decode(mim_decoder* d, const uint8_t* buf, size_t n, int channels, mim_image* out);

void mim_image_free(mim_image* img);

// Encode (h, w, c) 8-bit pixels (c = 1 or 3) as a baseline JPEG at quality
// 1..100 into a malloc'd buffer (*out, *n). For pack, tests and benchmarks.
int mim_jpeg_encode(const uint8_t* px, int w, int h, int c, int quality, uint8_t** out, size_t* n);
