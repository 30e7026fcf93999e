/*
 * main.c: nhub-keygen, makes the keys of a region or of the hub.
 *
 *   nhub-keygen --region CODE [--alg ed25519|sm2] [--out DIR] [--force]
 *   nhub-keygen --hub [--alg ed25519|sm2] [--out DIR] [--force]
 *   nhub-keygen --show FILE
 *
 * The first two write DIR/CODE.key (secret, mode 0600) and DIR/CODE.pub
 * (public, a YAML fragment for the hub configuration); --hub names them
 * hub.key / hub.pub and uses the hub's code 000000. --show prints the public
 * half of a .key or .pub file, never a secret. The key formats and every
 * check belong to proto/keys.h; this file only handles arguments, paths and
 * printing. Exit status: 0 done, 1 error, 2 usage error.
 */
#include "clock.h"
#include "conf.h"
#include "keys.h"
#include "nhub_err.h"
#include "path.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYGEN_HUB_REGION "000000"

/* Largest .pub file --show reads, and most entries in it. */
#define KEYGEN_PUB_MAX (64u * 1024u)
#define KEYGEN_PUB_ENTRIES 64

#define KEYGEN_EXIT_ERROR 1
#define KEYGEN_EXIT_USAGE 2

typedef struct keygen_args {
    const char *region;
    const char *out_dir;
    const char *show;
    keys_alg_t alg;
    int hub;
    int force;
} keygen_args_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: nhub-keygen --region CODE [--alg ed25519|sm2] [--out DIR] [--force]\n"
            "       nhub-keygen --hub [--alg ed25519|sm2] [--out DIR] [--force]\n"
            "       nhub-keygen --show FILE\n"
            "\n"
            "  --region CODE  make the keys of region CODE (six digits, GB/T 2260):\n"
            "                 DIR/CODE.key (secret, mode 0600) and DIR/CODE.pub (public)\n"
            "  --hub          make the hub's own keys (region 000000): DIR/hub.key, DIR/hub.pub\n"
            "  --alg ALG      signing algorithm: ed25519 (default) or sm2 (SM2 with SM3)\n"
            "  --out DIR      where to write (default .); created with mode 0700 if missing\n"
            "  --force        replace existing files (default: refuse)\n"
            "  --show FILE    print the public keys and fingerprints of a .key or .pub\n"
            "                 file as YAML ready to paste (never the secret keys)\n"
            "  -h, --help     this text\n"
            "\n"
            "Paste the .pub entry under the region's `keys:` list in the hub configuration;\n"
            "adapters take the hub's curve key (from hub.pub) as `hub_key:`.\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("nhub-keygen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (try nhub-keygen --help)\n", stderr);
    va_end(ap);
    return KEYGEN_EXIT_USAGE;
}

static int region_valid(const char *s)
{
    for (int i = 0; i < KEYS_REGION_LEN; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
    }
    return s[KEYS_REGION_LEN] == '\0';
}

/* Fill `a` from argv. Returns 0, or the exit status of a usage error (-1: --help shown). */
static int parse_args(int argc, char **argv, keygen_args_t *a)
{
    const char *alg = NULL;

    *a = (keygen_args_t){.out_dir = ".", .alg = KEYS_ED25519};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char **dst = NULL;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(o, "--hub")) {
            a->hub = 1;
        } else if (!strcmp(o, "--force")) {
            a->force = 1;
        } else if (!strcmp(o, "--region")) {
            dst = &a->region;
        } else if (!strcmp(o, "--alg")) {
            dst = &alg;
        } else if (!strcmp(o, "--out")) {
            dst = &a->out_dir;
        } else if (!strcmp(o, "--show")) {
            dst = &a->show;
        } else {
            return usage_error("unknown argument \"%s\"", o);
        }
        if (dst && i + 1 >= argc)
            return usage_error("%s needs a value", o);
        if (dst)
            *dst = argv[++i];
    }
    if (a->show && (a->region || a->hub || alg || a->force || strcmp(a->out_dir, ".") != 0))
        return usage_error("--show takes no other option");
    if (a->show)
        return 0;
    if (a->hub && a->region)
        return usage_error("--hub and --region exclude each other (the hub's code is 000000)");
    if (!a->hub && !a->region)
        return usage_error("give --region CODE, --hub or --show FILE");
    if (a->region && !region_valid(a->region))
        return usage_error("--region: a region code is exactly six ASCII digits, e.g. 110000");
    if (a->out_dir[0] == '\0')
        return usage_error("--out: empty directory name");
    if (alg) {
        a->alg = keys_alg_parse(alg);
        if (a->alg == 0)
            return usage_error("--alg: expected ed25519 or sm2");
    }
    if (a->hub)
        a->region = KEYGEN_HUB_REGION;
    return 0;
}

/* DIR/NAME.EXT into `out` (PATH_MAX bytes), without doubling a trailing slash. */
static int join_path(char *out, const char *dir, const char *name, const char *ext)
{
    size_t len = strlen(dir);
    const char *sep = (len > 0 && dir[len - 1] == '/') ? "" : "/";
    int n = snprintf(out, PATH_MAX, "%s%s%s%s", dir, sep, name, ext);
    return n < 0 || n >= PATH_MAX ? -1 : 0;
}

static int generate(const keygen_args_t *a)
{
    char key_path[PATH_MAX];
    char pub_path[PATH_MAX];
    char err[1024];
    const char *name = a->hub ? "hub" : a->region;
    keys_file_t *k = NULL;

    if (join_path(key_path, a->out_dir, name, ".key") != 0 ||
        join_path(pub_path, a->out_dir, name, ".pub") != 0) {
        fprintf(stderr, "nhub-keygen: %s: path too long\n", a->out_dir);
        return KEYGEN_EXIT_ERROR;
    }
    int e = path_mkdir_p(a->out_dir);
    if (e != 0) {
        fprintf(stderr, "nhub-keygen: %s: cannot create directory: %s\n", a->out_dir, strerror(e));
        return KEYGEN_EXIT_ERROR;
    }
    int rc = keys_generate(a->region, a->alg, clock_wall_ms(nhub_clock_system()), &k);
    if (rc != 0) {
        fprintf(stderr, "nhub-keygen: cannot make keys: %s\n", nhub_strerror(rc));
        return KEYGEN_EXIT_ERROR;
    }
    rc = keys_write(k, key_path, pub_path, a->force, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "nhub-keygen: %s%s\n", err,
                rc == NHUB_EINVAL && !a->force && strstr(err, "exists") ? " (--force replaces it)"
                                                                        : "");
        keys_free(&k);
        return KEYGEN_EXIT_ERROR;
    }
    printf("secret: %s (mode 0600; keep it private)\n"
           "public: %s\n"
           "region: %s\n"
           "curve fingerprint: %s\n"
           "sign key id:       %s (%s)\n",
           key_path, pub_path, k->region, k->curve_fpr, k->sign_id, keys_alg_name(k->alg));
    keys_free(&k);
    return 0;
}

/* ---- --show ------------------------------------------------------------------------- */

static void print_entry(const char *curve, const char *curve_fpr, const keys_verifier_t *v,
                        const char *sign)
{
    printf("# curve fingerprint %s, sign key id %s (%s)\n", curve_fpr, keys_verifier_id(v),
           keys_alg_name(keys_verifier_alg(v)));
    printf("- curve: \"%s\"\n  sign: \"%s\"\n", curve, sign);
}

static int show_public_file(const char *path)
{
    char err[1024], curve[KEYS_Z85_LEN + 1], sign[KEYS_PUBLIC_TEXT_MAX + 1];
    char fpr[KEYS_FPR_LEN + 1];
    keys_verifier_t *v = NULL;
    if (keys_read_public(path, curve, sign, err, sizeof err) != 0 ||
        keys_curve_fpr_z85(curve, fpr) != 0 || keys_verifier_parse(sign, &v, err, sizeof err)) {
        fprintf(stderr, "nhub-keygen: %s\n", err);
        return KEYGEN_EXIT_ERROR;
    }
    print_entry(curve, fpr, v, sign);
    keys_verifier_free(&v);
    return 0;
}

static int show_secret_file(const char *path)
{
    char err[1024];
    keys_file_t *k = NULL;
    keys_verifier_t *v = NULL;

    if (keys_load(path, &k, err, sizeof err) != 0) {
        fprintf(stderr, "nhub-keygen: %s\n", err);
        return KEYGEN_EXIT_ERROR;
    }
    if (keys_verifier_parse(k->sign_public, &v, err, sizeof err) != 0) {
        fprintf(stderr, "nhub-keygen: %s: sign_public: %s\n", path, err);
        keys_free(&k);
        return KEYGEN_EXIT_ERROR;
    }
    printf("# nhub public keys of region %s, created %s\n", k->region, k->created);
    print_entry(k->curve_public, k->curve_fpr, v, k->sign_public);
    keys_verifier_free(&v);
    keys_free(&k);
    return 0;
}

/* A .pub file is a YAML sequence: its first line that is not blank or a comment starts "-". */
static int is_public_file(const char *path, int *public)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "nhub-keygen: %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    char line[512];
    *public = 0;
    while (fgets(line, sizeof line, f)) {
        const char *p = line + strspn(line, " \t\r\n");
        if (*p == '\0' || *p == '#')
            continue;
        *public = *p == '-';
        break;
    }
    fclose(f);
    return 0;
}

static int show(const char *path)
{
    int public = 0;
    if (is_public_file(path, &public) != 0)
        return KEYGEN_EXIT_ERROR;
    return public ? show_public_file(path) : show_secret_file(path);
}

int main(int argc, char **argv)
{
    keygen_args_t a;
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    return a.show ? show(a.show) : generate(&a);
}
