/*
 * conf.h: a table-driven reader for YAML configuration files.
 *
 * The hub and the adapter CLI describe their configuration as a schema: an
 * array of conf_key_t, one per key, saying the key's type and where its value
 * goes in a plain C struct (an offset, as from offsetof()). conf_load_file()
 * walks the YAML event stream against that schema and writes each value into
 * the caller's struct. Nothing is allocated in the target: strings and lists
 * are fixed-size arrays, so a loaded configuration is a flat value that can be
 * copied or freed in one piece.
 *
 * Rules a configuration file must follow, all reported as errors:
 *   - the top level is a mapping; one YAML document per file;
 *   - every key is known to the schema (a typo is an error, not a silent
 *     default), appears at most once, and REQUIRED keys are present;
 *   - every value has the type and range the schema gives;
 *   - anchors and aliases are refused: they make a file harder to read and
 *     let a small file expand into a large one.
 *
 * Errors are written into a caller-supplied buffer as
 *
 *     FILE:LINE:COLUMN: message
 *
 * with 1-based line and column (from libyaml's marks), naming the key by its
 * dotted path ("limits.max_frame", "regions[3].code") and saying what was
 * expected and what was found. Loading stops at the first error.
 *
 * Keys absent from the file keep whatever the target held before the call:
 * fill the target with defaults first.
 *
 * Any input is safe: the file size is bounded (CONF_FILE_MAX), every copy is
 * bounded by the schema, and every path frees what it took. The code keeps no
 * global state and is reentrant.
 */
#ifndef NHUB_CONF_H
#define NHUB_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest configuration text accepted, in bytes. */
#define CONF_FILE_MAX (16u * 1024u * 1024u)

/* Most keys in one schema level (the loader tracks duplicates in a 64-bit mask). */
#define CONF_KEYS_MAX 64

/* Deepest nesting of MAP / SEQ_OF_MAPS schemas. */
#define CONF_DEPTH_MAX 8

/*
 * What a key's value is and how it is stored at `offset` in the target.
 */
typedef enum conf_type {
    CONF_STRING = 1,  /* char[size], NUL-terminated; longer values are an error */
    CONF_BOOL,        /* bool; true/false/yes/no (any case) */
    CONF_INT64,       /* int64_t; decimal, optional sign */
    CONF_SIZE,        /* uint64_t bytes; 1048576 or 1MiB, see conf_parse_size() */
    CONF_DURATION_MS, /* int64_t ms; 500 or 500ms/2s/5m/1h/7d, see conf_parse_duration_ms() */
    CONF_ENUM,        /* int: index of the value in `choices` */
    CONF_STRING_LIST, /* char[max_count][size] plus a size_t count at count_offset */
    CONF_MAP,         /* a nested struct described by `schema` */
    CONF_SEQ_OF_MAPS, /* elem[max_count] (each `size` bytes) plus a size_t count */
} conf_type_t;

/* conf_key_t.flags */
#define CONF_REQUIRED 0x1u /* the key must be present */

/*
 * One key of a schema. A schema is an array of these ended by an entry whose
 * name is NULL (CONF_KEY_END). Use the CONF_KEY_* macros below to fill them:
 * they take offsets and sizes from the struct so the two cannot drift apart.
 */
typedef struct conf_key {
    const char *name; /* the YAML key; NULL ends the schema */
    conf_type_t type;
    unsigned flags; /* CONF_REQUIRED or 0 */
    size_t offset;  /* of the value in the target (for MAP: of the sub-struct) */
    /*
     * STRING: capacity of the char array, including the NUL.
     * STRING_LIST: capacity of each string. SEQ_OF_MAPS: size of one element.
     * Other types: sizeof the field, checked against the type.
     */
    size_t size;
    /*
     * INT64, SIZE, DURATION_MS: inclusive bounds of the value (SIZE bounds
     * must be >= 0). When both are 0 the value is not bounded.
     */
    int64_t min;
    int64_t max;
    const char *const *choices;    /* ENUM: NULL-terminated names */
    const struct conf_key *schema; /* MAP, SEQ_OF_MAPS: keys of the sub-struct */
    const void *elem_default;      /* SEQ_OF_MAPS: copied into each element first
                                      (NULL: elements start zeroed) */
    size_t min_count;              /* STRING_LIST, SEQ_OF_MAPS: fewest entries */
    size_t max_count;              /* STRING_LIST, SEQ_OF_MAPS: capacity */
    size_t count_offset;           /* STRING_LIST, SEQ_OF_MAPS: size_t entry count */
} conf_key_t;

/* One initializer per macro reads better than the formatter's layout. */
/* clang-format off */
#define CONF_FIELD_SIZE(T, f) sizeof(((T *)0)->f)

/* `char f[N]` */
#define CONF_KEY_STRING(T, f, key, fl)                                                             \
    { .name = (key), .type = CONF_STRING, .flags = (fl), .offset = offsetof(T, f),                 \
      .size = CONF_FIELD_SIZE(T, f) }

/* `bool f` */
#define CONF_KEY_BOOL(T, f, key, fl)                                                               \
    { .name = (key), .type = CONF_BOOL, .flags = (fl), .offset = offsetof(T, f),                   \
      .size = CONF_FIELD_SIZE(T, f) }

/* `int64_t f`, lo..hi inclusive */
#define CONF_KEY_INT64(T, f, key, fl, lo, hi)                                                      \
    { .name = (key), .type = CONF_INT64, .flags = (fl), .offset = offsetof(T, f),                  \
      .size = CONF_FIELD_SIZE(T, f), .min = (lo), .max = (hi) }

/* `uint64_t f` bytes, lo..hi inclusive */
#define CONF_KEY_SIZE(T, f, key, fl, lo, hi)                                                       \
    { .name = (key), .type = CONF_SIZE, .flags = (fl), .offset = offsetof(T, f),                   \
      .size = CONF_FIELD_SIZE(T, f), .min = (lo), .max = (hi) }

/* `int64_t f` milliseconds, lo..hi inclusive (in ms) */
#define CONF_KEY_DURATION_MS(T, f, key, fl, lo, hi)                                                \
    { .name = (key), .type = CONF_DURATION_MS, .flags = (fl), .offset = offsetof(T, f),            \
      .size = CONF_FIELD_SIZE(T, f), .min = (lo), .max = (hi) }

/* `int f` (or an enum of int size), set to the index of the name in `names` */
#define CONF_KEY_ENUM(T, f, key, fl, names)                                                        \
    { .name = (key), .type = CONF_ENUM, .flags = (fl), .offset = offsetof(T, f),                   \
      .size = CONF_FIELD_SIZE(T, f), .choices = (names) }

/* `char f[N][M]` with `size_t countf` */
#define CONF_KEY_STRING_LIST(T, f, countf, key, fl, minc)                                          \
    { .name = (key), .type = CONF_STRING_LIST, .flags = (fl), .offset = offsetof(T, f),            \
      .size = CONF_FIELD_SIZE(T, f[0]),                                                            \
      .max_count = CONF_FIELD_SIZE(T, f) / CONF_FIELD_SIZE(T, f[0]), .min_count = (minc),          \
      .count_offset = offsetof(T, countf) }

/* `struct sub f`, described by schema `sub_schema` with offsets relative to f */
#define CONF_KEY_MAP(T, f, key, fl, sub_schema)                                                    \
    { .name = (key), .type = CONF_MAP, .flags = (fl), .offset = offsetof(T, f),                    \
      .size = CONF_FIELD_SIZE(T, f), .schema = (sub_schema) }

/* `elem_t f[N]` with `size_t countf`; each element described by `elem_schema` */
#define CONF_KEY_SEQ_OF_MAPS(T, f, countf, key, fl, elem_schema, minc, def)                        \
    { .name = (key), .type = CONF_SEQ_OF_MAPS, .flags = (fl), .offset = offsetof(T, f),            \
      .size = CONF_FIELD_SIZE(T, f[0]), .schema = (elem_schema), .elem_default = (def),            \
      .max_count = CONF_FIELD_SIZE(T, f) / CONF_FIELD_SIZE(T, f[0]), .min_count = (minc),          \
      .count_offset = offsetof(T, countf) }

#define CONF_KEY_END { .name = NULL }
/* clang-format on */

/* A position in the configuration text, 1-based. */
typedef struct conf_mark {
    size_t line;
    size_t column;
} conf_mark_t;

/*
 * Where each loaded value was found, for checks the schema cannot express
 * (cross-field rules, duplicates across list entries) that still want to
 * report FILE:LINE:COLUMN. Opaque; made by the *_marked loaders.
 */
typedef struct conf_marks conf_marks_t;

/*
 * Load the YAML file at `path` into `target` as described by `schema`.
 *
 * `err` (capacity `errcap`, may be NULL/0) receives "" on success or a
 * one-line message on failure. On failure `target` may be partly written:
 * discard it.
 *
 * Returns 0, or
 *   NHUB_EIO      the file cannot be opened or read (message: file, strerror);
 *   NHUB_ECONFIG  the text is not valid YAML, too large, or does not fit the
 *                 schema (message: FILE:LINE:COLUMN: what and why);
 *   NHUB_EINVAL   the schema itself is malformed (a programmer error);
 *   NHUB_ENOMEM   an allocation failed.
 */
int conf_load_file(const char *path, const conf_key_t *schema, void *target, char *err,
                   size_t errcap);

/*
 * As conf_load_file(), from `len` bytes of `text` (need not be NUL-
 * terminated). `name` stands for the file name in messages. Never returns
 * NHUB_EIO.
 */
int conf_load_string(const char *name, const char *text, size_t len, const conf_key_t *schema,
                     void *target, char *err, size_t errcap);

/*
 * As conf_load_file(), and on success also return in `*marks` where each value
 * was found (caller owns it, free with conf_marks_destroy()). On failure
 * `*marks` is set to NULL.
 */
int conf_load_file_marked(const char *path, const conf_key_t *schema, void *target,
                          conf_marks_t **marks, char *err, size_t errcap);

/* As conf_load_string(), returning marks as conf_load_file_marked() does. */
int conf_load_string_marked(const char *name, const char *text, size_t len,
                            const conf_key_t *schema, void *target, conf_marks_t **marks, char *err,
                            size_t errcap);

/*
 * Position of the value at `path`: "" for the whole document, "hub.listen",
 * "regions" (the list), "regions[3]" (an entry), "regions[3].code",
 * "tags[0]". Returns 0 and fills `*out`, or NHUB_ENOTFOUND when the key was
 * not in the file (it kept its default).
 */
int conf_marks_find(const conf_marks_t *self, const char *path, conf_mark_t *out);

/*
 * Format "FILE:LINE:COLUMN: message" into `err` for the value at `path`, or at
 * its nearest ancestor present in the file ("limits.map_size" falls back to
 * "limits", then to the document). printf-style `fmt`. `self` may be NULL
 * (then "message" alone). Returns NHUB_ECONFIG, so a check can end with
 * `return conf_marks_error(...)`.
 */
int conf_marks_error(const conf_marks_t *self, const char *path, char *err, size_t errcap,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Free marks and set `*self` to NULL. Accepts NULL and a pointer to NULL. */
void conf_marks_destroy(conf_marks_t **self);

/*
 * Parse a byte size: decimal digits, optionally followed directly by one of
 * B, KiB, MiB, GiB, TiB (powers of 1024), e.g. "1048576", "64MiB". No sign,
 * no spaces, no fractions; decimal units (KB, MB) are refused as ambiguous.
 * Returns 0 and sets `*out`, NHUB_EINVAL for malformed text, or NHUB_ETOOBIG
 * if the value does not fit in 64 bits.
 */
int conf_parse_size(const char *s, uint64_t *out);

/*
 * Parse a duration into milliseconds: decimal digits, optionally followed
 * directly by ms, s, m, h or d, e.g. "500" (ms), "500ms", "2s", "7d". No sign,
 * no spaces, no fractions. Returns 0 and sets `*out`, NHUB_EINVAL for
 * malformed text, or NHUB_ETOOBIG if the value exceeds INT64_MAX ms.
 */
int conf_parse_duration_ms(const char *s, int64_t *out);

/*
 * Write `bytes` into `buf` in the largest unit that is exact ("64MiB",
 * "1536KiB", "1000B"), for messages and logs. Truncated to `cap`. Returns buf.
 */
const char *conf_format_size(uint64_t bytes, char *buf, size_t cap);

/* Write `ms` in the largest exact unit ("7d", "90s", "1500ms"). Returns buf. */
const char *conf_format_duration_ms(int64_t ms, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
