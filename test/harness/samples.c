/*
 * samples.c: valid payloads of every schema type, built by field path over
 * the protobuf-c descriptors (see samples.h). The people and offices are
 * made up; the ID numbers are the GB 11643 example and numbers with correct
 * check digits.
 */
#include "samples.h"

#include "payload.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PERSON(p)                                                                                  \
    p ".id_number=11010519491231002X", p ".name=张三"
#define OFFICE(p, code, name) p ".code=" code, p ".name=" name
/* The same in push v1 and v2. */
#define APPLICATION                                                                                \
    "application_id=SL4401202612050007", "matter_code=SI-PENSION-CLAIM", PERSON("applicant"),      \
        "phone=13800000000", OFFICE("accepted_by", "4401000001", "广州市社会保险基金管理局"),      \
        "accepted_ms=1796000000000", "materials[+].name=居民身份证",                               \
        "materials[0].reference=GZ-DOC-0001"

typedef struct sample_def {
    const char *type;
    const char *fields[24];
} sample_def_t;

static const sample_def_t SAMPLES[] = {
    {"nhub.insured.v1.StatusQuery",
     {PERSON("person"), "insurance_types[+]=INSURANCE_TYPE_ENTERPRISE_PENSION",
      "purpose=养老保险待遇领取资格认定", OFFICE("office", "4401000001", "广州市社会保险基金管理局")}},
    {"nhub.insured.v1.StatusAnswer",
     {"outcome=OUTCOME_FOUND", "records[+].insurance_type=INSURANCE_TYPE_ENTERPRISE_PENSION",
      "records[0].status=INSURED_STATUS_CONTRIBUTING", "records[0].since_month=200807",
      "records[0].paid_months=182", OFFICE("office", "1101000001", "北京市社会保险基金管理中心"),
      "answered_ms=1796000000000"}},
    {"nhub.insured.v2.StatusQuery",
     {PERSON("person"), "insurance_types[+]=INSURANCE_TYPE_ENTERPRISE_PENSION",
      "purpose=养老保险待遇领取资格认定", OFFICE("office", "4401000001", "广州市社会保险基金管理局"),
      "include_periods=true"}},
    {"nhub.insured.v2.StatusAnswer",
     {"outcome=OUTCOME_FOUND", "records[+].insurance_type=INSURANCE_TYPE_ENTERPRISE_PENSION",
      "records[0].status=INSURED_STATUS_CONTRIBUTING", "records[0].since_month=200807",
      "records[0].paid_months=182", "records[0].periods[+].from_month=200807",
      "records[0].periods[0].to_month=202312", "records[0].last_paid_month=202312",
      OFFICE("office", "1101000001", "北京市社会保险基金管理中心"), "answered_ms=1796000000000"}},
    {"nhub.transfer.v1.TransferCheck",
     {PERSON("person"), "insurance_type=INSURANCE_TYPE_ENTERPRISE_PENSION",
      OFFICE("office", "4403000001", "深圳市社会保险基金管理局")}},
    {"nhub.transfer.v1.TransferCheckAnswer",
     {"transferable=TRANSFERABLE_YES", "paid_months=96", "periods[+].from_month=201001",
      "periods[0].to_month=201712", "account_balance_fen=8642300",
      OFFICE("office", "1101000001", "北京市社会保险基金管理中心")}},
    {"nhub.transfer.v1.TransferRequest",
     {"transfer_id=ZY440300202612050001", PERSON("person"),
      "insurance_type=INSURANCE_TYPE_ENTERPRISE_PENSION",
      OFFICE("office", "4403000001", "深圳市社会保险基金管理局"), "new_account_ref=4403-TF-0091"}},
    {"nhub.transfer.v1.TransferFeedback",
     {"stage=STAGE_DONE", "transfer_id=ZY440300202612050001", "paid_months=96",
      "pooled_fund_fen=10450000", "account_fund_fen=8642300", "fund_transfer_ref=BJ20261206-77",
      OFFICE("office", "1101000001", "北京市社会保险基金管理中心")}},
    {"nhub.commitment.v1.CommitmentQuery",
     {"commitment_id=CN4401-2026-000123", PERSON("person"), "matter_code=SI-PENSION-CLAIM",
      "content=未在其他地区领取基本养老保险待遇", "committed_ms=1796000000000",
      OFFICE("office", "4401000001", "广州市社会保险基金管理局")}},
    {"nhub.commitment.v1.CommitmentAnswer",
     {"finding=FINDING_TRUE", "evidence_ref=BJ-PAY-2026-11-000042",
      OFFICE("office", "1101000001", "北京市社会保险基金管理中心"), "answered_ms=1796000000000"}},
    {"nhub.push.v1.Application",
     {APPLICATION}},
    {"nhub.push.v1.Feedback",
     {"stage=STAGE_DONE", "application_id=SL4401202612050007",
      OFFICE("handled_by", "1101000001", "北京市社会保险基金管理中心"), "result=准予办理",
      "handled_time=20261206093000"}},
    {"nhub.push.v2.Application",
     {APPLICATION}},
    {"nhub.push.v2.Feedback",
     {"stage=STAGE_DONE", "application_id=SL4401202612050007",
      OFFICE("handled_by", "1101000001", "北京市社会保险基金管理中心"), "result=准予办理",
      "handled_ms=1796520600000", "handler_name=李四"}},
    {"nhub.registration.v1.RegistrationBatch",
     {"batch_id=QMCB-440000-202611-01", "period_month=202611",
      "records[+].status=REGISTRATION_STATUS_INSURED", PERSON("records[0].person"),
      "records[0].insurance_types[+]=INSURANCE_TYPE_ENTERPRISE_PENSION",
      "records[0].registered_month=200807"}},
    {"nhub.registration.v1.BatchFeedback",
     {"stage=STAGE_DONE", "batch_id=QMCB-440000-202611-01", "accepted=1"}},
    {"nhub.credit.v1.CreditNotice",
     {"notice_id=SX-440000-2026-0009", "entries[+].reason=虚假承诺骗取待遇",
      PERSON("entries[0].person"), "entries[0].decision_ref=粤人社失信〔2026〕9号",
      OFFICE("entries[0].decided_by", "4400000001", "广东省社会保险基金管理局"),
      "entries[0].listed_ms=1796000000000"}},
};
#define SAMPLE_COUNT (sizeof SAMPLES / sizeof SAMPLES[0])

const char *const sample_types[] = {
    "nhub.insured.v1.StatusQuery",           "nhub.insured.v1.StatusAnswer",
    "nhub.insured.v2.StatusQuery",           "nhub.insured.v2.StatusAnswer",
    "nhub.transfer.v1.TransferCheck",        "nhub.transfer.v1.TransferCheckAnswer",
    "nhub.transfer.v1.TransferRequest",      "nhub.transfer.v1.TransferFeedback",
    "nhub.commitment.v1.CommitmentQuery",    "nhub.commitment.v1.CommitmentAnswer",
    "nhub.push.v1.Application",              "nhub.push.v1.Feedback",
    "nhub.push.v2.Application",              "nhub.push.v2.Feedback",
    "nhub.registration.v1.RegistrationBatch", "nhub.registration.v1.BatchFeedback",
    "nhub.credit.v1.CreditNotice",
};
const size_t sample_type_count = sizeof sample_types / sizeof sample_types[0];

static ProtobufCMessage *message_new(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = calloc(1, d->sizeof_message);
    if (m)
        d->message_init(m);
    return m;
}

ProtobufCMessage *sample_empty(const char *type)
{
    const ProtobufCMessageDescriptor *d = payload_find(type);
    return d ? message_new(d) : NULL;
}

static const ProtobufCFieldDescriptor *field_named(const ProtobufCMessage *m, const char *name,
                                                   size_t len)
{
    for (unsigned i = 0; i < m->descriptor->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];
        if (strlen(f->name) == len && memcmp(f->name, name, len) == 0)
            return f;
    }
    return NULL;
}

/*
 * The storage of one path component of `m`: the field and a pointer to the
 * value (for a repeated field, to the entry; [+] appends a zeroed one).
 */
static void *locate(ProtobufCMessage *m, const char *comp, size_t len,
                    const ProtobufCFieldDescriptor **fout)
{
    const char *br = memchr(comp, '[', len);
    const ProtobufCFieldDescriptor *f = field_named(m, comp, br ? (size_t)(br - comp) : len);
    if (!f || (br != NULL) != (f->label == PROTOBUF_C_LABEL_REPEATED))
        return NULL;
    *fout = f;
    char *base = (char *)m + f->offset;
    if (!br)
        return base;
    size_t *n = (size_t *)((char *)m + f->quantifier_offset);
    char **arr = (char **)base;
    size_t es = payload_elem_size(f);
    if (br[1] == '+') {
        char *grown = realloc(*arr, (*n + 1) * es);
        if (!grown)
            return NULL;
        *arr = grown;
        memset(grown + *n * es, 0, es);
        return grown + (*n)++ * es;
    }
    size_t i = strtoul(br + 1, NULL, 10);
    return i < *n ? *arr + i * es : NULL;
}

static int set_scalar(const ProtobufCFieldDescriptor *f, void *v, const char *value)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char **s = v;
        if (*s && *s != (const char *)f->default_value)
            free(*s);
        *s = strdup(value);
        return *s ? 0 : -1;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *e = protobuf_c_enum_descriptor_get_value_by_name(f->descriptor,
                                                                                   value);
        *(int32_t *)v = e ? e->value : (int32_t)strtol(value, NULL, 10);
        return 0;
    }
    case PROTOBUF_C_TYPE_BOOL: *(protobuf_c_boolean *)v = strcmp(value, "true") == 0; return 0;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: *(int32_t *)v = (int32_t)strtol(value, NULL, 10); return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: *(uint32_t *)v = (uint32_t)strtoul(value, NULL, 10); return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: *(int64_t *)v = strtoll(value, NULL, 10); return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: *(uint64_t *)v = strtoull(value, NULL, 10); return 0;
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = v;
        size_t n = strlen(value) / 2;
        free(b->data);
        b->data = malloc(n ? n : 1);
        if (!b->data)
            return -1;
        for (size_t i = 0; i < n; i++) {
            unsigned x;
            sscanf(value + 2 * i, "%2x", &x);
            b->data[i] = (uint8_t)x;
        }
        b->len = n;
        return 0;
    }
    default: return -1;
    }
}

int sample_set(ProtobufCMessage *m, const char *path, const char *value)
{
    for (;;) {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        const ProtobufCFieldDescriptor *f;
        void *v = locate(m, path, len, &f);
        if (!v)
            return -1;
        if (!dot)
            return f->type == PROTOBUF_C_TYPE_MESSAGE ? -1 : set_scalar(f, v, value);
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            return -1;
        ProtobufCMessage **sub = v;
        if (!*sub && !(*sub = message_new(f->descriptor)))
            return -1;
        m = *sub;
        path = dot + 1;
    }
}

int sample_clear(ProtobufCMessage *m, const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot) {
        char head[128];
        size_t n = (size_t)(dot - path);
        if (n >= sizeof head)
            return -1;
        memcpy(head, path, n);
        head[n] = '\0';
        /* Walk to the parent without creating anything. */
        for (char *p = head, *next; p; p = next) {
            next = strchr(p, '.');
            size_t len = next ? (size_t)(next++ - p) : strlen(p);
            const ProtobufCFieldDescriptor *f;
            void *v = locate(m, p, len, &f);
            if (!v || f->type != PROTOBUF_C_TYPE_MESSAGE || !*(ProtobufCMessage **)v)
                return -1;
            m = *(ProtobufCMessage **)v;
        }
        path = dot + 1;
    }
    const ProtobufCFieldDescriptor *f = field_named(m, path, strlen(path));
    if (!f)
        return -1;
    /* Free what the field holds by freeing a copy of the message that has only it. */
    ProtobufCMessage *husk = message_new(m->descriptor);
    if (!husk)
        return -1;
    char *src = (char *)m, *dst = (char *)husk;
    size_t vs = f->label == PROTOBUF_C_LABEL_REPEATED ? sizeof(void *) : payload_elem_size(f);
    memcpy(dst + f->offset, src + f->offset, vs);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        memcpy(dst + f->quantifier_offset, src + f->quantifier_offset, sizeof(size_t));
        *(size_t *)(src + f->quantifier_offset) = 0;
    }
    ProtobufCMessage *fresh = message_new(m->descriptor);
    if (fresh) {
        memcpy(src + f->offset, (char *)fresh + f->offset, vs);
        free(fresh);
    }
    protobuf_c_message_free_unpacked(husk, NULL);
    return 0;
}

ProtobufCMessage *sample_new(const char *type)
{
    for (size_t i = 0; i < SAMPLE_COUNT; i++) {
        if (strcmp(SAMPLES[i].type, type) != 0)
            continue;
        ProtobufCMessage *m = sample_empty(type);
        for (size_t k = 0; m && SAMPLES[i].fields[k]; k++) {
            char path[128];
            const char *eq = strchr(SAMPLES[i].fields[k], '=');
            size_t n = (size_t)(eq - SAMPLES[i].fields[k]);
            memcpy(path, SAMPLES[i].fields[k], n);
            path[n] = '\0';
            if (sample_set(m, path, eq + 1) != 0) {
                fprintf(stderr, "samples: %s: cannot set %s\n", type, path);
                sample_free(&m);
            }
        }
        return m;
    }
    return NULL;
}

uint8_t *sample_pack(const ProtobufCMessage *m, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf)
        *len = protobuf_c_message_pack(m, buf);
    return buf;
}

uint8_t *sample_bytes(const char *type, size_t *len)
{
    ProtobufCMessage *m = sample_new(type);
    if (!m)
        return NULL;
    uint8_t *buf = sample_pack(m, len);
    sample_free(&m);
    return buf;
}

void sample_free(ProtobufCMessage **m)
{
    if (m && *m) {
        protobuf_c_message_free_unpacked(*m, NULL);
        *m = NULL;
    }
}
