/*
 * sk_shm: the region, the configuration seqlock and the worker slots,
 * across real fork()s.
 */
#include <criterion/criterion.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sk_config.h"
#include "sk_shm.h"
#include "stepkit.h"

static void test_config(sk_config_t *cfg, int workers)
{
    sk_config_defaults(cfg);
    cfg->workers = workers;
    snprintf(cfg->database_url, sizeof(cfg->database_url), "postgresql://u@h/db");
    snprintf(cfg->schema, sizeof(cfg->schema), "shm_test");
    cfg->n_libraries = 1;
    snprintf(cfg->libraries[0], sizeof(cfg->libraries[0]), "/x.so");
}

/* Wait for a forked child and return its exit code (-1 when it did not exit). */
static int child_status(pid_t pid)
{
    int status;

    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(shm, publish_read_round_trip)
{
    sk_config_t cfg, got;
    sk_shm_t *shm;
    uint64_t seq;

    test_config(&cfg, 4);
    shm = sk_shm_create(&cfg);
    cr_assert_not_null(shm);
    cr_assert_eq(sk_shm_master_pid(shm), getpid());
    cr_assert_eq(sk_shm_slots(shm), 4);
    cr_assert_eq(sk_shm_master_state(shm), SK_MASTER_INIT);

    sk_shm_read_config(shm, &got);
    cr_assert_eq(memcmp(&cfg, &got, sizeof(cfg)), 0);
    seq = sk_shm_config_seq(shm);
    cr_assert_eq(seq % 2, 0);

    cfg.lease_ms = 12345;
    snprintf(cfg.schema, sizeof(cfg.schema), "second");
    sk_shm_publish_config(shm, &cfg);
    cr_assert_eq(sk_shm_config_seq(shm), seq + 2);
    sk_shm_read_config(shm, &got);
    cr_assert_eq(got.lease_ms, 12345);
    cr_assert_str_eq(got.schema, "second");
    cr_assert_eq(memcmp(&cfg, &got, sizeof(cfg)), 0);

    sk_shm_set_master_state(shm, SK_MASTER_DRAINING);
    cr_assert_eq(sk_shm_master_state(shm), SK_MASTER_DRAINING);
    sk_shm_destroy(shm);
}

Test(shm, forked_child_sees_master_publication)
{
    sk_config_t cfg;
    sk_shm_t *shm;
    int go[2];
    pid_t pid;
    char c;

    test_config(&cfg, 2);
    shm = sk_shm_create(&cfg);
    cr_assert_not_null(shm);
    cr_assert_eq(pipe(go), 0);
    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        sk_config_t got;
        /* wait until the master has published after the fork */
        if (read(go[0], &c, 1) != 1)
            _exit(10);
        sk_shm_read_config(shm, &got);
        if (got.lease_ms != 777 || strcmp(got.schema, "after_fork") != 0)
            _exit(11);
        if (sk_shm_master_state(shm) != SK_MASTER_RUN)
            _exit(12);
        if (sk_shm_master_pid(shm) != getppid())
            _exit(13);
        _exit(0);
    }
    cfg.lease_ms = 777;
    snprintf(cfg.schema, sizeof(cfg.schema), "after_fork");
    sk_shm_publish_config(shm, &cfg);
    sk_shm_set_master_state(shm, SK_MASTER_RUN);
    cr_assert_eq(write(go[1], "x", 1), 1);
    cr_assert_eq(child_status(pid), 0);
    sk_shm_destroy(shm);
}

Test(shm, slot_writes_visible_across_fork)
{
    sk_config_t cfg;
    sk_shm_t *shm;
    sk_worker_slot_t *slot;
    char run[64];
    pid_t pid;

    test_config(&cfg, 3);
    shm = sk_shm_create(&cfg);
    cr_assert_not_null(shm);
    slot = sk_shm_slot(shm, 2);
    cr_assert_eq(atomic_load(&slot->pid), 0);
    cr_assert_eq(atomic_load(&slot->state), SK_WORKER_EMPTY);

    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        sk_worker_slot_t *mine = sk_shm_slot(shm, 2);
        sk_shm_slot_claim(mine, getpid());
        atomic_store(&mine->state, SK_WORKER_BUSY);
        atomic_store(&mine->heartbeat_ms, 424242);
        atomic_fetch_add(&mine->steps_done, 5);
        sk_shm_slot_set_run(mine, "0190f3c2-7a1b-7cde-8f00-123456789abc");
        _exit(0);
    }
    cr_assert_eq(child_status(pid), 0);
    cr_assert_eq(atomic_load(&slot->pid), pid);
    cr_assert_eq(atomic_load(&slot->state), SK_WORKER_BUSY);
    cr_assert_eq(atomic_load(&slot->heartbeat_ms), 424242);
    cr_assert_eq(atomic_load(&slot->steps_done), 5);
    sk_shm_slot_run(slot, run, sizeof(run));
    cr_assert_str_eq(run, "0190f3c2-7a1b-7cde-8f00-123456789abc");
    /* the other slots are untouched */
    cr_assert_eq(atomic_load(&sk_shm_slot(shm, 1)->pid), 0);
    sk_shm_destroy(shm);
}

Test(shm, slot_run_id)
{
    sk_config_t cfg;
    sk_shm_t *shm;
    sk_worker_slot_t *slot;
    char run[64], small[8];

    test_config(&cfg, 1);
    shm = sk_shm_create(&cfg);
    cr_assert_not_null(shm);
    slot = sk_shm_slot(shm, 0);
    sk_shm_slot_run(slot, run, sizeof(run));
    cr_assert_str_eq(run, "");
    sk_shm_slot_set_run(slot, "abc");
    sk_shm_slot_run(slot, run, sizeof(run));
    cr_assert_str_eq(run, "abc");
    sk_shm_slot_run(slot, small, sizeof(small));
    cr_assert_str_eq(small, "abc");
    /* longer than the field: cut to 39 bytes, still terminated */
    sk_shm_slot_set_run(slot, "0123456789012345678901234567890123456789-too-long");
    sk_shm_slot_run(slot, run, sizeof(run));
    cr_assert_str_eq(run, "012345678901234567890123456789012345678");
    sk_shm_slot_set_run(slot, NULL);
    sk_shm_slot_run(slot, run, sizeof(run));
    cr_assert_str_eq(run, "");
    sk_shm_destroy(shm);
}

Test(shm, size_overflow_returns_0)
{
    size_t one = sk_shm_size(1), two = sk_shm_size(2), max = sk_shm_size(SK_MAX_WORKERS);

    cr_assert_gt(one, 0);
    cr_assert_gt(two, one);
    cr_assert_eq(max - one, (size_t)(SK_MAX_WORKERS - 1) * (two - one));
    /* counts that are negative, zero, beyond the bound or would overflow on
     * a 32-bit size_t give 0, never a wrapped small size */
    cr_assert_eq(sk_shm_size(0), 0);
    cr_assert_eq(sk_shm_size(-1), 0);
    cr_assert_eq(sk_shm_size(INT_MIN), 0);
    cr_assert_eq(sk_shm_size(SK_MAX_WORKERS + 1), 0);
    cr_assert_eq(sk_shm_size(INT_MAX), 0);
}

Test(shm, create_rejects_bad_worker_count)
{
    sk_config_t cfg;

    test_config(&cfg, 0);
    cr_assert_null(sk_shm_create(&cfg));
    test_config(&cfg, SK_MAX_WORKERS + 1);
    cr_assert_null(sk_shm_create(&cfg));
}

Test(shm, slot_index_out_of_range_aborts, .signal = SIGABRT)
{
    sk_config_t cfg;
    sk_shm_t *shm;

    test_config(&cfg, 2);
    shm = sk_shm_create(&cfg);
    cr_assert_not_null(shm);
    (void)sk_shm_slot(shm, 2);
}

Test(shm, only_the_master_publishes)
{
    sk_config_t cfg;
    sk_shm_t *shm;
    pid_t pid;
    int status;

    test_config(&cfg, 1);
    shm = sk_shm_create(&cfg);
    cr_assert_not_null(shm);
    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        sk_shm_publish_config(shm, &cfg); /* a worker writing: invariant broken */
        _exit(0);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    sk_shm_destroy(shm);
}

/*
 * Torn reads: the master publishes two different configurations back to back
 * while a child copies; every copy the child gets must be one of the two
 * whole configurations, never a mix.
 */
static void fill(sk_config_t *cfg, int k)
{
    test_config(cfg, 2);
    memset(cfg->database_url, 'a' + k, sizeof(cfg->database_url) - 1);
    cfg->database_url[sizeof(cfg->database_url) - 1] = '\0';
    cfg->lease_ms = 1000 + k;
    cfg->poll_interval_ms = 10 + k;
    for (int i = 0; i < SK_MAX_LIBRARIES; i++)
        memset(cfg->libraries[i], 'A' + k, sizeof(cfg->libraries[i]) - 1);
}

Test(shm, seqlock_never_returns_a_torn_copy)
{
    sk_config_t a, b;
    sk_shm_t *shm;
    pid_t pid;
    int ready[2];
    char c;

    fill(&a, 0);
    fill(&b, 1);
    shm = sk_shm_create(&a);
    cr_assert_not_null(shm);
    cr_assert_eq(pipe(ready), 0);
    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        sk_config_t got;
        long seen_b = 0;
        if (write(ready[1], "r", 1) != 1)
            _exit(10);
        for (long i = 0; i < 50000; i++) {
            sk_shm_read_config(shm, &got);
            if (memcmp(&got, &a, sizeof(got)) == 0)
                continue;
            if (memcmp(&got, &b, sizeof(got)) != 0)
                _exit(1); /* torn */
            seen_b++;
        }
        _exit(seen_b > 0 ? 0 : 2);
    }
    cr_assert_eq(read(ready[0], &c, 1), 1);
    for (;;) {
        int status;
        pid_t done;
        for (int i = 0; i < 100; i++) {
            sk_shm_publish_config(shm, &b);
            sk_shm_publish_config(shm, &a);
        }
        sk_shm_publish_config(shm, &b);
        done = waitpid(pid, &status, WNOHANG);
        if (done == pid) {
            cr_assert(WIFEXITED(status), "reader crashed");
            cr_assert_eq(WEXITSTATUS(status), 0, "reader saw a torn copy (1) or never saw b (2)");
            break;
        }
    }
    sk_shm_destroy(shm);
}

/* A worker killed between the two writes of its slot's sequence counter
 * leaves it odd: readers give up after a bounded number of tries
 * ("unknown"), and the slot's next worker starts from a clean, even one. */
Test(shm, odd_run_seq_is_bounded_for_readers_and_reset_by_the_next_worker)
{
    sk_config_t cfg;
    sk_shm_t *shm;
    sk_worker_slot_t *slot;
    sk_inflight_t h;
    char run[64];
    pid_t pid;

    test_config(&cfg, 1);
    shm = sk_shm_create(&cfg);
    cr_assert_not_null(shm);
    slot = sk_shm_slot(shm, 0);
    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        sk_shm_slot_claim(slot, getpid());
        sk_shm_slot_set_run(slot, "first");
        /* "killed" mid-write: odd counter, half a run id */
        atomic_fetch_add(&slot->run_seq, 1);
        slot->held.run_id[0] = 'X';
        _exit(0);
    }
    cr_assert_eq(child_status(pid), 0);
    cr_assert_eq(atomic_load(&slot->run_seq) % 2, 1);
    cr_assert_eq(sk_shm_slot_run(slot, run, sizeof(run)), SK_AGAIN);
    cr_assert_str_eq(run, "unknown");
    cr_assert_eq(sk_shm_slot_held(slot, &h), SK_AGAIN);

    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int torn = sk_shm_slot_claim(slot, getpid());
        sk_shm_slot_set_run(slot, "second"); /* would abort on an odd counter */
        _exit(torn == 1 ? 0 : 3);
    }
    cr_assert_eq(child_status(pid), 0);
    cr_assert_eq(atomic_load(&slot->run_seq) % 2, 0);
    cr_assert_eq(sk_shm_slot_run(slot, run, sizeof(run)), SK_OK);
    cr_assert_str_eq(run, "second");
    sk_shm_destroy(shm);
}

/* A new region of `workers` slots (*shm) and its slot i. */
static sk_worker_slot_t *new_slot(sk_shm_t **shm, int workers, int i)
{
    sk_config_t cfg;

    test_config(&cfg, workers);
    *shm = sk_shm_create(&cfg);
    cr_assert_not_null(*shm);
    return sk_shm_slot(*shm, i);
}

/* What a dead worker held survives it for the slot's next worker. */
Test(shm, held_item_survives_its_worker)
{
    sk_shm_t *shm;
    sk_worker_slot_t *slot = new_slot(&shm, 2, 1);
    sk_inflight_t h;
    pid_t pid;

    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        sk_inflight_t mine = {.pid = getpid(), .epoch = 7, .item_id = 42, .timeout_ms = 300};
        sk_shm_slot_claim(slot, getpid());
        snprintf(mine.run_id, sizeof(mine.run_id), "run-1");
        snprintf(mine.op_key, sizeof(mine.op_key), "%040d", 1);
        snprintf(mine.step_id, sizeof(mine.step_id), "charge");
        sk_shm_slot_set_held(slot, &mine);
        atomic_store(&slot->ready, 1);
        _exit(0);
    }
    cr_assert_eq(child_status(pid), 0);
    /* the next worker claims the slot: the held item stays until handed back */
    cr_assert_eq(sk_shm_slot_claim(slot, 12345), 0);
    cr_assert_eq(atomic_load(&slot->ready), 0);
    cr_assert_eq(sk_shm_slot_held(slot, &h), SK_OK);
    cr_assert_eq(h.pid, pid);
    cr_assert_eq(h.item_id, 42);
    cr_assert_eq(h.epoch, 7);
    cr_assert_str_eq(h.step_id, "charge");
    cr_assert_str_eq(h.run_id, "run-1");
    sk_shm_slot_set_held(slot, NULL);
    cr_assert_eq(sk_shm_slot_held(slot, &h), SK_OK);
    cr_assert_eq(h.item_id, 0);
    sk_shm_destroy(shm);
}

/* A batching worker's list of held items survives it for the slot's next
 * worker; a list left mid-write by a killed worker is dropped (those leases
 * expire) and the next worker's claim says so. */
Test(shm, batch_list_survives_its_worker_and_a_torn_one_is_dropped)
{
    sk_shm_t *shm;
    sk_worker_slot_t *slot = new_slot(&shm, 1, 0);
    sk_held_batch_t l;
    pid_t pid;

    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        sk_held_batch_t mine;
        memset(&mine, 0, sizeof(mine));
        sk_shm_slot_claim(slot, getpid());
        mine.pid = getpid();
        mine.n = 3;
        for (int i = 0; i < 3; i++) {
            mine.items[i].item_id = 100 + i;
            mine.items[i].epoch = 5 + i;
        }
        sk_shm_slot_set_batch(slot, &mine);
        _exit(0);
    }
    cr_assert_eq(child_status(pid), 0);
    cr_assert_eq(sk_shm_slot_claim(slot, 12345), 0);
    cr_assert_eq(sk_shm_slot_batch(slot, &l), SK_OK);
    cr_assert_eq(l.pid, pid);
    cr_assert_eq(l.n, 3);
    cr_assert_eq(l.items[2].item_id, 102);
    cr_assert_eq(l.items[2].epoch, 7);

    /* "killed" mid-write: odd counter */
    atomic_fetch_add(&slot->batch_seq, 1);
    cr_assert_eq(sk_shm_slot_batch(slot, &l), SK_AGAIN);
    cr_assert_eq(l.n, 0);
    cr_assert_eq(sk_shm_slot_claim(slot, 12346), 1, "the torn list is reported");
    cr_assert_eq(atomic_load(&slot->batch_seq) % 2, 0);
    cr_assert_eq(sk_shm_slot_batch(slot, &l), SK_OK);
    cr_assert_eq(l.n, 0, "a torn list lists nothing");
    sk_shm_destroy(shm);
}
