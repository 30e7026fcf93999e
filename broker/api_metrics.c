/*
 * api_metrics.c: GET /metrics, the hub's figures in the Prometheus text
 * exposition format (metrics.h writes it): the hub's counters, per region,
 * per item, cases by state and by handler and item, and the latency and
 * commit histograms. Names follow Prometheus's conventions (base units,
 * _total for counters, _seconds, _bytes). Part of the API (api.c).
 */
#include "hub_internal.h"

static void metric(metrics_buf_t *b, const char *name, const char *type, const char *help, double v)
{
    metrics_family(b, name, type, help);
    metrics_sample(b, name, NULL, v);
}

enum region_figure {
    RF_CONNECTED,
    RF_LAST_SEEN,
    RF_QUEUED,
    RF_HELD,
    RF_IN_FLIGHT,
    RF_ACCEPTED,
    RF_DELIVERED,
    RF_REDELIVERED,
    RF_CONFIRMED,
    RF_SUSPENDED,
    RF_PAUSED,
};

static double region_figure(hub_t *h, size_t i, store_reader_t *rd, enum region_figure f)
{
    const struct hub_region *r = &h->regions[i];
    uint64_t q = 0;
    switch (f) {
    case RF_CONNECTED: return r->delivery != NULL;
    case RF_LAST_SEEN: return (double)r->last_seen_ms / 1000.0;
    case RF_QUEUED: store_queue_depth(rd, r->code, &q); return (double)q;
    case RF_HELD: return (double)api_held_count(rd, r->code);
    case RF_IN_FLIGHT: return r->delivery ? (double)dispatch_inflight(r->window) : 0;
    case RF_ACCEPTED: return (double)r->st.accepted;
    case RF_DELIVERED: return (double)r->st.delivered;
    case RF_REDELIVERED: return (double)r->st.redelivered;
    case RF_CONFIRMED: return (double)r->st.confirmed;
    case RF_SUSPENDED: return hub_region_suspended(h, i);
    case RF_PAUSED: return r->op.paused;
    }
    return 0;
}

static const struct {
    enum region_figure f;
    const char *name, *type, *help;
} region_families[] = {
    {RF_CONNECTED, "nhub_region_connected", "gauge", "1 while the region has a delivery session"},
    {RF_LAST_SEEN, "nhub_region_last_seen_timestamp_seconds", "gauge",
     "When the region last sent a frame (0: not since start)"},
    {RF_QUEUED, "nhub_region_queued_messages", "gauge",
     "Messages stored for the region and not yet confirmed"},
    {RF_HELD, "nhub_region_held_messages", "gauge",
     "Queued messages set aside: the receiver cannot take them yet"},
    {RF_IN_FLIGHT, "nhub_region_in_flight_messages", "gauge",
     "Messages delivered to the region and awaiting its confirmation"},
    {RF_ACCEPTED, "nhub_region_accepted_total", "counter",
     "Messages from the region stored since start"},
    {RF_DELIVERED, "nhub_region_delivered_total", "counter",
     "First deliveries to the region since start"},
    {RF_REDELIVERED, "nhub_region_redelivered_total", "counter",
     "Deliveries to the region sent again since start"},
    {RF_CONFIRMED, "nhub_region_confirmed_total", "counter",
     "Deliveries the region confirmed since start"},
    {RF_SUSPENDED, "nhub_region_suspended", "gauge",
     "1 while the region is suspended (configuration or operator)"},
    {RF_PAUSED, "nhub_region_paused", "gauge", "1 while delivery to the region is paused"},
};

static void metrics_regions(metrics_buf_t *b, hub_t *h, store_reader_t *rd)
{
    for (size_t k = 0; k < sizeof region_families / sizeof region_families[0]; k++) {
        metrics_family(b, region_families[k].name, region_families[k].type,
                       region_families[k].help);
        for (size_t i = 0; i < h->n_regions; i++) {
            const char *labels[] = {"region", h->regions[i].code, NULL};
            metrics_sample(b, region_families[k].name, labels,
                           region_figure(h, i, rd, region_families[k].f));
        }
    }
    metrics_family(b, "nhub_region_refused_total", "counter",
                   "Frames and messages of the region refused since start, by code");
    for (size_t i = 0; i < h->n_regions; i++)
        for (int c = 0; c < HUB_NACK_CODES; c++) {
            if (!h->regions[i].st.refused_by[c])
                continue;
            json_t *name = api_code_json(c);
            const char *labels[] = {"region", h->regions[i].code, "code", json_string_value(name),
                                    NULL};
            metrics_sample(b, "nhub_region_refused_total", labels,
                           (double)h->regions[i].st.refused_by[c]);
            json_decref(name);
        }
}

static void metrics_cases(metrics_buf_t *b, hub_t *h, store_reader_t *rd)
{
    uint64_t counts[STORE_CASE_STATES] = {0};
    store_case_counts(rd, counts);
    metrics_family(b, "nhub_cases", "gauge", "Cases by state");
    for (int s = STORE_CASE_OPEN; s < STORE_CASE_STATES; s++) {
        const char *labels[] = {"state", store_case_state_name(s), NULL};
        metrics_sample(b, "nhub_cases", labels, (double)counts[s]);
    }
    store_case_stat_t *st = NULL;
    size_t n = 0;
    api_stats_read(rd, &st, &n);
    static const struct {
        int idx;
        const char *name, *type, *help;
    } fams[] = {
        {STORE_CSTAT_OVERDUE_OPEN, "nhub_cases_overdue", "gauge",
         "Open cases past their time limit, by handler region and item"},
        {STORE_CSTAT_OPENED, "nhub_cases_opened_total", "counter",
         "Cases opened, by handler region and item"},
        {STORE_CSTAT_IN_TIME, "nhub_cases_answered_in_time_total", "counter",
         "Cases answered within their time limit, by handler region and item"},
        {STORE_CSTAT_EXPIRED, "nhub_cases_expired_total", "counter",
         "Cases closed by the hub for want of an answer, by handler region and item"},
    };
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        metrics_family(b, fams[f].name, fams[f].type, fams[f].help);
        for (size_t i = 0; st && i < n; i++) {
            const char *labels[] = {"region", st[i].handler, "item", st[i].item, NULL};
            metrics_sample(b, fams[f].name, labels, (double)st[i].v[fams[f].idx]);
        }
    }
    free(st);
    (void)h;
}

void api_get_metrics(hub_t *h, http_req_t *req, store_reader_t *rd)
{
    metrics_buf_t b = {0};
    const hub_counters_t *n = &h->n;
    uint64_t used = 0, limit = 0, disk_free = 0, disk_size = 0, last = 0;
    store_usage(h->store, &used, &limit, &disk_free, &disk_size);
    store_journal_last(rd, &last);
    char hex[33];
    metrics_family(&b, "nhub_info", "gauge", "The hub: its id and version");
    const char *info[] = {"hub_id", log_hex(hex, sizeof hex, store_hub_id(h->store), 16), "version",
                          API_VERSION, NULL};
    metrics_sample(&b, "nhub_info", info, 1);
    metric(&b, "nhub_start_time_seconds", "gauge", "When the hub started",
           (double)h->started_ms / 1000.0);
    metric(&b, "nhub_accepted_total", "counter", "Messages stored", (double)n->accepted);
    metric(&b, "nhub_duplicates_total", "counter", "Repeats acknowledged without storing",
           (double)n->duplicates);
    metric(&b, "nhub_rejected_total", "counter", "Messages refused for good (journaled)",
           (double)n->rejected);
    metric(&b, "nhub_delivered_total", "counter", "First deliveries sent", (double)n->delivered);
    metric(&b, "nhub_redelivered_total", "counter", "Deliveries sent again",
           (double)n->redelivered);
    metric(&b, "nhub_confirmed_total", "counter", "Deliveries confirmed", (double)n->confirmed);
    metric(&b, "nhub_hub_messages_total", "counter", "Notices the hub made about cases",
           (double)n->hub_messages);
    metric(&b, "nhub_sealed_unopened_total", "counter",
           "Deliveries of a sealed envelope the payload key could not open (left queued)",
           (double)n->sealed_unopened);
    metric(&b, "nhub_archive_files_total", "counter", "Archive files written and journaled",
           (double)n->archive_files);
    metric(&b, "nhub_archive_records_total", "counter", "Journal records written to archive files",
           (double)n->archive_records);
    metric(&b, "nhub_pruned_records_total", "counter",
           "Archived records removed from the live store (audit.retention)",
           (double)n->pruned_records);
    metric(&b, "nhub_archive_errors_total", "counter", "Archive files that could not be written",
           (double)n->archive_errors);
    metric(&b, "nhub_archive_write_seconds_total", "counter",
           "Time the hub's loop spent writing archive files", (double)n->archive_write_us / 1e6);
    metric(&b, "nhub_archive_sync_seconds_total", "counter",
           "Time spent making archive files durable (fsync, off the loop)",
           (double)n->archive_sync_us / 1e6);
    metric(&b, "nhub_sessions", "gauge", "Adapter sessions", (double)session_count(h->sessions));
    metric(&b, "nhub_journal_last_seq", "gauge", "Sequence number of the last journal record",
           (double)last);
    metric(&b, "nhub_store_used_bytes", "gauge", "Bytes of the store in use", (double)used);
    metric(&b, "nhub_store_map_bytes", "gauge", "Bytes of the store's current map",
           (double)store_map_size(h->store));
    metric(&b, "nhub_store_map_limit_bytes", "gauge", "Largest map the store may grow to",
           (double)limit);
    metric(&b, "nhub_store_disk_free_bytes", "gauge", "Free bytes on the store's disk",
           (double)disk_free);
    metric(&b, "nhub_store_full", "gauge", "1 while new messages are refused for want of space",
           h->full);
    metric(&b, "nhub_ingest_deferred_bytes", "gauge",
           "Bytes of frames held back for later stages (fair sharing between connections)",
           (double)h->deferred_total);
    metric(&b, "nhub_ingest_deferred_frames_total", "counter",
           "Frames held back for a later stage since start", (double)h->deferred_frames);
    metrics_family(&b, "nhub_nacks_total", "counter", "NACKs sent, by code");
    for (int c = 1; c < HUB_NACK_CODES; c++) {
        if (!n->nacked[c])
            continue;
        json_t *name = api_code_json(c);
        const char *labels[] = {"code", json_string_value(name), NULL};
        metrics_sample(&b, "nhub_nacks_total", labels, (double)n->nacked[c]);
        json_decref(name);
    }
    metric(&b, "nhub_receipts_served_total", "counter", "RECEIPTs sent to regions since start",
           (double)n->receipts_served);
    metrics_family(&b, "nhub_receipts_refused_total", "counter",
                   "RECEIPT_GETs refused since start, by reason");
    for (int k = 0; k < RECEIPTS_REFUSALS; k++) {
        const char *labels[] = {"reason", receipts_refusal_names[k], NULL};
        metrics_sample(&b, "nhub_receipts_refused_total", labels, (double)n->receipts_refused[k]);
    }
    metrics_family(&b, "nhub_security_refusals_total", "counter",
                   "Connections and frames refused for security reasons, by kind");
    static const char *const kinds[] = {"auth_refused", "handshake_failed", "identity_refused"};
    const uint64_t kv[] = {n->auth_refused, n->handshake_failed, n->identity_refused};
    for (int k = 0; k < 3; k++) {
        const char *labels[] = {"kind", kinds[k], NULL};
        metrics_sample(&b, "nhub_security_refusals_total", labels, (double)kv[k]);
    }
    static const int sec_codes[] = {
        NHUB__WIRE__V1__NACK_CODE__NACK_SOURCE_MISMATCH, NHUB__WIRE__V1__NACK_CODE__NACK_UNSIGNED,
        NHUB__WIRE__V1__NACK_CODE__NACK_BAD_SIGNATURE, NHUB__WIRE__V1__NACK_CODE__NACK_FORBIDDEN,
        NHUB__WIRE__V1__NACK_CODE__NACK_UNAUTHENTICATED};
    for (size_t k = 0; k < sizeof sec_codes / sizeof sec_codes[0]; k++) {
        json_t *name = api_code_json(sec_codes[k]);
        const char *labels[] = {"kind", json_string_value(name), NULL};
        metrics_sample(&b, "nhub_security_refusals_total", labels, (double)n->nacked[sec_codes[k]]);
        json_decref(name);
    }
    metrics_regions(&b, h, rd);
    metrics_family(&b, "nhub_item_accepted_total", "counter",
                   "Messages stored since start, by service item");
    for (size_t i = 0; i < h->n_item_stats; i++) {
        const char *labels[] = {"item", h->item_stats[i].item, NULL};
        metrics_sample(&b, "nhub_item_accepted_total", labels, (double)h->item_stats[i].accepted);
    }
    metrics_family(&b, "nhub_item_rejected_total", "counter",
                   "Messages refused for good since start, by service item");
    for (size_t i = 0; i < h->n_item_stats; i++) {
        const char *labels[] = {"item", h->item_stats[i].item, NULL};
        metrics_sample(&b, "nhub_item_rejected_total", labels, (double)h->item_stats[i].rejected);
    }
    metrics_cases(&b, h, rd);
    metrics_family(&b, "nhub_ack_latency_seconds", "histogram",
                   "From reading a SEND to sending its ACK (the commit's fsync included)");
    metrics_hist_write(&b, "nhub_ack_latency_seconds", NULL, &h->ack_latency);
    metrics_family(&b, "nhub_end_to_end_latency_seconds", "histogram",
                   "From a message's acceptance to its receiver's confirmation");
    metrics_hist_write(&b, "nhub_end_to_end_latency_seconds", NULL, &h->e2e_latency);
    metrics_family(&b, "nhub_commit_duration_seconds", "histogram",
                   "Time of one group commit (apply and fsync)");
    metrics_hist_write(&b, "nhub_commit_duration_seconds", NULL, &h->commit_seconds);
    metrics_family(&b, "nhub_commit_batch_items", "histogram", "Staged items per group commit");
    metrics_hist_write(&b, "nhub_commit_batch_items", NULL, &h->commit_items);
    metrics_family(&b, "nhub_commit_bytes", "histogram",
                   "Bytes of the envelopes of one group commit");
    metrics_hist_write(&b, "nhub_commit_bytes", NULL, &h->commit_bytes);
    if (b.failed)
        http_reply_error(req, 503, "unavailable", "out of memory");
    else
        http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    metrics_buf_free(&b);
}
