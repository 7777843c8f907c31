// signals.c: see signals.h. Handlers only set flags (async-signal-safe).
#include "train/signals.h"
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_sig, ckpt_req;

static void on_stop(int sig) {
    if (stop_sig) _exit(128 + sig);   // second signal: leave now
    stop_sig = sig;
}

static void on_usr1(int sig) { (void)sig; ckpt_req = 1; }

void mim_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
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

void mim_signals_reset(void) { stop_sig = 0; ckpt_req = 0; }
