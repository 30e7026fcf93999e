/*
 * nhub operators' dashboard.
 *
 * Reads the hub's HTTP API v1 (api/v1/...): one fetch of each list at
 * start, then the event stream (api/v1/events) brings status and regions
 * every second and refusals, security events and case transitions as they
 * happen; the lists the stream does not carry (cases, queues, items) are
 * fetched again every few seconds. When the stream is down the page polls
 * everything instead, so it never shows data older than a few seconds
 * without saying so (the "live" badge).
 *
 * Every string that comes from the hub reaches the page through
 * textContent or setAttribute, never as markup: region names and refusal
 * reasons are configuration and client input. The API carries no payloads,
 * and nothing here would show one.
 *
 * The token (read token or operator token) comes from the page's URL
 * (#token=... preferred: a fragment never reaches a server log; ?token=
 * also works), is kept in sessionStorage for this tab only, and is removed
 * from the address bar at once. Fetches send it as a Bearer header; the
 * EventSource, which cannot set headers, sends it as ?access_token=.
 */
'use strict';

(function () {
    const LIST_REFRESH_MS = 5000; /* cases, queues, items, journal */
    const POLL_MS = 2000;         /* status and regions when the stream is down */
    const STALE_MS = 5000;        /* no status for this long: the badge says so */
    const HISTORY_MS = 5 * 60 * 1000; /* the charts' window */
    const RATE_WINDOW_MS = 10000; /* smoothing of the rates the wait estimate uses */
    const MIN_SAMPLE_GAP_MS = 500; /* status samples closer than this are not kept */
    const BACKLOG_MIN = 100;      /* a connected region with this many queued is behind */
    const LIST_MAX = 100;         /* rows kept in the refusal and security tables */
    const BACKLOG_ROWS = 12;
    const TOKEN_KEY = 'nhub.token';
    const LANG_KEY = 'nhub.lang';

    /*
     * The 32 provincial-level divisions by GB/T 2260 code, with a place on a
     * 9 x 8 grid that keeps neighbours roughly where a map has them (column
     * west to east, row north to south). XPCC, not a territory of its own,
     * sits beside Xinjiang. Codes the hub is configured with but that are not
     * here (city codes, test regions) are shown after the grid under the
     * name the hub gives them.
     */
    const PLACES = {
        '110000': ['北京', 'Beijing', 6, 1],
        '120000': ['天津', 'Tianjin', 6, 2],
        '130000': ['河北', 'Hebei', 5, 2],
        '140000': ['山西', 'Shanxi', 4, 2],
        '150000': ['内蒙古', 'Inner Mongolia', 4, 1],
        '210000': ['辽宁', 'Liaoning', 7, 1],
        '220000': ['吉林', 'Jilin', 8, 1],
        '230000': ['黑龙江', 'Heilongjiang', 8, 0],
        '310000': ['上海', 'Shanghai', 7, 4],
        '320000': ['江苏', 'Jiangsu', 6, 4],
        '330000': ['浙江', 'Zhejiang', 6, 5],
        '340000': ['安徽', 'Anhui', 5, 4],
        '350000': ['福建', 'Fujian', 5, 6],
        '360000': ['江西', 'Jiangxi', 5, 5],
        '370000': ['山东', 'Shandong', 5, 3],
        '410000': ['河南', 'Henan', 4, 3],
        '420000': ['湖北', 'Hubei', 4, 4],
        '430000': ['湖南', 'Hunan', 4, 5],
        '440000': ['广东', 'Guangdong', 4, 6],
        '450000': ['广西', 'Guangxi', 3, 6],
        '460000': ['海南', 'Hainan', 4, 7],
        '500000': ['重庆', 'Chongqing', 3, 4],
        '510000': ['四川', 'Sichuan', 2, 4],
        '520000': ['贵州', 'Guizhou', 3, 5],
        '530000': ['云南', 'Yunnan', 2, 5],
        '540000': ['西藏', 'Tibet', 1, 4],
        '610000': ['陕西', 'Shaanxi', 3, 3],
        '620000': ['甘肃', 'Gansu', 2, 2],
        '630000': ['青海', 'Qinghai', 1, 3],
        '640000': ['宁夏', 'Ningxia', 3, 2],
        '650000': ['新疆', 'Xinjiang', 1, 2],
        '660000': ['新疆生产建设兵团', 'XPCC', 0, 2],
    };

    /* Tile states, most urgent first: the first that applies colours the tile. */
    const STATES = ['suspended', 'paused', 'overdue', 'backlog', 'connected', 'offline'];

    const TEXT = {
        zh: {
            title: '国家枢纽运行监控', hub_id: '枢纽', journal: '日志位置',
            total_queued: '待投递', regions_connected: '在线地区', cases_open: '在办事项',
            cases_overdue: '超期(督办)', accepted_total: '已接收', refused_total: '已拒收',
            store: '存储', uptime: '运行时间', token: '令牌', lang_other: 'English',
            live_yes: '实时', live_stale: '数据滞后', live_poll: '轮询中', live_no: '未连接',
            auth_title: '需要访问令牌',
            auth_none: '该枢纽要求提供读取令牌,请输入运维人员提供的令牌。',
            auth_wrong: '枢纽拒绝了所给的令牌(401),请检查后重新输入。',
            auth_label: '令牌', auth_use: '使用',
            unreachable: '无法连接枢纽,正在重试……', api_error: '接口错误',
            regions: '各地区平台', traffic: '流量',
            throughput: '吞吐量(条/秒)', accepted_s: '接收/秒', delivered_s: '投递/秒',
            latency: '时延估计', est_wait: '预计等待',
            latency_note: '预计等待 = 在线且未暂停地区的待投递数 ÷ 近10秒确认速率(利特尔定律),反映端到端时延的变化。',
            five_min_ago: '5分钟前', now: '现在',
            backlogs: '积压最多', no_backlog: '没有积压', overdue_cases: '超期事项(督办)',
            no_overdue: '没有超期事项', case_events: '事项动态',
            compare: '评估评价', by_region: '按地区', by_item: '按事项',
            compare_note: '按时办结率 = 按时答复 ÷ 已答复;超期率取枢纽给出的数值(曾超期事项 ÷ 已受理事项),枢纽未给出时为 (超时答复 + 过期 + 当前超期) ÷ (已答复 + 过期 + 拒绝 + 当前超期)。地区按承办方统计。',
            refusals: '最近拒收', security: '安全事件',
            col_region: '地区', col_queued: '待投递', col_held: '待版本', col_in_flight: '投递中',
            col_case: '事项编号', col_item: '服务事项', col_handler: '承办地区',
            col_requester: '请求地区', col_state: '状态', col_age: '已历时', col_past_due: '超期',
            col_time: '时间', col_code: '代码', col_reason: '原因', col_kind: '类型',
            col_fingerprint: '密钥指纹', col_address: '地址',
            col_answered: '已答复', col_in_time: '按时办结率', col_mean: '平均办理时长',
            col_overdue_rate: '超期率', col_open: '在办', col_overdue: '超期',
            col_expired: '过期', col_refused: '拒绝', col_opened: '已受理',
            st_suspended: '已暂停服务', st_paused: '投递暂停', st_overdue: '有超期',
            st_backlog: '积压', st_connected: '在线', st_offline: '离线',
            cs_open: '已受理', cs_delivered: '已送达', cs_handling: '办理中',
            cs_reminded: '已催办', cs_overdue: '已超期', cs_answered: '已答复',
            cs_expired: '已过期', cs_refused: '已拒绝',
            sk_auth_refused: '认证被拒', sk_handshake_failed: '握手失败',
            sk_identity_refused: '身份不符',
            d_queued: '待投递', d_held: '待版本', d_in_flight: '投递中', d_accepted: '已接收',
            d_delivered: '已投递', d_confirmed: '已确认', d_redelivered: '重投',
            d_refused: '拒收', d_last_seen: '最近在线', d_never: '从未', d_rate: '限速',
            d_rate_none: '不限', d_suspended_by: '暂停来源', d_reason: '原因',
            d_by_config: '配置文件', d_by_operator: '运维操作', d_cases: '作为承办方的事项',
            per_s: '条/秒', none: '无',
            u_d: '天', u_h: '小时', u_m: '分', u_s: '秒',
        },
        en: {
            title: 'National hub operations', hub_id: 'Hub', journal: 'Journal',
            total_queued: 'Queued', regions_connected: 'Regions online', cases_open: 'Open cases',
            cases_overdue: 'Overdue', accepted_total: 'Accepted', refused_total: 'Refused',
            store: 'Store', uptime: 'Up', token: 'Token', lang_other: '中文',
            live_yes: 'live', live_stale: 'stale', live_poll: 'polling', live_no: 'offline',
            auth_title: 'Access token needed',
            auth_none: 'This hub needs a read token. Enter the token the operators gave you.',
            auth_wrong: 'The hub refused the token (401). Check it and enter it again.',
            auth_label: 'Token', auth_use: 'Use',
            unreachable: 'Cannot reach the hub; retrying…', api_error: 'API error',
            regions: 'Regional platforms', traffic: 'Traffic',
            throughput: 'Throughput (msgs/s)', accepted_s: 'accepted/s', delivered_s: 'delivered/s',
            latency: 'Latency estimate', est_wait: 'est. wait',
            latency_note: 'Estimated wait = messages queued for regions online and not paused ÷ confirmations per second over the last 10 s (Little\'s law): how end-to-end latency moves.',
            five_min_ago: '5 min ago', now: 'now',
            backlogs: 'Biggest backlogs', no_backlog: 'Nothing queued', overdue_cases: 'Overdue cases',
            no_overdue: 'No overdue case', case_events: 'Case events',
            compare: 'Evaluation', by_region: 'By region', by_item: 'By item',
            compare_note: 'In time = answered in time ÷ answered. Overdue rate: the hub\'s figure where it gives one (cases ever overdue ÷ cases opened), otherwise (answered late + expired + overdue now) ÷ (answered + expired + refused + overdue now). Regions are counted as the handler.',
            refusals: 'Recent refusals', security: 'Security events',
            col_region: 'Region', col_queued: 'Queued', col_held: 'Held', col_in_flight: 'In flight',
            col_case: 'Case', col_item: 'Item', col_handler: 'Handler',
            col_requester: 'Requester', col_state: 'State', col_age: 'Age', col_past_due: 'Past due',
            col_time: 'Time', col_code: 'Code', col_reason: 'Reason', col_kind: 'Kind',
            col_fingerprint: 'Fingerprint', col_address: 'Address',
            col_answered: 'Answered', col_in_time: 'In time', col_mean: 'Mean handling',
            col_overdue_rate: 'Overdue rate', col_open: 'Open', col_overdue: 'Overdue',
            col_expired: 'Expired', col_refused: 'Refused', col_opened: 'Opened',
            st_suspended: 'suspended', st_paused: 'paused', st_overdue: 'overdue',
            st_backlog: 'backlog', st_connected: 'connected', st_offline: 'offline',
            cs_open: 'open', cs_delivered: 'delivered', cs_handling: 'handling',
            cs_reminded: 'reminded', cs_overdue: 'overdue', cs_answered: 'answered',
            cs_expired: 'expired', cs_refused: 'refused',
            sk_auth_refused: 'auth refused', sk_handshake_failed: 'handshake failed',
            sk_identity_refused: 'identity refused',
            d_queued: 'Queued', d_held: 'Held', d_in_flight: 'In flight', d_accepted: 'Accepted',
            d_delivered: 'Delivered', d_confirmed: 'Confirmed', d_redelivered: 'Redelivered',
            d_refused: 'Refused', d_last_seen: 'Last seen', d_never: 'never', d_rate: 'Rate limit',
            d_rate_none: 'none', d_suspended_by: 'Suspended by', d_reason: 'Reason',
            d_by_config: 'configuration', d_by_operator: 'operator', d_cases: 'Cases as handler',
            per_s: '/s', none: 'none',
            u_d: 'd', u_h: 'h', u_m: 'm', u_s: 's',
        },
    };

    const $ = (id) => document.getElementById(id);

    const state = {
        token: '',
        lang: 'en',
        status: null,
        regions: [],
        queues: [],
        items: [],
        cases: [],
        refusals: [],
        security: [],
        caseEvents: [],
        journalHash: '',
        samples: [],       /* {t, accepted, delivered, confirmed, queued} from status */
        clockSkew: 0,      /* hub's now_ms minus ours: ages follow the hub's clock */
        lastStatusAt: 0,   /* our clock when the last status arrived */
        source: null,      /* the EventSource */
        streamOpen: false,
        reconnectDelay: 1000,
        authNeeded: false,
        unreachable: false,
        apiErrors: new Map(), /* endpoint -> what it last answered, while it fails */
        compareMode: 'regions',
        sort: { regions: { key: 'overdue_rate', dir: -1 }, items: { key: 'overdue_rate', dir: -1 } },
        selected: '',
        timers: [],
        casesSoon: 0,
    };

    /* ---- small helpers ---------------------------------------------------- */

    function t(key) {
        const table = TEXT[state.lang] || TEXT.en;
        return key in table ? table[key] : (TEXT.en[key] || key);
    }

    function num(x) {
        return typeof x === 'number' && isFinite(x) ? x : 0;
    }

    function str(x) {
        return typeof x === 'string' ? x : (x === undefined || x === null ? '' : String(x));
    }

    /* An element with text children only: strings become text nodes. */
    function el(tag, attrs, ...kids) {
        const e = document.createElement(tag);
        for (const [k, v] of Object.entries(attrs || {})) {
            if (v === undefined || v === null || v === false) continue;
            if (k === 'class') e.className = v;
            else if (k === 'text') e.textContent = v;
            else if (k === 'onclick') e.addEventListener('click', v);
            else e.setAttribute(k, String(v));
        }
        for (const kid of kids) {
            if (kid === null || kid === undefined) continue;
            e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
        }
        return e;
    }

    function svgEl(tag, attrs) {
        const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
        for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
        return e;
    }

    function fmtNum(n) {
        return new Intl.NumberFormat(state.lang === 'zh' ? 'zh-CN' : 'en-US').format(num(n));
    }

    function fmtRate(n) {
        if (n === null || !isFinite(n)) return '-';
        return n >= 100 ? fmtNum(Math.round(n)) : (Math.round(n * 10) / 10).toString();
    }

    function fmtPct(x) {
        return x === null ? '-' : (Math.round(x * 1000) / 10).toFixed(1) + '%';
    }

    function fmtBytes(n) {
        const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
        let v = num(n), i = 0;
        while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
        return (i ? v.toFixed(1) : v.toString()) + ' ' + units[i];
    }

    /* The largest unit and the next one down: "3d 4h", "12m 5s"; in
     * Chinese "3天4小时". */
    function fmtDur(seconds) {
        if (seconds === null || !isFinite(seconds)) return '-';
        const s = Math.max(0, Math.round(seconds));
        const units = [[86400, 'u_d'], [3600, 'u_h'], [60, 'u_m'], [1, 'u_s']];
        const found = units.findIndex(([size]) => s >= size);
        const i = found < 0 ? units.length - 1 : found;
        const [size, unit] = units[i];
        let out = Math.floor(s / size) + t(unit);
        if (i < units.length - 1) {
            const [next, nextUnit] = units[i + 1];
            const rest = Math.floor((s % size) / next);
            if (rest) out += (state.lang === 'zh' ? '' : ' ') + rest + t(nextUnit);
        }
        return out;
    }

    function fmtTime(ms) {
        if (!ms) return '-';
        const d = new Date(ms), now = new Date(hubNow());
        const pad = (n) => String(n).padStart(2, '0');
        const hms = pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
        if (d.toDateString() === now.toDateString()) return hms;
        return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + hms;
    }

    /* The hub's clock (it may be shifted, e.g. a test clock): ages and
     * "past due" are measured on it, not on the browser's. */
    function hubNow() {
        return Date.now() + state.clockSkew;
    }

    function regionName(code, apiName) {
        const p = PLACES[code];
        if (p) return state.lang === 'zh' ? p[0] : p[1];
        return str(apiName) || code;
    }

    function regionApiName(code) {
        const r = state.regions.find((x) => x.code === code);
        return r ? r.name : '';
    }

    function shortRegion(code) {
        return code ? regionName(str(code), regionApiName(code)) : '-';
    }

    function regionLabel(code) {
        return code ? code + ' ' + regionName(code, regionApiName(code)) : '-';
    }

    function storageGet(store, key) {
        try { return window[store].getItem(key) || ''; } catch (e) { return ''; }
    }

    function storageSet(store, key, value) {
        try {
            if (value) window[store].setItem(key, value);
            else window[store].removeItem(key);
        } catch (e) { /* storage disabled: the value lives for this page only */ }
    }

    /* ---- token and language from the URL -------------------------------- */

    function readUrlSettings() {
        const url = new URL(location.href);
        const frag = new URLSearchParams(url.hash.replace(/^#/, ''));
        const token = frag.get('token') || url.searchParams.get('token');
        const lang = frag.get('lang') || url.searchParams.get('lang');
        if (token) {
            storageSet('sessionStorage', TOKEN_KEY, token);
            /* Out of the address bar, history and any screenshot. */
            frag.delete('token');
            url.searchParams.delete('token');
            url.hash = frag.toString();
            history.replaceState(null, '', url.pathname + url.search + url.hash);
        }
        state.token = token || storageGet('sessionStorage', TOKEN_KEY);
        const saved = storageGet('localStorage', LANG_KEY);
        const nav = (navigator.language || '').toLowerCase();
        state.lang = lang === 'zh' || lang === 'en' ? lang
            : saved === 'zh' || saved === 'en' ? saved
            : nav.startsWith('zh') ? 'zh' : 'en';
    }

    /* ---- talking to the hub --------------------------------------------- */

    class AuthError extends Error {}

    async function api(path) {
        const headers = { Accept: 'application/json' };
        if (state.token) headers.Authorization = 'Bearer ' + state.token;
        let res;
        try {
            res = await fetch(path, { headers, cache: 'no-store' });
        } catch (e) {
            setUnreachable(true);
            throw e;
        }
        setUnreachable(false);
        const endpoint = path.replace(/\?.*/, '');
        if (res.status === 401) {
            needAuth();
            throw new AuthError('401');
        }
        if (!res.ok) {
            let detail = res.status + ' ' + res.statusText;
            try {
                const body = await res.json();
                detail = res.status + ' ' + str(body.error) + ': ' + str(body.detail);
            } catch (e) { /* not the API's JSON error body */ }
            setApiError(endpoint, detail);
            throw new Error(detail);
        }
        setApiError(endpoint, '');
        return res.json();
    }

    /* Each loader fetches one endpoint and renders what it changes; a failed
     * one leaves the last good data on the page (the banner says why). */
    const loaders = {
        status: () => api('api/v1/status').then(onStatus),
        regions: () => api('api/v1/regions').then(onRegions),
        queues: () => api('api/v1/queues').then((d) => {
            state.queues = Array.isArray(d.queues) ? d.queues : [];
            renderBacklogs();
        }),
        items: () => api('api/v1/items').then((d) => {
            state.items = Array.isArray(d.items) ? d.items : [];
            renderCompare();
        }),
        cases: loadCases,
        refusals: () => api('api/v1/refusals').then((d) => {
            mergeNewestFirst('refusals', Array.isArray(d.refusals) ? d.refusals : []);
            renderRefusals();
        }),
        security: () => api('api/v1/security').then((d) => {
            mergeNewestFirst('security', Array.isArray(d.events) ? d.events : []);
            renderSecurity();
        }),
        journal: () => api('api/v1/journal').then((d) => {
            state.journalHash = str(d.last_hash);
            renderHeader();
        }),
    };

    function load(names) {
        if (state.authNeeded) return Promise.resolve();
        return Promise.allSettled(names.map((n) => loaders[n]()));
    }

    /*
     * Overdue cases: every open case past its time limit (overdue=1: the
     * hub's own test, now, whatever state a later feedback moved it to)
     * and every case in state overdue (they are the same cases once the
     * hub fired their deadlines; both lists are merged by id).
     */
    async function loadCases() {
        const [overdue, past] = await Promise.all([
            api('api/v1/cases?state=overdue&limit=50'),
            api('api/v1/cases?overdue=1&limit=200'),
        ]);
        const byId = new Map();
        for (const c of Array.isArray(overdue.cases) ? overdue.cases : []) byId.set(c.id, c);
        for (const c of Array.isArray(past.cases) ? past.cases : []) byId.set(c.id, c);
        /* Longest past due first: the ones to chase (督办) now. */
        const due = (c) => num(c.due_ms) || num(c.opened_ms);
        state.cases = [...byId.values()].sort((a, b) => due(a) - due(b));
        renderCases();
    }

    function eventKey(e) {
        return [e.time_ms, e.code, e.kind, e.region, e.item, e.fingerprint, e.address, e.reason].join('|');
    }

    /* The stream and the fetch can both bring the same event around a
     * (re)connection: keep one of each, newest first. */
    function mergeNewestFirst(which, incoming) {
        const seen = new Set();
        const all = incoming.concat(state[which]).filter((e) => {
            const k = eventKey(e);
            if (seen.has(k)) return false;
            seen.add(k);
            return true;
        });
        all.sort((a, b) => num(b.time_ms) - num(a.time_ms));
        state[which] = all.slice(0, LIST_MAX);
    }

    function onStatus(s) {
        if (!s || typeof s !== 'object') return;
        const prev = state.status;
        if (prev && prev.started_ms !== s.started_ms) state.samples = []; /* restarted: counters reset */
        state.status = s;
        state.lastStatusAt = Date.now();
        if (num(s.now_ms)) state.clockSkew = s.now_ms - Date.now();
        const c = s.counters || {};
        const sample = {
            t: num(s.now_ms) || Date.now(), accepted: num(c.accepted), delivered: num(c.delivered),
            confirmed: num(c.confirmed), queued: num(s.queued), flowing: flowingQueued(),
        };
        /* The first fetch and the stream's first event come moments apart:
         * a rate over so short a span is noise, so such a sample is dropped. */
        const last = state.samples[state.samples.length - 1];
        if (!last || sample.t - last.t >= MIN_SAMPLE_GAP_MS) state.samples.push(sample);
        while (state.samples.length && state.samples[0].t < sample.t - HISTORY_MS - RATE_WINDOW_MS) {
            state.samples.shift();
        }
        renderHeader();
        renderCharts();
        renderLive();
    }

    /* Messages queued for regions that are taking them: a backlog for an
     * offline, paused or suspended region does not move, and counted in the
     * wait estimate it would stand for a delay nobody is waiting out. */
    function flowingQueued() {
        let n = 0;
        for (const r of state.regions) {
            if (r.connected && !r.paused && !r.suspended) n += num(r.queued);
        }
        return n;
    }

    function onRegions(d) {
        state.regions = Array.isArray(d && d.regions) ? d.regions : [];
        followQueues();
        renderRegions();
        renderCompareThrottled();
    }

    /* ---- the event stream ----------------------------------------------- */

    function connectStream() {
        closeStream();
        if (state.authNeeded) return;
        const url = 'api/v1/events' + (state.token ? '?access_token=' + encodeURIComponent(state.token) : '');
        const es = new EventSource(url);
        state.source = es;
        es.addEventListener('open', () => {
            state.streamOpen = true;
            state.reconnectDelay = 1000;
            setUnreachable(false);
            renderLive();
            /* Events between the first fetch and this connection were missed. */
            load(['refusals', 'security', 'cases']);
        });
        const on = (name, fn) => es.addEventListener(name, (ev) => {
            let data;
            try { data = JSON.parse(ev.data); } catch (e) { return; }
            fn(data);
        });
        on('status', onStatus);
        on('regions', onRegions);
        on('refusal', (r) => { mergeNewestFirst('refusals', [r]); renderRefusals(); });
        on('security', (e) => { mergeNewestFirst('security', [e]); renderSecurity(); });
        on('case', onCaseEvent);
        es.addEventListener('error', () => {
            state.streamOpen = false;
            renderLive();
            /* CONNECTING: the browser retries by itself. CLOSED: it gave up
             * (a non-200 answer, e.g. 401, or a wrong content type); ask the
             * API why, then try again later with a growing delay. */
            if (es.readyState === EventSource.CLOSED) {
                closeStream();
                loaders.status().catch(() => {});
                const delay = state.reconnectDelay;
                state.reconnectDelay = Math.min(delay * 2, 30000);
                later(connectStream, delay);
            }
        });
    }

    function closeStream() {
        if (state.source) state.source.close();
        state.source = null;
        state.streamOpen = false;
    }

    function onCaseEvent(c) {
        if (!c || !c.id) return;
        state.caseEvents.unshift({ at: hubNow(), ...c });
        state.caseEvents.length = Math.min(state.caseEvents.length, 20);
        renderCaseEvents();
        /* A closed case leaves the overdue list now; a new one joins it at
         * the next fetch, brought forward so it shows within a second. */
        if (['answered', 'expired', 'refused'].includes(c.state)) {
            state.cases = state.cases.filter((x) => x.id !== c.id);
            renderCases();
        }
        if (!state.casesSoon) {
            state.casesSoon = setTimeout(() => {
                state.casesSoon = 0;
                load(['cases']);
            }, 500);
        }
    }

    /* ---- timers ---------------------------------------------------------- */

    function later(fn, ms) {
        state.timers.push(setTimeout(fn, ms));
    }

    function every(fn, ms) {
        state.timers.push(setInterval(fn, ms));
    }

    function stopTimers() {
        for (const id of state.timers) { clearTimeout(id); clearInterval(id); }
        state.timers = [];
    }

    function streamFresh() {
        return state.streamOpen && Date.now() - state.lastStatusAt < STALE_MS;
    }

    function start() {
        stopTimers();
        closeStream();
        state.authNeeded = false;
        $('auth').hidden = true;
        load(['status', 'regions', 'queues', 'items', 'cases', 'refusals', 'security', 'journal'])
            .then(() => { if (!state.authNeeded) connectStream(); });
        every(() => load(['queues', 'items', 'cases', 'journal']), LIST_REFRESH_MS);
        /* The stream's stand-in while it is down or silent. */
        every(() => {
            if (!streamFresh()) load(['status', 'regions']);
        }, POLL_MS);
        every(() => {
            if (!streamFresh()) load(['refusals', 'security']);
        }, LIST_REFRESH_MS * 2);
        /* Ages and the badge move even when no data does. */
        every(() => { renderLive(); updateAges(); }, 1000);
    }

    /* ---- banners and the token form ------------------------------------- */

    function needAuth() {
        if (state.authNeeded) return;
        state.authNeeded = true;
        stopTimers();
        closeStream();
        $('auth').hidden = false;
        $('auth-detail').textContent = state.token ? t('auth_wrong') : t('auth_none');
        $('auth-token').value = '';
        $('auth-token').focus();
        document.body.dataset.auth = 'needed';
        renderLive();
    }

    function setUnreachable(on) {
        if (state.unreachable === on) return;
        state.unreachable = on;
        renderBanner();
    }

    /* One line per failing endpoint, so a poll that succeeds does not hide
     * another that keeps failing. */
    function setApiError(endpoint, detail) {
        if ((state.apiErrors.get(endpoint) || '') === detail) return;
        if (detail) state.apiErrors.set(endpoint, detail);
        else state.apiErrors.delete(endpoint);
        renderBanner();
    }

    function renderBanner() {
        const b = $('banner');
        const errors = [...state.apiErrors].map(([e, d]) => t('api_error') + ': ' + e + ' ' + d);
        const text = state.unreachable ? t('unreachable') : errors.join('\n');
        b.textContent = text;
        b.hidden = !text;
    }

    function renderLive() {
        const live = $('live');
        let mode = 'no';
        if (streamFresh()) mode = 'yes';
        else if (state.status && !state.authNeeded && !state.unreachable) {
            mode = Date.now() - state.lastStatusAt < STALE_MS ? 'poll' : 'stale';
        }
        live.dataset.live = mode;
        live.textContent = t('live_' + mode);
        const age = state.lastStatusAt ? fmtTime(state.lastStatusAt + state.clockSkew) : '-';
        live.title = age;
    }

    /* ---- header ---------------------------------------------------------- */

    function renderHeader() {
        const s = state.status;
        if (!s) return;
        const hubId = str(s.hub_id);
        $('hub-id').textContent = (str(s.region) || '000000') + ' · ' + hubId.slice(0, 12);
        $('hub-id').title = hubId + (s.version ? ' v' + s.version : '');
        const seq = s.journal ? num(s.journal.last_seq) : 0;
        $('journal-pos').textContent = '#' + fmtNum(seq);
        $('journal-pos').title = state.journalHash;
        /* Exactly the hub's number, unformatted: tests and scripts read it. */
        const q = $('total-queued');
        q.textContent = String(num(s.queued));
        q.dataset.value = String(num(s.queued));
        $('regions-connected').textContent = num(s.regions_connected) + ' / ' + num(s.regions_total);
        const cases = s.cases || {};
        $('cases-open').textContent = fmtNum(cases.open);
        $('cases-overdue').textContent = fmtNum(cases.overdue);
        $('cases-overdue').classList.toggle('alarm', num(cases.overdue) > 0);
        const c = s.counters || {};
        $('accepted-total').textContent = fmtNum(c.accepted);
        $('rejected-total').textContent = fmtNum(c.rejected);
        const st = s.store || {};
        const limit = num(st.limit_bytes) || num(st.map_bytes);
        const use = $('store-use');
        use.textContent = fmtBytes(st.used_bytes) + (limit ? ' / ' + fmtBytes(limit) : '');
        use.title = 'disk free ' + fmtBytes(st.disk_free_bytes);
        use.classList.toggle('alarm', st.full === true);
        $('uptime').textContent = s.started_ms ? fmtDur((num(s.now_ms) - s.started_ms) / 1000) : '-';
    }

    /* ---- regions --------------------------------------------------------- */

    function regionState(r) {
        if (r.suspended) return 'suspended';
        if (r.paused) return 'paused';
        if (r.cases && num(r.cases.overdue) > 0) return 'overdue';
        if (!r.connected) return 'offline';
        if (num(r.queued) >= BACKLOG_MIN || num(r.held) > 0) return 'backlog';
        return 'connected';
    }

    const tiles = new Map(); /* code -> tile element, kept across updates */

    function makeTile(code) {
        const tile = el('button', { type: 'button', class: 'tile', 'data-region': code },
            el('span', { class: 'code' }), el('span', { class: 'name' }),
            el('span', { class: 'queued' }), el('span', { class: 'state' }));
        tile.addEventListener('click', () => {
            state.selected = state.selected === code ? '' : code;
            renderRegionDetail();
        });
        const p = PLACES[code];
        if (p) {
            tile.style.gridColumn = String(p[2] + 1);
            tile.style.gridRow = String(p[3] + 1);
        }
        return tile;
    }

    function renderRegions() {
        const map = $('region-map'), others = $('region-others');
        const present = new Set();
        const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
        for (const r of state.regions) {
            const code = str(r.code);
            if (!code) continue;
            present.add(code);
            let tile = tiles.get(code);
            if (!tile) {
                tile = makeTile(code);
                tiles.set(code, tile);
                (PLACES[code] ? map : others).append(tile);
            }
            const st = regionState(r);
            counts[st]++;
            tile.dataset.state = st;
            tile.dataset.queued = String(num(r.queued));
            /* The colour is the most urgent state; the dot still tells
             * whether an overdue or suspended region is connected. */
            tile.dataset.connected = r.connected ? 'yes' : 'no';
            tile.classList.toggle('selected', state.selected === code);
            tile.querySelector('.code').textContent = code;
            tile.querySelector('.name').textContent = regionName(code, r.name);
            tile.querySelector('.queued').textContent = fmtNum(r.queued);
            tile.querySelector('.state').textContent = t('st_' + st) +
                (num(r.rate_limit) ? ' · ≤' + fmtNum(r.rate_limit) + t('per_s') : '');
            tile.title = regionName(code, r.name) + ' (' + str(r.name) + ')' +
                (r.suspended_reason ? ' — ' + str(r.suspended_reason) : '');
        }
        for (const [code, tile] of tiles) {
            if (!present.has(code)) { tile.remove(); tiles.delete(code); }
        }
        others.hidden = others.childElementCount === 0;
        renderLegend(counts);
        renderRegionDetail();
    }

    function renderLegend(counts) {
        const legend = $('legend');
        legend.replaceChildren(...STATES.map((s) =>
            el('li', { 'data-state': s }, el('i', {}), t('st_' + s) + ' ' + counts[s])));
    }

    function renderRegionDetail() {
        const box = $('region-detail');
        const r = state.regions.find((x) => x.code === state.selected);
        box.hidden = !r;
        if (!r) return;
        const c = r.cases || {};
        const by = r.suspended_by === 'config' ? t('d_by_config')
            : r.suspended_by === 'operator' ? t('d_by_operator') : str(r.suspended_by);
        const rows = [
            ['d_queued', fmtNum(r.queued)], ['d_held', fmtNum(r.held)],
            ['d_in_flight', fmtNum(r.in_flight)], ['d_accepted', fmtNum(r.accepted)],
            ['d_delivered', fmtNum(r.delivered)], ['d_confirmed', fmtNum(r.confirmed)],
            ['d_redelivered', fmtNum(r.redelivered)], ['d_refused', fmtNum(r.refused)],
            ['d_last_seen', num(r.last_seen_ms) ? fmtTime(r.last_seen_ms) : t('d_never')],
            ['d_rate', num(r.rate_limit) ? fmtNum(r.rate_limit) + t('per_s') : t('d_rate_none')],
        ];
        if (r.suspended) rows.push(['d_suspended_by', by], ['d_reason', str(r.suspended_reason) || '-']);
        rows.push(['d_cases', t('col_open') + ' ' + num(c.open) + ' · ' + t('col_overdue') + ' ' +
            num(c.overdue) + ' · ' + t('col_answered') + ' ' + num(c.answered)]);
        box.replaceChildren(
            el('h3', { text: r.code + ' ' + regionName(r.code, r.name) }),
            el('dl', {}, ...rows.map(([k, v]) => el('div', {}, el('dt', { text: t(k) }), el('dd', { text: v })))));
    }

    /* ---- charts ---------------------------------------------------------- */

    /* Per-second rates between successive samples; a counter that went
     * down (a restart) gives no point rather than a negative one. */
    function rates(field) {
        const out = [];
        const s = state.samples;
        for (let i = 1; i < s.length; i++) {
            const dt = (s[i].t - s[i - 1].t) / 1000;
            const dv = s[i][field] - s[i - 1][field];
            if (dt > 0 && dv >= 0) out.push({ t: s[i].t, v: dv / dt });
        }
        return out;
    }

    /* Little's law: the time a message spends in the hub is the number
     * waiting (for regions that are taking messages) over the rate they
     * leave at (confirmations, smoothed over RATE_WINDOW_MS). Nothing
     * leaving with messages waiting has no finite estimate: no point. */
    function waits() {
        const out = [];
        const s = state.samples;
        let j = 0;
        for (let i = 1; i < s.length; i++) {
            while (s[i].t - s[j].t > RATE_WINDOW_MS) j++;
            if (j === i) continue;
            const rate = (s[i].confirmed - s[j].confirmed) / ((s[i].t - s[j].t) / 1000);
            if (s[i].flowing === 0) out.push({ t: s[i].t, v: 0 });
            else if (rate > 0) out.push({ t: s[i].t, v: s[i].flowing / rate });
        }
        return out;
    }

    function niceCeil(v) {
        if (v <= 0) return 1;
        const p = Math.pow(10, Math.floor(Math.log10(v)));
        for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
        return 10 * p;
    }

    /* Polylines on a 600 x 120 box stretched to the figure's width; strokes
     * keep their width (non-scaling-stroke). Returns the top of the y axis. */
    function drawChart(svg, series) {
        const W = 600, H = 120, tEnd = hubNow(), tStart = tEnd - HISTORY_MS;
        let max = 0;
        for (const s of series) for (const p of s.points) if (p.t >= tStart) max = Math.max(max, p.v);
        const top = niceCeil(max);
        const kids = [0.25, 0.5, 0.75].map((f) => svgEl('line', {
            x1: 0, x2: W, y1: H * f, y2: H * f, class: 'grid', 'vector-effect': 'non-scaling-stroke',
        }));
        for (const s of series) {
            /* A gap of more than 3 s (stream down, no estimate) breaks the line. */
            let run = [], prevT = 0;
            const flush = () => {
                if (run.length > 1) {
                    kids.push(svgEl('polyline', {
                        points: run.join(' '), class: s.cls, fill: 'none', 'vector-effect': 'non-scaling-stroke',
                    }));
                }
                run = [];
            };
            for (const p of s.points) {
                if (p.t < tStart) continue;
                if (prevT && p.t - prevT > 3000) flush();
                const x = ((p.t - tStart) / HISTORY_MS) * W;
                const y = H - (Math.min(p.v, top) / top) * H;
                run.push(x.toFixed(1) + ',' + y.toFixed(1));
                prevT = p.t;
            }
            flush();
        }
        svg.replaceChildren(...kids);
        return top;
    }

    function lastValue(points) {
        return points.length ? points[points.length - 1].v : null;
    }

    function averageRate(field, ms) {
        const s = state.samples;
        if (s.length < 2) return null;
        const end = s[s.length - 1];
        let i = s.length - 1;
        while (i > 0 && end.t - s[i - 1].t <= ms) i--;
        if (i === s.length - 1) i = s.length - 2;
        const dt = (end.t - s[i].t) / 1000, dv = end[field] - s[i][field];
        return dt > 0 && dv >= 0 ? dv / dt : null;
    }

    function renderCharts() {
        const acc = rates('accepted'), del = rates('delivered');
        const top = drawChart($('chart-throughput'), [
            { points: acc, cls: 'accepted' }, { points: del, cls: 'delivered' }]);
        $('throughput-max').textContent = '↑ ' + fmtNum(top);
        $('rate-accepted').textContent = fmtRate(averageRate('accepted', RATE_WINDOW_MS));
        $('rate-delivered').textContent = fmtRate(averageRate('delivered', RATE_WINDOW_MS));
        const w = waits();
        const wtop = drawChart($('chart-latency'), [{ points: w, cls: 'wait' }]);
        $('latency-max').textContent = '↑ ' + fmtDur(wtop);
        $('wait-now').textContent = fmtDur(lastValue(w));
    }

    /* ---- backlogs -------------------------------------------------------- */

    /* The regions event carries each region's queue every second, the
     * queue list comes every few seconds: between two lists the rows take
     * the newer figures, so they never disagree with the tiles. */
    function followQueues() {
        if (!state.queues.length) return;
        const byCode = new Map(state.regions.map((r) => [r.code, r]));
        for (const q of state.queues) {
            const r = byCode.get(q.region);
            if (!r) continue;
            q.queued = num(r.queued);
            q.held = num(r.held);
            q.in_flight = num(r.in_flight);
        }
        state.queues.sort((a, b) => num(b.queued) - num(a.queued) || (a.region < b.region ? -1 : 1));
        renderBacklogs();
    }

    function renderBacklogs() {
        const rows = state.queues.filter((q) => num(q.queued) > 0).slice(0, BACKLOG_ROWS);
        const max = rows.length ? num(rows[0].queued) : 1;
        $('backlogs').replaceChildren(...rows.map((q) => {
            const bar = el('span', { class: 'bar' });
            bar.style.width = Math.max(1, (num(q.queued) / max) * 100).toFixed(1) + '%';
            return el('tr', { 'data-region': str(q.region), 'data-queued': String(num(q.queued)) },
                el('td', { text: regionLabel(str(q.region)) }),
                el('td', { class: 'num', text: fmtNum(q.queued) }),
                el('td', { class: 'num', text: fmtNum(q.held) }),
                el('td', { class: 'num', text: fmtNum(q.in_flight) }),
                el('td', { class: 'bar-col' }, bar));
        }));
        $('backlogs-empty').hidden = rows.length > 0;
    }

    /* ---- overdue cases ---------------------------------------------------- */

    function caseAge(c) {
        return num(c.opened_ms) ? (hubNow() - c.opened_ms) / 1000 : num(c.age_s);
    }

    function renderCases() {
        const body = $('overdue-cases');
        body.replaceChildren(...state.cases.map((c) => {
            const id = str(c.id);
            return el('tr', { 'data-case': id },
                el('td', { class: 'mono id', title: id, text: id }),
                el('td', { text: str(c.item) }),
                /* Names only, to keep the row on one line; the code is the title. */
                el('td', { class: 'handler', text: shortRegion(c.handler), title: str(c.handler) }),
                el('td', { text: shortRegion(c.requester), title: str(c.requester) }),
                el('td', { text: t('cs_' + str(c.state)) + (c.reminded ? ' · ' + t('cs_reminded') : '') }),
                el('td', { class: 'num age' }), el('td', { class: 'num past-due' }));
        }));
        updateAges();
        const total = state.status && state.status.cases ? num(state.status.cases.overdue) : state.cases.length;
        $('overdue-count').textContent = state.cases.length < total
            ? state.cases.length + ' / ' + fmtNum(total) : String(state.cases.length);
        $('overdue-empty').hidden = state.cases.length > 0;
    }

    function updateAges() {
        const byId = new Map(state.cases.map((c) => [str(c.id), c]));
        for (const row of $('overdue-cases').children) {
            const c = byId.get(row.dataset.case);
            if (!c) continue;
            row.querySelector('.age').textContent = fmtDur(caseAge(c));
            row.querySelector('.past-due').textContent =
                num(c.due_ms) ? fmtDur((hubNow() - c.due_ms) / 1000) : '-';
        }
    }

    /* Shown once the hub has sent one: a hub without case events on its
     * stream shows no empty heading. */
    function renderCaseEvents() {
        $('case-events-title').hidden = state.caseEvents.length === 0;
        $('case-events').replaceChildren(...state.caseEvents.map((c) => el('li', { 'data-case': str(c.id) },
            el('span', { class: 'time', text: fmtTime(c.at) }),
            el('span', { class: 'cstate', 'data-state': str(c.state), text: t('cs_' + str(c.state)) }),
            el('span', { class: 'mono', text: str(c.id).slice(0, 12), title: str(c.id) }),
            el('span', { text: str(c.item) }),
            el('span', { text: str(c.requester) + ' → ' + str(c.handler) }))));
    }

    /* ---- refusals and security events ------------------------------------ */

    function renderRefusals() {
        $('refusals').replaceChildren(...state.refusals.map((r) => el('tr', {},
            el('td', { class: 'time', text: fmtTime(r.time_ms) }),
            el('td', { class: 'mono', text: str(r.code) }),
            el('td', { text: r.region ? regionLabel(str(r.region)) : '-' }),
            el('td', { text: str(r.item) || '-' }),
            el('td', { class: 'reason', text: str(r.reason) }))));
    }

    function renderSecurity() {
        $('security').replaceChildren(...state.security.map((e) => el('tr', {},
            el('td', { class: 'time', text: fmtTime(e.time_ms) }),
            el('td', { text: t('sk_' + str(e.kind)) }),
            el('td', { class: 'mono', text: str(e.fingerprint) || '-' }),
            el('td', { class: 'mono', text: str(e.address) || '-' }),
            el('td', { class: 'reason', text: str(e.reason) }))));
    }

    /* ---- comparison (评估评价) ------------------------------------------- */

    /* Shares of closed work, from the counts the API gives per handler
     * region and per item. null (nothing to divide by) sorts last. */
    function inTime(c) {
        return num(c.answered) ? num(c.answered_in_time) / num(c.answered) : null;
    }

    /* The hub's own figure when it gives one (it knows every case that was
     * ever overdue, also those answered since); else an estimate from the
     * counts of the API. */
    function overdueRate(c) {
        if (typeof c.overdue_rate === 'number' && isFinite(c.overdue_rate)) {
            return num(c.opened) || num(c.answered) + num(c.open) ? c.overdue_rate : null;
        }
        const late = Math.max(0, num(c.answered) - num(c.answered_in_time)) + num(c.expired) + num(c.overdue);
        const all = num(c.answered) + num(c.expired) + num(c.refused) + num(c.overdue);
        return all ? late / all : null;
    }

    function meanHandling(c) {
        const closed = num(c.answered) + num(c.expired) + num(c.refused);
        return closed && typeof c.mean_handling_s === 'number' ? c.mean_handling_s : null;
    }

    /* The figures both tables show, each read from a figures object (a
     * region's "cases", or an item's row itself). */
    const FIGURES = [
        { key: 'answered', label: 'col_answered', of: (f) => num(f.answered) },
        { key: 'in_time', label: 'col_in_time', of: inTime, fmt: fmtPct },
        { key: 'mean', label: 'col_mean', of: meanHandling, fmt: fmtDur },
        { key: 'overdue_rate', label: 'col_overdue_rate', of: overdueRate, fmt: fmtPct },
        { key: 'open', label: 'col_open', of: (f) => num(f.open) },
        { key: 'overdue', label: 'col_overdue', of: (f) => num(f.overdue) },
        { key: 'expired', label: 'col_expired', of: (f) => num(f.expired) },
        { key: 'refused', label: 'col_refused', of: (f) => num(f.refused) },
    ];

    function figureColumns(figuresOf) {
        return FIGURES.map((f) => ({
            key: f.key, label: f.label,
            get: (row) => f.of(figuresOf(row)),
            show: (row) => (f.fmt || fmtNum)(f.of(figuresOf(row))),
        }));
    }

    const COLUMNS = {
        regions: [
            { key: 'code', label: 'col_region', get: (r) => r.code, show: (r) => regionLabel(r.code) },
            ...figureColumns((r) => r.cases),
        ],
        items: [
            { key: 'item', label: 'col_item', get: (i) => i.item, show: (i) => str(i.item) },
            { key: 'opened', label: 'col_opened', get: (i) => num(i.opened), show: (i) => fmtNum(i.opened) },
            ...figureColumns((i) => i),
        ],
    };

    function compareRows() {
        if (state.compareMode === 'items') return state.items.filter((i) => i && i.item);
        return state.regions.filter((r) => r && r.code).map((r) => ({ ...r, cases: r.cases || {} }));
    }

    function sortRows(rows, col, dir) {
        const keyOf = (row) => row.code || row.item || '';
        return rows.map((row) => ({ row, v: col.get(row) })).sort((a, b) => {
            if (a.v === null && b.v === null) return keyOf(a.row) < keyOf(b.row) ? -1 : 1;
            if (a.v === null) return 1;
            if (b.v === null) return -1;
            const d = typeof a.v === 'number' ? a.v - b.v : String(a.v).localeCompare(String(b.v));
            if (d !== 0) return d * dir;
            return keyOf(a.row) < keyOf(b.row) ? -1 : 1; /* stable across refreshes */
        }).map((x) => x.row);
    }

    function renderCompare() {
        const mode = state.compareMode;
        const cols = COLUMNS[mode];
        const sort = state.sort[mode];
        const col = cols.find((c) => c.key === sort.key) || cols[0];
        const table = $('compare');
        table.dataset.mode = mode;
        $('compare-regions').setAttribute('aria-selected', String(mode === 'regions'));
        $('compare-items').setAttribute('aria-selected', String(mode === 'items'));
        const head = el('tr', {}, ...cols.map((c) => {
            const th = el('th', {
                'data-key': c.key, class: c.key === cols[0].key ? '' : 'num',
                'aria-sort': c.key === col.key ? (sort.dir > 0 ? 'ascending' : 'descending') : 'none',
                tabindex: 0, text: t(c.label),
            });
            /* A new column sorts biggest first (names A to Z); the same
             * column again turns the order round. */
            const click = () => {
                const first = c.key === cols[0].key ? 1 : -1;
                state.sort[mode] = { key: c.key, dir: c.key === sort.key ? -sort.dir : first };
                renderCompare();
            };
            th.addEventListener('click', click);
            th.addEventListener('keydown', (ev) => {
                if (ev.key !== 'Enter' && ev.key !== ' ') return;
                ev.preventDefault();
                click();
            });
            return th;
        }));
        table.tHead.replaceChildren(head);
        const rows = sortRows(compareRows(), col, sort.dir);
        const cell = (row, c, i) => el('td', {
            class: i ? 'num' : '', text: c.show(row),
        });
        table.tBodies[0].replaceChildren(...rows.map((row) =>
            el('tr', { 'data-key': row.code || row.item }, ...cols.map((c, i) => cell(row, c, i)))));
        state.compareAt = Date.now();
    }

    /* Regions arrive every second; the table is redrawn at most every few
     * seconds so it holds still long enough to read. */
    function renderCompareThrottled() {
        if (!state.compareAt || Date.now() - state.compareAt >= LIST_REFRESH_MS) renderCompare();
    }

    /* ---- language -------------------------------------------------------- */

    function applyLanguage() {
        document.documentElement.lang = state.lang === 'zh' ? 'zh-CN' : 'en';
        for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
        $('lang-button').textContent = t('lang_other');
        document.title = 'nhub · ' + t('title');
        renderBanner();
        renderLive();
        renderHeader();
        renderRegions();
        renderCharts();
        renderBacklogs();
        renderCases();
        renderCaseEvents();
        renderRefusals();
        renderSecurity();
        renderCompare();
        if (state.authNeeded) $('auth-detail').textContent = state.token ? t('auth_wrong') : t('auth_none');
    }

    /* ---- wiring ---------------------------------------------------------- */

    function init() {
        readUrlSettings();
        $('lang-button').addEventListener('click', () => {
            state.lang = state.lang === 'zh' ? 'en' : 'zh';
            storageSet('localStorage', LANG_KEY, state.lang);
            applyLanguage();
        });
        $('token-button').addEventListener('click', () => {
            state.authNeeded = false;
            needAuth();
            $('auth-detail').textContent = t('auth_none');
        });
        $('auth-form').addEventListener('submit', (ev) => {
            ev.preventDefault();
            state.token = $('auth-token').value.trim();
            storageSet('sessionStorage', TOKEN_KEY, state.token);
            delete document.body.dataset.auth;
            start();
        });
        $('compare-regions').addEventListener('click', () => { state.compareMode = 'regions'; renderCompare(); });
        $('compare-items').addEventListener('click', () => { state.compareMode = 'items'; renderCompare(); });
        applyLanguage();
        start();
    }

    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
    else init();
}());
