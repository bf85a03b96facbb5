/* pb.c - the protobuf wire format: one generic, table-driven decoder and
 * encoder (see pb.h).  It owns the wire rules (varints, tags, wire types,
 * packed repeated scalars, proto3 presence, merging of repeated occurrences)
 * and the limits that make hostile input safe.  It owns no message layout:
 * the tables live in api.c and with whoever else describes a message, and it
 * knows nothing of gRPC framing or of what the fields mean.
 *
 * Decoding runs in two passes per message that has repeated fields: a count
 * pass walks the message's own tag stream (sub-messages are skipped by their
 * length, so every byte is walked once per nesting level that owns it) and
 * sizes each repeated array exactly; the fill pass then decodes into them.
 * This keeps arena use proportional to the input with no doubling garbage.
 *
 * Encoding also runs in two passes: a size pass computes the exact total, and
 * the write pass fills the reserved space back to front, so each
 * sub-message's length is known (it has just been written) when its prefix
 * is written.  No per-sub-message size cache and no repeated size passes:
 * both passes are linear in the message whatever the nesting depth. */
#include "pb.h"

#include <assert.h>
#include <string.h>

enum pb_wiretype {
    WT_VARINT = 0,
    WT_I64 = 1,
    WT_LEN = 2,
    WT_SGROUP = 3,
    WT_EGROUP = 4,
    WT_I32 = 5,
};

#define PB_FIELDNUM_MAX 0x1fffffffu
#define PB_NOT_FOUND SIZE_MAX

/* One field as read off the wire: the value of a varint, or the payload of a
 * length-delimited field (fixed-width fields are only skipped). */
struct pb_wire {
    uint32_t num;
    unsigned wt;
    uint64_t v;
    const uint8_t *data;
    size_t len;
};

static int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v);
static int read_field(const uint8_t **pp, const uint8_t *end, struct pb_wire *w);
static size_t find_field(const struct pb_msgdesc *d, uint32_t num, size_t *hint);
static bool wiretype_ok(const struct pb_field *f, unsigned wt);
static size_t elem_size(const struct pb_field *f);
static void *load_ptr(const void *src);
static void store_ptr(void *dst, const void *p);
static uint64_t load_scalar(uint8_t type, const void *src);
static void store_scalar(uint8_t type, void *dst, uint64_t v);
static int count_repeated(const struct pb_msgdesc *d, const uint8_t *p, const uint8_t *end,
                          size_t *cnt);
static int reserve_repeated(const struct pb_msgdesc *d, void *msg, size_t *cnt,
                            struct mem_arena *a);
static void clear_oneof_group(const struct pb_msgdesc *d, size_t i, void *msg);
static int decode_repeated(const struct pb_field *f, const struct pb_wire *w, void *msg,
                           size_t cap, struct mem_arena *a, int depth);
static int decode_msg(const struct pb_msgdesc *d, const uint8_t *p, const uint8_t *end,
                      void *msg, struct mem_arena *a, int depth);
static size_t tag_size(uint32_t num);
static size_t field_size(const struct pb_field *f, const void *msg);
/* Whether a zero scalar or empty bytes field is still written: a set oneof
 * member; a proto2 scalar (non-nullable in gogoproto: always); proto2 bytes
 * when non-nil. */
static bool field_present(const struct pb_field *f, const void *msg)
{
    if (f->flags & PB_ONEOF)
        return *(const bool *)((const char *)msg + f->count_offset);
    if (f->flags & PB_PROTO2)
        return f->type != PB_BYTES || ((const struct pb_bytes *)((const char *)msg + f->offset))->p;
    return false;
}

static size_t msg_size(const struct pb_msgdesc *d, const void *msg);
static uint8_t *put_varint_back(uint8_t *e, uint64_t v);
static uint8_t *put_tag_back(uint8_t *e, uint32_t num, unsigned wt);
static uint8_t *encode_field(const struct pb_field *f, const void *msg, uint8_t *e);
static uint8_t *encode_msg(const struct pb_msgdesc *d, const void *msg, uint8_t *e);

/* ---- varints ---- */

size_t pb_varint_size(uint64_t v)
{
    /* significant bits rounded up to 7-bit groups; v | 1 keeps clz defined */
    return (size_t)((64 - __builtin_clzll(v | 1) + 6) / 7);
}

static int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) { /* most tags and small values */
        *v = *p;
        *pp = p + 1;
        return PB_OK;
    }
    uint64_t r = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (p == end)
            return PB_ERR_TRUNCATED;
        uint8_t b = *p++;
        /* bits past 64 in the 10th byte are dropped, as protobuf does */
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (b < 0x80) {
            *v = r;
            *pp = p;
            return PB_OK;
        }
    }
    return PB_ERR_VARINT;
}

size_t pb_get_varint(const uint8_t *p, size_t n, uint64_t *v)
{
    if (n == 0)
        return 0;
    const uint8_t *q = p;
    if (get_varint(&q, p + n, v) != PB_OK)
        return 0;
    return (size_t)(q - p);
}

int pb_put_varint(struct mem_buf *out, uint64_t v)
{
    if (mem_buf_reserve(out, 10) < 0)
        return -1;
    uint8_t *q = out->data + out->len;
    while (v >= 0x80) {
        *q++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *q++ = (uint8_t)v;
    out->len = (size_t)(q - out->data);
    return 0;
}

int pb_put_tag(struct mem_buf *out, uint32_t num, unsigned wiretype)
{
    return pb_put_varint(out, (uint64_t)num << 3 | (wiretype & 7));
}

/* ---- reading fields ---- */

/* Reads one tag and its value or payload; unknown fields are skipped by
 * simply not looking at what this returns. */
static int read_field(const uint8_t **pp, const uint8_t *end, struct pb_wire *w)
{
    uint64_t tag;
    int rc = get_varint(pp, end, &tag);
    if (rc != PB_OK)
        return rc;
    uint64_t num = tag >> 3;
    if (num == 0 || num > PB_FIELDNUM_MAX)
        return PB_ERR_FIELDNUM;
    w->num = (uint32_t)num;
    w->wt = (unsigned)(tag & 7);
    switch (w->wt) {
    case WT_VARINT:
        return get_varint(pp, end, &w->v);
    case WT_I64:
    case WT_I32: {
        size_t k = w->wt == WT_I64 ? 8 : 4;
        if ((size_t)(end - *pp) < k)
            return PB_ERR_TRUNCATED;
        *pp += k;
        return PB_OK;
    }
    case WT_LEN: {
        uint64_t len;
        rc = get_varint(pp, end, &len);
        if (rc != PB_OK)
            return rc;
        /* compare in 64 bits: a length near 2^64 must not wrap size_t */
        if (len > (uint64_t)(end - *pp))
            return PB_ERR_TRUNCATED;
        w->data = *pp;
        w->len = (size_t)len;
        *pp += w->len;
        return PB_OK;
    }
    default: /* groups (3, 4) are not proto3; 6 and 7 do not exist */
        return PB_ERR_WIRETYPE;
    }
}

/* Index of field num in d, or PB_NOT_FOUND.  Fields usually arrive in table
 * order, so *hint (the entry after the last match) is tried first. */
static size_t find_field(const struct pb_msgdesc *d, uint32_t num, size_t *hint)
{
    size_t lo = 0, hi = d->nfields;
    if (*hint < hi && d->fields[*hint].num == num)
        return (*hint)++;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->fields[mid].num < num)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == d->nfields || d->fields[lo].num != num)
        return PB_NOT_FOUND;
    *hint = lo + 1;
    return lo;
}

static bool wiretype_ok(const struct pb_field *f, unsigned wt)
{
    if (f->type == PB_BYTES || f->type == PB_MSG)
        return wt == WT_LEN;
    return wt == WT_VARINT || (wt == WT_LEN && (f->flags & PB_REPEATED));
}

/* ---- C values ---- */

static size_t elem_size(const struct pb_field *f)
{
    switch (f->type) {
    case PB_BOOL:
        return sizeof(bool);
    case PB_INT32:
    case PB_ENUM:
    case PB_UINT32:
        return sizeof(uint32_t);
    case PB_INT64:
    case PB_UINT64:
        return sizeof(uint64_t);
    case PB_BYTES:
        return sizeof(struct pb_bytes);
    default:
        return f->sub->size;
    }
}

/* Pointer fields are typed (struct api_kv *, ...) in the C structs; copying
 * their representation avoids reading them through a void * lvalue. */
static void *load_ptr(const void *src)
{
    void *p;
    memcpy(&p, src, sizeof p);
    return p;
}

static void store_ptr(void *dst, const void *p)
{
    memcpy(dst, &p, sizeof p);
}

/* The value as it goes on the wire: int32 and enum are sign-extended to 64
 * bits, which is why a negative one takes 10 bytes. */
static uint64_t load_scalar(uint8_t type, const void *src)
{
    switch (type) {
    case PB_BOOL:
        return *(const bool *)src;
    case PB_INT32:
    case PB_ENUM:
        return (uint64_t)(int64_t)*(const int32_t *)src;
    case PB_UINT32:
        return *(const uint32_t *)src;
    case PB_INT64:
        return (uint64_t)*(const int64_t *)src;
    default:
        return *(const uint64_t *)src;
    }
}

static void store_scalar(uint8_t type, void *dst, uint64_t v)
{
    switch (type) {
    case PB_BOOL:
        *(bool *)dst = v != 0;
        break;
    case PB_INT32:
    case PB_ENUM:
        *(int32_t *)dst = (int32_t)(uint32_t)v;
        break;
    case PB_UINT32:
        *(uint32_t *)dst = (uint32_t)v;
        break;
    case PB_INT64:
        *(int64_t *)dst = (int64_t)v;
        break;
    default:
        *(uint64_t *)dst = v;
        break;
    }
}

/* ---- decoding ---- */

/* Count pass: cnt[i] += the number of elements of repeated field i in
 * p[0..end).  It checks the tag stream exactly as the fill pass will, so the
 * fill pass cannot meet an element that was not counted. */
static int count_repeated(const struct pb_msgdesc *d, const uint8_t *p, const uint8_t *end,
                          size_t *cnt)
{
    size_t hint = 0;
    while (p < end) {
        struct pb_wire w;
        int rc = read_field(&p, end, &w);
        if (rc != PB_OK)
            return rc;
        size_t i = find_field(d, w.num, &hint);
        if (i == PB_NOT_FOUND)
            continue;
        const struct pb_field *f = &d->fields[i];
        if (!wiretype_ok(f, w.wt))
            return PB_ERR_WIRETYPE;
        if (!(f->flags & PB_REPEATED))
            continue;
        if (w.wt == WT_LEN && f->type != PB_BYTES && f->type != PB_MSG) {
            /* packed: one element per byte that ends a varint */
            for (size_t k = 0; k < w.len; k++)
                cnt[i] += w.data[k] < 0x80;
        } else {
            cnt[i]++;
        }
    }
    return PB_OK;
}

/* Gives every counted repeated field an array of exactly n + cnt[i] elements,
 * keeping the n it may already hold (a merged message), and leaves that
 * capacity in cnt[i]. */
static int reserve_repeated(const struct pb_msgdesc *d, void *msg, size_t *cnt,
                            struct mem_arena *a)
{
    for (size_t i = 0; i < d->nfields; i++) {
        if (cnt[i] == 0)
            continue;
        const struct pb_field *f = &d->fields[i];
        size_t *np = (size_t *)((char *)msg + f->count_offset);
        size_t esz = elem_size(f);
        size_t cap = *np + cnt[i];
        if (cap < *np || cap > SIZE_MAX / esz)
            return PB_ERR_NOMEM;
        void *arr = mem_arena_alloc(a, cap * esz);
        if (!arr)
            return PB_ERR_NOMEM;
        if (*np)
            memcpy(arr, load_ptr((char *)msg + f->offset), *np * esz);
        store_ptr((char *)msg + f->offset, arr);
        cnt[i] = cap;
    }
    return PB_OK;
}

/* A oneof member was just read: the others of its group (the run of
 * PB_ONEOF entries around it) are no longer set. */
static void clear_oneof_group(const struct pb_msgdesc *d, size_t i, void *msg)
{
    size_t lo = i, hi = i + 1;
    while (lo > 0 && (d->fields[lo - 1].flags & PB_ONEOF))
        lo--;
    while (hi < d->nfields && (d->fields[hi].flags & PB_ONEOF))
        hi++;
    for (size_t j = lo; j < hi; j++) {
        const struct pb_field *f = &d->fields[j];
        if (j == i)
            continue;
        if (f->type == PB_MSG) {
            store_ptr((char *)msg + f->offset, NULL);
        } else {
            memset((char *)msg + f->offset, 0, elem_size(f));
            *(bool *)((char *)msg + f->count_offset) = false;
        }
    }
}

static int decode_repeated(const struct pb_field *f, const struct pb_wire *w, void *msg,
                           size_t cap, struct mem_arena *a, int depth)
{
    size_t *np = (size_t *)((char *)msg + f->count_offset);
    char *arr = load_ptr((char *)msg + f->offset);
    size_t esz = elem_size(f);

    if (f->type == PB_BYTES || f->type == PB_MSG || w->wt == WT_VARINT) {
        /* the count pass saw this element; a miss here is a bug in pb.c */
        assert(*np < cap);
        char *slot = arr + *np * esz;
        if (f->type == PB_BYTES) {
            struct pb_bytes *b = (struct pb_bytes *)slot;
            b->p = w->data;
            b->len = w->len;
        } else if (f->type == PB_MSG) {
            if (depth >= PB_MAX_DEPTH)
                return PB_ERR_DEPTH;
            memset(slot, 0, esz);
            int rc = decode_msg(f->sub, w->data, w->data + w->len, slot, a, depth + 1);
            if (rc != PB_OK)
                return rc;
        } else {
            store_scalar(f->type, slot, w->v);
        }
        (*np)++;
        return PB_OK;
    }

    const uint8_t *p = w->data, *end = w->data + w->len;
    while (p < end) {
        uint64_t v;
        int rc = get_varint(&p, end, &v);
        if (rc != PB_OK)
            return rc;
        assert(*np < cap);
        store_scalar(f->type, arr + *np * esz, v);
        (*np)++;
    }
    return PB_OK;
}

static int decode_msg(const struct pb_msgdesc *d, const uint8_t *p, const uint8_t *end,
                      void *msg, struct mem_arena *a, int depth)
{
    size_t cnt[PB_MAX_FIELDS] = {0};
    bool any_repeated = false;
    int rc;

    assert(d->nfields <= PB_MAX_FIELDS);
    for (size_t i = 0; i < d->nfields; i++)
        any_repeated |= (d->fields[i].flags & PB_REPEATED) != 0;
    if (any_repeated) {
        rc = count_repeated(d, p, end, cnt);
        if (rc == PB_OK)
            rc = reserve_repeated(d, msg, cnt, a);
        if (rc != PB_OK)
            return rc;
    }

    size_t hint = 0;
    while (p < end) {
        struct pb_wire w;
        rc = read_field(&p, end, &w);
        if (rc != PB_OK)
            return rc;
        size_t i = find_field(d, w.num, &hint);
        if (i == PB_NOT_FOUND)
            continue;
        const struct pb_field *f = &d->fields[i];
        if (!wiretype_ok(f, w.wt))
            return PB_ERR_WIRETYPE;
        if (f->flags & PB_REPEATED) {
            rc = decode_repeated(f, &w, msg, cnt[i], a, depth);
            if (rc != PB_OK)
                return rc;
            continue;
        }

        char *dst = (char *)msg + f->offset;
        if (f->flags & PB_ONEOF) {
            clear_oneof_group(d, i, msg);
            if (f->type != PB_MSG)
                *(bool *)((char *)msg + f->count_offset) = true;
        }
        if (f->type == PB_BYTES) {
            struct pb_bytes *b = (struct pb_bytes *)dst;
            b->p = w.data;
            b->len = w.len;
        } else if (f->type == PB_MSG) {
            if (depth >= PB_MAX_DEPTH)
                return PB_ERR_DEPTH;
            void *sub = load_ptr(dst);
            /* a oneof member is replaced (gogoproto), any other merged */
            if (!sub || (f->flags & PB_ONEOF)) {
                sub = mem_arena_zalloc(a, f->sub->size);
                if (!sub)
                    return PB_ERR_NOMEM;
                store_ptr(dst, sub);
            }
            rc = decode_msg(f->sub, w.data, w.data + w.len, sub, a, depth + 1);
            if (rc != PB_OK)
                return rc;
        } else {
            store_scalar(f->type, dst, w.v);
        }
    }
    return PB_OK;
}

int pb_decode(const struct pb_msgdesc *d, const uint8_t *p, size_t n, void *msg,
              struct mem_arena *a)
{
    memset(msg, 0, d->size);
    if (n == 0) /* p may be NULL for an empty message */
        return PB_OK;
    return decode_msg(d, p, p + n, msg, a, 1);
}

/* ---- encoding: sizes ---- */

static size_t tag_size(uint32_t num)
{
    return pb_varint_size((uint64_t)num << 3);
}

/* Bytes field f of msg takes on the wire, tag included; 0 when omitted.
 * encode_field makes the same presence decisions. */
static size_t field_size(const struct pb_field *f, const void *msg)
{
    const char *src = (const char *)msg + f->offset;
    size_t ts = tag_size(f->num);

    if (f->flags & PB_REPEATED) {
        size_t n = *(const size_t *)((const char *)msg + f->count_offset);
        if (n == 0)
            return 0;
        const char *arr = load_ptr(src);
        size_t esz = elem_size(f), total = 0;
        for (size_t j = 0; j < n; j++) {
            const char *item = arr + j * esz;
            if (f->type == PB_BYTES) {
                size_t len = ((const struct pb_bytes *)item)->len;
                total += ts + pb_varint_size(len) + len;
            } else if (f->type == PB_MSG) {
                size_t s = msg_size(f->sub, item);
                total += ts + pb_varint_size(s) + s;
            } else {
                total += pb_varint_size(load_scalar(f->type, item));
                if (f->flags & PB_PROTO2)
                    total += ts;
            }
        }
        if (f->type == PB_BYTES || f->type == PB_MSG || (f->flags & PB_PROTO2))
            return total;
        return ts + pb_varint_size(total) + total;
    }

    if (f->type == PB_MSG) {
        const void *sub = load_ptr(src);
        if (!sub)
            return (f->flags & PB_PROTO2) ? ts + 1 : 0;
        size_t s = msg_size(f->sub, sub);
        return ts + pb_varint_size(s) + s;
    }
    bool has = field_present(f, msg);
    if (f->type == PB_BYTES) {
        size_t len = ((const struct pb_bytes *)src)->len;
        if (len == 0 && !has)
            return 0;
        return ts + pb_varint_size(len) + len;
    }
    uint64_t v = load_scalar(f->type, src);
    if (v == 0 && !has)
        return 0;
    return ts + pb_varint_size(v);
}

static size_t msg_size(const struct pb_msgdesc *d, const void *msg)
{
    size_t total = 0;
    for (size_t i = 0; i < d->nfields; i++)
        total += field_size(&d->fields[i], msg);
    return total;
}

size_t pb_encoded_size(const struct pb_msgdesc *d, const void *msg)
{
    return msg_size(d, msg);
}

/* ---- encoding: writing back to front ---- */

/* Writes v so that it ends at e; returns where it starts. */
static uint8_t *put_varint_back(uint8_t *e, uint64_t v)
{
    uint8_t *s = e - pb_varint_size(v), *q = s;
    while (v >= 0x80) {
        *q++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *q = (uint8_t)v;
    return s;
}

static uint8_t *put_tag_back(uint8_t *e, uint32_t num, unsigned wt)
{
    return put_varint_back(e, (uint64_t)num << 3 | wt);
}

static uint8_t *encode_field(const struct pb_field *f, const void *msg, uint8_t *e)
{
    const char *src = (const char *)msg + f->offset;

    if (f->flags & PB_REPEATED) {
        size_t n = *(const size_t *)((const char *)msg + f->count_offset);
        if (n == 0)
            return e;
        const char *arr = load_ptr(src);
        size_t esz = elem_size(f);
        uint8_t *end = e;
        for (size_t j = n; j-- > 0;) {
            const char *item = arr + j * esz;
            if (f->type == PB_BYTES) {
                const struct pb_bytes *b = (const struct pb_bytes *)item;
                e -= b->len;
                if (b->len)
                    memcpy(e, b->p, b->len);
                e = put_varint_back(e, b->len);
                e = put_tag_back(e, f->num, WT_LEN);
            } else if (f->type == PB_MSG) {
                uint8_t *mend = e;
                e = encode_msg(f->sub, item, e);
                e = put_varint_back(e, (uint64_t)(mend - e));
                e = put_tag_back(e, f->num, WT_LEN);
            } else {
                e = put_varint_back(e, load_scalar(f->type, item));
                if (f->flags & PB_PROTO2)
                    e = put_tag_back(e, f->num, WT_VARINT);
            }
        }
        if (f->type != PB_BYTES && f->type != PB_MSG && !(f->flags & PB_PROTO2)) {
            e = put_varint_back(e, (uint64_t)(end - e));
            e = put_tag_back(e, f->num, WT_LEN);
        }
        return e;
    }

    if (f->type == PB_MSG) {
        const void *sub = load_ptr(src);
        if (!sub) {
            if (!(f->flags & PB_PROTO2))
                return e;
            *--e = 0; /* a non-nullable proto2 message: always there */
            return put_tag_back(e, f->num, WT_LEN);
        }
        uint8_t *mend = e;
        e = encode_msg(f->sub, sub, e);
        e = put_varint_back(e, (uint64_t)(mend - e));
        return put_tag_back(e, f->num, WT_LEN);
    }
    bool has = field_present(f, msg);
    if (f->type == PB_BYTES) {
        const struct pb_bytes *b = (const struct pb_bytes *)src;
        if (b->len == 0 && !has)
            return e;
        e -= b->len;
        if (b->len)
            memcpy(e, b->p, b->len);
        e = put_varint_back(e, b->len);
        return put_tag_back(e, f->num, WT_LEN);
    }
    uint64_t v = load_scalar(f->type, src);
    if (v == 0 && !has)
        return e;
    e = put_varint_back(e, v);
    return put_tag_back(e, f->num, WT_VARINT);
}

/* Fields go out in table order, so they are written last first. */
static uint8_t *encode_msg(const struct pb_msgdesc *d, const void *msg, uint8_t *e)
{
    for (size_t i = d->nfields; i-- > 0;)
        e = encode_field(&d->fields[i], msg, e);
    return e;
}

void pb_encode_to(const struct pb_msgdesc *d, const void *msg, uint8_t *dst, size_t size)
{
    if (size == 0) /* dst may be NULL for an empty message */
        return;
    uint8_t *start = encode_msg(d, msg, dst + size);
    /* the size pass and the write pass make the same presence decisions */
    assert(start == dst);
    (void)start;
}

int pb_encode(const struct pb_msgdesc *d, const void *msg, struct mem_buf *out)
{
    size_t size = msg_size(d, msg);
    if (size == 0)
        return 0;
    if (mem_buf_reserve(out, size) < 0)
        return -1;
    pb_encode_to(d, msg, out->data + out->len, size);
    out->len += size;
    return 0;
}
