/*
 * api.c: what the HTTP endpoint answers (http.h is the transport): the
 * JSON API under /api/v1/, the live event stream, the operators' actions
 * and the dashboard's files (/metrics is api_metrics.c). It runs in the hub loop between two turns,
 * so it reads the hub's state directly and acts through the same steps as
 * the rest of the hub: every action is one write transaction that journals
 * it (EVENT_OPERATOR_ACTION, or the region and case events it causes) with
 * who asked and from where, and RAM follows only once it is committed.
 *
 * Never a payload: messages are named by msg_id, cases by id, regions and
 * items by code. Lists are bounded (API_LIST_MAX) so no request holds the
 * loop for long.
 */
#include "hub_internal.h"

#include "web.h"

#include <ctype.h>
#include <math.h>

#define API_LIST_DEFAULT 100
#define API_LIST_MAX 1000
#define API_SCAN_MAX 20000 /* cases looked at for one page of a filtered list */
#define API_TIMELINE_MAX 512
#define API_HELD_COUNT_MAX 10000 /* held messages counted per region; more shows as this */
#define API_STATS_MAX 4096       /* (handler, item) figures read at once */
#define API_RATE_MAX 1000000

/* ---- small helpers ------------------------------------------------------------- */

static json_t *hex_json(const uint8_t *p, size_t n)
{
    char hex[2 * 64 + 1];
    return json_string(log_hex(hex, sizeof hex, p, n));
}

static const char *event_type_name(int type, char *buf, size_t cap)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&nhub__journal__v1__event_type__descriptor, type);
    const char *name = v ? v->name : "EVENT_UNKNOWN";
    if (!strncmp(name, "EVENT_", 6))
        name += 6;
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++)
        buf[i] = (char)tolower((unsigned char)name[i]);
    buf[i] = 0;
    return buf;
}

static const char *nack_code_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&nhub__wire__v1__nack_code__descriptor, code);
    return v && !strncmp(v->name, "NACK_", 5) ? v->name + 5 : "unknown";
}

static const char *security_kind_name(int kind)
{
    static const char *const names[] = {"auth_refused", "handshake_failed", "identity_refused"};
    return kind >= 0 && kind < 3 ? names[kind] : "unknown";
}

/* Lower-case copy of a NACK code's name ("bad_signature"). */
json_t *api_code_json(int code)
{
    char buf[40];
    const char *n = nack_code_name(code);
    size_t i = 0;
    for (; n[i] && i + 1 < sizeof buf; i++)
        buf[i] = (char)tolower((unsigned char)n[i]);
    buf[i] = 0;
    return json_string(buf);
}

/* ---- figures ------------------------------------------------------------------ */

/* Evaluation figures summed by handler region or by item. */
struct figures {
    uint64_t v[STORE_CSTAT_N];
};

static json_t *figures_json(const struct figures *f)
{
    const uint64_t *v = f->v;
    double handled = (double)(v[STORE_CSTAT_ANSWERED] + v[STORE_CSTAT_REFUSED]);
    return json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f}", "opened", (json_int_t)v[STORE_CSTAT_OPENED],
        "open", (json_int_t)v[STORE_CSTAT_OPEN], "overdue", (json_int_t)v[STORE_CSTAT_OVERDUE_OPEN],
        "ever_overdue", (json_int_t)v[STORE_CSTAT_EVER_OVERDUE], "answered",
        (json_int_t)v[STORE_CSTAT_ANSWERED], "answered_in_time", (json_int_t)v[STORE_CSTAT_IN_TIME],
        "expired", (json_int_t)v[STORE_CSTAT_EXPIRED], "refused",
        (json_int_t)v[STORE_CSTAT_REFUSED], "mean_handling_s",
        handled > 0 ? (double)v[STORE_CSTAT_HANDLING_MS] / handled / 1000.0 : 0.0, "overdue_rate",
        v[STORE_CSTAT_OPENED] ? (double)v[STORE_CSTAT_EVER_OVERDUE] / (double)v[STORE_CSTAT_OPENED]
                              : 0.0);
}

/* All (handler, item) figures; caller frees *out. */
int api_stats_read(store_reader_t *rd, store_case_stat_t **out, size_t *n)
{
    *out = calloc(API_STATS_MAX, sizeof **out);
    if (!*out)
        return NHUB_ENOMEM;
    return store_case_stats(rd, *out, API_STATS_MAX, n);
}

size_t api_held_count(store_reader_t *rd, const char *region)
{
    store_held_t buf[256];
    size_t total = 0, n = 0;
    uint64_t from = 0;
    do {
        if (store_held_scan(rd, region, from, buf, 256, &n) != 0)
            break;
        total += n;
        if (n)
            from = buf[n - 1].dseq + 1;
    } while (n == 256 && total < API_HELD_COUNT_MAX);
    return total;
}

static json_t *status_json(hub_t *h, store_reader_t *rd)
{
    const hub_counters_t *n = &h->n;
    uint64_t last = 0, used = 0, limit = 0, disk_free = 0, disk_size = 0, queued = 0;
    uint64_t counts[STORE_CASE_STATES] = {0};
    store_journal_last(rd, &last);
    store_usage(h->store, &used, &limit, &disk_free, &disk_size);
    store_case_counts(rd, counts);
    size_t connected = 0;
    for (size_t i = 0; i < h->n_regions; i++) {
        uint64_t q = 0;
        store_queue_depth(rd, h->regions[i].code, &q);
        queued += q;
        connected += h->regions[i].delivery != NULL;
    }
    json_t *by_state = json_object();
    uint64_t open = 0;
    for (int s = STORE_CASE_OPEN; s < STORE_CASE_STATES; s++) {
        json_object_set_new(by_state, store_case_state_name(s),
                            json_integer((json_int_t)counts[s]));
        if (!store_case_closed(s))
            open += counts[s];
    }
    char hex[33];
    return json_pack(
        "{s:s,s:s,s:s,s:I,s:I,s:{s:I},s:{s:I,s:I,s:I,s:I,s:b},"
        "s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I},s:I,s:I,s:I,s:I,s:I,"
        "s:{s:I,s:I,s:I,s:o}}",
        "hub_id", log_hex(hex, sizeof hex, store_hub_id(h->store), STORE_ID_LEN), "version",
        API_VERSION, "region", h->cfg->hub.region, "now_ms", (json_int_t)clock_wall_ms(h->clock),
        "started_ms", (json_int_t)h->started_ms, "journal", "last_seq", (json_int_t)last, "store",
        "used_bytes", (json_int_t)used, "map_bytes", (json_int_t)store_map_size(h->store),
        "limit_bytes", (json_int_t)limit, "disk_free_bytes", (json_int_t)disk_free, "full", h->full,
        "counters", "accepted", (json_int_t)n->accepted, "rejected", (json_int_t)n->rejected,
        "duplicates", (json_int_t)n->duplicates, "delivered", (json_int_t)n->delivered,
        "redelivered", (json_int_t)n->redelivered, "confirmed", (json_int_t)n->confirmed, "held",
        (json_int_t)n->held, "commits", (json_int_t)n->commits, "security_events",
        (json_int_t)n->security_events, "hub_messages", (json_int_t)n->hub_messages, "sessions",
        (json_int_t)session_count(h->sessions), "regions_total", (json_int_t)h->n_regions,
        "regions_connected", (json_int_t)connected, "queued", (json_int_t)queued, "streams",
        (json_int_t)http_streams(h->http), "cases", "total", (json_int_t)counts[0], "open",
        (json_int_t)open, "overdue", (json_int_t)counts[STORE_CASE_OVERDUE], "by_state", by_state);
}

static const char *suspended_by(const hub_t *h, size_t i)
{
    return h->cfg->regions[i].suspended ? "config" : h->regions[i].op.suspended ? "operator" : "";
}

static json_t *regions_json(hub_t *h, store_reader_t *rd)
{
    store_case_stat_t *st = NULL;
    size_t n_st = 0;
    api_stats_read(rd, &st, &n_st);
    json_t *list = json_array();
    for (size_t i = 0; i < h->n_regions; i++) {
        const struct hub_region *r = &h->regions[i];
        const cfg_region_t *cr = &h->cfg->regions[i];
        uint64_t q = 0;
        store_queue_depth(rd, r->code, &q);
        struct figures f = {{0}};
        for (size_t k = 0; st && k < n_st; k++)
            if (!strcmp(st[k].handler, r->code))
                for (int j = 0; j < STORE_CSTAT_N; j++)
                    f.v[j] += st[k].v[j];
        json_t *o = json_pack(
            "{s:s,s:s,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:s,s:s,s:b,s:I,s:o}", "code",
            r->code, "name", cr->name, "connected", r->delivery != NULL, "last_seen_ms",
            (json_int_t)r->last_seen_ms, "queued", (json_int_t)q, "held",
            (json_int_t)api_held_count(rd, r->code), "in_flight",
            (json_int_t)(r->delivery ? dispatch_inflight(r->window) : 0), "accepted",
            (json_int_t)r->st.accepted, "delivered", (json_int_t)r->st.delivered, "confirmed",
            (json_int_t)r->st.confirmed, "redelivered", (json_int_t)r->st.redelivered, "refused",
            (json_int_t)r->st.refused, "suspended", hub_region_suspended(h, i), "suspended_by",
            suspended_by(h, i), "suspended_reason",
            cr->suspended ? cr->suspended_reason : r->op.reason, "paused", r->op.paused,
            "rate_limit", (json_int_t)r->op.rate, "cases", figures_json(&f));
        json_t *codes = json_object();
        for (int c = 0; c < HUB_NACK_CODES; c++)
            if (r->st.refused_by[c]) {
                json_t *name = api_code_json(c);
                json_object_set_new(codes, json_string_value(name),
                                    json_integer((json_int_t)r->st.refused_by[c]));
                json_decref(name);
            }
        json_object_set_new(o, "refused_by_code", codes);
        json_array_append_new(list, o);
    }
    free(st);
    return json_pack("{s:o}", "regions", list);
}

/* ---- the live stream ------------------------------------------------------------ */

static void stream_json(hub_t *h, const char *event, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text)
        http_broadcast(h->http, event, text);
    free(text);
}

static json_t *refusal_json(const struct hub_recent *e)
{
    json_t *o = json_pack("{s:I,s:o,s:s,s:s}", "time_ms", (json_int_t)e->time_ms, "code",
                          api_code_json(e->code), "region", e->region, "reason", e->reason);
    return o;
}

static json_t *security_json(const struct hub_recent *e)
{
    return json_pack("{s:I,s:s,s:s,s:s,s:s}", "time_ms", (json_int_t)e->time_ms, "kind",
                     security_kind_name(e->code), "fingerprint", e->fingerprint, "address",
                     e->address, "reason", e->reason);
}

/* Whether one more refusal or security event may go on the live stream
 * this second (a flood of refusals is kept and counted, not streamed). */
static int stream_allowed(hub_t *h, int64_t now_ms)
{
    if (!http_streams(h->http))
        return 0;
    if (now_ms / 1000 != h->stream_sec) {
        h->stream_sec = now_ms / 1000;
        h->stream_refusals = 0;
    }
    return h->stream_refusals++ < HUB_STREAM_REFUSALS_PER_S;
}

/* The next slot of a ring of recent events (the oldest is overwritten),
 * cleared and stamped with the hub's time; `why` goes in as its reason. */
static struct hub_recent *recent_push(hub_t *h, struct hub_recent *ring, uint64_t *count,
                                      int code, const char *why)
{
    struct hub_recent *e = &ring[(*count)++ % HUB_RECENT_MAX];
    memset(e, 0, sizeof *e);
    e->time_ms = clock_wall_ms(h->clock);
    e->code = code;
    snprintf(e->reason, sizeof e->reason, "%s", why ? why : "");
    return e;
}

void api_note_refusal(hub_t *h, int code, const char *region, const char *why)
{
    struct hub_recent *e = recent_push(h, h->refusals, &h->n_refusals, code, why);
    snprintf(e->region, sizeof e->region, "%s", region ? region : "");
    int r = region ? hub_region_lookup(h, region) : -1;
    if (r >= 0) {
        h->regions[r].st.refused++;
        h->regions[r].st.refused_by[code & (HUB_NACK_CODES - 1)]++;
    }
    if (stream_allowed(h, e->time_ms))
        stream_json(h, "refusal", refusal_json(e));
}

void api_note_security(hub_t *h, int kind, const char *fpr, const char *address, const char *reason)
{
    struct hub_recent *e = recent_push(h, h->security, &h->n_security, kind, reason);
    snprintf(e->fingerprint, sizeof e->fingerprint, "%s", fpr ? fpr : "");
    snprintf(e->address, sizeof e->address, "%s", address ? address : "");
    if (stream_allowed(h, e->time_ms))
        stream_json(h, "security", security_json(e));
}

void api_note_item(hub_t *h, const char *item, int accepted)
{
    /* A short table: a catalogue has tens of items, and the last one used
     * is the likeliest next (a batch of one item). */
    struct hub_item_stat *s = NULL;
    const char *name = item && item[0] && strlen(item) < sizeof s->item ? item : "other";
    for (size_t i = h->n_item_stats; i-- > 0 && !s;)
        if (!strcmp(h->item_stats[i].item, name))
            s = &h->item_stats[i];
    if (!s && h->n_item_stats < HUB_ITEM_STATS_MAX) {
        s = &h->item_stats[h->n_item_stats++];
        snprintf(s->item, sizeof s->item, "%s", name);
    }
    if (!s) /* the table is full: an unbounded item set must not grow memory */
        s = &h->item_stats[HUB_ITEM_STATS_MAX - 1];
    if (accepted)
        s->accepted++;
    else
        s->rejected++;
}

void api_note_cases(hub_t *h)
{
    char type[48];
    for (size_t i = 0; i < h->n_case_notes; i++) {
        const struct hub_case_note *n = &h->case_notes[i];
        stream_json(h, "case",
                    json_pack("{s:o,s:s,s:s,s:s,s:s,s:s}", "id", hex_json(n->id, 16), "event",
                              event_type_name(n->type, type, sizeof type), "state",
                              store_case_state_name(n->state), "item", n->item, "requester",
                              n->requester, "handler", n->handler));
    }
    h->n_case_notes = 0;
}

static json_t *recent_json(const struct hub_recent *ring, uint64_t n, size_t limit,
                           json_t *(*fn)(const struct hub_recent *))
{
    json_t *list = json_array();
    for (uint64_t i = 0; i < n && i < HUB_RECENT_MAX && i < limit; i++)
        json_array_append_new(list, fn(&ring[(n - 1 - i) % HUB_RECENT_MAX]));
    return list;
}

void api_turn(hub_t *h)
{
    if (!h->http)
        return;
    http_run(h->http);
    int64_t now = hub_now_mono(h);
    if (now < h->next_tick)
        return;
    h->next_tick = now + HUB_TICK_MS;
    if (!http_streams(h->http))
        return;
    store_reader_t *rd = NULL;
    if (store_reader_open(h->store, &rd) != 0)
        return;
    stream_json(h, "status", status_json(h, rd));
    stream_json(h, "regions", regions_json(h, rd));
    store_reader_close(&rd);
    http_run(h->http); /* write the tick out now, not at the next wake-up */
}

/* ---- read endpoints ------------------------------------------------------------ */

int api_query_u64(http_req_t *req, const char *name, uint64_t def, uint64_t max, uint64_t *out)
{
    const char *v = http_req_query(req, name);
    *out = def;
    if (!v)
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (!v[0] || *end || errno || x > max || v[0] == '-') {
        http_reply_error(req, 400, "bad_request", "query \"%s\": expected a whole number 0..%llu",
                         name, (unsigned long long)max);
        return -1;
    }
    *out = x;
    return 0;
}

static json_t *case_json(const store_case_t *c, int64_t now)
{
    char hex[33];
    return json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:b,s:b,s:b,s:i}", "id",
        log_hex(hex, sizeof hex, c->id, 16), "item", c->item, "kind",
        c->kind == NHUB__WIRE__V1__KIND__KIND_PUSH ? "push" : "request", "state",
        store_case_state_name(c->state), "requester", c->requester, "handler", c->handler,
        "opened_ms", (json_int_t)c->opened_ms, "remind_ms", (json_int_t)c->remind_ms, "due_ms",
        (json_int_t)c->due_ms, "expire_ms", (json_int_t)c->expire_ms, "closed_ms",
        (json_int_t)c->closed_ms, "valid_until_ms", (json_int_t)c->valid_until_ms, "age_s",
        (double)((c->closed_ms ? c->closed_ms : now) - c->opened_ms) / 1000.0, "overdue",
        (c->flags & STORE_CASE_F_OVERDUE) != 0, "reminded", (c->flags & STORE_CASE_F_REMINDED) != 0,
        "delivered", (c->flags & STORE_CASE_F_DELIVERED) != 0, "stage", (int)c->stage);
}

static int region_param(hub_t *h, http_req_t *req, const char *name, const char **out)
{
    *out = http_req_query(req, name);
    if (*out && hub_region_lookup(h, *out) < 0) {
        http_reply_error(req, 400, "bad_request", "query \"%s\": %s is not a configured region",
                         name, *out);
        return -1;
    }
    return 0;
}

static void get_cases(hub_t *h, http_req_t *req, store_reader_t *rd)
{
    store_case_filter_t f = {0};
    uint64_t limit, older, open, overdue;
    const char *state = http_req_query(req, "state");
    if (region_param(h, req, "region", &f.region) ||
        api_query_u64(req, "limit", API_LIST_DEFAULT, API_LIST_MAX, &limit) ||
        api_query_u64(req, "older_than", 0, UINT32_MAX, &older) ||
        api_query_u64(req, "open", 0, 1, &open) || api_query_u64(req, "overdue", 0, 1, &overdue))
        return;
    f.item = http_req_query(req, "item");
    if (f.item && strlen(f.item) > 64) {
        http_reply_error(req, 400, "bad_request", "query \"item\": at most 64 characters");
        return;
    }
    if (state && !(f.state = store_case_state_parse(state))) {
        http_reply_error(req, 400, "bad_request",
                         "query \"state\": %s is not a case state (open, delivered, handling, "
                         "reminded, overdue, answered, expired, refused)",
                         state);
        return;
    }
    int64_t now = clock_wall_ms(h->clock);
    f.open_only = (int)open;
    if (overdue)
        f.past_due_at_ms = now;
    if (older)
        f.opened_before_ms = now - (int64_t)older * 1000;
    store_case_t after, *afterp = NULL;
    const char *a = http_req_query(req, "after");
    if (a) {
        uint8_t id[16];
        if (log_unhex(a, id, 16) != 0 || store_case_read(rd, id, &after) != 0) {
            http_reply_error(req, 400, "bad_request",
                             "query \"after\": not the id of a case (32 hex digits)");
            return;
        }
        afterp = &after;
    }
    store_case_t *out = calloc(limit ? limit : 1, sizeof *out), last;
    size_t n = 0;
    int stopped = 0;
    if (!out ||
        store_case_scan(rd, &f, afterp, out, limit, &n, API_SCAN_MAX, &stopped, &last) != 0) {
        free(out);
        http_reply_error(req, 503, "unavailable", "the store could not be read");
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, case_json(&out[i], now));
    /* More may follow: the page is full, or the walk stopped at its bound
     * (then `next` is the last case looked at, matching or not). */
    json_t *next = stopped           ? hex_json(last.id, 16)
                   : n == limit && n ? hex_json(out[n - 1].id, 16)
                                     : json_null();
    free(out);
    http_reply_json(req, 200,
                    json_pack("{s:o,s:o,s:b}", "cases", list, "next", next, "partial", stopped));
}

static json_t *timeline_entry(store_reader_t *rd, uint64_t seq)
{
    const void *data;
    size_t len;
    journal_event_t *ev = NULL;
    uint64_t start = 1;
    uint8_t prev[STORE_HASH_LEN];
    if (store_journal_start(rd, &start, prev) == 0 && seq < start) /* pruned: in an archive file */
        return json_pack("{s:I,s:s}", "seq", (json_int_t)seq, "type", "archived");
    if (store_journal_get(rd, seq, &data, &len, NULL) != 0 ||
        wire_decode(&nhub__journal__v1__journal_event__descriptor, data, len, len + 1024,
                    (ProtobufCMessage **)&ev) != 0)
        return json_pack("{s:I,s:s}", "seq", (json_int_t)seq, "type", "unreadable");
    char type[48];
    json_t *o =
        json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:I,s:s,s:I,s:s}", "seq", (json_int_t)seq, "time_ms",
                  (json_int_t)ev->time_ms, "type", event_type_name(ev->type, type, sizeof type),
                  "source", ev->source, "destination", ev->destination, "region", ev->region,
                  "code", (json_int_t)ev->code, "reason", ev->reason, "stage",
                  (json_int_t)ev->stage, "by", ev->actor);
    if (ev->msg_id.len == 16)
        json_object_set_new(o, "msg_id", hex_json(ev->msg_id.data, 16));
    if (ev->case_state)
        json_object_set_new(o, "case_state",
                            json_string(store_case_state_name((int)ev->case_state)));
    wire_free((ProtobufCMessage **)&ev);
    return o;
}

static void get_case(hub_t *h, http_req_t *req, store_reader_t *rd, const char *hex)
{
    uint8_t id[16];
    store_case_t c;
    if (log_unhex(hex, id, 16) != 0) {
        http_reply_error(req, 400, "bad_request", "a case id is 32 hex digits");
        return;
    }
    if (store_case_read(rd, id, &c) != 0) {
        http_reply_error(req, 404, "not_found", "no case %s", hex);
        return;
    }
    uint64_t seqs[API_TIMELINE_MAX];
    size_t n = 0;
    store_case_timeline(rd, id, 0, seqs, API_TIMELINE_MAX, &n);
    json_t *tl = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(tl, timeline_entry(rd, seqs[i]));
    http_reply_json(
        req, 200,
        json_pack("{s:o,s:o}", "case", case_json(&c, clock_wall_ms(h->clock)), "timeline", tl));
}

static void get_held(hub_t *h, http_req_t *req, store_reader_t *rd)
{
    const char *region;
    uint64_t limit;
    if (region_param(h, req, "region", &region) ||
        api_query_u64(req, "limit", API_LIST_DEFAULT, API_LIST_MAX, &limit))
        return;
    json_t *list = json_array();
    store_held_t buf[256];
    for (size_t i = 0; i < h->n_regions && json_array_size(list) < limit; i++) {
        if (region && strcmp(region, h->regions[i].code))
            continue;
        size_t n = 0, want = limit - json_array_size(list);
        store_held_scan(rd, h->regions[i].code, 0, buf, want < 256 ? want : 256, &n);
        for (size_t k = 0; k < n; k++)
            json_array_append_new(
                list,
                json_pack("{s:s,s:I,s:I,s:s}", "region", h->regions[i].code, "dseq",
                          (json_int_t)buf[k].dseq, "since_ms", (json_int_t)buf[k].since_ms,
                          "reason",
                          buf[k].reason == STORE_HELD_TOO_LARGE ? "too_large" : "payload_type"));
    }
    http_reply_json(req, 200, json_pack("{s:o}", "held", list));
}

static int queue_cmp(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "queued"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "queued"));
    return (x < y) - (x > y);
}

static void get_queues(hub_t *h, http_req_t *req, store_reader_t *rd)
{
    json_t **rows = calloc(h->n_regions ? h->n_regions : 1, sizeof *rows);
    if (!rows) {
        http_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    for (size_t i = 0; i < h->n_regions; i++) {
        const struct hub_region *r = &h->regions[i];
        uint64_t q = 0;
        store_queue_depth(rd, r->code, &q);
        rows[i] = json_pack("{s:s,s:I,s:I,s:I,s:b,s:b}", "region", r->code, "queued", (json_int_t)q,
                            "held", (json_int_t)api_held_count(rd, r->code), "in_flight",
                            (json_int_t)(r->delivery ? dispatch_inflight(r->window) : 0),
                            "connected", r->delivery != NULL, "paused", r->op.paused);
    }
    qsort(rows, h->n_regions, sizeof *rows, queue_cmp);
    json_t *list = json_array();
    for (size_t i = 0; i < h->n_regions; i++)
        json_array_append_new(list, rows[i]);
    free(rows);
    http_reply_json(req, 200, json_pack("{s:o}", "queues", list));
}

static void get_items(hub_t *h, http_req_t *req, store_reader_t *rd)
{
    (void)h;
    store_case_stat_t *st = NULL;
    size_t n = 0;
    if (api_stats_read(rd, &st, &n) != 0) {
        free(st);
        http_reply_error(req, 503, "unavailable", "the store could not be read");
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++)
            seen = !strcmp(st[k].item, st[i].item);
        if (seen)
            continue;
        struct figures f = {{0}};
        for (size_t k = i; k < n; k++)
            if (!strcmp(st[k].item, st[i].item))
                for (int j = 0; j < STORE_CSTAT_N; j++)
                    f.v[j] += st[k].v[j];
        json_t *o = figures_json(&f);
        json_object_set_new(o, "item", json_string(st[i].item));
        json_array_append_new(list, o);
    }
    free(st);
    http_reply_json(req, 200, json_pack("{s:o}", "items", list));
}

static void get_journal(hub_t *h, http_req_t *req, store_reader_t *rd)
{
    (void)h;
    uint64_t last = 0;
    const void *data;
    size_t len;
    const uint8_t *hash = NULL;
    store_journal_last(rd, &last);
    json_t *o = json_pack("{s:I}", "last_seq", (json_int_t)last);
    if (last && store_journal_get(rd, last, &data, &len, &hash) == 0 && hash)
        json_object_set_new(o, "last_hash", hex_json(hash, STORE_HASH_LEN));
    http_reply_json(req, 200, o);
}

static void get_events(hub_t *h, http_req_t *req, store_reader_t *rd)
{
    if (http_reply_stream(req) != 0)
        return;
    json_t *parts[2] = {status_json(h, rd), regions_json(h, rd)};
    const char *names[2] = {"status", "regions"};
    for (int i = 0; i < 2; i++) {
        char *text = json_dumps(parts[i], JSON_COMPACT);
        if (text)
            http_stream_send(req, names[i], text);
        free(text);
        json_decref(parts[i]);
    }
}

/* ---- operator actions ---------------------------------------------------------- */

struct action {
    http_req_t *req;
    const char *name; /* suspend, resume, ... */
    int region;       /* index, or -1 */
    const uint8_t *case_id;
    char by[STORE_OP_TEXT_MAX + 1]; /* "NAME@ADDRESS" */
    char detail[STORE_OP_TEXT_MAX + 1];
    store_opstate_t op; /* the region's state after the action */
    int journal_type;   /* EVENT_* for the action's own record */
    int rc;             /* cases_remind's result */
};

/* The body's "by" (who acts) with the client's address, for the journal. */
static int action_init(struct action *a, http_req_t *req, const char *name, json_t **body)
{
    memset(a, 0, sizeof *a);
    a->req = req;
    a->name = name;
    a->region = -1;
    a->journal_type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_OPERATOR_ACTION;
    size_t len;
    const char *text = http_req_body(req, &len);
    json_error_t jerr;
    *body = len ? json_loadb(text, len, 0, &jerr) : json_object();
    if (!*body || !json_is_object(*body)) {
        http_reply_error(req, 400, "bad_request", "the body must be a JSON object%s%s",
                         *body ? "" : ": ", *body ? "" : jerr.text);
        json_decref(*body);
        *body = NULL;
        return -1;
    }
    json_t *by = json_object_get(*body, "by");
    const char *who = json_is_string(by) ? json_string_value(by) : "operator";
    if (by && (!json_is_string(by) || !who[0] || strlen(who) > 64)) {
        http_reply_error(req, 400, "bad_request", "\"by\": a name of 1 to 64 characters");
        json_decref(*body);
        *body = NULL;
        return -1;
    }
    snprintf(a->by, sizeof a->by, "%s@%s", who, http_req_address(req));
    for (char *p = a->by; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = '?';
    return 0;
}

static int action_apply(hub_t *h, store_txn_t *t, void *arg)
{
    struct action *a = arg;
    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = a->journal_type;
    ev.time_ms = clock_wall_ms(h->clock);
    ev.action = (char *)a->name;
    ev.actor = a->by;
    ev.reason = a->detail;
    if (a->region >= 0)
        ev.region = h->regions[a->region].code;
    if (a->case_id)
        ev.case_id = (ProtobufCBinaryData){16, (uint8_t *)a->case_id};
    uint64_t seq;
    int rc = commit_journal_append(h, t, &ev, &seq);
    if (!rc && a->region >= 0)
        rc = store_opstate_put(t, h->regions[a->region].code, &a->op);
    if (!rc && a->case_id) {
        cases_txn_begin(h);
        a->rc = cases_remind(h, t, a->case_id, seq, ev.time_ms);
        rc = a->rc == NHUB_EEXIST || a->rc == NHUB_ENOTFOUND ? a->rc : a->rc;
    }
    return rc;
}

/* Journal and store the action; on success the region's RAM state follows. */
static int action_commit(hub_t *h, struct action *a)
{
    int rc = hub_txn(h, action_apply, a);
    if (rc == 0 && a->region >= 0) {
        struct hub_region *r = &h->regions[a->region];
        r->op = a->op;
        r->pending = 1;
    }
    char q[200];
    log_info("hub.operator_action", "action=%s by=%s region=%s detail=%s rc=%d", a->name,
             log_quote(q, sizeof q, a->by), a->region >= 0 ? h->regions[a->region].code : "-",
             a->detail[0] ? a->detail : "-", rc);
    if (rc && rc != NHUB_EEXIST && rc != NHUB_ENOTFOUND)
        http_reply_error(a->req, 503, "unavailable", "the action could not be stored: %s",
                         nhub_strerror(rc));
    return rc;
}

static void region_action(hub_t *h, http_req_t *req, const char *code, const char *name)
{
    int i = hub_region_lookup(h, code);
    if (i < 0) {
        http_reply_error(req, 404, "not_found", "%s is not a configured region", code);
        return;
    }
    struct action a;
    json_t *body;
    if (action_init(&a, req, name, &body))
        return;
    a.region = i;
    a.op = h->regions[i].op;
    json_t *v;
    int changed = 1;
    if (!strcmp(name, "suspend")) {
        v = json_object_get(body, "reason");
        if (v && (!json_is_string(v) || strlen(json_string_value(v)) > 120)) {
            http_reply_error(req, 400, "bad_request", "\"reason\": text of at most 120 bytes");
            goto done;
        }
        changed = !a.op.suspended;
        a.op.suspended = 1;
        snprintf(a.op.reason, sizeof a.op.reason, "%s", v ? json_string_value(v) : "operator");
        snprintf(a.op.by, sizeof a.op.by, "%s", a.by);
        snprintf(a.detail, sizeof a.detail, "%s", a.op.reason);
        a.journal_type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_REGION_SUSPENDED;
    } else if (!strcmp(name, "resume")) {
        if (h->cfg->regions[i].suspended) {
            http_reply_error(req, 409, "conflict",
                             "%s is suspended in the configuration file; set suspended: false "
                             "there and reload",
                             code);
            goto done;
        }
        changed = a.op.suspended;
        a.op.suspended = 0;
        a.op.reason[0] = a.op.by[0] = 0;
        a.journal_type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_REGION_RESUMED;
    } else if (!strcmp(name, "pause") || !strcmp(name, "unpause")) {
        int want = !strcmp(name, "pause");
        changed = a.op.paused != want;
        a.op.paused = want;
    } else if (!strcmp(name, "rate")) {
        v = json_object_get(body, "per_second");
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > API_RATE_MAX) {
            http_reply_error(req, 400, "bad_request",
                             "\"per_second\": a whole number 0..%d (0 = no limit)", API_RATE_MAX);
            goto done;
        }
        changed = a.op.rate != (uint32_t)json_integer_value(v);
        a.op.rate = (uint32_t)json_integer_value(v);
        snprintf(a.detail, sizeof a.detail, "per_second=%u", a.op.rate);
    } else if (!strcmp(name, "redrive")) {
        /* below */
    } else {
        http_reply_error(req, 404, "not_found",
                         "no action %s (suspend, resume, pause, unpause, "
                         "rate, redrive)",
                         name);
        goto done;
    }
    if (changed && action_commit(h, &a) != 0)
        goto done;
    json_t *out =
        json_pack("{s:s,s:s,s:b,s:b,s:I,s:b}", "region", code, "action", name, "suspended",
                  hub_region_suspended(h, (size_t)i), "paused", h->regions[i].op.paused,
                  "rate_limit", (json_int_t)h->regions[i].op.rate, "changed", changed);
    if (!strcmp(name, "redrive")) {
        struct hub_region *r = &h->regions[i];
        store_reader_t *rd = NULL;
        size_t held = 0;
        if (store_reader_open(h->store, &rd) == 0)
            held = api_held_count(rd, code);
        store_reader_close(&rd);
        /* From the head of the queue again, now: held messages are tried
         * again and every backoff starts over (a receiver may see repeats,
         * which it drops by msg_id). */
        if (r->delivery && r->delivery->welcomed)
            dispatch_reset(r->window, r->delivery->credit);
        r->pending = 1;
        r->blocked_until = 0;
        json_object_set_new(out, "released", json_integer((json_int_t)held));
    }
    http_reply_json(req, 200, out);
done:
    json_decref(body);
}

static void case_remind(hub_t *h, http_req_t *req, const char *hex)
{
    uint8_t id[16];
    if (log_unhex(hex, id, 16) != 0) {
        http_reply_error(req, 400, "bad_request", "a case id is 32 hex digits");
        return;
    }
    struct action a;
    json_t *body;
    if (action_init(&a, req, "remind", &body))
        return;
    json_decref(body);
    a.case_id = id;
    int rc = action_commit(h, &a);
    if (rc == NHUB_ENOTFOUND)
        http_reply_error(req, 404, "not_found", "no case %s", hex);
    else if (rc == NHUB_EEXIST)
        http_reply_error(req, 409, "conflict", "case %s is closed; nothing to remind", hex);
    else if (rc == 0) {
        cases_committed(h, h->cases_next_ms);
        http_reply_json(req, 200, json_pack("{s:s,s:b}", "case", hex, "reminded", 1));
    }
}

static void reload(hub_t *h, http_req_t *req)
{
    struct action a;
    json_t *body;
    if (action_init(&a, req, "reload", &body))
        return;
    json_decref(body);
    char err[512];
    commit_flush_all(h); /* staged items hold region indexes of this configuration */
    int rc = hub_reload(h, h->cfg_path, err, sizeof err);
    snprintf(a.detail, sizeof a.detail, "%s", rc ? "failed" : "ok");
    action_commit(h, &a);
    if (rc)
        http_reply_error(req, 400, "bad_request", "%s", err);
    else
        http_reply_json(req, 200,
                        json_pack("{s:b,s:I}", "reloaded", 1, "regions", (json_int_t)h->n_regions));
}

/* ---- routing -------------------------------------------------------------------- */

/* "/api/v1/regions/110000/suspend" -> "110000", "suspend" (bounded copies). */
static int split2(const char *rest, char *a, size_t acap, char *b, size_t bcap)
{
    const char *slash = strchr(rest, '/');
    if (!slash || (size_t)(slash - rest) >= acap || strlen(slash + 1) >= bcap ||
        strchr(slash + 1, '/'))
        return -1;
    memcpy(a, rest, (size_t)(slash - rest));
    a[slash - rest] = 0;
    strcpy(b, slash + 1);
    return 0;
}

static void route_post(hub_t *h, http_req_t *req, const char *path)
{
    char a[80], b[32];
    if (!strncmp(path, "/api/v1/regions/", 16) && !split2(path + 16, a, sizeof a, b, sizeof b))
        region_action(h, req, a, b);
    else if (!strncmp(path, "/api/v1/cases/", 14) && !split2(path + 14, a, sizeof a, b, sizeof b) &&
             !strcmp(b, "remind"))
        case_remind(h, req, a);
    else if (!strcmp(path, "/api/v1/reload"))
        reload(h, req);
    else
        http_reply_error(req, 404, "not_found", "no action at %s", path);
}

typedef void (*get_fn)(hub_t *, http_req_t *, store_reader_t *);

static void get_status(hub_t *h, http_req_t *req, store_reader_t *rd)
{
    http_reply_json(req, 200, status_json(h, rd));
}

static void get_regions(hub_t *h, http_req_t *req, store_reader_t *rd)
{
    http_reply_json(req, 200, regions_json(h, rd));
}

/* A list of recent events, newest first, under `key`. */
static void get_recent(http_req_t *req, const char *key, const struct hub_recent *ring, uint64_t n,
                       json_t *(*fn)(const struct hub_recent *))
{
    uint64_t limit;
    if (!api_query_u64(req, "limit", HUB_RECENT_MAX, HUB_RECENT_MAX, &limit))
        http_reply_json(req, 200, json_pack("{s:o}", key, recent_json(ring, n, limit, fn)));
}

static void get_refusals(hub_t *h, http_req_t *req, store_reader_t *rd)
{
    (void)rd;
    get_recent(req, "refusals", h->refusals, h->n_refusals, refusal_json);
}

static void get_security(hub_t *h, http_req_t *req, store_reader_t *rd)
{
    (void)rd;
    get_recent(req, "events", h->security, h->n_security, security_json);
}

static const struct {
    const char *path;
    get_fn fn;
} gets[] = {
    {"/metrics", api_get_metrics},      {"/api/v1/status", get_status},
    {"/api/v1/regions", get_regions},   {"/api/v1/queues", get_queues},
    {"/api/v1/items", get_items},       {"/api/v1/cases", get_cases},
    {"/api/v1/held", get_held},         {"/api/v1/refusals", get_refusals},
    {"/api/v1/security", get_security}, {"/api/v1/journal", get_journal},
    {"/api/v1/events", get_events},     {"/api/v1/checkpoint", api_get_checkpoint},
    {"/api/v1/proof", api_get_proof},   {"/api/v1/consistency", api_get_consistency},
};

static void route_get(hub_t *h, http_req_t *req, const char *path)
{
    const web_asset_t *asset = web_asset_find(path);
    if (asset) {
        http_reply(req, 200, asset->type, asset->data, asset->len);
        return;
    }
    store_reader_t *rd = NULL;
    if (store_reader_open(h->store, &rd) != 0) {
        http_reply_error(req, 503, "unavailable", "the store cannot be read");
        return;
    }
    size_t i = 0, n = sizeof gets / sizeof gets[0];
    while (i < n && strcmp(gets[i].path, path))
        i++;
    if (i < n)
        gets[i].fn(h, req, rd);
    else if (!strncmp(path, "/api/v1/cases/", 14) && !strchr(path + 14, '/'))
        get_case(h, req, rd, path + 14);
    else
        http_reply_error(req, 404, "not_found", "nothing at %s (see /api/v1/status)", path);
    store_reader_close(&rd);
}

static void handle(void *arg, http_req_t *req)
{
    hub_t *h = arg;
    const char *path = http_req_path(req);
    if (!strcmp(http_req_method(req), "POST"))
        route_post(h, req, path);
    else
        route_get(h, req, path);
}

int api_start(hub_t *h, char *err, size_t errcap)
{
    if (!h->cfg->http.listen[0])
        return 0;
    int rc = http_new(&h->cfg->http, handle, h, &h->http, err, errcap);
    if (rc)
        return rc;
    log_info("hub.http_ready", "url=%s tls=%d read_token=%d operator_token=%d", http_url(h->http),
             h->cfg->http.tls_cert[0] != 0, h->cfg->http.read_token[0] != 0,
             h->cfg->http.operator_token[0] != 0);
    return 0;
}
