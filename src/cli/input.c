// input.c: what the training and evaluation commands say at start about
// the data they took (see cli.h): the default data set when --data was not
// given, and the resize when the data's images are not the model's input
// size. Notices only (stderr, rank 0, not with --quiet); the errors about
// the data come from the source when it opens (data/source.h).
#include "cli/cli.h"
#include "core/check.h"
#include "data/decode.h"
#include "data/idx.h"
#include "data/index.h"
#include "train/checkpoint.h"
#include "train/dist.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int loud(int quiet) { return !quiet && mim_dist_get()->rank == 0; }

void cli_data_default_note(int given, const char* path, int quiet) {
    if (given || !loud(quiet)) return;
    if (path && !strcmp(path, MIM_FASHION_MNIST_DIR))
        fprintf(stderr, "data: --data not given, using Fashion-MNIST at %s\n", path);
    else
        fprintf(stderr, "data: --data not given, using %s\n", path ? path : "(none)");
}

int cli_is_folder(const char* path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

// The size of the first image of an index (header only, nothing decoded):
// 0; -1 when it cannot be read; -2 when path is no index (the source will
// say so when it opens).
static int index_first_size(const char* path, int* h, int* w) {
    mim_index* ix;
    if (mim_index_open(&ix, path)) return -2;
    int rc = -1;
    uint8_t* buf = NULL;
    size_t cap = 0, n = 0;
    mim_sample_reader rd;
    mim_sample_reader_init(&rd, ix);
    mim_decoder* d = NULL;
    mim_image_info info;
    if (mim_index_count(ix) > 0 && mim_sample_reader_read(&rd, 0, &buf, &cap, &n) == 0 &&
        mim_decoder_init(&d, MIM_DECODE_MAX_PIXELS) == 0 && mim_decode_begin(d, buf, n, &info) == 0) {
        *h = info.h; *w = info.w;
        rc = 0;
    }
    if (d) { mim_decode_abort(d); mim_decoder_free(d); }
    free(buf);
    mim_sample_reader_free(&rd);
    mim_index_close(ix);
    return rc;
}

void cli_input_note(const char* data, const char* split, int side, const char* why, int quiet) {
    if (side <= 0 || !data || !loud(quiet)) return;
    int h = 0, w = 0;
    if (cli_is_folder(data)) {   // IDX: the header holds the size
        char p[4096];
        int64_t n;
        snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte.gz", data, split ? split : "train");
        if (mim_idx_peek(p, &n, &h, &w) || (h == side && w == side)) return;
        fprintf(stderr, "input: data is %dx%d, resized to %dx%d (%s)\n", h, w, side, side, why);
        return;
    }
    int rc = index_first_size(data, &h, &w);
    if (rc == -2) return;
    if (rc == 0) {
        if (h == side && w == side) return;
        fprintf(stderr, "input: images are %dx%d (the first sample; web images vary), resized and cropped to %dx%d (%s)\n",
                h, w, side, side, why);
    } else {
        fprintf(stderr, "input: images are resized and cropped to %dx%d (%s)\n", side, side, why);
    }
}

int cli_make_parent(const char* flag, const char* file) {
    const char* slash = file ? strrchr(file, '/') : NULL;
    if (!slash || slash == file) return 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - file), file);
    if (mim_ckpt_mkdirs(dir)) {
        fprintf(stderr, "error: %s %s: %s\n", flag, file, mim_err_msg());
        return 1;
    }
    return 0;
}
