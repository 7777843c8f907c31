// jsonfile.h: the one writer and reader of a command's result record, a
// JSON object on one line in a file (`knn --out`, `linprobe --out`,
// `finetune --result`, read back by the study runner). The writer is atomic
// (a temporary file, fsync, rename), so a reader sees the whole record or
// none: a file that exists is a finished command's result.
//
//   cJSON* j = cJSON_CreateObject(); ... mim_json_write_file("knn.json", j);
//   cJSON* r = mim_json_read_file("knn.json");    // NULL: missing or unreadable
#pragma once
#include <cjson/cJSON.h>

// 0, or MIM_EIO / MIM_ENOMEM with mim_err_msg() (nothing left at path then).
int mim_json_write_file(const char* path, const cJSON* j);
// The object in path, or NULL when the file is missing, empty or not one
// JSON object (no error is set: "no result" is an answer).
cJSON* mim_json_read_file(const char* path);
