/* db.c - the backend: a copy-on-write B+tree in bbolt's file format (see
 * db.h), written from the format's description, not translated from Go.
 *
 * Owns: page and meta encoding, the read path (cursors over pages in a
 * read-only shared mapping, or over nodes a write transaction changed), the
 * write path (pages read into nodes on first change, rebalanced and split at
 * commit, written to pages taken from the free list or the end of the file),
 * the free list (free pages, and pages freed by a commit that readers may
 * still see), snapshots, defrag and the structural check.
 * Does not own: buckets' meaning, batching, threads (the caller's), logging.
 *
 * The file format, in short (all little-endian):
 *   page header (16): id u64, flags u16 (branch 1, leaf 2, meta 4,
 *     freelist 0x10), count u16, overflow u32 (extra pages that follow)
 *   leaf element (16): flags u32 (1 = nested bucket), pos u32 (from the
 *     element to its key), ksize u32, vsize u32; key then value at pos
 *   branch element (16): pos u32, ksize u32, child page id u64
 *   meta (after the header of pages 0 and 1): magic 0xED0CDAED u32, version 2
 *     u32, page size u32, flags u32, root bucket {root u64, sequence u64},
 *     freelist page u64 (all ones: none), high-water page id u64, txid u64,
 *     FNV-64a of the preceding 56 bytes
 *   freelist page: count page ids u64, or count 0xFFFF and the real count in
 *     the first u64
 *   bucket value: {root u64, sequence u64}; root 0 means the bucket's single
 *     leaf page follows inline in the value.
 *
 * Why the mapping is safe to share: a page a reader can reach is never
 * rewritten while the reader is open (freed pages wait on the pending list),
 * the writer only writes with pwrite, and a mapping that the file outgrew is
 * replaced by a bigger one while the old one lives on until its last
 * transaction ends (reference count), so no reader is ever remapped under.
 */
#include "db.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mem.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bbolt files are in host byte order; this code assumes little-endian hosts"
#endif

#define DB_HDR 16          /* page header */
#define DB_ELEM 16         /* leaf and branch elements are both 16 bytes */
#define DB_BUCKET_HDR 16   /* {root, sequence} in front of a bucket value */
#define DB_MAGIC 0xED0CDAEDu
#define DB_VERSION 2u
#define DB_NO_FREELIST UINT64_MAX
#define DB_PAGE_DEFAULT 4096u
#define DB_MAX_NEST 64     /* nested buckets deeper than this are reported corrupt */
#define DB_DEFRAG_LIMIT 10000 /* keys per commit while defragmenting, as etcd */
#define DB_MSG 256         /* error message buffers */
#define DB_POOL_MAX 1024   /* one-page write buffers kept between commits */

enum { PG_BRANCH = 0x01, PG_LEAF = 0x02, PG_META = 0x04, PG_FREELIST = 0x10 };
enum { DB_BUCKET_LEAF = 0x01 };

/* ---- types ---- */

struct db_meta {
    uint32_t page_size, flags;
    uint64_t root, seq, freelist, pgid, txid;
};

/* A read-only shared mapping of the file.  Owner: the db holds one reference
 * to the current mapping, each transaction one to the mapping it began on. */
struct db_map {
    const uint8_t *base;
    size_t len;
    unsigned refs; /* under db->mu */
};

struct db_ids {
    uint64_t *v;
    size_t n, cap;
};

/* Pages freed by commit txid; free once no reader older than txid is open. */
struct db_pending {
    uint64_t txid;
    struct db_ids ids; /* sorted */
};

/* One element of a node.  key/val point into the mapping or the
 * transaction's arena, never into memory that goes away before it ends. */
struct db_inode {
    const uint8_t *key, *val;
    uint32_t klen, vlen, flags;
    uint64_t pgid;          /* branch: child page */
    struct db_node *child;  /* branch: the child if it was read into a node */
};

struct db_ivec {
    struct db_inode *v; /* heap, owned by the node or the caller holding it */
    size_t n, cap;
};

/* A page read into memory by a write transaction because it changes. */
struct db_node {
    struct db_node *all;  /* every node of the transaction, to free in.v */
    uint64_t pgid;        /* page it was read from, freed at commit; 0 = none */
    uint32_t ovf;
    bool leaf, unbalanced;
    struct db_ivec in;
};

struct db_bucket {
    struct db_tx *tx;
    struct db_bucket *kids, *next; /* opened nested buckets, their siblings */
    const uint8_t *name;
    size_t nlen;
    uint64_t root, seq;
    const uint8_t *inl; /* root == 0: the inline leaf page */
    size_t inl_len;
    struct db_node *root_node; /* set once something in the bucket changed */
    double fill;
    uint32_t mod;              /* bumped by every change; cursors compare */
    bool deleted;
};

struct db_dirty {
    uint64_t id;
    uint32_t npages;
    uint8_t *buf; /* one page: heap, back to the pool after; more: arena */
};

struct db {
    char *path;
    int fd;
    unsigned flags;
    size_t ps;
    pthread_mutex_t mu;
    /* under mu */
    struct db_meta meta;
    struct db_map *map;
    struct db_ids readers; /* txids of open read transactions on this file */
    uint64_t file_gen;     /* bumped when a defrag moves db to a new file */
    size_t free_n;
    bool writer, defrag, failed;
    /* the writer's own; no lock */
    struct db_ids free; /* sorted */
    struct db_pending *pending;
    size_t npending, pending_cap;
    /* spare one-page buffers (heap), reused by the next commit: fresh memory
     * for every page written costs a page fault each */
    uint8_t **pool;
    size_t npool, pool_cap;
    char errmsg[DB_MSG];
};

struct db_tx {
    struct db *db;
    struct db_map *map;
    struct db_meta meta;
    size_t ps;         /* of the file it reads: a defrag may switch db->ps */
    uint64_t file_gen; /* db->file_gen at begin */
    uint64_t hw; /* high-water mark the transaction began with: the pages
                    that exist in the file and in its mapping */
    bool write;
    int err;
    char *msg; /* own_msg, or db->errmsg for the writer */
    char own_msg[DB_MSG];
    struct mem_arena arena; /* bucket handles, copies of keys and values, pages */
    struct db_bucket root;
    struct db_node *nodes;
    /* write transactions */
    struct db_ids freed;    /* pages this transaction freed */
    struct db_ids fl;       /* commit: the free list being allocated from */
    size_t fl_head;
    size_t release;         /* commit: pending entries that become free */
    struct db_dirty *dirty;
    size_t ndirty, dirty_cap;
};

/* Tests only: the n-th write or sync (0 = the next) fails with
 * db_fault_errno, and every later one too; the failing write first writes
 * its first 50 bytes, as a torn write would. */
static long db_fault_at = -1;
static int db_fault_errno = EIO;

/* ---- prototypes of static helpers ---- */

static int db_fail(struct db_tx *tx, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int db_corrupt(struct db_tx *tx, uint64_t id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void db_tx_end(struct db_tx *tx);
static int db_bucket_root(struct db_bucket *b, struct db_cursor_ref *r);
static int db_free_bucket(struct db_tx *tx, struct db_bucket *b, int nest);
static int db_free_elems(struct db_tx *tx, struct db_bucket *b, const struct db_cursor_ref *r,
                         int depth, int nest);
static int db_walk_page(struct db_tx *tx, uint8_t *seen, const uint8_t *isfree, bool check,
                        uint64_t id, int depth, int nest);

/* ---- little helpers ---- */

static uint16_t ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t ld32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t ld64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static void st16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void st32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void st64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static int db_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

static uint64_t db_fnv64a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int db_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Makes room for extra more elements of size el in *v (cap *cap, n used). */
static int db_grow(void **v, size_t *cap, size_t n, size_t extra, size_t el)
{
    if (*cap - n >= extra)
        return 0;
    size_t c = *cap ? *cap : 8;
    while (c - n < extra) {
        if (c > SIZE_MAX / 2 / el)
            return DB_ENOMEM;
        c *= 2;
    }
    void *p = mem_realloc(*v, c * el);
    if (!p)
        return DB_ENOMEM;
    *v = p;
    *cap = c;
    return 0;
}

static int db_ids_push(struct db_ids *a, uint64_t id)
{
    if (db_grow((void **)&a->v, &a->cap, a->n, 1, sizeof *a->v))
        return DB_ENOMEM;
    a->v[a->n++] = id;
    return 0;
}

static int db_ivec_push(struct db_ivec *a, const struct db_inode *in)
{
    if (db_grow((void **)&a->v, &a->cap, a->n, 1, sizeof *a->v))
        return DB_ENOMEM;
    a->v[a->n++] = *in;
    return 0;
}

static bool db_ids_has(const struct db_ids *a, size_t from, uint64_t id)
{
    const uint64_t *v = a->v + from;
    return a->n > from && bsearch(&id, v, a->n - from, sizeof *v, db_cmp_u64) != NULL;
}

const char *db_strerror(int err)
{
    switch (err) {
    case DB_OK: return "ok";
    case DB_ENOTFOUND: return "not found";
    case DB_EEXIST: return "bucket already exists";
    case DB_EINCOMPAT: return "incompatible value (bucket vs key)";
    case DB_EINVAL: return "invalid argument";
    case DB_ENOMEM: return "out of memory";
    case DB_EIO: return "I/O error";
    case DB_ENOSPC: return "no space left on device";
    case DB_ECORRUPT: return "database file is corrupt";
    case DB_EBUSY: return "database is busy";
    case DB_EFAILED: return "database failed; reopen it";
    }
    return "unknown error";
}

/* ---- errors ---- */

/* Records a failure on tx (the first one sticks) and returns it. */
static int db_fail(struct db_tx *tx, int err, const char *fmt, ...)
{
    if (tx->err)
        return tx->err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tx->msg, sizeof tx->own_msg, fmt, ap);
    va_end(ap);
    tx->err = err;
    return err;
}

static int db_corrupt(struct db_tx *tx, uint64_t id, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (id)
        return db_fail(tx, DB_ECORRUPT, "%s: page %" PRIu64 " (offset %" PRIu64 "): %s",
                       tx->db->path, id, id * (uint64_t)tx->ps, what);
    return db_fail(tx, DB_ECORRUPT, "%s: %s", tx->db->path, what);
}

static int db_errno_code(int e)
{
    return e == ENOSPC || e == EDQUOT || e == EFBIG ? DB_ENOSPC : DB_EIO;
}

static int db_ioerr(struct db_tx *tx, const char *what, uint64_t off)
{
    int e = errno;
    return db_fail(tx, db_errno_code(e), "%s: %s at offset %" PRIu64 ": %s", tx->db->path, what,
                   off, strerror(e));
}

/* ---- I/O ---- */

static bool db_fault(void)
{
    if (db_fault_at < 0)
        return false;
    if (db_fault_at == 0) {
        errno = db_fault_errno;
        return true;
    }
    db_fault_at--;
    return false;
}

/* Writes every byte of iov (which it consumes) at off. */
static int db_pwritev(struct db_tx *tx, struct iovec *iov, int cnt, uint64_t off)
{
    while (cnt > 0) {
        ssize_t w;
        if (db_fault()) {
            if (pwrite(tx->db->fd, iov[0].iov_base, iov[0].iov_len < 50 ? iov[0].iov_len : 50,
                       (off_t)off) < 0) {
            }
            errno = db_fault_errno;
            w = -1;
        } else {
            w = pwritev(tx->db->fd, iov, cnt, (off_t)off);
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return db_ioerr(tx, "pwrite", off);
        }
        off += (uint64_t)w;
        while (cnt > 0 && (size_t)w >= iov[0].iov_len) {
            w -= (ssize_t)iov[0].iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov[0].iov_base = (uint8_t *)iov[0].iov_base + w;
            iov[0].iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int db_sync(struct db_tx *tx)
{
    if (tx->db->flags & DB_NO_SYNC)
        return 0;
    if (db_fault() || fdatasync(tx->db->fd) < 0)
        return db_ioerr(tx, "fdatasync", 0);
    return 0;
}

/* bbolt's mmap sizes: doubling from 32 KiB to 1 GiB, then whole GiBs. */
static size_t db_map_size(uint64_t need)
{
    for (uint64_t s = 1u << 15; s <= 1u << 30; s <<= 1)
        if (need <= s)
            return (size_t)s;
    uint64_t g = 1u << 30;
    return (size_t)((need + g - 1) / g * g);
}

static struct db_map *db_map_new(int fd, uint64_t need)
{
    struct db_map *m = mem_alloc(sizeof *m);
    if (!m)
        return NULL;
    m->len = db_map_size(need);
    void *p = mmap(NULL, m->len, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        mem_free(m);
        return NULL;
    }
    m->base = p;
    m->refs = 1;
    return m;
}

static void db_map_free(struct db_map *m)
{
    munmap((void *)m->base, m->len);
    mem_free(m);
}

/* Drops one reference; unmaps outside the lock. */
static void db_map_unref(struct db *db, struct db_map *m)
{
    pthread_mutex_lock(&db->mu);
    bool last = --m->refs == 0;
    pthread_mutex_unlock(&db->mu);
    if (last)
        db_map_free(m);
}

/* ---- meta pages ---- */

static void db_meta_put(uint8_t *page, uint64_t id, const struct db_meta *m)
{
    memset(page, 0, DB_HDR + 64);
    st64(page, id);
    st16(page + 8, PG_META);
    uint8_t *p = page + DB_HDR;
    st32(p, DB_MAGIC);
    st32(p + 4, DB_VERSION);
    st32(p + 8, m->page_size);
    st32(p + 12, m->flags);
    st64(p + 16, m->root);
    st64(p + 24, m->seq);
    st64(p + 32, m->freelist);
    st64(p + 40, m->pgid);
    st64(p + 48, m->txid);
    st64(p + 56, db_fnv64a(p, 56));
}

/* NULL if the meta is valid, else what is wrong with it. */
static const char *db_meta_get(const uint8_t *page, struct db_meta *m)
{
    const uint8_t *p = page + DB_HDR;
    if (ld32(p) != DB_MAGIC)
        return "bad magic";
    if (ld32(p + 4) != DB_VERSION)
        return "unsupported version";
    if (ld64(p + 56) != db_fnv64a(p, 56))
        return "checksum mismatch";
    m->page_size = ld32(p + 8);
    m->flags = ld32(p + 12);
    m->root = ld64(p + 16);
    m->seq = ld64(p + 24);
    m->freelist = ld64(p + 32);
    m->pgid = ld64(p + 40);
    m->txid = ld64(p + 48);
    if (m->page_size < 1024 || m->page_size > 65536 || (m->page_size & (m->page_size - 1)))
        return "bad page size";
    return NULL;
}

const char *db_meta_validate(const uint8_t *page, uint32_t *page_size)
{
    const uint8_t *p = page + DB_HDR;
    if (ld32(p) != DB_MAGIC)
        return "invalid database";
    if (ld32(p + 4) != DB_VERSION)
        return "version mismatch";
    /* bbolt accepts a zero checksum (metas written before it had one) */
    if (ld64(p + 56) && ld64(p + 56) != db_fnv64a(p, 56))
        return "checksum error";
    if (page_size)
        *page_size = ld32(p + 8);
    return NULL;
}

/* ---- page access (every byte from the file is checked here) ---- */

/* A branch or leaf page of the tree the transaction sees. */
static int db_tree_page(struct db_tx *tx, uint64_t id, struct db_cursor_ref *r)
{
    uint64_t hw = tx->hw;
    if (id < 2 || id >= hw)
        return db_corrupt(tx, 0, "page id %" PRIu64 " outside 2..%" PRIu64, id, hw - 1);
    const uint8_t *p = tx->map->base + id * tx->ps;
    uint32_t ovf = ld32(p + 12);
    uint16_t flags = ld16(p + 8), count = ld16(p + 10);
    if (ld64(p) != id)
        return db_corrupt(tx, id, "header says page %" PRIu64, ld64(p));
    if (ovf >= hw - id)
        return db_corrupt(tx, id, "%" PRIu32 " overflow pages pass the high-water mark", ovf);
    if (flags != PG_LEAF && flags != PG_BRANCH)
        return db_corrupt(tx, id, "not a branch or leaf page (flags 0x%x)", flags);
    size_t len = ((size_t)ovf + 1) * tx->ps;
    if (DB_HDR + (size_t)count * DB_ELEM > len)
        return db_corrupt(tx, id, "%u elements do not fit", count);
    *r = (struct db_cursor_ref){.cr_page = p, .cr_len = len, .cr_count = count,
                                .cr_leaf = flags == PG_LEAF};
    return 0;
}

static int db_inline_page(struct db_tx *tx, const uint8_t *p, size_t len, struct db_cursor_ref *r)
{
    if (len < DB_HDR || ld16(p + 8) != PG_LEAF)
        return db_corrupt(tx, 0, "inline bucket page is not a leaf");
    uint16_t count = ld16(p + 10);
    if (DB_HDR + (size_t)count * DB_ELEM > len)
        return db_corrupt(tx, 0, "inline bucket page: %u elements do not fit", count);
    *r = (struct db_cursor_ref){.cr_page = p, .cr_len = len, .cr_count = count, .cr_leaf = true};
    return 0;
}

static void db_node_ref(struct db_node *n, struct db_cursor_ref *r)
{
    *r = (struct db_cursor_ref){.cr_node = n, .cr_count = (uint32_t)n->in.n, .cr_leaf = n->leaf};
}

/* Element i (< cr_count) of a page or node. */
static int db_elem(struct db_tx *tx, const struct db_cursor_ref *r, uint32_t i, struct db_inode *e)
{
    if (r->cr_node) {
        *e = r->cr_node->in.v[i];
        return 0;
    }
    const uint8_t *p = r->cr_page;
    size_t at = DB_HDR + (size_t)i * DB_ELEM;
    const uint8_t *el = p + at;
    uint64_t off;
    if (r->cr_leaf) {
        e->flags = ld32(el);
        off = at + (uint64_t)ld32(el + 4);
        e->klen = ld32(el + 8);
        e->vlen = ld32(el + 12);
        e->pgid = 0;
    } else {
        e->flags = 0;
        off = at + (uint64_t)ld32(el);
        e->klen = ld32(el + 4);
        e->vlen = 0;
        e->pgid = ld64(el + 8);
    }
    if (off + e->klen + e->vlen > r->cr_len)
        return db_corrupt(tx, ld64(p), "element %" PRIu32 " runs past the page", i);
    e->key = p + off;
    e->val = e->key + e->klen;
    e->child = NULL;
    return 0;
}

/* The child of branch element r->cr_index: its node if read, else its page. */
static int db_ref_child(struct db_tx *tx, const struct db_cursor_ref *r, struct db_cursor_ref *out)
{
    struct db_inode e;
    int rc = db_elem(tx, r, r->cr_index, &e);
    if (rc)
        return rc;
    if (e.child) {
        db_node_ref(e.child, out);
        return 0;
    }
    return db_tree_page(tx, e.pgid, out);
}

static int db_bucket_root(struct db_bucket *b, struct db_cursor_ref *r)
{
    if (b->root_node) {
        db_node_ref(b->root_node, r);
        return 0;
    }
    if (b->root)
        return db_tree_page(b->tx, b->root, r);
    return db_inline_page(b->tx, b->inl, b->inl_len, r);
}

/* ---- cursors ---- */

static int db_cur_push(struct db_cursor *c, const struct db_cursor_ref *r)
{
    if (c->cu_depth >= DB_MAX_DEPTH)
        return db_corrupt(c->cu_tx, r->cr_page ? ld64(r->cr_page) : 0,
                          "tree deeper than %d levels (a cycle?)", DB_MAX_DEPTH);
    c->cu_stack[c->cu_depth++] = *r;
    return 0;
}

/* From the top of the stack down to a leaf, taking the first (or last)
 * child at each level. */
static int db_cur_descend(struct db_cursor *c, bool last)
{
    for (;;) {
        struct db_cursor_ref *t = &c->cu_stack[c->cu_depth - 1], ch;
        if (t->cr_leaf)
            return 0;
        if (t->cr_count == 0)
            return db_corrupt(c->cu_tx, t->cr_page ? ld64(t->cr_page) : 0, "empty branch page");
        int rc = db_ref_child(c->cu_tx, t, &ch);
        if (rc)
            return rc;
        ch.cr_index = last && ch.cr_count ? ch.cr_count - 1 : 0;
        if ((rc = db_cur_push(c, &ch)))
            return rc;
    }
}

/* Moves to the next element, skipping empty leaves.  DB_ENOTFOUND at the end
 * leaves the cursor unpositioned. */
static int db_cur_next(struct db_cursor *c)
{
    for (;;) {
        int i;
        for (i = c->cu_depth - 1; i >= 0; i--) {
            struct db_cursor_ref *r = &c->cu_stack[i];
            if (r->cr_index + 1 < r->cr_count) {
                r->cr_index++;
                break;
            }
        }
        if (i < 0) {
            c->cu_depth = 0;
            return DB_ENOTFOUND;
        }
        c->cu_depth = i + 1;
        int rc = db_cur_descend(c, false);
        if (rc)
            return rc;
        if (c->cu_stack[c->cu_depth - 1].cr_count)
            return 0;
    }
}

static int db_cur_prev(struct db_cursor *c)
{
    for (;;) {
        int i;
        for (i = c->cu_depth - 1; i >= 0; i--) {
            struct db_cursor_ref *r = &c->cu_stack[i];
            if (r->cr_index > 0 && r->cr_count) {
                r->cr_index--;
                break;
            }
        }
        if (i < 0) {
            c->cu_depth = 0;
            return DB_ENOTFOUND;
        }
        c->cu_depth = i + 1;
        int rc = db_cur_descend(c, true);
        if (rc)
            return rc;
        if (c->cu_stack[c->cu_depth - 1].cr_count)
            return 0;
    }
}

/* Descends to the leaf where key is or would be; the leaf's index is the
 * first element >= key (possibly one past its end). */
static int db_cur_search(struct db_cursor *c, const uint8_t *key, size_t klen)
{
    struct db_cursor_ref r;
    int rc = db_bucket_root(c->cu_b, &r);
    c->cu_depth = 0;
    while (!rc) {
        if ((rc = db_cur_push(c, &r)))
            break;
        struct db_cursor_ref *t = &c->cu_stack[c->cu_depth - 1];
        uint32_t lo = 0, hi = t->cr_count;
        bool exact = false;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            struct db_inode e;
            if ((rc = db_elem(c->cu_tx, t, mid, &e)))
                return rc;
            int cmp = db_cmp(e.key, e.klen, key, klen);
            if (cmp < 0) {
                lo = mid + 1;
            } else {
                hi = mid;
                exact |= cmp == 0;
            }
        }
        t->cr_index = lo;
        if (t->cr_leaf)
            return 0;
        if (t->cr_count == 0)
            return db_corrupt(c->cu_tx, t->cr_page ? ld64(t->cr_page) : 0, "empty branch page");
        /* the last child whose first key is <= key (or the first child) */
        if (!exact && lo > 0)
            t->cr_index = lo - 1;
        rc = db_ref_child(c->cu_tx, t, &r);
    }
    return rc;
}

static int db_cur_kv(struct db_cursor *c, struct db_val *k, struct db_val *v)
{
    struct db_cursor_ref *t = &c->cu_stack[c->cu_depth - 1];
    struct db_inode e;
    int rc = db_elem(c->cu_tx, t, t->cr_index, &e);
    if (rc)
        return rc;
    k->p = e.key;
    k->len = e.klen;
    v->p = e.flags & DB_BUCKET_LEAF ? NULL : e.val;
    v->len = e.flags & DB_BUCKET_LEAF ? 0 : e.vlen;
    return 0;
}

void db_cursor_init(struct db_cursor *c, struct db_tx *tx, struct db_bucket *b)
{
    c->cu_tx = tx;
    c->cu_b = b ? b : &tx->root;
    c->cu_mod = c->cu_b->mod;
    c->cu_depth = 0;
}

static int db_cur_check(struct db_cursor *c, bool positioned)
{
    if (c->cu_tx->err)
        return c->cu_tx->err;
    if (c->cu_b->deleted)
        return DB_EINVAL;
    if (positioned && (c->cu_depth == 0 || c->cu_mod != c->cu_b->mod))
        return DB_EINVAL;
    c->cu_mod = c->cu_b->mod;
    return 0;
}

/* Common tail: rc from a move, then the element under the cursor. */
static int db_cur_out(struct db_cursor *c, int rc, struct db_val *k, struct db_val *v)
{
    if (!rc)
        rc = db_cur_kv(c, k, v);
    if (rc)
        c->cu_depth = 0;
    return rc;
}

int db_cursor_first(struct db_cursor *c, struct db_val *k, struct db_val *v)
{
    struct db_cursor_ref r;
    int rc = db_cur_check(c, false);
    if (rc)
        return rc;
    c->cu_depth = 0;
    if (!(rc = db_bucket_root(c->cu_b, &r)) && !(rc = db_cur_push(c, &r)) &&
        !(rc = db_cur_descend(c, false)) && c->cu_stack[c->cu_depth - 1].cr_count == 0)
        rc = db_cur_next(c);
    return db_cur_out(c, rc, k, v);
}

int db_cursor_last(struct db_cursor *c, struct db_val *k, struct db_val *v)
{
    struct db_cursor_ref r;
    int rc = db_cur_check(c, false);
    if (rc)
        return rc;
    c->cu_depth = 0;
    if (!(rc = db_bucket_root(c->cu_b, &r))) {
        r.cr_index = r.cr_count ? r.cr_count - 1 : 0;
        if (!(rc = db_cur_push(c, &r)) && !(rc = db_cur_descend(c, true)) &&
            c->cu_stack[c->cu_depth - 1].cr_count == 0)
            rc = db_cur_prev(c);
    }
    return db_cur_out(c, rc, k, v);
}

int db_cursor_next(struct db_cursor *c, struct db_val *k, struct db_val *v)
{
    int rc = db_cur_check(c, true);
    return rc ? rc : db_cur_out(c, db_cur_next(c), k, v);
}

int db_cursor_prev(struct db_cursor *c, struct db_val *k, struct db_val *v)
{
    int rc = db_cur_check(c, true);
    return rc ? rc : db_cur_out(c, db_cur_prev(c), k, v);
}

int db_cursor_seek(struct db_cursor *c, const void *key, size_t klen, struct db_val *k,
                   struct db_val *v)
{
    int rc = db_cur_check(c, false);
    if (rc)
        return rc;
    rc = db_cur_search(c, key, klen);
    if (!rc) {
        struct db_cursor_ref *t = &c->cu_stack[c->cu_depth - 1];
        if (t->cr_index >= t->cr_count)
            rc = db_cur_next(c);
    }
    return db_cur_out(c, rc, k, v);
}

/* Positions c at key's place in b; *exact says whether key is there, and
 * then e holds its element. */
static int db_find(struct db_cursor *c, struct db_bucket *b, const void *key, size_t klen,
                   bool *exact, struct db_inode *e)
{
    db_cursor_init(c, b->tx, b);
    *exact = false;
    int rc = db_cur_search(c, key, klen);
    if (rc)
        return rc;
    struct db_cursor_ref *t = &c->cu_stack[c->cu_depth - 1];
    if (t->cr_index < t->cr_count) {
        if ((rc = db_elem(b->tx, t, t->cr_index, e)))
            return rc;
        *exact = !db_cmp(e->key, e->klen, key, klen);
    }
    return 0;
}

/* ---- nodes: pages a write transaction changes ---- */

static int db_node_read(struct db_tx *tx, const struct db_cursor_ref *r, uint64_t pgid,
                        struct db_node **out)
{
    struct db_node *n = mem_arena_zalloc(&tx->arena, sizeof *n);
    if (!n)
        return db_fail(tx, DB_ENOMEM, "out of memory reading page %" PRIu64, pgid);
    n->pgid = pgid;
    n->ovf = pgid ? (uint32_t)(r->cr_len / tx->ps - 1) : 0;
    n->leaf = r->cr_leaf;
    n->all = tx->nodes;
    tx->nodes = n;
    if (r->cr_count) {
        n->in.v = mem_alloc(r->cr_count * sizeof *n->in.v);
        if (!n->in.v)
            return db_fail(tx, DB_ENOMEM, "out of memory reading page %" PRIu64, pgid);
        n->in.cap = r->cr_count;
    }
    for (uint32_t i = 0; i < r->cr_count; i++) {
        int rc = db_elem(tx, r, i, &n->in.v[i]);
        if (rc)
            return rc;
        if (n->in.v[i].klen == 0)
            return db_corrupt(tx, pgid, "element %" PRIu32 " has an empty key", i);
        n->in.n++;
    }
    *out = n;
    return 0;
}

/* The node of branch n's child i, reading it if needed. */
static int db_node_child(struct db_tx *tx, struct db_node *n, size_t i, struct db_node **out)
{
    struct db_inode *in = &n->in.v[i];
    if (!in->child) {
        struct db_cursor_ref r;
        int rc = db_tree_page(tx, in->pgid, &r);
        if (!rc)
            rc = db_node_read(tx, &r, in->pgid, &in->child);
        if (rc)
            return rc;
    }
    *out = in->child;
    return 0;
}

static int db_bucket_root_node(struct db_bucket *b, struct db_node **out)
{
    if (!b->root_node) {
        struct db_cursor_ref r;
        int rc = db_bucket_root(b, &r);
        if (!rc)
            rc = db_node_read(b->tx, &r, b->root, &b->root_node);
        if (rc)
            return rc;
    }
    *out = b->root_node;
    return 0;
}

/* The leaf node under a positioned cursor, reading the path into nodes. */
static int db_cur_node(struct db_cursor *c, struct db_node **out)
{
    struct db_node *n = NULL;
    int rc = db_bucket_root_node(c->cu_b, &n);
    for (int d = 0; !rc && d + 1 < c->cu_depth; d++) {
        if (n->leaf || c->cu_stack[d].cr_index >= n->in.n)
            return db_corrupt(c->cu_tx, n->pgid, "tree levels disagree");
        rc = db_node_child(c->cu_tx, n, c->cu_stack[d].cr_index, &n);
    }
    if (!rc && !n->leaf)
        return db_corrupt(c->cu_tx, n->pgid, "branch page where a leaf was expected");
    *out = n;
    return rc;
}

static void db_node_remove(struct db_node *n, size_t i)
{
    memmove(&n->in.v[i], &n->in.v[i + 1], (n->in.n - i - 1) * sizeof *n->in.v);
    n->in.n--;
}

static size_t db_inodes_size(const struct db_inode *v, size_t n)
{
    size_t sz = DB_HDR;
    for (size_t i = 0; i < n; i++)
        sz += DB_ELEM + v[i].klen + v[i].vlen;
    return sz;
}

/* Pages of a node (and its overflow) go to this transaction's freed list.
 * More than the file has means a page is reached twice: a corrupt tree,
 * maybe one whose pages fan out to the same child again and again. */
static int db_free_pages(struct db_tx *tx, uint64_t id, uint32_t ovf)
{
    if (tx->freed.n + ovf >= tx->hw)
        return db_corrupt(tx, id, "more pages freed than the file has");
    for (uint64_t i = 0; i <= ovf; i++)
        if (db_ids_push(&tx->freed, id + i))
            return db_fail(tx, DB_ENOMEM, "out of memory freeing pages");
    return 0;
}

static int db_node_free(struct db_tx *tx, struct db_node *n)
{
    int rc = n->pgid ? db_free_pages(tx, n->pgid, n->ovf) : 0;
    n->pgid = 0;
    return rc;
}

/* ---- buckets ---- */

static struct db_bucket *db_kid(struct db_bucket *p, const void *name, size_t len)
{
    for (struct db_bucket *k = p->kids; k; k = k->next)
        if (!k->deleted && k->nlen == len && !memcmp(k->name, name, len))
            return k;
    return NULL;
}

/* A handle for the nested bucket whose element in parent is e. */
static int db_bucket_open(struct db_bucket *parent, const struct db_inode *e,
                          struct db_bucket **out)
{
    struct db_tx *tx = parent->tx;
    if (e->vlen < DB_BUCKET_HDR)
        return db_corrupt(tx, 0, "bucket %.*s: value of %" PRIu32 " bytes is too short",
                          (int)(e->klen > 64 ? 64 : e->klen), (const char *)e->key, e->vlen);
    struct db_bucket *b = mem_arena_zalloc(&tx->arena, sizeof *b);
    if (!b)
        return db_fail(tx, DB_ENOMEM, "out of memory opening a bucket");
    b->tx = tx;
    b->name = e->key;
    b->nlen = e->klen;
    b->root = ld64(e->val);
    b->seq = ld64(e->val + 8);
    b->inl = e->val + DB_BUCKET_HDR;
    b->inl_len = e->vlen - DB_BUCKET_HDR;
    b->fill = 0.5;
    b->next = parent->kids;
    parent->kids = b;
    *out = b;
    return 0;
}

static int db_parent(struct db_tx *tx, struct db_bucket *parent, struct db_bucket **p)
{
    *p = parent ? parent : &tx->root;
    if ((*p)->deleted)
        return DB_EINVAL;
    return tx->err;
}

static int db_writable(struct db_bucket *b)
{
    if (b->deleted || !b->tx->write)
        return DB_EINVAL;
    return b->tx->err;
}

int db_bucket_get(struct db_tx *tx, struct db_bucket *parent, const void *name, size_t len,
                  struct db_bucket **out)
{
    struct db_bucket *p;
    struct db_cursor c;
    struct db_inode e;
    bool exact;
    int rc = db_parent(tx, parent, &p);
    if (rc)
        return rc;
    if (!len)
        return DB_EINVAL;
    if ((*out = db_kid(p, name, len)))
        return 0;
    if ((rc = db_find(&c, p, name, len, &exact, &e)))
        return rc;
    if (!exact)
        return DB_ENOTFOUND;
    if (!(e.flags & DB_BUCKET_LEAF))
        return DB_EINCOMPAT;
    return db_bucket_open(p, &e, out);
}

int db_bucket_create(struct db_tx *tx, struct db_bucket *parent, const void *name, size_t len,
                     bool exist_ok, struct db_bucket **out)
{
    struct db_bucket *p;
    struct db_cursor c;
    struct db_inode e;
    struct db_node *n;
    bool exact;
    int rc = db_parent(tx, parent, &p);
    if (!rc)
        rc = db_writable(p);
    if (rc)
        return rc;
    if (!len || len > DB_MAX_KEY)
        return DB_EINVAL;
    if ((rc = db_find(&c, p, name, len, &exact, &e)))
        return rc;
    if (exact) {
        if (!(e.flags & DB_BUCKET_LEAF))
            return DB_EINCOMPAT;
        if (!exist_ok)
            return DB_EEXIST;
        if ((*out = db_kid(p, name, len)))
            return 0;
        return db_bucket_open(p, &e, out);
    }
    if ((rc = db_cur_node(&c, &n)))
        return rc;
    /* an empty inline bucket: header {0, 0} and an empty leaf page */
    uint8_t *mem = mem_arena_zalloc(&tx->arena, len + DB_BUCKET_HDR + DB_HDR);
    if (!mem || db_grow((void **)&n->in.v, &n->in.cap, n->in.n, 1, sizeof *n->in.v))
        return db_fail(tx, DB_ENOMEM, "out of memory creating a bucket");
    memcpy(mem, name, len);
    st16(mem + len + DB_BUCKET_HDR + 8, PG_LEAF);
    size_t i = c.cu_stack[c.cu_depth - 1].cr_index;
    memmove(&n->in.v[i + 1], &n->in.v[i], (n->in.n - i) * sizeof *n->in.v);
    n->in.n++;
    n->in.v[i] = (struct db_inode){.key = mem, .klen = (uint32_t)len, .val = mem + len,
                                   .vlen = DB_BUCKET_HDR + DB_HDR, .flags = DB_BUCKET_LEAF};
    p->mod++;
    return db_bucket_open(p, &n->in.v[i], out);
}

/* Frees a node (its original page) or a page, everything below it and the
 * buckets nested in its leaves. */
static int db_free_tree(struct db_tx *tx, struct db_bucket *b, struct db_node *n, uint64_t pgid,
                        int depth, int nest)
{
    struct db_cursor_ref r;
    int rc;
    if (depth >= DB_MAX_DEPTH)
        return db_corrupt(tx, pgid, "tree deeper than %d levels", DB_MAX_DEPTH);
    if (n) {
        db_node_ref(n, &r);
        rc = db_node_free(tx, n);
    } else if (!(rc = db_tree_page(tx, pgid, &r))) {
        rc = db_free_pages(tx, pgid, (uint32_t)(r.cr_len / tx->ps - 1));
    }
    return rc ? rc : db_free_elems(tx, b, &r, depth, nest);
}

static int db_free_elems(struct db_tx *tx, struct db_bucket *b, const struct db_cursor_ref *r,
                         int depth, int nest)
{
    for (uint32_t i = 0; i < r->cr_count; i++) {
        struct db_inode e;
        struct db_bucket *sub;
        int rc = db_elem(tx, r, i, &e);
        if (!rc && !r->cr_leaf) {
            rc = db_free_tree(tx, b, e.child, e.pgid, depth + 1, nest);
        } else if (!rc && (e.flags & DB_BUCKET_LEAF)) {
            if (!(sub = db_kid(b, e.key, e.klen)))
                rc = db_bucket_open(b, &e, &sub);
            if (!rc)
                rc = db_free_bucket(tx, sub, nest + 1);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* Frees every page of b and of the buckets nested in it; marks the handles
 * deleted. */
static int db_free_bucket(struct db_tx *tx, struct db_bucket *b, int nest)
{
    struct db_cursor_ref r;
    int rc;
    if (nest >= DB_MAX_NEST)
        return db_corrupt(tx, 0, "buckets nested deeper than %d", DB_MAX_NEST);
    if (b->root_node || b->root)
        rc = db_free_tree(tx, b, b->root_node, b->root, 0, nest);
    else if (!(rc = db_inline_page(tx, b->inl, b->inl_len, &r)))
        rc = db_free_elems(tx, b, &r, 0, nest);
    b->deleted = true;
    b->mod++;
    return rc;
}

int db_bucket_delete(struct db_tx *tx, struct db_bucket *parent, const void *name, size_t len)
{
    struct db_bucket *p, *b;
    struct db_cursor c;
    struct db_inode e;
    struct db_node *n;
    bool exact;
    int rc = db_parent(tx, parent, &p);
    if (!rc)
        rc = db_writable(p);
    if (rc)
        return rc;
    if (!len)
        return DB_EINVAL;
    if ((rc = db_find(&c, p, name, len, &exact, &e)))
        return rc;
    if (!exact)
        return DB_ENOTFOUND;
    if (!(e.flags & DB_BUCKET_LEAF))
        return DB_EINCOMPAT;
    if (!(b = db_kid(p, name, len)) && (rc = db_bucket_open(p, &e, &b)))
        return rc;
    /* the cursor stays valid: freeing b does not touch p's tree */
    if ((rc = db_free_bucket(tx, b, 0)) || (rc = db_cur_node(&c, &n)))
        return rc;
    db_node_remove(n, c.cu_stack[c.cu_depth - 1].cr_index);
    n->unbalanced = true;
    p->mod++;
    return 0;
}

void db_bucket_set_fill(struct db_bucket *b, double fill)
{
    b->fill = fill < 0.1 ? 0.1 : fill > 1.0 ? 1.0 : fill;
}

/* ---- keys ---- */

int db_get(struct db_bucket *b, const void *key, size_t klen, struct db_val *v)
{
    struct db_cursor c;
    struct db_inode e;
    bool exact;
    if (b->deleted)
        return DB_EINVAL;
    if (b->tx->err)
        return b->tx->err;
    int rc = db_find(&c, b, key, klen, &exact, &e);
    if (rc)
        return rc;
    if (!exact)
        return DB_ENOTFOUND;
    if (e.flags & DB_BUCKET_LEAF)
        return DB_EINCOMPAT;
    v->p = e.val;
    v->len = e.vlen;
    return 0;
}

/* db_put, or with copy false db_put_ref. */
static int db_put_at(struct db_bucket *b, const void *key, size_t klen, const void *val, size_t vlen,
                     bool copy)
{
    struct db_tx *tx = b->tx;
    struct db_cursor c;
    struct db_inode e;
    struct db_node *n;
    bool exact;
    int rc = db_writable(b);
    if (rc)
        return rc;
    if (!klen || klen > DB_MAX_KEY || vlen > DB_MAX_VALUE)
        return DB_EINVAL;
    if ((rc = db_find(&c, b, key, klen, &exact, &e)))
        return rc;
    if (exact && (e.flags & DB_BUCKET_LEAF))
        return DB_EINCOMPAT;
    if ((rc = db_cur_node(&c, &n)))
        return rc;
    size_t i = c.cu_stack[c.cu_depth - 1].cr_index;
    uint8_t *mem = copy ? mem_arena_alloc(&tx->arena, (exact ? 0 : klen) + vlen) : NULL;
    if ((copy && !mem) ||
        (!exact && db_grow((void **)&n->in.v, &n->in.cap, n->in.n, 1, sizeof *n->in.v)))
        return db_fail(tx, DB_ENOMEM, "out of memory in put");
    const uint8_t *k = exact ? n->in.v[i].key : copy ? mem : key;
    if (!exact) {
        if (copy) {
            memcpy(mem, key, klen);
            mem += klen;
        }
        memmove(&n->in.v[i + 1], &n->in.v[i], (n->in.n - i) * sizeof *n->in.v);
        n->in.n++;
    }
    if (copy && vlen)
        memcpy(mem, val, vlen);
    n->in.v[i] = (struct db_inode){.key = k, .klen = (uint32_t)klen, .val = copy ? mem : val,
                                   .vlen = (uint32_t)vlen};
    b->mod++;
    return 0;
}

int db_put(struct db_bucket *b, const void *key, size_t klen, const void *val, size_t vlen)
{
    return db_put_at(b, key, klen, val, vlen, true);
}

int db_put_ref(struct db_bucket *b, const void *key, size_t klen, const void *val, size_t vlen)
{
    return db_put_at(b, key, klen, val, vlen, false);
}

int db_del(struct db_bucket *b, const void *key, size_t klen)
{
    struct db_cursor c;
    struct db_inode e;
    struct db_node *n;
    bool exact;
    int rc = db_writable(b);
    if (rc)
        return rc;
    if (!klen)
        return 0;
    if ((rc = db_find(&c, b, key, klen, &exact, &e)))
        return rc;
    if (!exact)
        return 0;
    if (e.flags & DB_BUCKET_LEAF)
        return DB_EINCOMPAT;
    if ((rc = db_cur_node(&c, &n)))
        return rc;
    db_node_remove(n, c.cu_stack[c.cu_depth - 1].cr_index);
    n->unbalanced = true;
    b->mod++;
    return 0;
}

/* ---- transactions ---- */

int db_begin(struct db *db, bool write, struct db_tx **out)
{
    struct db_tx *tx = mem_calloc(1, sizeof *tx);
    if (!tx)
        return DB_ENOMEM;
    int rc = 0;
    pthread_mutex_lock(&db->mu);
    if (write && db->defrag)
        rc = DB_EBUSY;
    else if (write && (db->flags & DB_READ_ONLY))
        rc = DB_EINVAL;
    else if (write && db->failed)
        rc = DB_EFAILED;
    else if (write && db->writer)
        rc = DB_EBUSY;
    else if (!write && db_ids_push(&db->readers, db->meta.txid))
        rc = DB_ENOMEM;
    if (!rc) {
        db->writer |= write;
        tx->meta = db->meta;
        tx->map = db->map;
        tx->map->refs++;
        tx->ps = db->ps;
        tx->file_gen = db->file_gen;
        tx->hw = tx->meta.pgid;
    }
    pthread_mutex_unlock(&db->mu);
    if (rc) {
        mem_free(tx);
        return rc;
    }
    tx->db = db;
    tx->write = write;
    tx->msg = tx->own_msg;
    if (write) {
        tx->meta.txid++;
        tx->msg = db->errmsg;
        db->errmsg[0] = 0;
    }
    mem_arena_init(&tx->arena, 0);
    tx->root = (struct db_bucket){.tx = tx, .root = tx->meta.root, .seq = tx->meta.seq, .fill = 0.5};
    *out = tx;
    return 0;
}

static void db_tx_end(struct db_tx *tx)
{
    struct db *db = tx->db;
    for (struct db_node *n = tx->nodes; n; n = n->all)
        mem_free(n->in.v);
    for (size_t i = 0; i < tx->ndirty; i++) {
        struct db_dirty *d = &tx->dirty[i];
        if (d->npages == 1 && (db->npool < db->pool_cap ||
                               (db->pool_cap < DB_POOL_MAX &&
                                !db_grow((void **)&db->pool, &db->pool_cap, db->npool, 1,
                                         sizeof *db->pool))))
            db->pool[db->npool++] = d->buf;
        else if (d->npages == 1)
            mem_free(d->buf);
    }
    mem_free(tx->freed.v);
    mem_free(tx->fl.v);
    mem_free(tx->dirty);
    mem_arena_free(&tx->arena);
    pthread_mutex_lock(&db->mu);
    if (tx->write) {
        db->writer = false;
    } else if (tx->file_gen == db->file_gen) {
        for (size_t i = 0; i < db->readers.n; i++) {
            if (db->readers.v[i] == tx->meta.txid) {
                db->readers.v[i] = db->readers.v[--db->readers.n];
                break;
            }
        }
    }
    bool last = --tx->map->refs == 0;
    pthread_mutex_unlock(&db->mu);
    if (last)
        db_map_free(tx->map);
    mem_free(tx);
}

void db_rollback(struct db_tx *tx)
{
    db_tx_end(tx);
}

uint64_t db_tx_id(const struct db_tx *tx)
{
    return tx->meta.txid;
}

int64_t db_tx_size(const struct db_tx *tx)
{
    return (int64_t)(tx->meta.pgid * tx->ps);
}

const char *db_tx_errmsg(const struct db_tx *tx)
{
    return tx->msg;
}

/* ---- commit: rebalance ---- */

static bool db_underfull(const struct db_tx *tx, const struct db_node *n)
{
    return n->in.n <= (n->leaf ? 1u : 2u) ||
           db_inodes_size(n->in.v, n->in.n) <= tx->ps / 4;
}

/* Merges children of branch n that deletions left under a quarter page (or
 * with too few keys) into a sibling, deepest level first; bbolt's rule. */
static int db_rebalance_node(struct db_tx *tx, struct db_node *n, int depth)
{
    int rc;
    if (depth >= DB_MAX_DEPTH)
        return db_corrupt(tx, n->pgid, "tree deeper than %d levels", DB_MAX_DEPTH);
    for (size_t i = 0; i < n->in.n; i++) {
        struct db_node *ch = n->in.v[i].child;
        if (ch && !ch->leaf && (rc = db_rebalance_node(tx, ch, depth + 1)))
            return rc;
    }
    for (size_t i = 0; i < n->in.n;) {
        struct db_node *ch = n->in.v[i].child, *sib;
        if (!ch || !ch->unbalanced || !db_underfull(tx, ch)) {
            i++;
            continue;
        }
        ch->unbalanced = false;
        if (ch->in.n == 0) {
            if ((rc = db_node_free(tx, ch)))
                return rc;
            db_node_remove(n, i);
            n->unbalanced = true;
            continue;
        }
        if (n->in.n < 2) {
            i++;
            continue;
        }
        /* the first child takes in its right sibling; others join the left */
        struct db_node *into, *from;
        size_t gone = i == 0 ? 1 : i;
        if ((rc = db_node_child(tx, n, i == 0 ? 1 : i - 1, &sib)))
            return rc;
        into = i == 0 ? ch : sib;
        from = i == 0 ? sib : ch;
        if (into->leaf != from->leaf)
            return db_corrupt(tx, from->pgid, "siblings at different tree levels");
        if (db_grow((void **)&into->in.v, &into->in.cap, into->in.n, from->in.n, sizeof *into->in.v))
            return db_fail(tx, DB_ENOMEM, "out of memory rebalancing");
        if (from->in.n)
            memcpy(&into->in.v[into->in.n], from->in.v, from->in.n * sizeof *from->in.v);
        into->in.n += from->in.n;
        from->in.n = 0;
        if ((rc = db_node_free(tx, from)))
            return rc;
        db_node_remove(n, gone);
        n->unbalanced = true;
        if (i == 0)
            i++;
    }
    return 0;
}

static int db_rebalance_bucket(struct db_tx *tx, struct db_bucket *b)
{
    int rc;
    for (struct db_bucket *k = b->kids; k; k = k->next)
        if (!k->deleted && (rc = db_rebalance_bucket(tx, k)))
            return rc;
    struct db_node *r = b->root_node;
    if (!r)
        return 0;
    if (!r->leaf && (rc = db_rebalance_node(tx, r, 0)))
        return rc;
    /* a root branch with one child is replaced by the child */
    while (!r->leaf && r->in.n <= 1) {
        if (r->in.n == 0) {
            r->leaf = true;
            break;
        }
        struct db_node *ch;
        if ((rc = db_node_child(tx, r, 0, &ch)) || (rc = db_node_free(tx, r)))
            return rc;
        b->root_node = r = ch;
    }
    return 0;
}

/* ---- commit: allocation and spill ---- */

/* npages contiguous pages: first fit in the free list, else from the end. */
static int db_alloc(struct db_tx *tx, uint32_t npages, uint64_t *id)
{
    uint64_t *v = tx->fl.v + tx->fl_head;
    size_t n = tx->fl.n - tx->fl_head;
    if (npages == 1 && n) {
        *id = v[0];
        tx->fl_head++;
        return 0;
    }
    for (size_t i = 0, start = 0; i < n; i++) {
        if (i == 0 || v[i] != v[i - 1] + 1)
            start = i;
        if (i - start + 1 == npages) {
            *id = v[start];
            memmove(&v[start], &v[i + 1], (n - i - 1) * sizeof *v);
            tx->fl.n -= npages;
            return 0;
        }
    }
    if (tx->meta.pgid > UINT64_MAX / tx->ps / 2 - npages)
        return db_fail(tx, DB_ENOSPC, "%s: page ids exhausted", tx->db->path);
    *id = tx->meta.pgid;
    tx->meta.pgid += npages;
    return 0;
}

/* A buffer for the pages that bytes need, at a newly allocated id, to be
 * written at commit.  The header has its id and overflow and is otherwise
 * zero, as are the bytes past `bytes`; the caller fills the rest (zeroing
 * every page up front cost more than the writing). */
static int db_dirty_page(struct db_tx *tx, size_t bytes, uint64_t *id, uint8_t **buf)
{
    struct db *db = tx->db;
    size_t ps = db->ps;
    uint64_t np = (bytes + ps - 1) / ps;
    if (bytes > UINT32_MAX) /* element offsets are 32-bit */
        return db_fail(tx, DB_EINVAL, "node of %zu bytes is too large for a page", bytes);
    int rc = db_alloc(tx, (uint32_t)np, id);
    if (rc)
        return rc;
    if (db_grow((void **)&tx->dirty, &tx->dirty_cap, tx->ndirty, 1, sizeof *tx->dirty))
        return db_fail(tx, DB_ENOMEM, "out of memory writing pages");
    if (np > 1)
        *buf = mem_arena_alloc(&tx->arena, np * ps);
    else
        *buf = db->npool ? db->pool[--db->npool] : mem_alloc(ps);
    if (!*buf)
        return db_fail(tx, DB_ENOMEM, "out of memory writing pages");
    tx->dirty[tx->ndirty++] = (struct db_dirty){.id = *id, .npages = (uint32_t)np, .buf = *buf};
    memset(*buf, 0, DB_HDR);
    memset(*buf + bytes, 0, np * ps - bytes);
    st64(*buf, *id);
    st32(*buf + 12, (uint32_t)(np - 1));
    return 0;
}

/* Lays out n elements on page p (id and overflow are the caller's). */
static void db_page_fill(uint8_t *p, bool leaf, const struct db_inode *v, size_t n)
{
    st16(p + 8, leaf ? PG_LEAF : PG_BRANCH);
    st16(p + 10, (uint16_t)n);
    size_t off = DB_HDR + n * DB_ELEM;
    for (size_t i = 0; i < n; i++) {
        uint8_t *e = p + DB_HDR + i * DB_ELEM;
        uint32_t pos = (uint32_t)(off - (DB_HDR + i * DB_ELEM));
        if (leaf) {
            st32(e, v[i].flags);
            st32(e + 4, pos);
            st32(e + 8, v[i].klen);
            st32(e + 12, v[i].vlen);
        } else {
            st32(e, pos);
            st32(e + 4, v[i].klen);
            st64(e + 8, v[i].pgid);
        }
        memcpy(p + off, v[i].key, v[i].klen);
        off += v[i].klen;
        if (leaf && v[i].vlen) {
            memcpy(p + off, v[i].val, v[i].vlen);
            off += v[i].vlen;
        }
    }
}

/* Where the page starting at element s ends: nothing is split while the rest
 * fits a page or has at most 4 elements; otherwise the page takes elements
 * up to fill * page size (at least 2) and leaves at least 2 behind, bbolt's
 * splitTwo rule. */
static size_t db_split_end(const struct db_node *n, size_t s, size_t ps, double fill)
{
    size_t left = n->in.n - s, sz = DB_HDR, i;
    for (i = s; i < n->in.n && sz < ps; i++)
        sz += DB_ELEM + n->in.v[i].klen + n->in.v[i].vlen;
    if (left <= 4 || sz < ps)
        return n->in.n;
    size_t threshold = (size_t)((double)ps * fill);
    sz = DB_HDR;
    for (i = s; i < n->in.n - 2; i++) {
        size_t el = DB_ELEM + n->in.v[i].klen + n->in.v[i].vlen;
        if (i - s >= 2 && sz + el > threshold)
            break;
        sz += el;
    }
    return i;
}

/* Writes n and its changed descendants to new pages, freeing the old ones,
 * and appends to out one branch element (first key, page id) per page
 * written.  An empty node writes nothing. */
static int db_node_spill(struct db_tx *tx, struct db_node *n, double fill, int depth,
                         struct db_ivec *out)
{
    int rc;
    if (depth >= DB_MAX_DEPTH)
        return db_corrupt(tx, n->pgid, "tree deeper than %d levels", DB_MAX_DEPTH);
    if (!n->leaf) {
        struct db_ivec kids = {0};
        for (size_t i = 0; i < n->in.n; i++) {
            rc = n->in.v[i].child ? db_node_spill(tx, n->in.v[i].child, fill, depth + 1, &kids)
                                  : db_ivec_push(&kids, &n->in.v[i]) ? DB_ENOMEM : 0;
            if (rc) {
                mem_free(kids.v);
                return rc == DB_ENOMEM ? db_fail(tx, rc, "out of memory in commit") : rc;
            }
        }
        mem_free(n->in.v);
        n->in = kids;
    }
    if ((rc = db_node_free(tx, n)))
        return rc;
    for (size_t s = 0, e; s < n->in.n; s = e) {
        e = db_split_end(n, s, tx->ps, fill);
        uint64_t id;
        uint8_t *p;
        if ((rc = db_dirty_page(tx, db_inodes_size(n->in.v + s, e - s), &id, &p)))
            return rc;
        db_page_fill(p, n->leaf, n->in.v + s, e - s);
        struct db_inode b = {.key = n->in.v[s].key, .klen = n->in.v[s].klen, .pgid = id};
        if (db_ivec_push(out, &b))
            return db_fail(tx, DB_ENOMEM, "out of memory in commit");
    }
    return 0;
}

/* Spills a bucket's tree; adds branch levels on top while the root split. */
static int db_tree_spill(struct db_tx *tx, struct db_bucket *b)
{
    struct db_ivec out = {0};
    int rc = db_node_spill(tx, b->root_node, b->fill, 0, &out);
    while (!rc && out.n > 1) {
        struct db_node *r = mem_arena_zalloc(&tx->arena, sizeof *r);
        if (!r) {
            rc = db_fail(tx, DB_ENOMEM, "out of memory in commit");
            break;
        }
        r->in = out;
        r->all = tx->nodes;
        tx->nodes = r;
        out = (struct db_ivec){0};
        rc = db_node_spill(tx, r, b->fill, 0, &out);
    }
    if (!rc && out.n == 0) {
        uint8_t *p;
        uint64_t id;
        if (!(rc = db_dirty_page(tx, DB_HDR, &id, &p))) {
            st16(p + 8, PG_LEAF);
            b->root = id;
        }
    } else if (!rc) {
        b->root = out.v[0].pgid;
    }
    mem_free(out.v);
    return rc;
}

static bool db_inlineable(const struct db_tx *tx, const struct db_bucket *b)
{
    const struct db_node *n = b->root_node;
    if (!n || !n->leaf)
        return false;
    size_t sz = DB_HDR;
    for (size_t i = 0; i < n->in.n; i++) {
        sz += DB_ELEM + n->in.v[i].klen + n->in.v[i].vlen;
        if ((n->in.v[i].flags & DB_BUCKET_LEAF) || sz > tx->ps / 4)
            return false;
    }
    return true;
}

/* Writes the changed nested buckets of b (inline when small, as bbolt does)
 * and records their new headers in b, then b's own tree. */
static int db_bucket_spill(struct db_tx *tx, struct db_bucket *b)
{
    int rc;
    for (struct db_bucket *k = b->kids; k; k = k->next) {
        if (k->deleted)
            continue;
        bool inl = db_inlineable(tx, k);
        if (!inl && (rc = db_bucket_spill(tx, k)))
            return rc;
        if (!k->root_node)
            continue;
        size_t vlen = DB_BUCKET_HDR + (inl ? db_inodes_size(k->root_node->in.v, k->root_node->in.n) : 0);
        uint8_t *val = mem_arena_zalloc(&tx->arena, vlen);
        if (!val)
            return db_fail(tx, DB_ENOMEM, "out of memory in commit");
        if (inl) {
            if ((rc = db_node_free(tx, k->root_node)))
                return rc;
            k->root = 0;
            db_page_fill(val + DB_BUCKET_HDR, true, k->root_node->in.v, k->root_node->in.n);
        }
        st64(val, k->root);
        st64(val + 8, k->seq);
        struct db_cursor c;
        struct db_inode e;
        struct db_node *n;
        bool exact;
        if ((rc = db_find(&c, b, k->name, k->nlen, &exact, &e)))
            return rc;
        if (!exact || !(e.flags & DB_BUCKET_LEAF))
            return db_corrupt(tx, 0, "bucket %.*s vanished from its parent", (int)k->nlen, k->name);
        if ((rc = db_cur_node(&c, &n)))
            return rc;
        struct db_inode *in = &n->in.v[c.cu_stack[c.cu_depth - 1].cr_index];
        in->val = val;
        in->vlen = (uint32_t)vlen;
    }
    return b->root_node ? db_tree_spill(tx, b) : 0;
}

/* ---- commit: free list ---- */

/* Under the lock: which pending pages no reader can see any more; then the
 * free list to allocate from is the current one plus those. */
static int db_fl_prepare(struct db_tx *tx)
{
    struct db *db = tx->db;
    uint64_t oldest = UINT64_MAX;
    pthread_mutex_lock(&db->mu);
    for (size_t i = 0; i < db->readers.n; i++)
        if (db->readers.v[i] < oldest)
            oldest = db->readers.v[i];
    pthread_mutex_unlock(&db->mu);
    /* pages freed by commit T are still seen by readers of T-1 and older */
    size_t rel = 0, n = db->free.n;
    while (rel < db->npending && db->pending[rel].txid <= oldest)
        n += db->pending[rel++].ids.n;
    tx->release = rel;
    tx->fl.v = mem_alloc((n ? n : 1) * sizeof *tx->fl.v);
    if (!tx->fl.v ||
        db_grow((void **)&db->pending, &db->pending_cap, db->npending, 1, sizeof *db->pending))
        return db_fail(tx, DB_ENOMEM, "out of memory in commit");
    tx->fl.cap = n ? n : 1;
    if (db->free.n)
        memcpy(tx->fl.v, db->free.v, db->free.n * sizeof *tx->fl.v);
    tx->fl.n = db->free.n;
    for (size_t i = 0; i < rel; i++) {
        memcpy(tx->fl.v + tx->fl.n, db->pending[i].ids.v, db->pending[i].ids.n * sizeof *tx->fl.v);
        tx->fl.n += db->pending[i].ids.n;
    }
    if (rel)
        qsort(tx->fl.v, tx->fl.n, sizeof *tx->fl.v, db_cmp_u64);
    return 0;
}

static int db_cmp_dirty(const void *a, const void *b)
{
    const struct db_dirty *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Whether page id is one this commit allocated. */
static bool db_dirty_has(const struct db_tx *tx, uint64_t id)
{
    size_t lo = 0, hi = tx->ndirty;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tx->dirty[mid].id + tx->dirty[mid].npages <= id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < tx->ndirty && tx->dirty[lo].id <= id;
}

/* A page freed twice, freed while already free, or freed and allocated in
 * the same commit means two references to one page: the file is corrupt,
 * and writing would make it worse. */
static int db_freed_check(struct db_tx *tx)
{
    struct db *db = tx->db;
    struct db_ids *f = &tx->freed;
    if (f->n)
        qsort(f->v, f->n, sizeof *f->v, db_cmp_u64);
    if (tx->ndirty)
        qsort(tx->dirty, tx->ndirty, sizeof *tx->dirty, db_cmp_dirty);
    for (size_t i = 0; i < f->n; i++) {
        bool twice = (i && f->v[i] == f->v[i - 1]) || db_dirty_has(tx, f->v[i]) ||
                     db_ids_has(&tx->fl, tx->fl_head, f->v[i]);
        for (size_t p = tx->release; !twice && p < db->npending; p++)
            twice = db_ids_has(&db->pending[p].ids, 0, f->v[i]);
        if (twice)
            return db_corrupt(tx, f->v[i], "page is referenced twice or already free");
    }
    return 0;
}

/* Writes every free and pending page id (pending ones become free if we
 * crash) to a new freelist page, bbolt's format. */
static int db_freelist_write(struct db_tx *tx)
{
    struct db *db = tx->db;
    size_t count = tx->fl.n - tx->fl_head + tx->freed.n;
    for (size_t p = tx->release; p < db->npending; p++)
        count += db->pending[p].ids.n;
    uint64_t id;
    uint8_t *p;
    size_t room = DB_HDR + 8 * (count + 1) + db->ps; /* bbolt's generous estimate */
    int rc = db_dirty_page(tx, room, &id, &p);
    if (rc)
        return rc;
    count = tx->fl.n - tx->fl_head + tx->freed.n; /* the allocation took some */
    for (size_t q = tx->release; q < db->npending; q++)
        count += db->pending[q].ids.n;
    st16(p + 8, PG_FREELIST);
    uint64_t *ids = (uint64_t *)(void *)(p + DB_HDR);
    if (count >= 0xFFFF) {
        st16(p + 10, 0xFFFF);
        st64(p + DB_HDR, count);
        ids++;
    } else {
        st16(p + 10, (uint16_t)count);
    }
    size_t n = tx->fl.n - tx->fl_head;
    memcpy(ids, tx->fl.v + tx->fl_head, n * sizeof *ids);
    if (tx->freed.n)
        memcpy(ids + n, tx->freed.v, tx->freed.n * sizeof *ids);
    n += tx->freed.n;
    for (size_t q = tx->release; q < db->npending; q++) {
        memcpy(ids + n, db->pending[q].ids.v, db->pending[q].ids.n * sizeof *ids);
        n += db->pending[q].ids.n;
    }
    qsort(ids, n, sizeof *ids, db_cmp_u64);
    memset(ids + n, 0, room - (size_t)((uint8_t *)(ids + n) - p));
    tx->meta.freelist = id;
    return 0;
}

/* ---- commit: writing ---- */

/* Dirty pages in id order, each contiguous run in one pwritev. */
static int db_write_pages(struct db_tx *tx)
{
    enum { RUN = 64 };
    struct iovec iov[RUN];
    if (tx->ndirty)
        qsort(tx->dirty, tx->ndirty, sizeof *tx->dirty, db_cmp_dirty);
    for (size_t i = 0, j; i < tx->ndirty; i = j) {
        int cnt = 0;
        for (j = i; j < tx->ndirty && cnt < RUN; j++) {
            if (j > i && tx->dirty[j].id != tx->dirty[j - 1].id + tx->dirty[j - 1].npages)
                break;
            iov[cnt++] = (struct iovec){tx->dirty[j].buf, (size_t)tx->dirty[j].npages * tx->ps};
        }
        int rc = db_pwritev(tx, iov, cnt, tx->dirty[i].id * tx->ps);
        if (rc)
            return rc;
    }
    return db_sync(tx);
}

static int db_write_meta(struct db_tx *tx)
{
    uint8_t *p = mem_arena_zalloc(&tx->arena, tx->ps);
    if (!p)
        return db_fail(tx, DB_ENOMEM, "out of memory in commit");
    uint64_t id = tx->meta.txid % 2;
    db_meta_put(p, id, &tx->meta);
    struct iovec iov = {p, tx->ps};
    int rc = db_pwritev(tx, &iov, 1, id * tx->ps);
    return rc ? rc : db_sync(tx);
}

/* Makes the commit visible: new meta and mapping, the free list, this
 * commit's freed pages pending.  Nothing here can fail. */
static void db_publish(struct db_tx *tx, struct db_map *nmap)
{
    struct db *db = tx->db;
    struct db_map *old = NULL;
    for (size_t i = 0; i < tx->release; i++)
        mem_free(db->pending[i].ids.v);
    memmove(db->pending, db->pending + tx->release,
            (db->npending - tx->release) * sizeof *db->pending);
    db->npending -= tx->release;
    if (tx->freed.n) {
        db->pending[db->npending++] = (struct db_pending){.txid = tx->meta.txid, .ids = tx->freed};
        tx->freed = (struct db_ids){0};
    }
    memmove(tx->fl.v, tx->fl.v + tx->fl_head, (tx->fl.n - tx->fl_head) * sizeof *tx->fl.v);
    tx->fl.n -= tx->fl_head;
    mem_free(db->free.v);
    db->free = tx->fl;
    tx->fl = (struct db_ids){0};
    pthread_mutex_lock(&db->mu);
    db->meta = tx->meta;
    db->free_n = db->free.n;
    if (nmap) {
        old = db->map;
        db->map = nmap;
        if (--old->refs)
            old = NULL;
    }
    pthread_mutex_unlock(&db->mu);
    if (old)
        db_map_free(old);
}

int db_commit(struct db_tx *tx)
{
    struct db *db = tx->db;
    struct db_map *nmap = NULL;
    int rc;
    if (!tx->write) {
        db_tx_end(tx);
        return DB_EINVAL;
    }
    if ((rc = tx->err) || (rc = db_rebalance_bucket(tx, &tx->root)) || (rc = db_fl_prepare(tx)) ||
        (rc = db_bucket_spill(tx, &tx->root)))
        goto out;
    tx->meta.root = tx->root.root;
    if (tx->meta.freelist != DB_NO_FREELIST) {
        /* the old freelist page is replaced; read its size from its header */
        uint64_t id = tx->meta.freelist;
        uint32_t ovf = ld32(tx->map->base + id * db->ps + 12);
        if (ovf >= tx->hw - id) {
            rc = db_corrupt(tx, id, "freelist overflow passes the high-water mark");
            goto out;
        }
        if ((rc = db_free_pages(tx, id, ovf)))
            goto out;
    }
    if ((rc = db_freed_check(tx)))
        goto out;
    if (db->flags & DB_NO_FREELIST_SYNC)
        tx->meta.freelist = DB_NO_FREELIST;
    else if ((rc = db_freelist_write(tx)))
        goto out;
    if (tx->meta.pgid * db->ps > tx->map->len && !(nmap = db_map_new(db->fd, tx->meta.pgid * db->ps))) {
        rc = db_fail(tx, DB_ENOMEM, "%s: mmap of %" PRIu64 " bytes: %s", db->path,
                     tx->meta.pgid * db->ps, strerror(errno));
        goto out;
    }
    if ((rc = db_write_pages(tx)))
        goto out;
    if ((rc = db_write_meta(tx))) {
        /* the meta page may or may not be on disk: the file may now be
         * ahead of memory, and the next commit could overwrite its pages */
        pthread_mutex_lock(&db->mu);
        db->failed = true;
        pthread_mutex_unlock(&db->mu);
        goto out;
    }
    /* What this and earlier transactions read through the mapping stays
     * mapped until told otherwise: page after page of the file would count
     * as the process's memory (the page cache keeps them; a later read
     * maps one again). */
    (void)madvise((void *)tx->map->base, tx->map->len, MADV_DONTNEED);
    db_publish(tx, nmap);
    nmap = NULL;
out:
    if (nmap)
        db_map_free(nmap);
    db_tx_end(tx);
    return rc;
}

/* ---- walking every page ---- */

static bool db_bit(const uint8_t *bits, uint64_t i) { return bits[i / 8] >> (i % 8) & 1; }
static void db_set_bit(uint8_t *bits, uint64_t i) { bits[i / 8] |= (uint8_t)(1u << (i % 8)); }

/* Elements of a page: children and nested buckets, and key order when
 * checking. */
static int db_walk_elems(struct db_tx *tx, uint8_t *seen, const uint8_t *isfree, bool check,
                         const struct db_cursor_ref *r, int depth, int nest)
{
    struct db_inode e, prev = {0};
    for (uint32_t i = 0; i < r->cr_count; i++) {
        int rc = db_elem(tx, r, i, &e);
        if (rc)
            return rc;
        if (check && i && db_cmp(prev.key, prev.klen, e.key, e.klen) >= 0)
            return db_corrupt(tx, ld64(r->cr_page), "keys out of order at element %" PRIu32, i);
        prev = e;
        if (!r->cr_leaf) {
            rc = db_walk_page(tx, seen, isfree, check, e.pgid, depth + 1, nest);
        } else if (e.flags & DB_BUCKET_LEAF) {
            struct db_cursor_ref in;
            if (nest + 1 >= DB_MAX_NEST)
                return db_corrupt(tx, 0, "buckets nested deeper than %d", DB_MAX_NEST);
            if (e.vlen < DB_BUCKET_HDR)
                return db_corrupt(tx, ld64(r->cr_page), "bucket value too short");
            if (ld64(e.val))
                rc = db_walk_page(tx, seen, isfree, check, ld64(e.val), 0, nest + 1);
            else if (!(rc = db_inline_page(tx, e.val + DB_BUCKET_HDR, e.vlen - DB_BUCKET_HDR, &in)))
                rc = db_walk_elems(tx, seen, isfree, check, &in, 0, nest + 1);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int db_walk_page(struct db_tx *tx, uint8_t *seen, const uint8_t *isfree, bool check,
                        uint64_t id, int depth, int nest)
{
    struct db_cursor_ref r;
    if (depth >= DB_MAX_DEPTH)
        return db_corrupt(tx, id, "tree deeper than %d levels", DB_MAX_DEPTH);
    int rc = db_tree_page(tx, id, &r);
    if (rc)
        return rc;
    for (uint64_t i = id; i < id + r.cr_len / tx->ps; i++) {
        if (db_bit(seen, i))
            return db_corrupt(tx, i, "page is referenced twice");
        if (isfree && db_bit(isfree, i))
            return db_corrupt(tx, i, "reachable page is on the freelist");
        db_set_bit(seen, i);
    }
    return db_walk_elems(tx, seen, isfree, check, &r, depth, nest);
}

/* The ids on the transaction's freelist page, sorted; *ovf its overflow. */
static int db_read_freelist(struct db_tx *tx, struct db_ids *out, uint32_t *ovf)
{
    uint64_t id = tx->meta.freelist, hw = tx->hw;
    const uint8_t *p = tx->map->base + id * tx->ps;
    *ovf = ld32(p + 12);
    if (ld16(p + 8) != PG_FREELIST)
        return db_corrupt(tx, id, "not a freelist page (flags 0x%x)", ld16(p + 8));
    if (*ovf >= hw - id)
        return db_corrupt(tx, id, "%" PRIu32 " overflow pages pass the high-water mark", *ovf);
    uint64_t count = ld16(p + 10), skip = 0, room = ((uint64_t)*ovf + 1) * tx->ps - DB_HDR;
    if (count == 0xFFFF) {
        count = ld64(p + DB_HDR);
        skip = 1;
    }
    if (count > room / 8 - skip)
        return db_corrupt(tx, id, "%" PRIu64 " free ids do not fit", count);
    out->v = mem_alloc((count ? count : 1) * sizeof *out->v);
    if (!out->v)
        return db_fail(tx, DB_ENOMEM, "out of memory reading the freelist");
    out->n = out->cap = count;
    memcpy(out->v, p + DB_HDR + 8 * skip, count * 8);
    qsort(out->v, count, sizeof *out->v, db_cmp_u64);
    for (size_t i = 0; i < count; i++)
        if (out->v[i] < 2 || out->v[i] >= hw || (i && out->v[i] == out->v[i - 1]))
            return db_corrupt(tx, id, "bad free page id %" PRIu64, out->v[i]);
    return 0;
}

int db_check(struct db_tx *tx)
{
    uint64_t hw = tx->meta.pgid;
    struct db_ids fl = {0};
    uint8_t *seen = mem_calloc(hw / 8 + 1, 1), *isfree = NULL;
    uint32_t ovf = 0;
    int rc = tx->err;
    if (!rc && !seen)
        rc = db_fail(tx, DB_ENOMEM, "out of memory in check");
    if (rc)
        goto out;
    db_set_bit(seen, 0);
    db_set_bit(seen, 1);
    if (tx->meta.freelist != DB_NO_FREELIST) {
        if ((rc = db_read_freelist(tx, &fl, &ovf)))
            goto out;
        if (!(isfree = mem_calloc(hw / 8 + 1, 1))) {
            rc = db_fail(tx, DB_ENOMEM, "out of memory in check");
            goto out;
        }
        for (size_t i = 0; i < fl.n; i++)
            db_set_bit(isfree, fl.v[i]);
        for (uint64_t i = tx->meta.freelist; i <= tx->meta.freelist + ovf; i++) {
            if (db_bit(isfree, i))
                rc = db_corrupt(tx, i, "the freelist page lists itself");
            db_set_bit(seen, i);
        }
        if (rc)
            goto out;
    }
    if ((rc = db_walk_page(tx, seen, isfree, true, tx->meta.root, 0, 0)))
        goto out;
    for (uint64_t i = 2; isfree && i < hw; i++) {
        if (!db_bit(seen, i) && !db_bit(isfree, i)) {
            rc = db_corrupt(tx, i, "page is neither reachable nor free");
            goto out;
        }
    }
out:
    mem_free(fl.v);
    mem_free(seen);
    mem_free(isfree);
    return rc;
}

/* The free list at open: the freelist page, or every page below the
 * high-water mark the tree does not reach (bbolt's NoFreelistSync). */
static int db_load_free(struct db_tx *tx, struct db_ids *out)
{
    uint32_t ovf;
    if (tx->meta.freelist != DB_NO_FREELIST)
        return db_read_freelist(tx, out, &ovf);
    uint64_t hw = tx->meta.pgid;
    uint8_t *seen = mem_calloc(hw / 8 + 1, 1);
    if (!seen)
        return db_fail(tx, DB_ENOMEM, "out of memory loading the free list");
    int rc = db_walk_page(tx, seen, NULL, false, tx->meta.root, 0, 0);
    for (uint64_t i = 2; !rc && i < hw; i++)
        if (!db_bit(seen, i) && db_ids_push(out, i))
            rc = db_fail(tx, DB_ENOMEM, "out of memory loading the free list");
    mem_free(seen);
    return rc;
}

/* ---- open and close ---- */

static int db_init_file(int fd, size_t ps)
{
    uint8_t *buf = mem_calloc(4, ps);
    if (!buf)
        return DB_ENOMEM;
    for (uint64_t i = 0; i < 2; i++) {
        struct db_meta m = {.page_size = (uint32_t)ps, .root = 3, .freelist = 2, .pgid = 4, .txid = i};
        db_meta_put(buf + i * ps, i, &m);
    }
    st64(buf + 2 * ps, 2);
    st16(buf + 2 * ps + 8, PG_FREELIST);
    st64(buf + 3 * ps, 3);
    st16(buf + 3 * ps + 8, PG_LEAF);
    int rc = 0;
    if (pwrite(fd, buf, 4 * ps, 0) != (ssize_t)(4 * ps) || fdatasync(fd) < 0)
        rc = db_errno_code(errno);
    mem_free(buf);
    return rc;
}

/* Reads the meta pages and picks the newer valid one. */
static int db_pick_meta(struct db *db, uint64_t fsize, char *msg, size_t mlen)
{
    uint8_t pg[DB_HDR + 64];
    struct db_meta m[2];
    const char *why[2];
    if (pread(db->fd, pg, sizeof pg, 0) != (ssize_t)sizeof pg) {
        snprintf(msg, mlen, "%s: file of %" PRIu64 " bytes is too small", db->path, fsize);
        return DB_ECORRUPT;
    }
    why[0] = db_meta_get(pg, &m[0]);
    db->ps = why[0] ? DB_PAGE_DEFAULT : m[0].page_size;
    if (fsize < 2 * db->ps || pread(db->fd, pg, sizeof pg, (off_t)db->ps) != (ssize_t)sizeof pg) {
        snprintf(msg, mlen, "%s: file of %" PRIu64 " bytes is too small", db->path, fsize);
        return DB_ECORRUPT;
    }
    why[1] = db_meta_get(pg, &m[1]);
    if (!why[1] && m[1].page_size != db->ps)
        why[1] = "page size differs from meta page 0";
    if (why[0] && why[1]) {
        snprintf(msg, mlen, "%s: no valid meta page (page 0: %s; page 1 at offset %zu: %s)",
                 db->path, why[0], db->ps, why[1]);
        return DB_ECORRUPT;
    }
    int i = why[0] || (!why[1] && m[1].txid > m[0].txid);
    struct db_meta *c = &m[i];
    const char *bad = NULL;
    if (c->root < 2 || c->root >= c->pgid)
        bad = "root page outside the file";
    else if (c->freelist != DB_NO_FREELIST && (c->freelist < 2 || c->freelist >= c->pgid))
        bad = "freelist page outside the file";
    else if (c->pgid > fsize / db->ps)
        bad = "high-water mark beyond the end of the file (truncated?)";
    if (bad) {
        snprintf(msg, mlen, "%s: meta page %d (txid %" PRIu64 "): %s", db->path, i, c->txid, bad);
        return DB_ECORRUPT;
    }
    db->meta = *c;
    return 0;
}

/* The writer's own state (no lock needed: no writer runs). */
static void db_free_pool_pending(struct db *db)
{
    for (size_t i = 0; i < db->npool; i++)
        mem_free(db->pool[i]);
    mem_free(db->pool);
    db->pool = NULL;
    db->npool = db->pool_cap = 0;
    for (size_t i = 0; i < db->npending; i++)
        mem_free(db->pending[i].ids.v);
    mem_free(db->pending);
    mem_free(db->free.v);
}

static void db_free_state(struct db *db)
{
    db_free_pool_pending(db);
    mem_free(db->readers.v);
}

int db_open(const char *path, unsigned flags, struct db **out, char *errbuf, size_t errlen)
{
    char scratch[8];
    char *msg = errbuf ? errbuf : scratch;
    size_t mlen = errbuf ? errlen : sizeof scratch;
    struct db_tx *tx = NULL;
    struct stat st;
    int rc = DB_ENOMEM;
    if (mlen)
        msg[0] = 0;
    struct db *db = mem_calloc(1, sizeof *db);
    if (!db || !(db->path = mem_alloc(strlen(path) + 1)))
        goto fail_alloc;
    strcpy(db->path, path);
    db->flags = flags;
    bool ro = flags & DB_READ_ONLY;
    db->fd = ro ? open(path, O_RDONLY | O_CLOEXEC) : open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (db->fd < 0) {
        rc = db_errno_code(errno);
        snprintf(msg, mlen, "%s: open: %s", path, strerror(errno));
        goto fail_alloc;
    }
    if (flock(db->fd, (ro ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? DB_EBUSY : DB_EIO;
        snprintf(msg, mlen, "%s: flock: %s", path, strerror(errno));
        goto fail_fd;
    }
    if (fstat(db->fd, &st) < 0) {
        rc = DB_EIO;
        snprintf(msg, mlen, "%s: fstat: %s", path, strerror(errno));
        goto fail_fd;
    }
    if (st.st_size == 0 && ro) {
        rc = DB_ECORRUPT;
        snprintf(msg, mlen, "%s: the file is empty", path);
        goto fail_fd;
    }
    if (st.st_size == 0) {
        if ((rc = db_init_file(db->fd, DB_PAGE_DEFAULT))) {
            snprintf(msg, mlen, "%s: initializing: %s", path, db_strerror(rc));
            goto fail_fd;
        }
        st.st_size = 4 * DB_PAGE_DEFAULT;
    }
    if ((rc = db_pick_meta(db, (uint64_t)st.st_size, msg, mlen)))
        goto fail_fd;
    uint64_t need = (uint64_t)st.st_size > db->meta.pgid * db->ps ? (uint64_t)st.st_size
                                                                 : db->meta.pgid * db->ps;
    if (!(db->map = db_map_new(db->fd, need))) {
        rc = DB_ENOMEM;
        snprintf(msg, mlen, "%s: mmap: %s", path, strerror(errno));
        goto fail_fd;
    }
    if (pthread_mutex_init(&db->mu, NULL)) {
        rc = DB_ENOMEM;
        goto fail_map;
    }
    if ((rc = db_begin(db, false, &tx)))
        goto fail_mu;
    rc = db_load_free(tx, &db->free);
    if (rc)
        snprintf(msg, mlen, "%s", tx->msg);
    db_tx_end(tx);
    if (rc)
        goto fail_mu;
    db->free_n = db->free.n;
    *out = db;
    return 0;
fail_mu:
    pthread_mutex_destroy(&db->mu);
    db_free_state(db);
fail_map:
    db_map_free(db->map);
fail_fd:
    close(db->fd);
fail_alloc:
    if (rc == DB_ENOMEM && mlen && !msg[0])
        snprintf(msg, mlen, "%s: out of memory", path);
    if (db)
        mem_free(db->path);
    mem_free(db);
    return rc;
}

void db_close(struct db *db)
{
    assert(!db->writer && db->readers.n == 0 && db->map->refs == 1);
    db_map_free(db->map);
    close(db->fd);
    pthread_mutex_destroy(&db->mu);
    db_free_state(db);
    mem_free(db->path);
    mem_free(db);
}

int64_t db_size(struct db *db)
{
    pthread_mutex_lock(&db->mu);
    int64_t s = (int64_t)(db->meta.pgid * db->ps);
    pthread_mutex_unlock(&db->mu);
    return s;
}

int64_t db_size_in_use(struct db *db)
{
    pthread_mutex_lock(&db->mu);
    int64_t s = (int64_t)((db->meta.pgid - db->free_n) * db->ps);
    pthread_mutex_unlock(&db->mu);
    return s;
}

const char *db_errmsg(struct db *db)
{
    return db->errmsg;
}

/* ---- snapshots ---- */

static int db_write_all(struct db_tx *tx, int fd, const uint8_t *p, size_t n, uint64_t *written)
{
    while (n) {
        ssize_t w = write(fd, p, n < (1u << 30) ? n : (1u << 30));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            return db_fail(tx, db_errno_code(e), "%s: snapshot write: %s", tx->db->path, strerror(e));
        }
        p += w;
        n -= (size_t)w;
        if (written)
            *written += (uint64_t)w;
    }
    return 0;
}

int db_tx_write_to(struct db_tx *tx, int fd, uint64_t *written)
{
    size_t ps = tx->ps;
    if (written)
        *written = 0;
    if (tx->write)
        return DB_EINVAL;
    if (tx->err)
        return tx->err;
    uint8_t *pg = mem_calloc(1, ps);
    if (!pg)
        return db_fail(tx, DB_ENOMEM, "out of memory in snapshot");
    /* both metas from the transaction's, page 1 one txid older, as bbolt */
    struct db_meta m = tx->meta;
    db_meta_put(pg, 0, &m);
    int rc = db_write_all(tx, fd, pg, ps, written);
    m.txid--;
    db_meta_put(pg, 1, &m);
    if (!rc)
        rc = db_write_all(tx, fd, pg, ps, written);
    mem_free(pg);
    if (!rc)
        rc = db_write_all(tx, fd, tx->map->base + 2 * ps, (tx->meta.pgid - 2) * ps, written);
    return rc;
}

/* ---- defrag ---- */

struct db_defrag {
    struct db *dst;
    struct db_tx *wtx;
    struct db_bucket *cur; /* destination bucket in wtx, NULL = resolve path */
    struct db_val path[DB_MAX_NEST];
    int depth;
    long count;
};

static int db_defrag_resolve(struct db_defrag *x)
{
    int rc = 0;
    if (x->cur)
        return 0;
    struct db_bucket *b = NULL;
    for (int i = 0; !rc && i < x->depth; i++)
        rc = db_bucket_get(x->wtx, b, x->path[i].p, x->path[i].len, &b);
    if (!rc) {
        db_bucket_set_fill(b, 0.9);
        x->cur = b;
    }
    return rc;
}

/* Copies the entries of src (nested buckets recursively) into the bucket
 * x->path names in the destination. */
static int db_defrag_copy(struct db_defrag *x, struct db_tx *rtx, struct db_bucket *src)
{
    struct db_cursor c;
    struct db_val k, v;
    int rc;
    db_cursor_init(&c, rtx, src);
    for (rc = db_cursor_first(&c, &k, &v); !rc; rc = db_cursor_next(&c, &k, &v)) {
        if (!v.p) {
            struct db_bucket *sub, *parent = NULL, *made;
            if (x->depth >= DB_MAX_NEST)
                return DB_ECORRUPT;
            if (x->depth && (rc = db_defrag_resolve(x)))
                return rc;
            parent = x->depth ? x->cur : NULL;
            if ((rc = db_bucket_get(rtx, src == &rtx->root ? NULL : src, k.p, k.len, &sub)) ||
                (rc = db_bucket_create(x->wtx, parent, k.p, k.len, true, &made)))
                return rc;
            x->path[x->depth++] = k;
            x->cur = NULL;
            rc = db_defrag_copy(x, rtx, sub);
            x->depth--;
            x->cur = NULL;
            if (rc)
                return rc;
            continue;
        }
        if (!x->depth)
            return db_corrupt(rtx, 0, "plain key %.*s at the top level", (int)(k.len > 64 ? 64 : k.len),
                              (const char *)k.p);
        if (++x->count > DB_DEFRAG_LIMIT) {
            struct db_tx *t = x->wtx;
            x->wtx = NULL;
            x->cur = NULL;
            if ((rc = db_commit(t)) || (rc = db_begin(x->dst, true, &x->wtx)))
                return rc;
            x->count = 1;
        }
        if ((rc = db_defrag_resolve(x)) || (rc = db_put(x->cur, k.p, k.len, v.p, v.len)))
            return rc;
    }
    return rc == DB_ENOTFOUND ? 0 : rc;
}

static int db_fsync_dir(const char *path)
{
    size_t n = strlen(path);
    char *dir = mem_alloc(n + 2);
    if (!dir)
        return DB_ENOMEM;
    strcpy(dir, path);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir] = 0;
    else
        strcpy(dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
    mem_free(dir);
    if (fd < 0 || fsync(fd) < 0)
        rc = DB_EIO;
    if (fd >= 0)
        close(fd);
    return rc;
}

int db_defrag(struct db *db)
{
    struct db_defrag x = {0};
    struct db_tx *rtx = NULL;
    char *tmp = NULL;
    int rc = 0;
    pthread_mutex_lock(&db->mu);
    if (db->flags & DB_READ_ONLY)
        rc = DB_EINVAL;
    else if (db->writer || db->defrag || db->failed)
        rc = db->failed ? DB_EFAILED : DB_EBUSY;
    else
        db->defrag = true;
    pthread_mutex_unlock(&db->mu);
    if (rc)
        return rc;
    db->errmsg[0] = 0;
    if (!(tmp = mem_alloc(strlen(db->path) + 16))) {
        rc = DB_ENOMEM;
        goto out;
    }
    sprintf(tmp, "%s.tmp.XXXXXX", db->path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        rc = db_errno_code(errno);
        snprintf(db->errmsg, sizeof db->errmsg, "%s: mkstemp: %s", tmp, strerror(errno));
        goto out_free;
    }
    close(fd);
    if ((rc = db_open(tmp, db->flags, &x.dst, db->errmsg, sizeof db->errmsg)))
        goto out_unlink;
    if ((rc = db_begin(db, false, &rtx)) || (rc = db_begin(x.dst, true, &x.wtx)))
        goto out_dst;
    /* a corrupt source could send the copy around a cycle of pages */
    rc = db_check(rtx);
    if (!rc)
        rc = db_defrag_copy(&x, rtx, &rtx->root);
    if (rc && !db->errmsg[0])
        snprintf(db->errmsg, sizeof db->errmsg, "defrag: %s%s%s", db_strerror(rc),
                 rtx->msg[0] ? ": " : "", rtx->msg);
    if (x.wtx) {
        int crc = rc ? (db_rollback(x.wtx), 0) : db_commit(x.wtx);
        if (crc) {
            rc = crc;
            snprintf(db->errmsg, sizeof db->errmsg, "defrag: %.200s", x.dst->errmsg);
        }
    } else if (rc && x.dst->errmsg[0]) {
        snprintf(db->errmsg, sizeof db->errmsg, "defrag: %.200s", x.dst->errmsg);
    }
    db_tx_end(rtx);
    rtx = NULL;
    if (rc)
        goto out_dst;
    if (rename(tmp, db->path) < 0) {
        rc = db_errno_code(errno);
        snprintf(db->errmsg, sizeof db->errmsg, "%s: rename to %s: %s", tmp, db->path, strerror(errno));
        goto out_dst;
    }
    /* continue on the new file: its state replaces ours.  Readers still on
     * the old file keep its mapping; their ids no longer hold back the
     * reuse of pages, which are the new file's now. */
    pthread_mutex_lock(&db->mu);
    struct db_map *old = db->map;
    int oldfd = db->fd;
    db->fd = x.dst->fd;
    db->ps = x.dst->ps;
    db->map = x.dst->map;
    db->meta = x.dst->meta;
    db->free_n = x.dst->free_n;
    db->readers.n = 0;
    db->file_gen++;
    pthread_mutex_unlock(&db->mu);
    db_free_pool_pending(db);
    db->free = x.dst->free;
    db->pending = x.dst->pending;
    db->npending = x.dst->npending;
    db->pending_cap = x.dst->pending_cap;
    x.dst->free = (struct db_ids){0};
    x.dst->pending = NULL;
    x.dst->npending = 0;
    db_free_state(x.dst);
    pthread_mutex_destroy(&x.dst->mu);
    mem_free(x.dst->path);
    mem_free(x.dst);
    close(oldfd);
    db_map_unref(db, old);
    if ((rc = db_fsync_dir(db->path)))
        snprintf(db->errmsg, sizeof db->errmsg, "%s: fsync of its directory failed after defrag",
                 db->path);
    goto out_free;
out_dst:
    if (rtx)
        db_tx_end(rtx);
    if (x.wtx)
        db_rollback(x.wtx);
    db_close(x.dst);
out_unlink:
    unlink(tmp);
out_free:
    mem_free(tmp);
out:
    pthread_mutex_lock(&db->mu);
    db->defrag = false;
    pthread_mutex_unlock(&db->mu);
    return rc;
}
