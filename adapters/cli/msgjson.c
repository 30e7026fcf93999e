/*
 * msgjson.c: submissions from JSON, deliveries to JSON (see msgjson.h).
 */
#include "msgjson.h"

#include "nhub_err.h"
#include "payload.h"
#include "pbjson.h"
#include "wire.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int refuse(msgjson_err_t *err, unsigned status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(msgjson_err_t *err, unsigned status, const char *field, const char *fmt, ...)
{
    err->status = status;
    snprintf(err->field, sizeof err->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
    return NHUB_EINVAL;
}

int msgjson_hex16(const char *hex, uint8_t out[NHUB_MSG_ID_LEN])
{
    if (!hex || strlen(hex) != 2 * NHUB_MSG_ID_LEN)
        return -1;
    for (size_t i = 0; i < NHUB_MSG_ID_LEN; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            int c = tolower((unsigned char)hex[2 * i + (size_t)k]);
            if (c >= '0' && c <= '9')
                v = v * 16 + (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v = v * 16 + (unsigned)(c - 'a' + 10);
            else
                return -1;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

static const char *const known_fields[] = {
    "to", "item", "kind", "type", "payload", "correlationId", "deadline", "msgId", NULL};

/* A required (or optional, `req` 0) string field; NULL if absent (and refused if required). */
static const char *string_field(const json_t *body, const char *name, int req, msgjson_err_t *err,
                                int *rc)
{
    const json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v)) {
        if (req)
            *rc = refuse(err, 400, name, "%s is required", name);
        return NULL;
    }
    if (!json_is_string(v)) {
        *rc = refuse(err, 400, name, "%s must be a string", name);
        return NULL;
    }
    return json_string_value(v);
}

/* "2026-12-08T11:38:03Z" or with ".123Z" or "+08:00": ms since the epoch; 0 or -1. */
static int parse_rfc3339(const char *s, int64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -1;
    int64_t frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 3)
                frac = frac * 10 + (*p - '0');
        if (!digits)
            return -1;
        for (; digits < 3; digits++)
            frac *= 10;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || strlen(p) != 6)
            return -1;
        off = (hh * 60 + mm) * 60000LL * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *ms = (int64_t)t * 1000 + frac - off;
    return 0;
}

/* "person.id_number" -> "payload.person.idNumber" (the JSON path of a proto path). */
static void json_path_of(const char *proto_path, size_t len, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "payload.");
    int up = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        char c = proto_path[i];
        if (c == '_') {
            up = 1;
            continue;
        }
        out[o++] = up ? (char)toupper((unsigned char)c) : c;
        up = 0;
    }
    out[o < cap ? o : cap - 1] = 0;
}

static void digest(const msgjson_t *m, uint8_t out[32])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned n = 0;
    char head[512];
    int len = snprintf(head, sizeof head, "nhub-adapter-submission-v1\n%s\n%s\n%d\n%s\n%lld\n",
                       m->to, m->item, m->kind, m->type, (long long)m->deadline_ms);
    if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(c, head, (size_t)len) ||
        !EVP_DigestUpdate(c, m->has_correlation ? m->correlation : (const uint8_t *)"-",
                          m->has_correlation ? NHUB_MSG_ID_LEN : 1) ||
        !EVP_DigestUpdate(c, m->payload ? m->payload : (const uint8_t *)"", m->payload_len) ||
        !EVP_DigestFinal_ex(c, out, &n))
        memset(out, 0, 32);
    EVP_MD_CTX_free(c);
}

int msgjson_parse(const json_t *body, size_t max_payload, msgjson_t *out, msgjson_err_t *err)
{
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    int rc = 0;
    if (!json_is_object(body))
        return refuse(err, 400, "", "the body must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v)
    {
        int known = 0;
        for (size_t i = 0; known_fields[i] && !known; i++)
            known = !strcmp(key, known_fields[i]);
        if (!known)
            return refuse(err, 400, key,
                          "%s: unknown field (known: to, item, kind, type, payload, "
                          "correlationId, deadline, msgId)",
                          key);
    }
    const char *to = string_field(body, "to", 1, err, &rc);
    if (rc)
        return rc;
    if (!(strcmp(to, "*") == 0 || wire_region_valid(to)))
        return refuse(err, 400, "to",
                      "to must be a six-digit region code (GB/T 2260) or \"*\" for all");
    snprintf(out->to, sizeof out->to, "%s", to);
    const char *item = string_field(body, "item", 1, err, &rc);
    if (rc)
        return rc;
    size_t ilen = strlen(item);
    int ok = ilen >= 1 && ilen <= 64;
    for (size_t i = 0; i < ilen && ok; i++)
        ok = item[i] > 0x20 && item[i] < 0x7f;
    if (!ok)
        return refuse(err, 400, "item", "item must be 1..64 printable characters without spaces");
    memcpy(out->item, item, ilen + 1);
    const char *kind = string_field(body, "kind", 1, err, &rc);
    if (rc)
        return rc;
    if (!(out->kind = nhub_kind_parse(kind)))
        return refuse(err, 400, "kind", "kind must be request, response, push, feedback or notice");
    const char *type = string_field(body, "type", 1, err, &rc);
    if (rc)
        return rc;
    const ProtobufCMessageDescriptor *desc =
        strlen(type) < sizeof out->type ? payload_find(type) : NULL;
    if (!desc)
        return refuse(err, 400, "type", "type: unknown payload type (not in schemas/)");
    snprintf(out->type, sizeof out->type, "%s", type);

    const char *corr = string_field(body, "correlationId", 0, err, &rc);
    if (rc)
        return rc;
    if (corr) {
        if (msgjson_hex16(corr, out->correlation) != 0)
            return refuse(err, 400, "correlationId",
                          "correlationId must be 32 hex digits (the msgId it answers)");
        out->has_correlation = 1;
    }
    const char *id = string_field(body, "msgId", 0, err, &rc);
    if (rc)
        return rc;
    if (id) {
        if (msgjson_hex16(id, out->msg_id) != 0)
            return refuse(err, 400, "msgId", "msgId must be 32 hex digits");
        out->has_msg_id = 1;
    }
    const json_t *dl = json_object_get(body, "deadline");
    if (dl && !json_is_null(dl)) {
        if (json_is_integer(dl) && json_integer_value(dl) >= 0)
            out->deadline_ms = json_integer_value(dl);
        else if (!json_is_string(dl) || parse_rfc3339(json_string_value(dl), &out->deadline_ms) ||
                 out->deadline_ms < 0)
            return refuse(err, 400, "deadline",
                          "deadline must be ms since the Unix epoch or an RFC 3339 time "
                          "(2026-12-08T11:38:03Z)");
    }

    const json_t *payload = json_object_get(body, "payload");
    if (!payload || json_is_null(payload))
        return refuse(err, 400, "payload", "payload is required (a JSON object of type %s)",
                      out->type);
    if (!json_is_object(payload))
        return refuse(err, 400, "payload", "payload must be a JSON object of type %s", out->type);
    char why[400] = "";
    rc = pbjson_pack(desc, payload, &out->payload, &out->payload_len, why, sizeof why);
    if (rc == NHUB_ENOMEM)
        return rc;
    if (rc != 0) {
        /* why = "field.path: what is wrong" */
        const char *colon = strstr(why, ": ");
        char field[160] = "payload";
        if (colon && colon > why && strncmp(why, "(payload)", 9) != 0)
            snprintf(field, sizeof field, "payload.%.*s", (int)(colon - why), why);
        return refuse(err, 400, field, "payload: %s", why);
    }
    if (out->payload_len > max_payload) {
        size_t n = out->payload_len;
        msgjson_clear(out);
        return refuse(err, 413, "payload", "payload: %zu bytes packed, more than max_frame (%zu)",
                      n, max_payload);
    }
    payload_verdict_t verdict =
        payload_check(out->type, out->payload, out->payload_len, NULL, why, sizeof why);
    if (verdict != PAYLOAD_OK) {
        /* why = "payload: TYPE path.to_field: what" */
        char field[160] = "payload";
        size_t tl = strlen(out->type);
        const char *p = strncmp(why, "payload: ", 9) == 0 ? why + 9 : why;
        if (strncmp(p, out->type, tl) == 0 && p[tl] == ' ') {
            const char *path = p + tl + 1, *colon = strchr(path, ':');
            if (colon)
                json_path_of(path, (size_t)(colon - path), field, sizeof field);
        }
        msgjson_clear(out);
        return refuse(err, 422, field, "%s", why);
    }
    digest(out, out->digest);
    return 0;
}

void msgjson_clear(msgjson_t *m)
{
    free(m->payload);
    memset(m, 0, sizeof *m);
}

void msgjson_message(const msgjson_t *m, nhub_message_t *out)
{
    memset(out, 0, sizeof *out);
    out->msg_id = m->has_msg_id ? m->msg_id : NULL;
    out->destination = m->to;
    out->item = m->item;
    out->kind = m->kind;
    out->correlation_id = m->has_correlation ? m->correlation : NULL;
    out->deadline_ms = m->deadline_ms;
    out->payload_type = m->type;
    out->payload = m->payload;
    out->payload_len = m->payload_len;
}

static char *b64(const void *data, size_t len)
{
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

json_t *msgjson_delivery(const nhub_delivery_t *d)
{
    char id[33], corr[33];
    nhub_msg_id_hex(d->msg_id, id);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "msgId", id, "source",
                          d->source, "destination", d->destination, "item", d->item, "kind",
                          nhub_kind_name(d->kind), "type", d->payload_type, "createdMs",
                          (json_int_t)d->created_ms, "deadlineMs", (json_int_t)d->deadline_ms,
                          "seq", (json_int_t)d->seq, "dseq", (json_int_t)d->dseq);
    if (!o)
        return NULL;
    json_object_set_new(o, "correlationId",
                        d->correlation_len == NHUB_MSG_ID_LEN
                            ? json_string(nhub_msg_id_hex(d->correlation_id, corr))
                            : json_null());
    json_object_set_new(o, "keyId", d->key_id[0] ? json_string(d->key_id) : json_null());
    const ProtobufCMessageDescriptor *desc = payload_find(d->payload_type);
    json_t *p = NULL;
    char why[256] = "unknown payload type";
    if (desc)
        pbjson_unpack(desc, d->payload, d->payload_len, &p, why, sizeof why);
    if (p) {
        json_object_set_new(o, "payload", p);
    } else {
        char *t = b64(d->payload, d->payload_len);
        json_object_set_new(o, "payloadBase64", json_string(t ? t : ""));
        json_object_set_new(o, "payloadError", json_string(why));
        free(t);
    }
    return o;
}
