// test_layers.c: the layers of src/ include only downwards (STYLE.md):
//     core < ops < data < model < train < eval < study < cli
// Every `#include "LAYER/..."` in src/L/*.{c,h} must name a layer at or
// below L. A violation names the file, the line and both layers. The scan
// is checked first on planted lines, so it cannot pass by reading nothing.
#include "testutil.h"
#include <dirent.h>

static const char* order[] = {"core", "ops", "data", "model", "train", "eval", "study", "cli"};
#define NLAYERS 8

static int rank_of(const char* name, size_t n) {
    for (int i = 0; i < NLAYERS; i++)
        if (strlen(order[i]) == n && !strncmp(order[i], name, n)) return i;
    return -1;
}

// Violations in text (the file's contents) of a file of layer `me`; the
// first is described in why. Counts every project include seen in *seen.
static int scan(const char* text, int me, const char* file, char* why, size_t cap, int* seen) {
    int bad = 0, line = 1;
    for (const char* p = text; *p; p++) {
        if (*p == '\n') { line++; continue; }
        if ((p == text || p[-1] == '\n') && !strncmp(p, "#include \"", 10)) {
            const char* q = p + 10;
            const char* slash = strchr(q, '/');
            const char* end = strchr(q, '"');
            if (!slash || !end || slash > end) continue;   // a file of the same folder
            int r = rank_of(q, (size_t)(slash - q));
            if (r < 0) continue;
            (*seen)++;
            if (r > me) {
                if (!bad) snprintf(why, cap, "%s:%d includes %.*s (%s is above %s)", file, line, (int)(end - q), q,
                                   order[r], order[me]);
                bad++;
            }
        }
    }
    return bad;
}

int main(void) {
    char why[1024] = "";
    int seen = 0;
    // the scanner on planted lines: one violation, one allowed include
    int b = scan("#include \"core/check.h\"\n#include \"train/dist.h\"\n", rank_of("model", 5), "planted.c", why,
                 sizeof why, &seen);
    TU_CHECK(b == 1 && seen == 2 && strstr(why, "planted.c:2 includes train/dist.h"), "a planted upward include is "
             "caught: %s", why);

    char root[2048];
    if (tu_repo_root(root, sizeof root, "src/core/check.h")) { tu_report(0, "cannot find src/ (set MIM_REPO)"); return 1; }
    int files = 0, total = 0, nbad = 0;
    char first[1024] = "";
    seen = 0;
    for (int L = 0; L < NLAYERS; L++) {
        char dir[2600];
        snprintf(dir, sizeof dir, "%s/src/%s", root, order[L]);
        DIR* d = opendir(dir);
        if (!d) { tu_report(0, "cannot open %s", dir); continue; }
        struct dirent* e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (n < 3 || (strcmp(e->d_name + n - 2, ".c") && strcmp(e->d_name + n - 2, ".h"))) continue;
            char path[3000], rel[300];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            snprintf(rel, sizeof rel, "src/%s/%s", order[L], e->d_name);
            uint8_t* text = NULL;
            if (!tu_slurp(path, &text)) continue;
            files++;
            char w[1024];
            int k = scan((const char*)text, L, rel, w, sizeof w, &seen);
            if (k && !first[0]) snprintf(first, sizeof first, "%s", w);
            nbad += k;
        }
        closedir(d);
        total++;
    }
    TU_CHECK(files > 50 && seen > 100, "scanned %d files in %d layers, %d project includes", files, total, seen);
    TU_CHECK(nbad == 0, "no include points up the layers: %d violation(s)%s%s", nbad, nbad ? ", first " : "", first);
    tu_free_all();
    return tu_summary("test_layers", 0, NULL);
}
