// fault.h: I/O failure injection for tests, and the retry policy of writers
// that may meet a full disk.
//
// Injection: the environment variable MIM_FAULT_WRITE="N[+][:ENOSPC|:EIO]"
// makes the Nth write of the process that goes through mim_fault_write()
// fail (and with "+", every later one too) with that errno (ENOSPC when not
// given). Counted writes: safetensors files (checkpoints), the `latest`
// pointer, results.jsonl rows, results.csv and teacher-cache records
// (train/tcache.h). Unset (production), the hook
// is one predictable branch per write call. `study run` does not pass the
// variable on to the commands it runs, so it aims at the runner's writes.
//
// Retry: writers given --io-retries N try a failed write N more times,
// waiting 1, 2, 4 ... (at most 30) seconds between tries (MIM_RETRY_WAIT_MS
// overrides the first wait, for tests).
#pragma once

// 0 to go ahead with the write; else an errno value the caller must treat as
// the write's failure (errno is set to it too).
int mim_fault_write(void);

// After failed attempt `attempt` (0-based) of `max_retries`: 1 if the caller
// should try again (a line naming what failed and why was printed to stderr,
// then the wait), 0 to give up.
int mim_retry_wait(int attempt, int max_retries, const char* what, const char* why);
