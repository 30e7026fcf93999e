/*
 * translate.h: payload translation between versions of a schema package,
 * so the hub never hands a region a version it did not announce (DESIGN.md
 * section 6) and still delivers what it can.
 *
 * The registered translations, both directions each:
 *   nhub.insured.v1 <-> v2   compatible: every message of the package
 *                            maps field for field. Down, the fields v1 does
 *                            not have are dropped (include_periods,
 *                            periods, last_paid_month); up, they are empty.
 *   nhub.push.v1 <-> v2      Application as is; Feedback converts field 6,
 *                            handled_time (Beijing-time text) <-> handled_ms
 *                            (ms since the epoch). Down loses handler_name
 *                            and the milliseconds.
 * A translation that drops something says so (`lossy`), so the hub can
 * journal it. Types of other packages, or versions with no translation
 * registered, are not translated: the message waits for the region to
 * announce its version (held "payload_type").
 *
 * Pure functions over the payload registry (proto/payload.h); no state.
 */
#ifndef NHUB_TRANSLATE_H
#define NHUB_TRANSLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The type `type` should be translated to for a receiver that accepts the
 * payload types `patterns[0..n)` (HELLO.accepted_payloads; n = 0 accepts
 * everything), or NULL if none: the same message name in the highest
 * version the receiver accepts that a translation from `type` is registered
 * for. Returns NULL too when the receiver accepts `type` itself (nothing to
 * do). The result is a registry name (static storage).
 */
const char *translate_target(const char *type, char *const *patterns, size_t n);

/*
 * Translate `len` bytes of `data`, a valid payload of type `from`, into a
 * payload of type `to`. Returns 0 and sets *out (caller frees with free())
 * and *out_len, and *lossy to whether anything of the payload could not be
 * carried over; NHUB_ENOTFOUND if no translation from `from` to `to` is
 * registered; NHUB_EMALFORMED if the bytes do not decode as `from`;
 * NHUB_ENOMEM.
 */
int translate_payload(const char *from, const char *to, const void *data, size_t len,
                      uint8_t **out, size_t *out_len, bool *lossy);

#endif
