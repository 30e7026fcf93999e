/*
 * workers.h: a fixed set of threads that run one parallel loop at a time.
 *
 * The hub loop is single-threaded by design; the one thing it does per
 * message that costs more CPU than the rest together is checking envelope
 * signatures (tens of microseconds each). workers_run() splits such a loop,
 * [0, n), into contiguous chunks, runs one chunk on the calling thread and
 * the others on the workers, and returns when all are done, so the caller
 * sees a plain function call and the stage's order is untouched.
 */
#ifndef NHUB_WORKERS_H
#define NHUB_WORKERS_H

#include <stddef.h>

typedef struct workers workers_t;

/* Run `fn` on items [begin, end) of the loop. Called concurrently from
 * several threads on disjoint ranges. */
typedef void workers_fn(void *arg, size_t begin, size_t end);

/*
 * Start `threads` worker threads (0 is allowed: workers_run then runs the
 * whole loop on the caller). Returns 0 and *out, or NHUB_ENOMEM / NHUB_EIO.
 */
int workers_new(size_t threads, workers_t **out);

/* Stop and join the threads; accepts NULL; sets *self to NULL. */
void workers_destroy(workers_t **self);

/*
 * Run fn over [0, n) in up to threads + 1 chunks of at least `min_chunk`
 * items and wait for all of them. Not reentrant: one loop at a time, from
 * one thread. `w` may be NULL: then fn runs on the caller.
 */
void workers_run(workers_t *w, workers_fn *fn, void *arg, size_t n, size_t min_chunk);

/*
 * As workers_run, without waiting: the workers start on it and the caller
 * goes on with other work. workers_wait() then runs what no worker has
 * taken yet on the caller and returns when all of it is done; it must be
 * called before the next start or run, and before anything fn reads is
 * changed. With `w` NULL, workers_start runs fn on the caller at once.
 */
void workers_start(workers_t *w, workers_fn *fn, void *arg, size_t n, size_t min_chunk);
void workers_wait(workers_t *w);

/* Number of worker threads (not counting the caller). */
size_t workers_count(const workers_t *w);

#endif
