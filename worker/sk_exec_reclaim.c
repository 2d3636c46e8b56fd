/*
 * After a worker's death: before its first claim, the next worker of the
 * slot hands back what the dead one held (sk_exec_reclaim), the item whose
 * body or entry it was in with its death counted as an attempt (the cause
 * read from the master's record), and the rest of its batch with none
 * counted.  Apart from the run lifecycle: it runs once per worker start,
 * on what the slot shows rather than on a claimed item.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sk_exec_int.h"
#include "sk_log.h"
#include "stepkit.h"

static const char *cause_text(const sk_inflight_t *h, const sk_death_t *d, int known, char *buf,
                              size_t len, const char **name, int *count)
{
    const char *what = h->op_key[0] ? "step " : "the handler";
    const char *step = h->op_key[0] ? h->step_id : "";
    int cause = known ? atomic_load(&d->cause) : SK_DEATH_NONE;
    int code = atomic_load(&d->code), sig = atomic_load(&d->signo);

    *name = "WorkerLostError";
    *count = 0;
    if (cause == SK_DEATH_STEP_TIMEOUT) {
        *name = "StepTimeoutError";
        *count = 1;
        snprintf(buf, len,
                 "%s%s showed no progress within its step timeout (%lld ms): its worker was "
                 "killed",
                 what, step, (long long)h->timeout_ms);
    } else if (cause == SK_DEATH_CRASH && sig > 0) {
        const char *abbrev = sigabbrev_np(sig);
        /* Killed from outside (OOM killer, an operator, a kill storm) while
         * no user code ran: not the handler's fault. */
        *count = sig != SIGKILL;
        snprintf(buf, len, "%s%s: its worker died of signal %d (SIG%s)", what, step, sig,
                 abbrev ? abbrev : "?");
    } else if (cause == SK_DEATH_CRASH) {
        *count = 1;
        snprintf(buf, len, "%s%s: its worker exited with status %d while it ran", what, step, code);
    } else {
        snprintf(buf, len, "%s%s: its worker was lost", what, step);
    }
    return buf;
}

/* The item whose body (or entry) the dead worker was in: handed back with
 * its death counted as an attempt. */
static int reclaim_held(sk_exec_t *x, const sk_death_t *death, const sk_inflight_t *h)
{
    batch_t b;
    sk_cmd_t *k;
    PGresult *res[1] = {NULL};
    char err[512], why[400], item_s[NUM_LEN], epoch_s[NUM_LEN];
    const char *name, *outcome;
    int known, count, rc;
    int64_t waited;

    known = atomic_load_explicit(&death->pid, memory_order_acquire) == h->pid;
    cause_text(h, death, known, why, sizeof(why), &name, &count);
    snprintf(item_s, sizeof(item_s), "%lld", (long long)h->item_id);
    snprintf(epoch_s, sizeof(epoch_s), "%d", (int)h->epoch);
    if (sk_exec_batch_init(&b, 1) != SK_OK || (k = sk_exec_batch_add(&b, "sk_reclaim")) == NULL) {
        sk_exec_batch_free(&b);
        return SK_ERROR;
    }
    sk_exec_param(k, item_s, 0, 0);
    sk_exec_param(k, epoch_s, 0, 0);
    sk_exec_param(k, h->op_key[0] ? h->op_key : NULL, 0, 0);
    sk_exec_param(k, h->op_key[0] ? h->step_id : NULL, 0, 0);
    sk_exec_param(k, name, 0, 0);
    sk_exec_param(k, why, 0, 0);
    sk_exec_param(k, count ? "true" : "false", 0, 0);
    sk_exec_param(k, sk_wconn_done_channel(x->conn), 0, 0);
    rc = sk_wconn_run(x->conn, b.cmds, 1, res, err, sizeof(err));
    sk_exec_batch_free(&b);
    if (rc != SK_OK) {
        /* Kept in the slot: tried again after the reconnect, or by the next
         * worker of this slot (the epoch makes it happen once). */
        PQclear(res[0]);
        sk_log_error("event=reclaim_failed item=%lld error=\"%s\"", (long long)h->item_id, err);
        return SK_ERROR;
    }
    outcome = PQntuples(res[0]) == 1 ? PQgetvalue(res[0], 0, 0) : "?";
    waited = known ? sk_shm_now_ms() - atomic_load(&death->at_ms) : -1;
    sk_log_warn("event=item_reclaimed run=%s item=%lld epoch=%d dead_pid=%d step=%s error=%s "
                "outcome=%s since_death_ms=%lld why=\"%s\"",
                h->run_id, (long long)h->item_id, (int)h->epoch, (int)h->pid,
                h->op_key[0] ? h->step_id : "-", name, outcome, (long long)waited, why);
    PQclear(res[0]);
    sk_shm_slot_set_held(x->slot, NULL);
    return SK_OK;
}

/* The rest of a dead batching worker's items, each visible at once (fenced
 * by its epoch; no attempt counted: no body of theirs was running), in one
 * pipeline.  Bodies they ran whose results had not committed run again. */
static int reclaim_batch(sk_exec_t *x, const sk_held_batch_t *l, int64_t skip)
{
    batch_t b;
    PGresult **res = NULL;
    char err[512];
    int n = 0, rc = SK_ERROR, handed = 0;

    if (sk_exec_batch_init(&b, l->n) != SK_OK ||
        (res = calloc((size_t)l->n + 1, sizeof(*res))) == NULL)
        goto done;
    for (int i = 0; i < l->n; i++) {
        sk_cmd_t *k;
        if (l->items[i].item_id == skip)
            continue;
        if ((k = sk_exec_batch_add(&b, "sk_reclaim")) == NULL)
            goto done;
        sk_exec_param(k, sk_exec_num(&b, 0, l->items[i].item_id), 0, 0);
        sk_exec_param(k, sk_exec_num(&b, 1, l->items[i].epoch), 0, 0);
        sk_exec_param(k, NULL, 0, 0);
        sk_exec_param(k, NULL, 0, 0);
        sk_exec_param(k, "WorkerLostError", 0, 0);
        sk_exec_param(k, "its worker died while holding it in a batch", 0, 0);
        sk_exec_param(k, "false", 0, 0);
        sk_exec_param(k, sk_wconn_done_channel(x->conn), 0, 0);
        n++;
    }
    rc = n == 0 ? SK_OK : sk_wconn_run(x->conn, b.cmds, n, res, err, sizeof(err));
    if (rc != SK_OK) {
        sk_log_error("event=reclaim_failed items=%d error=\"%s\"", n, err);
        goto done;
    }
    for (int i = 0; i < n; i++)
        handed += PQntuples(res[i]) == 1 && strcmp(PQgetvalue(res[i], 0, 0), "gone") != 0;
    if (n > 0)
        sk_log_warn("event=batch_reclaimed dead_pid=%d items=%d handed_back=%d", (int)l->pid, n,
                    handed);
    sk_shm_slot_set_batch(x->slot, NULL);
done:
    if (res != NULL) {
        for (int i = 0; i < n; i++)
            PQclear(res[i]);
    }
    free(res);
    sk_exec_batch_free(&b);
    return rc;
}

int sk_exec_reclaim(sk_exec_t *x, const sk_death_t *death)
{
    sk_inflight_t h;
    sk_held_batch_t l;
    int rc = SK_OK;

    if (sk_shm_slot_held(x->slot, &h) != SK_OK) {
        /* Torn, or a writer that never finishes: the lease expires by itself. */
        sk_shm_slot_set_held(x->slot, NULL);
        memset(&h, 0, sizeof(h));
    }
    if (h.item_id != 0 && h.pid != (int32_t)getpid())
        rc = reclaim_held(x, death, &h);
    if (rc != SK_OK)
        return rc;
    if (sk_shm_slot_batch(x->slot, &l) != SK_OK) {
        sk_shm_slot_set_batch(x->slot, NULL);
        return SK_OK;
    }
    if (l.n == 0 || l.pid == (int32_t)getpid())
        return SK_OK; /* nothing left by a dead worker */
    return reclaim_batch(x, &l, h.pid == l.pid ? h.item_id : 0);
}
