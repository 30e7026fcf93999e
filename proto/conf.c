/*
 * conf.c: load YAML configuration into C structs by schema (see conf.h).
 *
 * The loader reads libyaml's event stream rather than building a document
 * tree: it walks the events and the schema together, one recursive call per
 * nested mapping of the schema. Two consequences matter. Recursion depth is
 * bounded by the schema (CONF_DEPTH_MAX), not by the input, because a value
 * of the wrong shape is an error at its first event and is never descended
 * into. And memory use is libyaml's parser state plus the optional marks
 * table, whose size is bounded by the schema's list capacities.
 *
 * Every failure formats one message "NAME:LINE:COLUMN: text" and unwinds;
 * the first error ends the load, since later ones are often echoes of it.
 */
#include "conf.h"

#include "nhub_err.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <yaml.h>

/* Longest dotted key path kept for messages and marks ("regions[4095].name"). */
#define CONF_PATH_CAP 256

/* Bytes of an offending value echoed into a message; the rest is elided. */
#define CONF_QUOTE_MAX 48
#define CONF_QUOTE_CAP (CONF_QUOTE_MAX * 4 + 8)

/* Room for "in \"path\"" and for lists of key names in messages. */
#define CONF_WHERE_CAP (CONF_PATH_CAP + 16)
#define CONF_NAMES_CAP 512

struct conf_mark_entry {
    char *path;
    conf_mark_t mark;
};

struct conf_marks {
    char *name;
    struct conf_mark_entry *v;
    size_t n;
    size_t cap;
};

/* State of one load: the parser, the current event and where we are. */
typedef struct conf_ctx {
    yaml_parser_t parser;
    yaml_event_t ev; /* valid while have_ev */
    bool have_ev;
    const char *name;
    const unsigned char *text;
    size_t len;
    char *err;
    size_t errcap;
    conf_marks_t *marks; /* NULL when the caller does not want them */
    char path[CONF_PATH_CAP];
    size_t path_len;
} conf_ctx_t;

/* ---- messages ----------------------------------------------------------- */

static void conf_vmsg(char *err, size_t errcap, const char *name, const conf_mark_t *m,
                      const char *fmt, va_list ap)
{
    if (!err || errcap == 0)
        return;
    int n;
    if (m)
        n = snprintf(err, errcap, "%s:%zu:%zu: ", name, m->line, m->column);
    else if (name)
        n = snprintf(err, errcap, "%s: ", name);
    else
        n = 0;
    if (n < 0) {
        err[0] = '\0';
        return;
    }
    if ((size_t)n >= errcap)
        return;
    vsnprintf(err + n, errcap - (size_t)n, fmt, ap);
}

static void conf_msg(char *err, size_t errcap, const char *name, const conf_mark_t *m,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void conf_msg(char *err, size_t errcap, const char *name, const conf_mark_t *m,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conf_vmsg(err, errcap, name, m, fmt, ap);
    va_end(ap);
}

static conf_mark_t conf_mark_of(yaml_mark_t ym)
{
    conf_mark_t m = {ym.line + 1, ym.column + 1};
    return m;
}

static int conf_fail(conf_ctx_t *c, yaml_mark_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int conf_fail(conf_ctx_t *c, yaml_mark_t at, const char *fmt, ...)
{
    conf_mark_t m = conf_mark_of(at);
    va_list ap;
    va_start(ap, fmt);
    conf_vmsg(c->err, c->errcap, c->name, &m, fmt, ap);
    va_end(ap);
    return NHUB_ECONFIG;
}

/*
 * Quote untrusted text for a message: bounded, with quotes, backslashes and
 * control bytes escaped so a message stays one printable line. UTF-8 passes
 * through (region names may be Chinese) and is cut only at a character
 * boundary.
 */
static const char *conf_quote(char *buf, size_t cap, const char *s, size_t len)
{
    size_t n = len < CONF_QUOTE_MAX ? len : CONF_QUOTE_MAX;
    while (n > 0 && n < len && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", ch);
        } else {
            buf[o++] = (char)ch;
        }
    }
    buf[o++] = '"';
    if (n < len && o + 4 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* "in \"hub\"" or "at the top level", for messages about the current map. */
static const char *conf_where(const conf_ctx_t *c, char *buf, size_t cap)
{
    if (c->path_len == 0)
        return "at the top level";
    snprintf(buf, cap, "in \"%s\"", c->path);
    return buf;
}

static bool conf_is_null(const yaml_event_t *ev)
{
    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)ev->data.scalar.value;
    return strcmp(v, "") == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* What the current event is, for "expected X, got Y". */
static const char *conf_got(const conf_ctx_t *c, char *buf, size_t cap)
{
    switch (c->ev.type) {
    case YAML_SCALAR_EVENT:
        if (conf_is_null(&c->ev))
            return "nothing";
        return conf_quote(buf, cap, (const char *)c->ev.data.scalar.value,
                          c->ev.data.scalar.length);
    case YAML_SEQUENCE_START_EVENT:
        return "a list";
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    default:
        return "something else";
    }
}

static const char *conf_expected(const conf_key_t *k, char *buf, size_t cap)
{
    size_t o;
    switch (k->type) {
    case CONF_STRING:
        return "a string";
    case CONF_BOOL:
        return "true or false";
    case CONF_INT64:
        if (k->min == 0 && k->max == 0)
            return "an integer";
        snprintf(buf, cap, "an integer from %" PRId64 " to %" PRId64, k->min, k->max);
        return buf;
    case CONF_SIZE:
        return "a size like 1048576 or 1MiB";
    case CONF_DURATION_MS:
        return "a duration like 500ms, 5s, 2m, 1h or 7d";
    case CONF_ENUM:
        o = (size_t)snprintf(buf, cap, "one of:");
        for (size_t i = 0; k->choices[i] && o < cap; i++)
            o += (size_t)snprintf(buf + o, cap - o, "%s %s", i ? "," : "", k->choices[i]);
        return buf;
    case CONF_STRING_LIST:
        return "a list of strings";
    case CONF_MAP:
        return "a mapping of keys";
    case CONF_SEQ_OF_MAPS:
        return "a list of mappings";
    }
    return "something else";
}

static int conf_type_error(conf_ctx_t *c, const conf_key_t *k)
{
    char exp[CONF_NAMES_CAP];
    char got[CONF_QUOTE_CAP];
    return conf_fail(c, c->ev.start_mark, "\"%s\": expected %s, got %s", c->path,
                     conf_expected(k, exp, sizeof exp), conf_got(c, got, sizeof got));
}

/*
 * libyaml's reader errors carry a byte offset rather than a mark; turn it
 * into a line and a column (in characters, as libyaml counts) so every
 * message has the same shape.
 */
static conf_mark_t conf_offset_mark(const conf_ctx_t *c, size_t offset)
{
    conf_mark_t m = {1, 1};
    if (offset > c->len)
        offset = c->len;
    for (size_t i = 0; i < offset; i++) {
        unsigned char ch = c->text[i];
        if (ch == '\n') {
            m.line++;
            m.column = 1;
        } else if ((ch & 0xC0) != 0x80) {
            m.column++;
        }
    }
    return m;
}

static int conf_syntax_error(conf_ctx_t *c)
{
    const yaml_parser_t *p = &c->parser;
    const char *problem = p->problem ? p->problem : "invalid YAML";

    if (p->error == YAML_MEMORY_ERROR) {
        conf_msg(c->err, c->errcap, c->name, NULL, "out of memory while parsing");
        return NHUB_ENOMEM;
    }
    if (p->error == YAML_READER_ERROR) {
        conf_mark_t m = conf_offset_mark(c, p->problem_offset);
        if (p->problem_value != -1)
            conf_msg(c->err, c->errcap, c->name, &m, "%s (0x%02X)", problem, p->problem_value);
        else
            conf_msg(c->err, c->errcap, c->name, &m, "%s", problem);
        return NHUB_ECONFIG;
    }
    if (p->context)
        return conf_fail(c, p->problem_mark, "%s (%s at line %zu, column %zu)", problem, p->context,
                         p->context_mark.line + 1, p->context_mark.column + 1);
    return conf_fail(c, p->problem_mark, "%s", problem);
}

/* ---- marks --------------------------------------------------------------- */

static conf_marks_t *conf_marks_new(const char *name)
{
    conf_marks_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->name = strdup(name);
    if (!self->name) {
        free(self);
        return NULL;
    }
    return self;
}

void conf_marks_destroy(conf_marks_t **self)
{
    if (!self || !*self)
        return;
    conf_marks_t *m = *self;
    for (size_t i = 0; i < m->n; i++)
        free(m->v[i].path);
    free(m->v);
    free(m->name);
    free(m);
    *self = NULL;
}

/* Remember where the value at the current path starts. */
static int conf_mark_record(conf_ctx_t *c, yaml_mark_t at)
{
    conf_marks_t *m = c->marks;
    if (!m)
        return 0;
    if (m->n == m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 32;
        if (ncap > SIZE_MAX / sizeof *m->v)
            goto nomem;
        struct conf_mark_entry *v = realloc(m->v, ncap * sizeof *v);
        if (!v)
            goto nomem;
        m->v = v;
        m->cap = ncap;
    }
    char *path = strdup(c->path);
    if (!path)
        goto nomem;
    m->v[m->n].path = path;
    m->v[m->n].mark = conf_mark_of(at);
    m->n++;
    return 0;
nomem:
    conf_msg(c->err, c->errcap, c->name, NULL, "out of memory");
    return NHUB_ENOMEM;
}

int conf_marks_find(const conf_marks_t *self, const char *path, conf_mark_t *out)
{
    if (!self || !path)
        return NHUB_ENOTFOUND;
    for (size_t i = 0; i < self->n; i++) {
        if (strcmp(self->v[i].path, path) == 0) {
            if (out)
                *out = self->v[i].mark;
            return 0;
        }
    }
    return NHUB_ENOTFOUND;
}

int conf_marks_error(const conf_marks_t *self, const char *path, char *err, size_t errcap,
                     const char *fmt, ...)
{
    char p[CONF_PATH_CAP];
    conf_mark_t m;
    const conf_mark_t *at = NULL;

    snprintf(p, sizeof p, "%s", path ? path : "");
    for (;;) {
        if (conf_marks_find(self, p, &m) == 0) {
            at = &m;
            break;
        }
        if (p[0] == '\0')
            break;
        /* Step to the parent: "a.b[2].c" -> "a.b[2]" -> "a.b" -> "a" -> "". */
        char *cut = strrchr(p, '.');
        char *br = strrchr(p, '[');
        if (!cut || (br && br > cut))
            cut = br;
        if (cut)
            *cut = '\0';
        else
            p[0] = '\0';
    }
    va_list ap;
    va_start(ap, fmt);
    conf_vmsg(err, errcap, self ? self->name : NULL, at, fmt, ap);
    va_end(ap);
    return NHUB_ECONFIG;
}

/* ---- paths --------------------------------------------------------------- */

static size_t conf_path_append(conf_ctx_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Extend the current path; returns the old length for conf_path_pop(). */
static size_t conf_path_append(conf_ctx_t *c, const char *fmt, ...)
{
    size_t saved = c->path_len;
    size_t room = sizeof c->path - c->path_len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->path + c->path_len, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        c->path_len += (size_t)n < room ? (size_t)n : room - 1;
    return saved;
}

static size_t conf_path_push_key(conf_ctx_t *c, const char *name)
{
    return conf_path_append(c, "%s%s", c->path_len ? "." : "", name);
}

static size_t conf_path_push_index(conf_ctx_t *c, size_t i)
{
    return conf_path_append(c, "[%zu]", i);
}

static void conf_path_pop(conf_ctx_t *c, size_t saved)
{
    c->path_len = saved;
    c->path[saved] = '\0';
}

/* ---- scalar parsers ------------------------------------------------------ */

struct conf_unit {
    const char *suffix;
    uint64_t mult;
};

static const struct conf_unit conf_size_units[] = {
    {"", 1},
    {"B", 1},
    {"KiB", UINT64_C(1) << 10},
    {"MiB", UINT64_C(1) << 20},
    {"GiB", UINT64_C(1) << 30},
    {"TiB", UINT64_C(1) << 40},
    {NULL, 0},
};

static const struct conf_unit conf_duration_units[] = {
    {"", 1},
    {"ms", 1},
    {"s", 1000},
    {"m", 60 * 1000},
    {"h", 60 * 60 * 1000},
    {"d", 24 * 60 * 60 * 1000},
    {NULL, 0},
};

/*
 * Digits followed by a unit from `units`, into *out = digits * unit. Syntax
 * is checked before magnitude, so "99999999999999999999x" is malformed, not
 * too big.
 */
static int conf_parse_with_unit(const char *s, const struct conf_unit *units, uint64_t limit,
                                uint64_t *out)
{
    uint64_t v = 0;
    bool overflow = false;
    const char *p = s;

    if (!s || *p < '0' || *p > '9')
        return NHUB_EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            overflow = true;
        else
            v = v * 10 + d;
    }
    for (const struct conf_unit *u = units; u->suffix; u++) {
        if (strcmp(p, u->suffix) != 0)
            continue;
        if (overflow || v > limit / u->mult)
            return NHUB_ETOOBIG;
        *out = v * u->mult;
        return 0;
    }
    return NHUB_EINVAL;
}

int conf_parse_size(const char *s, uint64_t *out)
{
    return conf_parse_with_unit(s, conf_size_units, UINT64_MAX, out);
}

int conf_parse_duration_ms(const char *s, int64_t *out)
{
    uint64_t v;
    int rc = conf_parse_with_unit(s, conf_duration_units, INT64_MAX, &v);
    if (rc == 0)
        *out = (int64_t)v;
    return rc;
}

static int conf_parse_int64(const char *s, int64_t *out)
{
    bool neg = false;
    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    uint64_t mag;
    /* The magnitude of INT64_MIN is INT64_MAX + 1. */
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    static const struct conf_unit plain[] = {{"", 1}, {NULL, 0}};
    int rc = conf_parse_with_unit(s, plain, limit, &mag);
    if (rc != 0)
        return rc;
    if (neg)
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    else
        *out = (int64_t)mag;
    return 0;
}

static int conf_parse_bool(const char *s, bool *out)
{
    if (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0) {
        *out = true;
        return 0;
    }
    if (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0) {
        *out = false;
        return 0;
    }
    return NHUB_EINVAL;
}

const char *conf_format_size(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    if (!buf || cap == 0)
        return buf;
    while (u + 1 < sizeof units / sizeof units[0] && bytes != 0 && bytes % 1024 == 0) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, cap, "%" PRIu64 "%s", bytes, units[u]);
    return buf;
}

const char *conf_format_duration_ms(int64_t ms, char *buf, size_t cap)
{
    static const struct {
        const char *suffix;
        int64_t per_next; /* how many of this unit make the next one */
    } units[] = {{"ms", 1000}, {"s", 60}, {"m", 60}, {"h", 24}, {"d", 0}};
    size_t u = 0;
    if (!buf || cap == 0)
        return buf;
    while (ms > 0 && units[u].per_next && ms % units[u].per_next == 0) {
        ms /= units[u].per_next;
        u++;
    }
    snprintf(buf, cap, "%" PRId64 "%s", ms, units[u].suffix);
    return buf;
}

/* ---- schema checks ------------------------------------------------------- */

static bool conf_key_valid(const conf_key_t *k)
{
    if (k->name[0] == '\0' || ((k->min || k->max) && k->min > k->max))
        return false;
    switch (k->type) {
    case CONF_STRING:
        return k->size > 0;
    case CONF_BOOL:
        return k->size == sizeof(bool);
    case CONF_INT64:
    case CONF_DURATION_MS:
        return k->size == sizeof(int64_t);
    case CONF_SIZE:
        return k->size == sizeof(uint64_t) && k->min >= 0;
    case CONF_ENUM:
        return k->size == sizeof(int) && k->choices && k->choices[0];
    case CONF_STRING_LIST:
        return k->size > 0 && k->max_count > 0 && k->min_count <= k->max_count;
    case CONF_MAP:
        return k->schema != NULL;
    case CONF_SEQ_OF_MAPS:
        return k->schema && k->size > 0 && k->max_count > 0 && k->min_count <= k->max_count;
    }
    return false;
}

/* Programmer errors in a schema are caught here rather than as odd writes later. */
static int conf_check_schema(const conf_key_t *schema, int depth, char *err, size_t errcap)
{
    if (!schema || depth > CONF_DEPTH_MAX) {
        conf_msg(err, errcap, NULL, NULL, "schema: missing or nested deeper than %d",
                 CONF_DEPTH_MAX);
        return NHUB_EINVAL;
    }
    for (size_t i = 0; schema[i].name; i++) {
        const conf_key_t *k = &schema[i];
        bool ok = i < CONF_KEYS_MAX && conf_key_valid(k);
        for (size_t j = 0; ok && j < i; j++)
            ok = strcmp(schema[j].name, k->name) != 0;
        if (!ok) {
            conf_msg(err, errcap, NULL, NULL, "schema: key \"%s\" is malformed", k->name);
            return NHUB_EINVAL;
        }
        if (k->type == CONF_MAP || k->type == CONF_SEQ_OF_MAPS) {
            int rc = conf_check_schema(k->schema, depth + 1, err, errcap);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* ---- the walk ------------------------------------------------------------ */

static int conf_next(conf_ctx_t *c)
{
    if (c->have_ev) {
        yaml_event_delete(&c->ev);
        c->have_ev = false;
    }
    if (!yaml_parser_parse(&c->parser, &c->ev))
        return conf_syntax_error(c);
    c->have_ev = true;

    const yaml_char_t *anchor = NULL;
    switch (c->ev.type) {
    case YAML_ALIAS_EVENT:
        return conf_fail(c, c->ev.start_mark,
                         "aliases (*name) are not supported; write the value out in full");
    case YAML_SCALAR_EVENT:
        anchor = c->ev.data.scalar.anchor;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = c->ev.data.sequence_start.anchor;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = c->ev.data.mapping_start.anchor;
        break;
    default:
        break;
    }
    if (anchor)
        return conf_fail(c, c->ev.start_mark, "anchors (&name) are not supported");
    return 0;
}

static int conf_range_error(conf_ctx_t *c, const conf_key_t *k, const char *text, size_t len)
{
    char got[CONF_QUOTE_CAP];
    char lo[32];
    char hi[32];

    conf_quote(got, sizeof got, text, len);
    if (k->min == 0 && k->max == 0)
        return conf_fail(c, c->ev.start_mark, "\"%s\": %s is too large", c->path, got);
    if (k->type == CONF_SIZE) {
        conf_format_size((uint64_t)k->min, lo, sizeof lo);
        conf_format_size((uint64_t)k->max, hi, sizeof hi);
    } else if (k->type == CONF_DURATION_MS) {
        conf_format_duration_ms(k->min, lo, sizeof lo);
        conf_format_duration_ms(k->max, hi, sizeof hi);
    } else {
        snprintf(lo, sizeof lo, "%" PRId64, k->min);
        snprintf(hi, sizeof hi, "%" PRId64, k->max);
    }
    return conf_fail(c, c->ev.start_mark, "\"%s\": %s is out of range (expected %s to %s)", c->path,
                     got, lo, hi);
}

/* A parsed number against the key's bounds; both 0 means unbounded. */
static bool conf_in_range(const conf_key_t *k, int64_t v, uint64_t uv)
{
    if (k->min == 0 && k->max == 0)
        return true;
    if (k->type == CONF_SIZE)
        return uv >= (uint64_t)k->min && uv <= (uint64_t)k->max;
    return v >= k->min && v <= k->max;
}

static int conf_set_number(conf_ctx_t *c, const conf_key_t *k, unsigned char *dst, const char *s,
                           size_t len)
{
    int64_t v = 0;
    uint64_t uv = 0;
    int rc;

    if (k->type == CONF_SIZE)
        rc = conf_parse_size(s, &uv);
    else if (k->type == CONF_DURATION_MS)
        rc = conf_parse_duration_ms(s, &v);
    else
        rc = conf_parse_int64(s, &v);
    if (rc == NHUB_EINVAL)
        return conf_type_error(c, k);
    if (rc != 0 || !conf_in_range(k, v, uv))
        return conf_range_error(c, k, s, len);
    if (k->type == CONF_SIZE)
        memcpy(dst, &uv, sizeof uv);
    else
        memcpy(dst, &v, sizeof v);
    return 0;
}

static int conf_set_enum(conf_ctx_t *c, const conf_key_t *k, unsigned char *dst, const char *s)
{
    for (int i = 0; k->choices[i]; i++) {
        if (strcmp(k->choices[i], s) == 0) {
            memcpy(dst, &i, sizeof i);
            return 0;
        }
    }
    return conf_type_error(c, k);
}

/* The current event is a scalar value for key `k`; store it at `dst`. */
static int conf_load_scalar(conf_ctx_t *c, const conf_key_t *k, unsigned char *dst)
{
    if (c->ev.type != YAML_SCALAR_EVENT || conf_is_null(&c->ev))
        return conf_type_error(c, k);

    const char *s = (const char *)c->ev.data.scalar.value;
    size_t len = c->ev.data.scalar.length;
    bool b;

    /* A "\0" escape would silently cut the value short in a C string. */
    if (memchr(s, '\0', len))
        return conf_fail(c, c->ev.start_mark, "\"%s\": value contains a NUL character", c->path);
    switch (k->type) {
    case CONF_STRING:
        if (len >= k->size)
            return conf_fail(c, c->ev.start_mark,
                             "\"%s\": string is too long (%zu bytes, at most %zu)", c->path, len,
                             k->size - 1);
        memcpy(dst, s, len + 1);
        return 0;
    case CONF_BOOL:
        if (conf_parse_bool(s, &b) != 0)
            return conf_type_error(c, k);
        memcpy(dst, &b, sizeof b);
        return 0;
    case CONF_ENUM:
        return conf_set_enum(c, k, dst, s);
    default:
        return conf_set_number(c, k, dst, s, len);
    }
}

static int conf_load_value(conf_ctx_t *c, const conf_key_t *k, unsigned char *base);

static int conf_check_required(conf_ctx_t *c, const conf_key_t *schema, uint64_t seen,
                               yaml_mark_t at)
{
    char where[CONF_WHERE_CAP];
    for (size_t i = 0; schema[i].name; i++) {
        if ((schema[i].flags & CONF_REQUIRED) && !(seen & (UINT64_C(1) << i)))
            return conf_fail(c, at, "missing required key \"%s\" %s", schema[i].name,
                             conf_where(c, where, sizeof where));
    }
    return 0;
}

static int conf_unknown_key(conf_ctx_t *c, const conf_key_t *schema)
{
    char key[CONF_QUOTE_CAP];
    char where[CONF_WHERE_CAP];
    char names[CONF_NAMES_CAP];
    size_t o = 0;

    names[0] = '\0';
    for (size_t i = 0; schema[i].name && o < sizeof names; i++)
        o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "", schema[i].name);
    return conf_fail(c, c->ev.start_mark, "unknown key %s %s (expected one of: %s)",
                     conf_quote(key, sizeof key, (const char *)c->ev.data.scalar.value,
                                c->ev.data.scalar.length),
                     conf_where(c, where, sizeof where), names);
}

/* The current event is a key of a mapping described by `schema`; load its value. */
static int conf_load_entry(conf_ctx_t *c, const conf_key_t *schema, unsigned char *base,
                           uint64_t *seen)
{
    char where[CONF_WHERE_CAP];
    char got[CONF_QUOTE_CAP];

    if (c->ev.type != YAML_SCALAR_EVENT)
        return conf_fail(c, c->ev.start_mark, "expected a key name %s, got %s",
                         conf_where(c, where, sizeof where), conf_got(c, got, sizeof got));

    const char *name = (const char *)c->ev.data.scalar.value;
    size_t len = c->ev.data.scalar.length;
    size_t i;
    for (i = 0; schema[i].name; i++) {
        if (strlen(schema[i].name) == len && memcmp(schema[i].name, name, len) == 0)
            break;
    }
    if (!schema[i].name)
        return conf_unknown_key(c, schema);
    if (*seen & (UINT64_C(1) << i))
        return conf_fail(c, c->ev.start_mark, "duplicate key \"%s\" %s", schema[i].name,
                         conf_where(c, where, sizeof where));
    *seen |= UINT64_C(1) << i;

    size_t saved = conf_path_push_key(c, schema[i].name);
    int rc = conf_next(c);
    if (rc == 0)
        rc = conf_load_value(c, &schema[i], base);
    conf_path_pop(c, saved);
    return rc;
}

/* The current event starts a mapping; load it into `base` by `schema`. */
static int conf_load_map(conf_ctx_t *c, const conf_key_t *schema, unsigned char *base)
{
    yaml_mark_t start = c->ev.start_mark;
    uint64_t seen = 0;

    for (;;) {
        int rc = conf_next(c);
        if (rc != 0)
            return rc;
        if (c->ev.type == YAML_MAPPING_END_EVENT)
            break;
        rc = conf_load_entry(c, schema, base, &seen);
        if (rc != 0)
            return rc;
    }
    return conf_check_required(c, schema, seen, start);
}

/* A nested section; an empty one ("limits:" with every key commented out) is allowed. */
static int conf_load_submap(conf_ctx_t *c, const conf_key_t *k, unsigned char *dst)
{
    if (conf_is_null(&c->ev))
        return conf_check_required(c, k->schema, 0, c->ev.start_mark);
    if (c->ev.type != YAML_MAPPING_START_EVENT)
        return conf_type_error(c, k);
    return conf_load_map(c, k->schema, dst);
}

/* One entry of a STRING_LIST or SEQ_OF_MAPS at index `i`. */
static int conf_load_item(conf_ctx_t *c, const conf_key_t *k, unsigned char *dst)
{
    if (k->type == CONF_STRING_LIST) {
        const conf_key_t item = {.name = k->name, .type = CONF_STRING, .size = k->size};
        return conf_load_scalar(c, &item, dst);
    }
    if (c->ev.type != YAML_MAPPING_START_EVENT) {
        const conf_key_t item = {.name = k->name, .type = CONF_MAP, .schema = k->schema};
        return conf_type_error(c, &item);
    }
    if (k->elem_default)
        memcpy(dst, k->elem_default, k->size);
    else
        memset(dst, 0, k->size);
    return conf_load_map(c, k->schema, dst);
}

static int conf_load_list(conf_ctx_t *c, const conf_key_t *k, unsigned char *base)
{
    yaml_mark_t start = c->ev.start_mark;
    unsigned char *first = base + k->offset;
    size_t count = 0;

    if (!conf_is_null(&c->ev)) {
        if (c->ev.type != YAML_SEQUENCE_START_EVENT)
            return conf_type_error(c, k);
        for (;;) {
            int rc = conf_next(c);
            if (rc != 0)
                return rc;
            if (c->ev.type == YAML_SEQUENCE_END_EVENT)
                break;
            if (count == k->max_count)
                return conf_fail(c, c->ev.start_mark, "\"%s\": too many entries (at most %zu)",
                                 c->path, k->max_count);
            size_t saved = conf_path_push_index(c, count);
            rc = conf_mark_record(c, c->ev.start_mark);
            if (rc == 0)
                rc = conf_load_item(c, k, first + count * k->size);
            conf_path_pop(c, saved);
            if (rc != 0)
                return rc;
            count++;
        }
    }
    if (count < k->min_count)
        return conf_fail(c, start, "\"%s\": expected at least %zu entries, got %zu", c->path,
                         k->min_count, count);
    memcpy(base + k->count_offset, &count, sizeof count);
    return 0;
}

/* The current event is the value of key `k` of the struct at `base`. */
static int conf_load_value(conf_ctx_t *c, const conf_key_t *k, unsigned char *base)
{
    int rc = conf_mark_record(c, c->ev.start_mark);
    if (rc != 0)
        return rc;
    switch (k->type) {
    case CONF_MAP:
        return conf_load_submap(c, k, base + k->offset);
    case CONF_STRING_LIST:
    case CONF_SEQ_OF_MAPS:
        return conf_load_list(c, k, base);
    default:
        return conf_load_scalar(c, k, base + k->offset);
    }
}

/* STREAM-START, at most one document whose root is a mapping, STREAM-END. */
static int conf_load_document(conf_ctx_t *c, const conf_key_t *schema, void *target)
{
    char got[CONF_QUOTE_CAP];
    int rc = conf_next(c);
    if (rc == 0)
        rc = conf_next(c);
    if (rc != 0)
        return rc;
    if (c->ev.type == YAML_STREAM_END_EVENT) {
        /* An empty file: only its required keys can be wrong. */
        rc = conf_mark_record(c, c->ev.start_mark);
        return rc ? rc : conf_check_required(c, schema, 0, c->ev.start_mark);
    }
    rc = conf_next(c);
    if (rc == 0)
        rc = conf_mark_record(c, c->ev.start_mark);
    if (rc != 0)
        return rc;
    if (conf_is_null(&c->ev))
        rc = conf_check_required(c, schema, 0, c->ev.start_mark);
    else if (c->ev.type == YAML_MAPPING_START_EVENT)
        rc = conf_load_map(c, schema, target);
    else
        rc = conf_fail(c, c->ev.start_mark, "expected a mapping of keys at the top level, got %s",
                       conf_got(c, got, sizeof got));
    if (rc == 0)
        rc = conf_next(c); /* DOCUMENT-END */
    if (rc == 0)
        rc = conf_next(c);
    if (rc == 0 && c->ev.type != YAML_STREAM_END_EVENT)
        rc = conf_fail(c, c->ev.start_mark, "only one YAML document is allowed per file");
    return rc;
}

/* ---- entry points -------------------------------------------------------- */

int conf_load_string_marked(const char *name, const char *text, size_t len,
                            const conf_key_t *schema, void *target, conf_marks_t **marks, char *err,
                            size_t errcap)
{
    conf_ctx_t c;
    bool parser_ready = false;
    int rc;

    memset(&c, 0, sizeof c);
    if (marks)
        *marks = NULL;
    if (err && errcap)
        err[0] = '\0';
    c.name = name ? name : "<config>";
    c.text = (const unsigned char *)(text ? text : "");
    c.len = text ? len : 0;
    c.err = err;
    c.errcap = errcap;

    if (!target || (!text && len)) {
        conf_msg(err, errcap, c.name, NULL, "no text or no target");
        return NHUB_EINVAL;
    }
    rc = conf_check_schema(schema, 0, err, errcap);
    if (rc != 0)
        return rc;
    if (c.len > CONF_FILE_MAX) {
        conf_msg(err, errcap, c.name, NULL, "too large (%zu bytes, at most %u)", c.len,
                 CONF_FILE_MAX);
        return NHUB_ECONFIG;
    }
    if (marks) {
        c.marks = conf_marks_new(c.name);
        if (!c.marks) {
            conf_msg(err, errcap, c.name, NULL, "out of memory");
            rc = NHUB_ENOMEM;
            goto done;
        }
    }
    if (!yaml_parser_initialize(&c.parser)) {
        conf_msg(err, errcap, c.name, NULL, "out of memory");
        rc = NHUB_ENOMEM;
        goto done;
    }
    parser_ready = true;
    yaml_parser_set_input_string(&c.parser, c.text, c.len);
    rc = conf_load_document(&c, schema, target);

done:
    if (c.have_ev)
        yaml_event_delete(&c.ev);
    if (parser_ready)
        yaml_parser_delete(&c.parser);
    if (rc == 0 && marks) {
        *marks = c.marks;
        c.marks = NULL;
    }
    conf_marks_destroy(&c.marks);
    return rc;
}

int conf_load_string(const char *name, const char *text, size_t len, const conf_key_t *schema,
                     void *target, char *err, size_t errcap)
{
    return conf_load_string_marked(name, text, len, schema, target, NULL, err, errcap);
}

/* Read all of `path`, at most CONF_FILE_MAX bytes; caller frees *out. */
static int conf_read_file(const char *path, char **out, size_t *out_len, char *err, size_t errcap)
{
    char *buf = NULL;
    size_t cap = 0;
    size_t len = 0;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        conf_msg(err, errcap, path, NULL, "cannot open: %s", strerror(errno));
        return NHUB_EIO;
    }
    for (;;) {
        if (len == cap) {
            /* Grow geometrically up to one byte past the limit, to detect it. */
            size_t ncap = cap ? cap * 2 : 4096;
            if (ncap > (size_t)CONF_FILE_MAX + 1)
                ncap = (size_t)CONF_FILE_MAX + 1;
            char *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                conf_msg(err, errcap, path, NULL, "out of memory");
                rc = NHUB_ENOMEM;
                goto fail;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            conf_msg(err, errcap, path, NULL, "cannot read: %s", strerror(errno));
            rc = NHUB_EIO;
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > CONF_FILE_MAX) {
            conf_msg(err, errcap, path, NULL, "too large (at most %u bytes)", CONF_FILE_MAX);
            rc = NHUB_ECONFIG;
            goto fail;
        }
    }
    close(fd);
    *out = buf;
    *out_len = len;
    return 0;

fail:
    free(buf);
    close(fd);
    return rc;
}

int conf_load_file_marked(const char *path, const conf_key_t *schema, void *target,
                          conf_marks_t **marks, char *err, size_t errcap)
{
    char *text = NULL;
    size_t len = 0;

    if (marks)
        *marks = NULL;
    if (err && errcap)
        err[0] = '\0';
    if (!path) {
        conf_msg(err, errcap, NULL, NULL, "no configuration path");
        return NHUB_EINVAL;
    }
    int rc = conf_read_file(path, &text, &len, err, errcap);
    if (rc != 0)
        return rc;
    rc = conf_load_string_marked(path, text ? text : "", len, schema, target, marks, err, errcap);
    free(text);
    return rc;
}

int conf_load_file(const char *path, const conf_key_t *schema, void *target, char *err,
                   size_t errcap)
{
    return conf_load_file_marked(path, schema, target, NULL, err, errcap);
}
