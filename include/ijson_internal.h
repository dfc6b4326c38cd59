/* ijson_internal.h: the I-JSON check's parser state, shared by its
 * structure (ijson.c) and its token scanner (ijson_scan.c). Not for anything
 * else: the check's interface is calm_ijson_check in calm.h. */
#ifndef IJSON_INTERNAL_H
#define IJSON_INTERNAL_H

#include <stddef.h>
#include "calm.h"

typedef struct frame {
    char type;          /* '{' or '[' */
    size_t first_key;   /* index of its first member name in p->keys */
    size_t names_len;   /* p->names.len when it opened */
} frame;

typedef struct name {
    size_t off, len;    /* the unescaped bytes in p->names */
    size_t at;          /* 1-based offset of the name's opening quote */
} name;

typedef struct parser {
    const unsigned char *s;
    size_t n, pos;
    frame *stack;
    int depth, max_depth;
    name *keys;
    size_t nkeys, capkeys;
    calm_buf names;
    calm_ijson_fault *f;
    int oom;
} parser;

/* ijson_scan.c. Faults return -1 (recorded in p->f) or -2 (out of memory). */
/* Records a fault of kind at 0-based offset at; returns -1. */
int calm_ijson_fail(parser *p, const char *kind, size_t at, const char *what);
/* A fault at the end of the input is truncation, anything else `what`. */
int calm_ijson_unexpected(parser *p, const char *what);
void calm_ijson_skip_ws(parser *p);
/* The string at p->pos (its opening quote); keep != 0 copies its unescaped
 * bytes to p->names (a member name). */
int calm_ijson_string(parser *p, int keep);
/* A string, number or literal at p->pos (white space skipped, not '{' or '['). */
int calm_ijson_scalar(parser *p);

#endif
