// idx.h: the IDX format of MNIST / Fashion-MNIST (gzip or plain), loaded
// whole into memory (60k 28x28 images are 47 MB). Not for web-scale data:
// that is the shard pipeline's job.
#pragma once
#include <stdint.h>

typedef struct {
    int64_t n;            // images
    int h, w;             // pixels
    uint8_t* pixels;      // (n, h, w), row-major
    int32_t* labels;      // (n) or NULL
} mim_idx;

// Loads IMAGES_PATH (idx3-ubyte, ".gz" or plain) and, if LABELS_PATH is
// non-NULL, its labels (idx1-ubyte) whose count must match. Returns 0 or
// MIM_EIO / MIM_EFORMAT / MIM_ENOMEM with a reason naming the file.
int mim_idx_load(mim_idx* out, const char* images_path, const char* labels_path);
// Loads "<dir>/<split>-images-idx3-ubyte.gz" + labels, split "train" or
// "t10k" (the file names of Debian's dataset-fashion-mnist).
int mim_idx_load_dir(mim_idx* out, const char* dir, const char* split);
void mim_idx_free(mim_idx* d);
// The image count and size of an images file from its header alone.
int mim_idx_peek(const char* images_path, int64_t* n, int* h, int* w);

// Where Debian's dataset-fashion-mnist installs the files.
#define MIM_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
