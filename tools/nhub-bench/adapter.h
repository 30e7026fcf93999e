/*
 * adapter.h: the "adapter" section of nhub-bench: what a platform that
 * does not link C gets from `nhub-adapter run`, its JSON API and its spool
 * folders, against libnhub's own nhub_send figure measured against the
 * same hub in the same run (see adapter.c).
 */
#ifndef NHUB_BENCH_ADAPTER_H
#define NHUB_BENCH_ADAPTER_H

/* Run the section; `quick` sends fewer messages and files. */
void section_adapter(int quick);

#endif
