/*
 * nhub-audit: the auditors' program over the hub's store, read while it runs.
 *
 * Each command is a file of its own (audit.h); this one is the table that
 * names them, their arguments and what they need, and the options parsed
 * once for all of them.
 */
#include "audit.h"
#include "log.h"
#include "store.h"
#include "tlog.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    audit_run_fn run;
    unsigned needs;          /* AUDIT_NEEDS_* */
    size_t min_pos, max_pos; /* positional arguments */
    const char *args;        /* what they are, for a message */
    const char *usage;       /* its lines in the usage text */
} command_t;

static const command_t COMMANDS[] = {
    {"verify", audit_verify, AUDIT_NEEDS_STORE | AUDIT_OR_ARCHIVES, 0, 0, NULL,
     "  verify --data DIR [--vkey VKEY | --vkey-file FILE]\n"
     "        every record in seq order: the hash chain, its leaf in the tree, the\n"
     "        tree's root at every checkpoint and at the end, every checkpoint note\n"
     "        (and its signature, with the hub's verifier key)\n"
     "  verify --archive FILE... [--data DIR] [--vkey VKEY | --vkey-file FILE]\n"
     "        the same through archive files in seq order (each continues the one\n"
     "        before: chain, tree state, no gap), then on into the live store\n"},
    {"prove", audit_prove, AUDIT_NEEDS_STORE, 1, 1, "SEQ or MSG_ID",
     "  prove --data DIR SEQ|MSG_ID [--size N]\n"
     "        the inclusion proof of record SEQ (or of message MSG_ID's ACCEPTED record)\n"
     "        in the checkpoint of size N (default: the latest), as a C2SP tlog-proof\n"
     "        file on stdout\n"},
    {"record", audit_record, AUDIT_NEEDS_STORE, 1, 1, "SEQ or MSG_ID",
     "  record --data DIR SEQ|MSG_ID\n"
     "        the bytes of the record (its JournalEvent, what the leaf hashes) on stdout\n"},
    {"check-proof", audit_check_proof, AUDIT_NEEDS_VKEY, 1, 1, "PROOF_FILE",
     "  check-proof (--vkey VKEY | --vkey-file FILE) PROOF_FILE --record FILE_OR_LEAFHEX\n"
     "              [--hash sm3]\n"
     "        check a proof offline: the checkpoint's signature, then that the record\n"
     "        (a file of its bytes, or its leaf hash in 64 hex digits) is in it (a tree\n"
     "        hashed with SM3: --hash sm3); PROOF_FILE may be a region's receipt\n"
     "        (nhub-adapter receipt), which names its hash and needs no --record\n"},
    {"consistency", audit_consistency, AUDIT_NEEDS_STORE, 2, 2, "OLD and NEW",
     "  consistency --data DIR OLD NEW\n"
     "        the proof that the tree of checkpoint NEW extends the one of OLD (each a\n"
     "        checkpoint's tree size, \"latest\", or a file of a signed checkpoint kept\n"
     "        earlier), both signed checkpoints inside, as a file on stdout\n"},
    {"check-consistency", audit_check_consistency, AUDIT_NEEDS_VKEY, 1, 1, "PROOF_FILE",
     "  check-consistency (--vkey VKEY | --vkey-file FILE) PROOF_FILE\n"
     "        check it offline: both checkpoints' signatures, then that the proof joins\n"
     "        the old root to the new one\n"},
    {"replay", audit_replay, AUDIT_NEEDS_STORE, 0, 0, NULL,
     "  replay --data DIR [--from T] [--to T] [--region R] [--item I] [--case ID]\n"
     "         [--msg ID] [--payloads]\n"
     "        the journal's records as JSON lines, in order: those from T (ISO 8601 UTC,\n"
     "        2026-12-07T10:55:24Z or 2026-12-07) to before T, of region R, item I, the\n"
     "        story of case or message ID; envelopes in base64, and with --payloads\n"
     "        their payloads decoded through the schemas; --payload-key-file FILE (the\n"
     "        hub's security.payload_key_file) opens envelopes sealed at rest\n"
     "  replay --data DIR [the same filters] --into ENDPOINT (--keys DIR --hub-key-file\n"
     "         FILE | --insecure-plaintext) [--work DIR] [--timeout MS]\n"
     "         [--payload-key-file FILE]\n"
     "        send the selected messages again, in journal order, to the test hub at\n"
     "        ENDPOINT as their regions' adapters (keys: DIR/CODE.key, the hub's .pub);\n"
     "        says how many were sent and acknowledged\n"},
    {"trace", audit_trace, AUDIT_NEEDS_STORE, 1, 1, "ID",
     "  trace --data DIR ID [--json] [--payload-key-file FILE]\n"
     "        the whole story of one message or case (ID: a msg_id or case id, 32 hex\n"
     "        digits) in journal order, one line a record (--json: replay's lines)\n"},
    {"export", audit_export, AUDIT_NEEDS_STORE, 0, 0, NULL,
     "  export --data DIR --from T --to T -o FILE\n"
     "        the records from T (included) to T (excluded) as an archive file that\n"
     "        verifies alone (verify --archive FILE); T: 2026-12-07T16:53:35Z, a date\n"
     "        2026-12-07 (its midnight UTC), or milliseconds since 1970\n"},
};

/* Options that take a value, and where it goes. */
static const struct {
    const char *name;
    size_t off; /* of a const char * in audit_args_t */
} OPTIONS[] = {
    {"--data", offsetof(audit_args_t, data)},
    {"--vkey", offsetof(audit_args_t, vkey)},
    {"--vkey-file", offsetof(audit_args_t, vkey_file)},
    {"--record", offsetof(audit_args_t, record)},
    {"--size", offsetof(audit_args_t, size_text)},
    {"--hash", offsetof(audit_args_t, hash)},
    {"--from", offsetof(audit_args_t, from)},
    {"--to", offsetof(audit_args_t, to)},
    {"--region", offsetof(audit_args_t, region)},
    {"--item", offsetof(audit_args_t, item)},
    {"--case", offsetof(audit_args_t, case_id)},
    {"--msg", offsetof(audit_args_t, msg)},
    {"--into", offsetof(audit_args_t, into)},
    {"--keys", offsetof(audit_args_t, keys)},
    {"--hub-key-file", offsetof(audit_args_t, hub_key_file)},
    {"--payload-key-file", offsetof(audit_args_t, payload_key_file)},
    {"--work", offsetof(audit_args_t, work)},
    {"--timeout", offsetof(audit_args_t, timeout)},
    {"-o", offsetof(audit_args_t, output)},
};

/* Options that take no value, and the flag they set. */
static const struct {
    const char *name;
    size_t off; /* of an int in audit_args_t */
} FLAGS[] = {
    {"--payloads", offsetof(audit_args_t, payloads)},
    {"--json", offsetof(audit_args_t, json)},
    {"--insecure-plaintext", offsetof(audit_args_t, insecure)},
};

/* 1 if `s` is a flag (and sets it). */
static int parse_flag(const char *s, audit_args_t *a)
{
    for (size_t i = 0; i < sizeof FLAGS / sizeof FLAGS[0]; i++)
        if (!strcmp(s, FLAGS[i].name)) {
            *(int *)((char *)a + FLAGS[i].off) = 1;
            return 1;
        }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: nhub-audit COMMAND [options]\n"
                 "\n"
                 "Verify the hub's journal and its transparency log, read from its store while\n"
                 "it runs (read-only, never blocks the hub); make and check inclusion and\n"
                 "consistency proofs; replay and trace what the journal holds.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fputs(COMMANDS[i].usage, out);
    fprintf(out, "\n"
                 "  --data DIR        the hub's data directory (hub.data_dir)\n"
                 "  --vkey VKEY       the hub's verifier key (NAME+HEX8+BASE64)\n"
                 "  --vkey-file FILE  the same, read from the first line of FILE\n"
                 "  --archive FILE... archive files (audit.archive_dir), oldest first\n"
                 "  --from T, --to T  a time range: [from, to)\n"
                 "  -o FILE           where export writes\n"
                 "  -h, --help        this text\n"
                 "\n"
                 "Exit status: 0 verified, 1 a problem was found (one line names it),\n"
                 "2 usage error or the store or a file cannot be read.\n");
}

static const command_t *find_command(const char *name)
{
    for (size_t i = 0; name && i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(COMMANDS[i].name, name))
            return &COMMANDS[i];
    return NULL;
}

/* 1 for --help, -1 with a message for a bad argument, else 0. */
static int parse_args(int argc, char **argv, audit_args_t *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        size_t o = 0, n = sizeof OPTIONS / sizeof OPTIONS[0];
        if (!strcmp(s, "-h") || !strcmp(s, "--help"))
            return 1;
        if (parse_flag(s, a))
            continue;
        if (!strcmp(s, "--archive")) { /* the files that follow, up to the next option */
            a->archives = argv + i + 1;
            while (i + 1 < argc && argv[i + 1][0] != '-') {
                a->narchives++;
                i++;
            }
            if (!a->narchives) {
                fprintf(stderr, "nhub-audit: --archive needs at least one file\n");
                return -1;
            }
            continue;
        }
        while (o < n && strcmp(s, OPTIONS[o].name) != 0)
            o++;
        if (o < n && i + 1 < argc) {
            *(const char **)((char *)a + OPTIONS[o].off) = argv[++i];
            continue;
        }
        if (o < n || s[0] == '-') {
            fprintf(stderr, "nhub-audit: %s \"%s\"\n",
                    o < n ? "a value is missing after" : "unknown option", s);
            return -1;
        }
        if (!a->cmd)
            a->cmd = s;
        else if (a->npos < AUDIT_POS_MAX)
            a->pos[a->npos++] = s;
        else {
            fprintf(stderr, "nhub-audit: too many arguments at \"%s\"\n", s);
            return -1;
        }
    }
    return 0;
}

/* The command's required arguments are there; a message otherwise. */
static int args_complete(const command_t *c, const audit_args_t *a)
{
    const char *missing = NULL;
    if (a->npos < c->min_pos || a->npos > c->max_pos) {
        fprintf(stderr, "nhub-audit %s: takes %s, %zu given\n", c->name,
                c->max_pos ? c->args : "no argument", a->npos);
        return 0;
    }
    if (a->narchives && !(c->needs & AUDIT_OR_ARCHIVES)) {
        fprintf(stderr, "nhub-audit %s: takes no --archive (verify does)\n", c->name);
        return 0;
    }
    if ((c->needs & AUDIT_NEEDS_STORE) && !a->data &&
        !((c->needs & AUDIT_OR_ARCHIVES) && a->narchives))
        missing = (c->needs & AUDIT_OR_ARCHIVES) ? "--data DIR or --archive FILE..." : "--data DIR";
    else if ((c->needs & AUDIT_NEEDS_VKEY) && !a->vkey && !a->vkey_file)
        missing = "--vkey or --vkey-file";
    else if (a->vkey && a->vkey_file)
        missing = "one of --vkey and --vkey-file, not both,";
    if (missing)
        fprintf(stderr, "nhub-audit %s: %s needed\n", c->name, missing);
    return !missing;
}

int main(int argc, char **argv)
{
    audit_args_t a;
    int prc = parse_args(argc, argv, &a);
    if (prc > 0) {
        usage(stdout);
        return 0;
    }
    const command_t *c = prc == 0 ? find_command(a.cmd) : NULL;
    if (prc == 0 && !c && a.cmd)
        fprintf(stderr, "nhub-audit: unknown command \"%s\"\n", a.cmd);
    if (!c || !args_complete(c, &a)) {
        usage(stderr);
        return 2;
    }
    log_setup(LOG_WARN, NULL);
    tlog_verifier_t *vkey = NULL;
    if ((a.vkey || a.vkey_file) && !(vkey = audit_load_vkey(a.vkey, a.vkey_file)))
        return 2;
    char err[1024];
    store_t *s = NULL;
    store_reader_t *r = NULL;
    int rc = 2;
    if (!(c->needs & AUDIT_NEEDS_STORE) || !a.data)
        rc = c->run(&a, NULL, vkey);
    else if (store_open_reader(a.data, &s, err, sizeof err) != 0)
        fprintf(stderr, "nhub-audit: %s\n", err);
    else if (store_reader_open(s, &r) != 0)
        fprintf(stderr, "nhub-audit: cannot read the store in %s\n", a.data);
    else
        rc = c->run(&a, r, vkey);
    store_reader_close(&r);
    store_close(&s);
    tlog_verifier_free(&vkey);
    return rc;
}
