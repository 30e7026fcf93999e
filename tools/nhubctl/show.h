/*
 * show.h: what nhubctl prints for each answer of the hub's API.
 *
 * Each ctl_show_X takes the parsed answer of one GET (borrowed) and prints
 * it for a person: aligned tables, times as UTC RFC 3339 with milliseconds
 * (2026-12-07T11:38:03.203Z), "-" for a time that has not come (0) or a
 * field the hub did not send. They return 0, or -1 when the answer lacks
 * the part it is about (no "regions" array in the answer to /regions):
 * the caller reports that as not the API. Fields the API adds later
 * are ignored by the tables and kept by --json.
 *
 * ctl_show_json prints the body as received, indented, for scripts: it
 * changes only whitespace, so every number keeps its digits.
 */
#ifndef NHUBCTL_SHOW_H
#define NHUBCTL_SHOW_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

int ctl_show_status(const json_t *answer, FILE *out);
int ctl_show_regions(const json_t *answer, FILE *out);
int ctl_show_queues(const json_t *answer, FILE *out);
int ctl_show_items(const json_t *answer, FILE *out);
int ctl_show_cases(const json_t *answer, FILE *out);
int ctl_show_case(const json_t *answer, FILE *out);
int ctl_show_held(const json_t *answer, FILE *out);
int ctl_show_refusals(const json_t *answer, FILE *out);
int ctl_show_security(const json_t *answer, FILE *out);
int ctl_show_journal(const json_t *answer, FILE *out);

/* `body` (`len` bytes, valid JSON) indented by two spaces per level, one
 * member per line, and a final newline. Returns 0, or -1 on a write error. */
int ctl_show_json(const char *body, size_t len, FILE *out);

/* `seconds` as a short duration: 45s, 12m05s, 3h07m, 2d04h. Into buf. */
const char *ctl_show_duration(char *buf, size_t cap, double seconds);

#endif
