/*
 * client.c: one HTTP request to the hub per call, with libcurl's easy
 * interface (see client.h).
 *
 * Everything that decides an exit status is here, in one place: which
 * libcurl errors mean "not reachable", which HTTP answers are the API
 * refusing and which are not the API at all. A 4xx is only taken as the
 * hub's refusal when its body is the API's error object; a 404 page from
 * some other server on that port is "not the API", which is what the
 * operator needs to hear.
 */
#include "client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ctl_client {
    CURL *curl;
    char *url;          /* base, without a trailing '/' */
    char *shown_url;    /* the base as printed: user:password@ taken out */
    char *auth_header;  /* "Authorization: Bearer ..." or NULL */
    char *token_source; /* for messages, or NULL */
    char *cacert;       /* CA file for https, or NULL: the system's */
    long timeout_ms;
};

/* What the write callback gathers. */
typedef struct body_buf {
    char *data;
    size_t len, cap;
    int too_big;
} body_buf_t;

static void wipe_free(char *s)
{
    if (!s)
        return;
    volatile char *p = s;
    while (*p)
        *p++ = '\0';
    free(s);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The URL without the userinfo part of its authority, for messages. */
static char *url_for_display(const char *url)
{
    char *out = strdup(url);
    if (!out)
        return NULL;
    char *auth = strstr(out, "://");
    if (!auth)
        return out;
    auth += 3;
    size_t host_end = strcspn(auth, "/?#");
    char *at = memchr(auth, '@', host_end);
    if (at)
        memmove(auth, at + 1, strlen(at + 1) + 1);
    return out;
}

ctl_client_t *ctl_client_new(const char *url, const char *token, const char *token_source,
                             long timeout_ms)
{
    ctl_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->timeout_ms = timeout_ms;
    self->url = strdup(url);
    if (!self->url)
        goto fail;
    size_t n = strlen(self->url);
    while (n > 0 && self->url[n - 1] == '/')
        self->url[--n] = '\0';
    self->shown_url = url_for_display(self->url);
    if (!self->shown_url)
        goto fail;
    if (token && token[0]) {
        static const char prefix[] = "Authorization: Bearer ";
        size_t len = sizeof prefix + strlen(token);
        self->auth_header = malloc(len);
        if (!self->auth_header)
            goto fail;
        snprintf(self->auth_header, len, "%s%s", prefix, token);
        self->token_source = dup_or_null(token_source ? token_source : "the command line");
        if (!self->token_source)
            goto fail;
    }
    self->curl = curl_easy_init();
    if (!self->curl)
        goto fail;
    return self;
fail:
    ctl_client_destroy(&self);
    return NULL;
}

void ctl_client_destroy(ctl_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ctl_client_t *self = *self_p;
    if (self->curl)
        curl_easy_cleanup(self->curl);
    wipe_free(self->auth_header);
    free(self->token_source);
    free(self->cacert);
    free(self->shown_url);
    free(self->url);
    free(self);
    *self_p = NULL;
}

int ctl_client_set_cacert(ctl_client_t *self, const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    free(self->cacert);
    self->cacert = copy;
    return 0;
}

const char *ctl_client_url(const ctl_client_t *self)
{
    return self->shown_url;
}

int ctl_client_escape(const char *text, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t used = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        size_t need = plain ? 1 : 3;
        if (used + need >= cap) {
            if (cap > 0)
                out[0] = '\0';
            return -1;
        }
        if (plain) {
            out[used++] = (char)*p;
        } else {
            out[used++] = '%';
            out[used++] = hex[*p >> 4];
            out[used++] = hex[*p & 15];
        }
    }
    if (cap == 0)
        return -1;
    out[used] = '\0';
    return 0;
}

void ctl_reply_clear(ctl_reply_t *reply)
{
    json_decref(reply->json);
    free(reply->body);
    memset(reply, 0, sizeof *reply);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    body_buf_t *b = arg;
    size_t n = size * nmemb; /* libcurl guarantees size == 1 */
    if (n > CTL_BODY_MAX - b->len) {
        b->too_big = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown)
            return 0;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* `text` into `out`, control characters and DEL replaced by '?', so a
 * message from the hub cannot move the operator's terminal around. */
static void copy_printable(char *out, size_t cap, const char *text)
{
    size_t i = 0;
    for (; text[i] && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)text[i];
        out[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (cap > 0)
        out[i < cap ? i : cap - 1] = '\0';
}

static int is_unreachable(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE: return 1;
    default: return 0;
    }
}

static void classify_transport(ctl_client_t *self, CURLcode rc, const char *errbuf,
                               const body_buf_t *b, ctl_reply_t *reply)
{
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (b->too_big) {
        reply->status = CTL_NOT_API;
        snprintf(reply->message, sizeof reply->message,
                 "the answer from %s is larger than %zu MiB; is that the hub's API?",
                 self->shown_url, CTL_BODY_MAX >> 20);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        reply->status = CTL_UNREACHABLE;
        snprintf(reply->message, sizeof reply->message,
                 "no answer from the hub at %s within %.3g s (%s)", self->shown_url,
                 (double)self->timeout_ms / 1000.0, why);
    } else if (is_unreachable(rc)) {
        reply->status = CTL_UNREACHABLE;
        snprintf(reply->message, sizeof reply->message, "cannot reach the hub at %s: %s",
                 self->shown_url, why);
    } else if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
        reply->status = CTL_USAGE;
        snprintf(reply->message, sizeof reply->message,
                 "--url %s: not an http:// or https:// URL (%s)", self->shown_url, why);
    } else {
        reply->status = CTL_NOT_API;
        snprintf(reply->message, sizeof reply->message,
                 "the answer from %s is not the hub's API: %s", self->shown_url, why);
    }
}

/* The API's "detail" of an error body, printable, or "" (into out). */
static void error_detail(const ctl_reply_t *reply, char *out, size_t cap)
{
    const char *d = json_string_value(json_object_get(reply->json, "detail"));
    const char *e = json_string_value(json_object_get(reply->json, "error"));
    copy_printable(out, cap, d && d[0] ? d : e ? e : "");
}

/* " (hub: DETAIL)" of an error body, or "" (into out). */
static void hub_says(const ctl_reply_t *reply, char *out, size_t cap)
{
    char detail[512];
    error_detail(reply, detail, sizeof detail);
    if (detail[0])
        snprintf(out, cap, " (hub: %s)", detail);
    else if (cap > 0)
        out[0] = '\0';
}

static void classify_auth(ctl_client_t *self, ctl_reply_t *reply)
{
    char says[600];
    hub_says(reply, says, sizeof says);
    reply->status = CTL_AUTH;
    if (!self->auth_header)
        snprintf(reply->message, sizeof reply->message,
                 "the hub at %s needs a token and none was given (--token-file FILE, --token "
                 "TOKEN or NHUB_TOKEN)%s",
                 self->shown_url, says);
    else if (reply->http_code == 403)
        snprintf(reply->message, sizeof reply->message,
                 "the token from %s is the read-only one; this action needs the operator "
                 "token%s",
                 self->token_source, says);
    else
        snprintf(reply->message, sizeof reply->message,
                 "the hub at %s refused the token from %s: it is neither its read nor its "
                 "operator token%s",
                 self->shown_url, self->token_source, says);
}

/* Sort an HTTP answer (body already in reply) into its status. */
static void classify_http(ctl_client_t *self, ctl_reply_t *reply)
{
    long code = reply->http_code;
    json_error_t jerr;
    reply->json = json_loadb(reply->body, reply->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (reply->json && !json_is_object(reply->json)) {
        json_decref(reply->json);
        reply->json = NULL;
    }
    int api_error = reply->json && json_is_string(json_object_get(reply->json, "error"));
    char detail[512];
    if (code >= 200 && code < 300 && reply->json) {
        reply->status = CTL_OK;
    } else if (code == 401 || code == 403) {
        classify_auth(self, reply);
    } else if (code >= 400 && code < 500 && api_error) {
        error_detail(reply, detail, sizeof detail);
        reply->status = CTL_REFUSED;
        snprintf(reply->message, sizeof reply->message, "%s", detail);
    } else if (code >= 200 && code < 300) {
        reply->status = CTL_NOT_API;
        snprintf(reply->message, sizeof reply->message,
                 "the answer from %s (HTTP %ld) is not a JSON object: is that the hub's API?",
                 self->shown_url, code);
    } else {
        reply->status = CTL_NOT_API;
        if (api_error)
            error_detail(reply, detail, sizeof detail);
        else
            detail[0] = '\0';
        snprintf(reply->message, sizeof reply->message, "the hub at %s answered HTTP %ld%s%s%s",
                 self->shown_url, code, detail[0] ? ": " : "", detail,
                 api_error ? "" : " without the API's JSON: is that the hub?");
    }
}

static enum ctl_status perform(ctl_client_t *self, const char *path, const char *query,
                               const char *post_body, ctl_reply_t *reply)
{
    memset(reply, 0, sizeof *reply);
    CURL *c = self->curl;
    curl_easy_reset(c);
    size_t url_len = strlen(self->url) + strlen(path) + (query ? strlen(query) : 0) + 2;
    char *url = malloc(url_len);
    struct curl_slist *headers = NULL, *h;
    body_buf_t b = {0};
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    if (!url)
        goto done;
    snprintf(url, url_len, "%s%s%s%s", self->url, path, query && query[0] ? "?" : "",
             query ? query : "");
    if (!(h = curl_slist_append(headers, "Accept: application/json")))
        goto done;
    headers = h;
    if (post_body) {
        if (!(h = curl_slist_append(headers, "Content-Type: application/json")))
            goto done;
        headers = h;
    }
    /* curl_slist_append copies the string: the copy is wiped below. */
    if (self->auth_header) {
        if (!(h = curl_slist_append(headers, self->auth_header)))
            goto done;
        headers = h;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "nhubctl");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, self->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, self->timeout_ms);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    if (self->cacert)
        curl_easy_setopt(c, CURLOPT_CAINFO, self->cacert);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (post_body) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post_body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(post_body));
    }
    rc = curl_easy_perform(c);
done:
    for (h = headers; h; h = h->next)
        if (self->auth_header && strncmp(h->data, "Authorization:", 14) == 0)
            memset(h->data, 0, strlen(h->data));
    curl_slist_free_all(headers);
    free(url);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply->http_code);
        reply->body = b.data ? b.data : strdup("");
        reply->body_len = b.len;
        if (!reply->body) {
            reply->status = CTL_NOT_API;
            snprintf(reply->message, sizeof reply->message, "out of memory");
        } else {
            classify_http(self, reply);
        }
    } else {
        free(b.data);
        classify_transport(self, rc, errbuf, &b, reply);
    }
    return reply->status;
}

enum ctl_status ctl_client_get(ctl_client_t *self, const char *path, const char *query,
                               ctl_reply_t *reply)
{
    return perform(self, path, query, NULL, reply);
}

enum ctl_status ctl_client_post(ctl_client_t *self, const char *path, const json_t *body,
                                ctl_reply_t *reply)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : strdup("{}");
    if (!text) {
        memset(reply, 0, sizeof *reply);
        reply->status = CTL_NOT_API;
        snprintf(reply->message, sizeof reply->message, "out of memory");
        return reply->status;
    }
    enum ctl_status st = perform(self, path, NULL, text, reply);
    free(text);
    return st;
}
