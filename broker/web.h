/*
 * web.h: the dashboard's files, embedded in nhubd at build time (the hub
 * runs on networks with no internet: nothing is fetched from elsewhere).
 * The sources are broker/web/; tools/embed-web.sh turns them into
 * $(B)/gen/web_assets.c, which defines web_asset_find.
 */
#ifndef NHUB_WEB_H
#define NHUB_WEB_H

#include <stddef.h>

typedef struct web_asset {
    const char *path; /* "/index.html", "/assets/app.js", ... */
    const char *type; /* its media type */
    const unsigned char *data;
    size_t len;
} web_asset_t;

/* The asset served at `path` ("/" is "/index.html"), or NULL. Static. */
const web_asset_t *web_asset_find(const char *path);

#endif
