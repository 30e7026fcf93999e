/*
 * catalog.c: the service-item catalogue: its file schema, the checks a schema
 * cannot express, and the per-message rule (see catalog.h).
 *
 * Loading goes through the generic reader (conf.h) into a flat "raw" record
 * of fixed arrays, the way cfg.c does, then builds a compact catalogue from
 * it: items sorted by code, each with a kind bitmask and two region sets
 * stored as sorted integers in one shared pool. The raw record is large
 * (CATALOG_ITEMS_MAX items, each with room for two full region lists), but
 * it lives only for the duration of a load, and the reader touches only the
 * entries the file has; the catalogue kept afterwards is proportional to
 * the file.
 *
 * On the message path catalog_check() does one binary search for the item
 * and at most two for the regions, and formats text only when it refuses.
 * Refusal texts carry codes from the wire, so they are cut and made
 * printable before they reach a log or a NACK.
 */
#include "catalog.h"

#include "conf.h"
#include "nhub_err.h"
#include "nhub_wire.pb-c.h"
#include "payload.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEC INT64_C(1000)
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)

#define CATALOG_KIND_MAX CATALOG_KIND_NOTICE
#define CATALOG_KIND_NAME_CAP 32 /* longer than any kind name, so a typo gets our message */
#define CATALOG_REGION_CAP (CATALOG_REGION_CODE_LEN + 1)

/* Room for "items[4095].receivers[511]". */
#define CATALOG_KEY_PATH_CAP 64

/* A code from the wire as shown in a refusal: cut, printable, quoted if empty. */
#define CATALOG_SHOWN_CAP (CATALOG_CODE_MAX + 4)

#define CATALOG_SAME_KIND(ours, wire) ((int)(ours) == (int)(wire))
_Static_assert(CATALOG_SAME_KIND(CATALOG_KIND_REQUEST, NHUB__WIRE__V1__KIND__KIND_REQUEST) &&
                   CATALOG_SAME_KIND(CATALOG_KIND_RESPONSE, NHUB__WIRE__V1__KIND__KIND_RESPONSE) &&
                   CATALOG_SAME_KIND(CATALOG_KIND_PUSH, NHUB__WIRE__V1__KIND__KIND_PUSH) &&
                   CATALOG_SAME_KIND(CATALOG_KIND_FEEDBACK, NHUB__WIRE__V1__KIND__KIND_FEEDBACK) &&
                   CATALOG_SAME_KIND(CATALOG_KIND_NOTICE, NHUB__WIRE__V1__KIND__KIND_NOTICE),
               "enum catalog_kind follows nhub.wire.v1.Kind");

/* Indexed by wire kind. Answers flow from a receiver back to a sender. */
static const struct catalog_kind_info {
    const char *name;
    bool answer;
} catalog_kinds[CATALOG_KIND_MAX + 1] = {
    [CATALOG_KIND_REQUEST] = {"request", false}, [CATALOG_KIND_RESPONSE] = {"response", true},
    [CATALOG_KIND_PUSH] = {"push", false},       [CATALOG_KIND_FEEDBACK] = {"feedback", true},
    [CATALOG_KIND_NOTICE] = {"notice", false},
};

/* ---- the file, as the reader fills it ------------------------------------ */

#define CATALOG_TYPE_CAP (PAYLOAD_TYPE_MAX + 1)

/* payloads: the types of each kind, all versions. */
typedef struct catalog_raw_payloads {
    char request[CATALOG_TYPES_MAX][CATALOG_TYPE_CAP];
    size_t request_count;
    char response[CATALOG_TYPES_MAX][CATALOG_TYPE_CAP];
    size_t response_count;
    char push[CATALOG_TYPES_MAX][CATALOG_TYPE_CAP];
    size_t push_count;
    char feedback[CATALOG_TYPES_MAX][CATALOG_TYPE_CAP];
    size_t feedback_count;
    char notice[CATALOG_TYPES_MAX][CATALOG_TYPE_CAP];
    size_t notice_count;
} catalog_raw_payloads_t;

static const conf_key_t catalog_payloads_schema[] = {
    CONF_KEY_STRING_LIST(catalog_raw_payloads_t, request, request_count, "request", 0, 1),
    CONF_KEY_STRING_LIST(catalog_raw_payloads_t, response, response_count, "response", 0, 1),
    CONF_KEY_STRING_LIST(catalog_raw_payloads_t, push, push_count, "push", 0, 1),
    CONF_KEY_STRING_LIST(catalog_raw_payloads_t, feedback, feedback_count, "feedback", 0, 1),
    CONF_KEY_STRING_LIST(catalog_raw_payloads_t, notice, notice_count, "notice", 0, 1),
    CONF_KEY_END,
};

typedef struct catalog_raw_item {
    char code[CATALOG_CODE_MAX + 1];
    char name[CATALOG_NAME_MAX + 1];
    char kinds[CATALOG_KIND_MAX][CATALOG_KIND_NAME_CAP];
    size_t kind_count;
    char senders[CATALOG_REGIONS_MAX][CATALOG_REGION_CAP];
    size_t sender_count;
    char receivers[CATALOG_REGIONS_MAX][CATALOG_REGION_CAP];
    size_t receiver_count;
    int64_t time_limit_ms; /* 0: none */
    int64_t reminder_ms;   /* 0: none */
    int64_t grace_ms;
    int64_t answer_valid_ms;
    int priority; /* enum catalog_priority */
    catalog_raw_payloads_t payloads;
} catalog_raw_item_t;

typedef struct catalog_raw {
    int64_t version;
    size_t item_count;
    catalog_raw_item_t items[CATALOG_ITEMS_MAX];
} catalog_raw_t;

static const char *const catalog_priority_names[] = {"normal", "urgent", "bulk", NULL};
_Static_assert(CATALOG_PRIORITY_NORMAL == 0 && CATALOG_PRIORITY_URGENT == 1 &&
                   CATALOG_PRIORITY_BULK == 2,
               "catalog_priority_names is indexed by enum catalog_priority");

/* A time limit is a deadline for people: under a minute or over a year is a unit typo. */
static const conf_key_t catalog_item_schema[] = {
    CONF_KEY_STRING(catalog_raw_item_t, code, "code", CONF_REQUIRED),
    CONF_KEY_STRING(catalog_raw_item_t, name, "name", CONF_REQUIRED),
    CONF_KEY_STRING_LIST(catalog_raw_item_t, kinds, kind_count, "kinds", CONF_REQUIRED, 1),
    CONF_KEY_STRING_LIST(catalog_raw_item_t, senders, sender_count, "senders", CONF_REQUIRED, 1),
    CONF_KEY_STRING_LIST(catalog_raw_item_t, receivers, receiver_count, "receivers", CONF_REQUIRED,
                         1),
    /* Case times from one second, so a demonstration catalogue (conf/catalog-demo.yaml)
     * shows reminders, overdue cases and expiries while one watches. */
    CONF_KEY_DURATION_MS(catalog_raw_item_t, time_limit_ms, "time_limit", 0, SEC, 365 * DAY),
    CONF_KEY_DURATION_MS(catalog_raw_item_t, reminder_ms, "reminder", 0, SEC, 365 * DAY),
    CONF_KEY_DURATION_MS(catalog_raw_item_t, grace_ms, "grace", 0, SEC, 365 * DAY),
    CONF_KEY_DURATION_MS(catalog_raw_item_t, answer_valid_ms, "answer_valid", 0, MINUTE,
                         10 * 365 * DAY),
    CONF_KEY_ENUM(catalog_raw_item_t, priority, "priority", 0, catalog_priority_names),
    CONF_KEY_MAP(catalog_raw_item_t, payloads, "payloads", 0, catalog_payloads_schema),
    CONF_KEY_END,
};

/* version is read unbounded so that a wrong one gets a message about versions, not ranges. */
static const conf_key_t catalog_schema[] = {
    CONF_KEY_INT64(catalog_raw_t, version, "version", CONF_REQUIRED, 0, 0),
    CONF_KEY_SEQ_OF_MAPS(catalog_raw_t, items, item_count, "items", CONF_REQUIRED,
                         catalog_item_schema, 1, NULL),
    CONF_KEY_END,
};

/* ---- the catalogue, as the hub reads it ---------------------------------- */

/* A senders or receivers list. */
typedef struct catalog_set {
    bool all;              /* ["*"]: every region */
    size_t count;          /* otherwise: codes[0..count), ascending, unique */
    const uint32_t *codes; /* borrowed from catalog.regions */
} catalog_set_t;

typedef struct catalog_item {
    char code[CATALOG_CODE_MAX + 1];
    char name[CATALOG_NAME_MAX + 1];
    unsigned kinds; /* bit k set: wire kind k allowed */
    catalog_times_t times;
    int priority; /* enum catalog_priority */
    bool typed; /* payloads named: every kind has its types */
    uint8_t type_count[CATALOG_KIND_MAX + 1];
    const ProtobufCMessageDescriptor *types[CATALOG_KIND_MAX + 1][CATALOG_TYPES_MAX];
    catalog_set_t senders;
    catalog_set_t receivers;
} catalog_item_t;

struct catalog {
    size_t count;
    catalog_item_t *items; /* sorted by code (strcmp order) */
    uint32_t *regions;     /* every item's region codes, list after list */
};

/* Six ASCII digits, nothing after. Stops at the first non-digit, so never reads past a NUL. */
static bool catalog_region_parse(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (size_t i = 0; i < CATALOG_REGION_CODE_LEN; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (s[CATALOG_REGION_CODE_LEN] != '\0')
        return false;
    *out = v;
    return true;
}

static bool catalog_set_has(const catalog_set_t *set, uint32_t code)
{
    if (set->all)
        return true;
    size_t lo = 0;
    size_t hi = set->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->codes[mid] == code)
            return true;
        if (set->codes[mid] < code)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static int catalog_item_key_cmp(const void *key, const void *elem)
{
    const catalog_item_t *it = elem;
    return strcmp(key, it->code);
}

static const catalog_item_t *catalog_find(const catalog_t *c, const char *code)
{
    if (!c || !code)
        return NULL;
    return bsearch(code, c->items, c->count, sizeof c->items[0], catalog_item_key_cmp);
}

/*
 * `s` as it may appear in a message: at most CATALOG_CODE_MAX bytes, each
 * outside printable ASCII shown as '?', "..." if cut, "" quoted if empty.
 * A code from the wire must not be able to forge a log line or bloat a NACK.
 */
static const char *catalog_shown(const char *s, char buf[CATALOG_SHOWN_CAP])
{
    size_t n = 0;
    if (!s || !s[0])
        return "\"\"";
    for (; n < CATALOG_CODE_MAX && s[n]; n++)
        buf[n] = (s[n] > ' ' && s[n] < 0x7f) ? s[n] : '?';
    if (s[n]) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* ---- checks of the loaded file ------------------------------------------- */

/* A region code of a list being checked, with where the file listed it. */
struct catalog_region_ref {
    uint32_t code;
    size_t index; /* position in the list */
};

/* What a load carries from check to check. */
typedef struct catalog_loader {
    const catalog_raw_t *raw;
    const conf_marks_t *marks;
    char *err;
    size_t errcap;
    uint32_t *pool_next; /* where the next region list goes in catalog.regions */
    struct catalog_region_ref scratch[CATALOG_REGIONS_MAX];
} catalog_loader_t;

static bool catalog_code_valid(const char *code)
{
    if (!code[0])
        return false;
    for (const char *p = code; *p; p++) {
        if (*p <= ' ' || *p >= 0x7f)
            return false;
    }
    return true;
}

/* libyaml has already refused malformed UTF-8, so only control characters remain to check. */
static bool catalog_name_valid(const char *name)
{
    if (!name[0])
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

static int catalog_kind_value(const char *name)
{
    for (int k = 1; k <= CATALOG_KIND_MAX; k++) {
        if (strcmp(catalog_kinds[k].name, name) == 0)
            return k;
    }
    return 0;
}

static int catalog_check_kinds(catalog_loader_t *ld, size_t i, catalog_item_t *it)
{
    const catalog_raw_item_t *r = &ld->raw->items[i];
    char path[CATALOG_KEY_PATH_CAP];
    char shown[CATALOG_SHOWN_CAP];

    for (size_t j = 0; j < r->kind_count; j++) {
        int k = catalog_kind_value(r->kinds[j]);
        snprintf(path, sizeof path, "items[%zu].kinds[%zu]", i, j);
        if (k == 0)
            return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                    "\"%s\": unknown kind %s (expected one of: request, "
                                    "response, push, feedback, notice)",
                                    path, catalog_shown(r->kinds[j], shown));
        if (it->kinds & (1u << k))
            return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                    "\"%s\": kind %s is listed twice", path, catalog_kinds[k].name);
        it->kinds |= 1u << k;
    }
    return 0;
}

static int catalog_region_ref_cmp(const void *a, const void *b)
{
    const struct catalog_region_ref *x = a;
    const struct catalog_region_ref *y = b;
    if (x->code != y->code)
        return (x->code > y->code) - (x->code < y->code);
    return (x->index > y->index) - (x->index < y->index);
}

/*
 * A list already sorted (code, index): the repeat earliest in the file, as
 * its index and the index of the code's first listing; false if none.
 */
static bool catalog_region_repeat(const struct catalog_region_ref *refs, size_t n, size_t *first,
                                  size_t *later)
{
    size_t run = 0;
    *later = SIZE_MAX;
    for (size_t j = 1; j < n; j++) {
        if (refs[j].code != refs[run].code) {
            run = j;
            continue;
        }
        if (refs[j].index < *later) {
            *later = refs[j].index;
            *first = refs[run].index;
        }
    }
    return *later != SIZE_MAX;
}

/*
 * Check item i's senders or receivers (`key`) and write its set: ["*"] alone,
 * or six-digit codes without repeats, stored sorted at ld->pool_next.
 */
static int catalog_build_set(catalog_loader_t *ld, size_t i, const char *key,
                             const char (*list)[CATALOG_REGION_CAP], size_t n, catalog_set_t *set)
{
    char path[CATALOG_KEY_PATH_CAP];
    size_t first = 0;
    size_t later = 0;

    for (size_t j = 0; j < n; j++) {
        snprintf(path, sizeof path, "items[%zu].%s[%zu]", i, key, j);
        if (strcmp(list[j], CATALOG_BROADCAST) == 0) {
            if (n > 1)
                return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                        "\"%s\": \"*\" (every region) must be the only entry "
                                        "of %s",
                                        path, key);
            *set = (catalog_set_t){.all = true};
            return 0;
        }
        if (!catalog_region_parse(list[j], &ld->scratch[j].code))
            return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                    "\"%s\": a region code is exactly 6 ASCII digits (GB/T "
                                    "2260), or \"*\" for every region",
                                    path);
        ld->scratch[j].index = j;
    }
    qsort(ld->scratch, n, sizeof ld->scratch[0], catalog_region_ref_cmp);
    if (catalog_region_repeat(ld->scratch, n, &first, &later)) {
        snprintf(path, sizeof path, "items[%zu].%s[%zu]", i, key, later);
        return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                "\"%s\": region %s is listed twice (first as %s[%zu])", path,
                                list[later], key, first);
    }
    for (size_t j = 0; j < n; j++)
        ld->pool_next[j] = ld->scratch[j].code;
    *set = (catalog_set_t){.count = n, .codes = ld->pool_next};
    ld->pool_next += n;
    return 0;
}

/* The types listed for wire kind `kind` in a raw payloads map. */
static const char (*catalog_raw_types(const catalog_raw_payloads_t *p, int kind,
                                      size_t *n))[CATALOG_TYPE_CAP]
{
    switch (kind) {
    case CATALOG_KIND_REQUEST: *n = p->request_count; return p->request;
    case CATALOG_KIND_RESPONSE: *n = p->response_count; return p->response;
    case CATALOG_KIND_PUSH: *n = p->push_count; return p->push;
    case CATALOG_KIND_FEEDBACK: *n = p->feedback_count; return p->feedback;
    default: *n = p->notice_count; return p->notice;
    }
}

/* A feedback type's field 1 must be the stage the hub follows cases by. */
static bool catalog_has_stage(const ProtobufCMessageDescriptor *d)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, 1);
    return f && f->type == PROTOBUF_C_TYPE_ENUM && f->label != PROTOBUF_C_LABEL_REPEATED &&
           strcmp(f->name, "stage") == 0 &&
           strcmp(((const ProtobufCEnumDescriptor *)f->descriptor)->name,
                  "nhub.common.v1.Stage") == 0;
}

/*
 * payloads: absent means the item's payloads are opaque to the hub (test
 * and benchmark traffic); present, it names at least one type for each of
 * the item's kinds and none for a kind the item does not carry, every type
 * compiled into this hub, no type twice in a kind.
 */
static int catalog_build_payloads(catalog_loader_t *ld, size_t i, catalog_item_t *it)
{
    const catalog_raw_payloads_t *p = &ld->raw->items[i].payloads;
    char path[CATALOG_KEY_PATH_CAP + CATALOG_TYPE_CAP];
    size_t listed = 0;

    for (int k = 1; k <= CATALOG_KIND_MAX; k++) {
        size_t n;
        catalog_raw_types(p, k, &n);
        listed += n;
    }
    if (listed == 0)
        return 0;
    it->typed = true;
    for (int k = 1; k <= CATALOG_KIND_MAX; k++) {
        size_t n;
        const char(*types)[CATALOG_TYPE_CAP] = catalog_raw_types(p, k, &n);
        const char *kn = catalog_kinds[k].name;
        bool carried = it->kinds & (1u << k);
        snprintf(path, sizeof path, "items[%zu].payloads.%s", i, kn);
        if (n > 0 && !carried)
            return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                    "\"%s\": the item does not carry kind %s (see its kinds)",
                                    path, kn);
        snprintf(path, sizeof path, "items[%zu].payloads", i);
        if (n == 0 && carried)
            return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                    "\"%s\": no payload types for kind %s; name them for "
                                    "every kind of the item",
                                    path, kn);
        for (size_t j = 0; j < n; j++) {
            snprintf(path, sizeof path, "items[%zu].payloads.%s[%zu]", i, kn, j);
            const ProtobufCMessageDescriptor *d = payload_find(types[j]);
            if (!d)
                return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                        "\"%s\": %s is not a payload type of schemas/ compiled "
                                        "into this hub",
                                        path, types[j]);
            for (size_t q = 0; q < j; q++)
                if (it->types[k][q] == d)
                    return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                            "\"%s\": %s is listed twice", path, types[j]);
            if (k == CATALOG_KIND_FEEDBACK && !catalog_has_stage(d))
                return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                        "\"%s\": a feedback type needs field 1 \"stage\" of "
                                        "type nhub.common.v1.Stage; %s has none",
                                        path, types[j]);
            it->types[k][j] = d;
        }
        it->type_count[k] = (uint8_t)n;
    }
    return 0;
}

/*
 * The times of the item's cases. Only requests and pushes open cases, so
 * only items carrying one take a time limit, and then a reminder before the
 * limit and a grace period after it; answer_valid needs an answer kind.
 */
static int catalog_build_times(catalog_loader_t *ld, size_t i, catalog_item_t *it)
{
    const catalog_raw_item_t *r = &ld->raw->items[i];
    char path[CATALOG_KEY_PATH_CAP];
    bool opens = it->kinds & ((1u << CATALOG_KIND_REQUEST) | (1u << CATALOG_KIND_PUSH));
    bool answers = it->kinds & ((1u << CATALOG_KIND_RESPONSE) | (1u << CATALOG_KIND_FEEDBACK));

    snprintf(path, sizeof path, "items[%zu].time_limit", i);
    if (r->time_limit_ms && !opens)
        return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                "\"%s\": only an item with requests or pushes has cases with "
                                "a time limit",
                                path);
    if (r->time_limit_ms) {
        snprintf(path, sizeof path, "items[%zu]", i);
        if (!r->reminder_ms || !r->grace_ms)
            return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                    "\"%s\": an item with a time_limit needs reminder and "
                                    "grace too",
                                    path);
        snprintf(path, sizeof path, "items[%zu].reminder", i);
        if (r->reminder_ms >= r->time_limit_ms)
            return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                    "\"%s\": the reminder must come before the time_limit",
                                    path);
    } else if (r->reminder_ms || r->grace_ms) {
        snprintf(path, sizeof path, "items[%zu].%s", i, r->reminder_ms ? "reminder" : "grace");
        return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                "\"%s\": reminder and grace need a time_limit", path);
    }
    snprintf(path, sizeof path, "items[%zu].answer_valid", i);
    if (r->answer_valid_ms && !answers)
        return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                "\"%s\": only an item with responses or feedback has answers",
                                path);
    it->times = (catalog_times_t){.time_limit_ms = r->time_limit_ms,
                                  .reminder_ms = r->reminder_ms,
                                  .grace_ms = r->grace_ms,
                                  .answer_valid_ms = r->answer_valid_ms};
    return 0;
}

/* Check raw item i on its own and fill `it` from it. */
static int catalog_build_item(catalog_loader_t *ld, size_t i, catalog_item_t *it)
{
    const catalog_raw_item_t *r = &ld->raw->items[i];
    char path[CATALOG_KEY_PATH_CAP];
    int rc;

    snprintf(path, sizeof path, "items[%zu].code", i);
    if (!catalog_code_valid(r->code))
        return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                "\"%s\": an item code is 1 to %d printable ASCII characters "
                                "without spaces",
                                path, CATALOG_CODE_MAX);
    snprintf(path, sizeof path, "items[%zu].name", i);
    if (!catalog_name_valid(r->name))
        return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                                "\"%s\": an item name must be non-empty, without control "
                                "characters",
                                path);
    memcpy(it->code, r->code, sizeof it->code);
    memcpy(it->name, r->name, sizeof it->name);
    it->priority = r->priority;
    rc = catalog_check_kinds(ld, i, it);
    if (rc == 0)
        rc = catalog_build_times(ld, i, it);
    if (rc == 0)
        rc = catalog_build_payloads(ld, i, it);
    if (rc == 0)
        rc = catalog_build_set(ld, i, "senders", r->senders, r->sender_count, &it->senders);
    if (rc == 0)
        rc = catalog_build_set(ld, i, "receivers", r->receivers, r->receiver_count, &it->receivers);
    return rc;
}

struct catalog_code_ref {
    const char *code;
    size_t index; /* position in the file */
};

static int catalog_code_ref_cmp(const void *a, const void *b)
{
    const struct catalog_code_ref *x = a;
    const struct catalog_code_ref *y = b;
    int c = strcmp(x->code, y->code);
    if (c != 0)
        return c;
    return (x->index > y->index) - (x->index < y->index);
}

/*
 * Duplicate item codes, found by sorting references (as cfg.c does for
 * regions). The repeat earliest in the file is reported, with where the code
 * was first listed, so the message does not depend on sort order.
 */
static int catalog_check_duplicates(const catalog_loader_t *ld)
{
    const catalog_raw_t *raw = ld->raw;
    size_t n = raw->item_count;
    struct catalog_code_ref *refs = calloc(n ? n : 1, sizeof *refs);
    size_t first = 0;
    size_t later = SIZE_MAX;
    size_t run = 0;

    if (!refs) {
        conf_marks_error(ld->marks, NULL, ld->err, ld->errcap, "out of memory");
        return NHUB_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        refs[i] = (struct catalog_code_ref){raw->items[i].code, i};
    qsort(refs, n, sizeof *refs, catalog_code_ref_cmp);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(refs[i].code, refs[run].code) != 0) {
            run = i;
            continue;
        }
        if (refs[i].index < later) {
            later = refs[i].index;
            first = refs[run].index;
        }
    }
    free(refs);
    if (later == SIZE_MAX)
        return 0;

    char path[CATALOG_KEY_PATH_CAP];
    conf_mark_t at = {0, 0};
    snprintf(path, sizeof path, "items[%zu].code", first);
    conf_marks_find(ld->marks, path, &at);
    snprintf(path, sizeof path, "items[%zu].code", later);
    return conf_marks_error(ld->marks, path, ld->err, ld->errcap,
                            "\"%s\": duplicate item code %s (first listed as items[%zu] at line "
                            "%zu, column %zu)",
                            path, raw->items[later].code, first, at.line, at.column);
}

static int catalog_item_cmp(const void *a, const void *b)
{
    const catalog_item_t *x = a;
    const catalog_item_t *y = b;
    return strcmp(x->code, y->code);
}

/* Turn a loaded raw record into `cat`: check every item, then codes across items, then sort. */
static int catalog_build(catalog_t *cat, catalog_loader_t *ld)
{
    const catalog_raw_t *raw = ld->raw;
    size_t regions = 0;
    int rc = 0;

    if (raw->version != CATALOG_VERSION)
        return conf_marks_error(ld->marks, "version", ld->err, ld->errcap,
                                "\"version\": catalogue format version %lld is not supported "
                                "(expected %d)",
                                (long long)raw->version, CATALOG_VERSION);
    /* Bounded by the schema: 4096 items * 2 lists * 512 codes, no overflow. */
    for (size_t i = 0; i < raw->item_count; i++)
        regions += raw->items[i].sender_count + raw->items[i].receiver_count;
    cat->items = calloc(raw->item_count, sizeof cat->items[0]);
    cat->regions = calloc(regions ? regions : 1, sizeof cat->regions[0]);
    if (!cat->items || !cat->regions) {
        conf_marks_error(ld->marks, NULL, ld->err, ld->errcap, "out of memory");
        return NHUB_ENOMEM;
    }
    cat->count = raw->item_count;
    ld->pool_next = cat->regions;
    for (size_t i = 0; rc == 0 && i < raw->item_count; i++)
        rc = catalog_build_item(ld, i, &cat->items[i]);
    if (rc == 0)
        rc = catalog_check_duplicates(ld);
    if (rc == 0)
        qsort(cat->items, cat->count, sizeof cat->items[0], catalog_item_cmp);
    return rc;
}

/* ---- loading ------------------------------------------------------------- */

static void catalog_free(catalog_t *cat)
{
    if (!cat)
        return;
    free(cat->regions);
    free(cat->items);
    free(cat);
}

/* Load from `path` if it is set, else from `text`. */
static int catalog_load_common(const char *path, const char *name, const char *text, size_t len,
                               catalog_t **out, char *err, size_t errcap)
{
    const char *shown = path ? path : name;
    catalog_raw_t *raw = NULL;
    catalog_loader_t *ld = NULL;
    conf_marks_t *marks = NULL;
    catalog_t *cat = NULL;
    int rc;

    if (err && errcap)
        err[0] = '\0';
    if (!out || (!path && !text)) {
        if (err && errcap)
            snprintf(err, errcap, "catalogue: no path, text or result pointer");
        return NHUB_EINVAL;
    }
    *out = NULL;
    raw = calloc(1, sizeof *raw);
    ld = calloc(1, sizeof *ld);
    cat = calloc(1, sizeof *cat);
    if (!raw || !ld || !cat) {
        if (err && errcap)
            snprintf(err, errcap, "%s: out of memory", shown);
        rc = NHUB_ENOMEM;
        goto fail;
    }
    if (path)
        rc = conf_load_file_marked(path, catalog_schema, raw, &marks, err, errcap);
    else
        rc = conf_load_string_marked(name, text, len, catalog_schema, raw, &marks, err, errcap);
    if (rc != 0)
        goto fail;
    *ld = (catalog_loader_t){.raw = raw, .marks = marks, .err = err, .errcap = errcap};
    rc = catalog_build(cat, ld);
    if (rc != 0)
        goto fail;
    conf_marks_destroy(&marks);
    free(ld);
    free(raw);
    *out = cat;
    return 0;

fail:
    catalog_free(cat);
    conf_marks_destroy(&marks);
    free(ld);
    free(raw);
    return rc;
}

int catalog_load(const char *path, catalog_t **out, char *err, size_t errcap)
{
    if (!path) {
        if (out)
            *out = NULL;
        if (err && errcap)
            snprintf(err, errcap, "catalogue: no catalogue path");
        return NHUB_EINVAL;
    }
    return catalog_load_common(path, NULL, NULL, 0, out, err, errcap);
}

int catalog_load_string(const char *name, const char *text, size_t len, catalog_t **out, char *err,
                        size_t errcap)
{
    return catalog_load_common(NULL, name ? name : "<catalogue>", text, len, out, err, errcap);
}

void catalog_destroy(catalog_t **self)
{
    if (!self)
        return;
    catalog_free(*self);
    *self = NULL;
}

size_t catalog_count(const catalog_t *c)
{
    return c ? c->count : 0;
}

/* ---- the rule ------------------------------------------------------------ */

static int catalog_refuse(char *why, size_t whycap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int catalog_refuse(char *why, size_t whycap, const char *fmt, ...)
{
    if (why && whycap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whycap, fmt, ap);
        va_end(ap);
    }
    return NHUB_EREFUSED;
}

/* The direction rule for an item, kind and both ends already known to be well formed. */
static int catalog_check_direction(const catalog_item_t *it, int kind, const char *source,
                                   uint32_t src, const char *destination, bool broadcast,
                                   uint32_t dst, char *why, size_t whycap)
{
    const char *kn = catalog_kinds[kind].name;

    if (!catalog_kinds[kind].answer) {
        if (!catalog_set_has(&it->senders, src))
            return catalog_refuse(why, whycap,
                                  "catalogue: region %s is not a sender of item %s (kind %s)",
                                  source, it->code, kn);
        if (!broadcast && !catalog_set_has(&it->receivers, dst))
            return catalog_refuse(why, whycap,
                                  "catalogue: region %s is not a receiver of item %s (kind %s)",
                                  destination, it->code, kn);
        return 0;
    }
    if (!catalog_set_has(&it->receivers, src))
        return catalog_refuse(why, whycap,
                              "catalogue: %s of item %s must go from a receiver (%s is not one)",
                              kn, it->code, source);
    if (!catalog_set_has(&it->senders, dst))
        return catalog_refuse(why, whycap,
                              "catalogue: %s of item %s must go to a sender (%s is not one)", kn,
                              it->code, destination);
    return 0;
}

int catalog_check(const catalog_t *c, const char *item, int kind, const char *source,
                  const char *destination, char *why, size_t whycap)
{
    char a[CATALOG_SHOWN_CAP];
    uint32_t src = 0;
    uint32_t dst = 0;

    if (why && whycap)
        why[0] = '\0';
    if (!c) {
        catalog_refuse(why, whycap, "catalogue: no catalogue");
        return NHUB_EINVAL;
    }
    source = source ? source : "";
    destination = destination ? destination : "";

    const catalog_item_t *it = catalog_find(c, item);
    if (!it)
        return catalog_refuse(why, whycap, "catalogue: unknown item %s", catalog_shown(item, a));
    if (kind < 1 || kind > CATALOG_KIND_MAX)
        return catalog_refuse(why, whycap, "catalogue: unknown kind %d (item %s)", kind, it->code);

    const char *kn = catalog_kinds[kind].name;
    bool broadcast = strcmp(destination, CATALOG_BROADCAST) == 0;
    if (!(it->kinds & (1u << kind)))
        return catalog_refuse(why, whycap, "catalogue: item %s does not allow kind %s", it->code,
                              kn);
    if (broadcast && kind != CATALOG_KIND_NOTICE)
        return catalog_refuse(why, whycap,
                              "catalogue: broadcast is for notices only (item %s, kind %s, "
                              "from %s)",
                              it->code, kn, catalog_shown(source, a));
    if (!catalog_region_parse(source, &src))
        return catalog_refuse(why, whycap,
                              "catalogue: source %s is not a region code (item %s, kind %s)",
                              catalog_shown(source, a), it->code, kn);
    if (!broadcast && !catalog_region_parse(destination, &dst))
        return catalog_refuse(why, whycap,
                              "catalogue: destination %s is not a region code or \"*\" (item %s, "
                              "kind %s)",
                              catalog_shown(destination, a), it->code, kn);
    /* Both ends are six digits from here on, safe to print as they are. */
    return catalog_check_direction(it, kind, source, src, destination, broadcast, dst, why, whycap);
}

int catalog_may_receive(const catalog_t *c, const char *item, const char *region)
{
    const catalog_item_t *it = catalog_find(c, item);
    uint32_t code;
    if (!it || !region || !catalog_region_parse(region, &code))
        return 0;
    return catalog_set_has(&it->receivers, code) ? 1 : 0;
}

int64_t catalog_time_limit_ms(const catalog_t *c, const char *item)
{
    const catalog_item_t *it = catalog_find(c, item);
    return it ? it->times.time_limit_ms : 0;
}

int catalog_times(const catalog_t *c, const char *item, catalog_times_t *out)
{
    const catalog_item_t *it = catalog_find(c, item);
    *out = it ? it->times : (catalog_times_t){0};
    return it ? 0 : NHUB_ENOTFOUND;
}

int catalog_item_typed(const catalog_t *c, const char *item)
{
    const catalog_item_t *it = catalog_find(c, item);
    return it && it->typed;
}

int catalog_check_payload(const catalog_t *c, const char *item, int kind, const char *type,
                          char *why, size_t whycap)
{
    char a[CATALOG_SHOWN_CAP];
    if (why && whycap)
        why[0] = '\0';
    const catalog_item_t *it = catalog_find(c, item);
    if (!it)
        return catalog_refuse(why, whycap, "catalogue: unknown item %s", catalog_shown(item, a));
    if (kind < 1 || kind > CATALOG_KIND_MAX || !(it->kinds & (1u << kind)))
        return catalog_refuse(why, whycap, "catalogue: item %s does not allow kind %d", it->code,
                              kind);
    if (!it->typed)
        return 0;
    for (unsigned j = 0; j < it->type_count[kind]; j++)
        if (type && strcmp(it->types[kind][j]->name, type) == 0)
            return 0;
    char list[4 * CATALOG_TYPE_CAP];
    size_t used = 0;
    list[0] = '\0';
    for (unsigned j = 0; j < it->type_count[kind] && used < sizeof list; j++) {
        int n = snprintf(list + used, sizeof list - used, "%s%s", j ? ", " : "",
                         it->types[kind][j]->name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return catalog_refuse(why, whycap, "catalogue: item %s does not carry %.128s as %s (it "
                                       "carries %s)",
                          it->code, type && payload_find(type) ? type : "that type",
                          catalog_kinds[kind].name, list);
}

int catalog_priority(const catalog_t *c, const char *item)
{
    const catalog_item_t *it = c ? catalog_find(c, item) : NULL;
    return it ? it->priority : CATALOG_PRIORITY_NORMAL;
}

const char *catalog_priority_name(int priority)
{
    return priority >= 0 && priority < CATALOG_PRIORITIES ? catalog_priority_names[priority]
                                                          : "unknown";
}

const char *catalog_item_name(const catalog_t *c, const char *item)
{
    const catalog_item_t *it = catalog_find(c, item);
    return it ? it->name : NULL;
}
