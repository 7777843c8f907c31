// pack.h: turn an ImageFolder tree or an IDX set into webdataset shards
// (key.<ext> + key.cls members, 9-digit sequential keys), the input format of
// `mimscale index`. Shards are written as PREFIX-000000.tar, PREFIX-000001.tar,
// ...; the class names (ImageFolder) go to PREFIX-classes.txt, line i =
// label i.
#pragma once
#include <stdint.h>

typedef struct {
    uint64_t n_samples, n_shards, n_skipped;   // skipped: unreadable or non-image files
    int n_classes;
} mim_pack_stats;

// root/<class>/<file>.{jpg,jpeg,png,webp} (case-insensitive); classes sorted
// by name -> labels 0..; files sorted by name, then shuffled with seed when
// shuffle is set (so shards mix classes). Image bytes are copied unchanged.
int mim_pack_imagefolder(const char* root, const char* prefix, uint64_t per_shard, int shuffle, uint64_t seed,
                         mim_pack_stats* st);

// IDX images (+ labels, may be NULL) -> lossless grayscale PNG members.
int mim_pack_idx(const char* images_path, const char* labels_path, const char* prefix, uint64_t per_shard,
                 mim_pack_stats* st);
