// fault.c: see fault.h.
#include "core/fault.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long fault_at = -1, fault_count;   // -1: not read yet; 0: off
static int fault_sticky, fault_errno = ENOSPC;

static void fault_init(void) {
    const char* s = getenv("MIM_FAULT_WRITE");
    fault_at = 0;
    if (!s || !*s) return;
    char* end;
    long n = strtol(s, &end, 10);
    if (n <= 0) return;
    if (*end == '+') { fault_sticky = 1; end++; }
    if (!strcmp(end, ":EIO")) fault_errno = EIO;
    else if (*end && strcmp(end, ":ENOSPC")) return;   // malformed: off
    fault_at = n;
}

int mim_fault_write(void) {
    if (__builtin_expect(fault_at < 0, 0)) fault_init();
    if (__builtin_expect(fault_at == 0, 1)) return 0;
    long k = ++fault_count;
    if (k == fault_at || (fault_sticky && k > fault_at)) {
        errno = fault_errno;
        return fault_errno;
    }
    return 0;
}

int mim_retry_wait(int attempt, int max_retries, const char* what, const char* why) {
    if (attempt >= max_retries) return 0;
    const char* env = getenv("MIM_RETRY_WAIT_MS");
    long ms = env && *env ? atol(env) : 1000;
    for (int i = 0; i < attempt && ms < 30000; i++) ms *= 2;
    if (ms > 30000) ms = 30000;
    fprintf(stderr, "\n%s failed: %s\nretry %d of %d in %.1f s\n", what, why, attempt + 1, max_retries, ms / 1e3);
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
    return 1;
}
