// main.c: `mimscale <command> ...`, dispatching to one file per subcommand.
#include "cli/cli.h"
#include "core/check.h"
#include "train/dist.h"
#include "train/pretrain.h"
#include "train/signals.h"
#include <stdio.h>
#include <string.h>

typedef struct { const char* name; int (*fn)(int, char**); const char* help; } command;

static const command commands[] = {
    {"pretrain", cmd_pretrain, "MAE pre-training (checkpoints, resume, metrics log)"},
    {"models", cmd_models, "list the named ViT configs with parameters and FLOPs"},
    {"index", cmd_index, "scan webdataset shards into a sample index"},
    {"subset", cmd_subset, "write nested random / first / stratified subset files"},
    {"pack", cmd_pack, "ImageFolder or IDX -> webdataset shards"},
    {"knn", cmd_knn, "weighted kNN accuracy of frozen encoder features"},
    {"linprobe", cmd_linprobe, "linear probe (BatchNorm + linear head, LARS) on frozen features"},
    {"finetune", cmd_finetune, "fine-tune the encoder with a linear head (MAE recipe), or train from scratch"},
    {"reconstruct", cmd_reconstruct, "PNG grid of MAE reconstructions (original | masked | output | output + visible)"},
    {"study", cmd_study, "scaling studies: run a grid, report curves and fits"},
    {"teacher-check", cmd_teacher_check, "what the frozen-teacher loader recognises in a safetensors file"},
};

static void usage(void) {
    printf("usage: mimscale <command> [flags]   (mimscale <command> --help for its flags)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        printf("  %-14s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char** argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            if (mim_dist_init(&argc, &argv)) {   // MPI, when started by mpirun / srun
                fprintf(stderr, "error: %s\n", mim_err_msg());
                mim_dist_finalize();
                return 2;
            }
            int rc = commands[i].fn(argc - 1, argv + 1);
            // a rank that fails alone would leave the others in a collective
            // (and itself in MPI_Finalize): end the whole job with its status.
            // Not for the exits every rank decides together (a signal's stop
            // after a checkpoint, a non-finite loss): those finalize cleanly.
            int agreed = rc == MIM_EXIT_STOPPED || rc == MIM_PRETRAIN_NAN;
            if (rc != 0 && !agreed && mim_dist_get()->world > 1) mim_dist_abort(rc);
            mim_dist_finalize();
            return rc;
        }
    fprintf(stderr, "error: unknown command '%s' (see mimscale --help)\n", argv[1]);
    return 2;
}
