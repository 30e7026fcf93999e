/*
 * catalog.h: the service-item catalogue (schemas/catalog.yaml) and the rule
 * it enforces on every message.
 *
 * "Same item, same standard, same code": every envelope names a service item
 * (a business matter handled across regions, e.g. SI-VERIFY-001, pension
 * insurance relation transfer verification). The catalogue says, per item,
 * which kinds of message it carries, which regions may start an exchange
 * (senders) and which may handle one (receivers), and the time limit of its
 * cases. catalog_check() is asked once per message on the hub's hot path.
 *
 * The direction rule. request, push and notice go forward, from a sender to a
 * receiver. response and feedback are answers and flow back, from a receiver
 * to a sender. A broadcast (destination "*") is allowed for notices only, and
 * then only the item's receivers get it: the hub asks catalog_may_receive()
 * for each region it would fan out to.
 *
 * The file format is described at the top of schemas/catalog.yaml. Loading
 * checks what the schema cannot say: item codes are 1..CATALOG_CODE_MAX
 * printable ASCII without spaces and unique; names are non-empty without
 * control characters; kinds are known and not repeated; a region list is
 * either ["*"] (every region) or six-digit codes (GB/T 2260) without repeats.
 * Every error is one line "FILE:LINE:COLUMN: message" pointing at the
 * offending value. The catalogue does not know which regions the hub has
 * configured; checking that listed codes exist is the caller's business.
 *
 * Invariants after a successful load:
 *   - 1 <= catalog_count() <= CATALOG_ITEMS_MAX, codes unique;
 *   - items are sorted by code and region lists by value, so every lookup is
 *     a binary search: catalog_check() costs O(log items + log regions);
 *   - the catalogue is immutable; a reload builds a new one beside the old
 *     and swaps. It keeps no global state, so concurrent readers are safe.
 *
 * Region codes match exactly: a province code does not admit its cities
 * (440000 does not admit 440100). A city that connects directly must be
 * listed, or the list must be "*".
 */
#ifndef NHUB_CATALOG_H
#define NHUB_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CATALOG_CODE_MAX 64       /* bytes of an item code: printable ASCII, no spaces */
#define CATALOG_NAME_MAX 127      /* bytes of an item name (UTF-8, e.g. Chinese) */
#define CATALOG_ITEMS_MAX 4096    /* items in one catalogue */
#define CATALOG_REGIONS_MAX 512   /* codes in one senders or receivers list; beyond, use "*" */
#define CATALOG_REGION_CODE_LEN 6 /* GB/T 2260: exactly six ASCII digits */
#define CATALOG_VERSION 1         /* the only format version understood */
#define CATALOG_BROADCAST "*"     /* destination of a broadcast; in a list: every region */
#define CATALOG_TYPES_MAX 8       /* payload types (versions) named for one kind of an item */

/* Message kinds: the values of nhub.wire.v1.Kind (proto/nhub_wire.proto). */
enum catalog_kind {
    CATALOG_KIND_REQUEST = 1,  /* forward: sender -> receiver */
    CATALOG_KIND_RESPONSE = 2, /* answer: receiver -> sender */
    CATALOG_KIND_PUSH = 3,     /* forward */
    CATALOG_KIND_FEEDBACK = 4, /* answer */
    CATALOG_KIND_NOTICE = 5,   /* forward; the only kind that may be broadcast */
};

/* The loaded catalogue. Opaque; made by catalog_load(), freed by catalog_destroy(). */
typedef struct catalog catalog_t;

/*
 * Load and check the catalogue file at `path`.
 *
 * On success sets `*out` to a new catalogue (caller owns it, free with
 * catalog_destroy()) and `err` to "". On failure sets `*out` to NULL (when
 * `out` is not NULL) and writes a one-line message into `err` (capacity
 * `errcap`; may be NULL/0). Returns 0, or
 *   NHUB_EIO      the file cannot be opened or read;
 *   NHUB_ECONFIG  the file is not valid YAML, breaks a rule above, or has a
 *                 version other than CATALOG_VERSION;
 *   NHUB_EINVAL   `path` or `out` is NULL;
 *   NHUB_ENOMEM   an allocation failed.
 */
int catalog_load(const char *path, catalog_t **out, char *err, size_t errcap);

/*
 * As catalog_load(), from `len` bytes of `text` (need not be NUL-terminated);
 * `name` stands for the file name in messages. For tests and fuzzing. Never
 * returns NHUB_EIO.
 */
int catalog_load_string(const char *name, const char *text, size_t len, catalog_t **out, char *err,
                        size_t errcap);

/* Free `*self` and set it to NULL. Accepts NULL and a pointer to NULL. */
void catalog_destroy(catalog_t **self);

/* Number of items (0 for NULL). */
size_t catalog_count(const catalog_t *c);

/*
 * May a message of item `item` and kind `kind` go from `source` to
 * `destination`?
 *
 * `kind` is a wire value 1..5 (enum catalog_kind). `source` is the
 * authenticated sending region; `destination` is a region code or "*". NULL
 * strings are treated as empty (and refused). The checks, in order: the item
 * is known, the kind is known and allowed by the item, a broadcast is a
 * notice, the source is a six-digit code, the destination is a six-digit code
 * or "*", then the direction rule (forward kinds: source is a sender and
 * destination a receiver; answers: source is a receiver and destination a
 * sender). A broadcast notice only needs its source to be a sender; choosing
 * the regions that get it is catalog_may_receive()'s job. Whether the source
 * may address itself, and whether the destination is connected, are for the
 * caller to decide.
 *
 * Returns 0 if allowed (and sets `why` to ""), NHUB_EREFUSED if not, or
 * NHUB_EINVAL if `c` is NULL. On refusal `why` (capacity `whycap`; may be
 * NULL/0) gets one line naming the rule, e.g.
 *   catalogue: unknown item SI-NOPE
 *   catalogue: item SI-VERIFY-001 does not allow kind push
 *   catalogue: broadcast is for notices only (item SI-PUSH-001, kind push, from 440000)
 *   catalogue: region 650000 is not a sender of item SI-X (kind request)
 *   catalogue: region 650000 is not a receiver of item SI-X (kind request)
 *   catalogue: response of item SI-X must go from a receiver (440000 is not one)
 *   catalogue: feedback of item SI-X must go to a sender (440000 is not one)
 * The text holds only the item code, the kind and region codes (strings from
 * the wire are cut to CATALOG_CODE_MAX bytes, anything but printable ASCII
 * shown as '?'); never payload data.
 */
int catalog_check(const catalog_t *c, const char *item, int kind, const char *source,
                  const char *destination, char *why, size_t whycap);

/*
 * 1 if `region` is a receiver of item `item` (so it gets the item's broadcast
 * notices), else 0: also for an unknown item, a malformed code or a NULL
 * argument. Whether the item allows broadcasting at all is catalog_check()'s
 * question, asked once before the fan-out.
 */
int catalog_may_receive(const catalog_t *c, const char *item, const char *region);

/*
 * The time limit of the cases of item `item` in milliseconds (time_limit in
 * the file, 1s..365d), or 0 if the item has none or is unknown.
 */
int64_t catalog_time_limit_ms(const catalog_t *c, const char *item);

/* The times of an item's cases, in milliseconds; 0 where the file sets none. */
typedef struct catalog_times {
    int64_t time_limit_ms;   /* time_limit: from the case's opening to overdue (督办) */
    int64_t reminder_ms;     /* reminder: from the opening to the reminder (催办), < time_limit */
    int64_t grace_ms;        /* grace: from overdue to expiry with the hub's final answer */
    int64_t answer_valid_ms; /* answer_valid: how long an answer holds (结果效力) */
} catalog_times_t;

/*
 * The times of item `item` into *out. Returns 0, or NHUB_ENOTFOUND for an
 * unknown item (and *out all 0).
 */
int catalog_times(const catalog_t *c, const char *item, catalog_times_t *out);

/*
 * 1 if item `item` names its payload types (so the hub decodes and checks
 * every payload), 0 if its payloads are opaque or the item is unknown.
 */
int catalog_item_typed(const catalog_t *c, const char *item);

/*
 * May a message of item `item` and kind `kind` carry a payload of type
 * `type`? For an item that names its types, `type` must be one of those of
 * the kind; an opaque item takes any. Returns 0 if allowed, NHUB_EREFUSED
 * with `why` (capacity `whycap`) naming the item, the kind and what it
 * carries instead, e.g.
 *   catalogue: item SI-VERIFY-002 does not carry nhub.push.v1.Application as request
 *   (it carries nhub.insured.v1.StatusQuery, nhub.insured.v2.StatusQuery)
 * A type name from the wire is shown only if it is a known type.
 */
int catalog_check_payload(const catalog_t *c, const char *item, int kind, const char *type,
                          char *why, size_t whycap);

/*
 * Priority classes of delivery (`priority` of an item): a verification
 * someone waits for at a counter goes before a registration sync batch.
 * The hub shares each region's deliveries between the classes by weight
 * and, within a class, between the sending regions (broker/dispatch.h).
 */
enum catalog_priority {
    CATALOG_PRIORITY_NORMAL = 0, /* the default */
    CATALOG_PRIORITY_URGENT = 1,
    CATALOG_PRIORITY_BULK = 2,
};
#define CATALOG_PRIORITIES 3

/* The priority class of item `item`; CATALOG_PRIORITY_NORMAL for an unknown
 * item or a NULL catalogue (development mode). */
int catalog_priority(const catalog_t *c, const char *item);

/* "normal", "urgent", "bulk", or "unknown". */
const char *catalog_priority_name(int priority);

/*
 * The name of item `item` (UTF-8, for dashboards and logs), or NULL if the
 * item is unknown. Borrowed from `c`, valid until catalog_destroy().
 */
const char *catalog_item_name(const catalog_t *c, const char *item);

#ifdef __cplusplus
}
#endif
#endif
