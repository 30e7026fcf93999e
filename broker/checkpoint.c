/*
 * checkpoint.c: the hub's signed checkpoints of the journal's Merkle tree
 * (see hub_internal.h, "checkpoints").
 *
 * A checkpoint is made inside a transaction that appended records, once
 * audit.checkpoint_every records have been added since the last one, or by
 * housekeeping once audit.checkpoint_interval has passed with records not
 * yet covered. It covers the tree as that transaction grew it; the note
 * goes into `checkpoints` and into the journal as an EVENT_CHECKPOINT
 * (which is itself the next leaf, covered by the next checkpoint). The note
 * is signed with the hub's signing key (security.key_file); in the
 * development mode without one it is the bare body.
 */
#include "hub_internal.h"

#include <stdlib.h>

int checkpoint_setup(hub_t *h, char *err, size_t errcap)
{
    store_reader_t *r = NULL;
    const char *note;
    size_t len;
    uint64_t size = 0;
    if (store_reader_open(h->store, &r) == 0) {
        if (store_checkpoint_get(r, 0, &note, &len, &size) != 0)
            size = 0;
        store_reader_close(&r);
    }
    h->cp_size = size;
    h->cp_at = hub_now_mono(h);
    if (!h->cfg->security.key_file[0])
        return 0;
    int rc = keys_load(h->cfg->security.key_file, &h->cp_keys, err, errcap);
    if (rc == 0)
        rc = tlog_signer_new(h->cfg->audit.origin, h->cp_keys, &h->cp_signer, err, errcap);
    if (rc)
        keys_free(&h->cp_keys);
    return rc;
}

void checkpoint_teardown(hub_t *h)
{
    tlog_signer_free(&h->cp_signer);
    keys_free(&h->cp_keys);
}

int checkpoint_vkey(const hub_t *h, char *out, size_t cap)
{
    return h->cp_signer ? tlog_signer_vkey(h->cp_signer, out, cap) : NHUB_ENOTFOUND;
}

#define CHECKPOINT_NOTE_MAX (TLOG_NAME_MAX + 1024)

/* The note of the tree of `size` with `root`: signed with the hub's key,
 * or the bare body in the development mode. 0, or logged and an error. */
static int make_note(const hub_t *h, uint64_t size, const uint8_t root[TLOG_HASH_LEN],
                     char note[CHECKPOINT_NOTE_MAX], size_t *nlen)
{
    char body[TLOG_NAME_MAX + 128];
    size_t blen = 0;
    int rc =
        tlog_checkpoint_format(h->cfg->audit.origin, size, root, NULL, body, sizeof body, &blen);
    if (!rc && h->cp_signer)
        rc = tlog_note_sign(h->cp_signer, body, blen, note, CHECKPOINT_NOTE_MAX, nlen);
    else if (!rc) {
        memcpy(note, body, blen + 1);
        *nlen = blen;
    }
    if (rc)
        log_error("hub.checkpoint_failed", "size=%llu rc=%d", (unsigned long long)size, rc);
    return rc;
}

/* Keep the note and journal it (EVENT_CHECKPOINT), in t. */
static int keep_note(hub_t *h, store_txn_t *t, int64_t now_ms, uint64_t size, char *note,
                     size_t nlen)
{
    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CHECKPOINT;
    ev.time_ms = now_ms;
    ev.checkpoint = note;
    ev.tree_size = size;
    uint64_t seq;
    int rc = store_checkpoint_put(t, size, note, nlen);
    return rc ? rc : commit_journal_append(h, t, &ev, &seq);
}

int checkpoint_maybe(hub_t *h, store_txn_t *t, int64_t now_ms, int by_time)
{
    uint64_t size;
    uint8_t root[TLOG_HASH_LEN];
    int rc = store_txn_tree(t, &size, root);
    if (rc == NHUB_ENOTFOUND)
        return 0; /* no tree kept (hub_measure_chain_only) */
    if (rc || size <= h->cp_size)
        return rc;
    if (!by_time && size - h->cp_size < (uint64_t)h->cfg->audit.checkpoint_every)
        return 0;
    char note[CHECKPOINT_NOTE_MAX];
    size_t nlen = 0;
    if (make_note(h, size, root, note, &nlen) != 0)
        return 0; /* the records are kept; the next turn tries again */
    if ((rc = keep_note(h, t, now_ms, size, note, nlen)) != 0)
        return rc;
    h->cp_pending = size;
    return 0;
}

void checkpoint_committed(hub_t *h, int committed)
{
    if (committed && h->cp_pending) {
        h->cp_size = h->cp_pending;
        h->cp_at = hub_now_mono(h);
        h->n.checkpoints++;
    }
    h->cp_pending = 0;
}

static int by_time(hub_t *h, store_txn_t *t, void *arg)
{
    (void)arg;
    return checkpoint_maybe(h, t, clock_wall_ms(h->clock), 1);
}

int checkpoint_now(hub_t *h)
{
    if (h->full)
        return NHUB_EFULL; /* the reserve is for confirmations */
    int rc = hub_txn(h, by_time, NULL);
    checkpoint_committed(h, rc == 0);
    if (rc)
        log_error("hub.checkpoint_failed", "on_request=1 rc=%d", rc);
    return rc;
}

void checkpoint_housekeeping(hub_t *h)
{
    if (h->full || hub_now_mono(h) - h->cp_at < h->cfg->audit.checkpoint_interval_ms)
        return;
    store_reader_t *r = NULL;
    uint64_t size = 0;
    if (store_reader_open(h->store, &r) != 0)
        return;
    int rc = store_tree_info(r, &size, NULL, NULL);
    store_reader_close(&r);
    if (rc || size <= h->cp_size) {
        h->cp_at = hub_now_mono(h); /* nothing new: look again an interval later */
        return;
    }
    rc = hub_txn(h, by_time, NULL);
    checkpoint_committed(h, rc == 0);
    if (rc)
        log_error("hub.checkpoint_failed", "size=%llu rc=%d", (unsigned long long)size, rc);
}

struct past {
    uint64_t size;
    char note[CHECKPOINT_NOTE_MAX];
    size_t len;
};

static int keep_past(hub_t *h, store_txn_t *t, void *arg)
{
    struct past *p = arg;
    return keep_note(h, t, clock_wall_ms(h->clock), p->size, p->note, p->len);
}

int checkpoint_at(hub_t *h, uint64_t size)
{
    store_reader_t *r = NULL;
    const char *note;
    size_t len;
    uint64_t got = 0;
    uint8_t root[TLOG_HASH_LEN];
    struct past *p = NULL;
    if (h->full)
        return NHUB_EFULL; /* the reserve is for confirmations */
    int rc = store_reader_open(h->store, &r);
    if (rc)
        return rc;
    if (store_checkpoint_get(r, size, &note, &len, &got) == 0 && got == size) {
        store_reader_close(&r);
        return 0; /* there is one */
    }
    rc = store_tree_root_at(r, size, root);
    store_reader_close(&r); /* before the writer's transaction */
    if (!rc && !(p = calloc(1, sizeof *p)))
        rc = NHUB_ENOMEM;
    if (!rc && (rc = make_note(h, size, root, p->note, &p->len)) == 0) {
        p->size = size;
        rc = hub_txn(h, keep_past, p);
        if (rc == 0)
            h->n.checkpoints++;
        else
            log_error("hub.checkpoint_failed", "size=%llu for=archive rc=%d",
                      (unsigned long long)size, rc);
    }
    free(p);
    return rc;
}
