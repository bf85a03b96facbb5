/* crc32c.h - CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78).
 *
 * The checksum of etcd's WAL records, snapshot files and of our backend
 * pages.  Semantics are those of Go's crc32.Update with crc32.Castagnoli:
 * the running value is the finished CRC of everything fed so far, so
 *   crc32c_update(crc32c_update(0, a), b) == crc32c_update(0, a || b)
 * and crc32c_update(0, "123456789", 9) == 0xE3069283 (the check value).
 *
 * Thread-safe; no allocation.  Uses the SSE4.2 crc32 instruction when the CPU
 * has it, slice-by-8 tables otherwise.
 */
#ifndef ETCD_CRC32C_H
#define ETCD_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC of (what crc covered) followed by p[0..n).  p may be NULL when n == 0. */
uint32_t crc32c_update(uint32_t crc, const void *p, size_t n);

#endif
