/* json.c - JSON parsing into an arena tree and Go-compatible encoding
 * (json.h).  It owns no state; callers own the arena and the buffers. */
#include "json.h"

#include <stdio.h>
#include <string.h>

/* ---- parsing ---- */

struct jp {
    const char *p, *end, *start;
    struct mem_arena *a;
    char *err;
    size_t cap;
    int depth;
};

static int parse_value(struct jp *j, struct json *out);

static int fail(struct jp *j, const char *what)
{
    if (j->p >= j->end)
        snprintf(j->err, j->cap, "unexpected end of JSON input");
    else if ((unsigned char)*j->p >= 0x20 && (unsigned char)*j->p < 0x7f)
        snprintf(j->err, j->cap, "invalid character '%c' %s at offset %zu", *j->p, what,
                 (size_t)(j->p - j->start));
    else
        snprintf(j->err, j->cap, "invalid byte 0x%02x %s at offset %zu", (unsigned char)*j->p, what,
                 (size_t)(j->p - j->start));
    return -1;
}

static void skip_ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool lit(struct jp *j, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n))
        return false;
    j->p += n;
    return true;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

size_t json_put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The unescaped string never grows past its escaped form, so one
 * allocation of the raw length suffices. */
static int parse_string(struct jp *j, const char **s, size_t *len)
{
    j->p++; /* opening quote */
    const char *q = j->p;
    while (q < j->end && *q != '"') {
        if (*q == '\\')
            q++;
        q++;
    }
    if (q >= j->end) {
        j->p = j->end;
        return fail(j, "in string");
    }
    char *o = mem_arena_alloc(j->a, (size_t)(q - j->p) + 1);
    if (!o) {
        snprintf(j->err, j->cap, "out of memory");
        return -1;
    }
    size_t n = 0;
    while (j->p < q) {
        unsigned char c = (unsigned char)*j->p;
        if (c < 0x20)
            return fail(j, "in string literal");
        if (c != '\\') {
            o[n++] = (char)c;
            j->p++;
            continue;
        }
        j->p++;
        char e = *j->p++;
        switch (e) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            if (q - j->p < 4 || hex4(j->p) < 0) {
                j->p--;
                return fail(j, "in \\u hexadecimal character escape");
            }
            uint32_t cp = (uint32_t)hex4(j->p);
            j->p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && q - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u' &&
                hex4(j->p + 2) >= 0xdc00 && hex4(j->p + 2) < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)hex4(j->p + 2) - 0xdc00);
                j->p += 6;
            } else if (cp >= 0xd800 && cp < 0xe000) {
                cp = 0xfffd; /* a lone surrogate, as Go replaces it */
            }
            n += json_put_utf8(o + n, cp);
            break;
        }
        default:
            j->p--;
            return fail(j, "in string escape code");
        }
    }
    j->p = q + 1;
    o[n] = 0;
    *s = o;
    *len = n;
    return 0;
}

static int parse_number(struct jp *j, struct json *out)
{
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p >= j->end)
        return fail(j, "in numeric literal");
    if (*j->p == '0')
        j->p++;
    else if (*j->p >= '1' && *j->p <= '9')
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    else
        return fail(j, "in numeric literal");
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return fail(j, "after decimal point in numeric literal");
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return fail(j, "in exponent of numeric literal");
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    out->type = JSON_NUMBER;
    out->len = (size_t)(j->p - s);
    char *t = mem_arena_alloc(j->a, out->len + 1);
    if (!t) {
        snprintf(j->err, j->cap, "out of memory");
        return -1;
    }
    memcpy(t, s, out->len);
    t[out->len] = 0;
    out->s = t;
    return 0;
}

/* Arrays and objects: elements are parsed into a growing arena array
 * (doubling; the abandoned copies stay in the arena until it is freed). */
static int grow(struct jp *j, struct json *out, size_t *cap, bool obj)
{
    size_t nc = *cap ? *cap * 2 : 4;
    struct json *k = mem_arena_alloc(j->a, nc * sizeof *k);
    const char **keys = obj ? mem_arena_alloc(j->a, nc * sizeof *keys) : NULL;
    size_t *kl = obj ? mem_arena_alloc(j->a, nc * sizeof *kl) : NULL;
    if (!k || (obj && (!keys || !kl))) {
        snprintf(j->err, j->cap, "out of memory");
        return -1;
    }
    if (out->n) {
        memcpy(k, out->kids, out->n * sizeof *k);
        if (obj) {
            memcpy(keys, out->keys, out->n * sizeof *keys);
            memcpy(kl, out->key_lens, out->n * sizeof *kl);
        }
    }
    out->kids = k;
    out->keys = keys;
    out->key_lens = kl;
    *cap = nc;
    return 0;
}

static int parse_container(struct jp *j, struct json *out, bool obj)
{
    if (++j->depth > JSON_MAX_DEPTH) {
        snprintf(j->err, j->cap, "exceeded max depth %d at offset %zu", JSON_MAX_DEPTH,
                 (size_t)(j->p - j->start));
        return -1;
    }
    out->type = obj ? JSON_OBJECT : JSON_ARRAY;
    char close = obj ? '}' : ']';
    size_t cap = 0;
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return 0;
    }
    for (;;) {
        if (out->n == cap && grow(j, out, &cap, obj) < 0)
            return -1;
        skip_ws(j);
        if (obj) {
            if (j->p >= j->end || *j->p != '"')
                return fail(j, "looking for beginning of object key string");
            if (parse_string(j, &out->keys[out->n], &out->key_lens[out->n]) < 0)
                return -1;
            skip_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return fail(j, "after object key");
            j->p++;
        }
        memset(&out->kids[out->n], 0, sizeof out->kids[0]);
        if (parse_value(j, &out->kids[out->n]) < 0)
            return -1;
        out->n++;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            j->depth--;
            return 0;
        }
        return fail(j, obj ? "after object key:value pair" : "after array element");
    }
}

static int parse_value(struct jp *j, struct json *out)
{
    skip_ws(j);
    if (j->p >= j->end)
        return fail(j, "looking for beginning of value");
    switch (*j->p) {
    case '{':
        return parse_container(j, out, true);
    case '[':
        return parse_container(j, out, false);
    case '"':
        out->type = JSON_STRING;
        return parse_string(j, &out->s, &out->len);
    case 't':
    case 'f':
    case 'n':
        if (lit(j, "true") || lit(j, "false")) {
            out->type = JSON_BOOL;
            out->b = j->p[-1] == 'e' && j->p[-2] == 'u';
            return 0;
        }
        if (lit(j, "null")) {
            out->type = JSON_NULL;
            return 0;
        }
        return fail(j, "in literal");
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
            return parse_number(j, out);
        return fail(j, "looking for beginning of value");
    }
}

int json_parse(const char *p, size_t n, struct mem_arena *a, struct json *out, char *err, size_t cap)
{
    struct jp j = {p, p + n, p, a, err, cap, 0};
    memset(out, 0, sizeof *out);
    if (parse_value(&j, out) < 0)
        return -1;
    skip_ws(&j);
    if (j.p != j.end)
        return fail(&j, "after top-level value");
    return 0;
}

const struct json *json_get(const struct json *o, const char *key)
{
    if (!o || o->type != JSON_OBJECT)
        return NULL;
    size_t kl = strlen(key);
    /* the last duplicate wins, as Go's decoder does */
    for (size_t i = o->n; i-- > 0;)
        if (o->key_lens[i] == kl && !memcmp(o->keys[i], key, kl))
            return &o->kids[i];
    return NULL;
}

int json_u64(const struct json *v, uint64_t *out)
{
    if (!v || v->type != JSON_NUMBER || v->s[0] == '-')
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < v->len; i++) {
        char c = v->s[i];
        if (c < '0' || c > '9' || x > (UINT64_MAX - (uint64_t)(c - '0')) / 10)
            return -1;
        x = x * 10 + (uint64_t)(c - '0');
    }
    *out = x;
    return 0;
}

int json_i64(const struct json *v, int64_t *out)
{
    if (!v || v->type != JSON_NUMBER)
        return -1;
    bool neg = v->s[0] == '-';
    struct json t = *v;
    if (neg) {
        t.s++;
        t.len--;
    }
    uint64_t x;
    if (json_u64(&t, &x) < 0 || x > (uint64_t)INT64_MAX + neg)
        return -1;
    *out = neg ? (int64_t)(0 - x) : (int64_t)x;
    return 0;
}

/* ---- encoding ---- */

int json_put_str(struct mem_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (mem_buf_reserve(b, len + 2) < 0 || mem_buf_putc(b, '"') < 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            u[0] = '\\', u[1] = 'u', u[2] = '0', u[3] = '0', u[4] = hex[c >> 4], u[5] = hex[c & 15];
            u[6] = 0;
            esc = u;
        } else if (c == 0xe2 && i + 2 < len && (unsigned char)s[i + 1] == 0x80 &&
                   ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9)) {
            esc = (unsigned char)s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029";
            i += 2;
        }
        if (esc) {
            if (mem_buf_append(b, esc, strlen(esc)) < 0)
                return -1;
        } else if (mem_buf_putc(b, c) < 0) {
            return -1;
        }
    }
    return mem_buf_putc(b, '"');
}

int json_put_b64(struct mem_buf *b, const uint8_t *p, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t out = (len + 2) / 3 * 4;
    if (mem_buf_reserve(b, out + 2) < 0)
        return -1;
    uint8_t *o = b->data + b->len;
    *o++ = '"';
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = (uint8_t)tab[v >> 18];
        *o++ = (uint8_t)tab[v >> 12 & 63];
        *o++ = (uint8_t)tab[v >> 6 & 63];
        *o++ = (uint8_t)tab[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = (uint8_t)tab[v >> 18];
        *o++ = (uint8_t)tab[v >> 12 & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = (uint8_t)tab[v >> 18];
        *o++ = (uint8_t)tab[v >> 12 & 63];
        *o++ = (uint8_t)tab[v >> 6 & 63];
        *o++ = '=';
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}
