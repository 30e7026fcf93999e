/*
 * nhub-sim: provincial platforms (省级集中信息平台) trading through a real
 * nhubd, for demonstrations (`make run`) and tests.
 *
 * Each simulated province is a real libnhub adapter with its own data_dir
 * (DIR/CODE) and, when the hub runs in curve mode, its own key
 * (KEYS/CODE.key, from nhub-keygen); the provinces are regions the hub's
 * configuration lists (with keys, in curve mode), and the hub's catalogue
 * gives the time limits the handlers' delays are drawn against. What a
 * province sends and how it answers is in province.h.
 *
 * Threads: one per province, each the only user of its nhub_t (libnhub has
 * no background thread, and a thread of its own lets each adapter wait in
 * nhub_recv exactly until its next planned message, with no polling across
 * handles). This main thread only waits for a signal or the next summary
 * (sigtimedwait: SIGINT and SIGTERM are blocked in every thread, so no
 * handler runs and no global flag is needed), prints the live summary, and
 * at the end tells the provinces to stop (an atomic they read at least every
 * 100 ms), joins them and prints the final summary.
 *
 * Deterministic with --seed as far as a real network allows: each province
 * draws its choices (what to send, to whom, when, how to answer) from its own
 * generator seeded from the seed and its position, so the choices repeat;
 * the order in which deliveries arrive, and so the counts, may not.
 */
#include "catalog.h"
#include "cfg.h"
#include "keys.h"
#include "nhub.h"
#include "province.h"

#include "nhub_wire.pb-c.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SIM_REGIONS_MAX 64

static const char *const ITEMS[] = {"SI-VERIFY-002", "SI-VERIFY-003", "SI-PUSH-001",
                                    "SI-UPLOAD-001", "SI-NOTICE-001"};

typedef struct options {
    const char *config;
    size_t provinces;
    const char *regions; /* comma-separated, or NULL */
    const char *registry;
    double rate;
    double duration_s;
    uint64_t seed;
    bool seed_given;
    double late_share, never_share;
    const char *offline; /* REGION:AFTER:FOR */
    double broadcast_every_s;
    const char *hub;
    const char *hub_key_file;
    const char *keys;
    const char *data;
    double summary_every_s;
    const char *log_level;
} options_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: nhub-sim [options]\n"
            "Provinces trading through a running nhubd: verification requests answered in\n"
            "time, late or never (cases go overdue and expire), pushes with staged feedback,\n"
            "registration uploads, credit-notice broadcasts, one province offline a while.\n"
            "  -c, --config FILE      the hub's configuration: its regions, security mode,\n"
            "                         catalogue and endpoint (default conf/hub.yaml)\n"
            "  --provinces N          how many provinces (default 6, at least 2)\n"
            "  --regions A,B,...      these region codes instead of the first N the hub\n"
            "                         configures (with keys, in curve mode)\n"
            "  --registry CODE        the province playing the national registration\n"
            "                         database that takes uploads (default the first)\n"
            "  --rate R               new exchanges per second, all provinces (default 20)\n"
            "  --duration S           stop after S seconds; 0 = at SIGINT/SIGTERM (default 0)\n"
            "  --seed N               seed of the choices (default: from the clock, printed)\n"
            "  --late-share F         share of cases answered after the time limit (0.15)\n"
            "  --never-share F        share of cases never answered: they expire (0.05)\n"
            "  --offline CODE:AFTER:FOR  that province goes offline AFTER seconds into the\n"
            "                         run for FOR seconds (default: none)\n"
            "  --broadcast-every S    a credit notice broadcast this often (default 20; 0 = none)\n"
            "  --hub ENDPOINT         the hub (default the configuration's hub.listen)\n"
            "  --hub-key-file FILE    the hub's public key (default KEYS/hub.pub; curve mode)\n"
            "  --keys DIR             the regions' key files CODE.key (default conf/dev-keys)\n"
            "  --data DIR             the adapters' stores, DIR/CODE (default build/sim)\n"
            "  --summary-every S      a one-line summary this often (default 5; 0 = none)\n"
            "  --log-level LEVEL      libnhub's log on stderr: debug, info, warn (default),\n"
            "                         error, off\n"
            "  -h, --help             this text\n"
            "Exits 0 after --duration or on SIGINT/SIGTERM (within about a second), with a\n"
            "summary; 1 if a province's adapter cannot open; 2 on a usage or setup error.\n");
}

/* ---- arguments ---------------------------------------------------------------------- */

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-')
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, options_t *o)
{
    *o = (options_t){.config = "conf/hub.yaml",
                     .provinces = 6,
                     .rate = 20,
                     .late_share = 0.15,
                     .never_share = 0.05,
                     .broadcast_every_s = 20,
                     .keys = "conf/dev-keys",
                     .data = "build/sim",
                     .summary_every_s = 5,
                     .log_level = "warn"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u = 0;
        int bad = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!v) {
            fprintf(stderr, "nhub-sim: %s: unknown option, or its value is missing\n", a);
            return -1;
        }
        if (!strcmp(a, "-c") || !strcmp(a, "--config"))
            o->config = v;
        else if (!strcmp(a, "--provinces"))
            bad = parse_u64(v, &u) || u < 2 || u > SIM_REGIONS_MAX, o->provinces = (size_t)u;
        else if (!strcmp(a, "--regions"))
            o->regions = v;
        else if (!strcmp(a, "--registry"))
            o->registry = v;
        else if (!strcmp(a, "--rate"))
            bad = parse_double(v, 0, 1e6, &o->rate);
        else if (!strcmp(a, "--duration"))
            bad = parse_double(v, 0, 1e9, &o->duration_s);
        else if (!strcmp(a, "--seed"))
            bad = parse_u64(v, &o->seed), o->seed_given = true;
        else if (!strcmp(a, "--late-share"))
            bad = parse_double(v, 0, 1, &o->late_share);
        else if (!strcmp(a, "--never-share"))
            bad = parse_double(v, 0, 1, &o->never_share);
        else if (!strcmp(a, "--offline"))
            o->offline = v;
        else if (!strcmp(a, "--broadcast-every"))
            bad = parse_double(v, 0, 1e9, &o->broadcast_every_s);
        else if (!strcmp(a, "--hub"))
            o->hub = v;
        else if (!strcmp(a, "--hub-key-file"))
            o->hub_key_file = v;
        else if (!strcmp(a, "--keys"))
            o->keys = v;
        else if (!strcmp(a, "--data"))
            o->data = v;
        else if (!strcmp(a, "--summary-every"))
            bad = parse_double(v, 0, 1e9, &o->summary_every_s);
        else if (!strcmp(a, "--log-level"))
            o->log_level = v;
        else {
            fprintf(stderr, "nhub-sim: %s: unknown option (see --help)\n", a);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "nhub-sim: %s %s: out of range or not a number (see --help)\n", a, v);
            return -1;
        }
        i++;
    }
    if (o->late_share + o->never_share > 1) {
        fprintf(stderr, "nhub-sim: --late-share and --never-share add up to more than 1\n");
        return -1;
    }
    return 0;
}

/* --offline CODE:AFTER:FOR into its parts. */
static int parse_offline(const char *s, char code[8], sim_offline_t *out)
{
    const char *c1 = strchr(s, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    char after[32], dur[32];
    double a, f;
    if (!c1 || !c2 || c1 - s != 6 || (size_t)(c2 - c1 - 1) >= sizeof after ||
        strlen(c2 + 1) >= sizeof dur)
        goto bad;
    memcpy(code, s, 6);
    code[6] = '\0';
    memcpy(after, c1 + 1, (size_t)(c2 - c1 - 1));
    after[c2 - c1 - 1] = '\0';
    snprintf(dur, sizeof dur, "%s", c2 + 1);
    if (parse_double(after, 0, 1e9, &a) || parse_double(dur, 0.001, 1e9, &f))
        goto bad;
    out->after_ms = (int64_t)(a * 1000);
    out->for_ms = (int64_t)(f * 1000);
    return 0;
bad:
    fprintf(stderr, "nhub-sim: --offline %s: expected CODE:AFTER:FOR, e.g. 440000:20:15\n", s);
    return -1;
}

/* ---- which provinces ------------------------------------------------------------------ */

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Whether region `r` can be simulated: configured, and in curve mode with a
 * key at the hub and its key file in `keys`. Says why not if `say`. */
static bool region_usable(const cfg_t *cfg, const cfg_region_t *r, const char *keys, bool say)
{
    char path[4096];
    if (cfg->security.mode != CFG_SECURITY_CURVE)
        return true;
    snprintf(path, sizeof path, "%s/%s.key", keys, r->code);
    if (r->key_count == 0) {
        if (say)
            fprintf(stderr, "nhub-sim: region %s has no key in the hub's configuration\n", r->code);
        return false;
    }
    if (!file_exists(path)) {
        if (say)
            fprintf(stderr, "nhub-sim: region %s: no key file %s (nhub-keygen --region %s)\n",
                    r->code, path, r->code);
        return false;
    }
    return true;
}

static int choose_regions(const cfg_t *cfg, const options_t *o, char codes[][8], size_t *n)
{
    *n = 0;
    if (o->regions) {
        const char *s = o->regions;
        while (*s) {
            size_t len = strcspn(s, ",");
            char code[8];
            if (len != 6 || *n == SIM_REGIONS_MAX) {
                fprintf(stderr, "nhub-sim: --regions %s: six-digit codes separated by commas\n",
                        o->regions);
                return -1;
            }
            memcpy(code, s, 6);
            code[6] = '\0';
            const cfg_region_t *r = cfg_region_find(cfg, code);
            if (!r) {
                fprintf(stderr, "nhub-sim: region %s is not in %s\n", code, o->config);
                return -1;
            }
            if (!region_usable(cfg, r, o->keys, true))
                return -1;
            for (size_t i = 0; i < *n; i++)
                if (!strcmp(codes[i], code)) {
                    fprintf(stderr, "nhub-sim: --regions names %s twice\n", code);
                    return -1;
                }
            memcpy(codes[(*n)++], code, 7);
            s += len;
            if (*s == ',')
                s++;
        }
    } else {
        for (size_t i = 0; i < cfg->region_count && *n < o->provinces; i++)
            if (region_usable(cfg, &cfg->regions[i], o->keys, false))
                memcpy(codes[(*n)++], cfg->regions[i].code, 7);
        if (*n < o->provinces)
            fprintf(stderr,
                    "nhub-sim: %zu of the %zu provinces asked for: only %zu regions of %s%s\n", *n,
                    o->provinces, *n, o->config,
                    cfg->security.mode == CFG_SECURITY_CURVE
                        ? " have a key there and a key file in the --keys directory"
                        : "");
    }
    if (*n < 2) {
        fprintf(stderr, "nhub-sim: at least two provinces are needed\n");
        return -1;
    }
    return 0;
}

/* ---- summaries ------------------------------------------------------------------------ */

static uint64_t total(province_t *const *ps, size_t n, int stat)
{
    uint64_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += province_stat(ps[i], stat);
    return t;
}

static uint64_t total_rejected(province_t *const *ps, size_t n, int code)
{
    uint64_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += province_rejected(ps[i], code);
    return t;
}

#define T(s) (unsigned long long)total(ps, n, SIM_##s)

static void summary_line(province_t *const *ps, size_t n, double secs)
{
    size_t up = 0;
    char offline[128] = "";
    for (size_t i = 0; i < n; i++) {
        if (province_offline(ps[i])) {
            size_t len = strlen(offline);
            snprintf(offline + len, sizeof offline - len, " %s", province_region(ps[i]));
        } else if (province_link(ps[i]) == NHUB_LINK_UP) {
            up++;
        }
    }
    printf("[sim %4.0fs] up %zu/%zu | sent %llu acked %llu | answered in time %llu, late %llu | "
           "reminders %llu overdue %llu expired %llu | pushes done %llu, refused %llu | uploads "
           "done %llu | broadcasts %llu | rejected %llu (case closed %llu)%s%s\n",
           secs, up, n, T(SENT), T(ACKED), T(ANSWERED_IN_TIME), T(ANSWERED_LATE), T(REMINDERS),
           T(OVERDUE), T(EXPIRED), T(PUSHES_DONE), T(PUSHES_REFUSED), T(UPLOADS_DONE),
           T(BROADCASTS), T(REJECTED),
           (unsigned long long)total_rejected(ps, n, NHUB__WIRE__V1__NACK_CODE__NACK_CASE_CLOSED),
           offline[0] ? " | offline" : "", offline);
    fflush(stdout);
}

static void summary_final(province_t *const *ps, size_t n, double secs, uint64_t seed)
{
    printf("nhub-sim: summary after %.1f s, %zu provinces, seed %llu\n", secs, n,
           (unsigned long long)seed);
    printf("  %-24s %8llu  (requests %llu, pushes %llu, uploads %llu, broadcasts %llu, "
           "answers %llu, feedback %llu)\n",
           "sent", T(SENT), T(REQUESTS), T(PUSHES), T(UPLOADS), T(BROADCASTS), T(ANSWERS),
           T(FEEDBACK));
    printf("  %-24s %8llu\n", "acked", T(ACKED));
    printf("  %-24s %8llu\n", "received", T(RECEIVED));
    printf("  %-24s %8llu\n", "answered in time", T(ANSWERED_IN_TIME));
    printf("  %-24s %8llu\n", "answered late", T(ANSWERED_LATE));
    printf("  %-24s %8llu\n", "reminders", T(REMINDERS));
    printf("  %-24s %8llu\n", "overdue", T(OVERDUE));
    printf("  %-24s %8llu\n", "expired", T(EXPIRED));
    printf("  %-24s %8llu\n", "pushes done", T(PUSHES_DONE));
    printf("  %-24s %8llu\n", "pushes refused", T(PUSHES_REFUSED));
    printf("  %-24s %8llu\n", "uploads done", T(UPLOADS_DONE));
    printf("  %-24s %8llu  (copies received %llu)\n", "broadcasts", T(BROADCASTS),
           T(NOTICES_RECEIVED));
    printf("  %-24s %8llu  (the handlers' choice: they expire)\n", "left unanswered",
           T(LEFT_UNANSWERED));
    printf("  %-24s %8llu  (reached their handler after they expired)\n", "arrived too late",
           T(ARRIVED_TOO_LATE));
    uint64_t closed = total_rejected(ps, n, NHUB__WIRE__V1__NACK_CODE__NACK_CASE_CLOSED);
    printf("  %-24s %8llu\n", "rejected", T(REJECTED));
    printf("  %-24s %8llu  (answers that came after their case had closed)\n", "  case closed",
           (unsigned long long)closed);
    printf("  %-24s %8llu\n", "  other", (unsigned long long)(total(ps, n, SIM_REJECTED) - closed));
    for (int code = 0; code < SIM_NACK_CODES; code++) {
        uint64_t k = total_rejected(ps, n, code);
        if (!k || code == NHUB__WIRE__V1__NACK_CODE__NACK_CASE_CLOSED)
            continue;
        const ProtobufCEnumValue *v =
            protobuf_c_enum_descriptor_get_value(&nhub__wire__v1__nack_code__descriptor, code);
        printf("    %-22s %8llu  (code %d)\n", v ? v->name : "NACK_?", (unsigned long long)k, code);
    }
    printf("  %-24s %8llu\n", "unexpected deliveries", T(UNEXPECTED));
    if (total(ps, n, SIM_DROPPED) || total(ps, n, SIM_SEND_ERRORS))
        printf("  %-24s %8llu  (and %llu failed batches)\n", "planned answers dropped", T(DROPPED),
               T(SEND_ERRORS));
    fflush(stdout);
}
#undef T

/* ---- the run ----------------------------------------------------------------------- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t seed_mix(uint64_t x)
{
    x += UINT64_C(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

/* The pthread start routine of a province. */
static void *province_thread(void *arg)
{
    return province_run(arg) == 0 ? NULL : arg;
}

/* Signals are never handled: they are blocked and taken by sigtimedwait.
 * A handler is installed anyway, so a SIGINT that a non-interactive shell
 * set to "ignored" for a background job still reaches us. */
static void on_signal_unused(int sig)
{
    (void)sig;
}

static void print_times(const catalog_t *cat)
{
    if (!cat) {
        printf("sim: the hub has no catalogue: no cases; answers are timed against %d s\n", 10);
        return;
    }
    printf("sim: case times of the catalogue (reminder / overdue / expires, from the opening):");
    for (size_t i = 0; i < 4; i++) {
        catalog_times_t t;
        if (catalog_times(cat, ITEMS[i], &t) == 0 && t.time_limit_ms > 0)
            printf("%s %s %gs/%gs/%gs", i ? ";" : "", ITEMS[i], t.reminder_ms / 1000.0,
                   t.time_limit_ms / 1000.0, (t.time_limit_ms + t.grace_ms) / 1000.0);
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    options_t o;
    cfg_t *cfg = NULL;
    catalog_t *cat = NULL;
    char err[1024], hub_key[KEYS_Z85_LEN + 1], hub_key_path[4096];
    char codes[SIM_REGIONS_MAX][8], off_code[8] = "";
    const char *regions[SIM_REGIONS_MAX];
    province_t *ps[SIM_REGIONS_MAX] = {0};
    pthread_t threads[SIM_REGIONS_MAX];
    bool joined[SIM_REGIONS_MAX] = {0};
    size_t n = 0, started = 0;
    sim_offline_t off = {0, 0};
    atomic_int stop;
    int rc = 2;
    atomic_init(&stop, 0);

    if (parse_args(argc, argv, &o) != 0)
        return 2;
    if (nhub_log_setup(o.log_level, stderr) != 0) {
        fprintf(stderr, "nhub-sim: --log-level %s: debug, info, warn, error or off\n", o.log_level);
        return 2;
    }
    if (o.offline && parse_offline(o.offline, off_code, &off) != 0)
        return 2;
    if (cfg_load(o.config, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "nhub-sim: %s\n", err);
        goto done;
    }
    if (cfg->security.catalog[0]) {
        if (catalog_load(cfg->security.catalog, &cat, err, sizeof err) != 0) {
            fprintf(stderr, "nhub-sim: %s\n", err);
            goto done;
        }
        for (size_t i = 0; i < sizeof ITEMS / sizeof ITEMS[0]; i++)
            if (!catalog_item_name(cat, ITEMS[i])) {
                fprintf(stderr, "nhub-sim: the catalogue %s has no item %s\n",
                        cfg->security.catalog, ITEMS[i]);
                goto done;
            }
    }
    bool curve = cfg->security.mode == CFG_SECURITY_CURVE;
    if (curve) {
        if (o.hub_key_file)
            snprintf(hub_key_path, sizeof hub_key_path, "%s", o.hub_key_file);
        else
            snprintf(hub_key_path, sizeof hub_key_path, "%s/hub.pub", o.keys);
        if (keys_read_public(hub_key_path, hub_key, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "nhub-sim: the hub's public key: %s\n", err);
            goto done;
        }
    }
    const char *endpoint = o.hub ? o.hub : cfg->hub.listen;
    if (strchr(endpoint, '*')) {
        fprintf(stderr, "nhub-sim: the hub listens on %s: give its real endpoint with --hub\n",
                endpoint);
        goto done;
    }
    if (choose_regions(cfg, &o, codes, &n) != 0)
        goto done;
    size_t registry = 0;
    for (size_t i = 0; i < n; i++) {
        regions[i] = codes[i];
        if (o.registry && !strcmp(o.registry, codes[i]))
            registry = i;
    }
    if (o.registry && strcmp(o.registry, codes[registry]) != 0) {
        fprintf(stderr, "nhub-sim: --registry %s is not one of the simulated provinces\n",
                o.registry);
        goto done;
    }
    bool off_found = !off_code[0];
    for (size_t i = 0; i < n && !off_found; i++)
        off_found = !strcmp(off_code, codes[i]);
    if (!off_found) {
        fprintf(stderr, "nhub-sim: --offline %s is not one of the simulated provinces\n", off_code);
        goto done;
    }
    if (!o.seed_given)
        o.seed = (uint64_t)wall_ms() ^ ((uint64_t)getpid() << 32);

    sim_world_t w = {.endpoint = endpoint,
                     .hub_key = curve ? hub_key : NULL,
                     .keys_dir = o.keys,
                     .data_dir = o.data,
                     .hub_region = cfg->hub.region,
                     .catalog = cat,
                     .regions = regions,
                     .n_regions = n,
                     .registry = registry,
                     .rate = o.rate,
                     .late_share = o.late_share,
                     .never_share = o.never_share,
                     .broadcast_every_ms = (int64_t)(o.broadcast_every_s * 1000),
                     .start_ms = wall_ms(),
                     .stop = &stop};

    printf("sim: %zu provinces (", n);
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? " " : "", codes[i]);
    printf(") on %s, %s, %g new exchanges/s, seed %llu; uploads go to %s\n", endpoint,
           curve ? "CurveZMQ with signed envelopes" : "INSECURE plaintext", o.rate,
           (unsigned long long)o.seed, codes[registry]);
    print_times(cat);
    fflush(stdout);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal_unused;
    sigemptyset(&sa.sa_mask);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* the provinces' threads inherit the mask */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = 0;
    for (size_t i = 0; i < n; i++) {
        sim_offline_t mine = !strcmp(codes[i], off_code) ? off : (sim_offline_t){0, 0};
        ps[i] = province_new(&w, i, seed_mix(o.seed ^ seed_mix(i + 1)), mine);
        if (!ps[i] || pthread_create(&threads[i], NULL, province_thread, ps[i]) != 0) {
            fprintf(stderr, "nhub-sim: cannot start province %s\n", codes[i]);
            rc = 1;
            break;
        }
        started++;
    }

    int64_t t0 = mono_ms();
    int64_t every = (int64_t)(o.summary_every_s * 1000);
    int64_t next_summary = every > 0 ? t0 + every : INT64_MAX;
    int64_t end = o.duration_s > 0 ? t0 + (int64_t)(o.duration_s * 1000) : INT64_MAX;
    const char *why = "the run's duration passed";
    while (rc == 0) {
        int64_t now = mono_ms();
        if (now >= end)
            break;
        if (now >= next_summary) {
            summary_line(ps, n, (now - t0) / 1000.0);
            next_summary += every;
            continue;
        }
        int64_t wait = (next_summary < end ? next_summary : end) - now;
        if (wait > 200)
            wait = 200; /* look at the provinces now and then: one may have failed */
        struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM) {
            why = sig == SIGINT ? "SIGINT" : "SIGTERM";
            break;
        }
        for (size_t i = 0; i < started; i++) {
            /* A thread that ended before the stop failed to open its adapter. */
            if (!joined[i] && pthread_tryjoin_np(threads[i], NULL) == 0) {
                fprintf(stderr, "nhub-sim: province %s stopped; stopping all\n", codes[i]);
                joined[i] = true;
                rc = 1;
            }
        }
    }
    atomic_store(&stop, 1);
    printf("sim: stopping (%s)\n", why);
    fflush(stdout);
    for (size_t i = 0; i < started; i++) {
        if (joined[i])
            continue;
        void *res = NULL;
        pthread_join(threads[i], &res);
        if (res)
            rc = 1;
    }
    summary_final(ps, n, (mono_ms() - t0) / 1000.0, o.seed);
    for (size_t i = 0; i < n; i++)
        province_destroy(&ps[i]);
done:
    catalog_destroy(&cat);
    cfg_destroy(&cfg);
    return rc;
}
