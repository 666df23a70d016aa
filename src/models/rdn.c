/*
 * RDN and RRDN super-resolution networks (see rdn.h), loaded by their Keras layer
 * names from UpscalerJS's TF.js models and run on ts_conv2d.
 *
 * RDN (Zhang et al. 2018, fig. 2):  F_m1 = conv(LR); F_0 = conv(F_m1); D residual
 * dense blocks, each C 3x3 convs of growth G whose inputs are everything so far
 * (dense concatenation), fused back to G0 channels by a 1x1 "LFF" and added to the
 * block input; GFF_1 (1x1) over all D block outputs, GFF_2 (3x3), plus F_m1; then
 * ISR's upscale net UPN1..3, a nearest upsampling by s and the SR conv.
 *
 * RRDN (ESRGAN): Pre_blocks_conv; T residual-in-residual blocks, each D dense blocks
 * (3x3 LFF, output scaled by beta = 0.2 before the residual add) whose chain is again
 * scaled by 0.2 and added to the RRDB input; post_blocks_conv plus Pre_blocks_conv;
 * PreShuffle to 3 s^2 channels, depth-to-space (TF's NHWC order) and the SR conv.
 *
 * Three choices keep it fast and small.  Activations are NCHW with a batch of one,
 * so a channel concatenation is a contiguous slice: each dense block owns one buffer
 * [G0 + C*G, h, w] and every conv writes its G channels right after the ones it read,
 * with no copies.  RDN's "nearest upsample, then 3x3 conv" is folded at load time
 * into one 3x3 conv at low resolution with s^2 output phases followed by a pixel
 * shuffle (each upsampled pixel's 3x3 taps land on at most 3x3 low-res pixels, so
 * the taps that share a source pixel are summed into one weight): the same sums,
 * without the s^2-times larger upsampled tensor.  Temporaries come from an arena in
 * stack order, so the peak is known in advance (ts_rdn_workspace) and tiles can be
 * sized to a memory budget.
 */
#include "models/rdn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/tfjs.h"
#include "ops/activation.h"
#include "ops/conv.h"

/* The residual scaling of ESRGAN's blocks (UpscalerJS's MultiplyBeta layer). */
#define RRDN_BETA 0.2f
/* Generous bounds on what the graph may declare, to keep sizes sane on bad input. */
#define MAX_BLOCKS 64
#define MAX_SCALE 16

typedef enum { ARCH_RDN, ARCH_RRDN } rdn_arch;

typedef struct {
    ts_weight kernel; /* [out, in, k, k] f32 */
    ts_weight bias;   /* [out] f32 */
    int pad;          /* 'same' padding: (k - 1) / 2 */
} conv_layer;

struct ts_rdn {
    rdn_arch arch;
    int scale;
    int C, D, G, G0; /* convs per dense block, dense blocks (per RRDB), growth, feature width */
    int T;           /* RRDN: residual-in-residual blocks; RDN: 1 */
    float range;     /* the pixel range the network was trained on: RDN 255, RRDN 1 */

    /* RDN */
    conv_layer F_m1, F_0;    /* shallow features */
    conv_layer GFF_1, GFF_2; /* global feature fusion */
    conv_layer UPN[3];       /* upscale net: UPN1 (ReLU), UPN2 (ReLU), UPN3 to 3 s^2 channels */
    conv_layer SR_phases;    /* UPsample + SR folded: 3 s^2 outputs, then a pixel shuffle */
    /* RRDN */
    conv_layer pre_blocks, post_blocks, pre_shuffle, SR;
    /* both: dense convs F[t][d][c] and fusions LFF[t][d] */
    conv_layer *F, *LFF;

    float *pool; /* every weight, transposed to [out, in, k, k] */
    size_t pool_used, pool_size;
    char description[96];
};

/* ---- loading ---------------------------------------------------------------- */

static float *pool_take(ts_rdn *m, size_t n)
{
    if (m->pool_used + n > m->pool_size)
        return NULL;
    float *p = m->pool + m->pool_used;
    m->pool_used += n;
    return p;
}

static int out_channels(const conv_layer *l)
{
    return (int)l->kernel.shape[0];
}

/* Checks that a Conv2D layer is the plain kind this file runs: stride 1, no dilation,
 * linear activation (ReLUs are separate Activation layers), 'same' padding. */
static int check_conv_config(const ts_tfjs_layer *l, int k)
{
    int v[2] = {0, 0};
    const char *padding = ts_tfjs_config_str(l, "padding");
    const char *activation = ts_tfjs_config_str(l, "activation");
    const char *format = ts_tfjs_config_str(l, "data_format");
    if (ts_tfjs_config_ints(l, "strides", v, 2) != 2 || v[0] != 1 || v[1] != 1)
        return ts_fail(TS_ERR_UNSUPPORTED, "layer %s: only stride 1 is supported", l->name);
    if (ts_tfjs_config_ints(l, "dilation_rate", v, 2) == 2 && (v[0] != 1 || v[1] != 1))
        return ts_fail(TS_ERR_UNSUPPORTED, "layer %s: dilation is not supported", l->name);
    if (!padding || !(strcmp(padding, "same") == 0 || (k == 1 && strcmp(padding, "valid") == 0)))
        return ts_fail(TS_ERR_UNSUPPORTED, "layer %s: only 'same' padding is supported", l->name);
    if (activation && strcmp(activation, "linear") != 0)
        return ts_fail(TS_ERR_UNSUPPORTED, "layer %s: fused activation '%s' is not supported", l->name, activation);
    if (format && strcmp(format, "channels_last") != 0)
        return ts_fail(TS_ERR_UNSUPPORTED, "layer %s: data_format %s", l->name, format);
    return TS_OK;
}

/* Loads Conv2D layer `name` with a k x k kernel from `in` to `out` channels (out < 0:
 * any), transposing Keras's [k, k, in, out] kernel to [out, in, k, k]. */
static int load_conv(const ts_tfjs_model *tf, ts_rdn *m, int in, int out, int k, conv_layer *l, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static int load_conv(const ts_tfjs_model *tf, ts_rdn *m, int in, int out, int k, conv_layer *l, const char *fmt, ...)
{
    char name[64], key[80];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const ts_tfjs_layer *layer = ts_tfjs_find_layer(tf, name);
    if (!layer || strcmp(layer->class_name, "Conv2D") != 0)
        return ts_fail(TS_ERR_MODEL, "no Conv2D layer %s", name);
    int rc = check_conv_config(layer, k);
    if (rc < 0)
        return rc;
    snprintf(key, sizeof key, "%s/kernel", name);
    const ts_tfjs_weight *w = ts_tfjs_find_weight(tf, key);
    if (!w || w->ndim != 4 || w->shape[0] != k || w->shape[1] != k || w->shape[2] != in ||
        (out >= 0 && w->shape[3] != out))
        return ts_fail(TS_ERR_MODEL, "%s is missing or not [%d, %d, %d, %d]", key, k, k, in, out);
    out = (int)w->shape[3];
    snprintf(key, sizeof key, "%s/bias", name);
    const ts_tfjs_weight *b = ts_tfjs_find_weight(tf, key);
    if (!b || b->ndim != 1 || b->shape[0] != out)
        return ts_fail(TS_ERR_MODEL, "%s is missing or not [%d]", key, out);

    float *kernel = pool_take(m, (size_t)out * in * k * k), *bias = pool_take(m, (size_t)out);
    if (!kernel || !bias)
        return ts_fail(TS_ERR_MODEL, "%s: more weights than the manifest holds", name);
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++)
            for (int y = 0; y < k; y++)
                for (int x = 0; x < k; x++)
                    kernel[(((size_t)o * in + i) * k + y) * k + x] = w->data[(((size_t)y * k + x) * in + i) * out + o];
    memcpy(bias, b->data, (size_t)out * sizeof *bias);
    l->kernel = (ts_weight){TS_DTYPE_F32, 4, {out, in, k, k}, kernel};
    l->bias = (ts_weight){TS_DTYPE_F32, 1, {out}, bias};
    l->pad = (k - 1) / 2;
    return TS_OK;
}

/* How many of the layers <prefix>1<suffix>, <prefix>2<suffix>, ... exist. */
static int count_layers(const ts_tfjs_model *tf, const char *prefix, const char *suffix)
{
    char name[64];
    int n = 0;
    do
        snprintf(name, sizeof name, "%s%d%s", prefix, ++n, suffix);
    while (n <= MAX_BLOCKS && ts_tfjs_find_layer(tf, name));
    return n - 1;
}

/* Output channels of Conv2D layer `name` according to its kernel, or -1. */
static int conv_width(const ts_tfjs_model *tf, const char *name)
{
    char key[80];
    snprintf(key, sizeof key, "%s/kernel", name);
    const ts_tfjs_weight *w = ts_tfjs_find_weight(tf, key);
    return w && w->ndim == 4 && w->shape[3] <= 4096 ? (int)w->shape[3] : -1;
}

/* Every layer's class must be one the forward pass implements, in the numbers the
 * architecture implies; with the per-layer shape checks this pins the graph down. */
static int check_graph(const ts_tfjs_model *tf, const ts_rdn *m)
{
    int T = m->T, D = m->D, C = m->C;
    char shuffle[32];
    snprintf(shuffle, sizeof shuffle, "PixelShuffle%dx", m->scale);
    const struct {
        const char *class_name;
        int count;
    } expect[] = {
        {"InputLayer", 1},
        {"Conv2D", m->arch == ARCH_RDN ? 2 + D * (C + 1) + 2 + 3 + 1 : 1 + T * D * (C + 1) + 3},
        {"Activation", m->arch == ARCH_RDN ? D * C + 2 : T * D * C},
        {"Concatenate", m->arch == ARCH_RDN ? D * C + 1 : T * D * C},
        {"Add", m->arch == ARCH_RDN ? D + 1 : T * D + T + 1},
        {"MultiplyBeta", m->arch == ARCH_RDN ? 0 : T * D + T},
        {"UpSampling2D", m->arch == ARCH_RDN},
        {shuffle, m->arch == ARCH_RRDN},
    };
    int known = 0;
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        int n = ts_tfjs_count_class(tf, expect[i].class_name);
        if (n != expect[i].count)
            return ts_fail(TS_ERR_MODEL, "%d %s layers where the architecture has %d", n, expect[i].class_name,
                           expect[i].count);
        known += n;
    }
    if (known != tf->n_layers)
        return ts_fail(TS_ERR_UNSUPPORTED, "%d layers of classes this model file does not run",
                       tf->n_layers - known);
    for (int i = 0; i < tf->n_layers; i++) {
        const ts_tfjs_layer *l = &tf->layers[i];
        const char *act = ts_tfjs_config_str(l, "activation");
        if (strcmp(l->class_name, "Activation") == 0 && (!act || strcmp(act, "relu") != 0))
            return ts_fail(TS_ERR_UNSUPPORTED, "layer %s: activation %s (only relu)", l->name, act ? act : "?");
    }
    if (strcmp(tf->output, "SR") != 0)
        return ts_fail(TS_ERR_MODEL, "the output layer is %s, not SR", tf->output);
    return TS_OK;
}

/* The scale, as the upsampling layer says. */
static int read_scale(const ts_tfjs_model *tf, rdn_arch arch, int *scale)
{
    if (arch == ARCH_RRDN) {
        const ts_tfjs_layer *l = ts_tfjs_find_layer(tf, "pixel_shuffle");
        char tail = 0;
        if (!l || sscanf(l->class_name, "PixelShuffle%dx%c", scale, &tail) != 1)
            return ts_fail(TS_ERR_MODEL, "no PixelShuffle<s>x layer named pixel_shuffle");
    } else {
        const ts_tfjs_layer *l = ts_tfjs_find_layer(tf, "UPsample");
        int size[2] = {0, 0};
        const char *interp = l ? ts_tfjs_config_str(l, "interpolation") : NULL;
        if (!l || strcmp(l->class_name, "UpSampling2D") != 0 || ts_tfjs_config_ints(l, "size", size, 2) != 2 ||
            size[0] != size[1])
            return ts_fail(TS_ERR_MODEL, "no square UpSampling2D layer named UPsample");
        if (interp && strcmp(interp, "nearest") != 0)
            return ts_fail(TS_ERR_UNSUPPORTED, "UPsample: %s interpolation (only nearest)", interp);
        *scale = size[0];
    }
    if (*scale < 1 || *scale > MAX_SCALE)
        return ts_fail(TS_ERR_UNSUPPORTED, "scale %d", *scale);
    return TS_OK;
}

/* Rewrites SR(UPsample_s(u)) as PixelShuffle_s(SR_phases(u)).  Output pixel
 * (s*y + py, s*x + px) of a 3x3 conv over the nearest-upsampled u reads upsampled
 * rows s*y + py + i (i = -1..1), which are u rows y + floor((py + i) / s): so the
 * phase (py, px) is a 3x3 conv over u whose tap (a, b) sums the SR taps that land
 * on u[y + a, x + b].  Zero padding agrees because the upsampled image ends exactly
 * where u does.  Output channel (py * s + px) * 3 + c matches depth_to_space. */
static int fold_upsample_into_sr(ts_rdn *m, const conv_layer *sr)
{
    int s = m->scale, cin = (int)sr->kernel.shape[1], cout = out_channels(sr), phases = s * s * cout;
    float *kernel = pool_take(m, (size_t)phases * cin * 9), *bias = pool_take(m, (size_t)phases);
    if (!kernel || !bias)
        return ts_fail(TS_ERR_NOMEM, "weight pool exhausted");
    memset(kernel, 0, (size_t)phases * cin * 9 * sizeof *kernel);
    const float *k = sr->kernel.data, *b = sr->bias.data;
    for (int py = 0; py < s; py++)
        for (int px = 0; px < s; px++)
            for (int c = 0; c < cout; c++) {
                int o = (py * s + px) * cout + c;
                bias[o] = b[c];
                for (int ci = 0; ci < cin; ci++)
                    for (int i = -1; i <= 1; i++)
                        for (int j = -1; j <= 1; j++) {
                            int a = (py + i + s) / s - 1, bb = (px + j + s) / s - 1; /* floor division */
                            kernel[(((size_t)o * cin + ci) * 3 + a + 1) * 3 + bb + 1] +=
                                k[(((size_t)c * cin + ci) * 3 + i + 1) * 3 + j + 1];
                        }
            }
    m->SR_phases.kernel = (ts_weight){TS_DTYPE_F32, 4, {phases, cin, 3, 3}, kernel};
    m->SR_phases.bias = (ts_weight){TS_DTYPE_F32, 1, {phases}, bias};
    m->SR_phases.pad = 1;
    return TS_OK;
}

/* The residual dense blocks: RDN's F_d_c / LFF_d (t = 0) or RRDN's F_t_d_c / LFF_t_d. */
static int load_blocks(const ts_tfjs_model *tf, ts_rdn *m)
{
    int T = m->T, D = m->D, C = m->C, G = m->G, G0 = m->G0, rrdn = m->arch == ARCH_RRDN;
    m->F = calloc((size_t)T * D * C, sizeof *m->F);
    m->LFF = calloc((size_t)T * D, sizeof *m->LFF);
    if (!m->F || !m->LFF)
        return ts_fail(TS_ERR_NOMEM, "no memory for the block table");
    int rc = TS_OK;
    for (int t = 0; t < T && rc == TS_OK; t++)
        for (int d = 0; d < D && rc == TS_OK; d++) {
            for (int c = 0; c < C && rc == TS_OK; c++) {
                conv_layer *l = &m->F[(t * D + d) * C + c];
                rc = rrdn ? load_conv(tf, m, G0 + c * G, G, 3, l, "F_%d_%d_%d", t + 1, d + 1, c + 1)
                          : load_conv(tf, m, G0 + c * G, G, 3, l, "F_%d_%d", d + 1, c + 1);
            }
            if (rc == TS_OK)
                rc = rrdn ? load_conv(tf, m, G0 + C * G, G0, 3, &m->LFF[t * D + d], "LFF_%d_%d", t + 1, d + 1)
                          : load_conv(tf, m, G0 + C * G, G0, 1, &m->LFF[d], "LFF_%d", d + 1);
        }
    return rc;
}

static int load_rdn(const ts_tfjs_model *tf, ts_rdn *m)
{
    int s = m->scale, rc;
    if ((rc = load_conv(tf, m, 3, m->G0, 3, &m->F_m1, "F_m1")) < 0 ||
        (rc = load_conv(tf, m, m->G0, m->G0, 3, &m->F_0, "F_0")) < 0 || (rc = load_blocks(tf, m)) < 0 ||
        (rc = load_conv(tf, m, m->D * m->G0, m->G0, 1, &m->GFF_1, "GFF_1")) < 0 ||
        (rc = load_conv(tf, m, m->G0, m->G0, 3, &m->GFF_2, "GFF_2")) < 0 ||
        (rc = load_conv(tf, m, m->G0, -1, 5, &m->UPN[0], "UPN1")) < 0 ||
        (rc = load_conv(tf, m, out_channels(&m->UPN[0]), -1, 3, &m->UPN[1], "UPN2")) < 0 ||
        (rc = load_conv(tf, m, out_channels(&m->UPN[1]), 3 * s * s, 3, &m->UPN[2], "UPN3")) < 0)
        return rc;
    conv_layer sr;
    if ((rc = load_conv(tf, m, 3 * s * s, 3, 3, &sr, "SR")) < 0)
        return rc;
    return fold_upsample_into_sr(m, &sr);
}

static int load_rrdn(const ts_tfjs_model *tf, ts_rdn *m)
{
    int s = m->scale, rc;
    if ((rc = load_conv(tf, m, 3, m->G0, 3, &m->pre_blocks, "Pre_blocks_conv")) < 0 ||
        (rc = load_blocks(tf, m)) < 0 ||
        (rc = load_conv(tf, m, m->G0, m->G0, 3, &m->post_blocks, "post_blocks_conv")) < 0 ||
        (rc = load_conv(tf, m, m->G0, 3 * s * s, 3, &m->pre_shuffle, "PreShuffle")) < 0)
        return rc;
    return load_conv(tf, m, 3, 3, 3, &m->SR, "SR");
}

static int load(const ts_tfjs_model *tf, ts_rdn *m)
{
    if (ts_tfjs_find_layer(tf, "Pre_blocks_conv")) {
        m->arch = ARCH_RRDN;
        m->range = 1.0f; /* UpscalerJS: inputRange [0, 1] for rrdn */
        m->T = count_layers(tf, "RRDB_", "_out");
        m->D = count_layers(tf, "LFF_1_", "");
        m->C = count_layers(tf, "F_1_1_", "");
        m->G0 = conv_width(tf, "Pre_blocks_conv");
        m->G = conv_width(tf, "F_1_1_1");
    } else if (ts_tfjs_find_layer(tf, "F_m1")) {
        m->arch = ARCH_RDN;
        m->range = 255.0f; /* UpscalerJS: inputRange [0, 255] for rdn */
        m->T = 1;
        m->D = count_layers(tf, "LFF_", "");
        m->C = count_layers(tf, "F_1_", "");
        m->G0 = conv_width(tf, "F_0");
        m->G = conv_width(tf, "F_1_1");
    } else {
        return ts_fail(TS_ERR_MODEL, "neither an RDN (no layer F_m1) nor an RRDN (no Pre_blocks_conv)");
    }
    if (m->T < 1 || m->D < 1 || m->C < 1 || m->G < 1 || m->G0 < 1)
        return ts_fail(TS_ERR_MODEL, "could not read the block sizes from the graph");
    int rc = read_scale(tf, m->arch, &m->scale);
    if (rc < 0 || (rc = check_graph(tf, m)) < 0)
        return rc;

    size_t floats = 9 * (size_t)(3 * m->scale * m->scale) * (3 * m->scale * m->scale + 1); /* SR_phases */
    for (int i = 0; i < tf->n_weights; i++) {
        size_t n = 1;
        for (int d = 0; d < tf->weights[i].ndim; d++)
            n *= (size_t)tf->weights[i].shape[d];
        floats += n;
    }
    m->pool = malloc(floats * sizeof *m->pool);
    m->pool_size = floats;
    if (!m->pool)
        return ts_fail(TS_ERR_NOMEM, "no memory for %zu weights", floats);
    rc = m->arch == ARCH_RDN ? load_rdn(tf, m) : load_rrdn(tf, m);
    if (rc < 0)
        return rc;
    if (m->arch == ARCH_RDN)
        snprintf(m->description, sizeof m->description, "RDN C=%d D=%d G=%d G0=%d x%d", m->C, m->D, m->G, m->G0,
                 m->scale);
    else
        snprintf(m->description, sizeof m->description, "RRDN C=%d D=%d G=%d G0=%d T=%d x%d", m->C, m->D, m->G,
                 m->G0, m->T, m->scale);
    return TS_OK;
}

int ts_rdn_load(const char *model_json, ts_rdn **out)
{
    *out = NULL;
    ts_tfjs_model tf;
    int rc = ts_tfjs_load(model_json, &tf);
    if (rc < 0)
        return rc;
    ts_rdn *m = calloc(1, sizeof *m);
    if (!m) {
        ts_tfjs_free(&tf);
        return ts_fail(TS_ERR_NOMEM, "no memory");
    }
    rc = load(&tf, m);
    ts_tfjs_free(&tf);
    if (rc < 0) {
        ts_rdn_free(m);
        return ts_fail_context(rc, "%s: ", model_json);
    }
    *out = m;
    return TS_OK;
}

void ts_rdn_free(ts_rdn *m)
{
    if (!m)
        return;
    free(m->F);
    free(m->LFF);
    free(m->pool);
    free(m);
}

int ts_rdn_scale(const ts_rdn *m)
{
    return m->scale;
}

const char *ts_rdn_describe(const ts_rdn *m)
{
    return m->description;
}

int ts_rdn_halo(const ts_rdn *m)
{
    int blocks = 0;
    for (int i = 0; i < m->T * m->D; i++) {
        for (int c = 0; c < m->C; c++)
            blocks += m->F[i * m->C + c].pad;
        blocks += m->LFF[i].pad;
    }
    if (m->arch == ARCH_RDN)
        return m->F_m1.pad + m->F_0.pad + blocks + m->GFF_1.pad + m->GFF_2.pad + m->UPN[0].pad + m->UPN[1].pad +
               m->UPN[2].pad + m->SR_phases.pad;
    /* SR runs after the shuffle: its reach of `pad` output pixels is ceil(pad / s) input pixels */
    return m->pre_blocks.pad + blocks + m->post_blocks.pad + m->pre_shuffle.pad + (m->SR.pad + m->scale - 1) / m->scale;
}

/* ---- forward ---------------------------------------------------------------- */

/* Number of tensors the forward passes allocate at most, for alignment slack. */
#define MAX_ALLOCS 16

size_t ts_rdn_workspace(const ts_rdn *m, int64_t h, int64_t w)
{
    int64_t ss = (int64_t)m->scale * m->scale, G0 = m->G0, dense = G0 + (int64_t)m->C * m->G, floats;
    if (m->arch == ARCH_RDN) {
        int64_t blocks = dense + G0;
        int64_t tail = 2 * G0 + out_channels(&m->UPN[0]) + out_channels(&m->UPN[1]) + 2 * 3 * ss;
        floats = 3 + G0 + m->D * G0 + (blocks > tail ? blocks : tail);
    } else {
        floats = 3 * G0 + dense + 3 * ss + 3 * ss;
    }
    return (size_t)(floats * h * w) * sizeof(float) + MAX_ALLOCS * 64;
}

static int feature(ts_arena *a, int64_t c, int64_t h, int64_t w, ts_tensor *t)
{
    *t = ts_arena_tensor(a, 4, (int64_t[]){1, c, h, w});
    return t->data ? TS_OK : TS_ERR_NOMEM;
}

/* Channels [c0, c0 + n) of a batch-of-one tensor: a contiguous view. */
static ts_tensor channels(const ts_tensor *t, int64_t c0, int64_t n)
{
    return ts_tensor_view(t->data + c0 * t->shape[2] * t->shape[3], 4, (int64_t[]){1, n, t->shape[2], t->shape[3]});
}

static int conv(const conv_layer *l, const ts_tensor *x, ts_tensor *y)
{
    return ts_conv2d(x, &l->kernel, &l->bias, ts_conv_same(1, l->pad), y);
}

static int conv_relu(const conv_layer *l, const ts_tensor *x, ts_tensor *y)
{
    int rc = conv(l, x, y);
    if (rc == TS_OK)
        ts_relu(y->data, ts_tensor_numel(y));
    return rc;
}

/* y += a * x over n floats (the residual adds; a = 1 or beta). */
static void add_scaled(float *y, const float *x, float a, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

static void scale_values(float *x, float a, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] *= a;
}

/* depth_to_space as TF does it on NHWC, here on NCHW: channel (py * s + px) * C + c
 * of pixel (y, x) goes to channel c of pixel (s * y + py, s * x + px). */
static void pixel_shuffle(const ts_tensor *in, int s, ts_tensor *out)
{
    int64_t C = out->shape[1], h = in->shape[2], w = in->shape[3], W = out->shape[3];
    for (int64_t c = 0; c < C; c++)
        for (int py = 0; py < s; py++)
            for (int px = 0; px < s; px++) {
                const float *src = in->data + ((py * s + px) * C + c) * h * w;
                float *dst = out->data + c * h * s * W + py * W + px;
                for (int64_t y = 0; y < h; y++)
                    for (int64_t x = 0; x < w; x++)
                        dst[y * s * W + x * s] = src[y * w + x];
            }
}

/* One residual dense block.  dense[0, G0) holds its input on entry and its output on
 * return: C convs each read dense[0, G0 + c*G) and append G ReLU'd channels; LFF fuses
 * all G0 + C*G channels into `lff`, and output = input + beta * lff. */
static int dense_block(const ts_rdn *m, const conv_layer *F, const conv_layer *LFF, float beta, ts_tensor *dense,
                       ts_tensor *lff)
{
    int G0 = m->G0, G = m->G, rc;
    for (int c = 0; c < m->C; c++) {
        ts_tensor in = channels(dense, 0, G0 + c * G), grown = channels(dense, G0 + c * G, G);
        if ((rc = conv_relu(&F[c], &in, &grown)) < 0)
            return rc;
    }
    if ((rc = conv(LFF, dense, lff)) < 0)
        return rc;
    add_scaled(dense->data, lff->data, beta, ts_tensor_numel(lff));
    return TS_OK;
}

static int forward_rdn(const ts_rdn *m, const ts_tensor *x, ts_tensor *y, ts_arena *a)
{
    int64_t h = x->shape[2], w = x->shape[3], hw = h * w, G0 = m->G0;
    ts_tensor lr, F_m1, lrl_all, dense, lff, gff1, fdf, up1, up2, up3, phases;
    int rc;
    if ((rc = feature(a, 3, h, w, &lr)) < 0 || (rc = feature(a, G0, h, w, &F_m1)) < 0 ||
        (rc = feature(a, m->D * G0, h, w, &lrl_all)) < 0)
        return rc;
    memcpy(lr.data, x->data, (size_t)(3 * hw) * sizeof(float));
    scale_values(lr.data, m->range, 3 * hw);

    size_t blocks_mark = ts_arena_mark(a);
    if ((rc = feature(a, G0 + m->C * m->G, h, w, &dense)) < 0 || (rc = feature(a, G0, h, w, &lff)) < 0)
        return rc;
    ts_tensor block_io = channels(&dense, 0, G0);
    if ((rc = conv(&m->F_m1, &lr, &F_m1)) < 0 || (rc = conv(&m->F_0, &F_m1, &block_io)) < 0)
        return rc;
    for (int d = 0; d < m->D; d++) {
        if ((rc = dense_block(m, &m->F[d * m->C], &m->LFF[d], 1.0f, &dense, &lff)) < 0)
            return rc;
        memcpy(lrl_all.data + d * G0 * hw, block_io.data, (size_t)(G0 * hw) * sizeof(float));
    }
    ts_arena_reset(a, blocks_mark);

    if ((rc = feature(a, G0, h, w, &gff1)) < 0 || (rc = feature(a, G0, h, w, &fdf)) < 0 ||
        (rc = feature(a, out_channels(&m->UPN[0]), h, w, &up1)) < 0 ||
        (rc = feature(a, out_channels(&m->UPN[1]), h, w, &up2)) < 0 ||
        (rc = feature(a, out_channels(&m->UPN[2]), h, w, &up3)) < 0 ||
        (rc = feature(a, out_channels(&m->SR_phases), h, w, &phases)) < 0)
        return rc;
    if ((rc = conv(&m->GFF_1, &lrl_all, &gff1)) < 0 || (rc = conv(&m->GFF_2, &gff1, &fdf)) < 0)
        return rc;
    add_scaled(fdf.data, F_m1.data, 1.0f, G0 * hw);
    if ((rc = conv_relu(&m->UPN[0], &fdf, &up1)) < 0 || (rc = conv_relu(&m->UPN[1], &up1, &up2)) < 0 ||
        (rc = conv(&m->UPN[2], &up2, &up3)) < 0 || (rc = conv(&m->SR_phases, &up3, &phases)) < 0)
        return rc;
    pixel_shuffle(&phases, m->scale, y);
    scale_values(y->data, 1.0f / m->range, ts_tensor_numel(y));
    return TS_OK;
}

static int forward_rrdn(const ts_rdn *m, const ts_tensor *x, ts_tensor *y, ts_arena *a)
{
    int64_t h = x->shape[2], w = x->shape[3], hw = h * w, G0 = m->G0, s = m->scale;
    size_t bytes = (size_t)(G0 * hw) * sizeof(float);
    ts_tensor pre, rrdb, dense, lff, shuffled, hr;
    int rc;
    if ((rc = feature(a, G0, h, w, &pre)) < 0 || (rc = feature(a, G0, h, w, &rrdb)) < 0 ||
        (rc = feature(a, G0 + m->C * m->G, h, w, &dense)) < 0 || (rc = feature(a, G0, h, w, &lff)) < 0 ||
        (rc = feature(a, 3 * s * s, h, w, &shuffled)) < 0 || (rc = feature(a, 3, s * h, s * w, &hr)) < 0)
        return rc;
    if ((rc = conv(&m->pre_blocks, x, &pre)) < 0)
        return rc;
    memcpy(rrdb.data, pre.data, bytes);
    for (int t = 0; t < m->T; t++) {
        memcpy(dense.data, rrdb.data, bytes); /* the chain of dense blocks starts at the RRDB input */
        for (int d = 0; d < m->D; d++) {
            int i = t * m->D + d;
            if ((rc = dense_block(m, &m->F[i * m->C], &m->LFF[i], RRDN_BETA, &dense, &lff)) < 0)
                return rc;
        }
        add_scaled(rrdb.data, dense.data, RRDN_BETA, G0 * hw); /* RRDB_t_out */
    }
    if ((rc = conv(&m->post_blocks, &rrdb, &lff)) < 0)
        return rc;
    add_scaled(lff.data, pre.data, 1.0f, G0 * hw); /* GRL: global residual */
    if ((rc = conv(&m->pre_shuffle, &lff, &shuffled)) < 0)
        return rc;
    pixel_shuffle(&shuffled, m->scale, &hr);
    return conv(&m->SR, &hr, y);
}

int ts_rdn_forward(const ts_rdn *m, const ts_tensor *x, ts_tensor *y, ts_arena *arena)
{
    int64_t s = m->scale;
    if (x->ndim != 4 || x->shape[0] != 1 || x->shape[1] != 3 || y->ndim != 4 || y->shape[0] != 1 ||
        y->shape[1] != 3 || y->shape[2] != s * x->shape[2] || y->shape[3] != s * x->shape[3])
        return ts_fail(TS_ERR_ARG, "rdn: x must be [1, 3, h, w] and y [1, 3, %lld h, %lld w]", (long long)s,
                       (long long)s);
    size_t mark = ts_arena_mark(arena);
    int rc = m->arch == ARCH_RDN ? forward_rdn(m, x, y, arena) : forward_rrdn(m, x, y, arena);
    ts_arena_reset(arena, mark);
    return rc;
}
