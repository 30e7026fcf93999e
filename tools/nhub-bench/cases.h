/*
 * cases.h: the "cases" section of nhub-bench: what cases with time limits
 * (broker/cases.h) cost the hub. Ingest of requests that open a case next
 * to the same requests of an item without a time limit; then 1,000,000
 * open cases whose deadlines all pass at once (the hub's wall clock moved
 * past their expiry): how fast the hub expires them, the ACK latency of
 * plain traffic meanwhile and the hub's anonymous memory.
 */
#ifndef NHUB_BENCH_CASES_H
#define NHUB_BENCH_CASES_H

/* `seconds` per ingest point; `quick`: 100,000 cases instead of 1,000,000. */
void section_cases(int quick, int seconds);

#endif
