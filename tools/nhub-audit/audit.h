/*
 * nhub-audit's parts: one file per command (verify.c, proofs.c, ...) and the
 * helpers they share (common.c), wired by main.c's table of commands.
 *
 * Contract of a command: it gets the parsed arguments, and, when its table
 * entry asks for them, a reader of the hub's store (one LMDB read
 * transaction, never the writer's lock: the hub runs on) and the hub's
 * verifier key. It writes its result on stdout and returns the exit status:
 * 0 done or verified, 1 a problem was found (one line names it), 2 a usage
 * error or something that cannot be read. It never writes to the store.
 */
#ifndef NHUB_AUDIT_H
#define NHUB_AUDIT_H

#include "store.h"
#include "tlog.h"

#include <stddef.h>
#include <stdint.h>

#define AUDIT_POS_MAX 8 /* positional arguments after the command */

/* Every option of every command; main.c's option table fills them. A
 * command reads the ones it documents and main.c refuses the others. */
typedef struct audit_args {
    const char *cmd;
    const char *data;      /* --data DIR */
    const char *vkey;      /* --vkey VKEY */
    const char *vkey_file; /* --vkey-file FILE */
    const char *record;    /* --record FILE_OR_LEAFHEX */
    const char *size_text; /* --size N */
    const char *pos[AUDIT_POS_MAX];
    size_t npos;
} audit_args_t;

enum {
    AUDIT_NEEDS_STORE = 1u << 0, /* r is a reader of --data's store */
    AUDIT_NEEDS_VKEY = 1u << 1,  /* vkey is required (else optional) */
};

typedef int (*audit_run_fn)(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);

/* ---- the commands ---- */
int audit_verify(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);
int audit_prove(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);
int audit_record(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);
int audit_check_proof(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);
int audit_consistency(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);
int audit_check_consistency(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);

/* ---- common.c ---- */

/* The whole of file `path` into a new buffer (NUL-terminated), at most `max`
 * bytes. Returns it (caller frees) and *len, or NULL. */
char *audit_read_all(const char *path, size_t max, size_t *len);

/* A verifier key from its text or a file's first line; NULL with a message. */
tlog_verifier_t *audit_load_vkey(const char *text, const char *file);

/* A decimal number above zero; -1 otherwise. */
int audit_parse_u64(const char *s, uint64_t *out);

/* 64 hex digits into 32 bytes; -1 otherwise. */
int audit_unhex32(const char *s, uint8_t out[32]);

/* A msg_id or case id as nhub prints them (32 hex digits, either case)
 * into 16 bytes; -1 otherwise. */
int audit_unhex_id(const char *s, uint8_t out[16]);

/*
 * The seq of the record that brought message `msg_id` into the journal:
 * its ACCEPTED event (or the HUB_MESSAGE of a message the hub made).
 * Returns 0 and *seq, NHUB_ENOTFOUND, or a store error. The one place that
 * looks a message up, so that it can move to an index of msg_ids when the
 * store keeps one; today it walks the journal.
 */
int audit_find_message(store_reader_t *r, const uint8_t msg_id[16], uint64_t *seq);

/*
 * A record named by `arg`: a SEQ (decimal from 1) or a MSG_ID (32 hex
 * digits: its ACCEPTED record). Returns 0 and *seq, 1 if no such message
 * (said on stderr), 2 if `arg` is neither (said too, naming `cmd`).
 */
int audit_record_arg(store_reader_t *r, const char *cmd, const char *arg, uint64_t *seq);

/* The time of record `seq` from its decoded event, ISO 8601 UTC, or "-". */
const char *audit_record_time(store_reader_t *r, uint64_t seq, char *buf, size_t cap);

/* Seconds on the monotonic clock. */
double audit_now_s(void);

#endif
