/*
 * Residual dense networks for single-image super-resolution, as trained by idealo's
 * ISR and shipped by UpscalerJS (npm packages under @upscalerjs, MIT): RDN (Zhang et al. 2018,
 * "Residual Dense Network for Image Super-Resolution") and RRDN (ESRGAN's
 * residual-in-residual dense blocks, Wang et al. 2018).  Weights come straight from
 * the packages' TF.js model.json + shards (io/tfjs.h).
 *
 * A forward pass maps an RGB image in [0, 1] to one `scale` times larger, also in
 * [0, 1] (unclamped); each network's own input range (RDN 0..255, RRDN 0..1) is
 * applied inside.  Every layer is a 'same'-padded stride-1 conv, so an output pixel
 * depends only on input pixels within ts_rdn_halo() of it: tiles that overlap by
 * that much reproduce the untiled result exactly (pipeline/upscale.h).
 */
#ifndef TS_MODELS_RDN_H
#define TS_MODELS_RDN_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/tensor.h"

typedef struct ts_rdn ts_rdn;

/* Loads an RDN or RRDN TF.js layers model (path to its model.json); the architecture,
 * its sizes (C, D, G, G0, T) and the scale are read from the graph. */
int ts_rdn_load(const char *model_json, ts_rdn **out);
void ts_rdn_free(ts_rdn *m);

int ts_rdn_scale(const ts_rdn *m);
/* Input pixels on each side that can influence an output pixel (the receptive radius). */
int ts_rdn_halo(const ts_rdn *m);
/* Arena bytes one forward pass over an h x w input takes at its peak. */
size_t ts_rdn_workspace(const ts_rdn *m, int64_t h, int64_t w);
/* "RRDN C=4 D=3 G=32 G0=64 T=10 x4" */
const char *ts_rdn_describe(const ts_rdn *m);

/* y[1, 3, s*h, s*w] = network(x[1, 3, h, w]); temporaries come from `arena` and are
 * released before returning. */
int ts_rdn_forward(const ts_rdn *m, const ts_tensor *x, ts_tensor *y, ts_arena *arena);

#endif
