/* mem.c - the allocator hook, arenas and growable buffers (see mem.h).
 * It does not know what the memory is for; bounds on how much a connection or
 * request may use are set by the owners through arena limits. */
#include "mem.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---- allocator hook ----
 *
 * Blocks of up to 64 KiB come from our own size classes, carved from spans
 * of one large reserved mapping, instead of from libc: musl's allocator is
 * slow under a server's churn (it unmaps and maps again, and serialises on
 * one lock), and this path is most of what a request does.  A block's class
 * is found from its span's entry in a table, so blocks carry no header.
 *
 * Each thread keeps a free list per class; past a bound a thread hands half
 * of a list to a shared pool that every thread draws from, so blocks freed
 * on the worker thread come back to the loop thread.  Freed memory is kept
 * for reuse, not returned to the kernel: the heap stays at its peak.
 * Bigger blocks, and everything when the reservation fails (strict
 * overcommit, an address-space limit) or is used up, go to malloc.  Under
 * AddressSanitizer all of this is off (MEM_CACHE_BYTES 0) so that it still
 * sees every use after free. */

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
#define MEM_CACHE_BYTES (1u << 20) /* per class and thread before spilling */
#endif
#ifndef MEM_REGION_BYTES
#define MEM_REGION_BYTES ((size_t)64 << 30) /* address space only: pages come when touched */
#endif
#define MEM_SPAN_SHIFT 18 /* 256 KiB spans, each of one class */
#define MEM_SPAN_BYTES ((size_t)1 << MEM_SPAN_SHIFT)
#define MEM_N_SPANS (MEM_REGION_BYTES >> MEM_SPAN_SHIFT)
#define MEM_MAX_SMALL ((size_t)64 << 10)
#define MEM_N_CLASSES 48

struct mem_free_block {
    struct mem_free_block *next;
};

struct mem_tcache {
    struct mem_free_block *head[MEM_N_CLASSES];
    size_t count[MEM_N_CLASSES];
    uint8_t *bump[MEM_N_CLASSES], *bump_end[MEM_N_CLASSES]; /* the class's current span */
};

static _Thread_local struct mem_tcache mem_tcache;

static struct {
    pthread_once_t once;
    uint8_t *base; /* NULL: no region, everything goes to malloc */
    _Atomic size_t next_span;
    pthread_mutex_t mu; /* the shared pool */
    struct mem_free_block *pool[MEM_N_CLASSES];
    size_t pool_count[MEM_N_CLASSES];
    uint8_t span_class[MEM_N_SPANS];
} mem_region = {.once = PTHREAD_ONCE_INIT, .mu = PTHREAD_MUTEX_INITIALIZER};

/* Class sizes: 16-byte steps to 128, then four per power of two. */
static size_t class_size(unsigned c)
{
    if (c < 8)
        return (size_t)(c + 1) * 16;
    unsigned p = (c - 8) / 4 + 7, q = (c - 8) % 4; /* 2^p < size <= 2^(p+1) */
    return ((size_t)1 << p) + ((size_t)(q + 1) << (p - 2));
}

static unsigned class_for(size_t n)
{
    if (n <= 128)
        return n ? (unsigned)((n - 1) >> 4) : 0;
    unsigned p = 7;
    while (((size_t)2 << p) < n)
        p++;
    size_t step = (size_t)1 << (p - 2);
    return 8 + (p - 7) * 4 + (unsigned)((n - ((size_t)1 << p) - 1) / step);
}

static void region_init(void)
{
    if (MEM_CACHE_BYTES == 0)
        return;
    /* reserve twice a span so that spans can start aligned */
    void *p = mmap(NULL, MEM_REGION_BYTES + MEM_SPAN_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return;
    uintptr_t a = ((uintptr_t)p + MEM_SPAN_BYTES - 1) & ~(uintptr_t)(MEM_SPAN_BYTES - 1);
    mem_region.base = (uint8_t *)a;
}

static bool in_region(const void *p)
{
    return mem_region.base && (const uint8_t *)p >= mem_region.base &&
           (size_t)((const uint8_t *)p - mem_region.base) < MEM_REGION_BYTES;
}

static void *small_alloc(unsigned c)
{
    struct mem_tcache *t = &mem_tcache;
    struct mem_free_block *f = t->head[c];
    if (!f && mem_region.pool[c]) { /* racy peek; checked again under the lock */
        pthread_mutex_lock(&mem_region.mu);
        t->head[c] = mem_region.pool[c];
        t->count[c] = mem_region.pool_count[c];
        mem_region.pool[c] = NULL;
        mem_region.pool_count[c] = 0;
        pthread_mutex_unlock(&mem_region.mu);
        f = t->head[c];
    }
    if (f) {
        t->head[c] = f->next;
        t->count[c]--;
        return f;
    }
    size_t sz = class_size(c);
    if (t->bump_end[c] - t->bump[c] < (ptrdiff_t)sz) {
        size_t span = atomic_fetch_add(&mem_region.next_span, 1);
        if (span >= MEM_N_SPANS)
            return NULL;
        mem_region.span_class[span] = (uint8_t)c;
        t->bump[c] = mem_region.base + (span << MEM_SPAN_SHIFT);
        t->bump_end[c] = t->bump[c] + MEM_SPAN_BYTES;
    }
    void *p = t->bump[c];
    t->bump[c] += sz;
    return p;
}

/* Hands the older half of a long free list to the shared pool. */
static void spill(unsigned c)
{
    struct mem_tcache *t = &mem_tcache;
    size_t keep = t->count[c] / 2;
    struct mem_free_block *last = t->head[c];
    for (size_t i = 1; i < keep; i++)
        last = last->next;
    struct mem_free_block *give = last->next, *tail = give;
    size_t n = t->count[c] - keep;
    while (tail->next)
        tail = tail->next;
    last->next = NULL;
    t->count[c] = keep;
    pthread_mutex_lock(&mem_region.mu);
    tail->next = mem_region.pool[c];
    mem_region.pool[c] = give;
    mem_region.pool_count[c] += n;
    pthread_mutex_unlock(&mem_region.mu);
}

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

static void *alloc_block(size_t n)
{
    if (n <= MEM_MAX_SMALL) {
        pthread_once(&mem_region.once, region_init); /* no region under ASan */
        if (mem_region.base) {
            void *p = small_alloc(class_for(n));
            if (p)
                return p;
        }
    }
    return malloc(n ? n : 1);
}

void *mem_alloc(size_t n)
{
    return should_fail() ? NULL : alloc_block(n);
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

/* Usable bytes of a block from our classes. */
static size_t small_size(const void *p)
{
    return class_size(mem_region.span_class[(size_t)((const uint8_t *)p - mem_region.base) >> MEM_SPAN_SHIFT]);
}

void *mem_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    if (!p)
        return alloc_block(n);
    if (!in_region(p))
        return realloc(p, n ? n : 1);
    size_t have = small_size(p);
    if (n <= have && n > have / 2)
        return p;
    void *q = alloc_block(n);
    if (!q)
        return NULL;
    memcpy(q, p, have < n ? have : n);
    mem_free(p);
    return q;
}

void mem_free(void *p)
{
    if (!p)
        return;
    if (!in_region(p)) {
        free(p);
        return;
    }
    size_t idx = (size_t)((uint8_t *)p - mem_region.base) >> MEM_SPAN_SHIFT;
    unsigned c = mem_region.span_class[idx];
    struct mem_tcache *t = &mem_tcache;
    struct mem_free_block *f = p;
    f->next = t->head[c];
    t->head[c] = f;
    if (++t->count[c] * class_size(c) > MEM_CACHE_BYTES && t->count[c] >= 4)
        spill(c);
}

void mem_release_cache(void)
{
    struct mem_tcache *t = &mem_tcache;
    for (unsigned c = 0; c < MEM_N_CLASSES; c++) {
        if (t->count[c] >= 2)
            spill(c);
        if (t->head[c]) { /* the last one, and what bump space is left, goes unused */
            pthread_mutex_lock(&mem_region.mu);
            t->head[c]->next = mem_region.pool[c];
            mem_region.pool[c] = t->head[c];
            mem_region.pool_count[c]++;
            pthread_mutex_unlock(&mem_region.mu);
            t->head[c] = NULL;
            t->count[c] = 0;
        }
    }
}

/* ---- arenas ---- */

struct mem_arena_chunk {
    struct mem_arena_chunk *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    _Alignas(16) unsigned char data[];
};

#define ARENA_CHUNK_MIN 1024
/* Growth stops where a chunk still comes from the size classes: malloc maps
 * and unmaps bigger blocks, and an arena that lives for one commit would
 * fault in fresh pages every time. */
#define ARENA_CHUNK_MAX (MEM_MAX_SMALL - sizeof(struct mem_arena_chunk))

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
        if (c && sz < c->size * 2 && c->size * 2 <= ARENA_CHUNK_MAX)
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
