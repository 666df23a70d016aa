/*
 * The T5 / T5 v1.1 SentencePiece (Unigram) tokenizer used by the t5xxl text encoder
 * of Flux and SD3.
 *
 * It follows SentencePiece itself (not Hugging Face tokenizers, which differs in rare
 * cases): normalization through the model's precompiled charsmap with
 * remove_extra_whitespaces + dummy prefix + whitespace -> U+2581, Viterbi over the
 * NORMAL pieces with SentencePiece's float/double score arithmetic, a run of unknown
 * characters -> one <unk> (2), EOS 1, padding 0.  The exact rules are in
 * shared/data/t5/README.md.  The vocabulary is compiled in (data/t5_spiece.model.gz,
 * Apache-2.0); a user's spiece.model or tokenizer.json can replace it.
 */
#ifndef TS_TEXT_T5_TOKENIZER_H
#define TS_TEXT_T5_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#define TS_T5_PAD 0
#define TS_T5_EOS 1
#define TS_T5_UNK 2

typedef struct ts_t5_tokenizer ts_t5_tokenizer;

/* The tokenizer on the embedded vocabulary, built on first use and shared
 * (thread-safe); NULL with the error set on failure.  Never freed. */
const ts_t5_tokenizer *ts_t5_tokenizer_default(void);

/* Loads a SentencePiece model (spiece.model) or a Hugging Face tokenizer.json
 * (recognised by its leading '{'). */
int ts_t5_tokenizer_load(const char *path, ts_t5_tokenizer **out);
/* The same from bytes in memory. */
int ts_t5_tokenizer_parse(const unsigned char *data, size_t size, const char *what, ts_t5_tokenizer **out);
void ts_t5_tokenizer_free(ts_t5_tokenizer *tok);

/* The normalized text the unigram model segments (U+2581 for spaces), malloc'd UTF-8. */
int ts_t5_normalize(const ts_t5_tokenizer *tok, const char *text, char **out);

/* Ids of text followed by EOS, untruncated: *ids malloc'd, *n >= 1. */
int ts_t5_encode(const ts_t5_tokenizer *tok, const char *text, int32_t **ids, int *n);

/* A row of `len` ids as Flux/diffusers feed T5: the first len-1 text ids, EOS, then
 * 0 (len >= 1).  *truncated (may be NULL) tells whether ids were cut. */
int ts_t5_tokenize(const ts_t5_tokenizer *tok, const char *text, int32_t *row, int len, int *truncated);

/* The piece string of an id (U+2581 marks a word start), or NULL. */
const char *ts_t5_piece(const ts_t5_tokenizer *tok, int32_t id);

#endif
