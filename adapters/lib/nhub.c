/*
 * nhub.c: libnhub, the adapter side of the nhub wire protocol (see
 * proto/README.md and adapters/nhub.h): opening and closing a handle,
 * statistics, the clock, the views of the store, and the helpers all of
 * libnhub's files share. How conn.c, send.c and recv.c divide the rest is
 * in nhub_internal.h.
 */
#include "nhub_internal.h"

/* ---- small helpers -------------------------------------------------------- */

int64_t lib_now_ms(const nhub_t *self)
{
    return clock_mono_ms(&self->clk);
}

int64_t lib_wall_ms(const nhub_t *self)
{
    return clock_wall_ms(&self->clk);
}

int lib_set_err(nhub_t *self, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->last_error, sizeof self->last_error, fmt, ap);
    va_end(ap);
    return code;
}

char *nhub_msg_id_hex(const uint8_t id[NHUB_MSG_ID_LEN], char buf[33])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < NHUB_MSG_ID_LEN; i++) {
        buf[2 * i] = digits[id[i] >> 4];
        buf[2 * i + 1] = digits[id[i] & 15];
    }
    buf[32] = '\0';
    return buf;
}

static const char *const kind_names[] = {"unknown", "request", "response",
                                         "push",    "feedback", "notice"};

int nhub_kind_parse(const char *name)
{
    if (!name)
        return 0;
    for (int k = NHUB_KIND_REQUEST; k <= NHUB_KIND_NOTICE; k++)
        if (strcmp(name, kind_names[k]) == 0)
            return k;
    return 0;
}

const char *nhub_kind_name(int kind)
{
    if (kind < NHUB_KIND_REQUEST || kind > NHUB_KIND_NOTICE)
        return kind_names[0];
    return kind_names[kind];
}

int nhub_log_setup(const char *level, FILE *stream)
{
    enum log_level l;
    if (!level || log_level_parse(level, &l) != 0)
        return NHUB_EINVAL;
    log_setup(l, stream);
    return 0;
}

/* Largest allocation wire_decode may make for one frame. */
size_t lib_decode_budget(const nhub_t *self)
{
    return 2 * ((size_t)self->max_frame + NHUB_FRAME_SLACK) + 65536;
}

void lib_copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* ---- public API ----------------------------------------------------------- */

/*
 * The security options: key_file + hub_key (CURVE and signatures) or
 * insecure_plaintext, exactly one. An offline handle may give neither.
 * Each message says what is missing or contradictory, since this is what
 * an operator sees when the configuration is wrong.
 */
static int check_security(nhub_t *self, const nhub_options_t *opt)
{
    int has_key = opt->key_file && opt->key_file[0];
    int has_hub = opt->hub_key && opt->hub_key[0];
    if (opt->insecure_plaintext && (has_key || has_hub))
        return lib_set_err(self, NHUB_ECONFIG,
                           "insecure_plaintext cannot be combined with key_file or hub_key: give "
                           "key_file and hub_key (CURVE, signed envelopes) or insecure_plaintext, "
                           "not both");
    if (opt->insecure_plaintext)
        return 0;
    if (!has_key && !has_hub) {
        if (opt->offline)
            return 0;
        return lib_set_err(self, NHUB_ECONFIG,
                           "no security configured: give key_file (this region's secret key file) "
                           "and hub_key (the hub's CURVE public key), or insecure_plaintext for "
                           "development");
    }
    if (!has_key)
        return lib_set_err(self, NHUB_ECONFIG,
                           "key_file is missing: hub_key is given, but CURVE needs this region's "
                           "secret key file too");
    if (!has_hub)
        return lib_set_err(self, NHUB_ECONFIG,
                           "hub_key is missing: key_file %s needs the hub's CURVE public key "
                           "(40 Z85 characters, the curve: of hub.pub)",
                           opt->key_file);
    if (strlen(opt->hub_key) != KEYS_Z85_LEN || !keys_curve_valid(opt->hub_key))
        return lib_set_err(self, NHUB_ECONFIG,
                           "hub_key is not a CURVE public key (40 Z85 characters, the curve: of "
                           "hub.pub)");
    lib_copy_str(self->hub_key, sizeof self->hub_key, opt->hub_key);
    return 0;
}

/* Load the key file and check it belongs to this region. */
static int load_keys(nhub_t *self, const char *path)
{
    char err[256] = "";
    int rc = keys_load(path, &self->keys, err, sizeof err);
    if (rc != 0)
        return lib_set_err(self, rc, "%s", err[0] ? err : nhub_strerror(rc));
    if (strcmp(self->keys->region, self->region) != 0)
        return lib_set_err(self, NHUB_ECONFIG,
                           "key file %s is for region %s, but this adapter is region %s", path,
                           self->keys->region, self->region);
    if (!self->keys->signer)
        return lib_set_err(self, NHUB_ECONFIG, "key file %s has no signing key", path);
    return 0;
}

static int copy_options(nhub_t *self, const nhub_options_t *opt)
{
    if (!opt->region || !wire_region_valid(opt->region))
        return lib_set_err(self, NHUB_EINVAL, "region must be six digits");
    if (!opt->offline && (!opt->hub_endpoint || !opt->hub_endpoint[0]))
        return lib_set_err(self, NHUB_EINVAL, "hub_endpoint is missing");
    if (!opt->data_dir || !opt->data_dir[0])
        return lib_set_err(self, NHUB_EINVAL, "data_dir is missing");
    if (opt->n_accepted > NHUB_ACCEPTED_MAX || (opt->n_accepted && !opt->accepted_payloads))
        return lib_set_err(self, NHUB_EINVAL, "accepted_payloads: at most %d entries",
                           NHUB_ACCEPTED_MAX);
    if (opt->resend_after_ms < 0 || opt->heartbeat_ms < 0)
        return lib_set_err(self, NHUB_EINVAL, "resend_after_ms and heartbeat_ms must be >= 0");
    if (opt->confirmed_retention_ms < 0)
        return lib_set_err(self, NHUB_EINVAL, "confirmed_retention_ms must be >= 0");
    if (opt->max_frame && (opt->max_frame < 1024 || opt->max_frame > NHUB_MAX_MAX_FRAME))
        return lib_set_err(self, NHUB_EINVAL, "max_frame must be 1024..%u bytes (or 0 for 1 MiB)",
                           NHUB_MAX_MAX_FRAME);
    int rc = check_security(self, opt);
    if (rc != 0)
        return rc;
    lib_copy_str(self->region, sizeof self->region, opt->region);
    self->endpoint = strdup(opt->hub_endpoint ? opt->hub_endpoint : "");
    self->credit = opt->credit ? opt->credit : NHUB_DEFAULT_CREDIT;
    self->window = opt->window ? opt->window : NHUB_DEFAULT_WINDOW;
    self->max_frame = opt->max_frame ? opt->max_frame : NHUB_DEFAULT_MAX_FRAME;
    self->resend_after_ms = opt->resend_after_ms ? opt->resend_after_ms : NHUB_DEFAULT_RESEND_MS;
    self->heartbeat_ms = opt->heartbeat_ms ? opt->heartbeat_ms : NHUB_DEFAULT_HEARTBEAT_MS;
    self->hb_ms = self->heartbeat_ms;
    self->map_size_max = opt->map_size_max;
    self->confirmed_retention_ms = opt->confirmed_retention_ms
                                       ? opt->confirmed_retention_ms
                                       : NHUB_DEFAULT_CONFIRMED_RETENTION_MS;
    self->on_reject = opt->on_reject;
    self->on_reject_arg = opt->on_reject_arg;
    self->on_ack = opt->on_ack;
    self->on_ack_arg = opt->on_ack_arg;
    self->offline = opt->offline;
    self->send_only = opt->send_only;
    if (self->window > 1000000)
        return lib_set_err(self, NHUB_EINVAL, "window must be at most 1000000");
    self->ring = calloc(self->window, sizeof *self->ring);
    self->accepted = calloc(opt->n_accepted + 2, sizeof *self->accepted);
    if (!self->endpoint || !self->ring || !self->accepted)
        return lib_set_err(self, NHUB_ENOMEM, "out of memory");
    for (size_t i = 0; i < opt->n_accepted; i++) {
        if (!wire_payload_pattern_valid(opt->accepted_payloads[i]))
            return lib_set_err(self, NHUB_EINVAL,
                               "accepted_payloads[%zu] is not a payload type or \"pkg.v1.*\"", i);
        self->accepted[i] = strdup(opt->accepted_payloads[i]);
        if (!self->accepted[i])
            return lib_set_err(self, NHUB_ENOMEM, "out of memory");
        self->n_accepted++;
    }
    /* A list of types also takes the hub's own notices about cases
     * (reminders, overdue, the final answer when a case expires). */
    if (self->n_accepted) {
        self->accepted[self->n_accepted] = strdup(NHUB_CASE_NOTICES);
        if (!self->accepted[self->n_accepted])
            return lib_set_err(self, NHUB_ENOMEM, "out of memory");
        self->n_accepted++;
    }
    return 0;
}

static void nhub_free(nhub_t *self)
{
    conn_sock_close(self);
    keys_free(&self->keys);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    inbox_destroy(&self->inbox);
    outbox_close(&self->store);
    for (size_t i = 0; self->accepted && i < self->n_accepted; i++)
        free(self->accepted[i]);
    free(self->accepted);
    free(self->ring);
    free(self->proof);
    free(self->endpoint);
    free(self);
}

int nhub_open(const nhub_options_t *opt, nhub_t **out, char *err, size_t errcap)
{
    int rc;
    if (out)
        *out = NULL;
    if (!opt || !out) {
        if (err && errcap)
            snprintf(err, errcap, "options and out must not be NULL");
        return NHUB_EINVAL;
    }
    nhub_t *self = calloc(1, sizeof *self);
    if (!self) {
        if (err && errcap)
            snprintf(err, errcap, "out of memory");
        return NHUB_ENOMEM;
    }
    self->clk = *nhub_clock_system();
    self->backoff_ms = NHUB_BACKOFF_START_MS;
    self->send_cursor = 1;
    self->next_expire_ms = INT64_MIN;
    self->reopen_ms = NHUB_REOPEN_START_MS;
    rc = copy_options(self, opt);
    if (rc == 0 && opt->key_file && opt->key_file[0])
        rc = load_keys(self, opt->key_file);
    if (rc == 0 && self->keys && !self->offline && !zmq_has("curve"))
        rc = lib_set_err(self, NHUB_ECONFIG, "this libzmq is built without CURVE");
    if (rc != 0)
        goto fail;
    rc = outbox_open(opt->data_dir, opt->map_size_max, &self->store,
                     self->last_error, sizeof self->last_error);
    if (rc != 0)
        goto fail;
    outbox_link_t stored;
    if (outbox_link_get(self->store, &stored) == 0)
        self->link_stored = stored.state;
    self->inbox = inbox_new((size_t)self->credit * 2 + 16);
    self->proof_cap = (size_t)self->credit * 2 + 16;
    self->proof = calloc(self->proof_cap, sizeof *self->proof);
    if (!self->inbox || !self->proof) {
        rc = lib_set_err(self, NHUB_ENOMEM, "out of memory");
        goto fail;
    }
    if (!self->offline) {
        self->zctx = zmq_ctx_new();
        if (!self->zctx) {
            rc = lib_set_err(self, NHUB_EZMQ, "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
            goto fail;
        }
        rc = conn_sock_open(self);
        if (rc != 0)
            goto fail;
    }
    if (self->keys)
        log_info("nhub.open", "region=%s hub=%s offline=%d security=curve curve_fpr=%s key_id=%s",
                 self->region, self->endpoint, self->offline, self->keys->curve_fpr,
                 self->keys->sign_id);
    else
        log_info("nhub.open", "region=%s hub=%s offline=%d security=%s", self->region,
                 self->endpoint, self->offline, opt->insecure_plaintext ? "plaintext" : "none");
    if (opt->insecure_plaintext && !self->offline)
        log_warn("nhub.insecure",
                 "region=%s hub=%s note=\"INSECURE: plaintext connection and unsigned envelopes; "
                 "development only, never in production\"",
                 self->region, self->endpoint);
    *out = self;
    return 0;
fail:
    if (err && errcap)
        snprintf(err, errcap, "%s", self->last_error);
    nhub_free(self);
    return rc;
}

void nhub_close(nhub_t **selfp)
{
    if (!selfp || !*selfp)
        return;
    nhub_t *self = *selfp;
    *selfp = NULL;
    if (self->sock && (self->state == SESSION_READY || self->state == SESSION_HELLO_SENT)) {
        /* A short linger lets the BYE out; anything else queued is in the outbox anyway. */
        wire_bye_t bye = NHUB__WIRE__V1__BYE__INIT;
        bye.reason = "close";
        conn_session_write(self, WIRE_BYE, &bye.base);
        conn_sockopt_int(self->sock, ZMQ_LINGER, 200);
    }
    log_info("nhub.close", "region=%s sent=%llu acked=%llu received=%llu confirmed=%llu",
             self->region, (unsigned long long)self->st.sent, (unsigned long long)self->st.acked,
             (unsigned long long)self->st.received, (unsigned long long)self->st.confirmed);
    nhub_free(self);
}

/*
 * An error about element `i` of a batch of `n`: the detail gets the index in
 * front, so the caller knows which one (a batch of one reads as before).
 * Returns `rc`.
 */
int lib_batch_err(nhub_t *self, int rc, size_t n, size_t i)
{
    char why[sizeof self->last_error];
    if (n < 2)
        return rc;
    snprintf(why, sizeof why, "%s", self->last_error);
    return lib_set_err(self, rc, "[%zu of %zu]: %s", i, n, why);
}

/*
 * The checks a batch call starts with: `items` (named `what`) may be NULL
 * only when n is 0. Returns 1 for an empty batch (nothing to do), 0 to go
 * on, or NHUB_EINVAL.
 */
int lib_batch_start(nhub_t *self, const void *items, size_t n, const char *what)
{
    if (!self)
        return NHUB_EINVAL;
    if (n == 0)
        return 1;
    if (!items)
        return lib_set_err(self, NHUB_EINVAL, "%s is NULL", what);
    return 0;
}

static int outbox_empty(nhub_t *self)
{
    uint64_t n = 1;
    return outbox_count(self->store, &n) == 0 && n == 0;
}

int nhub_pump(nhub_t *self, int timeout_ms)
{
    int rc = conn_serve(self, timeout_ms, NULL);
    return rc == NHUB_ETIMEOUT ? 0 : rc;
}

static int fd_or_delivery_ready(nhub_t *self)
{
    return self->extra_ready || inbox_ready(self->inbox) > 0;
}

int nhub_pump_fds(nhub_t *self, const int *fds, size_t n, int timeout_ms)
{
    if (n > NHUB_PUMP_FDS_MAX || (n && !fds))
        return lib_set_err(self, NHUB_EINVAL, "nhub_pump_fds takes 0..%d descriptors",
                           NHUB_PUMP_FDS_MAX);
    self->extra_fds = fds;
    self->n_extra_fds = n;
    self->extra_ready = 0;
    int rc = conn_serve(self, timeout_ms, fd_or_delivery_ready);
    self->extra_fds = NULL;
    self->n_extra_fds = 0;
    self->extra_ready = 0;
    return rc == NHUB_ETIMEOUT ? 0 : rc;
}

int nhub_flush(nhub_t *self, int timeout_ms)
{
    if (self->offline)
        return outbox_empty(self) ? 0 : lib_set_err(self, NHUB_ECLOSED, "opened offline");
    return conn_serve(self, timeout_ms, outbox_empty);
}

void nhub_stats(const nhub_t *self, nhub_stats_t *out)
{
    *out = self->st;
    out->connected = self->state == SESSION_READY;
    out->link = self->link == NHUB_LINK_UP && !out->connected ? NHUB_LINK_DOWN : self->link;
    lib_copy_str(out->link_error, sizeof out->link_error, self->link_error);
    uint64_t n = 0;
    if (outbox_count(self->store, &n) == 0)
        out->outbox = n;
}

struct each_arg {
    const nhub_t *self;
    nhub_outbox_fn *fn;
    void *arg;
};

static int each_visit(void *arg, uint64_t seq, const outbox_record_t *rec)
{
    struct each_arg *a = arg;
    uint8_t id[NHUB_MSG_ID_LEN];
    (void)seq;
    if (send_envelope_msg_id(a->self, rec->envelope, rec->envelope_len, id) != 0)
        return 0;
    return a->fn(a->arg, id) ? 1 : 0;
}

int nhub_outbox_each(nhub_t *self, nhub_outbox_fn *fn, void *arg)
{
    struct each_arg a = {self, fn, arg};
    int rc = outbox_scan(self->store, 1, each_visit, &a);
    if (rc != 0)
        return lib_set_err(self, rc, "%s", outbox_error(self->store));
    return 0;
}

int nhub_store_info(nhub_t *self, nhub_store_info_t *out)
{
    uint64_t base = 0, next = 0;
    memset(out, 0, sizeof *out);
    int rc = outbox_stream(self->store, out->stream_id, &base);
    if (rc == 0)
        rc = outbox_next_seq(self->store, &next);
    out->next_stream_seq = next - base;
    if (rc == 0)
        rc = outbox_count(self->store, &out->outbox);
    if (rc == 0)
        rc = outbox_confirmed_count(self->store, &out->confirmed_ids);
    if (rc == 0)
        rc = outbox_unsent_count(self->store, &out->unsent_confirmations);
    if (rc != 0)
        return lib_set_err(self, rc, "%s", outbox_error(self->store));
    out->map_size = outbox_map_size(self->store);
    out->map_size_max = self->map_size_max ? self->map_size_max : 4ull << 30;
    outbox_link_t link;
    rc = outbox_link_get(self->store, &link);
    if (rc != 0)
        return lib_set_err(self, rc, "%s", outbox_error(self->store));
    out->link = link.state;
    out->link_changed_ms = link.changed_ms;
    lib_copy_str(out->link_error, sizeof out->link_error, link.error);
    out->auth_failures = link.auth_failures;
    out->handshake_failures = link.handshake_failures;
    return 0;
}

const char *nhub_link_name(int link)
{
    static const char *const names[] = {"down", "up", "refused", "handshake_failed"};
    if (link < 0 || link >= (int)(sizeof names / sizeof *names))
        return "unknown";
    return names[link];
}

/* Calls the caller's clock, or the system's where the caller gave none. */
static int64_t custom_wall(void *arg)
{
    const nhub_t *self = arg;
    return self->wall_fn ? self->wall_fn(self->clock_arg) : clock_wall_ms(nhub_clock_system());
}

static int64_t custom_mono(void *arg)
{
    const nhub_t *self = arg;
    return self->mono_fn ? self->mono_fn(self->clock_arg) : clock_mono_ms(nhub_clock_system());
}

void nhub_set_clock(nhub_t *self, nhub_clock_fn *wall, nhub_clock_fn *mono, void *arg)
{
    self->wall_fn = wall;
    self->mono_fn = mono;
    self->clock_arg = arg;
    if (!wall && !mono) {
        self->clk = *nhub_clock_system();
        return;
    }
    self->clk = (nhub_clock_t){.wall_ms = custom_wall, .mono_ms = custom_mono, .arg = self};
}

const char *nhub_last_error(const nhub_t *self)
{
    return self ? self->last_error : "";
}
