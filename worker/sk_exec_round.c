/*
 * The executor's batch mode (--batch N > 1): the items a worker holds at
 * once, each in a slot, run in rounds.  A round enters each held run for
 * one entry (its next body, or its end), then commits what they wrote in
 * one transaction fenced by every item's lease (sk_batch_fence) with a
 * claim for the room it made.  The slot lists the items it holds, for the
 * next worker to hand back after a death (sk_exec_reclaim.c).  One item
 * claimed runs alone instead (sk_exec.c).  docs/performance.md, section 8.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sk_ctx.h"
#include "sk_exec_int.h"
#include "sk_log.h"
#include "sk_metrics.h"
#include "stepkit.h"

/* Batch mode: list every item held or claimed in the slot, for the slot's
 * next worker to hand back after a death (sk_exec_reclaim). */
void sk_exec_publish_batch(sk_exec_t *x)
{
    sk_held_batch_t *l = &x->listed;
    int n = 0;

    if (x->batch <= 1)
        return;
    for (int i = 0; i < x->batch + x->nincoming && n < SK_SHM_BATCH_MAX; i++) {
        const item_t *it =
            i < x->batch ? (x->slots[i].held ? &x->slots[i].it : NULL) : &x->incoming[i - x->batch];
        if (it == NULL)
            continue;
        l->items[n].item_id = it->item_id;
        l->items[n].epoch = it->epoch;
        l->items[n].unused = 0;
        n++;
    }
    l->pid = (int32_t)getpid();
    l->n = n;
    sk_shm_slot_set_batch(x->slot, l);
}

/* ---- batches of items ----------------------------------------------------------------- */

void sk_exec_slot_free(sk_exec_t *x, slot_t *s)
{
    sk_exec_batch_free(&s->out.b);
    memset(&s->out, 0, sizeof(s->out));
    sk_ctx_free(s->rs.ctx);
    sk_exec_item_drop(&s->it);
    memset(s, 0, sizeof(*s));
    x->nheld--;
    sk_exec_publish_batch(x);
}

/* Claimed items into free slots. */
void sk_exec_take_incoming(sk_exec_t *x)
{
    int j = 0;

    for (int i = 0; i < x->batch && j < x->nincoming; i++) {
        slot_t *s = &x->slots[i];
        if (s->held)
            continue;
        memset(s, 0, sizeof(*s));
        s->it = x->incoming[j++];
        s->rs.x = x;
        s->rs.it = &s->it;
        s->rs.slot = s;
        s->held = 1;
        x->nheld++;
    }
    x->nincoming = 0;
}

/* Batch mode: one entry of this slot's run (its first: item_begin too).
 * Writes that end the item's hold wait in s->out for the round's
 * transaction; a result left by a body waits in the context, and the
 * round's commit takes it from there (round_writes). */
static void round_enter(sk_exec_t *x, slot_t *s)
{
    int rc = SK_OK, done;

    x->refused[0] = '\0';
    s->rs.defer = &s->out;
    if (!s->started) {
        s->started = 1;
        done = sk_exec_item_begin(&s->rs, &rc);
    } else {
        sk_exec_hold_item(x, &s->it);
        done = 0;
    }
    if (!done)
        done = sk_exec_item_step(&s->rs, &rc);
    if (x->refused[0] != '\0' && !s->out.used)
        rc = sk_exec_fail_refused(&s->rs);
    if (done && (rc != SK_OK || !s->out.used)) {
        /* Lost, or nothing to commit for it: the lease expires, or it was
         * dealt with at once. */
        sk_exec_slot_free(x, s);
    }
}

static int cmp_slot_item(const void *a, const void *b)
{
    const slot_t *x = *(slot_t *const *)a, *y = *(slot_t *const *)b;

    return x->it.item_id < y->it.item_id ? -1 : x->it.item_id > y->it.item_id;
}

/* A slot's writes for the round: those that end its hold (s->out), else
 * what its run has pending (the result of the body it ran, group
 * dispatches).  Every result commits with the round that ran its body, so
 * the run's next entry, in the next round, finds nothing pending. */
static int round_writes(slot_t *s)
{
    sk_ctx_writes_t w;
    batch_t *b;
    int rc;

    if (s->out.used || s->rs.ctx == NULL)
        return SK_OK;
    if (sk_ctx_writes(s->rs.ctx, &w) != SK_OK)
        return SK_ERROR;
    if (w.nops == 0 && w.ndispatch == 0)
        return SK_OK;
    if ((b = sk_exec_out_begin(&s->rs, NULL, &w, 1)) == NULL)
        return SK_ERROR;
    rc = sk_exec_add_writes(b, s->rs.it, &w);
    sk_exec_out_end(&s->rs, b, rc);
    return rc;
}

/* What the round's writes did, now committed. */
static void round_committed(sk_exec_t *x, slot_t *s)
{
    if (s->out.used)
        sk_exec_writes_committed(x, s->rs.ctx, &s->out.w);
    if (s->out.end_status != NULL) {
        atomic_fetch_add(&x->slot->runs_done, 1);
        sk_metrics_run_end(s->it.workflow, strcmp(s->out.end_status, "completed") == 0,
                           (double)(sk_exec_wall_now_ms() - s->it.created_ms) / 1000.0);
    }
    if (s->out.ends) {
        sk_exec_slot_free(x, s);
    } else {
        sk_exec_batch_free(&s->out.b);
        memset(&s->out, 0, sizeof(s->out));
    }
}

static void round_lost(sk_exec_t *x, slot_t *s)
{
    sk_log_warn("event=lease_lost run=%s item=%s epoch=%s batch=1", s->it.run_id, s->it.item_s,
                s->it.epoch_s);
    sk_metrics_count(SK_MC_FENCE_REFUSALS);
    sk_exec_slot_free(x, s);
}

/* Whether item `id` is in a comma-separated list. */
static int in_list(const char *list, int64_t id)
{
    for (const char *p = list; *p != '\0';) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p)
            return 0;
        if (v == id)
            return 1;
        p = *end == ',' ? end + 1 : end;
    }
    return 0;
}

/*
 * One transaction for the writes of slots `in` (n of them, in item order):
 * batch_fence first (locks every item's row and checks its epoch, or names
 * the lost ones), then each item's writes, then, when `claim` > 0, a claim
 * of up to that many items.  SK_OK; SK_AGAIN: leases were lost, those slots
 * are dropped (in[i] = NULL) and nothing was written; SK_WCONN_REFUSED;
 * SK_ERROR.
 */
static int round_txn(sk_exec_t *x, slot_t **in, int n, int claim, PGresult **claim_res, char *err,
                     size_t errlen)
{
    batch_t fb;
    sk_cmd_t *cmds = NULL, *k;
    PGresult **res = NULL;
    char *items = NULL, *epochs = NULL;
    size_t cap = (size_t)n * NUM_LEN + 1;
    int total = 1 + (claim > 0), at = 0, rc = SK_ERROR;

    *claim_res = NULL;
    for (int i = 0; i < n; i++)
        total += in[i]->out.b.n;
    if (sk_exec_batch_init(&fb, 2) != SK_OK ||
        (cmds = calloc((size_t)total, sizeof(*cmds))) == NULL ||
        (res = calloc((size_t)total, sizeof(*res))) == NULL || (items = calloc(1, cap)) == NULL ||
        (epochs = calloc(1, cap)) == NULL)
        goto done;
    for (int i = 0; i < n; i++) {
        size_t li = strlen(items), le = strlen(epochs);
        snprintf(items + li, cap - li, "%s%s", i ? "," : "", in[i]->it.item_s);
        snprintf(epochs + le, cap - le, "%s%s", i ? "," : "", in[i]->it.epoch_s);
    }
    if ((k = sk_exec_batch_add(&fb, "sk_batch_fence")) == NULL)
        goto done;
    sk_exec_param(k, items, 0, 0);
    sk_exec_param(k, epochs, 0, 0);
    sk_exec_param(k, x->lease, 0, 0);
    if (claim > 0 && sk_exec_add_claim(x, &fb, claim) != SK_OK)
        goto done;
    cmds[at++] = fb.cmds[0];
    for (int i = 0; i < n; i++) {
        if (in[i]->out.b.n == 0)
            continue; /* fenced only */
        memcpy(&cmds[at], in[i]->out.b.cmds, (size_t)in[i]->out.b.n * sizeof(*cmds));
        at += in[i]->out.b.n;
    }
    if (claim > 0)
        cmds[at++] = fb.cmds[1];
    rc = sk_wconn_run(x->conn, cmds, at, res, err, errlen);
    if (rc == SK_OK && claim > 0) {
        *claim_res = res[at - 1];
        res[at - 1] = NULL;
    }
    if (rc == SK_AGAIN) {
        const char *lost = sk_wconn_lost_detail(x->conn);
        int found = 0;
        for (int i = 0; i < n; i++) {
            if (in_list(lost, in[i]->it.item_id)) {
                round_lost(x, in[i]);
                in[i] = NULL;
                found = 1;
            }
        }
        if (!found) {
            /* Lost, but not named (not batch_fence's refusal): any of them
             * may be gone; their leases tell the next claimer. */
            for (int i = 0; i < n; i++) {
                round_lost(x, in[i]);
                in[i] = NULL;
            }
        }
    }
done:
    if (res != NULL) {
        for (int i = 0; i < at; i++)
            PQclear(res[i]);
    }
    free(res);
    free(cmds);
    free(items);
    free(epochs);
    sk_exec_batch_free(&fb);
    return rc;
}

/*
 * Commit the round: what every held slot has pending, in one transaction,
 * and a claim for the room the round made.  A lost lease leaves that item
 * out and the rest is sent again; a refusal (an error no retry would fix)
 * sends each item alone, to find whose it is.  SK_OK: the slots still held
 * and alive had their writes committed; SK_ERROR: the connection failed
 * (every item is dropped: the leases expire).
 */
static int round_commit(sk_exec_t *x, int may_claim)
{
    slot_t **in = x->round_in;
    PGresult *claimed = NULL;
    char err[512];
    int n = 0, claim = 0, ending, writes, rc = SK_ERROR;

    for (int tries = 0; tries <= x->batch; tries++) {
        n = ending = writes = 0;
        for (int i = 0; i < x->batch; i++) {
            slot_t *s = &x->slots[i];
            if (!s->held)
                continue;
            if (round_writes(s) != SK_OK) {
                sk_exec_slot_free(x, s); /* out of memory: its lease expires */
                continue;
            }
            /* Every item held is fenced, those with nothing to write too:
             * their leases are checked and extended with the others'. */
            writes += s->out.used;
            ending += s->out.ends;
            in[n++] = s;
        }
        if (n == 0 || writes == 0)
            return SK_OK;
        qsort(in, (size_t)n, sizeof(in[0]), cmp_slot_item);
        claim = may_claim ? sk_exec_claim_room(x) + ending : 0;
        if (claim > 0 && !ending && !x->more_ready)
            claim = 0; /* nothing left the batch and nothing more was ready */
        rc = round_txn(x, in, n, claim, &claimed, err, sizeof(err));
        if (rc != SK_AGAIN)
            break;
    }
    if (rc == SK_OK) {
        for (int i = 0; i < n; i++)
            round_committed(x, in[i]);
        if (claim > 0) {
            int64_t more = -1;
            int got = sk_exec_parse_claim(x, claimed, &more);
            if (got > 0 && more == 0 && x->more != NULL)
                x->more(x->more_arg);
            x->found_none = got == 0;
            x->next_due_ms = more;
        }
        return SK_OK;
    }
    if (rc == SK_WCONN_REFUSED) {
        /* Whose write was refused?  Each item alone finds out. */
        for (int i = 0; i < n; i++) {
            slot_t *one = in[i];
            int r;
            if (one == NULL || !one->held)
                continue;
            r = round_txn(x, &one, 1, 0, &claimed, err, sizeof(err));
            if (r == SK_OK) {
                round_committed(x, one);
            } else if (r == SK_WCONN_REFUSED) {
                sk_exec_note_refused(x, &one->it, err);
                sk_exec_batch_free(&one->out.b);
                memset(&one->out, 0, sizeof(one->out));
                one->rs.defer = NULL;
                sk_exec_fail_refused(&one->rs); /* its own transaction, at once */
                sk_exec_slot_free(x, one);
            } else if (r != SK_AGAIN) {
                sk_log_error("event=write_failed run=%s item=%s error=\"%s\"", one->it.run_id,
                             one->it.item_s, err);
                sk_exec_slot_free(x, one);
            }
        }
        return sk_wconn_ready(x->conn) ? SK_OK : SK_ERROR;
    }
    if (rc != SK_AGAIN)
        sk_log_error("event=write_failed batch=%d error=\"%s\"", n, err);
    /* The connection failed (or leases kept being lost): let every lease
     * expire; whoever claims next runs the steps again. */
    for (int i = 0; i < x->batch; i++) {
        if (x->slots[i].held)
            sk_exec_slot_free(x, &x->slots[i]);
    }
    return SK_ERROR;
}

/*
 * One round: enter the held runs in turn (round robin), each for one entry
 * (its next body, or its end), then commit what they wrote in one
 * transaction with a claim for the room it made.  No handler is suspended
 * while another runs: an entry returns before the next one starts.  A
 * round stops entering runs once its bodies took --batch-window.
 */
int sk_exec_round_run(sk_exec_t *x)
{
    int entered = 0, rc;

    x->round_body_us = 0;
    for (int i = 0; i < x->batch; i++) {
        slot_t *s = &x->slots[(x->rr + i) % x->batch];
        if (!s->held)
            continue;
        if (entered > 0 && x->round_body_us >= (int64_t)x->cfg->batch_window_ms * 1000)
            break; /* the rest wait for the next round */
        entered++;
        (void)sk_exec_check_stop(x);
        round_enter(x, s);
    }
    rc = round_commit(x, 1);
    sk_exec_hold_item(x, NULL);
    x->rr = (x->rr + (entered > 0 ? entered : 1)) % x->batch;
    /* Bodies grew slow: hand back what the window has no room for (fresh
     * items first), for idle workers to take. */
    for (int i = x->batch - 1; i >= 0 && x->nheld > x->round_max; i--) {
        slot_t *s = &x->slots[i];
        if (!s->held || s->started)
            continue;
        s->rs.defer = NULL;
        if (sk_wconn_ready(x->conn))
            (void)sk_exec_release(&s->rs, 0, -1, 0);
        sk_exec_slot_free(x, s);
    }
    for (int i = x->batch - 1; i >= 0 && x->nheld > x->round_max; i--) {
        slot_t *s = &x->slots[i];
        if (!s->held || s->out.used)
            continue;
        s->rs.defer = NULL;
        if (sk_wconn_ready(x->conn))
            (void)sk_exec_release(&s->rs, 0, -1, 0);
        sk_exec_slot_free(x, s);
    }
    return rc == SK_ERROR && !sk_wconn_ready(x->conn) ? SK_ERROR : SK_OK;
}

/* Stopping: commit what is pending, then hand back what is held, visible
 * at once (fenced; not a takeover for the next worker). */
void sk_exec_hand_back_all(sk_exec_t *x)
{
    sk_exec_take_incoming(x);
    if (x->nheld > 0 && sk_wconn_ready(x->conn))
        (void)round_commit(x, 0);
    for (int i = 0; i < x->batch; i++) {
        slot_t *s = &x->slots[i];
        if (!s->held)
            continue;
        s->rs.defer = NULL;
        if (sk_wconn_ready(x->conn) && sk_exec_release(&s->rs, 0, -1, 0) == SK_OK)
            sk_log_info("event=item_released run=%s item=%s reason=stopping", s->it.run_id,
                        s->it.item_s);
        sk_exec_slot_free(x, s);
    }
}
