/*
 * archive.c: writing and reading archive files of the journal (archive.h).
 *
 * Both sides keep a running SHA-256 of every byte they pass, so the file
 * hash costs no second pass: the writer appends it, the reader compares it.
 * Writes go through stdio with a large buffer (a record is a few hundred
 * bytes), and only archive_writer_sync waits for the disk.
 */
#include "archive.h"

#include "nhub_err.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char MAGIC_HEAD[8] = {'N', 'H', 'U', 'B', 'A', 'R', 'C', '1'};
static const char MAGIC_END[8] = {'N', 'H', 'U', 'B', 'E', 'N', 'D', '1'};
#define IO_BUFFER ((size_t)1 << 20)

static void be_put(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t be_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* ---- writing ----------------------------------------------------------------- */

struct archive_writer {
    FILE *f;
    char *path, *tmp;
    char *buf;
    EVP_MD_CTX *md;
    uint64_t first, last, next; /* next: the seq the next record must have */
    uint64_t last_cp;           /* the size of the last checkpoint written */
    int records;                /* the checkpoints are closed: records are coming */
    int finished;
    char error[256];
};

static int w_fail(archive_writer_t *w, const char *what)
{
    snprintf(w->error, sizeof w->error, "%s %s: %s", what, w->tmp, strerror(errno ? errno : EIO));
    return NHUB_EIO;
}

static int w_bytes(archive_writer_t *w, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, w->f) != n)
        return w_fail(w, "cannot write");
    if (EVP_DigestUpdate(w->md, p, n) != 1)
        return NHUB_ECRYPTO;
    return 0;
}

static int w_int(archive_writer_t *w, uint64_t v, int n)
{
    uint8_t b[8];
    be_put(b, v, n);
    return w_bytes(w, b, (size_t)n);
}

int archive_writer_open(const char *path, const archive_header_t *h, archive_writer_t **out,
                        char *err, size_t errcap)
{
    *out = NULL;
    if (!path || !h || h->first_seq == 0 || h->last_seq < h->first_seq ||
        h->state_len > TLOG_STATE_MAX || !tlog_alg_name(h->alg))
        return NHUB_EINVAL;
    archive_writer_t *w = calloc(1, sizeof *w);
    size_t plen = strlen(path);
    int rc = NHUB_ENOMEM;
    if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(plen + 5)) ||
        !(w->buf = malloc(IO_BUFFER)) || !(w->md = EVP_MD_CTX_new()))
        goto fail;
    snprintf(w->tmp, plen + 5, "%s.tmp", path);
    if (EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
        rc = NHUB_ECRYPTO;
        goto fail;
    }
    int fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0 || !(w->f = fdopen(fd, "wb"))) {
        rc = w_fail(w, "cannot create");
        if (fd >= 0)
            close(fd);
        goto fail;
    }
    setvbuf(w->f, w->buf, _IOFBF, IO_BUFFER);
    w->first = h->first_seq;
    w->last = h->last_seq;
    w->next = h->first_seq;
    uint8_t alg = (uint8_t)h->alg;
    if ((rc = w_bytes(w, MAGIC_HEAD, 8)) || (rc = w_int(w, ARCHIVE_VERSION, 4)) ||
        (rc = w_bytes(w, h->hub_id, ARCHIVE_ID_LEN)) || (rc = w_bytes(w, &alg, 1)) ||
        (rc = w_int(w, h->first_seq, 8)) || (rc = w_int(w, h->last_seq, 8)) ||
        (rc = w_bytes(w, h->prev_hash, ARCHIVE_HASH_LEN)) || (rc = w_int(w, h->state_len, 2)) ||
        (rc = w_bytes(w, h->state, h->state_len)))
        goto fail;
    *out = w;
    return 0;
fail:
    if (err && errcap)
        snprintf(err, errcap, "%s", w && w->error[0] ? w->error : nhub_strerror(rc));
    archive_writer_abort(&w);
    return rc;
}

int archive_writer_checkpoint(archive_writer_t *w, uint64_t size, const char *note, size_t len)
{
    if (w->records || size < w->first || size > w->last || size <= w->last_cp || len > UINT32_MAX)
        return NHUB_EINVAL;
    int rc;
    if ((rc = w_int(w, size, 8)) || (rc = w_int(w, len, 4)) || (rc = w_bytes(w, note, len)))
        return rc;
    w->last_cp = size;
    return 0;
}

int archive_writer_record(archive_writer_t *w, uint64_t seq, const void *value, size_t len)
{
    if (w->finished || seq != w->next || seq > w->last || len > UINT32_MAX)
        return NHUB_EINVAL;
    int rc;
    if (!w->records && (rc = w_int(w, 0, 8)) != 0) /* the end of the checkpoints */
        return rc;
    w->records = 1;
    if ((rc = w_int(w, seq, 8)) || (rc = w_int(w, len, 4)) || (rc = w_bytes(w, value, len)))
        return rc;
    w->next++;
    return 0;
}

int archive_writer_finish(archive_writer_t *w, const uint8_t *end_state, size_t end_state_len,
                          const uint8_t last_hash[ARCHIVE_HASH_LEN],
                          uint8_t file_hash[ARCHIVE_HASH_LEN])
{
    if (w->finished || w->next != w->last + 1 || end_state_len > TLOG_STATE_MAX)
        return NHUB_EINVAL;
    uint8_t hash[ARCHIVE_HASH_LEN];
    unsigned int hlen = 0;
    int rc;
    if ((rc = w_bytes(w, MAGIC_END, 8)) ||
        (rc = w_int(w, end_state_len, 2)) || (rc = w_bytes(w, end_state, end_state_len)) ||
        (rc = w_bytes(w, last_hash, ARCHIVE_HASH_LEN)))
        return rc;
    if (EVP_DigestFinal_ex(w->md, hash, &hlen) != 1 || hlen != ARCHIVE_HASH_LEN)
        return NHUB_ECRYPTO;
    if (fwrite(hash, 1, sizeof hash, w->f) != sizeof hash || fflush(w->f) != 0)
        return w_fail(w, "cannot write");
    if (file_hash)
        memcpy(file_hash, hash, sizeof hash);
    w->finished = 1;
    return 0;
}

int archive_writer_sync(archive_writer_t *w, char *err, size_t errcap)
{
    int rc = 0;
    if (!w->finished)
        rc = NHUB_EINVAL;
    else if (fsync(fileno(w->f)) != 0)
        rc = w_fail(w, "cannot sync");
    else if (rename(w->tmp, w->path) != 0)
        rc = w_fail(w, "cannot rename");
    if (rc == 0) {
        /* The rename is durable once the directory is. */
        char *copy = strdup(w->path);
        int dfd = copy ? open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (dfd < 0 || fsync(dfd) != 0)
            rc = w_fail(w, "cannot sync the directory of");
        if (dfd >= 0)
            close(dfd);
        free(copy);
    }
    if (rc && err && errcap)
        snprintf(err, errcap, "%s", w->error[0] ? w->error : nhub_strerror(rc));
    return rc;
}

const char *archive_writer_error(const archive_writer_t *w)
{
    return w->error;
}

static void writer_free(archive_writer_t **wp, int remove_tmp)
{
    archive_writer_t *w = wp ? *wp : NULL;
    if (!w)
        return;
    if (w->f)
        fclose(w->f);
    if (remove_tmp && w->tmp)
        unlink(w->tmp);
    EVP_MD_CTX_free(w->md);
    free(w->buf);
    free(w->tmp);
    free(w->path);
    free(w);
    *wp = NULL;
}

void archive_writer_abort(archive_writer_t **w)
{
    writer_free(w, 1);
}

void archive_writer_free(archive_writer_t **w)
{
    writer_free(w, 0);
}

/* ---- reading ----------------------------------------------------------------- */

struct archive_reader {
    FILE *f;
    EVP_MD_CTX *md;
    uint64_t next, last; /* the records still to read */
    int records_done, checkpoints_done;
    uint8_t *buf;
    size_t cap;
};

static int r_short(char *err, size_t errcap, const char *what)
{
    if (err && errcap)
        snprintf(err, errcap, "the file ends inside %s (truncated)", what);
    return NHUB_EMALFORMED;
}

/* Exactly n bytes into p, hashed. -1 if the file ends first. */
static int r_bytes(archive_reader_t *r, void *p, size_t n)
{
    if (n && fread(p, 1, n, r->f) != n)
        return -1;
    return EVP_DigestUpdate(r->md, p, n) == 1 ? 0 : -1;
}

static int r_int(archive_reader_t *r, uint64_t *v, int n)
{
    uint8_t b[8];
    if (r_bytes(r, b, (size_t)n) != 0)
        return -1;
    *v = be_get(b, n);
    return 0;
}

/* n bytes into the reader's buffer. */
static int r_block(archive_reader_t *r, size_t n)
{
    if (n + 1 > r->cap) {
        uint8_t *p = realloc(r->buf, n + 1);
        if (!p)
            return NHUB_ENOMEM;
        r->buf = p;
        r->cap = n + 1;
    }
    if (r_bytes(r, r->buf, n) != 0)
        return -1;
    r->buf[n] = 0;
    return 0;
}

static int read_header(archive_reader_t *r, archive_header_t *h, char *err, size_t errcap)
{
    char magic[8];
    uint64_t version, state_len;
    uint8_t alg;
    memset(h, 0, sizeof *h);
    if (r_bytes(r, magic, 8) != 0)
        return r_short(err, errcap, "the header");
    if (memcmp(magic, MAGIC_HEAD, 8) != 0) {
        snprintf(err, errcap, "not an nhub archive (no NHUBARC1 magic)");
        return NHUB_EMALFORMED;
    }
    if (r_int(r, &version, 4) || r_bytes(r, h->hub_id, ARCHIVE_ID_LEN) || r_bytes(r, &alg, 1) ||
        r_int(r, &h->first_seq, 8) || r_int(r, &h->last_seq, 8) ||
        r_bytes(r, h->prev_hash, ARCHIVE_HASH_LEN) || r_int(r, &state_len, 2))
        return r_short(err, errcap, "the header");
    h->version = (uint32_t)version;
    h->alg = (tlog_alg_t)alg;
    if (version != ARCHIVE_VERSION) {
        snprintf(err, errcap, "archive format version %llu (this program reads version %d)",
                 (unsigned long long)version, ARCHIVE_VERSION);
        return NHUB_EMALFORMED;
    }
    if (!tlog_alg_name(h->alg) || h->first_seq == 0 || h->last_seq < h->first_seq ||
        state_len > TLOG_STATE_MAX) {
        snprintf(err, errcap, "the header is malformed (tree hash %u, range %llu..%llu)", alg,
                 (unsigned long long)h->first_seq, (unsigned long long)h->last_seq);
        return NHUB_EMALFORMED;
    }
    h->state_len = (size_t)state_len;
    if (r_bytes(r, h->state, h->state_len) != 0)
        return r_short(err, errcap, "the header");
    r->next = h->first_seq;
    r->last = h->last_seq;
    return 0;
}

int archive_reader_open(const char *path, archive_reader_t **out, archive_header_t *h, char *err,
                        size_t errcap)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errcap = sizeof dummy;
    }
    *out = NULL;
    archive_reader_t *r = calloc(1, sizeof *r);
    if (!r || !(r->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(r->md, EVP_sha256(), NULL) != 1) {
        archive_reader_free(&r);
        snprintf(err, errcap, "out of memory");
        return NHUB_ENOMEM;
    }
    if (!(r->f = fopen(path, "rb"))) {
        snprintf(err, errcap, "cannot open: %s", strerror(errno));
        archive_reader_free(&r);
        return NHUB_EIO;
    }
    int rc = read_header(r, h, err, errcap);
    if (rc) {
        archive_reader_free(&r);
        return rc;
    }
    *out = r;
    return 0;
}

int archive_reader_record(archive_reader_t *r, uint64_t *seq, const uint8_t **value, size_t *len,
                          char *err, size_t errcap)
{
    if (!r->checkpoints_done)
        return NHUB_EINVAL;
    if (r->records_done || r->next > r->last) {
        r->records_done = 1;
        return NHUB_ENOTFOUND;
    }
    uint64_t n;
    if (r_int(r, seq, 8) || r_int(r, &n, 4))
        return r_short(err, errcap, "a record");
    if (n > ARCHIVE_RECORD_MAX) {
        if (err && errcap)
            snprintf(err, errcap, "a record of %llu bytes (more than the %zu taken)",
                     (unsigned long long)n, ARCHIVE_RECORD_MAX);
        return NHUB_EMALFORMED;
    }
    int rc = r_block(r, (size_t)n);
    if (rc)
        return rc == -1 ? r_short(err, errcap, "a record") : rc;
    *value = r->buf;
    *len = (size_t)n;
    r->next++;
    return 0;
}

int archive_reader_checkpoint(archive_reader_t *r, uint64_t *size, const char **note, size_t *len,
                              char *err, size_t errcap)
{
    if (r->checkpoints_done)
        return NHUB_ENOTFOUND;
    uint64_t n;
    if (r_int(r, size, 8))
        return r_short(err, errcap, "the checkpoints");
    if (*size == 0) {
        r->checkpoints_done = 1;
        return NHUB_ENOTFOUND;
    }
    if (r_int(r, &n, 4))
        return r_short(err, errcap, "the checkpoints");
    if (n > TLOG_NOTE_MAX) {
        if (err && errcap)
            snprintf(err, errcap, "checkpoint %llu: a note of %llu bytes (at most %d)",
                     (unsigned long long)*size, (unsigned long long)n, TLOG_NOTE_MAX);
        return NHUB_EMALFORMED;
    }
    int rc = r_block(r, (size_t)n);
    if (rc)
        return rc == -1 ? r_short(err, errcap, "the checkpoints") : rc;
    *note = (const char *)r->buf;
    *len = (size_t)n;
    return 0;
}

int archive_reader_trailer(archive_reader_t *r, archive_trailer_t *t, char *err, size_t errcap)
{
    char magic[8];
    uint64_t state_len = 0;
    unsigned int hlen = 0;
    memset(t, 0, sizeof *t);
    if (r_bytes(r, magic, 8) != 0)
        return r_short(err, errcap, "the trailer");
    if (memcmp(magic, MAGIC_END, 8) != 0) {
        if (err && errcap)
            snprintf(err, errcap, "the trailer has no NHUBEND1 magic");
        return NHUB_EMALFORMED;
    }
    if (r_int(r, &state_len, 2) || state_len > TLOG_STATE_MAX ||
        r_bytes(r, t->state, (size_t)state_len) || r_bytes(r, t->last_hash, ARCHIVE_HASH_LEN))
        return state_len > TLOG_STATE_MAX ? r_short(err, errcap, "the trailer (a bad length)")
                                          : r_short(err, errcap, "the trailer");
    t->state_len = (size_t)state_len;
    if (EVP_DigestFinal_ex(r->md, t->computed_hash, &hlen) != 1)
        return NHUB_ECRYPTO;
    if (fread(t->file_hash, 1, ARCHIVE_HASH_LEN, r->f) != ARCHIVE_HASH_LEN)
        return r_short(err, errcap, "the file hash");
    if (fgetc(r->f) != EOF) {
        if (err && errcap)
            snprintf(err, errcap, "bytes after the file hash");
        return NHUB_EMALFORMED;
    }
    return 0;
}

void archive_reader_free(archive_reader_t **rp)
{
    archive_reader_t *r = rp ? *rp : NULL;
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    EVP_MD_CTX_free(r->md);
    free(r->buf);
    free(r);
    *rp = NULL;
}
