/*
 * cases.h: cases with time limits (异地业务协查, 限时办结), inside the hub's
 * write transaction. Private to the hub (included by hub_internal.h).
 *
 * A request or a push of an item whose catalogue entry has a time_limit
 * opens a case; its id is the opening message's msg_id, its handler the
 * message's destination, its requester the source. From the opening:
 *
 *   open --DELIVERED by the handler--> delivered --feedback received/handling--> handling
 *     at the reminder point: reminded (a REMINDER notice to the handler, 催办)
 *     at the time limit:     overdue  (an OVERDUE notice to requester and handler,
 *                                      logged for the operators, 督办)
 *     after the grace:       expired  (the hub's final answer EXPIRED to the requester)
 *   a response, or a feedback done/refused, from the handler to the requester
 *   closes it: answered (valid until now + answer_valid, 结果效力) or refused.
 *
 * An open case's state is the furthest of those it went through; closed
 * states are final, so every request gets exactly one final answer: the
 * handler's, or the hub's. Answers to an item with cases are refused for
 * good (journaled REJECTED) when they name no case of the item
 * (NACK_CASE_UNKNOWN), come from another region than the handler or go to
 * another than the requester (NACK_CASE_NOT_HANDLER), or come after the
 * case closed (NACK_CASE_CLOSED). A deadline that a clock jump or a
 * downtime passed fires once, at the furthest point passed (an expired case
 * is not reminded first).
 *
 * Every transition is a journal event (EVENT_CASE_*; the opening is the
 * request's own ACCEPTED event, which then names the case) in the transaction
 * that changes the case; every notice the hub makes is an EVENT_HUB_MESSAGE
 * queued like an accepted message, from the hub's own region code
 * (hub.region, 000000 by default: no region may have it). The functions below only write into
 * the transaction `t` and note which regions got notices
 * (hub_region.notified); RAM changes after the commit (cases_committed).
 */
#ifndef NHUB_CASES_H
#define NHUB_CASES_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

struct hub;
struct item;

/* Deadlines fired in one transaction at most: bounds the time a commit
 * takes while a million deadlines pass at once, so ACKs keep flowing. A
 * transaction that also carries staged messages fires fewer (a few ms of
 * work), one with nothing else to do the full batch. */
#define CASES_FIRE_MAX 2048
#define CASES_FIRE_BUSY 256
#define CASES_NOTICE_TYPE "nhub.case.v1.CaseNotice"

/* 1 if answers of this SEND's item are bound to cases (a time limit). */
int cases_item_has_cases(const struct hub *h, const char *item);

/* Before an answer is accepted: refuse it (it->reject, it->why) if it
 * names no case it may answer; if it answers one, *answers = 1 and *c is
 * the case as it is (for cases_after_answer). Returns 0 or a store error. */
int cases_check_answer(struct hub *h, store_txn_t *t, struct item *it, store_case_t *c,
                       int *answers);

/*
 * Whether SEND `it` opens a case: 1 and *c filled (its deadlines from the
 * catalogue, counted from now), or 0. The ACCEPTED event that journals the
 * message carries the opening (case_id, case_state open, deadline_ms):
 * the opening is that event, not a second one.
 */
int cases_opening(const struct hub *h, const struct item *it, int64_t now, store_case_t *c);

/* Store case `c` from cases_opening, its ACCEPTED event being `seq`. */
int cases_open(struct hub *h, store_txn_t *t, store_case_t *c, uint64_t seq);

/* After answer `it` was journaled as `seq`: apply it to case `old`, as
 * cases_check_answer read it in the same transaction. A response or a
 * final feedback closes it; a feedback stage received/handling marks it in
 * handling. */
int cases_after_answer(struct hub *h, store_txn_t *t, const struct item *it,
                       const store_case_t *old, uint64_t seq, int64_t now);

/* A DELIVERED from `region` for msg_id took it off the queue. */
int cases_on_confirm(struct hub *h, store_txn_t *t, const uint8_t msg_id[16], const char *region,
                     uint64_t seq, int64_t now);

/* Fire up to `max` (at most CASES_FIRE_MAX) deadlines at or before now;
 * *fired = how many. */
int cases_fire(struct hub *h, store_txn_t *t, int64_t now, size_t max, size_t *fired);

/*
 * An operator reminds the handler of open case `id` by hand (催办): the
 * case is marked reminded (its automatic reminder, if still ahead, is not
 * sent), journaled with ref_seq = `ref_seq` (the operator's action), and a
 * REMINDER notice goes to the handler now. Returns 0, NHUB_ENOTFOUND (no
 * such case), NHUB_EEXIST (the case is closed) or a store error.
 */
int cases_remind(struct hub *h, store_txn_t *t, const uint8_t id[16], uint64_t ref_seq,
                 int64_t now);

/* Start of a transaction attempt: forget the notes of an aborted one. */
void cases_txn_begin(struct hub *h);

/* The transaction committed: regions that got notices have them pending,
 * counters move, and `next_ms` is the earliest deadline left. */
void cases_committed(struct hub *h, int64_t next_ms);

#endif
