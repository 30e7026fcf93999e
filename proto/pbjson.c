/*
 * pbjson.c: JSON <-> protobuf over protobuf-c descriptors (pbjson.h has the
 * mapping).
 *
 * Both directions walk the descriptor, never generated code, so a new
 * schema needs nothing here. protobuf-c 1.4.1 keeps a message as a struct
 * whose layout the field descriptors give: a proto3 singular field at
 * `offset`; a repeated one as a count at `quantifier_offset` and an array
 * at `offset`; a oneof member at `offset` inside a union whose case (the
 * member's field number, 0 for none) sits at `quantifier_offset`. Building
 * a message, every pointer stored in it is at all times either its default
 * or memory we own, and a oneof's case is set before its member is
 * written, so protobuf_c_message_free_unpacked(m, NULL) cleans up after a
 * failure at any point. Every allocation here is malloc(), which is what
 * that NULL allocator frees with.
 *
 * protobuf-c has no json_name, no map flag and no oneof names: the JSON
 * name is computed as protoc computes it (ToJsonName), and a map field is
 * recognised by the entry type protoc makes for it (MapEntryName).
 */
#include "pbjson.h"

#include "nhub_err.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_CAP 256 /* bytes of a field path in an error */
#define KEY_SHOWN 64 /* bytes of an unknown key an error shows */
#define NAME_SMALL 128

/* ---- names and paths ------------------------------------------------------ */

/*
 * protoc's camel case of field name `name`: '_' dropped and the next
 * character upper-cased (ASCII), the first one too if `cap_first`
 * (ToJsonName without, MapEntryName with). Writes at most cap - 1 bytes and
 * a NUL into `out` when cap > 0; returns the full length.
 */
static size_t camel(const char *name, bool cap_first, char *out, size_t cap)
{
    size_t n = 0;
    bool up = cap_first;
    for (; *name; name++) {
        char ch = *name;
        if (ch == '_') {
            up = true;
            continue;
        }
        if (up && ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        up = false;
        if (n + 1 < cap)
            out[n] = ch;
        n++;
    }
    if (cap > 0)
        out[n < cap ? n : cap - 1] = '\0';
    return n;
}

/* Does the camel case of `name` equal the `len` bytes of `s`? */
static bool camel_is(const char *name, bool cap_first, const char *s, size_t len)
{
    size_t n = 0;
    bool up = cap_first;
    for (; *name; name++) {
        char ch = *name;
        if (ch == '_') {
            up = true;
            continue;
        }
        if (up && ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        up = false;
        if (n >= len || s[n] != ch)
            return false;
        n++;
    }
    return n == len;
}

/* The JSON name of field `name` in `small` if it fits, else in a malloc'd copy; NULL if out of
 * memory. */
static char *json_name(const char *name, char small[NAME_SMALL], size_t *len)
{
    *len = camel(name, false, small, NAME_SMALL);
    if (*len < NAME_SMALL)
        return small;
    char *big = malloc(*len + 1);
    if (big)
        camel(name, false, big, *len + 1);
    return big;
}

static void json_name_free(char *name, char small[NAME_SMALL])
{
    if (name != small)
        free(name);
}

/* Where in the input we are, and where errors go. */
typedef struct ctx {
    char path[PATH_CAP];
    size_t len; /* bytes of path in use (< PATH_CAP) */
    char *why;
    size_t whycap;
} ctx_t;

static void path_put(ctx_t *c, char ch)
{
    if (c->len + 1 < PATH_CAP)
        c->path[c->len++] = ch;
    c->path[c->len] = '\0';
}

/* Append ".name" (the field's JSON name); returns the length to restore. */
static size_t path_push_field(ctx_t *c, const char *proto_name)
{
    size_t old = c->len;
    if (old > 0)
        path_put(c, '.');
    c->len += camel(proto_name, false, c->path + c->len, PATH_CAP - c->len);
    if (c->len >= PATH_CAP)
        c->len = PATH_CAP - 1;
    return old;
}

/* Append ".key" as given in the input: at most KEY_SHOWN bytes, control characters as '?'. */
static size_t path_push_key(ctx_t *c, const char *key, size_t klen)
{
    size_t old = c->len;
    if (old > 0)
        path_put(c, '.');
    size_t n = klen < KEY_SHOWN ? klen : KEY_SHOWN;
    /* Do not cut a UTF-8 sequence in two. */
    while (n < klen && n > 0 && ((unsigned char)key[n] & 0xc0) == 0x80)
        n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)key[i];
        path_put(c, ch < 0x20 || ch == 0x7f ? '?' : (char)ch);
    }
    if (n < klen) {
        path_put(c, '.');
        path_put(c, '.');
        path_put(c, '.');
    }
    return old;
}

static size_t path_push_index(ctx_t *c, size_t i)
{
    size_t old = c->len;
    int n = snprintf(c->path + c->len, PATH_CAP - c->len, "[%zu]", i);
    if (n > 0)
        c->len += (size_t)n;
    if (c->len >= PATH_CAP)
        c->len = PATH_CAP - 1;
    return old;
}

static void path_pop(ctx_t *c, size_t old)
{
    c->len = old;
    c->path[old] = '\0';
}

/* Write "path: what" (or just "what" at the top) into the caller's buffer; returns NHUB_EINVAL. */
static int fail(ctx_t *c, const char *fmt, ...)
{
    if (!c->why || c->whycap == 0)
        return NHUB_EINVAL;
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(c->why, c->whycap, "%s%s%s", c->path, c->len ? ": " : "", what);
    return NHUB_EINVAL;
}

/* ---- what is supported ---------------------------------------------------- */

/* Is `f` of `d` a map<K, V> field? protoc makes it `repeated <Field>Entry` with a nested entry
 * type. */
static bool is_map(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    const ProtobufCMessageDescriptor *e = f->descriptor;
    size_t plen = strlen(d->name), elen = strlen(e->name);
    if (e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 ||
        strcmp(e->fields[0].name, "key") != 0 || strcmp(e->fields[1].name, "value") != 0)
        return false;
    if (elen < plen + 1 + 5 || strncmp(e->name, d->name, plen) != 0 || e->name[plen] != '.' ||
        strcmp(e->name + elen - 5, "Entry") != 0)
        return false;
    return camel_is(f->name, true, e->name + plen + 1, elen - plen - 1 - 5);
}

/* Why field `f` of `d` cannot be converted, or NULL if it can. */
static const char *unsupported(const ProtobufCMessageDescriptor *d,
                               const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL || f->label == PROTOBUF_C_LABEL_REQUIRED)
        return "proto2 fields are not supported";
    if (is_map(d, f))
        return "map fields are not supported";
    return NULL;
}

/* ---- integers ------------------------------------------------------------- */

typedef struct int_kind {
    bool is_signed;
    unsigned bits;
    const char *name;
} int_kind_t;

static bool int_kind(ProtobufCType t, int_kind_t *k)
{
    static const struct {
        ProtobufCType type;
        int_kind_t kind;
    } kinds[] = {
        {PROTOBUF_C_TYPE_INT32, {true, 32, "int32"}},
        {PROTOBUF_C_TYPE_SINT32, {true, 32, "sint32"}},
        {PROTOBUF_C_TYPE_SFIXED32, {true, 32, "sfixed32"}},
        {PROTOBUF_C_TYPE_UINT32, {false, 32, "uint32"}},
        {PROTOBUF_C_TYPE_FIXED32, {false, 32, "fixed32"}},
        {PROTOBUF_C_TYPE_INT64, {true, 64, "int64"}},
        {PROTOBUF_C_TYPE_SINT64, {true, 64, "sint64"}},
        {PROTOBUF_C_TYPE_SFIXED64, {true, 64, "sfixed64"}},
        {PROTOBUF_C_TYPE_UINT64, {false, 64, "uint64"}},
        {PROTOBUF_C_TYPE_FIXED64, {false, 64, "fixed64"}},
        {PROTOBUF_C_TYPE_ENUM, {true, 32, "an enum (int32)"}},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (kinds[i].type == t) {
            *k = kinds[i].kind;
            return true;
        }
    }
    return false;
}

enum { NUM_OK, NUM_NOT_INTEGER, NUM_TOO_BIG };

/* A decimal integer string: an optional '-', then one or more digits, nothing else. */
static int integer_text(const char *s, size_t len, bool *neg, uint64_t *mag)
{
    size_t i = 0;
    *neg = len > 0 && s[0] == '-';
    i = *neg ? 1 : 0;
    if (i == len)
        return NUM_NOT_INTEGER;
    uint64_t m = 0;
    bool big = false;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return NUM_NOT_INTEGER;
        unsigned d = (unsigned)(s[i] - '0');
        if (m > (UINT64_MAX - d) / 10)
            big = true;
        else
            m = m * 10 + d;
    }
    *mag = m;
    return big ? NUM_TOO_BIG : NUM_OK;
}

/* JSON value `v` as an integer's sign and magnitude: a JSON integer, an integral real, or decimal
 * text. */
static int integer_of(const json_t *v, bool *neg, uint64_t *mag)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        *neg = x < 0;
        *mag = x < 0 ? (uint64_t)(-(x + 1)) + 1 : (uint64_t)x;
        return NUM_OK;
    }
    if (json_is_real(v)) {
        double r = json_real_value(v);
        if (!isfinite(r))
            return NUM_NOT_INTEGER;
        double a = fabs(r);
        if (a >= 18446744073709551616.0) /* 2^64 */
            return NUM_TOO_BIG;
        *neg = r < 0;
        *mag = (uint64_t)a;
        return (double)*mag == a ? NUM_OK : NUM_NOT_INTEGER;
    }
    if (json_is_string(v))
        return integer_text(json_string_value(v), json_string_length(v), neg, mag);
    return NUM_NOT_INTEGER;
}

static bool in_range(const int_kind_t *k, bool neg, uint64_t mag)
{
    if (mag == 0)
        return true;
    if (!k->is_signed)
        return !neg && (k->bits == 64 || mag <= UINT32_MAX);
    uint64_t max = k->bits == 64 ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX;
    return neg ? mag <= max + 1 : mag <= max;
}

static void store_int(const int_kind_t *k, bool neg, uint64_t mag, void *slot)
{
    if (!k->is_signed) {
        if (k->bits == 32)
            *(uint32_t *)slot = (uint32_t)mag;
        else
            *(uint64_t *)slot = mag;
        return;
    }
    /* mag <= 2^63 here (in_range); written without overflowing int64_t. */
    int64_t s = neg && mag > 0 ? -(int64_t)(mag - 1) - 1 : (int64_t)mag;
    if (k->bits == 32)
        *(int32_t *)slot = (int32_t)s;
    else
        *(int64_t *)slot = s;
}

static int int_from_json(ctx_t *c, const int_kind_t *k, const json_t *v, void *slot)
{
    bool neg = false;
    uint64_t mag = 0;
    int r = integer_of(v, &neg, &mag);
    if (r == NUM_NOT_INTEGER)
        return fail(c, "expected an integer");
    if (r == NUM_TOO_BIG || !in_range(k, neg, mag))
        return fail(c, "out of range for %s", k->name);
    store_int(k, neg, mag, slot);
    return 0;
}

/* ---- floating point ------------------------------------------------------- */

/* Decimal text for a float or double: [0-9.eE+-] only, all of it read by strtod. */
static int real_text(const char *s, size_t len, double *out)
{
    if (len == 0 || len > 400 || strlen(s) != len)
        return NUM_NOT_INTEGER;
    bool digit = false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            digit = true;
        else if (!strchr(".eE+-", s[i]))
            return NUM_NOT_INTEGER;
    }
    char *end = NULL;
    double d = strtod(s, &end);
    if (!digit || end != s + len)
        return NUM_NOT_INTEGER;
    *out = d;
    return isfinite(d) ? NUM_OK : NUM_TOO_BIG;
}

static int real_from_json(ctx_t *c, const ProtobufCFieldDescriptor *f, const json_t *v, void *slot)
{
    bool is_float = f->type == PROTOBUF_C_TYPE_FLOAT;
    double d = 0;
    if (json_is_integer(v)) {
        d = (double)json_integer_value(v);
    } else if (json_is_real(v)) {
        d = json_real_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "NaN") == 0)
            d = NAN;
        else if (strcmp(s, "Infinity") == 0)
            d = INFINITY;
        else if (strcmp(s, "-Infinity") == 0)
            d = -INFINITY;
        else {
            int r = real_text(s, json_string_length(v), &d);
            if (r == NUM_TOO_BIG)
                return fail(c, "out of range for %s", is_float ? "float" : "double");
            if (r != NUM_OK)
                return fail(c, "expected a number");
        }
    } else {
        return fail(c, "expected a number");
    }
    if (!is_float) {
        *(double *)slot = d;
        return 0;
    }
    if (isfinite(d) && fabs(d) > FLT_MAX)
        return fail(c, "out of range for float");
    *(float *)slot = (float)d;
    return 0;
}

static json_t *real_to_json(double d)
{
    if (isnan(d))
        return json_string("NaN");
    if (isinf(d))
        return json_string(d > 0 ? "Infinity" : "-Infinity");
    return json_real(d);
}

/* ---- base64 (RFC 4648) ---------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of `ch` in the standard or the URL-safe alphabet, or -1. */
static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+' || ch == '-')
        return 62;
    if (ch == '/' || ch == '_')
        return 63;
    return -1;
}

/*
 * Decode `n` bytes of base64 text, standard or URL-safe, padded (to a
 * multiple of 4 with at most two '=') or not. The bits after the last
 * whole byte must be zero, so every byte string has one spelling per
 * alphabet. Returns 0 with *out malloc'd (never NULL) and *outlen, or
 * NHUB_EINVAL (not base64), NHUB_ENOMEM.
 */
static int base64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen)
{
    size_t pad = 0;
    while (pad < 2 && n > pad && s[n - 1 - pad] == '=')
        pad++;
    if (pad > 0 && n % 4 != 0)
        return NHUB_EINVAL;
    size_t m = n - pad;
    if (m % 4 == 1)
        return NHUB_EINVAL;
    size_t len = m / 4 * 3 + (m % 4 == 0 ? 0 : m % 4 - 1);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return NHUB_ENOMEM;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t w = 0;
    for (size_t i = 0; i < m; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) {
            free(buf);
            return NHUB_EINVAL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[w++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) { /* leftover bits of a final partial group */
        free(buf);
        return NHUB_EINVAL;
    }
    *out = buf;
    *outlen = w;
    return 0;
}

/* Standard base64 with padding, as a new JSON string; NULL if out of memory. */
static json_t *base64_to_json(const uint8_t *p, size_t n)
{
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    size_t len = (n + 2) / 3 * 4;
    char *buf = malloc(len + 1);
    if (!buf)
        return NULL;
    size_t w = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t g = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            g |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            g |= p[i + 2];
        buf[w++] = B64[g >> 18];
        buf[w++] = B64[(g >> 12) & 63];
        buf[w++] = i + 1 < n ? B64[(g >> 6) & 63] : '=';
        buf[w++] = i + 2 < n ? B64[g & 63] : '=';
    }
    buf[w] = '\0';
    json_t *j = json_stringn_nocheck(buf, w);
    free(buf);
    return j;
}

/* ---- JSON -> message ------------------------------------------------------ */

static int msg_from_json(ctx_t *c, const ProtobufCMessageDescriptor *d, const json_t *o,
                         unsigned depth, ProtobufCMessage **out);

static int string_from_json(ctx_t *c, const json_t *v, char **slot)
{
    if (!json_is_string(v))
        return fail(c, "expected a string");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (memchr(s, '\0', n))
        return fail(c, "a string holds a NUL");
    char *copy = malloc(n + 1);
    if (!copy)
        return NHUB_ENOMEM;
    memcpy(copy, s, n + 1);
    *slot = copy;
    return 0;
}

static int bytes_from_json(ctx_t *c, const json_t *v, ProtobufCBinaryData *slot)
{
    if (!json_is_string(v))
        return fail(c, "expected a base64 string");
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = base64_decode(json_string_value(v), json_string_length(v), &data, &len);
    if (rc == NHUB_EINVAL)
        return fail(c, "not base64");
    if (rc != 0)
        return rc;
    slot->data = data;
    slot->len = len;
    return 0;
}

static int enum_from_json(ctx_t *c, const ProtobufCEnumDescriptor *e, const json_t *v,
                          int32_t *slot)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        const ProtobufCEnumValue *ev = strlen(s) == json_string_length(v)
                                           ? protobuf_c_enum_descriptor_get_value_by_name(e, s)
                                           : NULL;
        if (!ev)
            return fail(c, "unknown name for %s", e->name);
        *slot = ev->value;
        return 0;
    }
    if (!json_is_number(v))
        return fail(c, "expected a name of %s", e->name);
    int_kind_t k;
    int_kind(PROTOBUF_C_TYPE_ENUM, &k);
    return int_from_json(c, &k, v, slot);
}

/* One value of field `f` (an element if repeated) from `v` (not null) into `slot`. */
static int value_from_json(ctx_t *c, const ProtobufCFieldDescriptor *f, const json_t *v, void *slot,
                           unsigned depth)
{
    int_kind_t k;
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: return real_from_json(c, f, v, slot);
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return fail(c, "expected true or false");
        *(protobuf_c_boolean *)slot = json_is_true(v);
        return 0;
    case PROTOBUF_C_TYPE_STRING: return string_from_json(c, v, slot);
    case PROTOBUF_C_TYPE_BYTES: return bytes_from_json(c, v, slot);
    case PROTOBUF_C_TYPE_ENUM: return enum_from_json(c, f->descriptor, v, slot);
    case PROTOBUF_C_TYPE_MESSAGE: return msg_from_json(c, f->descriptor, v, depth + 1, slot);
    default:
        if (!int_kind(f->type, &k))
            return fail(c, "unsupported field type %d", (int)f->type);
        return int_from_json(c, &k, v, slot);
    }
}

static int list_from_json(ctx_t *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                          const json_t *v, unsigned depth)
{
    if (!json_is_array(v))
        return fail(c, "expected an array");
    size_t n = json_array_size(v), elem = payload_elem_size(f);
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / elem)
        return NHUB_ENOMEM;
    char *arr = malloc(n * elem);
    if (!arr)
        return NHUB_ENOMEM;
    memset(arr, 0, n * elem);
    /* The count covers only elements fully built, so a failure frees what is there. */
    size_t *count = (size_t *)((char *)m + f->quantifier_offset);
    *(void **)((char *)m + f->offset) = arr;
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t old = path_push_index(c, i);
        const json_t *e = json_array_get(v, i);
        int rc = json_is_null(e) ? fail(c, "null in an array")
                                 : value_from_json(c, f, e, arr + i * elem, depth);
        path_pop(c, old);
        if (rc != 0)
            return rc;
        (*count)++;
    }
    return 0;
}

/* A oneof member: refuse a second member of the same oneof, else set the case first. */
static int oneof_claim(ctx_t *c, const ProtobufCMessageDescriptor *d, ProtobufCMessage *m,
                       const ProtobufCFieldDescriptor *f)
{
    uint32_t *which = (uint32_t *)((char *)m + f->quantifier_offset);
    if (*which != 0 && *which != f->id) {
        const ProtobufCFieldDescriptor *other = protobuf_c_message_descriptor_get_field(d, *which);
        char name[48];
        camel(other ? other->name : "?", false, name, sizeof name);
        return fail(c, "another field of its oneof is set (%s)", name);
    }
    *which = f->id;
    return 0;
}

/* Field `f` of `m` from `v` (not null): a list, a oneof member or a singular field. */
static int field_from_json(ctx_t *c, const ProtobufCMessageDescriptor *d, ProtobufCMessage *m,
                           const ProtobufCFieldDescriptor *f, const json_t *v, unsigned depth)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return list_from_json(c, m, f, v, depth);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        int rc = oneof_claim(c, d, m, f);
        if (rc != 0)
            return rc;
    }
    return value_from_json(c, f, v, (char *)m + f->offset, depth);
}

/* The field of `d` that JSON key `key` names: its JSON name or its .proto name. */
static const ProtobufCFieldDescriptor *field_for_key(const ProtobufCMessageDescriptor *d,
                                                     const char *key, size_t klen)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (camel_is(d->fields[i].name, false, key, klen))
            return &d->fields[i];
    return protobuf_c_message_descriptor_get_field_by_name(d, key);
}

/* Is field `f`, found by key `key`, also given under its other name in `o`? */
static int given_twice(const json_t *o, const ProtobufCFieldDescriptor *f, const char *key,
                       size_t klen, bool *twice)
{
    *twice = false;
    if (camel_is(f->name, false, key, klen))
        return 0; /* the JSON name; the .proto name's own turn reports it */
    char small[NAME_SMALL];
    size_t len;
    char *jn = json_name(f->name, small, &len);
    if (!jn)
        return NHUB_ENOMEM;
    *twice = json_object_getn(o, jn, len) != NULL;
    json_name_free(jn, small);
    return 0;
}

static int member_from_json(ctx_t *c, const ProtobufCMessageDescriptor *d, ProtobufCMessage *m,
                            const json_t *o, const char *key, size_t klen, const json_t *v,
                            unsigned depth)
{
    const ProtobufCFieldDescriptor *f = strlen(key) == klen ? field_for_key(d, key, klen) : NULL;
    if (!f) {
        size_t old = path_push_key(c, key, klen);
        int rc = fail(c, "unknown field");
        path_pop(c, old);
        return rc;
    }
    size_t old = path_push_field(c, f->name);
    bool twice = false;
    const char *no = unsupported(d, f);
    int rc = no ? fail(c, "%s", no) : given_twice(o, f, key, klen, &twice);
    if (rc == 0 && twice)
        rc = fail(c, "given twice, by its JSON name and its .proto name");
    if (rc == 0 && !json_is_null(v))
        rc = field_from_json(c, d, m, f, v, depth);
    path_pop(c, old);
    return rc;
}

static int msg_from_json(ctx_t *c, const ProtobufCMessageDescriptor *d, const json_t *o,
                         unsigned depth, ProtobufCMessage **out)
{
    *out = NULL;
    if (depth > PBJSON_DEPTH_MAX)
        return fail(c, "nested more than %d deep", PBJSON_DEPTH_MAX);
    if (!json_is_object(o))
        return fail(c, "expected an object");
    ProtobufCMessage *m = malloc(d->sizeof_message);
    if (!m)
        return NHUB_ENOMEM;
    d->message_init(m);
    int rc = 0;
    for (void *it = json_object_iter((json_t *)o); it && rc == 0;
         it = json_object_iter_next((json_t *)o, it))
        rc = member_from_json(c, d, m, o, json_object_iter_key(it), json_object_iter_key_len(it),
                              json_object_iter_value(it), depth);
    if (rc != 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        return rc;
    }
    *out = m;
    return 0;
}

/* ---- message -> JSON ------------------------------------------------------ */

static json_t *msg_to_json(const ProtobufCMessage *m, unsigned depth);

static size_t field_count(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    return *(const size_t *)((const char *)m + f->quantifier_offset);
}

/* Does singular proto3 field `f` hold something other than its default? */
static bool not_default(const ProtobufCFieldDescriptor *f, const void *slot)
{
    static const uint8_t zero[8];
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)slot;
        return s && s[0];
    }
    case PROTOBUF_C_TYPE_MESSAGE: return *(const void *const *)slot != NULL;
    case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)slot)->len > 0;
    case PROTOBUF_C_TYPE_BOOL: return *(const protobuf_c_boolean *)slot != 0;
    /* Bitwise, as protobuf-c decides what to pack: -0.0 is written. */
    default: return memcmp(slot, zero, payload_elem_size(f)) != 0;
    }
}

/* Is field `f` of `m` written? Repeated: non-empty; oneof: the member set; else not default. */
static bool present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *slot = (const char *)m + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return field_count(m, f) > 0;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)((const char *)m + f->quantifier_offset) == f->id;
    if (f->label != PROTOBUF_C_LABEL_NONE)
        return true; /* proto2: refused by the caller */
    return not_default(f, slot);
}

static json_t *enum_to_json(const ProtobufCEnumDescriptor *e, int32_t v)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(e, v);
    return ev ? json_string(ev->name) : json_integer(v);
}

static json_t *int64_to_json(bool is_signed, const void *slot)
{
    char buf[24];
    if (is_signed)
        snprintf(buf, sizeof buf, "%" PRId64, *(const int64_t *)slot);
    else
        snprintf(buf, sizeof buf, "%" PRIu64, *(const uint64_t *)slot);
    return json_string(buf);
}

/* One value of field `f` (an element if repeated) at `slot`; NULL if out of memory. */
static json_t *value_to_json(const ProtobufCFieldDescriptor *f, const void *slot, unsigned depth)
{
    int_kind_t k;
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT: return real_to_json(*(const float *)slot);
    case PROTOBUF_C_TYPE_DOUBLE: return real_to_json(*(const double *)slot);
    case PROTOBUF_C_TYPE_BOOL: return json_boolean(*(const protobuf_c_boolean *)slot);
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)slot;
        return json_string(s ? s : "");
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = slot;
        return base64_to_json(b->data, b->len);
    }
    case PROTOBUF_C_TYPE_ENUM: return enum_to_json(f->descriptor, *(const int32_t *)slot);
    case PROTOBUF_C_TYPE_MESSAGE:
        return msg_to_json(*(const ProtobufCMessage *const *)slot, depth + 1);
    default:
        if (!int_kind(f->type, &k))
            return NULL;
        if (k.bits == 64)
            return int64_to_json(k.is_signed, slot);
        return json_integer(k.is_signed ? (json_int_t) * (const int32_t *)slot
                                        : (json_int_t) * (const uint32_t *)slot);
    }
}

static json_t *list_to_json(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                            unsigned depth)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    const char *arr = *(const char *const *)((const char *)m + f->offset);
    size_t n = field_count(m, f), elem = payload_elem_size(f);
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(a, value_to_json(f, arr + i * elem, depth)) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static int member_to_json(json_t *obj, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                          unsigned depth)
{
    json_t *v = f->label == PROTOBUF_C_LABEL_REPEATED
                    ? list_to_json(m, f, depth)
                    : value_to_json(f, (const char *)m + f->offset, depth);
    if (!v)
        return NHUB_ENOMEM;
    char small[NAME_SMALL];
    size_t len;
    char *name = json_name(f->name, small, &len);
    if (!name) {
        json_decref(v);
        return NHUB_ENOMEM;
    }
    int rc = json_object_setn_new_nocheck(obj, name, len, v) == 0 ? 0 : NHUB_ENOMEM;
    json_name_free(name, small);
    return rc;
}

static json_t *msg_to_json(const ProtobufCMessage *m, unsigned depth)
{
    if (!m || depth > PBJSON_DEPTH_MAX)
        return NULL;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!present(m, f))
            continue;
        if (unsupported(d, f) || member_to_json(obj, m, f, depth) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

/* ---- checking decoded bytes ----------------------------------------------- */

/* RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned char b = *s;
        size_t n = b < 0x80             ? 0
                   : (b & 0xe0) == 0xc0 ? 1
                   : (b & 0xf0) == 0xe0 ? 2
                   : (b & 0xf8) == 0xf0 ? 3
                                        : 9;
        if (n == 9 || b == 0xc0 || b == 0xc1 || b > 0xf4)
            return false;
        uint32_t cp = n == 0 ? b : b & (0x3f >> n);
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        s += n + 1;
    }
    return true;
}

/* Can decoded message `m` be written as JSON? Names the field if not. */
static int check_decoded(ctx_t *c, const ProtobufCMessage *m, unsigned depth);

static int check_value(ctx_t *c, const ProtobufCFieldDescriptor *f, const void *slot,
                       unsigned depth)
{
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        const char *s = *(const char *const *)slot;
        return !s || utf8_valid(s) ? 0 : fail(c, "a string is not UTF-8");
    }
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)slot;
        return sub ? check_decoded(c, sub, depth + 1) : 0;
    }
    return 0;
}

static int check_field(ctx_t *c, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                       unsigned depth)
{
    const char *no = unsupported(m->descriptor, f);
    if (no)
        return fail(c, "%s", no);
    if (f->label != PROTOBUF_C_LABEL_REPEATED)
        return check_value(c, f, (const char *)m + f->offset, depth);
    const char *arr = *(const char *const *)((const char *)m + f->offset);
    size_t n = field_count(m, f), elem = payload_elem_size(f);
    for (size_t i = 0; i < n; i++) {
        size_t old = path_push_index(c, i);
        int rc = check_value(c, f, arr + i * elem, depth);
        path_pop(c, old);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int check_decoded(ctx_t *c, const ProtobufCMessage *m, unsigned depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (depth > PBJSON_DEPTH_MAX)
        return fail(c, "nested more than %d deep", PBJSON_DEPTH_MAX);
    if (m->n_unknown_fields > 0)
        return fail(c, "field number %u is not in %s", (unsigned)m->unknown_fields[0].tag, d->name);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!present(m, f))
            continue;
        size_t old = path_push_field(c, f->name);
        int rc = check_field(c, m, f, depth);
        path_pop(c, old);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- the public functions ------------------------------------------------- */

static void ctx_init(ctx_t *c, char *why, size_t whycap)
{
    c->path[0] = '\0';
    c->len = 0;
    c->why = why;
    c->whycap = whycap;
    if (why && whycap > 0)
        why[0] = '\0';
}

int pbjson_to_message(const ProtobufCMessageDescriptor *desc, const json_t *j,
                      ProtobufCMessage **out, char *why, size_t whycap)
{
    ctx_t c;
    ctx_init(&c, why, whycap);
    if (!out)
        return NHUB_EINVAL;
    *out = NULL;
    if (!desc)
        return fail(&c, "no message type");
    if (!json_is_object(j))
        return fail(&c, "the top level is not a JSON object");
    return msg_from_json(&c, desc, j, 0, out);
}

json_t *pbjson_from_message(const ProtobufCMessage *m)
{
    return msg_to_json(m, 0);
}

int pbjson_pack(const ProtobufCMessageDescriptor *desc, const json_t *j, uint8_t **bytes,
                size_t *len, char *why, size_t whycap)
{
    if (!bytes || !len)
        return NHUB_EINVAL;
    *bytes = NULL;
    *len = 0;
    ProtobufCMessage *m = NULL;
    int rc = pbjson_to_message(desc, j, &m, why, whycap);
    if (rc != 0)
        return rc;
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        protobuf_c_message_free_unpacked(m, NULL);
        return NHUB_ENOMEM;
    }
    protobuf_c_message_pack(m, buf);
    protobuf_c_message_free_unpacked(m, NULL);
    *bytes = buf;
    *len = n;
    return 0;
}

int pbjson_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *bytes, size_t len,
                  json_t **out, char *why, size_t whycap)
{
    ctx_t c;
    ctx_init(&c, why, whycap);
    if (!out)
        return NHUB_EINVAL;
    *out = NULL;
    if (!desc)
        return fail(&c, "no message type");
    ProtobufCMessage *m = NULL;
    if ((len > 0 && !bytes) ||
        payload_decode(desc, len ? bytes : (const uint8_t *)"", len, &m) != 0)
        return fail(&c, "does not decode as %s", desc->name);
    int rc = check_decoded(&c, m, 0);
    if (rc == 0) {
        *out = msg_to_json(m, 0);
        rc = *out ? 0 : NHUB_ENOMEM;
    }
    payload_free(&m);
    return rc;
}
