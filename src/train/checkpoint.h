// checkpoint.h: model weights and trainer state on disk.
//
// Model files are safetensors with the PyTorch MAE state_dict names and
// shapes (they load with safetensors.torch.load_file into models_mae.py),
// plus __metadata__ describing the config (keys img_h, img_w, in_chans,
// patch, embed_dim, depth, num_heads, decoder_embed_dim, decoder_depth,
// decoder_num_heads, mlp_ratio, mask_ratio, norm_pix_loss, model, and the
// reconstruction target: target (pixel, pixel-norm, hog, teacher),
// target_dim (decoder_pred width, 0 for pixels), loss (mse, cos, smooth-l1);
// files without the last three read as pixel targets with mse).
//
// A training run's folder holds checkpoints as subfolders
//   RUN/ckpt-<step>/model.safetensors   weights (as above)
//   RUN/ckpt-<step>/optim.safetensors   AdamW moments exp_avg.<name>,
//                                       exp_avg_sq.<name>; metadata: step,
//                                       adam_t, data position, run args (JSON)
//   RUN/ckpt-<step>/state.json          {"elapsed_s": training seconds so far}
//                                       (kept apart so that the two weight
//                                       files stay bit-identical across resumes)
//   RUN/latest                          "ckpt-<step>\n", replaced atomically
// Each file is written atomically; `latest` moves only after both files of
// the new checkpoint are durable, so a crash at any moment leaves the
// previous checkpoint loadable.
#pragma once
#include <stdint.h>
#include "model/head.h"
#include "model/mae.h"
#include "train/optim.h"

// Writes m's weights to PATH. extra_meta: n_extra key/value pairs added to
// the metadata (may be NULL).
int mim_ckpt_save_model(const char* path, const mim_mae* m, const char* const* extra_meta, int n_extra);
// Reads the config stored in a model file's metadata (for commands that take
// only a checkpoint). Returns MIM_EFORMAT if the metadata is missing.
int mim_ckpt_read_config(const char* path, mim_config* cfg);
// Loads every tensor of m's table from PATH (shape-checked; fp32/bf16/f16
// accepted). With allow_missing_decoder, decoder tensors absent from the file
// are left as they are (encoder-only checkpoints).
int mim_ckpt_load_model(const char* path, mim_mae* m, int allow_missing_decoder);

typedef struct {
    int64_t step;          // optimizer steps completed
    int64_t data_epoch;    // data position: epoch and sample index within it
    int64_t data_index;
    char args_json[8192];  // the run's settings, to check a resume matches
    char engine_json[1024];// engine-specific state (fine-tuning: accuracies so far); "" for none
    double elapsed_s;      // training seconds up to this step, summed over resumes (the metrics' time_s);
                           // 0 from checkpoints written before it was kept
} mim_train_state;

// Parameters trained beside the model that are not part of its table (the
// fine-tuning head), saved in the same checkpoint: weights in
// model.safetensors, moments exp_avg.<name> / exp_avg_sq.<name> in
// optim.safetensors. Their optimizer steps with the model's (same adam_t).
typedef struct {
    const mim_param* table;
    int n;
    float* params;
    mim_adamw* opt;
} mim_ckpt_extra;

// Saves a checkpoint of a run into RUN (see above) and moves `latest`.
// keep > 0 prunes older ckpt-* folders beyond the newest `keep` (and any
// newer than this one: leftovers of a timeline the run resumed before).
// When a write fails (full disk, I/O error) `latest` and the checkpoint it
// names are untouched, a folder this call created is removed again, and the
// error names the file and the errno.
int mim_ckpt_save_run(const char* run_dir, const mim_mae* m, const mim_adamw* opt,
                      const mim_train_state* st, int keep);
// The same with an extra parameter table (may be NULL).
int mim_ckpt_save_run_ex(const char* run_dir, const mim_mae* m, const mim_adamw* opt, const mim_ckpt_extra* x,
                         const mim_train_state* st, int keep);
// Creates folder path and any missing parents (mkdir -p), for run folders
// and the folders of output files. 0, or MIM_EIO naming the part that could
// not be created and why.
int mim_ckpt_mkdirs(const char* path);
// Removes temp files (NAME.tmp.PID) that writers killed mid-write left in RUN
// and its ckpt-* folders, when process PID no longer exists. Returns how
// many were removed.
int mim_ckpt_clean_stale(const char* run_dir);
// Loads RUN/latest into m, opt and st. MIM_ENOTFOUND if RUN has none.
int mim_ckpt_load_run(const char* run_dir, mim_mae* m, mim_adamw* opt, mim_train_state* st);
// The same with the extra table x saved by mim_ckpt_save_run_ex (may be NULL).
int mim_ckpt_load_run_ex(const char* run_dir, mim_mae* m, mim_adamw* opt, const mim_ckpt_extra* x, mim_train_state* st);
// On resume: drops the rows of a metrics.jsonl whose "step" is past `step`
// (they will be redone); rows without a step are dropped too. Only rank 0
// of an MPI job touches the file (other ranks return at once), so every rank
// may call it.
void mim_ckpt_metrics_truncate(const char* path, int64_t step);

// Fine-tuning: loads the encoder tensors of a pre-training checkpoint at
// path into m, built without a decoder (decoder tensors in the file are
// ignored); pos_embed is resized bicubically (model/vit.h) when m's patch
// grid differs from the checkpoint's ck_gh x ck_gw. 0 or MIM_E* with the path.
int mim_ckpt_load_encoder(mim_mae* m, const char* path, int ck_gh, int ck_gw);
// Writes the fine-tuned classifier as one safetensors file: the encoder
// (without norm.* under global_pool, as MAE drops it), the head (fc_norm
// only under global_pool) and the architecture metadata, num_classes and
// global_pool. 0 or MIM_E*.
int mim_ckpt_save_classifier(const char* path, const mim_mae* m, const mim_cls_head* h, int global_pool);
