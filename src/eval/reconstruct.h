// reconstruct.h: MAE's visualisation: a PNG grid with one row per image and
// four columns: original | masked (removed patches grey) | reconstruction |
// reconstruction with the visible patches pasted back.
#pragma once
#include <stdint.h>

typedef struct {
    const char* ckpt;          // a model file with a decoder (MAE / mimscale names)
    const char* data, *split;  // source of images (IDX folder or index), eval transform
    const char* out;           // PNG path
    int n;                     // images (rows)
    float mask_ratio;          // < 0: the checkpoint's
    int scale;                 // pixel zoom of each cell (0: auto, cells >= 96 px)
    uint64_t seed;             // masking noise
} mim_reconstruct_args;

// 0, or a negative MIM_E* code with mim_err_msg() (e.g. a checkpoint
// without decoder, an unwritable path). *loss receives the mean masked loss
// of the shown images.
int mim_reconstruct_run(const mim_reconstruct_args* a, float* loss);
