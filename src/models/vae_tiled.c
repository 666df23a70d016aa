/*
 * Tiled AutoencoderKL passes; see vae_tiled.h.
 *
 * Why it is exact.  Between two GroupNorms of the VAE there is exactly one
 * convolution (3x3, or upsample-then-3x3, or the stride-2 downsample), plus
 * pointwise work: swish, a residual add, a 1x1 shortcut.  So the network runs as a
 * chain of "stages", each one
 *
 *     out = conv(swish(norm(in)) [upsampled]) [+ shortcut(res)]
 *
 * and a stage computes one output tile from its input tile plus the halo the
 * convolution reads (one pixel for a 3x3; the rows and columns a stride-2 kernel
 * reaches), taken from the complete previous activation.  Padding zeros are placed
 * only outside the image, so every output pixel sees exactly the inputs it sees in
 * the untiled pass and goes through the same kernels (vae_layers.h): no halo has
 * to be recomputed and none is ever approximated.  While a stage writes its tiles it
 * also gathers, per GroupNorm group, the count, mean and sum of squared deviations
 * of each tile's interior (two passes in double within a tile, combined across
 * tiles with Chan et al.'s pairwise update, free of the E[x²] - E[x]² cancellation);
 * the next stage normalises every tile, halo included, with those global numbers.
 *
 * Where the activations live.  Lockstep execution means a whole activation exists
 * between two stages.  It goes to a spill store: an unlinked temporary file laid out
 * tile by tile ([C][h][w] per tile, so a tile's interior is C contiguous runs)
 * accessed with pread/pwrite.  Written pages sit in the page cache, reclaimable and
 * not part of the resident set; RAM holds one tile's input, padded input and output
 * (the arena is reset after every tile).  A residual block's output overwrites its
 * input in place unless it has more channels (a tile reads only its own interior of
 * the residual), so at most three stores are open at a time and the disk peak of a
 * decode is two full-resolution activations plus one at half resolution.  f16 spill halves the file
 * and I/O but rounds every stored activation to 11 significant bits (relative
 * error ~2.4e-4 per stage, compounding over the ~30 stages of a decoder); f32 is
 * exact and the default.
 *
 * The one approximation: the mid-block attention mixes every latent position with
 * every other, so it cannot be tiled exactly.  Up to `attn_tokens` positions it runs
 * over the whole latent at once (the blocked attention kernel keeps its memory at
 * O(positions x channels)); beyond, each tile attends within itself (with the
 * global GroupNorm statistics), which is what other tiled VAEs do everywhere.
 */
#include "models/vae_tiled.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/threads.h"
#include "models/vae_layers.h"
#include "ops/activation.h"

/* The tile grid, in latent pixels; a layer at f pixels per latent pixel scales it. */
typedef struct {
    int64_t h, w, tile;
    int64_t rows, cols;
} grid;

/* One activation [c, h, w] of one image: in memory (the caller's input or output) or spilled. */
typedef struct {
    const grid *g;
    int64_t c, f, h, w; /* channels; pixels per latent pixel; size */
    float *ram;         /* NULL: spilled to fd */
    int fd, f16;
    int64_t slot; /* elements reserved per tile in the file */
} store;

/* Group statistics of one activation: count, mean, sum of squared deviations. */
typedef struct {
    double n[TS_VAE_GROUPS], mean[TS_VAE_GROUPS], m2[TS_VAE_GROUPS];
} gn_stats;

typedef struct {
    ts_arena *arena;
    ts_vae_tiling opts; /* defaults resolved */
    grid g;
} run;

static const store NO_STORE = {.fd = -1};

/* ---- spill store ------------------------------------------------------------------ */

static int store_open(const run *r, store *s, int64_t channels, int64_t f)
{
    *s = NO_STORE;
    char path[4096];
    snprintf(path, sizeof path, "%s/tessera-vae-spill-XXXXXX", r->opts.spill_dir);
    int fd = mkstemp(path);
    if (fd < 0)
        return ts_fail(TS_ERR_IO, "tiled VAE: cannot create a spill file in %s: %s", r->opts.spill_dir,
                       strerror(errno));
    unlink(path);
    int64_t side = r->g.tile * f;
    *s = (store){.g = &r->g, .c = channels, .f = f, .h = r->g.h * f, .w = r->g.w * f, .fd = fd,
                 .f16 = r->opts.spill == TS_SPILL_F16, .slot = channels * side * side};
    int64_t bytes = r->g.rows * r->g.cols * s->slot * (s->f16 ? 2 : 4);
    if (ftruncate(fd, (off_t)bytes) != 0) {
        close(fd);
        *s = NO_STORE;
        return ts_fail(TS_ERR_IO, "tiled VAE: cannot size a %lld-byte spill file in %s: %s", (long long)bytes,
                       r->opts.spill_dir, strerror(errno));
    }
    return 0;
}

static store store_ram(const grid *g, int64_t channels, int64_t f, float *data)
{
    return (store){.g = g, .c = channels, .f = f, .h = g->h * f, .w = g->w * f, .ram = data, .fd = -1};
}

static void store_close(store *s)
{
    if (s->fd >= 0)
        close(s->fd);
    *s = NO_STORE;
}

/* Tile (bi, bj) of a store as rows [r[0], r[1]) x columns [r[2], r[3]). */
static void tile_rect(const store *s, int64_t bi, int64_t bj, int64_t r[4])
{
    int64_t side = s->g->tile * s->f;
    r[0] = bi * side;
    r[1] = r[0] + side < s->h ? r[0] + side : s->h;
    r[2] = bj * side;
    r[3] = r[2] + side < s->w ? r[2] + side : s->w;
}

static int file_io(int fd, void *buf, size_t bytes, int64_t offset, int write)
{
    char *p = buf;
    while (bytes) {
        ssize_t n = write ? pwrite(fd, p, bytes, (off_t)offset) : pread(fd, p, bytes, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ts_fail(TS_ERR_IO, "tiled VAE: spill file %s failed: %s", write ? "write" : "read",
                           n < 0 ? strerror(errno) : "short read");
        p += n;
        bytes -= (size_t)n;
        offset += n;
    }
    return 0;
}

/* Copies one channel of the part `in` (inside tile t) between the tile's storage and
 * `data` ([rh, rw] at rows/columns r).  Writes must cover the whole tile. */
static int tile_channel_io(const store *s, int64_t tile_index, const int64_t t[4], const int64_t in[4],
                           const int64_t r[4], int64_t ch, float *data, void *buf, float *row, int write)
{
    int64_t bw = t[3] - t[2], bh = t[1] - t[0], rw = r[3] - r[2], elem = s->f16 ? 2 : 4;
    int64_t n = (in[1] - in[0]) * bw;
    int64_t offset = (tile_index * s->slot + (ch * bh + in[0] - t[0]) * bw) * elem;
    if (!write) {
        int rc = file_io(s->fd, buf, (size_t)(n * elem), offset, 0);
        if (rc)
            return rc;
        if (s->f16)
            ts_f16_to_f32_n(buf, row, (size_t)n);
    }
    for (int64_t y = in[0]; y < in[1]; y++) {
        float *mem = row + (y - in[0]) * bw + in[2] - t[2];
        float *dat = data + y * rw - r[0] * rw + in[2] - r[2];
        if (write)
            memcpy(mem, dat, (size_t)(in[3] - in[2]) * sizeof(float));
        else
            memcpy(dat, mem, (size_t)(in[3] - in[2]) * sizeof(float));
    }
    if (write && s->f16)
        ts_f32_to_f16_n(row, buf, (size_t)n);
    return write ? file_io(s->fd, buf, (size_t)(n * elem), offset, 1) : 0;
}

/* Moves the region r (rows [r0, r1) x columns [r2, r3), inside the store) between the
 * store and data [c, r1 - r0, r3 - r2].  A spilled store is written whole tiles at a time. */
static int transfer(ts_arena *arena, const store *s, const int64_t r[4], float *data, int write)
{
    int64_t rh = r[1] - r[0], rw = r[3] - r[2];
    if (s->ram) {
        for (int64_t c = 0; c < s->c; c++)
            for (int64_t y = 0; y < rh; y++) {
                float *mem = s->ram + (c * s->h + r[0] + y) * s->w + r[2], *dat = data + (c * rh + y) * rw;
                memcpy(write ? mem : dat, write ? dat : mem, (size_t)rw * sizeof(float));
            }
        return 0;
    }
    size_t mark = ts_arena_mark(arena);
    int64_t side = s->g->tile * s->f;
    float *row = ts_arena_alloc(arena, (size_t)(side * side) * sizeof(float));
    void *buf = s->f16 ? ts_arena_alloc(arena, (size_t)(side * side) * 2) : row;
    int rc = row && buf ? 0 : TS_ERR_NOMEM;
    for (int64_t bi = r[0] / side; bi <= (r[1] - 1) / side && !rc; bi++)
        for (int64_t bj = r[2] / side; bj <= (r[3] - 1) / side && !rc; bj++) {
            int64_t t[4], in[4];
            tile_rect(s, bi, bj, t);
            in[0] = t[0] > r[0] ? t[0] : r[0];
            in[1] = t[1] < r[1] ? t[1] : r[1];
            in[2] = t[2] > r[2] ? t[2] : r[2];
            in[3] = t[3] < r[3] ? t[3] : r[3];
            if (write && memcmp(in, t, sizeof in) != 0)
                rc = ts_fail(TS_ERR_ARG, "tiled VAE: internal error: partial tile write");
            for (int64_t c = 0; c < s->c && !rc; c++)
                rc = tile_channel_io(s, bi * s->g->cols + bj, t, in, r, c, data + c * rh * rw, buf, row, write);
        }
    ts_arena_reset(arena, mark);
    return rc;
}

/* ---- global GroupNorm ----------------------------------------------------------------- */

/* One tile's per-group mean and squared deviations, two passes in double, groups in parallel. */
typedef struct {
    const float *x;
    int64_t len; /* elements per group */
    double mean[TS_VAE_GROUPS], m2[TS_VAE_GROUPS];
} tile_moments;

static void tile_moments_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    tile_moments *t = ctx;
    for (int64_t g = begin; g < end; g++) {
        const float *p = t->x + g * t->len;
        double sum = 0.0, m2 = 0.0;
        for (int64_t i = 0; i < t->len; i++)
            sum += p[i];
        double mean = sum / (double)t->len;
        for (int64_t i = 0; i < t->len; i++)
            m2 += (p[i] - mean) * (p[i] - mean);
        t->mean[g] = mean;
        t->m2[g] = m2;
    }
}

/* Adds the interior x [1, C, h, w] of one tile to the statistics (Chan et al.'s update). */
static void stats_add(gn_stats *st, const ts_tensor *x)
{
    tile_moments t = {.x = x->data, .len = x->shape[1] / TS_VAE_GROUPS * x->shape[2] * x->shape[3]};
    ts_parallel_for(TS_VAE_GROUPS, 1, tile_moments_range, &t);
    for (int g = 0; g < TS_VAE_GROUPS; g++) {
        double n = st->n[g] + (double)t.len, delta = t.mean[g] - st->mean[g];
        st->m2[g] += t.m2[g] + delta * delta * st->n[g] * (double)t.len / n;
        st->mean[g] += delta * (double)t.len / n;
        st->n[g] = n;
    }
}

/* Per-channel affine form of the normalisation, applied to channels in parallel. */
typedef struct {
    float *x, *scale, *shift;
    int64_t spatial;
} affine_job;

static void affine_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const affine_job *j = ctx;
    for (int64_t ch = begin; ch < end; ch++) {
        float *p = j->x + ch * j->spatial, scale = j->scale[ch], shift = j->shift[ch];
        for (int64_t i = 0; i < j->spatial; i++)
            p[i] = p[i] * scale + shift;
    }
}

/* x = norm(x) with global statistics (+ swish), the arithmetic of ts_group_norm. */
static int stats_norm(ts_arena *arena, const gn_stats *st, const ts_weight *gamma, const ts_weight *beta, int swish,
                      ts_tensor *x)
{
    int64_t c = x->shape[1], per = c / TS_VAE_GROUPS;
    size_t mark = ts_arena_mark(arena);
    float *g = ts_arena_alloc(arena, (size_t)c * sizeof(float)), *b = ts_arena_alloc(arena, (size_t)c * sizeof(float));
    if (!g || !b)
        return TS_ERR_NOMEM;
    ts_weight_to_f32(gamma, g);
    ts_weight_to_f32(beta, b);
    for (int64_t ch = 0; ch < c; ch++) { /* g becomes the scale, b the shift */
        int64_t grp = ch / per;
        double inv = 1.0 / sqrt(st->m2[grp] / st->n[grp] + TS_VAE_EPS);
        g[ch] = (float)inv * g[ch];
        b[ch] = b[ch] - (float)st->mean[grp] * g[ch];
    }
    affine_job j = {x->data, g, b, x->shape[2] * x->shape[3]};
    ts_parallel_for(c, 1, affine_range, &j);
    if (swish)
        ts_silu(x->data, ts_tensor_numel(x));
    ts_arena_reset(arena, mark);
    return 0;
}

/* ---- stages ------------------------------------------------------------------------- */

/* out = conv(swish(norm(in)) upsampled by `up`) + shortcut(res), tile by tile. */
typedef struct {
    const store *in;
    int up;                           /* 1, or 2: nearest x2 before the conv */
    const gn_stats *norm;             /* NULL: the input goes to the conv as it is */
    const ts_weight *norm_w, *norm_b;
    const ts_weight *w, *b;
    ts_conv_params p;                 /* the untiled layer's geometry */
    const store *res;                 /* NULL: no residual */
    const ts_vae_resblock *blk;       /* whose shortcut maps res */
    const store *out;
    gn_stats *stats;                  /* NULL: not gathered */
} stage;

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* The conv input this tile needs: win (may reach outside the image, where it is zero),
 * the in-image part clip, and the source rows/columns src it is upsampled from. */
static void tile_window(const stage *st, const int64_t o[4], int64_t win[4], int64_t clip[4], int64_t src[4])
{
    int64_t k = st->w->shape[2], s = st->p.stride, up = st->up;
    int64_t lim[4] = {0, st->in->h * up, 0, st->in->w * up};
    win[0] = s * o[0] - st->p.pad_top;
    win[1] = s * (o[1] - 1) - st->p.pad_top + k;
    win[2] = s * o[2] - st->p.pad_left;
    win[3] = s * (o[3] - 1) - st->p.pad_left + k;
    for (int i = 0; i < 4; i++) {
        clip[i] = i % 2 ? min64(win[i], lim[i]) : max64(win[i], lim[i]);
        src[i] = i % 2 ? (clip[i] + up - 1) / up : clip[i] / up;
    }
}

static int run_tile(ts_arena *arena, const stage *st, int64_t bi, int64_t bj)
{
    int64_t o[4], win[4], clip[4], src[4], c = st->in->c;
    tile_rect(st->out, bi, bj, o);
    tile_window(st, o, win, clip, src);
    ts_tensor x = ts_arena_tensor(arena, 4, (int64_t[]){1, c, src[1] - src[0], src[3] - src[2]});
    if (!x.data)
        return TS_ERR_NOMEM;
    int rc = transfer(arena, st->in, src, x.data, 0);
    if (!rc && st->norm)
        rc = stats_norm(arena, st->norm, st->norm_w, st->norm_b, 1, &x);
    if (!rc && st->up == 2)
        rc = ts_vae_upsample2(arena, &x);
    if (rc)
        return rc;
    /* The padded window: zero outside the image, the (upsampled) source inside. */
    int64_t ph = win[1] - win[0], pw = win[3] - win[2], xh = x.shape[2], xw = x.shape[3];
    ts_tensor pad = ts_arena_tensor(arena, 4, (int64_t[]){1, c, ph, pw});
    if (!pad.data)
        return TS_ERR_NOMEM;
    memset(pad.data, 0, (size_t)ts_tensor_numel(&pad) * sizeof(float));
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t y = clip[0]; y < clip[1]; y++)
            memcpy(pad.data + (ch * ph + y - win[0]) * pw + clip[2] - win[2],
                   x.data + (ch * xh + y - src[0] * st->up) * xw + clip[2] - src[2] * st->up,
                   (size_t)(clip[3] - clip[2]) * sizeof(float));
    pad = ts_arena_keep(arena, ts_arena_offset(arena, x.data), pad);
    ts_tensor y;
    rc = ts_vae_conv(arena, &pad, st->w, st->b, (ts_conv_params){st->p.stride, 0, 0, 0, 0}, &y);
    if (!rc && (y.shape[2] != o[1] - o[0] || y.shape[3] != o[3] - o[2]))
        rc = ts_fail(TS_ERR_ARG, "tiled VAE: internal error: tile output size");
    if (!rc && st->res) {
        ts_tensor r = ts_arena_tensor(arena, 4, (int64_t[]){1, st->res->c, o[1] - o[0], o[3] - o[2]});
        rc = r.data ? transfer(arena, st->res, o, r.data, 0) : TS_ERR_NOMEM;
        rc = rc ? rc : ts_vae_add_shortcut(arena, st->blk, &r, &y);
    }
    if (!rc && st->stats)
        stats_add(st->stats, &y);
    return rc ? rc : transfer(arena, st->out, o, y.data, 1);
}

static int run_stage(const run *r, const stage *st)
{
    if (st->stats)
        memset(st->stats, 0, sizeof *st->stats);
    int rc = 0;
    for (int64_t bi = 0; bi < r->g.rows && !rc; bi++)
        for (int64_t bj = 0; bj < r->g.cols && !rc; bj++) {
            size_t mark = ts_arena_mark(r->arena);
            rc = run_tile(r->arena, st, bi, bj);
            ts_arena_reset(r->arena, mark);
        }
    return rc;
}

/* x += attention(norm(x)) in place: over the whole latent when it is small enough,
 * else within each tile.  *st holds x's statistics before and after. */
static int run_attention(const run *r, const ts_vae_attention *at, const store *x, gn_stats *st)
{
    gn_stats before = *st;
    memset(st, 0, sizeof *st);
    int whole = x->h * x->w <= r->opts.attn_tokens;
    int64_t rows = whole ? 1 : r->g.rows, cols = whole ? 1 : r->g.cols;
    int rc = 0;
    for (int64_t bi = 0; bi < rows && !rc; bi++)
        for (int64_t bj = 0; bj < cols && !rc; bj++) {
            int64_t o[4] = {0, x->h, 0, x->w};
            if (!whole)
                tile_rect(x, bi, bj, o);
            size_t mark = ts_arena_mark(r->arena);
            int64_t shape[4] = {1, x->c, o[1] - o[0], o[3] - o[2]};
            ts_tensor t = ts_arena_tensor(r->arena, 4, shape), normed = ts_arena_tensor(r->arena, 4, shape);
            rc = t.data && normed.data ? transfer(r->arena, x, o, t.data, 0) : TS_ERR_NOMEM;
            if (!rc) {
                memcpy(normed.data, t.data, (size_t)ts_tensor_numel(&t) * sizeof(float));
                rc = stats_norm(r->arena, &before, &at->norm_w, &at->norm_b, 0, &normed);
            }
            rc = rc ? rc : ts_vae_attention_add(r->arena, at, &normed, &t);
            if (!rc)
                stats_add(st, &t);
            rc = rc ? rc : transfer(r->arena, x, o, t.data, 1);
            ts_arena_reset(r->arena, mark);
        }
    return rc;
}

/* *x = resblock(*x); *st holds x's statistics before and after.  The output goes over
 * x in x's file unless the block widens the channels: a tile reads only its own
 * interior of the residual x, just before writing its output there. */
static int resblock_tiled(const run *r, const ts_vae_resblock *blk, store *x, gn_stats *st)
{
    store h, y = *x;
    gn_stats sh;
    int64_t out_c = blk->conv2_w.shape[0];
    int fresh = out_c > x->c;
    int rc = store_open(r, &h, blk->conv1_w.shape[0], x->f);
    stage a = {.in = x, .up = 1, .norm = st, .norm_w = &blk->norm1_w, .norm_b = &blk->norm1_b,
               .w = &blk->conv1_w, .b = &blk->conv1_b, .p = ts_conv_same(1, 1), .out = &h, .stats = &sh};
    rc = rc ? rc : run_stage(r, &a);
    if (!rc && fresh)
        rc = store_open(r, &y, out_c, x->f);
    y.c = out_c;
    stage b = {.in = &h, .up = 1, .norm = &sh, .norm_w = &blk->norm2_w, .norm_b = &blk->norm2_b,
               .w = &blk->conv2_w, .b = &blk->conv2_b, .p = ts_conv_same(1, 1), .res = x, .blk = blk,
               .out = &y, .stats = st};
    rc = rc ? rc : run_stage(r, &b);
    store_close(&h);
    if (!fresh)
        x->c = out_c;
    else if (y.fd >= 0) {
        store_close(x);
        *x = y;
    }
    return rc;
}

static int mid_tiled(const run *r, const ts_vae_mid *m, store *x, gn_stats *st)
{
    int rc = resblock_tiled(r, &m->block_1, x, st);
    rc = rc ? rc : run_attention(r, &m->attn, x, st);
    return rc ? rc : resblock_tiled(r, &m->block_2, x, st);
}

/* *x = conv(up(*x)) into a new store at `f` pixels per latent pixel. */
static int resample_tiled(const run *r, store *x, int up, const ts_weight *w, const ts_weight *b, ts_conv_params p,
                          int64_t f, gn_stats *st)
{
    store y;
    int rc = store_open(r, &y, w->shape[0], f);
    stage s = {.in = x, .up = up, .w = w, .b = b, .p = p, .out = &y, .stats = st};
    rc = rc ? rc : run_stage(r, &s);
    store_close(x);
    *x = y;
    return rc;
}

/* The network's last layers, swish(norm_out) then conv_out, into memory. */
static int output_tiled(const run *r, const store *x, const gn_stats *st, const ts_weight *norm_w,
                        const ts_weight *norm_b, const ts_weight *w, const ts_weight *b, float *out)
{
    store o = store_ram(&r->g, w->shape[0], x->f, out);
    stage s = {.in = x, .up = 1, .norm = st, .norm_w = norm_w, .norm_b = norm_b, .w = w, .b = b,
               .p = ts_conv_same(1, 1), .out = &o};
    return run_stage(r, &s);
}

/* ---- whole passes ------------------------------------------------------------------ */

static void setup(run *r, ts_arena *arena, const ts_vae_tiling *opts, int64_t h, int64_t w)
{
    memset(r, 0, sizeof *r);
    r->arena = arena;
    if (opts)
        r->opts = *opts;
    if (r->opts.tile <= 0)
        r->opts.tile = TS_VAE_TILE_DEFAULT;
    if (r->opts.attn_tokens <= 0)
        r->opts.attn_tokens = TS_VAE_ATTN_TOKENS_DEFAULT;
    if (!r->opts.spill_dir)
        r->opts.spill_dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (r->opts.tile > (h > w ? h : w)) /* one tile: no slot (sparse file) larger than the image */
        r->opts.tile = (int)(h > w ? h : w);
    r->g = (grid){.h = h, .w = w, .tile = r->opts.tile};
    r->g.rows = (h + r->g.tile - 1) / r->g.tile;
    r->g.cols = (w + r->g.tile - 1) / r->g.tile;
}

static int decode_one(const run *r, const ts_vae *vae, float *latent, float *image)
{
    const ts_vae_decoder *d = &vae->dec;
    store x = store_ram(&r->g, vae->z_channels, 1, latent);
    gn_stats st;
    int rc = resample_tiled(r, &x, 1, &d->conv_in_w, &d->conv_in_b, ts_conv_same(1, 1), 1, &st);
    rc = rc ? rc : mid_tiled(r, &d->mid, &x, &st);
    for (int i = vae->levels - 1; i >= 0 && !rc; i--) {
        for (int j = 0; j <= vae->blocks_per_level && !rc; j++)
            rc = resblock_tiled(r, &d->blocks[i][j], &x, &st);
        if (!rc && i > 0)
            rc = resample_tiled(r, &x, 2, &d->upsample_w[i], &d->upsample_b[i], ts_conv_same(1, 1), 2 * x.f, &st);
    }
    rc = rc ? rc : output_tiled(r, &x, &st, &d->norm_out_w, &d->norm_out_b, &d->conv_out_w, &d->conv_out_b, image);
    store_close(&x);
    return rc;
}

int ts_vae_decode_tiled_into(const ts_vae *vae, const ts_tensor *latent, const ts_vae_tiling *opts, ts_arena *arena,
                             float *image)
{
    size_t mark = ts_arena_mark(arena);
    ts_tensor lat;
    int rc = ts_vae_decoder_input(vae, latent, arena, &lat);
    if (rc)
        return rc;
    int64_t f = (int64_t)1 << (vae->levels - 1), h = lat.shape[2], w = lat.shape[3];
    run r;
    setup(&r, arena, opts, h, w);
    for (int64_t b = 0; b < lat.shape[0] && !rc; b++)
        rc = decode_one(&r, vae, lat.data + b * lat.shape[1] * h * w, image + b * vae->image_channels * h * f * w * f);
    ts_arena_reset(arena, mark);
    return rc;
}

int ts_vae_decode_tiled(const ts_vae *vae, const ts_tensor *latent, const ts_vae_tiling *opts, ts_arena *arena,
                        ts_tensor *image)
{
    size_t mark = ts_arena_mark(arena);
    int64_t f = (int64_t)1 << (vae->levels - 1);
    ts_tensor out = ts_arena_tensor(arena, 4,
                                    (int64_t[]){latent->shape[0], vae->image_channels, latent->shape[2] * f,
                                                latent->shape[3] * f});
    if (!out.data)
        return ts_fail(TS_ERR_NOMEM, "out of memory for the decoded image");
    int rc = ts_vae_decode_tiled_into(vae, latent, opts, arena, out.data);
    if (rc) {
        ts_arena_reset(arena, mark);
        return rc;
    }
    *image = ts_arena_keep(arena, mark, out);
    return 0;
}

static int encode_one(const run *r, const ts_vae *vae, float *image, float *out)
{
    const ts_vae_encoder *e = &vae->enc;
    int64_t f = (int64_t)1 << (vae->levels - 1);
    store x = store_ram(&r->g, vae->image_channels, f, image);
    gn_stats st;
    int rc = resample_tiled(r, &x, 1, &e->conv_in_w, &e->conv_in_b, ts_conv_same(1, 1), f, &st);
    for (int i = 0; i < vae->levels && !rc; i++) {
        for (int j = 0; j < vae->blocks_per_level && !rc; j++)
            rc = resblock_tiled(r, &e->blocks[i][j], &x, &st);
        if (!rc && i + 1 < vae->levels) /* pad right and bottom by one, 3x3 stride 2 */
            rc = resample_tiled(r, &x, 1, &e->downsample_w[i], &e->downsample_b[i], (ts_conv_params){2, 0, 0, 1, 1},
                                x.f / 2, &st);
    }
    rc = rc ? rc : mid_tiled(r, &e->mid, &x, &st);
    rc = rc ? rc : output_tiled(r, &x, &st, &e->norm_out_w, &e->norm_out_b, &e->conv_out_w, &e->conv_out_b, out);
    store_close(&x);
    return rc;
}

int ts_vae_encoder_forward_tiled(const ts_vae *vae, const ts_tensor *image, const ts_vae_tiling *opts,
                                 ts_arena *arena, ts_tensor *out)
{
    int rc = ts_vae_encoder_check(vae, image);
    if (rc)
        return rc;
    int64_t f = (int64_t)1 << (vae->levels - 1), h = image->shape[2] / f, w = image->shape[3] / f;
    int64_t plane = image->shape[1] * image->shape[2] * image->shape[3];
    size_t mark = ts_arena_mark(arena);
    ts_tensor m = ts_arena_tensor(arena, 4, (int64_t[]){image->shape[0], 2 * vae->z_channels, h, w});
    if (!m.data)
        return TS_ERR_NOMEM;
    run r;
    setup(&r, arena, opts, h, w);
    for (int64_t b = 0; b < image->shape[0] && !rc; b++)
        rc = encode_one(&r, vae, image->data + b * plane, m.data + b * m.shape[1] * h * w);
    if (rc) {
        ts_arena_reset(arena, mark);
        return rc;
    }
    *out = m;
    return 0;
}

int ts_vae_encode_tiled(const ts_vae *vae, const ts_tensor *image, const ts_vae_tiling *opts, ts_arena *arena,
                        ts_tensor *moments)
{
    int rc = ts_vae_encoder_forward_tiled(vae, image, opts, arena, moments);
    return rc ? rc : ts_vae_quant(vae, arena, moments);
}
