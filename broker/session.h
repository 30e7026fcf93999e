/*
 * session.h: the hub's table of adapter connections, keyed by the ZeroMQ
 * routing id the ROUTER socket gives each connection.
 *
 * A session exists only after a valid HELLO; frames from a routing id with
 * no session are answered NACK HELLO_REQUIRED without creating state, so a
 * peer cannot grow this table by talking. The table is bounded (`max`).
 * Sessions are owned by the table; pointers stay valid until
 * session_remove or session_table_destroy.
 */
#ifndef NHUB_SESSION_H
#define NHUB_SESSION_H

#include <stddef.h>
#include <stdint.h>

#define SESSION_RID_MAX 255
#define SESSION_ACCEPT_MAX 64

typedef struct session {
    uint8_t rid[SESSION_RID_MAX];
    size_t rid_len;
    int region; /* index into the hub's region table */
    uint8_t stream_id[16];
    uint32_t credit;
    int64_t last_seen_ms; /* monotonic */
    int welcomed;         /* the WELCOME to its last HELLO was sent: deliveries may follow */
    uint32_t max_frame;   /* largest DELIVER body it takes (its HELLO); 0 = the hub's limit */
    char *accepted[SESSION_ACCEPT_MAX]; /* owned strings */
    size_t n_accepted;
    struct session *next; /* hash chain, private to session.c */
} session_t;

typedef struct session_table session_table_t;

/* A table for at most `max` sessions; NULL when out of memory. */
session_table_t *session_table_new(size_t max);

/* Free every session; accepts NULL; sets *self to NULL. */
void session_table_destroy(session_table_t **self);

/* The session of routing id `rid`, or NULL. */
session_t *session_find(session_table_t *self, const void *rid, size_t rid_len);

/*
 * The session of `rid`, created (zeroed, region -1) if absent. Returns NULL
 * when the table is full or out of memory, or rid_len is 0 or too long.
 */
session_t *session_get_or_add(session_table_t *self, const void *rid, size_t rid_len);

/* Remove and free `s` (must belong to the table). */
void session_remove(session_table_t *self, session_t *s);

/* Replace the accepted payload patterns of `s` with copies of `pats`.
 * Returns 0 or NHUB_ENOMEM / NHUB_ETOOBIG (more than SESSION_ACCEPT_MAX). */
int session_set_accepted(session_t *s, char *const *pats, size_t n);

/* Number of sessions. */
size_t session_count(const session_table_t *self);

/*
 * Call fn for every session; fn may remove the session it is given (and no
 * other). Stops early when fn returns non-zero.
 */
void session_foreach(session_table_t *self, int (*fn)(void *arg, session_t *s), void *arg);

#endif
