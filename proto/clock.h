/*
 * clock.h: time as a value passed in, so tests can drive it.
 *
 * Wall time (ms since the Unix epoch) stamps journal events, envelopes and
 * deadlines; monotonic time (ms from an arbitrary origin) measures timeouts
 * and never jumps. Code that needs time takes an nhub_clock_t; production
 * passes nhub_clock_system().
 */
#ifndef NHUB_CLOCK_H
#define NHUB_CLOCK_H

#include <stdint.h>

typedef struct nhub_clock {
    int64_t (*wall_ms)(void *arg);
    int64_t (*mono_ms)(void *arg);
    void *arg;
} nhub_clock_t;

/* The operating system's clocks (CLOCK_REALTIME, CLOCK_MONOTONIC). Static; never NULL. */
const nhub_clock_t *nhub_clock_system(void);

static inline int64_t clock_wall_ms(const nhub_clock_t *c)
{
    return c->wall_ms(c->arg);
}

static inline int64_t clock_mono_ms(const nhub_clock_t *c)
{
    return c->mono_ms(c->arg);
}

#endif
