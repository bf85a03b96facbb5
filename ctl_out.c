/* ctl_out.c - the pieces of etcdctl's output formats that several commands
 * share (ctl.h): Go's %q quoting, durations and humanized sizes, the simple
 * and fields printers' key/value lines, JSON as Go's encoding/json writes
 * etcd's structs, the raw protobuf printer, and olekukonko/tablewriter's
 * tables.  What a command prints, and in which format, is the command's
 * business (ctl_kv.c, ...); this file only knows how the pieces look.
 */
#include "ctl.h"

#include <string.h>

#include "json.h"

void ctl_write(const void *p, size_t n)
{
    if (n)
        fwrite(p, 1, n, stdout);
}

/* ---- Go's strconv.Quote ---- */

/* Decodes one UTF-8 sequence; returns its length, or 0 when invalid. */
static size_t utf8_decode(const uint8_t *p, size_t n, uint32_t *cp)
{
    uint8_t c = p[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

/* unicode.IsPrint, near enough: Go's tables mark a few more non-ASCII
 * code points unprintable than the ranges below. */
static bool go_isprint(uint32_t r)
{
    if (r < 0x80)
        return r >= 0x20 && r < 0x7f;
    if (r < 0xa0 || r == 0xad)
        return false;
    if ((r >= 0x2028 && r <= 0x202e) || (r >= 0x2060 && r <= 0x206f) || r == 0xfeff ||
        (r >= 0xfff9 && r <= 0xfffb) || (r >= 0xe000 && r <= 0xf8ff) || r >= 0xf0000 ||
        r == 0x2000 || (r >= 0x2001 && r <= 0x200f))
        return false;
    return true;
}

int ctl_quote(struct mem_buf *b, const void *data, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = data;
    if (mem_buf_putc(b, '"') < 0)
        return -1;
    for (size_t i = 0; i < n;) {
        uint32_t r;
        size_t w = utf8_decode(p + i, n - i, &r);
        int rc = 0;
        if (!w) {
            rc = mem_buf_printf(b, "\\x%c%c", hex[p[i] >> 4], hex[p[i] & 15]);
            w = 1;
        } else if (r == '"' || r == '\\') {
            rc = mem_buf_printf(b, "\\%c", (char)r);
        } else if (go_isprint(r)) {
            rc = mem_buf_append(b, p + i, w);
        } else {
            switch (r) {
            case '\a': rc = mem_buf_append(b, "\\a", 2); break;
            case '\b': rc = mem_buf_append(b, "\\b", 2); break;
            case '\f': rc = mem_buf_append(b, "\\f", 2); break;
            case '\n': rc = mem_buf_append(b, "\\n", 2); break;
            case '\r': rc = mem_buf_append(b, "\\r", 2); break;
            case '\t': rc = mem_buf_append(b, "\\t", 2); break;
            case '\v': rc = mem_buf_append(b, "\\v", 2); break;
            default:
                if (r < ' ' || r == 0x7f)
                    rc = mem_buf_printf(b, "\\x%c%c", hex[r >> 4], hex[r & 15]);
                else if (r < 0x10000)
                    rc = mem_buf_printf(b, "\\u%04x", r);
                else
                    rc = mem_buf_printf(b, "\\U%08x", r);
            }
        }
        if (rc < 0)
            return -1;
        i += w;
    }
    return mem_buf_putc(b, '"');
}

void ctl_print_quoted(const void *p, size_t n)
{
    struct mem_buf b = {0};
    if (ctl_quote(&b, p, n) == 0)
        ctl_write(b.data, b.len);
    mem_buf_free(&b);
}

/* ---- Go's time.Duration.String and humanize.Bytes ---- */

/* fmtFrac: the fraction of v/10^prec without trailing zeros, written
 * backwards before buf[w]; returns the new w, *v becomes v/10^prec. */
static size_t fmt_frac(char *buf, size_t w, uint64_t *v, int prec)
{
    bool print = false;
    for (int i = 0; i < prec; i++) {
        uint64_t digit = *v % 10;
        print = print || digit != 0;
        if (print)
            buf[--w] = (char)('0' + digit);
        *v /= 10;
    }
    if (print)
        buf[--w] = '.';
    return w;
}

static size_t fmt_int(char *buf, size_t w, uint64_t v)
{
    if (v == 0)
        buf[--w] = '0';
    while (v > 0) {
        buf[--w] = (char)('0' + v % 10);
        v /= 10;
    }
    return w;
}

void ctl_duration_str(int64_t d, char *out, size_t cap)
{
    char buf[40];
    size_t w = sizeof buf;
    uint64_t u = d < 0 ? 0 - (uint64_t)d : (uint64_t)d;
    if (u < 1000000000ull) {
        int prec;
        buf[--w] = 's';
        if (u == 0) {
            snprintf(out, cap, "0s");
            return;
        } else if (u < 1000) {
            prec = 0;
            buf[--w] = 'n';
        } else if (u < 1000000) {
            prec = 3;
            buf[--w] = '\xb5'; /* U+00B5 micro sign */
            buf[--w] = '\xc2';
        } else {
            prec = 6;
            buf[--w] = 'm';
        }
        w = fmt_frac(buf, w, &u, prec);
        w = fmt_int(buf, w, u);
    } else {
        buf[--w] = 's';
        w = fmt_frac(buf, w, &u, 9);
        w = fmt_int(buf, w, u % 60);
        u /= 60;
        if (u > 0) {
            buf[--w] = 'm';
            w = fmt_int(buf, w, u % 60);
            u /= 60;
            if (u > 0) {
                buf[--w] = 'h';
                w = fmt_int(buf, w, u);
            }
        }
    }
    if (d < 0)
        buf[--w] = '-';
    snprintf(out, cap, "%.*s", (int)(sizeof buf - w), buf + w);
}

void ctl_humanize_bytes(uint64_t s, char *out, size_t cap)
{
    static const char *const sizes[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
    if (s < 10) {
        snprintf(out, cap, "%llu B", (unsigned long long)s);
        return;
    }
    int e = 0;
    double div = 1;
    for (uint64_t t = s; t >= 1000; t /= 1000) {
        e++;
        div *= 1000;
    }
    double x = (double)s / div * 10 + 0.5;
    double val = (double)(uint64_t)x / 10; /* math.Floor of a positive value */
    snprintf(out, cap, val < 10 ? "%.1f %s" : "%.0f %s", val, sizes[e]);
}

/* ---- simple and fields printers ---- */

static void print_hex_bytes(const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        char b[4] = {'\\', 'x', hex[p[i] >> 4], hex[p[i] & 15]};
        ctl_write(b, 4);
    }
}

void ctl_print_kv(const struct api_kv *kv, bool value_only)
{
    if (!value_only) {
        if (ctl_g.hex)
            print_hex_bytes(kv->key.p, kv->key.len);
        else
            ctl_write(kv->key.p, kv->key.len);
        ctl_write("\n", 1);
    }
    if (ctl_g.hex)
        print_hex_bytes(kv->value.p, kv->value.len);
    else
        ctl_write(kv->value.p, kv->value.len);
    ctl_write("\n", 1);
}

void ctl_fields_header(const struct api_header *h)
{
    if (!h)
        ctl_panic("runtime error: invalid memory address or nil pointer dereference\n"
                  "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x0]");
    printf("\"ClusterID\" : %llu\n\"MemberID\" : %llu\n\"Revision\" : %lld\n\"RaftTerm\" : %llu\n",
           (unsigned long long)h->cluster_id, (unsigned long long)h->member_id,
           (long long)h->revision, (unsigned long long)h->raft_term);
}

void ctl_fields_kv(const char *pfx, const struct api_kv *kv)
{
    printf("\"%sKey\" : ", pfx);
    ctl_print_quoted(kv->key.p, kv->key.len);
    printf("\n\"%sCreateRevision\" : %lld\n\"%sModRevision\" : %lld\n\"%sVersion\" : %lld\n"
           "\"%sValue\" : ",
           pfx, (long long)kv->create_revision, pfx, (long long)kv->mod_revision, pfx,
           (long long)kv->version, pfx);
    ctl_print_quoted(kv->value.p, kv->value.len);
    printf("\n\"%sLease\" : %lld\n", pfx, (long long)kv->lease);
}

/* ---- JSON ---- */

static void cj_sep(struct ctl_json *j, const char *key)
{
    if (!j->first[j->depth])
        (void)!mem_buf_putc(&j->b, ',');
    j->first[j->depth] = false;
    if (key) {
        (void)!json_put_str(&j->b, key, strlen(key));
        (void)!mem_buf_putc(&j->b, ':');
    }
}

void cj_open(struct ctl_json *j, const char *key, char brace)
{
    if (j->depth == 0 && j->b.len == 0)
        j->first[0] = true;
    cj_sep(j, key);
    (void)!mem_buf_putc(&j->b, (uint8_t)brace);
    if (j->depth + 1 < (int)(sizeof j->first / sizeof j->first[0]))
        j->depth++;
    j->first[j->depth] = true;
}

void cj_close(struct ctl_json *j, char brace)
{
    (void)!mem_buf_putc(&j->b, (uint8_t)brace);
    if (j->depth > 0)
        j->depth--;
}

void cj_i64(struct ctl_json *j, const char *key, int64_t v, bool omitempty)
{
    if (omitempty && !v)
        return;
    cj_sep(j, key);
    (void)!mem_buf_printf(&j->b, "%lld", (long long)v);
}

void cj_u64(struct ctl_json *j, const char *key, uint64_t v, bool omitempty)
{
    if (omitempty && !v)
        return;
    cj_sep(j, key);
    (void)!mem_buf_printf(&j->b, "%llu", (unsigned long long)v);
}

void cj_bool(struct ctl_json *j, const char *key, bool v, bool omitempty)
{
    if (omitempty && !v)
        return;
    cj_sep(j, key);
    (void)!mem_buf_printf(&j->b, "%s", v ? "true" : "false");
}

void cj_str(struct ctl_json *j, const char *key, const void *p, size_t n, bool omitempty)
{
    if (omitempty && !n)
        return;
    cj_sep(j, key);
    (void)!json_put_str(&j->b, p ? p : "", n);
}

void cj_b64(struct ctl_json *j, const char *key, const void *p, size_t n, bool omitempty)
{
    if (omitempty && !n)
        return;
    cj_sep(j, key);
    (void)!json_put_b64(&j->b, p ? p : (const uint8_t *)"", n);
}

void cj_null(struct ctl_json *j, const char *key)
{
    cj_sep(j, key);
    (void)!mem_buf_append(&j->b, "null", 4);
}

void cj_header_fields(struct ctl_json *j, const struct api_header *h)
{
    if (!h)
        return;
    cj_u64(j, "cluster_id", h->cluster_id, true);
    cj_u64(j, "member_id", h->member_id, true);
    cj_i64(j, "revision", h->revision, true);
    cj_u64(j, "raft_term", h->raft_term, true);
}

void cj_header(struct ctl_json *j, const char *key, const struct api_header *h)
{
    if (!h)
        return;
    cj_open(j, key, '{');
    cj_header_fields(j, h);
    cj_close(j, '}');
}

void cj_kv(struct ctl_json *j, const char *key, const struct api_kv *kv)
{
    cj_open(j, key, '{');
    cj_b64(j, "key", kv->key.p, kv->key.len, true);
    cj_i64(j, "create_revision", kv->create_revision, true);
    cj_i64(j, "mod_revision", kv->mod_revision, true);
    cj_i64(j, "version", kv->version, true);
    cj_b64(j, "value", kv->value.p, kv->value.len, true);
    cj_i64(j, "lease", kv->lease, true);
    cj_close(j, '}');
}

void cj_print(struct ctl_json *j)
{
    ctl_write(j->b.data, j->b.len);
    ctl_write("\n", 1);
    mem_buf_free(&j->b);
    memset(j, 0, sizeof *j);
}

void ctl_print_pb(const struct pb_msgdesc *d, const void *msg)
{
    struct mem_buf b = {0};
    if (pb_encode(d, msg, &b) == 0)
        ctl_write(b.data, b.len);
    mem_buf_free(&b);
}

/* ---- tablewriter ---- */

#define TABLE_MAX_WIDTH 30 /* tablewriter's MAX_ROW_WIDTH, with autoWrap on */

struct tcell {
    char **lines;
    size_t n;
};

static size_t str_width(const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        w += ((unsigned char)s[i] & 0xc0) != 0x80;
    return w;
}

/* WrapString: words of s into lines of at most lim columns with minimal
 * raggedness (tablewriter's WrapWords).  Returns the lines in arena
 * memory. */
static size_t wrap_string(const char *s, size_t lim, char ***out)
{
    size_t nw = 1;
    for (const char *p = s; *p; p++)
        nw += *p == ' ' || *p == '\n';
    const char **w = mem_arena_alloc(&ctl_arena, nw * sizeof *w);
    size_t *wl = mem_arena_alloc(&ctl_arena, nw * sizeof *wl);
    size_t *cost = mem_arena_alloc(&ctl_arena, nw * sizeof *cost);
    size_t *brk = mem_arena_alloc(&ctl_arena, nw * sizeof *brk);
    char **lines = mem_arena_alloc(&ctl_arena, nw * sizeof *lines);
    if (!w || !wl || !cost || !brk || !lines)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    size_t k = 0;
    for (const char *p = s;;) {
        size_t l = strcspn(p, " \n");
        w[k] = p;
        wl[k++] = l;
        if (!p[l])
            break;
        p += l + 1;
    }
    for (size_t i = 0; i < k; i++)
        if (str_width(w[i], wl[i]) > lim)
            lim = str_width(w[i], wl[i]);
    for (size_t i = k; i-- > 0;) {
        size_t len = 0;
        for (size_t j = i; j < k; j++)
            len += str_width(w[j], wl[j]) + (j > i);
        if (len <= lim) {
            cost[i] = 0;
            brk[i] = k;
            continue;
        }
        cost[i] = SIZE_MAX;
        len = 0;
        for (size_t j = i + 1; j < k; j++) {
            len += str_width(w[j - 1], wl[j - 1]) + (j - 1 > i);
            long long d = (long long)lim - (long long)len;
            size_t c = (size_t)(d * d) + cost[j];
            if (len > lim)
                c += 100000;
            if (c < cost[i]) {
                cost[i] = c;
                brk[i] = j;
            }
        }
    }
    size_t nl = 0;
    for (size_t i = 0; i < k; i = brk[i]) {
        size_t len = 0;
        for (size_t j = i; j < brk[i]; j++)
            len += wl[j] + (j > i);
        char *line = mem_arena_alloc(&ctl_arena, len + 1);
        if (!line)
            ctl_fail(CTL_EXIT_ERROR, "out of memory");
        size_t o = 0;
        for (size_t j = i; j < brk[i]; j++) {
            if (j > i)
                line[o++] = ' ';
            memcpy(line + o, w[j], wl[j]);
            o += wl[j];
        }
        line[o] = 0;
        lines[nl++] = line;
    }
    *out = lines;
    return nl;
}

/* parseDimension: a cell's lines and the width it needs */
static void table_cell(const char *s, struct tcell *c, size_t *colw)
{
    size_t maxw = 0;
    for (const char *p = s;;) {
        size_t l = strcspn(p, "\n");
        if (str_width(p, l) > maxw)
            maxw = str_width(p, l);
        if (!p[l])
            break;
        p += l + 1;
    }
    if (maxw > TABLE_MAX_WIDTH)
        maxw = TABLE_MAX_WIDTH;
    c->n = wrap_string(s, maxw, &c->lines);
    for (size_t i = 0; i < c->n; i++)
        if (str_width(c->lines[i], strlen(c->lines[i])) > maxw)
            maxw = str_width(c->lines[i], strlen(c->lines[i]));
    if (maxw > *colw)
        *colw = maxw;
}

static void table_line(const size_t *w, size_t n)
{
    fputc('+', stdout);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < w[i] + 2; k++)
            fputc('-', stdout);
        fputc('+', stdout);
    }
    fputc('\n', stdout);
}

static void pad(size_t n)
{
    for (size_t i = 0; i < n; i++)
        fputc(' ', stdout);
}

void ctl_table(const char *const *hdr, size_t ncols, char **cells, size_t nrows)
{
    size_t w[16] = {0};
    struct tcell hc[16], *rc = mem_arena_alloc(&ctl_arena, (nrows * ncols + 1) * sizeof *rc);
    if (ncols > 16 || !rc)
        return;
    for (size_t i = 0; i < ncols; i++) {
        /* Title(): '_' and '.' between letters become spaces, upper case */
        char *t = mem_arena_dup(&ctl_arena, hdr[i], strlen(hdr[i]) + 1);
        if (!t)
            return;
        for (char *p = t; *p; p++) {
            if (*p == '_')
                *p = ' ';
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 32);
        }
        table_cell(t, &hc[i], &w[i]);
    }
    for (size_t r = 0; r < nrows; r++)
        for (size_t i = 0; i < ncols; i++)
            table_cell(cells[r * ncols + i], &rc[r * ncols + i], &w[i]);
    table_line(w, ncols);
    size_t hmax = 0;
    for (size_t i = 0; i < ncols; i++)
        hmax = hc[i].n > hmax ? hc[i].n : hmax;
    for (size_t x = 0; x < hmax; x++) {
        fputc('|', stdout);
        for (size_t i = 0; i < ncols; i++) {
            const char *h = x < hc[i].n ? hc[i].lines[x] : "";
            size_t hw = str_width(h, strlen(h));
            size_t gap = w[i] > hw ? w[i] - hw : 0;
            fputc(' ', stdout);
            pad(gap / 2); /* centred, the extra space on the right */
            fputs(h, stdout);
            pad(gap - gap / 2);
            fputs(" |", stdout);
        }
        fputc('\n', stdout);
    }
    table_line(w, ncols);
    for (size_t r = 0; r < nrows; r++) {
        size_t max = 0;
        for (size_t i = 0; i < ncols; i++)
            max = rc[r * ncols + i].n > max ? rc[r * ncols + i].n : max;
        for (size_t x = 0; x < max; x++) {
            for (size_t i = 0; i < ncols; i++) {
                const struct tcell *c = &rc[r * ncols + i];
                const char *s = x < c->n ? c->lines[x] : "  ";
                size_t sw = str_width(s, strlen(s));
                fputs("| ", stdout);
                pad(w[i] > sw ? w[i] - sw : 0); /* ALIGN_RIGHT */
                fputs(s, stdout);
                fputc(' ', stdout);
            }
            fputs("|\n", stdout);
        }
    }
    table_line(w, ncols);
}
