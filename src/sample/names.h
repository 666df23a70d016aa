/*
 * Name lookup shared by the scheduler and sampler tables: user-facing names come from
 * several UIs (ComfyUI, A1111, diffusers), so each table has canonical names plus
 * aliases.
 */
#ifndef TS_SAMPLE_NAMES_H
#define TS_SAMPLE_NAMES_H

/* Index of name in names[0..count), or of the canonical name an alias maps to
 * (aliases: {alias, canonical} pairs ending with {NULL, NULL}); -1 when unknown. */
int ts_name_index(const char *name, const char *const *names, int count, const char *const (*aliases)[2]);

#endif
