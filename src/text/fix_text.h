/*
 * The text clean-up the CLIP tokenizer applies before BPE, reproducing Python:
 * ftfy.fix_text (v6 defaults) and html.unescape.  See fix_text.c for which parts of
 * ftfy are reproduced and why the rest is not needed.
 */
#ifndef TS_TEXT_FIX_TEXT_H
#define TS_TEXT_FIX_TEXT_H

#include "text/unicode.h"

/* In place: the ftfy.fix_text subset (HTML entities when no '<', mojibake, C1
 * controls, ligatures, fullwidth, curly quotes, line breaks, terminal escapes,
 * control characters, NFC), segment by segment, repeated until nothing changes. */
int ts_fix_text(ts_u32 *s);

/* In place: Python's html.unescape (HTML5 named and numeric character references). */
int ts_html_unescape(ts_u32 *s);

#endif
