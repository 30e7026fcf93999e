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

#include "nhub_journal.pb-c.h"
#include <jansson.h>
#include "seal.h"
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
    const char *hash;      /* --hash sha256|sm3 */
    const char *from;      /* --from T */
    const char *to;        /* --to T */
    const char *region;    /* --region R */
    const char *item;      /* --item I */
    const char *case_id;   /* --case ID */
    const char *msg;       /* --msg ID */
    const char *into;      /* --into ENDPOINT */
    const char *keys;      /* --keys DIR */
    const char *hub_key_file; /* --hub-key-file FILE */
    const char *work;      /* --work DIR */
    const char *timeout;   /* --timeout MS */
    const char *payload_key_file; /* --payload-key-file FILE */
    int payloads;          /* --payloads */
    int json;              /* --json */
    int insecure;          /* --insecure-plaintext */
    const char *output;    /* -o FILE */
    const char *pos[AUDIT_POS_MAX];
    size_t npos;
    char *const *archives; /* --archive FILE...: the files that follow it */
    size_t narchives;
} audit_args_t;

enum {
    AUDIT_NEEDS_STORE = 1u << 0, /* r is a reader of --data's store */
    AUDIT_NEEDS_VKEY = 1u << 1,  /* vkey is required (else optional) */
    AUDIT_OR_ARCHIVES = 1u << 2, /* the store is needed unless --archive is given */
};

typedef int (*audit_run_fn)(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);

/* ---- the commands ---- */
int audit_verify(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);
int audit_prove(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);
int audit_record(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);
int audit_check_proof(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);
int audit_consistency(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);
int audit_check_consistency(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);
int audit_replay(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);
int audit_trace(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);

/* ---- events.c: the journal's events, selected ---- */

typedef Nhub__Journal__V1__JournalEvent audit_event_t;

/* Which records; zero fields select everything. Each of time, region and
 * item narrows the selection; a message's and a case's story, both given,
 * select the records of either. */
typedef struct audit_filter {
    int has_from, has_to;
    int64_t from_ms, to_ms; /* the record's time in [from, to) */
    const char *region;     /* its source, destination (a broadcast's "*" too) or region */
    const char *item;       /* its item, or that of the message it is about (ref_seq) */
    int has_msg, has_case;
    uint8_t msg_id[16];     /* the message's story: its record, what names it or points at it */
    uint8_t case_id[16];    /* the case's story: its records and its messages' stories */
    seal_key_t *payload_key; /* --payload-key-file: sealed envelopes are opened with it */
} audit_filter_t;

/* --from, --to, --region, --item, --msg, --case and --payload-key-file of
 * `a` into *f (memset by the caller or by audit_filter_parse). 0, or 2 with
 * a message naming the option. audit_filter_release frees what they hold. */
int audit_filter_parse(const audit_args_t *a, audit_filter_t *f);
int audit_filter_key(const audit_args_t *a, audit_filter_t *f);
void audit_filter_release(audit_filter_t *f);

/* Called with each record selected, in seq order: its bytes and decoded
 * event (both valid during the call; with the filter's payload key, a
 * sealed envelope is given opened, as the region sent it; one that does
 * not open stays sealed and is counted on stderr at the end). 0 goes on; anything else stops the
 * walk and is returned. */
typedef int (*audit_event_fn)(void *arg, uint64_t seq, const void *raw, size_t len,
                              const audit_event_t *e);

/* Walk the journal for the records `f` selects. Returns 0, fn's answer, or
 * a negative NHUB_E* code (said on stderr). */
int audit_events(store_reader_t *r, const audit_filter_t *f, audit_event_fn fn, void *arg);

/* The name of enum value `value` without `prefix`, lower case
 * (EVENT_CASE_DELIVERED -> case_delivered), or its number. Returns buf. */
const char *audit_enum_name(const ProtobufCEnumDescriptor *d, int value, const char *prefix,
                            char *buf, size_t cap);

/* into.c: replay --into: the ACCEPTED records `f` selects sent again to
 * the hub at a->into. Returns the exit status. */
int audit_into(const audit_args_t *a, store_reader_t *r, const audit_filter_t *f);

/* replay.c: record `seq` as the JSON object of a replay line (a new
 * reference, or NULL if out of memory); `payloads`: decode the payload. */
json_t *audit_event_json(uint64_t seq, const audit_event_t *e, int payloads);


int audit_export(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);

/* verify --archive FILE... [--data DIR] (archives.c). */
int audit_verify_archives(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey);

/* ---- verify.c: the walk of the chain and the tree, record by record ---- */

typedef struct audit_verify {
    store_reader_t *r;           /* the live store, whose stored tree is checked too; or NULL */
    const tlog_verifier_t *vkey; /* NULL: signatures are not checked */
    tlog_state_t *tree;          /* recomputed from the records' leaves */
    struct evp_md_ctx_st *md;
    uint8_t prev[STORE_HASH_LEN]; /* the chain hash of the last record walked */
    uint64_t first;               /* the first record walked */
    uint64_t last;                /* the last one (first - 1 before any) */
    uint64_t records;             /* walked */
    uint64_t tree_size;           /* the stored tree's (with r) */
    uint64_t next_cp;             /* the next checkpoint's size, 0 if none */
    const char *cp_note;
    size_t cp_len;
    /* Moves next_cp, cp_note, cp_len to the checkpoint after next_cp (0: no
     * more); NULL: the store's. 0 or audit_verify_fail's code. */
    int (*next_checkpoint)(struct audit_verify *v);
    void *cp_arg;
    uint64_t checkpoints; /* checked */
    uint64_t covered;     /* the largest of their sizes: records up to it are signed for */
    uint64_t bad_seq;     /* the record a failure names */
    char what[512];       /* and what is wrong with it */
} audit_verify_t;

/*
 * Start a walk at record `next` with `prev`, the chain hash of the record
 * before it, and the tree of the records before it (`state` as
 * tlog_state_encode wrote it; NULL: the empty tree). `r` (may be NULL): the
 * store whose stored tree and checkpoints are checked as well; the first
 * checkpoint looked at is the first of a size >= next. Returns 0, or 2
 * with a message on stderr. Free with audit_verify_end.
 */
int audit_verify_begin(audit_verify_t *v, store_reader_t *r, const tlog_verifier_t *vkey,
                       tlog_alg_t alg, uint64_t next, const uint8_t prev[STORE_HASH_LEN],
                       const uint8_t *state, size_t state_len);

/* One record, in seq order (a store_journal_fn): its chain hash, its leaf,
 * and each checkpoint its seq reaches. 0 or NHUB_EMALFORMED (v->what). */
int audit_verify_record(void *v, uint64_t seq, const uint8_t hash[STORE_HASH_LEN],
                        const void *event, size_t len);

/* Walk the store's records from v->last + 1 to its end, then check its
 * tree's end against the recomputed one; root = that root. 0, NHUB_EMALFORMED
 * (v->what) or a store error. */
int audit_verify_store(audit_verify_t *v, uint8_t root[TLOG_HASH_LEN]);

/* Name what is wrong (the record `seq`); returns NHUB_EMALFORMED. */
int audit_verify_fail(audit_verify_t *v, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void audit_verify_end(audit_verify_t *v);

/* The "OK ..." line's end: "K checkpoints (signatures ...), root HEX (alg), S s, R records/s". */
void audit_verify_print_ok(const audit_verify_t *v, const uint8_t root[TLOG_HASH_LEN], double secs);

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
 * looks a message up: the store's msg_id index (store_msg_seq), then a walk
 * of the journal for what the index does not hold.
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

/* The time of an encoded JournalEvent, ISO 8601 UTC, or "-". */
const char *audit_event_time(const void *event, size_t len, char *buf, size_t cap);

#endif
