// featcache.h: an on-disk cache of the frozen features that `knn` and
// `linprobe` extract, so a study that runs both on one checkpoint runs the
// encoder over the probe and eval sets once, not twice.
//
//   char key[1024]; mim_featcache_key(key, sizeof key, &common);
//   if (mim_featcache_load(path, key, &tr, &ev) == 0) ...  // hit
//   else { extract; mim_featcache_save(path, key, &tr, &ev); }
//
// The file is safetensors (train_x (n, D) F32, train_y (n) I32, eval_x,
// eval_y; the layout of `--save-features`) written atomically, with a
// __metadata__ "key" that names the feature mode and its source (ckpt: the
// checkpoint's path, size, mtime and the pooling; pixels: the geometry;
// random-init: preset, patch, geometry, seed, pooling), both data sets,
// their splits and subsets. A file whose key differs (another mode or
// checkpoint, a rewritten checkpoint, another seed, other data) is a miss
// and is overwritten; a malformed file is a miss with a warning. Not a
// general feature store.
#pragma once
#include <stddef.h>
#include "eval/features.h"

// Writes the cache key of a's features (mode and source), data and pooling
// into key (cap bytes). 0, or MIM_EIO when a checkpoint cannot be stat'ed,
// MIM_EARG when the key does not fit.
int mim_featcache_key(char* key, size_t cap, const mim_eval_common* a);
// 0: tr and ev hold the cached features (free with mim_features_free);
// 1: miss (no file, another key, or a malformed file: warning on stderr).
int mim_featcache_load(const char* path, const char* key, mim_features* tr, mim_features* ev);
// Writes tr and ev under key (NULL: no key, a plain feature file for
// --save-features) to path atomically. 0 or MIM_EIO / MIM_EARG.
int mim_featcache_save(const char* path, const char* key, const mim_features* tr, const mim_features* ev);
