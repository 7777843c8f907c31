// jsonfile.c: see jsonfile.h.
#include "core/jsonfile.h"
#include "core/check.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mim_json_write_file(const char* path, const cJSON* j) {
    char* txt = cJSON_PrintUnformatted(j);
    if (!txt) return mim_err(MIM_ENOMEM, "out of memory");
    size_t n = strlen(txt), pl = strlen(path);
    char* tmp = malloc(pl + 32);
    if (!tmp) { free(txt); return mim_err(MIM_ENOMEM, "out of memory"); }
    snprintf(tmp, pl + 32, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int ok = fd >= 0;
    ok = ok && write(fd, txt, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    if (fd >= 0) ok &= close(fd) == 0;
    int rc = 0;
    if (!ok || rename(tmp, path)) {
        rc = mim_err(MIM_EIO, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    free(txt);
    return rc;
}

cJSON* mim_json_read_file(const char* path) {
    FILE* f = fopen(path, "rb");
    if (!f) return NULL;
    struct stat st;
    if (fstat(fileno(f), &st) || st.st_size <= 0 || st.st_size > (1 << 24)) { fclose(f); return NULL; }
    char* b = malloc((size_t)st.st_size + 1);
    size_t m = b ? fread(b, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!b) return NULL;
    b[m] = 0;
    cJSON* j = cJSON_Parse(b);
    free(b);
    if (j && !cJSON_IsObject(j)) { cJSON_Delete(j); j = NULL; }
    return j;
}
