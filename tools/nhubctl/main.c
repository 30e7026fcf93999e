/*
 * nhubctl: the operators' command line for a running nhubd, through the
 * hub's HTTP API (v1): the same reads and actions as the dashboard.
 *
 *   nhubctl [--url URL] [--token-file FILE] [--json] COMMAND [ARGS] [OPTIONS]
 *
 * This file is the command line: the options, the table of commands, and
 * for each command the request it makes and what it prints. client.c makes
 * the request and decides the exit status; show.c prints the answers;
 * table.c aligns them. The exit statuses are part of the interface scripts
 * use (see usage()), so every path out of main returns one of enum
 * ctl_status and nothing else.
 */
#include "client.h"
#include "show.h"

#include <curl/curl.h>
#include <errno.h>
#include <stddef.h>
#include <jansson.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CTL_VERSION "0.1.0"
#define CTL_DEFAULT_URL "http://127.0.0.1:7480"
#define CTL_TOKEN_MAX 4096
#define CTL_LIMIT_MAX 1000 /* the API's largest page */

/* Options that belong to some commands only (ctl_command_t.options). */
enum {
    OPT_REGION = 1 << 0,
    OPT_ITEM = 1 << 1,
    OPT_STATE = 1 << 2,
    OPT_OPEN = 1 << 3,
    OPT_OLDER = 1 << 4,
    OPT_LIMIT = 1 << 5,
    OPT_AFTER = 1 << 6,
    OPT_REASON = 1 << 7,
};

typedef struct ctl_opts {
    const char *url;
    const char *token_arg, *token_file;
    const char *by;
    const char *cacert;
    int json;
    long timeout_ms;
    unsigned seen; /* OPT_ bits given on the command line */
    const char *region, *item, *state, *reason, *after, *limit;
    int open;
    long long older_than_s;
    const char *args[4]; /* positional arguments after the command */
    size_t nargs;
} ctl_opts_t;

typedef struct ctl_command ctl_command_t;
struct ctl_command {
    const char *name;
    const char *args_usage; /* "REGION", "CASE_ID", ... or "" */
    size_t nargs;
    unsigned options;
    enum ctl_status (*run)(ctl_client_t *c, const ctl_opts_t *o);
};

static void usage(FILE *out)
{
    fputs("NAME\n"
          "    nhubctl - operate a running nhub hub through its HTTP API\n"
          "\n"
          "SYNOPSIS\n"
          "    nhubctl [OPTIONS] COMMAND [ARGUMENTS] [COMMAND OPTIONS]\n"
          "\n"
          "DESCRIPTION\n"
          "    Reads the hub's state and takes the operators' actions through the hub's\n"
          "    HTTP API (http.listen in the hub's configuration), the same API the\n"
          "    dashboard uses. Options may come before or after the command. Times are\n"
          "    UTC, RFC 3339 with milliseconds; \"-\" is a time that has not come.\n"
          "\n"
          "READ COMMANDS (the read token; none when the hub has no http.read_token)\n"
          "    status               the hub: journal, store, sessions, queues, cases, counters\n"
          "    regions              every configured region: connected, queued, held, in\n"
          "                         flight, suspended or paused, rate limit, its cases as\n"
          "                         handler (open, overdue); suspension reasons below\n"
          "    queues               the delivery queues, biggest first\n"
          "    items                cases per service item: opened, open, overdue, answered,\n"
          "                         in time, expired, refused, mean handling time\n"
          "    cases                cases, newest first\n"
          "        --region R       R is the requester or the handler\n"
          "        --item I         of service item I\n"
          "        --state S        open, delivered, handling, reminded, overdue, answered,\n"
          "                         expired or refused\n"
          "        --open           not closed (neither answered, expired nor refused)\n"
          "        --older-than T   opened more than T ago: seconds, or 90m, 12h, 3d\n"
          "        --limit N        at most N cases, 1 to 1000 (default 100)\n"
          "        --after ID       the page after case ID (printed when there are more)\n"
          "    case ID              one case (32 hex digits) and its timeline\n"
          "    held                 messages held for a payload version the region lacks\n"
          "        --region R       of region R only\n"
          "        --limit N        at most N\n"
          "    refusals             the last 256 messages refused since the hub started\n"
          "    security             refused connections and identities, newest first\n"
          "    journal              the journal's last sequence number and its chain hash\n"
          "\n"
          "ACTIONS (the operator token; the hub journals each with --by and your address)\n"
          "    suspend R            refuse new messages from and to region R; deliveries\n"
          "        --reason TEXT    queued for R wait (shown by regions)\n"
          "    resume R             end an operator's suspension (a suspension written in\n"
          "                         the configuration file stays: the hub answers 409)\n"
          "    pause R              stop delivering to R; messages to R are still accepted\n"
          "    unpause R            deliver to R again\n"
          "    rate R PER_SECOND    deliver at most PER_SECOND messages a second to R;\n"
          "                         0 removes the limit\n"
          "    redrive R            try R's held messages again now, backoff reset\n"
          "    remind CASE_ID       send the handler of an open case a reminder (409 if the\n"
          "                         case is closed)\n"
          "    reload               reload the hub's configuration file, as SIGHUP does; a\n"
          "                         file with an error is refused and the running one stays\n"
          "\n"
          "OPTIONS\n"
          "    --url URL            the hub's API (default $NHUB_URL, else " CTL_DEFAULT_URL ")\n"
          "    --token-file FILE    the token: the first line of FILE\n"
          "    --token TOKEN        the token itself (other users can see it in ps: prefer\n"
          "                         --token-file); default for both $NHUB_TOKEN\n"
          "    --by NAME            who acts, journaled with each action (default\n"
          "                         $NHUB_OPERATOR, else your login name)\n"
          "    --json               print the hub's JSON answer as received, indented, for\n"
          "                         scripts (nothing on stdout when the request fails)\n"
          "    --timeout SECONDS    give up on the hub after SECONDS (default 10)\n"
          "    --cacert FILE        for https://: trust the CA certificates in FILE (PEM)\n"
          "                         instead of the system's\n"
          "    -h, --help           this text\n"
          "    --version            nhubctl's version\n"
          "\n"
          "EXIT STATUS\n"
          "    0    done\n"
          "    1    the hub refused: unknown region or case (404), conflict (409), bad\n"
          "         request (400); the hub's reason is printed on stderr\n"
          "    2    usage error: unknown command or option, a missing or malformed\n"
          "         argument, a token file that cannot be read; or the output cannot be\n"
          "         written\n"
          "    3    the hub is not reachable at the URL: connection refused, timeout, name\n"
          "         not found\n"
          "    4    the token was refused: none given where one is needed or a wrong one\n"
          "         (401), the read-only one for an action (403)\n"
          "    5    the answer is not the hub's API: not JSON, HTTP 5xx (503: the hub is\n"
          "         not ready), a redirect\n"
          "\n"
          "    The token is never printed, in messages or otherwise.\n"
          "\n"
          "ENVIRONMENT\n"
          "    NHUB_URL, NHUB_TOKEN, NHUB_OPERATOR: the defaults above.\n"
          "\n"
          "EXAMPLES\n"
          "    nhubctl regions\n"
          "    nhubctl cases --state overdue --region 440000 --older-than 1d\n"
          "    nhubctl case a63246dca44444fb3c208ecae6fac3d6\n"
          "    nhubctl --token-file /etc/nhub/operator.token suspend 440000 \\\n"
          "        --reason \"platform maintenance until 22:00\"\n"
          "    nhubctl --json status | jq .queued\n",
          out);
}

/* A usage error: one line saying what is wrong, one saying where help is. */
static enum ctl_status usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static enum ctl_status usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("nhubctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(nhubctl --help lists the commands and options)\n", stderr);
    return CTL_USAGE;
}

/* ---- checks of arguments --------------------------------------------- */

static int is_region(const char *s)
{
    if (strlen(s) != 6)
        return 0;
    for (size_t i = 0; i < 6; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int is_case_id(const char *s)
{
    if (strlen(s) != 32)
        return 0;
    for (size_t i = 0; i < 32; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return 1;
}

/* A checked case id (32 hex digits) in the lower case the API prints, into out[33]. */
static const char *lower_id(char out[33], const char *id)
{
    for (size_t i = 0; i < 32; i++)
        out[i] = id[i] >= 'A' && id[i] <= 'F' ? (char)(id[i] - 'A' + 'a') : id[i];
    out[32] = '\0';
    return out;
}

static int is_state(const char *s)
{
    static const char *const states[] = {"open",    "delivered", "handling", "reminded",
                                         "overdue", "answered",  "expired",  "refused"};
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
        if (strcmp(s, states[i]) == 0)
            return 1;
    return 0;
}

/* A whole decimal number in [min, max] into *out; 0 or -1. */
static int parse_count(const char *s, long long min, long long max, long long *out)
{
    if (!s[0] || s[0] == '-' || s[0] == '+')
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* "90", "90s", "15m", "12h", "3d" into seconds; 0 or -1. */
static int parse_age(const char *s, long long *seconds)
{
    static const struct {
        char suffix;
        long long factor;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    char digits[32];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof digits)
        return -1;
    long long factor = 1;
    memcpy(digits, s, n + 1);
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (digits[n - 1] == units[i].suffix) {
            factor = units[i].factor;
            digits[--n] = '\0';
        }
    }
    long long v;
    if (parse_count(digits, 0, 100LL * 365 * 86400 / factor, &v) != 0)
        return -1;
    *seconds = v * factor;
    return 0;
}

/* ---- printing an answer ---------------------------------------------- */

/* Report a failed request on stderr; returns its status. */
static enum ctl_status report(const ctl_reply_t *r)
{
    if (r->status == CTL_REFUSED) {
        const char *code = json_string_value(json_object_get(r->json, "error"));
        fprintf(stderr, "nhubctl: the hub refused: %s (HTTP %ld%s%s)\n", r->message, r->http_code,
                code ? " " : "", code ? code : "");
    } else {
        fprintf(stderr, "nhubctl: %s\n", r->message);
    }
    return r->status;
}

/* GET `path`, then print the answer with `show` (or as JSON). */
static enum ctl_status run_read(ctl_client_t *c, const ctl_opts_t *o, const char *path,
                                const char *query, int (*show)(const json_t *, FILE *))
{
    ctl_reply_t r;
    enum ctl_status st = ctl_client_get(c, path, query, &r);
    if (st != CTL_OK) {
        report(&r);
    } else if (o->json) {
        ctl_show_json(r.body, r.body_len, stdout);
    } else if (show(r.json, stdout) != 0) {
        fprintf(stderr,
                "nhubctl: the answer of %s%s lacks what the API promises; is it the "
                "hub's API (v1)?\n",
                ctl_client_url(c), path);
        st = CTL_NOT_API;
    }
    ctl_reply_clear(&r);
    return st;
}

/*
 * POST `body` (consumed: the reference is given up) to `path` with "by"
 * added; on success print the JSON answer (--json) or call `say`.
 */
static enum ctl_status run_action(ctl_client_t *c, const ctl_opts_t *o, const char *path,
                                  json_t *body, void (*say)(const ctl_opts_t *, const json_t *))
{
    ctl_reply_t r;
    if (!body || json_object_set_new(body, "by", json_string(o->by)) != 0) {
        json_decref(body);
        fprintf(stderr, "nhubctl: out of memory\n");
        return CTL_NOT_API;
    }
    enum ctl_status st = ctl_client_post(c, path, body, &r);
    json_decref(body);
    if (st != CTL_OK)
        report(&r);
    else if (o->json)
        ctl_show_json(r.body, r.body_len, stdout);
    else
        say(o, r.json);
    /* An action that found things as asked (pausing a paused region) is
     * done, and the operator should know nothing moved. */
    if (st == CTL_OK && !o->json && json_is_false(json_object_get(r.json, "changed")))
        printf("(no change: it was so already)\n");
    ctl_reply_clear(&r);
    return st;
}

/* "/api/v1/regions/R/ACTION" with R escaped; 0 or -1 when too long. */
static int region_path(char *out, size_t cap, const char *region, const char *action)
{
    char esc[64];
    if (ctl_client_escape(region, esc, sizeof esc) != 0)
        return -1;
    int n = snprintf(out, cap, "/api/v1/regions/%s/%s", esc, action);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* ---- read commands ------------------------------------------------- */

static enum ctl_status cmd_status(ctl_client_t *c, const ctl_opts_t *o)
{
    return run_read(c, o, "/api/v1/status", NULL, ctl_show_status);
}

static enum ctl_status cmd_regions(ctl_client_t *c, const ctl_opts_t *o)
{
    return run_read(c, o, "/api/v1/regions", NULL, ctl_show_regions);
}

static enum ctl_status cmd_queues(ctl_client_t *c, const ctl_opts_t *o)
{
    return run_read(c, o, "/api/v1/queues", NULL, ctl_show_queues);
}

static enum ctl_status cmd_items(ctl_client_t *c, const ctl_opts_t *o)
{
    return run_read(c, o, "/api/v1/items", NULL, ctl_show_items);
}

static enum ctl_status cmd_refusals(ctl_client_t *c, const ctl_opts_t *o)
{
    return run_read(c, o, "/api/v1/refusals", NULL, ctl_show_refusals);
}

static enum ctl_status cmd_security(ctl_client_t *c, const ctl_opts_t *o)
{
    return run_read(c, o, "/api/v1/security", NULL, ctl_show_security);
}

static enum ctl_status cmd_journal(ctl_client_t *c, const ctl_opts_t *o)
{
    return run_read(c, o, "/api/v1/journal", NULL, ctl_show_journal);
}

/* Append "&key=value" (value escaped) to the query in q; 0 or -1. */
static int query_add(char *q, size_t cap, const char *key, const char *value)
{
    char esc[256];
    if (!value)
        return 0;
    if (ctl_client_escape(value, esc, sizeof esc) != 0)
        return -1;
    size_t used = strlen(q);
    int n = snprintf(q + used, cap - used, "%s%s=%s", used ? "&" : "", key, esc);
    return n > 0 && (size_t)n < cap - used ? 0 : -1;
}

static enum ctl_status cmd_cases(ctl_client_t *c, const ctl_opts_t *o)
{
    char q[1024] = "", older[32], after[33];
    snprintf(older, sizeof older, "%lld", o->older_than_s);
    if (query_add(q, sizeof q, "region", o->region) || query_add(q, sizeof q, "item", o->item) ||
        query_add(q, sizeof q, "state", o->state) ||
        query_add(q, sizeof q, "open", o->open ? "1" : NULL) ||
        query_add(q, sizeof q, "older_than", (o->seen & OPT_OLDER) ? older : NULL) ||
        query_add(q, sizeof q, "limit", o->limit) ||
        query_add(q, sizeof q, "after", o->after ? lower_id(after, o->after) : NULL))
        return usage_error("the filters are too long");
    ctl_reply_t r;
    enum ctl_status st = ctl_client_get(c, "/api/v1/cases", q, &r);
    if (st != CTL_OK) {
        report(&r);
    } else if (o->json) {
        ctl_show_json(r.body, r.body_len, stdout);
    } else if (ctl_show_cases(r.json, stdout) != 0) {
        fprintf(stderr,
                "nhubctl: the answer of %s/api/v1/cases has no \"cases\" array; is it "
                "the hub's API (v1)?\n",
                ctl_client_url(c));
        st = CTL_NOT_API;
    } else {
        /* The table stays what a pipe reads; where to go on is for the person. */
        const char *next = json_string_value(json_object_get(r.json, "next"));
        if (next && is_case_id(next))
            fprintf(stderr, "nhubctl: more cases: add --after %s\n", next);
    }
    ctl_reply_clear(&r);
    return st;
}

static enum ctl_status cmd_case(ctl_client_t *c, const ctl_opts_t *o)
{
    char path[128], id[33];
    snprintf(path, sizeof path, "/api/v1/cases/%s", lower_id(id, o->args[0]));
    return run_read(c, o, path, NULL, ctl_show_case);
}

static enum ctl_status cmd_held(ctl_client_t *c, const ctl_opts_t *o)
{
    char q[256] = "";
    if (query_add(q, sizeof q, "region", o->region) || query_add(q, sizeof q, "limit", o->limit))
        return usage_error("the filters are too long");
    return run_read(c, o, "/api/v1/held", q, ctl_show_held);
}

/* ---- actions ------------------------------------------------------- */

static void say_suspended(const ctl_opts_t *o, const json_t *a)
{
    (void)a;
    printf("%s suspended%s%s\n", o->args[0], o->reason ? ": " : "", o->reason ? o->reason : "");
}

static void say_resumed(const ctl_opts_t *o, const json_t *a)
{
    (void)a;
    printf("%s resumed\n", o->args[0]);
}

static void say_paused(const ctl_opts_t *o, const json_t *a)
{
    (void)a;
    printf("delivery to %s paused\n", o->args[0]);
}

static void say_unpaused(const ctl_opts_t *o, const json_t *a)
{
    (void)a;
    printf("delivery to %s unpaused\n", o->args[0]);
}

static void say_rate(const ctl_opts_t *o, const json_t *a)
{
    (void)a;
    if (strcmp(o->args[1], "0") == 0)
        printf("delivery to %s: no rate limit\n", o->args[0]);
    else
        printf("delivery to %s: at most %s messages a second\n", o->args[0], o->args[1]);
}

static void say_redriven(const ctl_opts_t *o, const json_t *a)
{
    json_t *n = json_object_get(a, "released");
    if (json_is_integer(n))
        printf("%s: %lld held messages released\n", o->args[0], (long long)json_integer_value(n));
    else
        printf("%s: held messages released\n", o->args[0]);
}

static void say_reminded(const ctl_opts_t *o, const json_t *a)
{
    (void)a;
    printf("case %s reminded\n", o->args[0]);
}

static void say_reloaded(const ctl_opts_t *o, const json_t *a)
{
    (void)o;
    json_t *n = json_object_get(a, "regions");
    if (json_is_integer(n))
        printf("configuration reloaded: %lld regions\n", (long long)json_integer_value(n));
    else
        printf("configuration reloaded\n");
}

static enum ctl_status region_action(ctl_client_t *c, const ctl_opts_t *o, const char *action,
                                     json_t *body, void (*say)(const ctl_opts_t *, const json_t *))
{
    char path[160];
    if (region_path(path, sizeof path, o->args[0], action) != 0) {
        json_decref(body);
        return usage_error("region %s: too long", o->args[0]);
    }
    return run_action(c, o, path, body, say);
}

static enum ctl_status cmd_suspend(ctl_client_t *c, const ctl_opts_t *o)
{
    json_t *body = json_object();
    if (body && o->reason)
        json_object_set_new(body, "reason", json_string(o->reason));
    return region_action(c, o, "suspend", body, say_suspended);
}

static enum ctl_status cmd_resume(ctl_client_t *c, const ctl_opts_t *o)
{
    return region_action(c, o, "resume", json_object(), say_resumed);
}

static enum ctl_status cmd_pause(ctl_client_t *c, const ctl_opts_t *o)
{
    return region_action(c, o, "pause", json_object(), say_paused);
}

static enum ctl_status cmd_unpause(ctl_client_t *c, const ctl_opts_t *o)
{
    return region_action(c, o, "unpause", json_object(), say_unpaused);
}

static enum ctl_status cmd_rate(ctl_client_t *c, const ctl_opts_t *o)
{
    long long per_second;
    if (parse_count(o->args[1], 0, 1000000000LL, &per_second) != 0)
        return usage_error("rate: PER_SECOND must be a whole number from 0 (no limit) to "
                           "1000000000, not \"%s\"",
                           o->args[1]);
    json_t *body = json_object();
    if (body)
        json_object_set_new(body, "per_second", json_integer(per_second));
    return region_action(c, o, "rate", body, say_rate);
}

static enum ctl_status cmd_redrive(ctl_client_t *c, const ctl_opts_t *o)
{
    return region_action(c, o, "redrive", json_object(), say_redriven);
}

static enum ctl_status cmd_remind(ctl_client_t *c, const ctl_opts_t *o)
{
    char path[128], id[33];
    snprintf(path, sizeof path, "/api/v1/cases/%s/remind", lower_id(id, o->args[0]));
    return run_action(c, o, path, json_object(), say_reminded);
}

static enum ctl_status cmd_reload(ctl_client_t *c, const ctl_opts_t *o)
{
    return run_action(c, o, "/api/v1/reload", json_object(), say_reloaded);
}

static const ctl_command_t commands[] = {
    {"status", "", 0, 0, cmd_status},
    {"regions", "", 0, 0, cmd_regions},
    {"queues", "", 0, 0, cmd_queues},
    {"items", "", 0, 0, cmd_items},
    {"cases", "", 0,
     OPT_REGION | OPT_ITEM | OPT_STATE | OPT_OPEN | OPT_OLDER | OPT_LIMIT | OPT_AFTER, cmd_cases},
    {"case", "CASE_ID", 1, 0, cmd_case},
    {"held", "", 0, OPT_REGION | OPT_LIMIT, cmd_held},
    {"refusals", "", 0, 0, cmd_refusals},
    {"security", "", 0, 0, cmd_security},
    {"journal", "", 0, 0, cmd_journal},
    {"suspend", "REGION", 1, OPT_REASON, cmd_suspend},
    {"resume", "REGION", 1, 0, cmd_resume},
    {"pause", "REGION", 1, 0, cmd_pause},
    {"unpause", "REGION", 1, 0, cmd_unpause},
    {"rate", "REGION PER_SECOND", 2, 0, cmd_rate},
    {"redrive", "REGION", 1, 0, cmd_redrive},
    {"remind", "CASE_ID", 1, 0, cmd_remind},
    {"reload", "", 0, 0, cmd_reload},
};

static const ctl_command_t *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* ---- the command line ---------------------------------------------- */

/* What parse_args found besides options to keep. */
enum parse_outcome { PARSE_RUN, PARSE_HELP, PARSE_VERSION, PARSE_ERROR };

/* How an option's value is kept. */
enum opt_kind {
    KIND_TEXT,    /* the value, as a const char * at `offset` of ctl_opts_t */
    KIND_FLAG,    /* no value; the int at `offset` set to 1 */
    KIND_AGE,     /* "90", "15m", "12h", "3d": seconds into older_than_s */
    KIND_TIMEOUT, /* seconds into timeout_ms */
    KIND_HELP,
    KIND_VERSION,
};

typedef struct ctl_option {
    const char *name;
    enum opt_kind kind;
    size_t offset;
    unsigned bit; /* OPT_ bit, 0 for a global option */
} ctl_option_t;

#define TEXT(name, field, bit)                                                                     \
    {                                                                                              \
        name, KIND_TEXT, offsetof(ctl_opts_t, field), bit                                          \
    }
#define FLAG(name, field, bit)                                                                     \
    {                                                                                              \
        name, KIND_FLAG, offsetof(ctl_opts_t, field), bit                                          \
    }

static const ctl_option_t options[] = {
    TEXT("--url", url, 0),
    TEXT("--token", token_arg, 0),
    TEXT("--token-file", token_file, 0),
    TEXT("--by", by, 0),
    TEXT("--cacert", cacert, 0),
    FLAG("--json", json, 0),
    {"--timeout", KIND_TIMEOUT, 0, 0},
    {"--help", KIND_HELP, 0, 0},
    {"-h", KIND_HELP, 0, 0},
    {"--version", KIND_VERSION, 0, 0},
    TEXT("--region", region, OPT_REGION),
    TEXT("--item", item, OPT_ITEM),
    TEXT("--state", state, OPT_STATE),
    FLAG("--open", open, OPT_OPEN),
    {"--older-than", KIND_AGE, 0, OPT_OLDER},
    TEXT("--limit", limit, OPT_LIMIT),
    TEXT("--after", after, OPT_AFTER),
    TEXT("--reason", reason, OPT_REASON),
};

/* usage_error for the parser. */
static enum parse_outcome parse_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static enum parse_outcome parse_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    usage_error("%s", msg);
    return PARSE_ERROR;
}

static enum parse_outcome parse_timeout(const char *value, long *timeout_ms)
{
    char *end;
    double s = strtod(value, &end);
    if (end == value || *end || !(s > 0 && s <= 3600))
        return parse_error("--timeout: seconds, more than 0 and at most 3600; not \"%s\"", value);
    *timeout_ms = (long)(s * 1000 + 0.5);
    if (*timeout_ms < 1)
        *timeout_ms = 1;
    return PARSE_RUN;
}

/* Store option `opt` with `value` (NULL for a flag) into *o. */
static enum parse_outcome set_option(ctl_opts_t *o, const ctl_option_t *opt, const char *value)
{
    char *field = (char *)o + opt->offset;
    o->seen |= opt->bit;
    switch (opt->kind) {
    case KIND_TEXT: memcpy(field, &value, sizeof value); return PARSE_RUN;
    case KIND_FLAG: *(int *)(void *)field = 1; return PARSE_RUN;
    case KIND_TIMEOUT: return parse_timeout(value, &o->timeout_ms);
    case KIND_HELP: return PARSE_HELP;
    case KIND_VERSION: return PARSE_VERSION;
    case KIND_AGE:
        if (parse_age(value, &o->older_than_s) == 0)
            return PARSE_RUN;
        return parse_error("--older-than: a number of seconds, or 90m, 12h, 3d; not \"%s\"", value);
    }
    return PARSE_ERROR;
}

static const ctl_option_t *find_option(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        if (strlen(options[i].name) == len && strncmp(options[i].name, name, len) == 0)
            return &options[i];
    return NULL;
}

/* Options anywhere, "--name value" or "--name=value"; "--" ends them.
 * The first word that is not an option is the command (*command). */
static enum parse_outcome parse_args(int argc, char **argv, ctl_opts_t *o, const char **command)
{
    int only_words = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_words && strcmp(a, "--") == 0) {
            only_words = 1;
            continue;
        }
        /* "-1" is a (wrong) number for a command to refuse, not an option. */
        if (only_words || a[0] != '-' || a[1] == '\0' || (a[1] >= '0' && a[1] <= '9')) {
            if (!*command)
                *command = a;
            else if (o->nargs < sizeof o->args / sizeof o->args[0])
                o->args[o->nargs++] = a;
            else
                return parse_error("too many arguments (from \"%s\")", a);
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq && a[1] == '-' ? (size_t)(eq - a) : strlen(a);
        const ctl_option_t *opt = find_option(a, len);
        if (!opt)
            return parse_error("unknown option \"%.*s\"", (int)len, a);
        const char *value = NULL;
        if (opt->kind == KIND_TEXT || opt->kind == KIND_AGE || opt->kind == KIND_TIMEOUT) {
            if (a[len] == '=')
                value = a + len + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            else
                return parse_error("%s needs a value", opt->name);
        } else if (a[len] == '=') {
            return parse_error("%s takes no value", opt->name);
        }
        enum parse_outcome p = set_option(o, opt, value);
        if (p != PARSE_RUN)
            return p;
    }
    return PARSE_RUN;
}

/* The arguments and options fit the command (before any request is made). */
static enum ctl_status check_command(const ctl_command_t *cmd, const ctl_opts_t *o)
{
    if (o->nargs != cmd->nargs)
        return usage_error("usage: nhubctl %s%s%s", cmd->name, cmd->args_usage[0] ? " " : "",
                           cmd->args_usage);
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        if ((o->seen & options[i].bit) && !(cmd->options & options[i].bit))
            return usage_error("%s does not apply to %s", options[i].name, cmd->name);
    const char *region =
        cmd->nargs > 0 && strncmp(cmd->args_usage, "REGION", 6) == 0 ? o->args[0] : o->region;
    if (region && !is_region(region))
        return usage_error("region \"%s\": a six-digit code (GB/T 2260), e.g. 110000", region);
    if (strcmp(cmd->args_usage, "CASE_ID") == 0 && !is_case_id(o->args[0]))
        return usage_error("case id \"%s\": 32 hex digits (the request's msg_id)", o->args[0]);
    if (o->after && !is_case_id(o->after))
        return usage_error("--after \"%s\": a case id, 32 hex digits", o->after);
    if (o->state && !is_state(o->state))
        return usage_error("unknown state \"%s\": open, delivered, handling, reminded, overdue, "
                           "answered, expired or refused",
                           o->state);
    long long limit;
    if (o->limit && parse_count(o->limit, 1, CTL_LIMIT_MAX, &limit) != 0)
        return usage_error("--limit: a whole number from 1 to %d, not \"%s\"", CTL_LIMIT_MAX,
                           o->limit);
    if (o->item && !o->item[0])
        return usage_error("--item: empty");
    return CTL_OK;
}

/* Drop trailing white space (a token file's newline, a CRLF file). */
static void trim_end(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
}

/* The first line of `path` into token (capacity cap); 0 or CTL_USAGE.
 * Messages name the file, never what it holds. */
static enum ctl_status read_token_file(const char *path, char *token, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "nhubctl: --token-file %s: %s\n", path, strerror(errno));
        return CTL_USAGE;
    }
    int ok = fgets(token, (int)cap, f) != NULL;
    int whole = ok && (strchr(token, '\n') || feof(f));
    fclose(f);
    if (!ok || !whole) {
        fprintf(stderr, "nhubctl: --token-file %s: %s\n", path,
                ok ? "its first line is too long for a token" : "empty");
        return CTL_USAGE;
    }
    trim_end(token);
    return CTL_OK;
}

/* Where the token comes from, into token (may be left ""); 0 or CTL_USAGE. */
static enum ctl_status resolve_token(const ctl_opts_t *o, char *token, size_t cap, char *source,
                                     size_t source_cap)
{
    token[0] = source[0] = '\0';
    if (o->token_arg && o->token_file)
        return usage_error("--token and --token-file: give one of them");
    if (o->token_file) {
        snprintf(source, source_cap, "--token-file %s", o->token_file);
        if (read_token_file(o->token_file, token, cap) != CTL_OK)
            return CTL_USAGE;
    } else {
        const char *t = o->token_arg ? o->token_arg : getenv("NHUB_TOKEN");
        snprintf(source, source_cap, "%s", o->token_arg ? "--token" : "NHUB_TOKEN");
        if (!t)
            t = "";
        if (strlen(t) >= cap)
            return usage_error("the token from %s is too long", source);
        snprintf(token, cap, "%s", t);
    }
    if ((o->token_file || o->token_arg) && !token[0])
        return usage_error("the token from %s is empty", source);
    /* A bearer token is printable ASCII; anything else would break (or
     * smuggle lines into) the request's headers. */
    for (const char *p = token; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return usage_error("the token from %s holds a space or a character that cannot go "
                               "in an HTTP header",
                               source);
    return CTL_OK;
}

/* Who acts: --by, else $NHUB_OPERATOR, else the login name (into buf). */
static const char *resolve_operator(const ctl_opts_t *o, char *buf, size_t cap)
{
    const char *by = o->by ? o->by : getenv("NHUB_OPERATOR");
    if (by && by[0])
        return by;
    struct passwd *pw = getpwuid(getuid());
    if (pw && pw->pw_name && pw->pw_name[0])
        snprintf(buf, cap, "%s", pw->pw_name);
    else
        snprintf(buf, cap, "uid %lu", (unsigned long)getuid());
    return buf;
}

static void wipe(char *s, size_t n)
{
    volatile char *p = s;
    while (n-- > 0)
        *p++ = '\0';
}

static enum ctl_status run(const ctl_command_t *cmd, ctl_opts_t *o)
{
    char token[CTL_TOKEN_MAX], source[512], login[256];
    enum ctl_status st = resolve_token(o, token, sizeof token, source, sizeof source);
    if (st != CTL_OK) {
        wipe(token, sizeof token);
        return st;
    }
    o->by = resolve_operator(o, login, sizeof login);
    if (!o->url) {
        const char *env = getenv("NHUB_URL");
        o->url = env && env[0] ? env : CTL_DEFAULT_URL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        wipe(token, sizeof token);
        fprintf(stderr, "nhubctl: libcurl cannot start\n");
        return CTL_UNREACHABLE;
    }
    ctl_client_t *c = ctl_client_new(o->url, token, token[0] ? source : NULL, o->timeout_ms);
    wipe(token, sizeof token);
    if (c && o->cacert)
        ctl_client_set_cacert(c, o->cacert);
    if (!c) {
        fprintf(stderr, "nhubctl: out of memory\n");
        st = CTL_UNREACHABLE;
    } else {
        st = cmd->run(c, o);
    }
    ctl_client_destroy(&c);
    curl_global_cleanup();
    if (fflush(stdout) != 0 && st == CTL_OK) {
        fprintf(stderr, "nhubctl: cannot write the output: %s\n", strerror(errno));
        st = CTL_USAGE;
    }
    return st;
}

int main(int argc, char **argv)
{
    ctl_opts_t o = {.timeout_ms = 10000};
    const char *command = NULL;
    switch (parse_args(argc, argv, &o, &command)) {
    case PARSE_HELP: usage(stdout); return CTL_OK;
    case PARSE_VERSION: printf("nhubctl %s\n", CTL_VERSION); return CTL_OK;
    case PARSE_ERROR: return CTL_USAGE;
    case PARSE_RUN: break;
    }
    if (!command)
        return usage_error("no command given");
    if (strcmp(command, "help") == 0) {
        usage(stdout);
        return CTL_OK;
    }
    const ctl_command_t *cmd = find_command(command);
    if (!cmd)
        return usage_error("unknown command \"%s\"", command);
    enum ctl_status st = check_command(cmd, &o);
    return st != CTL_OK ? (int)st : (int)run(cmd, &o);
}
