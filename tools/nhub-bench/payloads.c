/*
 * payloads.c: the "payloads" section of nhub-bench (see payloads.h).
 *
 * For each payload type of the schemas, the sample payload of
 * test/harness/samples.c (and a registration batch of 1,000 records, the
 * largest payload of the catalogue's traffic) is checked in a loop on one
 * thread, as ingress checks it on the hub's loop thread: decode within
 * bounds, walk the rules, free. The baseline of the same run is decoding
 * the envelope that carries it, which the hub does for every SEND anyway;
 * the ratio says how much the check adds to that step.
 */
#include "payloads.h"

#include "payload.h"
#include "samples.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Nanoseconds per payload_check() of `p`, or -1 if it does not pass. */
static double check_ns(const char *type, const uint8_t *p, size_t len, double seconds)
{
    unsigned long n = 0;
    double t0 = now_s(), t = t0;
    while (t - t0 < seconds) {
        for (int i = 0; i < 64; i++)
            if (payload_check(type, p, len, NULL, NULL, 0) != PAYLOAD_OK)
                return -1;
        n += 64;
        t = now_s();
    }
    return (t - t0) * 1e9 / (double)n;
}

/* Nanoseconds per wire_decode() + wire_free() of an envelope carrying `p`. */
static double envelope_ns(const char *type, const uint8_t *p, size_t len, double seconds)
{
    wire_envelope_t e = NHUB__WIRE__V1__ENVELOPE__INIT;
    uint8_t id[16] = {1};
    e.msg_id = (ProtobufCBinaryData){16, id};
    e.source = "110000";
    e.destination = "440000";
    e.item = "SI-VERIFY-002";
    e.kind = NHUB__WIRE__V1__KIND__KIND_REQUEST;
    e.created_ms = 1796000000000;
    e.payload_type = (char *)type;
    e.payload = (ProtobufCBinaryData){len, (uint8_t *)p};
    size_t elen = protobuf_c_message_get_packed_size(&e.base);
    uint8_t *buf = malloc(elen);
    protobuf_c_message_pack(&e.base, buf);
    unsigned long n = 0;
    double t0 = now_s(), t = t0;
    while (t - t0 < seconds) {
        for (int i = 0; i < 64; i++) {
            ProtobufCMessage *m = NULL;
            if (wire_decode(&nhub__wire__v1__envelope__descriptor, buf, elen, elen, &m) == 0)
                wire_free(&m);
        }
        n += 64;
        t = now_s();
    }
    free(buf);
    return (t - t0) * 1e9 / (double)n;
}

static void row(const char *label, const char *type, const uint8_t *p, size_t len, double per)
{
    double c = check_ns(type, p, len, per);
    double e = envelope_ns(type, p, len, per);
    if (c < 0) {
        printf("%-40s %8zu  does not pass its own check\n", label, len);
        return;
    }
    printf("%-40s %8zu %12.2f %12.0f %14.2f %8.2f\n", label, len, c / 1000, 1e9 / c, e / 1000,
           c / e);
}

void section_payloads(int seconds)
{
    double per = seconds > 4 ? 0.5 : 0.2;
    printf("\n== payloads (check per message on one thread: decode within bounds, rules, free;\n"
           "   baseline: decoding the envelope that carries it, which every SEND pays)\n");
    printf("%-40s %8s %12s %12s %14s %8s\n", "type", "bytes", "check us", "checks/s",
           "envelope us", "ratio");
    for (size_t i = 0; i < sample_type_count; i++) {
        size_t len;
        uint8_t *p = sample_bytes(sample_types[i], &len);
        if (p)
            row(sample_types[i], sample_types[i], p, len, per);
        free(p);
    }
    /* The bulk case: a registration batch of 1,000 records. */
    const char *batch = "nhub.registration.v1.RegistrationBatch";
    ProtobufCMessage *m = sample_new(batch);
    for (int i = 1; m && i < 1000; i++) {
        char path[64];
        sample_set(m, "records[+].status", "REGISTRATION_STATUS_INSURED");
        snprintf(path, sizeof path, "records[%d].person.id_number", i);
        sample_set(m, path, "11010519491231002X");
        snprintf(path, sizeof path, "records[%d].person.name", i);
        sample_set(m, path, "王五");
        snprintf(path, sizeof path, "records[%d].registered_month", i);
        sample_set(m, path, "201901");
    }
    if (m) {
        size_t len;
        uint8_t *p = sample_pack(m, &len);
        row("RegistrationBatch, 1,000 records", batch, p, len, per);
        free(p);
        sample_free(&m);
    }
}
