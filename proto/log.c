/*
 * log.c: key=value log lines with a UTC timestamp (see log.h).
 *
 * Each record is formatted into a local buffer and written with one fwrite,
 * so lines from several threads do not interleave.
 */
#include "log.h"

#include "nhub_err.h"

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
