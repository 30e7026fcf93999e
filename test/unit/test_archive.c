/*
 * test_archive.c: proto/archive.h. A file written and read back gives the
 * same header, checkpoints, records and trailer, and its file hash is the
 * SHA-256 of its bytes (computed here, not by the code under test); every
 * cut of it fails with "truncated" and never reads past its end; the
 * writer refuses what would make a file that does not verify (records out
 * of order, a checkpoint after a record or outside the range); only sync
 * makes the file appear; abort leaves nothing.
 */
#include "archive.h"
#include "harness.h"
#include "nhub_err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define FIRST 5
#define LAST 7

typedef struct fixture {
    char dir[256];
    char path[400];
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx || th_tmpdir(fx->dir, sizeof fx->dir) != 0)
        return -1;
    snprintf(fx->path, sizeof fx->path, "%s/a.nharc", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    th_rmrf(fx->dir);
    free(fx);
    return 0;
}

static void header(archive_header_t *h)
{
    memset(h, 0, sizeof *h);
    memset(h->hub_id, 0xab, sizeof h->hub_id);
    h->alg = TLOG_SHA256;
    h->first_seq = FIRST;
    h->last_seq = LAST;
    memset(h->prev_hash, 0x11, sizeof h->prev_hash);
    h->state_len = 42;
    memset(h->state, 0x22, h->state_len);
}

static void record(uint64_t seq, uint8_t *buf, size_t *len)
{
    memset(buf, (int)seq, 32); /* the "chain hash" */
    *len = 32 + (size_t)snprintf((char *)buf + 32, 64, "event of record %llu",
                                 (unsigned long long)seq);
}

/* Write the whole file; returns its hash as the writer computed it. */
static void write_file(const fixture_t *fx, uint8_t file_hash[32])
{
    archive_header_t h;
    archive_writer_t *w = NULL;
    char err[256];
    uint8_t buf[128], end_state[20], last_hash[32];
    size_t len;
    header(&h);
    assert_int_equal(archive_writer_open(fx->path, &h, &w, err, sizeof err), 0);
    assert_int_equal(archive_writer_checkpoint(w, 5, "cp 5\n", 5), 0);
    assert_int_equal(archive_writer_checkpoint(w, 7, "cp 7\n", 5), 0);
    for (uint64_t seq = FIRST; seq <= LAST; seq++) {
        record(seq, buf, &len);
        assert_int_equal(archive_writer_record(w, seq, buf, len), 0);
    }
    memset(end_state, 0x33, sizeof end_state);
    memset(last_hash, LAST, sizeof last_hash);
    assert_int_equal(
        archive_writer_finish(w, end_state, sizeof end_state, last_hash, file_hash), 0);
    assert_int_equal(access(fx->path, F_OK), -1); /* not before the sync */
    assert_int_equal(archive_writer_sync(w, err, sizeof err), 0);
    archive_writer_free(&w);
    assert_null(w);
}

static size_t read_bytes(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void test_written_file_reads_back_the_same(void **state)
{
    fixture_t *fx = *state;
    uint8_t hash[32], bytes[4096], mine[32];
    write_file(fx, hash);
    size_t n = read_bytes(fx->path, bytes, sizeof bytes);
    th_sha256(bytes, n - 32, NULL, 0, NULL, 0, mine);
    assert_memory_equal(mine, hash, 32);
    assert_memory_equal(bytes + n - 32, hash, 32);
    assert_memory_equal(bytes, "NHUBARC1", 8);

    archive_reader_t *r = NULL;
    archive_header_t h, want;
    char err[256];
    header(&want);
    assert_int_equal(archive_reader_open(fx->path, &r, &h, err, sizeof err), 0);
    assert_int_equal(h.version, ARCHIVE_VERSION);
    assert_memory_equal(h.hub_id, want.hub_id, sizeof h.hub_id);
    assert_int_equal(h.first_seq, FIRST);
    assert_int_equal(h.last_seq, LAST);
    assert_int_equal(h.state_len, want.state_len);
    assert_memory_equal(h.state, want.state, h.state_len);
    uint64_t seq, size;
    const uint8_t *value;
    const char *note;
    size_t len;
    /* Records only after the checkpoints. */
    assert_int_equal(archive_reader_record(r, &seq, &value, &len, err, sizeof err), NHUB_EINVAL);
    assert_int_equal(archive_reader_checkpoint(r, &size, &note, &len, err, sizeof err), 0);
    assert_int_equal(size, 5);
    assert_memory_equal(note, "cp 5\n", 5);
    assert_int_equal(archive_reader_checkpoint(r, &size, &note, &len, err, sizeof err), 0);
    assert_int_equal(size, 7);
    assert_int_equal(archive_reader_checkpoint(r, &size, &note, &len, err, sizeof err),
                     NHUB_ENOTFOUND);
    for (uint64_t s = FIRST; s <= LAST; s++) {
        uint8_t buf[128];
        size_t blen;
        record(s, buf, &blen);
        assert_int_equal(archive_reader_record(r, &seq, &value, &len, err, sizeof err), 0);
        assert_int_equal(seq, s);
        assert_int_equal(len, blen);
        assert_memory_equal(value, buf, len);
    }
    assert_int_equal(archive_reader_record(r, &seq, &value, &len, err, sizeof err),
                     NHUB_ENOTFOUND);
    archive_trailer_t t;
    assert_int_equal(archive_reader_trailer(r, &t, err, sizeof err), 0);
    assert_int_equal(t.state_len, 20);
    assert_memory_equal(t.file_hash, hash, 32);
    assert_memory_equal(t.computed_hash, hash, 32);
    archive_reader_free(&r);
    assert_null(r);
}

/* Read the file as far as it goes; the first error. */
static int read_through(const char *path, char *err, size_t cap)
{
    archive_reader_t *r = NULL;
    archive_header_t h;
    archive_trailer_t t;
    uint64_t seq, size;
    const uint8_t *value;
    const char *note;
    size_t len;
    int rc = archive_reader_open(path, &r, &h, err, cap);
    while (rc == 0)
        rc = archive_reader_checkpoint(r, &size, &note, &len, err, cap);
    if (rc == NHUB_ENOTFOUND)
        while ((rc = archive_reader_record(r, &seq, &value, &len, err, cap)) == 0)
            ;
    if (rc == NHUB_ENOTFOUND)
        rc = archive_reader_trailer(r, &t, err, cap);
    if (rc == 0 && memcmp(t.file_hash, t.computed_hash, 32) != 0)
        rc = NHUB_EREFUSED;
    archive_reader_free(&r);
    return rc;
}

static void test_every_cut_of_the_file_is_named_truncated(void **state)
{
    fixture_t *fx = *state;
    uint8_t hash[32], bytes[4096];
    char cut[450], err[256];
    write_file(fx, hash);
    size_t n = read_bytes(fx->path, bytes, sizeof bytes);
    snprintf(cut, sizeof cut, "%s/cut.nharc", fx->dir);
    for (size_t keep = 0; keep < n; keep++) {
        FILE *f = fopen(cut, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(bytes, 1, keep, f), keep);
        fclose(f);
        err[0] = 0;
        int rc = read_through(cut, err, sizeof err);
        if (rc != NHUB_EMALFORMED || !strstr(err, "truncated"))
            fail_msg("cut at %zu of %zu: rc %d, %s", keep, n, rc, err);
    }
    /* One byte more: not an archive's end. */
    FILE *f = fopen(cut, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fputc(0, f);
    fclose(f);
    assert_int_equal(read_through(cut, err, sizeof err), NHUB_EMALFORMED);
    assert_non_null(strstr(err, "after the file hash"));
    /* A byte changed in a record: read through, the file hash says so. */
    bytes[n / 2] ^= 1;
    f = fopen(cut, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
    assert_int_equal(read_through(cut, err, sizeof err), NHUB_EREFUSED);
}

static void test_writer_refuses_what_would_not_verify(void **state)
{
    fixture_t *fx = *state;
    archive_header_t h;
    archive_writer_t *w = NULL;
    char err[256];
    uint8_t buf[128], end[10] = {0}, last[32] = {0};
    size_t len;
    header(&h);
    h.last_seq = FIRST - 1;
    assert_int_equal(archive_writer_open(fx->path, &h, &w, err, sizeof err), NHUB_EINVAL);
    header(&h);
    assert_int_equal(archive_writer_open(fx->path, &h, &w, err, sizeof err), 0);
    assert_int_equal(archive_writer_checkpoint(w, FIRST - 1, "x\n", 2), NHUB_EINVAL);
    assert_int_equal(archive_writer_checkpoint(w, LAST + 1, "x\n", 2), NHUB_EINVAL);
    assert_int_equal(archive_writer_checkpoint(w, 6, "x\n", 2), 0);
    assert_int_equal(archive_writer_checkpoint(w, 6, "x\n", 2), NHUB_EINVAL); /* not after */
    record(FIRST + 1, buf, &len);
    assert_int_equal(archive_writer_record(w, FIRST + 1, buf, len), NHUB_EINVAL);
    record(FIRST, buf, &len);
    assert_int_equal(archive_writer_record(w, FIRST, buf, len), 0);
    assert_int_equal(archive_writer_checkpoint(w, 7, "x\n", 2), NHUB_EINVAL);
    /* Not every record: no trailer. */
    assert_int_equal(archive_writer_finish(w, end, sizeof end, last, NULL), NHUB_EINVAL);
    assert_int_equal(archive_writer_sync(w, err, sizeof err), NHUB_EINVAL);
    archive_writer_abort(&w);
    assert_null(w);
    char tmp[450];
    snprintf(tmp, sizeof tmp, "%s.tmp", fx->path);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(access(fx->path, F_OK), -1);
    /* A directory that is not there: a message naming the file. */
    char bad[450];
    snprintf(bad, sizeof bad, "%s/no-such-dir/a.nharc", fx->dir);
    assert_int_equal(archive_writer_open(bad, &h, &w, err, sizeof err), NHUB_EIO);
    assert_non_null(strstr(err, "no-such-dir"));
    assert_non_null(strstr(err, "No such file"));
    /* Not an archive. */
    archive_reader_t *r = NULL;
    FILE *f = fopen(fx->path, "wb");
    assert_non_null(f);
    fputs("hello, this is not an archive file at all", f);
    fclose(f);
    assert_int_equal(archive_reader_open(fx->path, &r, &h, err, sizeof err), NHUB_EMALFORMED);
    assert_non_null(strstr(err, "not an nhub archive"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_written_file_reads_back_the_same, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_cut_of_the_file_is_named_truncated, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_writer_refuses_what_would_not_verify, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("archive", tests, NULL, NULL);
}
