/*
 * metrics.h: histograms and the Prometheus text exposition format (version
 * 0.0.4) for /metrics.
 *
 * A histogram has fixed upper bounds chosen when it is declared (its
 * buckets), counts observations per bucket and keeps their sum; it is
 * plain memory, updated by the one thread that owns it (the hub loop), so
 * it needs no lock. The writer appends to a growing text buffer: families
 * (# HELP, # TYPE) then samples, label values escaped as the format says
 * (backslash, double quote, newline). Nothing here knows what is measured.
 */
#ifndef NHUB_METRICS_H
#define NHUB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_BUCKETS_MAX 24

typedef struct metrics_hist {
    const double *bounds; /* ascending upper bounds, n_bounds of them; +Inf is implied */
    size_t n_bounds;      /* <= METRICS_BUCKETS_MAX */
    uint64_t counts[METRICS_BUCKETS_MAX + 1]; /* per bucket, not cumulative; last = +Inf */
    uint64_t n;
    double sum;
} metrics_hist_t;

/* Seconds, 0.5 ms to an hour: ACK, commit and end-to-end latencies. */
extern const double metrics_seconds_bounds[];
extern const size_t metrics_seconds_n;
/* Bytes, 1 KiB to 64 MiB: the envelopes of one commit. */
extern const double metrics_bytes_bounds[];
extern const size_t metrics_bytes_n;
/* Counts, 1 to 65536 in powers of two: items per commit. */
extern const double metrics_count_bounds[];
extern const size_t metrics_count_n;

/* A histogram over `bounds` (borrowed, static). */
void metrics_hist_init(metrics_hist_t *h, const double *bounds, size_t n_bounds);

/* Count one observation of `v`. */
void metrics_hist_observe(metrics_hist_t *h, double v);

/* The value below which a fraction q (0..1) of observations lie, by linear
 * interpolation within the bucket; 0 with no observations. */
double metrics_hist_quantile(const metrics_hist_t *h, double q);

/* A growing text buffer; a failed allocation is sticky (metrics_buf_failed). */
typedef struct metrics_buf {
    char *data;
    size_t len, cap;
    int failed;
} metrics_buf_t;

/* Append printf-style text. */
void metrics_printf(metrics_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "# HELP name help\n# TYPE name type\n"; type is counter, gauge or histogram. */
void metrics_family(metrics_buf_t *b, const char *name, const char *type, const char *help);

/*
 * One sample: name{labels} value. `labels` is NULL or a NULL-terminated
 * list of name, value, name, value, ...; values are escaped here.
 */
void metrics_sample(metrics_buf_t *b, const char *name, const char *const *labels, double value);

/* The _bucket (cumulative, with le), _sum and _count samples of `h`. */
void metrics_hist_write(metrics_buf_t *b, const char *name, const char *const *labels,
                        const metrics_hist_t *h);

/* Free the buffer's memory; the struct can be used again. */
void metrics_buf_free(metrics_buf_t *b);

#endif
