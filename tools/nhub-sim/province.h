/*
 * province.h: one simulated provincial platform (省级集中信息平台) of
 * nhub-sim, on its own libnhub adapter (own data_dir, own key).
 *
 * A province does what a real platform's application would do with the
 * messages of the catalogue's items, at random but from its own seeded
 * generator, so two runs with the same seed make the same decisions in the
 * same order of events:
 *   - it asks other provinces to verify things: insured status
 *     (SI-VERIFY-002, StatusQuery) and signed commitments (SI-VERIFY-003,
 *     CommitmentQuery);
 *   - it pushes applications it accepted to the province they belong to
 *     (SI-PUSH-001, Application), and uploads registration batches to the
 *     national registration database (SI-UPLOAD-001; the database is played
 *     by one of the provinces, sim_world_t.registry, until its own code is
 *     assigned);
 *   - now and then it broadcasts a credit notice (SI-NOTICE-001);
 *   - as a handler it answers what it is asked after a random delay: most in
 *     time, a share late (after the time limit, before the case expires),
 *     a share never; a push gets the feedback stages RECEIVED, HANDLING and
 *     then DONE or, sometimes, REFUSED;
 *   - it counts what comes back: answers in time and late, the hub's
 *     reminders, overdue notices and expiries, final feedback.
 * Optionally it goes offline for a while: its adapter is closed and opened
 * offline (messages are still stored in its outbox, nothing connects), then
 * opened again, and the outbox drains.
 *
 * Threading: province_run is the body of the province's own thread; it is
 * the only user of its nhub_t. Counters are atomics that any thread may read
 * (province_stat). The world is shared and read-only while provinces run.
 */
#ifndef NHUB_SIM_PROVINCE_H
#define NHUB_SIM_PROVINCE_H

#include "catalog.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* What a province counts. The names are the summary's (main.c). */
enum sim_stat {
    SIM_SENT,             /* messages stored in the outbox (nhub_send), all kinds */
    SIM_ACKED,            /* acknowledged by the hub */
    SIM_REJECTED,         /* refused by the hub for good (by code: province_rejected) */
    SIM_REQUESTS,         /* verification requests sent */
    SIM_PUSHES,           /* business pushes sent */
    SIM_UPLOADS,          /* registration batches sent */
    SIM_BROADCASTS,       /* credit notices broadcast */
    SIM_ANSWERS,          /* responses sent to requests handled here */
    SIM_FEEDBACK,         /* feedback stages sent to pushes and uploads handled here */
    SIM_RECEIVED,         /* deliveries handed to this province */
    SIM_ANSWERED_IN_TIME, /* answers received before the case was overdue */
    SIM_ANSWERED_LATE,    /* answers received after the hub's OVERDUE notice */
    SIM_REMINDERS,        /* REMINDER notices (催办) received as handler */
    SIM_OVERDUE,          /* OVERDUE notices (督办) received as requester */
    SIM_EXPIRED,          /* EXPIRED, the hub's final answer, received as requester */
    SIM_PUSHES_DONE,      /* final feedback DONE received for a push */
    SIM_PUSHES_REFUSED,   /* final feedback REFUSED received for a push */
    SIM_UPLOADS_DONE,     /* final feedback DONE received for an upload */
    SIM_NOTICES_RECEIVED, /* broadcast credit notices received */
    SIM_LEFT_UNANSWERED,  /* cases this handler chose never to answer */
    SIM_ARRIVED_TOO_LATE, /* cases that reached this handler after they expired */
    SIM_UNEXPECTED,       /* deliveries of a type or kind the simulation never sends */
    SIM_DROPPED,          /* planned answers dropped (the schedule was full) */
    SIM_SEND_ERRORS,      /* nhub_send_batch failures (the batch was dropped) */
    SIM_STAT_COUNT
};

#define SIM_NACK_CODES 64 /* rejection codes counted one by one; larger ones in the last */

/* What every province shares (read-only while they run). */
typedef struct sim_world {
    const char *endpoint;       /* the hub's ZeroMQ endpoint */
    const char *hub_key;        /* the hub's CURVE public key (Z85); NULL = plaintext */
    const char *keys_dir;       /* CODE.key of each region, with hub_key */
    const char *data_dir;       /* each province's adapter store is DIR/CODE */
    const char *hub_region;     /* the hub's own code, source of its case notices */
    const catalog_t *catalog;   /* the hub's catalogue (time limits); NULL = none */
    const char *const *regions; /* the simulated provinces' codes */
    size_t n_regions;
    size_t registry;            /* index of the province playing the registration database */
    double rate;                /* new exchanges per second, all provinces together */
    double late_share;          /* of cases, answered after the time limit */
    double never_share;         /* of cases, never answered */
    int64_t broadcast_every_ms; /* one credit notice broadcast this often; 0 = never */
    int64_t start_ms;           /* wall clock at the start of the run */
    const atomic_int *stop;     /* set once: every province stops */
} sim_world_t;

/* When a province is offline: from start + after_ms, for for_ms. */
typedef struct sim_offline {
    int64_t after_ms;
    int64_t for_ms; /* 0 = never offline */
} sim_offline_t;

typedef struct province province_t;

/*
 * A province for world->regions[index], its decisions drawn from `seed`.
 * Opens nothing yet (province_run does). Returns NULL if out of memory.
 * `world` is borrowed and must outlive the province. Free with
 * province_destroy.
 */
province_t *province_new(const sim_world_t *world, size_t index, uint64_t seed,
                         sim_offline_t offline);

/* Free `*self` (after its thread ended) and set it to NULL. Accepts NULL. */
void province_destroy(province_t **self);

/*
 * The province's thread: open its adapter, trade until *world->stop, close
 * it. Returns 0, or -1 if the adapter could not be opened (the reason is on
 * stderr). A pthread start routine via a cast-free wrapper in main.c.
 */
int province_run(province_t *self);

/* A counter (enum sim_stat), readable from any thread. */
uint64_t province_stat(const province_t *self, int stat);

/* How many rejections with NACK code `code` (0..SIM_NACK_CODES-1). */
uint64_t province_rejected(const province_t *self, int code);

/* 1 while the province is offline by plan (sim_offline_t). */
int province_offline(const province_t *self);

/* The adapter's link state (enum nhub_link), as its thread saw it last. */
int province_link(const province_t *self);

/* The province's region code. Borrowed from the world. */
const char *province_region(const province_t *self);

#endif
