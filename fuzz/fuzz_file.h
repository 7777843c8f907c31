// fuzz_file.h: the fuzz input as a file, for readers that only take a path
// (gzopen, mmap). A memfd holds the bytes; "/proc/self/fd/N" names it, so
// nothing touches the disk and each input costs two syscalls.
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct { int fd; char path[64]; } fuzz_file;

// 0 on success; the caller skips the input otherwise.
static inline int fuzz_file_open(fuzz_file* f, const uint8_t* data, size_t n) {
    f->fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (f->fd < 0) return -1;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(f->fd, data + done, n - done);
        if (w <= 0) { close(f->fd); return -1; }
        done += (size_t)w;
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
    return 0;
}

static inline void fuzz_file_close(fuzz_file* f) { close(f->fd); }
