/*
 * metrics.c: fixed-bucket histograms and the Prometheus text writer (see
 * metrics.h). Values are printed with 15 significant digits (exact for
 * counters below 10^15, and 0.1 stays 0.1), and +Inf, -Inf and NaN are
 * spelled as the format wants.
 */
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double metrics_seconds_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                         0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                         5,      10,    30,     60,    300,  3600};
const size_t metrics_seconds_n = sizeof metrics_seconds_bounds / sizeof metrics_seconds_bounds[0];
const double metrics_bytes_bounds[] = {1024,    4096,    16384,    65536,    262144,   1048576,
                                       2097152, 4194304, 8388608, 16777216, 67108864};
const size_t metrics_bytes_n = sizeof metrics_bytes_bounds / sizeof metrics_bytes_bounds[0];
const double metrics_count_bounds[] = {1,   2,    4,    8,    16,   32,    64,    128,  256,
                                       512, 1024, 2048, 4096, 8192, 16384, 32768, 65536};
const size_t metrics_count_n = sizeof metrics_count_bounds / sizeof metrics_count_bounds[0];

void metrics_hist_init(metrics_hist_t *h, const double *bounds, size_t n_bounds)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->n_bounds = n_bounds > METRICS_BUCKETS_MAX ? METRICS_BUCKETS_MAX : n_bounds;
}

void metrics_hist_observe(metrics_hist_t *h, double v)
{
    size_t i = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->n++;
    h->sum += v;
}

double metrics_hist_quantile(const metrics_hist_t *h, double q)
{
    if (h->n == 0)
        return 0;
    double rank = q * (double)h->n, below = 0;
    for (size_t i = 0; i <= h->n_bounds; i++) {
        double c = (double)h->counts[i];
        if (below + c >= rank && c > 0) {
            double lo = i ? h->bounds[i - 1] : 0;
            if (i == h->n_bounds) /* +Inf bucket: the largest bound is all we know */
                return lo;
            return lo + (h->bounds[i] - lo) * ((rank - below) / c);
        }
        below += c;
    }
    return h->n_bounds ? h->bounds[h->n_bounds - 1] : 0;
}

static void reserve(metrics_buf_t *b, size_t more)
{
    if (b->failed || b->len + more < b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap <= b->len + more)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->failed = 1;
        return;
    }
    b->data = d;
    b->cap = cap;
}

void metrics_printf(metrics_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    reserve(b, (size_t)n + 1);
    if (b->failed)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void metrics_family(metrics_buf_t *b, const char *name, const char *type, const char *help)
{
    metrics_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void escaped(metrics_buf_t *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            metrics_printf(b, "\\%c", *v);
        else if (*v == '\n')
            metrics_printf(b, "\\n");
        else
            metrics_printf(b, "%c", *v);
    }
}

static void labels_write(metrics_buf_t *b, const char *const *labels, const char *le)
{
    int any = 0;
    for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
        metrics_printf(b, "%s%s=\"", any ? "," : "{", labels[i]);
        escaped(b, labels[i + 1]);
        metrics_printf(b, "\"");
        any = 1;
    }
    if (le) {
        metrics_printf(b, "%sle=\"%s\"", any ? "," : "{", le);
        any = 1;
    }
    if (any)
        metrics_printf(b, "}");
}

static void value_write(metrics_buf_t *b, double v)
{
    if (isnan(v))
        metrics_printf(b, " NaN\n");
    else if (isinf(v))
        metrics_printf(b, " %s\n", v > 0 ? "+Inf" : "-Inf");
    else
        metrics_printf(b, " %.15g\n", v);
}

void metrics_sample(metrics_buf_t *b, const char *name, const char *const *labels, double value)
{
    metrics_printf(b, "%s", name);
    labels_write(b, labels, NULL);
    value_write(b, value);
}

void metrics_hist_write(metrics_buf_t *b, const char *name, const char *const *labels,
                        const metrics_hist_t *h)
{
    uint64_t cum = 0;
    char le[32];
    for (size_t i = 0; i <= h->n_bounds; i++) {
        cum += h->counts[i];
        if (i < h->n_bounds)
            snprintf(le, sizeof le, "%.15g", h->bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        metrics_printf(b, "%s_bucket", name);
        labels_write(b, labels, le);
        value_write(b, (double)cum);
    }
    metrics_printf(b, "%s_sum", name);
    labels_write(b, labels, NULL);
    value_write(b, h->sum);
    metrics_printf(b, "%s_count", name);
    labels_write(b, labels, NULL);
    value_write(b, (double)h->n);
}

void metrics_buf_free(metrics_buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}
