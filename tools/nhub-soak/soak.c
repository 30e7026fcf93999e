/*
 * nhub-soak: crash soak of nhubd and libnhub.
 *
 * Starts a real nhubd in a temporary directory (test/harness), forks K
 * sender processes and R receiver processes, each with its own libnhub
 * adapter (own data_dir, own region), and then, for each cycle: lets them
 * run under load for a random 0.5-3 s, kills nhubd with SIGKILL at that
 * instant and starts it again on the same port. In about one cycle of four
 * it also kills one random sender or receiver with SIGKILL at a random
 * instant of the load and starts it again on the same data_dir. At the end
 * the senders stop producing, everything drains (bounded), the processes
 * stop, and the records the processes wrote are checked.
 *
 * What is recorded. Every process appends fixed-size records (write(2) of
 * 16 bytes to an O_APPEND file, so a SIGKILL never leaves a torn record in
 * practice, and a torn tail is ignored) to its own file in the temp dir:
 *   sender   S seq dst  before nhub_send (so a restarted sender never reuses
 *                       a number; a number whose send did not commit is a gap)
 *            A seq dst  in on_ack: the hub acknowledged the message
 *            R seq dst  in on_reject: the hub refused it for good
 *            F          the outbox is empty after production stopped
 *   receiver H src seq  the message was handed to the application (nhub_recv),
 *                       written BEFORE nhub_confirm
 *            C src seq  nhub_confirm returned 0
 *            E src seq  nhub_confirm failed (the delivery was released)
 * A message's msg_id carries (sender, destination, seq) so on_ack, which only
 * gets the msg_id, can name it, also for messages a killed incarnation left
 * in the outbox. The payload is "SRC:SEQ" (SRC = the sender's region).
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
 * Also reported, without failing the run: ack_repeats (on_ack fired more
 * than once for one message), handed_unacked (handed, but no A record: the
 * sender was killed between the outbox commit and its A write), rehanded.
 * Failing: lost, duplicated, out_of_order, misrouted (handed to another
 * region than the one it was sent to), corrupt (a payload or msg_id that
 * does not match what was sent), rejected, a process that exited on its
 * own, a drain that did not finish, or acked == 0.
 *
 * The hub runs with redeliver_after 1s and redeliver_max 4s (instead of 5 s
 * doubling to 5 min) so the drain at the end is bounded by seconds.
 *
 *   nhub-soak [--cycles N] [--seconds S] [--senders K] [--receivers R]
 *             [--rate M] [--seed X] [--short]
 *
 * NHUB_BIN names the directory of nhubd (default build/bin); NHUB_KEEP_TMP=1
 * keeps the temporary directory (it is also kept when the run fails).
 */
#include "harness.h"
#include "nhub.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#define SOAK_TYPE "nhub.soak.v1.Counter"

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
};

/* One record: 16 bytes, written with one write(2). */
typedef struct soak_rec {
    uint8_t type;
    uint8_t src; /* sender index */
    uint8_t dst; /* receiver index */
    uint8_t pad;
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
 * The parent's word to the senders, in memory shared with them (an anonymous
 * MAP_SHARED mapping made before the first fork), so a sender started again
 * during the drain reads it too.
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
static void rec_put(soak_child_t *c, int type, int src, int dst, uint64_t seq)
{
    soak_rec_t r = {(uint8_t)type, (uint8_t)src, (uint8_t)dst, 0, c->incarnation, seq};
    if (write(c->rec_fd, &r, sizeof r) != (ssize_t)sizeof r) {
        fprintf(stderr, "soak: writing a record: %s\n", strerror(errno));
        _exit(3);
    }
}

/* Wake the parent; a full pipe already says "look". */
static void ring(const soak_child_t *c)
{
    char b = 1;
    if (write(c->bell_fd, &b, 1) < 0 && errno != EAGAIN)
        fprintf(stderr, "soak: doorbell: %s\n", strerror(errno));
}

/* msg_id = 's', src, dst, nonce[5], seq (big-endian). */
static void msg_id_make(const soak_child_t *c, int src, int dst, uint64_t seq, uint8_t id[16])
{
    id[0] = 's';
    id[1] = (uint8_t)src;
    id[2] = (uint8_t)dst;
    memcpy(id + 3, c->nonce, 5);
    for (int b = 0; b < 8; b++)
        id[8 + b] = (uint8_t)(seq >> (56 - 8 * b));
}

static int msg_id_parse(const soak_child_t *c, const uint8_t id[16], int *src, int *dst,
                        uint64_t *seq)
{
    if (id[0] != 's' || memcmp(id + 3, c->nonce, 5) != 0)
        return -1;
    *src = id[1];
    *dst = id[2];
    *seq = 0;
    for (int b = 0; b < 8; b++)
        *seq = (*seq << 8) | id[8 + b];
    return 0;
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

/* ---- sender process --------------------------------------------------------- */

static void sender_on_ack(void *arg, const uint8_t msg_id[NHUB_MSG_ID_LEN])
{
    soak_child_t *c = arg;
    int src, dst;
    uint64_t seq;
    if (msg_id_parse(c, msg_id, &src, &dst, &seq) != 0 || src != c->index) {
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
    if (msg_id_parse(c, msg_id, &src, &dst, &seq) == 0)
        rec_put(c, REC_REJECTED, src, dst, seq);
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
    msg_id_make(c, c->index, dst, seq, id);
    nhub_message_t m;
    memset(&m, 0, sizeof m);
    m.msg_id = id;
    m.destination = receiver_region(c, dst);
    m.item = "SI-SOAK-001";
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

/* After production stopped: flush once, record it, then keep serving. */
static void sender_drain_step(soak_child_t *c, nhub_t *a, int *flushed)
{
    if (*flushed) {
        nhub_pump(a, 500);
        return;
    }
    if (nhub_flush(a, 500) == 0) {
        rec_put(c, REC_FLUSHED, c->index, 0, 0);
        ring(c);
        *flushed = 1;
    }
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
            nhub_pump(a, 100);
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
            nhub_pump(a, due > now ? (int)(due - now) : 50);
            continue;
        }
        rc = sender_send(c, a, seq++, (int)rng_below(&rng, (uint64_t)c->receivers));
        sent++;
    }
    nhub_close(&a);
    return rc == 0 ? 0 : 4;
}

/* ---- receiver process ------------------------------------------------------- */

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
        msg_id_parse(c, d->msg_id, &id_src, &id_dst, &id_seq) != 0)
        return -1;
    return id_src == *src && id_seq == *seq ? 0 : -1;
}

static void receiver_take(soak_child_t *c, nhub_t *a, nhub_delivery_t *d)
{
    int src;
    uint64_t seq;
    if (receiver_parse(c, d, &src, &seq) != 0) {
        fprintf(stderr, "soak: delivery with unexpected payload/msg_id from %s\n", d->source);
        rec_put(c, REC_CORRUPT, 0, c->index, 0);
        src = 0;
        seq = 0;
    } else {
        rec_put(c, REC_HANDED, src, c->index, seq);
    }
    int rc = nhub_confirm(a, &d);
    if (rc == 0) {
        rec_put(c, REC_CONFIRMED, src, c->index, seq);
    } else {
        fprintf(stderr, "soak: nhub_confirm: %s: %s\n", nhub_strerror(rc), nhub_last_error(a));
        rec_put(c, REC_CONFIRM_FAILED, src, c->index, seq);
        nhub_delivery_release(a, &d);
    }
    ring(c);
}

static int receiver_main(soak_child_t *c)
{
    nhub_t *a = NULL;
    if (open_adapter(c, "receiver", receiver_region(c, c->index), &a, NULL, NULL) != 0)
        return 2;
    while (!g_stop) {
        nhub_delivery_t *d = NULL;
        if (nhub_recv(a, &d, 500) == 0)
            receiver_take(c, a, d);
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

typedef struct msg_state {
    uint8_t flags;
    uint8_t dst;
    uint8_t acks;  /* A records (saturating) */
    uint8_t hands; /* H records (saturating) */
} msg_state_t;

typedef struct sender_view {
    msg_state_t *msgs; /* by seq */
    uint64_t cap;
    uint64_t max_seq;
    uint32_t flushed_incarnation; /* incarnation of the last F record, 0 = none */
} sender_view_t;

/* The first example of each kind of failure, for the report. */
typedef struct soak_example {
    int set;
    int src, dst;
    uint64_t seq, prev;
    uint32_t incarnation;
    long long offset; /* in the receiver's record file */
} soak_example_t;

typedef struct soak_counts {
    uint64_t sent, acked, handed, confirmed, rehanded, duplicated, out_of_order;
    uint64_t misrouted, corrupt, rejected, ack_repeats, ack_unknown, handed_unsent;
    uint64_t confirm_failed;
    uint64_t pending; /* ACKed and not yet handed */
} soak_counts_t;

typedef struct soak_check {
    int senders, receivers;
    sender_view_t snd[SOAK_MAX_SENDERS];
    uint64_t last_first[SOAK_MAX_SENDERS][SOAK_MAX_RECEIVERS]; /* seq of the last first hand-over */
    long long offset[SOAK_MAX_PROCS];                          /* bytes of each record file read */
    soak_counts_t n;
    soak_example_t ex_dup, ex_ooo, ex_misrouted;
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
    *e = (soak_example_t){1, r->src, r->dst, r->seq, prev, r->incarnation, off};
}

static void check_sender_rec(soak_check_t *k, int i, const soak_rec_t *r)
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
    if (!m || r->src != i) {
        k->n.corrupt++;
        return;
    }
    if (r->type == REC_SENT) {
        k->n.sent += !(m->flags & MSG_SENT);
        m->flags |= MSG_SENT;
        m->dst = r->dst;
    } else if (r->type == REC_ACKED) {
        k->n.ack_unknown += !(m->flags & MSG_SENT);
        m->acks += m->acks < 255;
        if (m->flags & MSG_ACKED) {
            k->n.ack_repeats++;
            return;
        }
        m->flags |= MSG_ACKED;
        k->n.acked++;
        k->n.pending += !(m->flags & MSG_HANDED);
    } else if (r->type == REC_REJECTED) {
        k->n.rejected++;
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
    k->n.handed_unsent += !(m->flags & MSG_SENT);
    if ((m->flags & MSG_SENT) && m->dst != r->dst) {
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
    if (r->type == REC_CORRUPT) {
        k->n.corrupt++;
        return;
    }
    msg_state_t *m = msg_at(k, r->src, r->seq);
    if (!m || r->dst != j || r->dst >= k->receivers) {
        k->n.corrupt++;
        return;
    }
    if (r->type == REC_HANDED) {
        check_handed(k, m, r, off);
    } else if (r->type == REC_CONFIRMED) {
        k->n.confirmed += !(m->flags & MSG_CONFIRMED);
        m->flags = (uint8_t)((m->flags | MSG_CONFIRMED) & ~MSG_OPEN);
    } else if (r->type == REC_CONFIRM_FAILED) {
        k->n.confirm_failed++;
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
                check_sender_rec(k, i, &buf[x]);
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
static uint64_t check_lost(const soak_check_t *k, FILE *out, uint64_t *handed_unacked)
{
    uint64_t lost = 0;
    *handed_unacked = 0;
    for (int i = 0; i < k->senders; i++) {
        const sender_view_t *v = &k->snd[i];
        for (uint64_t s = 1; s <= v->max_seq && s < v->cap; s++) {
            const msg_state_t *m = &v->msgs[s];
            *handed_unacked += (m->flags & MSG_HANDED) && !(m->flags & MSG_ACKED);
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
    soak_ctl_t *ctl; /* shared with the children */
    soak_check_t check;
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
 * Done draining: every sender flushed (this incarnation) and every ACKed
 * message handed over. Not "confirmed": a receiver killed after nhub_confirm
 * committed but before its C record leaves a hand-over that is never
 * confirmed on record and, rightly, never handed again.
 */
static int drain_done(soak_t *s)
{
    for (int i = 0; i < s->opt.senders; i++)
        if (s->check.snd[i].flushed_incarnation != s->proc[i].incarnation)
            return 0;
    return s->check.n.pending == 0;
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

/* Stop producing, wait (bounded) until everything ACKed is handed over. */
static int soak_drain(soak_t *s, int64_t budget_ms, int64_t *took)
{
    int64_t start = th_now_ms();
    atomic_store(&s->ctl->paused, 0);
    atomic_store(&s->ctl->stop_producing, 1);
    int done = soak_wait(s, start + budget_ms, 1);
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

static int soak_report(soak_t *s, int drained, int64_t drain_ms, int stopped_early,
                       int64_t elapsed_ms)
{
    const soak_counts_t *n = &s->check.n;
    uint64_t handed_unacked = 0;
    uint64_t lost = check_lost(&s->check, stdout, &handed_unacked);
    if (stopped_early)
        printf("soak: time bound of %d s reached after %d of %d cycles: stopped early\n",
               s->opt.seconds, s->cycles, s->opt.cycles);
    if (!drained)
        printf("soak: DRAIN NOT FINISHED within %lld ms (%" PRIu64 " ACKed not handed)\n",
               (long long)drain_ms, n->pending);
    print_example("duplicate", &s->check.ex_dup, s);
    print_example("out-of-order", &s->check.ex_ooo, s);
    print_example("misrouted", &s->check.ex_misrouted, s);
    printf("soak: rule: duplicated = handed again after a CONFIRMED hand-over; handed again "
           "after an unconfirmed one (receiver killed before nhub_confirm returned) is a "
           "legitimate re-hand-over (rehanded)\n");
    printf("soak: sent=%" PRIu64 " confirmed=%" PRIu64 " rehanded=%" PRIu64
           " handed_unacked=%" PRIu64 " ack_repeats=%" PRIu64 " ack_unknown=%" PRIu64
           " misrouted=%" PRIu64 " corrupt=%" PRIu64 " rejected=%" PRIu64 " confirm_failed=%" PRIu64
           " handed_unsent=%" PRIu64
           " unexpected_exits=%d pauses=%d drain_ms=%lld elapsed_s=%lld\n",
           n->sent, n->confirmed, n->rehanded, handed_unacked, n->ack_repeats, n->ack_unknown,
           n->misrouted, n->corrupt, n->rejected, n->confirm_failed, n->handed_unsent,
           s->unexpected_exits, s->pauses, (long long)drain_ms, (long long)(elapsed_ms / 1000));
    printf("soak: cycles=%d hub_kills=%d adapter_kills=%d acked=%" PRIu64 " handed=%" PRIu64
           " lost=%" PRIu64 " duplicated=%" PRIu64 " out_of_order=%" PRIu64 " seed=%" PRIu64 "\n",
           s->cycles, s->hub_kills, s->adapter_kills, n->acked, n->handed, lost, n->duplicated,
           n->out_of_order, s->opt.seed);
    int bad = lost || n->duplicated || n->out_of_order || n->misrouted || n->corrupt ||
              n->handed_unsent || n->rejected || n->acked == 0 || s->unexpected_exits || !drained ||
              s->hub_start_failed || s->hub_stop_failed;
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
