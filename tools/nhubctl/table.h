/*
 * table.h: aligned text tables for nhubctl's human output.
 *
 * Columns are aligned by the width a terminal gives the text, not by its
 * bytes: region names are often Chinese (北京, 新疆生产建设兵团), two columns
 * per character, and a table padded by bytes would lean. Cells are cleaned
 * on the way in: control characters (C0, DEL, C1) become '?', so text from
 * the hub (a refusal reason, a region name) cannot move the cursor or
 * change the terminal.
 */
#ifndef NHUBCTL_TABLE_H
#define NHUBCTL_TABLE_H

#include <stddef.h>
#include <stdio.h>

typedef struct ctl_table ctl_table_t;

/*
 * A table with `ncols` columns named by `headers` (copied). `align` has
 * one letter per column: 'l' pads on the right, 'r' on the left (numbers).
 * The last column is never padded. Returns NULL when out of memory; destroy
 * with ctl_table_destroy.
 */
ctl_table_t *ctl_table_new(size_t ncols, const char *const *headers, const char *align);

/* Destroy the table and set *self_p to NULL; accepts NULL. */
void ctl_table_destroy(ctl_table_t **self_p);

/*
 * Append one cell (copied, cleaned) to the current row; after `ncols`
 * cells the next cell starts a new row. NULL is printed as "-". A failure
 * to allocate is remembered and reported by ctl_table_print.
 */
void ctl_table_cell(ctl_table_t *self, const char *text);

/* ctl_table_cell with printf formatting (cells longer than 1 KiB are cut). */
void ctl_table_cellf(ctl_table_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Rows added so far (a row counts once its first cell is in). */
size_t ctl_table_rows(const ctl_table_t *self);

/*
 * Print the header line and every row to `out`, columns separated by two
 * spaces. Returns 0, or -1 if a cell could not be stored.
 */
int ctl_table_print(const ctl_table_t *self, FILE *out);

/* Display width of UTF-8 `text` in terminal columns (East Asian wide and
 * fullwidth characters count 2, combining marks 0, invalid bytes 1). */
size_t ctl_text_width(const char *text);

/* `text` into `out` (capacity `cap`, cut at a character boundary) with
 * control characters replaced by '?'. Returns out. */
char *ctl_text_clean(char *out, size_t cap, const char *text);

#endif
