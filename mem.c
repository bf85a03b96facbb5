/* mem.c - the allocator hook, arenas and growable buffers (see mem.h).
 * It does not know what the memory is for; bounds on how much a connection or
 * request may use are set by the owners through arena limits. */
#include "mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocator hook ---- */

static long fail_countdown = -1; /* allocations left before failing; <0 = never */
static int fail_sticky;

static int should_fail(void)
{
    if (fail_countdown < 0)
        return 0;
    if (fail_countdown == 0) {
        if (!fail_sticky)
            fail_countdown = -1;
        return 1;
    }
    fail_countdown--;
    return 0;
}

void mem_fail_after(long n, int sticky)
{
    fail_countdown = n;
    fail_sticky = sticky;
}

void *mem_alloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *mem_calloc(size_t n, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *mem_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void mem_free(void *p)
{
    free(p);
}

/* ---- arenas ---- */

struct mem_arena_chunk {
    struct mem_arena_chunk *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    _Alignas(16) unsigned char data[];
};

#define ARENA_CHUNK_MIN 4096

void mem_arena_init(struct mem_arena *a, size_t limit)
{
    a->ma_head = NULL;
    a->ma_total = 0;
    a->ma_limit = limit;
}

void *mem_arena_alloc(struct mem_arena *a, size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n)
        return NULL;
    if (a->ma_limit && (need > a->ma_limit || a->ma_total > a->ma_limit - need))
        return NULL;
    struct mem_arena_chunk *c = a->ma_head;
    if (!c || c->size - c->used < need) {
        size_t sz = need > ARENA_CHUNK_MIN ? need : ARENA_CHUNK_MIN;
        if (c && sz < c->size * 2 && c->size * 2 <= (1u << 20))
            sz = c->size * 2; /* grow chunks geometrically for big requests */
        if (sz > SIZE_MAX - sizeof *c)
            return NULL;
        struct mem_arena_chunk *nc = mem_alloc(sizeof *nc + sz);
        if (!nc)
            return NULL;
        nc->size = sz;
        nc->used = 0;
        nc->next = c;
        a->ma_head = nc;
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->ma_total += need;
    return p;
}

void *mem_arena_zalloc(struct mem_arena *a, size_t n)
{
    void *p = mem_arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

void *mem_arena_dup(struct mem_arena *a, const void *p, size_t n)
{
    void *q = mem_arena_alloc(a, n);
    if (q && n)
        memcpy(q, p, n);
    return q;
}

void mem_arena_reset(struct mem_arena *a)
{
    struct mem_arena_chunk *c = a->ma_head;
    if (!c)
        return;
    /* keep the oldest chunk (the last in the chain): it is the usual size */
    while (c->next) {
        struct mem_arena_chunk *n = c->next;
        mem_free(c);
        c = n;
    }
    c->used = 0;
    a->ma_head = c;
    a->ma_total = 0;
}

void mem_arena_free(struct mem_arena *a)
{
    struct mem_arena_chunk *c = a->ma_head;
    while (c) {
        struct mem_arena_chunk *n = c->next;
        mem_free(c);
        c = n;
    }
    a->ma_head = NULL;
    a->ma_total = 0;
}

/* ---- growable buffers ---- */

int mem_buf_reserve(struct mem_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        return -1;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *d = mem_realloc(b->data, cap);
    if (!d)
        return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

int mem_buf_append(struct mem_buf *b, const void *p, size_t n)
{
    if (mem_buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int mem_buf_putc(struct mem_buf *b, uint8_t c)
{
    return mem_buf_append(b, &c, 1);
}

int mem_buf_printf(struct mem_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || mem_buf_reserve(b, (size_t)n + 1) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void mem_buf_consume(struct mem_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void mem_buf_free(struct mem_buf *b)
{
    mem_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
