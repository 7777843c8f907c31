// cli.h: the subcommands of the mimscale CLI; each takes argv with argv[0]
// = its name and returns the process exit status.
#pragma once
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
// fp32 / bf16 (ops.h mim_precision_resolve), prints the choice on stderr
// (rank 0, unless quiet) and a warning when bf16 has to be emulated.
// Returns 0, or 2 after printing an error for a bad value.
int cli_precision(const char* request, int quiet, int* precision, int* backend);

// Exit status of a command that lost more data than --max-skip-frac allows
// (or had none usable): MIM_EDATA from the library.
#define MIM_EXIT_DATA 6
#define MIM_SKIP_HELP "samples that may be lost, as a fraction: unreadable shards and failed reads (0: no shard unreadable, <= 1% of reads failed); past it the command exits 6"
