/*
 * sertk_base.c -- the machinery under the core: large allocations, a pthread parallel-for, the BLAS calls (through
 * the caller's function pointers, so the core links no BLAS of its own), and status messages.
 */
#include "sertk_internal.h"

#include <pthread.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <string.h>

/* a large buffer (the Gram matrix), 2 MiB-aligned and marked for transparent huge pages where Linux has them */
void *sertk_big_alloc(size_t bytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const size_t huge = (size_t)2 << 20;
    if (bytes >= huge) {
        void *p = NULL;
        if (posix_memalign(&p, huge, (bytes + huge - 1) / huge * huge) != 0) return NULL;
        madvise(p, (bytes + huge - 1) / huge * huge, MADV_HUGEPAGE); /* a hint; failure is harmless */
        return p;
    }
#endif
    return sertk_alloc(bytes, 1);
}


/* ---- parallel for: tasks 0..ntasks-1 handed out in order to n_threads workers ---- */


typedef struct {
    sertk_task_fn fn;
    void *ctx;
    int ntasks;
    int next;
    int status;
    pthread_mutex_t mu;
} sertk_pfor;

typedef struct {
    sertk_pfor *st;
    int worker;
} sertk_pfor_arg;

static void *sertk_pfor_run(void *arg)
{
    sertk_pfor_arg *a = (sertk_pfor_arg *)arg;
    sertk_pfor *st = a->st;
    for (;;) {
        int task, stop;
        pthread_mutex_lock(&st->mu);
        stop = st->status != SERTK_OK;
        task = st->next++;
        pthread_mutex_unlock(&st->mu);
        if (stop || task >= st->ntasks) break;
        int rc = st->fn(st->ctx, task, a->worker);
        if (rc != SERTK_OK) {
            pthread_mutex_lock(&st->mu);
            if (st->status == SERTK_OK) st->status = rc;
            pthread_mutex_unlock(&st->mu);
            break;
        }
    }
    return NULL;
}

/* Runs fn over all tasks.  If fewer threads can be started than asked, the started ones do all the work. */
int sertk_parallel_for(int n_threads, int ntasks, sertk_task_fn fn, void *ctx)
{
    if (ntasks <= 0) return SERTK_OK;
    if (n_threads > ntasks) n_threads = ntasks;
    if (n_threads <= 1) {
        for (int t = 0; t < ntasks; t++) {
            int rc = fn(ctx, t, 0);
            if (rc != SERTK_OK) return rc;
        }
        return SERTK_OK;
    }
    sertk_pfor st;
    st.fn = fn;
    st.ctx = ctx;
    st.ntasks = ntasks;
    st.next = 0;
    st.status = SERTK_OK;
    if (pthread_mutex_init(&st.mu, NULL) != 0) return SERTK_ETHREAD;
    pthread_t *th = SERTK_NEW(pthread_t, n_threads);
    sertk_pfor_arg *args = SERTK_NEW(sertk_pfor_arg, n_threads);
    if (!th || !args) {
        free(th);
        free(args);
        pthread_mutex_destroy(&st.mu);
        return SERTK_ENOMEM;
    }
    int started = 0;
    for (int w = 1; w < n_threads; w++) {
        args[w].st = &st;
        args[w].worker = w;
        if (pthread_create(&th[w], NULL, sertk_pfor_run, &args[w]) != 0) break;
        started = w;
    }
    args[0].st = &st;
    args[0].worker = 0;
    sertk_pfor_run(&args[0]);
    for (int w = 1; w <= started; w++) pthread_join(th[w], NULL);
    pthread_mutex_destroy(&st.mu);
    free(th);
    free(args);
    return st.status;
}

/* ---- BLAS ---- */

/* C (mr x nc, row stride ldc) = A (mr x k, row-major, stride lda) * B (nc x k, row-major, stride ldb)^T */
void sertk_gemm_abt(const sertk_blas *blas, int mr, int nc, int k, const double *A, int lda,
                           const double *B, int ldb, double *C, int ldc)
{
    if (mr <= 0 || nc <= 0) return;
    char ta = 'T', tb = 'N';
    double one = 1.0, zero = 0.0;
    blas->dgemm(&ta, &tb, &nc, &mr, &k, &one, (double *)B, &ldb, (double *)A, &lda, &zero, C, &ldc);
}

/* C (mr x nc, row-major) = A (mr x k, row-major) * B (k x nc, row-major) */
void sertk_gemm_ab(const sertk_blas *blas, int mr, int nc, int k, const double *A, const double *B,
                          double *C)
{
    if (mr <= 0 || nc <= 0) return;
    char t = 'N';
    double one = 1.0, zero = 0.0;
    blas->dgemm(&t, &t, &nc, &mr, &k, &one, (double *)B, &nc, (double *)A, &k, &zero, C, &nc);
}

double sertk_dot(const sertk_blas *blas, int d, const double *x, const double *y)
{
    int inc = 1;
    return blas->ddot(&d, (double *)x, &inc, (double *)y, &inc);
}

void sertk_nusvm_progress_read(const sertk_nusvm_progress *p, sertk_nusvm_progress *out)
{
    out->subproblems_total = __atomic_load_n(&p->subproblems_total, __ATOMIC_RELAXED);
    out->subproblems_done = __atomic_load_n(&p->subproblems_done, __ATOMIC_RELAXED);
    out->kernel_values = __atomic_load_n(&p->kernel_values, __ATOMIC_RELAXED);
    out->iterations = __atomic_load_n(&p->iterations, __ATOMIC_RELAXED);
}

int sertk_nusvm_pair_done(const sertk_nusvm_pairs *r, int p) { return __atomic_load_n(&r->done[p], __ATOMIC_ACQUIRE); }

const char *sertk_nusvm_strerror(int status)
{
    switch (status) {
    case SERTK_OK:
        return "success";
    case SERTK_ENOMEM:
        return "out of memory";
    case SERTK_EINVAL:
        return "invalid argument";
    case SERTK_EINFEASIBLE:
        return "nu is infeasible for the class sizes";
    case SERTK_ETHREAD:
        return "could not start a thread";
    case SERTK_ECANCELLED:
        return "cancelled";
    case SERTK_EBUDGET:
        return "the kernel memory budget is too small for this training set";
    default:
        return "unknown status";
    }
}

int sertk_simd(void)
{
    static int level = -1; /* benign race: every thread computes the same */
    if (level < 0) {
        int v = 0;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        const char *force = getenv("SERTK_NUSVM_SCALAR");
        if (!(force && force[0] == '1') && __builtin_cpu_supports("avx2")) {
            v |= SERTK_SIMD_AVX2;
            if (__builtin_cpu_supports("fma")) v |= SERTK_SIMD_AVX2_FMA;
        }
#endif
        level = v;
    }
    return level;
}
