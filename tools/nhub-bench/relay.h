/* relay.h: the "relay" section of nhub-bench (see relay.c). */
#ifndef NHUB_BENCH_RELAY_H
#define NHUB_BENCH_RELAY_H

/*
 * Print the relay figure: region A's libnhub adapter sends batches through
 * a real nhubd (insecure-plaintext, default fsync durability) to region B's
 * libnhub adapter, which receives and confirms in batches, for `seconds`
 * after B's first message: confirmed msgs/s at B and end-to-end latency
 * p50/p99. Next to it, in the same run, a raw ZeroMQ relay with the same
 * window and acks (nothing stored), and the ratio.
 */
void section_relay(int seconds);

#endif
