/*
 * harness.h: helpers for integration tests that run the real nhubd.
 *
 * A test makes a temporary directory, writes a hub configuration into it
 * (all 32 provincial regions, the data directory inside the temp dir, a free
 * loopback port), starts bin/nhubd from $NHUB_BIN (default build/bin) and
 * waits for its readiness line on a pipe (--ready-fd), never on a timer.
 * The hub's log goes to hub.log in the temp directory. Hubs are always
 * stopped or killed by the test; th_hub_stop waits a bounded time.
 */
#ifndef NHUB_TEST_HARNESS_H
#define NHUB_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

typedef struct th_hub {
    char dir[256]; /* the temporary directory */
    char cfg_path[320];
    char log_path[320];
    char endpoint[128]; /* tcp://127.0.0.1:PORT once started */
    char limits[1024];  /* extra YAML lines under "limits:" */
    char extra_region[8];
    /* The "security:" section, written as it is; empty = the development
     * mode (insecure-plaintext) the protocol and durability tests run in. */
    char security[1024];
    /* Extra YAML lines for region i of th_regions (indented 4 spaces),
     * e.g. its keys; NULL = none. Borrowed: keep them alive. */
    const char *region_yaml[40];
    /* The "http:" section, written as it is; empty = no HTTP endpoint.
     * TH_HTTP_YAML is one on a free loopback port with both tokens. */
    char http[1024];
    char http_url[128]; /* http://127.0.0.1:PORT once started with one */
    pid_t pid;
} th_hub_t;

#define TH_READ_TOKEN "read-token-for-tests-0001"
#define TH_OPERATOR_TOKEN "operator-token-for-tests-0001"
#define TH_HTTP_YAML                                                                               \
    "http:\n  listen: \"127.0.0.1:0\"\n  read_token: \"" TH_READ_TOKEN                             \
    "\"\n  operator_token: \"" TH_OPERATOR_TOKEN "\"\n"

/* A journal record (nhub_journal.proto), decoded. */
typedef struct Nhub__Journal__V1__JournalEvent th_journal_event_t;

/* Call fn for every record of h's journal still in its live store (from
 * store_journal_start) in seq order, read beside the running hub. Returns 0, or -1 if the store cannot be read. */
int th_journal_foreach(const th_hub_t *h, void (*fn)(const th_journal_event_t *ev, void *arg),
                       void *arg);

/*
 * One HTTP request to the hub's endpoint: `method` ("GET", "POST") `path`
 * with `token` (NULL = none) and `body` (NULL = none, JSON). Returns the
 * HTTP status (0 if no answer) and, if `out` is not NULL, the body in *out
 * (caller frees; NUL-terminated). Bounded by timeout_ms.
 */
long th_http(const th_hub_t *h, const char *method, const char *path, const char *token,
             const char *body, char **out, int timeout_ms);

/*
 * Read the event stream at `path` until `count` events named `event` came
 * (or timeout_ms passed); the whole text read into *out (caller frees).
 * Returns how many such events were read.
 */
int th_http_events(const th_hub_t *h, const char *path, const char *token, const char *event,
                   int count, char **out, int timeout_ms);

/* Make a fresh temporary directory (under $TMPDIR or /tmp). 0 or -1. */
int th_tmpdir(char *out, size_t cap);

/* Remove a directory tree. */
void th_rmrf(const char *path);

/*
 * Prepare a hub in a new temporary directory. `limits_yaml` (may be NULL)
 * is added under "limits:", each line indented by 2 spaces already, e.g.
 * "  redeliver_after: 200ms\n". Does not start it.
 */
int th_hub_init(th_hub_t *h, const char *limits_yaml);

/*
 * Start nhubd and wait (up to 20 s) for it to be ready. The first start
 * picks a free port; later starts reuse it, so adapters reconnect to the
 * same endpoint. Returns 0 or -1.
 */
int th_hub_start(th_hub_t *h);

/*
 * Rewrite the running hub's configuration with new `limits_yaml` (same
 * format as th_hub_init) and, if `extra_region` is not NULL, one more region
 * code; the hub sees it on SIGHUP. Returns 0 or -1.
 */
int th_hub_reconfigure(th_hub_t *h, const char *limits_yaml, const char *extra_region);

/* Write the configuration from the fields of `h` (security, region_yaml). */
int th_hub_write_config(th_hub_t *h);

/* Write `text` as the configuration file as it is (to test bad files). */
int th_hub_write_raw_config(th_hub_t *h, const char *text);

/*
 * The value of the first sample in Prometheus text `text` whose name (with
 * its labels, if `series` gives them: name{a="b"}) is `series`; a bare name
 * also matches its first labelled sample. -1 if there is none.
 */
double th_metric_value(const char *text, const char *series);

/*
 * Send `n` opaque TEST-PUSH messages ("nhub.test.v1.Counter") from `src` to
 * `dst` through a send-only libnhub adapter in h->dir/adapter-SRC (the
 * development mode), and wait up to timeout_ms for their ACKs. Returns 0,
 * or -1 with the reason on stderr.
 */
int th_send_pushes(const th_hub_t *h, const char *src, const char *dst, int n, int timeout_ms);

/* SHA-256 of a || b || c (b and c may be empty), through OpenSSL: for
 * tests that check a hash independently of the code under test. */
void th_sha256(const void *a, size_t alen, const void *b, size_t blen, const void *c, size_t clen,
               uint8_t out[32]);

/*
 * Give h a key to sign its checkpoints with, in the development mode:
 * DIR/hub.key and DIR/hub.pub (an Ed25519 key of region 000000), h->security
 * naming it, and the verifier key of a signer named `origin` written to
 * DIR/hub.vkey, whose path goes to vkey_file[cap]. *key (may be NULL)
 * receives the key (free with keys_free). Returns 0 or -1.
 */
struct keys_file;
int th_hub_signing_key(th_hub_t *h, const char *origin, char *vkey_file, size_t cap,
                       struct keys_file **key);

/* Set h->security to the development mode with the catalogue at `path`
 * (relative to the working directory: made absolute). Returns 0 or -1. */
int th_hub_insecure_catalog(th_hub_t *h, const char *path);

/* Wait up to timeout_ms for the hub's log to contain `needle` `count`
 * times or more. Returns 1 if it did. */
int th_log_wait(const th_hub_t *h, const char *needle, int count, int timeout_ms);

/* How many lines of the hub's log contain `needle` now (to wait for one more). */
int th_log_count(const th_hub_t *h, const char *needle);

/* SIGTERM and wait up to 20 s; returns the exit status, or -1. */
int th_hub_stop(th_hub_t *h);

/* SIGKILL and reap. */
void th_hub_kill(th_hub_t *h);

/*
 * The hub's injected clock: every hub the harness starts runs with
 * --test-clock DIR/clock, its wall clock the system's plus `offset_ms`.
 * th_hub_clock_write only writes the file (read at the next start);
 * th_hub_clock_set also tells a running hub (SIGUSR2), which then fires
 * the deadlines the jump passed. Returns 0 or -1.
 */
int th_hub_clock_write(const th_hub_t *h, int64_t offset_ms);
int th_hub_clock_set(th_hub_t *h, int64_t offset_ms);
/* th_hub_clock_set, then wait up to timeout_ms until the running hub has
 * read the new offset (it logs it). Returns 0 or -1. */
int th_hub_clock_move(th_hub_t *h, int64_t offset_ms, int timeout_ms);

/* Send a signal to the running hub. */
int th_hub_signal(th_hub_t *h, int sig);

/*
 * For a cmocka group: a new hub with `limits_yaml`, started, in *state.
 * Returns 0 or -1.
 */
int th_group_setup(void **state, const char *limits_yaml);

/*
 * For a cmocka group: stop the hub of *state (a clean exit code also means
 * no sanitizer report in the hub; the log is printed otherwise), remove its
 * directory, free it. Returns 0 or -1.
 */
int th_group_teardown(void **state);

/* Stop the hub if running and remove its directory. */
void th_hub_cleanup(th_hub_t *h);

/* Copy the hub's log to `out` (for a failing test's report). */
void th_log_dump(const th_hub_t *h, FILE *out);

/* 1 if the hub's log contains `needle`. */
int th_log_contains(const th_hub_t *h, const char *needle);

/*
 * The value of `key=` in the last log line containing `event=NAME`,
 * as an integer; -1 if absent.
 */
long long th_log_value(const th_hub_t *h, const char *event, const char *key);

/* Path of a program in $NHUB_BIN. */
const char *th_bin(const char *name, char *buf, size_t cap);

/* Monotonic milliseconds. */
int64_t th_now_ms(void);

/* The 32 provincial-level region codes, NULL-terminated. */
extern const char *const th_regions[];

#endif
