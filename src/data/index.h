// index.h: the sample index, a compact memory-mapped file listing every
// sample of a set of webdataset shards, so that sample i is found in O(1)
// without scanning or holding the data set in memory.
//
// Build once (`mimscale index`), then open anywhere:
//
//     mim_index_stats st;
//     mim_index_build("data.idx", paths, n_paths, NULL, &st);  // scans, no decode
//     mim_index* ix; mim_index_open(&ix, "data.idx");
//     const mim_index_record* r = mim_index_get(ix, i);       // O(1)
//     mim_sample_reader rd; mim_sample_reader_init(&rd, ix);
//     mim_sample_reader_read(&rd, i, &buf, &cap, &n);         // image bytes
//
// File layout (little endian, every section 32-byte aligned):
//   mim_index_header (256 bytes)
//   shard table at shard_table_off:
//       uint64 first[n_shards + 1]   first sample of each shard (records are
//                                    in shard order); first[n_shards] = n_samples
//       uint64 name_off[n_shards + 1] offsets into the string blob
//       char   blob[]                NUL-terminated shard paths
//   records at records_off: n_samples x mim_index_record (32 bytes each)
//   json table at json_table_off (format 2, optional: only when some sample
//       has a key.json member): n_samples x mim_index_json (8 bytes each),
//       where sample i's img2dataset metadata lies in its shard. Entries of
//       samples without the MIM_REC_HAS_JSON flag are zero.
// So a 700M-sample index is 700M x 32 B = 22.4 GB plus the shard table, and
// 700M x 8 B = 5.6 GB more when the shards carry key.json; it is mapped,
// never read whole. All counts are 64-bit.
//
//   class list at classes_off (format 3, optional): classes_len bytes, the
//       class names one per line, line i = label i (from pack's
//       PREFIX-classes.txt, the shards' classes.txt or `index --classes`),
//       ending the file.
// Versions: format 1 had no json table (its header bytes where
// json_table_off now lies were zero); it still opens, and only the
// metadata-driven subset strategies refuse it, asking for a rebuild.
// Format 3 adds the class list and a content hash in the header (a hash
// of every record's key hash, size and label, in order: what a subset is
// bound to); formats 1 and 2 open, their content hash computed on open.
//
// Shard paths are stored as absolute paths (realpath at build time) so the
// index can be used from any working directory; if a stored path does not
// exist when reading, the basename is looked up next to the index file (so a
// directory of shards + index can be moved together).
#pragma once
#include <stddef.h>
#include <stdint.h>

#define MIM_INDEX_MAGIC "MIMIDX\0\1"
#define MIM_INDEX_VERSION 3       // written; 1 to 3 are read

typedef struct {
    uint64_t offset;    // byte offset of the image data in its shard
    uint64_t key_hash;  // mim_key_hash(key): stable identity of the sample
    uint32_t shard;     // index into the shard table
    uint32_t size;      // image bytes (members >= 4 GiB are refused at build)
    int32_t label;      // from key.cls, or -1
    uint8_t format;     // MIM_IMG_JPEG / PNG / WEBP
    uint8_t flags;      // MIM_REC_HAS_JSON (located in the json table) | MIM_REC_HAS_TXT
    uint16_t reserved;  // 0
} mim_index_record;     // 32 bytes

enum { MIM_REC_HAS_JSON = 1, MIM_REC_HAS_TXT = 2 };

// Where a sample's key.json member lies, relative to its image: tar member
// data starts on 512-byte blocks, so the distance is a whole number of
// blocks and fits 32 bits for any sane shard (+-1 TiB).
typedef struct {
    int32_t rel_blocks; // json offset = image offset + 512 * rel_blocks
    uint32_t size;      // json bytes
} mim_index_json;       // 8 bytes

// Pack a json member location; 0 when it cannot be represented (not on a
// block boundary relative to the image, too far, empty, or >= 4 GiB): the
// sample is then indexed without metadata.
int mim_index_json_pack(uint64_t img_off, uint64_t json_off, uint64_t json_size, mim_index_json* out);

// What a build saw. Skipped samples are counted, never fatal.
typedef struct {
    uint64_t n_samples;     // samples indexed
    uint64_t n_members;     // tar members walked (all types)
    uint64_t n_no_image;    // groups without a .jpg/.jpeg/.png/.webp member
    uint64_t n_empty;       // image member of 0 bytes
    uint64_t n_oversize;    // image member >= 4 GiB
    uint64_t n_bad_shards;  // shards cut short by corruption/truncation (samples before it kept)
    uint64_t n_unreadable;  // shards that could not be opened
    uint64_t n_labelled;    // samples with a label
    int64_t n_labels;       // max label + 1 (0: unlabelled)
    uint64_t bytes;         // shard bytes scanned
    double seconds;         // wall time of the build
    uint64_t n_json;        // samples whose key.json is in the json table (format 2; reads 0 in format 1)
} mim_index_stats;          // fields only ever appended: format 1 headers keep their meaning

typedef struct {
    char magic[8];
    uint32_t version, record_size;     // MIM_INDEX_VERSION, 32
    uint64_t n_samples, n_shards;
    uint64_t shard_table_off, records_off, file_size;
    mim_index_stats stats;             // as built
    uint64_t json_table_off;           // 0: no json table (always 0 in format 1)
    uint64_t classes_off, classes_len; // format 3: the class list (0: none)
    uint64_t content_hash;             // format 3: mim_index_content_hash (0 in formats 1, 2)
    uint8_t reserved[256 - 88 - sizeof(mim_index_stats)];
} mim_index_header;

typedef struct {
    int n_threads;   // shards scanned in parallel (<= 0: OpenMP default)
    int progress;    // 1: progress line on stderr; 0: quiet; -1: only if stderr is a tty
    const char* classes;   // class list file (line i = label i); NULL: PREFIX-classes.txt of the first
                           // shard (pack's, for PREFIX-000000.tar), else classes.txt beside it, else none
} mim_index_build_opts;

// Scan the shards (no decoding) and write the index atomically (tmp + rename).
// Unreadable or corrupt shards are counted in *stats, not fatal; I/O errors on
// the output are. stats may be NULL; opts NULL means defaults (progress -1).
// When the shards hold no sample at all, no file is written (nothing to map,
// and an empty index only fails later, far from the cause) and the call
// returns MIM_ENOTFOUND with *stats filled, so the caller can say why.
int mim_index_build(const char* out_path, char* const* shards, size_t n_shards,
                    const mim_index_build_opts* opts, mim_index_stats* stats);

// Low-level writer (used by the build, by pack and by synthetic benchmarks):
// records must be added in shard order.
typedef struct mim_index_writer mim_index_writer;
int mim_index_writer_open(mim_index_writer** out, const char* path, char* const* shards, size_t n_shards);
int mim_index_writer_add(mim_index_writer* w, const mim_index_record* r, size_t n);
// As mim_index_writer_add, with json[k] the location of r[k]'s key.json
// (read only where r[k].flags has MIM_REC_HAS_JSON; json may be NULL when no
// record of the call has it). The json table is written only if some record
// of the whole index has the flag.
int mim_index_writer_add_json(mim_index_writer* w, const mim_index_record* r, const mim_index_json* json, size_t n);
// Finalise (header, fsync, rename) and free. stats may be NULL.
int mim_index_writer_close(mim_index_writer* w, const mim_index_stats* stats);
// The class list written with the index (text, line i = label i); copied.
int mim_index_writer_set_classes(mim_index_writer* w, const char* text, size_t len);
void mim_index_writer_abort(mim_index_writer* w);

typedef struct mim_index mim_index;

// Map and validate an index file (magic, version, every section in bounds).
// Formats 1 and 2 are read; a newer one is refused, naming both versions.
int mim_index_open(mim_index** out, const char* path);
void mim_index_close(mim_index* ix);

uint64_t mim_index_count(const mim_index* ix);
uint64_t mim_index_n_shards(const mim_index* ix);
const mim_index_header* mim_index_header_get(const mim_index* ix);
// Record i (CHECKs i < count).
const mim_index_record* mim_index_get(const mim_index* ix, uint64_t i);
// Path of shard s as it resolves now (see the note on moved directories).
const char* mim_index_shard_path(const mim_index* ix, uint32_t s);
// Shard s holds samples [first(s), first(s+1)).
uint64_t mim_index_shard_first(const mim_index* ix, uint32_t s);
// 1 if the index has a json table (format 2, and some sample has key.json).
int mim_index_has_json(const mim_index* ix);
// Location of sample i's key.json in its shard: 1 with *off, *size set; 0 if
// the sample has none (or the index has no json table).
int mim_index_json_get(const mim_index* ix, uint64_t i, uint64_t* off, uint32_t* size);

// Reads sample bytes with a small per-reader cache of open shard files. One
// reader per thread; not thread-safe itself.
#define MIM_READER_FDS 8
typedef struct {
    const mim_index* ix;
    int fd[MIM_READER_FDS];
    uint32_t shard[MIM_READER_FDS];
    uint64_t used[MIM_READER_FDS];
    uint64_t tick;
} mim_sample_reader;

void mim_sample_reader_init(mim_sample_reader* rd, const mim_index* ix);
void mim_sample_reader_free(mim_sample_reader* rd);
// Read sample i's image into *buf (grown with realloc as needed; *cap its
// capacity), *n its size. Returns MIM_OK, MIM_EIO (shard unreadable or
// short: a per-sample error to skip and count) or MIM_ENOMEM.
int mim_sample_reader_read(mim_sample_reader* rd, uint64_t i, uint8_t** buf, size_t* cap, size_t* n);
// Read sample i's key.json the same way. MIM_ENOTFOUND when it has none.
int mim_sample_reader_read_json(mim_sample_reader* rd, uint64_t i, uint8_t** buf, size_t* cap, size_t* n);

// The class list (one name a line, line i = label i), *len its bytes; NULL
// when the index has none.
const char* mim_index_classes(const mim_index* ix, size_t* len);
// Stable hash of the index's content: every record's key hash, size and
// label in order, and the shard count. Stored in format 3 headers, computed
// (one pass over the records) for older ones. Never 0.
uint64_t mim_index_content_hash(const mim_index* ix);
// Evaluation data must label classes as its training data does: MIM_OK when
// the index files train_path and eval_path carry the same class list (or
// either carries none, or either path is not an index file: nothing to
// compare), else MIM_EDATA naming the first difference.
int mim_index_classes_check(const char* train_path, const char* eval_path);

// One-line summary of stats ("50000 samples, 0 without image, ...").
void mim_index_stats_format(const mim_index_stats* s, char* out, size_t cap);
