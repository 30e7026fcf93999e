/*
 * fuzz_payload.c: libFuzzer target for the hub's payload check and the
 * version translations (proto/payload.h, broker/translate.h).
 *
 * The first input byte picks a payload type of the registry (modulo its
 * size); the rest is the payload. Besides memory safety and the decode
 * bound (run.sh's -rss_limit_mb), it checks, aborting with a line on
 * stderr:
 *   - a payload that passes packs again to bytes that pass as the same type;
 *   - a payload that passes translates to every other version registered
 *     for it, and the translation passes the check as its new type: the
 *     hub never hands a region a translated payload it would itself refuse.
 */
#include "nhub_err.h"
#include "payload.h"
#include "translate.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *type, const char *what, const char *why)
{
    fprintf(stderr, "fuzz_payload: property failed for %s: %s (%s)\n", type, what, why);
    abort();
}

/* Every version `type` translates to: the same message in the other version of its pair. */
static void check_translations(const char *type, const uint8_t *p, size_t len)
{
    char why[256];
    for (size_t i = 0; i < payload_type_count(); i++) {
        const char *to = payload_type_at(i)->name;
        char *pattern[1] = {(char *)to};
        if (strcmp(to, type) == 0 || translate_target(type, pattern, 1) != to)
            continue;
        uint8_t *out = NULL;
        size_t out_len = 0;
        bool lossy;
        if (translate_payload(type, to, p, len, &out, &out_len, &lossy) != 0)
            fail(type, "a registered translation of a valid payload failed", to);
        if (payload_check(to, out, out_len, NULL, why, sizeof why) != PAYLOAD_OK)
            fail(type, "its translation does not pass as its new type", why);
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || payload_type_count() == 0)
        return 0;
    const char *type = payload_type_at(data[0] % payload_type_count())->name;
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    char why[256];
    ProtobufCMessage *m = NULL;
    if (payload_check(type, p, len, &m, why, sizeof why) != PAYLOAD_OK)
        return 0;
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *again = malloc(n ? n : 1);
    size_t packed = protobuf_c_message_pack(m, again);
    payload_free(&m);
    if (payload_check(type, again, packed, NULL, why, sizeof why) != PAYLOAD_OK)
        fail(type, "re-packed bytes do not pass", why);
    free(again);
    check_translations(type, p, len);
    return 0;
}
