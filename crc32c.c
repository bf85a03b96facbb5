/* crc32c.c - CRC-32C for the WAL, snapshot files and backend pages (see
 * crc32c.h).  It owns the lookup tables and the choice between the hardware
 * instruction and the portable slice-by-8 loop; it does not know what the
 * bytes are. */
#include "crc32c.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#define CRC32C_HAVE_SSE42 1
#endif

#define CRC32C_POLY 0x82F63B78u /* 0x1EDC6F41 bit-reversed */

static void crc32c_init(void);
static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t n);

static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;
/* Written once under crc32c_once, read-only afterwards. */
static uint32_t crc32c_table[8][256];
static bool crc32c_hw;

/* ---- portable: slice-by-8 ---- */

static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc32c_table[0][i] = c;
    }
    /* table[k][i] is the CRC of byte i followed by k zero bytes, so eight
     * bytes fold into the state with eight independent lookups. */
    for (uint32_t i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++) {
            uint32_t c = crc32c_table[k - 1][i];
            crc32c_table[k][i] = (c >> 8) ^ crc32c_table[0][c & 0xff];
        }
#ifdef CRC32C_HAVE_SSE42
    unsigned a, b, c, d;
    crc32c_hw = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2);
#endif
}

/* crc is the raw (pre-inverted) register here and in crc32c_hwloop. */
static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t n)
{
    while (n && ((uintptr_t)p & 7)) {
        crc = (crc >> 8) ^ crc32c_table[0][(crc ^ *p++) & 0xff];
        n--;
    }
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        lo = __builtin_bswap32(lo);
        hi = __builtin_bswap32(hi);
#endif
        lo ^= crc;
        crc = crc32c_table[7][lo & 0xff] ^ crc32c_table[6][(lo >> 8) & 0xff] ^
              crc32c_table[5][(lo >> 16) & 0xff] ^ crc32c_table[4][lo >> 24] ^
              crc32c_table[3][hi & 0xff] ^ crc32c_table[2][(hi >> 8) & 0xff] ^
              crc32c_table[1][(hi >> 16) & 0xff] ^ crc32c_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ crc32c_table[0][(crc ^ *p++) & 0xff];
    return crc;
}

/* ---- x86-64: the SSE4.2 crc32 instruction computes exactly CRC-32C ---- */

#ifdef CRC32C_HAVE_SSE42
__attribute__((target("sse4.2"))) static uint32_t crc32c_hwloop(uint32_t crc, const uint8_t *p,
                                                                 size_t n)
{
    uint64_t c = crc;
    while (n && ((uintptr_t)p & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        n--;
    }
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        n -= 8;
    }
    while (n--)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return (uint32_t)c;
}
#endif

uint32_t crc32c_update(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc32c_once, crc32c_init);
    if (n == 0)
        return crc;
#ifdef CRC32C_HAVE_SSE42
    if (crc32c_hw)
        return ~crc32c_hwloop(~crc, p, n);
#endif
    return ~crc32c_sw(~crc, p, n);
}
