/*
 * nhub-audit consistency, check-consistency: that the log only ever grew
 * between two signed checkpoints (RFC 9162 2.1.4), as a file anyone who
 * kept the old checkpoint can check offline (tlog.h, "consistency proof
 * files": both signed notes inside, the hash named).
 *
 *   nhub-audit consistency --data DIR OLD NEW
 *   nhub-audit check-consistency (--vkey VKEY | --vkey-file FILE) PROOF_FILE
 *
 * OLD and NEW are tree sizes of checkpoints the store keeps (NEW may be
 * "latest"), or files holding a signed checkpoint as the auditor kept it.
 * A kept checkpoint goes into the proof as it is, after its root has been
 * compared with the store's tree at its size: one that differs is the
 * evidence of a log that was rewritten, and said so (exit 1).
 */
#include "audit.h"
#include "log.h"
#include "nhub_err.h"
#include "store.h"
#include "tlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONS_FILE_MAX (3 * TLOG_NOTE_MAX)

/* One end of the proof: its note (from the store, or `text` read from a file). */
typedef struct cons_end {
    const char *note;
    size_t len;
    uint64_t size;
    char *text; /* owned when read from a file */
} cons_end_t;

/* The checkpoint named by `arg`: 0, 1 (not there, or not the store's), 2 (unreadable). */
static int cons_end_load(store_reader_t *r, const char *arg, cons_end_t *e)
{
    uint64_t want = 0, got = 0;
    uint8_t root[TLOG_HASH_LEN];
    char err[256];
    tlog_note_t note;
    tlog_checkpoint_t cp;
    memset(e, 0, sizeof *e);
    if (strcmp(arg, "latest") == 0 || audit_parse_u64(arg, &want) == 0) {
        if (store_checkpoint_get(r, want, &e->note, &e->len, &e->size) == 0)
            return 0;
        if (want)
            fprintf(stderr, "nhub-audit: no checkpoint of size %s in the store\n", arg);
        else
            fprintf(stderr, "nhub-audit: the store has no checkpoint yet\n");
        return 1;
    }
    if (!(e->text = audit_read_all(arg, TLOG_NOTE_MAX, &e->len))) {
        fprintf(stderr, "nhub-audit consistency: \"%s\" is neither a tree size, \"latest\" nor a "
                        "readable checkpoint file\n",
                arg);
        return 2;
    }
    e->note = e->text;
    if (tlog_note_parse(e->note, e->len, &note, err, sizeof err) != 0 ||
        tlog_checkpoint_parse(note.text, note.text_len, &cp, err, sizeof err) != 0) {
        fprintf(stderr, "nhub-audit: %s is not a signed checkpoint: %s\n", arg, err);
        return 2;
    }
    e->size = cp.size;
    if (store_tree_info(r, &got, NULL, NULL) != 0 || cp.size > got) {
        printf("FAIL the checkpoint in %s (size %llu) is beyond the store's tree (size %llu)\n",
               arg, (unsigned long long)cp.size, (unsigned long long)got);
        return 1;
    }
    if (store_tree_root_at(r, cp.size, root) != 0 || memcmp(root, cp.root, TLOG_HASH_LEN) != 0) {
        printf("FAIL the checkpoint in %s (size %llu): its root differs from the store's tree "
               "at that size\n",
               arg, (unsigned long long)cp.size);
        return 1;
    }
    return 0;
}

int audit_consistency(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey)
{
    (void)vkey;
    cons_end_t old, new;
    tlog_consistency_file_t f;
    size_t cap = 0, out_len = 0;
    char *out = NULL;
    memset(&f, 0, sizeof f);
    int rc = cons_end_load(r, a->pos[0], &old);
    if (rc == 0)
        rc = cons_end_load(r, a->pos[1], &new);
    else
        memset(&new, 0, sizeof new);
    if (rc != 0)
        goto done;
    rc = 2;
    if (old.size > new.size) {
        fprintf(stderr, "nhub-audit consistency: OLD (size %llu) is larger than NEW (size %llu)\n",
                (unsigned long long)old.size, (unsigned long long)new.size);
        goto done;
    }
    f.old_size = old.size;
    f.new_size = new.size;
    f.old_note = old.note;
    f.old_len = old.len;
    f.new_note = new.note;
    f.new_len = new.len;
    uint64_t tree = 0;
    int prc = store_tree_info(r, &tree, NULL, &f.alg);
    if (prc == 0)
        prc = store_tree_prove_consistency(r, old.size, new.size, f.proof, TLOG_PROOF_MAX, &f.len);
    cap = old.len + new.len + 256 + TLOG_PROOF_MAX * 48;
    if (prc == 0 && !(out = malloc(cap)))
        prc = NHUB_ENOMEM;
    if (prc == 0)
        prc = tlog_consistency_format(&f, out, cap, &out_len);
    if (prc != 0) {
        fprintf(stderr, "nhub-audit: cannot prove size %llu to %llu: %s\n",
                (unsigned long long)old.size, (unsigned long long)new.size, nhub_strerror(prc));
        goto done;
    }
    rc = fwrite(out, 1, out_len, stdout) == out_len && fflush(stdout) == 0 ? 0 : 2;
done:
    free(out);
    free(old.text);
    free(new.text);
    return rc;
}

/* Both notes open with `vkey`, and their sizes are the header's. */
static int cons_open_notes(const tlog_consistency_file_t *p, const tlog_verifier_t *vkey,
                           tlog_checkpoint_t *a, tlog_checkpoint_t *b)
{
    char err[256];
    const char *which = "old";
    int rc = tlog_checkpoint_open(p->old_note, p->old_len, vkey, a, err, sizeof err);
    if (rc == 0) {
        which = "new";
        rc = tlog_checkpoint_open(p->new_note, p->new_len, vkey, b, err, sizeof err);
    }
    if (rc != 0) {
        printf("FAIL the %s checkpoint: signature does not verify with key %s (%s)\n", which,
               tlog_verifier_name(vkey), err);
        return 1;
    }
    if (a->size != p->old_size || b->size != p->new_size) {
        printf("FAIL the checkpoints are of sizes %llu and %llu, the file says %llu and %llu\n",
               (unsigned long long)a->size, (unsigned long long)b->size,
               (unsigned long long)p->old_size, (unsigned long long)p->new_size);
        return 1;
    }
    if (strcmp(a->origin, b->origin) != 0) {
        printf("FAIL the checkpoints are of two logs: \"%s\" and \"%s\"\n", a->origin, b->origin);
        return 1;
    }
    return 0;
}

int audit_check_consistency(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey)
{
    (void)r;
    size_t len = 0;
    char err[256];
    tlog_checkpoint_t old, new;
    tlog_hasher_t *h = NULL;
    tlog_consistency_file_t *p = malloc(sizeof *p);
    char *text = p ? audit_read_all(a->pos[0], CONS_FILE_MAX, &len) : NULL;
    int rc = 2;
    if (!text) {
        fprintf(stderr, "nhub-audit: cannot read the proof file %s\n", a->pos[0]);
        goto done;
    }
    rc = 1;
    if (tlog_consistency_parse(text, len, p, err, sizeof err) != 0) {
        printf("FAIL the proof file does not parse: %s\n", err);
        goto done;
    }
    if ((rc = cons_open_notes(p, vkey, &old, &new)) != 0)
        goto done;
    if (tlog_hasher_new(p->alg, &h, err, sizeof err) != 0) {
        fprintf(stderr, "nhub-audit: %s\n", err);
        rc = 2;
        goto done;
    }
    rc = tlog_verify_consistency(h, old.size, new.size, old.root, new.root, p->proof, p->len);
    if (rc != 0) {
        printf("FAIL the tree of size %llu does not extend the one of size %llu (%s)\n",
               (unsigned long long)new.size, (unsigned long long)old.size,
               rc == NHUB_EINVAL ? "the proof has the wrong number of hashes"
                                 : "the proof does not join the two roots");
        rc = 1;
        goto done;
    }
    printf("OK the tree of size %llu extends the one of size %llu (%s, %s), both signed by %s\n",
           (unsigned long long)new.size, (unsigned long long)old.size, old.origin,
           tlog_alg_name(p->alg), tlog_verifier_name(vkey));
done:
    tlog_hasher_free(&h);
    free(text);
    free(p);
    return rc;
}
