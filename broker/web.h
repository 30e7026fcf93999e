/*
 * web.h: the operators' dashboard, built into nhubd.
 *
 * The page (broker/web/index.html, app.js, app.css) is compiled into the
 * program, so a hub serves exactly the dashboard of its own version, with
 * no files to install or keep in step and nothing fetched from elsewhere.
 * tools/embed-web.sh turns the files under broker/web/ into
 * $(B)/gen/web_assets.c, which defines both the table and web_asset_find:
 * that one generated object is the whole of this module, never edited or
 * committed.
 *
 * Paths: index.html is served at "/index.html" and at "/"; every other file
 * at "/assets/NAME" (its base name), which is how index.html refers to them.
 * The table is constant and the data lives as long as the program: callers
 * never free or change anything here. Each asset's bytes are followed by a
 * NUL that `len` does not count, so text assets may also be read as C
 * strings.
 */
#ifndef NHUB_WEB_H
#define NHUB_WEB_H

#include <stddef.h>

typedef struct web_asset {
    const char *path;          /* "/index.html", "/assets/app.js", ... */
    const char *type;          /* Content-Type value, with charset for text */
    const unsigned char *data; /* the file's bytes, then a NUL not in len */
    size_t len;                /* bytes of the file */
} web_asset_t;

/*
 * The embedded asset served at `path` ("/" is "/index.html"; others
 * "/assets/app.js"...), or NULL when there is none. `path` is the request
 * path without its query string or fragment, compared byte for byte (no
 * decoding, no "..": nothing outside the table can be named). The result is
 * borrowed from static storage: valid for the life of the program.
 */
const web_asset_t *web_asset_find(const char *path);

#endif
