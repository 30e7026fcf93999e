/*
 * api.h: the daemon's local HTTP JSON API (libmicrohttpd in external mode
 * on an epoll descriptor, run by the daemon's loop; no thread).
 *
 *   POST /api/v1/messages                submit; 202 once in the outbox
 *   POST /api/v1/messages:batch          submit up to 500 (a JSON array) with one
 *                                        commit; 202 once all are in the outbox
 *   GET  /api/v1/messages/MSGID          a submitted message and its case
 *   GET  /api/v1/inbox?wait=S&max=N      deliveries (long-poll up to S seconds)
 *   POST /api/v1/inbox/MSGID/confirm     the platform has taken a delivery
 *   GET  /api/v1/status                  connection, outbox, inbox
 *
 * With api.token_file every request needs "Authorization: Bearer TOKEN".
 * Errors are JSON: {"error": CODE, "field": PATH (if one is to blame),
 * "detail": TEXT}. A long-poll with nothing to hand out parks its
 * connection (MHD_suspend_connection); the loop resumes it when a delivery
 * arrives or its time is up, and only then is it answered.
 */
#ifndef NHUB_ADAPTER_API_H
#define NHUB_ADAPTER_API_H

#include "daemon.h"

#include <stdint.h>

typedef struct api api_t;

/*
 * Listen on cfg->api_addr:api_port. Returns 0 and *out, or NHUB_EIO with
 * `err`. Destroy with api_destroy.
 */
int api_new(daemon_t *d, api_t **out, char *err, size_t errcap);

/* Answer parked long-polls (empty), stop listening, free. Accepts NULL; NULLs *self. */
void api_destroy(api_t **self);

/* "http://127.0.0.1:PORT" */
const char *api_url(const api_t *self);

/* The epoll descriptor to wait on. */
int api_fd(const api_t *self);

/* ms until the API needs a turn (-1 = none). */
int64_t api_timeout_ms(const api_t *self);

/* One turn: wake long-polls that can be answered (deliveries ready, time up), run the server. */
void api_run(api_t *self);

#endif
