/*
 * compare.c: breaking changes between two descriptor sets (see compare.h).
 *
 * Decoding takes three passes. scan_part() walks the wire bytes of the parts
 * protobuf-c will turn into structs, building nothing, so that the bounds
 * hold before protobuf-c runs: it has no nesting limit of its own (it
 * recurses once per nested message) and allocates a struct per encoded
 * field, so a crafted file could otherwise exhaust the stack or memory.
 * protobuf-c then unpacks with descriptor_subset.proto. index_*() checks
 * each descriptor and builds sorted indexes (every type by full name, each
 * message's fields and each enum's values by name and by number), so that
 * comparing costs O(n log n) whatever the files hold.
 *
 * Comparing walks OLD's types in declaration order (a message before what it
 * nests), finds each one's counterpart in NEW through the package pairing,
 * and compares their members; a walk over NEW then lists what is new.
 */
#include "compare.h"

#include "nhub_err.h"
#include "descriptor_subset.pb-c.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Nhub__Desc__FileDescriptorSet pb_set_t;
typedef Nhub__Desc__FileDescriptorProto pb_file_t;
typedef Nhub__Desc__DescriptorProto pb_message_t;
typedef Nhub__Desc__FieldDescriptorProto pb_field_t;
typedef Nhub__Desc__EnumDescriptorProto pb_enum_t;
typedef Nhub__Desc__EnumValueDescriptorProto pb_value_t;

/* FieldDescriptorProto.Type and .Label of descriptor.proto. */
#define FIELD_TYPE_GROUP 10
#define FIELD_TYPE_MESSAGE 11
#define FIELD_TYPE_ENUM 14
#define FIELD_TYPE_MAX 18
#define FIELD_LABEL_OPTIONAL 1
#define FIELD_LABEL_REPEATED 3
#define FIELD_NUMBER_MAX 536870911 /* 2^29 - 1 */

/* Room for a mapped full name: a package and a full name, each bounded, a dot. */
#define NAME_BUF (2 * COMPARE_NAME_MAX + 2)

#define NO_INDEX ((size_t)-1)

static const char *const field_type_names[FIELD_TYPE_MAX + 1] = {
    [1] = "double",    [2] = "float",   [3] = "int64",   [4] = "uint64", [5] = "int32",
    [6] = "fixed64",   [7] = "fixed32", [8] = "bool",    [9] = "string", [10] = "group",
    [11] = "message",  [12] = "bytes",  [13] = "uint32", [14] = "enum",  [15] = "sfixed32",
    [16] = "sfixed64", [17] = "sint32", [18] = "sint64",
};

/* Indexed by label; proto2 `optional` and a proto3 plain field are both singular. */
static const char *const field_label_names[FIELD_LABEL_REPEATED + 1] = {
    [1] = "singular",
    [2] = "required",
    [3] = "repeated",
};

/* A field of a message or a value of an enum, for lookups. */
typedef struct member {
    const char *name; /* borrowed from the decoded set */
    int32_t number;
    size_t at; /* index in the message's field[] or the enum's value[] */
} member_t;

typedef struct members {
    member_t *by_name;   /* sorted by name */
    member_t *by_number; /* the same, sorted by number */
    size_t n;
} members_t;

typedef enum type_kind { TYPE_MESSAGE, TYPE_ENUM } type_kind_t;

typedef struct type {
    char *full; /* "nhub.push.v1.Feedback.Attachment", no leading dot; owned */
    type_kind_t kind;
    size_t pkg;              /* index into compare_set.pkgs */
    size_t parent;           /* index of the enclosing message in types[], or NO_INDEX */
    const pb_message_t *msg; /* TYPE_MESSAGE */
    const pb_enum_t *en;     /* TYPE_ENUM */
    members_t members;       /* its fields, or its values */
} type_t;

struct compare_set {
    pb_set_t *pb;
    const char **pkgs; /* distinct package names, sorted; "" for none; borrowed from pb */
    size_t npkgs;
    type_t *types; /* declaration order: a message before what it nests */
    size_t ntypes;
    size_t types_cap;
    type_t **by_name; /* types[], sorted by full name */
};

typedef struct finding {
    compare_kind_t kind;
    char *text;
} finding_t;

struct compare_report {
    finding_t *items;
    size_t n;
    size_t cap;
    int oom; /* an addition failed; compare_sets() then returns NHUB_ENOMEM */
};

/* ---- errors while decoding ---------------------------------------------------------- */

typedef struct decoder {
    const char *name; /* of the set, first in every message */
    char *err;
    size_t errcap;
    const uint8_t *base; /* start of the bytes, for offsets in messages */
    size_t entries;      /* encoded fields seen so far in the parts decoded */
    compare_set_t *set;
} decoder_t;

static int dec_fail(decoder_t *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int dec_fail(decoder_t *d, int code, const char *fmt, ...)
{
    if (d->errcap == 0)
        return code;
    int n = snprintf(d->err, d->errcap, "%s: ", d->name);
    if (n >= 0 && (size_t)n < d->errcap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->err + n, d->errcap - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- bounds, on the wire ------------------------------------------------------------ */

/* The parts of a descriptor set that protobuf-c decodes into structs. */
typedef enum part {
    PART_NONE,
    PART_SET,
    PART_FILE,
    PART_MESSAGE,
    PART_FIELD,
    PART_ONEOF,
    PART_ENUM,
    PART_VALUE,
} part_t;

/* Which length-delimited field of a part holds another part: the message
 * fields of descriptor_subset.proto. Anything else is skipped as bytes. */
static const struct {
    part_t parent;
    uint32_t number;
    part_t child;
} part_children[] = {
    {PART_SET, 1, PART_FILE},      {PART_FILE, 4, PART_MESSAGE},    {PART_FILE, 5, PART_ENUM},
    {PART_MESSAGE, 2, PART_FIELD}, {PART_MESSAGE, 3, PART_MESSAGE}, {PART_MESSAGE, 4, PART_ENUM},
    {PART_MESSAGE, 8, PART_ONEOF}, {PART_ENUM, 2, PART_VALUE},
};

static part_t part_child(part_t parent, uint64_t number)
{
    for (size_t i = 0; i < sizeof part_children / sizeof part_children[0]; i++) {
        if (part_children[i].parent == parent && part_children[i].number == number)
            return part_children[i].child;
    }
    return PART_NONE;
}

/* A base-128 varint at *p (at most 10 bytes, before `end`); 0, or -1 if cut or too long. */
static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p == end)
            return -1;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

static int scan_corrupt(decoder_t *d, const uint8_t *at)
{
    return dec_fail(d, NHUB_EMALFORMED, "not a descriptor set: truncated or corrupt at byte %zu",
                    (size_t)(at - d->base));
}

static int scan_part(decoder_t *d, const uint8_t *p, const uint8_t *end, part_t part, int depth);

/* The value at *p of the field whose key (number << 3 | wire type) is `key` and starts
 * at `at`; moves *p past it and scans the part it holds, if any. */
static int scan_value(decoder_t *d, const uint8_t **p, const uint8_t *end, part_t part,
                      uint64_t key, const uint8_t *at, int depth)
{
    uint64_t len;

    switch (key & 7) {
    case 0: return read_varint(p, end, &len) == 0 ? 0 : scan_corrupt(d, at);
    case 1: len = 8; break;
    case 5: len = 4; break;
    case 2:
        if (read_varint(p, end, &len) != 0)
            return scan_corrupt(d, at);
        break;
    default: return scan_corrupt(d, at); /* groups (3, 4) have no place in a descriptor set */
    }
    if (len > (uint64_t)(end - *p))
        return scan_corrupt(d, at);
    const uint8_t *value = *p;
    *p += len;
    part_t child = (key & 7) == 2 ? part_child(part, key >> 3) : PART_NONE;
    if (child == PART_NONE)
        return 0;
    int child_depth = depth + (child == PART_MESSAGE);
    if (child_depth > COMPARE_MAX_DEPTH)
        return dec_fail(d, NHUB_ETOOBIG, "messages nested more than %d deep at byte %zu",
                        COMPARE_MAX_DEPTH, (size_t)(at - d->base));
    return scan_part(d, value, value + len, child, child_depth);
}

/* Check the encoded fields of one `part` in [p, end) and the parts inside it. */
static int scan_part(decoder_t *d, const uint8_t *p, const uint8_t *end, part_t part, int depth)
{
    while (p < end) {
        const uint8_t *at = p;
        uint64_t key;
        if (read_varint(&p, end, &key) != 0 || key >> 3 == 0 || key >> 3 > FIELD_NUMBER_MAX)
            return scan_corrupt(d, at);
        if (++d->entries > COMPARE_MAX_ENTRIES)
            return dec_fail(d, NHUB_ETOOBIG, "more than %u encoded fields; not read",
                            COMPARE_MAX_ENTRIES);
        int rc = scan_value(d, &p, end, part, key, at, depth);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- names -------------------------------------------------------------------------- */

static int ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int ident_char(char c)
{
    return ident_start(c) || (c >= '0' && c <= '9');
}

/* 1 if `s` is identifiers joined by single dots ("nhub.push.v1"), at most COMPARE_NAME_MAX. */
static int is_dotted(const char *s)
{
    size_t len = strnlen(s, COMPARE_NAME_MAX + 1);
    if (len == 0 || len > COMPARE_NAME_MAX)
        return 0;
    int at_start = 1;
    for (const char *p = s; *p; p++) {
        if (*p == '.' && !at_start) {
            at_start = 1;
            continue;
        }
        if (at_start ? !ident_start(*p) : !ident_char(*p))
            return 0;
        at_start = 0;
    }
    return !at_start;
}

static int is_ident(const char *s)
{
    return s && is_dotted(s) && !strchr(s, '.');
}

/* The length (1 to 4) of the well-formed UTF-8 sequence at `p`, or 0 (RFC 3629: no
 * overlong forms, surrogates or code points past U+10FFFF). Stops at a NUL. */
static size_t utf8_sequence(const unsigned char *p)
{
    size_t n;
    uint32_t cp, min;

    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0) {
        n = 2, cp = p[0] & 0x1f, min = 0x80;
    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3, cp = p[0] & 0x0f, min = 0x800;
    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 4, cp = p[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    return cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0 : n;
}

/* 1 if `s` can be quoted in a message as it is: not empty, UTF-8, no control bytes. */
static int is_text(const char *s)
{
    size_t len = s ? strnlen(s, COMPARE_NAME_MAX + 1) : 0;
    if (len == 0 || len > COMPARE_NAME_MAX)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_sequence(p);
        if (n == 0 || *p < 0x20 || *p == 0x7f)
            return 0;
        p += n;
    }
    return 1;
}

/* ---- lookups ------------------------------------------------------------------------ */

static int cmp_member_name(const void *a, const void *b)
{
    return strcmp(((const member_t *)a)->name, ((const member_t *)b)->name);
}

static int cmp_member_number(const void *a, const void *b)
{
    int32_t x = ((const member_t *)a)->number, y = ((const member_t *)b)->number;
    return (x > y) - (x < y);
}

static int cmp_type_ptr(const void *a, const void *b)
{
    return strcmp((*(type_t *const *)a)->full, (*(type_t *const *)b)->full);
}

static int cmp_key_type(const void *key, const void *elem)
{
    return strcmp(key, (*(type_t *const *)elem)->full);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const member_t *members_find_name(const members_t *ms, const char *name)
{
    member_t key = {.name = name};
    return ms->n ? bsearch(&key, ms->by_name, ms->n, sizeof key, cmp_member_name) : NULL;
}

static const member_t *members_find_number(const members_t *ms, int32_t number)
{
    member_t key = {.number = number};
    return ms->n ? bsearch(&key, ms->by_number, ms->n, sizeof key, cmp_member_number) : NULL;
}

static const type_t *set_find_type(const compare_set_t *s, const char *full)
{
    type_t *const *t =
        s->ntypes ? bsearch(full, s->by_name, s->ntypes, sizeof *s->by_name, cmp_key_type) : NULL;
    return t ? *t : NULL;
}

static size_t set_find_package(const compare_set_t *s, const char *pkg)
{
    const char *const *p = bsearch(&pkg, s->pkgs, s->npkgs, sizeof *s->pkgs, cmp_str_ptr);
    return p ? (size_t)(p - s->pkgs) : NO_INDEX;
}

/* ---- decoding and indexing ---------------------------------------------------------- */

static int members_init(members_t *ms, size_t n)
{
    ms->n = n;
    ms->by_name = calloc(n ? n : 1, sizeof *ms->by_name);
    ms->by_number = calloc(n ? n : 1, sizeof *ms->by_number);
    return ms->by_name && ms->by_number ? 0 : -1;
}

/* Sort the members filled into by_name[] both ways. */
static void members_sort(members_t *ms)
{
    memcpy(ms->by_number, ms->by_name, ms->n * sizeof *ms->by_name);
    qsort(ms->by_name, ms->n, sizeof *ms->by_name, cmp_member_name);
    qsort(ms->by_number, ms->n, sizeof *ms->by_number, cmp_member_number);
}

static const member_t *members_twice_by_name(const members_t *ms)
{
    for (size_t i = 1; i < ms->n; i++) {
        if (!strcmp(ms->by_name[i].name, ms->by_name[i - 1].name))
            return &ms->by_name[i];
    }
    return NULL;
}

static const member_t *members_twice_by_number(const members_t *ms)
{
    for (size_t i = 1; i < ms->n; i++) {
        if (ms->by_number[i].number == ms->by_number[i - 1].number)
            return &ms->by_number[i];
    }
    return NULL;
}

/* Check `name` and append the type scope.name to the set; its index in *at. */
static int add_type(decoder_t *d, const char *scope, const char *name, type_kind_t kind, size_t pkg,
                    size_t parent, size_t *at)
{
    compare_set_t *s = d->set;
    char full[COMPARE_NAME_MAX + 2];
    if (!is_ident(name))
        return dec_fail(d, NHUB_EMALFORMED, "in %s: %s with no name, or not an identifier",
                        scope[0] ? scope : "(no package)",
                        kind == TYPE_MESSAGE ? "a message" : "an enum");
    int n = snprintf(full, sizeof full, "%s%s%s", scope, scope[0] ? "." : "", name);
    if (n < 0 || (size_t)n > COMPARE_NAME_MAX)
        return dec_fail(d, NHUB_ETOOBIG, "%s.%s: full name longer than %d bytes", scope, name,
                        COMPARE_NAME_MAX);
    if (s->ntypes == s->types_cap) {
        size_t cap = s->types_cap ? 2 * s->types_cap : 64;
        type_t *grown = realloc(s->types, cap * sizeof *grown);
        if (!grown)
            return dec_fail(d, NHUB_ENOMEM, "out of memory");
        s->types = grown;
        s->types_cap = cap;
    }
    type_t *t = &s->types[s->ntypes];
    *t = (type_t){.kind = kind, .pkg = pkg, .parent = parent, .full = strdup(full)};
    if (!t->full)
        return dec_fail(d, NHUB_ENOMEM, "out of memory");
    *at = s->ntypes++;
    return 0;
}

/* 1 if the field's type is named by type_name: a message, an enum or a group. */
static int field_type_named(const pb_field_t *f)
{
    return f->type == FIELD_TYPE_MESSAGE || f->type == FIELD_TYPE_ENUM ||
           f->type == FIELD_TYPE_GROUP;
}

static int check_field(decoder_t *d, const char *owner, const pb_message_t *m, const pb_field_t *f,
                       size_t i)
{
    if (!is_ident(f->name))
        return dec_fail(d, NHUB_EMALFORMED, "%s: field #%zu: no name, or not an identifier", owner,
                        i + 1);
    if (!f->has_number || f->number < 1 || f->number > FIELD_NUMBER_MAX)
        return dec_fail(d, NHUB_EMALFORMED, "%s.%s: no field number, or not in 1..%d", owner,
                        f->name, FIELD_NUMBER_MAX);
    if (!f->has_type || f->type < 1 || f->type > FIELD_TYPE_MAX)
        return dec_fail(d, NHUB_EMALFORMED, "%s.%s (field %d): no type, or not a known one", owner,
                        f->name, f->number);
    if (f->has_label && (f->label < FIELD_LABEL_OPTIONAL || f->label > FIELD_LABEL_REPEATED))
        return dec_fail(d, NHUB_EMALFORMED, "%s.%s (field %d): label %d is not a known one", owner,
                        f->name, f->number, f->label);
    if (field_type_named(f) &&
        (!f->type_name || f->type_name[0] != '.' || !is_dotted(f->type_name + 1)))
        return dec_fail(d, NHUB_EMALFORMED,
                        "%s.%s (field %d): type name missing or not a full name (.pkg.Type)", owner,
                        f->name, f->number);
    if (f->has_oneof_index && (f->oneof_index < 0 || (size_t)f->oneof_index >= m->n_oneof_decl))
        return dec_fail(d, NHUB_EMALFORMED, "%s.%s (field %d): oneof index %d out of range", owner,
                        f->name, f->number, f->oneof_index);
    if (f->json_name && !is_text(f->json_name))
        return dec_fail(d, NHUB_EMALFORMED,
                        "%s.%s (field %d): JSON name empty, or not printable UTF-8", owner, f->name,
                        f->number);
    return 0;
}

/* Check the oneofs and fields of message types[ti] and index its fields. */
static int index_fields(decoder_t *d, size_t ti)
{
    type_t *t = &d->set->types[ti];
    const pb_message_t *m = t->msg;

    for (size_t i = 0; i < m->n_oneof_decl; i++) {
        if (!is_ident(m->oneof_decl[i]->name))
            return dec_fail(d, NHUB_EMALFORMED, "%s: oneof #%zu: no name, or not an identifier",
                            t->full, i + 1);
    }
    if (members_init(&t->members, m->n_field) != 0)
        return dec_fail(d, NHUB_ENOMEM, "out of memory");
    for (size_t i = 0; i < m->n_field; i++) {
        const pb_field_t *f = m->field[i];
        int rc = check_field(d, t->full, m, f, i);
        if (rc != 0)
            return rc;
        t->members.by_name[i] = (member_t){.name = f->name, .number = f->number, .at = i};
    }
    members_sort(&t->members);
    const member_t *twice = members_twice_by_name(&t->members);
    if (twice)
        return dec_fail(d, NHUB_EMALFORMED, "%s: field name %s given twice", t->full, twice->name);
    twice = members_twice_by_number(&t->members);
    if (twice)
        return dec_fail(d, NHUB_EMALFORMED, "%s: field number %d given twice", t->full,
                        twice->number);
    return 0;
}

static int index_enum(decoder_t *d, const pb_enum_t *e, const char *scope, size_t pkg,
                      size_t parent)
{
    size_t ti;
    int rc = add_type(d, scope, e->name, TYPE_ENUM, pkg, parent, &ti);
    if (rc != 0)
        return rc;
    type_t *t = &d->set->types[ti];
    t->en = e;
    if (members_init(&t->members, e->n_value) != 0)
        return dec_fail(d, NHUB_ENOMEM, "out of memory");
    for (size_t i = 0; i < e->n_value; i++) {
        const pb_value_t *v = e->value[i];
        if (!is_ident(v->name) || !v->has_number)
            return dec_fail(d, NHUB_EMALFORMED, "%s: value #%zu: no name or no number", t->full,
                            i + 1);
        t->members.by_name[i] = (member_t){.name = v->name, .number = v->number, .at = i};
    }
    members_sort(&t->members); /* numbers may repeat: allow_alias */
    const member_t *twice = members_twice_by_name(&t->members);
    if (twice)
        return dec_fail(d, NHUB_EMALFORMED, "%s: value %s given twice", t->full, twice->name);
    return 0;
}

/* Index message `m` declared in `scope` and, depth first, what it nests.
 * The recursion is as deep as the nesting, which scan_part() bounded. */
static int index_message(decoder_t *d, const pb_message_t *m, const char *scope, size_t pkg,
                         size_t parent)
{
    size_t ti;
    int rc = add_type(d, scope, m->name, TYPE_MESSAGE, pkg, parent, &ti);
    if (rc != 0)
        return rc;
    d->set->types[ti].msg = m;
    rc = index_fields(d, ti);
    /* types[] may move as nested types are added: keep the name, not a pointer to its slot */
    const char *full = d->set->types[ti].full;
    for (size_t i = 0; rc == 0 && i < m->n_nested_type; i++)
        rc = index_message(d, m->nested_type[i], full, pkg, ti);
    for (size_t i = 0; rc == 0 && i < m->n_enum_type; i++)
        rc = index_enum(d, m->enum_type[i], full, pkg, ti);
    return rc;
}

static const char *file_package(const pb_file_t *f)
{
    return f->package ? f->package : "";
}

/* The distinct packages of the files, sorted; checks file names and package names. */
static int index_packages(decoder_t *d)
{
    compare_set_t *s = d->set;
    const pb_set_t *pb = s->pb;

    s->pkgs = calloc(pb->n_file, sizeof *s->pkgs);
    if (!s->pkgs)
        return dec_fail(d, NHUB_ENOMEM, "out of memory");
    for (size_t i = 0; i < pb->n_file; i++) {
        const pb_file_t *f = pb->file[i];
        if (!is_text(f->name))
            return dec_fail(d, NHUB_EMALFORMED, "file #%zu: no name, or not printable UTF-8",
                            i + 1);
        if (f->package && !is_dotted(f->package))
            return dec_fail(d, NHUB_EMALFORMED, "file %s: package is not a dotted name", f->name);
        s->pkgs[i] = file_package(f);
    }
    qsort(s->pkgs, pb->n_file, sizeof *s->pkgs, cmp_str_ptr);
    s->npkgs = 0;
    for (size_t i = 0; i < pb->n_file; i++) {
        if (s->npkgs == 0 || strcmp(s->pkgs[s->npkgs - 1], s->pkgs[i]) != 0)
            s->pkgs[s->npkgs++] = s->pkgs[i];
    }
    return 0;
}

static int index_set(decoder_t *d)
{
    compare_set_t *s = d->set;
    const pb_set_t *pb = s->pb;

    if (pb->n_file == 0)
        return dec_fail(d, NHUB_EMALFORMED, "no file descriptor in it (not a descriptor set?)");
    if (pb->n_file > COMPARE_MAX_FILES)
        return dec_fail(d, NHUB_ETOOBIG, "%zu files; at most %u are read", pb->n_file,
                        COMPARE_MAX_FILES);
    int rc = index_packages(d);
    for (size_t i = 0; rc == 0 && i < pb->n_file; i++) {
        const pb_file_t *f = pb->file[i];
        const char *pkg = file_package(f);
        size_t pi = set_find_package(s, pkg);
        for (size_t j = 0; rc == 0 && j < f->n_message_type; j++)
            rc = index_message(d, f->message_type[j], pkg, pi, NO_INDEX);
        for (size_t j = 0; rc == 0 && j < f->n_enum_type; j++)
            rc = index_enum(d, f->enum_type[j], pkg, pi, NO_INDEX);
    }
    if (rc != 0)
        return rc;
    s->by_name = calloc(s->ntypes ? s->ntypes : 1, sizeof *s->by_name);
    if (!s->by_name)
        return dec_fail(d, NHUB_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->ntypes; i++)
        s->by_name[i] = &s->types[i];
    qsort(s->by_name, s->ntypes, sizeof *s->by_name, cmp_type_ptr);
    for (size_t i = 1; i < s->ntypes; i++) {
        if (!strcmp(s->by_name[i]->full, s->by_name[i - 1]->full))
            return dec_fail(d, NHUB_EMALFORMED, "type %s defined twice", s->by_name[i]->full);
    }
    return 0;
}

int compare_set_decode(const uint8_t *buf, size_t len, const char *name, compare_set_t **out,
                       char *err, size_t errcap)
{
    decoder_t d = {
        .name = name ? name : "descriptor set", .err = err, .errcap = errcap, .base = buf};
    int rc;

    *out = NULL;
    if (errcap > 0)
        err[0] = '\0';
    if (len == 0)
        return dec_fail(&d, NHUB_EMALFORMED, "empty file; not a descriptor set");
    if (len > COMPARE_MAX_BYTES)
        return dec_fail(&d, NHUB_ETOOBIG, "%zu bytes; a descriptor set may have at most %u MiB",
                        len, COMPARE_MAX_BYTES >> 20);
    rc = scan_part(&d, buf, buf + len, PART_SET, 0);
    if (rc != 0)
        return rc;
    d.set = calloc(1, sizeof *d.set);
    if (!d.set)
        return dec_fail(&d, NHUB_ENOMEM, "out of memory");
    d.set->pb = nhub__desc__file_descriptor_set__unpack(NULL, len, buf);
    if (!d.set->pb) {
        rc = dec_fail(&d, NHUB_EMALFORMED,
                      "not a descriptor set: does not decode as a FileDescriptorSet");
        goto fail;
    }
    rc = index_set(&d);
    if (rc != 0)
        goto fail;
    *out = d.set;
    return 0;
fail:
    compare_set_free(&d.set);
    return rc;
}

void compare_set_free(compare_set_t **set)
{
    if (!set || !*set)
        return;
    compare_set_t *s = *set;
    for (size_t i = 0; i < s->ntypes; i++) {
        free(s->types[i].full);
        free(s->types[i].members.by_name);
        free(s->types[i].members.by_number);
    }
    free(s->types);
    free(s->by_name);
    free(s->pkgs);
    if (s->pb)
        nhub__desc__file_descriptor_set__free_unpacked(s->pb, NULL);
    free(s);
    *set = NULL;
}

/* ---- the report --------------------------------------------------------------------- */

static void report_add(compare_report_t *r, compare_kind_t kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report_add(compare_report_t *r, compare_kind_t kind, const char *fmt, ...)
{
    if (r->oom)
        return;
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        finding_t *grown = realloc(r->items, cap * sizeof *grown);
        if (!grown) {
            r->oom = 1;
            return;
        }
        r->items = grown;
        r->cap = cap;
    }
    char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (n < 0) {
        r->oom = 1;
        return;
    }
    r->items[r->n++] = (finding_t){.kind = kind, .text = text};
}

size_t compare_report_len(const compare_report_t *r)
{
    return r->n;
}

size_t compare_report_count(const compare_report_t *r, compare_kind_t kind)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += r->items[i].kind == kind;
    return n;
}

const char *compare_report_line(const compare_report_t *r, size_t i, compare_kind_t *kind)
{
    if (kind)
        *kind = r->items[i].kind;
    return r->items[i].text;
}

void compare_report_free(compare_report_t **r)
{
    if (!r || !*r)
        return;
    for (size_t i = 0; i < (*r)->n; i++)
        free((*r)->items[i].text);
    free((*r)->items);
    free(*r);
    *r = NULL;
}

/* ---- comparing ---------------------------------------------------------------------- */

typedef struct cmp {
    const compare_set_t *old_set;
    const compare_set_t *new_set;
    size_t *pair;                 /* per OLD package: its NEW counterpart, or NO_INDEX */
    unsigned char *new_pkg_pairs; /* per NEW package: 1 if an OLD package pairs with it */
    unsigned char *old_gone;      /* per OLD type: no counterpart (itself or its parent) */
    unsigned char *new_matched;   /* per NEW type: 1 if it is an OLD type's counterpart */
    compare_report_t *r;
} cmp_t;

static const char *kind_name(type_kind_t kind)
{
    return kind == TYPE_MESSAGE ? "message" : "enum";
}

static const char *package_label(const char *pkg)
{
    return pkg[0] ? pkg : "(no package)";
}

/* For "nhub.insured.v12": "12", with the length of "nhub.insured" in *stem_len.
 * NULL when the last component is not v<digits>. */
static const char *package_version(const char *pkg, size_t *stem_len)
{
    const char *dot = strrchr(pkg, '.');
    if (!dot || dot[1] != 'v' || dot[2] == '\0')
        return NULL;
    for (const char *c = dot + 2; *c; c++) {
        if (*c < '0' || *c > '9')
            return NULL;
    }
    *stem_len = (size_t)(dot - pkg);
    return dot + 2;
}

/* 1 if the digits `a` make a higher number than the digits `b` (any length). */
static int version_higher(const char *a, const char *b)
{
    a += strspn(a, "0");
    b += strspn(b, "0");
    size_t la = strlen(a), lb = strlen(b);
    return la != lb ? la > lb : strcmp(a, b) > 0;
}

/* The NEW package that OLD package `pkg` is compared with (compare.h), or NO_INDEX. */
static size_t pair_package(const compare_set_t *new_set, const char *pkg)
{
    size_t exact = set_find_package(new_set, pkg);
    size_t stem, best = NO_INDEX;
    const char *version = package_version(pkg, &stem), *best_version = NULL;

    if (exact != NO_INDEX || !version)
        return exact;
    for (size_t i = 0; i < new_set->npkgs; i++) {
        const char *cand = new_set->pkgs[i];
        size_t cand_stem;
        const char *v = package_version(cand, &cand_stem);
        if (!v || cand_stem != stem || strncmp(cand, pkg, stem) != 0)
            continue;
        if (!best_version || version_higher(v, best_version)) {
            best = i;
            best_version = v;
        }
    }
    return best;
}

/* Old type `t`'s full name as NEW would spell it: its package replaced by the counterpart. */
static void map_type_name(const cmp_t *c, const type_t *t, char *out, size_t cap)
{
    const char *old_pkg = c->old_set->pkgs[t->pkg];
    const char *new_pkg = c->new_set->pkgs[c->pair[t->pkg]];
    snprintf(out, cap, "%s%s", new_pkg, t->full + strlen(old_pkg));
}

/* A field's type name (".pkg.Type") as NEW would spell it; unchanged when the type is
 * not one of OLD's or its package has no counterpart. */
static void map_type_ref(const cmp_t *c, const char *type_name, char *out, size_t cap)
{
    const type_t *t = set_find_type(c->old_set, type_name + 1);
    if (!t || c->pair[t->pkg] == NO_INDEX) {
        snprintf(out, cap, "%s", type_name);
        return;
    }
    out[0] = '.';
    map_type_name(c, t, out + 1, cap - 1);
}

/* NEW's packages that no OLD package pairs with, as " (new in NEW: a, b)", or "":
 * the likely new names of a renamed package. */
static void unpaired_new_packages(const cmp_t *c, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < c->new_set->npkgs && len < cap; i++) {
        if (c->new_pkg_pairs[i])
            continue;
        int n = snprintf(out + len, cap - len, "%s%s",
                         len ? ", " : " (new in NEW: ", package_label(c->new_set->pkgs[i]));
        len = n < 0 ? cap : len + (size_t)n;
    }
    if (len > 0 && len + 1 < cap)
        strcat(out, ")");
}

static void report_removed_package(cmp_t *c, const char *pkg, const char *hint)
{
    size_t stem;
    if (package_version(pkg, &stem))
        report_add(c->r, COMPARE_BREAKING,
                   "%s (package): removed or renamed; NEW has no version of %.*s%s", pkg, (int)stem,
                   pkg, hint);
    else
        report_add(c->r, COMPARE_BREAKING, "%s (package): removed or renamed; not in NEW%s",
                   package_label(pkg), hint);
}

static void count_types(const compare_set_t *s, size_t pkg, size_t *messages, size_t *enums)
{
    *messages = *enums = 0;
    for (size_t i = 0; i < s->ntypes; i++) {
        if (s->types[i].pkg != pkg)
            continue;
        if (s->types[i].kind == TYPE_MESSAGE)
            ++*messages;
        else
            ++*enums;
    }
}

static void compare_packages(cmp_t *c)
{
    const compare_set_t *o = c->old_set, *n = c->new_set;
    char hint[1024];

    for (size_t i = 0; i < o->npkgs; i++) {
        c->pair[i] = pair_package(n, o->pkgs[i]);
        if (c->pair[i] != NO_INDEX)
            c->new_pkg_pairs[c->pair[i]] = 1;
    }
    unpaired_new_packages(c, hint, sizeof hint);
    for (size_t i = 0; i < o->npkgs; i++) {
        if (c->pair[i] == NO_INDEX)
            report_removed_package(c, o->pkgs[i], hint);
    }
    for (size_t i = 0; i < n->npkgs; i++) {
        size_t messages, enums;
        if (c->new_pkg_pairs[i])
            continue;
        count_types(n, i, &messages, &enums);
        report_add(c->r, COMPARE_ADDED, "%s (package): added, %zu message%s and %zu enum%s",
                   package_label(n->pkgs[i]), messages, messages == 1 ? "" : "s", enums,
                   enums == 1 ? "" : "s");
    }
}

static int field_label(const pb_field_t *f)
{
    return f->has_label ? f->label : FIELD_LABEL_OPTIONAL;
}

/* How a type reads in a finding: "string", or "nhub.common.v1.Person" for a named one. */
static const char *field_type_label(const pb_field_t *f)
{
    return field_type_named(f) ? f->type_name + 1 : field_type_names[f->type];
}

static int field_same_type(const cmp_t *c, const pb_field_t *of, const pb_field_t *nf)
{
    char mapped[NAME_BUF + 1];
    if (of->type != nf->type)
        return 0;
    if (!field_type_named(of))
        return 1;
    map_type_ref(c, of->type_name, mapped, sizeof mapped);
    return strcmp(mapped, nf->type_name) == 0;
}

static int field_proto3_optional(const pb_field_t *f)
{
    return f->has_proto3_optional && f->proto3_optional;
}

static const char *field_oneof(const pb_message_t *m, const pb_field_t *f)
{
    return f->has_oneof_index ? m->oneof_decl[f->oneof_index]->name : "(none)";
}

/* Compare what a field kept under its number: type, label, presence, oneof, JSON name. */
static void compare_field(cmp_t *c, const type_t *t, const type_t *u, const pb_field_t *of,
                          const pb_field_t *nf)
{
    char at[NAME_BUF + 32];
    snprintf(at, sizeof at, "%s.%s (field %d)", t->full, of->name, of->number);

    if (!field_same_type(c, of, nf))
        report_add(c->r, COMPARE_BREAKING, "%s: type %s -> %s", at, field_type_label(of),
                   field_type_label(nf));
    if (field_label(of) != field_label(nf))
        report_add(c->r, COMPARE_BREAKING, "%s: label %s -> %s", at,
                   field_label_names[field_label(of)], field_label_names[field_label(nf)]);
    int oo = field_proto3_optional(of), no = field_proto3_optional(nf);
    /* a proto3 optional field sits alone in a synthetic oneof: its presence says it all */
    if (oo != no)
        report_add(c->r, COMPARE_BREAKING, "%s: proto3 optional %s -> %s", at, oo ? "yes" : "no",
                   no ? "yes" : "no");
    else if (!oo && strcmp(field_oneof(t->msg, of), field_oneof(u->msg, nf)) != 0)
        report_add(c->r, COMPARE_BREAKING, "%s: oneof %s -> %s", at, field_oneof(t->msg, of),
                   field_oneof(u->msg, nf));
    if (!strcmp(of->name, nf->name) && of->json_name && nf->json_name &&
        strcmp(of->json_name, nf->json_name) != 0)
        report_add(c->r, COMPARE_BREAKING, "%s: JSON name %s -> %s", at, of->json_name,
                   nf->json_name);
}

typedef enum match { MATCH_SAME, MATCH_RENAMED, MATCH_RENUMBERED, MATCH_REMOVED } match_t;

/*
 * How OLD member `o` fares among NEW's members `nw`. Fields are found by
 * number first (the wire), enum values by name first (the JSON mapping):
 * `by_number` says which. *hit is NEW's member found, or NULL.
 */
static match_t match_member(const member_t *o, const members_t *nw, int by_number,
                            const member_t **hit)
{
    const member_t *same_number = members_find_number(nw, o->number);
    const member_t *same_name = members_find_name(nw, o->name);
    const member_t *first = by_number ? same_number : same_name;
    const member_t *second = by_number ? same_name : same_number;

    *hit = NULL;
    if (same_name && same_name->number == o->number) {
        *hit = same_name;
        return MATCH_SAME;
    }
    if (first) {
        *hit = first;
        return by_number ? MATCH_RENAMED : MATCH_RENUMBERED;
    }
    if (second) {
        *hit = second;
        return by_number ? MATCH_RENUMBERED : MATCH_RENAMED;
    }
    return MATCH_REMOVED;
}

static void report_match(cmp_t *c, const type_t *t, const char *what, const member_t *o, match_t m,
                         const member_t *hit)
{
    switch (m) {
    case MATCH_SAME: break;
    case MATCH_RENAMED:
        report_add(c->r, COMPARE_BREAKING, "%s.%s (%s %d): renamed %s -> %s", t->full, o->name,
                   what, o->number, o->name, hit->name);
        break;
    case MATCH_RENUMBERED:
        report_add(c->r, COMPARE_BREAKING, "%s.%s (%s %d): renumbered %d -> %d", t->full, o->name,
                   what, o->number, o->number, hit->number);
        break;
    case MATCH_REMOVED:
        report_add(c->r, COMPARE_BREAKING, "%s.%s (%s %d): removed", t->full, o->name, what,
                   o->number);
        break;
    }
}

/* Compare the fields (or values) of OLD type `t` with those of its counterpart `u`,
 * in order of number, then list the members `u` adds. */
static void compare_members(cmp_t *c, const type_t *t, const type_t *u)
{
    int fields = t->kind == TYPE_MESSAGE;
    const char *what = fields ? "field" : "value";

    for (size_t i = 0; i < t->members.n; i++) {
        const member_t *o = &t->members.by_number[i], *hit;
        match_t m = match_member(o, &u->members, fields, &hit);
        report_match(c, t, what, o, m, hit);
        if (fields && (m == MATCH_SAME || m == MATCH_RENAMED))
            compare_field(c, t, u, t->msg->field[o->at], u->msg->field[hit->at]);
    }
    for (size_t i = 0; i < u->members.n; i++) {
        const member_t *n = &u->members.by_number[i];
        if (!members_find_name(&t->members, n->name) &&
            !members_find_number(&t->members, n->number))
            report_add(c->r, COMPARE_ADDED, "%s.%s (%s %d): added", u->full, n->name, what,
                       n->number);
    }
}

static void compare_types(cmp_t *c)
{
    const compare_set_t *o = c->old_set, *n = c->new_set;
    char want[NAME_BUF];

    for (size_t i = 0; i < o->ntypes; i++) {
        const type_t *t = &o->types[i];
        /* a package or an enclosing message without counterpart was reported already */
        if (c->pair[t->pkg] == NO_INDEX || (t->parent != NO_INDEX && c->old_gone[t->parent])) {
            c->old_gone[i] = 1;
            continue;
        }
        map_type_name(c, t, want, sizeof want);
        const type_t *u = set_find_type(n, want);
        if (!u || u->kind != t->kind) {
            c->old_gone[i] = 1;
            report_add(c->r, COMPARE_BREAKING, "%s (%s): removed or renamed; no %s %s in NEW",
                       t->full, kind_name(t->kind), kind_name(t->kind), want);
            continue;
        }
        c->new_matched[u - n->types] = 1;
        compare_members(c, t, u);
    }
}

/* NEW's types that are no OLD type's counterpart, each once: not those inside a new
 * package (compare_packages() counted them) or inside a new message. */
static void report_added_types(cmp_t *c)
{
    const compare_set_t *n = c->new_set;
    for (size_t i = 0; i < n->ntypes; i++) {
        const type_t *u = &n->types[i];
        if (c->new_matched[i] || !c->new_pkg_pairs[u->pkg])
            continue;
        if (u->parent != NO_INDEX && !c->new_matched[u->parent])
            continue;
        report_add(c->r, COMPARE_ADDED, "%s (%s): added", u->full, kind_name(u->kind));
    }
}

static void *zalloc(size_t n, size_t size)
{
    return calloc(n ? n : 1, size);
}

int compare_sets(const compare_set_t *old_set, const compare_set_t *new_set, compare_report_t **out)
{
    cmp_t c = {.old_set = old_set, .new_set = new_set};
    int rc = NHUB_ENOMEM;

    *out = NULL;
    c.r = zalloc(1, sizeof *c.r);
    c.pair = zalloc(old_set->npkgs, sizeof *c.pair);
    c.new_pkg_pairs = zalloc(new_set->npkgs, 1);
    c.old_gone = zalloc(old_set->ntypes, 1);
    c.new_matched = zalloc(new_set->ntypes, 1);
    if (!c.r || !c.pair || !c.new_pkg_pairs || !c.old_gone || !c.new_matched)
        goto done;
    compare_packages(&c);
    compare_types(&c);
    report_added_types(&c);
    if (c.r->oom)
        goto done;
    *out = c.r;
    c.r = NULL;
    rc = 0;
done:
    compare_report_free(&c.r);
    free(c.new_matched);
    free(c.old_gone);
    free(c.new_pkg_pairs);
    free(c.pair);
    return rc;
}
