/*
 * main.c: nhub-adapter, the command-line bridge between a provincial system
 * and the hub, built on libnhub.
 *
 *   nhub-adapter send   -c ADAPTER.yaml --to CODE --item ITEM --type TYPE ...
 *   nhub-adapter recv   -c ADAPTER.yaml [--count N] [--json] [--timeout S]
 *   nhub-adapter status -c ADAPTER.yaml
 *   nhub-adapter run    -c ADAPTER.yaml [--ready-fd N]   (daemon.h)
 *   nhub-adapter receipt -c ADAPTER.yaml MSG_ID [-o FILE] | --check FILE
 *
 * `send` puts messages in the durable outbox and then serves the connection
 * until they are acknowledged or --wait runs out (what is left is sent by
 * the next run). `recv` prints each message, flushes stdout, and only then
 * confirms it, so a message is never confirmed before the consumer has it.
 * adapters/README.md is the manual. The signal flag below is the program's
 * only global.
 */
#include "adapter_cfg.h"
#include "daemon.h"
#include "keys.h"
#include "log.h"
#include "nhub.h"
#include "print.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define EXIT_PARTIAL 3 /* some messages still queued, or recv timed out before --count */
#define SLICE_MS 200   /* longest wait between checks of the signal flag */
#define HELP_SHOWN -1  /* from an option parser: --help was printed, exit 0 */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a signal must interrupt zmq_poll. */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "nhub-adapter: <message>" on stderr; returns exit status 1. */
static int fail(const char *fmt, ...)
{
    va_list ap;
    fputs("nhub-adapter: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* ---- options shared by every command -------------------------------------- */

typedef struct common {
    const char *config;
    const char *log_level;
    adapter_cfg_t cfg;
    nhub_options_t opt;
} common_t;

/* Parse a number of seconds (fractions allowed) into ms. */
static int parse_seconds(const char *s, int64_t *ms)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 31536000.0)
        return -1;
    *ms = (int64_t)llround(v * 1000.0);
    return 0;
}

static int parse_count(const char *s, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Load the configuration and set up logging. Returns 0 or prints why and returns 1. */
static int load_config(common_t *c)
{
    char err[512];
    if (!c->config)
        return fail("-c ADAPTER.yaml is required (try --help)");
    if (adapter_cfg_load(c->config, &c->cfg, err, sizeof err) != 0)
        return fail("%s", err);
    enum log_level level = (enum log_level)c->cfg.log.level;
    if (c->log_level && log_level_parse(c->log_level, &level) != 0)
        return fail("--log-level must be debug, info, warn, error or off");
    log_setup(level, stderr);
    adapter_cfg_options(&c->cfg, &c->opt);
    return 0;
}

/*
 * Open the adapter with SIGINT and SIGTERM blocked, so the threads ZeroMQ
 * starts inherit a mask that leaves these signals to this thread, where
 * they interrupt zmq_poll.
 */
static int open_adapter(common_t *c, nhub_t **h)
{
    char err[512];
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = nhub_open(&c->opt, h, err, sizeof err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return fail("%s: %s", c->config, err[0] ? err : nhub_strerror(rc));
    return 0;
}

/* ---- send ----------------------------------------------------------------- */

enum { ST_QUEUED, ST_ACKED, ST_REJECTED };

typedef struct tracked {
    uint8_t id[NHUB_MSG_ID_LEN];
    int status;
    int code;
    char text[160];
} tracked_t;

/* The messages of this run, to tell which the hub has settled. */
typedef struct tracker {
    tracked_t *v;
    size_t n;
    size_t hint; /* ACKs come in order: where the next one probably is */
    size_t settled;
    size_t rejected;
} tracker_t;

static tracked_t *tracker_find(tracker_t *t, const uint8_t id[NHUB_MSG_ID_LEN])
{
    if (t->hint < t->n && memcmp(t->v[t->hint].id, id, NHUB_MSG_ID_LEN) == 0)
        return &t->v[t->hint++];
    for (size_t i = 0; i < t->n; i++) {
        if (memcmp(t->v[i].id, id, NHUB_MSG_ID_LEN) == 0) {
            t->hint = i + 1;
            return &t->v[i];
        }
    }
    return NULL; /* a message from an earlier run */
}

static void tracker_ack(void *arg, const uint8_t id[NHUB_MSG_ID_LEN])
{
    tracker_t *t = arg;
    tracked_t *m = tracker_find(t, id);
    if (m && m->status == ST_QUEUED) {
        m->status = ST_ACKED;
        t->settled++;
    }
}

static void tracker_reject(void *arg, const uint8_t id[NHUB_MSG_ID_LEN], int code,
                           const char *text)
{
    tracker_t *t = arg;
    tracked_t *m = tracker_find(t, id);
    if (m && m->status == ST_QUEUED) {
        m->status = ST_REJECTED;
        m->code = code;
        snprintf(m->text, sizeof m->text, "%s", text);
        t->settled++;
        t->rejected++;
    }
}

typedef struct send_args {
    const char *to;
    const char *item;
    const char *type;
    const char *payload_file;
    const char *payload_text;
    int kind;
    int has_correlation;
    uint8_t correlation[NHUB_MSG_ID_LEN];
    long long deadline_ms;
    long long count;
    int64_t wait_ms;
} send_args_t;

static void send_usage(FILE *out)
{
    fputs("usage: nhub-adapter send -c ADAPTER.yaml --to CODE --item ITEM --type TYPE\n"
          "                         (--payload-file FILE | --payload TEXT) [options]\n"
          "\n"
          "Put messages in the adapter's durable outbox, then send them to the hub and\n"
          "wait for its acknowledgements. Prints one line per message:\n"
          "  msg_id=<hex> status=acked|queued|rejected [code=N reason=\"...\"]\n"
          "A queued message is safe on disk and is sent by the next run.\n"
          "\n"
          "  -c, --config FILE       adapter YAML (required)\n"
          "      --to CODE           destination region (six digits) or \"*\" for all\n"
          "      --item ITEM         service item code\n"
          "      --type TYPE         payload type, e.g. nhub.verify.v1.InsuredQuery\n"
          "      --payload-file FILE payload bytes from FILE (\"-\" = stdin)\n"
          "      --payload TEXT      payload bytes from the argument\n"
          "      --kind KIND         push (default), request, response, feedback, notice\n"
          "      --correlation HEX32 msg_id of the message this one answers\n"
          "      --deadline-ms N     deadline, ms since the Unix epoch (0 = none)\n"
          "      --count N           send N copies, each with its own msg_id (default 1)\n"
          "      --wait SECONDS      how long to wait for acknowledgements (default 10)\n"
          "      --log-level LEVEL   debug, info, warn, error, off (default: from the file)\n"
          "  -h, --help              this text\n"
          "\n"
          "Exit status: 0 all acknowledged, 3 some still queued, 1 error or rejected.\n",
          out);
}

static int parse_send(int argc, char **argv, common_t *c, send_args_t *a)
{
    enum { O_TO = 256, O_ITEM, O_TYPE, O_FILE, O_TEXT, O_KIND, O_CORR, O_DEADLINE, O_COUNT,
           O_WAIT, O_LOG };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"to", required_argument, NULL, O_TO},
        {"item", required_argument, NULL, O_ITEM}, {"type", required_argument, NULL, O_TYPE},
        {"payload-file", required_argument, NULL, O_FILE},
        {"payload", required_argument, NULL, O_TEXT}, {"kind", required_argument, NULL, O_KIND},
        {"correlation", required_argument, NULL, O_CORR},
        {"deadline-ms", required_argument, NULL, O_DEADLINE},
        {"count", required_argument, NULL, O_COUNT}, {"wait", required_argument, NULL, O_WAIT},
        {"log-level", required_argument, NULL, O_LOG}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->kind = NHUB_KIND_PUSH;
    a->count = 1;
    a->wait_ms = 10000;
    int o;
    while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': c->config = optarg; break;
        case O_TO: a->to = optarg; break;
        case O_ITEM: a->item = optarg; break;
        case O_TYPE: a->type = optarg; break;
        case O_FILE: a->payload_file = optarg; break;
        case O_TEXT: a->payload_text = optarg; break;
        case O_LOG: c->log_level = optarg; break;
        case O_KIND:
            if (!(a->kind = nhub_kind_parse(optarg)))
                return fail("--kind must be push, request, response, feedback or notice");
            break;
        case O_CORR:
            if (parse_hex16(optarg, a->correlation) != 0)
                return fail("--correlation must be 32 hex digits (a msg_id)");
            a->has_correlation = 1;
            break;
        case O_DEADLINE:
            if (parse_count(optarg, 0, INT64_MAX, &a->deadline_ms) != 0)
                return fail("--deadline-ms must be a number of ms since the epoch, or 0");
            break;
        case O_COUNT:
            if (parse_count(optarg, 1, 10000000, &a->count) != 0)
                return fail("--count must be 1..10000000");
            break;
        case O_WAIT:
            if (parse_seconds(optarg, &a->wait_ms) != 0)
                return fail("--wait must be a number of seconds >= 0");
            break;
        case 'h': send_usage(stdout); return HELP_SHOWN;
        default: return fail("send: bad option (try --help)");
        }
    }
    if (optind < argc)
        return fail("send: unexpected argument \"%s\"", argv[optind]);
    if (!a->to)
        return fail("send: --to is required");
    if (!a->item)
        return fail("send: --item is required");
    if (!a->type)
        return fail("send: --type is required");
    if (!!a->payload_file == !!a->payload_text)
        return fail("send: give exactly one of --payload-file and --payload");
    return 0;
}

/* Read a whole payload file (or stdin for "-"), refusing more than `max` bytes. */
static int read_payload(const char *path, size_t max, uint8_t **out, size_t *len)
{
    int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail("--payload-file %s: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    int ret = 0;
    for (;;) {
        if (n == cap) {
            /* Grow by doubling, never past max + 1 (one byte more tells "too large"). */
            size_t want = cap ? cap * 2 : 65536;
            if (want > max + 1)
                want = max + 1;
            uint8_t *p = realloc(buf, want);
            if (!p) {
                ret = fail("out of memory reading %s", path);
                break;
            }
            buf = p;
            cap = want;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            ret = fail("--payload-file %s: %s", path, strerror(errno));
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            ret = fail("--payload-file %s is larger than max_frame (%zu bytes)", path, max);
            break;
        }
    }
    if (fd != 0)
        close(fd);
    if (ret != 0) {
        free(buf);
        return ret;
    }
    *out = buf;
    *len = n;
    return 0;
}

static void print_send_results(const tracker_t *t)
{
    char hex[33];
    for (size_t i = 0; i < t->n; i++) {
        const tracked_t *m = &t->v[i];
        nhub_msg_id_hex(m->id, hex);
        if (m->status == ST_ACKED) {
            printf("msg_id=%s status=acked\n", hex);
        } else if (m->status == ST_QUEUED) {
            printf("msg_id=%s status=queued\n", hex);
        } else {
            printf("msg_id=%s status=rejected code=%d reason=", hex, m->code);
            print_json_string(stdout, m->text);
            putchar('\n');
        }
    }
    fflush(stdout);
}

static int id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, NHUB_MSG_ID_LEN);
}

/* Our msg_ids, sorted, and a mark for each seen still waiting in the outbox. */
typedef struct presence {
    uint8_t (*ids)[NHUB_MSG_ID_LEN];
    uint8_t *waiting;
    size_t n;
} presence_t;

static int presence_visit(void *arg, const uint8_t id[NHUB_MSG_ID_LEN])
{
    presence_t *p = arg;
    const uint8_t(*hit)[NHUB_MSG_ID_LEN] = bsearch(id, p->ids, p->n, sizeof *p->ids, id_cmp);
    if (hit)
        p->waiting[hit - p->ids] = 1;
    return 0;
}

/*
 * Settle from the store what the callbacks did not report: the outbox may
 * be shared with a running `recv` of the same adapter, which then sends and
 * gets the ACK for some of our messages. A message of ours that is no
 * longer in the outbox and was not rejected here was acknowledged.
 * Returns 1 if everything is settled.
 */
static int settle_from_store(nhub_t *h, tracker_t *t, presence_t *p)
{
    memset(p->waiting, 0, p->n);
    if (nhub_outbox_each(h, presence_visit, p) != 0)
        return 0;
    for (size_t i = 0; i < t->n; i++) {
        tracked_t *m = &t->v[i];
        if (m->status != ST_QUEUED)
            continue;
        const uint8_t(*hit)[NHUB_MSG_ID_LEN] = bsearch(m->id, p->ids, p->n, sizeof *p->ids,
                                                       id_cmp);
        if (hit && !p->waiting[hit - p->ids]) {
            m->status = ST_ACKED;
            t->settled++;
        }
    }
    return t->settled == t->n;
}

/* Serve the connection until every message of this run is settled or the wait ends. */
static int await_acks(nhub_t *h, tracker_t *t, int64_t wait_ms)
{
    presence_t p = {calloc(t->n ? t->n : 1, sizeof *p.ids), calloc(t->n ? t->n : 1, 1), t->n};
    if (!p.ids || !p.waiting) {
        free(p.ids);
        free(p.waiting);
        return fail("out of memory");
    }
    for (size_t i = 0; i < t->n; i++)
        memcpy(p.ids[i], t->v[i].id, NHUB_MSG_ID_LEN);
    qsort(p.ids, p.n, sizeof *p.ids, id_cmp);
    int64_t deadline = now_ms() + wait_ms;
    int ret = 0;
    while (t->settled < t->n && !g_stop) {
        int64_t left = deadline - now_ms();
        /* nhub_flush returns as soon as the outbox is empty. */
        int rc = nhub_flush(h, (int)(left <= 0 ? 0 : left < SLICE_MS ? left : SLICE_MS));
        if (rc != 0 && rc != NHUB_ETIMEOUT && rc != NHUB_ECLOSED) {
            ret = fail("serving the connection: %s", nhub_last_error(h));
            break;
        }
        if (settle_from_store(h, t, &p) || left <= 0)
            break;
    }
    free(p.ids);
    free(p.waiting);
    return ret;
}

static int cmd_send(int argc, char **argv)
{
    common_t c = {0};
    send_args_t a;
    tracker_t t = {0};
    nhub_t *h = NULL;
    uint8_t *file_payload = NULL;
    int ret = parse_send(argc, argv, &c, &a);
    if (ret == 0)
        ret = load_config(&c);
    if (ret != 0)
        return ret == HELP_SHOWN ? 0 : ret;
    const void *payload = a.payload_text;
    size_t payload_len = a.payload_text ? strlen(a.payload_text) : 0;
    if (a.payload_file) {
        ret = read_payload(a.payload_file, c.opt.max_frame, &file_payload, &payload_len);
        if (ret != 0)
            return ret;
        payload = file_payload;
    }
    t.v = calloc((size_t)a.count, sizeof *t.v);
    if (!t.v) {
        free(file_payload);
        return fail("out of memory for %lld messages", a.count);
    }
    /* Credit 0: a `recv` of the same adapter may be running and keeps the deliveries. */
    c.opt.send_only = 1;
    c.opt.on_ack = tracker_ack;
    c.opt.on_ack_arg = &t;
    c.opt.on_reject = tracker_reject;
    c.opt.on_reject_arg = &t;
    ret = open_adapter(&c, &h);
    if (ret != 0)
        goto done;

    nhub_message_t msg = {
        .destination = a.to,
        .item = a.item,
        .kind = a.kind,
        .correlation_id = a.has_correlation ? a.correlation : NULL,
        .deadline_ms = a.deadline_ms,
        .payload_type = a.type,
        .payload = payload,
        .payload_len = payload_len,
    };
    for (long long i = 0; i < a.count && !g_stop; i++) {
        /* The id is tracked before the send, in case the ACK comes within it. */
        tracked_t *m = &t.v[t.n];
        if (getrandom(m->id, sizeof m->id, 0) != (ssize_t)sizeof m->id) {
            ret = fail("getrandom: %s", strerror(errno));
            break;
        }
        msg.msg_id = m->id;
        t.n++;
        int rc = nhub_send(h, &msg, NULL);
        if (rc != 0) {
            t.n--;
            ret = fail("message %lld not sent: %s: %s", i + 1, nhub_strerror(rc),
                       nhub_last_error(h));
            break;
        }
    }
    int arc = await_acks(h, &t, a.wait_ms);
    if (ret == 0)
        ret = arc;
    print_send_results(&t);
    if (t.rejected)
        ret = fail("%zu message(s) rejected by the hub", t.rejected);
    else if (ret == 0 && t.settled < t.n)
        ret = EXIT_PARTIAL;
done:
    nhub_close(&h);
    free(t.v);
    free(file_payload);
    return ret;
}

/* ---- recv ----------------------------------------------------------------- */

static void recv_usage(FILE *out)
{
    fputs("usage: nhub-adapter recv -c ADAPTER.yaml [--count N] [--json] [--timeout SECONDS]\n"
          "\n"
          "Receive messages for this adapter's region. Each is printed on stdout, stdout\n"
          "is flushed, and only then is the message confirmed to the hub (DELIVERED), so\n"
          "a consumer reading stdout never misses one; a message confirmed before is not\n"
          "printed again, also after a restart.\n"
          "\n"
          "Text lines: seq=N dseq=N msg_id=HEX source=CODE destination=CODE item=ITEM\n"
          "            kind=KIND type=TYPE bytes=N key_id=HEX|-   (the payload is not printed)\n"
          "JSON lines: {\"msg_id\",\"seq\",\"dseq\",\"source\",\"destination\",\"item\",\"kind\",\n"
          "             \"payload_type\",\"created_ms\",\"deadline_ms\",\"correlation_id\",\n"
          "             \"key_id\",\"signature_b64\",\"translated\",[\"signed_envelope_b64\"],\n"
          "             \"payload_b64\"}\n"
          "key_id and the signature are the sender's, as the hub verified them (null if the\n"
          "message came unsigned); a translated message carries the signed original.\n"
          "\n"
          "  -c, --config FILE     adapter YAML (required)\n"
          "  -n, --count N         stop after N messages (default: no limit)\n"
          "  -j, --json            one JSON object per line, payload in base64\n"
          "  -t, --timeout SECONDS give up after this long without a message\n"
          "                        (default: wait forever, until --count or a signal)\n"
          "      --log-level LEVEL debug, info, warn, error, off (default: from the file)\n"
          "  -h, --help            this text\n"
          "\n"
          "Exit status: 0 --count reached (or stopped by SIGINT/SIGTERM without --count),\n"
          "3 timed out or stopped before --count, 1 error.\n",
          out);
}

typedef struct recv_args {
    long long count; /* -1 = no limit */
    int json;
    int64_t timeout_ms; /* -1 = none */
} recv_args_t;

static int parse_recv(int argc, char **argv, common_t *c, recv_args_t *a)
{
    enum { O_LOG = 256 };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"count", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},         {"timeout", required_argument, NULL, 't'},
        {"log-level", required_argument, NULL, O_LOG}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    a->count = -1;
    a->json = 0;
    a->timeout_ms = -1;
    int o;
    while ((o = getopt_long(argc, argv, "c:n:jt:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': c->config = optarg; break;
        case 'j': a->json = 1; break;
        case O_LOG: c->log_level = optarg; break;
        case 'n':
            if (parse_count(optarg, 1, INT64_MAX, &a->count) != 0)
                return fail("--count must be a number >= 1");
            break;
        case 't':
            if (parse_seconds(optarg, &a->timeout_ms) != 0)
                return fail("--timeout must be a number of seconds >= 0");
            break;
        case 'h': recv_usage(stdout); return HELP_SHOWN;
        default: return fail("recv: bad option (try --help)");
        }
    }
    if (optind < argc)
        return fail("recv: unexpected argument \"%s\"", argv[optind]);
    return 0;
}

/* Print one delivery and confirm it. Returns 0 or an exit status. */
static int take_delivery(nhub_t *h, nhub_delivery_t *d, int json)
{
    int prc = json ? print_delivery_json(stdout, d) : print_delivery_text(stdout, d);
    if (prc == 0 && fflush(stdout) != 0)
        prc = -1;
    if (prc != 0) {
        /* Not confirmed: the hub delivers it again to the next run. */
        nhub_delivery_release(h, &d);
        return fail("writing to stdout: %s", strerror(errno));
    }
    int rc = nhub_confirm(h, &d);
    if (rc != 0) {
        nhub_delivery_release(h, &d);
        return fail("confirming a message: %s", nhub_last_error(h));
    }
    return 0;
}

static int cmd_recv(int argc, char **argv)
{
    common_t c = {0};
    recv_args_t a;
    nhub_t *h = NULL;
    int ret = parse_recv(argc, argv, &c, &a);
    if (ret == 0)
        ret = load_config(&c);
    if (ret == 0)
        ret = open_adapter(&c, &h);
    if (ret != 0)
        return ret == HELP_SHOWN ? 0 : ret;
    long long got = 0;
    int timed_out = 0;
    int64_t idle_since = now_ms();
    while (!g_stop && (a.count < 0 || got < a.count)) {
        int slice = SLICE_MS;
        if (a.timeout_ms >= 0) {
            int64_t left = idle_since + a.timeout_ms - now_ms();
            slice = left <= 0 ? 0 : left < SLICE_MS ? (int)left : SLICE_MS;
        }
        nhub_delivery_t *d = NULL;
        int rc = nhub_recv(h, &d, slice);
        if (rc == NHUB_ETIMEOUT) {
            if (a.timeout_ms >= 0 && now_ms() - idle_since >= a.timeout_ms) {
                timed_out = 1;
                break;
            }
            continue;
        }
        if (rc == NHUB_ECLOSED && g_stop)
            break;
        if (rc != 0) {
            ret = fail("receiving: %s", nhub_last_error(h));
            break;
        }
        ret = take_delivery(h, d, a.json);
        if (ret != 0)
            break;
        got++;
        idle_since = now_ms();
    }
    nhub_close(&h);
    if (ret != 0)
        return ret;
    if (timed_out || (a.count >= 0 && got < a.count)) {
        if (timed_out)
            fprintf(stderr, "nhub-adapter: timed out after %lld message(s)\n", got);
        return EXIT_PARTIAL;
    }
    return 0;
}

/* ---- status --------------------------------------------------------------- */

static void status_usage(FILE *out)
{
    fputs("usage: nhub-adapter status -c ADAPTER.yaml\n"
          "\n"
          "Show what the adapter's store holds, one key=value per line, without\n"
          "connecting to the hub (it may run while send or recv runs):\n"
          "region, hub, data_dir, stream_id, next_stream_seq, outbox (messages waiting\n"
          "for an acknowledgement), confirmed_ids, map_size, map_size_max;\n"
          "security (curve or plaintext), key_file, curve_fpr (the fingerprint the hub\n"
          "must know for this region), sign_key_id, sign_alg; and the connection state a running\n"
          "adapter last recorded: link (down, up, refused, handshake_failed),\n"
          "link_changed_ms, link_error, auth_failures, handshake_failures.\n"
          "\n"
          "  -c, --config FILE  adapter YAML (required)\n"
          "  -h, --help         this text\n",
          out);
}

/*
 * The identity status shows: the mode, and for CURVE the fingerprint and
 * key id the hub must have configured for this region. The key file is
 * loaded as nhub_open loads it (mode, form, region), so a key the adapter
 * would refuse is reported here too; the secrets are wiped at once.
 * Returns 0, or 1 if the key file is not usable (printed after the rest).
 */
static int print_identity(const adapter_cfg_t *cfg)
{
    char err[256] = "";
    keys_file_t *k = NULL;
    if (cfg->adapter.insecure_plaintext) {
        printf("security=plaintext\n");
        return 0;
    }
    printf("security=curve\nkey_file=%s\n", cfg->adapter.key_file);
    if (keys_load(cfg->adapter.key_file, &k, err, sizeof err) != 0)
        return fail("%s", err);
    printf("curve_fpr=%s\nsign_key_id=%s\nsign_alg=%s\n", k->curve_fpr, k->sign_id,
           keys_alg_name(k->alg));
    int ret = 0;
    if (strcmp(k->region, cfg->adapter.region) != 0)
        ret = fail("key file %s is for region %s, but this adapter is region %s",
                   cfg->adapter.key_file, k->region, cfg->adapter.region);
    keys_free(&k);
    return ret;
}

/* The connection state a running adapter last recorded in the store. */
static void print_link(const nhub_store_info_t *info)
{
    printf("link=%s\nlink_changed_ms=%lld\nlink_error=", nhub_link_name(info->link),
           (long long)info->link_changed_ms);
    print_json_string(stdout, info->link_error);
    printf("\nauth_failures=%llu\nhandshake_failures=%llu\n",
           (unsigned long long)info->auth_failures, (unsigned long long)info->handshake_failures);
}

static int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    common_t c = {0};
    nhub_t *h = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': c.config = optarg; break;
        case 'h': status_usage(stdout); return 0;
        default: return fail("status: bad option (try --help)");
        }
    }
    if (optind < argc)
        return fail("status: unexpected argument \"%s\"", argv[optind]);
    c.log_level = "warn";
    int ret = load_config(&c);
    if (ret != 0)
        return ret;
    /* Offline needs no keys; print_identity checks the key file itself. */
    c.opt.offline = 1;
    c.opt.key_file = NULL;
    c.opt.hub_key = NULL;
    c.opt.insecure_plaintext = 0;
    ret = open_adapter(&c, &h);
    if (ret != 0)
        return ret;
    nhub_store_info_t info;
    char hex[33];
    if (nhub_store_info(h, &info) != 0) {
        ret = fail("%s: %s", c.cfg.adapter.data_dir, nhub_last_error(h));
    } else {
        printf("region=%s\nhub=%s\ndata_dir=%s\nstream_id=%s\nnext_stream_seq=%llu\n"
               "outbox=%llu\nconfirmed_ids=%llu\nmap_size=%llu\nmap_size_max=%llu\n",
               c.cfg.adapter.region, c.cfg.adapter.hub, c.cfg.adapter.data_dir,
               nhub_msg_id_hex(info.stream_id, hex), (unsigned long long)info.next_stream_seq,
               (unsigned long long)info.outbox, (unsigned long long)info.confirmed_ids,
               (unsigned long long)info.map_size, (unsigned long long)info.map_size_max);
        ret = print_identity(&c.cfg);
        print_link(&info);
    }
    fflush(stdout);
    nhub_close(&h);
    return ret;
}

/* ---- receipt -------------------------------------------------------------- */

#define EXIT_CHECK 1    /* the receipt does not verify */
#define EXIT_USAGE 2    /* bad arguments, configuration or file */
#define EXIT_NO_RECEIPT 3 /* the hub gave none (unknown message, no signing key, no answer) */
#define VKEY_MAX 512

static void receipt_usage(FILE *out)
{
    fputs("usage: nhub-adapter receipt -c ADAPTER.yaml MSG_ID [-o FILE] [--timeout SECONDS]\n"
          "       nhub-adapter receipt --check FILE [-c ADAPTER.yaml | --vkey-file F | --vkey K]\n"
          "                            [--msg-id MSG_ID]\n"
          "\n"
          "Fetch the hub's receipt for message MSG_ID (32 hex digits; one this region sent\n"
          "or received): its journal record, its inclusion proof and the signed checkpoint\n"
          "of the hub's Merkle tree. It is verified against the hub's checkpoint verifier\n"
          "key (adapter.hub_vkey or adapter.hub_vkey_file, or --vkey/--vkey-file), a\n"
          "summary printed, and the receipt written to FILE (default MSG_ID.receipt).\n"
          "With --check, verify a saved receipt offline: nothing but the file and the key.\n"
          "\n"
          "  -c, --config FILE     adapter YAML (required to fetch)\n"
          "  -o, --output FILE     where to write the receipt\n"
          "      --check FILE      verify FILE instead of fetching\n"
          "      --msg-id MSG_ID   with --check: the message it must be the receipt of\n"
          "      --vkey KEY        the hub's verifier key (NAME+HEX8+BASE64)\n"
          "      --vkey-file FILE  a file holding it (as GET /api/v1/checkpoint's \"vkey\")\n"
          "      --timeout S       wait this long for the hub (default 10)\n"
          "  -h, --help            this text\n"
          "\n"
          "Exit status: 0 verified; 1 it does not verify (the message names the part:\n"
          "checkpoint, record, msg_id or inclusion); 2 usage, configuration or file error;\n"
          "3 the hub gave no receipt (unknown message, no signing key, no answer).\n",
          out);
}

typedef struct receipt_args {
    common_t c;
    const char *msg_id, *output, *check, *vkey, *vkey_file;
    int64_t timeout_ms;
} receipt_args_t;

/* Read a whole file of at most `max` bytes: 0 and *out (NUL-terminated, free it), or -1. */
static int read_file(const char *path, size_t max, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = f ? malloc(max + 1) : NULL;
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    int bad = !f || !buf || ferror(f) || n > max;
    if (f)
        fclose(f);
    if (bad) {
        free(buf);
        return -1;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

/* The verifier key: --vkey, --vkey-file, then the configuration's. 0 or EXIT_USAGE. */
static int receipt_vkey(const receipt_args_t *a, const adapter_cfg_t *cfg, char out[VKEY_MAX])
{
    const char *file = a->vkey_file;
    if (a->vkey || (!file && cfg && cfg->adapter.hub_vkey[0])) {
        snprintf(out, VKEY_MAX, "%s", a->vkey ? a->vkey : cfg->adapter.hub_vkey);
        return 0;
    }
    if (!file && cfg && cfg->adapter.hub_vkey_file[0])
        file = cfg->adapter.hub_vkey_file;
    if (!file) {
        fail("receipt: no hub verifier key: set adapter.hub_vkey or adapter.hub_vkey_file, "
             "or give --vkey or --vkey-file");
        return EXIT_USAGE;
    }
    char *text = NULL;
    size_t len = 0;
    if (read_file(file, VKEY_MAX - 1, &text, &len) != 0) {
        fail("receipt: cannot read the verifier key file %s: %s", file,
             errno ? strerror(errno) : "too long");
        return EXIT_USAGE;
    }
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        text[--len] = 0;
    snprintf(out, VKEY_MAX, "%s", text);
    free(text);
    return 0;
}

static int parse_receipt(int argc, char **argv, receipt_args_t *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},  {"output", required_argument, NULL, 'o'},
        {"check", required_argument, NULL, 'k'},   {"msg-id", required_argument, NULL, 'm'},
        {"vkey", required_argument, NULL, 'v'},    {"vkey-file", required_argument, NULL, 'f'},
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    a->timeout_ms = 10000;
    int o;
    while ((o = getopt_long(argc, argv, "c:o:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': a->c.config = optarg; break;
        case 'o': a->output = optarg; break;
        case 'k': a->check = optarg; break;
        case 'm': a->msg_id = optarg; break;
        case 'v': a->vkey = optarg; break;
        case 'f': a->vkey_file = optarg; break;
        case 't':
            if (parse_seconds(optarg, &a->timeout_ms) != 0)
                return fail("receipt: --timeout must be a number of seconds") + 1;
            break;
        case 'h': receipt_usage(stdout); return HELP_SHOWN;
        default: return fail("receipt: bad option (try --help)") + 1;
        }
    }
    if (optind < argc && !a->check && !a->msg_id)
        a->msg_id = argv[optind++];
    if (optind < argc)
        return fail("receipt: unexpected argument \"%s\"", argv[optind]) + 1;
    if (!a->check && !a->msg_id)
        return fail("receipt: give MSG_ID, or --check FILE (try --help)") + 1;
    if (a->check && a->output)
        return fail("receipt: --output goes with fetching, not --check") + 1;
    return 0;
}

static void print_receipt_summary(const nhub_receipt_info_t *info, const char *vkey)
{
    char hex[33], when[40];
    time_t secs = (time_t)(info->time_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    const char *plus = strchr(vkey, '+');
    printf("OK receipt of %s\n  record %llu of the hub's journal, accepted %s.%03dZ\n"
           "  %s -> %s, item %s\n  in checkpoint %s of %llu records, signed by %.*s\n",
           nhub_msg_id_hex(info->msg_id, hex), (unsigned long long)info->seq, when,
           (int)(info->time_ms % 1000), info->source, info->destination, info->item, info->origin,
           (unsigned long long)info->tree_size, plus ? (int)(plus - vkey) : 0, vkey);
}

/* Verify receipt text; print the summary or why not. 0 or EXIT_CHECK. */
static int receipt_check_text(const char *what, const char *text, size_t len, const char *vkey,
                              const uint8_t *msg_id)
{
    nhub_receipt_info_t info;
    char err[512];
    int rc = nhub_receipt_verify(text, len, vkey, msg_id, &info, err, sizeof err);
    if (rc == NHUB_EMALFORMED && strncmp(err, "vkey: ", 6) == 0) {
        fail("receipt: the hub verifier key is not one: %s", err + 6);
        return EXIT_USAGE;
    }
    if (rc != 0) {
        fail("receipt: %s does not verify: %s", what, err[0] ? err : nhub_strerror(rc));
        return EXIT_CHECK;
    }
    print_receipt_summary(&info, vkey);
    return 0;
}

static int receipt_fetch(receipt_args_t *a, const uint8_t id[NHUB_MSG_ID_LEN], const char *vkey)
{
    nhub_t *h = NULL;
    a->c.opt.send_only = 1; /* the region's deliveries stay with the adapter receiving them */
    if (open_adapter(&a->c, &h) != 0)
        return EXIT_USAGE;
    char *text = NULL, path[64];
    size_t len = 0;
    int rc = nhub_receipt_get(h, id, (int)a->timeout_ms, &text, &len), ret = 0;
    if (rc != 0) {
        fail("receipt: %s: %s", a->msg_id, nhub_last_error(h));
        nhub_close(&h);
        return rc == NHUB_EINVAL || rc == NHUB_ENOMEM ? EXIT_USAGE : EXIT_NO_RECEIPT;
    }
    nhub_close(&h);
    if ((ret = receipt_check_text("the hub's receipt", text, len, vkey, id)) == 0) {
        char hex[33];
        if (!a->output) {
            snprintf(path, sizeof path, "%s.receipt", nhub_msg_id_hex(id, hex));
            a->output = path;
        }
        FILE *f = fopen(a->output, "wb");
        int bad = !f || fwrite(text, 1, len, f) != len;
        if ((f && fclose(f) != 0) || bad)
            ret = fail("receipt: cannot write %s: %s", a->output, strerror(errno)) + 1;
        else
            printf("wrote %s\n", a->output);
    }
    free(text);
    return ret;
}

static int cmd_receipt(int argc, char **argv)
{
    receipt_args_t a;
    memset(&a, 0, sizeof a);
    int ret = parse_receipt(argc, argv, &a);
    if (ret != 0)
        return ret == HELP_SHOWN ? 0 : EXIT_USAGE;
    a.c.log_level = "warn";
    if ((a.c.config || !a.check) && load_config(&a.c) != 0)
        return EXIT_USAGE;
    uint8_t id[NHUB_MSG_ID_LEN];
    if (a.msg_id && parse_hex16(a.msg_id, id) != 0)
        return fail("receipt: MSG_ID must be 32 hex digits, not \"%s\"", a.msg_id) + 1;
    char vkey[VKEY_MAX];
    if ((ret = receipt_vkey(&a, a.c.config ? &a.c.cfg : NULL, vkey)) != 0)
        return ret;
    if (!a.check)
        return receipt_fetch(&a, id, vkey);
    char *text = NULL;
    size_t len = 0;
    errno = 0;
    if (read_file(a.check, 128u << 20, &text, &len) != 0)
        return fail("receipt: cannot read %s: %s", a.check, errno ? strerror(errno) : "too large") +
               1;
    ret = receipt_check_text(a.check, text, len, vkey, a.msg_id ? id : NULL);
    free(text);
    return ret;
}

/* ---- run ------------------------------------------------------------------ */

static void run_usage(FILE *out)
{
    fputs("usage: nhub-adapter run -c ADAPTER.yaml [--ready-fd N] [--log-level LEVEL]\n"
          "\n"
          "Run the adapter as a daemon for the platform: the local HTTP JSON API of the\n"
          "`api:` section and the spool folders of the `spool:` section (at least one),\n"
          "until SIGINT or SIGTERM. adapters/README.md describes both.\n"
          "\n"
          "  -c, --config FILE     adapter YAML (required)\n"
          "      --ready-fd N      write \"ready URL\\n\" to descriptor N once serving\n"
          "      --log-level LEVEL debug, info, warn, error, off (default: from the file)\n"
          "  -h, --help            this text\n"
          "\n"
          "Exit status: 0 after a clean stop, 1 if it could not start.\n",
          out);
}

static int cmd_run(int argc, char **argv)
{
    enum { O_LOG = 256, O_READY };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"ready-fd", required_argument, NULL, O_READY},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    common_t c = {0};
    long long ready_fd = -1;
    int o;
    while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': c.config = optarg; break;
        case O_LOG: c.log_level = optarg; break;
        case O_READY:
            if (parse_count(optarg, 0, 65535, &ready_fd) != 0)
                return fail("--ready-fd must be a descriptor number");
            break;
        case 'h': run_usage(stdout); return 0;
        default: return fail("run: bad option (try --help)");
        }
    }
    if (optind < argc)
        return fail("run: unexpected argument \"%s\"", argv[optind]);
    int ret = load_config(&c);
    if (ret != 0)
        return ret;
    return daemon_run(&c.cfg, c.config, (int)ready_fd, &g_stop);
}

/* ---- main ----------------------------------------------------------------- */

static void usage(FILE *out)
{
    fputs("usage: nhub-adapter COMMAND -c ADAPTER.yaml [options]\n"
          "\n"
          "Commands:\n"
          "  send    put messages in the durable outbox and send them to the hub\n"
          "  recv    receive, print and confirm messages for this region\n"
          "  status  show the adapter's store (outbox, stream) without connecting\n"
          "  run     the daemon: local HTTP JSON API and spool folders for the platform\n"
          "  receipt fetch and verify the hub's receipt for a message; --check a saved one\n"
          "\n"
          "`nhub-adapter COMMAND --help` describes each. See adapters/README.md.\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    install_signals();
    /* Each command parses its own options, with its name as argv[0]. */
    optind = 1;
    if (strcmp(cmd, "send") == 0)
        return cmd_send(argc - 1, argv + 1);
    if (strcmp(cmd, "recv") == 0)
        return cmd_recv(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "receipt") == 0)
        return cmd_receipt(argc - 1, argv + 1);
    usage(stderr);
    return fail("unknown command \"%s\"", cmd);
}
