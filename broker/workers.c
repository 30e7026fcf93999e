/*
 * workers.c: the parallel loop of workers.h, with one mutex and two
 * condition variables. Each run has a generation number; a worker wakes
 * when the generation changes, takes chunk indexes until none are left, and
 * the last one to finish signals the caller, who meanwhile takes chunks
 * too once it waits.
 */
#include "workers.h"

#include "nhub_err.h"

#include <pthread.h>
#include <stdlib.h>

struct workers {
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    pthread_t *threads;
    size_t n_threads;
    /* the current run, guarded by mu */
    unsigned long generation;
    int stopping;
    workers_fn *fn;
    void *arg;
    size_t n, chunk, n_chunks, next_chunk, running;
};

/* Take and run chunks of the current run until none are left. Called and
 * returns with mu held. */
static void run_chunks(workers_t *w)
{
    while (w->next_chunk < w->n_chunks) {
        size_t c = w->next_chunk++;
        size_t begin = c * w->chunk, end = begin + w->chunk < w->n ? begin + w->chunk : w->n;
        w->running++;
        pthread_mutex_unlock(&w->mu);
        w->fn(w->arg, begin, end);
        pthread_mutex_lock(&w->mu);
        w->running--;
    }
}

static void *worker_main(void *arg)
{
    workers_t *w = arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stopping && w->generation == seen)
            pthread_cond_wait(&w->start, &w->mu);
        if (w->stopping)
            break;
        seen = w->generation;
        run_chunks(w);
        if (w->running == 0 && w->next_chunk >= w->n_chunks)
            pthread_cond_signal(&w->done);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int workers_new(size_t threads, workers_t **out)
{
    *out = NULL;
    workers_t *w = calloc(1, sizeof *w);
    if (!w || !(w->threads = calloc(threads ? threads : 1, sizeof *w->threads))) {
        free(w);
        return NHUB_ENOMEM;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->start, NULL);
    pthread_cond_init(&w->done, NULL);
    for (; w->n_threads < threads; w->n_threads++)
        if (pthread_create(&w->threads[w->n_threads], NULL, worker_main, w) != 0) {
            workers_destroy(&w);
            return NHUB_EIO;
        }
    *out = w;
    return 0;
}

void workers_destroy(workers_t **self)
{
    if (!self || !*self)
        return;
    workers_t *w = *self;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->start);
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < w->n_threads; i++)
        pthread_join(w->threads[i], NULL);
    pthread_cond_destroy(&w->start);
    pthread_cond_destroy(&w->done);
    pthread_mutex_destroy(&w->mu);
    free(w->threads);
    free(w);
    *self = NULL;
}

void workers_start(workers_t *w, workers_fn *fn, void *arg, size_t n, size_t min_chunk)
{
    if (n == 0)
        return;
    if (!w) {
        fn(arg, 0, n);
        return;
    }
    size_t parts = w->n_threads + 1;
    if (min_chunk == 0)
        min_chunk = 1;
    if (n / parts < min_chunk)
        parts = n / min_chunk ? n / min_chunk : 1;
    pthread_mutex_lock(&w->mu);
    w->fn = fn;
    w->arg = arg;
    w->n = n;
    w->chunk = (n + parts - 1) / parts;
    w->n_chunks = (n + w->chunk - 1) / w->chunk;
    w->next_chunk = 0;
    w->running = 0;
    w->generation++;
    pthread_cond_broadcast(&w->start);
    pthread_mutex_unlock(&w->mu);
}

void workers_wait(workers_t *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    if (w->fn) {
        run_chunks(w);
        while (w->running > 0 || w->next_chunk < w->n_chunks)
            pthread_cond_wait(&w->done, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
}

void workers_run(workers_t *w, workers_fn *fn, void *arg, size_t n, size_t min_chunk)
{
    workers_start(w, fn, arg, n, min_chunk);
    workers_wait(w);
}

size_t workers_count(const workers_t *w)
{
    return w ? w->n_threads : 0;
}
