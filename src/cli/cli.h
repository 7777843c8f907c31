// cli.h: the subcommands of the mimscale CLI; each takes argv with argv[0]
// = its name and returns the process exit status.
#pragma once
#include "ops/ops.h"
int cmd_pretrain(int argc, char** argv);
int cmd_models(int argc, char** argv);
int cmd_index(int argc, char** argv);
int cmd_subset(int argc, char** argv);
int cmd_pack(int argc, char** argv);
int cmd_knn(int argc, char** argv);
int cmd_linprobe(int argc, char** argv);
int cmd_finetune(int argc, char** argv);
int cmd_study(int argc, char** argv);
int cmd_reconstruct(int argc, char** argv);
int cmd_teacher_check(int argc, char** argv);

// --precision of the training commands (cmd_pretrain.c): resolves auto /
// fp32 / bf16 (model/precision.h mim_precision_resolve), prints the choice on stderr
// (rank 0, unless quiet) and a warning when bf16 has to be emulated.
// Returns 0, or 2 after printing an error for a bad value.
int cli_precision(const char* request, int quiet, mim_precision* precision, mim_bf16_backend* backend);

// Start-up notices about the data (input.c), on stderr from rank 0 unless
// quiet. cli_data_default_note: when --data was not given (given = 0), one
// line naming the data set the default took. cli_input_note: when the
// images of data (IDX folder: its split's header; index: the first
// sample's header) are not side x side, one line saying they are resized,
// and why (e.g. "--img 32"); side 0: the data's own size, nothing to say.
void cli_data_default_note(int given, const char* path, int quiet);
void cli_input_note(const char* data, const char* split, int side, const char* why, int quiet);
// 1 when path is a folder (IDX data), 0 for a file (an index) or nothing.
int cli_is_folder(const char* path);
// Creates the missing folders above output file `file` (mkdir -p); on
// failure prints an error naming flag and returns 1, else 0.
int cli_make_parent(const char* flag, const char* file);

// Exit status of a command that lost more data than --max-skip-frac allows
// (or had none usable): MIM_EDATA from the library.
#define MIM_EXIT_DATA 6
#define MIM_SKIP_HELP "samples that may be lost, as a fraction: unreadable shards and failed reads (0: no shard unreadable, <= 1% of reads failed); past it the command exits 6"
