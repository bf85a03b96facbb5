/* fuzz_wal.c - libFuzzer target: hostile WAL directories into wal_open and
 * wal_valid_snapshots, and whatever opens must take an append and read it
 * back.
 *
 * Input byte 0 picks the mode.  Raw (bit 7 set): the rest is the segment
 * images themselves, bits 0-1 + 1 segments, split by two-byte lengths.
 * Built (bit 7 clear): the rest is a list of records [type][len][payload]
 * that this target frames with a valid CRC chain (type 0xff starts a new
 * segment), so the fuzzer reaches record semantics (overwrites, gaps,
 * metadata, snapshots, segment structure) past the CRC.  Type bits 0-2 are
 * the record type; unless bit 3 is set, an entry payload is [index delta]
 * [term][data...], a hard state [term][vote][commit delta], a snapshot
 * [index][term], encoded as raft would.  Unless bit 5 of byte 0 is set,
 * each segment starts with the crc and metadata records etcd writes (the
 * first also with snapshot {0, 0}).  Then, if bit 6 of byte 0 is set, bytes
 * 1-2 of the input flip one bit of the last segment.
 * Files go to a directory under /dev/shm (or /tmp).
 */
// deps: wal.c crc32c.c pb.c api.c mem.c
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "pb.h"
#include "wal.h"

#define FUZZ_MAX_SEGS 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[64];

static void fuzz_clear(void)
{
    DIR *d = opendir(fuzz_dir);
    if (!d)
        abort();
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
}

static void fuzz_cleanup(void)
{
    fuzz_clear();
    rmdir(fuzz_dir);
}

static void fuzz_write(size_t seq, const uint8_t *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%016zx-%016zx.wal", fuzz_dir, seq, seq * 4);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n))
        abort();
    close(fd);
}

/* Frames one record with the running CRC, as etcd's encoder does. */
static void fuzz_frame(struct mem_buf *out, uint32_t *crc, int64_t type, const uint8_t *p,
                       size_t n)
{
    struct api_wal_record rec = {.type = type, .data = {p, n}};
    if (type == 4) { /* crc records carry the running CRC and no data */
        rec.data.p = NULL;
        rec.data.len = 0;
    }
    *crc = crc32c_update(*crc, rec.data.p, rec.data.len);
    rec.crc = *crc;
    size_t len = pb_encoded_size(&api_wal_record_desc, &rec), pad = (8 - len % 8) % 8;
    uint64_t word = len | (pad ? (uint64_t)(0x80 | pad) << 56 : 0);
    uint8_t w[8];
    for (int i = 0; i < 8; i++)
        w[i] = (uint8_t)(word >> (8 * i));
    static const uint8_t zero[8];
    if (mem_buf_append(out, w, 8) < 0 || pb_encode(&api_wal_record_desc, &rec, out) < 0 ||
        mem_buf_append(out, zero, pad) < 0)
        abort();
}

static void fuzz_head(struct mem_buf *seg, uint32_t *crc, bool first)
{
    static const uint8_t meta[] = {0x08, 0x01, 0x10, 0x02}, snap[] = {0x08, 0x00, 0x10, 0x00};
    fuzz_frame(seg, crc, 4, NULL, 0);
    fuzz_frame(seg, crc, 1, meta, sizeof meta);
    if (first)
        fuzz_frame(seg, crc, 5, snap, sizeof snap);
}

static void fuzz_built(const uint8_t *data, size_t size, bool head, bool flip, size_t flip_at)
{
    struct mem_buf seg[FUZZ_MAX_SEGS] = {{0}};
    size_t nseg = 1, pos = 0;
    uint32_t crc = 0;
    uint64_t index = 0;
    if (head)
        fuzz_head(&seg[0], &crc, true);
    while (pos + 2 <= size) {
        uint8_t type = data[pos];
        size_t n = data[pos + 1];
        pos += 2;
        if (n > size - pos)
            n = size - pos;
        const uint8_t *p = data + pos;
        pos += n;
        if (type == 0xff) {
            if (nseg == FUZZ_MAX_SEGS)
                break;
            nseg++;
            if (head)
                fuzz_head(&seg[nseg - 1], &crc, false);
            continue;
        }
        uint8_t enc[300];
        size_t len = 0;
        if ((type & 7) == 2 && !(type & 8) && n >= 2) {
            index += (uint64_t)(int64_t)(int8_t)p[0];
            struct api_raft_entry e = {.Term = p[1], .Index = index, .Data = {p + 2, n - 2}};
            len = pb_encoded_size(&api_raft_entry_desc, &e);
            pb_encode_to(&api_raft_entry_desc, &e, enc, len);
        } else if ((type & 7) == 3 && !(type & 8) && n >= 3) {
            struct api_raft_hard_state hs = {p[0], p[1], index - p[2]};
            len = pb_encoded_size(&api_raft_hard_state_desc, &hs);
            pb_encode_to(&api_raft_hard_state_desc, &hs, enc, len);
        } else if ((type & 7) == 5 && !(type & 8) && n >= 2) {
            struct api_wal_snapshot sn = {p[0], p[1]};
            len = pb_encoded_size(&api_wal_snapshot_desc, &sn);
            pb_encode_to(&api_wal_snapshot_desc, &sn, enc, len);
        } else {
            memcpy(enc, p, n);
            len = n;
        }
        fuzz_frame(&seg[nseg - 1], &crc, type & 7, enc, len);
    }
    struct mem_buf *last = &seg[nseg - 1];
    if (flip && last->len)
        last->data[flip_at % last->len] ^= (uint8_t)(1 << (flip_at / 8 % 8));
    for (size_t i = 0; i < nseg; i++) {
        fuzz_write(i, seg[i].data, seg[i].len);
        mem_buf_free(&seg[i]);
    }
}

static void fuzz_raw(const uint8_t *data, size_t size, size_t nseg)
{
    size_t pos = 0;
    for (size_t i = 0; i < nseg; i++) {
        size_t n = size - pos;
        if (i + 1 < nseg && pos + 2 <= size) {
            n = (size_t)data[pos] << 8 | data[pos + 1];
            pos += 2;
            if (n > size - pos)
                n = size - pos;
        }
        fuzz_write(i, data + pos, n);
        pos += n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_dir[0]) {
        strcpy(fuzz_dir, access("/dev/shm", W_OK) == 0 ? "/dev/shm/fuzz_wal.XXXXXX"
                                                         : "/tmp/fuzz_wal.XXXXXX");
        if (!mkdtemp(fuzz_dir))
            abort();
        atexit(fuzz_cleanup);
    }
    if (size < 3)
        return 0;
    fuzz_clear();
    if (data[0] & 0x80)
        fuzz_raw(data + 1, size - 1, 1 + (data[0] & 3));
    else
        fuzz_built(data + 3, size - 3, !(data[0] & 0x20), data[0] & 0x40,
                   (size_t)data[1] << 8 | data[2]);

    struct mem_arena a;
    struct wal_contents c;
    struct wal *w;
    mem_arena_init(&a, 16 << 20);
    (void)wal_valid_snapshots(fuzz_dir, &a, &c);
    mem_arena_reset(&a);
    if (wal_open(fuzz_dir, 0, 0, &a, &w, &c) != 0) {
        if (w || !c.err[0])
            abort();
        mem_arena_free(&a);
        return 0;
    }
    /* what opened takes an append and reads it back */
    size_t n = c.n_ents;
    struct api_raft_entry e = {.Term = 7, .Index = n + 1, .Data = {(const uint8_t *)"fz", 2}};
    struct api_raft_hard_state hs = {7, 1, n + 1};
    if (wal_save(w, &hs, &e, 1) != 0 || wal_sync(w) != 0 || wal_close(w) != 0)
        abort();
    mem_arena_reset(&a);
    if (wal_open(fuzz_dir, 0, 0, &a, &w, &c) != 0 || c.n_ents != n + 1 ||
        c.ents[n].Term != 7 || c.ents[n].Data.len != 2 || c.hs.commit != n + 1)
        abort();
    wal_close(w);
    mem_arena_free(&a);
    return 0;
}
