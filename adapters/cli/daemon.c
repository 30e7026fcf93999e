/*
 * daemon.c: `nhub-adapter run`: start-up, the loop, submissions, the
 * deliveries held for the platform, and what the hub's answers tell about
 * the messages submitted here (see daemon.h).
 */
#include "daemon.h"

#include "api.h"
#include "ids.h"
#include "log.h"
#include "nhub/common/v1/common.pb-c.h"
#include "nhub_err.h"
#include "payload.h"
#include "spool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DAEMON_TURN_MAX_MS 1000   /* longest wait of one turn */
#define DAEMON_PRUNE_SCAN 1024    /* records looked at per database in one pruning step */
#define DAEMON_PRUNE_MAX 256      /* records deleted in one step: a turn stays short */
#define DAEMON_PRUNE_IDLE_MS 1000 /* after a round with nothing left: the next one */
#define DAEMON_PRUNE_NEXT_MS 10   /* within a round: a large store is walked in the background */
#define CASE_EVENT_REMINDER 1     /* nhub.case.v1.Event */
#define CASE_EVENT_OVERDUE 2
#define CASE_EVENT_EXPIRED 3

int64_t daemon_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t daemon_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- what the hub answers -------------------------------------------------- */

static void on_ack(void *arg, const uint8_t id[NHUB_MSG_ID_LEN])
{
    daemon_t *dm = arg;
    track_sent_t t;
    if (track_sent_get(dm->track, id, &t) != 0)
        memset(&t, 0, sizeof t); /* ACKed before its record was written: kept for it */
    if (t.state == TRACK_REJECTED)
        return;
    t.state = TRACK_ACKED;
    t.settled_ms = daemon_wall_ms();
    track_sent_put(dm->track, id, &t);
}

static void on_reject(void *arg, const uint8_t id[NHUB_MSG_ID_LEN], int code, const char *text)
{
    daemon_t *dm = arg;
    char hex[33], q[400];
    track_sent_t t;
    if (track_sent_get(dm->track, id, &t) != 0)
        memset(&t, 0, sizeof t);
    t.state = TRACK_REJECTED;
    t.code = code;
    snprintf(t.text, sizeof t.text, "%s", text);
    t.settled_ms = daemon_wall_ms();
    track_sent_put(dm->track, id, &t);
    log_warn("adapterd.rejected", "msg_id=%s code=%d reason=%s", nhub_msg_id_hex(id, hex), code,
             log_quote(q, sizeof q, text));
    if (t.file[0] && dm->spool)
        spool_on_rejected(dm->spool, t.file, id, code, text);
}

/* 1 if answer `d` closes its case: a response, or a feedback at stage done or refused. */
static int answer_closes(const nhub_delivery_t *d)
{
    if (d->kind == NHUB_KIND_RESPONSE)
        return 1;
    ProtobufCMessage *m = NULL;
    const ProtobufCMessageDescriptor *desc = payload_find(d->payload_type);
    int stage = -1;
    if (desc && payload_decode(desc, d->payload, d->payload_len, &m) == 0)
        stage = payload_enum_field(m, 1); /* the catalogue makes field 1 a feedback's stage */
    payload_free(&m);
    return stage == NHUB__COMMON__V1__STAGE__STAGE_DONE ||
           stage == NHUB__COMMON__V1__STAGE__STAGE_REFUSED;
}

/* A delivery naming one of our requests or pushes: an answer, or the hub's notice. */
static void note_case(daemon_t *dm, const nhub_delivery_t *d)
{
    track_sent_t t;
    if (d->correlation_len != NHUB_MSG_ID_LEN ||
        track_sent_get(dm->track, d->correlation_id, &t) != 0 ||
        (t.kind != NHUB_KIND_REQUEST && t.kind != NHUB_KIND_PUSH))
        return;
    int64_t when = d->created_ms ? d->created_ms : daemon_wall_ms();
    if (!strcmp(d->payload_type, "nhub.case.v1.CaseNotice")) {
        ProtobufCMessage *n = NULL;
        const ProtobufCMessageDescriptor *desc = payload_find(d->payload_type);
        int ev = -1;
        if (desc && payload_decode(desc, d->payload, d->payload_len, &n) == 0)
            ev = payload_enum_field(n, 1);
        payload_free(&n);
        int64_t *slot = ev == CASE_EVENT_REMINDER  ? &t.reminder_ms
                        : ev == CASE_EVENT_OVERDUE ? &t.overdue_ms
                        : ev == CASE_EVENT_EXPIRED ? &t.expired_ms
                                                   : NULL;
        if (!slot || *slot)
            return;
        *slot = when;
        if (ev == CASE_EVENT_EXPIRED && !t.closed_ms)
            t.closed_ms = when;
    } else if (d->kind == NHUB_KIND_RESPONSE || d->kind == NHUB_KIND_FEEDBACK) {
        if (t.answers && !memcmp(t.answer_id, d->msg_id, NHUB_MSG_ID_LEN))
            return; /* a redelivery of the latest */
        if (!t.closed_ms && answer_closes(d))
            t.closed_ms = when;
        t.answers++;
        memcpy(t.answer_id, d->msg_id, NHUB_MSG_ID_LEN);
        t.answer_kind = d->kind;
        snprintf(t.answer_type, sizeof t.answer_type, "%s", d->payload_type);
        snprintf(t.answer_source, sizeof t.answer_source, "%s", d->source);
        t.answer_ms = when;
    } else {
        return;
    }
    track_sent_put(dm->track, d->correlation_id, &t);
}

/* ---- submissions ----------------------------------------------------------- */

/* The msgId of s: its own, s->id_in, or a new one. 0 or NHUB_EIO. */
static int sub_choose_id(daemon_sub_t *s)
{
    if (s->m->has_msg_id)
        memcpy(s->id, s->m->msg_id, NHUB_MSG_ID_LEN);
    else if (s->id_in)
        memcpy(s->id, s->id_in, NHUB_MSG_ID_LEN);
    else if (ids_msg_id(s->id, daemon_wall_ms()) != 0) {
        snprintf(s->err, sizeof s->err, "no random bytes for a msgId");
        return NHUB_EIO;
    }
    return 0;
}

/* A msgId seen before with `digest`: a duplicate if the content is the same, else NHUB_EEXIST. */
static int sub_seen(daemon_t *self, daemon_sub_t *s, const uint8_t digest[32])
{
    char hex[33];
    if (memcmp(digest, s->m->digest, 32) != 0) {
        snprintf(s->err, sizeof s->err, "msgId %s was submitted before with other content",
                 nhub_msg_id_hex(s->id, hex));
        return NHUB_EEXIST;
    }
    s->dup = 1;
    self->duplicates++;
    return 0;
}

/* s is in libnhub's outbox: its record. */
static void sub_record(daemon_t *self, const daemon_sub_t *s)
{
    char hex[33];
    const msgjson_t *m = s->m;
    track_sent_t t;
    self->submitted++;
    /* An ACK may have come while nhub_send served the connection. */
    if (track_sent_get(self->track, s->id, &t) != 0)
        memset(&t, 0, sizeof t);
    if (!t.state)
        t.state = TRACK_QUEUED;
    t.kind = m->kind;
    snprintf(t.to, sizeof t.to, "%s", m->to);
    snprintf(t.item, sizeof t.item, "%s", m->item);
    snprintf(t.type, sizeof t.type, "%s", m->type);
    snprintf(t.file, sizeof t.file, "%s", s->file ? s->file : "");
    memcpy(t.digest, m->digest, sizeof t.digest);
    t.submitted_ms = daemon_wall_ms();
    /* A failure (counted and logged by track.c) loses the record, not the message: it is in
     * the outbox; a resubmission is then dropped by the hub's dedup_window instead. */
    track_sent_put(self->track, s->id, &t);
    log_debug("adapterd.submitted", "msg_id=%s to=%s item=%s", nhub_msg_id_hex(s->id, hex), m->to,
              m->item);
}

/* The new ones, msgs[j] for s[which[j]], one nhub_send each (see daemon_submit_batch). */
static void sub_send_each(daemon_t *self, daemon_sub_t *s, const nhub_message_t *msgs,
                          const size_t *which, size_t k)
{
    int stop = 0;
    for (size_t j = 0; j < k; j++) {
        daemon_sub_t *x = &s[which[j]];
        int rc = stop ? stop : nhub_send(self->h, &msgs[j], NULL);
        if (rc == 0) {
            sub_record(self, x);
            continue;
        }
        x->rc = rc;
        if (!stop)
            snprintf(x->err, sizeof x->err, "%s", nhub_last_error(self->h));
        else
            snprintf(x->err, sizeof x->err, "not tried after an earlier error: %s",
                     nhub_strerror(rc));
        if (rc != NHUB_EINVAL && rc != NHUB_ETOOBIG)
            stop = rc; /* the store's trouble, not the message's: keep the order, try later */
    }
}

void daemon_submit_batch(daemon_t *self, daemon_sub_t *s, size_t n)
{
    nhub_message_t *msgs = calloc(n ? n : 1, sizeof *msgs);
    size_t *which = calloc(n ? n : 1, sizeof *which);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        daemon_sub_t *x = &s[i];
        track_sent_t t;
        x->dup = 0;
        x->err[0] = 0;
        if ((x->rc = sub_choose_id(x)) != 0)
            continue;
        if (track_sent_get(self->track, x->id, &t) == 0 && t.kind) {
            x->rc = sub_seen(self, x, t.digest);
            continue;
        }
        size_t j = 0; /* the same msgId earlier in this batch */
        while (j < k && memcmp(s[which[j]].id, x->id, NHUB_MSG_ID_LEN) != 0)
            j++;
        if (j < k) {
            x->rc = sub_seen(self, x, s[which[j]].m->digest);
            continue;
        }
        if (!msgs || !which) {
            x->rc = NHUB_ENOMEM;
            snprintf(x->err, sizeof x->err, "out of memory");
            continue;
        }
        msgjson_message(x->m, &msgs[k]);
        msgs[k].msg_id = x->id;
        which[k++] = i;
    }
    if (k > 1 && nhub_send_batch(self->h, msgs, k, NULL) == 0) {
        for (size_t j = 0; j < k; j++)
            sub_record(self, &s[which[j]]);
    } else if (k) {
        sub_send_each(self, s, msgs, which, k);
    }
    free(msgs);
    free(which);
}

int daemon_submit(daemon_t *self, const msgjson_t *m, const uint8_t *id_in, const char *file,
                  uint8_t id_out[NHUB_MSG_ID_LEN], int *dup, char *err, size_t errcap)
{
    daemon_sub_t s = {.m = m, .id_in = id_in, .file = file};
    daemon_submit_batch(self, &s, 1);
    memcpy(id_out, s.id, NHUB_MSG_ID_LEN);
    *dup = s.dup;
    if (s.rc != 0)
        snprintf(err, errcap, "%s", s.err);
    return s.rc;
}

/* ---- held deliveries ------------------------------------------------------- */

long daemon_held_find(const daemon_t *self, const uint8_t id[NHUB_MSG_ID_LEN])
{
    for (size_t i = 0; i < self->n_held; i++)
        if (!memcmp(self->held[i].d->msg_id, id, NHUB_MSG_ID_LEN))
            return (long)i;
    return -1;
}

int daemon_recently_confirmed(const daemon_t *self, const uint8_t id[NHUB_MSG_ID_LEN])
{
    for (size_t i = 0; i < self->n_recent; i++)
        if (!memcmp(self->recent[i], id, NHUB_MSG_ID_LEN))
            return 1;
    return 0;
}

static int idx_desc(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int daemon_confirm(daemon_t *self, const size_t *idx, size_t n)
{
    if (!n)
        return 0;
    nhub_delivery_t **ds = calloc(n, sizeof *ds);
    size_t *order = calloc(n, sizeof *order);
    int rc = NHUB_ENOMEM;
    if (!ds || !order)
        goto done;
    for (size_t i = 0; i < n; i++)
        ds[i] = self->held[idx[i]].d;
    uint8_t(*ids)[NHUB_MSG_ID_LEN] = malloc(n * sizeof *ids);
    if (!ids)
        goto done;
    for (size_t i = 0; i < n; i++)
        memcpy(ids[i], ds[i]->msg_id, NHUB_MSG_ID_LEN);
    rc = nhub_confirm_batch(self->h, ds, n);
    if (rc == 0) {
        char hex[33];
        for (size_t i = 0; i < n; i++) {
            memcpy(self->recent[self->recent_head], ids[i], NHUB_MSG_ID_LEN);
            self->recent_head = (self->recent_head + 1) % DAEMON_RECENT_MAX;
            if (self->n_recent < DAEMON_RECENT_MAX)
                self->n_recent++;
            log_debug("adapterd.confirmed", "msg_id=%s", nhub_msg_id_hex(ids[i], hex));
        }
        /* Remove from the highest index down, so the lower ones stay put. */
        memcpy(order, idx, n * sizeof *order);
        qsort(order, n, sizeof *order, idx_desc);
        for (size_t i = 0; i < n; i++) {
            self->held[order[i]] = self->held[--self->n_held];
        }
        self->confirmed += n;
    } else {
        log_error("adapterd.confirm_failed", "n=%zu error=%s", n, nhub_last_error(self->h));
    }
    free(ids);
done:
    free(ds);
    free(order);
    return rc;
}

/* Take what libnhub has ready: each a new held delivery (a repeat replaces nothing). */
static void take_deliveries(daemon_t *dm)
{
    nhub_delivery_t *d = NULL;
    while (nhub_recv(dm->h, &d, 0) == 0) {
        if (dm->n_held == dm->cap_held) {
            size_t cap = dm->cap_held ? dm->cap_held * 2 : 64;
            held_t *p = realloc(dm->held, cap * sizeof *p);
            if (!p) {
                nhub_delivery_release(dm->h, &d); /* the hub delivers it again */
                return;
            }
            dm->held = p;
            dm->cap_held = cap;
        }
        dm->received++;
        note_case(dm, d);
        held_t *h = &dm->held[dm->n_held++];
        *h = (held_t){.d = d};
        if (dm->spool_inbox)
            spool_deliver(dm->spool, h);
        d = NULL;
    }
}

/* ---- the loop -------------------------------------------------------------- */

static int start_fail(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "nhub-adapter: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return 1;
}

/* nhub_open with SIGINT/SIGTERM blocked, so ZeroMQ's threads leave them to this one. */
static int open_hub(daemon_t *dm, const char *cfg_path)
{
    nhub_options_t opt;
    char err[512] = "";
    adapter_cfg_options(dm->cfg, &opt);
    opt.on_ack = on_ack;
    opt.on_ack_arg = dm;
    opt.on_reject = on_reject;
    opt.on_reject_arg = dm;
    /* No consumer of deliveries configured: leave them to the region's receiving adapter. */
    opt.send_only = !dm->cfg->api.listen[0] && !dm->spool_inbox;
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = nhub_open(&opt, &dm->h, err, sizeof err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return start_fail("%s: %s", cfg_path, err[0] ? err : nhub_strerror(rc));
    return 0;
}

/* A spool mark is spent once its delivery is neither held nor in inbox/ (track_policy_t). */
static int mark_spent(void *arg, const uint8_t id[NHUB_MSG_ID_LEN])
{
    daemon_t *dm = arg;
    return daemon_held_find(dm, id) < 0 && (!dm->spool || !spool_in_inbox(dm->spool, id));
}

/* One bounded pruning step of the daemon's record when it is due (track.h). */
static void prune(daemon_t *dm)
{
    int64_t now = daemon_mono_ms();
    if (now < dm->prune_due)
        return;
    int rc = track_prune(dm->track, daemon_wall_ms(), DAEMON_PRUNE_SCAN, DAEMON_PRUNE_MAX, NULL);
    /* A backlog is worked off turn after turn; a walk with nothing to delete takes its time. */
    dm->prune_due = rc == TRACK_PRUNE_BACKLOG ? now
                    : rc == TRACK_PRUNE_MORE  ? now + DAEMON_PRUNE_NEXT_MS
                                              : now + DAEMON_PRUNE_IDLE_MS;
}

static void loop(daemon_t *dm)
{
    while (!*dm->stop) {
        int fds[2], n = 0;
        int64_t wait = dm->prune_due - daemon_mono_ms();
        if (wait > DAEMON_TURN_MAX_MS)
            wait = DAEMON_TURN_MAX_MS;
        if (wait < 0)
            wait = 0;
        if (dm->api) {
            fds[n++] = api_fd(dm->api);
            int64_t t = api_timeout_ms(dm->api);
            if (t >= 0 && t < wait)
                wait = t;
        }
        if (dm->spool) {
            if (spool_fd(dm->spool) >= 0)
                fds[n++] = spool_fd(dm->spool);
            int64_t t = spool_timeout_ms(dm->spool);
            if (t < wait)
                wait = t;
        }
        int rc = nhub_pump_fds(dm->h, fds, (size_t)n, (int)wait);
        if (rc != 0 && rc != NHUB_ECLOSED) {
            log_error("adapterd.serve_failed", "error=%s", nhub_last_error(dm->h));
            struct timespec ts = {0, 100 * 1000000L}; /* do not spin on a broken socket */
            nanosleep(&ts, NULL);
        }
        if (*dm->stop)
            break;
        take_deliveries(dm);
        if (dm->api)
            api_run(dm->api);
        if (dm->spool)
            spool_run(dm->spool);
        prune(dm);
        track_commit(dm->track); /* a failure is counted and logged by track.c */
    }
}

int daemon_run(adapter_cfg_t *cfg, const char *cfg_path, int ready_fd, volatile sig_atomic_t *stop)
{
    daemon_t *dm = calloc(1, sizeof *dm);
    char err[600], dir[1200];
    int ret = 1;
    if (!dm)
        return start_fail("%s%s", "out of memory", "");
    dm->cfg = cfg;
    dm->stop = stop;
    dm->spool_inbox = cfg->spool.inbox;
    if (!cfg->api.listen[0] && !cfg->spool.dir[0]) {
        start_fail("%s: nothing to serve: give api.listen, spool.dir or both%s", cfg_path, "");
        goto done;
    }
    if (open_hub(dm, cfg_path) != 0)
        goto done;
    snprintf(dir, sizeof dir, "%s/adapterd", cfg->adapter.data_dir);
    if (track_open(dir, cfg->track.map_size_max, &dm->track, err, sizeof err) != 0) {
        start_fail("%s: %s", cfg_path, err);
        goto done;
    }
    track_policy_t policy = {.retention_ms = cfg->track.retention_ms,
                             .max_age_ms = cfg->track.max_age_ms,
                             .mark_spent = mark_spent,
                             .arg = dm};
    track_set_policy(dm->track, &policy);
    if (cfg->spool.dir[0] && spool_new(dm, &dm->spool, err, sizeof err) != 0) {
        start_fail("%s: %s", cfg_path, err);
        goto done;
    }
    if (cfg->api.listen[0] && api_new(dm, &dm->api, err, sizeof err) != 0) {
        start_fail("%s: %s", cfg_path, err);
        goto done;
    }
    log_info("adapterd.ready", "region=%s api=%s spool=%s inbox=%s", cfg->adapter.region,
             dm->api ? api_url(dm->api) : "-", cfg->spool.dir[0] ? cfg->spool.dir : "-",
             dm->spool_inbox ? "spool"
             : dm->api       ? "api"
                             : "none");
    if (ready_fd >= 0) {
        char line[160];
        int len = snprintf(line, sizeof line, "ready %s\n", dm->api ? api_url(dm->api) : "-");
        if (write(ready_fd, line, (size_t)len) != len)
            log_warn("adapterd.ready_fd", "error=%s", strerror(errno));
        close(ready_fd);
    }
    loop(dm);
    ret = 0;
    log_info("adapterd.stopped", "submitted=%llu received=%llu confirmed=%llu held=%zu",
             (unsigned long long)dm->submitted, (unsigned long long)dm->received,
             (unsigned long long)dm->confirmed, dm->n_held);
done:
    api_destroy(&dm->api);
    spool_destroy(&dm->spool);
    for (size_t i = 0; i < dm->n_held; i++)
        nhub_delivery_release(dm->h, &dm->held[i].d); /* not confirmed: the hub keeps them */
    free(dm->held);
    track_close(&dm->track);
    nhub_close(&dm->h);
    free(dm);
    return ret;
}
