/* snap.c - etcd's raft snapshot files and their v2 store payload (snap.h). */
#include "snap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "json.h"

#define SNAP_SUFFIX ".snap"

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int snap_save(const char *dir, const struct api_raft_snapshot *s, char *err, size_t cap)
{
    struct mem_buf raw = {0}, file = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/%016llx-%016llx" SNAP_SUFFIX, dir, (unsigned long long)s->metadata->term,
             (unsigned long long)s->metadata->index);
    if (pb_encode(&api_raft_snapshot_desc, s, &raw) < 0) {
        snprintf(err, cap, "out of memory encoding the snapshot");
        return -1;
    }
    struct api_snap_snapshot ss = {.crc = crc32c_update(0, raw.data, raw.len), .data = {raw.data, raw.len}};
    int rc = pb_encode(&api_snap_snapshot_desc, &ss, &file);
    mem_buf_free(&raw);
    if (rc < 0) {
        snprintf(err, cap, "out of memory encoding the snapshot");
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0 || write_all(fd, file.data, file.len) < 0 || fsync(fd) < 0) {
        snprintf(err, cap, "write %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        mem_buf_free(&file);
        return -1;
    }
    mem_buf_free(&file);
    close(fd);
    if (fsync_dir(dir) < 0) {
        snprintf(err, cap, "fsync %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The .snap file names in dir, sorted oldest first, from a; -errno. */
static int list_snaps(const char *dir, struct mem_arena *a, char ***names, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    size_t cap = 0;
    *names = NULL;
    *n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len <= strlen(SNAP_SUFFIX) || strcmp(de->d_name + len - strlen(SNAP_SUFFIX), SNAP_SUFFIX))
            continue;
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **v = mem_arena_alloc(a, ncap * sizeof *v);
            if (!v)
                goto nomem;
            if (*n)
                memcpy(v, *names, *n * sizeof *v);
            *names = v;
            cap = ncap;
        }
        char *s = mem_arena_alloc(a, len + 1);
        if (!s)
            goto nomem;
        memcpy(s, de->d_name, len + 1);
        (*names)[(*n)++] = s;
    }
    closedir(d);
    if (*n)
        qsort(*names, *n, sizeof **names, cmp_names);
    return 0;
nomem:
    closedir(d);
    return -ENOMEM;
}

/* Reads and checks one file: 0 with *out decoded into a, -1 if it is not a
 * sound snapshot, -ENOMEM. */
static int read_snap(const char *path, struct mem_arena *a, struct api_raft_snapshot *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    uint8_t *buf = mem_arena_alloc(a, (size_t)st.st_size);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    struct api_snap_snapshot ss;
    if (got != (size_t)st.st_size || pb_decode(&api_snap_snapshot_desc, buf, got, &ss, a) < 0 ||
        !ss.data.len || !ss.crc || crc32c_update(0, ss.data.p, ss.data.len) != ss.crc)
        return -1;
    if (pb_decode(&api_raft_snapshot_desc, ss.data.p, ss.data.len, out, a) < 0 || !out->metadata)
        return -1;
    return 0;
}

int snap_load(const char *dir, const struct api_wal_snapshot *walsnaps, size_t n, struct mem_arena *a,
              struct api_raft_snapshot *out, char *err, size_t cap)
{
    char **names;
    size_t count;
    int rc = list_snaps(dir, a, &names, &count);
    if (rc < 0) {
        snprintf(err, cap, "open %s: %s", dir, strerror(-rc));
        return -1;
    }
    for (size_t i = count; i-- > 0;) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        rc = read_snap(path, a, out);
        if (rc == -ENOMEM) {
            snprintf(err, cap, "out of memory reading %s", path);
            return -1;
        }
        if (rc < 0) {
            char broken[4200];
            snprintf(broken, sizeof broken, "%s.broken", path);
            (void)rename(path, broken); /* not fatal: the next older one is tried */
            continue;
        }
        for (size_t j = n; j-- > 0;)
            if (walsnaps[j].index == out->metadata->index && walsnaps[j].term == out->metadata->term)
                return 1;
    }
    return 0;
}

int snap_purge(const char *dir, unsigned max)
{
    if (max == 0)
        return 0;
    struct mem_arena a;
    mem_arena_init(&a, 0);
    char **names;
    size_t count;
    int rc = list_snaps(dir, &a, &names, &count);
    int deleted = 0;
    for (size_t i = 0; rc == 0 && count - i > max; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (unlink(path) < 0) {
            rc = -errno;
            break;
        }
        deleted++;
    }
    mem_arena_free(&a);
    return rc < 0 ? rc : deleted;
}

/* ---- the v2 store ----
 * A node as Go's encoding/json writes etcd's v2store.node; the payload is
 * itself JSON text, escaped into a string. */

static int put_node_head(struct mem_buf *b, const char *path, uint64_t idx)
{
    if (mem_buf_printf(b, "{\"Path\":") < 0 || json_put_str(b, path, strlen(path)) < 0)
        return -1;
    return mem_buf_printf(b,
                          ",\"CreatedIndex\":%llu,\"ModifiedIndex\":%llu,"
                          "\"ExpireTime\":\"0001-01-01T00:00:00Z\",\"Value\":",
                          (unsigned long long)idx, (unsigned long long)idx);
}

static int put_leaf(struct mem_buf *b, const char *name, const char *path, uint64_t idx,
                    const uint8_t *val, size_t len)
{
    if (json_put_str(b, name, strlen(name)) < 0 || mem_buf_putc(b, ':') < 0 || put_node_head(b, path, idx) < 0 ||
        json_put_str(b, (const char *)val, len) < 0)
        return -1;
    return mem_buf_printf(b, ",\"Children\":null}");
}

/* Opens a directory node; the caller adds children and closes with "}}". */
static int open_dir(struct mem_buf *b, const char *name, const char *path, uint64_t idx)
{
    if (name && (json_put_str(b, name, strlen(name)) < 0 || mem_buf_putc(b, ':') < 0))
        return -1;
    if (put_node_head(b, path, idx) < 0)
        return -1;
    return mem_buf_printf(b, "\"\",\"Children\":{");
}

int snap_v2_store(const struct member *ms, size_t n, const uint64_t *removed, size_t n_removed,
                  const char *cluster_version, struct mem_buf *out)
{
    /* v2 indexes only order v2 events: number the records as etcd would
     * have written them, members first */
    uint64_t idx = 0;
    struct mem_buf v = {0};
    char path[128], name[32];
    if (mem_buf_printf(out, "{\"Root\":") < 0 || open_dir(out, NULL, "/", 0) < 0 || open_dir(out, "0", "/0", 0) < 0 ||
        open_dir(out, "members", "/0/members", n ? 1 : 0) < 0)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%016llx", (unsigned long long)ms[i].id);
        snprintf(path, sizeof path, "/0/members/%s", name);
        uint64_t created = ++idx;
        if ((i && mem_buf_putc(out, ',') < 0) || open_dir(out, name, path, created) < 0)
            goto nomem;
        v.len = 0;
        snprintf(path, sizeof path, "/0/members/%s/raftAttributes", name);
        if (member_raft_attrs_json(&ms[i], &v) < 0 || put_leaf(out, "raftAttributes", path, created, v.data, v.len) < 0)
            goto nomem;
        if (ms[i].name[0] || ms[i].n_client_urls) {
            v.len = 0;
            snprintf(path, sizeof path, "/0/members/%s/attributes", name);
            if (member_attrs_json(&ms[i], &v) < 0 || mem_buf_putc(out, ',') < 0 ||
                put_leaf(out, "attributes", path, ++idx, v.data, v.len) < 0)
                goto nomem;
        }
        if (mem_buf_printf(out, "}}") < 0)
            goto nomem;
    }
    if (mem_buf_printf(out, "}}") < 0)
        goto nomem;
    if (n_removed) {
        if (mem_buf_putc(out, ',') < 0 || open_dir(out, "removed_members", "/0/removed_members", idx + 1) < 0)
            goto nomem;
        for (size_t i = 0; i < n_removed; i++) {
            snprintf(name, sizeof name, "%016llx", (unsigned long long)removed[i]);
            snprintf(path, sizeof path, "/0/removed_members/%s", name);
            if ((i && mem_buf_putc(out, ',') < 0) ||
                put_leaf(out, name, path, ++idx, (const uint8_t *)"removed", 7) < 0)
                goto nomem;
        }
        if (mem_buf_printf(out, "}}") < 0)
            goto nomem;
    }
    if (cluster_version[0] && (mem_buf_putc(out, ',') < 0 ||
                               put_leaf(out, "version", "/0/version", ++idx, (const uint8_t *)cluster_version,
                                        strlen(cluster_version)) < 0))
        goto nomem;
    if (mem_buf_printf(out, "}},") < 0 || open_dir(out, "1", "/1", 0) < 0 ||
        mem_buf_printf(out, "}}}},\"CurrentIndex\":%llu}", (unsigned long long)idx) < 0)
        goto nomem;
    mem_buf_free(&v);
    return 0;
nomem:
    mem_buf_free(&v);
    return -1;
}

/* A node's Value; NULL if the node or its value is missing. */
static const struct json *node_value(const struct json *children, const char *name)
{
    const struct json *v = json_get(json_get(children, name), "Value");
    return v && v->type == JSON_STRING ? v : NULL;
}

int snap_v2_members(const uint8_t *data, size_t len, struct member *out, size_t cap, size_t *n,
                    char *version, size_t vcap)
{
    struct mem_arena a;
    mem_arena_init(&a, 0);
    struct json j;
    char err[128];
    *n = 0;
    version[0] = 0;
    int rc = -1;
    if (json_parse((const char *)data, len, &a, &j, err, sizeof err) < 0)
        goto out;
    const struct json *zero = json_get(json_get(json_get(json_get(&j, "Root"), "Children"), "0"), "Children");
    const struct json *ver = node_value(zero, "version");
    if (ver)
        snprintf(version, vcap, "%s", ver->s);
    const struct json *ms = json_get(json_get(zero, "members"), "Children");
    for (size_t i = 0; ms && ms->type == JSON_OBJECT && i < ms->n; i++) {
        const struct json *kids = json_get(&ms->kids[i], "Children");
        const struct json *raft = node_value(kids, "raftAttributes"), *attrs = node_value(kids, "attributes");
        char *end;
        uint64_t id = strtoull(ms->keys[i], &end, 16);
        if (!raft || *end || *n == cap ||
            member_from_v2(&out[*n], id, raft->s, raft->len, attrs ? attrs->s : NULL, attrs ? attrs->len : 0) < 0)
            goto out;
        ++*n;
    }
    rc = 0;
out:
    if (rc < 0)
        while (*n)
            member_free(&out[--*n]);
    mem_arena_free(&a);
    return rc;
}
