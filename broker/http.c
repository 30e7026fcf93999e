/*
 * http.c: libmicrohttpd in external mode on an epoll descriptor, with the
 * token checks, bodies, JSON answers and event streams of http.h.
 *
 * One request passes through the access handler several times: first with
 * no state (we allocate it), then once per chunk of body, then once more
 * with no data, when it is complete and is answered. An event stream is a
 * response of unknown size whose reader hands out what http_broadcast
 * queued; with nothing queued it suspends its connection, and a broadcast
 * resumes it (the next http_run writes it out).
 */
#include "http.h"

#include "log.h"
#include "nhub_err.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_CONNECTIONS_MAX 256
#define HTTP_PER_IP_MAX 64
#define HTTP_IDLE_TIMEOUT_S 60
#define HTTP_TLS_FILE_MAX (1 << 20)

struct stream {
    http_t *http;
    struct MHD_Connection *conn;
    char *buf;
    size_t len, off, cap;
    int suspended, closed;
    struct stream *prev, *next;
};

struct http_req {
    http_t *http;
    struct MHD_Connection *conn;
    const char *method, *path;
    char *body;
    size_t body_len;
    int too_large;
    int role;
    char address[64];
    struct MHD_Response *response; /* set by a reply */
    unsigned status;
    struct stream *stream; /* set by http_reply_stream */
};

struct http {
    struct MHD_Daemon *d;
    http_handler_fn fn;
    void *arg;
    cfg_http_t cfg;
    char url[96];
    char *tls_cert, *tls_key;
    struct stream *streams;
    size_t n_streams;
    int resumed; /* a stream was resumed since the last run */
};

/* ---- tokens ------------------------------------------------------------------ */

static int token_equal(const char *given, const char *want)
{
    size_t a = strlen(given), b = strlen(want);
    if (!b || a != b)
        return 0;
    return CRYPTO_memcmp(given, want, a) == 0;
}

/* The role `token` gives, HTTP_ROLE_NONE for no token, -1 for an unknown one. */
static int token_role(const http_t *h, const char *token)
{
    if (!token || !token[0])
        return HTTP_ROLE_NONE;
    if (token_equal(token, h->cfg.operator_token))
        return HTTP_ROLE_OPERATOR;
    if (token_equal(token, h->cfg.read_token))
        return HTTP_ROLE_READ;
    return -1;
}

static const char *request_token(struct MHD_Connection *c, const char *method)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0)
        return auth + 7;
    if (!strcmp(method, "GET"))
        return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "access_token");
    return NULL;
}

/* ---- answers --------------------------------------------------------------- */

static void set_response(http_req_t *r, unsigned status, struct MHD_Response *resp,
                         const char *type)
{
    if (r->response || !resp) {
        if (resp)
            MHD_destroy_response(resp);
        return;
    }
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    r->response = resp;
    r->status = status;
}

void http_reply(http_req_t *r, unsigned status, const char *type, const void *data, size_t len)
{
    set_response(r, status,
                 MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY), type);
}

void http_reply_json(http_req_t *r, unsigned status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        http_reply(r, 500, "application/json",
                   "{\"error\":\"internal\",\"detail\":\"out of memory\"}", 46);
        return;
    }
    if (r->response) {
        free(text);
        return;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(text);
    set_response(r, status, resp, "application/json");
}

void http_reply_error(http_req_t *r, unsigned status, const char *code, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    http_reply_json(r, status, json_pack("{s:s,s:s}", "error", code, "detail", detail));
}

/* ---- streams --------------------------------------------------------------- */

static void stream_queue(struct stream *s, const char *event, const char *data)
{
    if (s->closed)
        return;
    size_t need = strlen(event) + strlen(data) + 16;
    if (s->len - s->off + need > HTTP_STREAM_BUFFER_MAX) {
        s->closed = 1; /* the client does not read: let it reconnect */
        log_warn("http.stream_dropped", "detail=\"client does not read its event stream\"");
    } else {
        if (s->off && s->off == s->len)
            s->off = s->len = 0;
        if (s->len + need > s->cap) {
            size_t cap = s->cap ? s->cap : 4096;
            while (cap < s->len + need)
                cap *= 2;
            char *b = realloc(s->buf, cap);
            if (!b) {
                s->closed = 1;
                return;
            }
            s->buf = b;
            s->cap = cap;
        }
        s->len += (size_t)snprintf(s->buf + s->len, s->cap - s->len, "event: %s\ndata: %s\n\n",
                                   event, data);
    }
    if (s->suspended) {
        s->suspended = 0;
        MHD_resume_connection(s->conn);
        s->http->resumed = 1;
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    struct stream *s = cls;
    if (s->off < s->len) {
        size_t n = s->len - s->off < max ? s->len - s->off : max;
        memcpy(out, s->buf + s->off, n);
        s->off += n;
        return (ssize_t)n;
    }
    if (s->closed)
        return MHD_CONTENT_READER_END_OF_STREAM;
    s->suspended = 1;
    MHD_suspend_connection(s->conn);
    return 0;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    http_t *h = s->http;
    if (s->prev)
        s->prev->next = s->next;
    else
        h->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    h->n_streams--;
    free(s->buf);
    free(s);
}

int http_reply_stream(http_req_t *r)
{
    http_t *h = r->http;
    if (h->n_streams >= HTTP_STREAMS_MAX) {
        http_reply_error(r, 503, "unavailable", "too many event streams open (%d)",
                         HTTP_STREAMS_MAX);
        return NHUB_EFULL;
    }
    struct stream *s = calloc(1, sizeof *s);
    if (!s) {
        http_reply_error(r, 503, "unavailable", "out of memory");
        return NHUB_ENOMEM;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, s, stream_free);
    if (!resp) {
        free(s);
        http_reply_error(r, 503, "unavailable", "out of memory");
        return NHUB_ENOMEM;
    }
    s->http = h;
    s->conn = r->conn;
    s->next = h->streams;
    if (h->streams)
        h->streams->prev = s;
    h->streams = s;
    h->n_streams++;
    set_response(r, 200, resp, "text/event-stream");
    r->stream = s;
    return 0;
}

void http_stream_send(http_req_t *r, const char *event, const char *data)
{
    if (r->stream)
        stream_queue(r->stream, event, data);
}

void http_broadcast(http_t *self, const char *event, const char *data)
{
    for (struct stream *s = self ? self->streams : NULL; s; s = s->next)
        stream_queue(s, event, data);
}

size_t http_streams(const http_t *self)
{
    return self ? self->n_streams : 0;
}

/* ---- requests -------------------------------------------------------------- */

const char *http_req_method(const http_req_t *r)
{
    return r->method;
}

const char *http_req_path(const http_req_t *r)
{
    return r->path;
}

const char *http_req_query(const http_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_req_body(const http_req_t *r, size_t *len)
{
    if (len)
        *len = r->body_len;
    return r->body ? r->body : "";
}

int http_req_role(const http_req_t *r)
{
    return r->role;
}

const char *http_req_address(const http_req_t *r)
{
    return r->address;
}

static void client_address(struct MHD_Connection *c, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, cap, "-");
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)cap);
}

/* The dashboard's own files hold no data: the page must load to ask for a token. */
static int is_public(const char *path)
{
    return !strcmp(path, "/") || !strcmp(path, "/index.html") || !strncmp(path, "/assets/", 8);
}

/* The checks of http.h before the handler sees a request; 0 if it may. */
static int admit(http_t *h, http_req_t *r)
{
    if (strcmp(r->method, "GET") && strcmp(r->method, "POST") && strcmp(r->method, "HEAD")) {
        http_reply_error(r, 405, "method_not_allowed", "%s is not used here; GET reads, POST acts",
                         r->method);
        return -1;
    }
    int role = token_role(h, request_token(r->conn, r->method));
    if (role < 0) {
        log_warn("http.token_refused", "address=%s method=%s", r->address, r->method);
        http_reply_error(r, 401, "unauthorized", "the token is not one of this hub's tokens");
        return -1;
    }
    r->role = role;
    if (!strcmp(r->method, "POST") && role != HTTP_ROLE_OPERATOR) {
        if (role == HTTP_ROLE_READ)
            http_reply_error(r, 403, "forbidden",
                             "this action needs the operator token; the read-only token was given");
        else
            http_reply_error(r, 401, "unauthorized",
                             "this action needs the operator token (Authorization: Bearer TOKEN)");
        return -1;
    }
    if (role == HTTP_ROLE_NONE && h->cfg.read_token[0] && !is_public(r->path)) {
        http_reply_error(r, 401, "unauthorized",
                         "a token is needed (Authorization: Bearer TOKEN, or ?access_token=)");
        return -1;
    }
    if (r->too_large) {
        http_reply_error(r, 413, "too_large", "the body exceeds %d bytes", HTTP_BODY_MAX);
        return -1;
    }
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    http_t *h = cls;
    http_req_t *r = *con_cls;
    if (!r) {
        if (!(r = calloc(1, sizeof *r)))
            return MHD_NO;
        r->http = h;
        r->conn = conn;
        r->method = method;
        r->path = url;
        client_address(conn, r->address, sizeof r->address);
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_large || r->body_len + n > HTTP_BODY_MAX) {
            r->too_large = 1;
            return MHD_YES;
        }
        char *b = realloc(r->body, r->body_len + n + 1);
        if (!b)
            return MHD_NO;
        memcpy(b + r->body_len, upload, n);
        r->body = b;
        r->body_len += n;
        r->body[r->body_len] = 0;
        return MHD_YES;
    }
    if (r->response) /* answered already; nothing more to do */
        return MHD_YES;
    if (admit(h, r) == 0)
        h->fn(h->arg, r);
    if (!r->response)
        http_reply_error(r, 500, "internal", "no answer was made");
    enum MHD_Result ok = MHD_queue_response(conn, r->status, r->response);
    MHD_destroy_response(r->response);
    r->response = (struct MHD_Response *)1; /* queued; only a marker from here */
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)conn;
    (void)why;
    http_req_t *r = *con_cls;
    if (!r)
        return;
    free(r->body);
    free(r);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char text[256], q[300];
    vsnprintf(text, sizeof text, fmt, ap);
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = 0;
    log_warn("http.error", "detail=%s", log_quote(q, sizeof q, text));
}

/* ---- lifecycle ------------------------------------------------------------- */

static char *read_file(const char *path, char *err, size_t errcap, const char *what)
{
    FILE *f = fopen(path, "rb");
    char *buf = f ? malloc(HTTP_TLS_FILE_MAX + 1) : NULL;
    size_t n = buf ? fread(buf, 1, HTTP_TLS_FILE_MAX + 1, f) : 0;
    int bad = !f || !buf || ferror(f) || n == 0 || n > HTTP_TLS_FILE_MAX;
    if (f)
        fclose(f);
    if (bad) {
        snprintf(err, errcap, "http.%s: cannot read %s (a PEM file of at most 1 MiB)", what, path);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

int http_new(const cfg_http_t *cfg, http_handler_fn fn, void *arg, http_t **out, char *err,
             size_t errcap)
{
    *out = NULL;
    http_t *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errcap, "out of memory");
        return NHUB_ENOMEM;
    }
    h->cfg = *cfg;
    h->fn = fn;
    h->arg = arg;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (cfg->tls_cert[0]) {
        if (!(h->tls_cert = read_file(cfg->tls_cert, err, errcap, "tls_cert")) ||
            !(h->tls_key = read_file(cfg->tls_key, err, errcap, "tls_key"))) {
            http_destroy(&h);
            return NHUB_EIO;
        }
        flags |= MHD_USE_TLS;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(cfg->port);
    sa.sin_addr.s_addr = htonl(cfg->bind_addr);
    struct MHD_OptionItem tls[] = {
        {h->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, h->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key},
        {MHD_OPTION_END, 0, NULL},
    };
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)HTTP_CONNECTIONS_MAX, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                            (unsigned)HTTP_PER_IP_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)HTTP_IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED,
                            on_completed, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
                            MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, errcap,
                 "http.listen: cannot listen on %s (address in use, or a bad TLS "
                 "certificate or key)",
                 cfg->listen);
        http_destroy(&h);
        return NHUB_EIO;
    }
    const union MHD_DaemonInfo *port = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    char addr[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof addr);
    snprintf(h->url, sizeof h->url, "%s://%s:%u", h->tls_cert ? "https" : "http", addr,
             port ? (unsigned)port->port : (unsigned)cfg->port);
    *out = h;
    return 0;
}

void http_set_tokens(http_t *self, const cfg_http_t *cfg)
{
    snprintf(self->cfg.read_token, sizeof self->cfg.read_token, "%s", cfg->read_token);
    snprintf(self->cfg.operator_token, sizeof self->cfg.operator_token, "%s", cfg->operator_token);
}

void http_destroy(http_t **self)
{
    http_t *h = self ? *self : NULL;
    if (!h)
        return;
    if (h->d) {
        /* Suspended streams must be resumed before the daemon can stop. */
        for (struct stream *s = h->streams; s; s = s->next) {
            s->closed = 1;
            if (s->suspended) {
                s->suspended = 0;
                MHD_resume_connection(s->conn);
            }
        }
        MHD_run(h->d);
        MHD_stop_daemon(h->d);
    }
    if (h->tls_key)
        OPENSSL_cleanse(h->tls_key, strlen(h->tls_key));
    free(h->tls_cert);
    free(h->tls_key);
    free(h);
    *self = NULL;
}

const char *http_url(const http_t *self)
{
    return self->url;
}

int http_fd(const http_t *self)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(self->d, MHD_DAEMON_INFO_EPOLL_FD);
    return i ? i->epoll_fd : -1;
}

int64_t http_timeout_ms(const http_t *self)
{
    if (self->resumed)
        return 0;
    MHD_UNSIGNED_LONG_LONG t;
    if (MHD_get_timeout(self->d, &t) != MHD_YES)
        return -1;
    return t > INT32_MAX ? INT32_MAX : (int64_t)t;
}

void http_run(http_t *self)
{
    self->resumed = 0;
    MHD_run(self->d);
}
