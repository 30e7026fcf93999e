/*
 * http.h: the hub's HTTP endpoint (libmicrohttpd): /metrics, the JSON API
 * under /api/v1/, the live event stream and the dashboard. This module is
 * the transport: listening, TLS, tokens and roles, bodies, replies, and
 * Server-Sent Events streams. What each path answers is the caller's
 * handler (broker/api.c).
 *
 * Threads: none of its own. libmicrohttpd runs in "external" mode on an
 * epoll descriptor that the hub loop polls beside its sockets, and
 * http_run() does the work that is ready; so the handler runs in the hub
 * loop, reads the hub's state directly and acts between two commits,
 * with no lock and no copy. Every handler must be quick: lists are
 * bounded by the API.
 *
 * Roles. A request's role comes from its token (`Authorization: Bearer T`,
 * or for GET also `?access_token=T`, since EventSource cannot send
 * headers): the operator token gives HTTP_ROLE_OPERATOR, the read token
 * HTTP_ROLE_READ. A token that is neither is refused with 401, whatever the
 * request. GET needs HTTP_ROLE_READ when a read token is configured; POST
 * always needs HTTP_ROLE_OPERATOR (401 without a token, 403 with the read
 * token); other methods get 405. The dashboard's files (/, /index.html,
 * /assets/...) are served without a token: they hold no data, and the page
 * must load to ask for one. The handler is called only for requests
 * that passed these checks. Tokens are compared in constant time and never
 * logged.
 *
 * Ownership: http_t owns its daemon and streams. A request is borrowed by
 * the handler for the length of the call, which must answer it exactly
 * once (http_reply*, or http_reply_stream).
 */
#ifndef NHUB_HTTP_H
#define NHUB_HTTP_H

#include "cfg.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct http http_t;
typedef struct http_req http_req_t;

enum http_role { HTTP_ROLE_NONE = 0, HTTP_ROLE_READ = 1, HTTP_ROLE_OPERATOR = 2 };

#define HTTP_BODY_MAX (64 * 1024)         /* bytes of a request body; larger gets 413 */
#define HTTP_STREAMS_MAX 64               /* live event streams at once; more get 503 */
#define HTTP_STREAM_BUFFER_MAX (4u << 20) /* bytes queued for one stream before it is closed */

typedef void (*http_handler_fn)(void *arg, http_req_t *req);

/*
 * Listen as `cfg` says (cfg->listen non-empty; TLS when tls_cert is set,
 * its files read now) and answer requests with `fn(arg, req)`. `cfg` is
 * copied. Returns 0 and *out, or NHUB_EIO (a TLS file unreadable, or the
 * address cannot be bound), NHUB_ENOMEM, with the reason in `err`.
 */
int http_new(const cfg_http_t *cfg, http_handler_fn fn, void *arg, http_t **out, char *err,
             size_t errcap);

/* Close every stream and connection and stop; accepts NULL; sets *self to NULL. */
void http_destroy(http_t **self);

/* Take the tokens of a reloaded configuration (the address needs a restart). */
void http_set_tokens(http_t *self, const cfg_http_t *cfg);

/* The base URL, e.g. http://127.0.0.1:7480 (the port filled in when it was 0). */
const char *http_url(const http_t *self);

/* The descriptor to poll for input; then call http_run. */
int http_fd(const http_t *self);

/* Milliseconds until http_run is needed without input (connection
 * timeouts), or -1 if never; 0 when streams were resumed and wait. */
int64_t http_timeout_ms(const http_t *self);

/* Accept, read, answer and write what is ready; never blocks. */
void http_run(http_t *self);

/* ---- requests (valid during the handler's call) ---- */

const char *http_req_method(const http_req_t *r);
/* The path without the query string, e.g. "/api/v1/regions". */
const char *http_req_path(const http_req_t *r);
/* A query argument, decoded, or NULL if absent. */
const char *http_req_query(const http_req_t *r, const char *name);
/* The body ("" and 0 if none); NUL-terminated. */
const char *http_req_body(const http_req_t *r, size_t *len);
int http_req_role(const http_req_t *r);
/* The client's IP address as text. */
const char *http_req_address(const http_req_t *r);

/* ---- answers ---- */

/* Answer with `len` bytes of `data` (copied) of media type `type`. */
void http_reply(http_req_t *r, unsigned status, const char *type, const void *data, size_t len);

/* Answer with `body` as JSON; takes the reference (NULL answers 500). */
void http_reply_json(http_req_t *r, unsigned status, json_t *body);

/* Answer {"error": code, "detail": printf(fmt, ...)}. */
void http_reply_error(http_req_t *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Make the request a text/event-stream that http_broadcast writes to.
 * Returns 0, or answers 503 itself and returns NHUB_EFULL when
 * HTTP_STREAMS_MAX are open. */
int http_reply_stream(http_req_t *r);

/* Queue one event (`event` name, one line of `data`) on the stream just
 * opened by http_reply_stream on `r` (its first events). */
void http_stream_send(http_req_t *r, const char *event, const char *data);

/* Queue one event on every open stream. A stream whose client does not
 * read and has HTTP_STREAM_BUFFER_MAX queued is closed. */
void http_broadcast(http_t *self, const char *event, const char *data);

/* Streams open now. */
size_t http_streams(const http_t *self);

#endif
