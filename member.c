/* member.c - membership records and IDs (member.h).  It owns the member
 * structs' strings; where the list of members lives and how changes are
 * agreed (raft conf changes) is the node's business. */
#include "member.h"

#include <bearssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

uint64_t member_id(const char *const *peer_urls, size_t n, const char *token, int64_t now)
{
    const char *sorted[MEMBER_MAX_URLS];
    if (n > MEMBER_MAX_URLS)
        n = MEMBER_MAX_URLS;
    memcpy(sorted, peer_urls, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_str);
    br_sha1_context h;
    br_sha1_init(&h);
    for (size_t i = 0; i < n; i++)
        br_sha1_update(&h, sorted[i], strlen(sorted[i]));
    br_sha1_update(&h, token, strlen(token));
    if (now > 0) {
        char t[32];
        int l = snprintf(t, sizeof t, "%lld", (long long)now);
        br_sha1_update(&h, t, (size_t)l);
    }
    unsigned char out[20];
    br_sha1_out(&h, out);
    return be64(out);
}

uint64_t member_cluster_id(const uint64_t *ids, size_t n)
{
    uint64_t sorted[256];
    if (n > 256)
        n = 256;
    memcpy(sorted, ids, n * sizeof *ids);
    qsort(sorted, n, sizeof *sorted, cmp_u64);
    br_sha1_context h;
    br_sha1_init(&h);
    for (size_t i = 0; i < n; i++) {
        unsigned char b[8];
        for (int k = 0; k < 8; k++)
            b[k] = (unsigned char)(sorted[i] >> (56 - 8 * k));
        br_sha1_update(&h, b, 8);
    }
    unsigned char out[20];
    br_sha1_out(&h, out);
    return be64(out);
}

/* ---- records ---- */

static char *dup_str(const char *s, size_t n)
{
    char *d = mem_alloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static void free_urls(char **v, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        mem_free(v[i]);
    *n = 0;
}

void member_free(struct member *m)
{
    free_urls(m->peer_urls, &m->n_peer_urls);
    free_urls(m->client_urls, &m->n_client_urls);
}

static int copy_urls(char **dst, size_t *n, const char *const *src, size_t count)
{
    if (count > MEMBER_MAX_URLS)
        return -1;
    for (size_t i = 0; i < count; i++) {
        dst[i] = dup_str(src[i], strlen(src[i]));
        if (!dst[i])
            return -1;
        *n = i + 1;
    }
    return 0;
}

int member_init(struct member *m, uint64_t id, const char *name, const char *const *peer_urls,
                size_t n_peer, const char *const *client_urls, size_t n_client)
{
    memset(m, 0, sizeof *m);
    m->id = id;
    snprintf(m->name, sizeof m->name, "%s", name);
    if (copy_urls(m->peer_urls, &m->n_peer_urls, peer_urls, n_peer) < 0 ||
        copy_urls(m->client_urls, &m->n_client_urls, client_urls, n_client) < 0) {
        member_free(m);
        return -1;
    }
    return 0;
}

static int put_urls(struct mem_buf *out, char *const *v, size_t n)
{
    if (mem_buf_putc(out, '[') < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((i && mem_buf_putc(out, ',') < 0) || json_put_str(out, v[i], strlen(v[i])) < 0)
            return -1;
    return mem_buf_putc(out, ']');
}

/* Attributes with Go's omitempty: name and clientURLs only when set. */
static int put_attrs(const struct member *m, struct mem_buf *out, bool first)
{
    if (m->name[0]) {
        if ((!first && mem_buf_putc(out, ',') < 0) || mem_buf_printf(out, "\"name\":") < 0 ||
            json_put_str(out, m->name, strlen(m->name)) < 0)
            return -1;
        first = false;
    }
    if (m->n_client_urls) {
        if ((!first && mem_buf_putc(out, ',') < 0) || mem_buf_printf(out, "\"clientURLs\":") < 0 ||
            put_urls(out, m->client_urls, m->n_client_urls) < 0)
            return -1;
    }
    return 0;
}

int member_raft_attrs_json(const struct member *m, struct mem_buf *out)
{
    if (mem_buf_printf(out, "{\"peerURLs\":") < 0 || put_urls(out, m->peer_urls, m->n_peer_urls) < 0 ||
        (m->is_learner && mem_buf_printf(out, ",\"isLearner\":true") < 0))
        return -1;
    return mem_buf_putc(out, '}');
}

int member_to_json(const struct member *m, struct mem_buf *out)
{
    /* Go marshals a nil slice as null: etcd's peerURLs is never nil */
    if (mem_buf_printf(out, "{\"id\":%llu,\"peerURLs\":", (unsigned long long)m->id) < 0 ||
        put_urls(out, m->peer_urls, m->n_peer_urls) < 0 ||
        (m->is_learner && mem_buf_printf(out, ",\"isLearner\":true") < 0) ||
        put_attrs(m, out, false) < 0)
        return -1;
    return mem_buf_putc(out, '}');
}

int member_attrs_json(const struct member *m, struct mem_buf *out)
{
    if (mem_buf_putc(out, '{') < 0 || put_attrs(m, out, true) < 0)
        return -1;
    return mem_buf_putc(out, '}');
}

static int take_urls(const struct json *arr, char **dst, size_t *n)
{
    free_urls(dst, n);
    if (!arr || arr->type == JSON_NULL)
        return 0;
    if (arr->type != JSON_ARRAY || arr->n > MEMBER_MAX_URLS)
        return -1;
    for (size_t i = 0; i < arr->n; i++) {
        if (arr->kids[i].type != JSON_STRING)
            return -1;
        dst[i] = dup_str(arr->kids[i].s, arr->kids[i].len);
        if (!dst[i])
            return -1;
        *n = i + 1;
    }
    return 0;
}

int member_from_v2(struct member *m, uint64_t id, const char *raft, size_t rlen, const char *attrs,
                   size_t alen)
{
    memset(m, 0, sizeof *m);
    struct mem_arena a;
    mem_arena_init(&a, 1 << 20);
    struct json j;
    char err[128];
    int rc = -1;
    if (json_parse(raft, rlen, &a, &j, err, sizeof err) < 0 || j.type != JSON_OBJECT ||
        take_urls(json_get(&j, "peerURLs"), m->peer_urls, &m->n_peer_urls) < 0)
        goto out;
    const struct json *l = json_get(&j, "isLearner");
    m->is_learner = l && l->type == JSON_BOOL && l->b;
    m->id = id;
    rc = attrs ? member_from_json(m, attrs, alen, true) : 0;
out:
    if (rc < 0)
        member_free(m);
    mem_arena_free(&a);
    return rc;
}

int member_from_json(struct member *m, const char *p, size_t n, bool attrs_only)
{
    struct mem_arena a;
    mem_arena_init(&a, 1 << 20);
    struct json j;
    char err[128];
    int rc = -1;
    if (!attrs_only)
        memset(m, 0, sizeof *m);
    if (json_parse(p, n, &a, &j, err, sizeof err) < 0 || j.type != JSON_OBJECT)
        goto out;
    if (!attrs_only) {
        const struct json *l = json_get(&j, "isLearner");
        if (json_u64(json_get(&j, "id"), &m->id) < 0 ||
            take_urls(json_get(&j, "peerURLs"), m->peer_urls, &m->n_peer_urls) < 0)
            goto out;
        m->is_learner = l && l->type == JSON_BOOL && l->b;
    }
    const struct json *name = json_get(&j, "name");
    if (name && name->type == JSON_STRING)
        snprintf(m->name, sizeof m->name, "%s", name->s);
    if (take_urls(json_get(&j, "clientURLs"), m->client_urls, &m->n_client_urls) < 0)
        goto out;
    rc = 0;
out:
    if (rc < 0 && !attrs_only)
        member_free(m);
    mem_arena_free(&a);
    return rc;
}
