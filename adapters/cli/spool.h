/*
 * spool.h: the daemon's spool folders under spool.dir, for platforms that
 * exchange files.
 *
 *   outbox/  the platform drops NAME.json (the shape of the API's POST
 *            body): written as anything else (NAME.tmp, .NAME) and renamed,
 *            so only complete files end in .json. Each is sent, then moved
 *            to sent/; or moved to failed/ with NAME.json.error beside it.
 *   sent/    files whose message is in the adapter's outbox (durable)
 *   failed/  refused files and their .error (one line naming the problem);
 *            also files the hub refused after they were sent
 *   inbox/   deliveries, MSGID.json (spool.inbox: true), written atomically
 *            (hidden temp file, fsync, rename, fsync of the directory)
 *   done/    the platform's: moving a file here from inbox/ (or deleting
 *            it) confirms the message to the hub
 *
 * The msgId of a file is its "msgId" field, or the first 16 bytes of
 * SHA-256 over its name and contents, so a file sent again after a crash
 * before its move to sent/ carries the same msgId and the hub drops the
 * repeat. outbox/ is looked at when inotify reports a NAME.json arriving
 * there, inbox/ when one leaves it, and both at least every
 * spool.scan_interval (the safety net for what inotify does not say).
 */
#ifndef NHUB_ADAPTER_SPOOL_H
#define NHUB_ADAPTER_SPOOL_H

#include "daemon.h"

#include <stdint.h>

typedef struct spool spool_t;

/* Make the folders (mode 0700) and watch them. 0, or NHUB_EIO with `err`. */
int spool_new(daemon_t *d, spool_t **out, char *err, size_t errcap);

/* Accepts NULL; sets *self to NULL. */
void spool_destroy(spool_t **self);

/* The inotify descriptor to wait on (-1 if inotify is not available). */
int spool_fd(const spool_t *self);

/* ms until the next scan is due (0 = now). */
int64_t spool_timeout_ms(const spool_t *self);

/*
 * One turn: read the inotify events, and if a scan is due, send what
 * outbox/ holds (a bounded number of files per turn), write held
 * deliveries not yet in inbox/, and confirm those the platform took.
 */
void spool_run(spool_t *self);

/*
 * Write the held delivery `h` into inbox/ unless it was handed over
 * already (its mark in track.h); sets h->spooled. 0, or an error (it is
 * tried again on a later turn).
 */
int spool_deliver(spool_t *self, held_t *h);

/* 1 if the delivery `id` is in inbox/ (as MSGID.json or its temp file). */
int spool_in_inbox(const spool_t *self, const uint8_t id[NHUB_MSG_ID_LEN]);

/*
 * The hub refused the message of spool file `file` (in sent/) for good:
 * move it to failed/ with an .error naming the code and reason.
 */
void spool_on_rejected(spool_t *self, const char *file, const uint8_t id[NHUB_MSG_ID_LEN], int code,
                       const char *text);

#endif
