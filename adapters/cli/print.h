/*
 * print.h: how nhub-adapter writes a received message on stdout.
 *
 * Text: one key=value line without the payload (values are codes and
 * numbers; item and payload_type are printable ASCII without spaces, as the
 * wire protocol requires). JSON: one object per line with the payload in
 * base64, written by hand (no JSON library is needed for output this
 * small). Neither form ever goes to the log.
 */
#ifndef NHUB_ADAPTER_PRINT_H
#define NHUB_ADAPTER_PRINT_H

#include "nhub.h"

#include <stddef.h>
#include <stdio.h>

/* Write `d` as one text line (key_id=- if unsigned). Returns 0, or -1 if the stream failed. */
int print_delivery_text(FILE *out, const nhub_delivery_t *d);

/*
 * Write `d` as one JSON object on one line: msg_id (hex), seq, dseq, source,
 * destination, item, kind (name), payload_type, created_ms, deadline_ms,
 * correlation_id (hex or null), key_id (the sender's signing key, or null),
 * signature_b64 (the sender's signature over the envelope, or null),
 * payload_b64. Returns 0, or -1 if the stream failed.
 */
int print_delivery_json(FILE *out, const nhub_delivery_t *d);

/* Write `s` as a JSON string (quotes included), escaping what JSON requires. */
void print_json_string(FILE *out, const char *s);

/* Write `len` bytes as standard base64 with padding (RFC 4648 section 4). */
void print_base64(FILE *out, const void *data, size_t len);

/*
 * Parse 32 hex digits into 16 bytes. Returns 0, or -1 if `hex` is not
 * exactly 32 hex digits.
 */
int parse_hex16(const char *hex, uint8_t out[16]);

#endif
