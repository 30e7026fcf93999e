/*
 * table.c: cells gathered row by row, then printed with every column padded
 * to its widest cell (see table.h).
 *
 * The width table is the short list of ranges Unicode's East Asian Width
 * property marks W or F that region names, item codes and reasons can hold
 * (CJK, Hangul, kana, fullwidth forms, the supplementary ideograph planes),
 * plus the combining marks that take no column. It is not wcwidth(): that
 * needs a UTF-8 locale, which operators' shells and cron jobs often lack.
 */
#include "table.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ctl_table {
    size_t ncols;
    char **cells; /* row-major; headers are row 0 */
    size_t ncells, cap;
    char *align;
    int failed;
};

/* Decode one UTF-8 sequence at s (length left `n` > 0). Returns its length
 * (1 for an invalid byte, with *cp = 0xFFFD). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len = c < 0x80             ? 1
                 : (c & 0xE0) == 0xC0 ? 2
                 : (c & 0xF0) == 0xE0 ? 3
                 : (c & 0xF8) == 0xF0 ? 4
                                      : 0;
    if (len == 1) {
        *cp = c;
        return 1;
    }
    if (len == 0 || len > n) {
        *cp = 0xFFFD;
        return 1;
    }
    uint32_t v = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

static int is_wide(uint32_t cp)
{
    static const uint32_t ranges[][2] = {
        {0x1100, 0x115F},   {0x2E80, 0x303E},   {0x3041, 0x33FF},   {0x3400, 0x4DBF},
        {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},   {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},
        {0xFE30, 0xFE4F},   {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},   {0x1F300, 0x1F64F},
        {0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (cp >= ranges[i][0] && cp <= ranges[i][1])
            return 1;
    return 0;
}

static int is_zero_width(uint32_t cp)
{
    return (cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x200B && cp <= 0x200F) ||
           (cp >= 0xFE00 && cp <= 0xFE0F) || (cp >= 0x20D0 && cp <= 0x20FF);
}

size_t ctl_text_width(const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), w = 0;
    while (n > 0) {
        uint32_t cp;
        size_t len = utf8_next(s, n, &cp);
        w += is_zero_width(cp) ? 0 : is_wide(cp) ? 2 : 1;
        s += len;
        n -= len;
    }
    return w;
}

char *ctl_text_clean(char *out, size_t cap, const char *text)
{
    if (cap == 0)
        return out;
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), used = 0;
    while (n > 0) {
        uint32_t cp;
        size_t len = utf8_next(s, n, &cp);
        int bad = cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || (len == 1 && cp > 0x7F);
        size_t put = bad ? 1 : len;
        if (used + put >= cap)
            break;
        if (bad)
            out[used] = '?';
        else
            memcpy(out + used, s, len);
        used += put;
        s += len;
        n -= len;
    }
    out[used] = '\0';
    return out;
}

ctl_table_t *ctl_table_new(size_t ncols, const char *const *headers, const char *align)
{
    ctl_table_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->ncols = ncols;
    self->align = strdup(align);
    if (!self->align || strlen(align) != ncols) {
        ctl_table_destroy(&self);
        return NULL;
    }
    for (size_t i = 0; i < ncols; i++)
        ctl_table_cell(self, headers[i]);
    if (self->failed)
        ctl_table_destroy(&self);
    return self;
}

void ctl_table_destroy(ctl_table_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ctl_table_t *self = *self_p;
    for (size_t i = 0; i < self->ncells; i++)
        free(self->cells[i]);
    free(self->cells);
    free(self->align);
    free(self);
    *self_p = NULL;
}

void ctl_table_cell(ctl_table_t *self, const char *text)
{
    if (self->ncells == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 64;
        char **grown = realloc(self->cells, cap * sizeof *grown);
        if (!grown) {
            self->failed = 1;
            return;
        }
        self->cells = grown;
        self->cap = cap;
    }
    const char *src = text ? text : "-";
    size_t cap = strlen(src) + 1;
    char *copy = malloc(cap);
    if (!copy) {
        self->failed = 1;
        return;
    }
    self->cells[self->ncells++] = ctl_text_clean(copy, cap, src);
}

void ctl_table_cellf(ctl_table_t *self, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ctl_table_cell(self, buf);
}

size_t ctl_table_rows(const ctl_table_t *self)
{
    return (self->ncells + self->ncols - 1) / self->ncols - 1;
}

static void print_padding(FILE *out, size_t n)
{
    while (n-- > 0)
        fputc(' ', out);
}

int ctl_table_print(const ctl_table_t *self, FILE *out)
{
    if (self->failed)
        return -1;
    size_t *width = calloc(self->ncols, sizeof *width);
    if (!width)
        return -1;
    for (size_t i = 0; i < self->ncells; i++) {
        size_t w = ctl_text_width(self->cells[i]);
        if (w > width[i % self->ncols])
            width[i % self->ncols] = w;
    }
    for (size_t i = 0; i < self->ncells; i++) {
        size_t col = i % self->ncols;
        const char *cell = self->cells[i];
        size_t pad = width[col] - ctl_text_width(cell);
        int last = col == self->ncols - 1 || i == self->ncells - 1;
        if (self->align[col] == 'r')
            print_padding(out, pad);
        fputs(cell, out);
        if (last) {
            fputc('\n', out);
            continue;
        }
        print_padding(out, self->align[col] == 'r' ? 2 : pad + 2);
    }
    free(width);
    return 0;
}
