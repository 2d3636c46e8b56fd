/*
 * The chaos harness (tests/chaos/): what its workflow library
 * (chaoswf.c -> chaoswf.so) and its driver (chaos.c -> stepkit-chaos)
 * agree on.
 *
 * Every step body appends one line of exactly CHAOS_LINE_LEN bytes,
 *   "<run_id> <step id> <attempt> <pid> <unix ms>\n"
 * (fixed-width fields, see CHAOS_LINE_FMT), to the file named by
 * $CHAOS_EFFECTS, with one write(2) on an O_APPEND descriptor, *before* it
 * does anything else: the engine never sees this file, so it counts body
 * executions independently of the engine's own records, including those
 * of bodies whose worker died before their result was committed.
 *
 * Every output is an integer computed from input.data.n by the functions
 * below, through the results of the run's steps: an output the engine
 * mixed up, lost or recorded twice differently shows as a wrong number.
 */
#ifndef CHAOS_H
#define CHAOS_H

#define CHAOS_LINE_FMT "%-36s %-6s %3d %7d %13lld\n"
#define CHAOS_LINE_LEN (36 + 1 + 6 + 1 + 3 + 1 + 7 + 1 + 13 + 1)

/* Poison workflows get this many attempts (a crash or a timeout each). */
#define CHAOS_POISON_ATTEMPTS 2

/* chaos-seq: a(n) = 3n + 1; sleep; b(a) = 7a + 2; output b. */
static inline long long chaos_seq_a(long long n)
{
    return n * 3 + 1;
}
static inline long long chaos_seq_b(long long a)
{
    return a * 7 + 2;
}

/* chaos-group: pre(n) = n + 5; {g1(pre) = 2 pre, g2(pre) = 3 pre, sleep,
 * branch q1(n) = n + 1 then q2(q1) = 5 q1}; output g1 + 10 g2 + 100 q2. */
static inline long long chaos_group_out(long long n)
{
    long long pre = n + 5, q1 = n + 1;

    return pre * 2 + 10 * (pre * 3) + 100 * (q1 * 5);
}

/* chaos-parent: a(n) = n + 11; child chaos-child {n: a}; b = 2 child + 1.
 * chaos-child: sleep; c(n) = 13 n; output c. */
static inline long long chaos_child_out(long long n)
{
    return n * 13;
}
static inline long long chaos_parent_out(long long n)
{
    return chaos_child_out(n + 11) * 2 + 1;
}

/* chaos-signal: {wait "chaos-sig-<run id>"; branch: sleep, send it with
 * {v: 17 n}}; output 2 v + (1 when the send reached this run, else 0). */
static inline long long chaos_signal_v(long long n)
{
    return n * 17;
}
static inline long long chaos_signal_out(long long n)
{
    return chaos_signal_v(n) * 2 + 1;
}

/* chaos-ext: wait "chaos-ext-<n>", which the driver sends with {v: 19 n};
 * c(v) = v + 3; output c. */
static inline long long chaos_ext_v(long long n)
{
    return n * 19;
}
static inline long long chaos_ext_out(long long n)
{
    return chaos_ext_v(n) + 3;
}

#endif
