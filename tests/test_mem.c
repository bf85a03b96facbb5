/* test_mem.c - the allocator hook (its size classes and per-thread lists
 * switched on even under ASan), arenas and growable buffers. */
#define MEM_CACHE_BYTES (4u << 10)
#define MEM_REGION_BYTES ((size_t)64 << 20)
#include "../mem.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static void test_classes(void **state)
{
    (void)state;
    /* every size maps to the smallest class that holds it */
    for (size_t n = 1; n <= MEM_MAX_SMALL; n++) {
        unsigned c = class_for(n);
        assert_true(c < MEM_N_CLASSES);
        assert_true(class_size(c) >= n);
        assert_true(c == 0 || class_size(c - 1) < n);
        assert_int_equal(class_size(c) % 16, 0);
    }
    assert_int_equal(class_size(class_for(MEM_MAX_SMALL)), MEM_MAX_SMALL);
}

static void test_cache_reuses_blocks(void **state)
{
    (void)state;
    void *a = mem_alloc(100);
    assert_non_null(a);
    assert_true(in_region(a));
    assert_int_equal(small_size(a), 112);
    assert_int_equal((uintptr_t)a % 16, 0);
    mem_free(a);
    void *b = mem_alloc(110); /* same class: the freed block comes back */
    assert_ptr_equal(a, b);
    memset(b, 0xab, 110);
    /* growing within the class keeps the block; past it, moves it */
    assert_ptr_equal(mem_realloc(b, 112), b);
    uint8_t *c = mem_realloc(b, 5000);
    assert_non_null(c);
    assert_int_equal(c[109], 0xab);
    mem_free(c);
    /* a long list spills half to the shared pool (4 KiB per class here) */
    void *blocks[64];
    for (int i = 0; i < 64; i++)
        blocks[i] = mem_alloc(1000);
    for (int i = 0; i < 64; i++)
        mem_free(blocks[i]);
    unsigned k = class_for(1000);
    assert_true(mem_tcache.count[k] * class_size(k) <= (4u << 10));
    assert_true(mem_region.pool_count[k] > 0);
    /* big blocks are malloc's */
    void *big = mem_alloc(1 << 20);
    assert_false(in_region(big));
    big = mem_realloc(big, 2 << 20);
    assert_non_null(big);
    mem_free(big);
    mem_release_cache();
    for (unsigned i = 0; i < MEM_N_CLASSES; i++)
        assert_null(mem_tcache.head[i]);
    /* what was given back is drawn again */
    void *again = mem_alloc(1000);
    int found = 0;
    for (int i = 0; i < 64; i++)
        found |= again == blocks[i];
    assert_true(found);
    mem_free(again);
}

struct spill_arg {
    void *blocks[256];
};

static void *free_on_other_thread(void *arg)
{
    struct spill_arg *s = arg;
    for (int i = 0; i < 256; i++)
        mem_free(s->blocks[i]);
    mem_release_cache();
    return NULL;
}

static void test_blocks_freed_elsewhere_come_back(void **state)
{
    (void)state;
    static struct spill_arg s;
    for (int i = 0; i < 256; i++)
        s.blocks[i] = mem_alloc(300);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, free_on_other_thread, &s), 0);
    pthread_join(th, NULL);
    size_t next = atomic_load(&mem_region.next_span);
    for (int i = 0; i < 256; i++)
        s.blocks[i] = mem_alloc(300); /* from the pool: no new span */
    assert_int_equal(atomic_load(&mem_region.next_span), next);
    for (int i = 0; i < 256; i++)
        mem_free(s.blocks[i]);
    mem_release_cache();
}

static void test_region_used_up_falls_back_to_malloc(void **state)
{
    (void)state;
    size_t saved = atomic_load(&mem_region.next_span);
    atomic_store(&mem_region.next_span, MEM_N_SPANS);
    void *p = mem_alloc(40000); /* a class with no span yet in this thread */
    assert_non_null(p);
    assert_false(in_region(p));
    mem_free(p);
    atomic_store(&mem_region.next_span, saved);
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
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_cache_reuses_blocks),
        cmocka_unit_test(test_blocks_freed_elsewhere_come_back),
        cmocka_unit_test(test_region_used_up_falls_back_to_malloc),
        cmocka_unit_test(test_calloc_and_fail_after),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_buf),
    };
    return cmocka_run_group_tests_name("mem", tests, NULL, NULL);
}
