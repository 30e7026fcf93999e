/*
 * compare.h: breaking changes between two protobuf descriptor sets.
 *
 * A descriptor set is a google.protobuf.FileDescriptorSet, as written by
 * `protoc-c --descriptor_set_out=F --include_imports`. compare_set_decode()
 * reads one from memory and checks it; compare_sets() compares an OLD set with
 * a NEW one and lists every change that breaks a reader or writer of OLD
 * (COMPARE_BREAKING), then what NEW adds (COMPARE_ADDED). Findings come file
 * by file in the order of the set, a message before what it nests, members
 * by number. The module does no I/O.
 *
 * How the two sides are paired:
 * - Packages: an OLD package is compared with the NEW package of the same
 *   full name. Failing that, a versioned package (last component v<digits>,
 *   e.g. nhub.insured.v1) is compared with the NEW package that has the same
 *   name without its version (nhub.insured.v2); when NEW has several, with the
 *   highest version. An OLD package with no counterpart is one breaking change
 *   (removed or renamed), not one per type inside it.
 * - Types (messages, enums, nested ones): by full name, with the package part
 *   replaced by its counterpart's: nhub.insured.v1.Record is looked for as
 *   nhub.insured.v2.Record. A field's message or enum type is compared the
 *   same way, so `.nhub.insured.v1.Kind` matches `.nhub.insured.v2.Kind` while
 *   a type of a package present on both sides under one name (an imported
 *   `.nhub.common.v1.Person`) must keep that name.
 * - Fields: by number. A number gone is a removal, or a renumbering when the
 *   field's name is found under another number; the same number under
 *   another name is a renaming (it breaks the JSON mapping). A field kept is
 *   also compared for its type, label (singular, required, repeated), proto3
 *   `optional`, oneof membership and, under the same name, JSON name.
 * - Enum values: by name (the JSON mapping); the same name with another
 *   number is a renumbering, a name gone whose number stays is a renaming,
 *   otherwise a removal.
 * Extensions, services, options and reserved ranges are not compared.
 *
 * Each finding is one line: the full name in OLD of what changed, in
 * parentheses what it is (`field 5`, `value 2`, `message`, `enum`,
 * `package`), then what happened, e.g.
 *   nhub.push.v1.Feedback.handled_time (field 5): type string -> int64
 *
 * Bounds: a set is at most COMPARE_MAX_BYTES long, holds at most
 * COMPARE_MAX_FILES files and COMPARE_MAX_ENTRIES encoded fields in the parts
 * it decodes, nests messages at most COMPARE_MAX_DEPTH deep, and no full name
 * exceeds COMPARE_NAME_MAX bytes; a set beyond them is refused before it can
 * exhaust memory, time or the stack.
 */
#ifndef NHUB_SCHEMA_COMPARE_H
#define NHUB_SCHEMA_COMPARE_H

#include <stddef.h>
#include <stdint.h>

#define COMPARE_MAX_BYTES (64u * 1024u * 1024u)
#define COMPARE_MAX_FILES 10000u
#define COMPARE_MAX_ENTRIES 1000000u
#define COMPARE_MAX_DEPTH 64
#define COMPARE_NAME_MAX 512

/* One decoded and checked descriptor set. Opaque. */
typedef struct compare_set compare_set_t;

/* The findings of one comparison. Opaque. */
typedef struct compare_report compare_report_t;

typedef enum compare_kind {
    COMPARE_BREAKING = 1, /* breaks a reader or writer of OLD */
    COMPARE_ADDED = 2,    /* new in NEW, compatible */
} compare_kind_t;

/*
 * Decode the FileDescriptorSet in `buf` (`len` bytes, only read during the
 * call) and check it: every name an identifier, every field with a number
 * and a known type, no name or field number given twice.
 * `name` names the set in error messages (usually its path).
 * On success *out is a new set; the caller frees it with compare_set_free().
 * On failure *out is NULL and `err` (`errcap` bytes, may be 0) holds one line
 * that starts with `name` and says what is wrong and where.
 * Returns 0, or
 *   NHUB_EMALFORMED  the bytes are not a descriptor set (truncated, corrupt,
 *                    no file in it, a descriptor that fails the checks);
 *   NHUB_ETOOBIG     beyond one of the bounds above;
 *   NHUB_ENOMEM      an allocation failed.
 */
int compare_set_decode(const uint8_t *buf, size_t len, const char *name, compare_set_t **out,
                       char *err, size_t errcap);

/* Free a set and set *set to NULL. Accepts NULL and *set == NULL. */
void compare_set_free(compare_set_t **set);

/*
 * Compare `old_set` with `new_set` (both borrowed, read only).
 * On success *out is a new report; the caller frees it with
 * compare_report_free(). Returns 0, or NHUB_ENOMEM (then *out is NULL).
 */
int compare_sets(const compare_set_t *old_set, const compare_set_t *new_set,
                 compare_report_t **out);

/* How many findings the report holds. */
size_t compare_report_len(const compare_report_t *r);

/* How many findings of `kind` the report holds. */
size_t compare_report_count(const compare_report_t *r, compare_kind_t kind);

/*
 * Finding `i` (< compare_report_len(r)): its text, without a trailing
 * newline, borrowed and valid until compare_report_free(); its kind in *kind
 * unless `kind` is NULL.
 */
const char *compare_report_line(const compare_report_t *r, size_t i, compare_kind_t *kind);

/* Free a report and set *r to NULL. Accepts NULL and *r == NULL. */
void compare_report_free(compare_report_t **r);

#endif
