/*
 * Tessera public API.
 *
 * The library is organised by concern (core, ops, io, text, models, sample,
 * pipeline); this header gathers the parts a program embedding Tessera uses.
 */
#ifndef TESSERA_H
#define TESSERA_H

#define TESSERA_VERSION "0.1.0"

#include "core/arena.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "core/threads.h"
#include "io/safetensors.h"

#endif
