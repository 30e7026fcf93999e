/*
 * ids.h: random bytes and message identifiers, shared by the hub, the
 * adapters and the tools.
 */
#ifndef NHUB_IDS_H
#define NHUB_IDS_H

#include <stddef.h>
#include <stdint.h>

#define IDS_MSG_ID_LEN 16

/* Fill `buf` with `len` bytes from the kernel's random source (getrandom).
 * Returns 0 or NHUB_EIO. */
int ids_random(uint8_t *buf, size_t len);

/*
 * A new msg_id: the wall clock `wall_ms` as 48 bits big-endian, then 80
 * random bits. Unique for all practical purposes, and ordered by time, so
 * the hub's duplicate index (a B-tree on msg_id) grows at its end instead
 * of touching a random page per message. Returns 0 or NHUB_EIO.
 */
int ids_msg_id(uint8_t id[IDS_MSG_ID_LEN], int64_t wall_ms);

#endif
