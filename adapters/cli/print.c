/*
 * print.c: text and JSON lines for received messages (see print.h).
 */
#include "print.h"

#include <stdint.h>
#include <string.h>

int print_delivery_text(FILE *out, const nhub_delivery_t *d)
{
    char hex[33];
    fprintf(out,
            "seq=%llu dseq=%llu msg_id=%s source=%s destination=%s item=%s kind=%s type=%s "
            "bytes=%zu key_id=%s\n",
            (unsigned long long)d->seq, (unsigned long long)d->dseq,
            nhub_msg_id_hex(d->msg_id, hex), d->source, d->destination, d->item,
            nhub_kind_name(d->kind), d->payload_type, d->payload_len,
            d->key_id[0] ? d->key_id : "-");
    return ferror(out) ? -1 : 0;
}

void print_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

void print_base64(FILE *out, const void *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *p = data;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char q[4] = {alphabet[v >> 18], alphabet[(v >> 12) & 63], alphabet[(v >> 6) & 63],
                     alphabet[v & 63]};
        fwrite(q, 1, 4, out);
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        char q[4] = {alphabet[v >> 18], alphabet[(v >> 12) & 63],
                     i + 1 < len ? alphabet[(v >> 6) & 63] : '=', '='};
        fwrite(q, 1, 4, out);
    }
}

int print_delivery_json(FILE *out, const nhub_delivery_t *d)
{
    char hex[33];
    fprintf(out, "{\"msg_id\":\"%s\",\"seq\":%llu,\"dseq\":%llu,\"source\":",
            nhub_msg_id_hex(d->msg_id, hex), (unsigned long long)d->seq,
            (unsigned long long)d->dseq);
    print_json_string(out, d->source);
    fputs(",\"destination\":", out);
    print_json_string(out, d->destination);
    fputs(",\"item\":", out);
    print_json_string(out, d->item);
    fputs(",\"kind\":", out);
    print_json_string(out, nhub_kind_name(d->kind));
    fputs(",\"payload_type\":", out);
    print_json_string(out, d->payload_type);
    fprintf(out, ",\"created_ms\":%lld,\"deadline_ms\":%lld,\"correlation_id\":",
            (long long)d->created_ms, (long long)d->deadline_ms);
    if (d->correlation_len == NHUB_MSG_ID_LEN)
        fprintf(out, "\"%s\"", nhub_msg_id_hex(d->correlation_id, hex));
    else
        fputs("null", out);
    fputs(",\"key_id\":", out);
    if (d->key_id[0])
        print_json_string(out, d->key_id);
    else
        fputs("null", out);
    fputs(",\"signature_b64\":", out);
    if (d->signature_len) {
        fputc('"', out);
        print_base64(out, d->signature, d->signature_len);
        fputc('"', out);
    } else {
        fputs("null", out);
    }
    /* The sender signed its own version: a translated message carries it. */
    fputs(d->translated ? ",\"translated\":true,\"signed_envelope_b64\":\"" : ",\"translated\":false",
          out);
    if (d->translated) {
        print_base64(out, d->signed_envelope, d->signed_envelope_len);
        fputc('"', out);
    }
    fputs(",\"payload_b64\":\"", out);
    print_base64(out, d->payload, d->payload_len);
    fputs("\"}\n", out);
    return ferror(out) ? -1 : 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int parse_hex16(const char *hex, uint8_t out[16])
{
    if (!hex || strlen(hex) != 32)
        return -1;
    for (int i = 0; i < 16; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
