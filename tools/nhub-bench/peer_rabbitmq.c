/*
 * peer_rabbitmq.c: the durable peer baseline, RabbitMQ with quorum queues and
 * publisher confirms, driven through librabbitmq (rabbitmq-c).
 *
 * The bench starts its own node (Debian's rabbitmq-server, run as the
 * calling user) on 127.0.0.1 with free ports for AMQP, Erlang distribution
 * and epmd, its data, logs, cookie (HOME) and configuration in a fresh
 * directory, no plugins. Readiness is an AMQP login that succeeds, polled
 * with a deadline. One quorum queue per publisher (nhub's senders each send to
 * their own destination too); on a single node a quorum queue is a Raft
 * group of one, whose log is the node's Ra WAL: a message is confirmed only
 * after the WAL write holding it has been fsynced, so a confirm means what
 * nhub's ACK means.
 *
 * Each publisher is a thread with its own connection and channel in confirm
 * mode; it keeps W published-but-unconfirmed messages (delivery tags
 * low .. low+W-1), and takes the latency of each message from its publish to
 * the basic.ack that covers it (a "multiple" ack covers every tag up to its
 * own). Acks after the end of the run are not counted.
 */
#include "peers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The build may say whether librabbitmq is there (-DPEER_HAVE_AMQP=0/1, from
 * pkg-config); otherwise its headers decide. */
#ifndef PEER_HAVE_AMQP
#if __has_include(<amqp.h>) && __has_include(<amqp_tcp_socket.h>)
#define PEER_HAVE_AMQP 1
#else
#define PEER_HAVE_AMQP 0
#endif
#endif
#if PEER_HAVE_AMQP
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif

#if PEER_HAVE_AMQP

#define RMQ_SERVER "/usr/lib/rabbitmq/bin/rabbitmq-server"
#define RMQ_EPMD "/usr/bin/epmd"
#define RMQ_START_MS 60000   /* a cold node starts in ~10 s on 2 cores */
#define RMQ_CONNECT_MS 15000 /* publishers' connection, channel, confirm.select */
#define RMQ_GRACE_MS 15000   /* after the run, before the server is killed */
#define RMQ_STOP_MS 15000    /* SIGTERM to SIGKILL */

typedef struct rmq_server {
    char dir[200];
    char log_path[240];
    char nodename[64];
    int port, dist_port, epmd_port;
    pid_t pid;
} rmq_server_t;

typedef peer_pub_t rmq_pub_t;

/* Open a connection and log in as guest; NULL with `err` set on failure. */
static amqp_connection_state_t rmq_connect(int port, int timeout_ms, char *err, size_t cap)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = c ? amqp_tcp_socket_new(c) : NULL;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (!s) {
        snprintf(err, cap, "out of memory");
        goto fail;
    }
    amqp_set_handshake_timeout(c, &tv);
    amqp_set_rpc_timeout(c, &tv);
    int rc = amqp_socket_open_noblock(s, "127.0.0.1", port, &tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(err, cap, "connect: %s", amqp_error_string2(rc));
        goto fail;
    }
    amqp_rpc_reply_t rr =
        amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    if (rr.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(err, cap, "login failed (reply type %d)", (int)rr.reply_type);
        goto fail;
    }
    return c;
fail:
    if (c)
        amqp_destroy_connection(c);
    return NULL;
}

static void rmq_close(amqp_connection_state_t c)
{
    if (!c)
        return;
    struct timeval tv = {2, 0}; /* a stalled broker must not hold the close */
    amqp_set_rpc_timeout(c, &tv);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

static int rmq_rpc_ok(amqp_connection_state_t c, const char *what, char *err, size_t cap)
{
    amqp_rpc_reply_t rr = amqp_get_rpc_reply(c);
    if (rr.reply_type == AMQP_RESPONSE_NORMAL)
        return 1;
    if (rr.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        rr.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *m = rr.reply.decoded;
        snprintf(err, cap, "%s: server closed the channel: %.*s", what, (int)m->reply_text.len,
                 (const char *)m->reply_text.bytes);
    } else {
        snprintf(err, cap, "%s failed (reply type %d)", what, (int)rr.reply_type);
    }
    return 0;
}

/* ---- the server ----------------------------------------------------------- */

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int rmq_write_config(rmq_server_t *s)
{
    char conf[512];
    snprintf(conf, sizeof conf,
             "listeners.tcp.default = 127.0.0.1:%d\n"
             "log.console = false\n"
             "log.file.level = warning\n",
             s->port);
    /* enabled_plugins "[]." keeps management and the rest off; an empty
     * env file keeps /etc/rabbitmq/rabbitmq-env.conf out of the bench. */
    if (write_file(s->dir, "rabbitmq.conf", conf) ||
        write_file(s->dir, "enabled_plugins", "[].\n") ||
        write_file(s->dir, "rabbitmq-env.conf", ""))
        return -1;
    return 0;
}

static int rmq_start(rmq_server_t *s, const peer_params_t *p, char *err, size_t cap)
{
    if (peer_mkdtemp(p->tmpdir, "rabbitmq", s->dir, sizeof s->dir)) {
        snprintf(err, cap, "cannot make a directory under %.180s", p->tmpdir);
        return -1;
    }
    s->port = peer_free_port();
    s->dist_port = peer_free_port();
    s->epmd_port = peer_free_port();
    if (!s->port || !s->dist_port || !s->epmd_port || s->port == s->dist_port ||
        s->port == s->epmd_port || s->dist_port == s->epmd_port) {
        snprintf(err, cap, "no free loopback ports");
        return -1;
    }
    snprintf(s->nodename, sizeof s->nodename, "bench-%d@localhost", (int)getpid());
    snprintf(s->log_path, sizeof s->log_path, "%s/server.out", s->dir);
    if (rmq_write_config(s)) {
        snprintf(err, cap, "cannot write the configuration in %.180s", s->dir);
        return -1;
    }
    char env[16][480];
    int n = 0;
    const char *path = getenv("PATH");
    snprintf(env[n++], sizeof env[0], "PATH=%s", path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
    snprintf(env[n++], sizeof env[0], "HOME=%s", s->dir); /* the Erlang cookie goes here */
    snprintf(env[n++], sizeof env[0], "LANG=C.UTF-8");
    snprintf(env[n++], sizeof env[0], "RABBITMQ_NODENAME=%s", s->nodename);
    snprintf(env[n++], sizeof env[0], "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1");
    snprintf(env[n++], sizeof env[0], "RABBITMQ_NODE_PORT=%d", s->port);
    snprintf(env[n++], sizeof env[0], "RABBITMQ_DIST_PORT=%d", s->dist_port);
    snprintf(env[n++], sizeof env[0], "ERL_EPMD_PORT=%d", s->epmd_port);
    snprintf(env[n++], sizeof env[0], "RABBITMQ_MNESIA_BASE=%s/mnesia", s->dir);
    snprintf(env[n++], sizeof env[0], "RABBITMQ_LOG_BASE=%s/log", s->dir);
    snprintf(env[n++], sizeof env[0], "RABBITMQ_CONFIG_FILE=%s/rabbitmq.conf", s->dir);
    snprintf(env[n++], sizeof env[0], "RABBITMQ_ENABLED_PLUGINS_FILE=%s/enabled_plugins", s->dir);
    snprintf(env[n++], sizeof env[0], "RABBITMQ_CONF_ENV_FILE=%s/rabbitmq-env.conf", s->dir);
    char *envp[17];
    for (int i = 0; i < n; i++)
        envp[i] = env[i];
    envp[n] = NULL;
    char *argv[] = {RMQ_SERVER, NULL};
    s->pid = peer_spawn(argv, envp, s->log_path, s->dir);
    if (s->pid < 0) {
        snprintf(err, cap, "cannot start %s", RMQ_SERVER);
        return -1;
    }
    /* Ready when a login succeeds: the AMQP listener opens late in the boot,
     * after the quorum-queue (Ra) systems are up. */
    int64_t until = peer_now_us() + (int64_t)RMQ_START_MS * 1000;
    while (peer_now_us() < until) {
        if (!peer_alive(s->pid)) {
            snprintf(err, cap, "rabbitmq-server exited while starting (log: %.180s)", s->log_path);
            s->pid = -1;
            return -1;
        }
        if (peer_tcp_probe(s->port, 500)) {
            char e[200];
            amqp_connection_state_t c = rmq_connect(s->port, 3000, e, sizeof e);
            if (c) {
                rmq_close(c);
                return 0;
            }
        }
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    snprintf(err, cap, "rabbitmq-server not ready within %d s", RMQ_START_MS / 1000);
    return -1;
}

static void rmq_stop(rmq_server_t *s)
{
    peer_stop(s->pid, RMQ_STOP_MS);
    s->pid = -1;
    /* epmd daemonizes out of the server's process group; it is ours (our
     * port), and "epmd -kill" stops it once no node is registered. */
    if (s->epmd_port && peer_have_program(RMQ_EPMD)) {
        char env[64], *envp[] = {env, NULL};
        snprintf(env, sizeof env, "ERL_EPMD_PORT=%d", s->epmd_port);
        char *argv[] = {RMQ_EPMD, "-kill", NULL};
        peer_run_wait(argv, envp, 5000);
    }
    if (s->dir[0])
        peer_rmrf(s->dir);
}

/* ---- queues --------------------------------------------------------------- */

static void rmq_queue_name(int idx, char *out, size_t cap)
{
    snprintf(out, cap, "bench-%d", idx);
}

static int rmq_declare_queues(amqp_connection_state_t c, int n, char *err, size_t cap)
{
    amqp_channel_open(c, 1);
    if (!rmq_rpc_ok(c, "channel.open", err, cap))
        return -1;
    amqp_table_entry_t arg = {amqp_cstring_bytes("x-queue-type"),
                              {AMQP_FIELD_KIND_UTF8, {.bytes = amqp_cstring_bytes("quorum")}}};
    amqp_table_t args = {1, &arg};
    for (int i = 0; i < n; i++) {
        char q[32];
        rmq_queue_name(i, q, sizeof q);
        amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 0, 1, 0, 0, args);
        if (!rmq_rpc_ok(c, "queue.declare", err, cap))
            return -1;
    }
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    return 0;
}

/* The server's "version" property, as the broker announced it. */
static void rmq_server_version(amqp_connection_state_t c, char *out, size_t cap)
{
    snprintf(out, cap, "?");
    const amqp_table_t *t = amqp_get_server_properties(c);
    for (int i = 0; t && i < t->num_entries; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        if (e->key.len == 7 && !memcmp(e->key.bytes, "version", 7) &&
            (e->value.kind == AMQP_FIELD_KIND_UTF8 || e->value.kind == AMQP_FIELD_KIND_BYTES))
            snprintf(out, cap, "%.*s", (int)e->value.value.bytes.len,
                     (const char *)e->value.value.bytes.bytes);
    }
}

/* ---- a publisher ---------------------------------------------------------- */

/* One frame from the server: 1 to go on, 0 on a nack or a close. */
static int rmq_on_frame(rmq_pub_t *pb, const amqp_frame_t *f)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        return 1;
    switch (f->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = f->payload.method.decoded;
        peer_window_confirm(&pb->win, a->delivery_tag, a->multiple);
        return 1;
    }
    case AMQP_BASIC_NACK_METHOD:
        snprintf(pb->err, sizeof pb->err, "publisher %d: basic.nack from the server", pb->idx);
        return 0;
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
        snprintf(pb->err, sizeof pb->err, "publisher %d: server closed the channel", pb->idx);
        return 0;
    default: return 1;
    }
}

/* Fill the window; 0, or -1 with pb->err set. Delivery tags count from 1 on
 * a channel in confirm mode, as the window numbers its messages. */
static int rmq_fill(rmq_pub_t *pb, amqp_connection_state_t c, const char *queue,
                    const amqp_bytes_t *body)
{
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = 2; /* persistent (a quorum queue persists all anyway) */
    while (peer_window_has_room(&pb->win)) {
        peer_window_sent(&pb->win);
        int rc = amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0, &props,
                                    *body);
        if (rc != AMQP_STATUS_OK) {
            snprintf(pb->err, sizeof pb->err, "publisher %d: publish: %s", pb->idx,
                     amqp_error_string2(rc));
            return -1;
        }
    }
    return 0;
}

static void rmq_pub_loop(rmq_pub_t *pb, amqp_connection_state_t c, const amqp_bytes_t *body)
{
    char queue[32];
    rmq_queue_name(pb->idx, queue, sizeof queue);
    for (;;) {
        int64_t now = peer_now_us();
        if (now >= pb->win.end_us || rmq_fill(pb, c, queue, body))
            return;
        int64_t left = pb->win.end_us - now;
        if (left > 1000000)
            left = 1000000;
        struct timeval tv = {(time_t)(left / 1000000), (suseconds_t)(left % 1000000)};
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            continue;
        if (rc != AMQP_STATUS_OK) {
            snprintf(pb->err, sizeof pb->err, "publisher %d: read: %s", pb->idx,
                     amqp_error_string2(rc));
            return;
        }
        int go_on = rmq_on_frame(pb, &f);
        amqp_maybe_release_buffers(c);
        if (!go_on)
            return;
    }
}

static void *rmq_pub_main(void *arg)
{
    rmq_pub_t *pb = arg;
    const peer_params_t *p = pb->p;
    uint8_t *payload = malloc((size_t)p->payload);
    amqp_connection_state_t c = NULL;
    if (peer_window_init(&pb->win, p->window) || !payload) {
        snprintf(pb->err, sizeof pb->err, "out of memory");
        goto fail;
    }
    memset(payload, 'x', (size_t)p->payload);
    c = rmq_connect(pb->port, RMQ_CONNECT_MS, pb->err, sizeof pb->err);
    if (!c)
        goto fail;
    amqp_channel_open(c, 1);
    if (!rmq_rpc_ok(c, "channel.open", pb->err, sizeof pb->err))
        goto fail;
    amqp_confirm_select(c, 1);
    if (!rmq_rpc_ok(c, "confirm.select", pb->err, sizeof pb->err))
        goto fail;
    peer_gate_ready(pb->gate, 1);
    if (peer_gate_wait_go(pb->gate, RMQ_CONNECT_MS + 5000)) {
        amqp_bytes_t body = {(size_t)p->payload, payload};
        pb->win.end_us = pb->gate->end_us;
        rmq_pub_loop(pb, c, &body);
    }
    goto done;
fail:
    peer_gate_ready(pb->gate, 0);
done:
    rmq_close(c);
    free(payload);
    peer_window_free(&pb->win);
    return NULL;
}

/* ---- the run -------------------------------------------------------------- */

static void rmq_config_text(peer_result_t *r, const rmq_server_t *s, const peer_params_t *p,
                            const char *version)
{
    snprintf(r->config, sizeof r->config,
             "RabbitMQ %s (Debian rabbitmq-server), one node on 127.0.0.1:%d, no plugins, "
             "default settings; %d durable quorum queues (x-queue-type=quorum, one per "
             "publisher, 1 replica: confirm after the Ra WAL fsync); librabbitmq %s: %d "
             "connections, 1 channel each in confirm mode, basic.publish to the default "
             "exchange, delivery_mode=2, %d-byte bodies, %d unconfirmed per publisher; "
             "latency publish->basic.ack",
             version, s->port, p->senders, amqp_version(), p->senders, p->payload, p->window);
}

static void rmq_run(const peer_params_t *p, peer_result_t *r)
{
    rmq_server_t s = {.pid = -1};
    char err[256] = "";
    char version[64] = "?";
    if (!peer_have_program(RMQ_SERVER)) {
        snprintf(r->skipped, sizeof r->skipped,
                 "rabbitmq-server is not installed (%s missing; tools/bench-deps.sh installs it)",
                 RMQ_SERVER);
        return;
    }
    if (rmq_start(&s, p, err, sizeof err)) {
        snprintf(r->skipped, sizeof r->skipped, "%s", err);
        goto out;
    }
    amqp_connection_state_t c = rmq_connect(s.port, 10000, err, sizeof err);
    if (!c) {
        snprintf(r->skipped, sizeof r->skipped, "%s", err);
        goto out;
    }
    rmq_server_version(c, version, sizeof version);
    int rc = rmq_declare_queues(c, p->senders, err, sizeof err);
    rmq_close(c);
    if (rc) {
        snprintf(r->skipped, sizeof r->skipped, "%s", err);
        goto out;
    }
    rmq_config_text(r, &s, p, version);
    peer_measure(p, &s.pid, s.port, RMQ_CONNECT_MS, RMQ_GRACE_MS, rmq_pub_main, r);
out:
    rmq_stop(&s);
}

#endif /* PEER_HAVE_AMQP */

void peer_rabbitmq_run(const peer_params_t *p, peer_result_t *r)
{
    memset(r, 0, sizeof *r);
    r->durable = 1;
#if PEER_HAVE_AMQP
    rmq_run(p, r);
#else
    (void)p;
    snprintf(r->config, sizeof r->config, "RabbitMQ quorum queues with publisher confirms");
    snprintf(r->skipped, sizeof r->skipped,
             "built without librabbitmq-dev (amqp.h missing); run tools/bench-deps.sh and rebuild");
#endif
}
