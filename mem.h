/* mem.h - all heap allocation: the allocator hook, per-request arenas and
 * growable byte buffers.
 *
 * Every allocation in the program goes through mem_alloc/mem_realloc/mem_free
 * so a test can make the Nth allocation fail (mem_fail_after).  Parsers of
 * untrusted input allocate from a struct mem_arena that is freed in one go;
 * output is built in a struct mem_buf.
 */
#ifndef ETCD_MEM_H
#define ETCD_MEM_H

#include <stddef.h>
#include <stdint.h>

#define MEM_MUST_CHECK __attribute__((warn_unused_result))

/* ---- allocator hook ---- */

/* Return NULL when the allocation fails (or a test made it fail). */
void *mem_alloc(size_t n) MEM_MUST_CHECK;
void *mem_calloc(size_t n, size_t size) MEM_MUST_CHECK;
/* On failure returns NULL and leaves p untouched and still owned by the caller. */
void *mem_realloc(void *p, size_t n) MEM_MUST_CHECK;
void mem_free(void *p);
/* Hands this thread's free lists to the pool every thread draws from (a
 * thread calls it before it exits; the lists are otherwise bounded). */
void mem_release_cache(void);
/* Tests: the n-th allocation from now on (0 = the next one) fails, and every
 * one after it too while sticky is set; n < 0 switches failures off. */
void mem_fail_after(long n, int sticky);

/* ---- arenas ---- */

/* A bump allocator made of chunks.  Owner: whoever embeds the struct; every
 * pointer handed out lives until mem_arena_reset/mem_arena_free. */
struct mem_arena {
    struct mem_arena_chunk *ma_head; /* owned chain of chunks */
    size_t ma_total;                 /* bytes handed out since the last reset */
    size_t ma_limit;                 /* 0 = unlimited; past it allocations fail */
};

void mem_arena_init(struct mem_arena *a, size_t limit);
/* 16-byte aligned, uninitialised.  NULL on OOM or when the limit is passed. */
void *mem_arena_alloc(struct mem_arena *a, size_t n) MEM_MUST_CHECK;
/* Zero-filled.  NULL on OOM or limit. */
void *mem_arena_zalloc(struct mem_arena *a, size_t n) MEM_MUST_CHECK;
/* Copy of p[0..n); NULL on OOM or limit.  n == 0 returns a valid pointer. */
void *mem_arena_dup(struct mem_arena *a, const void *p, size_t n) MEM_MUST_CHECK;
/* Frees every chunk but the first, which is kept for reuse. */
void mem_arena_reset(struct mem_arena *a);
/* Frees everything. */
void mem_arena_free(struct mem_arena *a);

/* ---- growable buffers ---- */

/* Owner: whoever embeds the struct; data is heap memory freed by mem_buf_free.
 * A zeroed struct is an empty buffer. */
struct mem_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* 0, or -1 on OOM (the buffer is unchanged). */
int mem_buf_reserve(struct mem_buf *b, size_t extra) MEM_MUST_CHECK;
int mem_buf_append(struct mem_buf *b, const void *p, size_t n) MEM_MUST_CHECK;
int mem_buf_putc(struct mem_buf *b, uint8_t c) MEM_MUST_CHECK;
/* printf-style append; 0 or -1. */
int mem_buf_printf(struct mem_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))) MEM_MUST_CHECK;
/* Drops the first n bytes (n <= len). */
void mem_buf_consume(struct mem_buf *b, size_t n);
void mem_buf_free(struct mem_buf *b);

#endif
