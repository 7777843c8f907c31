// results.c: results.jsonl (append-only, one write + fsync per row) and the
// CSV regenerated from it. See results.h.
#include "study/results.h"
#include "core/check.h"
#include "core/fault.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void mim_results_free(mim_results* r) {
    for (int i = 0; i < r->n; i++) cJSON_Delete(r->rows[i]);
    free(r->rows);
    memset(r, 0, sizeof *r);
}

static const char* row_id(const cJSON* row) {
    const cJSON* id = cJSON_GetObjectItemCaseSensitive(row, "id");
    return cJSON_IsString(id) ? id->valuestring : NULL;
}

cJSON* mim_results_find(const mim_results* r, const char* id) {
    for (int i = 0; i < r->n; i++) {
        const char* x = row_id(r->rows[i]);
        if (x && !strcmp(x, id)) return r->rows[i];
    }
    return NULL;
}

void mim_results_put(mim_results* r, cJSON* row) {
    const char* id = row_id(row);
    CHECK(id);
    for (int i = 0; i < r->n; i++) {
        const char* x = row_id(r->rows[i]);
        if (x && !strcmp(x, id)) { cJSON_Delete(r->rows[i]); r->rows[i] = row; return; }
    }
    if (r->n == r->cap) {
        int nc = r->cap ? r->cap * 2 : 64;
        cJSON** nr = realloc(r->rows, sizeof *nr * (size_t)nc);
        CHECK(nr);   // a few pointers; out of memory here is not recoverable
        r->rows = nr; r->cap = nc;
    }
    r->rows[r->n++] = row;
}

int mim_results_load(mim_results* r, const char* path) {
    memset(r, 0, sizeof *r);
    FILE* f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? 0 : mim_err(MIM_EIO, "cannot open %s: %s", path, strerror(errno));
    char* line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        int whole = len > 0 && line[len - 1] == '\n';
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        cJSON* row = whole ? cJSON_Parse(line) : NULL;
        if (!row || !cJSON_IsObject(row) || !row_id(row)) { cJSON_Delete(row); r->torn++; continue; }
        r->lines++;
        mim_results_put(r, row);
    }
    free(line);
    int err = ferror(f);
    fclose(f);
    return err ? mim_err(MIM_EIO, "cannot read %s", path) : 0;
}

int mim_results_append(const char* path, const cJSON* row) {
    char* s = cJSON_PrintUnformatted(row);
    if (!s) return mim_err(MIM_ENOMEM, "out of memory");
    size_t n = strlen(s);
    char* buf = malloc(n + 2);
    if (!buf) { free(s); return mim_err(MIM_ENOMEM, "out of memory"); }
    const char* id = row_id(row);
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int rc = 0;
    if (fd < 0) { rc = mim_err(MIM_EIO, "cannot open %s: %s", path, strerror(errno)); goto out; }
    // A torn last line (no newline) gets its newline in the same write, so
    // the new row starts on a line of its own.
    size_t off = 0;
    struct stat st;
    off_t size0 = -1;
    if (fstat(fd, &st) == 0) size0 = st.st_size;
    if (size0 > 0) {
        char last = '\n';
        if (pread(fd, &last, 1, size0 - 1) == 1 && last != '\n') buf[off++] = '\n';
    }
    memcpy(buf + off, s, n);
    off += n;
    buf[off++] = '\n';
    int e = 0;
    ssize_t w = mim_fault_write() ? -1 : write(fd, buf, off);
    if (w != (ssize_t)off) e = w < 0 ? errno : ENOSPC;   // a short write: the disk filled up
    else if (fsync(fd) != 0) e = errno;
    if (e) {
        // Leave the file as it was (a partial row would read as a torn line
        // and the next append would glue onto it): earlier rows stay intact.
        if (size0 >= 0 && ftruncate(fd, size0) == 0) (void)fsync(fd);
        rc = mim_err(MIM_EIO, "cannot append the row of run %s to %s: %s (the rows before it are intact)",
                     id ? id : "?", path, strerror(e));
    }
    close(fd);
out:
    free(buf);
    free(s);
    return rc;
}

// Known columns first, in this order; other keys follow as they appear.
static const char* const known_cols[] = {
    "id", "study", "kind", "status", "reason", "model", "preset", "patch", "dec_dim", "dec_depth", "dec_heads", "img",
    "in_chans", "target", "strategy", "size", "subset_seed", "seed", "budget_kind", "budget", "batch", "blr", "steps",
    "epochs", "images_seen", "params", "flops_per_image", "flops", "final_loss", "final_loss_avg", "val_loss",
    "knn_top1", "knn_top5", "linprobe_top1", "linprobe_top5", "finetune_top1", "finetune_top5", "finetune_best_top1",
    "scratch_top1", "scratch_top5", "scratch_best_top1", "pretrain_s", "wall_s", "finished_at", NULL};

static void csv_field(FILE* f, const cJSON* v) {
    if (!v || cJSON_IsNull(v)) return;
    if (cJSON_IsNumber(v)) { fprintf(f, "%.10g", v->valuedouble); return; }
    if (cJSON_IsBool(v)) { fputs(cJSON_IsTrue(v) ? "true" : "false", f); return; }
    char* owned = NULL;
    const char* s = cJSON_IsString(v) ? v->valuestring : (owned = cJSON_PrintUnformatted(v));
    if (!s) return;
    if (strpbrk(s, ",\"\n\r")) {
        fputc('"', f);
        for (const char* p = s; *p; p++) { if (*p == '"') fputc('"', f); fputc(*p, f); }
        fputc('"', f);
    } else fputs(s, f);
    free(owned);
}

int mim_results_write_csv(const mim_results* r, const char* path) {
    // Column list: known, then extras in order of first appearance.
    const char** cols = NULL;
    int ncols = 0, cap = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < (pass ? r->n : 1); i++) {
            if (!pass) {
                for (int k = 0; known_cols[k]; k++) {
                    if (ncols == cap) { cap = cap ? cap * 2 : 64; cols = realloc(cols, sizeof *cols * (size_t)cap); CHECK(cols); }
                    cols[ncols++] = known_cols[k];
                }
                continue;
            }
            for (const cJSON* it = r->rows[i]->child; it; it = it->next) {
                int have = 0;
                for (int k = 0; k < ncols && !have; k++) have = !strcmp(cols[k], it->string);
                if (have) continue;
                if (ncols == cap) { cap *= 2; cols = realloc(cols, sizeof *cols * (size_t)cap); CHECK(cols); }
                cols[ncols++] = it->string;
            }
        }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE* f = fopen(tmp, "w");
    if (!f) { free(cols); return mim_err(MIM_EIO, "cannot write %s: %s", tmp, strerror(errno)); }
    for (int k = 0; k < ncols; k++) fprintf(f, "%s%s", k ? "," : "", cols[k]);
    fputc('\n', f);
    for (int i = 0; i < r->n; i++) {
        for (int k = 0; k < ncols; k++) {
            if (k) fputc(',', f);
            csv_field(f, cJSON_GetObjectItemCaseSensitive(r->rows[i], cols[k]));
        }
        fputc('\n', f);
    }
    free(cols);
    int ok = !mim_fault_write() && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    if (fclose(f) != 0 && ok) { ok = 0; e = errno; }
    if (ok && rename(tmp, path) != 0) { ok = 0; e = errno; }
    if (!ok) { unlink(tmp); return mim_err(MIM_EIO, "cannot write %s: %s", path, strerror(e)); }
    return 0;
}
