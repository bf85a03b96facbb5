/* fuzz_db.c - libFuzzer target: hostile database files into db.c.
 *
 * Input byte 0 picks the image: even = the rest of the input is the whole
 * file; odd = a valid database built once at start-up (buckets, a nested
 * and an inline bucket, a two-level tree, overflow values, a freelist)
 * with the rest of the input applied as patches {offset u32, length u8,
 * bytes}, which reaches far deeper than raw bytes would.  The image goes to a
 * memfd that is opened by path; then every bucket is walked with cursors
 * (forward, backward, seeks; nested buckets too; a step budget bounds
 * trees that share pages), the structure is checked, a snapshot is written,
 * and a write transaction puts, deletes, creates and deletes a bucket and
 * commits.  Any error is fine; a crash, a sanitizer report or a hang is not.
 * It does not check that corruption is always detected.
 *
 * Build: clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined
 *        -I. tests/fuzz/fuzz_db.c db.c mem.c -o /tmp/fuzz_db */
// deps: db.c mem.c
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "db.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *base_img;
static size_t base_len;
static long steps;

/* A memfd holding n bytes of p; its /proc path in path. */
static int fuzz_file(const uint8_t *p, size_t n, char *path, size_t plen)
{
    int fd = memfd_create("fuzz_db", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    if (n && write(fd, p, n) != (ssize_t)n)
        abort();
    snprintf(path, plen, "/proc/self/fd/%d", fd);
    return fd;
}

static void build_base(void)
{
    char path[64], k[32];
    struct db *db;
    struct db_tx *tx;
    struct db_bucket *b, *n, *s;
    int fd = fuzz_file(NULL, 0, path, sizeof path);
    if (db_open(path, 0, &db, NULL, 0) || db_begin(db, true, &tx) ||
        db_bucket_create(tx, NULL, "key", 3, false, &b) ||
        db_bucket_create(tx, NULL, "meta", 4, false, &s) ||
        db_bucket_create(tx, b, "nested", 6, false, &n) || db_put(n, "a", 1, "b", 1) ||
        db_put(s, "consistent_index", 16, "\0\0\0\0\0\0\0\7", 8))
        abort();
    static uint8_t big[9000];
    memset(big, 'B', sizeof big);
    for (int i = 0; i < 700; i++) {
        snprintf(k, sizeof k, "%08d", i);
        if (db_put(b, k, strlen(k), big, i % 300 == 0 ? sizeof big : (size_t)(i % 23)))
            abort();
    }
    if (db_commit(tx) || db_begin(db, true, &tx) || db_bucket_get(tx, NULL, "key", 3, &b))
        abort();
    for (int i = 0; i < 700; i += 3) {
        snprintf(k, sizeof k, "%08d", i);
        if (db_del(b, k, strlen(k)))
            abort();
    }
    if (db_commit(tx))
        abort();
    db_close(db);
    base_len = (size_t)lseek(fd, 0, SEEK_END);
    base_img = malloc(base_len);
    if (!base_img || pread(fd, base_img, base_len, 0) != (ssize_t)base_len)
        abort();
    close(fd);
}

static void walk(struct db_tx *tx, struct db_bucket *b, int depth)
{
    struct db_cursor c;
    struct db_val k, v;
    int rc;
    db_cursor_init(&c, tx, b);
    for (rc = db_cursor_first(&c, &k, &v); !rc && steps-- > 0; rc = db_cursor_next(&c, &k, &v)) {
        if (!v.p && depth < 8) {
            struct db_bucket *sub;
            if (db_bucket_get(tx, b, k.p, k.len, &sub) == 0)
                walk(tx, sub, depth + 1);
        } else if (v.p && v.len) {
            volatile uint8_t sink = v.p[0] ^ v.p[v.len - 1] ^ k.p[0];
            (void)sink;
        }
    }
    for (rc = db_cursor_last(&c, &k, &v); !rc && steps-- > 0; rc = db_cursor_prev(&c, &k, &v)) {
    }
    if (b) {
        for (int i = 0; i < 4; i++) {
            char key[16];
            snprintf(key, sizeof key, "%08d", i * 200);
            if (db_cursor_seek(&c, key, strlen(key), &k, &v) == 0 && db_cursor_next(&c, &k, &v) == 0 &&
                db_cursor_prev(&c, &k, &v)) {
            }
            if (db_get(b, key, strlen(key), &v)) {
            }
        }
    }
}

static void exercise(const char *path)
{
    struct db *db;
    struct db_tx *tx;
    struct db_bucket *b, *nb;
    char err[256];
    if (db_open(path, DB_NO_SYNC, &db, err, sizeof err))
        return;
    steps = 50000;
    if (db_begin(db, false, &tx) == 0) {
        walk(tx, NULL, 0);
        if (db_check(tx)) {
        }
        int out = memfd_create("fuzz_db_snap", MFD_CLOEXEC);
        uint64_t n;
        if (out >= 0 && db_tx_write_to(tx, out, &n)) {
        }
        if (out >= 0)
            close(out);
        db_rollback(tx);
    }
    if (db_begin(db, true, &tx) == 0) {
        int rc = db_bucket_create(tx, NULL, "key", 3, true, &b);
        if (!rc)
            rc = db_put(b, "00000300", 8, "x", 1);
        if (!rc)
            rc = db_del(b, "00000301", 8);
        if (!rc)
            rc = db_bucket_create(tx, NULL, "fuzz", 4, true, &nb);
        if (!rc)
            rc = db_bucket_delete(tx, NULL, "meta", 4);
        if (!rc || rc == DB_ENOTFOUND || rc == DB_EINCOMPAT)
            rc = db_commit(tx);
        else
            db_rollback(tx);
        if (!rc && db_begin(db, false, &tx) == 0) {
            steps = 50000;
            walk(tx, NULL, 0);
            db_rollback(tx);
        }
    }
    db_close(db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    if (size < 1)
        return 0;
    if (!base_img)
        build_base();
    const uint8_t *img = data + 1;
    size_t len = size - 1;
    uint8_t *patched = NULL;
    if (data[0] & 1) {
        patched = malloc(base_len);
        if (!patched)
            return 0;
        memcpy(patched, base_img, base_len);
        for (size_t i = 0; i + 5 <= len;) {
            uint32_t off;
            memcpy(&off, img + i, 4);
            size_t n = img[i + 4];
            i += 5;
            if (n > len - i)
                n = len - i;
            off %= (uint32_t)base_len;
            if (n > base_len - off)
                n = base_len - off;
            memcpy(patched + off, img + i, n);
            i += n;
        }
        img = patched;
        len = base_len;
    }
    int fd = fuzz_file(img, len, path, sizeof path);
    exercise(path);
    close(fd);
    free(patched);
    return 0;
}
