/*
 * pbjson.h: business payloads as JSON, for programs that speak JSON to
 * provincial systems (nhub-adapter's local API, tools). One generic
 * converter over protobuf-c descriptors, no code per type, following the
 * proto3 JSON mapping (https://protobuf.dev/programming-guides/json/);
 * schemas/README.md, "JSON form", shows it on a real payload.
 *
 * The mapping, as this module keeps it:
 * - field names: output uses lowerCamelCase (id_number -> idNumber, what
 *   protoc calls json_name); input accepts that or the .proto name, but not
 *   both for one field. A key naming no field is refused with its name.
 * - int32, sint32, sfixed32, uint32, fixed32: output a JSON number; input a
 *   number with an integral value (1, 1.0, 1e3) or a decimal string ("-12").
 * - int64, sint64, sfixed64, uint64, fixed64: output a decimal string
 *   ("9007199254740993": beyond 2^53 a JSON number loses digits); input the
 *   same forms as 32-bit integers. A value outside the type's range is
 *   refused, naming the field.
 * - float, double: a JSON number, or the strings "NaN", "Infinity",
 *   "-Infinity"; input also accepts a decimal string. A float beyond its
 *   range is refused.
 * - bool: true or false.
 * - string: a JSON string; one holding a NUL is refused.
 * - bytes: standard base64 with padding on output; input accepts standard
 *   or URL-safe, padded or not, and refuses anything else.
 * - enum: the value's name on output (its number if the number has no
 *   name); input a name of the enum (an unknown name is refused) or any
 *   int32 number (proto3 enums are open).
 * - repeated: a JSON array (null = empty; a null element is refused).
 * - message: a JSON object; null = absent.
 * - oneof: at most one member set, else refused; a set member is written
 *   even when it holds its type's default value.
 * - a field holding its proto3 default (0, "", false, empty, absent) is left
 *   out of the output; JSON null on input means that default.
 * - map fields and proto2 labels (optional with presence, required) are not
 *   supported: no schema has them. Input naming such a field is refused;
 *   pbjson_from_message() returns NULL for a message where one holds a
 *   value, and pbjson_unpack() says which field it is.
 * - messages nest at most PBJSON_DEPTH_MAX deep below the top (as
 *   payload_check() allows); deeper input is refused.
 *
 * Errors name the field's path in JSON names, e.g.
 *   records[3].person.idNumber: expected a string
 * and never the value: payloads carry personal data. An unknown key is
 * named as given (at most 64 bytes of it, control characters as '?').
 *
 * The module has no state; every function is safe from any thread (jansson
 * 2.14 and protobuf-c are). It is built into libnhubjson.a, not into
 * libnhubcommon or libnhub, so only programs that want JSON link jansson
 * for it.
 */
#ifndef NHUB_PBJSON_H
#define NHUB_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include <stddef.h>
#include <stdint.h>

#include "payload.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Messages nest at most this deep below the top-level message (which is depth 0). */
#define PBJSON_DEPTH_MAX PAYLOAD_DEPTH_MAX

/*
 * Build a new message of `desc` from JSON object `j` per the protobuf JSON
 * mapping (above). Returns 0 and sets *out (caller owns it, free with
 * protobuf_c_message_free_unpacked(*out, NULL)); or NHUB_EINVAL (bad input:
 * `j` NULL or not an object, a wrong type, value or name) with `why`
 * naming the field path in JSON names, e.g.
 * "records[3].person.idNumber: expected a string", never the value; or
 * NHUB_ENOMEM. On error *out is NULL. `why` (capacity `whycap`) may be
 * NULL/0; it is "" on success.
 */
int pbjson_to_message(const ProtobufCMessageDescriptor *desc, const json_t *j,
                      ProtobufCMessage **out, char *why, size_t whycap);

/*
 * The JSON object of message `m` (a new reference: caller owns it, release
 * with json_decref()), or NULL if out of memory, if `m` is NULL, nested
 * deeper than PBJSON_DEPTH_MAX, holds a string that is not UTF-8, or has a
 * field this module does not support (a map holding entries, any proto2
 * field). Unknown fields protobuf-c kept while decoding are not written;
 * pbjson_unpack() refuses all of these with a reason.
 */
json_t *pbjson_from_message(const ProtobufCMessage *m);

/*
 * JSON -> packed protobuf bytes: pbjson_to_message(), then packed. Returns
 * 0 and sets *bytes (malloc'd, caller frees; not NULL even when *len is 0)
 * and *len; or the errors of pbjson_to_message(), with *bytes NULL and
 * *len 0.
 */
int pbjson_pack(const ProtobufCMessageDescriptor *desc, const json_t *j, uint8_t **bytes,
                size_t *len, char *why, size_t whycap);

/*
 * Packed protobuf bytes -> JSON. The bytes are decoded with payload_decode()
 * (bounded memory, no NUL in a string), then must carry only fields `desc`
 * has, nest at most PBJSON_DEPTH_MAX deep and use no unsupported field.
 * Returns 0 and sets *out (a new reference, release with json_decref());
 * or NHUB_EINVAL with `why` naming the type or field (bytes that do not
 * decode: "does not decode as nhub.push.v1.Feedback"; a field number the type
 * lacks: "handledBy: field number 9 is not in nhub.common.v1.Office"; a
 * string that is not UTF-8), or NHUB_ENOMEM. protobuf-c does not tell a
 * decode that ran out of memory from bytes that do not decode: both are
 * NHUB_EINVAL. On error *out is NULL.
 */
int pbjson_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *bytes, size_t len,
                  json_t **out, char *why, size_t whycap);

#ifdef __cplusplus
}
#endif
#endif
