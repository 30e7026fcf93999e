/*
 * test_nhub.c: libnhub without a real hub.
 *
 * Store behaviour (durable outbox, stream numbering, validation, limits)
 * runs against an endpoint where nothing listens. Protocol behaviour runs
 * against a fake hub: a ROUTER socket in this process that the test drives
 * frame by frame, pumping the adapter in between (libnhub has no thread).
 * Identity runs against a fake CURVE hub whose ZAP handler (a REP socket at
 * inproc://zeromq.zap.01 in the hub's context) the test answers between
 * pumps. Time for the adapter's timers comes from a fake clock; nothing
 * sleeps.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "keys.h"
#include "lib/inbox.h"
#include "lib/outbox.h"
#include "log.h"
#include "nhub.h"
#include "wire.h"

#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define NOWHERE "tcp://127.0.0.1:1"

/* ---- fixtures ------------------------------------------------------------- */

typedef struct fake_clock {
    int64_t mono;
    int64_t wall;
} fake_clock_t;

static int64_t fake_mono(void *arg)
{
    return ((fake_clock_t *)arg)->mono;
}

static int64_t fake_wall(void *arg)
{
    return ((fake_clock_t *)arg)->wall;
}

typedef struct calls {
    int acks;
    int rejects;
    int last_code;
    uint8_t last_reject_id[NHUB_MSG_ID_LEN];
} calls_t;

static void count_ack(void *arg, const uint8_t id[NHUB_MSG_ID_LEN])
{
    (void)id;
    ((calls_t *)arg)->acks++;
}

static void count_reject(void *arg, const uint8_t id[NHUB_MSG_ID_LEN], int code, const char *text)
{
    calls_t *c = arg;
    (void)text;
    c->rejects++;
    c->last_code = code;
    memcpy(c->last_reject_id, id, NHUB_MSG_ID_LEN);
}

typedef struct fx {
    char dir[64];
    char dir2[64];
    nhub_options_t opt;
    calls_t calls;
    fake_clock_t clock;
} fx_t;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/test_nhub.XXXXXX");
    snprintf(fx->dir2, sizeof fx->dir2, "/tmp/test_nhub.XXXXXX");
    if (!mkdtemp(fx->dir) || !mkdtemp(fx->dir2)) {
        free(fx);
        return -1;
    }
    fx->opt.region = "110000";
    fx->opt.hub_endpoint = NOWHERE;
    fx->opt.data_dir = fx->dir;
    fx->opt.on_ack = count_ack;
    fx->opt.on_ack_arg = &fx->calls;
    fx->opt.on_reject = count_reject;
    fx->opt.on_reject_arg = &fx->calls;
    fx->opt.insecure_plaintext =
        1; /* the fake hubs are plain ROUTERs; identity tests say otherwise */
    fx->clock.mono = 1000000;
    fx->clock.wall = 1764000000000;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    nftw(fx->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    nftw(fx->dir2, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static nhub_t *open_ok(const nhub_options_t *opt)
{
    nhub_t *h = NULL;
    char err[256] = "";
    int rc = nhub_open(opt, &h, err, sizeof err);
    if (rc != 0)
        print_error("nhub_open: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(h);
    return h;
}

static nhub_message_t sample(void)
{
    static const char payload[] = "query-bytes";
    nhub_message_t m = {
        .destination = "440000",
        .item = "330100-verify-01",
        .kind = NHUB_KIND_REQUEST,
        .payload_type = "nhub.verify.v1.InsuredQuery",
        .payload = payload,
        .payload_len = sizeof payload - 1,
    };
    return m;
}

static uint64_t outbox_of(const nhub_t *h)
{
    nhub_stats_t st;
    nhub_stats(h, &st);
    return st.outbox;
}

/* ---- store ---------------------------------------------------------------- */

static void test_send_persists_across_close_and_reopen(void **state)
{
    fx_t *fx = *state;
    nhub_t *h = open_ok(&fx->opt);
    nhub_message_t m = sample();
    for (int i = 0; i < 3; i++)
        assert_int_equal(nhub_send(h, &m, NULL), 0);
    assert_int_equal(outbox_of(h), 3);
    nhub_close(&h);
    assert_null(h);

    h = open_ok(&fx->opt);
    assert_int_equal(outbox_of(h), 3);
    nhub_close(&h);
}

static void test_stream_seq_continues_after_reopen(void **state)
{
    fx_t *fx = *state;
    nhub_store_info_t info;
    nhub_t *h = open_ok(&fx->opt);
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_int_equal(info.next_stream_seq, 1);
    uint8_t stream_id[16];
    memcpy(stream_id, info.stream_id, 16);
    nhub_message_t m = sample();
    assert_int_equal(nhub_send(h, &m, NULL), 0);
    assert_int_equal(nhub_send(h, &m, NULL), 0);
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_int_equal(info.next_stream_seq, 3);
    nhub_close(&h);

    h = open_ok(&fx->opt);
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_int_equal(info.next_stream_seq, 3);
    assert_memory_equal(info.stream_id, stream_id, 16);
    assert_int_equal(nhub_send(h, &m, NULL), 0);
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_int_equal(info.next_stream_seq, 4);
    assert_int_equal(info.outbox, 3);
    nhub_close(&h);
}

static void test_two_stores_have_different_stream_ids(void **state)
{
    fx_t *fx = *state;
    nhub_options_t o2 = fx->opt;
    o2.data_dir = fx->dir2;
    o2.region = "440000";
    nhub_t *a = open_ok(&fx->opt);
    nhub_t *b = open_ok(&o2);
    nhub_store_info_t ia, ib;
    assert_int_equal(nhub_store_info(a, &ia), 0);
    assert_int_equal(nhub_store_info(b, &ib), 0);
    assert_memory_not_equal(ia.stream_id, ib.stream_id, 16);
    nhub_close(&a);
    nhub_close(&b);
}

static void expect_einval(nhub_t *h, const nhub_message_t *m, const char *field)
{
    uint64_t before = outbox_of(h);
    assert_int_equal(nhub_send(h, m, NULL), NHUB_EINVAL);
    const char *why = nhub_last_error(h);
    if (!strstr(why, field))
        print_error("last_error \"%s\" does not name %s\n", why, field);
    assert_non_null(strstr(why, field));
    assert_int_equal(outbox_of(h), before);
}

static void test_invalid_destination_refused_naming_it(void **state)
{
    fx_t *fx = *state;
    nhub_t *h = open_ok(&fx->opt);
    nhub_message_t m = sample();
    const char *bad[] = {"12345", "1234567", "abcdef", "", "**"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        m.destination = bad[i];
        expect_einval(h, &m, "destination");
    }
    m.destination = NULL;
    expect_einval(h, &m, "destination");
    m.destination = "110000"; /* own region */
    expect_einval(h, &m, "destination");
    m.destination = "*";
    assert_int_equal(nhub_send(h, &m, NULL), 0);
    nhub_close(&h);
}

static void test_invalid_item_kind_and_type_refused_naming_them(void **state)
{
    fx_t *fx = *state;
    nhub_t *h = open_ok(&fx->opt);
    char long_item[66];
    memset(long_item, 'x', 65);
    long_item[65] = '\0';
    char long_type[131];
    memset(long_type, 'a', 130);
    long_type[130] = '\0';

    nhub_message_t m = sample();
    m.item = NULL;
    expect_einval(h, &m, "item");
    m.item = "";
    expect_einval(h, &m, "item");
    m.item = long_item;
    expect_einval(h, &m, "item");
    m.item = "has space";
    expect_einval(h, &m, "item");

    m = sample();
    m.kind = 0;
    expect_einval(h, &m, "kind");
    m.kind = 6;
    expect_einval(h, &m, "kind");

    m = sample();
    m.payload_type = NULL;
    expect_einval(h, &m, "payload_type");
    m.payload_type = "nhub.verify.v1.Bad-Name";
    expect_einval(h, &m, "payload_type");
    m.payload_type = long_type;
    expect_einval(h, &m, "payload_type");

    m = sample();
    m.deadline_ms = -1;
    expect_einval(h, &m, "deadline_ms");
    m = sample();
    m.payload = NULL;
    expect_einval(h, &m, "payload");
    assert_int_equal(nhub_send(h, NULL, NULL), NHUB_EINVAL);
    nhub_close(&h);
}

static void test_oversize_refused_with_etoobig(void **state)
{
    fx_t *fx = *state;
    fx->opt.max_frame = 4096;
    nhub_t *h = open_ok(&fx->opt);
    static uint8_t big[8192];
    nhub_message_t m = sample();
    m.payload = big;
    m.payload_len = 4096; /* the envelope around it makes it too big */
    assert_int_equal(nhub_send(h, &m, NULL), NHUB_ETOOBIG);
    assert_non_null(strstr(nhub_last_error(h), "max_frame"));
    m.payload_len = 8192;
    assert_int_equal(nhub_send(h, &m, NULL), NHUB_ETOOBIG);
    assert_int_equal(outbox_of(h), 0);
    m.payload_len = 3000;
    assert_int_equal(nhub_send(h, &m, NULL), 0);
    assert_int_equal(outbox_of(h), 1);
    nhub_close(&h);
}

/* Read the envelope stored at stream_seq 1 straight from the store. */
typedef struct first_env {
    ProtobufCMessage *env;
} first_env_t;

static int grab_first(void *arg, uint64_t seq, const outbox_record_t *rec)
{
    first_env_t *f = arg;
    (void)seq;
    assert_int_equal(wire_decode(&nhub__wire__v1__envelope__descriptor, rec->envelope,
                                 rec->envelope_len, 1 << 20, &f->env),
                     0);
    assert_int_equal(rec->sig_len, 0); /* insecure_plaintext: stored unsigned */
    return 1;
}

static void test_given_msg_id_is_kept_and_envelope_filled(void **state)
{
    fx_t *fx = *state;
    fx->opt.offline = 1;
    nhub_t *h = open_ok(&fx->opt);
    nhub_set_clock(h, fake_wall, fake_mono, &fx->clock);
    uint8_t id[16], out[16], corr[16];
    for (int i = 0; i < 16; i++) {
        id[i] = (uint8_t)(0xa0 + i);
        corr[i] = (uint8_t)i;
    }
    nhub_message_t m = sample();
    m.msg_id = id;
    m.correlation_id = corr;
    m.kind = NHUB_KIND_RESPONSE;
    m.deadline_ms = 1764000999000;
    assert_int_equal(nhub_send(h, &m, out), 0);
    assert_memory_equal(out, id, 16);
    nhub_close(&h);

    outbox_t *ob = NULL;
    assert_int_equal(outbox_open(fx->dir, 0, &ob, NULL, 0), 0);
    first_env_t f = {NULL};
    assert_int_equal(outbox_scan(ob, 1, grab_first, &f), 0);
    assert_non_null(f.env);
    const wire_envelope_t *e = (const wire_envelope_t *)f.env;
    assert_int_equal(e->msg_id.len, 16);
    assert_memory_equal(e->msg_id.data, id, 16);
    assert_string_equal(e->source, "110000");
    assert_string_equal(e->destination, "440000");
    assert_string_equal(e->item, "330100-verify-01");
    assert_int_equal(e->kind, NHUB_KIND_RESPONSE);
    assert_int_equal(e->correlation_id.len, 16);
    assert_memory_equal(e->correlation_id.data, corr, 16);
    assert_int_equal(e->created_ms, fx->clock.wall);
    assert_int_equal(e->deadline_ms, 1764000999000);
    assert_int_equal(e->payload.len, 11);
    assert_memory_equal(e->payload.data, "query-bytes", 11);
    wire_free(&f.env);
    outbox_close(&ob);
}

static void test_generated_msg_ids_are_distinct(void **state)
{
    fx_t *fx = *state;
    fx->opt.offline = 1;
    nhub_t *h = open_ok(&fx->opt);
    enum { N = 64 };
    static uint8_t ids[N][16];
    static const uint8_t zero[16];
    nhub_message_t m = sample();
    for (int i = 0; i < N; i++) {
        assert_int_equal(nhub_send(h, &m, ids[i]), 0);
        assert_memory_not_equal(ids[i], zero, 16);
        for (int j = 0; j < i; j++)
            assert_memory_not_equal(ids[i], ids[j], 16);
    }
    assert_int_equal(outbox_of(h), N);
    nhub_close(&h);
}

static void test_recv_with_timeout_zero_times_out(void **state)
{
    fx_t *fx = *state;
    nhub_t *h = open_ok(&fx->opt);
    nhub_delivery_t *d = (nhub_delivery_t *)(uintptr_t)1;
    assert_int_equal(nhub_recv(h, &d, 0), NHUB_ETIMEOUT);
    assert_null(d);
    assert_int_equal(nhub_pump(h, 0), 0);
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.connected, 0);
    assert_int_equal(st.received, 0);
    nhub_close(&h);
}

static void test_pump_fds_returns_when_a_descriptor_is_readable(void **state)
{
    fx_t *fx = *state;
    nhub_t *h = open_ok(&fx->opt);
    int p[2];
    assert_int_equal(pipe(p), 0);
    /* Nothing readable: the whole timeout is served. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(nhub_pump_fds(h, p, 1, 50), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms >= 45);
    /* Readable: back at once, long before the 10 s timeout. */
    assert_int_equal(write(p[1], "x", 1), 1);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(nhub_pump_fds(h, p, 1, 10000), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms < 5000);
    int many[NHUB_PUMP_FDS_MAX + 1] = {0};
    assert_int_equal(nhub_pump_fds(h, many, NHUB_PUMP_FDS_MAX + 1, 0), NHUB_EINVAL);
    assert_int_equal(nhub_pump_fds(h, NULL, 1, 0), NHUB_EINVAL);
    assert_int_equal(nhub_pump_fds(h, NULL, 0, 0), 0);
    close(p[0]);
    close(p[1]);
    nhub_close(&h);
}

static void test_flush_times_out_while_outbox_not_empty(void **state)
{
    fx_t *fx = *state;
    nhub_t *h = open_ok(&fx->opt);
    assert_int_equal(nhub_flush(h, 0), 0); /* nothing to send */
    nhub_message_t m = sample();
    assert_int_equal(nhub_send(h, &m, NULL), 0);
    assert_int_equal(nhub_flush(h, 20), NHUB_ETIMEOUT);
    assert_int_equal(outbox_of(h), 1);
    nhub_close(&h);
}

static void test_offline_stores_but_does_not_serve(void **state)
{
    fx_t *fx = *state;
    fx->opt.offline = 1;
    fx->opt.hub_endpoint = NULL;
    nhub_t *h = open_ok(&fx->opt);
    nhub_message_t m = sample();
    assert_int_equal(nhub_send(h, &m, NULL), 0);
    nhub_delivery_t *d = NULL;
    assert_int_equal(nhub_recv(h, &d, 0), NHUB_ECLOSED);
    assert_int_equal(nhub_flush(h, 0), NHUB_ECLOSED);
    nhub_close(&h);
    fx->opt.offline = 0;
    fx->opt.hub_endpoint = NOWHERE;
    h = open_ok(&fx->opt);
    assert_int_equal(outbox_of(h), 1);
    nhub_close(&h);
}

static void test_close_accepts_null(void **state)
{
    (void)state;
    nhub_close(NULL);
    nhub_t *h = NULL;
    nhub_close(&h);
    assert_null(h);
    nhub_delivery_release(NULL, NULL);
}

static void test_open_rejects_bad_options(void **state)
{
    fx_t *fx = *state;
    nhub_t *h = NULL;
    char err[256];
    nhub_options_t o = fx->opt;
    o.region = "11000";
    assert_int_equal(nhub_open(&o, &h, err, sizeof err), NHUB_EINVAL);
    assert_non_null(strstr(err, "region"));
    assert_null(h);
    o = fx->opt;
    o.hub_endpoint = "";
    assert_int_equal(nhub_open(&o, &h, err, sizeof err), NHUB_EINVAL);
    assert_non_null(strstr(err, "hub_endpoint"));
    o = fx->opt;
    o.hub_endpoint = "nonsense://x";
    assert_int_equal(nhub_open(&o, &h, err, sizeof err), NHUB_EZMQ);
    o = fx->opt;
    const char *pats[] = {"nhub.verify.v1.*", "bad pattern"};
    o.accepted_payloads = pats;
    o.n_accepted = 2;
    assert_int_equal(nhub_open(&o, &h, err, sizeof err), NHUB_EINVAL);
    assert_non_null(strstr(err, "accepted_payloads[1]"));
    o = fx->opt;
    o.data_dir = "/proc/definitely/not/here";
    assert_int_equal(nhub_open(&o, &h, err, sizeof err), NHUB_EIO);
    assert_null(h);
}

static void test_store_full_at_map_size_max(void **state)
{
    fx_t *fx = *state;
    fx->opt.offline = 1;
    fx->opt.map_size_max = 256 * 1024;
    nhub_t *h = open_ok(&fx->opt);
    static uint8_t payload[16 * 1024];
    nhub_message_t m = sample();
    m.payload = payload;
    m.payload_len = sizeof payload;
    int rc = 0, n = 0;
    while (n < 100 && (rc = nhub_send(h, &m, NULL)) == 0)
        n++;
    assert_int_equal(rc, NHUB_EFULL);
    assert_in_range(n, 4, 20);
    assert_int_equal(outbox_of(h), (uint64_t)n);
    nhub_close(&h);
}

static void test_store_grows_past_initial_map(void **state)
{
    fx_t *fx = *state;
    fx->opt.offline = 1;
    fx->opt.map_size_max = 64ull << 20;
    nhub_t *h = open_ok(&fx->opt);
    static uint8_t payload[1000 * 1000];
    nhub_message_t m = sample();
    m.payload = payload;
    m.payload_len = sizeof payload;
    for (int i = 0; i < 20; i++) /* 20 MB > the 16 MiB starting map */
        assert_int_equal(nhub_send(h, &m, NULL), 0);
    nhub_store_info_t info;
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_true(info.map_size > OUTBOX_MAP_START);
    assert_int_equal(info.outbox, 20);
    nhub_close(&h);
}

static void test_kind_names_round_trip(void **state)
{
    (void)state;
    for (int k = NHUB_KIND_REQUEST; k <= NHUB_KIND_NOTICE; k++)
        assert_int_equal(nhub_kind_parse(nhub_kind_name(k)), k);
    assert_int_equal(nhub_kind_parse("pushy"), 0);
    assert_int_equal(nhub_kind_parse(NULL), 0);
    assert_string_equal(nhub_kind_name(9), "unknown");
    uint8_t id[16];
    char hex[33];
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(i * 17);
    assert_string_equal(nhub_msg_id_hex(id, hex), "00112233445566778899aabbccddeeff");
}

/* ---- inbox ---------------------------------------------------------------- */

static void id_of(uint8_t id[16], int n)
{
    memset(id, 0, 16);
    id[0] = (uint8_t)n;
}

static void push(inbox_t *ib, int n, uint64_t dseq)
{
    nhub_delivery_t d;
    memset(&d, 0, sizeof d);
    id_of(d.msg_id, n);
    d.dseq = dseq;
    d.payload = "x";
    d.payload_len = 1;
    assert_int_equal(inbox_push(ib, &d), 0);
}

static void test_inbox_orders_by_dseq_and_drops_gaps_and_repeats(void **state)
{
    (void)state;
    inbox_t *ib = inbox_new(8);
    uint8_t id[16];
    id_of(id, 5);
    assert_int_equal(inbox_classify(ib, id, 5, 5 - 1), INBOX_ACCEPT); /* first sets expected */
    push(ib, 5, 5);
    assert_int_equal(inbox_classify(ib, id, 5, 5 - 1), INBOX_DUPLICATE);
    id_of(id, 7);
    assert_int_equal(inbox_classify(ib, id, 7, 7 - 1), INBOX_GAP);
    id_of(id, 6);
    assert_int_equal(inbox_classify(ib, id, 6, 6 - 1), INBOX_ACCEPT);
    push(ib, 6, 6);
    id_of(id, 7);
    assert_int_equal(inbox_classify(ib, id, 7, 7 - 1), INBOX_ACCEPT);
    push(ib, 7, 7);
    id_of(id, 2); /* below expected, unknown: a redelivery */
    assert_int_equal(inbox_classify(ib, id, 2, 2 - 1), INBOX_ACCEPT);
    push(ib, 2, 2);
    assert_int_equal(inbox_ready(ib), 4);

    nhub_delivery_t *d = inbox_pop(ib);
    assert_int_equal(d->dseq, 5);
    assert_int_equal(d->payload_len, 1);
    id_of(id, 5);
    assert_int_equal(inbox_classify(ib, id, 5, 5 - 1), INBOX_DUPLICATE); /* handed, still held */
    assert_true(inbox_holds(ib, d));
    assert_int_equal(inbox_release(ib, d), 0);
    assert_int_equal(inbox_release(ib, d), NHUB_ENOTFOUND);
    assert_int_equal(inbox_classify(ib, id, 5, 5 - 1), INBOX_ACCEPT); /* released: accepted again */

    inbox_session_reset(ib);
    id_of(id, 9);
    assert_int_equal(inbox_classify(ib, id, 40, 40 - 1), INBOX_ACCEPT);
    inbox_skip(ib, 41, 40); /* a confirmed repeat moves the expectation on */
    id_of(id, 10);
    assert_int_equal(inbox_classify(ib, id, 42, 42 - 1), INBOX_ACCEPT);
    /* 43 and 44 were set aside at the hub: 45 names 42 as the one before. */
    id_of(id, 11);
    assert_int_equal(inbox_classify(ib, id, 45, 42), INBOX_ACCEPT);
    id_of(id, 12);
    assert_int_equal(inbox_classify(ib, id, 47, 46), INBOX_GAP); /* 46 was lost */
    inbox_destroy(&ib);
    assert_null(ib);
}

static void test_inbox_is_bounded(void **state)
{
    (void)state;
    inbox_t *ib = inbox_new(2);
    uint8_t id[16];
    for (int i = 1; i <= 2; i++) {
        id_of(id, i);
        assert_int_equal(inbox_classify(ib, id, (uint64_t)i, (uint64_t)i - 1), INBOX_ACCEPT);
        push(ib, i, (uint64_t)i);
    }
    id_of(id, 3);
    assert_int_equal(inbox_classify(ib, id, 3, 3 - 1), INBOX_FULL);
    nhub_delivery_t *d = inbox_pop(ib);
    assert_non_null(d);
    assert_int_equal(inbox_classify(ib, id, 3, 3 - 1), INBOX_FULL); /* handed ones count too */
    assert_int_equal(inbox_release(ib, d), 0);
    assert_int_equal(inbox_classify(ib, id, 3, 3 - 1), INBOX_ACCEPT);
    inbox_destroy(&ib);
}

/* ---- a fake hub ----------------------------------------------------------- */

typedef struct fake_hub {
    void *ctx;
    void *router;
    char endpoint[128];
    uint8_t rid[256];
    size_t rid_len;
    /* CURVE hubs only (hub_start_curve): the ZAP handler's socket and answers */
    void *zap;
    int zap_accept; /* 1: answer 200 for client_key, else 400 */
    int zap_calls;
    char client_key[KEYS_Z85_LEN + 1];
} fake_hub_t;

static void hub_start(fake_hub_t *fh)
{
    memset(fh, 0, sizeof *fh);
    fh->ctx = zmq_ctx_new();
    fh->router = zmq_socket(fh->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(fh->router, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(fh->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof fh->endpoint;
    assert_int_equal(zmq_getsockopt(fh->router, ZMQ_LAST_ENDPOINT, fh->endpoint, &len), 0);
}

static void hub_stop(fake_hub_t *fh)
{
    zmq_close(fh->router);
    if (fh->zap)
        zmq_close(fh->zap);
    zmq_ctx_term(fh->ctx);
}

/*
 * A CURVE hub: the ZAP handler is bound first (a CURVE server without one
 * accepts every key), then the ROUTER with the hub's secret key. It accepts
 * `client_key` (Z85) once zap_accept is set.
 */
static void hub_start_curve(fake_hub_t *fh, const keys_file_t *hub, const char *client_key)
{
    int zero = 0, one = 1;
    memset(fh, 0, sizeof *fh);
    fh->ctx = zmq_ctx_new();
    fh->zap = zmq_socket(fh->ctx, ZMQ_REP);
    zmq_setsockopt(fh->zap, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(fh->zap, "inproc://zeromq.zap.01"), 0);
    fh->router = zmq_socket(fh->ctx, ZMQ_ROUTER);
    zmq_setsockopt(fh->router, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_setsockopt(fh->router, ZMQ_CURVE_SERVER, &one, sizeof one), 0);
    assert_int_equal(
        zmq_setsockopt(fh->router, ZMQ_CURVE_SECRETKEY, hub->curve_secret, KEYS_Z85_LEN), 0);
    assert_int_equal(zmq_bind(fh->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof fh->endpoint;
    assert_int_equal(zmq_getsockopt(fh->router, ZMQ_LAST_ENDPOINT, fh->endpoint, &len), 0);
    snprintf(fh->client_key, sizeof fh->client_key, "%s", client_key);
}

/*
 * Answer the ZAP requests waiting (RFC 27): frames version, request_id,
 * domain, address, routing id, mechanism, credentials (the client's raw
 * 32-byte CURVE key); reply version, request_id, status, text, user id,
 * metadata.
 */
static void hub_serve_zap(fake_hub_t *fh)
{
    for (;;) {
        zmq_pollitem_t it = {fh->zap, 0, ZMQ_POLLIN, 0};
        if (!fh->zap || zmq_poll(&it, 1, 0) != 1)
            return;
        zmq_msg_t part[8];
        int n = 0, more = 1;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            assert_true(zmq_msg_recv(&m, fh->zap, 0) >= 0);
            more = zmq_msg_more(&m);
            if (n < 8)
                part[n++] = m;
            else
                zmq_msg_close(&m);
        }
        char z85[KEYS_Z85_LEN + 1] = "";
        if (n >= 7 && zmq_msg_size(&part[6]) == 32)
            zmq_z85_encode(z85, zmq_msg_data(&part[6]), 32);
        int ok = fh->zap_accept && strcmp(z85, fh->client_key) == 0;
        fh->zap_calls++;
        assert_true(n >= 2);
        zmq_send(fh->zap, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(fh->zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
        zmq_send(fh->zap, ok ? "200" : "400", 3, ZMQ_SNDMORE);
        zmq_send(fh->zap, ok ? "OK" : "unknown key", ok ? 2 : 11, ZMQ_SNDMORE);
        zmq_send(fh->zap, "region-110000", 13, ZMQ_SNDMORE);
        zmq_send(fh->zap, "", 0, 0);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
    }
}

/*
 * Pump the adapter until the fake hub receives a frame; return its command
 * and decoded body (free with wire_free). Fails the test after ~3 s.
 */
static int hub_recv(fake_hub_t *fh, nhub_t *h, ProtobufCMessage **body)
{
    for (int i = 0; i < 300; i++) {
        zmq_pollitem_t it = {fh->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 0) == 1) {
            wire_frames_t f;
            assert_int_equal(wire_recv(fh->router, &f, 0), 0);
            assert_int_equal(f.n_frames, 3);
            fh->rid_len = wire_frame_len(&f, 0);
            memcpy(fh->rid, wire_frame_data(&f, 0), fh->rid_len);
            int cmd = 0;
            assert_int_equal(wire_header_parse(wire_frame_data(&f, 1), wire_frame_len(&f, 1), &cmd,
                                               NULL),
                             0);
            assert_int_equal(wire_decode(wire_body_descriptor((wire_cmd_t)cmd),
                                         wire_frame_data(&f, 2), wire_frame_len(&f, 2), 1 << 22,
                                         body),
                             0);
            wire_frames_close(&f);
            return cmd;
        }
        hub_serve_zap(fh);
        assert_int_equal(nhub_pump(h, 10), 0);
    }
    fail_msg("the adapter sent nothing");
    return 0;
}

/* Receive frames until one of `want` arrives, dropping HEARTBEATs and BYEs. */
static ProtobufCMessage *hub_expect(fake_hub_t *fh, nhub_t *h, int want)
{
    for (;;) {
        ProtobufCMessage *body = NULL;
        int cmd = hub_recv(fh, h, &body);
        if (cmd == want)
            return body;
        wire_free(&body);
        if (cmd != WIRE_HEARTBEAT && cmd != WIRE_BYE)
            fail_msg("expected %s, got %s", wire_cmd_name(want), wire_cmd_name(cmd));
    }
}

static void hub_send(fake_hub_t *fh, wire_cmd_t cmd, const ProtobufCMessage *body)
{
    assert_int_equal(wire_send(fh->router, fh->rid, fh->rid_len, cmd, body, 0), 0);
}

static void hub_welcome(fake_hub_t *fh, uint64_t stream_last)
{
    wire_welcome_t w = NHUB__WIRE__V1__WELCOME__INIT;
    w.protocol_version = 1;
    w.stream_last = stream_last;
    w.max_frame = 1 << 20;
    w.heartbeat_ms = 2000;
    hub_send(fh, WIRE_WELCOME, &w.base);
}

static void hub_ack(fake_hub_t *fh, uint64_t stream_seq)
{
    wire_ack_t a = NHUB__WIRE__V1__ACK__INIT;
    a.stream_seq = stream_seq;
    a.seq = 100 + stream_seq;
    hub_send(fh, WIRE_ACK, &a.base);
}

/* HELLO then WELCOME; returns after the adapter saw the WELCOME. */
static void hub_session(fake_hub_t *fh, nhub_t *h, uint64_t stream_last)
{
    ProtobufCMessage *m = hub_expect(fh, h, WIRE_HELLO);
    wire_free(&m);
    hub_welcome(fh, stream_last);
    nhub_stats_t st;
    for (int i = 0; i < 300; i++) {
        nhub_stats(h, &st);
        if (st.connected)
            return;
        assert_int_equal(nhub_pump(h, 10), 0);
    }
    fail_msg("no WELCOME seen");
}

static uint64_t expect_send(fake_hub_t *fh, nhub_t *h)
{
    ProtobufCMessage *m = hub_expect(fh, h, WIRE_SEND);
    uint64_t seq = ((wire_send_t *)m)->stream_seq;
    wire_free(&m);
    return seq;
}

/* Pump until the adapter's outbox holds `n` (or fail). */
static void pump_until_outbox(nhub_t *h, uint64_t n)
{
    for (int i = 0; i < 300 && outbox_of(h) != n; i++)
        assert_int_equal(nhub_pump(h, 10), 0);
    assert_int_equal(outbox_of(h), n);
}

static nhub_t *open_to(fx_t *fx, fake_hub_t *fh)
{
    fx->opt.hub_endpoint = fh->endpoint;
    nhub_t *h = open_ok(&fx->opt);
    nhub_set_clock(h, NULL, fake_mono, &fx->clock);
    return h;
}

static void test_hello_announces_adapter(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    const char *pats[] = {"nhub.verify.v1.*"};
    fx->opt.accepted_payloads = pats;
    fx->opt.n_accepted = 1;
    fx->opt.credit = 7;
    nhub_t *h = open_to(fx, &fh);
    nhub_store_info_t info;
    assert_int_equal(nhub_store_info(h, &info), 0);
    ProtobufCMessage *m = hub_expect(&fh, h, WIRE_HELLO);
    const wire_hello_t *hello = (const wire_hello_t *)m;
    assert_string_equal(hello->region, "110000");
    assert_int_equal(hello->n_protocol_versions, 1);
    assert_int_equal(hello->protocol_versions[0], 1);
    assert_int_equal(hello->credit, 7);
    assert_int_equal(hello->n_accepted_payloads, 2); /* and the hub's case notices */
    assert_string_equal(hello->accepted_payloads[0], "nhub.verify.v1.*");
    assert_string_equal(hello->accepted_payloads[1], NHUB_CASE_NOTICES);
    assert_int_equal(hello->stream_id.len, 16);
    assert_memory_equal(hello->stream_id.data, info.stream_id, 16);
    assert_string_equal(hello->software, "libnhub 0.1");
    assert_int_equal(hello->max_frame, (1u << 20) + 4096); /* what its socket takes */
    wire_free(&m);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_send_only_announces_credit_zero(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    fx->opt.send_only = 1;
    nhub_t *h = open_to(fx, &fh);
    ProtobufCMessage *m = hub_expect(&fh, h, WIRE_HELLO);
    assert_int_equal(((const wire_hello_t *)m)->credit, 0);
    wire_free(&m);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_outbox_sent_in_order_and_emptied_by_acks(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    nhub_message_t msg = sample();
    for (int i = 0; i < 3; i++)
        assert_int_equal(nhub_send(h, &msg, NULL), 0);
    hub_session(&fh, h, 0);
    for (uint64_t s = 1; s <= 3; s++)
        assert_int_equal(expect_send(&fh, h), s);
    for (uint64_t s = 1; s <= 3; s++)
        hub_ack(&fh, s);
    pump_until_outbox(h, 0);
    hub_ack(&fh, 2); /* a repeated ACK changes nothing */
    assert_int_equal(nhub_pump(h, 20), 0);
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.acked, 3);
    assert_int_equal(st.sent, 3);
    assert_int_equal(fx->calls.acks, 3);
    assert_int_equal(nhub_flush(h, 0), 0);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_welcome_drops_what_hub_holds_and_resends_the_rest(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    nhub_message_t msg = sample();
    for (int i = 0; i < 3; i++)
        assert_int_equal(nhub_send(h, &msg, NULL), 0);
    hub_session(&fh, h, 2);
    assert_int_equal(expect_send(&fh, h), 3);
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.acked, 2);
    assert_int_equal(st.outbox, 1);
    assert_int_equal(fx->calls.acks, 2);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_out_of_order_resyncs_with_hello(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    nhub_message_t msg = sample();
    for (int i = 0; i < 2; i++)
        assert_int_equal(nhub_send(h, &msg, NULL), 0);
    hub_session(&fh, h, 0);
    assert_int_equal(expect_send(&fh, h), 1);
    assert_int_equal(expect_send(&fh, h), 2);
    wire_nack_t n = NHUB__WIRE__V1__NACK__INIT;
    n.code = NHUB__WIRE__V1__NACK_CODE__NACK_OUT_OF_ORDER;
    n.stream_seq = 1;
    n.expected = 1;
    hub_send(&fh, WIRE_NACK, &n.base);
    n.stream_seq = 2;
    hub_send(&fh, WIRE_NACK, &n.base); /* ignored: already resyncing */
    hub_session(&fh, h, 1);            /* expects exactly one HELLO */
    assert_int_equal(expect_send(&fh, h), 2);
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.resent, 1);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_non_retryable_nack_rejects_message(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    nhub_message_t msg = sample();
    uint8_t id1[16], id2[16];
    assert_int_equal(nhub_send(h, &msg, id1), 0);
    assert_int_equal(nhub_send(h, &msg, id2), 0);
    hub_session(&fh, h, 0);
    assert_int_equal(expect_send(&fh, h), 1);
    assert_int_equal(expect_send(&fh, h), 2);
    wire_nack_t n = NHUB__WIRE__V1__NACK__INIT;
    n.code = NHUB__WIRE__V1__NACK_CODE__NACK_INVALID;
    n.stream_seq = 1;
    n.text = "item not in catalogue";
    hub_send(&fh, WIRE_NACK, &n.base);
    hub_ack(&fh, 2);
    pump_until_outbox(h, 0);
    assert_int_equal(fx->calls.rejects, 1);
    assert_int_equal(fx->calls.last_code, NHUB__WIRE__V1__NACK_CODE__NACK_INVALID);
    assert_memory_equal(fx->calls.last_reject_id, id1, 16);
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.acked, 1);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_retryable_nack_backs_off_then_says_hello(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    nhub_message_t msg = sample();
    assert_int_equal(nhub_send(h, &msg, NULL), 0);
    hub_session(&fh, h, 0);
    assert_int_equal(expect_send(&fh, h), 1);
    wire_nack_t n = NHUB__WIRE__V1__NACK__INIT;
    n.code = NHUB__WIRE__V1__NACK_CODE__NACK_STORE_FULL;
    n.stream_seq = 1;
    n.retryable = 1;
    hub_send(&fh, WIRE_NACK, &n.base);
    for (int i = 0; i < 20; i++)
        assert_int_equal(nhub_pump(h, 5), 0);
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.connected, 0); /* backing off; the clock has not moved */
    zmq_pollitem_t it = {fh.router, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&it, 1, 0), 0);
    fx->clock.mono += 250;
    hub_session(&fh, h, 0);
    assert_int_equal(expect_send(&fh, h), 1);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_unacked_send_is_resent_after_resend_after(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    fx->opt.resend_after_ms = 1000;
    nhub_t *h = open_to(fx, &fh);
    nhub_message_t msg = sample();
    assert_int_equal(nhub_send(h, &msg, NULL), 0);
    hub_session(&fh, h, 0);
    assert_int_equal(expect_send(&fh, h), 1);
    fx->clock.mono += 1001;
    hub_session(&fh, h, 0);
    assert_int_equal(expect_send(&fh, h), 1);
    nhub_close(&h);
    hub_stop(&fh);
}

static void hub_deliver(fake_hub_t *fh, int n, uint64_t dseq)
{
    uint8_t id[16];
    id_of(id, n);
    wire_envelope_t e = NHUB__WIRE__V1__ENVELOPE__INIT;
    e.msg_id.len = 16;
    e.msg_id.data = id;
    e.source = "440000";
    e.destination = "110000";
    e.item = "item-1";
    e.kind = NHUB__WIRE__V1__KIND__KIND_PUSH;
    e.created_ms = 5;
    e.payload_type = "nhub.push.v1.Notice";
    e.payload.len = 4;
    e.payload.data = (uint8_t *)"data";
    uint8_t buf[512];
    size_t len = protobuf_c_message_pack(&e.base, buf);
    wire_deliver_t d = NHUB__WIRE__V1__DELIVER__INIT;
    d.seq = 1000 + dseq;
    d.dseq = dseq;
    d.prev_dseq = dseq - 1; /* as if every dseq before it was sent */
    d.envelope.len = len;
    d.envelope.data = buf;
    d.attempt = 1;
    hub_send(fh, WIRE_DELIVER, &d.base);
}

static nhub_delivery_t *recv_one(nhub_t *h)
{
    nhub_delivery_t *d = NULL;
    int rc = nhub_recv(h, &d, 2000);
    assert_int_equal(rc, 0);
    assert_non_null(d);
    return d;
}

static void expect_delivered(fake_hub_t *fh, nhub_t *h, int n, uint64_t dseq)
{
    uint8_t id[16];
    id_of(id, n);
    ProtobufCMessage *m = hub_expect(fh, h, WIRE_DELIVERED);
    const wire_delivered_t *d = (const wire_delivered_t *)m;
    assert_int_equal(d->dseq, dseq);
    assert_int_equal(d->msg_id.len, 16);
    assert_memory_equal(d->msg_id.data, id, 16);
    wire_free(&m);
}

/*
 * Answer the adapter's HEARTBEATs, as the hub does once what came before
 * each is committed, until it has settled `n` more DELIVEREDs (the one it
 * writes after them proves them; one written before does not).
 */
static void hub_settle(fake_hub_t *fh, nhub_t *h, uint64_t n)
{
    nhub_stats_t st;
    nhub_stats(h, &st);
    uint64_t want = st.delivered_settled + n;
    for (int i = 0; i < 10 && st.delivered_settled < want; i++) {
        ProtobufCMessage *m = hub_expect(fh, h, WIRE_HEARTBEAT);
        wire_heartbeat_t hb = NHUB__WIRE__V1__HEARTBEAT__INIT;
        hb.beat = ((wire_heartbeat_t *)m)->beat;
        wire_free(&m);
        hub_send(fh, WIRE_HEARTBEAT, &hb.base);
        for (int k = 0; k < 5; k++)
            assert_int_equal(nhub_pump(h, 10), 0);
        nhub_stats(h, &st);
    }
    assert_int_equal(st.delivered_settled, want);
}

static uint64_t unsent_of(nhub_t *h)
{
    nhub_store_info_t info;
    assert_int_equal(nhub_store_info(h, &info), 0);
    return info.unsent_confirmations;
}

/* Moves the wall clock on by wall_ms and the monotonic one by a second (one
 * aging pass may run), pumps once, and returns the confirmed ids kept. */
static uint64_t confirmed_after(fx_t *fx, nhub_t *h, int64_t wall_ms)
{
    nhub_store_info_t info;
    fx->clock.wall += wall_ms;
    fx->clock.mono += 1000;
    assert_int_equal(nhub_pump(h, 0), 0);
    assert_int_equal(nhub_store_info(h, &info), 0);
    return info.confirmed_ids;
}

/* A redelivery of the confirmed message n at dseq is answered and not handed out. */
static void expect_answered_not_handed(fake_hub_t *fh, nhub_t *h, int n, uint64_t dseq)
{
    nhub_delivery_t *none = NULL;
    hub_deliver(fh, n, dseq);
    expect_delivered(fh, h, n, dseq);
    assert_int_equal(nhub_recv(h, &none, 50), NHUB_ETIMEOUT);
    assert_null(none);
}

static void test_deliveries_in_order_once_and_confirmed(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    hub_session(&fh, h, 0);
    hub_deliver(&fh, 1, 1);
    hub_deliver(&fh, 1, 1); /* repeat while queued */
    hub_deliver(&fh, 3, 3); /* gap: dropped */
    hub_deliver(&fh, 2, 2);
    nhub_delivery_t *d1 = recv_one(h);
    assert_int_equal(d1->dseq, 1);
    assert_string_equal(d1->source, "440000");
    assert_string_equal(d1->item, "item-1");
    assert_int_equal(d1->kind, NHUB_KIND_PUSH);
    assert_int_equal(d1->payload_len, 4);
    assert_memory_equal(d1->payload, "data", 4);
    assert_int_equal(d1->seq, 1001);
    nhub_delivery_t *d2 = recv_one(h);
    assert_int_equal(d2->dseq, 2);
    nhub_delivery_t *none = NULL;
    assert_int_equal(nhub_recv(h, &none, 50), NHUB_ETIMEOUT);

    assert_int_equal(nhub_confirm(h, &d1), 0);
    assert_null(d1);
    expect_delivered(&fh, h, 1, 1);
    /* A repeat of a confirmed message is answered, not handed out. */
    hub_deliver(&fh, 1, 1);
    expect_delivered(&fh, h, 1, 1);
    /* Released: the redelivery is handed out again. */
    nhub_delivery_release(h, &d2);
    assert_null(d2);
    hub_deliver(&fh, 2, 2);
    d2 = recv_one(h);
    assert_int_equal(d2->dseq, 2);
    hub_deliver(&fh, 3, 3); /* now in order */
    nhub_delivery_t *d3 = recv_one(h);
    assert_int_equal(d3->dseq, 3);
    nhub_delivery_t foreign;
    nhub_delivery_t *fp = &foreign;
    assert_int_equal(nhub_confirm(h, &fp), NHUB_EINVAL);

    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.received, 4);
    assert_int_equal(st.confirmed, 1);
    assert_int_equal(st.duplicates, 2);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_confirmed_set_survives_restart(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    hub_session(&fh, h, 0);
    hub_deliver(&fh, 9, 1);
    nhub_delivery_t *d = recv_one(h);
    assert_int_equal(nhub_confirm(h, &d), 0);
    expect_delivered(&fh, h, 9, 1);
    nhub_close(&h);

    h = open_to(fx, &fh);
    hub_session(&fh, h, 0);
    expect_answered_not_handed(&fh, h, 9, 1);
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.duplicates, 1);
    assert_int_equal(st.received, 0);
    nhub_close(&h);
    hub_stop(&fh);
}

static void wait_connected(nhub_t *h);

/* Pump until the adapter has lost its session (or fail). */
static void wait_disconnected(nhub_t *h)
{
    nhub_stats_t st;
    for (int i = 0; i < 300; i++) {
        nhub_stats(h, &st);
        if (!st.connected)
            return;
        assert_int_equal(nhub_pump(h, 10), 0);
    }
    fail_msg("the session was not lost");
}

static void test_confirmation_made_offline_is_sent_next_session_and_ages_only_after(void **state)
{
    fx_t *fx = *state;
    int64_t day = 24 * 3600 * 1000;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    nhub_set_clock(h, fake_wall, fake_mono, &fx->clock);
    hub_session(&fh, h, 0);
    hub_deliver(&fh, 1, 1);
    nhub_delivery_t *d = recv_one(h);
    hub_stop(&fh); /* the hub goes away before the application confirms */
    wait_disconnected(h);
    assert_int_equal(nhub_confirm(h, &d), 0);
    assert_int_equal(unsent_of(h), 1);
    /* A month of outage: the confirmation does not age while the hub lacks it. */
    fx->clock.wall += 30 * day;
    fx->clock.mono += 2000;
    assert_int_equal(nhub_pump(h, 0), 0);
    nhub_store_info_t info;
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_int_equal(info.confirmed_ids, 1);
    assert_int_equal(info.unsent_confirmations, 1);
    nhub_close(&h);

    /* The hub is back (and the adapter restarted): the DELIVERED goes out
     * after the WELCOME, and only its proof starts the retention. */
    hub_start(&fh);
    h = open_to(fx, &fh);
    nhub_set_clock(h, fake_wall, fake_mono, &fx->clock);
    hub_session(&fh, h, 0);
    expect_delivered(&fh, h, 1, 1);
    hub_settle(&fh, h, 1);
    assert_int_equal(unsent_of(h), 0);
    assert_int_equal(confirmed_after(fx, h, 8 * day - 1), 1);
    assert_int_equal(confirmed_after(fx, h, 2), 0);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_delivereds_beyond_what_awaits_proof_wait_and_none_is_dropped(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    fx->opt.credit = 2; /* 2 * 2 + 16 = 20 DELIVEREDs await proof at most */
    nhub_t *h = open_to(fx, &fh);
    hub_session(&fh, h, 0);
    nhub_delivery_t *ds[20];
    for (int i = 1; i <= 20; i++)
        hub_deliver(&fh, i, (uint64_t)i);
    for (int i = 0; i < 20; i++)
        ds[i] = recv_one(h);
    assert_int_equal(nhub_confirm_batch(h, ds, 20), 0);
    for (int i = 21; i <= 30; i++)
        hub_deliver(&fh, i, (uint64_t)i);
    for (int i = 0; i < 10; i++)
        ds[i] = recv_one(h);
    assert_int_equal(nhub_confirm_batch(h, ds, 10), 0);
    assert_int_equal(unsent_of(h), 30);
    for (int i = 1; i <= 20; i++)
        expect_delivered(&fh, h, i, (uint64_t)i);
    hub_settle(&fh, h, 20); /* room again: the 10 that waited go out */
    for (int i = 21; i <= 30; i++)
        expect_delivered(&fh, h, i, (uint64_t)i);
    hub_settle(&fh, h, 10);
    assert_int_equal(unsent_of(h), 0);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_frame_over_max_frame_drops_the_connection_and_a_new_socket_follows(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    fx->opt.max_frame = 64 * 1024;
    nhub_t *h = open_to(fx, &fh);
    ProtobufCMessage *m = hub_expect(&fh, h, WIRE_HELLO);
    assert_int_equal(((wire_hello_t *)m)->max_frame, 64 * 1024 + 4096);
    wire_free(&m);
    hub_welcome(&fh, 0);
    wait_connected(h);
    uint8_t old_rid[256];
    size_t old_len = fh.rid_len;
    memcpy(old_rid, fh.rid, old_len);
    /* A hub that ignores the announced limit: libzmq drops the connection
     * for good (it does not reconnect after a protocol error). */
    static uint8_t junk[100 * 1024];
    wire_deliver_t dl = NHUB__WIRE__V1__DELIVER__INIT;
    dl.dseq = 1;
    dl.envelope.len = sizeof junk;
    dl.envelope.data = junk;
    hub_send(&fh, WIRE_DELIVER, &dl.base);
    wait_disconnected(h);
    fx->clock.mono += 1000; /* the first back-off before a new socket */
    hub_session(&fh, h, 0);
    assert_true(fh.rid_len != old_len || memcmp(fh.rid, old_rid, old_len) != 0);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_malformed_frames_are_dropped(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    hub_session(&fh, h, 0);
    /* Bad magic, unknown command, undecodable body, a DELIVER whose envelope is junk. */
    uint8_t bad_hdr[8] = {'N', 'H', 'U', 'X', 1, 4, 0, 0};
    uint8_t cmd_hdr[8] = {'N', 'H', 'U', 'B', 1, 99, 0, 0};
    uint8_t ack_hdr[8] = {'N', 'H', 'U', 'B', 1, WIRE_ACK, 0, 0};
    uint8_t junk[3] = {0x82, 0xff, 0xff};
    const uint8_t *hdrs[3] = {bad_hdr, cmd_hdr, ack_hdr};
    for (int i = 0; i < 3; i++) {
        zmq_send(fh.router, fh.rid, fh.rid_len, ZMQ_SNDMORE);
        zmq_send(fh.router, hdrs[i], 8, ZMQ_SNDMORE);
        zmq_send(fh.router, junk, sizeof junk, 0);
    }
    zmq_send(fh.router, fh.rid, fh.rid_len, ZMQ_SNDMORE);
    zmq_send(fh.router, ack_hdr, 8, 0); /* one frame only */
    wire_deliver_t dl = NHUB__WIRE__V1__DELIVER__INIT;
    dl.dseq = 1;
    dl.envelope.len = sizeof junk;
    dl.envelope.data = junk;
    hub_send(&fh, WIRE_DELIVER, &dl.base);
    hub_deliver(&fh, 2, 2); /* the queue moves on behind the bad one */
    nhub_delivery_t *d = recv_one(h);
    assert_int_equal(d->dseq, 2);
    nhub_delivery_release(h, &d);
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.connected, 1);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_silent_hub_gets_a_fresh_connection(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    fx->opt.heartbeat_ms = 1000;
    nhub_t *h = open_to(fx, &fh);
    hub_session(&fh, h, 0);
    uint8_t old_rid[256];
    size_t old_len = fh.rid_len;
    memcpy(old_rid, fh.rid, old_len);
    fx->clock.mono += 3001; /* three heartbeats with no answer */
    hub_session(&fh, h, 0);
    /* A new connection has a new routing id. */
    assert_true(fh.rid_len != old_len || memcmp(fh.rid, old_rid, old_len) != 0);
    nhub_close(&h);
    hub_stop(&fh);
}

/* ---- streams, limits, callbacks, expiry ----------------------------------- */

static void hub_welcome_max(fake_hub_t *fh, uint64_t stream_last, uint32_t max_frame)
{
    wire_welcome_t w = NHUB__WIRE__V1__WELCOME__INIT;
    w.protocol_version = 1;
    w.stream_last = stream_last;
    w.max_frame = max_frame;
    w.heartbeat_ms = 2000;
    hub_send(fh, WIRE_WELCOME, &w.base);
}

/* Pump until the adapter has seen a WELCOME (or fail). */
static void wait_connected(nhub_t *h)
{
    nhub_stats_t st;
    for (int i = 0; i < 300; i++) {
        nhub_stats(h, &st);
        if (st.connected)
            return;
        assert_int_equal(nhub_pump(h, 10), 0);
    }
    fail_msg("no WELCOME seen");
}

/* Expect a HELLO; copy the stream_id it names into `id`. */
static void expect_hello_stream(fake_hub_t *fh, nhub_t *h, uint8_t id[16])
{
    ProtobufCMessage *m = hub_expect(fh, h, WIRE_HELLO);
    const wire_hello_t *hello = (const wire_hello_t *)m;
    assert_int_equal(hello->stream_id.len, 16);
    memcpy(id, hello->stream_id.data, 16);
    wire_free(&m);
}

/* Expect a SEND; return its stream_seq and copy its envelope's msg_id into `id`. */
static uint64_t expect_send_id(fake_hub_t *fh, nhub_t *h, uint8_t id[16])
{
    ProtobufCMessage *m = hub_expect(fh, h, WIRE_SEND);
    const wire_send_t *s = (const wire_send_t *)m;
    uint64_t seq = s->stream_seq;
    ProtobufCMessage *env = NULL;
    assert_int_equal(wire_decode(&nhub__wire__v1__envelope__descriptor, s->envelope.data,
                                 s->envelope.len, 1 << 22, &env),
                     0);
    const wire_envelope_t *e = (const wire_envelope_t *)env;
    assert_int_equal(e->msg_id.len, 16);
    memcpy(id, e->msg_id.data, 16);
    wire_free(&env);
    wire_free(&m);
    return seq;
}

static void hub_ack_id(fake_hub_t *fh, uint64_t stream_seq, const uint8_t id[16])
{
    wire_ack_t a = NHUB__WIRE__V1__ACK__INIT;
    a.stream_seq = stream_seq;
    a.seq = 100 + stream_seq;
    a.msg_id.len = 16;
    a.msg_id.data = (uint8_t *)id;
    hub_send(fh, WIRE_ACK, &a.base);
}

static void hub_conflict(fake_hub_t *fh, uint64_t stream_seq)
{
    wire_nack_t n = NHUB__WIRE__V1__NACK__INIT;
    n.code = NHUB__WIRE__V1__NACK_CODE__NACK_STREAM_CONFLICT;
    n.stream_seq = stream_seq;
    n.retryable = 1;
    n.text = "stream conflict; start a new stream";
    hub_send(fh, WIRE_NACK, &n.base);
}

/* Pump a little so whatever the fake hub sent has been read. */
static void settle(nhub_t *h)
{
    for (int i = 0; i < 5; i++)
        assert_int_equal(nhub_pump(h, 5), 0);
}

static void send_n(nhub_t *h, int n, uint8_t ids[][16])
{
    nhub_message_t m = sample();
    for (int i = 0; i < n; i++)
        assert_int_equal(nhub_send(h, &m, ids[i]), 0);
}

static void test_send_conflict_starts_new_stream_renumbering_the_outbox(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    uint8_t ids[3][16], got[16], s1[16], s2[16];
    send_n(h, 3, ids);
    expect_hello_stream(&fh, h, s1);
    hub_welcome(&fh, 0);
    wait_connected(h);
    for (uint64_t s = 1; s <= 3; s++) {
        assert_int_equal(expect_send_id(&fh, h, got), s);
        assert_memory_equal(got, ids[s - 1], 16);
    }
    hub_ack_id(&fh, 1, ids[0]);
    pump_until_outbox(h, 2);
    hub_conflict(&fh, 2);
    hub_conflict(&fh, 3); /* the same trouble, one rotation */
    expect_hello_stream(&fh, h, s2);
    assert_memory_not_equal(s1, s2, 16);
    /* Late answers numbered on the old stream must not settle anything on the new one. */
    hub_ack(&fh, 2);
    wire_nack_t n = NHUB__WIRE__V1__NACK__INIT;
    n.code = NHUB__WIRE__V1__NACK_CODE__NACK_INVALID;
    n.stream_seq = 1;
    n.text = "old stream";
    hub_send(&fh, WIRE_NACK, &n.base);
    settle(h);
    assert_int_equal(fx->calls.rejects, 0);
    assert_int_equal(outbox_of(h), 2);
    nhub_store_info_t info;
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_memory_equal(info.stream_id, s2, 16);
    assert_int_equal(info.next_stream_seq, 3); /* the two waiting are 1 and 2 now */
    hub_welcome(&fh, 0);
    wait_connected(h);
    assert_int_equal(expect_send_id(&fh, h, got), 1);
    assert_memory_equal(got, ids[1], 16);
    assert_int_equal(expect_send_id(&fh, h, got), 2);
    assert_memory_equal(got, ids[2], 16);
    hub_ack_id(&fh, 1, ids[1]);
    hub_ack_id(&fh, 2, ids[2]);
    pump_until_outbox(h, 0);
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.streams_rotated, 1);
    assert_int_equal(st.acked, 3);
    assert_int_equal(fx->calls.acks, 3);
    assert_int_equal(fx->calls.rejects, 0);
    nhub_close(&h);

    /* The new stream is what the store names from now on. */
    h = open_to(fx, &fh);
    expect_hello_stream(&fh, h, s1);
    assert_memory_equal(s1, s2, 16);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_hello_conflict_starts_new_stream(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    uint8_t ids[2][16], got[16], s1[16], s2[16];
    send_n(h, 2, ids);
    expect_hello_stream(&fh, h, s1);
    hub_conflict(&fh, 0);
    expect_hello_stream(&fh, h, s2);
    assert_memory_not_equal(s1, s2, 16);
    hub_welcome(&fh, 0);
    wait_connected(h);
    for (uint64_t s = 1; s <= 2; s++) {
        assert_int_equal(expect_send_id(&fh, h, got), s);
        assert_memory_equal(got, ids[s - 1], 16);
    }
    assert_int_equal(outbox_of(h), 2);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_welcome_beyond_own_numbering_starts_new_stream_keeping_all(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    uint8_t ids[2][16], got[16], s1[16], s2[16];
    send_n(h, 2, ids);
    expect_hello_stream(&fh, h, s1);
    /* This store gave out 1 and 2; the hub has accepted 3: a copy writes this stream. */
    hub_welcome(&fh, 3);
    expect_hello_stream(&fh, h, s2);
    assert_memory_not_equal(s1, s2, 16);
    assert_int_equal(outbox_of(h), 2);
    assert_int_equal(fx->calls.acks, 0);
    hub_welcome(&fh, 0);
    wait_connected(h);
    for (uint64_t s = 1; s <= 2; s++) {
        assert_int_equal(expect_send_id(&fh, h, got), s);
        assert_memory_equal(got, ids[s - 1], 16);
    }
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.acked, 0);
    assert_int_equal(st.streams_rotated, 1);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_send_conflict_during_resync_waits_for_welcome(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    fx->opt.resend_after_ms = 1000;
    nhub_t *h = open_to(fx, &fh);
    uint8_t ids[1][16], s1[16], s2[16];
    send_n(h, 1, ids);
    hub_session(&fh, h, 0);
    assert_int_equal(expect_send(&fh, h), 1);
    fx->clock.mono += 1001; /* no ACK: resync */
    expect_hello_stream(&fh, h, s1);
    hub_conflict(&fh, 1); /* answers the SEND from before that HELLO */
    settle(h);
    hub_welcome(&fh, 0);
    wait_connected(h);
    assert_int_equal(expect_send(&fh, h), 1);
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.streams_rotated, 0);
    hub_conflict(&fh, 1); /* now it counts */
    expect_hello_stream(&fh, h, s2);
    assert_memory_not_equal(s1, s2, 16);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_ack_naming_another_message_keeps_it_and_starts_new_stream(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    uint8_t ids[1][16], other[16], s1[16], s2[16];
    send_n(h, 1, ids);
    expect_hello_stream(&fh, h, s1);
    hub_welcome(&fh, 0);
    wait_connected(h);
    assert_int_equal(expect_send(&fh, h), 1);
    memset(other, 0x5a, sizeof other);
    hub_ack_id(&fh, 1, other);
    expect_hello_stream(&fh, h, s2);
    assert_memory_not_equal(s1, s2, 16);
    assert_int_equal(outbox_of(h), 1);
    assert_int_equal(fx->calls.acks, 0);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_message_over_hub_max_frame_rejected_here_and_stream_renumbered(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    static uint8_t big[10000];
    uint8_t small1[16], big_id[16], small2[16], got[16], s1[16], s2[16];
    nhub_message_t m = sample();
    assert_int_equal(nhub_send(h, &m, small1), 0);
    m.payload = big;
    m.payload_len = sizeof big;
    assert_int_equal(nhub_send(h, &m, big_id), 0); /* fits our 1 MiB */
    m = sample();
    assert_int_equal(nhub_send(h, &m, small2), 0);
    expect_hello_stream(&fh, h, s1);
    hub_welcome_max(&fh, 0, 4096);
    wait_connected(h);
    assert_int_equal(expect_send_id(&fh, h, got), 1);
    assert_memory_equal(got, small1, 16);
    settle(h);
    assert_int_equal(fx->calls.rejects, 0); /* not the head yet: waits for the ACK of 1 */
    hub_ack_id(&fh, 1, small1);
    expect_hello_stream(&fh, h, s2);
    assert_memory_not_equal(s1, s2, 16);
    assert_int_equal(fx->calls.rejects, 1);
    assert_int_equal(fx->calls.last_code, NHUB__WIRE__V1__NACK_CODE__NACK_TOO_LARGE);
    assert_memory_equal(fx->calls.last_reject_id, big_id, 16);
    assert_int_equal(outbox_of(h), 1);
    hub_welcome_max(&fh, 0, 4096);
    wait_connected(h);
    assert_int_equal(expect_send_id(&fh, h, got), 1); /* no gap on the new stream */
    assert_memory_equal(got, small2, 16);
    hub_ack_id(&fh, 1, small2);
    pump_until_outbox(h, 0);
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.acked, 2);
    assert_int_equal(fx->calls.acks, 2);

    /* Now that the hub's limit is known, nhub_send refuses at once. */
    m.payload = big;
    m.payload_len = sizeof big;
    assert_int_equal(nhub_send(h, &m, NULL), NHUB_ETOOBIG);
    assert_non_null(strstr(nhub_last_error(h), "max_frame 4096"));
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_on_ack_fires_once_per_message(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    fx->opt.resend_after_ms = 1000;
    nhub_t *h = open_to(fx, &fh);
    uint8_t ids[3][16];
    send_n(h, 3, ids);
    hub_session(&fh, h, 0);
    for (uint64_t s = 1; s <= 3; s++)
        assert_int_equal(expect_send(&fh, h), s);
    hub_ack_id(&fh, 1, ids[0]);
    hub_ack_id(&fh, 1, ids[0]); /* a repeat in the same burst */
    pump_until_outbox(h, 2);
    hub_ack_id(&fh, 1, ids[0]); /* and in a later one */
    settle(h);
    assert_int_equal(fx->calls.acks, 1);
    fx->clock.mono += 1001; /* no more ACKs: resync; the hub holds 1 and 2 */
    hub_session(&fh, h, 2);
    assert_int_equal(outbox_of(h), 1);
    assert_int_equal(fx->calls.acks, 2);
    hub_ack_id(&fh, 2, ids[1]); /* late: already settled by the WELCOME */
    assert_int_equal(expect_send(&fh, h), 3);
    hub_ack_id(&fh, 3, ids[2]);
    hub_ack_id(&fh, 3, ids[2]);
    pump_until_outbox(h, 0);
    settle(h);
    assert_int_equal(fx->calls.acks, 3);
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.acked, 3);
    nhub_close(&h);
    hub_stop(&fh);
}

/* A confirmation at `t` whose DELIVERED the hub committed at `t`: it ages from then. */
static void plant_confirmed(outbox_t *ob, const uint8_t id[16], uint64_t dseq, int64_t t)
{
    outbox_unsent_t u = {.dseq = dseq};
    memcpy(u.id, id, 16);
    assert_int_equal(outbox_confirmed_put(ob, id, dseq, t), 0);
    assert_int_equal(outbox_unsent_settle(ob, &u, 1, t), 0);
}

static void test_confirmed_ids_expire_after_retention_in_batches(void **state)
{
    fx_t *fx = *state;
    int64_t day = 24 * 3600 * 1000;
    outbox_t *ob = NULL;
    assert_int_equal(outbox_open(fx->dir, 0, &ob, NULL, 0), 0);
    uint8_t id[16];
    memset(id, 0, sizeof id);
    for (int i = 0; i < 600; i++) {
        id[0] = (uint8_t)(i & 0xff);
        id[1] = (uint8_t)(i >> 8);
        plant_confirmed(ob, id, (uint64_t)i + 1, fx->clock.wall - 9 * day);
    }
    id[2] = 1; /* recent: stays */
    plant_confirmed(ob, id, 1000, fx->clock.wall - 7 * day);
    outbox_close(&ob);

    fake_hub_t fh;
    hub_start(&fh);
    fx->opt.hub_endpoint = fh.endpoint;
    nhub_t *h = open_ok(&fx->opt);
    nhub_set_clock(h, fake_wall, fake_mono, &fx->clock);
    nhub_store_info_t info;
    assert_int_equal(nhub_pump(h, 0), 0);
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_int_equal(info.confirmed_ids, 601 - 512); /* one bounded batch */
    assert_int_equal(nhub_pump(h, 0), 0);
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_int_equal(info.confirmed_ids, 601 - 512); /* at most one pass a second */
    assert_int_equal(confirmed_after(fx, h, 0), 1);
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.confirmed_expired, 600);

    /* A confirmation made now is kept, and answers a redelivery, until the
     * retention has passed since the hub committed its DELIVERED. */
    hub_session(&fh, h, 0);
    hub_deliver(&fh, 9, 1);
    nhub_delivery_t *d = recv_one(h);
    assert_int_equal(nhub_confirm(h, &d), 0);
    expect_delivered(&fh, h, 9, 1);
    hub_settle(&fh, h, 1);
    assert_int_equal(confirmed_after(fx, h, 8 * day - 1), 1); /* the new one; the 7-day-old one has gone */
    /* Delivered again: the hub lacks the DELIVERED, so the entry is unsent
     * again and does not age until the hub has one. */
    hub_deliver(&fh, 9, 1);
    expect_delivered(&fh, h, 9, 1);
    assert_int_equal(confirmed_after(fx, h, 2), 1);
    hub_settle(&fh, h, 1);
    assert_int_equal(confirmed_after(fx, h, 8 * day + 1), 0);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_retention_and_max_frame_options_are_checked(void **state)
{
    fx_t *fx = *state;
    nhub_t *h = NULL;
    char err[256];
    nhub_options_t o = fx->opt;
    o.confirmed_retention_ms = -1;
    assert_int_equal(nhub_open(&o, &h, err, sizeof err), NHUB_EINVAL);
    assert_non_null(strstr(err, "confirmed_retention_ms"));
    o = fx->opt;
    o.max_frame = 100;
    assert_int_equal(nhub_open(&o, &h, err, sizeof err), NHUB_EINVAL);
    assert_non_null(strstr(err, "max_frame"));
    o.max_frame = UINT32_MAX; /* would wrap with the frame's slack */
    assert_int_equal(nhub_open(&o, &h, err, sizeof err), NHUB_EINVAL);
    assert_non_null(strstr(err, "max_frame"));
    assert_null(h);

    outbox_t *ob = NULL;
    uint8_t a[16] = {1}, b[16] = {2};
    assert_int_equal(outbox_open(fx->dir, 0, &ob, NULL, 0), 0);
    plant_confirmed(ob, a, 1, fx->clock.wall - 61000);
    plant_confirmed(ob, b, 2, fx->clock.wall - 59000);
    outbox_close(&ob);
    fx->opt.confirmed_retention_ms = 60000;
    h = open_ok(&fx->opt);
    nhub_set_clock(h, fake_wall, fake_mono, &fx->clock);
    assert_int_equal(nhub_pump(h, 0), 0);
    nhub_store_info_t info;
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_int_equal(info.confirmed_ids, 1);
    nhub_close(&h);
}

static void test_outbox_rotate_renumbers_and_expire_follows_reconfirm(void **state)
{
    fx_t *fx = *state;
    outbox_t *ob = NULL;
    assert_int_equal(outbox_open(fx->dir, 0, &ob, NULL, 0), 0);
    uint8_t s0[16], s1[16];
    uint64_t base = 99, seq = 0, next = 0, n = 0;
    assert_int_equal(outbox_stream(ob, s0, &base), 0);
    assert_int_equal(base, 0);
    outbox_record_t m = {.envelope = (const uint8_t *)"m", .envelope_len = 1};
    for (int i = 0; i < 4; i++)
        assert_int_equal(outbox_append(ob, &m, &seq), 0);
    uint64_t one = 1;
    assert_int_equal(outbox_remove(ob, &one, 1, NULL, NULL, &n), 0);
    assert_int_equal(n, 1);
    /* Rotation keeps 2, 3, 4 and numbers them 1, 2, 3. */
    outbox_rotation_t r = {.expect_id = s0};
    assert_int_equal(outbox_rotate(ob, &r), 0);
    assert_int_equal(r.rotated, 1);
    assert_int_equal(r.base, 1);
    assert_int_equal(outbox_stream(ob, s1, &base), 0);
    assert_memory_equal(s1, r.stream_id, 16);
    assert_memory_not_equal(s0, s1, 16);
    assert_int_equal(base, 1);
    assert_int_equal(outbox_count(ob, &n), 0);
    assert_int_equal(n, 3);
    /* Someone else rotated already: nothing changes. */
    outbox_rotation_t again = {.expect_id = s0};
    assert_int_equal(outbox_rotate(ob, &again), 0);
    assert_int_equal(again.rotated, 0);
    assert_memory_equal(again.stream_id, s1, 16);
    /* Dropping the head renumbers the rest past it; an empty outbox starts at next_seq. */
    outbox_rotation_t drop = {.drop = 2};
    assert_int_equal(outbox_rotate(ob, &drop), 0);
    assert_int_equal(drop.rotated, 1);
    assert_int_equal(drop.dropped, 1);
    assert_int_equal(drop.base, 2);
    uint64_t rest[2] = {3, 4};
    assert_int_equal(outbox_remove(ob, rest, 2, NULL, NULL, &n), 0);
    outbox_rotation_t empty = {0};
    assert_int_equal(outbox_rotate(ob, &empty), 0);
    assert_int_equal(outbox_next_seq(ob, &next), 0);
    assert_int_equal(empty.base, next - 1);

    /* A repeated confirmation moves the entry to its new time; an unsent
     * one does not age at all. */
    uint8_t id[16] = {7};
    plant_confirmed(ob, id, 1, 1000);
    assert_int_equal(outbox_confirmed_put(ob, id, 1, 3000), 0);
    assert_int_equal(outbox_confirmed_expire(ob, INT64_MAX, 10, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(outbox_unsent_count(ob, &n), 0);
    assert_int_equal(n, 1);
    plant_confirmed(ob, id, 1, 5000);
    assert_int_equal(outbox_unsent_count(ob, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(outbox_confirmed_expire(ob, 2000, 10, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(outbox_confirmed_count(ob, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(outbox_confirmed_expire(ob, 5001, 10, &n), 0);
    assert_int_equal(n, 1);
    int found = 1;
    assert_int_equal(outbox_confirmed_has(ob, id, &found), 0);
    assert_int_equal(found, 0);
    outbox_close(&ob);
}

/* Write a store as libnhub 0.1 did (format 1): no stream_base, no confirmed_age;
 * `format` other than 1 is written in its place, with a stream_base from 2 on. */
static void make_old_store(const char *dir, int format, const uint8_t stream_id[16],
                           const uint8_t confirmed_id[16], int64_t confirmed_ms)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi meta, outbox, confirmed;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", MDB_CREATE, &meta), 0);
    assert_int_equal(mdb_dbi_open(txn, "outbox", MDB_CREATE, &outbox), 0);
    assert_int_equal(mdb_dbi_open(txn, "confirmed", MDB_CREATE, &confirmed), 0);
    uint8_t fmt[8] = {0, 0, 0, 0, 0, 0, 0, (uint8_t)format}, three[8] = {0, 0, 0, 0, 0, 0, 0, 3};
    uint8_t two[8] = {0, 0, 0, 0, 0, 0, 0, 2}, zero[8] = {0}, val[16] = {0};
    for (int i = 0; i < 8; i++)
        val[8 + i] = (uint8_t)((uint64_t)confirmed_ms >> (56 - 8 * i));
    MDB_val k = {6, "format"}, v = {8, fmt};
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    if (format >= 2) {
        k = (MDB_val){11, "stream_base"};
        v = (MDB_val){8, zero};
        assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    }
    k = (MDB_val){8, "next_seq"};
    v = (MDB_val){8, three};
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    k = (MDB_val){9, "stream_id"};
    v = (MDB_val){16, (void *)stream_id};
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    k = (MDB_val){8, two};
    v = (MDB_val){3, "env"};
    assert_int_equal(mdb_put(txn, outbox, &k, &v, 0), 0);
    k = (MDB_val){16, (void *)confirmed_id};
    v = (MDB_val){16, val};
    assert_int_equal(mdb_put(txn, confirmed, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void test_format1_store_is_upgraded_in_place(void **state)
{
    fx_t *fx = *state;
    uint8_t sid[16], cid[16];
    memset(sid, 0x11, sizeof sid);
    memset(cid, 0x22, sizeof cid);
    make_old_store(fx->dir, 1, sid, cid, 1000);
    fx->opt.offline = 1;
    nhub_t *h = open_ok(&fx->opt);
    nhub_store_info_t info;
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_memory_equal(info.stream_id, sid, 16);
    assert_int_equal(info.next_stream_seq, 3);
    assert_int_equal(info.outbox, 1);
    assert_int_equal(info.confirmed_ids, 1);
    nhub_close(&h);
    outbox_t *ob = NULL;
    uint64_t n = 0;
    assert_int_equal(outbox_open(fx->dir, 0, &ob, NULL, 0), 0);
    assert_int_equal(outbox_confirmed_expire(ob, 1001, 10, &n), 0);
    assert_int_equal(n, 1); /* the old confirmation got its place in confirmed_age */
    outbox_close(&ob);
}

static void test_format2_store_upgraded_and_newer_format_refused(void **state)
{
    fx_t *fx = *state;
    uint8_t sid[16], cid[16];
    memset(sid, 0x33, sizeof sid);
    memset(cid, 0x44, sizeof cid);
    make_old_store(fx->dir, 2, sid, cid, 1000);
    outbox_t *ob = NULL;
    char err[256] = "";
    assert_int_equal(outbox_open(fx->dir, 0, &ob, err, sizeof err), 0);
    uint64_t n = 0;
    assert_int_equal(outbox_count(ob, &n), 0);
    assert_int_equal(n, 1);
    outbox_close(&ob);
    /* The bare envelope of format 2 reads as an unsigned record. */
    nhub_t *h = NULL;
    fx->opt.offline = 1;
    h = open_ok(&fx->opt);
    nhub_store_info_t info;
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_memory_equal(info.stream_id, sid, 16);
    assert_int_equal(info.outbox, 1);
    nhub_close(&h);

    make_old_store(fx->dir2, 4, sid, cid, 1000);
    assert_int_equal(outbox_open(fx->dir2, 0, &ob, err, sizeof err), NHUB_EVERSION);
    assert_null(ob);
    assert_non_null(strstr(err, "format 4"));
    assert_non_null(strstr(err, "newer"));
}

static void test_outbox_record_layout_and_bad_headers(void **state)
{
    (void)state;
    outbox_record_t r;
    outbox_record_parse("\x0a\x10xyz", 5, &r); /* a bare envelope (formats 1 and 2) */
    assert_int_equal(r.envelope_len, 5);
    assert_int_equal(r.sig_len, 0);
    assert_null(r.sig);
    assert_int_equal(r.key_id_len, 0);
    static const uint8_t ok[] = {0, 1, 2, 3, 's', 'g', 'k', 'i', 'd', 'E', 'N', 'V'};
    outbox_record_parse(ok, sizeof ok, &r);
    assert_int_equal(r.sig_len, 2);
    assert_memory_equal(r.sig, "sg", 2);
    assert_int_equal(r.key_id_len, 3);
    assert_memory_equal(r.key_id, "kid", 3);
    assert_int_equal(r.envelope_len, 3);
    assert_memory_equal(r.envelope, "ENV", 3);
    /* A header whose lengths run past the value: the whole value is the envelope
     * (the hub refuses it as malformed, rather than the outbox stalling). */
    static const uint8_t bad[] = {0, 1, 200, 3, 'x'};
    outbox_record_parse(bad, sizeof bad, &r);
    assert_int_equal(r.sig_len, 0);
    assert_int_equal(r.envelope_len, sizeof bad);
    assert_ptr_equal(r.envelope, bad);
}

/* ---- identity: keys, CURVE, signatures ------------------------------------ */

/* Key files made for a test in their own temporary directory. */
typedef struct test_keys {
    char dir[64];
    char key[128]; /* secret file */
    char pub[128];
    keys_file_t *k;
} test_keys_t;

static void keys_make(test_keys_t *tk, const char *region, const char *name)
{
    char err[256] = "";
    memset(tk, 0, sizeof *tk);
    snprintf(tk->dir, sizeof tk->dir, "/tmp/test_nhub_keys.XXXXXX");
    assert_non_null(mkdtemp(tk->dir));
    snprintf(tk->key, sizeof tk->key, "%s/%s.key", tk->dir, name);
    snprintf(tk->pub, sizeof tk->pub, "%s/%s.pub", tk->dir, name);
    assert_int_equal(keys_generate(region, KEYS_ED25519, 1764000000000, &tk->k), 0);
    int rc = keys_write(tk->k, tk->key, tk->pub, 0, err, sizeof err);
    if (rc != 0)
        print_error("keys_write: %s\n", err);
    assert_int_equal(rc, 0);
}

static void keys_drop(test_keys_t *tk)
{
    keys_free(&tk->k);
    nftw(tk->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* fx->opt with this region's key file and the hub's key. */
static void use_keys(fx_t *fx, const test_keys_t *mine, const keys_file_t *hub)
{
    fx->opt.insecure_plaintext = 0;
    fx->opt.key_file = mine->key;
    fx->opt.hub_key = hub->curve_public;
}

/* Check that a SEND's signature verifies with `k`'s public key under its key id. */
static void expect_signed_by(const wire_send_t *s, const keys_file_t *k)
{
    char err[256] = "";
    keys_verifier_t *v = NULL;
    assert_int_equal(keys_verifier_parse(k->sign_public, &v, err, sizeof err), 0);
    assert_string_equal(s->key_id, k->sign_id);
    assert_true(s->signature.len > 0);
    assert_int_equal(
        keys_verify(v, s->envelope.data, s->envelope.len, s->signature.data, s->signature.len), 0);
    uint8_t *copy = malloc(s->envelope.len);
    assert_non_null(copy);
    memcpy(copy, s->envelope.data, s->envelope.len);
    copy[s->envelope.len - 1] ^= 1; /* one bit of the payload */
    assert_int_equal(keys_verify(v, copy, s->envelope.len, s->signature.data, s->signature.len),
                     NHUB_EREFUSED);
    free(copy);
    keys_verifier_free(&v);
}

static void test_open_refuses_missing_or_contradictory_security(void **state)
{
    fx_t *fx = *state;
    test_keys_t mine, other, hub;
    keys_make(&mine, "110000", "110000");
    keys_make(&other, "440000", "440000");
    keys_make(&hub, "100000", "hub");
    nhub_t *h = NULL;
    char err[256];
    nhub_options_t o = fx->opt;
    o.insecure_plaintext = 0;
    assert_int_equal(nhub_open(&o, &h, err, sizeof err), NHUB_ECONFIG);
    assert_null(h);
    assert_non_null(strstr(err, "key_file"));
    assert_non_null(strstr(err, "hub_key"));
    assert_non_null(strstr(err, "insecure_plaintext"));

    o.insecure_plaintext = 1; /* both */
    o.key_file = mine.key;
    o.hub_key = hub.k->curve_public;
    assert_int_equal(nhub_open(&o, &h, err, sizeof err), NHUB_ECONFIG);
    assert_non_null(strstr(err, "not both"));

    o.insecure_plaintext = 0;
    o.hub_key = NULL;
    assert_int_equal(nhub_open(&o, &h, err, sizeof err), NHUB_ECONFIG);
    assert_non_null(strstr(err, "hub_key is missing"));

    o.key_file = NULL;
    o.hub_key = hub.k->curve_public;
    assert_int_equal(nhub_open(&o, &h, err, sizeof err), NHUB_ECONFIG);
    assert_non_null(strstr(err, "key_file is missing"));

    o.key_file = mine.key;
    o.hub_key = "not-a-curve-key";
    assert_int_equal(nhub_open(&o, &h, err, sizeof err), NHUB_ECONFIG);
    assert_non_null(strstr(err, "hub_key is not a CURVE public key"));

    o.key_file = other.key; /* another region's key */
    o.hub_key = hub.k->curve_public;
    assert_int_equal(nhub_open(&o, &h, err, sizeof err), NHUB_ECONFIG);
    assert_non_null(strstr(err, "region 440000"));
    assert_non_null(strstr(err, "region 110000"));

    o.key_file = "/nonexistent/110000.key";
    assert_true(nhub_open(&o, &h, err, sizeof err) < 0);
    assert_true(err[0] != '\0');
    assert_null(h);

    /* Offline handles never connect: neither mode is needed. */
    o = fx->opt;
    o.insecure_plaintext = 0;
    o.offline = 1;
    h = open_ok(&o);
    nhub_close(&h);
    keys_drop(&mine);
    keys_drop(&other);
    keys_drop(&hub);
}

static void test_curve_hub_receives_sends_signed_by_the_region_key(void **state)
{
    fx_t *fx = *state;
    test_keys_t mine, hub;
    keys_make(&mine, "110000", "110000");
    keys_make(&hub, "100000", "hub");
    fake_hub_t fh;
    hub_start_curve(&fh, hub.k, mine.k->curve_public);
    fh.zap_accept = 1;
    use_keys(fx, &mine, hub.k);
    nhub_t *h = open_to(fx, &fh);
    nhub_message_t msg = sample();
    assert_int_equal(nhub_send(h, &msg, NULL), 0);
    hub_session(&fh, h, 0);
    assert_int_equal(fh.zap_calls, 1);
    ProtobufCMessage *m = hub_expect(&fh, h, WIRE_SEND);
    const wire_send_t *s = (const wire_send_t *)m;
    assert_int_equal(s->stream_seq, 1);
    expect_signed_by(s, mine.k);
    wire_free(&m);
    hub_ack(&fh, 1);
    pump_until_outbox(h, 0);
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.link, NHUB_LINK_UP);
    assert_int_equal(st.auth_failures, 0);
    assert_int_equal(st.resigned, 0); /* signed once, in nhub_send */
    nhub_close(&h);
    hub_stop(&fh);
    keys_drop(&mine);
    keys_drop(&hub);
}

static void test_refused_key_is_reported_message_kept_and_reconnect_recovers(void **state)
{
    fx_t *fx = *state;
    test_keys_t mine, hub;
    keys_make(&mine, "110000", "110000");
    keys_make(&hub, "100000", "hub");
    fake_hub_t fh;
    hub_start_curve(&fh, hub.k, mine.k->curve_public); /* zap_accept = 0: refused */
    use_keys(fx, &mine, hub.k);
    nhub_t *h = open_to(fx, &fh);
    nhub_message_t msg = sample();
    uint8_t id[16], got[16];
    assert_int_equal(nhub_send(h, &msg, id), 0);
    assert_int_equal(outbox_of(h), 1);
    nhub_stats_t st;
    nhub_stats(h, &st);
    for (int i = 0; i < 300 && st.auth_failures == 0; i++) {
        hub_serve_zap(&fh);
        assert_int_equal(nhub_pump(h, 10), 0);
        nhub_stats(h, &st);
    }
    assert_int_equal(st.auth_failures, 1);
    assert_int_equal(st.link, NHUB_LINK_REFUSED);
    assert_int_equal(st.connected, 0);
    assert_non_null(strstr(st.link_error, mine.k->curve_fpr));
    assert_non_null(strstr(st.link_error, "does not accept"));
    assert_int_equal(fh.zap_calls, 1);
    /* Recorded for status tools, which do not connect. */
    nhub_store_info_t info;
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_int_equal(info.link, NHUB_LINK_REFUSED);
    assert_int_equal(info.auth_failures, 1);
    assert_non_null(strstr(info.link_error, mine.k->curve_fpr));
    /* No spinning: nothing is tried again before the back-off. */
    for (int i = 0; i < 10; i++) {
        hub_serve_zap(&fh);
        assert_int_equal(nhub_pump(h, 5), 0);
    }
    assert_int_equal(fh.zap_calls, 1);
    assert_int_equal(outbox_of(h), 1); /* the message waits on disk */

    /* The operator adds the key; after the back-off a new socket gets in. */
    fh.zap_accept = 1;
    fx->clock.mono += 1001;
    hub_session(&fh, h, 0);
    assert_int_equal(fh.zap_calls, 2);
    assert_int_equal(expect_send_id(&fh, h, got), 1);
    assert_memory_equal(got, id, 16);
    hub_ack_id(&fh, 1, id);
    pump_until_outbox(h, 0);
    nhub_stats(h, &st);
    assert_int_equal(st.link, NHUB_LINK_UP);
    assert_string_equal(st.link_error, "");
    assert_int_equal(fx->calls.acks, 1);
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_int_equal(info.link, NHUB_LINK_UP);
    assert_int_equal(info.auth_failures, 1);
    nhub_close(&h);
    hub_stop(&fh);
    keys_drop(&mine);
    keys_drop(&hub);
}

static void test_plaintext_adapter_at_curve_hub_reports_handshake_failure(void **state)
{
    fx_t *fx = *state;
    test_keys_t mine, hub;
    keys_make(&mine, "110000", "110000");
    keys_make(&hub, "100000", "hub");
    fake_hub_t fh;
    hub_start_curve(&fh, hub.k, mine.k->curve_public);
    fh.zap_accept = 1;
    nhub_t *h = open_to(fx, &fh); /* insecure_plaintext from setup */
    nhub_stats_t st;
    nhub_stats(h, &st);
    for (int i = 0; i < 300 && st.handshake_failures == 0; i++) {
        hub_serve_zap(&fh);
        assert_int_equal(nhub_pump(h, 10), 0);
        nhub_stats(h, &st);
    }
    assert_true(st.handshake_failures >= 1);
    assert_int_equal(st.auth_failures, 0);
    assert_int_equal(st.link, NHUB_LINK_HANDSHAKE_FAILED);
    assert_non_null(strstr(st.link_error, "security mode"));
    assert_int_equal(fh.zap_calls, 0);
    /* It tries again after the back-off, and fails the same way. */
    uint64_t before = st.handshake_failures;
    fx->clock.mono += 1001;
    for (int i = 0; i < 300 && st.handshake_failures == before; i++) {
        assert_int_equal(nhub_pump(h, 10), 0);
        nhub_stats(h, &st);
    }
    assert_true(st.handshake_failures > before);
    nhub_close(&h);
    hub_stop(&fh);
    keys_drop(&mine);
    keys_drop(&hub);
}

static void test_wrong_hub_key_reports_handshake_failure_without_spinning(void **state)
{
    fx_t *fx = *state;
    test_keys_t mine, hub, impostor;
    keys_make(&mine, "110000", "110000");
    keys_make(&hub, "100000", "hub");
    keys_make(&impostor, "100000", "other-hub");
    fake_hub_t fh;
    hub_start_curve(&fh, hub.k, mine.k->curve_public);
    fh.zap_accept = 1;
    use_keys(fx, &mine, impostor.k); /* the hub's key is another one */
    nhub_t *h = open_to(fx, &fh);
    nhub_stats_t st;
    nhub_stats(h, &st);
    for (int i = 0; i < 300 && st.handshake_failures == 0; i++) {
        hub_serve_zap(&fh);
        assert_int_equal(nhub_pump(h, 10), 0);
        nhub_stats(h, &st);
    }
    assert_int_equal(st.handshake_failures, 1);
    assert_int_equal(st.link, NHUB_LINK_HANDSHAKE_FAILED);
    assert_non_null(strstr(st.link_error, "hub_key"));
    assert_int_equal(fh.zap_calls, 0); /* the hub could not read our HELLO */
    for (int i = 0; i < 30; i++) {     /* libzmq's own retry (100 ms) is stopped */
        hub_serve_zap(&fh);
        assert_int_equal(nhub_pump(h, 10), 0);
    }
    nhub_stats(h, &st);
    assert_int_equal(st.handshake_failures, 1);
    nhub_close(&h);
    hub_stop(&fh);
    keys_drop(&mine);
    keys_drop(&hub);
    keys_drop(&impostor);
}

static void test_messages_stored_unsigned_or_under_old_key_are_signed_again(void **state)
{
    fx_t *fx = *state;
    test_keys_t old_key, new_key, hub;
    keys_make(&old_key, "110000", "110000-old");
    keys_make(&new_key, "110000", "110000-new");
    keys_make(&hub, "100000", "hub");
    nhub_message_t msg = sample();
    uint8_t ids[2][16], got[16];

    /* One stored under the old key, one stored unsigned (an offline handle without keys). */
    nhub_options_t o = fx->opt;
    o.offline = 1;
    o.insecure_plaintext = 0;
    o.key_file = old_key.key;
    o.hub_key = hub.k->curve_public;
    nhub_t *h = open_ok(&o);
    assert_int_equal(nhub_send(h, &msg, ids[0]), 0);
    nhub_close(&h);
    o.key_file = NULL;
    o.hub_key = NULL;
    h = open_ok(&o);
    assert_int_equal(nhub_send(h, &msg, ids[1]), 0);
    nhub_close(&h);

    /* The region rotated its key: both go out signed with the new one. */
    fake_hub_t fh;
    hub_start_curve(&fh, hub.k, new_key.k->curve_public);
    fh.zap_accept = 1;
    use_keys(fx, &new_key, hub.k);
    h = open_to(fx, &fh);
    hub_session(&fh, h, 0);
    for (int i = 0; i < 2; i++) {
        ProtobufCMessage *m = hub_expect(&fh, h, WIRE_SEND);
        const wire_send_t *s = (const wire_send_t *)m;
        assert_int_equal(s->stream_seq, (uint64_t)i + 1);
        expect_signed_by(s, new_key.k);
        ProtobufCMessage *env = NULL;
        assert_int_equal(wire_decode(&nhub__wire__v1__envelope__descriptor, s->envelope.data,
                                     s->envelope.len, 1 << 22, &env),
                         0);
        memcpy(got, ((const wire_envelope_t *)env)->msg_id.data, 16);
        assert_memory_equal(got, ids[i], 16);
        wire_free(&env);
        wire_free(&m);
    }
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.resigned, 2);
    nhub_close(&h);
    hub_stop(&fh);
    keys_drop(&old_key);
    keys_drop(&new_key);
    keys_drop(&hub);
}

static void test_access_nacks_reject_for_good_even_if_marked_retryable(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    uint8_t ids[2][16];
    send_n(h, 2, ids);
    hub_session(&fh, h, 0);
    assert_int_equal(expect_send(&fh, h), 1);
    assert_int_equal(expect_send(&fh, h), 2);
    wire_nack_t n = NHUB__WIRE__V1__NACK__INIT;
    n.code = NHUB__WIRE__V1__NACK_CODE__NACK_BAD_SIGNATURE;
    n.stream_seq = 1;
    n.retryable = 1; /* wrong, but must not make the adapter resend it for ever */
    n.text = "signature does not verify";
    hub_send(&fh, WIRE_NACK, &n.base);
    n.code = NHUB__WIRE__V1__NACK_CODE__NACK_FORBIDDEN;
    n.stream_seq = 2;
    n.retryable = 0;
    n.text = "item not allowed";
    hub_send(&fh, WIRE_NACK, &n.base);
    pump_until_outbox(h, 0);
    assert_int_equal(fx->calls.rejects, 2);
    assert_int_equal(fx->calls.last_code, NHUB__WIRE__V1__NACK_CODE__NACK_FORBIDDEN);
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.rejected, 2);
    assert_int_equal(st.connected, 1); /* no back-off, no resync */
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_hello_refused_unauthenticated_shows_refused_link(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    ProtobufCMessage *m = hub_expect(&fh, h, WIRE_HELLO);
    wire_free(&m);
    wire_nack_t n = NHUB__WIRE__V1__NACK__INIT;
    n.code = NHUB__WIRE__V1__NACK_CODE__NACK_UNAUTHENTICATED;
    n.text = "key expired for region 110000";
    hub_send(&fh, WIRE_NACK, &n.base);
    nhub_stats_t st;
    nhub_stats(h, &st);
    for (int i = 0; i < 300 && st.link != NHUB_LINK_REFUSED; i++) {
        assert_int_equal(nhub_pump(h, 10), 0);
        nhub_stats(h, &st);
    }
    assert_int_equal(st.link, NHUB_LINK_REFUSED);
    assert_non_null(strstr(st.link_error, "key expired"));
    assert_string_equal(nhub_link_name(st.link), "refused");
    /* Backing off: the HELLO comes again only once the clock moves. */
    fx->clock.mono += 250;
    hub_session(&fh, h, 0);
    nhub_stats(h, &st);
    assert_int_equal(st.link, NHUB_LINK_UP);
    nhub_close(&h);
    hub_stop(&fh);
}

/* A DELIVER carrying a signature and key id. */
static void hub_deliver_signed(fake_hub_t *fh, int n, uint64_t dseq, const char *key_id)
{
    uint8_t id[16], sig[64];
    id_of(id, n);
    memset(sig, 0xab, sizeof sig);
    wire_envelope_t e = NHUB__WIRE__V1__ENVELOPE__INIT;
    e.msg_id.len = 16;
    e.msg_id.data = id;
    e.source = "440000";
    e.destination = "110000";
    e.item = "item-1";
    e.kind = NHUB__WIRE__V1__KIND__KIND_PUSH;
    e.payload_type = "nhub.push.v1.Notice";
    e.payload.len = 4;
    e.payload.data = (uint8_t *)"data";
    uint8_t buf[512];
    size_t len = protobuf_c_message_pack(&e.base, buf);
    wire_deliver_t d = NHUB__WIRE__V1__DELIVER__INIT;
    d.seq = 1000 + dseq;
    d.dseq = dseq;
    d.prev_dseq = dseq - 1;
    d.envelope.len = len;
    d.envelope.data = buf;
    d.attempt = 1;
    if (key_id) {
        d.signature.len = sizeof sig;
        d.signature.data = sig;
        d.key_id = (char *)key_id;
    }
    hub_send(fh, WIRE_DELIVER, &d.base);
}

static void test_delivery_exposes_signature_key_id_and_envelope(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    hub_session(&fh, h, 0);
    hub_deliver_signed(&fh, 1, 1, "0123456789abcdef0123456789abcdef");
    hub_deliver_signed(&fh, 2, 2, NULL);
    nhub_delivery_t *d = recv_one(h);
    assert_string_equal(d->key_id, "0123456789abcdef0123456789abcdef");
    assert_int_equal(d->signature_len, 64);
    assert_int_equal(d->signature[0], 0xab);
    assert_int_equal(d->signature[63], 0xab);
    assert_non_null(d->envelope);
    ProtobufCMessage *env = NULL;
    assert_int_equal(wire_decode(&nhub__wire__v1__envelope__descriptor, d->envelope,
                                 d->envelope_len, 1 << 20, &env),
                     0);
    assert_memory_equal(((const wire_envelope_t *)env)->msg_id.data, d->msg_id, 16);
    wire_free(&env);
    /* One copy: the payload is the envelope's tail, still NUL-terminated for text. */
    const uint8_t *e0 = d->envelope, *p = d->payload;
    assert_ptr_equal(p, e0 + d->envelope_len - d->payload_len);
    assert_memory_equal(d->payload, "data", 4);
    assert_int_equal(p[4], '\0');
    assert_int_equal(nhub_confirm(h, &d), 0);
    d = recv_one(h);
    assert_string_equal(d->key_id, "");
    assert_null(d->signature);
    assert_int_equal(d->signature_len, 0);
    assert_memory_equal(d->payload, "data", 4);
    nhub_delivery_release(h, &d);
    nhub_close(&h);
    hub_stop(&fh);
}

/* ---- batches -------------------------------------------------------------- */

#define BATCH_N 100

/* nhub_outbox_each: copy the msg_ids in the order the outbox holds them. */
typedef struct id_list {
    uint8_t ids[BATCH_N][NHUB_MSG_ID_LEN];
    size_t n;
} id_list_t;

static int collect_id(void *arg, const uint8_t id[NHUB_MSG_ID_LEN])
{
    id_list_t *l = arg;
    if (l->n < BATCH_N)
        memcpy(l->ids[l->n], id, NHUB_MSG_ID_LEN);
    l->n++;
    return 0;
}

static void test_send_batch_is_durable_acked_and_kept_in_order(void **state)
{
    fx_t *fx = *state;
    nhub_t *h = open_ok(&fx->opt); /* not connected: only the store is looked at */
    nhub_message_t msgs[BATCH_N];
    uint8_t ids[BATCH_N][NHUB_MSG_ID_LEN];
    for (int i = 0; i < BATCH_N; i++)
        msgs[i] = sample();
    assert_int_equal(nhub_send_batch(h, msgs, BATCH_N, ids), 0);
    assert_int_equal(nhub_send_batch(h, msgs, 0, NULL), 0); /* nothing to do */
    nhub_close(&h);

    /* On disk: an offline handle sees all of them, in batch order. */
    nhub_options_t off = fx->opt;
    off.offline = 1;
    h = open_ok(&off);
    id_list_t seen = {.n = 0};
    assert_int_equal(nhub_outbox_each(h, collect_id, &seen), 0);
    assert_int_equal(seen.n, BATCH_N);
    assert_memory_equal(seen.ids, ids, sizeof ids);
    nhub_store_info_t info;
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_int_equal(info.next_stream_seq, BATCH_N + 1);
    nhub_close(&h);

    /* Sent in batch order and emptied by the hub's ACKs. */
    fake_hub_t fh;
    hub_start(&fh);
    h = open_to(fx, &fh);
    hub_session(&fh, h, 0);
    for (uint64_t s = 1; s <= BATCH_N; s++) {
        uint8_t id[16];
        assert_int_equal(expect_send_id(&fh, h, id), s);
        assert_memory_equal(id, ids[s - 1], 16);
    }
    for (uint64_t s = 1; s <= BATCH_N; s++)
        hub_ack_id(&fh, s, ids[s - 1]);
    pump_until_outbox(h, 0);
    assert_int_equal(fx->calls.acks, BATCH_N);
    nhub_close(&h);
    hub_stop(&fh);
}

static void test_send_batch_with_one_bad_message_stores_nothing(void **state)
{
    fx_t *fx = *state;
    nhub_t *h = open_ok(&fx->opt);
    nhub_message_t msgs[10];
    for (int i = 0; i < 10; i++)
        msgs[i] = sample();
    msgs[5].destination = "12";
    assert_int_equal(nhub_send_batch(h, msgs, 10, NULL), NHUB_EINVAL);
    assert_non_null(strstr(nhub_last_error(h), "[5 of 10]"));
    assert_non_null(strstr(nhub_last_error(h), "destination"));
    msgs[5] = sample();
    static uint8_t big[(1 << 20) + 1];
    msgs[7].payload = big;
    msgs[7].payload_len = sizeof big;
    assert_int_equal(nhub_send_batch(h, msgs, 10, NULL), NHUB_ETOOBIG);
    assert_non_null(strstr(nhub_last_error(h), "[7 of 10]"));
    assert_int_equal(nhub_send_batch(h, NULL, 1, NULL), NHUB_EINVAL);
    nhub_store_info_t info;
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_int_equal(info.outbox, 0);
    assert_int_equal(info.next_stream_seq, 1); /* no local seq was taken */
    /* A single bad message still reads as before, without an index. */
    assert_int_equal(nhub_send(h, &msgs[7], NULL), NHUB_ETOOBIG);
    assert_int_not_equal(nhub_last_error(h)[0], '[');
    nhub_close(&h);
}

static void test_confirm_batch_records_all_and_drops_their_redeliveries(void **state)
{
    fx_t *fx = *state;
    fake_hub_t fh;
    hub_start(&fh);
    nhub_t *h = open_to(fx, &fh);
    hub_session(&fh, h, 0);
    nhub_delivery_t *ds[5];
    for (int i = 0; i < 5; i++)
        hub_deliver(&fh, i + 1, (uint64_t)i + 1);
    for (int i = 0; i < 5; i++)
        ds[i] = recv_one(h);

    /* Refused as a whole: nothing recorded, every delivery still the caller's. */
    nhub_delivery_t foreign;
    nhub_delivery_t *bad[3] = {ds[0], &foreign, ds[1]};
    assert_int_equal(nhub_confirm_batch(h, bad, 3), NHUB_EINVAL);
    assert_non_null(strstr(nhub_last_error(h), "[1 of 3]"));
    nhub_delivery_t *twice[2] = {ds[0], ds[0]};
    assert_int_equal(nhub_confirm_batch(h, twice, 2), NHUB_EINVAL);
    assert_non_null(twice[0]);
    nhub_store_info_t info;
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_int_equal(info.confirmed_ids, 0);

    assert_int_equal(nhub_confirm_batch(h, ds, 5), 0);
    for (int i = 0; i < 5; i++)
        assert_null(ds[i]);
    assert_int_equal(nhub_store_info(h, &info), 0);
    assert_int_equal(info.confirmed_ids, 5);
    for (int i = 0; i < 5; i++)
        expect_delivered(&fh, h, i + 1, (uint64_t)i + 1);
    hub_settle(&fh, h, 5);
    expect_answered_not_handed(&fh, h, 3, 3);
    hub_settle(&fh, h, 1);
    assert_int_equal(unsent_of(h), 0);
    nhub_stats_t st;
    nhub_stats(h, &st);
    assert_int_equal(st.confirmed, 5);
    assert_int_equal(st.duplicates, 1);
    nhub_close(&h);

    /* Also after a restart. */
    h = open_to(fx, &fh);
    hub_session(&fh, h, 0);
    expect_answered_not_handed(&fh, h, 4, 4);
    nhub_close(&h);
    hub_stop(&fh);
}

int main(void)
{
    log_setup(LOG_OFF, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_persists_across_close_and_reopen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_seq_continues_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_stores_have_different_stream_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_destination_refused_naming_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_invalid_item_kind_and_type_refused_naming_them, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_oversize_refused_with_etoobig, setup, teardown),
        cmocka_unit_test_setup_teardown(test_given_msg_id_is_kept_and_envelope_filled, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_generated_msg_ids_are_distinct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recv_with_timeout_zero_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pump_fds_returns_when_a_descriptor_is_readable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flush_times_out_while_outbox_not_empty, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_offline_stores_but_does_not_serve, setup, teardown),
        cmocka_unit_test(test_close_accepts_null),
        cmocka_unit_test_setup_teardown(test_open_rejects_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_full_at_map_size_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_grows_past_initial_map, setup, teardown),
        cmocka_unit_test(test_kind_names_round_trip),
        cmocka_unit_test(test_inbox_orders_by_dseq_and_drops_gaps_and_repeats),
        cmocka_unit_test(test_inbox_is_bounded),
        cmocka_unit_test_setup_teardown(test_hello_announces_adapter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_only_announces_credit_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_sent_in_order_and_emptied_by_acks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_welcome_drops_what_hub_holds_and_resends_the_rest,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_order_resyncs_with_hello, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_retryable_nack_rejects_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retryable_nack_backs_off_then_says_hello, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unacked_send_is_resent_after_resend_after, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliveries_in_order_once_and_confirmed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_confirmed_set_survives_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_batch_is_durable_acked_and_kept_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_send_batch_with_one_bad_message_stores_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_confirm_batch_records_all_and_drops_their_redeliveries,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_frames_are_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_hub_gets_a_fresh_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_confirmation_made_offline_is_sent_next_session_and_ages_only_after, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_delivereds_beyond_what_awaits_proof_wait_and_none_is_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_frame_over_max_frame_drops_the_connection_and_a_new_socket_follows, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_send_conflict_starts_new_stream_renumbering_the_outbox,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_conflict_starts_new_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_welcome_beyond_own_numbering_starts_new_stream_keeping_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_conflict_during_resync_waits_for_welcome, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_ack_naming_another_message_keeps_it_and_starts_new_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_message_over_hub_max_frame_rejected_here_and_stream_renumbered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_ack_fires_once_per_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirmed_ids_expire_after_retention_in_batches, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_retention_and_max_frame_options_are_checked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_outbox_rotate_renumbers_and_expire_follows_reconfirm,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_format1_store_is_upgraded_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format2_store_upgraded_and_newer_format_refused, setup,
                                        teardown),
        cmocka_unit_test(test_outbox_record_layout_and_bad_headers),
        cmocka_unit_test_setup_teardown(test_open_refuses_missing_or_contradictory_security, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_curve_hub_receives_sends_signed_by_the_region_key,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_refused_key_is_reported_message_kept_and_reconnect_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_plaintext_adapter_at_curve_hub_reports_handshake_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_wrong_hub_key_reports_handshake_failure_without_spinning, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_messages_stored_unsigned_or_under_old_key_are_signed_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_nacks_reject_for_good_even_if_marked_retryable,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_refused_unauthenticated_shows_refused_link,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_exposes_signature_key_id_and_envelope, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
