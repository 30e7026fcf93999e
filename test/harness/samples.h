/*
 * samples.h: valid business payloads of every schema type, and a way to
 * build or change a payload by field path, for tests and benchmarks.
 *
 * A path names a field from the payload's top: "person.id_number",
 * "records[0].status", "records[+].status" (the [+] appends an entry).
 * Values are text: a string as is, a number in decimal, an enum by its
 * value's name (STAGE_DONE) or number, a bool as true/false, bytes as hex.
 * Messages on the way are created as needed. Everything is malloc'd so that
 * protobuf_c_message_free_unpacked(m, NULL) frees it (sample_free()).
 */
#ifndef NHUB_TEST_SAMPLES_H
#define NHUB_TEST_SAMPLES_H

#include <protobuf-c/protobuf-c.h>

#include <stddef.h>
#include <stdint.h>

/* The payload types samples exist for: every type the catalogue names. */
extern const char *const sample_types[];
extern const size_t sample_type_count;

/* A new, valid message of `type`, or NULL if there is no sample for it. Free with sample_free(). */
ProtobufCMessage *sample_new(const char *type);

/* An empty message of `type` (a registered payload type), or NULL. */
ProtobufCMessage *sample_empty(const char *type);

/* Set `path` to `value` (see the top). Returns 0, or -1 if the path or value does not fit. */
int sample_set(ProtobufCMessage *m, const char *path, const char *value);

/* Clear `path`: a string to "", a number to 0, a message to absent, a list to empty. */
int sample_clear(ProtobufCMessage *m, const char *path);

/* Encode `m` into a new buffer (caller frees) and set *len. */
uint8_t *sample_pack(const ProtobufCMessage *m, size_t *len);

/* The sample of `type`, encoded (caller frees); NULL if there is none. */
uint8_t *sample_bytes(const char *type, size_t *len);

void sample_free(ProtobufCMessage **m);

#endif
