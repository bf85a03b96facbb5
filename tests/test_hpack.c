/* test_hpack.c - HPACK: every example of RFC 7541 Appendix C (decoded lists
 * and dynamic table state after each block), the encoder against C.4,
 * encoder/decoder round trips, and hostile blocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../hpack.c"

struct hv {
    const char *name;
    const char *value;
};

struct step {
    const char *hex;
    struct hv hdrs[8];
    struct hv table[8]; /* newest first */
    size_t size;
};

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *s; s++) {
        int v;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            assert_true(n < cap);
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    assert_int_equal(hi, -1);
    return n;
}

static void assert_hdr(const struct h2_header *h, const struct hv *want)
{
    assert_int_equal(h->name_len, strlen(want->name));
    assert_memory_equal(h->name, want->name, h->name_len);
    assert_int_equal(h->value_len, strlen(want->value));
    if (h->value_len)
        assert_memory_equal(h->value, want->value, h->value_len);
}

static void assert_table(const struct hpack_table *t, const struct hv *want, size_t size)
{
    size_t n = 0;
    while (n < 8 && want[n].name)
        n++;
    assert_int_equal(t->ht_n, n);
    assert_int_equal(t->ht_size, size);
    for (size_t k = 0; k < n; k++) {
        const struct hpack_entry *e = hpack_table_get(t, k + 1);
        assert_non_null(e);
        struct h2_header h = {(const char *)t->ht_buf + e->he_off, e->he_name_len,
                              (const char *)t->ht_buf + e->he_off + e->he_name_len,
                              e->he_value_len};
        assert_hdr(&h, &want[k]);
    }
}

static void run_series(size_t table_limit, const struct step *steps, size_t n_steps)
{
    struct hpack_decoder d;
    struct mem_arena a;
    hpack_decoder_init(&d, table_limit);
    mem_arena_init(&a, 0);
    for (size_t s = 0; s < n_steps; s++) {
        uint8_t block[512];
        size_t len = unhex(steps[s].hex, block, sizeof block);
        struct h2_header *h;
        size_t n;
        assert_int_equal(hpack_decode(&d, block, len, 1 << 20, &a, &h, &n), 0);
        size_t want_n = 0;
        while (want_n < 8 && steps[s].hdrs[want_n].name)
            want_n++;
        assert_int_equal(n, want_n);
        for (size_t k = 0; k < n; k++)
            assert_hdr(&h[k], &steps[s].hdrs[k]);
        assert_table(&d.hd_table, steps[s].table, steps[s].size);
        mem_arena_reset(&a);
    }
    mem_arena_free(&a);
    hpack_decoder_free(&d);
}

/* ---- RFC 7541 C.1: integers ---- */

static void test_c1_integers(void **state)
{
    (void)state;
    static const struct {
        unsigned prefix;
        uint32_t v;
        const char *hex;
    } cases[] = {
        {5, 10, "0a"}, {5, 1337, "1f9a0a"}, {8, 42, "2a"}, {5, 31, "1f00"},
        {7, 127, "7f00"}, {4, 0, "00"}, {8, UINT32_MAX, "ff80feffff0f"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint8_t want[16], got[16];
        size_t wl = unhex(cases[k].hex, want, sizeof want);
        uint8_t *end = hpack_put_int(got, 0, cases[k].prefix, cases[k].v);
        assert_int_equal((size_t)(end - got), wl);
        assert_memory_equal(got, want, wl);
        size_t i = 0;
        uint32_t v;
        assert_int_equal(hpack_get_int(want, wl, &i, cases[k].prefix, &v), 0);
        assert_int_equal(v, cases[k].v);
        assert_int_equal(i, wl);
    }
}

/* ---- RFC 7541 C.2: one representation each ---- */

static void test_c2_representations(void **state)
{
    (void)state;
    static const struct step c21[] = {
        {"400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
         {{"custom-key", "custom-header"}},
         {{"custom-key", "custom-header"}},
         55},
    };
    static const struct step c22[] = {
        {"040c 2f73 616d 706c 652f 7061 7468", {{":path", "/sample/path"}}, {{0}}, 0},
    };
    static const struct step c23[] = {
        {"1008 7061 7373 776f 7264 0673 6563 7265 74", {{"password", "secret"}}, {{0}}, 0},
    };
    static const struct step c24[] = {
        {"82", {{":method", "GET"}}, {{0}}, 0},
    };
    run_series(4096, c21, 1);
    run_series(4096, c22, 1);
    run_series(4096, c23, 1);
    run_series(4096, c24, 1);
}

/* ---- RFC 7541 C.3 / C.4: requests ---- */

#define REQ1 {":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "www.example.com"}
#define REQ3                                                                                  \
    {":method", "GET"}, {":scheme", "https"}, {":path", "/index.html"},                       \
        {":authority", "www.example.com"}, {"custom-key", "custom-value"}
#define T_AUTH {":authority", "www.example.com"}
#define T_CC {"cache-control", "no-cache"}
#define T_CUSTOM {"custom-key", "custom-value"}

static void test_c3_requests_plain(void **state)
{
    (void)state;
    static const struct step s[] = {
        {"8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", {REQ1}, {T_AUTH}, 57},
        {"8286 84be 5808 6e6f 2d63 6163 6865", {REQ1, T_CC}, {T_CC, T_AUTH}, 110},
        {"8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
         {REQ3},
         {T_CUSTOM, T_CC, T_AUTH},
         164},
    };
    run_series(4096, s, 3);
}

static const struct step c4_steps[] = {
    {"8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", {REQ1}, {T_AUTH}, 57},
    {"8286 84be 5886 a8eb 1064 9cbf", {REQ1, T_CC}, {T_CC, T_AUTH}, 110},
    {"8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
     {REQ3},
     {T_CUSTOM, T_CC, T_AUTH},
     164},
};

static void test_c4_requests_huffman(void **state)
{
    (void)state;
    run_series(4096, c4_steps, 3);
}

/* Our encoder makes the same choices as the RFC's for these requests. */
static void test_c4_encoder_matches(void **state)
{
    (void)state;
    struct hpack_encoder e;
    hpack_encoder_init(&e);
    for (size_t s = 0; s < 3; s++) {
        struct h2_header h[8];
        size_t n = 0;
        for (; n < 8 && c4_steps[s].hdrs[n].name; n++)
            h[n] = (struct h2_header){c4_steps[s].hdrs[n].name, strlen(c4_steps[s].hdrs[n].name),
                                      c4_steps[s].hdrs[n].value,
                                      strlen(c4_steps[s].hdrs[n].value)};
        struct mem_buf out = {0};
        assert_int_equal(hpack_encode(&e, h, n, 0, &out), 0);
        uint8_t want[256];
        size_t wl = unhex(c4_steps[s].hex, want, sizeof want);
        assert_int_equal(out.len, wl);
        assert_memory_equal(out.data, want, wl);
        assert_table(&e.he_table, c4_steps[s].table, c4_steps[s].size);
        mem_buf_free(&out);
    }
    hpack_encoder_free(&e);
}

/* ---- RFC 7541 C.5 / C.6: responses, table size 256 ---- */

#define RESP1                                                                                 \
    {":status", "302"}, {"cache-control", "private"}, {"date", "Mon, 21 Oct 2013 20:13:21 GMT"}, \
        {"location", "https://www.example.com"}
#define RESP2                                                                                 \
    {":status", "307"}, {"cache-control", "private"}, {"date", "Mon, 21 Oct 2013 20:13:21 GMT"}, \
        {"location", "https://www.example.com"}
#define COOKIE "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
#define RESP3                                                                                 \
    {":status", "200"}, {"cache-control", "private"}, {"date", "Mon, 21 Oct 2013 20:13:22 GMT"}, \
        {"location", "https://www.example.com"}, {"content-encoding", "gzip"},                 \
        {"set-cookie", COOKIE}
#define TAB1                                                                                  \
    {"location", "https://www.example.com"}, {"date", "Mon, 21 Oct 2013 20:13:21 GMT"},      \
        {"cache-control", "private"}, {":status", "302"}
#define TAB2                                                                                  \
    {":status", "307"}, {"location", "https://www.example.com"},                              \
        {"date", "Mon, 21 Oct 2013 20:13:21 GMT"}, {"cache-control", "private"}
#define TAB3                                                                                  \
    {"set-cookie", COOKIE}, {"content-encoding", "gzip"}, {"date", "Mon, 21 Oct 2013 20:13:22 GMT"}

static void test_c5_responses_plain(void **state)
{
    (void)state;
    static const struct step s[] = {
        {"4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133"
         "2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70"
         "6c65 2e63 6f6d",
         {RESP1},
         {TAB1},
         222},
        {"4803 3330 37c1 c0bf", {RESP2}, {TAB2}, 222},
        {"88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d"
         "54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049"
         "5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e"
         "3d31",
         {RESP3},
         {TAB3},
         215},
    };
    run_series(256, s, 3);
}

static void test_c6_responses_huffman(void **state)
{
    (void)state;
    static const struct step s[] = {
        {"4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6"
         "2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
         {RESP1},
         {TAB1},
         222},
        {"4883 640e ffc1 c0bf", {RESP2}, {TAB2}, 222},
        {"88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab"
         "77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f"
         "9587 3160 65c0 03ed 4ee5 b106 3d50 07",
         {RESP3},
         {TAB3},
         215},
    };
    run_series(256, s, 3);
}

/* ---- Huffman ---- */

static void test_huffman_all_bytes(void **state)
{
    (void)state;
    uint8_t in[512], enc[2048], dec[4096];
    for (size_t k = 0; k < sizeof in; k++)
        in[k] = (uint8_t)(k * 7 + k / 256);
    for (size_t len = 0; len <= sizeof in; len += 37) {
        size_t hl = hpack_huffman_len(in, len);
        assert_true(hl <= sizeof enc);
        assert_int_equal((size_t)(hpack_huffman_encode(in, len, enc) - enc), hl);
        long r = hpack_huffman_decode(enc, hl, dec);
        assert_int_equal(r, (long)len);
        if (len)
            assert_memory_equal(dec, in, len);
    }
}

static long huff(const char *hex)
{
    uint8_t p[64], dst[128];
    size_t n = unhex(hex, p, sizeof p);
    return hpack_huffman_decode(p, n, dst);
}

static void test_huffman_bad(void **state)
{
    (void)state;
    assert_int_equal(huff("1f"), 1);   /* 'a' 00011 + padding 111 */
    assert_int_equal(huff("18"), HPACK_ERR_COMPRESSION); /* 'a' + padding 000 */
    assert_int_equal(huff("1fff"), HPACK_ERR_COMPRESSION); /* 11 bits of padding */
    assert_int_equal(huff("ff"), HPACK_ERR_COMPRESSION); /* 8 bits of padding */
    assert_int_equal(huff("ffffffff"), HPACK_ERR_COMPRESSION); /* EOS + 2 bits */
    assert_int_equal(huff("fffffffc"), HPACK_ERR_COMPRESSION); /* EOS */
    assert_int_equal(huff("fe"), HPACK_ERR_COMPRESSION); /* incomplete code, not all ones */
    assert_int_equal(huff(""), 0);
}

/* ---- hostile blocks ---- */

static int decode_hex(struct hpack_decoder *d, const char *hex, size_t max_list, size_t *n_out)
{
    uint8_t p[256];
    size_t n = unhex(hex, p, sizeof p);
    struct mem_arena a;
    mem_arena_init(&a, 0);
    struct h2_header *h;
    size_t nh = 0;
    int r = hpack_decode(d, p, n, max_list, &a, &h, &nh);
    mem_arena_free(&a);
    if (n_out)
        *n_out = nh;
    return r;
}

static int decode1(const char *hex)
{
    struct hpack_decoder d;
    hpack_decoder_init(&d, 4096);
    int r = decode_hex(&d, hex, 1 << 16, NULL);
    hpack_decoder_free(&d);
    return r;
}

static void test_bad_blocks(void **state)
{
    (void)state;
    assert_int_equal(decode1("ff"), HPACK_ERR_COMPRESSION);                /* truncated int */
    assert_int_equal(decode1("ff80"), HPACK_ERR_COMPRESSION);              /* truncated int */
    assert_int_equal(decode1("ffffffffff0f"), HPACK_ERR_COMPRESSION);      /* > 2^32 */
    assert_int_equal(decode1("ff808080808001"), HPACK_ERR_COMPRESSION);    /* too long */
    assert_int_equal(decode1("80"), HPACK_ERR_COMPRESSION);                /* index 0 */
    assert_int_equal(decode1("be"), HPACK_ERR_COMPRESSION);                /* 62, empty table */
    assert_int_equal(decode1("bf"), HPACK_ERR_COMPRESSION);                /* 63 */
    assert_int_equal(decode1("7f00"), HPACK_ERR_COMPRESSION);              /* name index 63 */
    assert_int_equal(decode1("400a616263"), HPACK_ERR_COMPRESSION);        /* name past end */
    assert_int_equal(decode1("4003616263"), HPACK_ERR_COMPRESSION);        /* no value */
    assert_int_equal(decode1("40036162630a61"), HPACK_ERR_COMPRESSION);    /* value past end */
    assert_int_equal(decode1("00ff"), HPACK_ERR_COMPRESSION);              /* name length cut */
    assert_int_equal(decode1("0081ff0161"), HPACK_ERR_COMPRESSION);        /* name: padding 8 bits */
    assert_int_equal(decode1("0084fffffffc0161"), HPACK_ERR_COMPRESSION);  /* name: EOS */
    assert_int_equal(decode1("048118"), HPACK_ERR_COMPRESSION);            /* value: zero pad */
    assert_int_equal(decode1("3fe21f"), HPACK_ERR_COMPRESSION);            /* update to 4097 */
    assert_int_equal(decode1("8220"), HPACK_ERR_COMPRESSION);              /* update after field */
    assert_int_equal(decode1("3fe11f"), 0);                                /* update to 4096 */
    assert_int_equal(decode1("203fe11f2082"), 0);                          /* several at start */
    assert_int_equal(decode1("000361626300"), 0);                          /* empty value */
    assert_int_equal(decode1(""), 0);
}

/* A size update evicts, and a shrunk table rejects indexes it no longer has. */
static void test_size_update_evicts(void **state)
{
    (void)state;
    struct hpack_decoder d;
    hpack_decoder_init(&d, 4096);
    assert_int_equal(decode_hex(&d, "4003616263036465664003676869036a6b6c", 1 << 16, NULL), 0);
    assert_int_equal(d.hd_table.ht_n, 2);
    assert_int_equal(decode_hex(&d, "bfbe", 1 << 16, NULL), 0);
    assert_int_equal(decode_hex(&d, "3f1bbe", 1 << 16, NULL), 0); /* max 58: one entry left */
    assert_int_equal(d.hd_table.ht_n, 1);
    assert_int_equal(decode_hex(&d, "bf", 1 << 16, NULL), HPACK_ERR_COMPRESSION);
    assert_int_equal(decode_hex(&d, "20be", 1 << 16, NULL), HPACK_ERR_COMPRESSION);
    hpack_decoder_free(&d);
}

/* RFC 7541 4.4: a new entry may name an entry its own insertion evicts. */
static void test_insert_names_evicted_entry(void **state)
{
    (void)state;
    struct hpack_decoder d;
    hpack_decoder_init(&d, 4096);
    char hex[256];
    /* max 80; abc: def (38); then name index 62 with a 40-byte value (75) */
    int o = snprintf(hex, sizeof hex, "3f31 4003616263036465667e28");
    for (int k = 0; k < 40; k++)
        o += snprintf(hex + o, sizeof hex - (size_t)o, "78");
    size_t n;
    assert_int_equal(decode_hex(&d, hex, 1 << 16, &n), 0);
    assert_int_equal(n, 2);
    static const struct hv want[] = {{"abc", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}, {0}};
    assert_table(&d.hd_table, want, 75);
    /* the same with the list over its limit, where names are not copied */
    assert_int_equal(decode_hex(&d, "7e0179", 10, &n), HPACK_ERR_LIST_SIZE);
    static const struct hv want2[] = {{"abc", "y"}, {0}};
    assert_table(&d.hd_table, want2, 36);
    hpack_decoder_free(&d);
}

/* The buffer compacts as entries cycle through it; contents survive, also
 * when a new entry takes its name from an entry it evicts.  Checked against
 * a plain model of the table. */
struct model_ent {
    char s[80];
    size_t nl, vl;
};

static void test_table_compaction(void **state)
{
    (void)state;
    struct hpack_table t;
    struct model_ent m[16]; /* newest first */
    size_t mn = 0, msize = 0;
    hpack_table_init(&t, 256);
    for (int k = 0; k < 5000; k++) {
        char name[40], value[40];
        const uint8_t *np = (const uint8_t *)name;
        size_t nl, vl = (size_t)(k * 7 % 40);
        memset(value, 'a' + k % 26, vl);
        if (mn && k % 3 == 0) { /* name from inside the table, often the oldest */
            size_t pick = k % 2 ? mn - 1 : (size_t)k % mn;
            const struct hpack_entry *e = hpack_table_get(&t, pick + 1);
            np = t.ht_buf + e->he_off;
            nl = e->he_name_len;
            memcpy(name, np, nl);
        } else {
            nl = (size_t)snprintf(name, sizeof name, "n%d-%.*s", k, k % 20, "xxxxxxxxxxxxxxxxxxxx");
        }
        assert_int_equal(hpack_table_insert(&t, np, nl, (uint8_t *)value, vl), 0);
        size_t need = nl + vl + 32;
        if (need > 256) {
            mn = msize = 0;
        } else {
            while (msize + need > 256) {
                mn--;
                msize -= m[mn].nl + m[mn].vl + 32;
            }
            memmove(m + 1, m, mn * sizeof m[0]);
            memcpy(m[0].s, name, nl);
            memcpy(m[0].s + nl, value, vl);
            m[0].nl = nl;
            m[0].vl = vl;
            mn++;
            msize += need;
        }
        assert_int_equal(t.ht_n, mn);
        assert_int_equal(t.ht_size, msize);
        assert_true(t.ht_end <= 512);
        for (size_t i = 0; i < mn; i++) {
            const struct hpack_entry *e = hpack_table_get(&t, i + 1);
            assert_int_equal(e->he_name_len, m[i].nl);
            assert_int_equal(e->he_value_len, m[i].vl);
            assert_memory_equal(t.ht_buf + e->he_off, m[i].s, m[i].nl + m[i].vl);
        }
    }
    /* an entry larger than the table empties it */
    char big[300];
    memset(big, 'b', sizeof big);
    assert_int_equal(hpack_table_insert(&t, (uint8_t *)"x", 1, (uint8_t *)big, sizeof big), 0);
    assert_int_equal(t.ht_n, 0);
    assert_int_equal(t.ht_size, 0);
    hpack_table_free(&t);
}

/* A header list over the limit is reported after the whole block was
 * processed (table in sync), and references to big entries are not copied. */
static void test_list_size_bomb(void **state)
{
    (void)state;
    struct hpack_decoder d;
    hpack_decoder_init(&d, 4096);
    uint8_t block[8192];
    size_t n = 0;
    block[n++] = 0x40; /* a: 3000 x 'v', incremental indexing */
    block[n++] = 1;
    block[n++] = 'a';
    n = (size_t)(hpack_put_int(block + n, 0, 7, 3000) - block);
    memset(block + n, 'v', 3000);
    n += 3000;
    while (n < sizeof block)
        block[n++] = 0xbe; /* 5000 references to the 3 KB entry */
    struct mem_arena a;
    mem_arena_init(&a, 64 * 1024);
    struct h2_header *h;
    size_t nh;
    assert_int_equal(hpack_decode(&d, block, n, 16384, &a, &h, &nh), HPACK_ERR_LIST_SIZE);
    assert_null(h);
    assert_int_equal(nh, 0);
    assert_true(a.ma_total < 32 * 1024);
    assert_int_equal(d.hd_table.ht_n, 1);
    mem_arena_free(&a);
    /* an arena limit turns into NOMEM, not a crash */
    mem_arena_init(&a, 4096);
    assert_int_equal(hpack_decode(&d, block, n, 1 << 30, &a, &h, &nh), HPACK_ERR_NOMEM);
    mem_arena_free(&a);
    hpack_decoder_free(&d);
}

/* ---- encoder ---- */

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return rnd_state >> 8;
}

static void roundtrip(struct hpack_encoder *e, struct hpack_decoder *d, const struct h2_header *h,
                      size_t n, unsigned flags, struct mem_arena *a)
{
    struct mem_buf out = {0};
    /* as h2.c sends a static-only block: with any pending size update */
    if (flags & HPACK_ENC_STATIC_ONLY)
        assert_int_equal(hpack_encode_size_update(e, &out), 0);
    assert_int_equal(hpack_encode(e, h, n, flags, &out), 0);
    struct h2_header *got;
    size_t ng;
    assert_int_equal(hpack_decode(d, out.data, out.len, 1 << 20, a, &got, &ng), 0);
    assert_int_equal(ng, n);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(got[k].name_len, h[k].name_len);
        assert_memory_equal(got[k].name, h[k].name, h[k].name_len);
        assert_int_equal(got[k].value_len, h[k].value_len);
        if (h[k].value_len)
            assert_memory_equal(got[k].value, h[k].value, h[k].value_len);
    }
    /* both tables hold the same entries */
    assert_int_equal(e->he_table.ht_n, d->hd_table.ht_n);
    assert_int_equal(e->he_table.ht_size, d->hd_table.ht_size);
    assert_int_equal(e->he_table.ht_max, d->hd_table.ht_max);
    mem_buf_free(&out);
    mem_arena_reset(a);
}

static void test_roundtrip_random(void **state)
{
    (void)state;
    static const char *const names[] = {
        ":status", "content-type", "grpc-status", "grpc-message", "x-custom", ":path",
        "authorization", "token", "grpc-timeout", "user-agent", "te", "a-very-long-name-here",
    };
    static const char *const values[] = {"200", "application/grpc", "0", "", "trailers", "/x",
                                         "etcdserver: key not found"};
    struct hpack_encoder e;
    struct hpack_decoder d;
    struct mem_arena a;
    hpack_encoder_init(&e);
    hpack_decoder_init(&d, 4096);
    mem_arena_init(&a, 0);
    char vbuf[32][1200];
    for (int round = 0; round < 3000; round++) {
        struct h2_header h[32];
        size_t n = rnd() % 32;
        for (size_t k = 0; k < n; k++) {
            const char *name = names[rnd() % (sizeof names / sizeof names[0])];
            size_t vl;
            if (rnd() % 3) {
                const char *v = values[rnd() % (sizeof values / sizeof values[0])];
                vl = strlen(v);
                memcpy(vbuf[k], v, vl);
            } else {
                vl = rnd() % (rnd() % 8 ? 40 : sizeof vbuf[k]);
                for (size_t i = 0; i < vl; i++)
                    vbuf[k][i] = (char)(rnd() % 4 ? 'a' + rnd() % 26 : rnd());
            }
            h[k] = (struct h2_header){name, strlen(name), vbuf[k], vl};
        }
        if (round % 50 == 0) /* the peer changes its table size */
            hpack_encoder_set_peer_limit(&e, (uint32_t[]){0, 100, 4096, 65536, 300}[rnd() % 5]);
        if (round % 70 == 1) { /* shrink then grow before the next block */
            hpack_encoder_set_peer_limit(&e, 64);
            hpack_encoder_set_peer_limit(&e, 4096);
        }
        roundtrip(&e, &d, h, n, round % 7 == 0 ? HPACK_ENC_STATIC_ONLY : 0, &a);
    }
    mem_arena_free(&a);
    hpack_decoder_free(&d);
    hpack_encoder_free(&e);
}

static void test_encoder_choices(void **state)
{
    (void)state;
    struct hpack_encoder e;
    hpack_encoder_init(&e);
    struct mem_buf out = {0};
    const struct h2_header resp[] = {
        {":status", 7, "200", 3},
        {"content-type", 12, "application/grpc", 16},
    };
    const struct h2_header trail[] = {
        {"grpc-status", 11, "0", 1},
        {"token", 5, "secret", 6},
        {"grpc-timeout", 12, "5S", 2},
    };
    assert_int_equal(hpack_encode(&e, resp, 2, 0, &out), 0);
    assert_int_equal(out.data[0], 0x88); /* :status 200 is static */
    assert_int_equal(out.data[1], 0x40 | 31); /* content-type, incremental indexing */
    size_t first = out.len;
    out.len = 0;
    assert_int_equal(hpack_encode(&e, resp, 2, 0, &out), 0);
    assert_int_equal(out.len, 2); /* now both are one byte */
    assert_int_equal(out.data[1], 0xbe);
    assert_true(first > 2);
    out.len = 0;
    assert_int_equal(hpack_encode(&e, trail, 3, 0, &out), 0);
    assert_int_equal(out.data[0], 0x40); /* grpc-status: literal name, indexed */
    assert_int_equal(e.he_table.ht_n, 2); /* token and grpc-timeout were not added */
    size_t i = 1;
    i += 1 + (out.data[i] & 0x7f); /* name */
    i += 1 + (out.data[i] & 0x7f); /* value */
    assert_int_equal(out.data[i], 0x10); /* token: never indexed */
    out.len = 0;
    /* static-only: no dynamic reference, no table change */
    assert_int_equal(hpack_encode(&e, resp, 2, HPACK_ENC_STATIC_ONLY, &out), 0);
    assert_int_equal(out.data[0], 0x88);
    assert_int_equal(out.data[1], 0x0f); /* without indexing, name 31 (15 + 16) */
    assert_int_equal(out.data[2], 0x10);
    assert_int_equal(e.he_table.ht_n, 2);
    /* a smaller peer table: the next block starts with the update */
    hpack_encoder_set_peer_limit(&e, 0);
    hpack_encoder_set_peer_limit(&e, 8192);
    out.len = 0;
    assert_int_equal(hpack_encode(&e, resp, 1, HPACK_ENC_STATIC_ONLY, &out), 0);
    assert_int_equal(out.len, 1); /* static-only blocks leave the update pending */
    out.len = 0;
    assert_int_equal(hpack_encode_size_update(&e, &out), 0);
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data, "\x20\x3f\xe1\x1f", 4); /* 0, then 4096 */
    out.len = 0;
    assert_int_equal(hpack_encode_size_update(&e, &out), 0);
    assert_int_equal(out.len, 0);
    mem_buf_free(&out);
    hpack_encoder_free(&e);
}

/* Failing allocations: the encoder stays usable and in sync. */
static void test_encoder_oom(void **state)
{
    (void)state;
    struct hpack_encoder e;
    struct hpack_decoder d;
    struct mem_arena a;
    hpack_encoder_init(&e);
    hpack_decoder_init(&d, 4096);
    mem_arena_init(&a, 0);
    const struct h2_header h[] = {{"x-a", 3, "b", 1}};
    struct mem_buf out = {0};
    mem_fail_after(0, 1);
    assert_int_equal(hpack_encode(&e, h, 1, 0, &out), -1);
    mem_fail_after(-1, 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(mem_buf_reserve(&out, 64), 0);
    mem_fail_after(0, 0); /* the table's buffers: falls back to no indexing */
    assert_int_equal(hpack_encode(&e, h, 1, 0, &out), 0);
    mem_fail_after(-1, 0);
    assert_int_equal(e.he_table.ht_n, 0);
    assert_int_equal(out.data[0], 0x00);
    mem_buf_free(&out);
    roundtrip(&e, &d, h, 1, 0, &a);
    assert_int_equal(e.he_table.ht_n, 1);
    mem_arena_free(&a);
    hpack_decoder_free(&d);
    hpack_encoder_free(&e);
}

/* The encoder's first-character runs match the static table. */
static void test_static_runs(void **state)
{
    (void)state;
    for (uint32_t k = 1; k <= HPACK_STATIC_N; k++) {
        struct h2_header h = {hpack_static[k - 1].name, hpack_static[k - 1].name_len,
                              hpack_static[k - 1].value, hpack_static[k - 1].value_len};
        uint32_t name_idx;
        uint32_t idx = hpack_static_find(&h, &name_idx);
        assert_int_equal(idx, k);
        assert_true(name_idx <= k);
        assert_string_equal(hpack_static[name_idx - 1].name, h.name);
    }
    size_t covered = 0;
    for (int c = 0; c < 26; c++) {
        const uint8_t *r = hpack_static_alpha[c];
        for (uint32_t k = r[0]; r[0] && k <= r[1]; k++, covered++)
            assert_int_equal(hpack_static[k - 1].name[0], 'a' + c);
    }
    for (uint32_t k = hpack_static_pseudo[0]; k <= hpack_static_pseudo[1]; k++, covered++)
        assert_int_equal(hpack_static[k - 1].name[0], ':');
    assert_int_equal(covered, HPACK_STATIC_N);
    struct h2_header te = {"te", 2, "trailers", 8}, up = {"X", 1, "", 0}, empty = {"", 0, "", 0};
    uint32_t ni;
    assert_int_equal(hpack_static_find(&te, &ni), 0);
    assert_int_equal(ni, 0);
    assert_int_equal(hpack_static_find(&up, &ni), 0);
    assert_int_equal(hpack_static_find(&empty, &ni), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_c1_integers),
        cmocka_unit_test(test_c2_representations),
        cmocka_unit_test(test_c3_requests_plain),
        cmocka_unit_test(test_c4_requests_huffman),
        cmocka_unit_test(test_c4_encoder_matches),
        cmocka_unit_test(test_c5_responses_plain),
        cmocka_unit_test(test_c6_responses_huffman),
        cmocka_unit_test(test_huffman_all_bytes),
        cmocka_unit_test(test_huffman_bad),
        cmocka_unit_test(test_bad_blocks),
        cmocka_unit_test(test_size_update_evicts),
        cmocka_unit_test(test_insert_names_evicted_entry),
        cmocka_unit_test(test_table_compaction),
        cmocka_unit_test(test_list_size_bomb),
        cmocka_unit_test(test_roundtrip_random),
        cmocka_unit_test(test_encoder_choices),
        cmocka_unit_test(test_encoder_oom),
        cmocka_unit_test(test_static_runs),
    };
    return cmocka_run_group_tests_name("hpack", tests, NULL, NULL);
}
