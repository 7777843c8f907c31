// mae.c: MAE forward and backward (see mae.h). Shapes in comments use
// B batch, L patches, T = 1 + len_keep encoder tokens, Td = 1 + L decoder
// tokens, D / Dd encoder / decoder width, P = p*p*C, K = C*p*p, Pt the
// target width (P for pixel targets).
#include "model/mae.h"
#include "core/check.h"
#include "core/prof.h"
#include "core/rng.h"
#include "ops/ops.h"
#include <math.h>
#include <omp.h>
#include <string.h>

// ---------------------------------------------------------------- table

static void add_param(mim_mae* m, const char* name, int ndim, const int64_t* shape, int trainable) {
    CHECK(m->nparams < MIM_MAX_PARAMS);
    mim_param* p = &m->table[m->nparams++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) { p->shape[i] = shape[i]; p->numel *= (size_t)shape[i]; }
    p->offset = m->num_floats;
    p->trainable = trainable;
    size_t len = strlen(name);
    // timm param_groups_weight_decay: no decay on 1-D params and biases.
    p->decay = trainable && ndim > 1 && !(len >= 5 && strcmp(name + len - 5, ".bias") == 0);
    m->num_floats += p->numel;
}

#define P1(name, a) add_param(m, name, 1, (int64_t[]){a}, 1)
#define P2(name, a, b) add_param(m, name, 2, (int64_t[]){a, b}, 1)

static void add_block(mim_mae* m, const char* prefix, int i, int D, int r) {
    char n[64];
#define BN(s) (snprintf(n, sizeof n, "%s.%d.%s", prefix, i, s), n)
    P1(BN("norm1.weight"), D); P1(BN("norm1.bias"), D);
    P2(BN("attn.qkv.weight"), 3 * D, D); P1(BN("attn.qkv.bias"), 3 * D);
    P2(BN("attn.proj.weight"), D, D); P1(BN("attn.proj.bias"), D);
    P1(BN("norm2.weight"), D); P1(BN("norm2.bias"), D);
    P2(BN("mlp.fc1.weight"), r * D, D); P1(BN("mlp.fc1.bias"), r * D);
    P2(BN("mlp.fc2.weight"), D, r * D); P1(BN("mlp.fc2.bias"), D);
#undef BN
}

// The MAE state_dict order: cls_token, pos_embed, patch_embed, blocks, norm,
// mask_token, decoder_pos_embed, decoder_embed, decoder_blocks, decoder_norm,
// decoder_pred.
static void build_table(mim_mae* m) {
    const mim_config* c = &m->cfg;
    int D = c->dim, Dd = c->dec_dim, r = c->mlp_ratio;
    m->nparams = 0; m->num_floats = 0;
    add_param(m, "cls_token", 3, (int64_t[]){1, 1, D}, 1);
    add_param(m, "pos_embed", 3, (int64_t[]){1, 1 + m->L, D}, 0);
    add_param(m, "patch_embed.proj.weight", 4, (int64_t[]){D, c->in_chans, c->patch, c->patch}, 1);
    P1("patch_embed.proj.bias", D);
    for (int i = 0; i < c->depth; i++) add_block(m, "blocks", i, D, r);
    P1("norm.weight", D); P1("norm.bias", D);
    if (!Dd) return;   // encoder only
    add_param(m, "mask_token", 3, (int64_t[]){1, 1, Dd}, 1);
    add_param(m, "decoder_pos_embed", 3, (int64_t[]){1, 1 + m->L, Dd}, 0);
    P2("decoder_embed.weight", Dd, D); P1("decoder_embed.bias", Dd);
    for (int i = 0; i < c->dec_depth; i++) add_block(m, "decoder_blocks", i, Dd, r);
    P1("decoder_norm.weight", Dd); P1("decoder_norm.bias", Dd);
    P2("decoder_pred.weight", m->Pt, Dd); P1("decoder_pred.bias", m->Pt);
}

// Points every field of w at its tensor in buf, walking the table in order.
static void bind_weights(const mim_mae* m, mim_weights* w, float* buf) {
    const mim_param* t = m->table;
    int k = 0;
#define NEXT (buf + t[k++].offset)
    w->cls_token = NEXT; w->pos_embed = NEXT; w->pe_w = NEXT; w->pe_b = NEXT;
    for (int i = 0; i < m->cfg.depth; i++) {
        mim_vit_block_w* b = &w->blocks[i];
        b->ln1w = NEXT; b->ln1b = NEXT; b->qkvw = NEXT; b->qkvb = NEXT; b->projw = NEXT; b->projb = NEXT;
        b->ln2w = NEXT; b->ln2b = NEXT; b->fc1w = NEXT; b->fc1b = NEXT; b->fc2w = NEXT; b->fc2b = NEXT;
    }
    w->norm_w = NEXT; w->norm_b = NEXT;
    if (!m->cfg.dec_dim) { CHECK(k == m->nparams); return; }
    w->mask_token = NEXT; w->dec_pos_embed = NEXT; w->dec_embed_w = NEXT; w->dec_embed_b = NEXT;
    for (int i = 0; i < m->cfg.dec_depth; i++) {
        mim_vit_block_w* b = &w->dec_blocks[i];
        b->ln1w = NEXT; b->ln1b = NEXT; b->qkvw = NEXT; b->qkvb = NEXT; b->projw = NEXT; b->projb = NEXT;
        b->ln2w = NEXT; b->ln2b = NEXT; b->fc1w = NEXT; b->fc1b = NEXT; b->fc2w = NEXT; b->fc2b = NEXT;
    }
    w->dec_norm_w = NEXT; w->dec_norm_b = NEXT; w->pred_w = NEXT; w->pred_b = NEXT;
#undef NEXT
    CHECK(k == m->nparams);
}

const mim_param* mim_mae_find(const mim_mae* m, const char* name) {
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->table[i].name, name) == 0) return &m->table[i];
    return NULL;
}

// ---------------------------------------------------------------- memory

static void carve_acts(mim_mae* m, mim_carver* c) {
    const mim_config* k = &m->cfg;
    size_t B = m->max_batch, L = m->L, T = m->T, Td = m->Td, D = k->dim, Dd = k->dec_dim, r = k->mlp_ratio;
    m->imgs_col = mim_carve(c, B * L * m->K);
    m->pe_out = mim_carve(c, B * L * D);
    m->x0 = mim_carve(c, B * T * D);
    for (int i = 0; i < k->depth; i++) mim_vit_block_carve(c, &m->enc[i], B, T, D, k->heads, r * D);
    m->latent = mim_carve(c, B * T * D); m->lat_mean = mim_carve(c, B * T); m->lat_rstd = mim_carve(c, B * T);
    m->drop_scale = mim_carve(c, (size_t)k->depth * B * 2);
    m->mask = mim_carve(c, B * L);
    m->ids_shuffle = (int32_t*)mim_carve(c, B * L);
    m->ids_restore = (int32_t*)mim_carve(c, B * L);
    if (!Dd) return;   // encoder only
    m->dec_emb = mim_carve(c, B * T * Dd);
    m->dec_x0 = mim_carve(c, B * Td * Dd);
    for (int i = 0; i < k->dec_depth; i++) mim_vit_block_carve(c, &m->dec[i], B, Td, Dd, k->dec_heads, r * Dd);
    m->dec_norm = mim_carve(c, B * Td * Dd); m->dec_norm_mean = mim_carve(c, B * Td); m->dec_norm_rstd = mim_carve(c, B * Td);
    m->pred_full = mim_carve(c, B * Td * m->Pt);
    m->pred = mim_carve(c, B * L * m->Pt);
    m->target = mim_carve(c, B * L * m->Pt);
}

static size_t max3(size_t a, size_t b, size_t c) { size_t x = a > b ? a : b; return x > c ? x : c; }

static void carve_scratch(mim_mae* m, mim_carver* c) {
    const mim_config* k = &m->cfg;
    size_t B = m->max_batch, TD = max3((size_t)m->T * k->dim, (size_t)m->Td * k->dec_dim, (size_t)m->L * k->dim);
    size_t ws = attention_ws_floats(m->T, k->dim / k->heads);
    if (k->dec_dim) { size_t wd = attention_ws_floats(m->Td, k->dec_dim / k->dec_heads); ws = wd > ws ? wd : ws; }
    m->attn.per_thread = (ws + 15) & ~(size_t)15;
    m->attn.threads = omp_get_max_threads();
    m->attn.mem = mim_carve(c, m->attn.per_thread * (size_t)m->attn.threads);
    m->scr.dres = mim_carve(c, B * TD); m->s_dnext = mim_carve(c, B * TD); m->scr.dln = mim_carve(c, B * TD);
    m->scr.datty = mim_carve(c, B * TD); m->scr.dqkv = mim_carve(c, B * TD * 3);
    m->scr.dfc1 = mim_carve(c, B * TD * k->mlp_ratio); m->scr.dgelu = mim_carve(c, B * TD * k->mlp_ratio);
    m->scr.dscaled = mim_carve(c, B * TD);
    if (k->dec_dim) m->s_dpred = mim_carve(c, B * m->Td * m->Pt);
}

// Geometry, parameter table, the small per-block arrays, and the float
// counts of the activation and scratch blocks for batches up to max_batch:
// the one size computation behind mim_mae_init and mim_mae_bytes.
static int mae_plan(mim_mae* m, const mim_config* cfg, int max_batch, size_t* nact, size_t* nscr) {
    memset(m, 0, sizeof *m);
    int rc = mim_config_validate(cfg);
    if (rc) return rc;
    if (max_batch < 1) return mim_err(MIM_EARG, "batch size must be >= 1 (got %d)", max_batch);
    m->cfg = *cfg;
    m->max_batch = max_batch;
    m->L = mim_config_num_patches(cfg);
    m->T = 1 + mim_config_len_keep(cfg);
    m->Td = 1 + m->L;
    m->P = m->K = mim_config_patch_dim(cfg);
    m->Pt = mim_config_target_dim(cfg);
    build_table(m);
    m->w.blocks = mim_calloc(cfg->depth + 1, sizeof(mim_vit_block_w));
    m->w.dec_blocks = mim_calloc(cfg->dec_depth + 1, sizeof(mim_vit_block_w));
    m->g.blocks = mim_calloc(cfg->depth + 1, sizeof(mim_vit_block_w));
    m->g.dec_blocks = mim_calloc(cfg->dec_depth + 1, sizeof(mim_vit_block_w));
    m->enc = mim_calloc(cfg->depth + 1, sizeof(mim_vit_block_acts));
    m->dec = mim_calloc(cfg->dec_depth + 1, sizeof(mim_vit_block_acts));
    if (!m->w.blocks || !m->w.dec_blocks || !m->g.blocks || !m->g.dec_blocks || !m->enc || !m->dec) {
        mim_mae_free(m);
        return MIM_ENOMEM;
    }
    mim_carver c = {0};
    carve_acts(m, &c);
    *nact = c.used;
    c = (mim_carver){0};
    carve_scratch(m, &c);
    *nscr = c.used;
    return 0;
}

int mim_mae_init(mim_mae* m, const mim_config* cfg, int max_batch) {
    size_t nact, nscr;
    int rc = mae_plan(m, cfg, max_batch, &nact, &nscr);
    if (rc) return rc;
    m->params = mim_calloc(m->num_floats, sizeof(float));
    m->grads = mim_calloc(m->num_floats, sizeof(float));
    if (!m->params || !m->grads) {
        mim_mae_free(m);
        return MIM_ENOMEM;
    }
    bind_weights(m, &m->w, m->params);
    bind_weights(m, &m->g, m->grads);
    m->act_mem = mim_calloc(nact, sizeof(float));
    m->scratch_mem = mim_calloc(nscr, sizeof(float));
    if (!m->act_mem || !m->scratch_mem) {
        mim_err(MIM_ENOMEM, "out of memory: activations need %.1f MB for batch %d",
                (nact + nscr) * 4.0 / 1e6, max_batch);
        mim_mae_free(m);
        return MIM_ENOMEM;
    }
    mim_carver c = {m->act_mem, 0};
    carve_acts(m, &c);
    c = (mim_carver){m->scratch_mem, 0};
    carve_scratch(m, &c);
    return 0;
}

size_t mim_mae_bytes(const mim_config* cfg, int max_batch, mim_mae_mem* parts) {
    mim_mae* m = malloc(sizeof *m);   // the parameter table is large for the stack
    if (!m) { mim_err(MIM_ENOMEM, "out of memory"); return 0; }
    size_t nact, nscr;
    if (mae_plan(m, cfg, max_batch, &nact, &nscr)) { free(m); return 0; }
    mim_mae_mem p;
    p.params = p.grads = m->num_floats * sizeof(float);
    p.acts = nact * sizeof(float);
    p.scratch = nscr * sizeof(float);
    size_t nblk = (size_t)(cfg->depth + 1) + (size_t)(cfg->dec_depth + 1);
    p.other = nblk * (2 * sizeof(mim_vit_block_w) + sizeof(mim_vit_block_acts));
    p.total = p.params + p.grads + p.acts + p.scratch + p.other;
    p.num_floats = m->num_floats;
    mim_mae_free(m);
    free(m);
    if (parts) *parts = p;
    return p.total;
}

void mim_mae_free(mim_mae* m) {
    free(m->params); free(m->grads);
    free(m->w.blocks); free(m->w.dec_blocks); free(m->g.blocks); free(m->g.dec_blocks);
    free(m->enc); free(m->dec);
    free(m->act_mem); free(m->scratch_mem);
    free(m->params_bf16); mim_bf16_ctx_free(m->mm);
    memset(m, 0, sizeof *m);
}

void mim_mae_zero_grad(mim_mae* m) { PROF(PROF_LAYOUT, memset(m->grads, 0, m->num_floats * sizeof(float))); }

// ---------------------------------------------------------------- init

// 1-D sin-cos embedding of positions pos[0..n) into out rows of stride ld,
// columns [0, Dh): sin(pos * omega) then cos(pos * omega), omega_i =
// 1 / 10000^(i / (Dh/2)).
static void sincos_1d(float* out, int ld, int Dh, const double* pos, int n) {
    int half = Dh / 2;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < half; i++) {
            double omega = 1.0 / pow(10000.0, (double)i / half);
            out[(size_t)t * ld + i] = (float)sin(pos[t] * omega);
            out[(size_t)t * ld + half + i] = (float)cos(pos[t] * omega);
        }
}

void mim_sincos_pos_embed(float* out, int D, int gh, int gw) {
    int n = gh * gw;
    double* pw = malloc(sizeof(double) * n * 2);
    CHECK(pw);
    double* ph = pw + n;
    for (int i = 0; i < gh; i++)
        for (int j = 0; j < gw; j++) { pw[i * gw + j] = j; ph[i * gw + j] = i; }
    memset(out, 0, sizeof(float) * D);   // cls row
    // MAE meshgrid(grid_w, grid_h): first half of dims from the w coordinate.
    sincos_1d(out + D, D, D / 2, pw, n);
    sincos_1d(out + D + D / 2, D, D / 2, ph, n);
    free(pw);
}

void mim_mae_init_weights(mim_mae* m, uint64_t seed) {
    mim_rng rng;
    mim_rng_seed(&rng, seed);
    const mim_config* c = &m->cfg;
    for (int i = 0; i < m->nparams; i++) {
        const mim_param* p = &m->table[i];
        float* x = m->params + p->offset;
        const char* n = p->name;
        size_t len = strlen(n);
        if (strcmp(n, "pos_embed") == 0) {
            mim_sincos_pos_embed(x, c->dim, c->img_h / c->patch, c->img_w / c->patch);
        } else if (strcmp(n, "decoder_pos_embed") == 0) {
            mim_sincos_pos_embed(x, c->dec_dim, c->img_h / c->patch, c->img_w / c->patch);
        } else if (strcmp(n, "cls_token") == 0 || strcmp(n, "mask_token") == 0) {
            for (size_t j = 0; j < p->numel; j++) x[j] = 0.02f * mim_rng_normal(&rng);
        } else if (strstr(n, "norm") && len > 7 && strcmp(n + len - 7, ".weight") == 0) {
            for (size_t j = 0; j < p->numel; j++) x[j] = 1.0f;
        } else if (p->ndim >= 2) {
            // xavier_uniform over (fan_out, fan_in) = (shape[0], numel/shape[0])
            double fan_out = (double)p->shape[0], fan_in = (double)p->numel / fan_out;
            float a = (float)sqrt(6.0 / (fan_in + fan_out));
            for (size_t j = 0; j < p->numel; j++) x[j] = a * (2.0f * mim_rng_uniform(&rng) - 1.0f);
        } else if (strcmp(n, "patch_embed.proj.bias") == 0) {
            // MAE leaves the conv bias at PyTorch's default init:
            // U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C * p * p.
            float a = 1.0f / sqrtf((float)(c->in_chans * c->patch * c->patch));
            for (size_t j = 0; j < p->numel; j++) x[j] = a * (2.0f * mim_rng_uniform(&rng) - 1.0f);
        } else {
            memset(x, 0, p->numel * sizeof(float));   // linear biases
        }
    }
}

// ---------------------------------------------------------------- precision

// The block ops' view of the model's linear-layer precision (model/vit.h).
static mim_vit_linear lin_of(const mim_mae* m) {
    return (mim_vit_linear){m->precision, m->params, m->params_bf16, m->num_floats, m->mm, &m->attn};
}

static void linear_forward(const mim_mae* m, float* out, const float* inp, const float* weight,
                           const float* bias, int N, int C, int OC) {
    mim_vit_linear l = lin_of(m);
    mim_vit_linear_forward(&l, out, inp, weight, bias, N, C, OC);
}

static void linear_backward(const mim_mae* m, float* dinp, float* dweight, float* dbias,
                            const float* dout, const float* inp, const float* weight, int N, int C, int OC) {
    mim_vit_linear l = lin_of(m);
    mim_vit_linear_backward(&l, dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}

static void linear_backward_set(const mim_mae* m, float* dinp, float* dweight, float* dbias,
                                const float* dout, const float* inp, const float* weight, int N, int C, int OC) {
    mim_vit_linear l = lin_of(m);
    mim_vit_linear_backward_set(&l, dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

int mim_mae_set_precision(mim_mae* m, mim_precision precision, mim_bf16_backend backend) {
    free(m->params_bf16); m->params_bf16 = NULL;
    mim_bf16_ctx_free(m->mm); m->mm = NULL;
    m->precision = MIM_PREC_FP32;
    if (precision == MIM_PREC_FP32) return 0;
    if (precision != MIM_PREC_BF16) return mim_err(MIM_EARG, "unknown precision %d", precision);
    // the largest N*C, N*OC and OC*C over the model's linears (N*OC is also
    // the decoder's qkv: 3 widths)
    const mim_config* c = &m->cfg;
    size_t B = m->max_batch, r = c->mlp_ratio, D = c->dim, Dd = c->dec_dim;
    size_t NE = B * m->T, ND = B * m->Td, NP = B * m->L;
    size_t inp = zmax(NP * m->K, zmax(NE * D, NE * r * D));
    size_t dout = zmax(NP * D, zmax(NE * 3 * D, NE * r * D));
    size_t wmax = zmax((size_t)m->K * D, zmax(3 * D * D, r * D * D));
    if (Dd) {
        inp = zmax(inp, zmax(ND * Dd, ND * r * Dd));
        dout = zmax(dout, zmax(NE * Dd, zmax(ND * 3 * Dd, zmax(ND * r * Dd, ND * m->P))));
        wmax = zmax(wmax, zmax(Dd * D, zmax(3 * Dd * Dd, zmax(r * Dd * Dd, (size_t)m->P * Dd))));
    }
    int rc = mim_bf16_ctx_init(&m->mm, backend, inp, dout, wmax);
    if (rc) return rc;
    m->params_bf16 = mim_malloc(sizeof(mim_bf16) * m->num_floats);
    if (!m->params_bf16) { mim_bf16_ctx_free(m->mm); m->mm = NULL; return MIM_ENOMEM; }
    m->precision = MIM_PREC_BF16;
    mim_mae_refresh_bf16(m);
    return 0;
}

const char* mim_mae_precision_name(const mim_mae* m) {
    if (m->precision != MIM_PREC_BF16) return "fp32";
    switch (mim_bf16_ctx_backend(m->mm)) {
    case MIM_BF16_ONEDNN: return "bf16 (oneDNN)";
    case MIM_BF16_ONEDNN_F32: return "bf16 (oneDNN fp32 check)";
    default: return "bf16 (emulated)";
    }
}

void mim_mae_refresh_bf16(mim_mae* m) {
    if (m->precision == MIM_PREC_BF16) bf16_from_f32(m->params_bf16, m->params, m->num_floats);
}

// ---------------------------------------------------------------- blocks

static void block_forward(const mim_mae* m, mim_vit_block_acts* a, const mim_vit_block_w* w, const float* x,
                          int B, int T, int D, int NH, int r, const float* drop) {
    mim_vit_linear l = lin_of(m);
    mim_vit_block_forward(&l, a, w, x, B, T, D, NH, r * D, drop);
}

static void block_backward(mim_mae* m, float* dx, const float* dout, const mim_vit_block_acts* a,
                           const mim_vit_block_w* w, mim_vit_block_w* g, const float* x,
                           int B, int T, int D, int NH, int r, const float* drop) {
    mim_vit_linear l = lin_of(m);
    mim_vit_block_backward(&l, &m->scr, dx, dout, a, w, g, x, B, T, D, NH, r * D, drop);
}

// Announces block b's gradient range (its 12 tensors are contiguous).
static void block_grads_ready(const mim_mae* m, const mim_vit_block_w* g, int D) {
    if (!m->grad_ready) return;
    size_t off = (size_t)(g->ln1w - m->grads), end = (size_t)(g->fc2b + D - m->grads);
    m->grad_ready(off, end - off);
}

// ---------------------------------------------------------------- forward

// Patch embedding, masking (noise NULL: keep every patch in order) and the
// encoder blocks + final norm into m->latent (B, T, D).
static void forward_encoder(mim_mae* m, const float* imgs, const float* noise, int B) {
    const mim_config* c = &m->cfg;
    CHECK(B >= 1 && B <= m->max_batch);
    PROF(PROF_CONVERT, mim_mae_refresh_bf16(m));
    m->B = B;
    int L = m->L, T = m->T, D = c->dim, K = m->K;
    int keep = T - 1, r = c->mlp_ratio;
    const mim_weights* w = &m->w;

    // patch embedding: imgs -> (B, L, K) -> (B, L, D), + pos_embed[1:]
    PROF(PROF_ELEMWISE, im2col_forward(m->imgs_col, imgs, B, c->in_chans, c->img_h, c->img_w, c->patch));
    PROF(PROF_MATMUL, linear_forward(m, m->pe_out, m->imgs_col, w->pe_w, w->pe_b, B * L, K, D));
    double t_ = mim_prof_begin();
    #pragma omp parallel for if ((size_t)B * L * D >= 65536)
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++)
            add_inplace(m->pe_out + ((size_t)b * L + l) * D, w->pos_embed + (size_t)(1 + l) * D, D);
    mim_prof_end(PROF_LAYOUT, t_);

    // masking: keep the len_keep lowest-noise patches; x0 = [cls + pos0, kept]
    if (noise) {
        PROF(PROF_ELEMWISE, masking_forward(m->ids_shuffle, m->ids_restore, m->mask, noise, B, L, keep));
    } else {
        CHECK(keep == L);
        for (size_t i = 0; i < (size_t)B * L; i++) {
            m->ids_shuffle[i] = m->ids_restore[i] = (int32_t)(i % L);
            m->mask[i] = 0.0f;
        }
    }
    t_ = mim_prof_begin();
    #pragma omp parallel for if ((size_t)B * T * D >= 65536)
    for (int b = 0; b < B; b++) {
        float* x = m->x0 + (size_t)b * T * D;
        for (int d = 0; d < D; d++) x[d] = w->cls_token[d] + w->pos_embed[d];
        for (int t = 0; t < keep; t++)
            memcpy(x + (size_t)(1 + t) * D, m->pe_out + ((size_t)b * L + m->ids_shuffle[(size_t)b * L + t]) * D,
                   D * sizeof(float));
    }
    mim_prof_end(PROF_LAYOUT, t_);

    const float* x = m->x0;
    for (int i = 0; i < c->depth; i++) {
        block_forward(m, &m->enc[i], &w->blocks[i], x, B, T, D, c->heads, r,
                      m->drop_active ? m->drop_scale + (size_t)i * 2 * m->max_batch : NULL);
        x = m->enc[i].out;
    }
    PROF(PROF_NORM, layernorm_forward(m->latent, m->lat_mean, m->lat_rstd, x, w->norm_w, w->norm_b, B * T, D, MIM_VIT_LN_EPS));
}

void mim_mae_drop_path(mim_mae* m, float rate, int B, mim_rng* rng) {
    int depth = m->cfg.depth;
    m->drop_active = rate > 0 && rng && depth > 0;
    if (!m->drop_active) return;
    CHECK(B <= m->max_batch);
    for (int i = 0; i < depth; i++) {
        float p = depth > 1 ? rate * i / (depth - 1) : rate;   // timm: linspace(0, rate, depth)
        float keep = 1.0f - p;
        float* s = m->drop_scale + (size_t)i * 2 * m->max_batch;
        for (int j = 0; j < 2 * B; j++) s[j] = (p > 0 && mim_rng_uniform(rng) >= keep) ? 0.0f : (p > 0 ? 1.0f / keep : 1.0f);
    }
}

void mim_mae_drop_path_seeded(mim_mae* m, float rate, int B, const uint64_t* seeds) {
    int depth = m->cfg.depth;
    m->drop_active = rate > 0 && seeds && depth > 0;
    if (!m->drop_active) return;
    CHECK(B <= m->max_batch);
    for (int b = 0; b < B; b++) {
        mim_rng r;
        mim_rng_seed(&r, seeds[b]);
        for (int i = 0; i < depth; i++) {
            float p = depth > 1 ? rate * i / (depth - 1) : rate, keep = 1.0f - p;
            float* s = m->drop_scale + (size_t)i * 2 * m->max_batch;
            for (int j = 0; j < 2; j++)
                s[2 * b + j] = (p > 0 && mim_rng_uniform(&r) >= keep) ? 0.0f : (p > 0 ? 1.0f / keep : 1.0f);
        }
    }
}

const float* mim_mae_encode(mim_mae* m, const float* imgs, int B) {
    forward_encoder(m, imgs, NULL, B);
    return m->latent;
}

// Loss of kind `loss` over the masked rows (see ops.h).
static float loss_forward(int loss, const float* pred, const float* target, const float* mask, int B, int L, int P) {
    switch (loss) {
    case MIM_LOSS_COS: return cos_loss_forward(pred, target, mask, B, L, P);
    case MIM_LOSS_SMOOTH_L1: return smooth_l1_loss_forward(pred, target, mask, B, L, P, 1.0f);
    default: return mae_loss_forward(pred, target, mask, B, L, P);
    }
}

static void loss_backward(int loss, float* dpred, const float* pred, const float* target, const float* mask,
                          float dloss, int B, int L, int P) {
    switch (loss) {
    case MIM_LOSS_COS: cos_loss_backward(dpred, pred, target, mask, dloss, B, L, P); break;
    case MIM_LOSS_SMOOTH_L1: smooth_l1_loss_backward(dpred, pred, target, mask, dloss, B, L, P, 1.0f); break;
    default: mae_loss_backward(dpred, pred, target, mask, dloss, B, L, P);
    }
}

// Encoder, decoder and decoder_pred into m->pred (B, L, Pt); the loss
// against m->target, which the caller has filled.
static float forward_mae(mim_mae* m, const float* imgs, const float* noise, int B) {
    const mim_config* c = &m->cfg;
    CHECK(c->dec_dim > 0);
    forward_encoder(m, imgs, noise, B);
    int L = m->L, T = m->T, Td = m->Td, D = c->dim, Dd = c->dec_dim, P = m->Pt;
    int keep = T - 1, r = c->mlp_ratio;
    const mim_weights* w = &m->w;
    const float* x;

    // decoder: embed, append mask tokens, unshuffle, + decoder_pos_embed
    PROF(PROF_MATMUL, linear_forward(m, m->dec_emb, m->latent, w->dec_embed_w, w->dec_embed_b, B * T, D, Dd));
    double t_ = mim_prof_begin();
    #pragma omp parallel for if ((size_t)B * Td * Dd >= 65536)
    for (int b = 0; b < B; b++) {
        float* y = m->dec_x0 + (size_t)b * Td * Dd;
        const float* e = m->dec_emb + (size_t)b * T * Dd;
        for (int d = 0; d < Dd; d++) y[d] = e[d] + w->dec_pos_embed[d];
        for (int l = 0; l < L; l++) {
            int j = m->ids_restore[(size_t)b * L + l];   // position in [kept..., masked...]
            const float* src = j < keep ? e + (size_t)(1 + j) * Dd : w->mask_token;
            float* dst = y + (size_t)(1 + l) * Dd;
            const float* pos = w->dec_pos_embed + (size_t)(1 + l) * Dd;
            for (int d = 0; d < Dd; d++) dst[d] = src[d] + pos[d];
        }
    }
    mim_prof_end(PROF_LAYOUT, t_);
    x = m->dec_x0;
    for (int i = 0; i < c->dec_depth; i++) {
        block_forward(m, &m->dec[i], &w->dec_blocks[i], x, B, Td, Dd, c->dec_heads, r, NULL);
        x = m->dec[i].out;
    }
    PROF(PROF_NORM, layernorm_forward(m->dec_norm, m->dec_norm_mean, m->dec_norm_rstd, x, w->dec_norm_w, w->dec_norm_b, B * Td, Dd, MIM_VIT_LN_EPS));
    PROF(PROF_MATMUL, linear_forward(m, m->pred_full, m->dec_norm, w->pred_w, w->pred_b, B * Td, Dd, P));
    t_ = mim_prof_begin();
    #pragma omp parallel for if ((size_t)B * L * P >= 65536)
    for (int b = 0; b < B; b++)
        memcpy(m->pred + (size_t)b * L * P, m->pred_full + ((size_t)b * Td + 1) * P, (size_t)L * P * sizeof(float));
    mim_prof_end(PROF_LAYOUT, t_);

    // loss on the masked patches
    PROF(PROF_LOSS, m->loss = loss_forward(c->loss, m->pred, m->target, m->mask, B, L, P));
    return m->loss;
}

float mim_mae_forward(mim_mae* m, const float* imgs, const float* noise, int B) {
    const mim_config* c = &m->cfg;
    CHECK(noise != NULL && B >= 1 && B <= m->max_batch);
    // pixel targets only: the others come through mim_mae_forward_target
    CHECK(c->target == MIM_TARGET_PIXEL || c->target == MIM_TARGET_PIXEL_NORM);
    PROF(PROF_ELEMWISE, patchify_forward(m->target, imgs, B, c->in_chans, c->img_h, c->img_w, c->patch));
    if (c->target == MIM_TARGET_PIXEL_NORM) PROF(PROF_TARGET, norm_pix_rows(m->target, B * m->L, m->P));
    return forward_mae(m, imgs, noise, B);
}

float mim_mae_forward_target(mim_mae* m, const float* imgs, const float* noise, const float* target, int B) {
    CHECK(noise != NULL && target != NULL && B >= 1 && B <= m->max_batch);
    memcpy(m->target, target, sizeof(float) * (size_t)B * m->L * m->Pt);
    return forward_mae(m, imgs, noise, B);
}

// ---------------------------------------------------------------- backward

// d/d of forward_encoder: dlatent (B, T, D) is the gradient of the final-norm
// output, dlast (B, T, D) that of the last block's output (before the norm);
// either may be NULL. Accumulates into the encoder's parameter gradients.
// Uses s_dnext and the block scratch; dlatent may live in scr.dln.
static void backward_encoder(mim_mae* m, const float* dlatent, const float* dlast) {
    const mim_config* c = &m->cfg;
    int B = m->B, L = m->L, T = m->T, D = c->dim, K = m->K;
    int keep = T - 1, r = c->mlp_ratio;
    const mim_weights* w = &m->w;
    mim_weights* g = &m->g;
    float* dcur = m->s_dnext;
    const float* xin;
    if (dlast) PROF(PROF_LAYOUT, memcpy(dcur, dlast, (size_t)B * T * D * sizeof(float)));
    else PROF(PROF_LAYOUT, memset(dcur, 0, (size_t)B * T * D * sizeof(float)));
    xin = c->depth ? m->enc[c->depth - 1].out : m->x0;
    if (dlatent)
        PROF(PROF_NORM, layernorm_backward(dcur, g->norm_w, g->norm_b, dlatent, xin, w->norm_w, m->lat_mean, m->lat_rstd, B * T, D));
    for (int i = c->depth - 1; i >= 0; i--) {
        block_backward(m, dcur, dcur, &m->enc[i], &w->blocks[i], &g->blocks[i],
                       i ? m->enc[i - 1].out : m->x0, B, T, D, c->heads, r,
                       m->drop_active ? m->drop_scale + (size_t)i * 2 * m->max_batch : NULL);
        block_grads_ready(m, &g->blocks[i], D);
    }

    // x0 -> cls token and the kept patch embeddings -> patch_embed weights
    double t_ = mim_prof_begin();
    for (int b = 0; b < B; b++) add_inplace(g->cls_token, dcur + (size_t)b * T * D, D);
    float* dpe = m->scr.dqkv;   // (B, L, D); scr.dqkv holds >= 3 * B * L * D floats
    memset(dpe, 0, (size_t)B * L * D * sizeof(float));
    #pragma omp parallel for if ((size_t)B * T * D >= 65536)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < keep; t++)
            add_inplace(dpe + ((size_t)b * L + m->ids_shuffle[(size_t)b * L + t]) * D,
                        dcur + ((size_t)b * T + 1 + t) * D, D);
    mim_prof_end(PROF_LAYOUT, t_);
    PROF(PROF_MATMUL, linear_backward(m, NULL, g->pe_w, g->pe_b, dpe, m->imgs_col, w->pe_w, B * L, K, D));
    // pos_embed: fixed in pre-training (not trainable there), learned when
    // fine-tuning (timm's ViT); its gradient is cheap, so always computed.
    t_ = mim_prof_begin();
    for (int b = 0; b < B; b++) {
        add_inplace(g->pos_embed, dcur + (size_t)b * T * D, D);
        add_inplace(g->pos_embed + D, dpe + (size_t)b * L * D, (size_t)L * D);
    }
    mim_prof_end(PROF_LAYOUT, t_);
}

void mim_mae_backward(mim_mae* m, float dloss_scale) {
    const mim_config* c = &m->cfg;
    int B = m->B, L = m->L, T = m->T, Td = m->Td, D = c->dim, Dd = c->dec_dim, P = m->Pt;
    int keep = T - 1, r = c->mlp_ratio;
    const mim_weights* w = &m->w;
    mim_weights* g = &m->g;
    // dcur: gradient of the residual stream, updated in place block by block
    // (block_backward allows dx == dout).
    float* dcur = m->s_dnext;

    // loss -> dpred_full (B, Td, Pt), cls rows zero. Per sample, each call
    // gets dloss scaled by its share of the global sum(mask) normaliser.
    float* dpred = m->s_dpred;
    double t_ = mim_prof_begin();
    memset(dpred, 0, (size_t)B * Td * P * sizeof(float));
    double den = 0.0;
    for (size_t i = 0; i < (size_t)B * L; i++) den += m->mask[i];
    for (int b = 0; b < B && den > 0; b++) {
        double db = 0.0;
        for (int l = 0; l < L; l++) db += m->mask[(size_t)b * L + l];
        if (db == 0.0) continue;
        loss_backward(c->loss, dpred + ((size_t)b * Td + 1) * P, m->pred + (size_t)b * L * P,
                      m->target + (size_t)b * L * P, m->mask + (size_t)b * L,
                      (float)(dloss_scale * db / den), 1, L, P);
    }
    mim_prof_end(PROF_LOSS, t_);

    // decoder_pred, decoder_norm, decoder blocks
    float* dln = m->scr.dln;
    PROF(PROF_MATMUL, linear_backward_set(m, dln, g->pred_w, g->pred_b, dpred, m->dec_norm, w->pred_w, B * Td, Dd, P));
    const float* xin = c->dec_depth ? m->dec[c->dec_depth - 1].out : m->dec_x0;
    PROF(PROF_LAYOUT, memset(dcur, 0, (size_t)B * Td * Dd * sizeof(float)));
    PROF(PROF_NORM, layernorm_backward(dcur, g->dec_norm_w, g->dec_norm_b, dln, xin, w->dec_norm_w, m->dec_norm_mean, m->dec_norm_rstd, B * Td, Dd));
    for (int i = c->dec_depth - 1; i >= 0; i--) {
        block_backward(m, dcur, dcur, &m->dec[i], &w->dec_blocks[i], &g->dec_blocks[i],
                       i ? m->dec[i - 1].out : m->dec_x0, B, Td, Dd, c->dec_heads, r, NULL);
        block_grads_ready(m, &g->dec_blocks[i], Dd);
    }

    // un-unshuffle: dcur (B, Td, Dd) -> ddec_emb (B, T, Dd) and the mask token
    // (each of the T rows of a sample has exactly one source: the cls row,
    // or the one decoder row whose ids_restore names it, so rows are copied)
    float* ddec_emb = m->scr.datty;
    t_ = mim_prof_begin();
    #pragma omp parallel for if ((size_t)B * Td * Dd >= 65536)
    for (int b = 0; b < B; b++) {
        const float* gy = dcur + (size_t)b * Td * Dd;
        float* ge = ddec_emb + (size_t)b * T * Dd;
        memcpy(ge, gy, (size_t)Dd * sizeof(float));
        for (int l = 0; l < L; l++) {
            int j = m->ids_restore[(size_t)b * L + l];
            if (j < keep) memcpy(ge + (size_t)(1 + j) * Dd, gy + (size_t)(1 + l) * Dd, (size_t)Dd * sizeof(float));
        }
    }
    for (int b = 0; b < B; b++)   // serial: a fixed summation order
        for (int l = 0; l < L; l++)
            if (m->ids_restore[(size_t)b * L + l] >= keep)
                add_inplace(g->mask_token, dcur + ((size_t)b * Td + 1 + l) * Dd, Dd);
    mim_prof_end(PROF_LAYOUT, t_);

    // decoder_embed -> gradient of the encoder output
    PROF(PROF_MATMUL, linear_backward_set(m, dln, g->dec_embed_w, g->dec_embed_b, ddec_emb, m->latent, w->dec_embed_w, B * T, D, Dd));
    backward_encoder(m, dln, NULL);
}

void mim_mae_encode_backward(mim_mae* m, const float* dlatent, const float* dlast) {
    backward_encoder(m, dlatent, dlast);
}
