/* test_mem.c - the allocator hook (with its per-thread cache switched on
 * even under ASan), arenas and growable buffers. */
#define MEM_CACHE_BYTES (4u << 10)
#include "../mem.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static void test_cache_reuses_blocks(void **state)
{
    (void)state;
    void *a = mem_alloc(100);
    assert_non_null(a);
    assert_true(malloc_usable_size(a) >= 128);
    mem_free(a);
    void *b = mem_alloc(120); /* same bucket: the cached block comes back */
    assert_ptr_equal(a, b);
    memset(b, 0xab, 120);
    free(b); /* blocks are plain malloc blocks */
    void *c = malloc(200);
    mem_free(c); /* and plain malloc blocks may be cached */
    void *d = mem_alloc(100);
    assert_non_null(d);
    mem_free(d);
    /* the cache is bounded: 4 KiB per bucket here */
    void *blocks[64];
    for (int i = 0; i < 64; i++)
        blocks[i] = mem_alloc(1000);
    for (int i = 0; i < 64; i++)
        mem_free(blocks[i]);
    assert_true(mem_tcache.count[10] <= (4u << 10) >> 10);
    /* big blocks are never cached */
    void *big = mem_alloc(1 << 20);
    mem_free(big);
    mem_release_cache();
    for (unsigned i = 0; i <= MEM_MAX_SHIFT; i++)
        assert_null(mem_tcache.head[i]);
}

static void test_calloc_and_fail_after(void **state)
{
    (void)state;
    uint8_t *p = mem_alloc(64);
    memset(p, 0xff, 64);
    mem_free(p);
    uint8_t *z = mem_calloc(8, 8); /* may be the dirty cached block: zeroed */
    for (int i = 0; i < 64; i++)
        assert_int_equal(z[i], 0);
    mem_free(z);
    assert_null(mem_calloc(SIZE_MAX / 2, 4));
    mem_fail_after(1, 0);
    void *ok = mem_alloc(10);
    assert_non_null(ok);
    assert_null(mem_alloc(10)); /* the second one fails */
    void *again = mem_alloc(10);
    assert_non_null(again);
    mem_fail_after(0, 1);
    assert_null(mem_alloc(10));
    assert_null(mem_realloc(ok, 100));
    mem_fail_after(-1, 0);
    mem_free(ok);
    mem_free(again);
    mem_release_cache();
}

static void test_arena(void **state)
{
    (void)state;
    struct mem_arena a;
    mem_arena_init(&a, 10000);
    uint8_t *p = mem_arena_alloc(&a, 10);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 16, 0);
    assert_non_null(mem_arena_alloc(&a, 6000));
    assert_null(mem_arena_alloc(&a, 6000)); /* past the limit */
    assert_non_null(mem_arena_dup(&a, "abc", 3));
    mem_arena_reset(&a);
    assert_int_equal(a.ma_total, 0);
    assert_non_null(mem_arena_alloc(&a, 9000));
    mem_arena_free(&a);
    mem_release_cache();
}

static void test_buf(void **state)
{
    (void)state;
    struct mem_buf b = {0};
    for (int i = 0; i < 1000; i++)
        assert_int_equal(mem_buf_printf(&b, "%d,", i), 0);
    assert_memory_equal(b.data, "0,1,2,", 6);
    size_t len = b.len;
    mem_buf_consume(&b, 4);
    assert_int_equal(b.len, len - 4);
    assert_memory_equal(b.data, "2,3,", 4);
    mem_buf_consume(&b, b.len + 5);
    assert_int_equal(b.len, 0);
    assert_int_equal(mem_buf_putc(&b, 'x'), 0);
    assert_int_equal(mem_buf_reserve(&b, SIZE_MAX), -1); /* overflows len + extra */
    mem_buf_free(&b);
    mem_release_cache();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_reuses_blocks),
        cmocka_unit_test(test_calloc_and_fail_after),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_buf),
    };
    return cmocka_run_group_tests_name("mem", tests, NULL, NULL);
}
