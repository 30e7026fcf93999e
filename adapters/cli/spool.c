/*
 * spool.c: the spool folders (see spool.h).
 *
 * Sending a file, and why a crash anywhere is harmless:
 *   1. read outbox/NAME.json whole; it must parse (a .json that does not is
 *      left alone while it keeps changing, and failed once it has been
 *      still for spool.settle: a platform that wrote it in place);
 *   2. its msgId: the file's own, or derived from its name and contents;
 *   3. daemon_submit_batch: with the other files of its batch (up to
 *      SPOOL_BATCH, one nhub_send_batch, one fsync), durable in libnhub's
 *      outbox;
 *   4. rename to sent/.
 * A crash between 3 and 4 leaves the file in outbox/; the next run sends
 * it again under the same msgId: the daemon's record (or, if that was not
 * committed yet, the hub's duplicate window) drops the repeat.
 *
 * Handing a delivery over, and why nothing is handed over twice:
 *   1. write inbox/.MSGID.json.tmp and fsync it;
 *   2. commit the mark "written" for MSGID (track.h);
 *   3. rename it to inbox/MSGID.json and fsync inbox/.
 * A redelivery (after a restart: nothing was confirmed) finds the mark:
 * with the temp file still there the rename is redone; with MSGID.json in
 * inbox/ it waits for the platform; with neither, the platform has taken
 * it, and it is confirmed. Without a mark nothing was shown to the
 * platform (a temp file is not), so it is written. If the daemon's record
 * takes no writes (full: track.h), the mark goes into a file of its own,
 * DATA_DIR/adapterd/marks/MSGID (fsynced with its folder), looked at
 * where the record has none: a full record stops no delivery.
 */
#include "spool.h"

#include "log.h"
#include "nhub_err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPOOL_FILES_PER_TURN 256 /* outbox files sent per turn: the loop stays responsive */
#define SPOOL_BATCH 64           /* files per commit to libnhub's outbox */
#define SPOOL_NAMES_MAX 4096     /* names looked at per scan */
#define SPOOL_NAME_MAX 200

struct spool {
    daemon_t *dm;
    char dir[1024];
    char outbox[1100], sent[1100], failed[1100], inbox[1100], done[1100];
    char marks[1100]; /* file marks, where the record could not take one */
    int ino;
    int wd_outbox, wd_inbox; /* the inotify watches */
    int64_t next_scan;       /* monotonic ms */
};

/* ---- files ----------------------------------------------------------------- */

/* A file name as the log shows it: quoted, so a name holding a space, a quote
 * or a newline (the platform chooses names) cannot forge a key or a line. */
static const char *qname(char buf[SPOOL_NAME_MAX * 4 + 3], const char *name)
{
    return log_quote(buf, SPOOL_NAME_MAX * 4 + 3, name);
}

static int mkdir_p(const char *path)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int exists(const char *dir, const char *name)
{
    char p[1400];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return lstat(p, &st) == 0;
}

/* Write `len` bytes to `path` (created or truncated) and fsync. 0 or -1 (errno). */
static int write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    const char *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return close(fd);
}

static int move(const char *from_dir, const char *from, const char *to_dir, const char *to)
{
    char a[1400], b[1400];
    snprintf(a, sizeof a, "%s/%s", from_dir, from);
    snprintf(b, sizeof b, "%s/%s", to_dir, to);
    return rename(a, b);
}

/* ---- outbox -> sent / failed ------------------------------------------------- */

/* failed/NAME.error (written first, so a failed file always has it), then the file to failed/. */
static void fail_file(spool_t *s, const char *name, const char *why)
{
    char path[1400], tmp[1400], line[1200], q[600], qn[SPOOL_NAME_MAX * 4 + 3];
    snprintf(path, sizeof path, "%s/%s.error", s->failed, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.error.tmp", s->failed, name);
    int len = snprintf(line, sizeof line, "%s\n", why);
    if (write_file(tmp, line, (size_t)len) != 0 || rename(tmp, path) != 0 ||
        move(s->outbox, name, s->failed, name) != 0) {
        log_error("adapterd.spool_io", "file=%s error=%s", qname(qn, name),
                  log_quote(q, sizeof q, strerror(errno)));
        return;
    }
    log_warn("adapterd.spool_failed", "file=%s reason=%s", qname(qn, name),
             log_quote(q, sizeof q, why));
}

/* Move a sent file to sent/ without replacing an older one of the same name. */
static void move_sent(spool_t *s, const char *name, const uint8_t id[NHUB_MSG_ID_LEN])
{
    char hex[33], alt[300], qn[SPOOL_NAME_MAX * 4 + 3];
    if (exists(s->sent, name)) {
        snprintf(alt, sizeof alt, "%s.%s.json", name, nhub_msg_id_hex(id, hex));
        if (move(s->outbox, name, s->sent, alt) != 0)
            log_error("adapterd.spool_io", "file=%s error=%s", qname(qn, name), strerror(errno));
        return;
    }
    if (move(s->outbox, name, s->sent, name) != 0)
        log_error("adapterd.spool_io", "file=%s error=%s", qname(qn, name), strerror(errno));
}

/* The msgId of a file without one: SHA-256 over its name and contents, cut to 16 bytes. */
static void derive_id(const char *name, const char *data, size_t len, uint8_t id[NHUB_MSG_ID_LEN])
{
    uint8_t md[32];
    unsigned n = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    static const char tag[] = "nhub-adapter-spool-v1";
    if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) || !EVP_DigestUpdate(c, tag, sizeof tag) ||
        !EVP_DigestUpdate(c, name, strlen(name) + 1) || !EVP_DigestUpdate(c, data, len) ||
        !EVP_DigestFinal_ex(c, md, &n))
        memset(md, 0, sizeof md); /* cannot happen with the default provider */
    EVP_MD_CTX_free(c);
    memcpy(id, md, NHUB_MSG_ID_LEN);
}

/*
 * Read outbox/NAME whole: 0; 1 if it is gone (taken away since the scan
 * listed it); 2 if it is not a regular file (a symlink, which is never
 * followed, a directory, a FIFO, a device); or -1 (errno) if it cannot be
 * read. The last two are failed by the caller, so they do not stay in
 * outbox/ to be looked at on every scan.
 */
static int read_spool_file(spool_t *s, const char *name, char **data, size_t *len,
                           int64_t *mtime_ms, size_t max)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", s->outbox, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT ? 1 : errno == ELOOP ? 2 : -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return 2;
    }
    *mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    size_t cap = (size_t)st.st_size > max ? max + 1 : (size_t)st.st_size;
    char *buf = malloc(cap + 1);
    size_t n = 0;
    while (buf && n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf)
        return -1;
    buf[n] = 0;
    *data = buf;
    *len = (size_t)st.st_size > max ? max + 1 : n;
    return 0;
}

/* A file read and parsed, waiting for its batch. */
typedef struct spool_item {
    const char *name; /* borrowed from the scan's list */
    msgjson_t m;
    uint8_t derived[NHUB_MSG_ID_LEN];
} spool_item_t;

/*
 * Read and parse outbox/NAME into *it. Returns 0 (ready to submit), 1 (moved
 * to failed/), 2 (stays: gone already, or perhaps still being written) or -1
 * (out of memory: stop this scan).
 */
static int load_file(spool_t *s, const char *name, spool_item_t *it)
{
    daemon_t *dm = s->dm;
    char *data = NULL, why[700];
    size_t len = 0;
    int64_t mtime = 0;
    size_t max = (size_t)dm->cfg->api.body_max;
    int rc = read_spool_file(s, name, &data, &len, &mtime, max);
    if (rc == 1)
        return 2;
    if (rc == 2) {
        fail_file(s, name, "not a regular file (a symlink, directory or device is not sent)");
        return 1;
    }
    if (rc < 0) {
        snprintf(why, sizeof why, "cannot be read: %s", strerror(errno));
        fail_file(s, name, why);
        return 1;
    }
    if (len > max) {
        snprintf(why, sizeof why, "the file is larger than api.body_max (%zu bytes)", max);
        fail_file(s, name, why);
        free(data);
        return 1;
    }
    json_error_t jerr;
    json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        if (daemon_wall_ms() - mtime >= dm->cfg->spool.settle_ms) {
            snprintf(why, sizeof why,
                     "not complete JSON (line %d, column %d: %s); write NAME.tmp and rename it "
                     "to NAME.json when it is complete",
                     jerr.line, jerr.column, jerr.text);
            fail_file(s, name, why);
            free(data);
            return 1;
        } /* else: perhaps still being written in place; looked at again later */
        free(data);
        return 2;
    }
    msgjson_err_t e;
    rc = msgjson_parse(j, dm->cfg->adapter.max_frame, &it->m, &e);
    json_decref(j);
    if (rc != 0) {
        free(data);
        if (rc == NHUB_ENOMEM)
            return -1;
        snprintf(why, sizeof why, "%s%s%s", e.field, e.field[0] ? ": " : "", e.detail);
        /* The detail starts with the field already where the field is a payload path. */
        if (!strncmp(e.detail, e.field, strlen(e.field)) || !strncmp(e.detail, "payload", 7))
            snprintf(why, sizeof why, "%s", e.detail);
        fail_file(s, name, why);
        return 1;
    }
    it->name = name;
    derive_id(name, data, len, it->derived);
    free(data);
    return 0;
}

/*
 * Submit the n loaded files together (one commit to libnhub's outbox) and
 * move each to sent/ or failed/. Returns 0 to go on, -1 to stop this scan
 * (the store refused: the file and those after it stay in outbox/).
 */
static int send_files(spool_t *s, spool_item_t *it, size_t n)
{
    daemon_sub_t sub[SPOOL_BATCH];
    char hex[33], q[400], qn[SPOOL_NAME_MAX * 4 + 3];
    int ret = 0;
    for (size_t i = 0; i < n; i++)
        sub[i] = (daemon_sub_t){.m = &it[i].m, .id_in = it[i].derived, .file = it[i].name};
    daemon_submit_batch(s->dm, sub, n);
    for (size_t i = 0; i < n; i++) {
        const char *name = it[i].name;
        int rc = sub[i].rc;
        msgjson_clear(&it[i].m);
        if (rc == 0) {
            move_sent(s, name, sub[i].id);
            log_info("adapterd.spool_sent", "file=%s msg_id=%s duplicate=%d", qname(qn, name),
                     nhub_msg_id_hex(sub[i].id, hex), sub[i].dup);
        } else if (rc == NHUB_EINVAL || rc == NHUB_ETOOBIG || rc == NHUB_EEXIST) {
            fail_file(s, name, sub[i].err);
        } else {
            log_error("adapterd.spool_retry", "file=%s error=%s detail=%s", qname(qn, name),
                      nhub_strerror(rc), log_quote(q, sizeof q, sub[i].err));
            ret = -1;
        }
    }
    return ret;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 1 if `name` is a file the platform finished: NAME.json, not hidden. */
static int is_ready_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 5 && n < SPOOL_NAME_MAX && !strcmp(name + n - 5, ".json");
}

/*
 * Send what outbox/ holds, in name order, at most SPOOL_FILES_PER_TURN. 1 if
 * more is left and this turn moved something: files that stay where they
 * are (still being written) do not make the loop scan again at once.
 */
static int scan_outbox(spool_t *s)
{
    DIR *d = opendir(s->outbox);
    if (!d)
        return 0;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < SPOOL_NAMES_MAX) {
        if (!is_ready_name(e->d_name))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **p = realloc(names, nc * sizeof *p);
            if (!p)
                break;
            names = p;
            cap = nc;
        }
        if (!(names[n] = strdup(e->d_name)))
            break;
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, name_cmp);
    /* In batches of up to SPOOL_BATCH files: one commit to libnhub's outbox for each. */
    spool_item_t items[SPOOL_BATCH];
    size_t done = 0, moved = 0;
    int stop = 0;
    while (done < n && done < SPOOL_FILES_PER_TURN && !stop && !*s->dm->stop) {
        size_t k = 0;
        while (done < n && done < SPOOL_FILES_PER_TURN && k < SPOOL_BATCH) {
            int rc = load_file(s, names[done], &items[k]);
            if (rc < 0) {
                stop = 1;
                break;
            }
            done++;
            k += rc == 0;
            moved += rc == 1;
        }
        if (k && send_files(s, items, k) != 0)
            stop = 1;
        moved += k; /* sent or failed; a store error stops the scan anyway */
    }
    int more = n > done && moved > 0;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return more;
}

void spool_on_rejected(spool_t *s, const char *file, const uint8_t id[NHUB_MSG_ID_LEN], int code,
                       const char *text)
{
    char hex[33], why[600], q[600], qn[SPOOL_NAME_MAX * 4 + 3];
    snprintf(why, sizeof why, "msgId %s was refused by the hub: code %d: %s",
             nhub_msg_id_hex(id, hex), code, text);
    char path[1400], tmp[1400];
    snprintf(path, sizeof path, "%s/%s.error", s->failed, file);
    snprintf(tmp, sizeof tmp, "%s/.%s.error.tmp", s->failed, file);
    size_t len = strlen(why);
    why[len] = '\n';
    if (write_file(tmp, why, len + 1) != 0 || rename(tmp, path) != 0 ||
        (exists(s->sent, file) && move(s->sent, file, s->failed, file) != 0))
        log_error("adapterd.spool_io", "file=%s error=%s", qname(qn, file),
                  log_quote(q, sizeof q, strerror(errno)));
}

/* ---- deliveries -> inbox/ ---------------------------------------------------- */

int spool_in_inbox(const spool_t *s, const uint8_t id[NHUB_MSG_ID_LEN])
{
    char hex[33], name[64], tmpname[72];
    nhub_msg_id_hex(id, hex);
    snprintf(name, sizeof name, "%s.json", hex);
    snprintf(tmpname, sizeof tmpname, ".%s.json.tmp", hex);
    return exists(s->inbox, name) || exists(s->inbox, tmpname);
}

/* The record took no mark (full or failing): a durable file mark instead. 0 or -1 (errno). */
static int file_mark_put(spool_t *s, const char *hex)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", s->marks, hex);
    if (write_file(path, "written\n", 8) != 0 || fsync_dir(s->marks) != 0)
        return -1;
    log_warn("adapterd.spool_file_mark",
             "msg_id=%s detail=\"the record takes no writes: the "
             "delivery's mark is a file in DATA_DIR/adapterd/marks\"",
             hex);
    return 0;
}

static void file_mark_del(spool_t *s, const uint8_t id[NHUB_MSG_ID_LEN])
{
    char hex[33], path[1400];
    snprintf(path, sizeof path, "%s/%s", s->marks, nhub_msg_id_hex(id, hex));
    unlink(path); /* usually there is none */
}

/* The mark of `hex` durable, in the record or else as a file. 0 or an error. */
static int mark_written(spool_t *s, const uint8_t id[NHUB_MSG_ID_LEN], const char *hex)
{
    track_t *t = s->dm->track;
    track_spool_t mark = {.state = TRACK_SPOOL_WRITTEN, .written_ms = daemon_wall_ms()};
    int rc = track_spool_put(t, id, &mark);
    if (rc == 0)
        rc = track_commit(t);
    if (rc == 0)
        return 0;
    return file_mark_put(s, hex) == 0 ? 0 : rc;
}

int spool_deliver(spool_t *s, held_t *h)
{
    daemon_t *dm = s->dm;
    char hex[33], name[64], tmpname[72], tmp[1400], q[300];
    nhub_msg_id_hex(h->d->msg_id, hex);
    snprintf(name, sizeof name, "%s.json", hex);
    snprintf(tmpname, sizeof tmpname, ".%s.json.tmp", hex);
    snprintf(tmp, sizeof tmp, "%s/%s", s->inbox, tmpname);
    track_spool_t mark;
    int rc = track_spool_get(dm->track, h->d->msg_id, &mark);
    if (rc == NHUB_ENOTFOUND && exists(s->marks, hex))
        rc = 0; /* a file mark, from a time the record was full */
    if (rc == 0) {
        /* Handed over before (or about to be): finish the rename if it did not happen. */
        if (exists(s->inbox, tmpname)) {
            if (move(s->inbox, tmpname, s->inbox, name) != 0 || fsync_dir(s->inbox) != 0)
                goto io_failed;
        }
        h->spooled = 1;
        return 0;
    }
    if (rc != NHUB_ENOTFOUND)
        return rc;
    if (exists(s->inbox, name) || exists(s->done, name)) {
        /* Shown already by a run whose record is gone (a new data_dir): not again. */
        if ((rc = mark_written(s, h->d->msg_id, hex)) != 0)
            return rc;
        h->spooled = 1;
        return 0;
    }
    json_t *j = msgjson_delivery(h->d);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return NHUB_ENOMEM;
    size_t len = strlen(text);
    text[len] = 0;
    char *line = realloc(text, len + 2);
    if (!line) {
        free(text);
        return NHUB_ENOMEM;
    }
    line[len] = '\n';
    line[len + 1] = 0;
    int wrc = write_file(tmp, line, len + 1);
    free(line);
    if (wrc != 0)
        goto io_failed;
    if ((rc = mark_written(s, h->d->msg_id, hex)) != 0) {
        unlink(tmp);
        return rc;
    }
    if (move(s->inbox, tmpname, s->inbox, name) != 0 || fsync_dir(s->inbox) != 0)
        goto io_failed; /* the mark stands: the next look redoes the rename */
    h->spooled = 1;
    log_info("adapterd.spool_written", "msg_id=%s", hex);
    return 0;
io_failed:
    log_error("adapterd.spool_io", "file=%s error=%s", name,
              log_quote(q, sizeof q, strerror(errno)));
    return NHUB_EIO;
}

/* Write what is not yet in inbox/, confirm what the platform took. */
static void check_inbox(spool_t *s)
{
    daemon_t *dm = s->dm;
    size_t *taken = dm->n_held ? calloc(dm->n_held, sizeof *taken) : NULL;
    size_t n = 0;
    for (size_t i = 0; i < dm->n_held; i++) {
        held_t *h = &dm->held[i];
        if (!h->spooled) {
            spool_deliver(s, h);
            continue;
        }
        char hex[33], name[64], tmpname[72];
        nhub_msg_id_hex(h->d->msg_id, hex);
        snprintf(name, sizeof name, "%s.json", hex);
        snprintf(tmpname, sizeof tmpname, ".%s.json.tmp", hex);
        if (taken && !exists(s->inbox, name) && !exists(s->inbox, tmpname))
            taken[n++] = i;
    }
    if (n) {
        uint8_t(*ids)[NHUB_MSG_ID_LEN] = malloc(n * sizeof *ids);
        for (size_t i = 0; ids && i < n; i++)
            memcpy(ids[i], dm->held[taken[i]].d->msg_id, NHUB_MSG_ID_LEN);
        if (ids && daemon_confirm(dm, taken, n) == 0) {
            for (size_t i = 0; i < n; i++) {
                track_spool_del(dm->track, ids[i]); /* lost in a crash: pruning sweeps it */
                file_mark_del(s, ids[i]);
            }
        }
        free(ids);
    }
    free(taken);
}

/* ---- lifecycle --------------------------------------------------------------- */

int spool_new(daemon_t *dm, spool_t **out, char *err, size_t errcap)
{
    *out = NULL;
    spool_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errcap, "out of memory");
        return NHUB_ENOMEM;
    }
    s->dm = dm;
    s->ino = -1;
    snprintf(s->dir, sizeof s->dir, "%s", dm->cfg->spool.dir);
    snprintf(s->outbox, sizeof s->outbox, "%s/outbox", s->dir);
    snprintf(s->sent, sizeof s->sent, "%s/sent", s->dir);
    snprintf(s->failed, sizeof s->failed, "%s/failed", s->dir);
    snprintf(s->inbox, sizeof s->inbox, "%s/inbox", s->dir);
    snprintf(s->done, sizeof s->done, "%s/done", s->dir);
    snprintf(s->marks, sizeof s->marks, "%s/adapterd/marks", dm->cfg->adapter.data_dir);
    const char *dirs[] = {s->outbox, s->sent, s->failed, s->inbox, s->done, s->marks};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        if (mkdir_p(dirs[i]) != 0) {
            snprintf(err, errcap, "%s: cannot make %s: %s",
                     dirs[i] == s->marks ? "adapter.data_dir" : "spool.dir", dirs[i],
                     strerror(errno));
            free(s);
            return NHUB_EIO;
        }
    }
    s->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (s->ino >= 0) {
        s->wd_outbox = inotify_add_watch(s->ino, s->outbox, IN_MOVED_TO | IN_CLOSE_WRITE);
        s->wd_inbox = inotify_add_watch(s->ino, s->inbox, IN_MOVED_FROM | IN_DELETE);
        if (s->wd_outbox < 0 || s->wd_inbox < 0) {
            close(s->ino);
            s->ino = -1;
        }
    }
    if (s->ino < 0)
        log_warn("adapterd.spool_no_inotify", "detail=\"folders are scanned every %lld ms\"",
                 (long long)dm->cfg->spool.scan_interval_ms);
    *out = s;
    return 0;
}

void spool_destroy(spool_t **self)
{
    spool_t *s = self ? *self : NULL;
    if (!s)
        return;
    if (s->ino >= 0)
        close(s->ino);
    free(s);
    *self = NULL;
}

int spool_fd(const spool_t *self)
{
    return self->ino;
}

int64_t spool_timeout_ms(const spool_t *self)
{
    int64_t left = self->next_scan - daemon_mono_ms();
    return left > 0 ? left : 0;
}

/*
 * Read the pending inotify events: *out if a NAME.json arrived in outbox/,
 * *in if one left inbox/ (or the queue overflowed: both). Temp files
 * written and renamed (the platform's NAME.tmp, the daemon's own
 * .MSGID.json.tmp) are not worth a scan: each would cost a look at every
 * file in the folder.
 */
static void read_events(spool_t *s, int *out, int *in)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    while ((n = read(s->ino, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            p += sizeof *e + e->len;
            if (e->mask & IN_Q_OVERFLOW) {
                *out = *in = 1;
                continue;
            }
            if (!e->len || !is_ready_name(e->name))
                continue;
            if (e->wd == s->wd_outbox)
                *out = 1;
            else if (e->wd == s->wd_inbox)
                *in = 1;
        }
    }
}

void spool_run(spool_t *s)
{
    int out = 0, in = 0;
    if (s->ino >= 0)
        read_events(s, &out, &in);
    int64_t now = daemon_mono_ms();
    int due = now >= s->next_scan; /* the safety net: everything, now and then */
    if (!due && !out && !in)
        return;
    int more = 0;
    if (due || out)
        more = scan_outbox(s);
    if (s->dm->spool_inbox && (due || in))
        check_inbox(s);
    if (due || out)
        s->next_scan = more ? now : now + s->dm->cfg->spool.scan_interval_ms;
}
