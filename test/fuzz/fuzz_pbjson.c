/*
 * fuzz_pbjson.c: libFuzzer target for the JSON <-> protobuf converter
 * (proto/pbjson.h), which nhub-adapter run applies to every request body
 * and spool file, and to every delivery it hands out.
 *
 * The first input byte picks a payload type of the registry (its low seven
 * bits, modulo the registry's size) and the direction (its high bit); the
 * rest is the input:
 *   - high bit clear: JSON text, loaded as the daemon loads a body
 *     (JSON_REJECT_DUPLICATES), then pbjson_pack. A refusal's reason must
 *     be UTF-8 (the daemon puts it into a JSON answer); an accepted payload
 *     must unpack (pbjson_unpack) and pack again to the same bytes.
 *   - high bit set: protobuf bytes, pbjson_unpack. What converts must pack
 *     back (pbjson_pack) without error.
 * A property that fails aborts with a line on stderr.
 */
#include "nhub_err.h"
#include "payload.h"
#include "pbjson.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *type, const char *what, const char *why)
{
    fprintf(stderr, "fuzz_pbjson: property failed for %s: %s (%s)\n", type, what, why);
    abort();
}

static int utf8_ok(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

static void from_json(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len)
{
    json_error_t jerr;
    json_t *j = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        return;
    char why[400];
    uint8_t *bytes = NULL;
    size_t n = 0;
    int rc = pbjson_pack(d, j, &bytes, &n, why, sizeof why);
    json_decref(j);
    if (rc != 0) {
        if (rc != NHUB_EINVAL && rc != NHUB_ENOMEM)
            fail(d->name, "pbjson_pack returned an unknown error", why);
        if (rc == NHUB_EINVAL && (!why[0] || !utf8_ok(why)))
            fail(d->name, "a refusal's reason is empty or not UTF-8", why);
        return;
    }
    json_t *back = NULL;
    if (pbjson_unpack(d, bytes, n, &back, why, sizeof why) != 0)
        fail(d->name, "accepted JSON packs to bytes that do not unpack", why);
    uint8_t *again = NULL;
    size_t n2 = 0;
    if (pbjson_pack(d, back, &again, &n2, why, sizeof why) != 0)
        fail(d->name, "unpacked JSON does not pack again", why);
    if (n2 != n || memcmp(again, bytes, n) != 0)
        fail(d->name, "JSON -> bytes -> JSON -> bytes changed the bytes", "");
    json_decref(back);
    free(again);
    free(bytes);
}

static void from_bytes(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len)
{
    char why[400];
    json_t *j = NULL;
    int rc = pbjson_unpack(d, p, len, &j, why, sizeof why);
    if (rc != 0) {
        if (rc == NHUB_EINVAL && (!why[0] || !utf8_ok(why)))
            fail(d->name, "an unpack refusal's reason is empty or not UTF-8", why);
        return;
    }
    uint8_t *bytes = NULL;
    size_t n = 0;
    if (pbjson_pack(d, j, &bytes, &n, why, sizeof why) != 0)
        fail(d->name, "the JSON of decoded bytes does not pack", why);
    json_decref(j);
    free(bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || payload_type_count() == 0)
        return 0;
    const ProtobufCMessageDescriptor *d = payload_type_at((data[0] & 0x7f) % payload_type_count());
    if (data[0] & 0x80)
        from_bytes(d, data + 1, size - 1);
    else
        from_json(d, data + 1, size - 1);
    return 0;
}
