/*
 * Tokenizer vocabularies compiled into the binary, so that a user needs no file
 * besides the model checkpoint.
 *
 * The blobs live in data/ as gzip files (their licences are in data/NOTICE) and the
 * build turns each into a byte array; they are inflated on demand into a malloc'd
 * buffer that the caller owns, because each tokenizer parses its vocabulary once
 * into its own tables and then has no use for the text.
 */
#ifndef TS_TEXT_EMBEDDED_H
#define TS_TEXT_EMBEDDED_H

#include <stddef.h>

typedef enum {
    TS_BLOB_CLIP_BPE,  /* OpenAI CLIP bpe_simple_vocab_16e6.txt (MIT) */
    TS_BLOB_T5_SPIECE, /* Google T5 spiece.model, SentencePiece ModelProto (Apache-2.0) */
} ts_blob;

/* Inflates an embedded blob: *out (malloc'd, NUL-terminated for convenience) and *size. */
int ts_blob_load(ts_blob which, unsigned char **out, size_t *size);

/* Inflates gzip data (one member) into a malloc'd, NUL-terminated buffer. */
int ts_gunzip(const unsigned char *gz, size_t gz_size, unsigned char **out, size_t *size);

/* Reads a whole file into a malloc'd, NUL-terminated buffer. */
int ts_read_file(const char *path, unsigned char **out, size_t *size);

#endif
