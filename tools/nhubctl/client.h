/*
 * client.h: nhubctl's side of the hub's HTTP API (v1; README, "Operating the hub").
 *
 * One client is one base URL, one token and one timeout; each call is one
 * request and one parsed answer. Every outcome is sorted into the classes
 * nhubctl's exit status reports, so a script can tell "the hub said no"
 * from "there is no hub" from "that is not a hub":
 *
 *   CTL_OK           2xx with a JSON object
 *   CTL_REFUSED      4xx (not 401/403) with the API's {"error","detail"}
 *   CTL_UNREACHABLE  no answer: connection refused, timeout, name not found
 *   CTL_AUTH         401 or 403
 *   CTL_NOT_API      anything else: a body that is not a JSON object, 5xx,
 *                    a redirect, an error body without "error"
 *
 * The token only ever goes into the Authorization header of requests to
 * the configured URL (redirects are not followed); it is never printed,
 * never put in a URL, and is wiped from memory when the client is destroyed.
 */
#ifndef NHUBCTL_CLIENT_H
#define NHUBCTL_CLIENT_H

#include <jansson.h>
#include <stddef.h>

/* nhubctl's exit statuses; the values are documented in --help. */
enum ctl_status {
    CTL_OK = 0,
    CTL_REFUSED = 1,
    CTL_USAGE = 2,
    CTL_UNREACHABLE = 3,
    CTL_AUTH = 4,
    CTL_NOT_API = 5,
};

/* The largest answer read; a bigger one is CTL_NOT_API. The biggest the
 * API sends (1,000 cases, or 32 regions with their counters) is far less. */
#define CTL_BODY_MAX ((size_t)64 << 20)

typedef struct ctl_client ctl_client_t;

/* What one request returned. Fill with ctl_client_get/post, release with
 * ctl_reply_clear. */
typedef struct ctl_reply {
    enum ctl_status status;
    long http_code; /* 0 when no answer came */
    json_t *json;   /* the parsed body when it is a JSON object, else NULL; owned */
    char *body;     /* the body exactly as received, NUL-terminated; owned */
    size_t body_len;
    char message[1024]; /* for every status but CTL_OK: one line saying what happened */
} ctl_reply_t;

/*
 * A client for the hub at `url` (http:// or https://, no trailing path
 * needed; a trailing '/' is dropped). `token` may be NULL or "" (no
 * Authorization header); it is copied. `token_source` says where the
 * token came from ("--token-file /etc/nhub/op.token", "NHUB_TOKEN"), for
 * messages; NULL when there is none. `timeout_ms` bounds each whole
 * request, connection included. Returns NULL when out of memory or when
 * libcurl cannot start; the caller owns the client, destroy it with
 * ctl_client_destroy.
 */
ctl_client_t *ctl_client_new(const char *url, const char *token, const char *token_source,
                             long timeout_ms);

/* Destroy the client (wiping its copy of the token) and set *self_p to NULL.
 * Accepts NULL and a NULL *self_p. */
void ctl_client_destroy(ctl_client_t **self_p);

/* For https: trust the CA certificates of PEM file `path` (copied) instead
 * of the system's. Returns 0, or -1 when out of memory. */
int ctl_client_set_cacert(ctl_client_t *self, const char *path);

/* The base URL in use (borrowed, valid while the client lives). */
const char *ctl_client_url(const ctl_client_t *self);

/*
 * GET `path` (starting "/api/v1/...", its parts already escaped with
 * ctl_client_escape) with `query` appended when it is not NULL or "".
 * Fills *reply (cleared first); returns reply->status.
 */
enum ctl_status ctl_client_get(ctl_client_t *self, const char *path, const char *query,
                               ctl_reply_t *reply);

/*
 * POST the JSON object `body` (borrowed; NULL sends "{}") to `path`. Fills
 * *reply (cleared first); returns reply->status.
 */
enum ctl_status ctl_client_post(ctl_client_t *self, const char *path, const json_t *body,
                                ctl_reply_t *reply);

/*
 * `text` percent-escaped for a path segment or a query value, into `out`
 * (capacity `cap`). Returns 0, or -1 when it does not fit (out is then "").
 */
int ctl_client_escape(const char *text, char *out, size_t cap);

/* Free what *reply holds and zero it; accepts a zeroed reply. */
void ctl_reply_clear(ctl_reply_t *reply);

#endif
