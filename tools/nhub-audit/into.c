/*
 * nhub-audit replay --into ENDPOINT: the selected messages sent again, in
 * journal order, to a test hub, as their regions' adapters sent them:
 *
 *   nhub-audit replay --data DIR [filters] --into ENDPOINT
 *       (--keys DIR --hub-key-file FILE | --insecure-plaintext)
 *       [--work DIR] [--timeout MS]
 *
 * Each ACCEPTED record's envelope is read back and handed to libnhub
 * (nhub.h) in an adapter of its source region, with its msg_id, so the
 * test hub sees the same messages under the same ids (and answers a second
 * replay as duplicates); the adapter signs and sends them with that
 * region's keys (--keys DIR holds CODE.key files as nhub-keygen writes
 * them, --hub-key-file the test hub's .pub). Order across regions is kept
 * by waiting for one region's messages to be acknowledged before the next
 * region's are sent. Messages the hub made itself (HUB_MESSAGE) and
 * envelopes sealed at rest that --payload-key-file did not open are
 * counted, not sent. There is no default endpoint: a hub
 * takes messages only when it is named.
 *
 * The adapters' outboxes live under --work DIR (default: a new temporary
 * directory, removed when no message is left in an outbox).
 */
#include "audit.h"
#include "log.h"
#include "keys.h"
#include "nhub.h"
#include "nhub_wire.pb-c.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INTO_TIMEOUT_MS 30000

typedef struct into {
    const audit_args_t *a;
    char work[4096];
    int own_work;                          /* made here: removed at the end */
    char hub_key[KEYS_Z85_LEN + 1];        /* the test hub's CURVE key, or "" */
    nhub_t *ad;                            /* the adapter of region `region` */
    char region[8];
    int timeout_ms;
    uint64_t selected, sent, acked, refused, sealed, hub_made;
    char regions[256][8];                  /* whose outboxes are under work */
    size_t nregions;
} into_t;

static void on_ack(void *arg, const uint8_t msg_id[NHUB_MSG_ID_LEN])
{
    (void)msg_id;
    ((into_t *)arg)->acked++;
}

static void on_reject(void *arg, const uint8_t msg_id[NHUB_MSG_ID_LEN], int code, const char *text)
{
    char hex[33];
    into_t *in = arg;
    in->refused++;
    fprintf(stderr, "nhub-audit: the hub refused message %s: code %d (%s)\n",
            log_hex(hex, sizeof hex, msg_id, NHUB_MSG_ID_LEN), code, text);
}

/* Wait for the current adapter's messages, then close it. */
static int adapter_done(into_t *in)
{
    int rc = 0;
    if (!in->ad)
        return 0;
    rc = nhub_flush(in->ad, in->timeout_ms);
    if (rc != 0)
        fprintf(stderr, "nhub-audit: region %s: not every message was acknowledged within %d ms: %s\n",
                in->region, in->timeout_ms, nhub_last_error(in->ad));
    nhub_close(&in->ad);
    return rc;
}

/* The region's outbox will be under work: to remove at the end. */
static void remember_region(into_t *in, const char *region)
{
    size_t i = 0;
    while (i < in->nregions && strcmp(in->regions[i], region) != 0)
        i++;
    if (i == in->nregions && i < sizeof in->regions / sizeof in->regions[0])
        snprintf(in->regions[in->nregions++], sizeof in->regions[0], "%s", region);
    else if (i == in->nregions)
        in->own_work = 0; /* too many to remove one by one: kept */
}

static int adapter_open(into_t *in, const char *region)
{
    char dir[4200], key[4200], err[512];
    nhub_options_t o;
    memset(&o, 0, sizeof o);
    snprintf(dir, sizeof dir, "%s/%s", in->work, region);
    snprintf(key, sizeof key, "%s/%s.key", in->a->keys ? in->a->keys : "", region);
    o.region = region;
    o.hub_endpoint = in->a->into;
    o.data_dir = dir;
    o.send_only = 1;
    o.on_ack = on_ack;
    o.on_ack_arg = in;
    o.on_reject = on_reject;
    o.on_reject_arg = in;
    o.insecure_plaintext = in->a->insecure;
    if (!in->a->insecure) {
        o.key_file = key;
        o.hub_key = in->hub_key;
    }
    remember_region(in, region);
    if (nhub_open(&o, &in->ad, err, sizeof err) != 0) {
        fprintf(stderr, "nhub-audit: an adapter of region %s: %s\n", region, err);
        return 2;
    }
    snprintf(in->region, sizeof in->region, "%s", region);
    return 0;
}

/* The envelope `w` sent again through its source region's adapter. */
static int resend(into_t *in, const wire_envelope_t *w)
{
    /* It names a file and a directory: six digits, as the hub checked when it took it. */
    if (!w->source || strlen(w->source) != 6 || strspn(w->source, "0123456789") != 6) {
        fprintf(stderr, "nhub-audit: an envelope's source is not a region code\n");
        return 2;
    }
    if (in->ad && strcmp(in->region, w->source) != 0 && adapter_done(in) != 0)
        return 1;
    if (!in->ad && adapter_open(in, w->source) != 0)
        return 2;
    nhub_message_t m;
    memset(&m, 0, sizeof m);
    m.msg_id = w->msg_id.len == NHUB_MSG_ID_LEN ? w->msg_id.data : NULL;
    m.destination = w->destination;
    m.item = w->item;
    m.kind = (int)w->kind;
    m.correlation_id = w->correlation_id.len == NHUB_MSG_ID_LEN ? w->correlation_id.data : NULL;
    m.deadline_ms = w->deadline_ms;
    m.payload_type = w->payload_type;
    m.payload = w->payload.data;
    m.payload_len = w->payload.len;
    int rc = nhub_send(in->ad, &m, NULL);
    if (rc != 0) {
        fprintf(stderr, "nhub-audit: region %s: cannot send: %s\n", in->region,
                nhub_last_error(in->ad));
        return 2;
    }
    in->sent++;
    return 0;
}

static int into_one(void *arg, uint64_t seq, const void *raw, size_t len, const audit_event_t *e)
{
    (void)raw;
    (void)len;
    into_t *in = arg;
    ProtobufCMessage *m = NULL;
    if (e->type == NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_HUB_MESSAGE)
        in->hub_made++;
    if (e->type != NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED)
        return 0;
    in->selected++;
    if (seal_is_sealed(e->envelope.data, e->envelope.len)) {
        in->sealed++;
        return 0;
    }
    if (wire_decode(&nhub__wire__v1__envelope__descriptor, e->envelope.data, e->envelope.len,
                    e->envelope.len + 1, &m) != 0) {
        fprintf(stderr, "nhub-audit: record %llu: its envelope does not decode\n",
                (unsigned long long)seq);
        return 2;
    }
    int rc = resend(in, (const wire_envelope_t *)m);
    wire_free(&m);
    return rc;
}

/* The options --into needs, and the test hub's key. 0 or 2 with a message. */
static int into_setup(into_t *in)
{
    const audit_args_t *a = in->a;
    char err[512];
    long t = a->timeout ? strtol(a->timeout, NULL, 10) : INTO_TIMEOUT_MS;
    if (strncmp(a->into, "tcp://", 6) != 0 && strncmp(a->into, "ipc://", 6) != 0) {
        fprintf(stderr, "nhub-audit replay: --into \"%s\" is not a hub endpoint "
                        "(tcp://HOST:PORT or ipc://PATH)\n",
                a->into);
        return 2;
    }
    int keyed = a->keys && a->hub_key_file;
    if (a->insecure ? (a->keys || a->hub_key_file) : !keyed) {
        fprintf(stderr, "nhub-audit replay: --into needs the regions' keys (--keys DIR and "
                        "--hub-key-file FILE) or --insecure-plaintext for a development hub, "
                        "one of the two\n");
        return 2;
    }
    if (t <= 0 || t > 3600000) {
        fprintf(stderr, "nhub-audit replay: --timeout is milliseconds, 1 to 3600000\n");
        return 2;
    }
    in->timeout_ms = (int)t;
    if (a->hub_key_file &&
        keys_read_public(a->hub_key_file, in->hub_key, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "nhub-audit replay: --hub-key-file: %s\n", err);
        return 2;
    }
    if (a->work) {
        snprintf(in->work, sizeof in->work, "%s", a->work);
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(in->work, sizeof in->work, "%s/nhub-audit-into-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(in->work)) {
        fprintf(stderr, "nhub-audit replay: cannot make a directory in %s for the adapters\n",
                tmp && tmp[0] ? tmp : "/tmp");
        return 2;
    }
    in->own_work = 1;
    return 0;
}

/* Remove the adapters' stores of a work directory made here (their two
 * LMDB files each), then the directory. */
static void into_cleanup(const into_t *in)
{
    char path[4300];
    for (size_t i = 0; in->own_work && i < in->nregions; i++) {
        static const char *const files[] = {"data.mdb", "lock.mdb"};
        for (size_t k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "%s/%s/%s", in->work, in->regions[i], files[k]);
            unlink(path);
        }
        snprintf(path, sizeof path, "%s/%s", in->work, in->regions[i]);
        rmdir(path);
    }
    if (in->own_work)
        rmdir(in->work);
}

int audit_into(const audit_args_t *a, store_reader_t *r, const audit_filter_t *f)
{
    into_t in;
    memset(&in, 0, sizeof in);
    in.a = a;
    int rc = into_setup(&in);
    if (rc != 0)
        return rc;
    nhub_log_setup("warn", NULL);
    rc = audit_events(r, f, into_one, &in);
    if (adapter_done(&in) != 0 && rc == 0)
        rc = 1;
    printf("%s %llu messages into %s: %llu sent, %llu acknowledged, %llu refused; not sent: "
           "%llu sealed, %llu made by the hub\n",
           rc == 0 && in.acked == in.sent ? "OK" : "FAIL", (unsigned long long)in.selected,
           a->into, (unsigned long long)in.sent, (unsigned long long)in.acked,
           (unsigned long long)in.refused, (unsigned long long)in.sealed,
           (unsigned long long)in.hub_made);
    if (in.acked + in.refused == in.sent) /* nothing left in an outbox */
        into_cleanup(&in);
    else if (in.own_work)
        fprintf(stderr, "nhub-audit: the adapters' outboxes are kept in %s\n", in.work);
    return rc < 0 || rc == 2 ? 2 : rc == 0 && in.acked == in.sent ? 0 : 1;
}
