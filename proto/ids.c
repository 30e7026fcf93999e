/*
 * ids.c: random bytes and time-ordered msg_ids (see ids.h).
 */
#include "ids.h"

#include "nhub_err.h"

#include <errno.h>
#include <sys/random.h>

int ids_random(uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NHUB_EIO;
        got += (size_t)n;
    }
    return 0;
}

int ids_msg_id(uint8_t id[IDS_MSG_ID_LEN], int64_t wall_ms)
{
    uint64_t ms = wall_ms > 0 ? (uint64_t)wall_ms : 0;
    for (int i = 0; i < 6; i++)
        id[i] = (uint8_t)(ms >> (40 - 8 * i));
    return ids_random(id + 6, IDS_MSG_ID_LEN - 6);
}
