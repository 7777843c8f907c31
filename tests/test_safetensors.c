// test_safetensors.c: round trip, fp32 conversion, atomic writes and a
// malformed-input suite for src/core/safetensors.c, plus (when python3 with
// torch is present) a cross-check against the independent reader/writer in
// tests/ref/st_ref.py (without torch that part is skipped: exit 77 unless a
// check failed; MIM_REQUIRE_TORCH=1 makes it a failure).
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int py_skipped;   // the python cross-check could not run
static char dir[64]; // per-run scratch directory

static char* path_in(const char* name) {
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static int count_tmp_files(void) {
    int n = 0;
    DIR* d = opendir(dir);
    for (struct dirent* e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static uint8_t* slurp(const char* p, size_t* len) {
    FILE* f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t* b = malloc(*len + 1);
    if (fread(b, 1, *len, f) != *len) { free(b); b = NULL; }
    fclose(f);
    return b;
}

static uint16_t bf16_of(float f) { uint32_t u; memcpy(&u, &f, 4); return (uint16_t)(u >> 16); }

// ---------------------------------------------------------------------------
// round trip: f32, bf16, i64, scalar f64, 4-d f16, empty u8, with metadata

static float a32[6] = {-1.5f, 0, 1, 2.25f, 1e-30f, 3e38f};   // (2, 3)
static uint16_t b16[4];                                        // (4,)
static int64_t c64[3] = {INT64_MIN, -1, INT64_MAX};            // (3,)
static double s64 = 3.141592653589793;                         // ()
static uint16_t h16[2 * 1 * 2 * 3] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x8000,
                                      0x7c00, 0xfc00, 0x7e00, 0x3555, 0x0400, 0x0000}; // (2, 1, 2, 3)
static const float h16_f[12] = {1, -2, 65504, 5.9604644775390625e-08f, 6.0975551605224609e-05f, -0.0f,
                                INFINITY, -INFINITY, NAN, 0.333251953125f, 6.103515625e-05f, 0};

static int write_sample(const char* p) {
    for (int i = 0; i < 4; i++) b16[i] = bf16_of((float)i * 0.5f - 1);
    mim_st_entry e[] = {
        {"a.weight", MIM_F32, 2, {2, 3}, a32},
        {"b", MIM_BF16, 1, {4}, b16},
        {"c", MIM_I64, 1, {3}, c64},
        {"scalar", MIM_F64, 0, {0}, &s64},
        {"h4d", MIM_F16, 4, {2, 1, 2, 3}, h16},
        {"empty", MIM_U8, 2, {0, 5}, NULL},
    };
    const char* meta[] = {"format", "pt", "step", "1234"};
    return mim_st_write(p, e, 6, meta, 2);
}

static void test_roundtrip(void) {
    printf("-- round trip\n");
    const char* p = path_in("rt.safetensors");
    int rc = write_sample(p);
    TU_CHECK(rc == 0, "write %s: %d %s", p, rc, rc ? mim_err_msg() : "");
    size_t len = 0;
    uint8_t* raw = slurp(p, &len);
    uint64_t hlen = 0;
    for (int i = 7; raw && i >= 0; i--) hlen = hlen << 8 | raw[i];
    TU_CHECK(raw && (8 + hlen) % 8 == 0, "data section starts 8-byte aligned (header %llu bytes)", (unsigned long long)hlen);
    TU_CHECK(raw && raw[8] == '{' && !memcmp(raw + 8, "{\"__metadata__\":{\"format\":\"pt\"", 30), "header begins with metadata in order");
    free(raw);

    mim_st* st = NULL;
    rc = mim_st_open(&st, p);
    TU_CHECK(rc == 0, "open: %d %s", rc, rc ? mim_err_msg() : "");
    if (rc) return;
    TU_CHECK(mim_st_count(st) == 6, "6 tensors");
    const char* order[] = {"a.weight", "b", "c", "scalar", "h4d", "empty"};
    int in_order = 1;
    for (int i = 0; i < 6; i++) in_order &= !strcmp(mim_st_get(st, i)->name, order[i]);
    TU_CHECK(in_order, "tensors in file order");
    TU_CHECK(mim_st_meta(st, "format") && !strcmp(mim_st_meta(st, "format"), "pt") &&
             mim_st_meta(st, "step") && !strcmp(mim_st_meta(st, "step"), "1234") && !mim_st_meta(st, "nope"),
             "metadata values");
    const mim_st_tensor* t = mim_st_find(st, "a.weight");
    TU_CHECK(t && t->dtype == MIM_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->numel == 6 &&
             t->nbytes == 24 && !memcmp(t->data, a32, 24), "a.weight F32 (2, 3) bytes equal");
    t = mim_st_find(st, "b");
    TU_CHECK(t && t->dtype == MIM_BF16 && t->ndim == 1 && t->nbytes == 8 && !memcmp(t->data, b16, 8), "b BF16 (4,)");
    t = mim_st_find(st, "c");
    TU_CHECK(t && t->dtype == MIM_I64 && t->numel == 3 && !memcmp(t->data, c64, 24), "c I64 extremes");
    t = mim_st_find(st, "scalar");
    TU_CHECK(t && t->dtype == MIM_F64 && t->ndim == 0 && t->numel == 1 && t->nbytes == 8 && !memcmp(t->data, &s64, 8),
             "scalar F64 shape [] numel 1");
    t = mim_st_find(st, "h4d");
    TU_CHECK(t && t->ndim == 4 && t->shape[0] == 2 && t->shape[1] == 1 && t->shape[2] == 2 && t->shape[3] == 3 &&
             t->numel == 12 && !memcmp(t->data, h16, 24), "h4d F16 (2, 1, 2, 3)");
    t = mim_st_find(st, "empty");
    TU_CHECK(t && t->dtype == MIM_U8 && t->numel == 0 && t->nbytes == 0, "empty U8 (0, 5)");
    TU_CHECK(!mim_st_find(st, "missing") && !mim_st_find(st, ""), "find of absent names gives NULL");
    mim_st_close(st);

    // Zero tensors, no metadata.
    p = path_in("empty.safetensors");
    rc = mim_st_write(p, NULL, 0, NULL, 0);
    st = NULL;
    int rc2 = rc ? rc : mim_st_open(&st, p);
    TU_CHECK(rc == 0 && rc2 == 0 && mim_st_count(st) == 0 && !mim_st_meta(st, "x"), "file with no tensors");
    mim_st_close(st);
}

// ---------------------------------------------------------------------------
// mim_st_read_f32

static void test_read_f32(void) {
    printf("-- read_f32\n");
    mim_st* st = NULL;
    int rc = mim_st_open(&st, path_in("rt.safetensors"));
    TU_CHECK(rc == 0, "open");
    if (rc) return;
    float out[12];
    int64_t s23[] = {2, 3}, s32[] = {3, 2}, s4[] = {4}, s3[] = {3}, s4d[] = {2, 1, 2, 3};
    rc = mim_st_read_f32(st, "a.weight", out, 2, s23);
    TU_CHECK(rc == 0 && !memcmp(out, a32, 24), "F32 copied exactly");
    rc = mim_st_read_f32(st, "b", out, 1, s4);
    TU_CHECK(rc == 0 && out[0] == -1 && out[1] == -0.5f && out[2] == 0 && out[3] == 0.5f, "BF16 -> f32");
    rc = mim_st_read_f32(st, "scalar", out, 0, NULL);
    TU_CHECK(rc == 0 && out[0] == (float)s64, "F64 scalar -> f32 (%.9g)", out[0]);
    rc = mim_st_read_f32(st, "h4d", out, 4, s4d);
    int same = rc == 0;
    for (int i = 0; same && i < 12; i++)
        same = isnan(h16_f[i]) ? isnan(out[i]) : (out[i] == h16_f[i] && signbit(out[i]) == signbit(h16_f[i]));
    TU_CHECK(same, "F16 -> f32: normals, max, subnormals, +-0, +-inf, nan");

    mim_err(0, "%s", "");
    rc = mim_st_read_f32(st, "a.weight", out, 2, s32);
    TU_CHECK(rc == MIM_ESHAPE && strstr(mim_err_msg(), "[2, 3]") && strstr(mim_err_msg(), "[3, 2]"),
             "shape mismatch: MIM_ESHAPE naming both shapes (%s)", mim_err_msg());
    rc = mim_st_read_f32(st, "a.weight", out, 1, s3);
    TU_CHECK(rc == MIM_ESHAPE, "ndim mismatch: MIM_ESHAPE (%s)", mim_err_msg());
    rc = mim_st_read_f32(st, "c", out, 1, s3);
    TU_CHECK(rc == MIM_ESHAPE && strstr(mim_err_msg(), "I64"), "integer dtype: MIM_ESHAPE (%s)", mim_err_msg());
    rc = mim_st_read_f32(st, "nope", out, 1, s3);
    TU_CHECK(rc == MIM_ENOTFOUND && strstr(mim_err_msg(), "nope"), "absent: MIM_ENOTFOUND (%s)", mim_err_msg());
    mim_st_close(st);
}

// ---------------------------------------------------------------------------
// writer: argument errors and atomicity

static void test_write(void) {
    printf("-- writer\n");
    float x[2] = {1, 2};
    const char* p = path_in("args.safetensors");
    mim_st_entry dup[] = {{"w", MIM_F32, 1, {1}, x}, {"w", MIM_F32, 1, {1}, x + 1}};
    TU_CHECK(mim_st_write(p, dup, 2, NULL, 0) == MIM_EARG, "duplicate names: MIM_EARG (%s)", mim_err_msg());
    const char* dmeta[] = {"k", "1", "k", "2"};
    TU_CHECK(mim_st_write(p, dup, 1, dmeta, 2) == MIM_EARG, "duplicate metadata keys: MIM_EARG (%s)", mim_err_msg());
    mim_st_entry reserved[] = {{"__metadata__", MIM_F32, 1, {1}, x}};
    TU_CHECK(mim_st_write(p, reserved, 1, NULL, 0) == MIM_EARG, "name __metadata__: MIM_EARG (%s)", mim_err_msg());
    mim_st_entry neg[] = {{"w", MIM_F32, 1, {-2}, x}};
    TU_CHECK(mim_st_write(p, neg, 1, NULL, 0) == MIM_EARG, "negative dim: MIM_EARG (%s)", mim_err_msg());
    mim_st_entry many[] = {{"w", MIM_F32, MIM_ST_MAX_DIMS + 1, {1}, x}};
    TU_CHECK(mim_st_write(p, many, 1, NULL, 0) == MIM_EARG, "too many dims: MIM_EARG (%s)", mim_err_msg());
    TU_CHECK(access(p, F_OK) != 0 && count_tmp_files() == 0, "argument errors leave no file");

    // Missing directory: MIM_EIO naming the path, nothing left behind.
    char bad[300];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.safetensors", dir);
    mim_st_entry one[] = {{"w", MIM_F32, 1, {2}, x}};
    int rc = mim_st_write(bad, one, 1, NULL, 0);
    TU_CHECK(rc == MIM_EIO && strstr(mim_err_msg(), bad) && strstr(mim_err_msg(), strerror(ENOENT)),
             "missing directory: MIM_EIO (%s)", mim_err_msg());
    TU_CHECK(count_tmp_files() == 0 && access(path_in("no"), F_OK) != 0, "missing directory leaves nothing behind");

    // PATH is a directory: the temp file is written, rename fails, temp removed.
    const char* pd = path_in("isdir.safetensors");
    mkdir(pd, 0755);
    rc = mim_st_write(pd, one, 1, NULL, 0);
    struct stat sb;
    TU_CHECK(rc == MIM_EIO && strstr(mim_err_msg(), "rename"), "rename failure: MIM_EIO (%s)", mim_err_msg());
    TU_CHECK(count_tmp_files() == 0 && !stat(pd, &sb) && S_ISDIR(sb.st_mode), "rename failure: temp removed, PATH untouched");
    rmdir(pd);

    // Replacing an existing, larger file gives exactly the new file.
    p = path_in("replace.safetensors");
    static float big[4096];
    mim_st_entry e_big[] = {{"big", MIM_F32, 2, {64, 64}, big}};
    rc = mim_st_write(p, e_big, 1, NULL, 0);
    float y[3] = {7, 8, 9};
    mim_st_entry e_small[] = {{"small", MIM_F32, 1, {3}, y}};
    int rc2 = mim_st_write(p, e_small, 1, NULL, 0);
    mim_st* st = NULL;
    int rc3 = rc || rc2 ? -1 : mim_st_open(&st, p);
    float out[3] = {0};
    int64_t s3[] = {3};
    TU_CHECK(rc3 == 0 && mim_st_count(st) == 1 && !mim_st_find(st, "big") &&
             mim_st_read_f32(st, "small", out, 1, s3) == 0 && !memcmp(out, y, 12),
             "existing file replaced whole (%s)", rc3 ? mim_err_msg() : "");
    TU_CHECK(count_tmp_files() == 0, "no temp files left in %s", dir);
    mim_st_close(st);

    mim_err(0, "%s", "");
    rc = mim_st_open(&st, path_in("does-not-exist.safetensors"));
    TU_CHECK(rc == MIM_EIO && st == NULL && strstr(mim_err_msg(), "does-not-exist"), "open missing file: MIM_EIO (%s)", mim_err_msg());
    rc = mim_st_open(&st, dir);
    TU_CHECK(rc == MIM_EIO && st == NULL, "open a directory: MIM_EIO (%s)", mim_err_msg());
}

// ---------------------------------------------------------------------------
// malformed input

// 8-byte length + json + data_len bytes of data (0xAB).
static uint8_t* make_st(const char* json, size_t json_len, size_t data_len, size_t* len) {
    *len = 8 + json_len + data_len;
    uint8_t* b = malloc(*len);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)json_len >> (8 * i));
    memcpy(b + 8, json, json_len);
    memset(b + 8 + json_len, 0xAB, data_len);
    return b;
}

// Expects mim_st_open_mem to fail on buf with a message.
static int rejects(const void* buf, size_t len, int* code) {
    mim_err(0, "%s", "");
    mim_st* st = (mim_st*)1;
    *code = mim_st_open_mem(&st, buf, len);
    int ok = *code < 0 && st == NULL && mim_err_msg()[0];
    if (!*code) mim_st_close(st);
    return ok;
}

static void test_malformed(void) {
    printf("-- malformed input\n");
    // Every prefix of a valid file must be rejected.
    size_t len = 0;
    uint8_t* good = slurp(path_in("rt.safetensors"), &len);
    int all = good != NULL, code = 0;
    size_t fail_at = 0;
    for (size_t n = 0; good && n < len; n++)
        if (!rejects(good, n, &code)) { all = 0; fail_at = n; break; }
    if (all) TU_CHECK(1, "every truncation to 0..%zu bytes of a valid file rejected", len - 1);
    else TU_CHECK(0, "truncation to %zu bytes of a valid file accepted", fail_at);
    mim_st* st = NULL;
    TU_CHECK(good && mim_st_open_mem(&st, good, len) == 0, "the untruncated file opens");
    mim_st_close(st);
    // One extra byte after the data section.
    uint8_t* longer = good ? realloc(good, len + 1) : NULL;
    if (longer) { longer[len] = 0; good = longer; }
    TU_CHECK(longer && rejects(longer, len + 1, &code), "trailing byte after data: %s", mim_err_msg());
    free(good);

    uint8_t huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    TU_CHECK(rejects(huge, 16, &code) && code == MIM_EFORMAT, "header length 2^63: %s", mim_err_msg());
    uint8_t over[] = {3, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    TU_CHECK(rejects(over, sizeof over, &code), "header length 3 > 2 available: %s", mim_err_msg());
    TU_CHECK(rejects("", 0, &code), "empty input: %s", mim_err_msg());

#define F32_A "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
    static const struct { const char* json; size_t data; const char* what; } cases[] = {
        {"", 0, "empty header"},
        {"{\"a\":", 0, "truncated JSON"},
        {"{not json}", 0, "garbage JSON"},
        {"[1, 2]", 0, "root is an array"},
        {"\"str\"", 0, "root is a string"},
        {"{} x", 0, "garbage after the JSON"},
        {"{}{}", 0, "two JSON objects"},
        {"{\"a\":5}", 0, "entry not an object"},
        {"{\"a\":[]}", 0, "entry is an array"},
        {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "missing dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "missing shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "missing data_offsets"},
        {"{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, "unknown dtype"},
        {"{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "lower-case dtype"},
        {"{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype not a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, "shape not an array"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "negative dim"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8, "fractional dim"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "string dim"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8, "huge dim 1e300"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, "9 dims"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 8, "shape product overflow"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 8, "dim beyond 2^53"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[9007199254740992,256],\"data_offsets\":[0,0]}}", 0, "byte size overflow"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}\x01}", 8, "control byte in the header"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "end before begin"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 8, "offsets beyond data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, "negative offset"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,16]}}", 16, "three offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "one offset"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{\"b\":0}}}", 8, "offsets an object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "nbytes != numel * 4"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlapping tensors"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "aliased tensors"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "hole between tensors"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "hole at start"},
        {"{" F32_A "," F32_A "}", 8, "duplicate name"},
        {"{\"__metadata__\":[\"x\"]}", 0, "__metadata__ not an object"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ value not a string"},
        {"{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, "duplicate metadata key"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "two __metadata__"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}\0}", 8, "NUL inside the header"},
    };
    int n_cases = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n_cases; i++) {
        // Case "NUL inside": json literal holds an embedded NUL, so sizeof-based length is not available; add 2.
        size_t jl = strlen(cases[i].json) + (strstr(cases[i].what, "NUL") ? 2 : 0);
        uint8_t* b = make_st(cases[i].json, jl, cases[i].data, &len);
        TU_CHECK(rejects(b, len, &code) && code == MIM_EFORMAT, "%-28s -> %d: %s", cases[i].what, code, mim_err_msg());
        free(b);
    }

    // Deep nesting inside metadata: cJSON's nesting limit, no stack overflow.
    size_t depth = 100000, jl = 0;
    char* deep = malloc(2 * depth + 32);
    jl += (size_t)sprintf(deep, "{\"__metadata__\":");
    memset(deep + jl, '[', depth); jl += depth;
    memset(deep + jl, ']', depth); jl += depth;
    deep[jl++] = '}';
    uint8_t* b = make_st(deep, jl, 0, &len);
    TU_CHECK(rejects(b, len, &code), "nesting depth %zu: %s", depth, mim_err_msg());
    free(b);
    free(deep);

    // A valid control built the same way, so the cases above fail for their reason.
    const char* ctl = "{" F32_A ",\"__metadata__\":{\"k\":\"v\"}}  ";
    b = make_st(ctl, strlen(ctl), 8, &len);
    st = NULL;
    code = mim_st_open_mem(&st, b, len);
    TU_CHECK(code == 0 && mim_st_count(st) == 1 && !strcmp(mim_st_meta(st, "k"), "v"), "control file opens (%s)",
             code ? mim_err_msg() : "");
    mim_st_close(st);
    free(b);

    // Errors from mim_st_open name the file.
    const char* p = path_in("bad.safetensors");
    FILE* f = fopen(p, "wb");
    fwrite("\x02\0\0\0\0\0\0\0{]", 1, 10, f);
    fclose(f);
    code = mim_st_open(&st, p);
    TU_CHECK(code == MIM_EFORMAT && strstr(mim_err_msg(), p), "open names the file: %s", mim_err_msg());
}

// ---------------------------------------------------------------------------
// cross-check with tests/ref/st_ref.py (hand-written reader/writer in Python)

static void test_python(void) {
    printf("-- python cross-check\n");
    char script[512];
    const char* src = __FILE__; // tests/test_safetensors.c, relative to the repo root or absolute
    const char* slash = strrchr(src, '/');
    snprintf(script, sizeof script, "%.*s/ref/st_ref.py", slash ? (int)(slash - src) : 1, slash ? src : ".");
    if (access(script, R_OK)) {   // part of the repository: its absence is a failure
        TU_CHECK(0, "reference script %s readable", script);
        return;
    }
    if (access("/usr/bin/python3", X_OK)) {
        if (tu_torch_required()) TU_CHECK(0, "/usr/bin/python3 present (MIM_REQUIRE_TORCH is set)");
        printf("note: no /usr/bin/python3; skipping the python cross-check\n");
        py_skipped = 1;
        return;
    }
    char cmd[1400], out[256];
    snprintf(out, sizeof out, "%s", path_in("from_py.safetensors"));
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %s", script, path_in("rt.safetensors"), out);
    fflush(stdout); // python prints too
    int rc = system(cmd);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77) {
        if (tu_torch_required()) TU_CHECK(0, "python3 imports torch (MIM_REQUIRE_TORCH is set)");
        printf("note: python3 cannot import torch; skipping the python cross-check\n");
        py_skipped = 1;
        return;
    }
    TU_CHECK(rc == 0, "python reads the C file and checks its values (%s)", cmd);
    if (rc) return;

    mim_st* st = NULL;
    rc = mim_st_open(&st, out);
    TU_CHECK(rc == 0, "C opens the python file: %s", rc ? mim_err_msg() : "");
    if (rc) return;
    const mim_st_tensor* t = mim_st_find(st, "f16_all");
    TU_CHECK(t && ((uintptr_t)t->data & 3), "python file's data is unaligned (exercises memcpy reads)");
    TU_CHECK(mim_st_meta(st, "writer") && !strcmp(mim_st_meta(st, "writer"), "st_ref.py"), "python metadata");
    // All 65536 half and bfloat16 bit patterns against torch's own .float().
    static float got[65536], want[65536];
    int64_t sh[] = {256, 256};
    const char* pairs[][2] = {{"f16_all", "f16_all_as_f32"}, {"bf16_all", "bf16_all_as_f32"}};
    for (int k = 0; k < 2; k++) {
        rc = mim_st_read_f32(st, pairs[k][0], got, 2, sh) | mim_st_read_f32(st, pairs[k][1], want, 2, sh);
        size_t bad = 0;
        for (size_t i = 0; i < 65536; i++)
            bad += isnan(want[i]) ? !isnan(got[i]) : memcmp(&got[i], &want[i], 4) != 0;
        TU_CHECK(rc == 0 && bad == 0, "%s: all 65536 patterns equal torch's conversion (%zu differ)", pairs[k][0], bad);
    }
    int64_t s5[] = {5}, s23[] = {2, 3};
    rc = mim_st_read_f32(st, "f64", got, 1, s5);
    int same = rc == 0;
    for (int i = 0; same && i < 5; i++) same = got[i] == (float)((double)i * 0.1 - 3.0);
    TU_CHECK(same, "F64 from python -> f32");
    t = mim_st_find(st, "i32");
    int32_t iv[6];
    if (t && t->nbytes == sizeof iv) memcpy(iv, t->data, sizeof iv);
    same = t && t->dtype == MIM_I32 && t->ndim == 2 && t->nbytes == sizeof iv;
    for (int i = 0; same && i < 6; i++) same = iv[i] == (i - 3) * 1000003;
    TU_CHECK(same, "I32 (2, 3) from python");
    rc = mim_st_read_f32(st, "f32", got, 2, s23);
    same = rc == 0;
    for (int i = 0; same && i < 6; i++) same = got[i] == (float)i / 8 - 0.25f;
    TU_CHECK(same, "F32 (2, 3) from python");
    t = mim_st_find(st, "scalar");
    TU_CHECK(t && t->ndim == 0 && t->numel == 1 && t->dtype == MIM_I64, "I64 scalar from python");
    mim_st_close(st);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/test_safetensors.XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    test_roundtrip();
    test_read_f32();
    test_write();
    test_malformed();
    test_python();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) printf("warning: could not remove %s\n", dir);
    return tu_summary("test_safetensors", py_skipped, "python3 with torch not available; python cross-check skipped");
}
