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
