/*
 * sertk_nusvm.c -- nu-SVC training and prediction; see sertk_nusvm.h for the contract.
 *
 * Layout of this file
 *   1. helpers: allocation, a pthread parallel-for, BLAS wrappers
 *   2. kernel values: the float32 Gram matrix, or an LRU cache of kernel rows filled in BLAS blocks
 *   3. the SMO solver for the nu formulation (libsvm's Solver + Solver_NU semantics)
 *   4. binary nu-SVC, 5-fold probability cross-validation, Platt sigmoid, pairwise coupling
 *   5. one-vs-one training and model assembly (libsvm's layout)
 *   6. prediction: decision values through one test x support-vector BLAS product, voting, probabilities
 *
 * Exactness.  To follow libsvm's iteration path bit for bit on the same kernel values, the solver performs the
 * same floating-point operations in the same order as libsvm: kernel values are float32 (libsvm's Qfloat)
 * rounded from a float64 value, the diagonal is float64, and every sum accumulates in libsvm's index order.
 * The row Q_i of libsvm equals y_i y_k K_ik; because sign flips are exact in IEEE arithmetic, the solver keeps
 * only K and applies the signs, which gives identical results.  Floating-point contraction (FMA) is switched off
 * below, since fusing a*b+c changes rounding.
 */
#include "sertk_nusvm.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define SERTK_INF HUGE_VAL
#define SERTK_TAU 1e-12
#define SERTK_NFOLD 5

typedef signed char schar;

/* ============================================================================================================
 * 1. helpers
 * ============================================================================================================ */

static void *sertk_alloc(size_t count, size_t size)
{
    if (count == 0) count = 1;
    if (size != 0 && count > ((size_t)-1) / size) return NULL;
    return malloc(count * size);
}
#define SERTK_NEW(type, count) ((type *)sertk_alloc((size_t)(count), sizeof(type)))

/* a large buffer (the Gram matrix), 2 MiB-aligned and marked for transparent huge pages where Linux has them */
static void *sertk_big_alloc(size_t bytes)
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

/* the caller's cancellation flag (params.cancel): one volatile read, never written by the core */
static inline int sertk_cancelled(const volatile int *flag) { return flag != NULL && *flag != 0; }

static inline double sertk_min(double a, double b) { return a < b ? a : b; }  /* libsvm's min: (x<y)?x:y */
static inline double sertk_max(double a, double b) { return a > b ? a : b; }  /* libsvm's max: (x>y)?x:y */

/* ---- parallel for: tasks 0..ntasks-1 handed out in order to n_threads workers ---- */

typedef int (*sertk_task_fn)(void *ctx, int task, int worker);

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
static int sertk_parallel_for(int n_threads, int ntasks, sertk_task_fn fn, void *ctx)
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
static void sertk_gemm_abt(const sertk_blas *blas, int mr, int nc, int k, const double *A, int lda,
                           const double *B, int ldb, double *C, int ldc)
{
    if (mr <= 0 || nc <= 0) return;
    char ta = 'T', tb = 'N';
    double one = 1.0, zero = 0.0;
    blas->dgemm(&ta, &tb, &nc, &mr, &k, &one, (double *)B, &ldb, (double *)A, &lda, &zero, C, &ldc);
}

/* C (mr x nc, row-major) = A (mr x k, row-major) * B (k x nc, row-major) */
static void sertk_gemm_ab(const sertk_blas *blas, int mr, int nc, int k, const double *A, const double *B,
                          double *C)
{
    if (mr <= 0 || nc <= 0) return;
    char t = 'N';
    double one = 1.0, zero = 0.0;
    blas->dgemm(&t, &t, &nc, &mr, &k, &one, (double *)B, &nc, (double *)A, &k, &zero, C, &nc);
}

static double sertk_dot(const sertk_blas *blas, int d, const double *x, const double *y)
{
    int inc = 1;
    return blas->ddot(&d, (double *)x, &inc, (double *)y, &inc);
}

/* ============================================================================================================
 * 2. kernel values
 * ============================================================================================================ */

typedef struct {
    int kernel;
    double gamma;
    int n, d;
    const double *X;    /* the caller's training rows, n x d (RBF, linear) */
    const double *K;    /* precomputed: the caller's n x n kernel */
    double *sq;         /* squared norms <x, x> (BLAS ddot, as libsvm) */
    double *qd;         /* K(x, x), float64 */
    float *gram;        /* n x n float32 Gram matrix in the caller's row order, or NULL in cache mode */
    const sertk_blas *blas;
    const volatile int *cancel; /* params.cancel */
} sertk_kctx;

/* libsvm's kernel value from a dot product: exp(-gamma*(|x|^2+|z|^2-2<x,z>)) for RBF, <x,z> for linear */
static inline double sertk_kval(const sertk_kctx *k, double dot, double sqi, double sqj)
{
    if (k->kernel == SERTK_KERNEL_RBF) return exp(-k->gamma * (sqi + sqj - 2 * dot));
    return dot;
}

typedef struct {
    sertk_kctx *k;
    int block;
    double *bufs; /* per worker: block x n */
} sertk_gram_job;

static int sertk_gram_rows_task(void *ctx, int task, int worker)
{
    sertk_gram_job *job = (sertk_gram_job *)ctx;
    sertk_kctx *k = job->k;
    const int n = k->n, d = k->d;
    const int r0 = task * job->block;
    const int mr = (n - r0 < job->block) ? n - r0 : job->block;
    if (sertk_cancelled(k->cancel)) return SERTK_ECANCELLED;
    if (k->kernel == SERTK_KERNEL_PRECOMPUTED) {
        for (int i = r0; i < r0 + mr; i++) {
            const double *src = k->K + (size_t)i * n;
            float *dst = k->gram + (size_t)i * n;
            for (int j = 0; j < n; j++) dst[j] = (float)src[j];
        }
        return SERTK_OK;
    }
    /* upper triangle of rows r0..r0+mr-1: columns r0..n-1 */
    const int nc = n - r0;
    double *buf = job->bufs + (size_t)worker * job->block * n;
    sertk_gemm_abt(k->blas, mr, nc, d, k->X + (size_t)r0 * d, d, k->X + (size_t)r0 * d, d, buf, nc);
    for (int r = 0; r < mr; r++) {
        const int i = r0 + r;
        float *gi = k->gram + (size_t)i * n;
        const double *bi = buf + (size_t)r * nc;
        const double sqi = k->sq[i];
        gi[i] = (float)k->qd[i];
        for (int j = i + 1; j < n; j++) gi[j] = (float)sertk_kval(k, bi[j - r0], sqi, k->sq[j]);
    }
    return SERTK_OK;
}

#define SERTK_TILE 64

/* lower triangle := transpose of the upper triangle, one band of SERTK_TILE rows per task */
static int sertk_gram_mirror_task(void *ctx, int task, int worker)
{
    (void)worker;
    sertk_kctx *k = (sertk_kctx *)ctx;
    const int n = k->n;
    const int i0 = task * SERTK_TILE;
    const int i1 = (i0 + SERTK_TILE < n) ? i0 + SERTK_TILE : n;
    float *g = k->gram;
    if (sertk_cancelled(k->cancel)) return SERTK_ECANCELLED;
    for (int j0 = 0; j0 < i1; j0 += SERTK_TILE) {
        const int j1 = (j0 + SERTK_TILE < n) ? j0 + SERTK_TILE : n;
        for (int i = i0; i < i1; i++) {
            const int jend = (j1 < i) ? j1 : i;
            float *gi = g + (size_t)i * n;
            for (int j = j0; j < jend; j++) gi[j] = g[(size_t)j * n + i];
        }
    }
    return SERTK_OK;
}

static int sertk_gram_compute(sertk_kctx *k, int n_threads)
{
    const int n = k->n;
    sertk_gram_job job;
    job.k = k;
    job.block = 256;
    job.bufs = NULL;
    const int ntasks = (n + job.block - 1) / job.block;
    const int nw = n_threads < 1 ? 1 : (n_threads < ntasks ? n_threads : ntasks);
    if (k->kernel != SERTK_KERNEL_PRECOMPUTED) {
        job.bufs = SERTK_NEW(double, (size_t)nw * job.block * n);
        if (!job.bufs) return SERTK_ENOMEM;
    }
    int rc = sertk_parallel_for(nw, ntasks, sertk_gram_rows_task, &job);
    free(job.bufs);
    if (rc != SERTK_OK) return rc;
    if (k->kernel != SERTK_KERNEL_PRECOMPUTED)
        rc = sertk_parallel_for(n_threads, (n + SERTK_TILE - 1) / SERTK_TILE, sertk_gram_mirror_task, k);
    return rc;
}

/* ---- LRU cache of kernel rows for one sub-problem, filled in BLAS blocks ---- */

typedef struct {
    int cap;        /* row slots */
    int maxl;       /* slot length */
    int block;      /* rows computed per BLAS call */
    int l;          /* current sub-problem size */
    const int *gidx;/* current sub-problem: position -> grouped index */
    int nfill;
    int cursor;     /* where the prefetch scan resumes */
    float *arena;   /* cap x maxl */
    int *slot_of;   /* [maxl] sub index -> slot or -1 */
    int *orig_of;   /* [cap] slot -> sub index */
    int *prev, *next; /* [cap + 1] LRU ring, sentinel cap: next[cap] oldest, prev[cap] newest */
    double *xsub;   /* maxl x d rows of the sub-problem (RBF, linear) */
    double *sqsub;  /* maxl */
    double *abuf;   /* block x d */
    double *obuf;   /* block x maxl */
    int *blk;       /* block */
} sertk_rcache;

static void sertk_rcache_free(sertk_rcache *c)
{
    free(c->arena);
    free(c->slot_of);
    free(c->orig_of);
    free(c->prev);
    free(c->next);
    free(c->xsub);
    free(c->sqsub);
    free(c->abuf);
    free(c->obuf);
    free(c->blk);
    memset(c, 0, sizeof(*c));
}

static int sertk_rcache_init(sertk_rcache *c, const sertk_kctx *k, int maxl, double budget)
{
    memset(c, 0, sizeof(*c));
    double rows = budget / ((double)maxl * sizeof(float));
    int cap = rows > (double)maxl ? maxl : (int)rows;
    if (cap < 4) cap = 4; /* like libsvm, at least a few rows whatever the budget */
    c->cap = cap;
    c->maxl = maxl;
    c->block = cap - 2 < 64 ? cap - 2 : 64;
    c->arena = SERTK_NEW(float, (size_t)cap * maxl);
    c->slot_of = SERTK_NEW(int, maxl);
    c->orig_of = SERTK_NEW(int, cap);
    c->prev = SERTK_NEW(int, cap + 1);
    c->next = SERTK_NEW(int, cap + 1);
    c->blk = SERTK_NEW(int, c->block);
    int ok = c->arena && c->slot_of && c->orig_of && c->prev && c->next && c->blk;
    if (k->kernel != SERTK_KERNEL_PRECOMPUTED) {
        c->xsub = SERTK_NEW(double, (size_t)maxl * k->d);
        c->sqsub = SERTK_NEW(double, maxl);
        c->abuf = SERTK_NEW(double, (size_t)c->block * k->d);
        c->obuf = SERTK_NEW(double, (size_t)c->block * maxl);
        ok = ok && c->xsub && c->sqsub && c->abuf && c->obuf;
    }
    if (!ok) {
        sertk_rcache_free(c);
        return SERTK_ENOMEM;
    }
    return SERTK_OK;
}

/* start a new sub-problem: forget every row, gather its training rows */
static void sertk_rcache_reset(sertk_rcache *c, const sertk_kctx *k, int l, const int *gidx)
{
    c->l = l;
    c->gidx = gidx;
    c->nfill = 0;
    c->cursor = 0;
    for (int i = 0; i < l; i++) c->slot_of[i] = -1;
    c->next[c->cap] = c->prev[c->cap] = c->cap;
    if (k->kernel != SERTK_KERNEL_PRECOMPUTED) {
        for (int i = 0; i < l; i++) {
            memcpy(c->xsub + (size_t)i * k->d, k->X + (size_t)gidx[i] * k->d, sizeof(double) * (size_t)k->d);
            c->sqsub[i] = k->sq[gidx[i]];
        }
    }
}

static inline void sertk_lru_unlink(sertk_rcache *c, int s)
{
    c->next[c->prev[s]] = c->next[s];
    c->prev[c->next[s]] = c->prev[s];
}

static inline void sertk_lru_push(sertk_rcache *c, int s) /* as newest */
{
    int head = c->cap;
    c->prev[s] = c->prev[head];
    c->next[s] = head;
    c->next[c->prev[head]] = s;
    c->prev[head] = s;
}

static int sertk_rcache_slot(sertk_rcache *c, int orig)
{
    int s;
    if (c->nfill < c->cap) {
        s = c->nfill++;
    } else {
        s = c->next[c->cap]; /* oldest */
        sertk_lru_unlink(c, s);
        c->slot_of[c->orig_of[s]] = -1;
    }
    c->orig_of[s] = orig;
    c->slot_of[orig] = s;
    sertk_lru_push(c, s);
    return s;
}

/* compute rows blk[0..nb) of the current sub-problem into the cache */
static void sertk_rcache_fill(sertk_rcache *c, const sertk_kctx *k, int nb)
{
    const int l = c->l;
    if (k->kernel == SERTK_KERNEL_PRECOMPUTED) {
        for (int r = 0; r < nb; r++) {
            int a = c->blk[r];
            float *row = c->arena + (size_t)sertk_rcache_slot(c, a) * c->maxl;
            const double *src = k->K + (size_t)c->gidx[a] * k->n;
            for (int b = 0; b < l; b++) row[b] = (float)src[c->gidx[b]];
        }
        return;
    }
    const int d = k->d;
    for (int r = 0; r < nb; r++)
        memcpy(c->abuf + (size_t)r * d, c->xsub + (size_t)c->blk[r] * d, sizeof(double) * (size_t)d);
    sertk_gemm_abt(k->blas, nb, l, d, c->abuf, d, c->xsub, d, c->obuf, l);
    for (int r = 0; r < nb; r++) {
        int a = c->blk[r];
        float *row = c->arena + (size_t)sertk_rcache_slot(c, a) * c->maxl;
        const double *o = c->obuf + (size_t)r * l;
        const double sqa = c->sqsub[a];
        for (int b = 0; b < l; b++) row[b] = (float)sertk_kval(k, o[b], sqa, c->sqsub[b]);
        row[a] = (float)k->qd[c->gidx[a]];
    }
}

/* ============================================================================================================
 * 3. the SMO solver, nu formulation
 * ============================================================================================================ */

enum { SERTK_LOWER = 0, SERTK_UPPER = 1, SERTK_FREE = 2 };

typedef struct sertk_solver {
    int l;
    int active_size;
    int unshrink;
    double eps;
    /* by position (positions are permuted by shrinking, exactly as libsvm's swap_index) */
    schar *y;
    char *st;
    double *alpha, *G, *Gbar, *C, *QD;
    int *aset; /* position -> sub-problem index */
    int *col;  /* position -> column of a kernel row */
    int *tmp;  /* scratch, l ints */
    /* the maximal violators of each class, found while updating G (valid until the active set changes) */
    int max_valid;
    int ip, in;
    double Gmaxp, Gmaxn;
    /* kernel rows */
    const sertk_kctx *k;
    const int *gidx;     /* sub-problem index -> grouped index */
    sertk_rcache *cache; /* NULL in Gram mode */
} sertk_solver;

static const float *sertk_rcache_get(sertk_rcache *c, const sertk_kctx *k, const sertk_solver *s, int orig)
{
    int slot = c->slot_of[orig];
    if (slot >= 0) {
        sertk_lru_unlink(c, slot);
        sertk_lru_push(c, slot);
        return c->arena + (size_t)slot * c->maxl;
    }
    /*
     * Miss: compute this row and, in the same BLAS call, more rows likely to be needed.  While the cache has free
     * slots, the next uncached active rows in position order (so a cache that holds the whole sub-problem fills
     * it in large blocks); once it is full, a few rows of the currently most violating variables.  Every call
     * computes at least two rows, so BLAS never takes its matrix-vector path, whose rounding differs.
     */
    int nb = 0;
    c->blk[nb++] = orig;
    const int as = s != NULL ? s->active_size : 0;
    if (as > 0 && c->nfill + c->block <= c->cap) {
        int pos = c->cursor % as;
        for (int cnt = 0; cnt < as && nb < c->block; cnt++) {
            int o = s->aset[pos];
            if (c->slot_of[o] < 0 && o != orig) c->blk[nb++] = o;
            if (++pos == as) pos = 0;
        }
        c->cursor = pos;
    } else if (as > 0) {
        /* top violators by |G - mean of its class|, among variables that may still move that way */
        const int want = c->block < 8 ? c->block : 8;
        double mean[2] = {0, 0};
        int cntc[2] = {0, 0};
        for (int t = 0; t < as; t++) {
            int cl = s->y[t] > 0;
            mean[cl] += s->G[t];
            cntc[cl]++;
        }
        for (int cl = 0; cl < 2; cl++)
            if (cntc[cl]) mean[cl] /= cntc[cl];
        double best[8];
        int nbest = 0;
        int cand[8];
        for (int t = 0; t < as; t++) {
            int o = s->aset[t];
            if (c->slot_of[o] >= 0 || o == orig) continue;
            double dev = s->G[t] - mean[s->y[t] > 0];
            /* below the mean: a candidate to increase (y=+1) / decrease (y=-1) alpha, and vice versa */
            int up_ok = s->y[t] > 0 ? s->st[t] != SERTK_UPPER : s->st[t] != SERTK_LOWER;
            int low_ok = s->y[t] > 0 ? s->st[t] != SERTK_LOWER : s->st[t] != SERTK_UPPER;
            double score = dev < 0 ? (up_ok ? -dev : -1) : (low_ok ? dev : -1);
            if (score < 0) continue;
            if (nbest < want - 1) {
                int q = nbest++;
                while (q > 0 && best[q - 1] < score) {
                    best[q] = best[q - 1];
                    cand[q] = cand[q - 1];
                    q--;
                }
                best[q] = score;
                cand[q] = o;
            } else if (nbest > 0 && score > best[nbest - 1]) {
                int q = nbest - 1;
                while (q > 0 && best[q - 1] < score) {
                    best[q] = best[q - 1];
                    cand[q] = cand[q - 1];
                    q--;
                }
                best[q] = score;
                cand[q] = o;
            }
        }
        for (int q = 0; q < nbest; q++) c->blk[nb++] = cand[q];
    }
    if (nb < 2 && c->l > 1 && c->block >= 2) {
        /* pad with a neighbour (computed and cached like any row) */
        for (int o = (orig + 1) % c->l; o != orig && nb < 2; o = (o + 1) % c->l)
            if (c->slot_of[o] < 0) c->blk[nb++] = o;
    }
    sertk_rcache_fill(c, k, nb);
    /* the requested row must be the newest: the caller may hold it while fetching one more row */
    slot = c->slot_of[orig];
    sertk_lru_unlink(c, slot);
    sertk_lru_push(c, slot);
    return c->arena + (size_t)slot * c->maxl;
}

/* kernel row of the variable at position pos, indexed by col[] */
static inline const float *sertk_row(sertk_solver *s, int pos)
{
    int o = s->aset[pos];
    if (s->cache == NULL) return s->k->gram + (size_t)s->gidx[o] * s->k->n;
    return sertk_rcache_get(s->cache, s->k, s, o);
}

static inline void sertk_update_status(sertk_solver *s, int i)
{
    if (s->alpha[i] >= s->C[i])
        s->st[i] = SERTK_UPPER;
    else if (s->alpha[i] <= 0)
        s->st[i] = SERTK_LOWER;
    else
        s->st[i] = SERTK_FREE;
}

#define SERTK_SWAP(type, a, b) do { type t_ = (a); (a) = (b); (b) = t_; } while (0)

static void sertk_swap_index(sertk_solver *s, int i, int j)
{
    SERTK_SWAP(schar, s->y[i], s->y[j]);
    SERTK_SWAP(double, s->G[i], s->G[j]);
    SERTK_SWAP(char, s->st[i], s->st[j]);
    SERTK_SWAP(double, s->alpha[i], s->alpha[j]);
    SERTK_SWAP(int, s->aset[i], s->aset[j]);
    SERTK_SWAP(int, s->col[i], s->col[j]);
    SERTK_SWAP(double, s->Gbar[i], s->Gbar[j]);
    SERTK_SWAP(double, s->C[i], s->C[j]);
    SERTK_SWAP(double, s->QD[i], s->QD[j]);
}

/* G of the inactive variables from G_bar and the free variables (the linear term p is 0 for nu-SVC) */
static void sertk_reconstruct_gradient(sertk_solver *s)
{
    const int l = s->l, as = s->active_size;
    if (as == l) return;
    for (int j = as; j < l; j++) s->G[j] = s->Gbar[j] + 0.0;
    long long nr_free = 0;
    for (int j = 0; j < as; j++)
        if (s->st[j] == SERTK_FREE) nr_free++;
    /* both loop orders add the terms of each G[i] in ascending position order, as libsvm */
    if (nr_free * l > 2LL * as * (l - as)) {
        int *fr = s->tmp, nf = 0;
        for (int j = 0; j < as; j++)
            if (s->st[j] == SERTK_FREE) fr[nf++] = j;
        for (int i = as; i < l; i++) {
            const float *R = sertk_row(s, i);
            const double yi = s->y[i];
            double gi = s->G[i];
            for (int t = 0; t < nf; t++) {
                const int j = fr[t];
                double q = (yi * s->y[j]) * (double)R[s->col[j]];
                gi += s->alpha[j] * q;
            }
            s->G[i] = gi;
        }
    } else {
        for (int i = 0; i < as; i++)
            if (s->st[i] == SERTK_FREE) {
                const float *R = sertk_row(s, i);
                const double ai = s->alpha[i];
                const double yi = s->y[i];
                for (int j = as; j < l; j++) {
                    double q = (yi * s->y[j]) * (double)R[s->col[j]];
                    s->G[j] += ai * q;
                }
            }
    }
}

/*
 * One candidate of the second-order rule: obj = -(g^2)/q, kept when obj <= the best so far (the last index wins
 * ties, as libsvm).  The division is what libsvm computes; it is skipped only when a cross-multiplication proves
 * that the candidate's ratio g^2/q is clearly below the best one (relative margin 1e-9, far above the few ulps of
 * rounding in the products), so the selected index is exactly libsvm's.
 */
static inline void sertk_consider(double g, double q, int j, int *jmin, double *obj_min, double *bnum,
                                  double *bden)
{
    const double num = g * g;
    if (num * *bden < (1.0 - 1e-9) * (*bnum * q)) return;
    const double obj = -num / q;
    if (obj <= *obj_min) {
        *jmin = j;
        *obj_min = obj;
        *bnum = num;
        *bden = q;
    }
}

/* returns 1 when optimal (on the active set), else 0 with the working set in *out_i, *out_j */
static int sertk_select_working_set(sertk_solver *s, int *out_i, int *out_j)
{
    const int as = s->active_size;
    const schar *y = s->y;
    const char *st = s->st;
    const double *G = s->G, *QD = s->QD;
    const int *col = s->col;
    double Gmaxp = -SERTK_INF, Gmaxp2 = -SERTK_INF, Gmaxn = -SERTK_INF, Gmaxn2 = -SERTK_INF;
    int ip = -1, in = -1, jmin = -1;
    double obj_min = SERTK_INF, bnum = 0, bden = 1;

    if (s->max_valid) {
        Gmaxp = s->Gmaxp;
        ip = s->ip;
        Gmaxn = s->Gmaxn;
        in = s->in;
    } else {
        for (int t = 0; t < as; t++) {
            if (y[t] == +1) {
                if (st[t] != SERTK_UPPER && -G[t] >= Gmaxp) {
                    Gmaxp = -G[t];
                    ip = t;
                }
            } else {
                if (st[t] != SERTK_LOWER && G[t] >= Gmaxn) {
                    Gmaxn = G[t];
                    in = t;
                }
            }
        }
    }
    const float *Rp = ip != -1 ? sertk_row(s, ip) : NULL;
    const float *Rn = in != -1 ? sertk_row(s, in) : NULL;
    const double QDp = ip != -1 ? QD[ip] : 0.0, QDn = in != -1 ? QD[in] : 0.0;

    for (int j = 0; j < as; j++) {
        if (y[j] == +1) {
            if (st[j] != SERTK_LOWER) {
                double grad_diff = Gmaxp + G[j];
                if (G[j] >= Gmaxp2) Gmaxp2 = G[j];
                if (grad_diff > 0) {
                    /* Q_ip[j] = y_ip y_j K = K: both in the positive class */
                    double quad = QDp + QD[j] - 2 * Rp[col[j]];
                    sertk_consider(grad_diff, quad > 0 ? quad : SERTK_TAU, j, &jmin, &obj_min, &bnum, &bden);
                }
            }
        } else {
            if (st[j] != SERTK_UPPER) {
                double grad_diff = Gmaxn - G[j];
                if (-G[j] >= Gmaxn2) Gmaxn2 = -G[j];
                if (grad_diff > 0) {
                    double quad = QDn + QD[j] - 2 * Rn[col[j]];
                    sertk_consider(grad_diff, quad > 0 ? quad : SERTK_TAU, j, &jmin, &obj_min, &bnum, &bden);
                }
            }
        }
    }
    if (sertk_max(Gmaxp + Gmaxp2, Gmaxn + Gmaxn2) < s->eps || jmin == -1) return 1;
    *out_i = y[jmin] == +1 ? ip : in;
    *out_j = jmin;
    return 0;
}

static inline int sertk_be_shrunk(const sertk_solver *s, int i, double Gmax1, double Gmax2, double Gmax3,
                                  double Gmax4)
{
    if (s->st[i] == SERTK_UPPER) {
        if (s->y[i] == +1) return -s->G[i] > Gmax1;
        return -s->G[i] > Gmax4;
    }
    if (s->st[i] == SERTK_LOWER) {
        if (s->y[i] == +1) return s->G[i] > Gmax2;
        return s->G[i] > Gmax3;
    }
    return 0;
}

static void sertk_do_shrinking(sertk_solver *s)
{
    double Gmax1 = -SERTK_INF; /* max -G, y = +1, not at upper bound */
    double Gmax2 = -SERTK_INF; /* max  G, y = +1, not at lower bound */
    double Gmax3 = -SERTK_INF; /* max  G, y = -1, not at lower bound */
    double Gmax4 = -SERTK_INF; /* max -G, y = -1, not at upper bound */
    for (int i = 0; i < s->active_size; i++) {
        if (s->st[i] != SERTK_UPPER) {
            if (s->y[i] == +1) {
                if (-s->G[i] > Gmax1) Gmax1 = -s->G[i];
            } else if (-s->G[i] > Gmax4) {
                Gmax4 = -s->G[i];
            }
        }
        if (s->st[i] != SERTK_LOWER) {
            if (s->y[i] == +1) {
                if (s->G[i] > Gmax2) Gmax2 = s->G[i];
            } else if (s->G[i] > Gmax3) {
                Gmax3 = s->G[i];
            }
        }
    }
    if (!s->unshrink && sertk_max(Gmax1 + Gmax2, Gmax3 + Gmax4) <= s->eps * 10) {
        s->unshrink = 1;
        sertk_reconstruct_gradient(s);
        s->active_size = s->l;
    }
    for (int i = 0; i < s->active_size; i++) {
        if (sertk_be_shrunk(s, i, Gmax1, Gmax2, Gmax3, Gmax4)) {
            s->active_size--;
            while (s->active_size > i) {
                if (!sertk_be_shrunk(s, s->active_size, Gmax1, Gmax2, Gmax3, Gmax4)) {
                    sertk_swap_index(s, i, s->active_size);
                    break;
                }
                s->active_size--;
            }
        }
    }
}

/* rho and r of the nu formulation (libsvm's Solver_NU::calculate_rho) */
static double sertk_calculate_rho(const sertk_solver *s, double *r)
{
    int nr_free1 = 0, nr_free2 = 0;
    double ub1 = SERTK_INF, ub2 = SERTK_INF, lb1 = -SERTK_INF, lb2 = -SERTK_INF;
    double sum_free1 = 0, sum_free2 = 0;
    for (int i = 0; i < s->active_size; i++) {
        if (s->y[i] == +1) {
            if (s->st[i] == SERTK_UPPER)
                lb1 = sertk_max(lb1, s->G[i]);
            else if (s->st[i] == SERTK_LOWER)
                ub1 = sertk_min(ub1, s->G[i]);
            else {
                ++nr_free1;
                sum_free1 += s->G[i];
            }
        } else {
            if (s->st[i] == SERTK_UPPER)
                lb2 = sertk_max(lb2, s->G[i]);
            else if (s->st[i] == SERTK_LOWER)
                ub2 = sertk_min(ub2, s->G[i]);
            else {
                ++nr_free2;
                sum_free2 += s->G[i];
            }
        }
    }
    double r1 = nr_free1 > 0 ? sum_free1 / nr_free1 : (ub1 + lb1) / 2;
    double r2 = nr_free2 > 0 ? sum_free2 / nr_free2 : (ub2 + lb2) / 2;
    *r = (r1 + r2) / 2;
    return (r1 - r2) / 2;
}

typedef struct {
    int maxl;
    /* solver state */
    schar *y;
    char *st;
    double *alpha, *G, *Gbar, *C, *QD;
    int *aset, *col, *tmp;
    /* the sub-problem being solved */
    int *gidx;
    schar *ysub;
    double *Csub, *asub;
    /* probability cross-validation */
    int *fgidx;
    schar *fy;
    double *fC, *fa, *dec;
    int *fpos;
    sertk_rcache cache;
    int has_cache;
} sertk_work;

static void sertk_work_free(sertk_work *w)
{
    free(w->y);
    free(w->st);
    free(w->alpha);
    free(w->G);
    free(w->Gbar);
    free(w->C);
    free(w->QD);
    free(w->aset);
    free(w->col);
    free(w->tmp);
    free(w->gidx);
    free(w->ysub);
    free(w->Csub);
    free(w->asub);
    free(w->fgidx);
    free(w->fy);
    free(w->fC);
    free(w->fa);
    free(w->dec);
    free(w->fpos);
    if (w->has_cache) sertk_rcache_free(&w->cache);
    memset(w, 0, sizeof(*w));
}

static int sertk_work_init(sertk_work *w, int maxl, int probability, const sertk_kctx *k, int cache_mode,
                           double cache_budget)
{
    memset(w, 0, sizeof(*w));
    w->maxl = maxl;
    w->y = SERTK_NEW(schar, maxl);
    w->st = SERTK_NEW(char, maxl);
    w->alpha = SERTK_NEW(double, maxl);
    w->G = SERTK_NEW(double, maxl);
    w->Gbar = SERTK_NEW(double, maxl);
    w->C = SERTK_NEW(double, maxl);
    w->QD = SERTK_NEW(double, maxl);
    w->aset = SERTK_NEW(int, maxl);
    w->col = SERTK_NEW(int, maxl);
    w->tmp = SERTK_NEW(int, maxl);
    w->gidx = SERTK_NEW(int, maxl);
    w->ysub = SERTK_NEW(schar, maxl);
    w->Csub = SERTK_NEW(double, maxl);
    w->asub = SERTK_NEW(double, maxl);
    int ok = w->y && w->st && w->alpha && w->G && w->Gbar && w->C && w->QD && w->aset && w->col && w->tmp && w->gidx &&
             w->ysub && w->Csub && w->asub;
    if (ok && probability) {
        w->fgidx = SERTK_NEW(int, maxl);
        w->fy = SERTK_NEW(schar, maxl);
        w->fC = SERTK_NEW(double, maxl);
        w->fa = SERTK_NEW(double, maxl);
        w->dec = SERTK_NEW(double, maxl);
        w->fpos = SERTK_NEW(int, maxl);
        ok = w->fgidx && w->fy && w->fC && w->fa && w->dec && w->fpos;
    }
    if (ok && cache_mode) {
        ok = sertk_rcache_init(&w->cache, k, maxl, cache_budget) == SERTK_OK;
        w->has_cache = ok;
    }
    if (!ok) {
        sertk_work_free(w);
        return SERTK_ENOMEM;
    }
    return SERTK_OK;
}

/*
 * libsvm's Solver::Solve with Solver_NU's selection, shrinking and rho, on the sub-problem gidx[0..l) with
 * labels y, bounds C and the feasible start alpha (overwritten with the solution, sub-problem order).
 */
static int sertk_nu_solve(sertk_work *w, const sertk_kctx *k, int l, const int *gidx, const schar *y,
                          const double *C, double *alpha_io, double eps, int shrinking, int max_iter,
                          double *rho, double *r, int *n_iter, int *timed_out)
{
    sertk_solver S;
    sertk_solver *s = &S;
    s->l = l;
    s->active_size = l;
    s->unshrink = 0;
    s->eps = eps;
    s->y = w->y;
    s->st = w->st;
    s->alpha = w->alpha;
    s->G = w->G;
    s->Gbar = w->Gbar;
    s->C = w->C;
    s->QD = w->QD;
    s->aset = w->aset;
    s->col = w->col;
    s->tmp = w->tmp;
    s->max_valid = 0;
    s->k = k;
    s->gidx = gidx;
    s->cache = w->has_cache ? &w->cache : NULL;
    if (s->cache) sertk_rcache_reset(s->cache, k, l, gidx);

    for (int i = 0; i < l; i++) {
        s->y[i] = y[i];
        s->alpha[i] = alpha_io[i];
        s->C[i] = C[i];
        s->QD[i] = k->qd[gidx[i]];
        s->aset[i] = i;
        s->col[i] = s->cache ? i : gidx[i];
        sertk_update_status(s, i);
    }
    /* gradient: G = Q alpha (p = 0), G_bar = sum of C_i Q_i over variables at the upper bound */
    for (int i = 0; i < l; i++) {
        s->G[i] = 0;
        s->Gbar[i] = 0;
    }
    for (int i = 0; i < l; i++)
        if (s->st[i] != SERTK_LOWER) {
            if (sertk_cancelled(k->cancel)) return SERTK_ECANCELLED;
            const float *R = sertk_row(s, i);
            const double ai = s->alpha[i];
            const double yi = s->y[i];
            for (int j = 0; j < l; j++) s->G[j] += ai * ((yi * s->y[j]) * (double)R[s->col[j]]);
            if (s->st[i] == SERTK_UPPER) {
                const double Ci = s->C[i];
                for (int j = 0; j < l; j++) s->Gbar[j] += Ci * ((yi * s->y[j]) * (double)R[s->col[j]]);
            }
        }

    int cap = max_iter;
    if (cap < 0) cap = l > INT_MAX / 100 ? INT_MAX : (100 * l > 10000000 ? 100 * l : 10000000);
    int iter = 0;
    int counter = (l < 1000 ? l : 1000) + 1;
    *timed_out = 0;
    for (;;) {
        /* a read of the caller's flag; it never changes the path of a fit that goes on */
        if ((iter & 63) == 0 && sertk_cancelled(k->cancel)) return SERTK_ECANCELLED;
        if (iter >= cap) {
            *timed_out = 1;
            break;
        }
        if (--counter == 0) {
            counter = l < 1000 ? l : 1000;
            if (shrinking) {
                sertk_do_shrinking(s);
                s->max_valid = 0;
            }
        }
        int i, j;
        if (sertk_select_working_set(s, &i, &j) != 0) {
            sertk_reconstruct_gradient(s);
            s->active_size = l;
            s->max_valid = 0;
            if (sertk_select_working_set(s, &i, &j) != 0) break;
            counter = 1; /* shrink at the next iteration */
        }
        ++iter;

        const float *Ri = sertk_row(s, i);
        const float *Rj = sertk_row(s, j);
        const double Ci = s->C[i], Cj = s->C[j];
        double *alpha = s->alpha;
        const double old_ai = alpha[i], old_aj = alpha[j];

        /* the nu working set is always within one class: y_i == y_j, Q_ij = K_ij */
        double quad = s->QD[i] + s->QD[j] - 2 * Ri[s->col[j]];
        if (quad <= 0) quad = SERTK_TAU;
        double delta = (s->G[i] - s->G[j]) / quad;
        double sum = alpha[i] + alpha[j];
        alpha[i] -= delta;
        alpha[j] += delta;
        if (sum > Ci) {
            if (alpha[i] > Ci) {
                alpha[i] = Ci;
                alpha[j] = sum - Ci;
            }
        } else {
            if (alpha[j] < 0) {
                alpha[j] = 0;
                alpha[i] = sum;
            }
        }
        if (sum > Cj) {
            if (alpha[j] > Cj) {
                alpha[j] = Cj;
                alpha[i] = sum - Cj;
            }
        } else {
            if (alpha[i] < 0) {
                alpha[i] = 0;
                alpha[j] = sum;
            }
        }

        /* alpha status (G does not depend on it, so it may come first, as libsvm computes it after G) */
        const int ui = s->st[i] == SERTK_UPPER, uj = s->st[j] == SERTK_UPPER;
        sertk_update_status(s, i);
        sertk_update_status(s, j);

        /*
         * G += Q_i d_i + Q_j d_j with Q_ik = y_i y_k K_ik and y_i = y_j; the same pass finds the maximal
         * violator of each class for the next working-set selection (same comparisons, same order).
         */
        const double dai = alpha[i] - old_ai, daj = alpha[j] - old_aj;
        const double yij = s->y[i];
        {
            const int as = s->active_size;
            double *G = s->G;
            const schar *yy = s->y;
            const char *st = s->st;
            const int *col = s->col;
            double Gmaxp = -SERTK_INF, Gmaxn = -SERTK_INF;
            int ip = -1, in = -1;
            for (int t = 0; t < as; t++) {
                const int c = col[t];
                double v = (double)Ri[c] * dai + (double)Rj[c] * daj;
                const double g = G[t] + (yij * yy[t]) * v;
                G[t] = g;
                if (yy[t] == +1) {
                    if (st[t] != SERTK_UPPER && -g >= Gmaxp) {
                        Gmaxp = -g;
                        ip = t;
                    }
                } else {
                    if (st[t] != SERTK_LOWER && g >= Gmaxn) {
                        Gmaxn = g;
                        in = t;
                    }
                }
            }
            s->Gmaxp = Gmaxp;
            s->Gmaxn = Gmaxn;
            s->ip = ip;
            s->in = in;
            s->max_valid = 1;
        }

        /* G_bar */
        if (ui != (s->st[i] == SERTK_UPPER)) {
            Ri = sertk_row(s, i);
            for (int t = 0; t < l; t++) {
                double q = (yij * s->y[t]) * (double)Ri[s->col[t]];
                if (ui)
                    s->Gbar[t] -= Ci * q;
                else
                    s->Gbar[t] += Ci * q;
            }
        }
        if (uj != (s->st[j] == SERTK_UPPER)) {
            Rj = sertk_row(s, j);
            for (int t = 0; t < l; t++) {
                double q = (yij * s->y[t]) * (double)Rj[s->col[t]];
                if (uj)
                    s->Gbar[t] -= Cj * q;
                else
                    s->Gbar[t] += Cj * q;
            }
        }
    }

    *rho = sertk_calculate_rho(s, r);
    for (int i = 0; i < l; i++) alpha_io[s->aset[i]] = s->alpha[i];
    *n_iter = iter;
    return SERTK_OK;
}

/* ============================================================================================================
 * 4. binary nu-SVC, probability cross-validation, Platt sigmoid, pairwise coupling
 * ============================================================================================================ */

/*
 * libsvm's solve_nu_svc: start from each class's budget nu*sum(C)/2 handed out in order, solve, then scale by
 * 1/r.  On return coef[i] = y_i alpha_i / r (the dual coefficient) and *rho is the scaled rho.
 */
static int sertk_nu_svc(sertk_work *w, const sertk_kctx *k, const sertk_nusvm_params *par, int l,
                        const int *gidx, const schar *y, const double *C, double *coef, double *rho, int *n_iter,
                        int *timed_out)
{
    double nu_l = 0;
    for (int i = 0; i < l; i++) nu_l += par->nu * C[i];
    double sum_pos = nu_l / 2, sum_neg = nu_l / 2;
    for (int i = 0; i < l; i++) {
        if (y[i] == +1) {
            coef[i] = sertk_min(C[i], sum_pos);
            sum_pos -= coef[i];
        } else {
            coef[i] = sertk_min(C[i], sum_neg);
            sum_neg -= coef[i];
        }
    }
    double r;
    int rc = sertk_nu_solve(w, k, l, gidx, y, C, coef, par->tol, par->shrinking, par->max_iter, rho, &r, n_iter,
                            timed_out);
    if (rc != SERTK_OK) return rc;
    for (int i = 0; i < l; i++) coef[i] *= y[i] / r;
    *rho /= r;
    return SERTK_OK;
}

/*
 * Decision values of a fold model (coefficients fa over the fold's lf training samples fgidx) for the held-out
 * samples perm[begin..end) of the pair, sign-corrected, into w->dec.  Kernel values are float32-rounded like the
 * ones the solver used; sums run over the support vectors in the fold model's order, as libsvm's predict.
 */
static void sertk_fold_decisions(sertk_work *w, const sertk_kctx *k, int lf, double rho_f, const int *perm,
                                 int begin, int end)
{
    const int *gidx = w->gidx;
    if (!w->has_cache || k->kernel == SERTK_KERNEL_PRECOMPUTED) {
        for (int j = begin; j < end; j++) {
            const int h = gidx[perm[j]];
            double sum = 0;
            for (int b = 0; b < lf; b++) {
                if (!(fabs(w->fa[b]) > 0)) continue;
                const int g = w->fgidx[b];
                double v = k->gram ? (double)k->gram[(size_t)g * k->n + h]
                                   : (double)(float)k->K[(size_t)g * k->n + h];
                sum += w->fa[b] * v;
            }
            sum -= rho_f;
            w->dec[perm[j]] = sum * -1; /* the fold model's first label is -1 */
        }
        return;
    }
    /* cache mode: the cache holds the fold's training rows (xsub); held-out rows go through BLAS in blocks */
    sertk_rcache *c = &w->cache;
    const int d = k->d, B = c->block;
    for (int j0 = begin; j0 < end; j0 += B) {
        const int nb = (end - j0 < B) ? end - j0 : B;
        for (int r = 0; r < nb; r++)
            memcpy(c->abuf + (size_t)r * d, k->X + (size_t)gidx[perm[j0 + r]] * d, sizeof(double) * (size_t)d);
        sertk_gemm_abt(k->blas, nb, lf, d, c->abuf, d, c->xsub, d, c->obuf, lf);
        for (int r = 0; r < nb; r++) {
            const int h = gidx[perm[j0 + r]];
            const double *o = c->obuf + (size_t)r * lf;
            double sum = 0;
            for (int b = 0; b < lf; b++) {
                if (!(fabs(w->fa[b]) > 0)) continue;
                sum += w->fa[b] * (double)(float)sertk_kval(k, o[b], k->sq[h], c->sqsub[b]);
            }
            sum -= rho_f;
            w->dec[perm[j0 + r]] = sum * -1;
        }
    }
}

void sertk_nusvm_sigmoid_train(int l, const double *dec, const signed char *label, double *A_out, double *B_out)
{
    /* Platt (1999) with the Newton method and safeguards of Lin, Lin & Weng (2007) */
    double prior1 = 0, prior0 = 0;
    for (int i = 0; i < l; i++) {
        if (label[i] > 0)
            prior1 += 1;
        else
            prior0 += 1;
    }
    const int max_iter = 100;
    const double min_step = 1e-10, sigma = 1e-12, eps = 1e-5;
    const double hi = (prior1 + 1.0) / (prior1 + 2.0), lo = 1 / (prior0 + 2.0);
    double A = 0.0, B = log((prior0 + 1.0) / (prior1 + 1.0));
    double fval = 0.0;
    for (int i = 0; i < l; i++) {
        double t = label[i] > 0 ? hi : lo;
        double fApB = dec[i] * A + B;
        if (fApB >= 0)
            fval += t * fApB + log(1 + exp(-fApB));
        else
            fval += (t - 1) * fApB + log(1 + exp(fApB));
    }
    for (int iter = 0; iter < max_iter; iter++) {
        double h11 = sigma, h22 = sigma, h21 = 0.0, g1 = 0.0, g2 = 0.0;
        for (int i = 0; i < l; i++) {
            double t = label[i] > 0 ? hi : lo;
            double fApB = dec[i] * A + B, p, q;
            if (fApB >= 0) {
                p = exp(-fApB) / (1.0 + exp(-fApB));
                q = 1.0 / (1.0 + exp(-fApB));
            } else {
                p = 1.0 / (1.0 + exp(fApB));
                q = exp(fApB) / (1.0 + exp(fApB));
            }
            double d2 = p * q;
            h11 += dec[i] * dec[i] * d2;
            h22 += d2;
            h21 += dec[i] * d2;
            double d1 = t - p;
            g1 += dec[i] * d1;
            g2 += d1;
        }
        if (fabs(g1) < eps && fabs(g2) < eps) break;
        double det = h11 * h22 - h21 * h21;
        double dA = -(h22 * g1 - h21 * g2) / det;
        double dB = -(-h21 * g1 + h11 * g2) / det;
        double gd = g1 * dA + g2 * dB;
        double step = 1;
        while (step >= min_step) {
            double nA = A + step * dA, nB = B + step * dB, nf = 0.0;
            for (int i = 0; i < l; i++) {
                double t = label[i] > 0 ? hi : lo;
                double fApB = dec[i] * nA + nB;
                if (fApB >= 0)
                    nf += t * fApB + log(1 + exp(-fApB));
                else
                    nf += (t - 1) * fApB + log(1 + exp(fApB));
            }
            if (nf < fval + 0.0001 * step * gd) {
                A = nA;
                B = nB;
                fval = nf;
                break;
            }
            step = step / 2.0;
        }
        if (step < min_step) break; /* line search failed */
    }
    *A_out = A;
    *B_out = B;
}

static double sertk_sigmoid_predict(double f, double A, double B)
{
    double fApB = f * A + B;
    if (fApB >= 0) return exp(-fApB) / (1.0 + exp(-fApB));
    return 1.0 / (1 + exp(fApB));
}

/* Wu, Lin & Weng (2004), method 2: min_p 1/2 p'Qp, sum p = 1, from pairwise r[i][j] = P(i | i or j). */
static void sertk_couple(int k, const double *r, double *p, double *Q, double *Qp)
{
    const int max_iter = 100 > k ? 100 : k;
    const double eps = 0.005 / k;
    for (int t = 0; t < k; t++) {
        p[t] = 1.0 / k;
        Q[t * k + t] = 0;
        for (int j = 0; j < t; j++) {
            Q[t * k + t] += r[j * k + t] * r[j * k + t];
            Q[t * k + j] = Q[j * k + t];
        }
        for (int j = t + 1; j < k; j++) {
            Q[t * k + t] += r[j * k + t] * r[j * k + t];
            Q[t * k + j] = -r[j * k + t] * r[t * k + j];
        }
    }
    for (int iter = 0; iter < max_iter; iter++) {
        double pQp = 0;
        for (int t = 0; t < k; t++) {
            Qp[t] = 0;
            for (int j = 0; j < k; j++) Qp[t] += Q[t * k + j] * p[j];
            pQp += p[t] * Qp[t];
        }
        double max_error = 0;
        for (int t = 0; t < k; t++) {
            double e = fabs(Qp[t] - pQp);
            if (e > max_error) max_error = e;
        }
        if (max_error < eps) break;
        for (int t = 0; t < k; t++) {
            double diff = (-Qp[t] + pQp) / Q[t * k + t];
            p[t] += diff;
            pQp = (pQp + diff * (diff * Q[t * k + t] + 2 * Qp[t])) / (1 + diff) / (1 + diff);
            for (int j = 0; j < k; j++) {
                Qp[j] = (Qp[j] + diff * Q[t * k + j]) / (1 + diff);
                p[j] /= (1 + diff);
            }
        }
    }
}

/*
 * libsvm's svm_binary_svc_probability for one one-vs-one sub-problem (l samples, the first n_pos positive):
 * 5 folds over the given permutation; each fold model is a nu-SVC trained as libsvm's svm_train would (its
 * labels sorted, so the negative class comes first); held-out decision values, sign-corrected, feed Platt's
 * sigmoid.  Kernel values are the float32-rounded ones the solver uses.
 */
static int sertk_pair_probability(sertk_work *w, const sertk_kctx *k, const sertk_nusvm_params *par, int l,
                                  const int *perm, double *A, double *B)
{
    const int *gidx = w->gidx;
    const schar *ysub = w->ysub;
    const double *Csub = w->Csub;
    double *dec = w->dec;
    for (int f = 0; f < SERTK_NFOLD; f++) {
        const int begin = (int)((long long)f * l / SERTK_NFOLD);
        const int end = (int)((long long)(f + 1) * l / SERTK_NFOLD);
        int pc = 0, nc = 0;
        for (int j = 0; j < l; j++) {
            if (j >= begin && j < end) continue;
            if (ysub[perm[j]] > 0)
                pc++;
            else
                nc++;
        }
        if (pc == 0 || nc == 0) {
            double v = (pc == 0 && nc == 0) ? 0 : (pc > 0 ? 1 : -1);
            for (int j = begin; j < end; j++) dec[perm[j]] = v;
            continue;
        }
        /* training fold, grouped by sorted label: -1 (the pair's second class) first, as the +1 side */
        int lf = 0;
        for (int pass = 0; pass < 2; pass++) {
            const schar want = pass == 0 ? -1 : +1;
            for (int j = 0; j < l; j++) {
                if (j >= begin && j < end) continue;
                int a = perm[j];
                if (ysub[a] != want) continue;
                w->fpos[lf] = a;
                w->fgidx[lf] = gidx[a];
                w->fy[lf] = pass == 0 ? +1 : -1;
                w->fC[lf] = Csub[a];
                lf++;
            }
        }
        double rho_f;
        int it, to;
        int rc = sertk_nu_svc(w, k, par, lf, w->fgidx, w->fy, w->fC, w->fa, &rho_f, &it, &to);
        if (rc != SERTK_OK) return rc;
        sertk_fold_decisions(w, k, lf, rho_f, perm, begin, end);
    }
    if (sertk_cancelled(k->cancel)) return SERTK_ECANCELLED;
    sertk_nusvm_sigmoid_train(l, dec, ysub, A, B);
    return SERTK_OK;
}

/* ============================================================================================================
 * 5. one-vs-one training and model assembly
 * ============================================================================================================ */

typedef struct {
    const sertk_nusvm_params *par;
    sertk_kctx *k;
    int n_classes;
    const int *start, *count;
    const int *orig;      /* grouped position -> training row */
    const double *weight; /* per training row */
    const int *pair_i, *pair_j;
    const int *prob_perm;
    const long long *perm_off;
    sertk_work *work;
    double **coef;
    double *rho, *probA, *probB;
    int *n_iter, *timed_out;
} sertk_fit_ctx;

static int sertk_pair_task(void *vctx, int p, int worker)
{
    sertk_fit_ctx *c = (sertk_fit_ctx *)vctx;
    sertk_work *w = &c->work[worker];
    const int ci = c->pair_i[p], cj = c->pair_j[p];
    const int si = c->start[ci], sj = c->start[cj], ni = c->count[ci], nj = c->count[cj];
    const int l = ni + nj;
    if (sertk_cancelled(c->k->cancel)) return SERTK_ECANCELLED;
    /* libsvm's sub-problem: class i's samples (+1) then class j's (-1), each in training order */
    for (int a = 0; a < ni; a++) {
        w->gidx[a] = c->orig[si + a];
        w->ysub[a] = +1;
        w->Csub[a] = c->weight[w->gidx[a]];
    }
    for (int a = 0; a < nj; a++) {
        w->gidx[ni + a] = c->orig[sj + a];
        w->ysub[ni + a] = -1;
        w->Csub[ni + a] = c->weight[w->gidx[ni + a]];
    }
    if (c->par->probability) {
        int rc = sertk_pair_probability(w, c->k, c->par, l, c->prob_perm + c->perm_off[p], &c->probA[p],
                                        &c->probB[p]);
        if (rc != SERTK_OK) return rc;
    }
    double *coef = SERTK_NEW(double, l);
    if (!coef) return SERTK_ENOMEM;
    int rc = sertk_nu_svc(w, c->k, c->par, l, w->gidx, w->ysub, w->Csub, coef, &c->rho[p], &c->n_iter[p],
                          &c->timed_out[p]);
    if (rc != SERTK_OK) {
        free(coef);
        return rc;
    }
    c->coef[p] = coef;
    return SERTK_OK;
}

void sertk_nusvm_model_free(sertk_nusvm_model *m)
{
    if (!m) return;
    free(m->n_support);
    free(m->support);
    free(m->dual_coef);
    free(m->rho);
    free(m->n_iter);
    free(m->prob_a);
    free(m->prob_b);
    memset(m, 0, sizeof(*m));
}

static void sertk_class_weights(int n, const int *y, const double *w, int k, double *cnt)
{
    for (int c = 0; c < k; c++) cnt[c] = 0;
    for (int i = 0; i < n; i++) cnt[y[i]] += w[i]; /* summed in sample order, as libsvm's check */
}

double sertk_nusvm_max_feasible_nu(int n, const int *y, const double *weight, int n_classes, int *worst_i,
                                   int *worst_j)
{
    double best = SERTK_INF;
    int bi = -1, bj = -1;
    double *cnt = SERTK_NEW(double, n_classes);
    if (!cnt) return NAN;
    sertk_class_weights(n, y, weight, n_classes, cnt);
    for (int i = 0; i < n_classes; i++)
        for (int j = i + 1; j < n_classes; j++) {
            double v = 2 * sertk_min(cnt[i], cnt[j]) / (cnt[i] + cnt[j]);
            if (v < best) {
                best = v;
                bi = i;
                bj = j;
            }
        }
    free(cnt);
    if (worst_i) *worst_i = bi;
    if (worst_j) *worst_j = bj;
    return best;
}

static int sertk_check_nu(int n, const int *y, const double *weight, int k, double nu)
{
    double *cnt = SERTK_NEW(double, k);
    if (!cnt) return SERTK_ENOMEM;
    sertk_class_weights(n, y, weight, k, cnt);
    int rc = SERTK_OK;
    for (int i = 0; i < k && rc == SERTK_OK; i++)
        for (int j = i + 1; j < k; j++)
            if (nu * (cnt[i] + cnt[j]) / 2 > sertk_min(cnt[i], cnt[j])) {
                rc = SERTK_EINFEASIBLE;
                break;
            }
    free(cnt);
    return rc;
}

int sertk_nusvm_fit(const sertk_nusvm_problem *prob, const sertk_nusvm_params *par, const sertk_blas *blas,
                    sertk_nusvm_model *model)
{
    memset(model, 0, sizeof(*model));
    const int n = prob->n, d = prob->d, K = prob->n_classes;
    if (n < 2 || d < 1 || K < 2 || !prob->X || !prob->y || !prob->weight || !blas || !blas->dgemm ||
        !blas->ddot)
        return SERTK_EINVAL;
    if (!(par->nu > 0 && par->nu <= 1) || !(par->tol > 0) || par->n_threads < 1 || par->max_iter < -1)
        return SERTK_EINVAL;
    if (par->kernel != SERTK_KERNEL_RBF && par->kernel != SERTK_KERNEL_LINEAR &&
        par->kernel != SERTK_KERNEL_PRECOMPUTED)
        return SERTK_EINVAL;
    if (par->kernel == SERTK_KERNEL_RBF && !(par->gamma >= 0)) return SERTK_EINVAL;
    if (par->kernel == SERTK_KERNEL_PRECOMPUTED && d != n) return SERTK_EINVAL;
    if (par->probability && !prob->prob_perm) return SERTK_EINVAL;
    for (int i = 0; i < n; i++)
        if (prob->y[i] < 0 || prob->y[i] >= K || !(prob->weight[i] > 0)) return SERTK_EINVAL;

    int rc = SERTK_OK;
    const int P = K * (K - 1) / 2;
    int *count = SERTK_NEW(int, K), *start = SERTK_NEW(int, K), *orig = SERTK_NEW(int, n);
    int *pair_i = SERTK_NEW(int, P), *pair_j = SERTK_NEW(int, P), *nonzero = SERTK_NEW(int, n);
    long long *perm_off = SERTK_NEW(long long, P + 1);
    double *sq = SERTK_NEW(double, n), *qd = SERTK_NEW(double, n);
    double **coef = SERTK_NEW(double *, P);
    double *rho = SERTK_NEW(double, P), *probA = SERTK_NEW(double, P), *probB = SERTK_NEW(double, P);
    int *n_iter = SERTK_NEW(int, P), *timed_out = SERTK_NEW(int, P);
    float *gram = NULL;
    sertk_work *work = NULL;
    int n_work = 0;
    if (!count || !start || !orig || !pair_i || !pair_j || !nonzero || !perm_off || !sq || !qd || !coef ||
        !rho || !probA || !probB || !n_iter || !timed_out) {
        rc = SERTK_ENOMEM;
        goto done;
    }
    for (int p = 0; p < P; p++) coef[p] = NULL;

    /* group the samples by class, keeping their order (libsvm's svm_group_classes with sorted labels) */
    for (int c = 0; c < K; c++) count[c] = 0;
    for (int i = 0; i < n; i++) count[prob->y[i]]++;
    for (int c = 0; c < K; c++)
        if (count[c] == 0) {
            rc = SERTK_EINVAL;
            goto done;
        }
    start[0] = 0;
    for (int c = 1; c < K; c++) start[c] = start[c - 1] + count[c - 1];
    {
        int *pos = SERTK_NEW(int, K);
        if (!pos) {
            rc = SERTK_ENOMEM;
            goto done;
        }
        for (int c = 0; c < K; c++) pos[c] = start[c];
        for (int i = 0; i < n; i++) orig[pos[prob->y[i]]++] = i;
        free(pos);
    }
    rc = sertk_check_nu(n, prob->y, prob->weight, K, par->nu);
    if (rc != SERTK_OK) goto done;

    {
        int p = 0;
        perm_off[0] = 0;
        for (int i = 0; i < K; i++)
            for (int j = i + 1; j < K; j++) {
                pair_i[p] = i;
                pair_j[p] = j;
                perm_off[p + 1] = perm_off[p] + count[i] + count[j];
                p++;
            }
    }
    if (par->probability) {
        for (int p = 0; p < P; p++) {
            const int l = count[pair_i[p]] + count[pair_j[p]];
            const int *pm = prob->prob_perm + perm_off[p];
            for (int a = 0; a < l; a++)
                if (pm[a] < 0 || pm[a] >= l) {
                    rc = SERTK_EINVAL;
                    goto done;
                }
        }
    }

    /* kernel context */
    sertk_kctx kc;
    memset(&kc, 0, sizeof(kc));
    kc.kernel = par->kernel;
    kc.gamma = par->gamma;
    kc.n = n;
    kc.d = d;
    kc.sq = sq;
    kc.qd = qd;
    kc.blas = blas;
    kc.cancel = par->cancel;
    if (par->kernel == SERTK_KERNEL_PRECOMPUTED) {
        kc.K = prob->X;
        for (int i = 0; i < n; i++) qd[i] = prob->X[(size_t)i * n + i];
    } else {
        kc.X = prob->X;
        for (int i = 0; i < n; i++) {
            const double *x = prob->X + (size_t)i * d;
            sq[i] = sertk_dot(blas, d, x, x);
            qd[i] = sertk_kval(&kc, sq[i], sq[i], sq[i]);
        }
    }

    const double gram_bytes = (double)n * (double)n * sizeof(float);
    const int gram_mode = gram_bytes <= par->cache_bytes;
    if (gram_mode) {
        gram = sertk_big_alloc((size_t)n * n * sizeof(float));
        if (!gram) {
            rc = SERTK_ENOMEM;
            goto done;
        }
        kc.gram = gram;
        rc = sertk_gram_compute(&kc, par->n_threads);
        if (rc != SERTK_OK) goto done;
    }
    model->kernel_mode = gram_mode ? SERTK_KMODE_GRAM : SERTK_KMODE_CACHE;

    /* one workspace per worker thread */
    {
        int maxl = 0;
        for (int p = 0; p < P; p++) {
            int l = count[pair_i[p]] + count[pair_j[p]];
            if (l > maxl) maxl = l;
        }
        n_work = par->n_threads < P ? par->n_threads : P;
        work = SERTK_NEW(sertk_work, n_work);
        if (!work) {
            rc = SERTK_ENOMEM;
            goto done;
        }
        memset(work, 0, sizeof(sertk_work) * (size_t)n_work);
        for (int t = 0; t < n_work; t++) {
            rc = sertk_work_init(&work[t], maxl, par->probability, &kc, !gram_mode, par->cache_bytes / n_work);
            if (rc != SERTK_OK) goto done;
        }
    }

    sertk_fit_ctx fc;
    fc.par = par;
    fc.k = &kc;
    fc.n_classes = K;
    fc.start = start;
    fc.count = count;
    fc.orig = orig;
    fc.weight = prob->weight;
    fc.pair_i = pair_i;
    fc.pair_j = pair_j;
    fc.prob_perm = prob->prob_perm;
    fc.perm_off = perm_off;
    fc.work = work;
    fc.coef = coef;
    fc.rho = rho;
    fc.probA = probA;
    fc.probB = probB;
    fc.n_iter = n_iter;
    fc.timed_out = timed_out;
    rc = sertk_parallel_for(n_work, P, sertk_pair_task, &fc);
    if (rc != SERTK_OK) goto done;

    /* model in libsvm's layout */
    {
        for (int g = 0; g < n; g++) nonzero[g] = 0;
        for (int p = 0; p < P; p++) {
            const int ci = pair_i[p], cj = pair_j[p];
            for (int a = 0; a < count[ci]; a++)
                if (fabs(coef[p][a]) > 0) nonzero[start[ci] + a] = 1;
            for (int a = 0; a < count[cj]; a++)
                if (fabs(coef[p][count[ci] + a]) > 0) nonzero[start[cj] + a] = 1;
        }
        int n_sv = 0;
        model->n_support = SERTK_NEW(int, K);
        if (!model->n_support) {
            rc = SERTK_ENOMEM;
            goto done;
        }
        for (int c = 0; c < K; c++) {
            int m = 0;
            for (int a = 0; a < count[c]; a++) m += nonzero[start[c] + a];
            model->n_support[c] = m;
            n_sv += m;
        }
        model->n_classes = K;
        model->n_pairs = P;
        model->n_sv = n_sv;
        model->support = SERTK_NEW(int, n_sv);
        model->dual_coef = SERTK_NEW(double, (size_t)(K - 1) * n_sv);
        model->rho = SERTK_NEW(double, P);
        model->n_iter = SERTK_NEW(int, P);
        if (par->probability) {
            model->prob_a = SERTK_NEW(double, P);
            model->prob_b = SERTK_NEW(double, P);
        }
        if (!model->support || !model->dual_coef || !model->rho || !model->n_iter ||
            (par->probability && (!model->prob_a || !model->prob_b))) {
            rc = SERTK_ENOMEM;
            goto done;
        }
        int q = 0;
        for (int g = 0; g < n; g++)
            if (nonzero[g]) model->support[q++] = orig[g];
        int *nz_start = SERTK_NEW(int, K);
        if (!nz_start) {
            rc = SERTK_ENOMEM;
            goto done;
        }
        nz_start[0] = 0;
        for (int c = 1; c < K; c++) nz_start[c] = nz_start[c - 1] + model->n_support[c - 1];
        for (size_t t = 0; t < (size_t)(K - 1) * n_sv; t++) model->dual_coef[t] = 0;
        for (int p = 0; p < P; p++) {
            const int ci = pair_i[p], cj = pair_j[p];
            /* pair (i, j): class i coefficients in row j-1, class j coefficients in row i */
            q = nz_start[ci];
            for (int a = 0; a < count[ci]; a++)
                if (nonzero[start[ci] + a]) model->dual_coef[(size_t)(cj - 1) * n_sv + q++] = coef[p][a];
            q = nz_start[cj];
            for (int a = 0; a < count[cj]; a++)
                if (nonzero[start[cj] + a]) model->dual_coef[(size_t)ci * n_sv + q++] = coef[p][count[ci] + a];
            model->rho[p] = rho[p];
            model->n_iter[p] = n_iter[p];
            if (timed_out[p]) model->fit_status = 1;
            if (par->probability) {
                model->prob_a[p] = probA[p];
                model->prob_b[p] = probB[p];
            }
        }
        free(nz_start);
    }

done:
    if (rc != SERTK_OK) sertk_nusvm_model_free(model);
    if (work)
        for (int t = 0; t < n_work; t++) sertk_work_free(&work[t]);
    free(work);
    if (coef)
        for (int p = 0; p < P; p++) free(coef[p]);
    free(coef);
    free(gram);
    free(count);
    free(start);
    free(orig);
    free(pair_i);
    free(pair_j);
    free(nonzero);
    free(perm_off);
    free(sq);
    free(qd);
    free(rho);
    free(probA);
    free(probB);
    free(n_iter);
    free(timed_out);
    return rc;
}

/* ============================================================================================================
 * 6. prediction
 * ============================================================================================================ */

typedef struct {
    const double *X;
    int m, d;
    const double *sv;
    int n_sv;
    int kernel;
    double gamma;
    int P;
    const double *cm;  /* n_sv x P coefficients of every pair */
    const double *sv_sq;
    const double *rho;
    const sertk_blas *blas;
    int block;
    double *kbuf;      /* per worker: block x n_sv */
    double *dec;
} sertk_dec_job;

static int sertk_dec_task(void *ctx, int task, int worker)
{
    sertk_dec_job *j = (sertk_dec_job *)ctx;
    const int r0 = task * j->block;
    const int mr = (j->m - r0 < j->block) ? j->m - r0 : j->block;
    const double *Kt;
    if (j->kernel == SERTK_KERNEL_PRECOMPUTED) {
        Kt = j->X + (size_t)r0 * j->n_sv;
    } else {
        double *kb = j->kbuf + (size_t)worker * j->block * j->n_sv;
        sertk_gemm_abt(j->blas, mr, j->n_sv, j->d, j->X + (size_t)r0 * j->d, j->d, j->sv, j->d, kb, j->n_sv);
        if (j->kernel == SERTK_KERNEL_RBF) {
            for (int r = 0; r < mr; r++) {
                const double *x = j->X + (size_t)(r0 + r) * j->d;
                const double sqx = sertk_dot(j->blas, j->d, x, x);
                double *kr = kb + (size_t)r * j->n_sv;
                for (int s = 0; s < j->n_sv; s++) kr[s] = exp(-j->gamma * (sqx + j->sv_sq[s] - 2 * kr[s]));
            }
        }
        Kt = kb;
    }
    double *out = j->dec + (size_t)r0 * j->P;
    sertk_gemm_ab(j->blas, mr, j->P, j->n_sv, Kt, j->cm, out);
    for (int r = 0; r < mr; r++)
        for (int p = 0; p < j->P; p++) out[(size_t)r * j->P + p] -= j->rho[p];
    return SERTK_OK;
}

int sertk_nusvm_decision(const double *X, int m, int d, const double *sv, int n_sv, int kernel, double gamma,
                         int n_classes, const int *n_support, const double *dual_coef, const double *rho,
                         const sertk_blas *blas, int n_threads, double *dec)
{
    const int K = n_classes;
    if (m < 0 || d < 1 || n_sv < 0 || K < 2 || n_threads < 1 || !blas || !blas->dgemm || !blas->ddot)
        return SERTK_EINVAL;
    if (kernel != SERTK_KERNEL_RBF && kernel != SERTK_KERNEL_LINEAR && kernel != SERTK_KERNEL_PRECOMPUTED)
        return SERTK_EINVAL;
    if (kernel == SERTK_KERNEL_PRECOMPUTED && d != n_sv) return SERTK_EINVAL;
    {
        long long tot = 0;
        for (int c = 0; c < K; c++) {
            if (n_support[c] < 0) return SERTK_EINVAL;
            tot += n_support[c];
        }
        if (tot != n_sv) return SERTK_EINVAL;
    }
    const int P = K * (K - 1) / 2;
    if (m == 0) return SERTK_OK;
    if (n_sv == 0) {
        for (int r = 0; r < m; r++)
            for (int p = 0; p < P; p++) dec[(size_t)r * P + p] = -rho[p];
        return SERTK_OK;
    }
    int rc = SERTK_OK;
    double *cm = SERTK_NEW(double, (size_t)n_sv * P);
    double *sv_sq = SERTK_NEW(double, n_sv);
    int *nz_start = SERTK_NEW(int, K);
    double *kbuf = NULL;
    if (!cm || !sv_sq || !nz_start) {
        rc = SERTK_ENOMEM;
        goto out;
    }
    nz_start[0] = 0;
    for (int c = 1; c < K; c++) nz_start[c] = nz_start[c - 1] + n_support[c - 1];
    for (size_t t = 0; t < (size_t)n_sv * P; t++) cm[t] = 0;
    {
        int p = 0;
        for (int i = 0; i < K; i++)
            for (int j = i + 1; j < K; j++) {
                for (int q = nz_start[i]; q < nz_start[i] + n_support[i]; q++)
                    cm[(size_t)q * P + p] = dual_coef[(size_t)(j - 1) * n_sv + q];
                for (int q = nz_start[j]; q < nz_start[j] + n_support[j]; q++)
                    cm[(size_t)q * P + p] = dual_coef[(size_t)i * n_sv + q];
                p++;
            }
    }
    if (kernel == SERTK_KERNEL_RBF)
        for (int s = 0; s < n_sv; s++) sv_sq[s] = sertk_dot(blas, d, sv + (size_t)s * d, sv + (size_t)s * d);

    sertk_dec_job job;
    job.X = X;
    job.m = m;
    job.d = d;
    job.sv = sv;
    job.n_sv = n_sv;
    job.kernel = kernel;
    job.gamma = gamma;
    job.P = P;
    job.cm = cm;
    job.sv_sq = sv_sq;
    job.rho = rho;
    job.blas = blas;
    job.dec = dec;
    {
        /* ~32 MiB of kernel values per worker; few large blocks, as each dgemm call repacks the support vectors */
        long long b = (1LL << 22) / n_sv;
        if (b < 8) b = 8;
        if (b > 4096) b = 4096;
        if (n_threads > 1 && b * n_threads > m) b = (m + n_threads - 1) / n_threads;
        if (b < 1) b = 1;
        job.block = (int)b;
    }
    int ntasks = (m + job.block - 1) / job.block;
    int nw = n_threads < ntasks ? n_threads : ntasks;
    if (kernel != SERTK_KERNEL_PRECOMPUTED) {
        kbuf = SERTK_NEW(double, (size_t)nw * job.block * n_sv);
        if (!kbuf) {
            rc = SERTK_ENOMEM;
            goto out;
        }
    }
    job.kbuf = kbuf;
    rc = sertk_parallel_for(nw, ntasks, sertk_dec_task, &job);
out:
    free(cm);
    free(sv_sq);
    free(nz_start);
    free(kbuf);
    return rc;
}

int sertk_nusvm_vote(const double *dec, int m, int n_classes, int *out)
{
    const int K = n_classes;
    if (K < 2 || m < 0) return SERTK_EINVAL;
    int *vote = SERTK_NEW(int, K);
    if (!vote) return SERTK_ENOMEM;
    const int P = K * (K - 1) / 2;
    for (int r = 0; r < m; r++) {
        const double *dv = dec + (size_t)r * P;
        for (int c = 0; c < K; c++) vote[c] = 0;
        int p = 0;
        for (int i = 0; i < K; i++)
            for (int j = i + 1; j < K; j++) {
                if (dv[p] > 0)
                    ++vote[i];
                else
                    ++vote[j];
                p++;
            }
        int best = 0;
        for (int c = 1; c < K; c++)
            if (vote[c] > vote[best]) best = c;
        out[r] = best;
    }
    free(vote);
    return SERTK_OK;
}

int sertk_nusvm_proba(const double *dec, int m, int n_classes, const double *prob_a, const double *prob_b,
                      double *out)
{
    const int K = n_classes;
    if (K < 2 || m < 0) return SERTK_EINVAL;
    const int P = K * (K - 1) / 2;
    double *r = SERTK_NEW(double, (size_t)K * K), *Q = SERTK_NEW(double, (size_t)K * K);
    double *Qp = SERTK_NEW(double, K);
    if (!r || !Q || !Qp) {
        free(r);
        free(Q);
        free(Qp);
        return SERTK_ENOMEM;
    }
    const double min_prob = 1e-7;
    for (int s = 0; s < m; s++) {
        const double *dv = dec + (size_t)s * P;
        int p = 0;
        for (int i = 0; i < K; i++)
            for (int j = i + 1; j < K; j++) {
                double v = sertk_sigmoid_predict(dv[p], prob_a[p], prob_b[p]);
                v = sertk_min(sertk_max(v, min_prob), 1 - min_prob);
                r[i * K + j] = v;
                r[j * K + i] = 1 - v;
                p++;
            }
        sertk_couple(K, r, out + (size_t)s * K, Q, Qp);
    }
    free(r);
    free(Q);
    free(Qp);
    return SERTK_OK;
}

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
    default:
        return "unknown status";
    }
}
