/*
 * proc.h: a program under test as a child process, its standard output
 * read through a pipe, for tests of command-line programs and scripts
 * (nhub-sim, tools/run-demo.sh).
 *
 * A test waits on what the program prints (th_proc_wait_for), never on a
 * timer: each wait is bounded by a timeout and returns as soon as the text
 * read so far satisfies the test's predicate. End of file on the pipe means
 * every process that held the program's standard output (the program and
 * whatever it started without redirecting it) has closed it, in practice
 * that they are gone.
 */
#ifndef NHUB_TEST_PROC_H
#define NHUB_TEST_PROC_H

#include <stddef.h>
#include <sys/types.h>

typedef struct th_proc {
    pid_t pid;  /* 0 once reaped */
    int out_fd; /* the read end of its standard output; -1 at EOF */
    char *text; /* everything read so far, NUL-terminated (never NULL after start) */
    size_t len, cap;
    int status; /* wait status once reaped */
} th_proc_t;

/*
 * Start argv[0] (a path) with argv, its environment the test's plus the
 * "NAME=VALUE" strings of `env` (NULL-terminated; may be NULL), standard
 * output into a pipe, standard error appended to `err_path` (NULL = the
 * test's). With `new_group` the child leads a process group of its own
 * (its pid), so a signal can go to everything it starts. Returns 0 or -1.
 */
int th_proc_start(th_proc_t *p, const char *const *argv, const char *const *env,
                  const char *err_path, int new_group);

/*
 * Read the output until pred(p->text, arg) returns non-zero (checked after
 * every read, and once before the first), EOF, or timeout_ms. Returns 1 if
 * the predicate held, 0 otherwise.
 */
int th_proc_wait_for(th_proc_t *p, int (*pred)(const char *text, void *arg), void *arg,
                     int timeout_ms);

/* Read until EOF or timeout_ms. Returns 1 at EOF. */
int th_proc_read_all(th_proc_t *p, int timeout_ms);

/*
 * Reap the child, waiting up to timeout_ms. Returns its exit code (0..255),
 * 128 + the signal if a signal ended it, or -1 if it is still running.
 */
int th_proc_reap(th_proc_t *p, int timeout_ms);

/* SIGKILL the child (or its group, if it leads one) if still running,
 * reap it, close the pipe and free the text. Accepts a zeroed struct. */
void th_proc_free(th_proc_t *p);

/*
 * Run argv[0] (a path) with argv to its end, its standard output written
 * to `out_path` and its standard error to `err_path` (both truncated).
 * Returns its exit code (0..255), 128 + the signal that ended it, or -1 if
 * it could not be run.
 */
int th_run_to_files(const char *const *argv, const char *out_path, const char *err_path);

/* What a program run by th_run_tool did. */
typedef struct th_run {
    int status; /* th_run_to_files' */
    char out[8192];
    char err[8192];
} th_run_t;

/*
 * Run program `name` of $NHUB_BIN (th_bin) with `args` (NULL-terminated,
 * at most 62), its standard output into `out_file` (NULL: DIR/NAME.out)
 * and its standard error into DIR/NAME.err; both read back into *r.
 */
void th_run_tool(const char *name, const char *dir, const char *out_file,
                 const char *const *args, th_run_t *r);

/* The text of file `path` into out[cap], NUL-terminated (cut at cap - 1;
 * "" if it cannot be read). */
void th_read_text(const char *path, char *out, size_t cap);

/*
 * The number written after the LAST occurrence of `label` in `text` (spaces
 * after the label skipped), or -1 if the label is not there or no number
 * follows it.
 */
long long th_number_after(const char *text, const char *label);

#endif
