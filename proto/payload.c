/*
 * payload.c: the registry of business payload types, bounded decoding, and
 * the field rules of schemas/README.md.
 *
 * The rules are a table, written once per type for every version of its
 * package (a rule names nhub.insured.StatusQuery, without the version, and
 * applies to each version that has the field). At first use the table is
 * resolved against the descriptors into one sorted array of (descriptor,
 * field, rule), so checking a message finds its rules by binary search and
 * walks its fields once. payload_self_check() in the unit test proves every
 * rule names a field that exists, so a renamed field cannot silently drop
 * its rule.
 */
#include "payload.h"

#include "nhub_err.h"
#include "wire.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* build/gen/schemas.c: every message descriptor of schemas/nhub/. */
extern const ProtobufCMessageDescriptor *const schemas_descriptors[];
extern const size_t schemas_descriptor_count;

/* ---- the rules --------------------------------------------------------- */

typedef enum rule_kind {
    RULE_REQUIRED,      /* set: a message present, a string or list non-empty, a number non-zero */
    RULE_ID_NUMBER,     /* 公民身份号码, GB 11643: required, 18 characters, check digit */
    RULE_OFFICE_CODE,   /* required: six digits (the region), then 0..10 of [0-9A-Z] */
    RULE_MONTH,         /* empty or YYYYMM */
    RULE_BEIJING_TIME,  /* empty or YYYYMMDDhhmmss, a real second */
    RULE_TEXT_MAX,      /* a string of at most `a` bytes */
    RULE_MAX,           /* a number at most `a` */
    RULE_NOT_NEGATIVE,  /* a signed number >= 0 */
    RULE_RANGE,         /* a number in `a`..`b` */
    RULE_COUNT,         /* a list of `a`..`b` entries */
    RULE_BYTES_LEN,     /* bytes: empty or exactly `a` */
    RULE_NOT_BEFORE,    /* a string not less than field number `a` of the same message, when both are set */
    RULE_REQUIRED_WHEN, /* set when enum field number `a` has a value v with bit v of `b` set */
} rule_kind_t;

typedef struct rule {
    const char *type;  /* full name without the version: nhub.insured.StatusQuery */
    const char *field; /* field name */
    rule_kind_t kind;
    int64_t a, b;
} rule_t;

#define STAGE_REFUSED_BIT (1 << 4) /* nhub.common.v1.Stage STAGE_REFUSED */

static const rule_t RULES[] = {
    {"nhub.common.Person", "id_number", RULE_ID_NUMBER, 0, 0},
    {"nhub.common.Person", "name", RULE_REQUIRED, 0, 0},
    {"nhub.common.Person", "name", RULE_TEXT_MAX, 60, 0},
    {"nhub.common.Office", "code", RULE_OFFICE_CODE, 0, 0},
    {"nhub.common.Office", "name", RULE_TEXT_MAX, 120, 0},
    {"nhub.common.Period", "from_month", RULE_REQUIRED, 0, 0},
    {"nhub.common.Period", "from_month", RULE_MONTH, 0, 0},
    {"nhub.common.Period", "to_month", RULE_MONTH, 0, 0},
    {"nhub.common.Period", "to_month", RULE_NOT_BEFORE, 1, 0},

    {"nhub.insured.StatusQuery", "person", RULE_REQUIRED, 0, 0},
    {"nhub.insured.StatusQuery", "purpose", RULE_REQUIRED, 0, 0},
    {"nhub.insured.StatusQuery", "office", RULE_REQUIRED, 0, 0},
    {"nhub.insured.InsuranceRecord", "insurance_type", RULE_REQUIRED, 0, 0},
    {"nhub.insured.InsuranceRecord", "status", RULE_REQUIRED, 0, 0},
    {"nhub.insured.InsuranceRecord", "since_month", RULE_MONTH, 0, 0},
    {"nhub.insured.InsuranceRecord", "paid_months", RULE_MAX, 1200, 0},
    {"nhub.insured.InsuranceRecord", "last_paid_month", RULE_MONTH, 0, 0},
    {"nhub.insured.StatusAnswer", "outcome", RULE_REQUIRED, 0, 0},
    {"nhub.insured.StatusAnswer", "office", RULE_REQUIRED, 0, 0},

    {"nhub.transfer.TransferCheck", "person", RULE_REQUIRED, 0, 0},
    {"nhub.transfer.TransferCheck", "insurance_type", RULE_REQUIRED, 0, 0},
    {"nhub.transfer.TransferCheck", "office", RULE_REQUIRED, 0, 0},
    {"nhub.transfer.TransferCheckAnswer", "transferable", RULE_REQUIRED, 0, 0},
    {"nhub.transfer.TransferCheckAnswer", "paid_months", RULE_MAX, 1200, 0},
    {"nhub.transfer.TransferCheckAnswer", "account_balance_fen", RULE_NOT_NEGATIVE, 0, 0},
    {"nhub.transfer.TransferCheckAnswer", "office", RULE_REQUIRED, 0, 0},
    {"nhub.transfer.TransferRequest", "transfer_id", RULE_REQUIRED, 0, 0},
    {"nhub.transfer.TransferRequest", "person", RULE_REQUIRED, 0, 0},
    {"nhub.transfer.TransferRequest", "insurance_type", RULE_REQUIRED, 0, 0},
    {"nhub.transfer.TransferRequest", "office", RULE_REQUIRED, 0, 0},
    {"nhub.transfer.TransferFeedback", "stage", RULE_REQUIRED, 0, 0},
    {"nhub.transfer.TransferFeedback", "transfer_id", RULE_REQUIRED, 0, 0},
    {"nhub.transfer.TransferFeedback", "paid_months", RULE_MAX, 1200, 0},
    {"nhub.transfer.TransferFeedback", "pooled_fund_fen", RULE_NOT_NEGATIVE, 0, 0},
    {"nhub.transfer.TransferFeedback", "account_fund_fen", RULE_NOT_NEGATIVE, 0, 0},
    {"nhub.transfer.TransferFeedback", "refusal_reason", RULE_REQUIRED_WHEN, 1, STAGE_REFUSED_BIT},
    {"nhub.transfer.TransferFeedback", "office", RULE_REQUIRED, 0, 0},

    {"nhub.commitment.CommitmentQuery", "commitment_id", RULE_REQUIRED, 0, 0},
    {"nhub.commitment.CommitmentQuery", "person", RULE_REQUIRED, 0, 0},
    {"nhub.commitment.CommitmentQuery", "matter_code", RULE_REQUIRED, 0, 0},
    {"nhub.commitment.CommitmentQuery", "content", RULE_REQUIRED, 0, 0},
    {"nhub.commitment.CommitmentQuery", "office", RULE_REQUIRED, 0, 0},
    {"nhub.commitment.CommitmentAnswer", "finding", RULE_REQUIRED, 0, 0},
    /* FINDING_TRUE = 1, FINDING_FALSE = 2 rest on evidence. */
    {"nhub.commitment.CommitmentAnswer", "evidence_ref", RULE_REQUIRED_WHEN, 1, (1 << 1) | (1 << 2)},
    {"nhub.commitment.CommitmentAnswer", "office", RULE_REQUIRED, 0, 0},

    {"nhub.push.Material", "name", RULE_REQUIRED, 0, 0},
    {"nhub.push.Material", "sha256", RULE_BYTES_LEN, 32, 0},
    {"nhub.push.Application", "application_id", RULE_REQUIRED, 0, 0},
    {"nhub.push.Application", "matter_code", RULE_REQUIRED, 0, 0},
    {"nhub.push.Application", "applicant", RULE_REQUIRED, 0, 0},
    {"nhub.push.Application", "accepted_by", RULE_REQUIRED, 0, 0},
    {"nhub.push.Feedback", "stage", RULE_REQUIRED, 0, 0},
    {"nhub.push.Feedback", "application_id", RULE_REQUIRED, 0, 0},
    {"nhub.push.Feedback", "handled_by", RULE_REQUIRED, 0, 0},
    {"nhub.push.Feedback", "refusal_reason", RULE_REQUIRED_WHEN, 1, STAGE_REFUSED_BIT},
    {"nhub.push.Feedback", "handled_time", RULE_REQUIRED, 0, 0}, /* v1 */
    {"nhub.push.Feedback", "handled_time", RULE_BEIJING_TIME, 0, 0},
    {"nhub.push.Feedback", "handled_ms", RULE_REQUIRED, 0, 0}, /* v2 */
    /* A time Beijing-time text can say too, so translation down never fails. */
    {"nhub.push.Feedback", "handled_ms", RULE_RANGE, PAYLOAD_TIME_MIN_MS, PAYLOAD_TIME_MAX_MS},

    {"nhub.registration.RegistrationRecord", "person", RULE_REQUIRED, 0, 0},
    {"nhub.registration.RegistrationRecord", "status", RULE_REQUIRED, 0, 0},
    {"nhub.registration.RegistrationRecord", "registered_month", RULE_MONTH, 0, 0},
    {"nhub.registration.RegistrationBatch", "batch_id", RULE_REQUIRED, 0, 0},
    {"nhub.registration.RegistrationBatch", "records", RULE_COUNT, 1, 10000},
    {"nhub.registration.RegistrationBatch", "period_month", RULE_REQUIRED, 0, 0},
    {"nhub.registration.RegistrationBatch", "period_month", RULE_MONTH, 0, 0},
    {"nhub.registration.RecordError", "reason", RULE_REQUIRED, 0, 0},
    {"nhub.registration.BatchFeedback", "stage", RULE_REQUIRED, 0, 0},
    {"nhub.registration.BatchFeedback", "batch_id", RULE_REQUIRED, 0, 0},

    {"nhub.credit.CreditEntry", "person", RULE_REQUIRED, 0, 0},
    {"nhub.credit.CreditEntry", "reason", RULE_REQUIRED, 0, 0},
    {"nhub.credit.CreditEntry", "decision_ref", RULE_REQUIRED, 0, 0},
    {"nhub.credit.CreditEntry", "decided_by", RULE_REQUIRED, 0, 0},
    {"nhub.credit.CreditNotice", "notice_id", RULE_REQUIRED, 0, 0},
    {"nhub.credit.CreditNotice", "entries", RULE_COUNT, 1, 10000},
};
#define RULE_COUNT_ALL (sizeof RULES / sizeof RULES[0])

/* A rule resolved against one version's descriptor. */
typedef struct bound_rule {
    const ProtobufCMessageDescriptor *desc;
    unsigned field; /* index into desc->fields */
    const rule_t *rule;
} bound_rule_t;

static struct registry {
    const ProtobufCMessageDescriptor **types; /* sorted by name */
    size_t type_count;
    bound_rule_t *rules; /* sorted by desc, then field */
    size_t rule_count;
} reg;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

static int by_name(const void *a, const void *b)
{
    const ProtobufCMessageDescriptor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int by_desc_field(const void *a, const void *b)
{
    const bound_rule_t *x = a, *y = b;
    if (x->desc != y->desc)
        return (uintptr_t)x->desc < (uintptr_t)y->desc ? -1 : 1;
    if (x->field != y->field)
        return x->field < y->field ? -1 : 1;
    return x->rule < y->rule ? -1 : x->rule > y->rule;
}

/* Does full name `name` (nhub.insured.v2.StatusQuery) match `rule_type` (nhub.insured.StatusQuery)? */
static bool name_matches(const char *name, const char *rule_type)
{
    unsigned v;
    size_t prefix;
    if (payload_type_version(name, &v, &prefix) != 0)
        return strcmp(name, rule_type) == 0;
    const char *rest = strchr(name + prefix, '.');
    return rest && strncmp(name, rule_type, prefix) == 0 && strcmp(rest + 1, rule_type + prefix) == 0;
}

static int field_index(const ProtobufCMessageDescriptor *d, const char *field)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (strcmp(d->fields[i].name, field) == 0)
            return (int)i;
    return -1;
}

static void registry_build(void)
{
    size_t n = schemas_descriptor_count;
    reg.types = malloc(n * sizeof *reg.types);
    reg.rules = malloc(RULE_COUNT_ALL * n * sizeof *reg.rules);
    if (!reg.types || !reg.rules) {
        free(reg.types);
        free(reg.rules);
        reg.types = NULL;
        reg.rules = NULL;
        return; /* payload_find() then finds nothing: every payload is refused, never passed */
    }
    memcpy(reg.types, schemas_descriptors, n * sizeof *reg.types);
    qsort(reg.types, n, sizeof *reg.types, by_name);
    reg.type_count = n;
    for (size_t r = 0; r < RULE_COUNT_ALL; r++) {
        for (size_t t = 0; t < n; t++) {
            if (!name_matches(reg.types[t]->name, RULES[r].type))
                continue;
            int f = field_index(reg.types[t], RULES[r].field);
            if (f >= 0)
                reg.rules[reg.rule_count++] = (bound_rule_t){reg.types[t], (unsigned)f, &RULES[r]};
        }
    }
    qsort(reg.rules, reg.rule_count, sizeof *reg.rules, by_desc_field);
}

static const struct registry *registry(void)
{
    pthread_once(&reg_once, registry_build);
    return &reg;
}

size_t payload_type_count(void)
{
    return registry()->type_count;
}

const ProtobufCMessageDescriptor *payload_type_at(size_t i)
{
    const struct registry *r = registry();
    return i < r->type_count ? r->types[i] : NULL;
}

const ProtobufCMessageDescriptor *payload_find(const char *name)
{
    const struct registry *r = registry();
    if (!name)
        return NULL;
    size_t lo = 0, hi = r->type_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, r->types[mid]->name);
        if (c == 0)
            return r->types[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int payload_type_version(const char *name, unsigned *version, size_t *prefix_len)
{
    if (!name)
        return NHUB_EINVAL;
    /* The last package component is the one before the last dot. */
    const char *last = strrchr(name, '.');
    if (!last)
        return NHUB_EINVAL;
    const char *p = last;
    while (p > name && p[-1] != '.')
        p--;
    if (p == name || p[0] != 'v' || last - p < 2 || last - p > 4 || p[1] == '0')
        return NHUB_EINVAL;
    unsigned v = 0;
    for (const char *q = p + 1; q < last; q++) {
        if (*q < '0' || *q > '9')
            return NHUB_EINVAL;
        v = v * 10 + (unsigned)(*q - '0');
    }
    if (version)
        *version = v;
    if (prefix_len)
        *prefix_len = (size_t)(p - name);
    return 0;
}

/* ---- field rules --------------------------------------------------------- */

int payload_month_valid(const char *s)
{
    if (!s || strlen(s) != 6)
        return 0;
    for (int i = 0; i < 6; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    int year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int month = (s[4] - '0') * 10 + (s[5] - '0');
    return year >= 1900 && year <= 2199 && month >= 1 && month <= 12;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

static bool date_valid(int y, int m, int d)
{
    return y >= 1900 && y <= 2199 && m >= 1 && m <= 12 && d >= 1 && d <= month_days(y, m);
}

char payload_id_check_char(const char *s)
{
    /* ISO 7064 MOD 11-2 as GB 11643 applies it: weights 2^(17-i) mod 11. */
    static const int weight[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
    static const char check[11] = {'1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'};
    if (!s)
        return 0;
    int sum = 0;
    for (int i = 0; i < 17; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        sum += (s[i] - '0') * weight[i];
    }
    return check[sum % 11];
}

int payload_id_number_valid(const char *s)
{
    if (!s || strlen(s) != 18)
        return 0;
    char c = payload_id_check_char(s);
    if (!c || s[17] != c)
        return 0;
    return date_valid(digits(s + 6, 4), digits(s + 10, 2), digits(s + 12, 2));
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

#define BEIJING_OFFSET_MS (8 * 3600 * 1000LL)

int payload_beijing_parse(const char *s, int64_t *ms)
{
    if (!s || strlen(s) != 14)
        return NHUB_EINVAL;
    for (int i = 0; i < 14; i++)
        if (s[i] < '0' || s[i] > '9')
            return NHUB_EINVAL;
    int y = digits(s, 4), mo = digits(s + 4, 2), d = digits(s + 6, 2);
    int h = digits(s + 8, 2), mi = digits(s + 10, 2), se = digits(s + 12, 2);
    if (!date_valid(y, mo, d) || h > 23 || mi > 59 || se > 59)
        return NHUB_EINVAL;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    if (ms)
        *ms = secs * 1000 - BEIJING_OFFSET_MS;
    return 0;
}

void payload_beijing_format(int64_t ms, char out[15])
{
    int64_t local = ms + BEIJING_OFFSET_MS;
    int64_t secs = local >= 0 ? local / 1000 : (local - 999) / 1000;
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t rem = secs - days * 86400;
    /* civil_from_days */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    if (y < 0 || y > 9999) {
        memcpy(out, "00000000000000", 15);
        return;
    }
    const int64_t parts[6] = {y, m, d, rem / 3600, rem / 60 % 60, rem % 60};
    const int width[6] = {4, 2, 2, 2, 2, 2};
    char *p = out;
    for (int i = 0; i < 6; i++) {
        int64_t v = parts[i];
        for (int k = width[i] - 1; k >= 0; k--, v /= 10)
            p[k] = (char)('0' + v % 10);
        p += width[i];
    }
    *p = '\0';
}

static bool office_code_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 6 || n > 16)
        return false;
    for (size_t i = 0; i < n; i++) {
        bool digit = s[i] >= '0' && s[i] <= '9';
        if (i < 6 ? !digit : !(digit || (s[i] >= 'A' && s[i] <= 'Z')))
            return false;
    }
    return true;
}

/* UTF-8 without overlong forms, surrogates or code points past U+10FFFF, and no C0 control or DEL. */
static bool text_valid(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s;
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c < 0x80) {
            s++;
            continue;
        }
        int n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : -1;
        if (n < 0 || c > 0xf4 || c == 0xc0 || c == 0xc1)
            return false;
        unsigned cp = c & (0x3f >> n);
        for (int i = 1; i <= n; i++) {
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

/* ---- the walk ------------------------------------------------------------ */

typedef struct walk {
    char path[192];
    size_t path_len;
    char *why;
    size_t whycap;
    const char *type; /* the payload's type name, for messages */
} walk_t;

static int fail(walk_t *w, const char *fmt, ...)
{
    if (w->why && w->whycap) {
        int n = snprintf(w->why, w->whycap, "payload: %s %.*s: ", w->type, (int)w->path_len,
                         w->path);
        if (n >= 0 && (size_t)n < w->whycap) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(w->why + n, w->whycap - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

/* Append ".name" or "[i]" to the path; returns the old length to restore. */
static size_t path_push(walk_t *w, const char *name, long index)
{
    size_t old = w->path_len;
    size_t room = sizeof w->path - w->path_len;
    int n = index < 0 ? snprintf(w->path + w->path_len, room, "%s%s", old ? "." : "", name)
                      : snprintf(w->path + w->path_len, room, "[%ld]", index);
    if (n > 0)
        w->path_len += (size_t)n < room ? (size_t)n : room - 1;
    return old;
}

size_t payload_elem_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    default: return 4;
    }
}

/* The n-th value of field `f` in `msg` (n = 0 for a singular field). */
static const void *field_value(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                               size_t n)
{
    const char *base = (const char *)msg + f->offset;
    if (f->label != PROTOBUF_C_LABEL_REPEATED)
        return base;
    return *(const char *const *)base + n * payload_elem_size(f);
}

static size_t field_count(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED)
        return 1;
    return *(const size_t *)((const char *)msg + f->quantifier_offset);
}

/* A number field as int64 (uint64 above INT64_MAX saturates); 0 for other types. */
static int64_t number_of(const ProtobufCFieldDescriptor *f, const void *v)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM: return *(const int32_t *)v;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return *(const uint32_t *)v;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: return *(const int64_t *)v;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t u = *(const uint64_t *)v;
        return u > INT64_MAX ? INT64_MAX : (int64_t)u;
    }
    case PROTOBUF_C_TYPE_BOOL: return *(const protobuf_c_boolean *)v != 0;
    default: return 0;
    }
}

/* Is field `f` of `msg` set (the proto3 meaning: not its zero value)? */
static bool field_set(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return field_count(msg, f) > 0;
    const void *v = field_value(msg, f, 0);
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)v;
        return s && s[0];
    }
    case PROTOBUF_C_TYPE_MESSAGE: return *(const void *const *)v != NULL;
    case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)v)->len > 0;
    case PROTOBUF_C_TYPE_FLOAT: return *(const float *)v != 0;
    case PROTOBUF_C_TYPE_DOUBLE: return *(const double *)v != 0;
    default: return number_of(f, v) != 0;
    }
}

static const ProtobufCFieldDescriptor *field_by_number(const ProtobufCMessageDescriptor *d,
                                                        int64_t number)
{
    if (number <= 0 || number > UINT32_MAX)
        return NULL;
    return protobuf_c_message_descriptor_get_field(d, (unsigned)number);
}

static const char *string_at(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (!f || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    return *(const char *const *)field_value(msg, f, 0);
}

/* One rule on the whole field (presence, counts, conditions). */
static int rule_field(walk_t *w, const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                      const rule_t *r)
{
    switch (r->kind) {
    case RULE_REQUIRED:
    case RULE_ID_NUMBER:
    case RULE_OFFICE_CODE:
        return field_set(msg, f) ? 0 : fail(w, "required, missing");
    case RULE_COUNT: {
        size_t n = field_count(msg, f);
        if ((int64_t)n < r->a || (int64_t)n > r->b)
            return fail(w, "%zu entries, must be %lld to %lld", n, (long long)r->a,
                        (long long)r->b);
        return 0;
    }
    case RULE_REQUIRED_WHEN: {
        const ProtobufCFieldDescriptor *cond = field_by_number(msg->descriptor, r->a);
        if (!cond || cond->label == PROTOBUF_C_LABEL_REPEATED)
            return 0;
        int64_t v = number_of(cond, field_value(msg, cond, 0));
        if (v >= 0 && v < 63 && (r->b >> v & 1) && !field_set(msg, f))
            return fail(w, "required when %s is %lld, missing", cond->name, (long long)v);
        return 0;
    }
    case RULE_NOT_BEFORE: {
        const char *self = string_at(msg, f);
        const char *other = string_at(msg, field_by_number(msg->descriptor, r->a));
        if (self && other && self[0] && other[0] && strcmp(self, other) < 0)
            return fail(w, "before %s", field_by_number(msg->descriptor, r->a)->name);
        return 0;
    }
    default: return 0;
    }
}

/* One rule on one value of the field. */
static int rule_value(walk_t *w, const ProtobufCFieldDescriptor *f, const void *v, const rule_t *r)
{
    const char *s = f->type == PROTOBUF_C_TYPE_STRING ? *(const char *const *)v : NULL;
    switch (r->kind) {
    case RULE_ID_NUMBER:
        if (!s || !s[0])
            return 0; /* presence is rule_field()'s */
        if (strlen(s) != 18)
            return fail(w, "%zu characters, an ID number has 18", strlen(s));
        if (!payload_id_check_char(s) || !((s[17] >= '0' && s[17] <= '9') || s[17] == 'X'))
            return fail(w, "17 digits and a check digit 0-9 or X expected");
        if (!date_valid(digits(s + 6, 4), digits(s + 10, 2), digits(s + 12, 2)))
            return fail(w, "no such birth date");
        return s[17] == payload_id_check_char(s) ? 0 : fail(w, "wrong check digit");
    case RULE_OFFICE_CODE:
        return !s || !s[0] || office_code_valid(s)
                   ? 0
                   : fail(w, "six digits of a region then up to ten of [0-9A-Z] expected");
    case RULE_MONTH:
        return !s || !s[0] || payload_month_valid(s) ? 0 : fail(w, "not a month YYYYMM");
    case RULE_BEIJING_TIME:
        return !s || !s[0] || payload_beijing_parse(s, NULL) == 0
                   ? 0
                   : fail(w, "not a time YYYYMMDDhhmmss");
    case RULE_TEXT_MAX:
        return !s || strlen(s) <= (size_t)r->a
                   ? 0
                   : fail(w, "%zu bytes, at most %lld", strlen(s), (long long)r->a);
    case RULE_MAX:
        return number_of(f, v) <= r->a ? 0 : fail(w, "more than %lld", (long long)r->a);
    case RULE_NOT_NEGATIVE: return number_of(f, v) >= 0 ? 0 : fail(w, "negative");
    case RULE_RANGE:
        return number_of(f, v) >= r->a && number_of(f, v) <= r->b
                   ? 0
                   : fail(w, "out of range %lld..%lld", (long long)r->a, (long long)r->b);
    case RULE_BYTES_LEN: {
        size_t len = f->type == PROTOBUF_C_TYPE_BYTES ? ((const ProtobufCBinaryData *)v)->len : 0;
        return len == 0 || len == (size_t)r->a
                   ? 0
                   : fail(w, "%zu bytes, must be empty or %lld", len, (long long)r->a);
    }
    default: return 0;
    }
}

/* What every value of its type must be, rules or not. */
static int value_basic(walk_t *w, const ProtobufCFieldDescriptor *f, const void *v)
{
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        const char *s = *(const char *const *)v;
        if (!s)
            return 0;
        if (strlen(s) > PAYLOAD_TEXT_MAX)
            return fail(w, "%zu bytes, at most %d", strlen(s), PAYLOAD_TEXT_MAX);
        if (!text_valid((const unsigned char *)s))
            return fail(w, "not UTF-8 text without control characters");
    }
    if (f->type == PROTOBUF_C_TYPE_ENUM) {
        int32_t e = *(const int32_t *)v;
        if (!protobuf_c_enum_descriptor_get_value(f->descriptor, e))
            return fail(w, "value %d is not one of %s", (int)e,
                        ((const ProtobufCEnumDescriptor *)f->descriptor)->name);
    }
    return 0;
}

static int walk_message(walk_t *w, const ProtobufCMessage *msg, unsigned depth);

/* The rules bound to field index `fi` of `d`: [*first, *first + return). */
static size_t rules_of(const ProtobufCMessageDescriptor *d, unsigned fi, const bound_rule_t **first)
{
    const struct registry *r = registry();
    size_t lo = 0, hi = r->rule_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const bound_rule_t *b = &r->rules[mid];
        if ((uintptr_t)b->desc < (uintptr_t)d || (b->desc == d && b->field < fi))
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t n = 0;
    while (lo + n < r->rule_count && r->rules[lo + n].desc == d && r->rules[lo + n].field == fi)
        n++;
    *first = r->rules + lo;
    return n;
}

static int walk_field(walk_t *w, const ProtobufCMessage *msg, unsigned fi, unsigned depth)
{
    const ProtobufCFieldDescriptor *f = &msg->descriptor->fields[fi];
    const bound_rule_t *rules;
    size_t nrules = rules_of(msg->descriptor, fi, &rules);
    for (size_t k = 0; k < nrules; k++)
        if (rule_field(w, msg, f, rules[k].rule) != 0)
            return -1;
    size_t count = field_count(msg, f);
    bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
    for (size_t i = 0; i < count; i++) {
        const void *v = field_value(msg, f, i);
        size_t mark = repeated ? path_push(w, "", (long)i) : w->path_len;
        if (value_basic(w, f, v) != 0)
            return -1;
        for (size_t k = 0; k < nrules; k++)
            if (rule_value(w, f, v, rules[k].rule) != 0)
                return -1;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && *(const ProtobufCMessage *const *)v &&
            walk_message(w, *(const ProtobufCMessage *const *)v, depth + 1) != 0)
            return -1;
        w->path_len = mark;
    }
    return 0;
}

static int walk_message(walk_t *w, const ProtobufCMessage *msg, unsigned depth)
{
    if (depth > PAYLOAD_DEPTH_MAX)
        return fail(w, "nested more than %d deep", PAYLOAD_DEPTH_MAX);
    /* The type named is the type sent: a field it does not have (a later
     * version's, or a mistake) would reach a receiver that cannot read it. */
    if (msg->n_unknown_fields > 0)
        return fail(w, "field number %u is not in %s", (unsigned)msg->unknown_fields[0].tag,
                    msg->descriptor->name);
    for (unsigned fi = 0; fi < msg->descriptor->n_fields; fi++) {
        size_t mark = path_push(w, msg->descriptor->fields[fi].name, -1);
        if (walk_field(w, msg, fi, depth) != 0)
            return -1;
        w->path_len = mark;
    }
    return 0;
}

/* ---- decoding and the check ---------------------------------------------- */

/* Decoded payloads hold a struct per nested message and per string:
 * wire_decode() allows 4 * budget + 4096 bytes, so eight times the input and
 * some, which a batch of 10,000 small records stays well under (about 2.5x). */
#define PAYLOAD_DECODE_FACTOR 2

int payload_decode(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                   ProtobufCMessage **out)
{
    if (len > SIZE_MAX / 8)
        return NHUB_ETOOBIG;
    return wire_decode(desc, data, len, len * PAYLOAD_DECODE_FACTOR + 4096, out);
}

void payload_free(ProtobufCMessage **msg)
{
    wire_free(msg);
}

int payload_enum_field(const ProtobufCMessage *msg, unsigned number)
{
    if (!msg)
        return -1;
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(msg->descriptor,
                                                                                number);
    if (!f || f->type != PROTOBUF_C_TYPE_ENUM || f->label == PROTOBUF_C_LABEL_REPEATED)
        return -1;
    return *(const int32_t *)((const char *)msg + f->offset);
}

/* "package nhub.insured has v1, v2" for an unknown version of a known package. */
static void versions_known(const char *type, char *out, size_t cap)
{
    const struct registry *r = registry();
    size_t prefix;
    out[0] = '\0';
    if (payload_type_version(type, NULL, &prefix) != 0 || prefix < 2)
        return;
    size_t used = 0;
    unsigned last = 0;
    for (size_t i = 0; i < r->type_count && used + 8 < cap; i++) {
        unsigned v;
        size_t p;
        if (payload_type_version(r->types[i]->name, &v, &p) != 0 || p != prefix ||
            strncmp(r->types[i]->name, type, prefix) != 0 || v == last)
            continue;
        int n = snprintf(out + used, cap - used, "%sv%u", used ? ", " : "", v);
        if (n < 0 || (size_t)n >= cap - used)
            break;
        used += (size_t)n;
        last = v;
    }
}

static void say(char *why, size_t whycap, const char *fmt, ...)
{
    if (!why || !whycap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whycap, fmt, ap);
    va_end(ap);
}

payload_verdict_t payload_check(const char *type, const void *data, size_t len,
                                ProtobufCMessage **out, char *why, size_t whycap)
{
    if (out)
        *out = NULL;
    say(why, whycap, "");
    const ProtobufCMessageDescriptor *desc = payload_find(type);
    if (!desc) {
        char known[64];
        size_t prefix;
        versions_known(type ? type : "", known, sizeof known);
        if (known[0] && payload_type_version(type, NULL, &prefix) == 0)
            say(why, whycap, "payload: unknown type %.128s (package %.*s has %s)", type,
                (int)(prefix - 1), type, known);
        else
            say(why, whycap, "payload: unknown type %.128s", type ? type : "");
        return PAYLOAD_UNKNOWN;
    }
    ProtobufCMessage *msg = NULL;
    if (payload_decode(desc, data, len, &msg) != 0) {
        say(why, whycap, "payload: does not decode as %s", desc->name);
        return PAYLOAD_MALFORMED;
    }
    walk_t w = {.why = why, .whycap = whycap, .type = desc->name};
    if (walk_message(&w, msg, 0) != 0) {
        payload_free(&msg);
        return PAYLOAD_INVALID;
    }
    if (out)
        *out = msg;
    else
        payload_free(&msg);
    return PAYLOAD_OK;
}

/* ---- self check ---------------------------------------------------------- */

static bool depth_ok(const ProtobufCMessageDescriptor *d, unsigned depth)
{
    if (depth > PAYLOAD_DEPTH_MAX)
        return false;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE &&
            !depth_ok(d->fields[i].descriptor, depth + 1))
            return false;
    return true;
}

int payload_self_check(char *why, size_t whycap)
{
    const struct registry *r = registry();
    say(why, whycap, "");
    if (!r->types) {
        say(why, whycap, "payload: registry not built (out of memory)");
        return NHUB_ENOMEM;
    }
    for (size_t k = 0; k < RULE_COUNT_ALL; k++) {
        bool found = false;
        for (size_t i = 0; i < r->rule_count && !found; i++)
            found = r->rules[i].rule == &RULES[k];
        if (!found) {
            say(why, whycap, "payload: rule on %s.%s names no field of any version",
                RULES[k].type, RULES[k].field);
            return NHUB_EINVAL;
        }
    }
    for (size_t i = 0; i < r->type_count; i++) {
        if (!depth_ok(r->types[i], 0)) {
            say(why, whycap, "payload: %s nests more than %d deep (or is recursive)",
                r->types[i]->name, PAYLOAD_DEPTH_MAX);
            return NHUB_EINVAL;
        }
    }
    return 0;
}
