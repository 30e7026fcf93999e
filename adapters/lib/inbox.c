/*
 * inbox.c: in-memory deliveries: ordering by dseq and once-per-process
 * duplicate suppression (see inbox.h).
 *
 * The durable half of "exactly once to the application" is the confirmed
 * set in the store; this is the other half, for messages the hub repeats
 * while the application still holds them. Both lists are short (bounded by
 * the credit announced in HELLO), so plain singly linked lists and linear
 * search are the honest choice.
 */
#include "inbox.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct inbox_node {
    nhub_delivery_t d; /* first, so a nhub_delivery_t * is a node pointer */
    struct inbox_node *next;
} inbox_node_t;

struct inbox {
    inbox_node_t *ready_head;
    inbox_node_t *ready_tail;
    inbox_node_t *handed;
    size_t n_ready;
    size_t n_handed;
    size_t capacity;
    uint64_t expected; /* next dseq expected; 0 = none yet in this session */
};

inbox_t *inbox_new(size_t capacity)
{
    inbox_t *self = calloc(1, sizeof *self);
    if (self)
        self->capacity = capacity ? capacity : 1;
    return self;
}

static void free_list(inbox_node_t *n)
{
    while (n) {
        inbox_node_t *next = n->next;
        free(n);
        n = next;
    }
}

void inbox_destroy(inbox_t **self)
{
    if (!self || !*self)
        return;
    free_list((*self)->ready_head);
    free_list((*self)->handed);
    free(*self);
    *self = NULL;
}

void inbox_session_reset(inbox_t *self)
{
    self->expected = 0;
}

static int list_has(const inbox_node_t *n, const uint8_t msg_id[NHUB_MSG_ID_LEN])
{
    for (; n; n = n->next)
        if (memcmp(n->d.msg_id, msg_id, NHUB_MSG_ID_LEN) == 0)
            return 1;
    return 0;
}

/* A gap: dseq skips ahead and the message the hub sent before it
 * (prev_dseq) has not arrived. Skips the hub vouches for are not gaps. */
static int is_gap(const inbox_t *self, uint64_t dseq, uint64_t prev_dseq)
{
    return self->expected != 0 && dseq > self->expected && prev_dseq >= self->expected;
}

void inbox_skip(inbox_t *self, uint64_t dseq, uint64_t prev_dseq)
{
    if (!is_gap(self, dseq, prev_dseq) && dseq >= self->expected)
        self->expected = dseq + 1;
}

inbox_verdict_t inbox_classify(inbox_t *self, const uint8_t msg_id[NHUB_MSG_ID_LEN],
                               uint64_t dseq, uint64_t prev_dseq)
{
    if (list_has(self->ready_head, msg_id) || list_has(self->handed, msg_id)) {
        inbox_skip(self, dseq, prev_dseq);
        return INBOX_DUPLICATE;
    }
    if (is_gap(self, dseq, prev_dseq))
        return INBOX_GAP;
    if (self->n_ready + self->n_handed >= self->capacity)
        return INBOX_FULL;
    if (dseq >= self->expected)
        self->expected = dseq + 1;
    return INBOX_ACCEPT;
}

/* 1 if the payload is the tail of the envelope (both given), so one copy serves both. */
static int payload_ends_envelope(const nhub_delivery_t *d)
{
    if (!d->envelope || !d->payload || d->payload_len > d->envelope_len)
        return 0;
    uintptr_t env = (uintptr_t)d->envelope, pay = (uintptr_t)d->payload;
    return pay >= env && pay - env == d->envelope_len - d->payload_len;
}

/* Bytes of the node for `d`; 0 if it overflows. */
static size_t node_size(const nhub_delivery_t *d, int shared)
{
    size_t parts[4] = {d->envelope ? d->envelope_len : 0, d->signature ? d->signature_len : 0,
                       shared ? 0 : d->payload_len,
                       d->translated && d->signed_envelope ? d->signed_envelope_len : 0};
    size_t n = sizeof(inbox_node_t) + 2; /* a NUL after the envelope and after the payload */
    for (int i = 0; i < 4; i++) {
        if (parts[i] > SIZE_MAX - n)
            return 0;
        n += parts[i];
    }
    return n;
}

int inbox_push(inbox_t *self, const nhub_delivery_t *d)
{
    int shared = payload_ends_envelope(d);
    size_t size = node_size(d, shared);
    if (size == 0)
        return NHUB_ENOMEM;
    inbox_node_t *n = malloc(size);
    if (!n)
        return NHUB_ENOMEM;
    n->d = *d;
    n->next = NULL;
    /* Layout after the node: envelope, NUL, [payload, NUL,] signature,
     * [the signed original of a translated envelope]. */
    unsigned char *p = (unsigned char *)(n + 1);
    n->d.envelope = NULL;
    n->d.envelope_len = 0;
    if (d->envelope) {
        if (d->envelope_len)
            memcpy(p, d->envelope, d->envelope_len);
        n->d.envelope = p;
        n->d.envelope_len = d->envelope_len;
        p += d->envelope_len;
        *p++ = '\0';
    }
    if (shared) {
        n->d.payload = p - 1 - d->payload_len;
    } else {
        if (d->payload_len)
            memcpy(p, d->payload, d->payload_len);
        p[d->payload_len] = '\0'; /* a courtesy for text payloads; not counted */
        n->d.payload = p;
        p += d->payload_len + 1;
    }
    n->d.signature = NULL;
    n->d.signature_len = 0;
    if (d->signature && d->signature_len) {
        memcpy(p, d->signature, d->signature_len);
        n->d.signature = p;
        n->d.signature_len = d->signature_len;
        p += d->signature_len;
    }
    n->d.signed_envelope = n->d.envelope;
    n->d.signed_envelope_len = n->d.envelope_len;
    n->d.translated = 0;
    if (d->translated && d->signed_envelope) {
        memcpy(p, d->signed_envelope, d->signed_envelope_len);
        n->d.signed_envelope = p;
        n->d.signed_envelope_len = d->signed_envelope_len;
        n->d.translated = 1;
    }
    if (self->ready_tail)
        self->ready_tail->next = n;
    else
        self->ready_head = n;
    self->ready_tail = n;
    self->n_ready++;
    return 0;
}

nhub_delivery_t *inbox_pop(inbox_t *self)
{
    inbox_node_t *n = self->ready_head;
    if (!n)
        return NULL;
    self->ready_head = n->next;
    if (!self->ready_head)
        self->ready_tail = NULL;
    self->n_ready--;
    n->next = self->handed;
    self->handed = n;
    self->n_handed++;
    return &n->d;
}

size_t inbox_ready(const inbox_t *self)
{
    return self->n_ready;
}

int inbox_holds(const inbox_t *self, const nhub_delivery_t *d)
{
    for (const inbox_node_t *n = self->handed; n; n = n->next)
        if (&n->d == d)
            return 1;
    return 0;
}

int inbox_release(inbox_t *self, nhub_delivery_t *d)
{
    for (inbox_node_t **pp = &self->handed; *pp; pp = &(*pp)->next) {
        if (&(*pp)->d != d)
            continue;
        inbox_node_t *n = *pp;
        *pp = n->next;
        self->n_handed--;
        free(n);
        return 0;
    }
    return NHUB_ENOTFOUND;
}
