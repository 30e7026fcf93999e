#!/usr/bin/env node
/*
 * dashboard.mjs: load nhubd's dashboard in Debian's headless Chromium and
 * check that it shows the hub's live state.
 *
 *   node test/browser/dashboard.mjs URL TOKEN EXPECT_JSON_FILE SCREENSHOT_PNG
 *
 * URL       the dashboard, e.g. http://127.0.0.1:7480/
 * TOKEN     the read (or operator) token, passed as #token=...; "" or "-" for none
 * EXPECT    a JSON file; every key is optional, an unknown key is an error:
 *             {"regions": 32,            number of region tiles
 *              "suspended": "120000",    a tile marked suspended
 *              "queued": 17,             #total-queued, exactly
 *              "overdue_case": "hex"}    a row of #overdue-cases
 *           Always checked as well: the event stream is live, the page threw
 *           no script error and loaded nothing from another origin.
 * SCREENSHOT  a PNG of the whole page, written on success and on failure.
 *
 * Exit 0: every check held. 1: a check failed (each failed one is named
 * with what was expected and what the page showed). 2: the test could not
 * run (arguments, Chromium, the page did not load). The whole run is bounded
 * by 30 s; the page is given until then to reach the expected state, since
 * the hub's state may still be settling when the test starts.
 *
 * No npm package: Chromium is driven over the DevTools protocol on the pipe
 * it opens with --remote-debugging-pipe (fd 3 in, fd 4 out, messages
 * ended by NUL), which needs only Node's standard library, works on
 * Debian 12's nodejs 18 without a WebSocket client, and uses a handful of
 * long-stable protocol methods rather than a driver pinned to one browser
 * build. `chromium --dump-dom --virtual-time-budget` does not do: virtual
 * time waits for network requests to finish, and the page's EventSource
 * never does, so the dump never comes; without the budget the DOM is dumped
 * at load, before any data arrived. Nor can it wait on a condition or take
 * the screenshot in the same run.
 *
 * CHROMIUM overrides the browser (default /usr/bin/chromium).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const TOTAL_MS = 30000;
const SCREENSHOT_MS = 4000; /* kept back from the total for the screenshot and exit */
const POLL_MS = 250;
const VIEW = { width: 1440, height: 1000 };
const EXPECT_KEYS = ['regions', 'suspended', 'queued', 'overdue_case'];

function usage(msg) {
    console.error('dashboard.mjs: ' + msg);
    console.error('usage: node test/browser/dashboard.mjs URL TOKEN EXPECT_JSON_FILE SCREENSHOT_PNG');
    process.exit(2);
}

/* ---- arguments ------------------------------------------------------------ */

function readExpect(file) {
    let e;
    try {
        e = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
        usage(`cannot read ${file}: ${err.message}`);
    }
    if (!e || typeof e !== 'object' || Array.isArray(e)) usage(`${file}: not a JSON object`);
    for (const k of Object.keys(e)) {
        if (!EXPECT_KEYS.includes(k)) usage(`${file}: unknown key "${k}" (known: ${EXPECT_KEYS.join(', ')})`);
    }
    if ('regions' in e && !Number.isInteger(e.regions)) usage(`${file}: "regions" must be an integer`);
    if ('queued' in e && !Number.isInteger(e.queued)) usage(`${file}: "queued" must be an integer`);
    for (const k of ['suspended', 'overdue_case']) {
        if (k in e && (typeof e[k] !== 'string' || !/^[0-9A-Za-z]+$/.test(e[k]))) {
            usage(`${file}: "${k}" must be a code or hex id`);
        }
    }
    return e;
}

function pageUrl(base, token) {
    let u;
    try {
        u = new URL(base);
    } catch (err) {
        usage(`bad URL ${base}`);
    }
    if (token && token !== '-') {
        const frag = new URLSearchParams(u.hash.replace(/^#/, ''));
        frag.set('token', token);
        u.hash = frag.toString();
    }
    return u;
}

/* ---- the DevTools protocol over Chromium's pipe ---------------------------- */

class Cdp {
    constructor(input, output) {
        this.input = input;
        this.nextId = 1;
        this.pending = new Map();
        this.listeners = [];
        this.closed = false;
        let buf = '';
        output.setEncoding('utf8');
        output.on('data', (chunk) => {
            buf += chunk;
            let end;
            while ((end = buf.indexOf('\0')) >= 0) {
                const text = buf.slice(0, end);
                buf = buf.slice(end + 1);
                this.dispatch(JSON.parse(text));
            }
        });
        output.on('close', () => {
            this.closed = true;
            for (const { reject } of this.pending.values()) reject(new Error('browser closed the pipe'));
            this.pending.clear();
        });
        input.on('error', () => { /* seen as the pipe's close */ });
    }

    dispatch(msg) {
        if (msg.id !== undefined) {
            const p = this.pending.get(msg.id);
            if (!p) return;
            this.pending.delete(msg.id);
            if (msg.error) p.reject(new Error(`${p.method}: ${msg.error.message}`));
            else p.resolve(msg.result);
            return;
        }
        for (const fn of this.listeners) fn(msg);
    }

    send(method, params = {}, sessionId = undefined) {
        if (this.closed) return Promise.reject(new Error('browser closed the pipe'));
        const id = this.nextId++;
        const msg = { id, method, params };
        if (sessionId) msg.sessionId = sessionId;
        return new Promise((resolve, reject) => {
            this.pending.set(id, { resolve, reject, method });
            this.input.write(JSON.stringify(msg) + '\0');
        });
    }

    on(fn) {
        this.listeners.push(fn);
    }
}

/* ---- what the page shows ----------------------------------------------------- */

/* Runs in the page; returns plain values only. */
function probeExpression(expect) {
    const e = JSON.stringify(expect);
    return `(() => {
        const e = ${e};
        const q = (s) => document.querySelector(s);
        const tile = e.suspended ? q('#regions [data-region="' + e.suspended + '"]') : null;
        const auth = q('#auth');
        const total = q('#total-queued');
        return {
            tiles: document.querySelectorAll('#regions [data-region]').length,
            suspendedState: tile ? tile.dataset.state : null,
            queued: total ? total.textContent.trim() : null,
            caseListed: e.overdue_case ? !!q('#overdue-cases [data-case="' + e.overdue_case + '"]') : null,
            caseRows: document.querySelectorAll('#overdue-cases [data-case]').length,
            live: (q('#live') || {dataset: {}}).dataset.live || null,
            authShown: !!auth && !auth.hidden,
            authText: auth && !auth.hidden ? (q('#auth-detail') || {}).textContent : '',
            banner: (q('#banner') && !q('#banner').hidden) ? q('#banner').textContent : '',
        };
    })()`;
}

/* Each check: a name, whether the probe satisfies it, and what it saw. */
function checks(expect, p, extra) {
    const out = [];
    if ('regions' in expect) {
        out.push({ name: 'region tiles', ok: p.tiles === expect.regions,
            want: `${expect.regions} tiles in #regions`, got: `${p.tiles}` });
    }
    if ('suspended' in expect) {
        out.push({ name: 'suspended region', ok: p.suspendedState === 'suspended',
            want: `tile ${expect.suspended} data-state="suspended"`,
            got: p.suspendedState === null ? 'no such tile' : `data-state="${p.suspendedState}"` });
    }
    if ('queued' in expect) {
        out.push({ name: 'total queued', ok: p.queued === String(expect.queued),
            want: `#total-queued "${expect.queued}"`, got: `"${p.queued}"` });
    }
    if ('overdue_case' in expect) {
        out.push({ name: 'overdue case', ok: p.caseListed === true,
            want: `#overdue-cases row data-case="${expect.overdue_case}"`, got: `${p.caseRows} other rows` });
    }
    out.push({ name: 'event stream', ok: p.live === 'yes',
        want: '#live data-live="yes"', got: `data-live="${p.live}"` + (p.banner ? `, banner "${p.banner}"` : '') });
    out.push({ name: 'script errors', ok: extra.errors.length === 0,
        want: 'none', got: extra.errors.join(' | ') });
    out.push({ name: 'external resources', ok: extra.foreign.length === 0,
        want: 'none', got: extra.foreign.join(' ') });
    return out;
}

/* ---- run ------------------------------------------------------------------- */

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* The last lines of Chromium's own log, less the D-Bus complaints every
 * headless run without a session bus makes. */
function printBrowserLog(text) {
    const lines = text.split('\n').filter((l) => l.trim() && !/dbus|D-Bus/i.test(l)).slice(-10);
    if (lines.length) console.error('chromium said:\n' + lines.join('\n'));
}

async function screenshot(cdp, session, file) {
    const m = await cdp.send('Page.getLayoutMetrics', {}, session);
    const size = m.cssContentSize || m.contentSize;
    const height = Math.min(Math.ceil(size.height), 8000);
    const shot = await cdp.send('Page.captureScreenshot', {
        format: 'png', captureBeyondViewport: true,
        clip: { x: 0, y: 0, width: VIEW.width, height, scale: 1 },
    }, session);
    fs.writeFileSync(file, Buffer.from(shot.data, 'base64'));
}

async function main() {
    const [base, token, expectFile, shotFile] = process.argv.slice(2);
    if (process.argv.length !== 6) usage('needs 4 arguments');
    const expect = readExpect(expectFile);
    const url = pageUrl(base, token);
    const deadline = Date.now() + TOTAL_MS;

    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'nhub-dash-'));
    const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
    const browser = spawn(browserPath, [
        '--headless', '--remote-debugging-pipe', '--user-data-dir=' + profile,
        /* The sandbox needs user namespaces or setuid, which a CI container
         * run as root has not; the page under test is our own. */
        '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
        '--no-first-run', '--no-default-browser-check', '--disable-extensions',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--mute-audio', `--window-size=${VIEW.width},${VIEW.height}`, 'about:blank',
    ], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    let stderr = '';
    browser.stderr.on('data', (d) => { stderr = (stderr + d).slice(-65536); });
    let exited = false;
    browser.on('exit', () => { exited = true; });
    const spawnError = new Promise((_, reject) => browser.on('error', (err) =>
        reject(new Error(`cannot start ${browserPath}: ${err.message}`))));

    let code = 2;
    const watchdog = setTimeout(() => {
        console.error(`FAIL timeout: the test did not finish within ${TOTAL_MS / 1000} s`);
        printBrowserLog(stderr);
        browser.kill('SIGKILL');
        fs.rmSync(profile, { recursive: true, force: true });
        process.exit(2);
    }, TOTAL_MS);

    const cdp = new Cdp(browser.stdio[3], browser.stdio[4]);
    try {
        code = await Promise.race([spawnError, drive(cdp, url, expect, shotFile, deadline)]);
    } catch (err) {
        console.error('ERROR ' + err.message);
        if (/pipe|cannot start/.test(err.message)) printBrowserLog(stderr);
        code = 2;
    }
    clearTimeout(watchdog);
    await cdp.send('Browser.close').catch(() => {});
    for (let i = 0; i < 30 && !exited; i++) await sleep(100);
    if (!exited) browser.kill('SIGKILL');
    fs.rmSync(profile, { recursive: true, force: true });
    return code;
}

async function drive(cdp, url, expect, shotFile, deadline) {
    const { targetId } = await cdp.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await cdp.send('Target.attachToTarget', { targetId, flatten: true });
    const extra = { errors: [], foreign: [] };
    cdp.on((msg) => {
        if (msg.sessionId !== sessionId) return;
        if (msg.method === 'Runtime.exceptionThrown') {
            const d = msg.params.exceptionDetails;
            extra.errors.push((d.exception && d.exception.description) || d.text);
        } else if (msg.method === 'Network.requestWillBeSent') {
            const u = msg.params.request.url;
            if (/^(https?|wss?):/.test(u) && new URL(u).origin !== url.origin) extra.foreign.push(u);
        }
    });
    await cdp.send('Runtime.enable', {}, sessionId);
    await cdp.send('Network.enable', {}, sessionId);
    await cdp.send('Page.enable', {}, sessionId);
    await cdp.send('Emulation.setDeviceMetricsOverride',
        { width: VIEW.width, height: VIEW.height, deviceScaleFactor: 1, mobile: false }, sessionId);
    const nav = await cdp.send('Page.navigate', { url: url.href }, sessionId);
    if (nav.errorText) throw new Error(`cannot load ${url.origin}${url.pathname}: ${nav.errorText}`);

    const expression = probeExpression(expect);
    let results = [];
    for (;;) {
        /* Early on the evaluation may hit the document being replaced; the
         * next round asks the new one. */
        const r = await cdp.send('Runtime.evaluate', { expression, returnByValue: true }, sessionId)
            .catch(() => ({}));
        const p = r.result && r.result.value;
        if (p) {
            if (p.authShown) {
                await screenshot(cdp, sessionId, shotFile).catch(() => {});
                console.error(`FAIL token: the page asks for a token ("${p.authText}"): the hub answered 401`);
                return 1;
            }
            results = checks(expect, p, extra);
            if (results.every((c) => c.ok)) break;
            /* These do not heal by waiting. */
            if (extra.errors.length || extra.foreign.length) break;
        }
        if (Date.now() + POLL_MS > deadline - SCREENSHOT_MS) break;
        await sleep(POLL_MS);
    }
    await screenshot(cdp, sessionId, shotFile);
    if (results.length === 0) {
        console.error('FAIL page: the dashboard script never ran (no #regions, #live, ...)');
        return 1;
    }
    for (const c of results) {
        if (c.ok) console.log(`ok   ${c.name}`);
        else console.error(`FAIL ${c.name}: expected ${c.want}, page shows ${c.got}`);
    }
    console.log(`screenshot: ${shotFile}`);
    return results.every((c) => c.ok) ? 0 : 1;
}

process.exit(await main());
