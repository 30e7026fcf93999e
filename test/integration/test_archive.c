/*
 * test_archive.c: archives and retention on a real nhubd. The hub writes
 * closed ranges of its journal to archive files and, once its injected
 * clock has passed audit.retention, prunes the archived records from its
 * live store, all while senders keep getting ACKs; nhub-audit verifies the
 * archives and the live store together, and fails naming the file and the
 * record when an archive is truncated, altered or missing; an export of a
 * time range verifies alone; the hub restarts after pruning and its proofs
 * for live records still check. An archive directory it cannot write is
 * logged and counted, and nothing is pruned.
 */
#include "archive.h"
#include "harness.h"
#include "keys.h"
#include "nhub.h"
#include "nhub_journal.pb-c.h"
#include "proc.h"
#include "store.h"
#include "tlog.h"

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>

#define EVERY 20 /* audit.archive_every */
#define SENT 30
#define WAIT_MS 20000
#define HOUR (3600 * 1000LL)
#define ORIGIN "nhub.test/hub"
#define FILES_MAX 64

typedef struct fixture {
    th_hub_t hub;
    keys_file_t *key;
    char data[400];      /* the hub's data directory */
    char archive[400];   /* its audit.archive_dir */
    char vkey_file[400]; /* its verifier key */
    nhub_t *receiver;    /* 440000, confirming what it gets */
    int received;
} fixture_t;

typedef th_run_t run_t;

#define AUDIT(fx, r, ...)                                                                          \
    th_run_tool("nhub-audit", (fx)->hub.dir, NULL, (const char *const[]){__VA_ARGS__, NULL}, r)
#define AUDIT_TO(fx, r, file, ...)                                                                 \
    th_run_tool("nhub-audit", (fx)->hub.dir, file, (const char *const[]){__VA_ARGS__, NULL}, r)

/* The hub's configuration with archives into `archive_dir`. */
static int configure(fixture_t *fx, const char *archive_dir)
{
    if (th_hub_signing_key(&fx->hub, ORIGIN, fx->vkey_file, sizeof fx->vkey_file, &fx->key) != 0)
        return -1;
    snprintf(fx->data, sizeof fx->data, "%s/hub-data", fx->hub.dir);
    snprintf(fx->archive, sizeof fx->archive, "%s", archive_dir);
    snprintf(fx->hub.http, sizeof fx->hub.http,
             "audit:\n  origin: \"" ORIGIN "\"\n  checkpoint_every: 10\n"
             "  checkpoint_interval: 1h\n  archive_dir: \"%s\"\n  archive_every: %d\n"
             "  retention: 1h\n%s",
             archive_dir, EVERY, TH_HTTP_YAML);
    return 0;
}

static int open_receiver(fixture_t *fx)
{
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/adapter-440000", fx->hub.dir);
    nhub_options_t o;
    memset(&o, 0, sizeof o);
    o.region = "440000";
    o.hub_endpoint = fx->hub.endpoint;
    o.data_dir = path;
    o.insecure_plaintext = 1;
    if (nhub_open(&o, &fx->receiver, err, sizeof err) != 0) {
        fprintf(stderr, "receiver: %s\n", err);
        return -1;
    }
    return 0;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    char dir[400];
    if (!fx || th_hub_init(&fx->hub, NULL) != 0)
        return -1;
    snprintf(dir, sizeof dir, "%s/archive", fx->hub.dir);
    if (configure(fx, dir) != 0 || th_hub_start(&fx->hub) != 0 || open_receiver(fx) != 0) {
        th_log_dump(&fx->hub, stderr);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    nhub_close(&fx->receiver);
    keys_free(&fx->key);
    int rc = th_hub_stop(&fx->hub);
    if (rc != 0)
        th_log_dump(&fx->hub, stderr);
    th_hub_cleanup(&fx->hub);
    free(fx);
    return rc == 0 ? 0 : -1;
}

/* Send n pushes 110000 -> 440000 (each ACKed) and confirm them at the receiver. */
static void send_and_confirm(fixture_t *fx, int n)
{
    assert_int_equal(th_send_pushes(&fx->hub, "110000", "440000", n, WAIT_MS), 0);
    int64_t deadline = th_now_ms() + WAIT_MS;
    for (int got = 0; got < n && th_now_ms() < deadline;) {
        nhub_delivery_t *d = NULL;
        if (nhub_recv(fx->receiver, &d, 1000) != 0)
            continue;
        assert_int_equal(nhub_confirm(fx->receiver, &d), 0);
        got++;
        fx->received++;
    }
    assert_int_equal(nhub_flush(fx->receiver, WAIT_MS), 0);
}

static double metric(const fixture_t *fx, const char *name)
{
    char *body = NULL;
    assert_int_equal(th_http(&fx->hub, "GET", "/metrics", TH_READ_TOKEN, NULL, &body, 5000), 200);
    double v = th_metric_value(body, name);
    free(body);
    return v;
}

/* Wait until the hub has applied every confirmation the receiver sent. */
static void wait_confirmed(const fixture_t *fx)
{
    int64_t deadline = th_now_ms() + WAIT_MS;
    while (metric(fx, "nhub_confirmed_total") < fx->received && th_now_ms() < deadline)
        nhub_pump(fx->receiver, 20);
    assert_true(metric(fx, "nhub_confirmed_total") >= fx->received);
}

/* The archive files in fx->archive, sorted (names are in seq order). */
static size_t list_files(const fixture_t *fx, char names[FILES_MAX][128])
{
    DIR *d = opendir(fx->archive);
    size_t n = 0;
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)) && n < FILES_MAX) {
        size_t len = strlen(e->d_name);
        if (len > 6 && len < 128 && !strcmp(e->d_name + len - 6, ".nharc"))
            snprintf(names[n++], 128, "%.127s", e->d_name);
    }
    closedir(d);
    qsort(names, n, 128, (int (*)(const void *, const void *))strcmp);
    return n;
}

static void store_marks(const fixture_t *fx, uint64_t *start, uint64_t *archived)
{
    store_t *st = NULL;
    store_reader_t *rd = NULL;
    char err[256];
    uint8_t prev[STORE_HASH_LEN];
    assert_int_equal(store_open_reader(fx->data, &st, err, sizeof err), 0);
    assert_int_equal(store_reader_open(st, &rd), 0);
    assert_int_equal(store_journal_start(rd, start, prev), 0);
    assert_int_equal(store_archive_next(rd, archived), 0);
    store_reader_close(&rd);
    store_close(&st);
}

static uint64_t last_seq(const fixture_t *fx)
{
    store_t *st = NULL;
    store_reader_t *rd = NULL;
    char err[256];
    uint64_t last = 0;
    assert_int_equal(store_open_reader(fx->data, &st, err, sizeof err), 0);
    assert_int_equal(store_reader_open(st, &rd), 0);
    assert_int_equal(store_journal_last(rd, &last), 0);
    store_reader_close(&rd);
    store_close(&st);
    return last;
}

/* Move the hub's clock and wait until it has read it. */
static void clock_at(fixture_t *fx, int64_t offset_ms)
{
    assert_int_equal(th_hub_clock_move(&fx->hub, offset_ms, WAIT_MS), 0);
}

struct journal_seen {
    int archived, pruned;
    uint64_t pruned_first;
    char file[128];
    uint8_t sha[32];
};

static void note_event(const th_journal_event_t *ev, void *arg)
{
    struct journal_seen *s = arg;
    if (ev->type == NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ARCHIVED && ev->archive) {
        assert_int_equal((ev->range_first - 1) % EVERY, 0);
        assert_int_equal(ev->range_last - ev->range_first + 1, EVERY);
        assert_int_equal(ev->archive->sha256.len, 32);
        if (!s->archived++) { /* the first still in the live store */
            snprintf(s->file, sizeof s->file, "%s", ev->archive->file);
            memcpy(s->sha, ev->archive->sha256.data, 32);
        }
    } else if (ev->type == NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_PRUNED) {
        if (!s->pruned++)
            s->pruned_first = ev->range_first;
        assert_true(ev->range_last >= ev->range_first);
    }
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_archives_then_prunes_while_the_hub_acks(void **state)
{
    fixture_t *fx = *state;
    send_and_confirm(fx, SENT); /* 1 + 30 + 30 + checkpoints: 3 files of 20 */
    assert_true(th_log_wait(&fx->hub, "event=hub.archived", 3, WAIT_MS));
    wait_confirmed(fx);
    uint64_t start = 0, archived = 0;
    store_marks(fx, &start, &archived);
    assert_int_equal(start, 1); /* nothing is older than retention yet */
    assert_true(archived > 3 * EVERY);

    /* Two hours on: what was archived is older than retention (1h). */
    uint64_t old_last = last_seq(fx);
    clock_at(fx, 2 * HOUR);
    send_and_confirm(fx, SENT); /* still ACKed while archiving and pruning */
    /* Every record from before the jump goes, once archived; none after it. */
    for (int pruned = 0; start <= old_last; pruned++) {
        assert_true(th_log_wait(&fx->hub, "event=hub.pruned", pruned + 1, WAIT_MS));
        store_marks(fx, &start, &archived);
        assert_true(start <= archived); /* only archived records were pruned */
    }
    assert_int_equal(start, old_last + 1);

    char names[FILES_MAX][128];
    size_t files = list_files(fx, names);
    assert_true(files >= 3);
    assert_string_equal(names[0], "journal-00000000000000000001-00000000000000000020.nharc");
    assert_true(metric(fx, "nhub_archive_files_total") >= 3);
    assert_true(metric(fx, "nhub_archive_records_total") >= 3 * EVERY);
    assert_true(metric(fx, "nhub_pruned_records_total") >= 3 * EVERY);
    assert_int_equal((long long)metric(fx, "nhub_archive_errors_total"), 0);

    /* The journal says so, and a file is the one it names (its hash). */
    struct journal_seen seen;
    memset(&seen, 0, sizeof seen);
    assert_int_equal(th_journal_foreach(&fx->hub, note_event, &seen), 0);
    assert_true(seen.pruned >= 1);
    assert_int_equal(seen.pruned_first, 1);
    assert_true(seen.archived >= 1);
    char path[700], *buf = malloc(1 << 20);
    assert_non_null(buf);
    snprintf(path, sizeof path, "%s/%s", fx->archive, seen.file);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, 1 << 20, f);
    fclose(f);
    assert_true(n > 32 && n < (1 << 20));
    uint8_t sha[32];
    th_sha256(buf, n - 32, NULL, 0, NULL, 0, sha);
    assert_memory_equal(sha, buf + n - 32, 32);
    assert_memory_equal(sha, seen.sha, 32);
    free(buf);
}

/* Every archive file, in order, as paths; *n of them. */
static void file_paths(const fixture_t *fx, char paths[FILES_MAX][600], size_t *n)
{
    char names[FILES_MAX][128];
    *n = list_files(fx, names);
    for (size_t i = 0; i < *n; i++)
        snprintf(paths[i], 600, "%.390s/%.127s", fx->archive, names[i]);
}

/* verify --archive over `files` (NULL-terminated) [--data]: the outcome. */
static void verify_files(const fixture_t *fx, run_t *r, const char *const *files, int with_data)
{
    const char *args[FILES_MAX + 8];
    size_t n = 0;
    args[n++] = "verify";
    args[n++] = "--vkey-file";
    args[n++] = fx->vkey_file;
    args[n++] = "--archive";
    for (; *files; files++)
        args[n++] = *files;
    if (with_data) {
        args[n++] = "--data";
        args[n++] = fx->data;
    }
    args[n] = NULL;
    th_run_tool("nhub-audit", fx->hub.dir, NULL, args, r);
}

/* It fails (exit 1) with one line naming `file`, seq `seq` and saying `want`. */
static void assert_fails(const run_t *r, const char *file, uint64_t seq, const char *want)
{
    char head[800];
    snprintf(head, sizeof head, "FAIL %s: seq %llu at ", file, (unsigned long long)seq);
    if (r->status != 1 || strncmp(r->out, head, strlen(head)) != 0 || !strstr(r->out, want))
        fprintf(stderr, "status %d, out: %s, err: %s\nwanted: %s... %s\n", r->status, r->out,
                r->err, head, want);
    assert_int_equal(r->status, 1);
    assert_memory_equal(r->out, head, strlen(head));
    assert_non_null(strstr(r->out, want));
    const char *nl = strchr(r->out, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[1], '\0');
}

static void test_verify_archives_and_the_live_store_together(void **state)
{
    fixture_t *fx = *state;
    char paths[FILES_MAX][600];
    const char *files[FILES_MAX + 1];
    size_t n = 0;
    file_paths(fx, paths, &n);
    for (size_t i = 0; i < n; i++)
        files[i] = paths[i];
    files[n] = NULL;
    run_t r;
    verify_files(fx, &r, files, 1);
    if (r.status != 0)
        fprintf(stderr, "verify: %s%s", r.out, r.err);
    assert_int_equal(r.status, 0);
    assert_memory_equal(r.out, "OK ", 3);
    assert_non_null(strstr(r.out, "(seq 1 to "));
    assert_non_null(strstr(r.out, "and the live store"));
    assert_non_null(strstr(r.out, "(signatures checked)"));
    assert_true(th_number_after(r.out, "OK ") > 3 * EVERY);
    /* The archives alone verify too: each file holds a checkpoint of its
     * last record (the hub signs one for it), so all of it is signed. */
    verify_files(fx, &r, files, 0);
    if (r.status != 0)
        fprintf(stderr, "verify archives alone: %s%s", r.out, r.err);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "(signatures checked)"));
    /* The live store alone says what it lacks. */
    AUDIT(fx, &r, "verify", "--data", fx->data, "--vkey-file", fx->vkey_file);
    if (r.status != 0)
        fprintf(stderr, "verify --data: %s%s", r.out, r.err);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "verify them with --archive"));
}

/* Offsets in an archive file, read by the test's own walk of the format. */
static size_t be_read(const unsigned char *p, int n)
{
    size_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* The offset of record `seq`'s value in the file of `len` bytes at `buf`. */
static size_t record_offset(const unsigned char *buf, size_t len, uint64_t seq)
{
    size_t at = 8 + 4 + 16 + 1 + 8 + 8 + 32;
    at += 2 + be_read(buf + at, 2);   /* the start state */
    while (be_read(buf + at, 8) != 0) /* the checkpoints */
        at += 12 + be_read(buf + at + 8, 4);
    at += 8;
    while (at + 12 < len && be_read(buf + at, 8) != seq)
        at += 12 + be_read(buf + at + 8, 4);
    assert_true(at + 12 < len);
    return at + 12;
}

/* A copy of archive file `src` as `dst`, its byte at `off` flipped
 * (SIZE_MAX: none) and cut to `keep` bytes (0: whole). */
static void copy_altered(const char *src, const char *dst, size_t off, size_t keep, size_t *len)
{
    unsigned char *buf = malloc(1 << 20);
    assert_non_null(buf);
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, 1 << 20, f);
    fclose(f);
    if (off != SIZE_MAX) {
        assert_true(off < n);
        buf[off] ^= 0x01;
    }
    f = fopen(dst, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, keep ? keep : n, f), keep ? keep : n);
    fclose(f);
    if (len)
        *len = n;
    free(buf);
}

static void test_verify_names_the_file_and_record_of_each_alteration(void **state)
{
    fixture_t *fx = *state;
    char paths[FILES_MAX][600], bad[600];
    const char *files[FILES_MAX + 1];
    size_t n = 0, len = 0;
    file_paths(fx, paths, &n);
    assert_true(n >= 3);
    for (size_t i = 0; i < n; i++)
        files[i] = paths[i];
    files[n] = NULL;
    run_t r;
    snprintf(bad, sizeof bad, "%s/altered.nharc", fx->hub.dir);

    /* The middle file truncated: the first record it no longer holds whole. */
    copy_altered(paths[1], bad, SIZE_MAX, 0, &len);
    copy_altered(paths[1], bad, SIZE_MAX, len / 2, NULL);
    files[1] = bad;
    verify_files(fx, &r, files, 1);
    assert_true(r.status == 1 && strstr(r.out, "truncated"));
    long long seq = th_number_after(r.out, ": seq ");
    assert_true(seq > EVERY && seq <= 2 * EVERY);

    /* A byte of record 25 (in the second file) flipped. */
    unsigned char *buf = malloc(1 << 20);
    assert_non_null(buf);
    FILE *f = fopen(paths[1], "rb");
    assert_non_null(f);
    len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    size_t off = record_offset(buf, len, 25) + STORE_HASH_LEN + 3;
    free(buf);
    copy_altered(paths[1], bad, off, 0, NULL);
    verify_files(fx, &r, files, 1);
    assert_fails(&r, bad, 25, "chain hash does not follow record 24");
    assert_null(strstr(r.out, " at -: ")); /* the record's time, from the file */

    /* A byte of the trailer (its file hash) flipped: the file hash. */
    copy_altered(paths[1], bad, len - 1, 0, NULL);
    verify_files(fx, &r, files, 1);
    assert_fails(&r, bad, 2 * EVERY, "the file hash differs");

    /* The middle file dropped: a gap, named with the file after it. */
    files[1] = paths[2];
    for (size_t i = 2; i < n; i++)
        files[i] = paths[i + 1];
    files[n - 1] = NULL;
    verify_files(fx, &r, files, 1);
    assert_fails(&r, paths[2], EVERY + 1, "one is missing");

    /* A file that is not there. */
    snprintf(bad, sizeof bad, "%s/no-such.nharc", fx->hub.dir);
    files[1] = bad;
    verify_files(fx, &r, files, 1);
    assert_fails(&r, bad, EVERY + 1, "cannot open");

    /* The last files left out: the live store does not continue the first. */
    files[1] = NULL;
    verify_files(fx, &r, files, 1);
    assert_fails(&r, fx->data, EVERY + 1, "the live store starts at seq");
}

static void test_export_of_a_time_range_verifies_alone(void **state)
{
    fixture_t *fx = *state;
    char out[400];
    snprintf(out, sizeof out, "%s/extract.nharc", fx->hub.dir);
    run_t r;
    AUDIT(fx, &r, "export", "--data", fx->data, "--from", "2000-01-01", "--to",
          "2100-01-01T00:00:00Z", "-o", out);
    if (r.status != 0)
        fprintf(stderr, "export: %s%s", r.out, r.err);
    assert_int_equal(r.status, 0);
    assert_memory_equal(r.out, "OK ", 3);
    long long first = th_number_after(r.out, "(seq ");
    uint64_t start = 0, archived = 0;
    store_marks(fx, &start, &archived);
    assert_int_equal(first, (long long)start);       /* all the live store holds */
    assert_true(th_number_after(r.out, "), ") >= 1); /* checkpoints inside */

    const char *files[] = {out, NULL};
    verify_files(fx, &r, files, 0);
    if (r.status != 0)
        fprintf(stderr, "verify export: %s%s", r.out, r.err);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "taken from the first file"));
    assert_non_null(strstr(r.out, "(signatures checked)"));

    /* Altered, it fails alone too. */
    char bad[400];
    size_t len = 0;
    snprintf(bad, sizeof bad, "%s/extract-bad.nharc", fx->hub.dir);
    copy_altered(out, bad, SIZE_MAX, 0, &len);
    copy_altered(out, bad, len - 40, 0, NULL); /* in the trailer's last chain hash */
    files[0] = bad;
    verify_files(fx, &r, files, 0);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "FAIL "));

    /* Usage errors are 2: --archive for another command, nothing to verify. */
    AUDIT(fx, &r, "prove", "--archive", out, "--data", fx->data, "5");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "takes no --archive"));
    AUDIT(fx, &r, "verify", "--vkey-file", fx->vkey_file);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--data DIR or --archive FILE..."));
    /* A range with nothing in it, and one the wrong way round. */
    AUDIT(fx, &r, "export", "--data", fx->data, "--from", "1990-01-01", "--to", "1990-01-02", "-o",
          out);
    assert_int_equal(r.status, 1);
    AUDIT(fx, &r, "export", "--data", fx->data, "--from", "2100-01-01", "--to", "2000-01-01", "-o",
          out);
    assert_int_equal(r.status, 2);
}

/* A file anyone could write: three invented records whose chain, tree and
 * file hash all hold, and no checkpoint. With the hub's key it fails: none
 * of it is signed. */
static void test_a_forged_file_without_checkpoints_fails(void **state)
{
    fixture_t *fx = *state;
    char path[400], err[256];
    snprintf(path, sizeof path, "%s/forged.nharc", fx->hub.dir);
    archive_header_t h;
    memset(&h, 0, sizeof h);
    h.alg = TLOG_SHA256;
    h.first_seq = 1;
    h.last_seq = 3;
    tlog_state_t *tree = NULL;
    archive_writer_t *w = NULL;
    assert_int_equal(tlog_state_new(TLOG_SHA256, &tree, err, sizeof err), 0);
    assert_int_equal(tlog_state_encode(tree, h.state, sizeof h.state, &h.state_len), 0);
    assert_int_equal(archive_writer_open(path, &h, &w, err, sizeof err), 0);
    /* type ACCEPTED, time_ms 5, source "FORGED" */
    static const uint8_t ev[] = {0x08, 0x01, 0x10, 0x05, 0x2a, 0x06, 'F', 'O', 'R', 'G', 'E', 'D'};
    uint8_t prev[STORE_HASH_LEN] = {0}, rec[STORE_HASH_LEN + sizeof ev], leaf[TLOG_HASH_LEN];
    for (uint64_t seq = 1; seq <= 3; seq++) {
        uint8_t be[8];
        unsigned int n = 0;
        for (int i = 0; i < 8; i++)
            be[i] = (uint8_t)(seq >> (56 - 8 * i));
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        assert_non_null(md);
        assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
        assert_int_equal(EVP_DigestUpdate(md, prev, sizeof prev), 1);
        assert_int_equal(EVP_DigestUpdate(md, be, 8), 1);
        assert_int_equal(EVP_DigestUpdate(md, ev, sizeof ev), 1);
        assert_int_equal(EVP_DigestFinal_ex(md, rec, &n), 1);
        EVP_MD_CTX_free(md);
        memcpy(rec + STORE_HASH_LEN, ev, sizeof ev);
        memcpy(prev, rec, STORE_HASH_LEN);
        assert_int_equal(tlog_hash_leaf(tlog_state_hasher(tree), ev, sizeof ev, leaf), 0);
        assert_int_equal(tlog_append(tree, leaf), 0);
        assert_int_equal(archive_writer_record(w, seq, rec, sizeof rec), 0);
    }
    uint8_t end[TLOG_STATE_MAX];
    size_t end_len = 0;
    assert_int_equal(tlog_state_encode(tree, end, sizeof end, &end_len), 0);
    assert_int_equal(archive_writer_finish(w, end, end_len, prev, NULL), 0);
    assert_int_equal(archive_writer_sync(w, err, sizeof err), 0);
    archive_writer_free(&w);
    tlog_state_free(&tree);

    const char *files[] = {path, NULL};
    run_t r;
    verify_files(fx, &r, files, 0);
    assert_fails(&r, path, 1, "are covered by no checkpoint signed by " ORIGIN);
    assert_non_null(strstr(r.out, "no checkpoint at all"));
}

static void test_restart_after_pruning_proofs_still_check(void **state)
{
    fixture_t *fx = *state;
    uint64_t start = 0, archived = 0;
    store_marks(fx, &start, &archived);
    assert_true(start > 1);
    nhub_close(&fx->receiver);
    assert_int_equal(th_hub_stop(&fx->hub), 0);
    assert_int_equal(th_hub_start(&fx->hub), 0);
    assert_int_equal(open_receiver(fx), 0);
    send_and_confirm(fx, 12); /* and a checkpoint after the restart */
    assert_true(th_log_wait(&fx->hub, "event=hub.ready", 2, WAIT_MS));

    /* The latest checkpoint's last record: written after the restart, at a
     * time retention keeps, so the running hub will not prune it under us. */
    store_t *st = NULL;
    store_reader_t *rd = NULL;
    const char *note;
    size_t len;
    uint64_t latest = 0;
    char proof[400], rec[400], seq[32], err[256];
    assert_int_equal(store_open_reader(fx->data, &st, err, sizeof err), 0);
    assert_int_equal(store_reader_open(st, &rd), 0);
    assert_int_equal(store_checkpoint_get(rd, 0, &note, &len, &latest), 0);
    store_reader_close(&rd);
    store_close(&st);
    assert_true(latest > start);
    snprintf(proof, sizeof proof, "%s/live.proof", fx->hub.dir);
    snprintf(rec, sizeof rec, "%s/live.record", fx->hub.dir);
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)latest);
    run_t r;
    AUDIT_TO(fx, &r, proof, "prove", "--data", fx->data, seq);
    assert_int_equal(r.status, 0);
    AUDIT_TO(fx, &r, rec, "record", "--data", fx->data, seq);
    assert_int_equal(r.status, 0);
    AUDIT(fx, &r, "check-proof", "--vkey-file", fx->vkey_file, proof, "--record", rec);
    if (r.status != 0)
        fprintf(stderr, "check-proof: %s%s", r.out, r.err);
    assert_int_equal(r.status, 0);
    /* A pruned record is no longer in the live store. */
    AUDIT_TO(fx, &r, rec, "record", "--data", fx->data, "1");
    assert_int_equal(r.status, 1);
}

/* An archive_dir below a regular file cannot be made: logged, counted,
 * the hub goes on ACKing, and nothing is pruned. */
static void test_unwritable_archive_dir_is_counted_and_prunes_nothing(void **state)
{
    (void)state;
    fixture_t *fx = calloc(1, sizeof *fx);
    char file[400], dir[460];
    assert_non_null(fx);
    assert_int_equal(th_hub_init(&fx->hub, NULL), 0);
    snprintf(file, sizeof file, "%s/not-a-dir", fx->hub.dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(dir, sizeof dir, "%s/archive", file);
    assert_int_equal(configure(fx, dir), 0);
    assert_int_equal(th_hub_start(&fx->hub), 0);
    assert_int_equal(open_receiver(fx), 0);
    send_and_confirm(fx, SENT);
    assert_true(th_log_wait(&fx->hub, "event=hub.archive_failed", 1, WAIT_MS));
    assert_true(th_log_contains(&fx->hub, "Not a directory"));
    wait_confirmed(fx);
    clock_at(fx, 2 * HOUR);
    send_and_confirm(fx, 5);
    assert_true(th_log_wait(&fx->hub, "event=hub.archive_failed", 2, WAIT_MS));
    assert_true(metric(fx, "nhub_archive_errors_total") >= 2);
    assert_int_equal((long long)metric(fx, "nhub_pruned_records_total"), 0);
    uint64_t start = 0, archived = 0;
    store_marks(fx, &start, &archived);
    assert_int_equal(start, 1);
    assert_int_equal(archived, 1);
    assert_false(th_log_contains(&fx->hub, "event=hub.pruned"));
    void *st = fx;
    assert_int_equal(teardown(&st), 0);
}

int main(void)
{
    const struct CMUnitTest group[] = {
        cmocka_unit_test(test_archives_then_prunes_while_the_hub_acks),
        cmocka_unit_test(test_verify_archives_and_the_live_store_together),
        cmocka_unit_test(test_verify_names_the_file_and_record_of_each_alteration),
        cmocka_unit_test(test_export_of_a_time_range_verifies_alone),
        cmocka_unit_test(test_a_forged_file_without_checkpoints_fails),
        cmocka_unit_test(test_restart_after_pruning_proofs_still_check),
    };
    const struct CMUnitTest alone[] = {
        cmocka_unit_test(test_unwritable_archive_dir_is_counted_and_prunes_nothing),
    };
    int failed = cmocka_run_group_tests_name("archive", group, setup, teardown);
    return failed + cmocka_run_group_tests_name("archive_errors", alone, NULL, NULL);
}
