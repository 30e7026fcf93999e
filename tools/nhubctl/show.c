/*
 * show.c: the API's answers as tables and key/value lines (see show.h).
 *
 * Each view reads only the fields it prints, through get_num/get_str, which
 * say "absent" instead of guessing: a hub older or newer than this tool
 * prints "-" where a field is missing rather than a wrong zero. Counters
 * and case states are printed in the order the hub sends them, by their
 * names, so one the hub adds appears without a change here.
 */
#include "show.h"

#include "log.h"
#include "table.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* A number field of `o` as a double; 0 if absent (*present = 0). */
static double get_num(const json_t *o, const char *key, int *present)
{
    json_t *v = json_object_get(o, key);
    int ok = json_is_number(v);
    if (present)
        *present = ok;
    return ok ? json_number_value(v) : 0;
}

static const char *get_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int get_bool(const json_t *o, const char *key)
{
    return json_is_true(json_object_get(o, key));
}

/* An integer field as text, "-" when absent. */
static const char *fmt_int(char *buf, size_t cap, const json_t *o, const char *key)
{
    int present;
    double v = get_num(o, key, &present);
    if (!present)
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.0f", v);
    return buf;
}

/* A time field (ms since the epoch), "-" when absent or 0. */
static const char *fmt_time(char *buf, size_t cap, const json_t *o, const char *key)
{
    int present;
    double ms = get_num(o, key, &present);
    if (!present || ms <= 0)
        snprintf(buf, cap, "-");
    else
        log_time(buf, cap, (int64_t)ms);
    return buf;
}

static const char *fmt_bytes(char *buf, size_t cap, const json_t *o, const char *key)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int present;
    double v = get_num(o, key, &present);
    size_t u = 0;
    if (!present) {
        snprintf(buf, cap, "-");
        return buf;
    }
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

const char *ctl_show_duration(char *buf, size_t cap, double seconds)
{
    if (!isfinite(seconds) || seconds < 0)
        seconds = 0;
    uint64_t s = (uint64_t)seconds;
    if (s < 60)
        snprintf(buf, cap, "%llus", (unsigned long long)s);
    else if (s < 3600)
        snprintf(buf, cap, "%llum%02llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    else if (s < 86400)
        snprintf(buf, cap, "%lluh%02llum", (unsigned long long)(s / 3600),
                 (unsigned long long)(s / 60 % 60));
    else
        snprintf(buf, cap, "%llud%02lluh", (unsigned long long)(s / 86400),
                 (unsigned long long)(s / 3600 % 24));
    return buf;
}

/* A duration field in seconds, "-" when absent. */
static const char *fmt_seconds(char *buf, size_t cap, const json_t *o, const char *key)
{
    int present;
    double v = get_num(o, key, &present);
    return present ? ctl_show_duration(buf, cap, v) : strcpy(buf, "-");
}

/* "name N  name N ..." for every number member of `o`, '_' shown as ' '. */
static void print_counts(FILE *out, const char *label, const json_t *o)
{
    const char *key;
    json_t *v;
    int column = 0;
    fprintf(out, "%-12s", label);
    json_object_foreach((json_t *)o, key, v)
    {
        if (!json_is_number(v))
            continue;
        char name[64], clean[64];
        ctl_text_clean(clean, sizeof clean, key);
        size_t i = 0;
        for (; clean[i] && i + 1 < sizeof name; i++)
            name[i] = clean[i] == '_' ? ' ' : clean[i];
        name[i] = '\0';
        char item[128];
        int n = snprintf(item, sizeof item, "%s %.0f", name, json_number_value(v));
        if (column > 0 && column + n > 76) {
            fprintf(out, "\n%-12s", "");
            column = 0;
        }
        fprintf(out, "%s%s", column ? "  " : " ", item);
        column += n + 2;
    }
    fputc('\n', out);
}

int ctl_show_status(const json_t *a, FILE *out)
{
    if (!json_is_object(a))
        return -1;
    char b1[64], b2[64], b3[64], b4[64], clean[128];
    const json_t *store = json_object_get(a, "store");
    const json_t *cases = json_object_get(a, "cases");
    const char *id = get_str(a, "hub_id"), *version = get_str(a, "version");
    const char *region = get_str(a, "region");
    fprintf(out, "%-12s %s  version %s  region %s\n", "hub",
            ctl_text_clean(clean, sizeof clean, id ? id : "-"), version ? version : "-",
            region ? region : "-");
    int now_ok, start_ok;
    double now = get_num(a, "now_ms", &now_ok), started = get_num(a, "started_ms", &start_ok);
    fprintf(out, "%-12s %s  started %s", "time", fmt_time(b1, sizeof b1, a, "now_ms"),
            fmt_time(b2, sizeof b2, a, "started_ms"));
    if (now_ok && start_ok && started > 0)
        fprintf(out, "  up %s", ctl_show_duration(b3, sizeof b3, (now - started) / 1000));
    fputc('\n', out);
    fprintf(out, "%-12s last seq %s\n", "journal",
            fmt_int(b1, sizeof b1, json_object_get(a, "journal"), "last_seq"));
    fprintf(out, "%-12s %s used of %s mapped, limit %s, disk free %s%s\n", "store",
            fmt_bytes(b1, sizeof b1, store, "used_bytes"),
            fmt_bytes(b2, sizeof b2, store, "map_bytes"),
            fmt_bytes(b3, sizeof b3, store, "limit_bytes"),
            fmt_bytes(b4, sizeof b4, store, "disk_free_bytes"),
            get_bool(store, "full") ? "  FULL: new messages are refused" : "");
    fprintf(out, "%-12s %s of %s connected, %s sessions, %s queued\n", "regions",
            fmt_int(b1, sizeof b1, a, "regions_connected"),
            fmt_int(b2, sizeof b2, a, "regions_total"), fmt_int(b3, sizeof b3, a, "sessions"),
            fmt_int(b4, sizeof b4, a, "queued"));
    fprintf(out, "%-12s %s total, %s open, %s overdue\n", "cases",
            fmt_int(b1, sizeof b1, cases, "total"), fmt_int(b2, sizeof b2, cases, "open"),
            fmt_int(b3, sizeof b3, cases, "overdue"));
    const json_t *by_state = json_object_get(cases, "by_state");
    if (json_is_object(by_state))
        print_counts(out, "", by_state);
    const json_t *counters = json_object_get(a, "counters");
    if (json_is_object(counters))
        print_counts(out, "counters", counters);
    return 0;
}

/* The array `key` of the answer, or NULL when it is not one. */
static const json_t *answer_array(const json_t *a, const char *key)
{
    const json_t *arr = json_object_get(a, key);
    return json_is_array(arr) ? arr : NULL;
}

/* Print `t`, or `none` when it has no rows; frees it. */
static int finish_table(ctl_table_t **t, FILE *out, const char *none)
{
    int rc = 0;
    if (ctl_table_rows(*t) == 0)
        fprintf(out, "%s\n", none);
    else
        rc = ctl_table_print(*t, out);
    ctl_table_destroy(t);
    return rc;
}

/*
 * A column of a listing: its heading, its alignment ('l' or 'r') and how a
 * row's cell is written: `fmt` on member `key` of the row (or of its object
 * member `in`, when given).
 */
typedef const char *cell_fn(char *buf, size_t cap, const json_t *o, const char *key);
typedef struct column {
    const char *head;
    char align;
    cell_fn *fmt;
    const char *key;
    const char *in;
} column_t;

static const char *fmt_str(char *buf, size_t cap, const json_t *o, const char *key)
{
    const char *v = get_str(o, key);
    snprintf(buf, cap, "%s", v ? v : "-");
    return buf;
}

static const char *fmt_yes(char *buf, size_t cap, const json_t *o, const char *key)
{
    snprintf(buf, cap, "%s", get_bool(o, key) ? "yes" : "no");
    return buf;
}

/* An operator's rate limit: "-" for none. */
static const char *fmt_rate(char *buf, size_t cap, const json_t *o, const char *key)
{
    int ok;
    double rate = get_num(o, key, &ok);
    return !ok || rate <= 0 ? strcpy(buf, "-") : fmt_int(buf, cap, o, key);
}

static const char *region_state(char *buf, size_t cap, const json_t *r, const char *key)
{
    (void)key;
    const char *by = get_str(r, "suspended_by");
    int suspended = get_bool(r, "suspended"), paused = get_bool(r, "paused");
    if (suspended && paused)
        snprintf(buf, cap, "suspended,paused");
    else if (suspended)
        snprintf(buf, cap, "suspended%s%s", by && by[0] ? "/" : "", by ? by : "");
    else if (paused)
        snprintf(buf, cap, "paused");
    else
        snprintf(buf, cap, "-");
    return buf;
}

/* Print array `key` of the answer as a table of `n` columns, or `none`. */
static int show_listing(const json_t *a, const char *key, const column_t *cols, size_t n,
                        const char *none, FILE *out)
{
    const char *head[16];
    char align[17];
    const json_t *arr = answer_array(a, key);
    if (!arr || n > 16)
        return -1;
    for (size_t c = 0; c < n; c++) {
        head[c] = cols[c].head;
        align[c] = cols[c].align;
    }
    align[n] = 0;
    ctl_table_t *t = ctl_table_new(n, head, align);
    if (!t)
        return -1;
    size_t i;
    const json_t *row;
    char buf[512];
    json_array_foreach(arr, i, row)
    {
        for (size_t c = 0; c < n; c++) {
            const json_t *o = cols[c].in ? json_object_get(row, cols[c].in) : row;
            ctl_table_cell(t, cols[c].fmt(buf, sizeof buf, o, cols[c].key));
        }
    }
    return finish_table(&t, out, none);
}

#define COLS(a) (a), sizeof(a) / sizeof((a)[0])

int ctl_show_regions(const json_t *a, FILE *out)
{
    static const column_t cols[] = {
        {"CODE", 'l', fmt_str, "code", NULL},
        {"NAME", 'l', fmt_str, "name", NULL},
        {"CONNECTED", 'l', fmt_yes, "connected", NULL},
        {"QUEUED", 'r', fmt_int, "queued", NULL},
        {"HELD", 'r', fmt_int, "held", NULL},
        {"IN FLIGHT", 'r', fmt_int, "in_flight", NULL},
        {"STATE", 'l', region_state, NULL, NULL},
        {"RATE/S", 'r', fmt_rate, "rate_limit", NULL},
        {"OPEN CASES", 'r', fmt_int, "open", "cases"},
        {"OVERDUE", 'r', fmt_int, "overdue", "cases"},
    };
    int rc = show_listing(a, "regions", COLS(cols), "no regions", out);
    if (rc)
        return rc;
    /* Reasons are free text of any length: below the table, not in it. */
    size_t i;
    const json_t *r;
    json_array_foreach(answer_array(a, "regions"), i, r)
    {
        const char *why = get_str(r, "suspended_reason");
        if (!get_bool(r, "suspended") || !why || !why[0])
            continue;
        char code[32], clean[512];
        ctl_text_clean(code, sizeof code, get_str(r, "code") ? get_str(r, "code") : "-");
        fprintf(out, "%s suspended: %s\n", code, ctl_text_clean(clean, sizeof clean, why));
    }
    return 0;
}

int ctl_show_queues(const json_t *a, FILE *out)
{
    static const column_t cols[] = {
        {"REGION", 'l', fmt_str, "region", NULL},
        {"QUEUED", 'r', fmt_int, "queued", NULL},
        {"HELD", 'r', fmt_int, "held", NULL},
        {"IN FLIGHT", 'r', fmt_int, "in_flight", NULL},
    };
    return show_listing(a, "queues", COLS(cols), "no queues", out);
}

int ctl_show_items(const json_t *a, FILE *out)
{
    static const column_t cols[] = {
        {"ITEM", 'l', fmt_str, "item", NULL},
        {"OPENED", 'r', fmt_int, "opened", NULL},
        {"OPEN", 'r', fmt_int, "open", NULL},
        {"OVERDUE", 'r', fmt_int, "overdue", NULL},
        {"ANSWERED", 'r', fmt_int, "answered", NULL},
        {"IN TIME", 'r', fmt_int, "answered_in_time", NULL},
        {"EXPIRED", 'r', fmt_int, "expired", NULL},
        {"REFUSED", 'r', fmt_int, "refused", NULL},
        {"MEAN HANDLING", 'r', fmt_seconds, "mean_handling_s", NULL},
    };
    return show_listing(a, "items", COLS(cols), "no items with cases", out);
}

int ctl_show_cases(const json_t *a, FILE *out)
{
    static const column_t cols[] = {
        {"ID", 'l', fmt_str, "id", NULL},
        {"ITEM", 'l', fmt_str, "item", NULL},
        {"KIND", 'l', fmt_str, "kind", NULL},
        {"STATE", 'l', fmt_str, "state", NULL},
        {"REQUESTER", 'l', fmt_str, "requester", NULL},
        {"HANDLER", 'l', fmt_str, "handler", NULL},
        {"OPENED", 'l', fmt_time, "opened_ms", NULL},
        {"DUE", 'l', fmt_time, "due_ms", NULL},
        {"AGE", 'r', fmt_seconds, "age_s", NULL},
    };
    return show_listing(a, "cases", COLS(cols), "no cases", out);
}

static void print_case(const json_t *c, FILE *out)
{
    static const struct {
        const char *label, *key;
    } times[] = {
        {"opened", "opened_ms"},  {"remind", "remind_ms"}, {"due", "due_ms"},
        {"expires", "expire_ms"}, {"closed", "closed_ms"}, {"valid until", "valid_until_ms"},
    };
    char buf[512], kind[64];
    const char *id = get_str(c, "id"), *item = get_str(c, "item"), *k = get_str(c, "kind");
    fprintf(out, "%-12s %s\n", "case", ctl_text_clean(buf, sizeof buf, id ? id : "-"));
    ctl_text_clean(kind, sizeof kind, k ? k : "-");
    fprintf(out, "%-12s %s (%s)\n", "item", ctl_text_clean(buf, sizeof buf, item ? item : "-"),
            kind);
    const char *state = get_str(c, "state");
    fprintf(out, "%-12s %s", "state", ctl_text_clean(buf, sizeof buf, state ? state : "-"));
    const char *flags[] = {"delivered", "reminded", "overdue"};
    const char *sep = "  (";
    for (size_t i = 0; i < 3; i++) {
        if (get_bool(c, flags[i])) {
            fprintf(out, "%s%s", sep, flags[i]);
            sep = ", ";
        }
    }
    fprintf(out, "%s\n", sep[0] == ',' ? ")" : "");
    const char *req = get_str(c, "requester"), *hand = get_str(c, "handler");
    fprintf(out, "%-12s %s", "requester", ctl_text_clean(buf, sizeof buf, req ? req : "-"));
    fprintf(out, "  handler %s\n", ctl_text_clean(buf, sizeof buf, hand ? hand : "-"));
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++)
        fprintf(out, "%-12s %s\n", times[i].label, fmt_time(buf, sizeof buf, c, times[i].key));
    fprintf(out, "%-12s %s\n", "age", fmt_seconds(buf, sizeof buf, c, "age_s"));
    fprintf(out, "%-12s %s\n", "stage", fmt_int(buf, sizeof buf, c, "stage"));
}

/* The detail column of a timeline entry: code, reason, stage, by, when set. */
static void timeline_detail(char *buf, size_t cap, const json_t *e)
{
    size_t used = 0;
    int present;
    double code = get_num(e, "code", &present);
    buf[0] = '\0';
    if (present && code != 0)
        used += (size_t)snprintf(buf + used, cap - used, "code=%.0f ", code);
    const char *reason = get_str(e, "reason");
    if (reason && reason[0] && used < cap)
        used += (size_t)snprintf(buf + used, cap - used, "reason=\"%s\" ", reason);
    double stage = get_num(e, "stage", &present);
    if (present && stage != 0 && used < cap)
        used += (size_t)snprintf(buf + used, cap - used, "stage=%.0f ", stage);
    const char *by = get_str(e, "by");
    if (by && by[0] && used < cap)
        used += (size_t)snprintf(buf + used, cap - used, "by=%s ", by);
    if (used >= cap)
        used = cap - 1;
    while (used > 0 && buf[used - 1] == ' ')
        buf[--used] = '\0';
}

int ctl_show_case(const json_t *a, FILE *out)
{
    static const char *const head[] = {"SEQ", "TIME", "TYPE", "FROM", "TO", "MSG ID", "DETAIL"};
    const json_t *c = json_object_get(a, "case");
    const json_t *arr = answer_array(a, "timeline");
    if (!json_is_object(c) || !arr)
        return -1;
    print_case(c, out);
    fprintf(out, "\ntimeline:\n");
    ctl_table_t *t = ctl_table_new(7, head, "rllllll");
    if (!t)
        return -1;
    size_t i;
    const json_t *e;
    char buf[1024];
    json_array_foreach(arr, i, e)
    {
        ctl_table_cell(t, fmt_int(buf, sizeof buf, e, "seq"));
        ctl_table_cell(t, fmt_time(buf, sizeof buf, e, "time_ms"));
        ctl_table_cell(t, get_str(e, "type"));
        const char *src = get_str(e, "source"), *dst = get_str(e, "destination");
        ctl_table_cell(t, src && src[0] ? src : NULL);
        ctl_table_cell(t, dst && dst[0] ? dst : NULL);
        const char *msg = get_str(e, "msg_id");
        ctl_table_cell(t, msg && msg[0] ? msg : NULL);
        timeline_detail(buf, sizeof buf, e);
        ctl_table_cell(t, buf[0] ? buf : NULL);
    }
    return finish_table(&t, out, "(no events)");
}

int ctl_show_held(const json_t *a, FILE *out)
{
    static const char *const head[] = {"REGION", "DSEQ", "MSG ID", "SINCE", "REASON"};
    const json_t *arr = answer_array(a, "held");
    ctl_table_t *t = arr ? ctl_table_new(5, head, "lrlll") : NULL;
    if (!t)
        return -1;
    size_t i;
    const json_t *m;
    char buf[64];
    json_array_foreach(arr, i, m)
    {
        ctl_table_cell(t, get_str(m, "region"));
        ctl_table_cell(t, fmt_int(buf, sizeof buf, m, "dseq"));
        ctl_table_cell(t, get_str(m, "msg_id"));
        ctl_table_cell(t, fmt_time(buf, sizeof buf, m, "since_ms"));
        ctl_table_cell(t, get_str(m, "reason"));
    }
    return finish_table(&t, out, "no held messages");
}

int ctl_show_refusals(const json_t *a, FILE *out)
{
    static const char *const head[] = {"TIME", "CODE", "REGION", "ITEM", "REASON"};
    const json_t *arr = answer_array(a, "refusals");
    ctl_table_t *t = arr ? ctl_table_new(5, head, "lllll") : NULL;
    if (!t)
        return -1;
    size_t i;
    const json_t *r;
    char buf[64];
    json_array_foreach(arr, i, r)
    {
        ctl_table_cell(t, fmt_time(buf, sizeof buf, r, "time_ms"));
        ctl_table_cell(t, get_str(r, "code"));
        ctl_table_cell(t, get_str(r, "region"));
        const char *item = get_str(r, "item");
        ctl_table_cell(t, item && item[0] ? item : NULL);
        ctl_table_cell(t, get_str(r, "reason"));
    }
    return finish_table(&t, out, "no refusals since the hub started");
}

int ctl_show_security(const json_t *a, FILE *out)
{
    static const char *const head[] = {"TIME", "KIND", "FINGERPRINT", "ADDRESS", "REASON"};
    const json_t *arr = answer_array(a, "events");
    ctl_table_t *t = arr ? ctl_table_new(5, head, "lllll") : NULL;
    if (!t)
        return -1;
    size_t i;
    const json_t *e;
    char buf[64];
    json_array_foreach(arr, i, e)
    {
        ctl_table_cell(t, fmt_time(buf, sizeof buf, e, "time_ms"));
        ctl_table_cell(t, get_str(e, "kind"));
        const char *fp = get_str(e, "fingerprint"), *addr = get_str(e, "address");
        ctl_table_cell(t, fp && fp[0] ? fp : NULL);
        ctl_table_cell(t, addr && addr[0] ? addr : NULL);
        ctl_table_cell(t, get_str(e, "reason"));
    }
    return finish_table(&t, out, "no security events since the hub started");
}

int ctl_show_journal(const json_t *a, FILE *out)
{
    char seq[64], hash[160];
    const char *h = get_str(a, "last_hash"); /* absent while the journal is empty */
    if (!json_is_number(json_object_get(a, "last_seq")))
        return -1;
    fprintf(out, "%-12s %s\n%-12s %s\n", "last seq", fmt_int(seq, sizeof seq, a, "last_seq"),
            "last hash", ctl_text_clean(hash, sizeof hash, h ? h : "-"));
    return 0;
}

static void indent(FILE *out, int depth)
{
    fputc('\n', out);
    for (int i = 0; i < depth; i++)
        fputs("  ", out);
}

/* Index of the first byte after whitespace from i. */
static size_t skip_space(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

int ctl_show_json(const char *s, size_t len, FILE *out)
{
    int depth = 0;
    for (size_t i = skip_space(s, len, 0); i < len; i = skip_space(s, len, i)) {
        char c = s[i++];
        if (c == '"') {
            fputc(c, out);
            while (i < len && s[i] != '"') {
                if (s[i] == '\\' && i + 1 < len)
                    fputc(s[i++], out);
                fputc(s[i++], out);
            }
            if (i < len)
                fputc(s[i++], out);
        } else if (c == '{' || c == '[') {
            size_t next = skip_space(s, len, i);
            fputc(c, out);
            if (next < len && (s[next] == '}' || s[next] == ']')) {
                fputc(s[next], out);
                i = next + 1;
            } else {
                indent(out, ++depth);
            }
        } else if (c == '}' || c == ']') {
            indent(out, --depth);
            fputc(c, out);
        } else if (c == ',') {
            fputc(c, out);
            indent(out, depth);
        } else if (c == ':') {
            fputs(": ", out);
        } else {
            fputc(c, out);
        }
    }
    fputc('\n', out);
    return ferror(out) ? -1 : 0;
}
