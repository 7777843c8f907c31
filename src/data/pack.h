// pack.h: turn an ImageFolder tree or an IDX set into webdataset shards
// (key.<ext> + key.cls members, 9-digit sequential keys), the input format of
// `mimscale index`. Shards are written as PREFIX-000000.tar, PREFIX-000001.tar,
// ...; the class names (ImageFolder) go to PREFIX-classes.txt, line i =
// label i.
#pragma once
#include <stdint.h>

typedef struct {
    uint64_t n_samples, n_shards, n_skipped;   // skipped: n_unreadable + n_not_image + n_unlabelled
    uint64_t n_unreadable;  // image files that could not be read (lost samples)
    uint64_t n_not_image;   // other files (annotations, boxes): not samples
    uint64_t n_unlabelled;  // --labels-from: images the annotation file does not name (lost samples)
    int n_classes;
    char first_unreadable[512];   // the first lost image and why ("" if none)
} mim_pack_stats;

typedef struct {
    uint64_t per_shard;       // samples per shard (> 0)
    int shuffle;              // shuffle the samples (so shards mix classes)
    uint64_t seed;
    const char* classes;      // class list file, line i = label i (NULL: the class folders sorted by
                              // name, or with labels_from the annotation's class names sorted). Pack an
                              // evaluation split with the training split's PREFIX-classes.txt, so that
                              // a class missing from one split cannot shift the labels of the others.
    const char* labels_from;  // annotation file, "IMAGE CLASS ..." per line (whitespace-separated, e.g.
                              // Tiny-ImageNet's val_annotations.txt): labels images found anywhere under
                              // root by file name, instead of class folders
} mim_pack_opts;

// root/<class>/**/<file>.{jpg,jpeg,png,webp} (case-insensitive; images at
// any depth below the class folder, e.g. <class>/images/*.JPEG), or with
// labels_from root/**/<file> labelled by the annotation file. Files sorted by
// path, then shuffled with seed when shuffle is set. Image bytes are copied
// unchanged. The class list goes to PREFIX-classes.txt. No usable image at
// all is an error (nothing written); lost images (unreadable, unlabelled)
// are counted in *st for the caller's verdict.
int mim_pack_imagefolder_ex(const char* root, const char* prefix, const mim_pack_opts* o, mim_pack_stats* st);
// mim_pack_imagefolder_ex with the class folders' own sorted names.
int mim_pack_imagefolder(const char* root, const char* prefix, uint64_t per_shard, int shuffle, uint64_t seed,
                         mim_pack_stats* st);

// IDX images (+ labels, may be NULL) -> lossless grayscale PNG members.
int mim_pack_idx(const char* images_path, const char* labels_path, const char* prefix, uint64_t per_shard,
                 mim_pack_stats* st);
