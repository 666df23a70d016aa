/* The HTML5 named character reference table (generated; see html_entities.c). */
#ifndef TS_TEXT_HTML_ENTITIES_H
#define TS_TEXT_HTML_ENTITIES_H

typedef struct {
    const char *name; /* without the leading '&'; includes ';' when part of the name */
    int cp[2];        /* one or two code points; cp[1] == 0 when one */
} ts_html_entity;

extern const ts_html_entity ts_html_entities[];
extern const int ts_html_entity_count;

#endif
