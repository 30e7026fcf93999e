/*
 * log.c: key=value log lines with a UTC timestamp (see log.h).
 *
 * Each record is formatted into a local buffer and written with one fwrite,
 * so lines from several threads do not interleave.
 */
#include "log.h"

#include "nhub_err.h"

#include <ctype.h>
#include <string.h>
#include <time.h>

static enum log_level g_level = LOG_INFO;
static FILE *g_stream;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void log_setup(enum log_level level, FILE *stream)
{
    g_level = level;
    g_stream = stream;
}

int log_level_parse(const char *name, enum log_level *out)
{
    for (int i = 0; i <= LOG_OFF; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return NHUB_EINVAL;
}

const char *log_time(char *buf, size_t cap, int64_t ms)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return buf;
}

/* Exactly `n` ASCII digits at `p`, as a number; -1 otherwise. */
static int log_digits(const char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* The date at text[0..10) and, if `clock`, the time at text[11..19), into *t;
 * every field checked, nothing normalised (02-30 and 24:00 are errors, not
 * another day). */
static int log_fields(const char *text, int clock, time_t *t)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (text[4] != '-' || text[7] != '-' ||
        (clock && (text[10] != 'T' || text[13] != ':' || text[16] != ':')))
        return NHUB_EINVAL;
    int y = log_digits(text, 4), mo = log_digits(text + 5, 2), d = log_digits(text + 8, 2);
    int h = clock ? log_digits(text + 11, 2) : 0, mi = clock ? log_digits(text + 14, 2) : 0;
    int sec = clock ? log_digits(text + 17, 2) : 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        sec < 0 || sec > 59)
        return NHUB_EINVAL;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > days[mo - 1] + (mo == 2 && leap))
        return NHUB_EINVAL;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    *t = timegm(&tm);
    return *t == (time_t)-1 ? NHUB_EINVAL : 0;
}

int log_time_parse(const char *text, int64_t *ms)
{
    size_t n = text ? strlen(text) : 0;
    int frac = 0, scale = 1000;
    time_t t;
    if (n == 10) /* a date alone: its midnight */
        return log_fields(text, 0, &t) ? NHUB_EINVAL : (*ms = (int64_t)t * 1000, 0);
    if (n < 20 || n > 24 || text[n - 1] != 'Z' || (n > 20 && (text[19] != '.' || n == 21)))
        return NHUB_EINVAL;
    for (size_t i = 20; i + 1 < n; i++) { /* .1, .12, .123 */
        if (text[i] < '0' || text[i] > '9')
            return NHUB_EINVAL;
        frac = frac * 10 + (text[i] - '0');
        scale /= 10;
    }
    if (log_fields(text, 1, &t) != 0)
        return NHUB_EINVAL;
    *ms = (int64_t)t * 1000 + (int64_t)frac * scale;
    return 0;
}

void log_emit(enum log_level level, const char *event, const char *fmt, ...)
{
    if (level < g_level || level >= LOG_OFF)
        return;
    char line[2048], when[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    log_time(when, sizeof when, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    int n = snprintf(line, sizeof line, "ts=%s level=%s event=%s", when, level_names[level], event);
    if (n < 0)
        return;
    size_t used = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (fmt && fmt[0] && used + 1 < sizeof line) {
        line[used++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + used, sizeof line - used, fmt, ap);
        va_end(ap);
        if (m > 0)
            used += (size_t)m < sizeof line - used ? (size_t)m : sizeof line - used - 1;
    }
    if (used + 1 >= sizeof line)
        used = sizeof line - 2;
    line[used++] = '\n';
    FILE *out = g_stream ? g_stream : stderr;
    fwrite(line, 1, used, out);
    fflush(out);
}

const char *log_quote(char *buf, size_t cap, const char *s)
{
    if (cap < 3) {
        if (cap)
            buf[0] = '\0';
        return buf;
    }
    size_t o = 0;
    buf[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        char esc[5];
        size_t n;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            n = 2;
        } else if (*p < 0x20 || *p == 0x7f) {
            n = (size_t)snprintf(esc, sizeof esc, "\\x%02x", *p);
        } else {
            esc[0] = (char)*p;
            n = 1;
        }
        if (o + n + 2 > cap)
            break;
        memcpy(buf + o, esc, n);
        o += n;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

int log_unhex(const char *s, uint8_t *out, size_t n)
{
    if (!s || strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]) ||
            sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

const char *log_hex(char *buf, size_t cap, const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = data;
    size_t o = 0;
    if (cap == 0)
        return buf;
    for (size_t i = 0; i < len && o + 2 < cap; i++) {
        buf[o++] = digits[p[i] >> 4];
        buf[o++] = digits[p[i] & 15];
    }
    buf[o] = '\0';
    return buf;
}
