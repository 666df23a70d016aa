/*
 * AUTOMATIC1111 prompt syntax: attention weights and long prompts for CLIP encoders.
 *
 * Users write "(word)" for x1.1, "[word]" for /1.1, "(word:1.3)" for an explicit
 * weight, nest them (weights multiply), escape brackets with a backslash, and put
 * "BREAK" to start a new chunk.  A prompt becomes a list of (text, weight) segments,
 * each segment is tokenized on its own, and the tokens are packed into 77-id chunks
 * ([BOS] + 75 tokens + [EOS], padded) exactly as A1111 packs them, including its rule
 * of moving the words after the last comma to the next chunk when a chunk fills up.
 * The rules, with their quirks, are documented in docs/prompt-syntax.md.
 */
#ifndef TS_TEXT_PROMPT_H
#define TS_TEXT_PROMPT_H

#include <stdint.h>

#include "text/clip_tokenizer.h"

#define TS_PROMPT_CHUNK_TOKENS 75 /* tokens per chunk, without BOS/EOS */

typedef struct {
    char *text;    /* UTF-8; "BREAK" with weight -1 marks a chunk break */
    double weight; /* A1111 computes weights in double; -1 only for the BREAK marker */
} ts_prompt_segment;

/* Parses the attention syntax.  Returns TS_ERR_ARG for a weight that is not a number
 * (e.g. "(x:1.2.3)", where A1111 raises).  *segs malloc'd: free with ts_prompt_segments_free. */
int ts_prompt_parse(const char *prompt, ts_prompt_segment **segs, int *n);
void ts_prompt_segments_free(ts_prompt_segment *segs, int n);

/* The words of a prompt without the attention syntax, for encoders that take no
 * weights (T5, and Flux's CLIP): "(red:1.3) [fox]" -> "red fox", "\\(" -> "(", BREAK ->
 * a space.  *out malloc'd UTF-8. */
int ts_prompt_strip(const char *prompt, char **out);

typedef struct {
    int emphasis;       /* 1: parse the syntax (A1111 default); 0: the prompt is plain text */
    int comma_backtrack; /* A1111 "comma_padding_backtrack", default 20; 0 disables */
} ts_prompt_options;

typedef struct {
    int n_chunks;
    int32_t *ids;    /* [n_chunks][77] */
    float *weights;  /* [n_chunks][77]; 1.0 for BOS, EOS and padding */
    int token_count; /* A1111's count: 75 per full chunk + tokens of the last one */
} ts_prompt_tokens;

/* Parses and tokenizes a prompt into 77-id chunks; padding after the first EOS of a
 * chunk is pad_id (49407 for SD1.x / SDXL CLIP-L, 0 for OpenCLIP).  opts NULL:
 * defaults.  Free with ts_prompt_tokens_free. */
int ts_prompt_tokenize(const ts_clip_tokenizer *tok, const char *prompt, int32_t pad_id,
                       const ts_prompt_options *opts, ts_prompt_tokens *out);
void ts_prompt_tokens_free(ts_prompt_tokens *t);

#endif
