/*
 * sk_shm - the one shared-memory region (see sk_shm.h for who writes what).
 *
 * Concurrency, without a single lock:
 *   - The configuration sits under a seqlock.  It is stored as 64-bit words
 *     that both sides access with relaxed atomics, so a reader that races
 *     the writer reads torn words but never has undefined behaviour; the
 *     sequence check then throws that copy away (Boehm, "Can seqlocks get
 *     along with programming language memory models?", MSPC 2012).
 *   - master_state and the slot fields are lock-free atomics.
 *   - What a worker holds (sk_inflight_t) is plain data in the public
 *     struct: it has its own seqlock (run_seq) and its bytes are accessed
 *     with the compiler's __atomic builtins, the same idea.  Its readers
 *     (the master, the slot's next worker) retry a bounded number of times:
 *     a writer stopped (SIGSTOP, freezer) or killed between its two counter
 *     writes must not make them spin.
 * Only lock-free atomics work across processes (a libatomic lock would live
 * in one process's memory): the _Static_asserts below pin that.
 *
 * Invariants on this memory are checked in release builds too (SHM_CHECK):
 * a corrupt region must stop the process, not be trusted.
 */
#include "sk_shm.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "sk_log.h"
#include "stepkit.h"

#define SLOT_ALIGN   64 /* one cache line per slot: heartbeats of two workers never share one */
#define CONFIG_WORDS ((sizeof(sk_config_t) + sizeof(uint64_t) - 1) / sizeof(uint64_t))

/* Written by the master once, before the first fork; read-only afterwards
 * (config_seq excepted: the master's seqlock counter, odd while it writes). */
typedef struct {
    uint64_t magic;          /* SK_SHM_MAGIC */
    uint32_t layout_version; /* SK_SHM_LAYOUT_VERSION */
    uint32_t n_slots;        /* workers the region was sized for */
    uint64_t size;           /* bytes mapped */
    int64_t master_pid;
    int64_t birth_time; /* CLOCK_REALTIME seconds at creation */
    _Atomic uint64_t config_seq;
} shm_header_t;

/* Scratch view of a config as words, for the copy in and out. */
typedef union {
    sk_config_t cfg;
    uint64_t w[CONFIG_WORDS];
} config_words_t;

/* s: written by its worker only (see sk_worker_slot_t); d: by the master
 * only.  Read by the master and by the slot's workers. */
typedef struct {
    _Alignas(SLOT_ALIGN) sk_worker_slot_t s;
    _Alignas(SLOT_ALIGN) sk_death_t d; /* own cache line: two writers never share one */
} padded_slot_t;

#define HELD_TRIES 1000 /* seqlock read attempts before "unknown" */

struct sk_shm {
    shm_header_t hdr;
    _Atomic uint64_t config[CONFIG_WORDS]; /* master writes under hdr.config_seq; workers copy */
    _Atomic int32_t master_state;          /* master writes; workers read between steps */
    padded_slot_t slots[];                 /* hdr.n_slots of them */
};

/* Cross-process atomics must not fall back on locks. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "int atomics must be lock-free");
_Static_assert(ATOMIC_LONG_LOCK_FREE == 2, "long atomics must be lock-free");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "long long atomics must be lock-free");
_Static_assert(sizeof(_Atomic uint64_t) == sizeof(uint64_t), "no hidden lock inside atomics");
_Static_assert(sizeof(_Atomic int32_t) == sizeof(int32_t), "no hidden lock inside atomics");
/* Layout. */
_Static_assert(offsetof(struct sk_shm, hdr) == 0, "header first");
_Static_assert(offsetof(shm_header_t, magic) == 0, "magic first");
_Static_assert(sizeof(config_words_t) == CONFIG_WORDS * sizeof(uint64_t), "config as words");
_Static_assert(offsetof(struct sk_shm, config) % _Alignof(uint64_t) == 0, "config aligned");
_Static_assert(offsetof(struct sk_shm, slots) % SLOT_ALIGN == 0, "slots on cache lines");
_Static_assert(sizeof(padded_slot_t) % SLOT_ALIGN == 0, "slot stride is whole cache lines");
_Static_assert(sizeof(((sk_inflight_t *)0)->run_id) >= 37, "a UUID fits in run_id");
_Static_assert(sizeof(((sk_inflight_t *)0)->op_key) == 41, "an op key fits");
_Static_assert(offsetof(padded_slot_t, d) % SLOT_ALIGN == 0, "death record on its own line");
_Static_assert(SK_MASTER_EXIT <= INT32_MAX && SK_WORKER_EXITED <= INT32_MAX, "states fit int32");
_Static_assert((uint64_t)SK_MAX_WORKERS * sizeof(padded_slot_t) < 64u * 1024 * 1024,
               "the largest region stays small");

#define SHM_CHECK(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            shm_fail(#cond, __LINE__);                                                             \
    } while (0)

static _Noreturn void shm_fail(const char *what, int line)
{
    sk_log_error("event=shm_invariant_failed check=\"%s\" file=sk_shm.c line=%d", what, line);
    abort();
}

static void check_region(const sk_shm_t *shm)
{
    SHM_CHECK(shm != NULL);
    SHM_CHECK(shm->hdr.magic == SK_SHM_MAGIC);
    SHM_CHECK(shm->hdr.layout_version == SK_SHM_LAYOUT_VERSION);
}

int64_t sk_shm_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t sk_shm_size(int workers)
{
    size_t slots, total;

    if (workers < 1 || workers > SK_MAX_WORKERS)
        return 0;
    if (__builtin_mul_overflow((size_t)workers, sizeof(padded_slot_t), &slots))
        return 0;
    if (__builtin_add_overflow(offsetof(struct sk_shm, slots), slots, &total))
        return 0;
    return total;
}

sk_shm_t *sk_shm_create(const sk_config_t *cfg)
{
    size_t size = sk_shm_size(cfg->workers);
    sk_shm_t *shm;
    void *p;

    if (size == 0) {
        errno = EINVAL;
        return NULL;
    }
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    shm = p; /* zero-filled by the kernel */
    shm->hdr.magic = SK_SHM_MAGIC;
    shm->hdr.layout_version = SK_SHM_LAYOUT_VERSION;
    shm->hdr.n_slots = (uint32_t)cfg->workers;
    shm->hdr.size = size;
    shm->hdr.master_pid = getpid();
    shm->hdr.birth_time = (int64_t)time(NULL);
    atomic_init(&shm->hdr.config_seq, 0);
    for (size_t i = 0; i < CONFIG_WORDS; i++)
        atomic_init(&shm->config[i], 0);
    atomic_init(&shm->master_state, SK_MASTER_INIT);
    for (int i = 0; i < cfg->workers; i++) {
        sk_worker_slot_t *s = &shm->slots[i].s;
        atomic_init(&s->pid, 0);
        atomic_init(&s->state, SK_WORKER_EMPTY);
        atomic_init(&s->heartbeat_ms, 0);
        atomic_init(&s->steps_done, 0);
        atomic_init(&s->runs_done, 0);
        atomic_init(&s->ready, 0);
        atomic_init(&s->deadline_ms, 0);
        atomic_init(&s->run_seq, 0);
        memset(&s->held, 0, sizeof(s->held));
        atomic_init(&shm->slots[i].d.seq, 0);
        atomic_init(&shm->slots[i].d.pid, 0);
        atomic_init(&shm->slots[i].d.cause, SK_DEATH_NONE);
        atomic_init(&shm->slots[i].d.code, 0);
        atomic_init(&shm->slots[i].d.signo, 0);
        atomic_init(&shm->slots[i].d.at_ms, 0);
    }
    sk_shm_publish_config(shm, cfg);
    return shm;
}

void sk_shm_destroy(sk_shm_t *shm)
{
    if (shm == NULL)
        return;
    check_region(shm);
    munmap(shm, shm->hdr.size);
}

/* ---- configuration under the seqlock ------------------------------------------ */

void sk_shm_publish_config(sk_shm_t *shm, const sk_config_t *cfg)
{
    config_words_t in;
    uint64_t seq;

    check_region(shm);
    SHM_CHECK(shm->hdr.master_pid == getpid()); /* one writer: the master */
    memset(&in, 0, sizeof(in));
    in.cfg = *cfg;

    seq = atomic_load_explicit(&shm->hdr.config_seq, memory_order_relaxed);
    SHM_CHECK((seq & 1) == 0);
    atomic_store_explicit(&shm->hdr.config_seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release); /* odd is visible before any word */
    for (size_t i = 0; i < CONFIG_WORDS; i++)
        atomic_store_explicit(&shm->config[i], in.w[i], memory_order_relaxed);
    atomic_store_explicit(&shm->hdr.config_seq, seq + 2, memory_order_release);
}

void sk_shm_read_config(const sk_shm_t *shm, sk_config_t *out)
{
    const sk_shm_t *m = shm;
    config_words_t copy;
    uint64_t before, after;
    unsigned spins = 0;

    check_region(shm);
    for (;;) {
        before = atomic_load_explicit(&m->hdr.config_seq, memory_order_acquire);
        if ((before & 1) == 0) {
            for (size_t i = 0; i < CONFIG_WORDS; i++)
                copy.w[i] = atomic_load_explicit(&m->config[i], memory_order_relaxed);
            atomic_thread_fence(memory_order_acquire); /* words read before the re-check */
            after = atomic_load_explicit(&m->hdr.config_seq, memory_order_relaxed);
            if (after == before)
                break;
        }
        /* The writer is mid-publication (it may be descheduled): let it run. */
        if (++spins % 64 == 0)
            sched_yield();
    }
    *out = copy.cfg;
}

uint64_t sk_shm_config_seq(const sk_shm_t *shm)
{
    const sk_shm_t *m = shm;

    check_region(shm);
    return atomic_load_explicit(&m->hdr.config_seq, memory_order_acquire);
}

/* ---- master state -------------------------------------------------------------- */

void sk_shm_set_master_state(sk_shm_t *shm, sk_master_state_t st)
{
    check_region(shm);
    SHM_CHECK(st >= SK_MASTER_INIT && st <= SK_MASTER_EXIT);
    SHM_CHECK(shm->hdr.master_pid == getpid());
    atomic_store_explicit(&shm->master_state, (int32_t)st, memory_order_release);
}

sk_master_state_t sk_shm_master_state(const sk_shm_t *shm)
{
    const sk_shm_t *m = shm;
    int32_t st;

    check_region(shm);
    st = atomic_load_explicit(&m->master_state, memory_order_acquire);
    SHM_CHECK(st >= SK_MASTER_INIT && st <= SK_MASTER_EXIT);
    return (sk_master_state_t)st;
}

pid_t sk_shm_master_pid(const sk_shm_t *shm)
{
    check_region(shm);
    return (pid_t)shm->hdr.master_pid;
}

/* ---- slots ----------------------------------------------------------------------- */

int sk_shm_slots(const sk_shm_t *shm)
{
    check_region(shm);
    return (int)shm->hdr.n_slots;
}

sk_worker_slot_t *sk_shm_slot(sk_shm_t *shm, int i)
{
    check_region(shm);
    SHM_CHECK(i >= 0 && (uint32_t)i < shm->hdr.n_slots);
    return &shm->slots[i].s;
}

sk_death_t *sk_shm_death(sk_shm_t *shm, int i)
{
    check_region(shm);
    SHM_CHECK(i >= 0 && (uint32_t)i < shm->hdr.n_slots);
    return &shm->slots[i].d;
}

/* Seqlock writer: one writer (the slot's worker), readers copy and retry.
 * src NULL: zeros. */
static void seq_store(_Atomic uint32_t *seqp, void *dst, const void *src, size_t n)
{
    const char *in = src;
    char *to = dst;
    uint32_t seq = atomic_load_explicit(seqp, memory_order_relaxed);

    SHM_CHECK((seq & 1) == 0);
    atomic_store_explicit(seqp, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (size_t i = 0; i < n; i++)
        __atomic_store_n(&to[i], in != NULL ? in[i] : 0, __ATOMIC_RELAXED);
    atomic_store_explicit(seqp, seq + 2, memory_order_release);
}

/* Seqlock reader: SK_OK with a consistent copy, or SK_AGAIN (`dst` zeroed)
 * when none came within HELD_TRIES (a writer stopped or killed mid-write). */
static int seq_load(const _Atomic uint32_t *seqp, void *dst, const void *src, size_t n)
{
    const char *from = src;
    char *to = dst;
    uint32_t before, after;

    for (unsigned tries = 1; tries <= HELD_TRIES; tries++) {
        before = atomic_load_explicit(seqp, memory_order_acquire);
        if ((before & 1) == 0) {
            for (size_t i = 0; i < n; i++)
                to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
            atomic_thread_fence(memory_order_acquire);
            after = atomic_load_explicit(seqp, memory_order_relaxed);
            if (after == before)
                return SK_OK;
        }
        /* The writer is mid-write (it may be descheduled): let it run. */
        if (tries % 64 == 0)
            sched_yield();
    }
    memset(dst, 0, n);
    return SK_AGAIN;
}

void sk_shm_slot_set_held(sk_worker_slot_t *slot, const sk_inflight_t *held)
{
    seq_store(&slot->run_seq, &slot->held, held, sizeof(slot->held));
}

int sk_shm_slot_held(const sk_worker_slot_t *slot, sk_inflight_t *out)
{
    if (seq_load(&slot->run_seq, out, &slot->held, sizeof(*out)) != SK_OK)
        return SK_AGAIN;
    out->run_id[sizeof(out->run_id) - 1] = '\0';
    out->op_key[sizeof(out->op_key) - 1] = '\0';
    out->step_id[sizeof(out->step_id) - 1] = '\0';
    return SK_OK;
}

void sk_shm_slot_set_batch(sk_worker_slot_t *slot, const sk_held_batch_t *batch)
{
    int n = batch == NULL ? 0 : batch->n < 0 ? 0 : batch->n;

    /* Only the entries in use: a reader goes by n (rewritten per claim and
     * per run end, so not the whole 1 kB each time). */
    if (n > SK_SHM_BATCH_MAX)
        n = SK_SHM_BATCH_MAX;
    seq_store(&slot->batch_seq, &slot->batch, batch,
              offsetof(sk_held_batch_t, items) + (size_t)n * sizeof(slot->batch.items[0]));
}

int sk_shm_slot_batch(const sk_worker_slot_t *slot, sk_held_batch_t *out)
{
    if (seq_load(&slot->batch_seq, out, &slot->batch, sizeof(*out)) != SK_OK)
        return SK_AGAIN;
    if (out->n < 0 || out->n > SK_SHM_BATCH_MAX)
        out->n = 0; /* not what a worker writes: list nothing */
    return SK_OK;
}

void sk_shm_slot_set_run(sk_worker_slot_t *slot, const char *run_id)
{
    sk_inflight_t h;

    memset(&h, 0, sizeof(h));
    if (run_id != NULL) {
        h.pid = (int32_t)getpid();
        /* longer ids are cut: display only */
        snprintf(h.run_id, sizeof(h.run_id), "%.*s", (int)sizeof(h.run_id) - 1, run_id);
    }
    sk_shm_slot_set_held(slot, &h);
}

int sk_shm_slot_run(const sk_worker_slot_t *slot, char *out, size_t outlen)
{
    sk_inflight_t h;
    int rc;

    if (outlen == 0)
        return SK_ERROR;
    rc = sk_shm_slot_held(slot, &h);
    snprintf(out, outlen, "%s", rc == SK_OK ? h.run_id : "unknown");
    return rc;
}

/* A sequence counter left odd by a worker killed mid-write: the copy is
 * torn (its leases expire by themselves); zero it and make the count even.
 * 1 when it was torn. */
static int seq_mend(_Atomic uint32_t *seqp, void *dst, size_t n)
{
    uint32_t seq = atomic_load_explicit(seqp, memory_order_relaxed);

    if ((seq & 1) == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        __atomic_store_n(&((char *)dst)[i], 0, __ATOMIC_RELAXED);
    atomic_store_explicit(seqp, seq + 1, memory_order_release);
    return 1;
}

int sk_shm_slot_claim(sk_worker_slot_t *slot, pid_t pid)
{
    int torn = seq_mend(&slot->run_seq, &slot->held, sizeof(slot->held));

    torn |= seq_mend(&slot->batch_seq, &slot->batch, sizeof(slot->batch));
    atomic_store_explicit(&slot->ready, 0, memory_order_relaxed);
    atomic_store_explicit(&slot->deadline_ms, 0, memory_order_relaxed);
    atomic_store_explicit(&slot->heartbeat_ms, sk_shm_now_ms(), memory_order_relaxed);
    atomic_store_explicit(&slot->state, SK_WORKER_CONNECTING, memory_order_relaxed);
    /* pid last: a reader that sees our pid sees the rest of the claim too */
    atomic_store_explicit(&slot->pid, (int32_t)pid, memory_order_release);
    return torn;
}
