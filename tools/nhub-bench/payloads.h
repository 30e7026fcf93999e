/*
 * payloads.h: the "payloads" section of nhub-bench: what the hub's payload
 * check (proto/payload.h) costs per message, by schema type, beside the
 * envelope decode every message already pays.
 */
#ifndef NHUB_BENCH_PAYLOADS_H
#define NHUB_BENCH_PAYLOADS_H

void section_payloads(int seconds);

#endif
