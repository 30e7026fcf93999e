/*
 * log.h: the one logging module.
 *
 * Lines are machine-parseable key=value records on one stream (stderr by
 * default):
 *
 *   ts=2026-11-25T06:40:01.123Z level=info event=hub.listen endpoint=tcp://127.0.0.1:7400
 *
 * The caller writes the key=value pairs after the event name with printf
 * formatting. Values that may contain spaces go through log_quote(). Never
 * log payload contents or personal data: msg_ids (hex), region codes, item
 * codes, counts and reasons only.
 *
 * The logger is process-wide configuration (level and stream), set once at
 * start-up before threads exist; it is the only global besides the signal
 * flag.
 */
#ifndef NHUB_LOG_H
#define NHUB_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };

/* Set the minimum level written and the stream (NULL = stderr). */
void log_setup(enum log_level level, FILE *stream);

/* Parse "debug", "info", "warn", "error" or "off". Returns 0 or NHUB_EINVAL. */
int log_level_parse(const char *name, enum log_level *out);

/* Write one record: `event` is a dotted name, `fmt` the key=value pairs. */
void log_emit(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Quote `s` for a value: copies into `buf` (size `cap`), wrapping in double
 * quotes and escaping quotes, backslashes and control characters, truncating
 * to fit. Returns `buf`.
 */
const char *log_quote(char *buf, size_t cap, const char *s);

/* Hex of `len` bytes into `buf` (cap >= 2*len+1, truncated otherwise). Returns buf. */
const char *log_hex(char *buf, size_t cap, const void *data, size_t len);

/* Exactly 2n hex digits (either case) into n bytes: what log_hex writes,
 * read back. 0, or -1 for anything else. */
int log_unhex(const char *s, uint8_t *out, size_t n);

/* `ms` since the Unix epoch as UTC ISO 8601 with milliseconds, the form of
 * every log line's ts= (2026-12-07T10:55:24.128Z); returns buf. */
const char *log_time(char *buf, size_t cap, int64_t ms);

/*
 * And back: a UTC time as log_time writes it (2026-12-07T10:55:24.128Z),
 * with 0 to 3 digits of fraction (2026-12-07T10:55:24Z), or a date alone
 * (2026-12-07: its midnight), year 1970 or later, into ms since the
 * epoch. Impossible dates and times (02-30, 24:00, :60) are refused, not
 * normalised. Returns 0, or NHUB_EINVAL with *ms untouched.
 */
int log_time_parse(const char *text, int64_t *ms);

#define log_debug(ev, ...) log_emit(LOG_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...) log_emit(LOG_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_emit(LOG_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_emit(LOG_ERROR, ev, __VA_ARGS__)

#endif
