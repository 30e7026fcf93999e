/*
 * journal.c: the tests' reader of a hub's journal, beside the running hub
 * (a read-only view of its LMDB environment).
 */
#include "harness.h"

#include "nhub_journal.pb-c.h"
#include "store.h"
#include "wire.h"

#include <stdio.h>

int th_journal_foreach(const th_hub_t *h, void (*fn)(const th_journal_event_t *ev, void *arg),
                       void *arg)
{
    store_t *st = NULL;
    store_reader_t *rd = NULL;
    char dir[400], err[256];
    uint64_t last = 0, first = 1;
    uint8_t prev[STORE_HASH_LEN];
    snprintf(dir, sizeof dir, "%s/hub-data", h->dir);
    if (store_open_reader(dir, &st, err, sizeof err) != 0 || store_reader_open(st, &rd) != 0 ||
        store_journal_last(rd, &last) != 0 || store_journal_start(rd, &first, prev) != 0) {
        store_reader_close(&rd);
        store_close(&st);
        return -1;
    }
    int rc = 0;
    for (uint64_t seq = first; seq <= last && rc == 0; seq++) { /* after the pruned */
        const void *data;
        size_t len;
        ProtobufCMessage *m = NULL;
        rc = store_journal_get(rd, seq, &data, &len, NULL) ||
             wire_decode(&nhub__journal__v1__journal_event__descriptor, data, len, len + 1024, &m);
        if (rc == 0)
            fn((const th_journal_event_t *)m, arg);
        wire_free(&m);
    }
    store_reader_close(&rd);
    store_close(&st);
    return rc ? -1 : 0;
}
