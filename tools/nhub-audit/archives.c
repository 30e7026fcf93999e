/*
 * nhub-audit verify --archive FILE... [--data DIR] [--vkey VKEY | --vkey-file FILE]
 *
 * Archive files (proto/archive.h) verified in the order given, then the
 * live store: one walk of the chain and the tree (verify.c) goes through
 * every record of every file and on into the store. Each file must take
 * up exactly where the one before ended: its first seq, its chain hash
 * before it and its tree state at its start are the previous file's end
 * (a dropped file is a gap, named with the file after it). Inside a file
 * every record's chain hash and leaf are recomputed, every checkpoint it
 * holds is checked against the recomputed root (and its signature), and
 * its trailer against the walk: the end state, the last chain hash and the
 * hash of the whole file, so a changed byte anywhere is found. The store's
 * first live record must continue the last file.
 *
 * The first file's start state is taken from it (a file starting at seq 1
 * must start from nothing); its checkpoints are what ties it to the hub.
 * A failure prints one line, "FAIL FILE: seq N at TIME: what", and exits 1.
 */
#include "archive.h"
#include "audit.h"
#include "log.h"
#include "nhub_err.h"
#include "store.h"
#include "tlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The checkpoints of one file, read before its records. */
typedef struct cp_list {
    uint64_t *sizes;
    char **notes;
    size_t *lens;
    size_t n, cap, next;
} cp_list_t;

static void cp_list_free(cp_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->notes[i]);
    free(l->sizes);
    free(l->notes);
    free(l->lens);
    memset(l, 0, sizeof *l);
}

static int cp_list_add(cp_list_t *l, uint64_t size, const char *note, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        uint64_t *s = realloc(l->sizes, cap * sizeof *s);
        if (s)
            l->sizes = s;
        char **n = realloc(l->notes, cap * sizeof *n);
        if (n)
            l->notes = n;
        size_t *ln = realloc(l->lens, cap * sizeof *ln);
        if (ln)
            l->lens = ln;
        if (!s || !n || !ln)
            return NHUB_ENOMEM;
        l->cap = cap;
    }
    if (!(l->notes[l->n] = malloc(len + 1)))
        return NHUB_ENOMEM;
    memcpy(l->notes[l->n], note, len);
    l->notes[l->n][len] = '\0';
    l->sizes[l->n] = size;
    l->lens[l->n] = len;
    l->n++;
    return 0;
}

/* audit_verify_t.next_checkpoint over a file's list. */
static int list_next_checkpoint(audit_verify_t *v)
{
    cp_list_t *l = v->cp_arg;
    if (l->next >= l->n) {
        v->next_cp = 0;
        return 0;
    }
    v->next_cp = l->sizes[l->next];
    v->cp_note = l->notes[l->next];
    v->cp_len = l->lens[l->next];
    l->next++;
    return 0;
}

/* Where the walk is and what a failure names. */
typedef struct walk {
    audit_verify_t v;
    int started;
    uint8_t hub_id[ARCHIVE_ID_LEN];
    const char *file;      /* the file being read, NULL in the live store */
    const uint8_t *record; /* the record being checked (its value, in the reader) */
    size_t record_len;
    uint64_t record_seq;
    char when[64]; /* the time of the record a failure in a file names, or "" */
} walk_t;

/* The file's header against where the walk is (or starts the walk). */
static int check_header(walk_t *w, const archive_header_t *h, const tlog_verifier_t *vkey)
{
    static const uint8_t zero[ARCHIVE_HASH_LEN];
    audit_verify_t *v = &w->v;
    if (!w->started) {
        if (h->first_seq == 1 && memcmp(h->prev_hash, zero, sizeof zero) != 0)
            return audit_verify_fail(v, 1, "the file starts at seq 1 with a chain hash before it");
        if (audit_verify_begin(v, NULL, vkey, h->alg, h->first_seq, h->prev_hash, h->state,
                               h->state_len) != 0)
            return NHUB_EINVAL;
        memcpy(w->hub_id, h->hub_id, ARCHIVE_ID_LEN);
        w->started = 1;
        return 0;
    }
    uint8_t state[TLOG_STATE_MAX];
    size_t len = 0;
    if (h->first_seq != v->last + 1)
        return audit_verify_fail(v, v->last + 1,
                                 "the file starts at seq %llu, the one before it ended at %llu "
                                 "(records %llu..%llu are in no file given: one is missing)",
                                 (unsigned long long)h->first_seq, (unsigned long long)v->last,
                                 (unsigned long long)(v->last + 1),
                                 (unsigned long long)(h->first_seq - 1));
    if (memcmp(h->hub_id, w->hub_id, ARCHIVE_ID_LEN) != 0 || h->alg != tlog_state_alg(v->tree))
        return audit_verify_fail(v, h->first_seq, "the file is of another hub or tree hash");
    if (memcmp(h->prev_hash, v->prev, STORE_HASH_LEN) != 0)
        return audit_verify_fail(v, h->first_seq,
                                 "the chain hash before the file is not the previous file's last");
    if (tlog_state_encode(v->tree, state, sizeof state, &len) != 0 || len != h->state_len ||
        memcmp(state, h->state, len) != 0)
        return audit_verify_fail(v, h->first_seq,
                                 "the tree state at the file's start is not the previous file's end");
    return 0;
}

static int read_checkpoints(walk_t *w, archive_reader_t *ar, const archive_header_t *h,
                            cp_list_t *l)
{
    uint64_t size, prev = 0;
    const char *note;
    size_t len;
    char err[256];
    int rc;
    while ((rc = archive_reader_checkpoint(ar, &size, &note, &len, err, sizeof err)) == 0) {
        if (size < h->first_seq || size > h->last_seq || size <= prev)
            return audit_verify_fail(&w->v, size,
                                     "checkpoint %llu: out of order or outside the file's range",
                                     (unsigned long long)size);
        if ((rc = cp_list_add(l, size, note, len)) != 0)
            return rc;
        prev = size;
    }
    if (rc == NHUB_ENOTFOUND)
        return 0;
    return audit_verify_fail(&w->v, h->first_seq, "%s", err);
}

static int read_records(walk_t *w, archive_reader_t *ar)
{
    uint64_t seq;
    const uint8_t *value;
    size_t len;
    char err[256];
    int rc;
    while ((rc = archive_reader_record(ar, &seq, &value, &len, err, sizeof err)) == 0) {
        w->record = value;
        w->record_len = len;
        w->record_seq = seq;
        if (len < STORE_HASH_LEN)
            return audit_verify_fail(&w->v, seq, "record shorter than its chain hash");
        if ((rc = audit_verify_record(&w->v, seq, value, value + STORE_HASH_LEN,
                                      len - STORE_HASH_LEN)) != 0)
            return rc;
    }
    w->record = NULL;
    if (rc == NHUB_ENOTFOUND)
        return 0;
    return audit_verify_fail(&w->v, w->v.last + 1, "%s", err);
}

static int check_trailer(walk_t *w, archive_reader_t *ar)
{
    audit_verify_t *v = &w->v;
    archive_trailer_t t;
    uint8_t state[TLOG_STATE_MAX];
    size_t len = 0;
    char err[256];
    if (v->next_cp)
        return audit_verify_fail(v, v->next_cp, "checkpoint %llu: no record of that size",
                                 (unsigned long long)v->next_cp);
    if (archive_reader_trailer(ar, &t, err, sizeof err) != 0)
        return audit_verify_fail(v, v->last, "%s", err);
    if (tlog_state_encode(v->tree, state, sizeof state, &len) != 0 || len != t.state_len ||
        memcmp(state, t.state, len) != 0)
        return audit_verify_fail(v, v->last, "the trailer's tree state differs from the records'");
    if (memcmp(t.last_hash, v->prev, STORE_HASH_LEN) != 0)
        return audit_verify_fail(v, v->last, "the trailer's chain hash differs from the records'");
    if (memcmp(t.file_hash, t.computed_hash, ARCHIVE_HASH_LEN) != 0)
        return audit_verify_fail(v, v->last,
                                 "the file hash differs: a byte of its checkpoints or trailer "
                                 "was changed");
    return 0;
}

/* One file, all through. */
static int verify_file(walk_t *w, const char *path, const tlog_verifier_t *vkey)
{
    archive_header_t h;
    archive_reader_t *ar = NULL;
    cp_list_t l;
    char err[256];
    memset(&l, 0, sizeof l);
    w->file = path;
    int rc = archive_reader_open(path, &ar, &h, err, sizeof err);
    if (rc != 0) {
        if (!w->started) {
            fprintf(stderr, "nhub-audit: %s: %s\n", path, err);
            return NHUB_EINVAL;
        }
        return audit_verify_fail(&w->v, w->v.last + 1, "%s", err);
    }
    if ((rc = check_header(w, &h, vkey)) == 0 && (rc = read_checkpoints(w, ar, &h, &l)) == 0) {
        w->v.cp_arg = &l;
        w->v.next_checkpoint = list_next_checkpoint;
        w->v.next_cp = 0;
        if ((rc = list_next_checkpoint(&w->v)) == 0 && (rc = read_records(w, ar)) == 0)
            rc = check_trailer(w, ar);
        w->v.next_checkpoint = NULL;
        w->v.cp_arg = NULL;
    }
    /* The failing record's time, while the reader still holds its bytes. */
    if (rc && w->record && w->record_seq == w->v.bad_seq && w->record_len > STORE_HASH_LEN)
        audit_event_time(w->record + STORE_HASH_LEN, w->record_len - STORE_HASH_LEN, w->when,
                         sizeof w->when);
    w->record = NULL;
    cp_list_free(&l);
    archive_reader_free(&ar);
    return rc;
}

/* The live store takes over where the last file ended. */
static int continue_into_store(walk_t *w, store_reader_t *r, uint8_t root[TLOG_HASH_LEN])
{
    audit_verify_t *v = &w->v;
    uint64_t start;
    uint8_t prev[STORE_HASH_LEN];
    const void *ev;
    size_t len;
    const uint8_t *hash;
    w->file = NULL;
    if (memcmp(store_reader_hub_id(r), w->hub_id, ARCHIVE_ID_LEN) != 0)
        return audit_verify_fail(v, v->last, "the archives are of another hub than the store");
    int rc = store_journal_start(r, &start, prev);
    if (rc)
        return rc;
    if (start > v->last + 1)
        return audit_verify_fail(v, v->last + 1,
                                 "the live store starts at seq %llu, the archives end at %llu "
                                 "(records %llu..%llu are in no file given)",
                                 (unsigned long long)start, (unsigned long long)v->last,
                                 (unsigned long long)(v->last + 1),
                                 (unsigned long long)(start - 1));
    /* Records still in both (archived, not pruned yet) must be the same. */
    if (start <= v->last && store_journal_get(r, v->last, &ev, &len, &hash) == 0 &&
        memcmp(hash, v->prev, STORE_HASH_LEN) != 0)
        return audit_verify_fail(v, v->last, "the live store's record differs from the archive's");
    if (start == v->last + 1 && memcmp(prev, v->prev, STORE_HASH_LEN) != 0)
        return audit_verify_fail(v, start, "the live store does not continue the last archive");
    v->r = r;
    if ((rc = store_tree_info(r, &v->tree_size, NULL, NULL)) != 0)
        return audit_verify_fail(v, v->last, "the store has no tree (%s)", nhub_strerror(rc));
    return audit_verify_store(v, root);
}

int audit_verify_archives(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey)
{
    walk_t w;
    uint8_t root[TLOG_HASH_LEN];
    char when[64];
    memset(&w, 0, sizeof w);
    double t0 = audit_now_s();
    int rc = 0;
    for (size_t i = 0; i < a->narchives && rc == 0; i++)
        rc = verify_file(&w, a->archives[i], vkey);
    uint64_t archived_end = w.v.last;
    if (rc == 0 && r)
        rc = continue_into_store(&w, r, root);
    else if (rc == 0)
        rc = tlog_root(w.v.tree, root) == 0 ? 0 : NHUB_ECRYPTO;
    double secs = audit_now_s() - t0;
    if (rc != 0 && !w.v.what[0]) {
        if (rc != NHUB_EINVAL)
            fprintf(stderr, "nhub-audit: cannot read: %s\n", nhub_strerror(rc));
        audit_verify_end(&w.v);
        return 2;
    }
    if (rc != 0) {
        if (w.file && w.when[0])
            snprintf(when, sizeof when, "%s", w.when);
        else
            audit_record_time(w.file ? NULL : r, w.v.bad_seq, when, sizeof when);
        printf("FAIL %s: seq %llu at %s: %s\n", w.file ? w.file : a->data,
               (unsigned long long)w.v.bad_seq, when, w.v.what);
        audit_verify_end(&w.v);
        return 1;
    }
    /* Chain, tree and file hash are unkeyed: anyone can make a file that
     * holds together. Only a checkpoint signed by the hub ties the records
     * to it, so with the key and files alone every record must be under
     * one. With --data the live store anchors them instead: its first
     * record's chain and its stored tree continue the files, and its own
     * tail after its last checkpoint is as unsigned as theirs. */
    if (vkey && !r && w.v.covered < archived_end) {
        printf("FAIL %s: seq %llu at -: records %llu..%llu are covered by no checkpoint signed "
               "by %s in what was given (%s)\n",
               a->archives[a->narchives - 1], (unsigned long long)(w.v.covered + 1),
               (unsigned long long)(w.v.covered + 1), (unsigned long long)archived_end,
               tlog_verifier_name(vkey),
               w.v.checkpoints ? "the chain and tree hold, but nothing signs them"
                               : "no checkpoint at all: nothing in them is the hub's");
        audit_verify_end(&w.v);
        return 1;
    }
    printf("OK %llu records (seq %llu to %llu) in %zu archive file%s%s, ",
           (unsigned long long)w.v.records, (unsigned long long)w.v.first,
           (unsigned long long)w.v.last, a->narchives, a->narchives == 1 ? "" : "s",
           r ? " and the live store" : "");
    if (w.v.first > 1)
        printf("the state before seq %llu taken from the first file, ",
               (unsigned long long)w.v.first);
    audit_verify_print_ok(&w.v, root, secs);
    audit_verify_end(&w.v);
    return 0;
}
