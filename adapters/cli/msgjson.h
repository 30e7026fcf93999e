/*
 * msgjson.h: the JSON form of a message, as the platform submits it (the
 * API's POST body and a spool file share it) and as a delivery is handed
 * to it.
 *
 * Submission:
 *   {"to": "440000" | "*", "item": "SI-VERIFY-002", "kind": "request",
 *    "type": "nhub.insured.v1.StatusQuery", "payload": {...},
 *    "correlationId": "HEX32"?, "deadline": MS | "2026-12-08T11:38:03Z"?,
 *    "msgId": "HEX32"?}
 * The payload is converted to the protobuf type named by "type"
 * (proto/pbjson.h) and checked with payload_check, so a broken rule is
 * reported here, with the field's JSON path, before the hub would refuse
 * it. Errors name the field and never quote its value.
 */
#ifndef NHUB_ADAPTER_MSGJSON_H
#define NHUB_ADAPTER_MSGJSON_H

#include "nhub.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* A parsed submission. Owns `payload` (free with msgjson_clear). */
typedef struct msgjson {
    char to[8];
    char item[65];
    int kind;
    char type[129];
    uint8_t *payload;
    size_t payload_len;
    int has_correlation;
    uint8_t correlation[NHUB_MSG_ID_LEN];
    int64_t deadline_ms;
    int has_msg_id;
    uint8_t msg_id[NHUB_MSG_ID_LEN];
    uint8_t digest[32]; /* SHA-256 over every field but msgId, payload as packed */
} msgjson_t;

/* Why a submission was refused: the HTTP status it deserves, the field, the text. */
typedef struct msgjson_err {
    unsigned status; /* 400 malformed or wrong field, 413 too large, 422 breaks a payload rule */
    char field[160]; /* JSON path: "to", "payload.person.idNumber"; "" for the whole body */
    char detail[400];
} msgjson_err_t;

/*
 * Parse and check `body` (a JSON object) into *out. `max_payload` bounds
 * the packed payload. Returns 0, or NHUB_EINVAL with *err filled (out is
 * cleared), or NHUB_ENOMEM.
 */
int msgjson_parse(const json_t *body, size_t max_payload, msgjson_t *out, msgjson_err_t *err);

/* Free what *m owns and zero it. */
void msgjson_clear(msgjson_t *m);

/* *m as an nhub_message_t (borrowing from *m). */
void msgjson_message(const msgjson_t *m, nhub_message_t *out);

/*
 * The JSON of a delivery for the platform: msgId, source, destination,
 * item, kind, type, correlationId (or null), createdMs, deadlineMs, seq,
 * dseq, keyId (or null), and payload (the JSON of the payload), or, if it
 * does not convert, payloadBase64 and payloadError. A new reference or NULL.
 */
json_t *msgjson_delivery(const nhub_delivery_t *d);

/* 32 hex digits into 16 bytes: 0, or -1. */
int msgjson_hex16(const char *hex, uint8_t out[NHUB_MSG_ID_LEN]);

#endif
