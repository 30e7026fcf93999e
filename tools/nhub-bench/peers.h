/*
 * peers.h: the peer baselines of nhub-bench.
 *
 * The brokers a user would pick instead of nhub, run on the same work as the
 * nhub figure: S publishers, each on its own connection and thread, each
 * keeping W messages of P bytes unconfirmed for D seconds; measured are the
 * confirmed messages per second and the latency from send to confirmation.
 *
 *   RabbitMQ  rabbitmq-server, a quorum queue per publisher, publisher
 *             confirms (librabbitmq). Durable: a quorum queue confirms after
 *             its Raft log (the Ra WAL) has been fsynced.
 *   NATS      nats-server -js, a file-storage stream, JetStream publish acks
 *             (libnats). Not durable: NATS 2.9 acknowledges a publish once it
 *             is written to the stream file, before any fsync (sync_interval
 *             defaults to 2 minutes and 2.9 has no "always").
 *
 * Each run function starts its own server on 127.0.0.1 on free ports in a
 * fresh directory under params->tmpdir, stops it (its whole process group)
 * and removes the directory before returning; every step is bounded in time,
 * so even a hung server costs at most seconds + about 2 minutes. A peer whose client
 * library was missing at compile time (the headers are detected with
 * __has_include) or whose server program is missing at run time is
 * reported as skipped, with the reason, never as a failure of the bench.
 *
 * The peer_ helpers below are shared by the two drivers (peers.c); the bench
 * itself needs only peer_params_t, peer_result_t and the two run functions.
 */
#ifndef NHUB_BENCH_PEERS_H
#define NHUB_BENCH_PEERS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct peer_params {
    int senders, window, payload, seconds;
    const char *tmpdir; /* an existing directory; each peer makes its own inside */
} peer_params_t;

typedef struct peer_result {
    int ran;                        /* 1 if the peer was measured; else skipped or failed */
    char skipped[256];              /* why it was not measured ("" if it was) */
    char config[512];               /* exactly how the peer was set up */
    double msgs_per_s;              /* confirmed messages per second over the run */
    double p50_ms, p99_ms, p999_ms; /* send -> confirmation latency */
    unsigned long long acked;       /* confirmations received within the run */
    int durable;                    /* 1 if a confirmation means "on disk after fsync" */
} peer_result_t;

/*
 * Run the RabbitMQ baseline with `p` and fill `r` (always filled: on any
 * failure r->ran is 0 and r->skipped says why). Blocks for about
 * p->seconds plus RabbitMQ's start and stop (typically 15 s in all).
 */
void peer_rabbitmq_run(const peer_params_t *p, peer_result_t *r);

/* The same for NATS JetStream (starts in well under a second). */
void peer_nats_run(const peer_params_t *p, peer_result_t *r);

/* ---- helpers shared by the drivers (peers.c) ------------------------------ */

/* Monotonic microseconds. */
int64_t peer_now_us(void);

/* A TCP port on 127.0.0.1 that was free a moment ago; 0 if none found. */
int peer_free_port(void);

/* 1 if a TCP connection to 127.0.0.1:port succeeds within timeout_ms. */
int peer_tcp_probe(int port, int timeout_ms);

/* 1 if `prog` is an executable file. */
int peer_have_program(const char *prog);

/*
 * Make a fresh directory "<tmpdir>/<name>-XXXXXX"; the path goes to `out`.
 * Returns 0 or -1.
 */
int peer_mkdtemp(const char *tmpdir, const char *name, char *out, size_t cap);

/* Remove a directory tree (best effort). */
void peer_rmrf(const char *path);

/*
 * Start argv[0] (a path) with `envp` (NULL: this process's environment) in a
 * new process group of its own, its stdout and stderr appended to
 * `log_path`, its working directory `cwd`. Returns the pid (also the process
 * group id), or -1.
 */
pid_t peer_spawn(char *const argv[], char *const envp[], const char *log_path, const char *cwd);

/* 1 while the process `pid` has not exited (reaps it if it has). */
int peer_alive(pid_t pid);

/*
 * Stop the process group `pid`: SIGTERM, up to term_ms for the leader to
 * exit, then SIGKILL to the whole group and a bounded reap. Idempotent for
 * pid <= 0.
 */
void peer_stop(pid_t pid, int term_ms);

/*
 * Run argv[0] to completion, bounded by timeout_ms (killed after). Returns
 * its exit status, or -1.
 */
int peer_run_wait(char *const argv[], char *const envp[], int timeout_ms);

/* Latencies of one publisher, in microseconds; grows up to a cap. */
typedef struct peer_lat {
    int64_t *us;
    size_t n, cap;
} peer_lat_t;

/* Record one latency; silently drops it past the cap (~16M samples). */
void peer_lat_add(peer_lat_t *l, int64_t us);

/* Free a latency array (accepts an empty one). */
void peer_lat_free(peer_lat_t *l);

/*
 * Fill r->p50_ms, p99_ms, p999_ms from `n` publishers' latency arrays (the
 * arrays are left as they are). Percentiles as nhub-bench takes them: the
 * sample at index n*q of the sorted set.
 */
void peer_lat_summarize(const peer_lat_t *lats, int n, peer_result_t *r);

/*
 * One publisher's window of W messages sent but not yet confirmed. Messages
 * are numbered from 1 in send order (AMQP delivery tags, NATS reply tokens);
 * the window holds numbers low .. next-1 and has room while next < low + W.
 * Confirmations received after end_us are not counted.
 */
typedef struct peer_window {
    uint64_t next, low;
    int64_t *sent_at;    /* by number % w */
    unsigned char *done; /* by number % w */
    int w;
    int64_t end_us;
    unsigned long long acked; /* confirmations counted */
    peer_lat_t lat;           /* their latencies */
} peer_window_t;

/* Allocate a window of `w`; 0 or -1. Free with peer_window_free. */
int peer_window_init(peer_window_t *win, int w);

/* Free the window's arrays; acked and lat stay for the caller. */
void peer_window_free(peer_window_t *win);

/* 1 while another message may be sent. */
int peer_window_has_room(const peer_window_t *win);

/* Stamp the send time of the next message and return its number. */
uint64_t peer_window_sent(peer_window_t *win);

/*
 * A confirmation of message `n`, or of every message up to `n` if
 * `multiple` (AMQP's basic.ack multiple). Numbers outside the window (already
 * confirmed, or never sent) are ignored. Returns 1 if `n` was in the window.
 */
int peer_window_confirm(peer_window_t *win, uint64_t n, int multiple);

/*
 * The start gate: publishers connect, say peer_gate_ready (or
 * peer_gate_failed), then wait for peer_gate_wait_go; the runner opens the
 * gate once all are ready, so every publisher starts at the same instant and
 * no connection time is measured.
 */
typedef struct peer_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready, failed, go; /* go: 1 run, -1 abort */
    int64_t start_us, end_us;
} peer_gate_t;

void peer_gate_init(peer_gate_t *g);
void peer_gate_destroy(peer_gate_t *g);
void peer_gate_ready(peer_gate_t *g, int ok);

/*
 * Wait for the runner to open the gate; 1 to run (start_us/end_us are set),
 * 0 to abort. Bounded by timeout_ms.
 */
int peer_gate_wait_go(peer_gate_t *g, int timeout_ms);

/*
 * Runner side: wait up to timeout_ms for all `n` publishers to be ready or
 * failed; if all are ready, open the gate for `seconds` from now and return
 * 1, else abort the gate and return 0.
 */
int peer_gate_open(peer_gate_t *g, int n, int seconds, int timeout_ms);

/*
 * Join `n` threads, waiting in all until deadline_us (peer_now_us clock).
 * joined[i] is set to 1 for each thread joined. Returns the number joined.
 */
int peer_join_until(pthread_t *threads, int *joined, int n, int64_t deadline_us);

/* One publisher thread of a peer run: what the runner gives it and what it
 * leaves behind (acked count and latencies stay after the thread ends). */
typedef struct peer_pub {
    int idx;
    const peer_params_t *p;
    int port;
    peer_gate_t *gate;
    peer_window_t win;
    char err[200];
} peer_pub_t;

/*
 * Run p->senders threads of `pub_main` (each given its peer_pub_t) against
 * the server listening on `port`, open the start gate once all are
 * connected (or after connect_ms), and collect confirmations and latencies
 * into *r. A publisher still running grace_ms after the run is stuck: the
 * server (*server_pid, set to -1 then) is stopped to break its connection;
 * if it still does not return, the result is dropped with a reason.
 */
void peer_measure(const peer_params_t *p, pid_t *server_pid, int port, int connect_ms,
                  int grace_ms, void *(*pub_main)(void *), peer_result_t *r);

#endif
