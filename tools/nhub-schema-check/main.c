/*
 * main.c: nhub-schema-check, the breaking changes between two descriptor sets.
 *
 *   nhub-schema-check OLD NEW
 *
 * Reads OLD and NEW (FileDescriptorSets written by protoc-c
 * --descriptor_set_out --include_imports), compares them with compare.h and
 * prints one line per finding, breaking ones first, then a summary. The rules
 * belong to compare.h; this file handles arguments, reads each file within
 * COMPARE_MAX_BYTES, and prints. Exit status: 0 compatible, 1 breaking
 * changes found, 2 usage error or a file that cannot be read or decoded.
 */
#include "compare.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK_EXIT_COMPATIBLE 0
#define CHECK_EXIT_BREAKING 1
#define CHECK_EXIT_USAGE 2 /* also: a file that cannot be read or decoded */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: nhub-schema-check OLD NEW\n"
            "\n"
            "Compares two protobuf descriptor sets, as written by\n"
            "  protoc-c --descriptor_set_out=FILE --include_imports -I... a.proto ...\n"
            "and names each change from OLD to NEW that breaks a reader or writer of OLD,\n"
            "one line each, e.g.\n"
            "  nhub-schema-check: breaking: nhub.push.v1.Feedback.handled_time (field 5): "
            "type string -> int64\n"
            "\n"
            "Breaking: a package, message or enum of OLD that NEW lacks (removed or\n"
            "renamed); a field removed, renumbered, renamed (the JSON mapping) or changed\n"
            "in type, label (singular, required, repeated), proto3 optional, oneof or JSON\n"
            "name; an enum value removed, renumbered or renamed.\n"
            "Compatible, listed as \"added:\" lines: fields with new numbers, messages,\n"
            "enums, enum values, files and packages.\n"
            "\n"
            "Versioned packages: an OLD package is compared with the NEW package of the\n"
            "same full name; failing that, one whose last component is v<digits> is\n"
            "compared with the NEW package of the same name without its version\n"
            "(nhub.insured.v1 with nhub.insured.v2; the highest version when NEW has\n"
            "several). Type names are mapped the same way: a field of type\n"
            ".nhub.insured.v1.Record in OLD matches .nhub.insured.v2.Record in NEW, while\n"
            "a type of a package both sides hold under one name (an imported\n"
            ".nhub.common.v1.Person) must keep its full name.\n"
            "\n"
            "Not compared: extensions, services, options, reserved ranges.\n"
            "\n"
            "Exit status: 0 compatible, 1 breaking changes found, 2 usage error or a file\n"
            "that cannot be read or decoded (each file at most %u MiB).\n",
            COMPARE_MAX_BYTES >> 20);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("nhub-schema-check: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (try nhub-schema-check --help)\n", stderr);
    va_end(ap);
    return CHECK_EXIT_USAGE;
}

/* OLD and NEW from argv into paths[]. Returns 0, or the exit status of a usage error
 * (-1: --help shown). "--" ends the options, for a path that starts with "-". */
static int parse_args(int argc, char **argv, const char *paths[2])
{
    size_t n = 0;
    int options = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            usage(stdout);
            return -1;
        }
        if (options && !strcmp(a, "--")) {
            options = 0;
            continue;
        }
        if (options && a[0] == '-' && a[1] != '\0')
            return usage_error("unknown option \"%s\"", a);
        if (n == 2)
            return usage_error("too many arguments; give OLD and NEW");
        paths[n++] = a;
    }
    if (n != 2)
        return usage_error("give two descriptor sets, OLD and NEW");
    return 0;
}

/* Read all of `path`, a regular file of at most COMPARE_MAX_BYTES, into a new
 * buffer *out (free with free()) of *len bytes. On failure prints why, returns -1. */
static int read_set_file(const char *path, uint8_t **out, size_t *len)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        fprintf(stderr, "nhub-schema-check: %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        fprintf(stderr, "nhub-schema-check: %s: cannot stat: %s\n", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "nhub-schema-check: %s: not a regular file\n", path);
        goto done;
    }
    if (st.st_size > (off_t)COMPARE_MAX_BYTES) {
        fprintf(stderr,
                "nhub-schema-check: %s: %lld bytes; a descriptor set may have at most %u MiB\n",
                path, (long long)st.st_size, COMPARE_MAX_BYTES >> 20);
        goto done;
    }
    size_t cap = (size_t)st.st_size + 1; /* one byte more shows a file that grew */
    buf = malloc(cap);
    if (!buf) {
        fprintf(stderr, "nhub-schema-check: %s: out of memory\n", path);
        goto done;
    }
    while (n < cap) {
        ssize_t got = read(fd, buf + n, cap - n);
        if (got == 0)
            break;
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            fprintf(stderr, "nhub-schema-check: %s: cannot read: %s\n", path, strerror(errno));
            goto done;
        }
        n += (size_t)got;
    }
    if (n == cap) {
        fprintf(stderr, "nhub-schema-check: %s: changed while being read\n", path);
        goto done;
    }
    *out = buf;
    *len = n;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    close(fd);
    return rc;
}

/* Read and decode the set at `path`; on failure prints why and returns -1. */
static int load_set(const char *path, compare_set_t **out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[1024];

    if (read_set_file(path, &buf, &len) != 0)
        return -1;
    int rc = compare_set_decode(buf, len, path, out, err, sizeof err);
    free(buf);
    if (rc != 0) {
        fprintf(stderr, "nhub-schema-check: %s\n", err);
        return -1;
    }
    return 0;
}

static const char *plural(size_t n)
{
    return n == 1 ? "" : "s";
}

/* Print the findings and a summary to stdout; returns the exit status. */
static int print_report(const compare_report_t *r, const char *old_path, const char *new_path)
{
    static const struct {
        compare_kind_t kind;
        const char *label;
    } order[] = {{COMPARE_BREAKING, "breaking"}, {COMPARE_ADDED, "added"}};
    size_t breaking = compare_report_count(r, COMPARE_BREAKING);
    size_t added = compare_report_count(r, COMPARE_ADDED);

    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        for (size_t i = 0; i < compare_report_len(r); i++) {
            compare_kind_t kind;
            const char *line = compare_report_line(r, i, &kind);
            if (kind == order[k].kind)
                printf("nhub-schema-check: %s: %s\n", order[k].label, line);
        }
    }
    if (breaking)
        printf("nhub-schema-check: %s -> %s: %zu breaking change%s, %zu addition%s\n", old_path,
               new_path, breaking, plural(breaking), added, plural(added));
    else
        printf("nhub-schema-check: %s -> %s: compatible, %zu addition%s\n", old_path, new_path,
               added, plural(added));
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "nhub-schema-check: cannot write the report: %s\n", strerror(errno));
        return CHECK_EXIT_USAGE;
    }
    return breaking ? CHECK_EXIT_BREAKING : CHECK_EXIT_COMPATIBLE;
}

int main(int argc, char **argv)
{
    const char *paths[2];
    compare_set_t *sets[2] = {NULL, NULL};
    compare_report_t *r = NULL;
    int status = parse_args(argc, argv, paths);

    if (status != 0)
        return status < 0 ? CHECK_EXIT_COMPATIBLE : status;
    status = CHECK_EXIT_USAGE;
    if (load_set(paths[0], &sets[0]) != 0 || load_set(paths[1], &sets[1]) != 0)
        goto done;
    if (compare_sets(sets[0], sets[1], &r) != 0) {
        fprintf(stderr, "nhub-schema-check: out of memory\n");
        goto done;
    }
    status = print_report(r, paths[0], paths[1]);
done:
    compare_report_free(&r);
    compare_set_free(&sets[1]);
    compare_set_free(&sets[0]);
    return status;
}
