// signals.h: graceful stops for long runs. SIGTERM and SIGINT (Slurm
// preemption, Ctrl-C) ask the run to finish its step, write a checkpoint and
// exit with MIM_EXIT_STOPPED; a second one exits at once (status 128+sig).
// SIGUSR1 asks for a checkpoint without stopping. SIGXFSZ is ignored so that
// a file-size limit surfaces as a write error (EFBIG) the writer reports.
// A process that runs the work in a child (`study run`) names it with
// mim_signals_forward_to: the three signals then go on to the child too
// (SIGUSR1 only to it), so the child checkpoints and stops while the parent
// waits for it. The same signal arriving twice, once forwarded by the parent
// and once directly (Ctrl-C to the process group, Slurm signalling the whole
// job), counts as one.
#pragma once

#define MIM_EXIT_STOPPED 4   // stopped by a signal after writing a checkpoint

void mim_signals_install(void);
int mim_signals_stop_requested(void);      // nonzero once SIGTERM/SIGINT arrived
int mim_signals_take_checkpoint(void);     // nonzero (once) after each SIGUSR1
void mim_signals_reset(void);              // clear the flags (tests)
void mim_signals_forward_to(int pid);      // child to pass signals on to (0: none)
