/*
 * payload.h: the business payloads of schemas/ (protobuf, versioned
 * packages), as the hub and libnhub know them: which types exist, how a
 * payload is decoded within bounds, and the documented rules its fields must
 * keep.
 *
 * The registry is every message type of schemas/nhub/ (the build compiles
 * them with protoc-c and lists their descriptors in build/gen/schemas.c).
 * Type names are full protobuf names with the version as the package's last
 * component: nhub.insured.v2.StatusAnswer is version 2 of package
 * nhub.insured. Which types an item carries for which kind is the
 * catalogue's business (broker/catalog.h); this module answers for the type
 * alone.
 *
 * payload_check() is the one question asked on the hot path. It decodes the
 * bytes as the named type with a bounded allocator (as wire_decode() does
 * for frames), refuses a string holding a NUL at any depth, then walks the
 * message: every string must be UTF-8 without control characters and at
 * most PAYLOAD_TEXT_MAX bytes, and the rules of schemas/README.md apply
 * field by field (ID numbers with their check digit, office codes, months,
 * required fields, counts, conditional requirements). The first broken rule
 * is reported with the field's path (records[3].person.id_number) and what
 * is wrong, never the value: payloads carry personal data.
 *
 * The module holds no mutable state but a registry index built once
 * (pthread_once); every function is safe to call from any thread.
 */
#ifndef NHUB_PAYLOAD_H
#define NHUB_PAYLOAD_H

#include <protobuf-c/protobuf-c.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PAYLOAD_TYPE_MAX 128 /* bytes of a full type name (WIRE_PAYLOAD_TYPE_MAX) */
#define PAYLOAD_TEXT_MAX 1024 /* bytes of any string field, unless a rule says less */
#define PAYLOAD_DEPTH_MAX 8   /* nesting of messages in a payload */
/* Times as ms since the Unix epoch that Beijing-time text (1900..2199) can say. */
#define PAYLOAD_TIME_MIN_MS INT64_C(-2209017600000) /* 1900-01-01 00:00:00 +08:00 */
#define PAYLOAD_TIME_MAX_MS INT64_C(7258089599999)  /* 2199-12-31 23:59:59.999 +08:00 */

/* What payload_check() found. */
typedef enum payload_verdict {
    PAYLOAD_OK = 0,
    PAYLOAD_UNKNOWN = 1,   /* no such type, or no such version of its package */
    PAYLOAD_MALFORMED = 2, /* the bytes do not decode as the type (within bounds) */
    PAYLOAD_INVALID = 3,   /* a field breaks a rule; `why` names it */
} payload_verdict_t;

/* Number of message types in the registry, and the i-th (sorted by full name). */
size_t payload_type_count(void);
const ProtobufCMessageDescriptor *payload_type_at(size_t i);

/* The descriptor of full type name `name`, or NULL if there is none. */
const ProtobufCMessageDescriptor *payload_find(const char *name);

/*
 * The version of type name `name`: N of its package's last component "vN"
 * (1..999), and the length of the name before that component (so
 * "nhub.insured.v2.StatusQuery" gives 2 and 13, the length of
 * "nhub.insured."). Returns 0, or NHUB_EINVAL if the name has no such
 * component.
 */
int payload_type_version(const char *name, unsigned *version, size_t *prefix_len);

/*
 * Check `len` bytes of `data` as a payload of type `type`. Returns the
 * verdict; on anything but PAYLOAD_OK, `why` (capacity `whycap`; may be
 * NULL/0) gets one line naming the type and the field, e.g.
 *   payload: unknown type nhub.insured.v9.StatusQuery (package nhub.insured has v1, v2)
 *   payload: does not decode as nhub.push.v1.Feedback
 *   payload: nhub.insured.v1.StatusQuery person.id_number: wrong check digit
 * If `out` is not NULL and the verdict is PAYLOAD_OK, *out gets the decoded
 * message (caller owns it, free with payload_free()); otherwise *out is NULL.
 */
payload_verdict_t payload_check(const char *type, const void *data, size_t len,
                                ProtobufCMessage **out, char *why, size_t whycap);

/*
 * Decode `len` bytes as a message of `desc` with the bounds payload_check()
 * uses, without the rules. Returns 0 and sets *out (free with
 * payload_free()), or NHUB_EMALFORMED / NHUB_ETOOBIG.
 */
int payload_decode(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                   ProtobufCMessage **out);

/* Free a message from payload_check() or payload_decode(); accepts NULL, sets *msg to NULL. */
void payload_free(ProtobufCMessage **msg);

/* Bytes one value of field `f` takes in a protobuf-c struct (an entry of its array if repeated). */
size_t payload_elem_size(const ProtobufCFieldDescriptor *f);

/*
 * The value of `msg`'s enum field number `number`, or -1 if the message has
 * no such field or it is not a singular enum. Used for a feedback's stage.
 */
int payload_enum_field(const ProtobufCMessage *msg, unsigned number);

/*
 * For the unit test: 0 if every rule of the table names a field of some
 * version of its type and no type nests deeper than PAYLOAD_DEPTH_MAX (so
 * none is recursive); otherwise NHUB_EINVAL (NHUB_ENOMEM if the registry
 * could not be built) with `why` naming the rule or the type.
 */
int payload_self_check(char *why, size_t whycap);

/* The field-level rules, for translations and tests. */

/* 1 if `s` is an 18-character 公民身份号码 with a real birth date and its check digit. */
int payload_id_number_valid(const char *s);
/* The check character ('0'..'9' or 'X') of the first 17 digits of `s`, or 0 if they are not digits. */
char payload_id_check_char(const char *s);
/* 1 if `s` is YYYYMM with a year 1900..2199 and a month 01..12. */
int payload_month_valid(const char *s);

/*
 * Beijing time (UTC+8, no daylight saving) as YYYYMMDDhhmmss, the text
 * form provincial systems exchange, to and from ms since the Unix epoch.
 * payload_beijing_parse() returns 0, or NHUB_EINVAL if `s` is not 14 digits
 * naming a real second of 1900..2199. payload_beijing_format() writes 15
 * bytes (with the NUL) into `out`, dropping the milliseconds.
 */
int payload_beijing_parse(const char *s, int64_t *ms);
void payload_beijing_format(int64_t ms, char out[15]);

#ifdef __cplusplus
}
#endif
#endif
