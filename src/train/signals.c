// signals.c: see signals.h. Handlers only set flags and call kill() /
// getppid() / _exit() (async-signal-safe).
#include "train/signals.h"
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_sig, ckpt_req, child, first_from_parent, dup_seen;

// A stop signal sent by our parent (a `study run` forwarding it) may arrive
// next to the same signal sent to us directly (Ctrl-C reaches the whole
// process group; Slurm and systemd signal every process of the job): that
// pair is one request, so one copy from the other source is not counted as
// the second signal.
static void on_stop(int sig, siginfo_t* si, void* uc) {
    (void)uc;
    if (child > 0) kill((pid_t)child, sig);   // the child stops (or, the second time, leaves) too
    int from_parent = si && si->si_code == SI_USER && si->si_pid == getppid();
    if (stop_sig) {
        if (from_parent != first_from_parent && !dup_seen) { dup_seen = 1; return; }
        _exit(128 + sig);   // second signal: leave now
    }
    stop_sig = sig;
    first_from_parent = from_parent;
}

static void on_usr1(int sig) {
    if (child > 0) kill((pid_t)child, sig);
    else ckpt_req = 1;
}

void mim_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_sigaction = on_stop;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGXFSZ, SIG_IGN);
}

int mim_signals_stop_requested(void) { return stop_sig; }

int mim_signals_take_checkpoint(void) {
    if (!ckpt_req) return 0;
    ckpt_req = 0;
    return 1;
}

void mim_signals_reset(void) { stop_sig = 0; ckpt_req = 0; child = 0; first_from_parent = 0; dup_seen = 0; }

void mim_signals_forward_to(int pid) { child = pid; }
