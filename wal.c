/* wal.c - etcd's write-ahead log (see wal.h): segment files, record framing,
 * the CRC chain, reading back at a snapshot, torn-tail repair, segment cuts,
 * lock release and purging.
 *
 * It does not know what entries mean (raft.c), when to sync (the caller
 * groups saves and calls wal_sync once per batch), nor about .snap files and
 * the backend; metadata is opaque bytes here.
 *
 * Reading loads one segment at a time into memory and decodes it there, so
 * the decoder is a plain function over bytes; only what the caller keeps
 * (entries, metadata) is copied into its arena.  Writing builds a whole batch
 * of records in one buffer and hands it to one pwrite.
 */
#include "wal.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "pb.h"

/* walpb.Record.type values (wal/wal.go) */
enum {
    WAL_REC_METADATA = 1,
    WAL_REC_ENTRY = 2,
    WAL_REC_STATE = 3,
    WAL_REC_CRC = 4,
    WAL_REC_SNAPSHOT = 5,
};

/* etcd's decoder refuses records of 10 MiB and more (maxWALEntrySizeLimit). */
#define WAL_MAX_RECORD ((uint64_t)10 * 1024 * 1024)
/* Torn writes are detected per sector (wal/decoder.go minSectorSize). */
#define WAL_SECTOR 512
/* Batch buffers larger than this are freed after use: memory stays bounded
 * after one huge batch. */
#define WAL_BUF_KEEP ((size_t)4 << 20)

/* How big a segment grows before a cut, and how much is preallocated.  etcd's
 * SegmentSizeBytes (64 * 1000 * 1000); a variable so tests can shrink it. */
static uint64_t wal_segment_bytes = 64 * 1000 * 1000;

/* One segment file. */
struct wal_seg {
    uint64_t seq;
    uint64_t index; /* the index of the first entry it may hold */
    int fd;         /* -1 when not open; holds the segment's lock */
};

struct wal {
    char *dir;                /* owned */
    int dirfd;                /* for fsync after renames */
    struct wal_seg *segs;     /* owned; held segments, oldest first, tail last */
    size_t n_segs, cap_segs;
    uint64_t off;             /* append offset in the tail */
    uint32_t crc;             /* running CRC over every record written */
    uint64_t enti;            /* index of the last entry saved */
    struct api_raft_hard_state state; /* last hard state: repeated in each new segment */
    uint8_t *meta;            /* owned copy of the metadata; NULL = absent */
    size_t meta_len;
    struct mem_buf batch;     /* the records of the call being written */
    struct mem_buf scratch;   /* one encoded entry, before its record is framed */
    int failed;               /* sticky error; 0 while usable */
};

/* What wal_mark saves so a failed call can be undone. */
struct wal_mark {
    uint64_t off;
    uint32_t crc;
    uint64_t enti;
    struct api_raft_hard_state state;
};

/* Reading state across the segments of one wal_open/wal_valid_snapshots. */
struct wal_read {
    bool scan;                 /* wal_valid_snapshots: snapshots and states only */
    uint64_t start_index, start_term;
    struct mem_arena *a;
    struct wal_contents *c;
    uint32_t crc;
    bool match;                /* the snapshot record at start was seen */
    uint64_t enti;
    bool have_meta;
    struct api_raft_entry *ents; /* heap while reading; copied to a at the end */
    size_t n_ents, cap_ents;
    struct api_wal_snapshot *snaps;
    size_t n_snaps, cap_snaps;
    size_t end;                /* offset after the last good record of the file */
    bool torn;                 /* the file ended in a torn record */
};

/* wal_next results besides negative errors */
enum { WAL_F_END = 0, WAL_F_REC = 1, WAL_F_TORN = 2 };

static bool wal_parse_name(const char *name, uint64_t *seq, uint64_t *index);
static int wal_path(char *buf, const char *dir, uint64_t seq, uint64_t index, const char *suffix);
static int wal_list(const char *dir, struct wal_seg **out, size_t *n);
static int wal_lock(int fd);
static int wal_prealloc(int fd, uint64_t size);
static int wal_pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off);
static int wal_slurp(int fd, uint8_t **out, size_t *n);
static bool wal_torn(const uint8_t *p, size_t n, uint64_t fileoff);
static bool wal_canonical(const struct api_wal_record *rec, const uint8_t *d, size_t len);
static int wal_next(const uint8_t *p, size_t n, size_t *off, bool last, uint32_t *crc,
                    struct api_wal_record *rec, struct mem_arena *a);
static int wal_errf(struct wal_contents *c, int err, const char *path, size_t off);
static int wal_apply(struct wal_read *r, const struct api_wal_record *rec);
static int wal_read_file(struct wal_read *r, const uint8_t *p, size_t n, bool last,
                         const char *path);
static int wal_read_seg(struct wal_read *r, int fd, const char *path, bool last, uint8_t **buf,
                        size_t *len);
static int wal_keep(struct wal_read *r);
static void wal_read_free(struct wal_read *r);
static int wal_frame(struct mem_buf *out, uint32_t *crc, int64_t type, const uint8_t *data,
                     size_t len, bool has_data);
static int wal_frame_entry(struct wal *w, const struct api_raft_entry *e);
static int wal_frame_state(struct wal *w, const struct api_raft_hard_state *hs);
static bool wal_hs_empty(const struct api_raft_hard_state *hs);
static void wal_mark(const struct wal *w, struct wal_mark *m);
static void wal_restore(struct wal *w, const struct wal_mark *m);
static int wal_undo(struct wal *w, const struct wal_mark *m, int err);
static int wal_write(struct wal *w, const struct wal_mark *m);
static int wal_cut(struct wal *w);
static int wal_reserve_seg(struct wal *w);
static int wal_push_seg(struct wal *w, uint64_t seq, uint64_t index, int fd);
static int wal_set_meta(struct wal *w, const uint8_t *p, size_t n);
static void *wal_grow(void *p, size_t *cap, size_t n, size_t size);
static void wal_trim(struct wal *w);
static int wal_rmdir(const char *path);
static int wal_mkdirs(const char *path);
static int wal_fsync_parent(const char *path);
static struct wal *wal_new(const char *dir);

/* ---- errors ---- */

const char *wal_strerror(int err)
{
    switch (err) {
#define WAL_ERR_TEXT(name, code, text) \
    case code:                         \
        return text;
        WAL_ERR_TABLE(WAL_ERR_TEXT)
#undef WAL_ERR_TEXT
    default:
        return err < 0 && err > -1000 ? strerror(-err) : "wal: unknown error";
    }
}

/* Fills c->err with the error, the file and the offset (none if off is
 * SIZE_MAX); returns err.  A path too long for err is cut short. */
static int wal_errf(struct wal_contents *c, int err, const char *path, size_t off)
{
    if (off == SIZE_MAX)
        snprintf(c->err, sizeof c->err, "%s: %.400s", wal_strerror(err), path);
    else
        snprintf(c->err, sizeof c->err, "%s: %.400s at offset %zu", wal_strerror(err), path, off);
    return err;
}

/* ---- names, files and directories ---- */

/* etcd names segments "%016x-%016x.wal"; only that exact shape is ours. */
static bool wal_parse_name(const char *name, uint64_t *seq, uint64_t *index)
{
    if (strlen(name) != 37 || name[16] != '-' || strcmp(name + 33, ".wal") != 0)
        return false;
    uint64_t v[2] = {0, 0};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 16; i++) {
            char ch = name[k * 17 + i];
            int d = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                                             : -1;
            if (d < 0)
                return false;
            v[k] = v[k] << 4 | (uint64_t)d;
        }
    *seq = v[0];
    *index = v[1];
    return true;
}

/* buf must hold PATH_MAX bytes.  0 or -ENAMETOOLONG. */
static int wal_path(char *buf, const char *dir, uint64_t seq, uint64_t index, const char *suffix)
{
    int n = snprintf(buf, PATH_MAX, "%s/%016llx-%016llx.wal%s", dir, (unsigned long long)seq,
                     (unsigned long long)index, suffix);
    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* p (n elements of size bytes, room for *cap) with room for one more; NULL
 * on OOM, p then untouched. */
static void *wal_grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return p;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *v = mem_realloc(p, ncap * size);
    if (v)
        *cap = ncap;
    return v;
}

/* by name, which for etcd's fixed-width names is by sequence */
static int wal_cmp_seg(const void *x, const void *y)
{
    const struct wal_seg *a = x, *b = y;
    return a->seq != b->seq ? (a->seq > b->seq) - (a->seq < b->seq)
                            : (a->index > b->index) - (a->index < b->index);
}

/* The segments in dir sorted by name (= by sequence), fd = -1.  *out is heap
 * memory the caller frees (NULL when n == 0).  0, -ENOMEM or -errno. */
static int wal_list(const char *dir, struct wal_seg **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t seq, index;
        if (!wal_parse_name(de->d_name, &seq, &index))
            continue;
        struct wal_seg *v = wal_grow(*out, &cap, *n, sizeof *v);
        if (!v) {
            closedir(d);
            mem_free(*out);
            *out = NULL;
            *n = 0;
            return -ENOMEM;
        }
        *out = v;
        v[(*n)++] = (struct wal_seg){seq, index, -1};
    }
    closedir(d);
    if (*n)
        qsort(*out, *n, sizeof **out, wal_cmp_seg);
    return 0;
}

bool wal_exists(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        found = l >= 4 && strcmp(de->d_name + l - 4, ".wal") == 0;
    }
    closedir(d);
    return found;
}

/* An exclusive open-file-description lock on the whole file, as etcd takes
 * (pkg/fileutil/lock_linux.go), so etcd and we exclude each other, and two
 * opens within one process do too.  0, WAL_ELOCKED or -errno. */
static int wal_lock(int fd)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    return errno == EAGAIN || errno == EACCES ? WAL_ELOCKED : -errno;
}

/* Grows the file to size with allocated blocks, so appends within it need
 * no block allocation (and cannot fail for space).  0 or -errno. */
static int wal_prealloc(int fd, uint64_t size)
{
    if (size == 0 || size > (uint64_t)INT64_MAX)
        return 0;
    if (fallocate(fd, 0, 0, (off_t)size) == 0)
        return 0;
    if (errno != EOPNOTSUPP && errno != EINTR)
        return -errno;
    /* filesystems without fallocate: extend with a hole, as etcd falls back to */
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if ((uint64_t)st.st_size < size && ftruncate(fd, (off_t)size) < 0)
        return -errno;
    return 0;
}

/* 0 or -errno (EDQUOT reported as ENOSPC: both mean "free space and retry"). */
static int wal_pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return errno == EDQUOT ? -ENOSPC : -errno;
        }
        if (k == 0) /* no progress and no errno: treat as out of space */
            return -ENOSPC;
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

/* Reads the whole file into heap memory (*out owned by the caller, NULL when
 * empty).  0, -ENOMEM or -errno. */
static int wal_slurp(int fd, uint8_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (st.st_size <= 0)
        return 0;
    if ((uint64_t)st.st_size > SIZE_MAX / 2)
        return -EFBIG;
    size_t size = (size_t)st.st_size, got = 0;
    uint8_t *p = mem_alloc(size);
    if (!p)
        return -ENOMEM;
    while (got < size) {
        ssize_t k = pread(fd, p + got, size - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int err = -errno;
            mem_free(p);
            return err;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    *out = p;
    *n = got;
    return 0;
}

/* Removes path and the files in it (one level, like the temporary directory
 * etcd removes with RemoveAll; a subdirectory makes it fail).  0 if path is
 * gone, -errno otherwise. */
static int wal_rmdir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *de;
    int err = 0;
    while (!err && (de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
            unlinkat(dirfd(d), de->d_name, 0) < 0)
            err = -errno;
    closedir(d);
    if (!err && rmdir(path) < 0)
        err = -errno;
    return err;
}

/* mkdir -p with etcd's private mode 0700.  0 or -errno. */
static int wal_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return -errno;
        buf[i] = saved;
    }
    return 0;
}

/* fsync the directory holding path, so a rename into it is durable. */
static int wal_fsync_parent(const char *path)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof buf)
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    char *slash = strrchr(buf, '/');
    const char *parent = !slash ? "." : slash == buf ? "/" : (*slash = '\0', buf);
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int err = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return err;
}

/* ---- decoding ---- */

static uint64_t wal_get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* etcd's isTornEntry: a write torn by a crash leaves whole sectors of the
 * record unwritten, i.e. still zero from preallocation.  fileoff is where p
 * sits in the file; the record is split at sector boundaries. */
static bool wal_torn(const uint8_t *p, size_t n, uint64_t fileoff)
{
    while (n) {
        size_t chunk = WAL_SECTOR - (size_t)(fileoff % WAL_SECTOR);
        if (chunk > n)
            chunk = n;
        size_t i = 0;
        while (i < chunk && p[i] == 0)
            i++;
        if (i == chunk)
            return true;
        p += chunk;
        n -= chunk;
        fileoff += chunk;
    }
    return false;
}

/* Whether d[0..len) is exactly how etcd encodes *rec: type and crc as the
 * encoder writes them, then nothing but the data field. */
static bool wal_canonical(const struct api_wal_record *rec, const uint8_t *d, size_t len)
{
    struct api_wal_record head = {.type = rec->type, .crc = rec->crc};
    uint8_t b[32]; /* two tags and varints: at most 17 bytes */
    size_t n = pb_encoded_size(&api_wal_record_desc, &head);
    pb_encode_to(&api_wal_record_desc, &head, b, n);
    return n <= len && memcmp(b, d, n) == 0 && pb_encoded_size(&api_wal_record_desc, rec) == len;
}

/* Decodes the record framed at p[*off..n) into *rec (rec->data points into
 * p) and chains its CRC into *crc (crc records are checked by the caller).
 * Returns WAL_F_REC and advances *off; WAL_F_END at the end of the segment
 * (end of file or a zero length word: preallocated space); WAL_F_TORN when
 * the record is cut short by the end of the file, or when in the last
 * segment it fails to decode or to match its CRC while a sector of it is
 * zero; otherwise WAL_ETOOBIG, WAL_ECORRUPT or WAL_ECRC. */
static int wal_next(const uint8_t *p, size_t n, size_t *off, bool last, uint32_t *crc,
                    struct api_wal_record *rec, struct mem_arena *a)
{
    size_t o = *off;
    if (o == n)
        return WAL_F_END;
    if (n - o < 8)
        return WAL_F_TORN;
    uint64_t word = wal_get_le64(p + o);
    if (word == 0) {
        /* Preallocated space, or a sector a torn write never reached (etcd
         * ignores what follows; see wal_open).  Either way the rest of
         * that sector is zero: a length word zeroed inside written data is
         * corruption, which etcd would take as the end of the log. */
        size_t sector_end = (o / WAL_SECTOR + 1) * WAL_SECTOR;
        for (size_t i = o + 8; i < n && i < sector_end; i++)
            if (p[i])
                return WAL_ECORRUPT;
        return WAL_F_END;
    }
    uint64_t len = word & 0x00ffffffffffffffull;
    unsigned top = (unsigned)(word >> 56);
    uint64_t pad = top & 0x80 ? top & 7 : 0;
    if (len >= WAL_MAX_RECORD - pad)
        return WAL_ETOOBIG;
    if (len + pad > n - o - 8)
        return WAL_F_TORN;
    const uint8_t *d = p + o + 8;

    int err = 0;
    /* etcd writes exactly these two forms of length word (the first also
     * for unpadded records of old versions), zero padding and canonical
     * protobuf; its reader ignores the other top bits, the padding and
     * unknown fields, so a flipped bit there would go unnoticed.  Checking
     * costs nothing and rejects no file etcd writes. */
    uint64_t want = (8 - len % 8) % 8;
    if (top != 0 && (want == 0 || top != (0x80 | want)))
        err = WAL_ECORRUPT;
    for (uint64_t i = 0; !err && i < pad; i++)
        if (d[len + i])
            err = WAL_ECORRUPT;
    if (!err && (pb_decode(&api_wal_record_desc, d, (size_t)len, rec, a) != PB_OK ||
                 !wal_canonical(rec, d, (size_t)len)))
        err = WAL_ECORRUPT;
    if (!err && rec->type != WAL_REC_CRC) {
        uint32_t c = crc32c_update(*crc, rec->data.p, rec->data.len);
        if (c != rec->crc)
            err = WAL_ECRC;
        else
            *crc = c;
    }
    if (err)
        return last && wal_torn(d, (size_t)(len + pad), o + 8) ? WAL_F_TORN : err;
    *off = o + 8 + (size_t)(len + pad);
    return WAL_F_REC;
}

/* What ReadAll (or ValidSnapshotEntries when r->scan) does with one record.
 * 0, -ENOMEM, or a WAL_E* code for the caller to locate. */
static int wal_apply(struct wal_read *r, const struct api_wal_record *rec)
{
    struct wal_contents *c = r->c;
    switch (rec->type) {
    case WAL_REC_ENTRY: {
        if (r->scan)
            return 0;
        struct api_raft_entry e;
        if (pb_decode(&api_raft_entry_desc, rec->data.p, rec->data.len, &e, r->a) != PB_OK ||
            (uint32_t)e.Type > API_ENTRY_CONF_CHANGE_V2)
            return WAL_ECORRUPT;
        r->enti = e.Index;
        if (e.Index <= r->start_index)
            return 0;
        /* a later entry at a lower index: raft overwrote the tail */
        uint64_t up = e.Index - r->start_index - 1;
        if (up > r->n_ents)
            return WAL_EGAP;
        r->n_ents = (size_t)up;
        struct api_raft_entry *v = wal_grow(r->ents, &r->cap_ents, r->n_ents, sizeof *v);
        if (!v)
            return -ENOMEM;
        r->ents = v;
        if (e.Data.p && !(e.Data.p = mem_arena_dup(r->a, e.Data.p, e.Data.len)))
            return -ENOMEM;
        r->ents[r->n_ents++] = e;
        return 0;
    }
    case WAL_REC_STATE:
        return pb_decode(&api_raft_hard_state_desc, rec->data.p, rec->data.len, &c->hs, r->a) ==
                       PB_OK
                   ? 0
                   : WAL_ECORRUPT;
    case WAL_REC_METADATA:
        if (r->scan)
            return 0;
        if (r->have_meta) {
            if (rec->data.len != c->metadata.len ||
                (rec->data.len && memcmp(rec->data.p, c->metadata.p, rec->data.len) != 0))
                return WAL_EMETADATA;
            return 0;
        }
        r->have_meta = true;
        c->metadata.len = rec->data.len;
        c->metadata.p = NULL;
        if (rec->data.p && !(c->metadata.p = mem_arena_dup(r->a, rec->data.p, rec->data.len)))
            return -ENOMEM;
        return 0;
    case WAL_REC_CRC:
        /* a segment restates the running CRC; 0 means "first segment read" */
        if (r->crc != 0 && rec->crc != r->crc)
            return WAL_ECRC;
        r->crc = rec->crc;
        return 0;
    case WAL_REC_SNAPSHOT: {
        struct api_wal_snapshot s;
        if (pb_decode(&api_wal_snapshot_desc, rec->data.p, rec->data.len, &s, r->a) != PB_OK)
            return WAL_ECORRUPT;
        if (!r->scan && s.index == r->start_index) {
            if (s.term != r->start_term)
                return WAL_ESNAP_MISMATCH;
            r->match = true;
        }
        struct api_wal_snapshot *v = wal_grow(r->snaps, &r->cap_snaps, r->n_snaps, sizeof *v);
        if (!v)
            return -ENOMEM;
        r->snaps = v;
        v[r->n_snaps++] = s;
        return 0;
    }
    default:
        return r->scan ? 0 : WAL_EBAD_TYPE;
    }
}

/* Decodes and applies every record of one segment held in p[0..n).  Sets
 * r->end past the last good record and r->torn if a torn record follows it.
 * 0 or an error with c->err filled in.
 *
 * etcd starts every segment with a crc and a metadata record and writes
 * neither anywhere else.  The record type lies outside the CRC, so this is
 * what notices a flipped bit turning, say, metadata into a snapshot record
 * whose payload still decodes; no file etcd writes breaks the rule. */
static int wal_read_file(struct wal_read *r, const uint8_t *p, size_t n, bool last,
                         const char *path)
{
    r->end = 0;
    r->torn = false;
    for (size_t nrec = 0;; nrec++) {
        struct api_wal_record rec;
        size_t at = r->end;
        int rc = wal_next(p, n, &r->end, last, &r->crc, &rec, r->a);
        if (rc == WAL_F_TORN) {
            /* etcd repairs only the last segment; ValidSnapshotEntries just
             * stops reading at an unexpected EOF anywhere */
            if (!last && !r->scan)
                return wal_errf(r->c, WAL_EUNEXPECTED_EOF, path, at);
            r->torn = true;
        }
        if (rc == WAL_F_END || rc == WAL_F_TORN)
            return nrec < 2 ? wal_errf(r->c, WAL_ECORRUPT, path, at) : 0;
        if (rc < 0)
            return wal_errf(r->c, rc, path, at);
        bool head = rec.type == WAL_REC_CRC || rec.type == WAL_REC_METADATA;
        if (nrec < 2 ? rec.type != (nrec == 0 ? WAL_REC_CRC : WAL_REC_METADATA) : head)
            return wal_errf(r->c, WAL_ECORRUPT, path, at);
        rc = wal_apply(r, &rec);
        if (rc < 0)
            return wal_errf(r->c, rc, path, at);
    }
}

/* Reads segment fd (named path) into *buf (heap, the caller frees it) and
 * decodes it.  0 or an error with c->err filled in. */
static int wal_read_seg(struct wal_read *r, int fd, const char *path, bool last, uint8_t **buf,
                        size_t *len)
{
    int err = wal_slurp(fd, buf, len);
    return err ? wal_errf(r->c, err, path, SIZE_MAX) : wal_read_file(r, *buf, *len, last, path);
}

/* Moves the entries and snapshots read into the arena. */
static int wal_keep(struct wal_read *r)
{
    struct wal_contents *c = r->c;
    if (r->n_ents) {
        c->ents = mem_arena_dup(r->a, r->ents, r->n_ents * sizeof *r->ents);
        if (!c->ents)
            return -ENOMEM;
        c->n_ents = r->n_ents;
    }
    if (r->n_snaps) {
        c->snaps = mem_arena_dup(r->a, r->snaps, r->n_snaps * sizeof *r->snaps);
        if (!c->snaps)
            return -ENOMEM;
        c->n_snaps = r->n_snaps;
    }
    return 0;
}

static void wal_read_free(struct wal_read *r)
{
    mem_free(r->ents);
    mem_free(r->snaps);
}

/* ---- opening ---- */

static struct wal *wal_new(const char *dir)
{
    struct wal *w = mem_calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->dirfd = -1;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') /* filepath.Clean, as far as ".tmp" cares */
        n--;
    w->dir = mem_alloc(n + 1);
    if (!w->dir) {
        mem_free(w);
        return NULL;
    }
    memcpy(w->dir, dir, n);
    w->dir[n] = '\0';
    return w;
}

/* Room for one more segment.  0 or -ENOMEM. */
static int wal_reserve_seg(struct wal *w)
{
    struct wal_seg *v = wal_grow(w->segs, &w->cap_segs, w->n_segs, sizeof *v);
    if (!v)
        return -ENOMEM;
    w->segs = v;
    return 0;
}

/* w's copy of the metadata repeated in each segment; p NULL = absent. */
static int wal_set_meta(struct wal *w, const uint8_t *p, size_t n)
{
    if (!p)
        return 0;
    w->meta = mem_alloc(n ? n : 1);
    if (!w->meta)
        return -ENOMEM;
    memcpy(w->meta, p, n);
    w->meta_len = n;
    return 0;
}

static int wal_push_seg(struct wal *w, uint64_t seq, uint64_t index, int fd)
{
    int err = wal_reserve_seg(w);
    if (!err)
        w->segs[w->n_segs++] = (struct wal_seg){seq, index, fd};
    return err;
}

int wal_open(const char *dir, uint64_t index, uint64_t term, struct mem_arena *a,
             struct wal **out, struct wal_contents *c)
{
    memset(c, 0, sizeof *c);
    *out = NULL;
    struct wal_read r = {.start_index = index, .start_term = term, .a = a, .c = c};
    struct wal_seg *names = NULL;
    uint8_t *buf = NULL;
    size_t n_names, first, len = 0;
    char path[PATH_MAX];
    struct wal *w = wal_new(dir);
    if (!w)
        return -ENOMEM;
    int err = wal_list(w->dir, &names, &n_names);
    if (err)
        goto fail_dir;
    /* the newest segment starting at or before index, and all after it,
     * numbered without a gap */
    for (first = n_names; first > 0 && names[first - 1].index > index; first--)
        ;
    err = WAL_EFILE_NOT_FOUND;
    if (first-- == 0)
        goto fail_dir;
    for (size_t i = first; i < n_names; i++) {
        err = wal_path(path, w->dir, names[i].seq, names[i].index, "");
        if (!err && i > first && names[i].seq != names[i - 1].seq + 1)
            err = WAL_EFILE_NOT_FOUND;
        int fd = err ? -1 : open(path, O_RDWR | O_CLOEXEC);
        if (!err && fd < 0)
            err = -errno;
        if (!err && (err = wal_push_seg(w, names[i].seq, names[i].index, fd)))
            close(fd);
        if (err || (err = wal_lock(fd)))
            goto fail_path;
    }
    w->dirfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dirfd < 0) {
        err = -errno;
        goto fail_dir;
    }
    for (size_t i = 0; i < w->n_segs; i++) {
        mem_free(buf); /* the last segment's stays for the tail repair */
        wal_path(path, w->dir, w->segs[i].seq, w->segs[i].index, "");
        err = wal_read_seg(&r, w->segs[i].fd, path, i + 1 == w->n_segs, &buf, &len);
        if (err)
            goto fail;
    }

    /* The tail: keep a copy of a torn one (etcd's Repair), then cut it and
     * zero everything after the last record, as etcd's ReadAll does (junk
     * behind a zero length word would otherwise meet our next appends). */
    struct wal_seg *t = &w->segs[w->n_segs - 1];
    c->torn = r.torn;
    c->tail_off = r.end;
    if (r.torn) {
        err = wal_path(path, w->dir, t->seq, t->index, ".broken");
        int bfd = err ? -1 : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (!err && bfd < 0)
            err = -errno;
        if (!err && !(err = wal_pwrite_all(bfd, buf, len, 0)) && fdatasync(bfd) < 0)
            err = -errno;
        if (bfd >= 0)
            close(bfd);
        if (err)
            goto fail_path;
        wal_path(path, w->dir, t->seq, t->index, "");
    }
    size_t nz = r.end;
    while (nz < len && buf[nz] == 0)
        nz++;
    if (nz < len) {
        err = ftruncate(t->fd, (off_t)r.end) < 0 || fdatasync(t->fd) < 0 ? -errno : 0;
        if (err || (err = wal_prealloc(t->fd, len)))
            goto fail_path;
    }
    mem_free(buf);
    buf = NULL;

    if (!r.match) {
        err = WAL_ESNAP_NOT_FOUND;
        snprintf(c->err, sizeof c->err, "%s: no snapshot record {index %llu, term %llu} in %s",
                 wal_strerror(err), (unsigned long long)index, (unsigned long long)term,
                 w->dir);
        goto fail;
    }
    if ((err = wal_keep(&r)) || (err = wal_set_meta(w, c->metadata.p, c->metadata.len)))
        goto fail;
    w->off = r.end;
    w->crc = r.crc;
    w->enti = r.enti;
    /* etcd leaves its copy empty until the next save; we carry the last one
     * into the next segment's header, so that segment alone still has it */
    w->state = c->hs;
    wal_read_free(&r);
    mem_free(names);
    *out = w;
    return 0;

fail_dir:
    snprintf(c->err, sizeof c->err, "%s: %.400s (index %llu)", wal_strerror(err), w->dir,
             (unsigned long long)index);
    goto fail;
fail_path:
    wal_errf(c, err, path, SIZE_MAX);
fail:
    mem_free(buf);
    wal_read_free(&r);
    mem_free(names);
    w->failed = err; /* no sync on the way out */
    wal_close(w);
    return err;
}

int wal_valid_snapshots(const char *dir, struct mem_arena *a, struct wal_contents *c)
{
    memset(c, 0, sizeof *c);
    struct wal_read r = {.scan = true, .a = a, .c = c};
    struct wal_seg *names = NULL;
    size_t n_names, len;
    char path[PATH_MAX];
    uint8_t *buf = NULL;

    int err = wal_list(dir, &names, &n_names);
    if (!err && n_names == 0)
        err = WAL_EFILE_NOT_FOUND;
    if (err)
        wal_errf(c, err, dir, SIZE_MAX);
    for (size_t i = 0; i < n_names && !r.torn && !err; i++) {
        err = wal_path(path, dir, names[i].seq, names[i].index, "");
        int fd = err ? -1 : open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            wal_errf(c, err = err ? err : -errno, path, SIZE_MAX);
            break;
        }
        err = wal_read_seg(&r, fd, path, i + 1 == n_names, &buf, &len);
        close(fd);
        mem_free(buf);
    }
    if (!err) {
        /* only snapshots a committed hard state vouches for */
        size_t k = 0;
        for (size_t i = 0; i < r.n_snaps; i++)
            if (r.snaps[i].index <= c->hs.commit)
                r.snaps[k++] = r.snaps[i];
        r.n_snaps = k;
        err = wal_keep(&r);
    }
    c->torn = false;
    wal_read_free(&r);
    mem_free(names);
    return err;
}

/* ---- encoding ---- */

/* Appends one framed record to out: the length word, the walpb.Record whose
 * crc chains data onto *crc, zero padding to 8 bytes.  has_data false
 * leaves the data field out (a nil []byte in etcd).  0, -ENOMEM or
 * WAL_ETOOBIG; out and *crc are unchanged on failure but for spare capacity. */
static int wal_frame(struct mem_buf *out, uint32_t *crc, int64_t type, const uint8_t *data,
                     size_t len, bool has_data)
{
    struct api_wal_record rec = {.type = type};
    if (has_data) {
        rec.data.p = data ? data : (const uint8_t *)"";
        rec.data.len = len;
    }
    rec.crc = crc32c_update(*crc, data, len);
    size_t size = pb_encoded_size(&api_wal_record_desc, &rec);
    size_t pad = (8 - size % 8) % 8;
    if (size >= WAL_MAX_RECORD - pad) /* etcd could not read it back */
        return WAL_ETOOBIG;
    if (mem_buf_reserve(out, 8 + size + pad) < 0)
        return -ENOMEM;
    uint64_t word = size | (pad ? (uint64_t)(0x80 | pad) << 56 : 0);
    uint8_t *p = out->data + out->len;
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(word >> (8 * i));
    pb_encode_to(&api_wal_record_desc, &rec, p + 8, size);
    memset(p + 8 + size, 0, pad);
    out->len += 8 + size + pad;
    *crc = rec.crc;
    return 0;
}

/* The entry is encoded into w->scratch first: its CRC must be known before
 * the record around it can be written.  scratch is reused, so a batch costs
 * no allocation per entry. */
static int wal_frame_entry(struct wal *w, const struct api_raft_entry *e)
{
    size_t size = pb_encoded_size(&api_raft_entry_desc, e);
    if (size >= WAL_MAX_RECORD)
        return WAL_ETOOBIG;
    w->scratch.len = 0;
    if (mem_buf_reserve(&w->scratch, size) < 0)
        return -ENOMEM;
    pb_encode_to(&api_raft_entry_desc, e, w->scratch.data, size);
    return wal_frame(&w->batch, &w->crc, WAL_REC_ENTRY, w->scratch.data, size, true);
}

static int wal_frame_state(struct wal *w, const struct api_raft_hard_state *hs)
{
    uint8_t tmp[64]; /* three varints and tags: at most 33 bytes */
    size_t size = pb_encoded_size(&api_raft_hard_state_desc, hs);
    pb_encode_to(&api_raft_hard_state_desc, hs, tmp, size);
    return wal_frame(&w->batch, &w->crc, WAL_REC_STATE, tmp, size, true);
}

static bool wal_hs_empty(const struct api_raft_hard_state *hs)
{
    return !hs || (hs->term == 0 && hs->vote == 0 && hs->commit == 0);
}

/* ---- appending ---- */

static void wal_mark(const struct wal *w, struct wal_mark *m)
{
    *m = (struct wal_mark){w->off, w->crc, w->enti, w->state};
}

static void wal_restore(struct wal *w, const struct wal_mark *m)
{
    w->off = m->off;
    w->crc = m->crc;
    w->enti = m->enti;
    w->state = m->state;
}

/* After a failed write: for running out of space (or memory), cut the tail
 * back to where this call started and make that durable, so no partial
 * record stays and a later call starts from a clean end; anything else, or
 * failing to do that, fails the WAL.  Returns err (or the newer error). */
static int wal_undo(struct wal *w, const struct wal_mark *m, int err)
{
    if (!w->failed && (err == -ENOSPC || err == -ENOMEM)) {
        int fd = w->segs[w->n_segs - 1].fd;
        if (ftruncate(fd, (off_t)m->off) == 0 && fdatasync(fd) == 0) {
            wal_restore(w, m);
            return err;
        }
        err = -errno;
    }
    if (!w->failed)
        w->failed = err;
    return err;
}

/* pwrite of w->batch at the tail's end.  0 or an error (see wal_undo). */
static int wal_write(struct wal *w, const struct wal_mark *m)
{
    int err = wal_pwrite_all(w->segs[w->n_segs - 1].fd, w->batch.data, w->batch.len, w->off);
    if (err)
        return wal_undo(w, m, err);
    w->off += w->batch.len;
    return 0;
}

/* Starts segment seq+1 named after the next entry index, as etcd's cut: the
 * old tail is truncated and synced; the new one is preallocated and written
 * as 0.tmp (crc, metadata, hard state), synced, then renamed into place and
 * the directory synced, so a segment exists under its name only complete.
 * Errors before the rename leave no new file; after it they fail the WAL. */
static int wal_cut(struct wal *w)
{
    struct wal_seg *t = &w->segs[w->n_segs - 1];
    char tmp[PATH_MAX], path[PATH_MAX];
    uint64_t seq = t->seq + 1, index = w->enti + 1;
    int err, fd = -1;

    if (ftruncate(t->fd, (off_t)w->off) < 0 || fdatasync(t->fd) < 0) {
        w->failed = -errno;
        return w->failed;
    }
    err = wal_path(path, w->dir, seq, index, "");
    if (err)
        return err;
    if (snprintf(tmp, sizeof tmp, "%s/0.tmp", w->dir) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    /* room for the new segment now, so nothing can fail after the rename
     * but the directory sync */
    err = wal_reserve_seg(w);
    if (err)
        return err;
    fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == EDQUOT ? -ENOSPC : -errno;
    err = wal_lock(fd);
    if (!err)
        err = wal_prealloc(fd, wal_segment_bytes);
    if (err == -EDQUOT)
        err = -ENOSPC;
    w->batch.len = 0;
    if (!err)
        err = wal_frame(&w->batch, &w->crc, WAL_REC_CRC, NULL, 0, false);
    if (!err)
        err = wal_frame(&w->batch, &w->crc, WAL_REC_METADATA, w->meta, w->meta_len,
                        w->meta != NULL);
    if (!err && !wal_hs_empty(&w->state))
        err = wal_frame_state(w, &w->state);
    if (!err)
        err = wal_pwrite_all(fd, w->batch.data, w->batch.len, 0);
    if (!err && fdatasync(fd) < 0)
        err = -errno;
    if (!err && rename(tmp, path) < 0)
        err = errno == EDQUOT ? -ENOSPC : -errno;
    if (err) {
        close(fd);
        unlink(tmp);
        return err;
    }
    err = wal_push_seg(w, seq, index, fd); /* cannot fail: room reserved above */
    w->off = w->batch.len;
    if (!err && fsync(w->dirfd) < 0)
        err = -errno;
    if (err)
        w->failed = err;
    return err;
}

/* Frees batch buffers that one large call grew past WAL_BUF_KEEP. */
static void wal_trim(struct wal *w)
{
    if (w->batch.cap > WAL_BUF_KEEP)
        mem_buf_free(&w->batch);
    if (w->scratch.cap > WAL_BUF_KEEP)
        mem_buf_free(&w->scratch);
}

int wal_save(struct wal *w, const struct api_raft_hard_state *hs,
             const struct api_raft_entry *ents, size_t n)
{
    if (w->failed)
        return WAL_EFAILED;
    bool has_hs = !wal_hs_empty(hs);
    if (!has_hs && n == 0)
        return 0;
    struct wal_mark m;
    wal_mark(w, &m);
    int err = 0;
    w->batch.len = 0;
    for (size_t i = 0; i < n && !err; i++) {
        err = wal_frame_entry(w, &ents[i]);
        w->enti = ents[i].Index;
    }
    if (!err && has_hs) {
        err = wal_frame_state(w, hs);
        w->state = *hs;
    }
    if (err) { /* nothing written yet */
        wal_restore(w, &m);
        wal_trim(w);
        return err;
    }
    err = wal_write(w, &m);
    if (!err && w->off >= wal_segment_bytes) {
        err = wal_cut(w);
        if (err)
            err = wal_undo(w, &m, err);
    }
    wal_trim(w);
    return err;
}

int wal_sync(struct wal *w)
{
    if (w->failed)
        return WAL_EFAILED;
    if (fdatasync(w->segs[w->n_segs - 1].fd) < 0)
        w->failed = -errno;
    return w->failed;
}

int wal_save_snapshot(struct wal *w, uint64_t index, uint64_t term)
{
    if (w->failed)
        return WAL_EFAILED;
    struct api_wal_snapshot s = {.index = index, .term = term};
    uint8_t tmp[32];
    size_t size = pb_encoded_size(&api_wal_snapshot_desc, &s);
    pb_encode_to(&api_wal_snapshot_desc, &s, tmp, size);
    struct wal_mark m;
    wal_mark(w, &m);
    w->batch.len = 0;
    int err = wal_frame(&w->batch, &w->crc, WAL_REC_SNAPSHOT, tmp, size, true);
    if (err)
        return err;
    err = wal_write(w, &m);
    if (err)
        return err;
    if (w->enti < index)
        w->enti = index;
    return wal_sync(w);
}

/* ---- creating ---- */

int wal_create(const char *dir, const uint8_t *meta, size_t meta_len, struct wal **out)
{
    char tmpdir[PATH_MAX], path[PATH_MAX];
    int err, fd;
    *out = NULL;
    if (wal_exists(dir))
        return -EEXIST;
    struct wal *w = wal_new(dir);
    if (!w)
        return -ENOMEM;
    err = -ENAMETOOLONG;
    if (snprintf(tmpdir, sizeof tmpdir, "%s.tmp", w->dir) >= (int)sizeof tmpdir)
        goto fail;
    if ((err = wal_rmdir(tmpdir)) || (err = wal_mkdirs(tmpdir)) ||
        (err = wal_path(path, tmpdir, 0, 0, "")))
        goto fail;
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        err = -errno;
        goto fail;
    }
    err = wal_push_seg(w, 0, 0, fd);
    if (err) {
        close(fd);
        goto fail;
    }
    if ((err = wal_lock(fd)) || (err = wal_prealloc(fd, wal_segment_bytes)))
        goto fail;
    err = wal_set_meta(w, meta, meta_len);
    if (!err)
        err = wal_frame(&w->batch, &w->crc, WAL_REC_CRC, NULL, 0, false);
    if (!err)
        err = wal_frame(&w->batch, &w->crc, WAL_REC_METADATA, w->meta, w->meta_len,
                        w->meta != NULL);
    if (err)
        goto fail;
    w->dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dirfd < 0) {
        err = -errno;
        goto fail;
    }
    struct wal_mark m;
    wal_mark(w, &m);
    err = wal_write(w, &m);
    if (!err)
        err = wal_save_snapshot(w, 0, 0);
    if (err)
        goto fail;
    /* the directory appears complete or not at all */
    if ((err = wal_rmdir(w->dir)))
        goto fail;
    if (rename(tmpdir, w->dir) < 0) {
        err = -errno;
        goto fail;
    }
    if ((err = wal_fsync_parent(w->dir)))
        goto fail;
    *out = w;
    return 0;
fail:
    w->failed = err;
    wal_close(w);
    return err;
}

/* ---- releasing, purging, closing ---- */

void wal_release_to(struct wal *w, uint64_t index)
{
    /* keep the newest segment starting before index: it may hold index */
    assert(w->n_segs > 0);
    size_t drop = w->n_segs - 1;
    for (size_t i = 0; i < w->n_segs; i++)
        if (w->segs[i].index >= index) {
            drop = i ? i - 1 : 0;
            break;
        }
    for (size_t i = 0; i < drop; i++)
        close(w->segs[i].fd);
    memmove(w->segs, w->segs + drop, (w->n_segs - drop) * sizeof *w->segs);
    w->n_segs -= drop;
}

int wal_purge(struct wal *w, unsigned max_files)
{
    if (max_files == 0)
        return 0;
    struct wal_seg *names;
    size_t n;
    char path[PATH_MAX];
    int err = wal_list(w->dir, &names, &n);
    if (err)
        return err;
    int removed = 0;
    /* oldest first, and never one we still hold (etcd skips locked files) */
    for (size_t i = 0; n - (size_t)removed > max_files && names[i].seq < w->segs[0].seq; i++) {
        err = wal_path(path, w->dir, names[i].seq, names[i].index, "");
        if (!err && unlink(path) < 0)
            err = -errno;
        if (err)
            break;
        removed++;
    }
    mem_free(names);
    return err ? err : removed;
}

int wal_close(struct wal *w)
{
    if (!w)
        return 0;
    int err = 0;
    if (!w->failed && w->n_segs && fdatasync(w->segs[w->n_segs - 1].fd) < 0)
        err = -errno;
    for (size_t i = 0; i < w->n_segs; i++)
        if (w->segs[i].fd >= 0)
            close(w->segs[i].fd);
    if (w->dirfd >= 0)
        close(w->dirfd);
    mem_buf_free(&w->batch);
    mem_buf_free(&w->scratch);
    mem_free(w->meta);
    mem_free(w->segs);
    mem_free(w->dir);
    mem_free(w);
    return err;
}
