/*
 * nhub-soak: crash soak of nhubd and libnhub, with cases.
 *
 * Starts a real nhubd in a temporary directory (test/harness) on the test
 * catalogue (test/data/catalog-test.yaml, where SI-SOAK-001 has a time
 * limit: every push opens a case), forks K sender processes and R receiver
 * processes, each with its own libnhub adapter (own data_dir, own region),
 * and then, for each cycle: lets them run under load for a random 0.5-3 s,
 * kills nhubd with SIGKILL at that instant and starts it again on the same
 * port. In about one cycle of four it also kills one random sender or
 * receiver with SIGKILL at a random instant of the load and starts it again
 * on the same data_dir. At the end the senders stop producing; once their
 * outboxes are empty (every case is open) the hub's clock is moved 3 days
 * ahead (past every case's grace, so every unanswered case expires and the
 * hub queues its final answer EXPIRED to the sender; pushes not yet handed
 * and feedbacks not yet through race with it), everything drains (bounded),
 * the processes and the hub stop, and the records the processes wrote and
 * the cases in the hub's store are checked.
 *
 * Receivers answer every push whose seq % 3 != 0 with one FEEDBACK
 * (correlation_id = the push's msg_id, to the push's source; opaque
 * payload, so it closes the case as answered), committed to their outbox
 * before the push is confirmed; the others are never answered. A
 * feedback's msg_id is made from the push's, so a feedback sent again after
 * a re-hand-over is the same message (the hub's dedup ACKs it again).
 *
 * What is recorded. Every process appends fixed-size records (write(2) of
 * 16 bytes to an O_APPEND file, so a SIGKILL never leaves a torn record in
 * practice, and a torn tail is ignored) to its own file in the temp dir:
 *   sender   S seq dst  before nhub_send (so a restarted sender never reuses
 *                       a number; a number whose send did not commit is a gap)
 *            A seq dst  in on_ack: the hub acknowledged the message
 *            R seq dst  in on_reject: the hub refused it for good
 *            F          the outbox is empty after production stopped
 *            W seq dst  a final answer to push seq was handed over (pad: 1 =
 *                       the receiver's feedback, 2 = the hub's EXPIRED),
 *                       written BEFORE nhub_confirm
 *            V seq dst  its nhub_confirm returned 0
 *            Y seq dst  its nhub_confirm failed (the delivery was released)
 *            N seq dst  the hub's OVERDUE notice about case seq (pad: event)
 *   receiver H src seq  the message was handed to the application (nhub_recv),
 *                       written BEFORE nhub_confirm
 *            C src seq  nhub_confirm returned 0
 *            E src seq  nhub_confirm failed (the delivery was released)
 *            B src seq  the feedback to push (src, seq) is in the outbox
 *            K src seq  in on_ack: the hub acknowledged that feedback
 *            L src seq  in on_reject, NACK_CASE_CLOSED: the case had closed
 *            R src seq  in on_reject, any other code (pad: the code)
 *            Z src seq  nhub_send_batch of the feedback failed
 *            N src seq  the hub's REMINDER or OVERDUE notice (pad: event)
 *            F          the outbox is empty (after production stopped)
 *   both     X          a delivery or msg_id that is not what was sent
 * A message's msg_id carries (tag, sender, destination, seq) so on_ack,
 * which only gets the msg_id, can name it, also for messages a killed
 * incarnation left in the outbox. The payload is "SRC:SEQ" (SRC = the
 * sender's region), a feedback's "answer SRC:SEQ".
 *
 * The verdict, for every (source, seq):
 *   lost          ACKed (an A record) but never handed to the destination;
 *   duplicated    handed again after a hand-over that was confirmed (H then
 *                 C, then H again). A hand-over with no C after it (the
 *                 receiver was killed between nhub_recv and the end of
 *                 nhub_confirm, or nhub_confirm failed) may legitimately be
 *                 followed by the same message again: nhub.h promises that
 *                 "a message handed out but not confirmed before the process
 *                 stopped is handed out again". Those are counted as
 *                 `rehanded`, not as duplicates. Blind spot: a receiver
 *                 killed after nhub_confirm returned but before its C record
 *                 is written looks unconfirmed, so a real duplicate there
 *                 would be counted as a re-hand-over;
 *   out_of_order  per (source, destination), the FIRST hand-overs are not in
 *                 increasing seq order.
 * And for every case (read from the hub's store with store_open_reader
 * once the hub has stopped):
 *   cases_lost      a push ACKed (or handed) whose case is not in the store;
 *   cases_open      a case not closed at the end;
 *   answered_twice  the sender was handed a second final answer after a
 *                   confirmed one, or a different one (the same rule as
 *                   `duplicated`: the same answer again after an unconfirmed
 *                   hand-over is `answer_rehanded`), or its answer does not
 *                   match how the store says the case closed (answered but
 *                   the sender got EXPIRED, or the other way round);
 *   no_final_answer a closed case whose sender was never handed an answer.
 * A feedback the hub refused with NACK_CASE_CLOSED (the case expired before
 * it got through) is legitimate: `late_feedback`, reported only.
 * Also reported, without failing the run: ack_repeats (on_ack fired more
 * than once for one message), handed_unacked (handed, but no A record: the
 * sender was killed between the outbox commit and its A write), rehanded,
 * answer_rehanded, late_feedback, answerable_expired (a push the receiver
 * answers that expired anyway: its feedback came late), the notices.
 * Failing: lost, duplicated, out_of_order, the four case checks above,
 * misrouted (handed to another region than the one it was sent to),
 * corrupt (a payload, msg_id or delivery that does not match what was sent,
 * a case in the store that no sender sent, or one with the wrong regions),
 * rejected (any refusal but a late feedback), a failed feedback send, a
 * final answer to a push never sent, a process that exited on its own, a
 * drain that did not finish, acked == 0, or no case at all.
 *
 * The hub runs with redeliver_after 1s and redeliver_max 4s (instead of 5 s
 * doubling to 5 min) so the drain at the end is bounded by seconds.
 *
 *   nhub-soak [--cycles N] [--seconds S] [--senders K] [--receivers R]
 *             [--rate M] [--seed X] [--short]
 *
 * NHUB_BIN names the directory of nhubd (default build/bin); NHUB_KEEP_TMP=1
 * keeps the temporary directory (it is also kept when the run fails);
 * NHUB_SOAK_CATALOG names the catalogue (default test/data/catalog-test.yaml,
 * relative to the working directory: run it from the repository root).
 */
#include "harness.h"
#include "nhub.h"
#include "store.h"

#include "nhub/case/v1/case.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SOAK_MAX_SENDERS 16
#define SOAK_MAX_RECEIVERS 8
#define SOAK_MAX_PROCS (SOAK_MAX_SENDERS + SOAK_MAX_RECEIVERS)
#define SOAK_LOAD_MIN_MS 500
#define SOAK_LOAD_SPAN_MS 2500
#define SOAK_HUB_DOWN_MAX_MS 300 /* random time the hub stays dead */
#define SOAK_DRAIN_MAX_MS 60000
#define SOAK_BACKLOG_MAX 2000 /* a sender waits while its outbox holds this many */
#define SOAK_LAG_MAX 4000     /* senders wait while this many ACKed are not handed */
#define SOAK_STOP_WAIT_MS 15000
#define SOAK_HUB_LIMITS "  redeliver_after: 1s\n  redeliver_max: 4s\n"
#define SOAK_ITEM "SI-SOAK-001"
#define SOAK_TYPE "nhub.soak.v1.Counter"
#define SOAK_ANSWER_TYPE "nhub.soak.v1.Answer"
#define SOAK_NOTICE_TYPE "nhub.case.v1.CaseNotice"
#define SOAK_HUB_REGION "000000" /* the hub's own region code: its notices come from it */
#define SOAK_CATALOG "test/data/catalog-test.yaml"
/* Past every case's expiry: SI-SOAK-001 has time_limit 1d + grace 1d. */
#define SOAK_CLOCK_JUMP_MS (INT64_C(3) * 24 * 3600 * 1000)
#define SOAK_BATCH 64            /* deliveries taken (and confirmed) at once */
#define SOAK_NACK_CASE_CLOSED 24 /* nhub.wire.v1.NackCode NACK_CASE_CLOSED */

/* The pushes a receiver answers; the others are left to expire. */
#define SOAK_ANSWERED(seq) ((seq) % 3 != 0)

/* ---- records ---------------------------------------------------------------- */

enum rec_type {
    REC_SENT = 'S',
    REC_ACKED = 'A',
    REC_REJECTED = 'R',
    REC_FLUSHED = 'F',
    REC_HANDED = 'H',
    REC_CONFIRMED = 'C',
    REC_CONFIRM_FAILED = 'E',
    REC_CORRUPT = 'X',
    REC_ANSWER = 'W',
    REC_ANSWER_CONFIRMED = 'V',
    REC_ANSWER_CONFIRM_FAILED = 'Y',
    REC_NOTICE = 'N',
    REC_FB_SENT = 'B',
    REC_FB_ACKED = 'K',
    REC_FB_LATE = 'L',
    REC_FB_FAILED = 'Z',
};

/* The pad of a W record: which final answer. */
enum { ANSWER_FEEDBACK = 1, ANSWER_EXPIRED = 2 };

/* One record: 16 bytes, written with one write(2). */
typedef struct soak_rec {
    uint8_t type;
    uint8_t src;          /* sender index */
    uint8_t dst;          /* receiver index */
    uint8_t pad;          /* W: ANSWER_*; N: the notice's event; R: the NACK code */
    uint32_t incarnation; /* of the process that wrote it */
    uint64_t seq;
} soak_rec_t;

_Static_assert(sizeof(soak_rec_t) == 16, "records are 16 bytes");

/* ---- options and random numbers ------------------------------------------- */

typedef struct soak_opts {
    int cycles;
    int seconds;
    int senders;
    int receivers;
    int rate; /* messages a second per sender */
    uint64_t seed;
    int short_run;
} soak_opts_t;

/* splitmix64: small, seedable, good enough to pick instants and victims. */
typedef struct soak_rng {
    uint64_t state;
} soak_rng_t;

static uint64_t rng_next(soak_rng_t *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rng_below(soak_rng_t *r, uint64_t n)
{
    return n ? rng_next(r) % n : 0;
}

/* ---- signals (the only globals) ------------------------------------------ */

static volatile sig_atomic_t g_stop; /* child: SIGTERM; parent: SIGINT/SIGTERM */

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void catch_signal(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL); /* no SA_RESTART: a wait returns at once */
}

/* ---- what a child process knows ------------------------------------------- */

/*
 * The parent's word to the children, in memory shared with them (an
 * anonymous MAP_SHARED mapping made before the first fork), so a process
 * started again during the drain reads it too.
 */
typedef struct soak_ctl {
    _Atomic int paused;         /* receivers lag too far behind: hold production */
    _Atomic int stop_producing; /* the drain began */
} soak_ctl_t;

typedef struct soak_child {
    const char *dir; /* the soak's temp dir */
    const char *endpoint;
    int index; /* sender index, or receiver index */
    int senders, receivers;
    int rate;
    uint32_t incarnation;
    uint64_t seed;
    uint8_t nonce[5]; /* of this run, in every msg_id */
    int rec_fd;
    int bell_fd;     /* doorbell pipe to the parent (non-blocking) */
    soak_ctl_t *ctl; /* shared with the parent */
} soak_child_t;

static const char *sender_region(int i)
{
    return th_regions[i];
}

static const char *receiver_region(const soak_child_t *c, int j)
{
    return th_regions[c->senders + j];
}

static void path_of(char *buf, size_t cap, const char *dir, const char *role, int i,
                    const char *suffix)
{
    snprintf(buf, cap, "%s/%s-%d%s", dir, role, i, suffix);
}

/* Append one record; a failed write ends the child (the record is the test). */
static void rec_put_pad(soak_child_t *c, int type, int src, int dst, int pad, uint64_t seq)
{
    soak_rec_t r = {(uint8_t)type, (uint8_t)src, (uint8_t)dst, (uint8_t)pad, c->incarnation, seq};
    if (write(c->rec_fd, &r, sizeof r) != (ssize_t)sizeof r) {
        fprintf(stderr, "soak: writing a record: %s\n", strerror(errno));
        _exit(3);
    }
}

static void rec_put(soak_child_t *c, int type, int src, int dst, uint64_t seq)
{
    rec_put_pad(c, type, src, dst, 0, seq);
}

/* Wake the parent; a full pipe already says "look". */
static void ring(const soak_child_t *c)
{
    char b = 1;
    if (write(c->bell_fd, &b, 1) < 0 && errno != EAGAIN)
        fprintf(stderr, "soak: doorbell: %s\n", strerror(errno));
}

/* msg_id = tag ('s' a push, 'f' its feedback), src, dst, nonce[5], seq
 * (big-endian): a feedback's msg_id is its push's with another tag. */
static void msg_id_make(const uint8_t nonce[5], int tag, int src, int dst, uint64_t seq,
                        uint8_t id[16])
{
    id[0] = (uint8_t)tag;
    id[1] = (uint8_t)src;
    id[2] = (uint8_t)dst;
    memcpy(id + 3, nonce, 5);
    for (int b = 0; b < 8; b++)
        id[8 + b] = (uint8_t)(seq >> (56 - 8 * b));
}

static int msg_id_parse(const soak_child_t *c, const uint8_t id[16], int tag, int *src, int *dst,
                        uint64_t *seq)
{
    if (id[0] != tag || memcmp(id + 3, c->nonce, 5) != 0)
        return -1;
    *src = id[1];
    *dst = id[2];
    *seq = 0;
    for (int b = 0; b < 8; b++)
        *seq = (*seq << 8) | id[8 + b];
    return *src < c->senders && *dst < c->receivers ? 0 : -1;
}

static int open_adapter(soak_child_t *c, const char *role, const char *region, nhub_t **out,
                        nhub_ack_fn *ack, nhub_reject_fn *reject)
{
    char data_dir[512], err[256];
    path_of(data_dir, sizeof data_dir, c->dir, role, c->index, ".data");
    nhub_options_t o;
    memset(&o, 0, sizeof o);
    o.region = region;
    o.hub_endpoint = c->endpoint;
    o.data_dir = data_dir;
    o.credit = 256;
    o.window = 256;
    o.resend_after_ms = 2000;
    o.heartbeat_ms = 500;
    o.insecure_plaintext = 1; /* the hub runs in its insecure development mode */
    o.on_ack = ack;
    o.on_ack_arg = c;
    o.on_reject = reject;
    o.on_reject_arg = c;
    if (nhub_open(&o, out, err, sizeof err) != 0) {
        fprintf(stderr, "soak: nhub_open %s %s: %s\n", role, region, err);
        return -1;
    }
    return 0;
}

/* Wait up to timeout_ms for a delivery, then take what else is there at
 * once (SOAK_BATCH at most) into ds[]. Returns how many. */
static size_t take_batch(nhub_t *a, nhub_delivery_t **ds, int timeout_ms)
{
    if (nhub_recv(a, &ds[0], timeout_ms) != 0)
        return 0;
    size_t n = 1;
    while (n < SOAK_BATCH && nhub_recv(a, &ds[n], 0) == 0)
        n++;
    return n;
}

/*
 * The event of the hub's case notice `d` about the case of push (src, dst),
 * or -1 if `d` is not one: from the hub's region, a CaseNotice whose
 * case_id is the delivery's correlation_id and whose item and regions are
 * those of the push.
 */
static int notice_event(const soak_child_t *c, const nhub_delivery_t *d, int src, int dst)
{
    if (strcmp(d->source, SOAK_HUB_REGION) != 0 || strcmp(d->payload_type, SOAK_NOTICE_TYPE) != 0 ||
        d->correlation_len != NHUB_MSG_ID_LEN)
        return -1;
    Nhub__Case__V1__CaseNotice *n =
        nhub__case__v1__case_notice__unpack(NULL, d->payload_len, (const uint8_t *)d->payload);
    if (!n)
        return -1;
    int ev = (int)n->event;
    if (n->case_id.len != NHUB_MSG_ID_LEN ||
        memcmp(n->case_id.data, d->correlation_id, NHUB_MSG_ID_LEN) != 0 ||
        strcmp(n->item, SOAK_ITEM) != 0 || strcmp(n->requester, sender_region(src)) != 0 ||
        strcmp(n->handler, receiver_region(c, dst)) != 0 || n->expires_ms <= n->due_ms)
        ev = -1;
    nhub__case__v1__case_notice__free_unpacked(n, NULL);
    return ev;
}

static void say_unexpected(const nhub_delivery_t *d, const char *why)
{
    char hex[33];
    fprintf(stderr, "soak: unexpected delivery %s from %s kind %d type %s: %s\n",
            nhub_msg_id_hex(d->msg_id, hex), d->source, d->kind, d->payload_type, why);
}

/* ---- sender process --------------------------------------------------------- */

static void sender_on_ack(void *arg, const uint8_t msg_id[NHUB_MSG_ID_LEN])
{
    soak_child_t *c = arg;
    int src, dst;
    uint64_t seq;
    if (msg_id_parse(c, msg_id, 's', &src, &dst, &seq) != 0 || src != c->index) {
        char hex[33];
        fprintf(stderr, "soak: on_ack for a msg_id not ours: %s\n", nhub_msg_id_hex(msg_id, hex));
        rec_put(c, REC_CORRUPT, c->index, 0, 0);
        return;
    }
    rec_put(c, REC_ACKED, src, dst, seq);
}

static void sender_on_reject(void *arg, const uint8_t msg_id[NHUB_MSG_ID_LEN], int code,
                             const char *text)
{
    soak_child_t *c = arg;
    int src, dst;
    uint64_t seq;
    fprintf(stderr, "soak: rejected (code %d): %s\n", code, text ? text : "");
    if (msg_id_parse(c, msg_id, 's', &src, &dst, &seq) == 0 && src == c->index)
        rec_put_pad(c, REC_REJECTED, src, dst, code > 0 && code < 256 ? code : 255, seq);
    else
        rec_put(c, REC_CORRUPT, c->index, 0, 0);
}

/* The next seq to use: one past every seq this sender ever announced. */
static uint64_t sender_next_seq(const soak_child_t *c)
{
    char path[512];
    path_of(path, sizeof path, c->dir, "sender", c->index, ".rec");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint64_t max = 0;
    soak_rec_t r;
    while (fd >= 0 && read(fd, &r, sizeof r) == (ssize_t)sizeof r) {
        if (r.type == REC_SENT && r.seq > max)
            max = r.seq;
    }
    if (fd >= 0)
        close(fd);
    return max + 1;
}

static int sender_send(soak_child_t *c, nhub_t *a, uint64_t seq, int dst)
{
    char payload[48];
    uint8_t id[16];
    int n = snprintf(payload, sizeof payload, "%s:%" PRIu64, sender_region(c->index), seq);
    msg_id_make(c->nonce, 's', c->index, dst, seq, id);
    nhub_message_t m;
    memset(&m, 0, sizeof m);
    m.msg_id = id;
    m.destination = receiver_region(c, dst);
    m.item = SOAK_ITEM;
    m.kind = NHUB_KIND_PUSH;
    m.payload_type = SOAK_TYPE;
    m.payload = payload;
    m.payload_len = (size_t)n;
    rec_put(c, REC_SENT, c->index, dst, seq);
    int rc = nhub_send(a, &m, NULL);
    if (rc != 0)
        fprintf(stderr, "soak: nhub_send seq=%" PRIu64 ": %s: %s\n", seq, nhub_strerror(rc),
                nhub_last_error(a));
    return rc;
}

/*
 * What a delivery to a sender is: REC_ANSWER (*pad = ANSWER_*: the
 * receiver's feedback, or the hub's EXPIRED), REC_NOTICE (*pad = the event:
 * the hub's OVERDUE notice) or REC_CORRUPT; *dst and *seq name the push.
 */
static int sender_classify(const soak_child_t *c, const nhub_delivery_t *d, int *dst, uint64_t *seq,
                           int *pad)
{
    int src, fsrc, fdst;
    uint64_t fseq;
    *dst = 0;
    *seq = 0;
    *pad = 0;
    if (d->correlation_len != NHUB_MSG_ID_LEN ||
        msg_id_parse(c, d->correlation_id, 's', &src, dst, seq) != 0 || src != c->index) {
        say_unexpected(d, "its correlation_id names no push of this sender");
        *dst = 0;
        *seq = 0;
        return REC_CORRUPT;
    }
    if (strcmp(d->item, SOAK_ITEM) != 0) {
        say_unexpected(d, "another item");
        return REC_CORRUPT;
    }
    if (strcmp(d->source, SOAK_HUB_REGION) == 0) {
        int ev = notice_event(c, d, c->index, *dst);
        if (ev == NHUB__CASE__V1__EVENT__EVENT_EXPIRED && d->kind == NHUB_KIND_FEEDBACK) {
            *pad = ANSWER_EXPIRED;
            return REC_ANSWER;
        }
        if (ev == NHUB__CASE__V1__EVENT__EVENT_OVERDUE && d->kind == NHUB_KIND_NOTICE) {
            *pad = ev;
            return REC_NOTICE;
        }
        say_unexpected(d, "from the hub, but not an EXPIRED feedback or OVERDUE notice about "
                          "this push (the requester gets no REMINDER)");
        return REC_CORRUPT;
    }
    char want[64];
    int n = snprintf(want, sizeof want, "answer %s:%" PRIu64, sender_region(c->index), *seq);
    if (d->kind != NHUB_KIND_FEEDBACK || strcmp(d->source, receiver_region(c, *dst)) != 0 ||
        msg_id_parse(c, d->msg_id, 'f', &fsrc, &fdst, &fseq) != 0 || fsrc != c->index ||
        fdst != *dst || fseq != *seq || !SOAK_ANSWERED(*seq) || d->payload_len != (size_t)n ||
        memcmp(d->payload, want, (size_t)n) != 0) {
        say_unexpected(d, "not the feedback the push's receiver sends");
        return REC_CORRUPT;
    }
    *pad = ANSWER_FEEDBACK;
    return REC_ANSWER;
}

/* Record what came (W before the confirmation), confirm it all, record V or Y. */
static void sender_take(soak_child_t *c, nhub_t *a, nhub_delivery_t **ds, size_t n)
{
    int type[SOAK_BATCH], dst[SOAK_BATCH], pad[SOAK_BATCH];
    uint64_t seq[SOAK_BATCH];
    for (size_t i = 0; i < n; i++) {
        type[i] = sender_classify(c, ds[i], &dst[i], &seq[i], &pad[i]);
        rec_put_pad(c, type[i], c->index, dst[i], pad[i], seq[i]);
    }
    int rc = nhub_confirm_batch(a, ds, n);
    for (size_t i = 0; i < n; i++)
        if (type[i] == REC_ANSWER)
            rec_put_pad(c, rc == 0 ? REC_ANSWER_CONFIRMED : REC_ANSWER_CONFIRM_FAILED, c->index,
                        dst[i], pad[i], seq[i]);
    if (rc != 0) {
        fprintf(stderr, "soak: nhub_confirm_batch: %s: %s\n", nhub_strerror(rc),
                nhub_last_error(a));
        for (size_t i = 0; i < n; i++)
            nhub_delivery_release(a, &ds[i]);
    }
    ring(c);
}

/* Serve the connection for up to timeout_ms, taking the answers that come. */
static void sender_serve(soak_child_t *c, nhub_t *a, int timeout_ms)
{
    nhub_delivery_t *ds[SOAK_BATCH];
    size_t n = take_batch(a, ds, timeout_ms);
    if (n)
        sender_take(c, a, ds, n);
}

/* After production stopped: flush once, record it, then keep serving. */
static void sender_drain_step(soak_child_t *c, nhub_t *a, int *flushed)
{
    if (*flushed) {
        sender_serve(c, a, 500);
        return;
    }
    if (nhub_flush(a, 100) == 0) {
        rec_put(c, REC_FLUSHED, c->index, 0, 0);
        ring(c);
        *flushed = 1;
    }
    sender_serve(c, a, 0);
}

static int sender_main(soak_child_t *c)
{
    nhub_t *a = NULL;
    if (open_adapter(c, "sender", sender_region(c->index), &a, sender_on_ack, sender_on_reject) !=
        0)
        return 2;
    soak_rng_t rng = {c->seed ^ ((uint64_t)c->index << 40) ^ c->incarnation};
    uint64_t seq = sender_next_seq(c);
    int64_t start = th_now_ms();
    uint64_t sent = 0;
    int flushed = 0, rc = 0;
    while (!g_stop && rc == 0) {
        if (atomic_load(&c->ctl->stop_producing)) {
            sender_drain_step(c, a, &flushed);
            continue;
        }
        if (atomic_load(&c->ctl->paused)) {
            sender_serve(c, a, 100);
            start = th_now_ms(); /* no burst to catch up after the pause */
            sent = 0;
            continue;
        }
        /* Pace to `rate` a second, serving the connection meanwhile. */
        int64_t due = start + (int64_t)(sent * 1000 / (uint64_t)c->rate);
        int64_t now = th_now_ms();
        nhub_stats_t st;
        nhub_stats(a, &st);
        if (due > now || st.outbox >= SOAK_BACKLOG_MAX) {
            sender_serve(c, a, due > now ? (int)(due - now) : 50);
            continue;
        }
        rc = sender_send(c, a, seq++, (int)rng_below(&rng, (uint64_t)c->receivers));
        sent++;
    }
    nhub_close(&a);
    return rc == 0 ? 0 : 4;
}

/* ---- receiver process ------------------------------------------------------- */

static void receiver_on_ack(void *arg, const uint8_t msg_id[NHUB_MSG_ID_LEN])
{
    soak_child_t *c = arg;
    int src, dst;
    uint64_t seq;
    if (msg_id_parse(c, msg_id, 'f', &src, &dst, &seq) != 0 || dst != c->index) {
        char hex[33];
        fprintf(stderr, "soak: on_ack for a msg_id not ours: %s\n", nhub_msg_id_hex(msg_id, hex));
        rec_put(c, REC_CORRUPT, 0, c->index, 0);
        return;
    }
    rec_put(c, REC_FB_ACKED, src, dst, seq);
}

/* NACK_CASE_CLOSED is a feedback that came after the case expired: late, legitimate. */
static void receiver_on_reject(void *arg, const uint8_t msg_id[NHUB_MSG_ID_LEN], int code,
                               const char *text)
{
    soak_child_t *c = arg;
    int src, dst;
    uint64_t seq;
    fprintf(stderr, "soak: feedback %s (code %d): %s\n",
            code == SOAK_NACK_CASE_CLOSED ? "late" : "rejected", code, text ? text : "");
    if (msg_id_parse(c, msg_id, 'f', &src, &dst, &seq) == 0 && dst == c->index)
        rec_put_pad(c, code == SOAK_NACK_CASE_CLOSED ? REC_FB_LATE : REC_REJECTED, src, dst,
                    code > 0 && code < 256 ? code : 255, seq);
    else
        rec_put(c, REC_CORRUPT, 0, c->index, 0);
}

/* Which sender and seq a delivery is, from its payload "SRC:SEQ" and msg_id. */
static int receiver_parse(const soak_child_t *c, const nhub_delivery_t *d, int *src, uint64_t *seq)
{
    char buf[48];
    if (d->payload_len == 0 || d->payload_len >= sizeof buf)
        return -1;
    memcpy(buf, d->payload, d->payload_len);
    buf[d->payload_len] = '\0';
    char *colon = strchr(buf, ':');
    if (!colon)
        return -1;
    *colon = '\0';
    *src = -1;
    for (int i = 0; i < c->senders; i++)
        if (strcmp(buf, sender_region(i)) == 0)
            *src = i;
    char *end = NULL;
    *seq = strtoull(colon + 1, &end, 10);
    int id_src, id_dst;
    uint64_t id_seq;
    if (*src < 0 || !end || *end || strcmp(d->source, buf) != 0 ||
        msg_id_parse(c, d->msg_id, 's', &id_src, &id_dst, &id_seq) != 0 ||
        d->kind != NHUB_KIND_PUSH || strcmp(d->item, SOAK_ITEM) != 0)
        return -1;
    return id_src == *src && id_seq == *seq ? 0 : -1;
}

/* A hub notice to the handler: REMINDER or OVERDUE about one of its pushes. */
static int receiver_notice(const soak_child_t *c, const nhub_delivery_t *d, int *src, uint64_t *seq,
                           int *event)
{
    int dst;
    if (d->correlation_len != NHUB_MSG_ID_LEN ||
        msg_id_parse(c, d->correlation_id, 's', src, &dst, seq) != 0 || dst != c->index ||
        d->kind != NHUB_KIND_NOTICE)
        return -1;
    *event = notice_event(c, d, *src, dst);
    return *event == NHUB__CASE__V1__EVENT__EVENT_REMINDER ||
                   *event == NHUB__CASE__V1__EVENT__EVENT_OVERDUE
               ? 0
               : -1;
}

/*
 * Take a batch: record each hand-over (H, before anything else), commit
 * the feedbacks of the pushes answered in one transaction (B), confirm the
 * batch in one (C or E). If the feedbacks cannot be stored, nothing is
 * confirmed: the pushes are released and handed again. Returns how many
 * feedbacks were committed.
 */
static size_t receiver_take(soak_child_t *c, nhub_t *a, nhub_delivery_t **ds, size_t n)
{
    int type[SOAK_BATCH], src[SOAK_BATCH], pad[SOAK_BATCH];
    uint64_t seq[SOAK_BATCH];
    nhub_message_t fb[SOAK_BATCH];
    uint8_t ids[SOAK_BATCH][NHUB_MSG_ID_LEN];
    char payload[SOAK_BATCH][64];
    size_t of[SOAK_BATCH], nfb = 0;
    for (size_t i = 0; i < n; i++) {
        const nhub_delivery_t *d = ds[i];
        pad[i] = 0;
        if (strcmp(d->source, SOAK_HUB_REGION) == 0) {
            type[i] =
                receiver_notice(c, d, &src[i], &seq[i], &pad[i]) == 0 ? REC_NOTICE : REC_CORRUPT;
            if (type[i] == REC_CORRUPT)
                say_unexpected(d, "from the hub, but not a REMINDER/OVERDUE notice about a push "
                                  "to this receiver");
        } else if (receiver_parse(c, d, &src[i], &seq[i]) == 0) {
            type[i] = REC_HANDED;
            if (SOAK_ANSWERED(seq[i])) {
                int len = snprintf(payload[nfb], sizeof payload[nfb], "answer %s:%" PRIu64,
                                   sender_region(src[i]), seq[i]);
                msg_id_make(c->nonce, 'f', src[i], c->index, seq[i], ids[nfb]);
                memset(&fb[nfb], 0, sizeof fb[nfb]);
                fb[nfb].msg_id = ids[nfb];
                fb[nfb].destination = d->source;
                fb[nfb].item = SOAK_ITEM;
                fb[nfb].kind = NHUB_KIND_FEEDBACK;
                fb[nfb].correlation_id = d->msg_id;
                fb[nfb].payload_type = SOAK_ANSWER_TYPE;
                fb[nfb].payload = payload[nfb];
                fb[nfb].payload_len = (size_t)len;
                of[nfb++] = i;
            }
        } else {
            say_unexpected(d, "not a push sent to this receiver");
            type[i] = REC_CORRUPT;
        }
        if (type[i] == REC_CORRUPT) {
            src[i] = 0;
            seq[i] = 0;
        }
        rec_put_pad(c, type[i], src[i], c->index, pad[i], seq[i]);
    }
    if (nfb) {
        int rc = nhub_send_batch(a, fb, nfb, NULL);
        for (size_t k = 0; k < nfb; k++)
            rec_put(c, rc == 0 ? REC_FB_SENT : REC_FB_FAILED, src[of[k]], c->index, seq[of[k]]);
        if (rc != 0) {
            fprintf(stderr, "soak: nhub_send_batch of %zu feedbacks: %s: %s\n", nfb,
                    nhub_strerror(rc), nhub_last_error(a));
            for (size_t i = 0; i < n; i++)
                nhub_delivery_release(a, &ds[i]);
            ring(c);
            return 0;
        }
    }
    int rc = nhub_confirm_batch(a, ds, n);
    for (size_t i = 0; i < n; i++)
        if (type[i] == REC_HANDED)
            rec_put(c, rc == 0 ? REC_CONFIRMED : REC_CONFIRM_FAILED, src[i], c->index, seq[i]);
    if (rc != 0) {
        fprintf(stderr, "soak: nhub_confirm_batch: %s: %s\n", nhub_strerror(rc),
                nhub_last_error(a));
        for (size_t i = 0; i < n; i++)
            nhub_delivery_release(a, &ds[i]);
    }
    ring(c);
    return nfb;
}

/*
 * Take pushes and answer them. Once production stopped, say so (F) each
 * time the outbox is empty after feedbacks were stored (and once for each
 * incarnation), so the parent knows every feedback was ACKed or refused.
 */
static int receiver_main(soak_child_t *c)
{
    nhub_t *a = NULL;
    if (open_adapter(c, "receiver", receiver_region(c, c->index), &a, receiver_on_ack,
                     receiver_on_reject) != 0)
        return 2;
    int unflushed = 1;
    while (!g_stop) {
        int draining = atomic_load(&c->ctl->stop_producing);
        nhub_delivery_t *ds[SOAK_BATCH];
        size_t n = take_batch(a, ds, draining ? 100 : 500);
        if (n && receiver_take(c, a, ds, n))
            unflushed = 1;
        if (draining && unflushed) {
            nhub_stats_t st;
            nhub_stats(a, &st);
            if (st.outbox == 0) {
                rec_put(c, REC_FLUSHED, 0, c->index, 0);
                ring(c);
                unflushed = 0;
            }
        }
    }
    nhub_close(&a);
    return 0;
}

/* ---- the parent's view of the records -------------------------------------- */

enum msg_flag {
    MSG_SENT = 1,
    MSG_ACKED = 2,
    MSG_HANDED = 4,    /* handed to the application at least once */
    MSG_CONFIRMED = 8, /* a hand-over was confirmed */
    MSG_OPEN = 16,     /* the last hand-over is not (yet) confirmed */
};

/* What the sender was handed as the push's final answer. */
enum answer_flag {
    ANS_HANDED = 1,    /* a final answer was handed over (W) */
    ANS_CONFIRMED = 2, /* and confirmed (V) */
};

/* What became of the receiver's feedback to the push. */
enum fb_flag {
    FB_SENT = 1,  /* in the receiver's outbox (B) */
    FB_ACKED = 2, /* the hub ACKed it (K) */
    FB_LATE = 4,  /* refused with NACK_CASE_CLOSED (L) */
};

typedef struct msg_state {
    uint8_t flags;
    uint8_t dst;
    uint8_t acks;   /* A records (saturating) */
    uint8_t hands;  /* H records (saturating) */
    uint8_t answer; /* ANSWER_* of the first final answer handed to the sender; 0 = none */
    uint8_t aflags; /* ANS_* */
    uint8_t fb;     /* FB_* */
    uint8_t spare;
} msg_state_t;

typedef struct sender_view {
    msg_state_t *msgs; /* by seq */
    uint64_t cap;
    uint64_t max_seq;
    uint32_t flushed_incarnation; /* incarnation of the last F record, 0 = none */
} sender_view_t;

typedef struct receiver_view {
    uint32_t flushed_incarnation; /* incarnation of the last F record, 0 = none */
    int dirty;                    /* a feedback was stored after that F */
} receiver_view_t;

/* The first example of each kind of failure, for the report. */
typedef struct soak_example {
    int set;
    int src, dst;
    uint64_t seq, prev;
    uint32_t incarnation;
    long long offset; /* in the receiver's (or, for answers, the sender's) record file */
    int pad;          /* the record's pad (answers: the second answer) */
} soak_example_t;

typedef struct soak_counts {
    uint64_t sent, acked, handed, confirmed, rehanded, duplicated, out_of_order;
    uint64_t misrouted, corrupt, rejected, ack_repeats, ack_unknown;
    uint64_t confirm_failed;
    uint64_t pending; /* ACKed and not yet handed */
    /* cases, from the records */
    uint64_t answers_feedback, answers_expired; /* first final answers handed to senders */
    uint64_t answer_rehanded, answered_twice, answer_unsent, answer_confirm_failed;
    uint64_t reminders, overdue_notices;
    uint64_t fb_sent, fb_acked, fb_ack_repeats, late_feedback, fb_failed;
} soak_counts_t;

typedef struct soak_check {
    int senders, receivers;
    uint8_t nonce[5]; /* of the run: the msg_ids, hence the case ids */
    sender_view_t snd[SOAK_MAX_SENDERS];
    receiver_view_t rcv[SOAK_MAX_RECEIVERS];
    uint64_t last_first[SOAK_MAX_SENDERS][SOAK_MAX_RECEIVERS]; /* seq of the last first hand-over */
    long long offset[SOAK_MAX_PROCS];                          /* bytes of each record file read */
    soak_counts_t n;
    soak_example_t ex_dup, ex_ooo, ex_misrouted, ex_twice;
} soak_check_t;

static msg_state_t *msg_at(soak_check_t *k, int src, uint64_t seq)
{
    if (src < 0 || src >= k->senders || seq == 0 || seq > (1ull << 40))
        return NULL;
    sender_view_t *v = &k->snd[src];
    if (seq >= v->cap) {
        uint64_t cap = v->cap ? v->cap : 4096;
        while (cap <= seq)
            cap *= 2;
        msg_state_t *p = realloc(v->msgs, cap * sizeof *p);
        if (!p)
            return NULL;
        memset(p + v->cap, 0, (cap - v->cap) * sizeof *p);
        v->msgs = p;
        v->cap = cap;
    }
    if (seq > v->max_seq)
        v->max_seq = seq;
    return &v->msgs[seq];
}

static void example_set(soak_example_t *e, const soak_rec_t *r, uint64_t prev, long long off)
{
    if (e->set)
        return;
    *e = (soak_example_t){1, r->src, r->dst, r->seq, prev, r->incarnation, off, r->pad};
}

static void check_notice(soak_check_t *k, const soak_rec_t *r)
{
    if (r->pad == NHUB__CASE__V1__EVENT__EVENT_REMINDER)
        k->n.reminders++;
    else
        k->n.overdue_notices++;
}

/* A final answer handed to the sender: first, legitimate repeat, or second answer. */
static void check_answer(soak_check_t *k, msg_state_t *m, const soak_rec_t *r, long long off)
{
    k->n.answer_unsent += !(m->flags & MSG_SENT);
    if (m->aflags & ANS_HANDED) {
        if ((m->aflags & ANS_CONFIRMED) || r->pad != m->answer) {
            k->n.answered_twice++;
            example_set(&k->ex_twice, r, m->answer, off);
        } else {
            k->n.answer_rehanded++;
        }
        return;
    }
    m->aflags |= ANS_HANDED;
    m->answer = r->pad;
    if (r->pad == ANSWER_FEEDBACK)
        k->n.answers_feedback++;
    else
        k->n.answers_expired++;
}

static void check_sender_rec(soak_check_t *k, int i, const soak_rec_t *r, long long off)
{
    if (r->type == REC_FLUSHED) {
        k->snd[i].flushed_incarnation = r->incarnation;
        return;
    }
    if (r->type == REC_CORRUPT) {
        k->n.corrupt++;
        return;
    }
    msg_state_t *m = msg_at(k, r->src, r->seq);
    if (!m || r->src != i || r->dst >= k->receivers) {
        k->n.corrupt++;
        return;
    }
    switch (r->type) {
    case REC_SENT:
        /* The records are read file by file, so a hand-over can be read
         * before the S record written ahead of it: check the route here too. */
        if ((m->flags & (MSG_SENT | MSG_HANDED)) == MSG_HANDED && m->dst != r->dst) {
            k->n.misrouted++;
            example_set(&k->ex_misrouted, r, m->dst, off);
        }
        k->n.sent += !(m->flags & MSG_SENT);
        m->flags |= MSG_SENT;
        m->dst = r->dst;
        break;
    case REC_ACKED:
        k->n.ack_unknown += !(m->flags & MSG_SENT);
        m->acks += m->acks < 255;
        if (m->flags & MSG_ACKED) {
            k->n.ack_repeats++;
            break;
        }
        m->flags |= MSG_ACKED;
        k->n.acked++;
        k->n.pending += !(m->flags & MSG_HANDED);
        break;
    case REC_REJECTED: k->n.rejected++; break;
    case REC_ANSWER: check_answer(k, m, r, off); break;
    case REC_ANSWER_CONFIRMED: m->aflags |= ANS_CONFIRMED; break;
    case REC_ANSWER_CONFIRM_FAILED: k->n.answer_confirm_failed++; break;
    case REC_NOTICE: check_notice(k, r); break;
    default: k->n.corrupt++; break;
    }
}

/* A hand-over: first, legitimate repeat, or duplicate (see the file comment). */
static void check_handed(soak_check_t *k, msg_state_t *m, const soak_rec_t *r, long long off)
{
    m->hands += m->hands < 255;
    if (m->flags & MSG_CONFIRMED) {
        k->n.duplicated++;
        example_set(&k->ex_dup, r, 0, off);
        m->flags |= MSG_OPEN;
        return;
    }
    if (m->flags & MSG_HANDED) {
        k->n.rehanded++;
        m->flags |= MSG_OPEN;
        return;
    }
    m->flags |= MSG_HANDED | MSG_OPEN;
    k->n.handed++;
    k->n.pending -= (m->flags & MSG_ACKED) != 0;
    if (!(m->flags & MSG_SENT))
        m->dst = r->dst; /* its S record may not have been read yet: checked there */
    else if (m->dst != r->dst) {
        k->n.misrouted++;
        example_set(&k->ex_misrouted, r, m->dst, off);
    }
    uint64_t *last = &k->last_first[r->src][r->dst];
    if (r->seq <= *last) {
        k->n.out_of_order++;
        example_set(&k->ex_ooo, r, *last, off);
    }
    *last = r->seq;
}

static void check_receiver_rec(soak_check_t *k, int j, const soak_rec_t *r, long long off)
{
    if (r->type == REC_FLUSHED) {
        k->rcv[j].flushed_incarnation = r->incarnation;
        k->rcv[j].dirty = 0;
        return;
    }
    if (r->type == REC_CORRUPT) {
        k->n.corrupt++;
        return;
    }
    msg_state_t *m = msg_at(k, r->src, r->seq);
    if (!m || r->dst != j || r->dst >= k->receivers) {
        k->n.corrupt++;
        return;
    }
    switch (r->type) {
    case REC_HANDED: check_handed(k, m, r, off); break;
    case REC_CONFIRMED:
        k->n.confirmed += !(m->flags & MSG_CONFIRMED);
        m->flags = (uint8_t)((m->flags | MSG_CONFIRMED) & ~MSG_OPEN);
        break;
    case REC_CONFIRM_FAILED: k->n.confirm_failed++; break;
    case REC_FB_SENT:
        k->rcv[j].dirty = 1;
        k->n.fb_sent += !(m->fb & FB_SENT);
        m->fb |= FB_SENT;
        break;
    case REC_FB_ACKED:
        if (m->fb & FB_ACKED)
            k->n.fb_ack_repeats++;
        else
            k->n.fb_acked++;
        m->fb |= FB_ACKED;
        break;
    case REC_FB_LATE:
        k->n.late_feedback++;
        m->fb |= FB_LATE;
        break;
    case REC_REJECTED: k->n.rejected++; break;
    case REC_FB_FAILED: k->n.fb_failed++; break;
    case REC_NOTICE: check_notice(k, r); break;
    default: k->n.corrupt++; break;
    }
}

/* Read what process `slot` appended since the last look. */
static void check_catch_up_one(soak_check_t *k, const char *dir, int slot)
{
    char path[512];
    int is_sender = slot < k->senders;
    int i = is_sender ? slot : slot - k->senders;
    path_of(path, sizeof path, dir, is_sender ? "sender" : "receiver", i, ".rec");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    soak_rec_t buf[4096];
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof buf, k->offset[slot]);
        size_t whole = n > 0 ? (size_t)n / sizeof *buf : 0;
        for (size_t x = 0; x < whole; x++) {
            long long off = k->offset[slot] + (long long)(x * sizeof *buf);
            if (is_sender)
                check_sender_rec(k, i, &buf[x], off);
            else
                check_receiver_rec(k, i, &buf[x], off);
        }
        k->offset[slot] += (long long)(whole * sizeof *buf);
        if (whole < sizeof buf / sizeof *buf)
            break;
    }
    close(fd);
}

static void check_catch_up(soak_check_t *k, const char *dir)
{
    for (int s = 0; s < k->senders + k->receivers; s++)
        check_catch_up_one(k, dir, s);
}

/* ACKed and never handed (prints the first few), and handed without an A record. */
static uint64_t check_lost(const soak_check_t *k, FILE *out, uint64_t *handed_unacked,
                           uint64_t *handed_unsent)
{
    uint64_t lost = 0;
    *handed_unacked = 0;
    *handed_unsent = 0;
    for (int i = 0; i < k->senders; i++) {
        const sender_view_t *v = &k->snd[i];
        for (uint64_t s = 1; s <= v->max_seq && s < v->cap; s++) {
            const msg_state_t *m = &v->msgs[s];
            *handed_unacked += (m->flags & MSG_HANDED) && !(m->flags & MSG_ACKED);
            *handed_unsent += (m->flags & MSG_HANDED) && !(m->flags & MSG_SENT);
            if (!(m->flags & MSG_ACKED) || (m->flags & MSG_HANDED))
                continue;
            if (lost < 5)
                fprintf(out, "soak: LOST source=%s seq=%" PRIu64 " to receiver-%d (%s)\n",
                        th_regions[i], s, m->dst, th_regions[k->senders + m->dst]);
            lost++;
        }
    }
    return lost;
}

/* Pushes the hub holds (ACKed or handed) whose sender has no final answer yet. */
static uint64_t check_answers_pending(const soak_check_t *k)
{
    uint64_t n = 0;
    for (int i = 0; i < k->senders; i++) {
        const sender_view_t *v = &k->snd[i];
        for (uint64_t s = 1; s <= v->max_seq && s < v->cap; s++) {
            const msg_state_t *m = &v->msgs[s];
            n += (m->flags & (MSG_ACKED | MSG_HANDED)) && !(m->aflags & ANS_HANDED);
        }
    }
    return n;
}

/* ---- the cases in the hub's store --------------------------------------------- */

/* What the store says of the cases, against the records. */
typedef struct case_verdict {
    int read; /* the store could be read */
    uint64_t counts[STORE_CASE_STATES];
    uint64_t found;              /* cases of pushes the senders sent */
    uint64_t lost;               /* ACKed or handed, no case */
    uint64_t open;               /* not closed */
    uint64_t mismatch;           /* the sender's answer is not how the case closed */
    uint64_t no_answer;          /* closed, the sender was handed no final answer */
    uint64_t unknown;            /* cases no sender sent */
    uint64_t wrong;              /* a case with another requester, handler, item or kind */
    uint64_t answerable_expired; /* handed, answered by its receiver, expired all the same */
    uint64_t late_not_expired;   /* a feedback refused as late, but the case did not expire */
} case_verdict_t;

static const char *answer_name(int answer)
{
    return answer == ANSWER_FEEDBACK ? "feedback" : answer == ANSWER_EXPIRED ? "EXPIRED" : "none";
}

static int store_of(const char *hub_dir, store_t **st, store_reader_t **r, char *err, size_t cap)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/hub-data", hub_dir);
    *st = NULL;
    *r = NULL;
    if (store_open_reader(dir, st, err, cap) != 0)
        return -1;
    if (store_reader_open(*st, r) != 0) {
        snprintf(err, cap, "store_reader_open failed");
        store_close(st);
        return -1;
    }
    return 0;
}

static void store_done(store_t **st, store_reader_t **r)
{
    store_reader_close(r);
    store_close(st);
}

/* The hub's cases now: how many, how many not closed. 0, or -1 if unreadable. */
static int store_case_totals(const char *hub_dir, uint64_t *total, uint64_t *open)
{
    store_t *st;
    store_reader_t *r;
    char err[256];
    uint64_t counts[STORE_CASE_STATES];
    if (store_of(hub_dir, &st, &r, err, sizeof err) != 0)
        return -1;
    int rc = store_case_counts(r, counts);
    store_done(&st, &r);
    if (rc != 0)
        return -1;
    *total = counts[0];
    *open = 0;
    for (int s = 1; s < STORE_CASE_STATES; s++)
        *open += store_case_closed(s) ? 0 : counts[s];
    return 0;
}

static void say_case(FILE *out, uint64_t *n, const char *what, int i, uint64_t s,
                     const msg_state_t *m, const soak_check_t *k, const char *more)
{
    if ((*n)++ < 5)
        fprintf(out, "soak: %s source=%s seq=%" PRIu64 " to receiver-%d (%s)%s\n", what,
                th_regions[i], s, m->dst, th_regions[k->senders + m->dst], more);
}

/* Every push the senders sent: its case, its state, its final answer. */
static void check_cases(const soak_check_t *k, const char *hub_dir, case_verdict_t *v, FILE *out)
{
    store_t *st;
    store_reader_t *r;
    char err[256] = "";
    memset(v, 0, sizeof *v);
    if (store_of(hub_dir, &st, &r, err, sizeof err) != 0) {
        fprintf(out, "soak: CANNOT READ THE HUB'S CASES: %s\n", err);
        return;
    }
    int rc = store_case_counts(r, v->counts);
    for (int i = 0; rc == 0 && i < k->senders; i++) {
        const sender_view_t *v_snd = &k->snd[i];
        for (uint64_t s = 1; rc == 0 && s <= v_snd->max_seq && s < v_snd->cap; s++) {
            const msg_state_t *m = &v_snd->msgs[s];
            if (!(m->flags & (MSG_SENT | MSG_ACKED | MSG_HANDED)))
                continue;
            uint8_t id[16];
            msg_id_make(k->nonce, 's', i, m->dst, s, id);
            store_case_t c;
            int e = store_case_read(r, id, &c);
            if (e == NHUB_ENOTFOUND) {
                /* Sent only: its nhub_send may not have committed. */
                if (m->flags & (MSG_ACKED | MSG_HANDED))
                    say_case(out, &v->lost, "CASE LOST", i, s, m, k,
                             m->flags & MSG_ACKED ? " (ACKed)" : " (handed, no A record)");
                continue;
            }
            if (e != 0) {
                fprintf(out, "soak: store_case_read: %s\n", nhub_strerror(e));
                rc = e;
                break;
            }
            v->found++;
            if (strcmp(c.requester, th_regions[i]) != 0 ||
                strcmp(c.handler, th_regions[k->senders + m->dst]) != 0 ||
                strcmp(c.item, SOAK_ITEM) != 0 || c.kind != NHUB_KIND_PUSH)
                say_case(out, &v->wrong, "CASE WITH WRONG FIELDS", i, s, m, k, "");
            char more[96];
            snprintf(more, sizeof more, " state=%s sender_got=%s", store_case_state_name(c.state),
                     answer_name(m->answer));
            if (!store_case_closed(c.state)) {
                say_case(out, &v->open, "CASE OPEN", i, s, m, k, more);
                continue;
            }
            int want = c.state == STORE_CASE_ANSWERED  ? ANSWER_FEEDBACK
                       : c.state == STORE_CASE_EXPIRED ? ANSWER_EXPIRED
                                                       : 0;
            if (!m->answer)
                say_case(out, &v->no_answer, "NO FINAL ANSWER", i, s, m, k, more);
            else if (m->answer != want)
                say_case(out, &v->mismatch, "ANSWER NOT AS CLOSED", i, s, m, k, more);
            v->answerable_expired +=
                c.state == STORE_CASE_EXPIRED && SOAK_ANSWERED(s) && (m->flags & MSG_HANDED);
            if ((m->fb & FB_LATE) && c.state != STORE_CASE_EXPIRED)
                say_case(out, &v->late_not_expired, "LATE FEEDBACK ON A CASE NOT EXPIRED", i, s, m,
                         k, more);
        }
    }
    store_done(&st, &r);
    if (rc != 0) {
        fprintf(out, "soak: CANNOT READ THE HUB'S CASES: %s\n", nhub_strerror(rc));
        return;
    }
    v->read = 1;
    v->unknown = v->counts[0] > v->found ? v->counts[0] - v->found : 0;
    if (v->unknown)
        fprintf(out, "soak: %" PRIu64 " cases in the store no sender sent\n", v->unknown);
}

/* ---- the parent ------------------------------------------------------------- */

typedef struct soak_proc {
    pid_t pid;
    uint32_t incarnation;
} soak_proc_t;

typedef struct soak {
    soak_opts_t opt;
    soak_rng_t rng;
    th_hub_t hub;
    int bell[2];
    uint8_t nonce[5];
    soak_proc_t proc[SOAK_MAX_PROCS];
    int nprocs;
    int cycles, hub_kills, adapter_kills, unexpected_exits, hub_start_failed;
    int pauses; /* times flow control held the senders */
    int hub_stop_failed;
    int clock_jumped;        /* the drain moved the hub's clock past every expiry */
    int clock_failed;        /* and could not */
    int64_t drain_phase1_ms; /* until every sender's outbox was empty: the clock jump */
    int64_t next_store_look; /* the drain reads the hub's case counts at most this often */
    uint64_t drain_cases, drain_cases_open, drain_answers_pending; /* last seen while draining */
    soak_ctl_t *ctl;                                               /* shared with the children */
    soak_check_t check;
    case_verdict_t cases;
} soak_t;

static void child_run(soak_t *s, int slot) __attribute__((noreturn));

static void child_run(soak_t *s, int slot)
{
    int is_sender = slot < s->opt.senders;
    int idx = is_sender ? slot : slot - s->opt.senders;
    const char *role = is_sender ? "sender" : "receiver";
    char path[512];
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    catch_signal(SIGTERM);
    close(s->bell[0]);
    path_of(path, sizeof path, s->hub.dir, role, idx, ".log");
    int log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log >= 0) {
        dup2(log, 2);
        close(log);
    }
    path_of(path, sizeof path, s->hub.dir, role, idx, ".rec");
    soak_child_t c = {
        .dir = s->hub.dir,
        .endpoint = s->hub.endpoint,
        .index = idx,
        .senders = s->opt.senders,
        .receivers = s->opt.receivers,
        .rate = s->opt.rate,
        .incarnation = s->proc[slot].incarnation,
        .seed = s->opt.seed,
        .rec_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600),
        .bell_fd = s->bell[1],
        .ctl = s->ctl,
    };
    memcpy(c.nonce, s->nonce, sizeof c.nonce);
    if (c.rec_fd < 0)
        _exit(3);
    fprintf(stderr, "soak: %s %d incarnation %u pid %d\n", role, idx, c.incarnation, (int)getpid());
    _exit(is_sender ? sender_main(&c) : receiver_main(&c));
}

static int proc_spawn(soak_t *s, int slot)
{
    s->proc[slot].incarnation++;
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "soak: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0)
        child_run(s, slot);
    s->proc[slot].pid = pid;
    return 0;
}

static const char *slot_name(const soak_t *s, int slot, char *buf, size_t cap)
{
    if (slot < s->opt.senders)
        snprintf(buf, cap, "sender-%d", slot);
    else
        snprintf(buf, cap, "receiver-%d", slot - s->opt.senders);
    return buf;
}

/* A child that ended on its own is a failure: say so and start it again. */
static void procs_reap(soak_t *s)
{
    for (int i = 0; i < s->nprocs; i++) {
        int status;
        if (s->proc[i].pid <= 0 || waitpid(s->proc[i].pid, &status, WNOHANG) != s->proc[i].pid)
            continue;
        char name[32];
        fprintf(stderr, "soak: %s (pid %d) exited on its own (status %d); see %s/%s.log\n",
                slot_name(s, i, name, sizeof name), (int)s->proc[i].pid, status, s->hub.dir, name);
        s->unexpected_exits++;
        s->proc[i].pid = 0;
        if (!g_stop)
            proc_spawn(s, i);
    }
}

static void proc_kill(soak_t *s, int slot)
{
    if (s->proc[slot].pid <= 0)
        return;
    kill(s->proc[slot].pid, SIGKILL);
    waitpid(s->proc[slot].pid, NULL, 0);
    s->proc[slot].pid = 0;
}

static void bell_drain(soak_t *s)
{
    char buf[4096];
    while (read(s->bell[0], buf, sizeof buf) > 0) {
    }
}

/*
 * Done draining. Before the clock jump: every sender flushed (this
 * incarnation), so every push that will ever open a case has opened it.
 * After the jump: also every ACKed message handed over, every receiver's
 * outbox empty after its last feedback (this incarnation), every push the
 * hub holds with a final answer at its sender, and in the store no open
 * case and no more cases than answers handed. Not "confirmed": a receiver
 * killed after nhub_confirm committed but before its C record leaves a
 * hand-over that is never confirmed on record and, rightly, never handed
 * again.
 */
static int drain_done(soak_t *s)
{
    for (int i = 0; i < s->opt.senders; i++)
        if (s->check.snd[i].flushed_incarnation != s->proc[i].incarnation)
            return 0;
    if (!s->clock_jumped)
        return 1;
    if (s->check.n.pending != 0)
        return 0;
    for (int j = 0; j < s->opt.receivers; j++)
        if (s->check.rcv[j].dirty ||
            s->check.rcv[j].flushed_incarnation != s->proc[s->opt.senders + j].incarnation)
            return 0;
    s->drain_answers_pending = check_answers_pending(&s->check);
    if (s->drain_answers_pending)
        return 0;
    int64_t now = th_now_ms();
    if (now < s->next_store_look)
        return 0;
    s->next_store_look = now + 100;
    if (store_case_totals(s->hub.dir, &s->drain_cases, &s->drain_cases_open) != 0)
        return 0;
    return s->drain_cases_open == 0 &&
           s->check.n.answers_feedback + s->check.n.answers_expired >= s->drain_cases;
}

/*
 * Flow control: hold the senders while the receivers are more than
 * SOAK_LAG_MAX ACKed messages behind, so the backlog (and the drain) stays
 * bounded on a slow disk; let them go again at half of it.
 */
static void flow_control(soak_t *s)
{
    uint64_t lag = s->check.n.pending;
    int paused = atomic_load(&s->ctl->paused);
    if (!paused && lag > SOAK_LAG_MAX) {
        atomic_store(&s->ctl->paused, 1);
        s->pauses++;
    } else if (paused && lag < SOAK_LAG_MAX / 2) {
        atomic_store(&s->ctl->paused, 0);
    }
}

/*
 * Wait until `deadline` (monotonic ms), watching the children and the
 * records. While draining, wake on the doorbell and return 1 as soon as the
 * drain is done.
 */
static int soak_wait(soak_t *s, int64_t deadline, int draining)
{
    for (;;) {
        procs_reap(s);
        check_catch_up(&s->check, s->hub.dir);
        if (draining && drain_done(s))
            return 1;
        if (!draining)
            flow_control(s);
        int64_t left = deadline - th_now_ms();
        if (left <= 0 || g_stop)
            return 0;
        /* At most 200 ms between looks at the children; during the load this
         * is the random load duration itself, not a synchronisation. */
        struct pollfd p = {s->bell[0], POLLIN, 0};
        poll(&p, draining ? 1 : 0, (int)(left < 200 ? left : 200));
        if (draining)
            bell_drain(s);
    }
}

static int hub_restart(soak_t *s)
{
    if (th_hub_start(&s->hub) != 0) {
        fprintf(stderr, "soak: nhubd did not restart; see %s\n", s->hub.log_path);
        s->hub_start_failed = 1;
        return -1;
    }
    return 0;
}

/* One cycle: load, maybe kill an adapter on the way, kill the hub, restart it. */
static int soak_cycle(soak_t *s)
{
    int64_t load = SOAK_LOAD_MIN_MS + (int64_t)rng_below(&s->rng, SOAK_LOAD_SPAN_MS + 1);
    int kill_adapter = rng_below(&s->rng, 4) == 0;
    int64_t at = (int64_t)rng_below(&s->rng, (uint64_t)load);
    int victim = (int)rng_below(&s->rng, (uint64_t)s->nprocs);
    int64_t down = (int64_t)rng_below(&s->rng, SOAK_HUB_DOWN_MAX_MS + 1);
    int64_t start = th_now_ms();
    if (kill_adapter) {
        soak_wait(s, start + at, 0);
        proc_kill(s, victim);
        if (proc_spawn(s, victim) != 0)
            return -1;
        s->adapter_kills++;
    }
    soak_wait(s, start + load, 0);
    th_hub_kill(&s->hub);
    s->hub_kills++;
    soak_wait(s, th_now_ms() + down, 0);
    if (hub_restart(s) != 0)
        return -1;
    s->cycles++;
    return 0;
}

/* Stop every child with SIGTERM (bounded), then SIGKILL what is left. */
static void procs_stop(soak_t *s)
{
    for (int i = 0; i < s->nprocs; i++)
        if (s->proc[i].pid > 0)
            kill(s->proc[i].pid, SIGTERM);
    int64_t deadline = th_now_ms() + SOAK_STOP_WAIT_MS;
    for (int i = 0; i < s->nprocs; i++) {
        while (s->proc[i].pid > 0 && th_now_ms() < deadline) {
            int status;
            if (waitpid(s->proc[i].pid, &status, WNOHANG) == s->proc[i].pid) {
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                    s->unexpected_exits++;
                s->proc[i].pid = 0;
                break;
            }
            poll(NULL, 0, 10); /* waiting for a child to exit: bounded by the deadline */
        }
        proc_kill(s, i);
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: nhub-soak [--cycles N] [--seconds S] [--senders K] [--receivers R]\n"
            "                 [--rate M] [--seed X] [--short]\n"
            "  --cycles N     hub kill/restart cycles (default 100)\n"
            "  --seconds S    bound on the whole run, drain included (default 300);\n"
            "                 cycles stop early when it is reached\n"
            "  --senders K    sender processes (default 4, at most %d)\n"
            "  --receivers R  receiver processes (default 4, at most %d)\n"
            "  --rate M       messages a second per sender (default 200)\n"
            "  --seed X       seed of the kill schedule (default: from the clock)\n"
            "  --short        10 cycles within 45 s (for make check)\n",
            SOAK_MAX_SENDERS, SOAK_MAX_RECEIVERS);
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end = NULL;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Returns 0, 1 after --help, or -1 on a bad argument (usage printed). */
static int parse_opts(int argc, char **argv, soak_opts_t *o)
{
    *o = (soak_opts_t){100, 300, 4, 4, 200, 0, 0};
    int have_seed = 0, cycles_set = 0, seconds_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0, takes = 1;
        if (strcmp(a, "--cycles") == 0)
            rc = parse_int(v, 1, 1000000, &o->cycles), cycles_set = 1;
        else if (strcmp(a, "--seconds") == 0)
            rc = parse_int(v, 10, 86400 * 7, &o->seconds), seconds_set = 1;
        else if (strcmp(a, "--senders") == 0)
            rc = parse_int(v, 1, SOAK_MAX_SENDERS, &o->senders);
        else if (strcmp(a, "--receivers") == 0)
            rc = parse_int(v, 1, SOAK_MAX_RECEIVERS, &o->receivers);
        else if (strcmp(a, "--rate") == 0)
            rc = parse_int(v, 1, 100000, &o->rate);
        else if (strcmp(a, "--seed") == 0) {
            char *end = NULL;
            o->seed = v ? strtoull(v, &end, 0) : 0;
            rc = v && *v && !*end ? 0 : -1;
            have_seed = 1;
        } else if (strcmp(a, "--short") == 0) {
            o->short_run = 1;
            takes = 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        } else {
            rc = -1;
        }
        if (rc != 0) {
            fprintf(stderr, "nhub-soak: bad argument %s%s%s\n", a, v && takes ? " " : "",
                    v && takes ? v : "");
            usage(stderr);
            return -1;
        }
        i += takes;
    }
    if (o->short_run && !cycles_set)
        o->cycles = 10;
    if (o->short_run && !seconds_set)
        o->seconds = 45;
    if (!have_seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        o->seed = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        o->seed ^= (uint64_t)getpid() << 32;
    }
    return 0;
}

static int soak_setup(soak_t *s)
{
    if (th_hub_init(&s->hub, SOAK_HUB_LIMITS) != 0) {
        fprintf(stderr, "soak: cannot make a temporary directory\n");
        return -1;
    }
    /* The test catalogue: SI-SOAK-001 has a time limit, so every push opens a case. */
    const char *cat = getenv("NHUB_SOAK_CATALOG");
    char catalog[PATH_MAX];
    if (!cat || !cat[0])
        cat = SOAK_CATALOG;
    errno = 0;
    if (!realpath(cat, catalog) || strlen(catalog) > 900) {
        fprintf(stderr,
                "soak: catalogue %s: %s (run from the repository root, or set "
                "NHUB_SOAK_CATALOG)\n",
                cat, errno ? strerror(errno) : "path too long");
        return -1;
    }
    snprintf(s->hub.security, sizeof s->hub.security,
             "security:\n  mode: insecure-plaintext\n  catalog: \"%.900s\"\n", catalog);
    s->ctl = mmap(NULL, sizeof *s->ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s->ctl == MAP_FAILED) {
        s->ctl = NULL;
        fprintf(stderr, "soak: mmap: %s\n", strerror(errno));
        return -1;
    }
    if (pipe2(s->bell, O_CLOEXEC | O_NONBLOCK) != 0) {
        fprintf(stderr, "soak: pipe: %s\n", strerror(errno));
        return -1;
    }
    uint64_t n = rng_next(&s->rng);
    memcpy(s->nonce, &n, sizeof s->nonce);
    memcpy(s->check.nonce, s->nonce, sizeof s->check.nonce);
    s->nprocs = s->opt.senders + s->opt.receivers;
    s->check.senders = s->opt.senders;
    s->check.receivers = s->opt.receivers;
    if (th_hub_start(&s->hub) != 0) {
        s->hub_start_failed = 1;
        return -1;
    }
    for (int i = 0; i < s->nprocs; i++)
        if (proc_spawn(s, i) != 0)
            return -1;
    return 0;
}

/*
 * Stop producing and wait (bounded) until every sender's outbox is empty:
 * every case is open. Then move the hub's clock past every case's expiry
 * (pushes not yet handed, feedbacks not yet through race with it: a
 * feedback that loses is refused as late), and wait (in the same bound)
 * until everything ACKed is handed over, every feedback settled and every
 * case has its final answer at its sender.
 */
static int soak_drain(soak_t *s, int64_t budget_ms, int64_t *took)
{
    int64_t start = th_now_ms();
    atomic_store(&s->ctl->paused, 0);
    atomic_store(&s->ctl->stop_producing, 1);
    int done = soak_wait(s, start + budget_ms, 1);
    s->drain_phase1_ms = th_now_ms() - start;
    if (done) {
        if (th_hub_clock_set(&s->hub, SOAK_CLOCK_JUMP_MS) != 0) {
            printf("soak: cannot move the hub's clock (%s/clock)\n", s->hub.dir);
            s->clock_failed = 1;
            done = 0;
        } else {
            s->clock_jumped = 1;
            done = soak_wait(s, start + budget_ms, 1);
        }
    }
    *took = th_now_ms() - start;
    return done;
}

static void print_example(const char *what, const soak_example_t *e, const soak_t *s)
{
    if (!e->set)
        return;
    printf("soak: first %s: source=%s seq=%" PRIu64 " (previous %" PRIu64
           ") receiver-%d (%s) incarnation=%u at byte %lld of %s/receiver-%d.rec\n",
           what, th_regions[e->src], e->seq, e->prev, e->dst, th_regions[s->opt.senders + e->dst],
           e->incarnation, e->offset, s->hub.dir, e->dst);
}

static void print_twice(const soak_example_t *e, const soak_t *s)
{
    if (!e->set)
        return;
    printf("soak: first answered_twice: source=%s seq=%" PRIu64 " first answer %s, then %s "
           "(receiver-%d) incarnation=%u at byte %lld of %s/sender-%d.rec\n",
           th_regions[e->src], e->seq, answer_name((int)e->prev), answer_name(e->pad), e->dst,
           e->incarnation, e->offset, s->hub.dir, e->src);
}

static int soak_report(soak_t *s, int drained, int64_t drain_ms, int stopped_early,
                       int64_t elapsed_ms)
{
    const soak_counts_t *n = &s->check.n;
    uint64_t handed_unacked = 0, handed_unsent = 0;
    uint64_t lost = check_lost(&s->check, stdout, &handed_unacked, &handed_unsent);
    if (stopped_early)
        printf("soak: time bound of %d s reached after %d of %d cycles: stopped early\n",
               s->opt.seconds, s->cycles, s->opt.cycles);
    if (!drained)
        printf("soak: DRAIN NOT FINISHED within %lld ms (%s: %" PRIu64 " ACKed not handed, %" PRIu64
               " without a final answer, cases in store=%" PRIu64 " open=%" PRIu64 ")\n",
               (long long)drain_ms,
               s->clock_jumped ? "after the clock jump" : "before the clock jump", n->pending,
               s->drain_answers_pending, s->drain_cases, s->drain_cases_open);
    print_example("duplicate", &s->check.ex_dup, s);
    print_example("out-of-order", &s->check.ex_ooo, s);
    print_example("misrouted", &s->check.ex_misrouted, s);
    print_twice(&s->check.ex_twice, s);
    printf("soak: rule: duplicated = handed again after a CONFIRMED hand-over; handed again "
           "after an unconfirmed one (receiver killed before nhub_confirm returned) is a "
           "legitimate re-hand-over (rehanded); the same rule for final answers "
           "(answered_twice / answer_rehanded)\n");
    const case_verdict_t *v = &s->cases;
    uint64_t answered_twice = n->answered_twice + v->mismatch;
    printf("soak: cases: store=%" PRIu64 " answered=%" PRIu64 " expired=%" PRIu64
           " refused=%" PRIu64 " found=%" PRIu64 " unknown=%" PRIu64 " wrong=%" PRIu64
           " answers_handed: feedback=%" PRIu64 " expired=%" PRIu64 " rehanded=%" PRIu64
           " twice=%" PRIu64 " not_as_closed=%" PRIu64 " unsent=%" PRIu64 " confirm_failed=%" PRIu64
           " feedback: sent=%" PRIu64 " acked=%" PRIu64 " ack_repeats=%" PRIu64 " late=%" PRIu64
           " failed=%" PRIu64 " answerable_expired=%" PRIu64 " late_not_expired=%" PRIu64
           " notices: reminder=%" PRIu64 " overdue=%" PRIu64
           " clock_jump_ms=%lld drain_phase1_ms=%lld\n",
           v->counts[0], v->counts[STORE_CASE_ANSWERED], v->counts[STORE_CASE_EXPIRED],
           v->counts[STORE_CASE_REFUSED], v->found, v->unknown, v->wrong, n->answers_feedback,
           n->answers_expired, n->answer_rehanded, n->answered_twice, v->mismatch, n->answer_unsent,
           n->answer_confirm_failed, n->fb_sent, n->fb_acked, n->fb_ack_repeats, n->late_feedback,
           n->fb_failed, v->answerable_expired, v->late_not_expired, n->reminders,
           n->overdue_notices, (long long)SOAK_CLOCK_JUMP_MS, (long long)s->drain_phase1_ms);
    printf("soak: sent=%" PRIu64 " confirmed=%" PRIu64 " rehanded=%" PRIu64
           " handed_unacked=%" PRIu64 " ack_repeats=%" PRIu64 " ack_unknown=%" PRIu64
           " misrouted=%" PRIu64 " corrupt=%" PRIu64 " rejected=%" PRIu64 " confirm_failed=%" PRIu64
           " handed_unsent=%" PRIu64
           " unexpected_exits=%d pauses=%d drain_ms=%lld elapsed_s=%lld\n",
           n->sent, n->confirmed, n->rehanded, handed_unacked, n->ack_repeats, n->ack_unknown,
           n->misrouted, n->corrupt, n->rejected, n->confirm_failed, handed_unsent,
           s->unexpected_exits, s->pauses, (long long)drain_ms, (long long)(elapsed_ms / 1000));
    printf("soak: cycles=%d hub_kills=%d adapter_kills=%d acked=%" PRIu64 " handed=%" PRIu64
           " lost=%" PRIu64 " duplicated=%" PRIu64 " out_of_order=%" PRIu64 " cases=%" PRIu64
           " cases_lost=%" PRIu64 " cases_open=%" PRIu64 " answered_twice=%" PRIu64
           " no_final_answer=%" PRIu64 " late_feedback=%" PRIu64 " seed=%" PRIu64 "\n",
           s->cycles, s->hub_kills, s->adapter_kills, n->acked, n->handed, lost, n->duplicated,
           n->out_of_order, v->counts[0], v->lost, v->open, answered_twice, v->no_answer,
           n->late_feedback, s->opt.seed);
    int bad = lost || n->duplicated || n->out_of_order || n->misrouted || n->corrupt ||
              handed_unsent || n->rejected || n->acked == 0 || s->unexpected_exits || !drained ||
              s->hub_start_failed || s->hub_stop_failed || !v->read || v->counts[0] == 0 ||
              v->lost || v->open || answered_twice || v->no_answer || v->unknown || v->wrong ||
              n->answer_unsent || n->fb_failed || v->late_not_expired || s->clock_failed;
    printf("soak: %s\n", bad ? "FAIL" : "ok");
    return bad;
}

/* The cycles, the drain, the verdict. Returns 1 if the soak failed. */
static int soak_run(soak_t *s)
{
    int64_t t0 = th_now_ms();
    int64_t bound = t0 + (int64_t)s->opt.seconds * 1000;
    int64_t drain_budget = (int64_t)s->opt.seconds * 1000 / 4;
    if (drain_budget > SOAK_DRAIN_MAX_MS)
        drain_budget = SOAK_DRAIN_MAX_MS;
    int ok = soak_setup(s) == 0;
    if (ok)
        printf("soak: dir=%s hub=%s\n", s->hub.dir, s->hub.endpoint);
    int stopped_early = 0;
    while (ok && !g_stop && s->cycles < s->opt.cycles) {
        /* Keep the drain's budget: no cycle starts that could eat into it. */
        if (th_now_ms() + SOAK_LOAD_MIN_MS + SOAK_LOAD_SPAN_MS > bound - drain_budget) {
            stopped_early = 1;
            break;
        }
        ok = soak_cycle(s) == 0;
        if (s->cycles % 10 == 0) {
            check_catch_up(&s->check, s->hub.dir);
            printf("soak: cycle %d/%d t=%llds acked=%" PRIu64 " handed=%" PRIu64
                   " hub_kills=%d adapter_kills=%d\n",
                   s->cycles, s->opt.cycles, (long long)((th_now_ms() - t0) / 1000),
                   s->check.n.acked, s->check.n.handed, s->hub_kills, s->adapter_kills);
            fflush(stdout);
        }
    }
    int64_t drain_ms = 0;
    int64_t left = bound - th_now_ms();
    int drained = ok && soak_drain(s, left > drain_budget ? left : drain_budget, &drain_ms);
    procs_stop(s);
    if (s->hub.pid > 0 && th_hub_stop(&s->hub) != 0) {
        printf("soak: nhubd did not stop cleanly on SIGTERM; see %s\n", s->hub.log_path);
        s->hub_stop_failed = 1;
    }
    check_catch_up(&s->check, s->hub.dir);
    if (s->hub.dir[0] && !s->hub_start_failed)
        check_cases(&s->check, s->hub.dir, &s->cases, stdout);
    if (g_stop)
        printf("soak: interrupted\n");
    int bad = soak_report(s, drained, drain_ms, stopped_early, th_now_ms() - t0) || !ok;
    if (bad || getenv("NHUB_KEEP_TMP"))
        printf("soak: kept %s (hub.log, sender-*/receiver-* .log and .rec)\n", s->hub.dir);
    else
        th_rmrf(s->hub.dir);
    return bad;
}

int main(int argc, char **argv)
{
    soak_t *s = calloc(1, sizeof *s); /* large: the checker's tables */
    if (!s)
        return 2;
    int rc = parse_opts(argc, argv, &s->opt);
    if (rc != 0) {
        rc = rc > 0 ? 0 : 2;
        goto done;
    }
    s->rng.state = s->opt.seed;
    catch_signal(SIGINT);
    catch_signal(SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    printf("soak: seed=%" PRIu64 " cycles=%d seconds=%d senders=%d receivers=%d rate=%d/s\n",
           s->opt.seed, s->opt.cycles, s->opt.seconds, s->opt.senders, s->opt.receivers,
           s->opt.rate);
    fflush(stdout);
    rc = soak_run(s);
done:
    for (int i = 0; i < SOAK_MAX_SENDERS; i++)
        free(s->check.snd[i].msgs);
    if (s->ctl)
        munmap(s->ctl, sizeof *s->ctl);
    free(s);
    return rc;
}
