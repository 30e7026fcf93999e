/*
 * clock.c: the system clock behind nhub_clock_t (see clock.h).
 */
#include "clock.h"

#include <time.h>

static int64_t read_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t system_wall(void *arg)
{
    (void)arg;
    return read_ms(CLOCK_REALTIME);
}

static int64_t system_mono(void *arg)
{
    (void)arg;
    return read_ms(CLOCK_MONOTONIC);
}

static const nhub_clock_t system_clock = {system_wall, system_mono, 0};

const nhub_clock_t *nhub_clock_system(void)
{
    return &system_clock;
}
