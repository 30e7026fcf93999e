/*
 * priority.h: the "priority" section of nhub-bench: the end-to-end latency
 * of urgent verification requests towards a region, alone and while a
 * bulk sync of 1,000,000 messages from another region is in flight to the
 * same region (see priority.c).
 */
#ifndef NHUB_BENCH_PRIORITY_H
#define NHUB_BENCH_PRIORITY_H

/* Run the section; `quick` makes the bulk sync 100,000 messages. */
void section_priority(int quick);

#endif
