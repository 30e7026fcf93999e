/*
 * hub.c: the hub loop (see hub.h for the shape of one turn).
 *
 * Why one thread: the store has one writer by design, the fsync of a commit
 * is the only slow step, and while it runs ZeroMQ keeps receiving into its
 * queues on its own I/O thread, so the next turn drains everything that
 * arrived meanwhile into the next transaction. That is group commit without
 * locks. Everything a turn stages is replayable: if the map turns out to be
 * full, the transaction is aborted, the map grown, and the same stage
 * applied again; RAM state changes only after a commit succeeded.
 *
 * Nothing here logs payload contents: msg_ids as hex, region and item codes,
 * counts and reasons only.
 */
#include "hub_internal.h"

int hub_region_lookup(const hub_t *h, const char *code)
{
    return cfg_region_index(h->cfg, code);
}

/* ---- housekeeping -------------------------------------------------------------- */

struct expiry {
    hub_t *h;
    int64_t before;
};

static int expire_session(void *arg, session_t *s)
{
    struct expiry *e = arg;
    if (s->last_seen_ms < e->before)
        deliver_session_close(e->h, s, "peer_timeout");
    return 0;
}

static void log_stats(hub_t *h)
{
    const hub_counters_t *n = &h->n;
    if (n->commits == h->stats_commits_seen)
        return;
    h->stats_commits_seen = n->commits;
    log_info("hub.stats",
             "accepted=%llu duplicates=%llu rejected=%llu dropped=%llu replies_dropped=%llu "
             "delivered=%llu "
             "redelivered=%llu confirmed=%llu held=%llu released=%llu translated=%llu "
             "translated_lossy=%llu commits=%llu mean_batch=%.1f sessions=%zu map_size=%llu",
             (unsigned long long)n->accepted, (unsigned long long)n->duplicates,
             (unsigned long long)n->rejected, (unsigned long long)n->dropped,
             (unsigned long long)n->replies_dropped, (unsigned long long)n->delivered,
             (unsigned long long)n->redelivered, (unsigned long long)n->confirmed,
             (unsigned long long)n->held, (unsigned long long)n->released,
             (unsigned long long)n->translated, (unsigned long long)n->translated_lossy,
             (unsigned long long)n->commits,
             n->commits ? (double)n->committed_items / (double)n->commits : 0.0,
             session_count(h->sessions), (unsigned long long)store_map_size(h->store));
    log_info("hub.case_stats",
             "opened=%" PRIu64 " delivered=%" PRIu64 " reminded=%" PRIu64 " overdue=%" PRIu64
             " answered=%" PRIu64 " refused=%" PRIu64 " expired=%" PRIu64 " notices=%" PRIu64,
             n->cases_opened, n->cases_delivered, n->cases_reminded, n->cases_overdue,
             n->cases_answered, n->cases_refused, n->cases_expired, n->hub_messages);
    const uint64_t *k = n->nacked;
    log_info("hub.payload_stats",
             "payload_unknown=%" PRIu64 " payload_not_allowed=%" PRIu64
             " payload_malformed=%" PRIu64 " payload_invalid=%" PRIu64,
             k[NHUB__WIRE__V1__NACK_CODE__NACK_PAYLOAD_UNKNOWN],
             k[NHUB__WIRE__V1__NACK_CODE__NACK_PAYLOAD_NOT_ALLOWED],
             k[NHUB__WIRE__V1__NACK_CODE__NACK_PAYLOAD_MALFORMED],
             k[NHUB__WIRE__V1__NACK_CODE__NACK_PAYLOAD_INVALID]);
}

/* The security counters, one line; tests and operators read it. */
static void log_security(const hub_t *h)
{
    const hub_counters_t *n = &h->n;
    const uint64_t *k = n->nacked;
    log_info("hub.security_stats",
             "auth_refused=%" PRIu64 " handshake_failed=%" PRIu64 " identity_refused=%" PRIu64
             " source_mismatch=%" PRIu64 " unsigned=%" PRIu64 " bad_signature=%" PRIu64
             " forbidden=%" PRIu64 " suspended=%" PRIu64 " unauthenticated=%" PRIu64
             " security_events=%" PRIu64,
             n->auth_refused, n->handshake_failed, n->identity_refused,
             k[NHUB__WIRE__V1__NACK_CODE__NACK_SOURCE_MISMATCH],
             k[NHUB__WIRE__V1__NACK_CODE__NACK_UNSIGNED],
             k[NHUB__WIRE__V1__NACK_CODE__NACK_BAD_SIGNATURE],
             k[NHUB__WIRE__V1__NACK_CODE__NACK_FORBIDDEN],
             k[NHUB__WIRE__V1__NACK_CODE__NACK_SUSPENDED],
             k[NHUB__WIRE__V1__NACK_CODE__NACK_UNAUTHENTICATED], n->security_events);
}

/* The store's use (free pages left out when near the limit), its limit
 * and the reserve kept for confirmations. 0 or -1. */
static int space(hub_t *h, uint64_t *used, uint64_t *limit, uint64_t *reserve, uint64_t *disk_free,
                 uint64_t *disk_reserve)
{
    uint64_t disk_size;
    if (store_usage(h->store, used, limit, disk_free, &disk_size) != 0)
        return -1;
    *reserve = *limit / 10 < HUB_RESERVE_MAX ? *limit / 10 : HUB_RESERVE_MAX;
    *disk_reserve = disk_size / 20 < HUB_RESERVE_MAX ? disk_size / 20 : HUB_RESERVE_MAX;
    if (*used + *reserve > *limit) {
        uint64_t reusable = store_free_bytes(h->store);
        *used = reusable < *used ? *used - reusable : 0;
    }
    return 0;
}

int hub_room_for(hub_t *h, uint64_t bytes)
{
    uint64_t used, limit, reserve, disk_free, disk_reserve;
    if (space(h, &used, &limit, &reserve, &disk_free, &disk_reserve) != 0)
        return 1;
    if (bytes > h->stage_peak)
        h->stage_peak = bytes;
    return used + bytes + reserve <= limit;
}

/*
 * Refuse new messages while the store is within its reserve of the map
 * limit or of the disk's free space, and take them again, by itself, when
 * space returns (the limit is raised, or the disk has room again).
 */
void hub_check_space(hub_t *h)
{
    uint64_t used, limit, reserve, disk_free, disk_reserve;
    if (space(h, &used, &limit, &reserve, &disk_free, &disk_reserve) != 0)
        return;
    /* Room for the largest stage seen as well: the next one must not eat
     * into the reserve (hub_room_for, before each stage, says the same). */
    int map_full = used + reserve + h->stage_peak > limit;
    int disk_full = used < limit && disk_free < disk_reserve;
    int full = map_full || disk_full;
    if (full != h->full)
        log_warn(full ? "hub.store_full" : "hub.store_ok",
                 "reason=%s used=%llu limit=%llu disk_free=%llu reserve=%llu",
                 map_full    ? "map_size_max"
                 : disk_full ? "disk"
                             : "none",
                 (unsigned long long)used, (unsigned long long)limit, (unsigned long long)disk_free,
                 (unsigned long long)reserve);
    h->full = full;
}

static void housekeeping(hub_t *h)
{
    int64_t now = hub_now_mono(h);
    if (now >= h->next_housekeeping) {
        hub_check_space(h);
        checkpoint_housekeeping(h);
        struct expiry e = {h, now - h->cfg->limits.peer_timeout_ms};
        session_foreach(h->sessions, expire_session, &e);
        h->next_housekeeping = now + HUB_HOUSEKEEPING_MS;
    }
    if (now >= h->next_stats) {
        if (h->n.security_events != h->stats_security_seen) {
            h->stats_security_seen = h->n.security_events;
            log_security(h);
        }
        log_stats(h);
        h->next_stats = now + HUB_STATS_MS;
    }
}

/* How long the loop may wait for frames before a timer needs it. */
static int poll_timeout(const hub_t *h)
{
    if (h->n_items || h->n_ready || h->deferred_total)
        return 0;
    int64_t now = hub_now_mono(h), next = h->next_housekeeping;
    for (size_t i = 0; i < h->n_regions; i++) {
        const struct hub_region *r = &h->regions[i];
        if (!r->delivery || !r->delivery->welcomed || hub_region_held_back(h, i))
            continue;
        if (r->blocked_until > now) {
            if (r->blocked_until < next)
                next = r->blocked_until;
            continue;
        }
        int64_t rate_next = deliver_rate_next(h, r);
        if (rate_next > now) {
            if (rate_next < next)
                next = rate_next;
            continue;
        }
        if (r->pending && dispatch_room(r->window) > 0)
            return 0;
        int64_t due = dispatch_next_due(r->window);
        if (due < next)
            next = due;
    }
    if (retention_busy(h))
        return 0;
    if (h->http && h->next_tick < next)
        next = h->next_tick;
    int64_t wait = next - now;
    if (h->http) {
        int64_t t = http_timeout_ms(h->http);
        if (t >= 0 && t < wait)
            wait = t;
    }
    if (h->cases_next_ms != INT64_MAX) {
        int64_t wall = clock_wall_ms(h->clock);
        int64_t until = h->cases_next_ms > wall ? h->cases_next_ms - wall : 0;
        if (until < wait)
            wait = until;
    }
    return wait < 0 ? 0 : wait > 1000 ? 1000 : (int)wait;
}

/* ---- lifecycle -------------------------------------------------------------------- */

int hub_txn(hub_t *h, int (*fn)(hub_t *h, store_txn_t *t, void *arg), void *arg)
{
    for (;;) {
        store_txn_t *t = NULL;
        int rc = store_begin(h->store, &t);
        if (!rc)
            rc = fn(h, t, arg);
        if (!rc)
            rc = store_commit(&t);
        else
            store_abort(&t);
        if (rc == NHUB_EFULL && store_grow(h->store) == 0) {
            h->n.replays++;
            continue;
        }
        return rc;
    }
}

static int append_one(hub_t *h, store_txn_t *t, void *ev)
{
    uint64_t seq;
    return commit_journal_append(h, t, ev, &seq);
}

/* Journal one event in its own transaction. */
static int journal_event(hub_t *h, journal_event_t *ev)
{
    return hub_txn(h, append_one, ev);
}

static int opstate_read(hub_t *h, store_txn_t *t, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < h->n_regions; i++) {
        int rc = store_opstate_get(t, h->regions[i].code, &h->regions[i].op);
        if (rc)
            return rc;
    }
    return 0;
}

int hub_load_opstate(hub_t *h)
{
    int rc = hub_txn(h, opstate_read, NULL);
    for (size_t i = 0; i < h->n_regions; i++) {
        const struct hub_region *r = &h->regions[i];
        char q[200];
        if (r->op.suspended)
            log_warn("hub.region_suspended", "region=%s by=operator reason=%s", r->code,
                     log_quote(q, sizeof q, r->op.reason));
        if (r->op.paused)
            log_warn("hub.region_paused", "region=%s", r->code);
    }
    return rc;
}

/* Journal a hub-level event (start, stop, reload). */
static int journal_note(hub_t *h, int type, const char *reason)
{
    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = (Nhub__Journal__V1__EventType)type;
    ev.time_ms = clock_wall_ms(h->clock);
    ev.reason = (char *)reason;
    return journal_event(h, &ev);
}

/*
 * A refused handshake: counted always, logged and journaled at most once
 * per HUB_AUTH_JOURNAL_MS for each kind (0: refused by the ZAP handler, 1:
 * failed before it, 2: an authenticated connection acting beyond its
 * identity or key) so a peer retrying in a loop cannot fill the journal;
 * the record says how many of its kind went unjournaled before it. Only
 * the key's fingerprint and the peer's address are kept, never a key.
 */
void hub_security_event(hub_t *h, int kind, const char *fpr, const char *address,
                           const char *reason)
{
    int64_t now = hub_now_mono(h);
    h->n.security_events++;
    api_note_security(h, kind, fpr, address, reason);
    if (h->auth_journaled_at[kind] && now - h->auth_journaled_at[kind] < HUB_AUTH_JOURNAL_MS) {
        h->auth_unjournaled[kind]++;
        return;
    }
    char text[200], q[240], qa[160];
    snprintf(text, sizeof text, "%s (%" PRIu64 " earlier refusals not journaled)", reason,
             h->auth_unjournaled[kind]);
    log_warn("hub.auth_refused", "fingerprint=%s address=%s reason=%s", fpr && fpr[0] ? fpr : "-",
             log_quote(qa, sizeof qa, address ? address : "-"), log_quote(q, sizeof q, text));
    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_AUTH_REFUSED;
    ev.time_ms = clock_wall_ms(h->clock);
    ev.reason = text;
    ev.fingerprint = (char *)(fpr ? fpr : "");
    ev.address = (char *)(address ? address : "");
    if (journal_event(h, &ev) != 0)
        log_error("hub.journal_failed", "event=auth_refused");
    h->auth_journaled_at[kind] = now;
    h->auth_unjournaled[kind] = 0;
}

/*
 * Journal every change of a region's suspension since it was last recorded
 * (at start: changes made to the file while the hub was down), in one
 * transaction, and record the new state.
 */
static int sync_suspensions(hub_t *h)
{
    for (;;) {
        store_txn_t *t = NULL;
        int rc = store_begin(h->store, &t);
        for (size_t i = 0; !rc && i < h->cfg->region_count; i++) {
            const cfg_region_t *r = &h->cfg->regions[i];
            int was = 0;
            rc = store_suspended_get(t, r->code, &was);
            if (rc || was == (int)r->suspended)
                continue;
            journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
            ev.type = r->suspended ? NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_REGION_SUSPENDED
                                   : NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_REGION_RESUMED;
            ev.time_ms = clock_wall_ms(h->clock);
            ev.region = (char *)r->code;
            ev.reason = (char *)(r->suspended_reason[0] ? r->suspended_reason : "operator");
            uint64_t seq;
            rc = commit_journal_append(h, t, &ev, &seq);
            if (!rc)
                rc = store_suspended_put(t, r->code, r->suspended);
        }
        if (!rc)
            rc = store_commit(&t);
        else
            store_abort(&t);
        if (rc == NHUB_EFULL && store_grow(h->store) == 0) {
            h->n.replays++;
            continue;
        }
        if (rc)
            return rc;
        for (size_t i = 0; i < h->cfg->region_count; i++) {
            char q[200];
            const cfg_region_t *r = &h->cfg->regions[i];
            if (r->suspended)
                log_warn("hub.region_suspended", "region=%s reason=%s", r->code,
                         log_quote(q, sizeof q, r->suspended_reason));
        }
        return 0;
    }
}

/* The index of region `code` in the current table, or -1. */
static int old_region(const hub_t *h, const char *code)
{
    for (size_t j = 0; h->regions && j < h->n_regions; j++)
        if (h->regions[j].window && strcmp(h->regions[j].code, code) == 0)
            return (int)j;
    return -1;
}

/*
 * Build the region table for `cfg`. Live windows of regions that stay are
 * moved over, but only once every new window exists, so a failure leaves
 * the current table untouched.
 */
static int regions_build(hub_t *h, const cfg_t *cfg, struct hub_region **out)
{
    struct hub_region *r = calloc(cfg->region_count, sizeof *r);
    if (!r)
        return NHUB_ENOMEM;
    for (size_t i = 0; i < cfg->region_count; i++) {
        snprintf(r[i].code, sizeof r[i].code, "%s", cfg->regions[i].code);
        if (old_region(h, r[i].code) >= 0)
            continue;
        r[i].window = dispatch_new((uint32_t)cfg->limits.credit_max, cfg->limits.redeliver_after_ms,
                                   cfg->limits.redeliver_max_ms);
        if (!r[i].window) {
            for (size_t k = 0; k < i; k++)
                dispatch_destroy(&r[k].window);
            free(r);
            return NHUB_ENOMEM;
        }
    }
    for (size_t i = 0; i < cfg->region_count; i++) {
        int old = r[i].window ? -1 : old_region(h, r[i].code);
        if (old < 0)
            continue;
        r[i].window = h->regions[old].window;
        r[i].delivery = h->regions[old].delivery;
        r[i].st = h->regions[old].st;
        r[i].last_seen_ms = h->regions[old].last_seen_ms;
        r[i].pending = 1;
        h->regions[old].window = NULL;
        dispatch_set_timeouts(r[i].window, cfg->limits.redeliver_after_ms,
                              cfg->limits.redeliver_max_ms);
    }
    *out = r;
    return 0;
}

static void regions_free(struct hub_region **r, size_t n)
{
    if (!*r)
        return;
    for (size_t i = 0; i < n; i++)
        dispatch_destroy(&(*r)[i].window);
    free(*r);
    *r = NULL;
}

static int set_opt_int(void *sock, int opt, int v)
{
    return zmq_setsockopt(sock, opt, &v, sizeof v);
}

/*
 * Curve mode: the ZAP handler is bound before the router exists (a CURVE
 * server with no ZAP handler would accept any client key), then the router
 * is made a CURVE server with the hub's secret key, which is wiped from
 * memory as soon as libzmq has it.
 */
static int setup_curve(hub_t *h, char *err, size_t errcap)
{
    keys_file_t *k = NULL;
    char why[512];
    int rc = keys_load(h->cfg->security.key_file, &k, why, sizeof why);
    if (rc) {
        snprintf(err, errcap, "security.key_file: %s", why);
        return rc;
    }
    if (strcmp(k->region, h->cfg->hub.region) != 0) {
        snprintf(err, errcap, "security.key_file %s is the key of region %s, not of this hub (%s)",
                 h->cfg->security.key_file, k->region, h->cfg->hub.region);
        keys_free(&k);
        return NHUB_ECONFIG;
    }
    h->zap = zmq_socket(h->zctx, ZMQ_REP);
    h->monitor = zmq_socket(h->zctx, ZMQ_PAIR);
    if (!h->zap || zmq_bind(h->zap, HUB_ZAP_ENDPOINT) != 0 || !h->monitor ||
        set_opt_int(h->zap, ZMQ_LINGER, 0) || set_opt_int(h->monitor, ZMQ_LINGER, 0)) {
        snprintf(err, errcap, "cannot bind the ZAP handler: %s", zmq_strerror(zmq_errno()));
        keys_free(&k);
        return NHUB_EZMQ;
    }
    h->router = zmq_socket(h->zctx, ZMQ_ROUTER);
    rc = !h->router || set_opt_int(h->router, ZMQ_CURVE_SERVER, 1) ||
         zmq_setsockopt(h->router, ZMQ_CURVE_SECRETKEY, k->curve_secret, KEYS_Z85_LEN + 1) ||
         zmq_setsockopt(h->router, ZMQ_ZAP_DOMAIN, HUB_ZAP_DOMAIN, strlen(HUB_ZAP_DOMAIN)) ||
         zmq_socket_monitor(h->router, HUB_MONITOR_ENDPOINT,
                            ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) ||
         zmq_connect(h->monitor, HUB_MONITOR_ENDPOINT);
    log_info("hub.security", "mode=curve hub_key=%s", k->curve_fpr);
    keys_free(&k);
    if (rc) {
        snprintf(err, errcap, "cannot make the hub socket a CURVE server: %s",
                 zmq_strerror(zmq_errno()));
        return NHUB_EZMQ;
    }
    return 0;
}

/* The receive high-water mark of every peer (see HUB_PEER_QUEUE_BYTES). */
static int peer_queue_len(uint64_t max_frame)
{
    uint64_t n = HUB_PEER_QUEUE_BYTES / (max_frame + HUB_FRAME_SLACK);
    return n < HUB_PEER_QUEUE_MIN ? HUB_PEER_QUEUE_MIN
           : n > HUB_PEER_QUEUE_MAX ? HUB_PEER_QUEUE_MAX
                                   : (int)n;
}

static int open_socket(hub_t *h, char *err, size_t errcap)
{
    int64_t maxmsg = (int64_t)h->cfg->limits.max_frame + HUB_FRAME_SLACK;
    h->zctx = zmq_ctx_new();
    if (h->zctx && h->curve) {
        int rc = setup_curve(h, err, errcap);
        if (rc)
            return rc;
    } else if (h->zctx) {
        h->router = zmq_socket(h->zctx, ZMQ_ROUTER);
        log_warn("hub.insecure",
                 "detail=\"security.mode is insecure-plaintext: no encryption, no "
                 "authentication, any peer may claim any region; for development only\"");
    }
    if (!h->router || set_opt_int(h->router, ZMQ_ROUTER_MANDATORY, 1) ||
        zmq_setsockopt(h->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
        set_opt_int(h->router, ZMQ_SNDHWM, HUB_PEER_HWM) ||
        set_opt_int(h->router, ZMQ_RCVHWM, peer_queue_len(h->cfg->limits.max_frame)) || set_opt_int(h->router, ZMQ_LINGER, 2000)) {
        snprintf(err, errcap, "cannot create the hub socket: %s", zmq_strerror(zmq_errno()));
        return NHUB_EZMQ;
    }
    if (zmq_bind(h->router, h->cfg->hub.listen) != 0) {
        snprintf(err, errcap, "cannot listen on %s: %s", h->cfg->hub.listen,
                 zmq_strerror(zmq_errno()));
        return NHUB_EZMQ;
    }
    size_t len = sizeof h->endpoint;
    if (zmq_getsockopt(h->router, ZMQ_LAST_ENDPOINT, h->endpoint, &len) != 0)
        snprintf(h->endpoint, sizeof h->endpoint, "%s", h->cfg->hub.listen);
    return 0;
}

/* Build what the security settings of `cfg` need: the key table and the catalogue. */
static int load_security(const cfg_t *cfg, auth_t **auth, catalog_t **catalog, char *err,
                         size_t errcap)
{
    *auth = NULL;
    *catalog = NULL;
    int rc = auth_new(cfg, auth, err, errcap);
    if (rc == 0 && cfg->security.catalog[0]) {
        rc = catalog_load(cfg->security.catalog, catalog, err, errcap);
        if (rc)
            auth_destroy(auth);
    }
    if (rc == 0 && !*catalog)
        log_warn("hub.no_catalog", "detail=\"no security.catalog: every item is allowed\"");
    return rc;
}

int hub_check_config(const cfg_t *cfg, char *err, size_t errcap)
{
    auth_t *auth = NULL;
    catalog_t *catalog = NULL;
    int rc = load_security(cfg, &auth, &catalog, err, errcap);
    auth_destroy(&auth);
    catalog_destroy(&catalog);
    if (rc == 0 && cfg->security.payload_key_file[0]) {
        seal_key_t *sk = NULL;
        char why[512];
        if ((rc = seal_key_load(cfg->security.payload_key_file, SEAL_AES_256_GCM, &sk, why,
                                sizeof why)) != 0)
            snprintf(err, errcap, "security.payload_key_file: %s", why);
        seal_key_free(&sk);
    }
    if (rc || cfg->security.mode != CFG_SECURITY_CURVE)
        return rc;
    keys_file_t *k = NULL;
    char why[512];
    if ((rc = keys_load(cfg->security.key_file, &k, why, sizeof why)) != 0) {
        snprintf(err, errcap, "security.key_file: %s", why);
        return rc;
    }
    if (strcmp(k->region, cfg->hub.region) != 0) {
        snprintf(err, errcap, "security.key_file %s is the key of region %s, not of this hub (%s)",
                 cfg->security.key_file, k->region, cfg->hub.region);
        rc = NHUB_ECONFIG;
    }
    keys_free(&k);
    return rc;
}

int hub_new(cfg_t **cfg, const nhub_clock_t *clock, hub_t **out, char *err, size_t errcap)
{
    *out = NULL;
    hub_t *h = calloc(1, sizeof *h);
    if (!h) {
        cfg_destroy(cfg);
        return NHUB_ENOMEM;
    }
    h->cfg = *cfg;
    *cfg = NULL;
    h->clock = clock;
    h->curve = h->cfg->security.mode == CFG_SECURITY_CURVE;
    int rc = load_security(h->cfg, &h->auth, &h->catalog, err, errcap);
    if (rc)
        goto fail;
    tlog_alg_t tree = h->cfg->audit.tree_hash == CFG_TREE_SM3 ? TLOG_SM3 : TLOG_SHA256;
    rc = store_open_tree(h->cfg->hub.data_dir, h->cfg->limits.map_size,
                         h->cfg->limits.map_size_max, tree, &h->store, err, errcap);
    if (rc)
        goto fail;
    if (store_tree_alg(h->store) != tree) /* fixed when the tree was made */
        log_warn("hub.tree_hash_kept", "store=%s configured=%s",
                 tlog_alg_name(store_tree_alg(h->store)), tlog_alg_name(tree));
    if ((rc = checkpoint_setup(h, err, errcap)) || (rc = atrest_setup(h, err, errcap)))
        goto fail;
    rc = NHUB_ENOMEM;
    h->cap_items = (size_t)h->cfg->limits.batch_max + HUB_SCAN_MAX;
    h->stage_bytes = h->cfg->limits.max_frame > HUB_STAGE_BYTES ? h->cfg->limits.max_frame
                                                                : HUB_STAGE_BYTES;
    h->cases_next_ms = INT64_MIN; /* the first turn fires what passed while the hub was down */
    h->items = calloc(h->cap_items, sizeof *h->items);
    h->ready = calloc(h->cap_items, sizeof *h->ready);
    h->verify_idx = calloc(h->cap_items, sizeof *h->verify_idx);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t threads = cpus > HUB_VERIFY_THREADS_MAX ? HUB_VERIFY_THREADS_MAX - 1
                     : cpus > 1                    ? (size_t)cpus - 1
                                                   : 0;
    if (h->curve && workers_new(threads, &h->workers) != 0) {
        snprintf(err, errcap, "cannot start the signature-check threads");
        goto fail;
    }
    h->sessions = session_table_new(HUB_SESSIONS_MAX);
    if (!h->items || !h->ready || !h->verify_idx || !h->sessions ||
        regions_build(h, h->cfg, &h->regions) != 0) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    h->n_regions = h->cfg->region_count;
    h->started_ms = clock_wall_ms(h->clock);
    metrics_hist_init(&h->ack_latency, metrics_seconds_bounds, metrics_seconds_n);
    metrics_hist_init(&h->e2e_latency, metrics_seconds_bounds, metrics_seconds_n);
    metrics_hist_init(&h->commit_seconds, metrics_seconds_bounds, metrics_seconds_n);
    metrics_hist_init(&h->commit_items, metrics_count_bounds, metrics_count_n);
    metrics_hist_init(&h->commit_bytes, metrics_bytes_bounds, metrics_bytes_n);
    if ((rc = hub_load_opstate(h))) {
        snprintf(err, errcap, "cannot read the operators' region state: %s", nhub_strerror(rc));
        goto fail;
    }
    if ((rc = open_socket(h, err, errcap)))
        goto fail;
    if ((rc = api_start(h, err, errcap)))
        goto fail;
    *out = h;
    return 0;
fail:
    hub_destroy(&h);
    return rc;
}

int hub_measure_chain_only(hub_t *self)
{
    int rc = store_drop_tree(self->store);
    if (rc == 0)
        log_warn("hub.chain_only", "reason=%s", "measurement: no Merkle tree, no checkpoints");
    return rc;
}

void hub_destroy(hub_t **self)
{
    if (!self || !*self)
        return;
    hub_t *h = *self;
    http_destroy(&h->http);
    ingress_drop_deferred(h);
    workers_wait(h->workers);
    for (size_t i = 0; i < h->n_items; i++)
        ingress_item_clear(&h->items[i]);
    for (size_t i = 0; i < h->n_ready; i++)
        ingress_item_clear(&h->ready[i]);
    if (h->router)
        zmq_close(h->router);
    if (h->monitor)
        zmq_close(h->monitor);
    if (h->zap)
        zmq_close(h->zap);
    if (h->zctx)
        zmq_ctx_term(h->zctx);
    session_table_destroy(&h->sessions);
    regions_free(&h->regions, h->n_regions);
    retention_stop(h);
    store_close(&h->store);
    checkpoint_teardown(h);
    atrest_teardown(h);
    workers_destroy(&h->workers);
    auth_destroy(&h->auth);
    catalog_destroy(&h->catalog);
    free(h->verify_idx);
    free(h->items);
    free(h->ready);
    free(h->scratch);
    cfg_destroy(&h->cfg);
    free(h);
    *self = NULL;
}

const char *hub_endpoint(const hub_t *self)
{
    return self->endpoint;
}

const char *hub_http_url(const hub_t *self)
{
    return self->http ? http_url(self->http) : NULL;
}

void hub_counters(const hub_t *self, hub_counters_t *out)
{
    *out = self->n;
}

/* Sessions keep region indexes: map them to the new table by code. */
struct remap {
    hub_t *h;
    const struct hub_region *old;
    size_t n_old;
    const cfg_t *cfg;
};

static int remap_session(void *arg, session_t *s)
{
    struct remap *m = arg;
    if (s->region < 0 || (size_t)s->region >= m->n_old)
        return 0;
    s->region = cfg_region_index(m->cfg, m->old[s->region].code);
    if (s->region < 0) {
        log_info("hub.session_closed", "reason=region_removed");
        session_remove(m->h->sessions, s);
        m->h->n.sessions_closed++;
    }
    return 0;
}

int hub_reload(hub_t *self, const char *cfg_path, char *err, size_t errcap)
{
    cfg_t *next = NULL;
    int rc = cfg_load(cfg_path, &next, err, errcap);
    if (rc)
        return rc;
    if (strcmp(next->hub.listen, self->cfg->hub.listen) != 0 ||
        strcmp(next->hub.data_dir, self->cfg->hub.data_dir) != 0) {
        log_warn("hub.reload_partial", "detail=\"listen and data_dir need a restart; kept\"");
        next->hub = self->cfg->hub;
    }
    if (next->limits.batch_max > self->cfg->limits.batch_max ||
        next->limits.max_frame != self->cfg->limits.max_frame) {
        log_warn("hub.reload_partial",
                 "detail=\"batch_max increase and max_frame need a restart; kept\"");
        if (next->limits.batch_max > self->cfg->limits.batch_max)
            next->limits.batch_max = self->cfg->limits.batch_max;
        next->limits.max_frame = self->cfg->limits.max_frame;
    }
    if (next->security.mode != self->cfg->security.mode ||
        strcmp(next->security.key_file, self->cfg->security.key_file) != 0) {
        log_warn("hub.reload_partial",
                 "detail=\"security.mode and key_file need a restart; kept\"");
        next->security.mode = self->cfg->security.mode;
        snprintf(next->security.key_file, sizeof next->security.key_file, "%s",
                 self->cfg->security.key_file);
    }
    if (strcmp(next->security.payload_key_file, self->cfg->security.payload_key_file) != 0 ||
        next->security.payload_cipher != self->cfg->security.payload_cipher) {
        log_warn("hub.reload_partial",
                 "detail=\"security.payload_key_file and payload_cipher need a restart; kept\"");
        memcpy(next->security.payload_key_file, self->cfg->security.payload_key_file,
               sizeof next->security.payload_key_file);
        next->security.payload_cipher = self->cfg->security.payload_cipher;
    }
    auth_t *auth = NULL;
    catalog_t *catalog = NULL;
    if ((rc = load_security(next, &auth, &catalog, err, errcap))) {
        cfg_destroy(&next);
        return rc;
    }
    struct hub_region *regions = NULL;
    if ((rc = regions_build(self, next, &regions))) {
        snprintf(err, errcap, "out of memory");
        auth_destroy(&auth);
        catalog_destroy(&catalog);
        cfg_destroy(&next);
        return rc;
    }
    auth_destroy(&self->auth);
    catalog_destroy(&self->catalog);
    self->auth = auth;
    self->catalog = catalog;
    struct remap m = {self, self->regions, self->n_regions, next};
    session_foreach(self->sessions, remap_session, &m);
    regions_free(&self->regions, self->n_regions);
    self->regions = regions;
    self->n_regions = next->region_count;
    for (size_t i = 0; i < self->n_regions; i++)
        if (self->regions[i].delivery && self->regions[i].delivery->region != (int)i)
            self->regions[i].delivery = NULL;
    if (self->http) {
        if (strcmp(next->http.listen, self->cfg->http.listen) != 0 ||
            strcmp(next->http.tls_cert, self->cfg->http.tls_cert) != 0 ||
            strcmp(next->http.tls_key, self->cfg->http.tls_key) != 0)
            log_warn("hub.reload_partial", "detail=\"http listen and TLS need a restart; kept\"");
        http_set_tokens(self->http, &next->http);
    }
    store_set_map_max(self->store, next->limits.map_size_max);
    hub_check_space(self); /* a raised limit takes new messages at once */
    log_setup(next->log.level, NULL);
    cfg_destroy(&self->cfg);
    self->cfg = next;
    journal_note(self, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CONFIG_RELOADED, cfg_path);
    if (sync_suspensions(self) != 0)
        log_error("hub.journal_failed", "event=suspensions");
    if (hub_load_opstate(self) != 0)
        log_error("hub.opstate_failed", "detail=\"operators' region state unreadable\"");
    log_info("hub.reloaded", "regions=%zu", self->n_regions);
    return 0;
}

/* Read every frame already waiting, staging what is valid, until the stage
 * is full by count or by bytes. */
static int drain(hub_t *h)
{
    size_t frames = 0, max_frames = (size_t)h->cfg->limits.batch_max * 4;
    ingress_replay(h); /* frames held back from earlier stages go first */
    while (h->n_items < (size_t)h->cfg->limits.batch_max && h->items_bytes < h->stage_bytes &&
           frames < max_frames && h->deferred_total < HUB_DEFER_MAX) {
        wire_frames_t f;
        int rc = wire_recv(h->router, &f, ZMQ_DONTWAIT);
        if (rc == NHUB_EAGAIN || rc == NHUB_ECLOSED)
            return 0;
        if (rc)
            return rc;
        if (!ingress_defer(h, &f))
            ingress_frames(h, &f);
        wire_frames_close(&f);
        frames++;
    }
    return 0;
}

int hub_run(hub_t *self, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload,
            const char *cfg_path)
{
    hub_t *h = self;
    char hex[33];
    h->cfg_path = cfg_path;
    hub_check_space(h);
    journal_note(h, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_HUB_STARTED, "start");
    if (sync_suspensions(h) != 0)
        log_error("hub.journal_failed", "event=suspensions");
    log_info("hub.ready", "endpoint=%s hub_id=%s regions=%zu", h->endpoint,
             log_hex(hex, sizeof hex, store_hub_id(h->store), STORE_ID_LEN), h->n_regions);
    int rc = 0;
    while (!*stop) {
        if (reload && *reload) {
            *reload = 0;
            commit_flush_all(h); /* staged items hold region indexes of this config */
            char err[512], q[600];
            if (hub_reload(h, cfg_path, err, sizeof err) != 0)
                log_error("hub.reload_failed", "error=%s", log_quote(q, sizeof q, err));
        }
        zmq_pollitem_t pi[4] = {{h->router, 0, ZMQ_POLLIN, 0}};
        int n = 1;
        if (h->http)
            pi[n++] = (zmq_pollitem_t){NULL, http_fd(h->http), ZMQ_POLLIN, 0};
        if (h->curve) {
            pi[n++] = (zmq_pollitem_t){h->zap, 0, ZMQ_POLLIN, 0};
            pi[n++] = (zmq_pollitem_t){h->monitor, 0, ZMQ_POLLIN, 0};
        }
        if (zmq_poll(pi, n, poll_timeout(h)) < 0) {
            if (zmq_errno() == EINTR)
                continue;
            rc = NHUB_EZMQ;
            break;
        }
        if (h->curve) {
            zap_serve(h);
            zap_serve_monitor(h);
        }
        if ((rc = drain(h)))
            break;
        commit_flush_stage(h);
        deliver_all(h);
        housekeeping(h);
        retention_turn(h);
        api_turn(h);
    }
    commit_flush_all(h); /* what was staged before the stop is answered */
    journal_note(h, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_HUB_STOPPED, "stop");
    h->stats_commits_seen = UINT64_MAX;
    log_stats(h);
    log_security(h);
    log_info("hub.stopped",
             "accepted=%llu rejected=%llu dropped=%llu replays=%llu nack_malformed=%llu "
             "nack_version=%llu nack_unknown_command=%llu nack_too_large=%llu "
             "nack_hello_required=%llu",
             (unsigned long long)h->n.accepted, (unsigned long long)h->n.rejected,
             (unsigned long long)h->n.dropped, (unsigned long long)h->n.replays,
             (unsigned long long)h->n.nacked[NHUB__WIRE__V1__NACK_CODE__NACK_MALFORMED],
             (unsigned long long)h->n.nacked[NHUB__WIRE__V1__NACK_CODE__NACK_VERSION],
             (unsigned long long)h->n.nacked[NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_COMMAND],
             (unsigned long long)h->n.nacked[NHUB__WIRE__V1__NACK_CODE__NACK_TOO_LARGE],
             (unsigned long long)h->n.nacked[NHUB__WIRE__V1__NACK_CODE__NACK_HELLO_REQUIRED]);
    return rc;
}
