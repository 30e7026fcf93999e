/*
 * retention.c: archives of the journal and the retention of the live store
 * (audit.archive_dir, audit.archive_every, audit.retention; proto/archive.h
 * for the file).
 *
 * Archiving takes closed ranges of archive_every records, from meta
 * "archive_next" on, once they are all committed. A file is written in
 * steps of at most ARCHIVE_STEP_RECORDS records per turn of the loop, each
 * in its own short read transaction, so a turn's commits and ACKs never
 * wait behind it; the one slow part, fsync of the file and of its
 * directory, runs on a thread that touches nothing but the file. Only
 * once the file is durable is the range journaled (EVENT_ARCHIVED, with
 * the file's name and hash) and "archive_next" moved past it, in one
 * transaction: a crash before leaves a temporary file that the next
 * attempt replaces, and nothing counts as archived.
 *
 * Pruning removes the bodies of archived records older than retention,
 * at most PRUNE_STEP per transaction, which also journals EVENT_PRUNED
 * for the range; the store refuses to prune anything not archived or still
 * queued (store_journal_prune). A failure to write (a full disk, an
 * unwritable directory) is logged, counted and retried later; the hub goes
 * on and nothing unarchived is pruned.
 */
#include "hub_internal.h"

#include "path.h"

#define ARCHIVE_STEP_RECORDS 1024
#define ARCHIVE_STEP_BYTES ((size_t)2 << 20)
#define ARCHIVE_RETRY_MS 10000
#define PRUNE_STEP 4096

static void arc_reset(struct hub_archive *a)
{
    int64_t retry_at = a->retry_at;
    memset(a, 0, sizeof *a);
    a->retry_at = retry_at;
}

/* Give the file up: logged, counted; no new attempt for ARCHIVE_RETRY_MS. */
static void arc_fail(hub_t *h, const char *what, const char *why)
{
    struct hub_archive *a = &h->arc;
    char q[700];
    log_error("hub.archive_failed", "file=%s first=%llu last=%llu step=%s error=%s",
              a->name[0] ? a->name : "-", (unsigned long long)a->first, (unsigned long long)a->last,
              what, log_quote(q, sizeof q, why));
    h->n.archive_errors++;
    archive_writer_abort(&a->w);
    arc_reset(a);
    a->retry_at = hub_now_mono(h) + ARCHIVE_RETRY_MS;
}

/* Whether a whole range [*next, *end] is committed, to archive next. */
static int arc_ready(const hub_t *h, store_reader_t *r, uint64_t *next, uint64_t *end)
{
    uint64_t last = 0, every = (uint64_t)h->cfg->audit.archive_every;
    *next = 1;
    if (store_archive_next(r, next) != 0 || store_journal_last(r, &last) != 0 || last < *next ||
        last - *next + 1 < every)
        return 0;
    *end = *next + every - 1;
    return 1;
}

/* Open the next file if a whole range is committed. */
static void arc_open(hub_t *h, store_reader_t *r)
{
    struct hub_archive *a = &h->arc;
    const cfg_audit_t *c = &h->cfg->audit;
    uint64_t next = 1, end = 0;
    if (!arc_ready(h, r, &next, &end))
        return;
    archive_header_t hd;
    memset(&hd, 0, sizeof hd);
    memcpy(hd.hub_id, store_hub_id(h->store), ARCHIVE_ID_LEN);
    hd.alg = store_tree_alg(h->store);
    hd.first_seq = next;
    hd.last_seq = end;
    a->first = hd.first_seq;
    a->last = hd.last_seq;
    a->next = hd.first_seq;
    snprintf(a->name, sizeof a->name, "journal-%020llu-%020llu.nharc", (unsigned long long)a->first,
             (unsigned long long)a->last);
    int rc = store_chain_before(r, next, hd.prev_hash);
    if (!rc)
        rc = store_tree_state_at(r, next - 1, hd.state, sizeof hd.state, &hd.state_len);
    if (rc) {
        arc_fail(h, "start", nhub_strerror(rc));
        return;
    }
    char path[CFG_PATH_MAX + 80], err[512];
    int erc = path_mkdir_p(c->archive_dir);
    if (erc) {
        snprintf(err, sizeof err, "cannot create %.300s: %s", c->archive_dir, strerror(erc));
        arc_fail(h, "open", err);
        return;
    }
    snprintf(path, sizeof path, "%s/%s", c->archive_dir, a->name);
    a->started_us = hub_now_us();
    if (archive_writer_open(path, &hd, &a->w, err, sizeof err) != 0) {
        arc_fail(h, "open", err);
        return;
    }
    /* The checkpoints of the range: all committed with its records. */
    const char *note;
    size_t len;
    uint64_t size = a->first - 1;
    while ((rc = store_checkpoint_next(r, size, &note, &len, &size)) == 0 && size <= a->last)
        if ((rc = archive_writer_checkpoint(a->w, size, note, len)) != 0)
            break;
    if (rc != 0 && rc != NHUB_ENOTFOUND)
        arc_fail(h, "checkpoints",
                 archive_writer_error(a->w)[0] ? archive_writer_error(a->w) : nhub_strerror(rc));
}

static void arc_start(hub_t *h)
{
    store_reader_t *r = NULL;
    uint64_t next, end;
    int64_t t0 = hub_now_us();
    if (store_reader_open(h->store, &r) != 0)
        return;
    int ready = arc_ready(h, r, &next, &end);
    store_reader_close(&r);
    if (!ready)
        return;
    /* A checkpoint of exactly the range's end, signed now if the tree's
     * regular ones fell elsewhere, goes into the file with the others: every
     * record of it is then under a checkpoint it holds, and it verifies
     * alone (nhub-audit verify --archive). Without one (a full store), the
     * file still goes; its last records wait for the next file's. */
    (void)checkpoint_at(h, end);
    if (store_reader_open(h->store, &r) != 0)
        return;
    arc_open(h, r);
    store_reader_close(&r);
    if (h->arc.w)
        h->arc.write_us = hub_now_us() - t0;
}

static void *sync_main(void *arg)
{
    struct hub_archive *a = arg;
    int64_t t0 = hub_now_us();
    a->sync_rc = archive_writer_sync(a->w, a->sync_err, sizeof a->sync_err);
    a->sync_us = hub_now_us() - t0;
    atomic_store(&a->synced, 1);
    return NULL;
}

/* All records are in: the trailer, then the sync thread. */
static void arc_finish(hub_t *h, store_reader_t *r)
{
    struct hub_archive *a = &h->arc;
    size_t state_len = 0;
    uint8_t state[TLOG_STATE_MAX];
    int rc = store_tree_state_at(r, a->last, state, sizeof state, &state_len);
    if (rc == 0)
        rc = archive_writer_finish(a->w, state, state_len, a->last_hash, a->file_hash);
    if (rc) {
        arc_fail(h, "finish",
                 archive_writer_error(a->w)[0] ? archive_writer_error(a->w) : nhub_strerror(rc));
        return;
    }
    atomic_store(&a->synced, 0);
    if (pthread_create(&a->thread, NULL, sync_main, a) != 0) {
        arc_fail(h, "sync", "cannot start a thread");
        return;
    }
    a->syncing = 1;
}

/* A step's budget, for the walk of the journal. */
struct step {
    struct hub_archive *a;
    size_t records, bytes;
};

/* store_journal_fn: one record into the file; 1 once the step is done. */
static int write_record(void *arg, uint64_t seq, const uint8_t *hash, const void *event, size_t len)
{
    (void)event; /* it follows the hash in the stored value */
    struct step *st = arg;
    struct hub_archive *a = st->a;
    if (seq != a->next) /* a gap: only a damaged store has one */
        return NHUB_EMALFORMED;
    /* The stored value is the chain hash then the event, contiguous. */
    int rc = archive_writer_record(a->w, seq, hash, STORE_HASH_LEN + len);
    if (rc)
        return rc;
    if (seq == a->last)
        memcpy(a->last_hash, hash, STORE_HASH_LEN);
    a->next++;
    st->records++;
    st->bytes += STORE_HASH_LEN + len;
    return a->next > a->last || st->records >= ARCHIVE_STEP_RECORDS ||
           st->bytes >= ARCHIVE_STEP_BYTES;
}

/* Write the next records of the file: one cursor walk, a bounded step. */
static void arc_step(hub_t *h)
{
    struct hub_archive *a = &h->arc;
    store_reader_t *r = NULL;
    int64_t t0 = hub_now_us();
    if (store_reader_open(h->store, &r) != 0)
        return; /* logged by the store; the next turn tries again */
    struct step st = {a, 0, 0};
    uint64_t bad = 0;
    int rc = store_journal_walk(r, a->next, write_record, &st, &bad);
    if (rc == 0 && a->next <= a->last)
        rc = NHUB_ENOTFOUND; /* the journal ended before the range did */
    if (rc < 0) {
        char why[400];
        snprintf(why, sizeof why, "record %llu: %s", (unsigned long long)a->next,
                 archive_writer_error(a->w)[0] ? archive_writer_error(a->w) : nhub_strerror(rc));
        arc_fail(h, "write", why);
    } else if (a->next > a->last) {
        arc_finish(h, r);
    }
    store_reader_close(&r);
    a->write_us += hub_now_us() - t0;
}

static int journal_archived(hub_t *h, store_txn_t *t, void *arg)
{
    (void)arg;
    struct hub_archive *a = &h->arc;
    Nhub__Journal__V1__ArchiveRef ref = NHUB__JOURNAL__V1__ARCHIVE_REF__INIT;
    ref.file = a->name;
    ref.sha256.data = a->file_hash;
    ref.sha256.len = sizeof a->file_hash;
    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ARCHIVED;
    ev.time_ms = clock_wall_ms(h->clock);
    ev.range_first = a->first;
    ev.range_last = a->last;
    ev.archive = &ref;
    uint64_t seq;
    int rc = commit_journal_append(h, t, &ev, &seq);
    return rc ? rc : store_archive_mark(t, a->last + 1);
}

/* The file is durable: journal it, with archive_next, in one transaction. */
static void arc_journal(hub_t *h)
{
    struct hub_archive *a = &h->arc;
    int rc = hub_txn(h, journal_archived, NULL);
    if (rc) { /* the file stays; the range is journaled at the next attempt */
        log_error("hub.archive_failed", "file=%s step=journal error=\"%s\"", a->name,
                  nhub_strerror(rc));
        h->n.archive_errors++;
        a->retry_at = hub_now_mono(h) + ARCHIVE_RETRY_MS;
        return;
    }
    char hex[65];
    h->n.archive_files++;
    h->n.archive_records += a->last - a->first + 1;
    h->n.archive_write_us += (uint64_t)a->write_us;
    h->n.archive_sync_us += (uint64_t)a->sync_us;
    log_info("hub.archived",
             "file=%s first=%llu last=%llu sha256=%s seconds=%.3f write_ms=%.1f sync_ms=%.1f",
             a->name, (unsigned long long)a->first, (unsigned long long)a->last,
             log_hex(hex, sizeof hex, a->file_hash, sizeof a->file_hash),
             (double)(hub_now_us() - a->started_us) / 1e6, (double)a->write_us / 1e3,
             (double)a->sync_us / 1e3);
    archive_writer_free(&a->w);
    arc_reset(a);
}

/* ---- pruning ------------------------------------------------------------------- */

struct prune {
    uint64_t last;     /* prune up to here (the store may stop before) */
    uint64_t first, n; /* what it did */
};

static int prune_txn(hub_t *h, store_txn_t *t, void *arg)
{
    struct prune *p = arg;
    int rc = store_journal_prune(t, p->last, &p->first, &p->n);
    if (rc || p->n == 0)
        return rc;
    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_PRUNED;
    ev.time_ms = clock_wall_ms(h->clock);
    ev.range_first = p->first;
    ev.range_last = p->first + p->n - 1;
    uint64_t seq;
    return commit_journal_append(h, t, &ev, &seq);
}

/* The record's time (hub wall clock), or INT64_MAX if it cannot be read. */
static int64_t record_time(store_reader_t *r, uint64_t seq)
{
    const void *data;
    size_t len;
    int64_t t;
    if (store_journal_get(r, seq, &data, &len, NULL) != 0 || store_event_time(data, len, &t) != 0)
        return INT64_MAX;
    return t;
}

/* Prune up to PRUNE_STEP archived records older than retention; 1 if it
 * did a full step (more may be waiting). */
static int prune_step(hub_t *h)
{
    uint64_t start, archived, last = 0;
    uint8_t prev[STORE_HASH_LEN];
    store_reader_t *r = NULL;
    if (store_reader_open(h->store, &r) != 0)
        return 0;
    if (store_journal_start(r, &start, prev) == 0 && store_archive_next(r, &archived) == 0 &&
        archived > start) {
        int64_t cutoff = clock_wall_ms(h->clock) - h->cfg->audit.retention_ms;
        uint64_t upto = archived - 1;
        if (upto - start + 1 > PRUNE_STEP)
            upto = start + PRUNE_STEP - 1;
        /* Records are in time order but for clock steps: stop at the first one too young. */
        for (uint64_t seq = start; seq <= upto && record_time(r, seq) < cutoff; seq++)
            last = seq;
    }
    store_reader_close(&r); /* no reader open across the transaction: the map may grow */
    if (last == 0)
        return 0;
    struct prune p = {last, 0, 0};
    int rc = hub_txn(h, prune_txn, &p);
    if (rc) {
        log_error("hub.prune_failed", "first=%llu last=%llu error=\"%s\"",
                  (unsigned long long)start, (unsigned long long)last, nhub_strerror(rc));
        return 0;
    }
    if (p.n == 0)
        return 0;
    h->n.pruned_records += p.n;
    log_info("hub.pruned", "first=%llu last=%llu records=%llu", (unsigned long long)p.first,
             (unsigned long long)(p.first + p.n - 1), (unsigned long long)p.n);
    return p.n == PRUNE_STEP;
}

/* ---- the turn -------------------------------------------------------------------- */

int retention_busy(const hub_t *h)
{
    return h->arc.w && !h->arc.syncing && !h->arc.written;
}

void retention_turn(hub_t *h)
{
    struct hub_archive *a = &h->arc;
    if (a->syncing) {
        if (!atomic_load(&a->synced))
            return;
        pthread_join(a->thread, NULL);
        a->syncing = 0;
        if (a->sync_rc) {
            arc_fail(h, "sync", a->sync_err);
            return;
        }
        a->written = 1;
    }
    int64_t now = hub_now_mono(h);
    if (a->written) {
        if (now >= a->retry_at)
            arc_journal(h);
        return;
    }
    if (a->w) {
        arc_step(h);
        return;
    }
    if (!h->cfg->audit.archive_dir[0] || now < a->next_look)
        return;
    a->next_look = now + HUB_HOUSEKEEPING_MS;
    if (now >= a->retry_at)
        arc_start(h);
    int more = !a->w && h->cfg->audit.retention_ms && prune_step(h);
    if (more || a->w)
        a->next_look = now; /* go on at the next turn */
}

void retention_stop(hub_t *h)
{
    struct hub_archive *a = &h->arc;
    if (a->syncing) {
        pthread_join(a->thread, NULL);
        a->syncing = 0;
    }
    archive_writer_abort(&a->w); /* not journaled: the next start writes it again */
    arc_reset(a);
}
