// tar.h: a bounds-checked tar reader and webdataset sample grouping, plus
// shard-list expansion (brace pattern, glob, list file).
//
// What it reads: POSIX ustar (name + prefix), GNU tar (long names via 'L'
// members, base-256 sizes), pax extended headers ('x': path= and size= are
// honoured, other keys ignored; 'g' global headers skipped). Directories,
// links and other special members are returned with their type so that
// callers can skip them. What it is not: a writer for arbitrary tars (see
// mim_tar_write_member for the small ustar writer `mimscale pack` uses), nor
// a reader for compressed tars.
//
// Every size and offset read from a header is checked against the source
// length before use; a truncated or corrupt archive makes mim_tar_next()
// return MIM_EFORMAT with a message, never read out of bounds.
//
// Webdataset grouping: consecutive members sharing a key form one sample.
// The key is the member path up to the first '.' of its basename, the
// extension the rest ("a/b/000123.jpg" -> key "a/b/000123", ext "jpg").
//
//     mim_tar* t; mim_wds_sample s;
//     if (mim_tar_open_file(&t, "train-000000.tar") < 0) die(mim_err_msg());
//     int rc;
//     while ((rc = mim_wds_next(t, &s)) > 0) { ... s.img_off, s.img_size ... }
//     if (rc < 0) count_truncated_shard();   // samples before it are valid
//     mim_tar_close(t);
#pragma once
#include <stddef.h>
#include <stdint.h>

#define MIM_TAR_NAME_MAX 4096   // longer names are truncated (and flagged)

typedef struct {
    char name[MIM_TAR_NAME_MAX]; // full path: pax path > GNU long name > prefix/name
    uint64_t offset;             // byte offset of the member's data in the source
    uint64_t size;               // data size in bytes
    char type;                   // '0' regular (also '\0', '7'), '5' dir, ... (raw typeflag)
    int name_truncated;          // 1 if name was longer than MIM_TAR_NAME_MAX-1
} mim_tar_member;

typedef struct mim_tar mim_tar;

// Open a tar file (read with pread, buffered) or a memory buffer (not copied;
// it must outlive the reader). Return MIM_OK or a negative MIM_E* code.
int mim_tar_open_file(mim_tar** out, const char* path);
int mim_tar_open_mem(mim_tar** out, const void* data, size_t n);
void mim_tar_close(mim_tar* t);

// Advance to the next member of any type (extension headers are consumed and
// applied, never returned). Returns 1 with *m filled, 0 at the end of the
// archive (two zero blocks, or end of data at a header boundary), or
// MIM_EFORMAT / MIM_EIO when the archive is corrupt or truncated; after an
// error the reader stays at the error.
int mim_tar_next(mim_tar* t, mim_tar_member* m);

// Copy n bytes at absolute source offset off into buf. MIM_EFORMAT if the
// range is outside the source.
int mim_tar_pread(mim_tar* t, uint64_t off, void* buf, size_t n);

// Total source size in bytes and bytes of member data/headers walked so far.
uint64_t mim_tar_source_size(const mim_tar* t);
uint64_t mim_tar_position(const mim_tar* t);

// ---- webdataset samples -------------------------------------------------

enum { MIM_IMG_NONE = 0, MIM_IMG_JPEG = 1, MIM_IMG_PNG = 2, MIM_IMG_WEBP = 3 };

typedef struct {
    char key[MIM_TAR_NAME_MAX];
    uint64_t key_hash;     // mim_key_hash(key)
    int img_format;        // MIM_IMG_* from the extension; NONE if no image member
    uint64_t img_off, img_size;
    int32_t label;         // from key.cls (ASCII decimal), else -1
    int has_txt, has_json;
    uint64_t json_off, json_size;
    int n_members;         // regular members grouped into this sample
} mim_wds_sample;

// Next group of consecutive regular members sharing a key. Returns 1, 0 at
// end, or a negative code as mim_tar_next. When an error follows some
// members of a group, that group is returned first (its members' data are
// in bounds) and the error comes with the next call. Samples without an image member are returned with
// img_format == MIM_IMG_NONE: the caller decides (the indexer skips and
// counts them). A .cls member that does not parse leaves label -1.
int mim_wds_next(mim_tar* t, mim_wds_sample* s);

// Stable 64-bit hash of a sample key (FNV-1a 64 + SplitMix64 finaliser):
// same key, same hash, on every machine and version.
uint64_t mim_key_hash(const char* key, size_t n);

// ---- writing (for pack and tests) ----------------------------------------

// Append one regular ustar member (GNU 'L' long-name member first when the
// name does not fit in 100 bytes). Returns MIM_OK or MIM_EIO.
#include <stdio.h>
int mim_tar_write_member(FILE* f, const char* name, const void* data, uint64_t size);
// Two zero blocks closing the archive.
int mim_tar_write_end(FILE* f);

// ---- shard lists ----------------------------------------------------------

typedef struct {
    char** paths;  // n owned strings
    size_t n;
} mim_shard_list;

// Expand one spec into paths, appending to *l:
//   "@list.txt"                one path per line ('#' comments, blanks skipped)
//   "dir/train-{000000..000009}.tar"   numeric ranges, zero padding kept;
//                                       several braces expand as a product
//   "dir/*.tar"                a glob (sorted; no match is an error)
//   anything else              taken as a path
// Returns MIM_OK or a negative code with a message (bad range, no glob match,
// unreadable list, more than 10M paths).
int mim_shards_expand(mim_shard_list* l, const char* spec);
void mim_shards_free(mim_shard_list* l);
