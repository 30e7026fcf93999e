/*
 * nhub-cases: the hub's cases, read from its store while it runs.
 *
 *   nhub-cases [-c HUB.yaml | --data DIR] list [filters] [--json]
 *   nhub-cases [-c HUB.yaml | --data DIR] show CASE_ID [--json]
 *   nhub-cases [-c HUB.yaml | --data DIR] counts [--json]
 *   nhub-cases [-c HUB.yaml | --data DIR] deliveries MSG_ID [--json]
 *
 * Opens the LMDB environment read-only (store_open_reader): never takes the
 * writer's lock, never changes a byte, so the hub is not slowed or blocked.
 * What it prints is one consistent snapshot. No payload is ever printed.
 */
#include "cfg.h"
#include "conf.h"
#include "log.h"
#include "nhub_err.h"
#include "nhub_journal.pb-c.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIST_MAX 100000
#define CASES_TRACKED_MAX 4096 /* copies of one broadcast: one per region */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: nhub-cases [-c HUB.yaml | --data DIR] COMMAND [options]\n"
            "\n"
            "The hub's cases (requests and pushes with a time limit), read from its store\n"
            "while it runs; read-only, never blocks the hub.\n"
            "\n"
            "Commands:\n"
            "  list            cases, newest first, one line each\n"
            "      --region CODE   where CODE is the requester or the handler\n"
            "      --item ITEM     of this service item\n"
            "      --state STATE   open, delivered, handling, reminded, overdue,\n"
            "                      answered, expired or refused\n"
            "      --open          not closed (neither answered, expired nor refused)\n"
            "      --older-than D  opened more than D ago (90m, 12h, 3d)\n"
            "      --newer-than D  opened less than D ago\n"
            "      --limit N       at most N cases (default 100)\n"
            "  show CASE_ID    one case (32 hex digits: its request's msg_id) and its\n"
            "                  timeline: every journal event of its messages and transitions\n"
            "  counts          cases in each state\n"
            "  deliveries MSG_ID  each copy of a broadcast and whether its region\n"
            "                  confirmed it\n"
            "\n"
            "  -c, --config FILE  the hub's configuration (its hub.data_dir is read);\n"
            "                     default conf/hub.yaml\n"
            "      --data DIR     the hub's data directory instead\n"
            "      --json         one JSON object per line\n"
            "  -h, --help         this text\n"
            "\n"
            "Exit status: 0 done, 1 not found or the store cannot be read, 2 usage error.\n");
}

static void format_time(int64_t ms, char *buf, size_t cap)
{
    if (ms <= 0)
        snprintf(buf, cap, "-");
    else
        log_time(buf, cap, ms);
}

static int parse_id(const char *hex, uint8_t out[16])
{
    if (strlen(hex) != 32)
        return -1;
    for (int i = 0; i < 16; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

static const char *kind_name(int kind)
{
    static const char *const names[] = {"-", "request", "response", "push", "feedback", "notice"};
    return kind >= 0 && kind <= 5 ? names[kind] : "?";
}

static void print_case(const store_case_t *c, int json)
{
    char id[33], opened[32], due[32], expires[32], closed[32], valid[32];
    log_hex(id, sizeof id, c->id, 16);
    format_time(c->opened_ms, opened, sizeof opened);
    format_time(c->due_ms, due, sizeof due);
    format_time(c->expire_ms, expires, sizeof expires);
    format_time(c->closed_ms, closed, sizeof closed);
    format_time(c->valid_until_ms, valid, sizeof valid);
    if (json) {
        printf("{\"case_id\":\"%s\",\"state\":\"%s\",\"kind\":\"%s\",\"item\":\"%s\","
               "\"requester\":\"%s\",\"handler\":\"%s\",\"opened_ms\":%lld,\"remind_ms\":%lld,"
               "\"due_ms\":%lld,\"expire_ms\":%lld,\"closed_ms\":%lld,\"valid_until_ms\":%lld,"
               "\"next_deadline_ms\":%lld,\"delivered\":%s,\"reminded\":%s,\"overdue\":%s,"
               "\"stage\":%u,\"request_seq\":%llu,\"answer_seq\":%llu}\n",
               id, store_case_state_name(c->state), kind_name(c->kind), c->item, c->requester,
               c->handler, (long long)c->opened_ms, (long long)c->remind_ms, (long long)c->due_ms,
               (long long)c->expire_ms, (long long)c->closed_ms, (long long)c->valid_until_ms,
               (long long)c->next_ms, c->flags & STORE_CASE_F_DELIVERED ? "true" : "false",
               c->flags & STORE_CASE_F_REMINDED ? "true" : "false",
               c->flags & STORE_CASE_F_OVERDUE ? "true" : "false", c->stage,
               (unsigned long long)c->request_seq, (unsigned long long)c->answer_seq);
        return;
    }
    printf("%s  %-9s %-8s %-16s %s -> %s  opened %s  due %s", id, store_case_state_name(c->state),
           kind_name(c->kind), c->item, c->requester, c->handler, opened, due);
    if (c->closed_ms)
        printf("  closed %s", closed);
    if (c->valid_until_ms)
        printf("  valid until %s", valid);
    printf("\n");
}

/* One journal event of a timeline, as a line: time, event, who, what. */
static int print_event(store_reader_t *r, uint64_t seq, int json)
{
    const void *data;
    size_t len;
    if (store_journal_get(r, seq, &data, &len, NULL) != 0)
        return -1;
    Nhub__Journal__V1__JournalEvent *ev = nhub__journal__v1__journal_event__unpack(NULL, len, data);
    if (!ev)
        return -1;
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&nhub__journal__v1__event_type__descriptor, ev->type);
    const char *type = v ? v->name + strlen("EVENT_") : "?";
    char when[32], msg[33] = "-";
    format_time(ev->time_ms, when, sizeof when);
    if (ev->msg_id.len == 16)
        log_hex(msg, sizeof msg, ev->msg_id.data, 16);
    const char *state = ev->case_state ? store_case_state_name((int)ev->case_state) : "";
    int is_case = ev->type >= NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_DELIVERED &&
                  ev->type <= NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_REFUSED;
    if (json) {
        printf("{\"seq\":%llu,\"time_ms\":%lld,\"event\":\"%s\",\"msg_id\":\"%s\","
               "\"source\":\"%s\",\"destination\":\"%s\",\"payload_type\":\"%s\","
               "\"case_state\":\"%s\",\"stage\":%u}\n",
               (unsigned long long)seq, (long long)ev->time_ms, type, msg, ev->source,
               ev->destination, ev->payload_type, state, ev->stage);
    } else if (is_case) {
        printf("  %8llu  %s  %-17s -> %s\n", (unsigned long long)seq, when, type, state);
    } else {
        printf("  %8llu  %s  %-17s %s -> %s  %s  %s%s%s\n", (unsigned long long)seq, when, type,
               ev->source, ev->destination, ev->payload_type, msg, ev->case_state ? "  -> " : "",
               state);
    }
    nhub__journal__v1__journal_event__free_unpacked(ev, NULL);
    return 0;
}

static int cmd_show(store_reader_t *r, const char *hex, int json)
{
    uint8_t id[16];
    store_case_t c;
    if (parse_id(hex, id) != 0) {
        fprintf(stderr, "nhub-cases: a case id is 32 hex digits (its request's msg_id)\n");
        return 2;
    }
    int rc = store_case_read(r, id, &c);
    if (rc == NHUB_ENOTFOUND) {
        fprintf(stderr, "nhub-cases: no case %s\n", hex);
        return 1;
    }
    if (rc) {
        fprintf(stderr, "nhub-cases: cannot read case %s: %s\n", hex, nhub_strerror(rc));
        return 1;
    }
    print_case(&c, json);
    if (!json)
        printf("timeline:\n");
    uint64_t seqs[256], from = 0;
    size_t n;
    do {
        if (store_case_timeline(r, id, from, seqs, 256, &n) != 0)
            return 1;
        for (size_t i = 0; i < n; i++)
            if (print_event(r, seqs[i], json) != 0)
                fprintf(stderr, "nhub-cases: journal event %llu unreadable\n",
                        (unsigned long long)seqs[i]);
        if (n)
            from = seqs[n - 1] + 1;
    } while (n == 256);
    return 0;
}

static int cmd_deliveries(store_reader_t *r, const char *hex, int json)
{
    uint8_t id[16];
    store_tracked_t t[CASES_TRACKED_MAX];
    size_t n = 0, confirmed = 0;
    if (parse_id(hex, id) != 0) {
        fprintf(stderr, "nhub-cases: a msg_id is 32 hex digits\n");
        return 2;
    }
    if (store_tracked_list(r, id, t, CASES_TRACKED_MAX, &n) != 0)
        return 1;
    if (n == 0) {
        fprintf(stderr,
                "nhub-cases: no followed delivery of %s (broadcasts are followed copy by "
                "copy; a case's request is followed by its case: nhub-cases show)\n",
                hex);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        char when[32];
        format_time(t[i].confirmed_ms, when, sizeof when);
        confirmed += t[i].confirmed_ms != 0;
        if (json)
            printf("{\"region\":\"%s\",\"dseq\":%llu,\"confirmed_ms\":%lld}\n", t[i].region,
                   (unsigned long long)t[i].dseq, (long long)t[i].confirmed_ms);
        else
            printf("%s  dseq %-8llu %s\n", t[i].region, (unsigned long long)t[i].dseq,
                   t[i].confirmed_ms ? when : "not confirmed");
    }
    if (!json)
        printf("%zu of %zu confirmed\n", confirmed, n);
    return 0;
}

static int cmd_counts(store_reader_t *r, int json)
{
    uint64_t counts[STORE_CASE_STATES];
    if (store_case_counts(r, counts) != 0)
        return 1;
    if (json)
        printf("{\"all\":%llu", (unsigned long long)counts[0]);
    else
        printf("all %llu\n", (unsigned long long)counts[0]);
    for (int s = 1; s < STORE_CASE_STATES; s++) {
        if (json)
            printf(",\"%s\":%llu", store_case_state_name(s), (unsigned long long)counts[s]);
        else
            printf("%-9s %llu\n", store_case_state_name(s), (unsigned long long)counts[s]);
    }
    if (json)
        printf("}\n");
    return 0;
}

static int cmd_list(store_reader_t *r, store_case_filter_t *f, size_t limit, int json)
{
    store_case_t page[256], last;
    size_t shown = 0, n;
    int have_last = 0;
    do {
        size_t want = limit - shown < 256 ? limit - shown : 256;
        if (store_case_list(r, f, have_last ? &last : NULL, page, want, &n) != 0) {
            fprintf(stderr, "nhub-cases: cannot read the cases\n");
            return 1;
        }
        for (size_t i = 0; i < n; i++)
            print_case(&page[i], json);
        shown += n;
        if (n) {
            last = page[n - 1];
            have_last = 1;
        }
    } while (n == 256 && shown < limit);
    if (!json && shown == 0)
        printf("no case\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *config = "conf/hub.yaml", *data = NULL, *cmd = NULL, *id = NULL;
    int json = 0;
    size_t limit = 100;
    int64_t older = 0, newer = 0;
    store_case_filter_t f;
    memset(&f, 0, sizeof f);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && more) {
            config = argv[++i];
        } else if (!strcmp(a, "--data") && more) {
            data = argv[++i];
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--region") && more) {
            f.region = argv[++i];
        } else if (!strcmp(a, "--item") && more) {
            f.item = argv[++i];
        } else if (!strcmp(a, "--state") && more) {
            if (!(f.state = store_case_state_parse(argv[++i]))) {
                fprintf(stderr, "nhub-cases: unknown state \"%s\"\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--open")) {
            f.open_only = 1;
        } else if ((!strcmp(a, "--older-than") || !strcmp(a, "--newer-than")) && more) {
            int64_t *d = !strcmp(a, "--older-than") ? &older : &newer;
            if (conf_parse_duration_ms(argv[++i], d) != 0 || *d <= 0) {
                fprintf(stderr, "nhub-cases: %s: expected a duration like 90m, 12h, 3d\n", a);
                return 2;
            }
        } else if (!strcmp(a, "--limit") && more) {
            char *end;
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (*end || v == 0 || v > LIST_MAX) {
                fprintf(stderr, "nhub-cases: --limit: 1..%d\n", LIST_MAX);
                return 2;
            }
            limit = v;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!cmd && (!strcmp(a, "list") || !strcmp(a, "show") || !strcmp(a, "counts") ||
                            !strcmp(a, "deliveries"))) {
            cmd = a;
        } else if (cmd && (!strcmp(cmd, "show") || !strcmp(cmd, "deliveries")) && !id &&
                   a[0] != '-') {
            id = a;
        } else {
            fprintf(stderr, "nhub-cases: unexpected argument \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!cmd || ((!strcmp(cmd, "show") || !strcmp(cmd, "deliveries")) && !id)) {
        usage(stderr);
        return 2;
    }
    char err[1024];
    cfg_t *cfg = NULL;
    if (!data) {
        if (cfg_load(config, &cfg, err, sizeof err) != 0) {
            fprintf(stderr, "nhub-cases: %s\n", err);
            return 2;
        }
        data = cfg->hub.data_dir;
    }
    log_setup(LOG_WARN, NULL);
    store_t *s = NULL;
    store_reader_t *r = NULL;
    int rc = 1;
    if (store_open_reader(data, &s, err, sizeof err) != 0) {
        fprintf(stderr, "nhub-cases: %s\n", err);
    } else if (store_reader_open(s, &r) != 0) {
        fprintf(stderr, "nhub-cases: cannot read the store in %s\n", data);
    } else {
        int64_t now = (int64_t)time(NULL) * 1000;
        if (older)
            f.opened_before_ms = now - older;
        if (newer)
            f.opened_after_ms = now - newer;
        if (!strcmp(cmd, "show"))
            rc = cmd_show(r, id, json);
        else if (!strcmp(cmd, "counts"))
            rc = cmd_counts(r, json);
        else if (!strcmp(cmd, "deliveries"))
            rc = cmd_deliveries(r, id, json);
        else
            rc = cmd_list(r, &f, limit, json);
    }
    store_reader_close(&r);
    store_close(&s);
    cfg_destroy(&cfg);
    return rc;
}
