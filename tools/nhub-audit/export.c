/*
 * nhub-audit export --data DIR --from T --to T -o FILE
 *
 * The live store's records whose time lies in [from, to) as one archive
 * file (proto/archive.h), for an auditor who gets nothing else: the chain
 * hash and tree state before its first record, the checkpoints that fall
 * inside it, the records as stored, the end state and the file hash.
 * `verify --archive FILE` checks it alone; only a checkpoint inside the
 * range ties it to the hub's key, so export says when there is none.
 *
 * Records are in time order but for steps of the hub's clock: the range is
 * from the first record at or after `from` to the last one before `to`
 * that follows it without a record at or after `to` in between.
 */
#include "archive.h"
#include "audit.h"
#include "log.h"
#include "nhub_err.h"
#include "store.h"
#include "tlog.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* T: milliseconds since 1970, or a UTC time as log_time_parse reads it
 * (2026-12-07T16:53:35Z, with milliseconds, or a date: its midnight).
 * 0, or -1. */
static int parse_time(const char *s, int64_t *out)
{
    char *end;
    if (s && *s && strspn(s, "0123456789") == strlen(s)) {
        long long v = strtoll(s, &end, 10);
        if (*end || v < 0)
            return -1;
        *out = v;
        return 0;
    }
    return s && log_time_parse(s, out) == 0 ? 0 : -1;
}

typedef struct range {
    int64_t from, to;
    uint64_t first, last; /* 0: none found yet */
} range_t;

static int find_range(void *arg, uint64_t seq, const uint8_t *hash, const void *ev, size_t len)
{
    (void)hash;
    range_t *g = arg;
    int64_t t;
    if (store_event_time(ev, len, &t) != 0)
        return NHUB_EMALFORMED;
    if (t >= g->to)
        return g->first ? 1 : 0; /* the range has ended */
    if (t >= g->from && !g->first)
        g->first = seq;
    if (g->first)
        g->last = seq;
    return 0;
}

/* Header, checkpoints and records of [first, last] into the writer. */
static int write_range(store_reader_t *r, const range_t *g, archive_writer_t *w, uint64_t *cps,
                       uint8_t last_hash[STORE_HASH_LEN])
{
    const char *note;
    size_t len;
    uint64_t size = g->first - 1;
    int rc;
    *cps = 0;
    while ((rc = store_checkpoint_next(r, size, &note, &len, &size)) == 0 && size <= g->last) {
        if ((rc = archive_writer_checkpoint(w, size, note, len)) != 0)
            return rc;
        (*cps)++;
    }
    if (rc != 0 && rc != NHUB_ENOTFOUND)
        return rc;
    for (uint64_t seq = g->first; seq <= g->last; seq++) {
        const void *ev;
        const uint8_t *hash;
        if ((rc = store_journal_get(r, seq, &ev, &len, &hash)) != 0 ||
            (rc = archive_writer_record(w, seq, hash, STORE_HASH_LEN + len)) != 0)
            return rc;
        memcpy(last_hash, hash, STORE_HASH_LEN);
    }
    return 0;
}

static int export_to(store_reader_t *r, const range_t *g, const char *path, uint64_t *cps,
                     uint8_t file_hash[ARCHIVE_HASH_LEN])
{
    archive_header_t h;
    archive_writer_t *w = NULL;
    uint8_t state[TLOG_STATE_MAX], last_hash[STORE_HASH_LEN];
    size_t state_len = 0;
    char err[512];
    memset(&h, 0, sizeof h);
    memcpy(h.hub_id, store_reader_hub_id(r), ARCHIVE_ID_LEN);
    h.first_seq = g->first;
    h.last_seq = g->last;
    uint64_t size;
    int rc = store_tree_info(r, &size, NULL, &h.alg);
    if (!rc)
        rc = store_chain_before(r, g->first, h.prev_hash);
    if (!rc)
        rc = store_tree_state_at(r, g->first - 1, h.state, sizeof h.state, &h.state_len);
    if (!rc)
        rc = store_tree_state_at(r, g->last, state, sizeof state, &state_len);
    if (rc) {
        fprintf(stderr, "nhub-audit: the store's tree cannot be read: %s\n", nhub_strerror(rc));
        return 2;
    }
    if (archive_writer_open(path, &h, &w, err, sizeof err) != 0) {
        fprintf(stderr, "nhub-audit: %s\n", err);
        return 2;
    }
    rc = write_range(r, g, w, cps, last_hash);
    if (!rc)
        rc = archive_writer_finish(w, state, state_len, last_hash, file_hash);
    if (!rc)
        rc = archive_writer_sync(w, err, sizeof err);
    else
        snprintf(err, sizeof err, "%s",
                 archive_writer_error(w)[0] ? archive_writer_error(w) : nhub_strerror(rc));
    if (rc) {
        fprintf(stderr, "nhub-audit: cannot export to %s: %s\n", path, err);
        archive_writer_abort(&w);
        return 2;
    }
    archive_writer_free(&w);
    return 0;
}

int audit_export(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey)
{
    (void)vkey;
    range_t g;
    uint8_t prev[STORE_HASH_LEN], file_hash[ARCHIVE_HASH_LEN];
    uint64_t start = 1, bad = 0, cps = 0;
    char hex[2 * ARCHIVE_HASH_LEN + 1];
    memset(&g, 0, sizeof g);
    if (!a->output || parse_time(a->from, &g.from) != 0 || parse_time(a->to, &g.to) != 0 ||
        g.to <= g.from) {
        fprintf(stderr, "nhub-audit export: needs --from T --to T (T before T) and -o FILE; T "
                        "like 2026-12-07T16:53:35Z, 2026-12-07 or milliseconds since 1970\n");
        return 2;
    }
    int rc = store_journal_start(r, &start, prev);
    if (!rc)
        rc = store_journal_walk(r, start, find_range, &g, &bad);
    if (rc < 0) {
        fprintf(stderr, "nhub-audit: the journal cannot be read: %s\n", nhub_strerror(rc));
        return 2;
    }
    if (!g.first) {
        printf("FAIL no record of the live store (from seq %llu) lies in [%s, %s)\n",
               (unsigned long long)start, a->from, a->to);
        return 1;
    }
    /* An extract ends at its last checkpoint: records after it are signed
     * by nothing the extract holds (verify --archive refuses them). */
    uint64_t size = g.first - 1, covered = 0, found = g.last;
    const char *note;
    size_t note_len;
    while (store_checkpoint_next(r, size, &note, &note_len, &size) == 0 && size <= g.last)
        covered = size;
    if (!covered) {
        printf("FAIL no checkpoint covers a record of [%s, %s) (seq %llu to %llu): nothing an "
               "extract could hold is signed by the hub; a later --to takes in the next one\n",
               a->from, a->to, (unsigned long long)g.first, (unsigned long long)g.last);
        return 1;
    }
    g.last = covered;
    if ((rc = export_to(r, &g, a->output, &cps, file_hash)) != 0)
        return rc;
    if (covered < found)
        fprintf(stderr,
                "nhub-audit: records %llu..%llu of the range are not covered by a checkpoint "
                "yet: left out (a later export takes them in)\n",
                (unsigned long long)(covered + 1), (unsigned long long)found);
    printf("OK %llu records (seq %llu to %llu), %llu checkpoint%s, to %s, sha256 %s\n",
           (unsigned long long)(g.last - g.first + 1), (unsigned long long)g.first,
           (unsigned long long)g.last, (unsigned long long)cps, cps == 1 ? "" : "s", a->output,
           log_hex(hex, sizeof hex, file_hash, sizeof file_hash));
    return 0;
}
