/*
 * nhub-audit: the helpers its commands share (audit.h).
 */
#include "audit.h"
#include "log.h"
#include "nhub_err.h"
#include "nhub_journal.pb-c.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *audit_read_all(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = f ? malloc(max + 1) : NULL;
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    int bad = !buf || ferror(f) || n > max;
    if (f)
        fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

tlog_verifier_t *audit_load_vkey(const char *text, const char *file)
{
    char line[TLOG_VKEY_MAX + 2], err[256];
    if (file) {
        FILE *f = fopen(file, "r");
        if (!f || !fgets(line, sizeof line, f)) {
            fprintf(stderr, "nhub-audit: cannot read a verifier key from %s\n", file);
            if (f)
                fclose(f);
            return NULL;
        }
        fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
        text = line;
    }
    tlog_verifier_t *v = NULL;
    if (tlog_verifier_parse(text, &v, err, sizeof err) != 0) {
        fprintf(stderr, "nhub-audit: verifier key: %s\n", err);
        return NULL;
    }
    return v;
}

int audit_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !isdigit((unsigned char)s[0]))
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v == 0)
        return -1;
    *out = v;
    return 0;
}

int audit_unhex32(const char *s, uint8_t out[32])
{
    return log_unhex(s, out, 32);
}

int audit_unhex_id(const char *s, uint8_t out[16])
{
    return log_unhex(s, out, 16);
}

typedef struct find {
    uint8_t pattern[18]; /* field 4 (msg_id), 16 bytes: tag 0x22, length 0x10, the id */
    uint64_t seq;
} find_t;

/* store_journal_fn: stop (1) at the record that brought the message in. */
static int find_record(void *arg, uint64_t seq, const uint8_t hash[STORE_HASH_LEN],
                       const void *event, size_t len)
{
    (void)hash;
    find_t *f = arg;
    /* Most records do not hold the bytes at all: look before decoding. */
    if (!memmem(event, len, f->pattern, sizeof f->pattern))
        return 0;
    Nhub__Journal__V1__JournalEvent *e = nhub__journal__v1__journal_event__unpack(NULL, len, event);
    int found = e &&
                (e->type == NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED ||
                 e->type == NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_HUB_MESSAGE) &&
                e->msg_id.len == 16 && memcmp(e->msg_id.data, f->pattern + 2, 16) == 0;
    if (e)
        nhub__journal__v1__journal_event__free_unpacked(e, NULL);
    if (found)
        f->seq = seq;
    return found;
}

int audit_find_message(store_reader_t *r, const uint8_t msg_id[16], uint64_t *seq)
{
    /* The store's index of msg_ids finds a region's message at once; the
     * hub's own messages (HUB_MESSAGE) and a store of format 3 read before
     * the hub indexed it are found by a walk. */
    if (store_msg_seq(r, msg_id, seq) == 0)
        return 0;
    find_t f = {{0x22, 0x10}, 0};
    uint64_t bad = 0;
    memcpy(f.pattern + 2, msg_id, 16);
    int rc = store_journal_walk(r, 1, find_record, &f, &bad);
    if (rc == 1) {
        *seq = f.seq;
        return 0;
    }
    return rc ? rc : NHUB_ENOTFOUND;
}

int audit_record_arg(store_reader_t *r, const char *cmd, const char *arg, uint64_t *seq)
{
    uint8_t id[16];
    char hex[33];
    /* 32 digits are a msg_id, never a seq (no journal holds 10^31 records). */
    if (audit_unhex_id(arg, id) != 0 && audit_parse_u64(arg, seq) == 0)
        return 0;
    if (audit_unhex_id(arg, id) != 0) {
        fprintf(stderr,
                "nhub-audit %s: \"%s\" is neither a SEQ (a number from 1) nor a MSG_ID "
                "(32 hex digits)\n",
                cmd, arg);
        return 2;
    }
    int rc = audit_find_message(r, id, seq);
    if (rc == 0)
        return 0;
    log_hex(hex, sizeof hex, id, 16);
    if (rc == NHUB_ENOTFOUND)
        fprintf(stderr, "nhub-audit: no message %s in the journal\n", hex);
    else
        fprintf(stderr, "nhub-audit: cannot read the journal: %s\n", nhub_strerror(rc));
    return rc == NHUB_ENOTFOUND ? 1 : 2;
}

const char *audit_record_time(store_reader_t *r, uint64_t seq, char *buf, size_t cap)
{
    const void *ev;
    size_t len;
    snprintf(buf, cap, "-");
    if (seq == 0 || !r || store_journal_get(r, seq, &ev, &len, NULL) != 0)
        return buf;
    return audit_event_time(ev, len, buf, cap);
}

const char *audit_event_time(const void *ev, size_t len, char *buf, size_t cap)
{
    snprintf(buf, cap, "-");
    if (!ev)
        return buf;
    Nhub__Journal__V1__JournalEvent *e = nhub__journal__v1__journal_event__unpack(NULL, len, ev);
    if (!e) {
        snprintf(buf, cap, "? (the event does not decode)");
        return buf;
    }
    log_time(buf, cap, e->time_ms);
    nhub__journal__v1__journal_event__free_unpacked(e, NULL);
    return buf;
}

double audit_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
