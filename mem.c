/* mem.c - the allocator hook, arenas and growable buffers (see mem.h).
 * It does not know what the memory is for; bounds on how much a connection or
 * request may use are set by the owners through arena limits. */
#include "mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocator hook ----
 *
 * Freed blocks of up to 64 KiB go to a small per-thread cache, bucketed by
 * the power of two below their usable size, instead of back to libc: a
 * request's objects (call, arena chunk, stream queue) are freed and
 * allocated again at once, and musl's allocator hands such memory back to
 * the kernel eagerly (an munmap/mmap pair per request).  Blocks stay plain
 * malloc blocks, so free() and mem_free() mix freely.  The cache is bounded
 * per bucket, and off under AddressSanitizer so that it still sees every
 * use after free. */

#ifndef MEM_CACHE_BYTES
#if defined(__SANITIZE_ADDRESS__)
#define MEM_CACHE_BYTES 0u
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_CACHE_BYTES 0u
#endif
#endif
#endif
#ifndef MEM_CACHE_BYTES
#define MEM_CACHE_BYTES (256u << 10) /* per bucket and thread */
#endif

#define MEM_MIN_SHIFT 5  /* smallest bucket: 32 bytes */
#define MEM_MAX_SHIFT 16 /* largest bucket: 64 KiB */

struct mem_free_block {
    struct mem_free_block *next;
};

struct mem_cache {
    struct mem_free_block *head[MEM_MAX_SHIFT + 1];
    size_t count[MEM_MAX_SHIFT + 1];
};

static _Thread_local struct mem_cache mem_tcache;

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

/* The bucket a request of n bytes is served from: every block there has at
 * least 2^shift usable bytes. */
static unsigned bucket_for_request(size_t n)
{
    unsigned c = MEM_MIN_SHIFT;
    while (((size_t)1 << c) < n)
        c++;
    return c;
}

void *mem_alloc(size_t n)
{
    if (should_fail())
        return NULL;
    if (n <= ((size_t)1 << MEM_MAX_SHIFT)) {
        unsigned c = bucket_for_request(n);
        struct mem_free_block *f = mem_tcache.head[c];
        if (f) {
            mem_tcache.head[c] = f->next;
            mem_tcache.count[c]--;
            return f;
        }
        /* round up so the block comes back to this bucket when freed */
        n = (size_t)1 << c;
    }
    return malloc(n ? n : 1);
}

void *mem_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = mem_alloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *mem_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void mem_free(void *p)
{
    if (!p)
        return;
    size_t u = malloc_usable_size(p);
    if (u >= ((size_t)1 << MEM_MIN_SHIFT) && u < ((size_t)2 << MEM_MAX_SHIFT)) {
        unsigned c = MEM_MIN_SHIFT;
        while (((size_t)2 << c) <= u)
            c++; /* 2^c <= u < 2^(c+1) */
        if (mem_tcache.count[c] < (MEM_CACHE_BYTES >> c)) {
            struct mem_free_block *f = p;
            f->next = mem_tcache.head[c];
            mem_tcache.head[c] = f;
            mem_tcache.count[c]++;
            return;
        }
    }
    free(p);
}

void mem_release_cache(void)
{
    for (unsigned c = 0; c <= MEM_MAX_SHIFT; c++) {
        while (mem_tcache.head[c]) {
            struct mem_free_block *f = mem_tcache.head[c];
            mem_tcache.head[c] = f->next;
            free(f);
        }
        mem_tcache.count[c] = 0;
    }
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
