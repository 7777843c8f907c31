// results.h: the results of a study as JSON lines (results.jsonl) and CSV.
//
// results.jsonl is append-only: each finished run (ok or failed) adds one
// line with one write(2) on an O_APPEND descriptor followed by fsync, so a
// killed study leaves whole lines only (a torn last line, possible after a
// power loss, is ignored on load and reported). A run retried later appends
// a new line; the last line of an id wins. results.csv is regenerated from
// the loaded rows (write to a temporary file, rename).
#pragma once
#include <cjson/cJSON.h>

typedef struct {
    cJSON** rows;   // last row per id, in the order ids first appear
    int n, cap;
    int lines;      // whole lines read
    int torn;       // lines that did not parse (ignored)
} mim_results;

// Loads path (a missing file is an empty result set). 0 or MIM_EIO / MIM_ENOMEM.
int mim_results_load(mim_results* r, const char* path);
void mim_results_free(mim_results* r);
// The row of id, or NULL.
cJSON* mim_results_find(const mim_results* r, const char* id);
// Takes ownership of row (an object with a string "id"), replacing any
// earlier row of that id in memory (no file I/O).
void mim_results_put(mim_results* r, cJSON* row);

// Appends row as one line to path (created if needed): one write + fsync.
// A last line without its newline (torn) is terminated first. When the
// write or fsync fails (ENOSPC, EIO) the file is cut back to its size before
// the call and MIM_EIO names the file, the run and the errno.
int mim_results_append(const char* path, const cJSON* row);

// Writes the rows as CSV (header = the known columns in a fixed order, then
// any other keys in order of first appearance), atomically.
int mim_results_write_csv(const mim_results* r, const char* path);
