/*
 * api.c: the handlers of the local JSON API (see api.h), and the small
 * libmicrohttpd frame around them, kept as broker/http.c keeps the hub's:
 * external mode on an epoll descriptor, a request state allocated on the
 * first call of the access handler, the body gathered chunk by chunk
 * (bounded by api.body_max), and the answer made on the last call.
 *
 * A long-poll (GET inbox?wait=S) with nothing to hand out suspends its
 * connection and goes on the parked list with its deadline; api_run
 * resumes every parked one when a delivery may be offered or its time is
 * up, and the access handler, called again after the resume, answers or
 * parks it again.
 *
 * A submission (POST messages) that parses is not stored at once: its
 * connection is suspended and it waits on the pending list until the
 * server's pass over the ready connections is over. Then every pending
 * submission is stored with one commit to libnhub's outbox
 * (daemon_submit_batch: one fsync for all the platform's clients that
 * posted in that pass, not one each), its answer is made, and its
 * connection resumed; the access handler, called again, queues the
 * answer. So the 202 still comes only once the message is durable.
 */
#include "api.h"

#include "log.h"
#include "nhub_err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define API_CONNECTIONS_MAX 128
#define API_IDLE_TIMEOUT_S 120 /* above the longest long-poll */
#define API_INBOX_MAX_DEFAULT 100
#define API_INBOX_MAX 1000
#define API_PREFIX "/api/v1/"
#define API_BATCH_MAX 500 /* messages in one POST messages:batch */

typedef struct req {
    api_t *api;
    struct MHD_Connection *conn;
    const char *method, *url;
    char *body;
    size_t body_len;
    int too_large;
    int parked;       /* suspended, on the parked list */
    int pending;      /* suspended, a submission on the pending list */
    msgjson_t m;      /* the pending submission */
    int parked_once;  /* was suspended: its client may have left meanwhile */
    int64_t deadline; /* long-poll: answer by then (monotonic ms); 0 = not a waiting poll */
    struct MHD_Response *response;
    unsigned status;
    struct req *prev, *next; /* parked list */
} req_t;

struct api {
    daemon_t *dm;
    struct MHD_Daemon *d;
    char url[64];
    req_t *parked;
    req_t *pending[API_CONNECTIONS_MAX]; /* submissions to store, in arrival order */
    size_t n_pending;
    int resumed; /* a connection was resumed since the last MHD_run */
    int closing; /* api_destroy: answer every parked poll now */
};

/* ---- answers --------------------------------------------------------------- */

static void reply_json(req_t *r, unsigned status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (r->response) {
        free(text);
        return;
    }
    if (!text) {
        static const char oom[] = "{\"error\":\"internal\",\"detail\":\"out of memory\"}";
        r->response =
            MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
        status = 500;
    } else {
        size_t n = strlen(text);
        text[n] = 0;
        r->response = MHD_create_response_from_buffer(n, text, MHD_RESPMEM_MUST_FREE);
        if (!r->response)
            free(text);
    }
    if (r->response) {
        MHD_add_response_header(r->response, "Content-Type", "application/json");
        MHD_add_response_header(r->response, "Cache-Control", "no-store");
    }
    r->status = status;
}

static void reply_error(req_t *r, unsigned status, const char *code, const char *field,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * Make `s` valid UTF-8 in place: each byte that does not begin a well-formed
 * sequence becomes '?'. An error text echoes what the client sent (a key,
 * a path) and is cut to fit its buffer, possibly inside a character;
 * jansson refuses a string that is not UTF-8, and the answer would be lost.
 */
static void utf8_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        unsigned b = *p;
        size_t n = b < 0x80             ? 0
                   : (b & 0xe0) == 0xc0 ? 1
                   : (b & 0xf0) == 0xe0 ? 2
                   : (b & 0xf8) == 0xf0 ? 3
                                        : 9;
        uint32_t cp = n == 9 ? 0 : n == 0 ? b : b & (0x3fu >> n);
        size_t i = 1;
        for (; n != 9 && i <= n && (p[i] & 0xc0) == 0x80; i++)
            cp = (cp << 6) | (p[i] & 0x3fu);
        int ok = n != 9 && i == n + 1 && b != 0xc0 && b != 0xc1 && b <= 0xf4 &&
                 !(n == 2 && cp < 0x800) && !(n == 3 && (cp < 0x10000 || cp > 0x10ffff)) &&
                 !(cp >= 0xd800 && cp <= 0xdfff);
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n + 1;
    }
}

static void reply_error(req_t *r, unsigned status, const char *code, const char *field,
                        const char *fmt, ...)
{
    char detail[600], where[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    utf8_clean(detail);
    json_t *o = json_pack("{s:s,s:s}", "error", code, "detail", detail);
    if (o && field) {
        snprintf(where, sizeof where, "%s", field);
        utf8_clean(where);
        json_object_set_new(o, "field", json_string(where));
    }
    reply_json(r, status, o);
}

/* ---- helpers --------------------------------------------------------------- */

static const char *state_name(int s)
{
    return s == TRACK_ACKED ? "acked" : s == TRACK_REJECTED ? "rejected" : "queued";
}

/* 1 if the held delivery may be offered now. */
static int offerable(const held_t *h, int64_t now)
{
    return h->lease_until <= now;
}

static int any_offerable(const daemon_t *dm, int64_t now)
{
    for (size_t i = 0; i < dm->n_held; i++)
        if (offerable(&dm->held[i], now))
            return 1;
    return 0;
}

/* Seconds from a query parameter: 0..max, or -1 if not a number. */
static long query_long(struct MHD_Connection *c, const char *name, long dflt, long max)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    if (!v)
        return dflt;
    char *end = NULL;
    long x = strtol(v, &end, 10);
    if (!v[0] || *end || x < 0)
        return -1;
    return x > max ? max : x;
}

/* ---- handlers -------------------------------------------------------------- */

/* 1 if answered, 0 if the submission waits on the pending list (see the top). */
static int post_message(req_t *r)
{
    daemon_t *dm = r->api->dm;
    json_error_t jerr;
    json_t *body = json_loadb(r->body ? r->body : "", r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) {
        reply_error(r, 400, "malformed_json", NULL, "the body is not JSON: line %d, column %d: %s",
                    jerr.line, jerr.column, jerr.text);
        return 1;
    }
    msgjson_err_t e;
    int rc = msgjson_parse(body, dm->cfg->adapter.max_frame, &r->m, &e);
    json_decref(body);
    if (rc == NHUB_ENOMEM) {
        reply_error(r, 503, "unavailable", NULL, "out of memory");
        return 1;
    }
    if (rc != 0) {
        reply_error(r, e.status,
                    e.status == 422   ? "payload_rule"
                    : e.status == 413 ? "too_large"
                                      : "invalid",
                    e.field, "%s", e.detail);
        return 1;
    }
    api_t *a = r->api;
    if (a->n_pending == API_CONNECTIONS_MAX) { /* cannot happen: one request per connection */
        msgjson_clear(&r->m);
        reply_error(r, 503, "unavailable", NULL, "too many submissions at once, try again");
        return 1;
    }
    a->pending[a->n_pending++] = r;
    r->pending = 1;
    return 0;
}

/* The answer to a stored (or refused) submission. */
static void answer_submission(req_t *r, const daemon_sub_t *s)
{
    daemon_t *dm = r->api->dm;
    char hex[33];
    if (s->rc == NHUB_EEXIST) {
        reply_error(r, 409, "conflict", "msgId", "%s", s->err);
    } else if (s->rc == NHUB_EINVAL) {
        reply_error(r, 400, "invalid", NULL, "%s", s->err);
    } else if (s->rc == NHUB_ETOOBIG) {
        reply_error(r, 413, "too_large", "payload", "%s", s->err);
    } else if (s->rc != 0) {
        /* NHUB_EFULL, NHUB_ESTORE, NHUB_ECRYPTO: not stored; the platform may retry. */
        reply_error(r, 503, "unavailable", NULL, "not stored, try again: %s: %s",
                    nhub_strerror(s->rc), s->err);
    } else {
        track_sent_t t;
        int state = track_sent_get(dm->track, s->id, &t) == 0 ? t.state : TRACK_QUEUED;
        reply_json(r, 202,
                   json_pack("{s:s,s:s,s:b}", "msgId", nhub_msg_id_hex(s->id, hex), "status",
                             state_name(state), "duplicate", s->dup));
    }
}

/* The JSON of one stored submission: msgId, status, duplicate. */
static json_t *stored_json(daemon_t *dm, const daemon_sub_t *s)
{
    char hex[33];
    track_sent_t t;
    int state = track_sent_get(dm->track, s->id, &t) == 0 ? t.state : TRACK_QUEUED;
    return json_pack("{s:s,s:s,s:b}", "msgId", nhub_msg_id_hex(s->id, hex), "status",
                     state_name(state), "duplicate", s->dup);
}

/* The HTTP status and code of a submission's error (as answer_submission gives them). */
static unsigned sub_status(int rc, const char **code)
{
    *code = rc == NHUB_EEXIST    ? "conflict"
            : rc == NHUB_EINVAL  ? "invalid"
            : rc == NHUB_ETOOBIG ? "too_large"
                                 : "unavailable";
    return rc == NHUB_EEXIST ? 409 : rc == NHUB_EINVAL ? 400 : rc == NHUB_ETOOBIG ? 413 : 503;
}

/*
 * Parse every element of the array `body` into m[0..n): 0, or the index
 * of the first bad one + 1 with *e filled (its field prefixed "[i]."), or
 * -1 out of memory.
 */
static long batch_parse(daemon_t *dm, const json_t *body, msgjson_t *m, size_t n, msgjson_err_t *e)
{
    for (size_t i = 0; i < n; i++) {
        int rc = msgjson_parse(json_array_get(body, i), dm->cfg->adapter.max_frame, &m[i], e);
        if (rc == NHUB_ENOMEM)
            return -1;
        if (rc == 0)
            continue;
        /* e->field is a path of the converter's, far shorter than its buffer. */
        char field[sizeof e->field + 32];
        snprintf(field, sizeof field, "[%zu]%s%s", i, e->field[0] ? "." : "", e->field);
        snprintf(e->field, sizeof e->field, "%.*s", (int)sizeof e->field - 1, field);
        return (long)i + 1;
    }
    return 0;
}

/* Answer a batch whose messages were all stored (202) or not all (the first error's status). */
static void answer_batch(req_t *r, const daemon_sub_t *sub, size_t n)
{
    daemon_t *dm = r->api->dm;
    json_t *results = json_array();
    size_t bad = n, dups = 0;
    for (size_t i = 0; results && i < n; i++) {
        json_t *j;
        char hex[33];
        if (sub[i].rc == 0) {
            j = stored_json(dm, &sub[i]);
            dups += sub[i].dup;
        } else {
            const char *code;
            sub_status(sub[i].rc, &code);
            j = json_pack("{s:s,s:s,s:s}", "msgId", nhub_msg_id_hex(sub[i].id, hex), "error", code,
                          "detail", sub[i].err);
            if (bad == n)
                bad = i;
        }
        json_array_append_new(results, j);
    }
    if (!results) {
        reply_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    if (bad == n) {
        reply_json(r, 202,
                   json_pack("{s:I,s:I,s:o}", "stored", (json_int_t)n, "duplicates",
                             (json_int_t)dups, "results", results));
        return;
    }
    const char *code;
    unsigned status = sub_status(sub[bad].rc, &code);
    char field[40];
    snprintf(field, sizeof field, "[%zu]%s", bad, sub[bad].rc == NHUB_EEXIST ? ".msgId" : "");
    json_t *o = json_pack("{s:s,s:s,s:s,s:o}", "error", code, "field", field, "detail",
                          "not every message of the batch was stored: see results (the ones with "
                          "a status are stored; resubmit the others)",
                          "results", results);
    reply_json(r, status, o);
}

/*
 * POST messages:batch: a JSON array of up to API_BATCH_MAX submissions.
 * All are checked first: one bad message refuses the batch (nothing
 * stored), naming it by index ("[3].payload.person.idNumber"). Then all
 * are stored with one commit (daemon_submit_batch) and answered 202 once
 * every one is durable.
 */
static void post_batch(req_t *r)
{
    daemon_t *dm = r->api->dm;
    json_error_t jerr;
    json_t *body = json_loadb(r->body ? r->body : "", r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    msgjson_t *m = NULL;
    daemon_sub_t *sub = NULL;
    size_t n = 0;
    if (!body) {
        reply_error(r, 400, "malformed_json", NULL, "the body is not JSON: line %d, column %d: %s",
                    jerr.line, jerr.column, jerr.text);
        goto done;
    }
    n = json_is_array(body) ? json_array_size(body) : 0;
    if (!n) {
        reply_error(r, 400, "invalid", "", "the body must be a JSON array of 1 to %d messages",
                    API_BATCH_MAX);
        goto done;
    }
    if (n > API_BATCH_MAX) {
        reply_error(r, 413, "too_large", "", "%zu messages: a batch holds at most %d", n,
                    API_BATCH_MAX);
        goto done;
    }
    m = calloc(n, sizeof *m);
    sub = calloc(n, sizeof *sub);
    msgjson_err_t e;
    long bad = m && sub ? batch_parse(dm, body, m, n, &e) : -1;
    if (bad < 0) {
        reply_error(r, 503, "unavailable", NULL, "out of memory");
        goto done;
    }
    if (bad > 0) {
        reply_error(r, e.status,
                    e.status == 422   ? "payload_rule"
                    : e.status == 413 ? "too_large"
                                      : "invalid",
                    e.field, "message [%ld] of the batch, nothing stored: %s", bad - 1, e.detail);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        sub[i] = (daemon_sub_t){.m = &m[i], .file = ""};
    daemon_submit_batch(dm, sub, n);
    answer_batch(r, sub, n);
done:
    for (size_t i = 0; m && i < n; i++)
        msgjson_clear(&m[i]);
    free(m);
    free(sub);
    json_decref(body);
}

/* Store every pending submission with one commit, answer each, resume its connection. */
static void flush_pending(api_t *a)
{
    size_t n = a->n_pending;
    if (!n)
        return;
    daemon_sub_t sub[API_CONNECTIONS_MAX];
    for (size_t i = 0; i < n; i++)
        sub[i] = (daemon_sub_t){.m = &a->pending[i]->m, .file = ""};
    daemon_submit_batch(a->dm, sub, n);
    for (size_t i = 0; i < n; i++) {
        req_t *r = a->pending[i];
        answer_submission(r, &sub[i]);
        if (!r->response)
            reply_error(r, 500, "internal", NULL, "no answer was made");
        msgjson_clear(&r->m);
        r->pending = 0;
        MHD_resume_connection(r->conn);
    }
    a->n_pending = 0;
    a->resumed = 1;
}

/* A pending submission whose connection went away: not stored, not answered. */
static void drop_pending(req_t *r)
{
    api_t *a = r->api;
    if (!r->pending)
        return;
    for (size_t i = 0; i < a->n_pending; i++) {
        if (a->pending[i] != r)
            continue;
        memmove(&a->pending[i], &a->pending[i + 1], (a->n_pending - i - 1) * sizeof *a->pending);
        a->n_pending--;
        break;
    }
    msgjson_clear(&r->m);
    r->pending = 0;
}

static json_t *case_json(const track_sent_t *t)
{
    char hex[33];
    const char *state = t->expired_ms    ? "expired"
                        : t->answers     ? "answered"
                        : t->overdue_ms  ? "overdue"
                        : t->reminder_ms ? "reminded"
                                         : "open";
    json_t *c = json_pack("{s:s,s:i,s:I,s:I,s:I}", "state", state, "answers", (int)t->answers,
                          "reminderMs", (json_int_t)t->reminder_ms, "overdueMs",
                          (json_int_t)t->overdue_ms, "expiredMs", (json_int_t)t->expired_ms);
    if (c)
        json_object_set_new(
            c, "answer",
            t->answers
                ? json_pack("{s:s,s:s,s:s,s:s,s:I}", "msgId", nhub_msg_id_hex(t->answer_id, hex),
                            "kind", nhub_kind_name(t->answer_kind), "type", t->answer_type,
                            "source", t->answer_source, "receivedMs", (json_int_t)t->answer_ms)
                : json_null());
    return c;
}

static void get_message(req_t *r, const char *hexid)
{
    daemon_t *dm = r->api->dm;
    uint8_t id[NHUB_MSG_ID_LEN];
    track_sent_t t;
    if (msgjson_hex16(hexid, id) != 0) {
        reply_error(r, 400, "invalid", "msgId", "the path must end in a msgId (32 hex digits)");
        return;
    }
    track_commit(dm->track); /* what this turn wrote, made readable as committed */
    int rc = track_sent_get(dm->track, id, &t);
    if (rc == NHUB_ENOTFOUND) {
        reply_error(r, 404, "not_found", "msgId",
                    "no message %s is known here: it was not submitted here, or it is older "
                    "than the retention (track.retention, %lld s after it was settled) and "
                    "its record was pruned",
                    hexid, (long long)(dm->cfg->track.retention_ms / 1000));
        return;
    }
    if (rc != 0) {
        reply_error(r, 503, "unavailable", NULL, "%s", track_error(dm->track));
        return;
    }
    char hex[33];
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "msgId", nhub_msg_id_hex(id, hex),
                          "status", state_name(t.state), "to", t.to, "item", t.item, "kind",
                          nhub_kind_name(t.kind), "type", t.type, "submittedMs",
                          (json_int_t)t.submitted_ms, "settledMs", (json_int_t)t.settled_ms);
    if (o && t.state == TRACK_REJECTED) {
        json_object_set_new(o, "code", json_integer(t.code));
        json_object_set_new(o, "reason", json_string(t.text));
    }
    if (o && t.file[0])
        json_object_set_new(o, "file", json_string(t.file));
    if (o && (t.kind == NHUB_KIND_REQUEST || t.kind == NHUB_KIND_PUSH))
        json_object_set_new(o, "case", case_json(&t));
    reply_json(r, 200, o);
}

/*
 * 1 if the client of `r` has closed its connection. A parked long-poll is
 * not watched by libmicrohttpd while suspended: a client that gave up is
 * only found out when the answer is written, after the deliveries in it
 * were leased, and they would be hidden from every live client for
 * api.lease. A FIN waiting on the socket (recv returns 0) tells it first.
 */
static int peer_gone(req_t *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return 0;
    char c;
    ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* 1 if the poll was answered, 0 if it should wait. */
static int get_inbox(req_t *r, int final)
{
    daemon_t *dm = r->api->dm;
    if (dm->spool_inbox) {
        reply_error(r, 409, "conflict", NULL,
                    "deliveries go to the spool folder inbox/ (spool.inbox: true)");
        return 1;
    }
    long wait = query_long(r->conn, "wait", 0, dm->cfg->api.long_poll_max_ms / 1000);
    long max = query_long(r->conn, "max", API_INBOX_MAX_DEFAULT, API_INBOX_MAX);
    if (wait < 0 || max <= 0) {
        reply_error(r, 400, "invalid", wait < 0 ? "wait" : "max", "%s must be a whole number%s",
                    wait < 0 ? "wait" : "max", wait < 0 ? " of seconds" : " from 1");
        return 1;
    }
    int64_t now = daemon_mono_ms();
    if (!r->deadline)
        r->deadline = now + wait * 1000;
    if (!final && !any_offerable(dm, now) && now < r->deadline)
        return 0;
    if (r->parked_once && peer_gone(r)) {
        reply_json(r, 200, json_pack("{s:[]}", "deliveries")); /* nobody reads it */
        return 1;
    }
    json_t *list = json_array();
    for (size_t i = 0; list && i < dm->n_held && json_array_size(list) < (size_t)max; i++) {
        held_t *h = &dm->held[i];
        if (!offerable(h, now))
            continue;
        json_t *j = msgjson_delivery(h->d);
        if (!j || json_array_append_new(list, j) != 0) {
            json_decref(list);
            list = NULL;
            break;
        }
        h->lease_until = now + dm->cfg->api.lease_ms;
    }
    reply_json(r, 200, list ? json_pack("{s:o}", "deliveries", list) : NULL);
    return 1;
}

static void post_confirm(req_t *r, const char *hexid)
{
    daemon_t *dm = r->api->dm;
    uint8_t id[NHUB_MSG_ID_LEN];
    char hex[33];
    if (dm->spool_inbox) {
        reply_error(r, 409, "conflict", NULL,
                    "deliveries go to the spool folder inbox/: move a file to done/ to confirm it");
        return;
    }
    if (msgjson_hex16(hexid, id) != 0) {
        reply_error(r, 400, "invalid", "msgId", "the path must be inbox/MSGID/confirm (32 hex)");
        return;
    }
    long i = daemon_held_find(dm, id);
    if (i < 0) {
        if (daemon_recently_confirmed(dm, id))
            reply_json(r, 200,
                       json_pack("{s:s,s:b,s:b}", "msgId", nhub_msg_id_hex(id, hex), "confirmed", 1,
                                 "already", 1));
        else
            reply_error(r, 404, "not_found", "msgId",
                        "no delivery %s is waiting here (unknown, or confirmed long ago)", hexid);
        return;
    }
    size_t idx = (size_t)i;
    int rc = daemon_confirm(dm, &idx, 1);
    if (rc != 0) {
        reply_error(r, 503, "unavailable", NULL, "not confirmed, try again: %s",
                    nhub_last_error(dm->h));
        return;
    }
    reply_json(r, 200,
               json_pack("{s:s,s:b,s:b}", "msgId", nhub_msg_id_hex(id, hex), "confirmed", 1,
                         "already", 0));
}

static void get_status(req_t *r)
{
    daemon_t *dm = r->api->dm;
    nhub_stats_t st;
    nhub_stats(dm->h, &st);
    size_t offered = 0, polls = 0;
    int64_t now = daemon_mono_ms();
    for (size_t i = 0; i < dm->n_held; i++)
        offered += !offerable(&dm->held[i], now) || dm->held[i].spooled;
    for (const req_t *p = r->api->parked; p; p = p->next)
        polls++;
    json_t *sent = json_pack("{s:I,s:I,s:I,s:I}", "submitted", (json_int_t)dm->submitted,
                             "duplicates", (json_int_t)dm->duplicates, "acked",
                             (json_int_t)st.acked, "rejected", (json_int_t)st.rejected);
    json_t *inbox = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "to", dm->spool_inbox ? "spool" : "api",
                              "held", (json_int_t)dm->n_held, "handedOut", (json_int_t)offered,
                              "received", (json_int_t)dm->received, "confirmed",
                              (json_int_t)dm->confirmed, "longPolls", (json_int_t)polls);
    track_counts_t tc;
    track_counts(dm->track, &tc);
    json_t *track = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "records", (json_int_t)tc.records,
                              "marks", (json_int_t)tc.marks, "pruned", (json_int_t)tc.pruned,
                              "writeFailures", (json_int_t)tc.write_failed, "full",
                              (json_int_t)tc.full, "madeRoom", (json_int_t)tc.emergency);
    json_t *o =
        json_pack("{s:s,s:s,s:b,s:s,s:I,s:o,s:o,s:o}", "region", dm->cfg->adapter.region, "link",
                  nhub_link_name(st.link), "connected", st.connected, "linkError", st.link_error,
                  "outbox", (json_int_t)st.outbox, "sent", sent, "inbox", inbox, "track", track);
    reply_json(r, 200, o);
}

/* ---- routing --------------------------------------------------------------- */

static int authorised(api_t *a, struct MHD_Connection *c)
{
    const char *want = a->dm->cfg->api_token;
    if (!want[0])
        return 1;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return 0;
    const char *given = auth + 7;
    size_t n = strlen(given);
    return n == strlen(want) && CRYPTO_memcmp(given, want, n) == 0;
}

/* Route a complete request. Returns 1 if answered, 0 if it waits (a parked long-poll). */
static int route(req_t *r, int final)
{
    const char *path = r->url;
    int get = !strcmp(r->method, "GET"), post = !strcmp(r->method, "POST");
    if (!authorised(r->api, r->conn)) {
        log_warn("adapterd.token_refused", "method=%s", get ? "GET" : post ? "POST" : "other");
        reply_error(r, 401, "unauthorized", NULL,
                    "a valid token is needed: Authorization: Bearer TOKEN (api.token_file)");
        return 1;
    }
    if (r->too_large) {
        reply_error(r, 413, "too_large", NULL, "the body exceeds api.body_max (%llu bytes)",
                    (unsigned long long)r->api->dm->cfg->api.body_max);
        return 1;
    }
    if (strncmp(path, API_PREFIX, strlen(API_PREFIX)) != 0) {
        reply_error(r, 404, "not_found", NULL, "no such resource; the API is under " API_PREFIX);
        return 1;
    }
    path += strlen(API_PREFIX);
    const char *want = NULL; /* the method the path takes, if the one given is wrong */
    if (!strcmp(path, "messages")) {
        if (post)
            return post_message(r);
        want = "POST";
    } else if (!strcmp(path, "messages:batch")) {
        if (post) {
            post_batch(r);
            return 1;
        }
        want = "POST";
    } else if (!strncmp(path, "messages/", 9)) {
        if (get) {
            get_message(r, path + 9);
            return 1;
        }
        want = "GET";
    } else if (!strcmp(path, "inbox")) {
        if (get)
            return get_inbox(r, final);
        want = "GET";
    } else if (!strncmp(path, "inbox/", 6) && strlen(path) == 6 + 32 + 8 &&
               !strcmp(path + 6 + 32, "/confirm")) {
        char hex[33];
        memcpy(hex, path + 6, 32);
        hex[32] = 0;
        if (post) {
            post_confirm(r, hex);
            return 1;
        }
        want = "POST";
    } else if (!strcmp(path, "status")) {
        if (get) {
            get_status(r);
            return 1;
        }
        want = "GET";
    }
    if (want)
        reply_error(r, 405, "method_not_allowed", NULL, "%s %s" API_PREFIX "%s takes %s", r->method,
                    "", path, want);
    else
        reply_error(r, 404, "not_found", NULL, "no such resource: " API_PREFIX "%s", path);
    return 1;
}

static void park(req_t *r)
{
    api_t *a = r->api;
    r->parked = 1;
    r->parked_once = 1;
    r->prev = NULL;
    r->next = a->parked;
    if (a->parked)
        a->parked->prev = r;
    a->parked = r;
    MHD_suspend_connection(r->conn);
}

static void unpark(req_t *r)
{
    api_t *a = r->api;
    if (!r->parked)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        a->parked = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    r->parked = 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    api_t *a = cls;
    req_t *r = *con_cls;
    if (!r) {
        if (!(r = calloc(1, sizeof *r)))
            return MHD_NO;
        r->api = a;
        r->conn = conn;
        r->method = method;
        r->url = url;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (!authorised(a, conn)) {
            free(r->body); /* read and dropped: answered 401 at the end, whatever came */
            r->body = NULL;
            r->body_len = 0;
            return MHD_YES;
        }
        if (r->too_large || r->body_len + n > a->dm->cfg->api.body_max) {
            r->too_large = 1; /* read and dropped; answered 413 at the end */
            free(r->body);
            r->body = NULL;
            r->body_len = 0;
            return MHD_YES;
        }
        char *b = realloc(r->body, r->body_len + n + 1);
        if (!b)
            return MHD_NO;
        memcpy(b + r->body_len, upload, n);
        r->body = b;
        r->body_len += n;
        b[r->body_len] = 0;
        return MHD_YES;
    }
    if (r->response == (struct MHD_Response *)1)
        return MHD_YES; /* answered already */
    if (r->response)
        goto queue; /* a submission answered by flush_pending, resumed */
    unpark(r);
    if (!route(r, a->closing)) {
        if (r->pending)
            MHD_suspend_connection(conn);
        else
            park(r);
        return MHD_YES;
    }
    if (!r->response)
        reply_error(r, 500, "internal", NULL, "no answer was made");
    if (!r->response)
        return MHD_NO;
queue:;
    enum MHD_Result ok = MHD_queue_response(conn, r->status, r->response);
    MHD_destroy_response(r->response);
    r->response = (struct MHD_Response *)1; /* queued; a marker from here on */
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)conn;
    (void)why;
    req_t *r = *con_cls;
    if (!r)
        return;
    unpark(r);
    drop_pending(r);
    if (r->response && r->response != (struct MHD_Response *)1)
        MHD_destroy_response(r->response);
    free(r->body);
    free(r);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char text[256], q[300];
    vsnprintf(text, sizeof text, fmt, ap);
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = 0;
    log_warn("adapterd.http_error", "detail=%s", log_quote(q, sizeof q, text));
}

/* ---- lifecycle ------------------------------------------------------------- */

int api_new(daemon_t *dm, api_t **out, char *err, size_t errcap)
{
    *out = NULL;
    api_t *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errcap, "out of memory");
        return NHUB_ENOMEM;
    }
    a->dm = dm;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(dm->cfg->api_port);
    sa.sin_addr.s_addr = htonl(dm->cfg->api_addr);
    a->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL,
                            NULL, on_request, a, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_CONNECTIONS_MAX,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_IDLE_TIMEOUT_S,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, a, MHD_OPTION_END);
    if (!a->d) {
        snprintf(err, errcap, "api.listen: cannot listen on %s (address in use?)",
                 dm->cfg->api.listen);
        free(a);
        return NHUB_EIO;
    }
    const union MHD_DaemonInfo *port = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT);
    char addr[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof addr);
    snprintf(a->url, sizeof a->url, "http://%s:%u", addr,
             port ? (unsigned)port->port : (unsigned)dm->cfg->api_port);
    if ((dm->cfg->api_addr >> 24) != 127)
        log_warn("adapterd.api_not_loopback",
                 "listen=%s detail=\"the API is reachable from other machines\"",
                 dm->cfg->api.listen);
    *out = a;
    return 0;
}

static void resume_all(api_t *a)
{
    for (req_t *r = a->parked; r; r = r->next) {
        MHD_resume_connection(r->conn);
        a->resumed = 1;
    }
    /* Each is unparked by the access handler when it runs again. */
}

void api_destroy(api_t **self)
{
    api_t *a = self ? *self : NULL;
    if (!a)
        return;
    a->closing = 1;
    flush_pending(a);
    resume_all(a);
    MHD_run(a->d); /* the resumed polls are answered (empty) */
    MHD_stop_daemon(a->d);
    free(a);
    *self = NULL;
}

const char *api_url(const api_t *self)
{
    return self->url;
}

int api_fd(const api_t *self)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(self->d, MHD_DAEMON_INFO_EPOLL_FD);
    return i ? i->epoll_fd : -1;
}

int64_t api_timeout_ms(const api_t *self)
{
    if (self->resumed)
        return 0;
    int64_t t = -1;
    MHD_UNSIGNED_LONG_LONG mt;
    if (MHD_get_timeout(self->d, &mt) == MHD_YES)
        t = mt > INT32_MAX ? INT32_MAX : (int64_t)mt;
    int64_t now = daemon_mono_ms();
    for (const req_t *r = self->parked; r; r = r->next) {
        int64_t left = r->deadline > now ? r->deadline - now : 0;
        if (t < 0 || left < t)
            t = left;
    }
    return t;
}

void api_run(api_t *self)
{
    if (self->parked) {
        int64_t now = daemon_mono_ms();
        int wake = any_offerable(self->dm, now);
        for (req_t *r = self->parked; r && !wake; r = r->next)
            wake = now >= r->deadline;
        if (wake)
            resume_all(self);
    }
    self->resumed = 0;
    MHD_run(self->d);
    if (self->n_pending) {
        flush_pending(self);
        MHD_run(self->d); /* the answers go out in this turn */
    }
}
