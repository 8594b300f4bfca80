/*
 * sertk_team.c -- a persistent team of threads for the loops inside one solver iteration.
 *
 * An SMO iteration is tens of microseconds, far less than starting a thread, so the parallel-for of
 * sertk_base.c cannot serve it.  A team is started once per worker; the caller is part 0 and each job splits one
 * loop into contiguous parts.  Helpers spin for a short while after a job (the next one usually follows within
 * microseconds), then sleep on a condition variable, so a team costs no CPU while the solver does serial work or
 * BLAS builds the next pair's kernel matrix.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getaffinity */
#endif
#include "sertk_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SERTK_RELAX() _mm_pause()
#else
#define SERTK_RELAX() ((void)0)
#endif

/* spins before a helper sleeps: a few tens of microseconds on current x86 cores */
#define SERTK_TEAM_SPINS 20000
/*
 * A spinning thread gives its core away this often, so that with more threads than free cores (n_jobs above the
 * core count, other processes) the part that is not running gets scheduled instead of waiting out time slices.
 */
#define SERTK_TEAM_YIELD_EVERY 128

static inline void sertk_spin(int spins)
{
    if (spins % SERTK_TEAM_YIELD_EVERY == SERTK_TEAM_YIELD_EVERY - 1)
        sched_yield();
    else
        SERTK_RELAX();
}

struct sertk_team {
    int nparts;
    int started; /* helpers running */
    pthread_t *th;
    sertk_part_fn fn;
    void *ctx;
    int stop;
    atomic_uint gen;    /* job generation: a new value publishes fn, ctx and stop */
    atomic_int pending; /* helpers still in the current job */
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

typedef struct {
    sertk_team *t;
    int part;
} sertk_team_arg;

static void *sertk_team_helper(void *arg)
{
    sertk_team_arg *a = (sertk_team_arg *)arg;
    sertk_team *t = a->t;
    const int part = a->part;
    free(a);
    unsigned seen = 0;
    for (;;) {
        unsigned g = atomic_load_explicit(&t->gen, memory_order_acquire);
        for (int spins = 0; g == seen && spins < SERTK_TEAM_SPINS; spins++) {
            sertk_spin(spins);
            g = atomic_load_explicit(&t->gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&t->mu);
            while ((g = atomic_load_explicit(&t->gen, memory_order_acquire)) == seen)
                pthread_cond_wait(&t->cv, &t->mu);
            pthread_mutex_unlock(&t->mu);
        }
        seen = g;
        if (t->stop) break;
        t->fn(t->ctx, part, t->nparts);
        atomic_fetch_sub_explicit(&t->pending, 1, memory_order_release);
    }
    return NULL;
}

static void sertk_team_publish(sertk_team *t)
{
    atomic_store_explicit(&t->pending, t->started, memory_order_relaxed);
    /* under the mutex, so that a helper between its last check and its wait cannot miss the new job */
    pthread_mutex_lock(&t->mu);
    atomic_fetch_add_explicit(&t->gen, 1, memory_order_release);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* the CPUs this process may run on: spinning parts beyond them would only wait for each other */
static int sertk_usable_cpus(void)
{
#if defined(__linux__) && defined(CPU_COUNT)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
#endif
    return 1 << 30;
}

sertk_team *sertk_team_start(int nparts)
{
    const int cpus = sertk_usable_cpus();
    if (nparts > cpus) nparts = cpus;
    if (nparts < 2) return NULL;
    sertk_team *t = SERTK_NEW(sertk_team, 1);
    if (!t) return NULL;
    t->nparts = nparts;
    t->started = 0;
    t->fn = NULL;
    t->ctx = NULL;
    t->stop = 0;
    atomic_init(&t->gen, 0);
    atomic_init(&t->pending, 0);
    t->th = SERTK_NEW(pthread_t, nparts);
    if (!t->th || pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t->th);
        free(t);
        return NULL;
    }
    if (pthread_cond_init(&t->cv, NULL) != 0) {
        pthread_mutex_destroy(&t->mu);
        free(t->th);
        free(t);
        return NULL;
    }
    for (int p = 1; p < nparts; p++) {
        sertk_team_arg *a = SERTK_NEW(sertk_team_arg, 1);
        if (!a) break;
        a->t = t;
        a->part = p;
        if (pthread_create(&t->th[p], NULL, sertk_team_helper, a) != 0) {
            free(a);
            break;
        }
        t->started = p;
    }
    if (t->started == 0) {
        sertk_team_stop(t);
        return NULL;
    }
    /* helpers that could not start leave their parts to no one: the team is only as large as what runs */
    t->nparts = t->started + 1;
    return t;
}

int sertk_team_size(const sertk_team *t) { return t ? t->nparts : 1; }

void sertk_team_run(sertk_team *t, sertk_part_fn fn, void *ctx)
{
    if (!t) {
        fn(ctx, 0, 1);
        return;
    }
    t->fn = fn;
    t->ctx = ctx;
    sertk_team_publish(t);
    fn(ctx, 0, t->nparts);
    for (int spins = 0; atomic_load_explicit(&t->pending, memory_order_acquire) > 0; spins++) sertk_spin(spins);
}

void sertk_team_stop(sertk_team *t)
{
    if (!t) return;
    t->stop = 1;
    sertk_team_publish(t);
    for (int p = 1; p <= t->started; p++) pthread_join(t->th[p], NULL);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t->th);
    free(t);
}
