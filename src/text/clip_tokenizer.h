/*
 * The OpenAI CLIP byte-level BPE tokenizer (clip/simple_tokenizer.py), used by every
 * CLIP text encoder in Stable Diffusion 1.x/2.x, SDXL, SD3 and Flux.
 *
 * Encoding reproduces the reference exactly: ftfy.fix_text, html.unescape twice,
 * whitespace collapse, Python's str.lower(), the pre-split regex, byte-level BPE by
 * merge rank.  A context row is [BOS] + the first 75 ids + [EOS], then padding:
 * 49407 for SD1.x and SDXL's CLIP-L, 0 for the OpenCLIP encoders (SD2.x, SDXL bigG).
 * The vocabulary is compiled in (data/bpe_simple_vocab_16e6.txt.gz, MIT).
 */
#ifndef TS_TEXT_CLIP_TOKENIZER_H
#define TS_TEXT_CLIP_TOKENIZER_H

#include <stdint.h>

#define TS_CLIP_BOS 49406
#define TS_CLIP_EOS 49407
#define TS_CLIP_VOCAB 49408
#define TS_CLIP_CONTEXT 77

typedef struct ts_clip_tokenizer ts_clip_tokenizer;

/* The tokenizer on the embedded vocabulary, built on first use and shared (thread-safe);
 * NULL with the error set if the vocabulary cannot be read.  Never freed. */
const ts_clip_tokenizer *ts_clip_tokenizer_default(void);

/* Builds a tokenizer from the text of a merges file (bpe_simple_vocab_16e6.txt). */
int ts_clip_tokenizer_new(const char *merges_text, ts_clip_tokenizer **out);
void ts_clip_tokenizer_free(ts_clip_tokenizer *tok);

/* The text as the reference sees it before splitting (malloc'd UTF-8). */
int ts_clip_clean(const char *text, char **out);

/* BPE ids of text, untruncated, without BOS/EOS: *ids malloc'd (may be NULL when *n == 0). */
int ts_clip_encode(const ts_clip_tokenizer *tok, const char *text, int32_t **ids, int *n);

/* One context row of `len` ids (len >= 2): BOS, the first len-2 BPE ids, EOS, then pad_id.
 * *truncated (may be NULL) tells whether ids were cut. */
int ts_clip_tokenize(const ts_clip_tokenizer *tok, const char *text, int32_t pad_id, int32_t *row, int len,
                     int *truncated);

/* The vocabulary string of an id (byte-mapped, "</w>" marks a word end), or NULL. */
const char *ts_clip_token_str(const ts_clip_tokenizer *tok, int32_t id);

#endif
