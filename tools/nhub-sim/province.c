/*
 * province.c: one simulated provincial platform (see province.h).
 *
 * The thread's loop, each turn: go offline or come back if the plan says
 * so; make the new exchanges whose (exponentially spaced) arrival time has
 * come and the planned answers whose time has come, and store them in the
 * outbox with one nhub_send_batch (one fsync); then wait for deliveries
 * until the next thing planned (at most SIM_TURN_MS), take what came, act on
 * it (plan answers, count answers and the hub's notices) and confirm it all
 * with one nhub_confirm_batch.
 *
 * Planned answers live in RAM (a heap ordered by time): a simulated
 * platform that stops forgets them, and the hub expires those cases, as it
 * would a real platform's that lost its work. Answers are counted as in
 * time or late by the requester: late if the hub's OVERDUE notice for the
 * case came first (the hub queues both to the requester in the order it
 * made them), so the set of overdue cases is the only per-case memory.
 */
#include "province.h"

#include "nhub.h"
#include "payload.h"
#include "samples.h"

#include "nhub/case/v1/case.pb-c.h"
#include "nhub/common/v1/common.pb-c.h"
#include "nhub/push/v1/push.pb-c.h"
#include "nhub/registration/v1/registration.pb-c.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SIM_TURN_MS 100     /* longest wait in one turn: how soon a stop is seen */
#define SIM_BATCH 64        /* messages per nhub_send_batch, deliveries per confirm */
#define SIM_PLAN_MAX 262144 /* planned answers held at most */
#define SIM_STATS_EVERY_MS 500
#define SIM_FLUSH_AT_STOP_MS 300
#define SIM_DEFAULT_LIMIT_MS 10000 /* case times when the hub has no catalogue */

#define ITEM_INSURED "SI-VERIFY-002"
#define ITEM_COMMITMENT "SI-VERIFY-003"
#define ITEM_PUSH "SI-PUSH-001"
#define ITEM_UPLOAD "SI-UPLOAD-001"
#define ITEM_NOTICE "SI-NOTICE-001"
#define T_QUERY "nhub.insured.v1.StatusQuery"
#define T_ANSWER "nhub.insured.v1.StatusAnswer"
#define T_CQUERY "nhub.commitment.v1.CommitmentQuery"
#define T_CANSWER "nhub.commitment.v1.CommitmentAnswer"
#define T_APP "nhub.push.v1.Application"
#define T_FEEDBACK "nhub.push.v1.Feedback"
#define T_BATCH "nhub.registration.v1.RegistrationBatch"
#define T_BATCH_FB "nhub.registration.v1.BatchFeedback"
#define T_CREDIT "nhub.credit.v1.CreditNotice"
#define T_CASE "nhub.case.v1.CaseNotice"

/* What a planned message is. */
enum act {
    ACT_STATUS_ANSWER,
    ACT_COMMITMENT_ANSWER,
    ACT_PUSH_FEEDBACK,
    ACT_UPLOAD_FEEDBACK,
};

typedef struct action {
    int64_t at_ms;
    int what;  /* enum act */
    int stage; /* Nhub__Common__V1__Stage of a feedback */
    char to[8];
    uint8_t case_id[NHUB_MSG_ID_LEN];
    char ref[48];     /* the application or batch id the feedback names */
    uint32_t records; /* an upload's record count */
} action_t;

/* A set of 16-byte case ids: open addressing, linear probing, tombstones. */
typedef struct idset {
    uint8_t (*ids)[NHUB_MSG_ID_LEN];
    uint8_t *state; /* 0 empty, 1 used, 2 removed */
    size_t cap;     /* a power of two, or 0 */
    size_t used;    /* state 1 */
    size_t filled;  /* state 1 or 2 */
} idset_t;

/* One message being assembled for the next nhub_send_batch. */
typedef struct outgoing {
    nhub_message_t msg;
    uint8_t *payload; /* owned */
    char destination[8];
    uint8_t correlation[NHUB_MSG_ID_LEN];
    int stat; /* the counter it moves once stored (enum sim_stat) */
} outgoing_t;

struct province {
    const sim_world_t *w;
    size_t index;
    const char *code;
    uint64_t rng;
    sim_offline_t offline;
    nhub_t *h;
    bool is_offline;
    char data_dir[4096];
    char key_file[4096];
    atomic_int offline_now;
    atomic_int link;
    _Atomic uint64_t stats[SIM_STAT_COUNT];
    _Atomic uint64_t rejected[SIM_NACK_CODES];
    action_t *plan; /* a min-heap on at_ms */
    size_t n_plan, cap_plan;
    idset_t overdue; /* cases this province asked for that the hub said are overdue */
    int64_t next_arrival_ms;
    int64_t next_broadcast_ms;
    int64_t next_stats_ms;
    uint64_t serial; /* numbers the applications, batches, commitments and notices */
    outgoing_t out[SIM_BATCH];
    size_t n_out;
};

/* ---- small helpers ---------------------------------------------------------------- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count(province_t *p, int stat, uint64_t n)
{
    atomic_fetch_add_explicit(&p->stats[stat], n, memory_order_relaxed);
}

/* splitmix64: small, fast, and enough for choosing what to simulate. */
static uint64_t rng_next(province_t *p)
{
    uint64_t z = (p->rng += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_unit(province_t *p)
{
    return (double)(rng_next(p) >> 11) * (1.0 / 9007199254740992.0);
}

static double rng_between(province_t *p, double lo, double hi)
{
    return lo + (hi - lo) * rng_unit(p);
}

static uint64_t rng_below(province_t *p, uint64_t n)
{
    return n ? rng_next(p) % n : 0;
}

/* Another simulated province than this one, at random. */
static const char *other_province(province_t *p)
{
    size_t n = p->w->n_regions;
    size_t i = (size_t)rng_below(p, n - 1);
    if (i >= p->index)
        i++;
    return p->w->regions[i];
}

/* ---- who the provinces are, on paper --------------------------------------------- */

static const struct {
    const char *code;
    const char *name;
} PLACES[] = {
    {"110000", "北京市"},           {"120000", "天津市"},           {"130000", "河北省"},
    {"140000", "山西省"},           {"150000", "内蒙古自治区"},     {"210000", "辽宁省"},
    {"220000", "吉林省"},           {"230000", "黑龙江省"},         {"310000", "上海市"},
    {"320000", "江苏省"},           {"330000", "浙江省"},           {"340000", "安徽省"},
    {"350000", "福建省"},           {"360000", "江西省"},           {"370000", "山东省"},
    {"410000", "河南省"},           {"420000", "湖北省"},           {"430000", "湖南省"},
    {"440000", "广东省"},           {"450000", "广西壮族自治区"},   {"460000", "海南省"},
    {"500000", "重庆市"},           {"510000", "四川省"},           {"520000", "贵州省"},
    {"530000", "云南省"},           {"540000", "西藏自治区"},       {"610000", "陕西省"},
    {"620000", "甘肃省"},           {"630000", "青海省"},           {"640000", "宁夏回族自治区"},
    {"650000", "新疆维吾尔自治区"}, {"660000", "新疆生产建设兵团"},
};

static const char *place_name(const char *code)
{
    for (size_t i = 0; i < sizeof PLACES / sizeof PLACES[0]; i++)
        if (strncmp(PLACES[i].code, code, 2) == 0)
            return PLACES[i].name;
    return "某省";
}

/* Made-up people: common surnames and given names. */
static const char *const SURNAMES[] = {"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"};
static const char *const GIVEN[] = {"伟", "芳", "娜", "敏", "静", "强", "磊", "洋", "艳", "军"};

/* A made-up person with an ID number (GB 11643) of this province, its
 * check digit right: id[19], name[16]. */
static void person_make(province_t *p, char id[19], char name[16])
{
    int year = 1950 + (int)rng_below(p, 56), month = 1 + (int)rng_below(p, 12);
    int day = 1 + (int)rng_below(p, 28);
    snprintf(id, 19, "%.2s%02d%02d%04d%02d%02d%03d", p->code, 1 + (int)rng_below(p, 20),
             1 + (int)rng_below(p, 20), year, month, day, (int)rng_below(p, 1000));
    id[17] = payload_id_check_char(id);
    id[18] = '\0';
    snprintf(name, 16, "%s%s", SURNAMES[rng_below(p, 10)], GIVEN[rng_below(p, 10)]);
}

/* The province's social insurance agency: code[11] and name[96]. */
static void office_make(const char *region, char code[11], char name[96])
{
    snprintf(code, 11, "%.2s00000001", region);
    snprintf(name, 96, "%s社会保险事业管理局", place_name(region));
}

/* Beijing time (UTC+8) as YYYYMMDDhhmmss. */
static void beijing_time(int64_t ms, char out[15])
{
    time_t t = (time_t)(ms / 1000) + 8 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 15, "%Y%m%d%H%M%S", &tm);
}

/* ---- payloads ------------------------------------------------------------------------ */

/*
 * The sample of `type` (test/harness/samples.h) with the `n` path=value
 * pairs of `sets` applied, encoded: a new buffer in *out (caller frees) and
 * its length. Returns 0, or -1 (said on stderr) if a path does not fit.
 */
static int payload_make(const char *type, const char *(*sets)[2], size_t n, uint8_t **out,
                        size_t *len)
{
    ProtobufCMessage *m = sample_new(type);
    if (!m)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        int rc = sets[i][1] ? sample_set(m, sets[i][0], sets[i][1]) : sample_clear(m, sets[i][0]);
        if (rc != 0) {
            fprintf(stderr, "nhub-sim: %s: cannot set %s\n", type, sets[i][0]);
            goto fail;
        }
    }
    *out = sample_pack(m, len);
    if (!*out)
        goto fail;
    sample_free(&m);
    return 0;
fail:
    sample_free(&m);
    return -1;
}

/* ---- the outgoing batch ---------------------------------------------------------------- */

/* Add a message to the batch; `payload` is taken over (freed on failure too). */
static int out_add(province_t *p, const char *to, const char *item, int kind, const char *type,
                   uint8_t *payload, size_t len, const uint8_t *correlation, int stat)
{
    if (p->n_out == SIM_BATCH) {
        free(payload);
        return -1;
    }
    outgoing_t *o = &p->out[p->n_out++];
    memset(o, 0, sizeof *o);
    o->payload = payload;
    o->stat = stat;
    snprintf(o->destination, sizeof o->destination, "%s", to);
    o->msg.destination = o->destination;
    o->msg.item = item;
    o->msg.kind = kind;
    o->msg.payload_type = type;
    o->msg.payload = payload;
    o->msg.payload_len = len;
    if (correlation) {
        memcpy(o->correlation, correlation, NHUB_MSG_ID_LEN);
        o->msg.correlation_id = o->correlation;
    }
    return 0;
}

/* Store the batch in the outbox (one transaction) and count it. */
static void out_flush(province_t *p)
{
    if (p->n_out == 0)
        return;
    nhub_message_t msgs[SIM_BATCH];
    for (size_t i = 0; i < p->n_out; i++)
        msgs[i] = p->out[i].msg;
    int rc = nhub_send_batch(p->h, msgs, p->n_out, NULL);
    if (rc == 0) {
        count(p, SIM_SENT, p->n_out);
        for (size_t i = 0; i < p->n_out; i++)
            count(p, p->out[i].stat, 1);
    } else {
        fprintf(stderr, "nhub-sim: %s: storing %zu messages failed: %s (%s)\n", p->code, p->n_out,
                nhub_strerror(rc), nhub_last_error(p->h));
        count(p, SIM_SEND_ERRORS, 1);
    }
    for (size_t i = 0; i < p->n_out; i++)
        free(p->out[i].payload);
    p->n_out = 0;
}

/* ---- new exchanges ------------------------------------------------------------------- */

static void new_status_query(province_t *p, int64_t now)
{
    char id[19], name[16], ocode[11], oname[96];
    person_make(p, id, name);
    office_make(p->code, ocode, oname);
    (void)now;
    const char *sets[][2] = {{"person.id_number", id},
                             {"person.name", name},
                             {"office.code", ocode},
                             {"office.name", oname}};
    uint8_t *b;
    size_t n;
    if (payload_make(T_QUERY, sets, sizeof sets / sizeof sets[0], &b, &n) == 0)
        out_add(p, other_province(p), ITEM_INSURED, NHUB_KIND_REQUEST, T_QUERY, b, n, NULL,
                SIM_REQUESTS);
}

static void new_commitment_query(province_t *p, int64_t now)
{
    char id[19], name[16], ocode[11], oname[96], cid[40], when[24];
    person_make(p, id, name);
    office_make(p->code, ocode, oname);
    snprintf(cid, sizeof cid, "CN%.4s-%llu", p->code, (unsigned long long)++p->serial);
    snprintf(when, sizeof when, "%lld", (long long)(now - (int64_t)rng_below(p, 30) * 86400000));
    const char *sets[][2] = {{"commitment_id", cid}, {"person.id_number", id},
                             {"person.name", name},  {"committed_ms", when},
                             {"office.code", ocode}, {"office.name", oname}};
    uint8_t *b;
    size_t n;
    if (payload_make(T_CQUERY, sets, sizeof sets / sizeof sets[0], &b, &n) == 0)
        out_add(p, other_province(p), ITEM_COMMITMENT, NHUB_KIND_REQUEST, T_CQUERY, b, n, NULL,
                SIM_REQUESTS);
}

static void new_push(province_t *p, int64_t now)
{
    char id[19], name[16], ocode[11], oname[96], app[48], when[24];
    person_make(p, id, name);
    office_make(p->code, ocode, oname);
    snprintf(app, sizeof app, "SL%.6s%010llu", p->code, (unsigned long long)++p->serial);
    snprintf(when, sizeof when, "%lld", (long long)now);
    const char *sets[][2] = {{"application_id", app},     {"applicant.id_number", id},
                             {"applicant.name", name},    {"accepted_by.code", ocode},
                             {"accepted_by.name", oname}, {"accepted_ms", when}};
    uint8_t *b;
    size_t n;
    if (payload_make(T_APP, sets, sizeof sets / sizeof sets[0], &b, &n) == 0)
        out_add(p, other_province(p), ITEM_PUSH, NHUB_KIND_PUSH, T_APP, b, n, NULL, SIM_PUSHES);
}

static void new_upload(province_t *p, int64_t now)
{
    ProtobufCMessage *m = sample_new(T_BATCH);
    char batch[48], month[24], path[64], id[19], name[16];
    time_t t = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(batch, sizeof batch, "QMCB-%.6s-%llu", p->code, (unsigned long long)++p->serial);
    snprintf(month, sizeof month, "%04d%02d", tm.tm_year + 1900, tm.tm_mon + 1);
    int ok =
        m && sample_set(m, "batch_id", batch) == 0 && sample_set(m, "period_month", month) == 0;
    size_t records = 1 + (size_t)rng_below(p, 8);
    for (size_t i = 0; ok && i < records; i++) {
        if (i > 0) {
            ok = sample_set(m, "records[+].status", "REGISTRATION_STATUS_INSURED") == 0;
            snprintf(path, sizeof path, "records[%zu].insurance_types[+]", i);
            ok = ok && sample_set(m, path, "INSURANCE_TYPE_ENTERPRISE_PENSION") == 0;
            snprintf(path, sizeof path, "records[%zu].registered_month", i);
            ok = ok && sample_set(m, path, "200807") == 0;
        }
        person_make(p, id, name);
        snprintf(path, sizeof path, "records[%zu].person.id_number", i);
        ok = ok && sample_set(m, path, id) == 0;
        snprintf(path, sizeof path, "records[%zu].person.name", i);
        ok = ok && sample_set(m, path, name) == 0;
    }
    size_t n = 0;
    uint8_t *b = ok ? sample_pack(m, &n) : NULL;
    sample_free(&m);
    if (!b) {
        fprintf(stderr, "nhub-sim: %s: cannot build a registration batch\n", p->code);
        return;
    }
    out_add(p, p->w->regions[p->w->registry], ITEM_UPLOAD, NHUB_KIND_PUSH, T_BATCH, b, n, NULL,
            SIM_UPLOADS);
}

static void new_broadcast(province_t *p, int64_t now)
{
    char id[19], name[16], ocode[11], oname[96], nid[48], when[24];
    person_make(p, id, name);
    office_make(p->code, ocode, oname);
    snprintf(nid, sizeof nid, "SX-%.6s-%llu", p->code, (unsigned long long)++p->serial);
    snprintf(when, sizeof when, "%lld", (long long)now);
    const char *sets[][2] = {{"notice_id", nid},
                             {"entries[0].person.id_number", id},
                             {"entries[0].person.name", name},
                             {"entries[0].decided_by.code", ocode},
                             {"entries[0].decided_by.name", oname},
                             {"entries[0].listed_ms", when}};
    uint8_t *b;
    size_t n;
    if (payload_make(T_CREDIT, sets, sizeof sets / sizeof sets[0], &b, &n) == 0)
        out_add(p, "*", ITEM_NOTICE, NHUB_KIND_NOTICE, T_CREDIT, b, n, NULL, SIM_BROADCASTS);
}

/* One new exchange of the mix: verification 50% (insured status 35,
 * commitment 15), pushes 35%, registration uploads 15% (the registry
 * itself pushes instead). */
static void new_exchange(province_t *p, int64_t now)
{
    uint64_t r = rng_below(p, 100);
    if (r < 35)
        new_status_query(p, now);
    else if (r < 50)
        new_commitment_query(p, now);
    else if (r < 85 || p->index == p->w->registry)
        new_push(p, now);
    else
        new_upload(p, now);
}

static void arrival_next(province_t *p)
{
    double per_province = p->w->rate / (double)p->w->n_regions;
    double gap_s = -log(1.0 - rng_unit(p)) / per_province;
    p->next_arrival_ms += (int64_t)(gap_s * 1000.0) + 1;
}

/* ---- planned answers: a min-heap on at_ms --------------------------------------------- */

static void plan_add(province_t *p, const action_t *a)
{
    if (p->n_plan == p->cap_plan) {
        size_t cap = p->cap_plan ? p->cap_plan * 2 : 1024;
        action_t *np = cap <= SIM_PLAN_MAX ? realloc(p->plan, cap * sizeof *np) : NULL;
        if (!np) {
            count(p, SIM_DROPPED, 1);
            return;
        }
        p->plan = np;
        p->cap_plan = cap;
    }
    size_t i = p->n_plan++;
    while (i > 0 && p->plan[(i - 1) / 2].at_ms > a->at_ms) {
        p->plan[i] = p->plan[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    p->plan[i] = *a;
}

static void plan_pop(province_t *p, action_t *out)
{
    *out = p->plan[0];
    action_t last = p->plan[--p->n_plan];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= p->n_plan)
            break;
        if (c + 1 < p->n_plan && p->plan[c + 1].at_ms < p->plan[c].at_ms)
            c++;
        if (p->plan[c].at_ms >= last.at_ms)
            break;
        p->plan[i] = p->plan[c];
        i = c;
    }
    if (p->n_plan)
        p->plan[i] = last;
}

static const char *stage_name(int stage)
{
    switch (stage) {
    case NHUB__COMMON__V1__STAGE__STAGE_RECEIVED: return "STAGE_RECEIVED";
    case NHUB__COMMON__V1__STAGE__STAGE_HANDLING: return "STAGE_HANDLING";
    case NHUB__COMMON__V1__STAGE__STAGE_REFUSED: return "STAGE_REFUSED";
    default: return "STAGE_DONE";
    }
}

/* Build and queue the message of planned action `a`. */
static void act(province_t *p, const action_t *a, int64_t now)
{
    char ocode[11], oname[96], when[24], bj[32], num[16];
    office_make(p->code, ocode, oname);
    snprintf(when, sizeof when, "%lld", (long long)now);
    uint8_t *b = NULL;
    size_t n = 0;
    int rc = -1;
    switch (a->what) {
    case ACT_STATUS_ANSWER: {
        const char *sets[][2] = {
            {"office.code", ocode}, {"office.name", oname}, {"answered_ms", when}};
        rc = payload_make(T_ANSWER, sets, 3, &b, &n);
        if (rc == 0)
            out_add(p, a->to, ITEM_INSURED, NHUB_KIND_RESPONSE, T_ANSWER, b, n, a->case_id,
                    SIM_ANSWERS);
        break;
    }
    case ACT_COMMITMENT_ANSWER: {
        /* True mostly, false sometimes, a few it cannot verify: no evidence then, and why. */
        uint64_t r = rng_below(p, 100);
        bool verified = r < 95;
        const char *sets[][2] = {{"office.code", ocode},
                                 {"office.name", oname},
                                 {"answered_ms", when},
                                 {"finding", r < 85     ? "FINDING_TRUE"
                                             : verified ? "FINDING_FALSE"
                                                        : "FINDING_CANNOT_VERIFY"},
                                 {"evidence_ref", verified ? "SIM-EVIDENCE-0001" : NULL},
                                 {"explanation", verified ? "" : "本地无相关记录"}};
        rc = payload_make(T_CANSWER, sets, 6, &b, &n);
        if (rc == 0)
            out_add(p, a->to, ITEM_COMMITMENT, NHUB_KIND_RESPONSE, T_CANSWER, b, n, a->case_id,
                    SIM_ANSWERS);
        break;
    }
    case ACT_PUSH_FEEDBACK: {
        bool done = a->stage == NHUB__COMMON__V1__STAGE__STAGE_DONE;
        bool refused = a->stage == NHUB__COMMON__V1__STAGE__STAGE_REFUSED;
        beijing_time(now, bj);
        const char *sets[][2] = {{"stage", stage_name(a->stage)},
                                 {"application_id", a->ref},
                                 {"handled_by.code", ocode},
                                 {"handled_by.name", oname},
                                 {"handled_time", bj},
                                 {"result", done ? "准予办理" : NULL},
                                 {"refusal_reason", refused ? "申请材料不齐全" : NULL}};
        rc = payload_make(T_FEEDBACK, sets, 7, &b, &n);
        if (rc == 0)
            out_add(p, a->to, ITEM_PUSH, NHUB_KIND_FEEDBACK, T_FEEDBACK, b, n, a->case_id,
                    SIM_FEEDBACK);
        break;
    }
    case ACT_UPLOAD_FEEDBACK: {
        bool done = a->stage == NHUB__COMMON__V1__STAGE__STAGE_DONE;
        snprintf(num, sizeof num, "%u", done ? a->records : 0u);
        const char *sets[][2] = {
            {"stage", stage_name(a->stage)}, {"batch_id", a->ref}, {"accepted", num}};
        rc = payload_make(T_BATCH_FB, sets, 3, &b, &n);
        if (rc == 0)
            out_add(p, a->to, ITEM_UPLOAD, NHUB_KIND_FEEDBACK, T_BATCH_FB, b, n, a->case_id,
                    SIM_FEEDBACK);
        break;
    }
    }
}

/* ---- the set of overdue cases ----------------------------------------------------------- */

static size_t idset_slot(const uint8_t id[NHUB_MSG_ID_LEN], size_t cap)
{
    uint64_t h;
    memcpy(&h, id, sizeof h); /* msg_ids are random: their bytes are a hash */
    return (size_t)(h * UINT64_C(0x9E3779B97F4A7C15) >> 17) & (cap - 1);
}

static int idset_grow(idset_t *s)
{
    size_t cap = s->used * 4 > 256 ? s->used * 4 : 256;
    size_t pow = 256;
    while (pow < cap)
        pow *= 2;
    idset_t n = {calloc(pow, NHUB_MSG_ID_LEN), calloc(pow, 1), pow, 0, 0};
    if (!n.ids || !n.state) {
        free(n.ids);
        free(n.state);
        return -1;
    }
    for (size_t i = 0; i < s->cap; i++) {
        if (s->state[i] != 1)
            continue;
        size_t j = idset_slot(s->ids[i], pow);
        while (n.state[j])
            j = (j + 1) & (pow - 1);
        memcpy(n.ids[j], s->ids[i], NHUB_MSG_ID_LEN);
        n.state[j] = 1;
        n.used++;
        n.filled++;
    }
    free(s->ids);
    free(s->state);
    *s = n;
    return 0;
}

static void idset_add(idset_t *s, const uint8_t id[NHUB_MSG_ID_LEN])
{
    if ((s->filled + 1) * 10 > s->cap * 6 && idset_grow(s) != 0)
        return;
    size_t j = idset_slot(id, s->cap);
    while (s->state[j]) {
        if (s->state[j] == 1 && memcmp(s->ids[j], id, NHUB_MSG_ID_LEN) == 0)
            return;
        j = (j + 1) & (s->cap - 1);
    }
    memcpy(s->ids[j], id, NHUB_MSG_ID_LEN);
    s->state[j] = 1;
    s->used++;
    s->filled++;
}

/* Remove `id`; 1 if it was there. */
static int idset_remove(idset_t *s, const uint8_t id[NHUB_MSG_ID_LEN])
{
    if (!s->cap)
        return 0;
    size_t j = idset_slot(id, s->cap);
    while (s->state[j]) {
        if (s->state[j] == 1 && memcmp(s->ids[j], id, NHUB_MSG_ID_LEN) == 0) {
            s->state[j] = 2;
            s->used--;
            return 1;
        }
        j = (j + 1) & (s->cap - 1);
    }
    return 0;
}

/* ---- what comes in ------------------------------------------------------------------- */

static catalog_times_t times_of(const province_t *p, const char *item)
{
    catalog_times_t t = {0};
    if (!p->w->catalog || catalog_times(p->w->catalog, item, &t) != 0 || t.time_limit_ms <= 0) {
        t.time_limit_ms = SIM_DEFAULT_LIMIT_MS;
        t.reminder_ms = SIM_DEFAULT_LIMIT_MS / 2;
        t.grace_ms = SIM_DEFAULT_LIMIT_MS / 2;
    }
    return t;
}

/*
 * When the handler's final answer to a case opened at `opened` goes out, by
 * the shares of the mix: most in time (anywhere before the time limit, some
 * after the reminder), a share late (after the limit, within the grace), a
 * share never (returns 0). A case that arrives after it expired is not
 * answered at all (returns -1).
 */
static int64_t final_time(province_t *p, const catalog_times_t *t, int64_t opened, int64_t now)
{
    if (now >= opened + t->time_limit_ms + t->grace_ms) {
        count(p, SIM_ARRIVED_TOO_LATE, 1);
        return -1;
    }
    double u = rng_unit(p);
    if (u < p->w->never_share) {
        count(p, SIM_LEFT_UNANSWERED, 1);
        return 0;
    }
    if (u < p->w->never_share + p->w->late_share)
        return opened + t->time_limit_ms + (int64_t)(t->grace_ms * rng_between(p, 0.15, 0.6));
    return opened + (int64_t)(t->time_limit_ms * rng_between(p, 0.05, 0.85));
}

static void plan_reply(province_t *p, const nhub_delivery_t *d, int what, int stage, int64_t at,
                       const char *ref, uint32_t records)
{
    action_t a;
    memset(&a, 0, sizeof a);
    a.at_ms = at;
    a.what = what;
    a.stage = stage;
    snprintf(a.to, sizeof a.to, "%s", d->source);
    memcpy(a.case_id, d->msg_id, NHUB_MSG_ID_LEN);
    snprintf(a.ref, sizeof a.ref, "%s", ref ? ref : "");
    a.records = records;
    plan_add(p, &a);
}

static void on_request(province_t *p, const nhub_delivery_t *d, int what, int64_t now)
{
    catalog_times_t t = times_of(p, d->item);
    int64_t at = final_time(p, &t, d->created_ms, now);
    if (at > 0)
        plan_reply(p, d, what, 0, at, NULL, 0);
}

static void on_push(province_t *p, const nhub_delivery_t *d, int64_t now)
{
    Nhub__Push__V1__Application *app =
        nhub__push__v1__application__unpack(NULL, d->payload_len, (const uint8_t *)d->payload);
    if (!app) {
        count(p, SIM_UNEXPECTED, 1);
        return;
    }
    catalog_times_t t = times_of(p, d->item);
    int64_t at = final_time(p, &t, d->created_ms, now);
    if (at >= 0) {
        /* RECEIVED soon, HANDLING a third of the way, then the final stage:
         * in that order, whatever the draw (a final answer closes the case). */
        int64_t received = now + (int64_t)rng_between(p, 100, 600);
        int64_t final = at > 0 && at > received + 200 ? at : received + 200;
        int64_t handling =
            received + ((at > 0 ? final : d->created_ms + t.time_limit_ms) - received) / 3;
        if (handling <= received)
            handling = received + 100;
        if (final <= handling)
            final = handling + 100;
        plan_reply(p, d, ACT_PUSH_FEEDBACK, NHUB__COMMON__V1__STAGE__STAGE_RECEIVED, received,
                   app->application_id, 0);
        plan_reply(p, d, ACT_PUSH_FEEDBACK, NHUB__COMMON__V1__STAGE__STAGE_HANDLING, handling,
                   app->application_id, 0);
        if (at > 0)
            plan_reply(p, d, ACT_PUSH_FEEDBACK,
                       rng_below(p, 100) < 85 ? NHUB__COMMON__V1__STAGE__STAGE_DONE
                                              : NHUB__COMMON__V1__STAGE__STAGE_REFUSED,
                       final, app->application_id, 0);
    }
    nhub__push__v1__application__free_unpacked(app, NULL);
}

/* The registration database takes every batch, soon. */
static void on_upload(province_t *p, const nhub_delivery_t *d, int64_t now)
{
    Nhub__Registration__V1__RegistrationBatch *b =
        nhub__registration__v1__registration_batch__unpack(NULL, d->payload_len,
                                                           (const uint8_t *)d->payload);
    if (!b) {
        count(p, SIM_UNEXPECTED, 1);
        return;
    }
    catalog_times_t t = times_of(p, d->item);
    if (now < d->created_ms + t.time_limit_ms + t.grace_ms) {
        int64_t received = now + (int64_t)rng_between(p, 100, 400);
        plan_reply(p, d, ACT_UPLOAD_FEEDBACK, NHUB__COMMON__V1__STAGE__STAGE_RECEIVED, received,
                   b->batch_id, 0);
        plan_reply(p, d, ACT_UPLOAD_FEEDBACK, NHUB__COMMON__V1__STAGE__STAGE_DONE,
                   received + (int64_t)(t.time_limit_ms * rng_between(p, 0.05, 0.4)), b->batch_id,
                   (uint32_t)b->n_records);
    } else {
        count(p, SIM_ARRIVED_TOO_LATE, 1);
    }
    nhub__registration__v1__registration_batch__free_unpacked(b, NULL);
}

static void on_case_notice(province_t *p, const nhub_delivery_t *d)
{
    Nhub__Case__V1__CaseNotice *n =
        nhub__case__v1__case_notice__unpack(NULL, d->payload_len, (const uint8_t *)d->payload);
    if (!n || n->case_id.len != NHUB_MSG_ID_LEN) {
        count(p, SIM_UNEXPECTED, 1);
        goto done;
    }
    bool requester = strcmp(n->requester, p->code) == 0;
    switch (n->event) {
    case NHUB__CASE__V1__EVENT__EVENT_REMINDER: count(p, SIM_REMINDERS, 1); break;
    case NHUB__CASE__V1__EVENT__EVENT_OVERDUE:
        if (requester) {
            count(p, SIM_OVERDUE, 1);
            idset_add(&p->overdue, n->case_id.data);
        }
        break;
    case NHUB__CASE__V1__EVENT__EVENT_EXPIRED:
        count(p, SIM_EXPIRED, 1);
        idset_remove(&p->overdue, n->case_id.data);
        break;
    default: count(p, SIM_UNEXPECTED, 1); break;
    }
done:
    if (n)
        nhub__case__v1__case_notice__free_unpacked(n, NULL);
}

/* The stage of a feedback payload (field 1 of every feedback type), or -1. */
static int feedback_stage(const nhub_delivery_t *d)
{
    const ProtobufCMessageDescriptor *desc = payload_find(d->payload_type);
    ProtobufCMessage *m = NULL;
    if (!desc || payload_decode(desc, d->payload, d->payload_len, &m) != 0)
        return -1;
    int stage = payload_enum_field(m, 1);
    payload_free(&m);
    return stage;
}

static void on_delivery(province_t *p, const nhub_delivery_t *d, int64_t now)
{
    const char *t = d->payload_type;
    count(p, SIM_RECEIVED, 1);
    if (strcmp(d->source, p->w->hub_region) == 0 && strcmp(t, T_CASE) == 0) {
        on_case_notice(p, d);
    } else if (d->kind == NHUB_KIND_REQUEST && strcmp(t, T_QUERY) == 0) {
        on_request(p, d, ACT_STATUS_ANSWER, now);
    } else if (d->kind == NHUB_KIND_REQUEST && strcmp(t, T_CQUERY) == 0) {
        on_request(p, d, ACT_COMMITMENT_ANSWER, now);
    } else if (d->kind == NHUB_KIND_PUSH && strcmp(t, T_APP) == 0) {
        on_push(p, d, now);
    } else if (d->kind == NHUB_KIND_PUSH && strcmp(t, T_BATCH) == 0) {
        on_upload(p, d, now);
    } else if (d->kind == NHUB_KIND_RESPONSE && d->correlation_len == NHUB_MSG_ID_LEN &&
               (strcmp(t, T_ANSWER) == 0 || strcmp(t, T_CANSWER) == 0)) {
        count(p,
              idset_remove(&p->overdue, d->correlation_id) ? SIM_ANSWERED_LATE
                                                           : SIM_ANSWERED_IN_TIME,
              1);
    } else if (d->kind == NHUB_KIND_FEEDBACK && d->correlation_len == NHUB_MSG_ID_LEN &&
               (strcmp(t, T_FEEDBACK) == 0 || strcmp(t, T_BATCH_FB) == 0)) {
        int stage = feedback_stage(d);
        bool upload = strcmp(t, T_BATCH_FB) == 0;
        if (stage == NHUB__COMMON__V1__STAGE__STAGE_DONE) {
            count(p, upload ? SIM_UPLOADS_DONE : SIM_PUSHES_DONE, 1);
            idset_remove(&p->overdue, d->correlation_id);
        } else if (stage == NHUB__COMMON__V1__STAGE__STAGE_REFUSED) {
            count(p, upload ? SIM_UPLOADS_DONE : SIM_PUSHES_REFUSED, 1);
            idset_remove(&p->overdue, d->correlation_id);
        } else if (stage < 0) {
            count(p, SIM_UNEXPECTED, 1);
        }
    } else if (d->kind == NHUB_KIND_NOTICE && strcmp(t, T_CREDIT) == 0) {
        count(p, SIM_NOTICES_RECEIVED, 1);
    } else {
        count(p, SIM_UNEXPECTED, 1);
    }
}

/* ---- the adapter ------------------------------------------------------------------- */

static void on_ack(void *arg, const uint8_t msg_id[NHUB_MSG_ID_LEN])
{
    (void)msg_id;
    count(arg, SIM_ACKED, 1);
}

static void on_reject(void *arg, const uint8_t msg_id[NHUB_MSG_ID_LEN], int code, const char *text)
{
    province_t *p = arg;
    char hex[33];
    count(p, SIM_REJECTED, 1);
    int slot = code >= 0 && code < SIM_NACK_CODES ? code : SIM_NACK_CODES - 1;
    atomic_fetch_add_explicit(&p->rejected[slot], 1, memory_order_relaxed);
    fprintf(stderr, "nhub-sim: %s: the hub refused %s: code %d: %s\n", p->code,
            nhub_msg_id_hex(msg_id, hex), code, text);
}

static int adapter_open(province_t *p, bool offline)
{
    nhub_options_t o;
    char err[512];
    memset(&o, 0, sizeof o);
    o.region = p->code;
    o.hub_endpoint = p->w->endpoint;
    o.data_dir = p->data_dir;
    o.credit = 256;
    o.window = 256;
    o.resend_after_ms = 2000;
    o.heartbeat_ms = 1000;
    o.on_ack = on_ack;
    o.on_ack_arg = p;
    o.on_reject = on_reject;
    o.on_reject_arg = p;
    o.offline = offline;
    if (p->w->hub_key) {
        o.key_file = p->key_file;
        o.hub_key = p->w->hub_key;
    } else {
        o.insecure_plaintext = 1;
    }
    int rc = nhub_open(&o, &p->h, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "nhub-sim: %s: opening its adapter (%s): %s\n", p->code, p->data_dir, err);
    p->is_offline = offline;
    atomic_store(&p->offline_now, offline ? 1 : 0);
    return rc;
}

/* Go offline or come back when the plan says so. */
static int offline_turn(province_t *p, int64_t now)
{
    if (!p->offline.for_ms)
        return 0;
    int64_t from = p->w->start_ms + p->offline.after_ms, until = from + p->offline.for_ms;
    bool want = now >= from && now < until;
    if (want == p->is_offline)
        return 0;
    nhub_store_info_t info;
    memset(&info, 0, sizeof info);
    if (!want)
        nhub_store_info(p->h, &info);
    nhub_close(&p->h);
    if (want)
        printf("sim: %s goes offline for %lld s; its platform keeps working and its messages "
               "wait in its outbox, messages to it wait at the hub\n",
               p->code, (long long)(p->offline.for_ms / 1000));
    else
        printf("sim: %s is back online; %llu messages waiting in its outbox go out now\n", p->code,
               (unsigned long long)info.outbox);
    fflush(stdout);
    return adapter_open(p, want);
}

/* ---- the thread ---------------------------------------------------------------------- */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void turn_send(province_t *p, int64_t now)
{
    const sim_world_t *w = p->w;
    while (w->rate > 0 && p->next_arrival_ms <= now && p->n_out < SIM_BATCH) {
        new_exchange(p, now);
        arrival_next(p);
    }
    if (w->broadcast_every_ms > 0 && p->next_broadcast_ms <= now && p->n_out < SIM_BATCH) {
        new_broadcast(p, now);
        p->next_broadcast_ms += w->broadcast_every_ms * (int64_t)w->n_regions;
    }
    while (p->n_plan > 0 && p->plan[0].at_ms <= now && p->n_out < SIM_BATCH) {
        action_t a;
        plan_pop(p, &a);
        act(p, &a, now);
    }
    out_flush(p);
}

static void turn_receive(province_t *p, int64_t wait)
{
    nhub_delivery_t *ds[SIM_BATCH];
    size_t n = 0;
    if (nhub_recv(p->h, &ds[0], (int)wait) != 0)
        return;
    n = 1;
    while (n < SIM_BATCH && nhub_recv(p->h, &ds[n], 0) == 0)
        n++;
    int64_t now = wall_ms();
    for (size_t i = 0; i < n; i++)
        on_delivery(p, ds[i], now);
    if (nhub_confirm_batch(p->h, ds, n) != 0) {
        fprintf(stderr, "nhub-sim: %s: confirming %zu deliveries failed: %s\n", p->code, n,
                nhub_last_error(p->h));
        for (size_t i = 0; i < n; i++)
            nhub_delivery_release(p->h, &ds[i]);
    }
}

int province_run(province_t *p)
{
    const sim_world_t *w = p->w;
    if (mkdir(w->data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "nhub-sim: %s: %s\n", w->data_dir, strerror(errno));
        return -1;
    }
    if (adapter_open(p, false) != 0)
        return -1;
    p->next_arrival_ms = w->start_ms;
    arrival_next(p);
    p->next_broadcast_ms =
        w->start_ms + w->broadcast_every_ms / 4 + w->broadcast_every_ms * (int64_t)p->index;
    while (!atomic_load(w->stop)) {
        int64_t now = wall_ms();
        if (offline_turn(p, now) != 0)
            return -1;
        turn_send(p, now);
        now = wall_ms();
        if (now >= p->next_stats_ms && !p->is_offline) {
            nhub_stats_t st;
            nhub_stats(p->h, &st);
            atomic_store(&p->link, st.link);
            p->next_stats_ms = now + SIM_STATS_EVERY_MS;
        }
        int64_t next = now + SIM_TURN_MS;
        if (w->rate > 0)
            next = min64(next, p->next_arrival_ms);
        if (w->broadcast_every_ms > 0)
            next = min64(next, p->next_broadcast_ms);
        if (p->n_plan)
            next = min64(next, p->plan[0].at_ms);
        int64_t wait = next > now ? next - now : 0;
        if (p->is_offline)
            sleep_ms(wait);
        else
            turn_receive(p, wait);
    }
    if (!p->is_offline)
        nhub_flush(p->h, SIM_FLUSH_AT_STOP_MS);
    nhub_close(&p->h);
    return 0;
}

/* ---- the object ------------------------------------------------------------------------ */

province_t *province_new(const sim_world_t *world, size_t index, uint64_t seed,
                         sim_offline_t offline)
{
    province_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->w = world;
    p->index = index;
    p->code = world->regions[index];
    p->rng = seed;
    p->offline = offline;
    snprintf(p->data_dir, sizeof p->data_dir, "%s/%s", world->data_dir, p->code);
    snprintf(p->key_file, sizeof p->key_file, "%s/%s.key", world->keys_dir ? world->keys_dir : ".",
             p->code);
    for (int i = 0; i < SIM_STAT_COUNT; i++)
        atomic_init(&p->stats[i], 0);
    for (int i = 0; i < SIM_NACK_CODES; i++)
        atomic_init(&p->rejected[i], 0);
    atomic_init(&p->offline_now, 0);
    atomic_init(&p->link, NHUB_LINK_DOWN);
    return p;
}

void province_destroy(province_t **self)
{
    if (!self || !*self)
        return;
    province_t *p = *self;
    nhub_close(&p->h);
    for (size_t i = 0; i < p->n_out; i++)
        free(p->out[i].payload);
    free(p->plan);
    free(p->overdue.ids);
    free(p->overdue.state);
    free(p);
    *self = NULL;
}

uint64_t province_stat(const province_t *p, int stat)
{
    return stat >= 0 && stat < SIM_STAT_COUNT
               ? atomic_load_explicit(&p->stats[stat], memory_order_relaxed)
               : 0;
}

uint64_t province_rejected(const province_t *p, int code)
{
    return code >= 0 && code < SIM_NACK_CODES
               ? atomic_load_explicit(&p->rejected[code], memory_order_relaxed)
               : 0;
}

int province_offline(const province_t *p)
{
    return atomic_load(&p->offline_now);
}

int province_link(const province_t *p)
{
    return atomic_load(&p->link);
}

const char *province_region(const province_t *p)
{
    return p->code;
}
