/*
 * retention.h: the "retention" section of nhub-bench: what archive files
 * (audit.archive_dir, broker/retention.c) cost the hub.
 *
 * The hub's ingest (4 x 64 senders, a hub in this process) writing a file
 * of every RETENTION_EVERY records against the same hub writing none, in
 * alternated rounds (the medians, and the median of the rounds' own
 * ratios); per file, the time the hub's loop spent writing it and the
 * time its fsync, rename and directory fsync took on their own thread (the
 * hub's counters); then `nhub-audit verify --archive` over the files of the
 * last round and its live store: records per second on one core.
 */
#ifndef NHUB_BENCH_RETENTION_H
#define NHUB_BENCH_RETENTION_H

#define RETENTION_EVERY 10000

/* `quick`: fewer rounds; `seconds` per ingest point. */
void section_retention(int quick, int seconds);

#endif
