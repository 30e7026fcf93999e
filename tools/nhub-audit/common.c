/*
 * nhub-audit: the helpers its commands share (audit.h).
 */
#include "audit.h"
#include "log.h"
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
    if (strlen(s) != 64)
        return -1;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]) ||
            sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

const char *audit_record_time(store_reader_t *r, uint64_t seq, char *buf, size_t cap)
{
    const void *ev;
    size_t len;
    snprintf(buf, cap, "-");
    if (seq == 0 || store_journal_get(r, seq, &ev, &len, NULL) != 0)
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
