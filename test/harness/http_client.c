/*
 * http_client.c: the tests' HTTP client for the hub's endpoint (libcurl),
 * bounded in time like everything the harness does.
 */
#include "harness.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

struct body {
    char *data;
    size_t len;
    const char *event; /* th_http_events: stop after `want` of these */
    int seen, want;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t add = size * n;
    char *d = realloc(b->data, b->len + add + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, p, add);
    b->data = d;
    b->len += add;
    d[b->len] = 0;
    if (b->event) {
        char needle[80];
        snprintf(needle, sizeof needle, "event: %s\n", b->event);
        b->seen = 0;
        for (const char *q = b->data; (q = strstr(q, needle)); q += strlen(needle))
            b->seen++;
        if (b->seen >= b->want)
            return 0; /* enough: end the transfer */
    }
    return add;
}

static CURL *request(const th_hub_t *h, const char *method, const char *path, const char *token,
                     const char *body, struct body *out, struct curl_slist **hdrs, int timeout_ms)
{
    static int global_done;
    if (!global_done) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        global_done = 1;
    }
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    char url[512], auth[300];
    snprintf(url, sizeof url, "%s%s", h->http_url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L); /* tests' self-signed certificates */
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        *hdrs = curl_slist_append(*hdrs, auth);
    }
    if (body) {
        *hdrs = curl_slist_append(*hdrs, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    } else if (!strcmp(method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    return c;
}

long th_http(const th_hub_t *h, const char *method, const char *path, const char *token,
             const char *body, char **out, int timeout_ms)
{
    struct body b = {0};
    struct curl_slist *hdrs = NULL;
    long status = 0;
    CURL *c = request(h, method, path, token, body, &b, &hdrs, timeout_ms);
    if (c && curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    if (out)
        *out = b.data ? b.data : strdup("");
    else
        free(b.data);
    return status;
}

int th_http_events(const th_hub_t *h, const char *path, const char *token, const char *event,
                   int count, char **out, int timeout_ms)
{
    struct body b = {0};
    struct curl_slist *hdrs = NULL;
    b.event = event;
    b.want = count;
    CURL *c = request(h, "GET", path, token, NULL, &b, &hdrs, timeout_ms);
    if (c)
        curl_easy_perform(c); /* ends when enough came (write refused) or at the timeout */
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    int seen = b.seen;
    if (out)
        *out = b.data ? b.data : strdup("");
    else
        free(b.data);
    return seen;
}
