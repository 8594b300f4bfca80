/*
 * sertk_kernel.h -- kernel values: the float32 Gram matrix, each pair's matrix, or an LRU cache of kernel rows.
 *
 * Kernel values are libsvm's: a float64 value rounded to float32 (libsvm's Qfloat); the diagonal stays float64.
 */
#ifndef SERTK_KERNEL_H
#define SERTK_KERNEL_H

#include "sertk_internal.h"

#include <math.h>

typedef struct {
    int kernel;
    double gamma;
    int n, d;
    const double *X;    /* the caller's training rows, n x d (RBF, linear) */
    const double *K;    /* precomputed: the caller's n x n kernel */
    double *sq;         /* squared norms <x, x> (BLAS ddot, as libsvm) */
    double *qd;         /* K(x, x), float64 */
    int x_f32;          /* every value of X is a float32 (cache mode): the row cache packs samples in float32 */
    float *gram;        /* n x n float32 Gram matrix in the caller's row order, or NULL in cache mode */
    int ld;             /* row stride of gram: n, or the pair buffer's width when pairs follow each other in it */
    const sertk_blas *blas;
    const volatile int *cancel; /* params.cancel */
    sertk_nusvm_progress *progress; /* params.progress: kernel values computed, SMO iterations (may be NULL) */
} sertk_kctx;

/* libsvm's kernel value from a dot product: exp(-gamma*(|x|^2+|z|^2-2<x,z>)) for RBF, <x,z> for linear */
static inline double sertk_kval(const sertk_kctx *k, double dot, double sqi, double sqj)
{
    if (k->kernel == SERTK_KERNEL_RBF) return exp(-k->gamma * (sqi + sqj - 2 * dot));
    return dot;
}

/* ---- LRU cache of kernel rows for one sub-problem ---- */

#define SERTK_RCACHE_MAXBLOCK 4 /* rows per pass (sertk_rowdot computes four at a time) */

typedef struct {
    int cap;        /* row slots */
    int maxl;       /* slot length */
    int block;      /* most rows computed in one pass over the samples */
    int l;          /* current sub-problem size */
    const int *gidx;/* current sub-problem: position -> grouped index */
    int nfill;
    float *arena;   /* cap x maxl */
    int *slot_of;   /* [maxl] sub index -> slot or -1 */
    int *orig_of;   /* [cap] slot -> sub index */
    int *prev, *next; /* [cap + 1] LRU ring, sentinel cap: next[cap] oldest, prev[cap] newest */
    const double **arow; /* block: the samples of the rows being computed */
    double *obuf;   /* block x maxl */
    int *blk;       /* block */
    /*
     * The sub-problem's samples packed for sertk_rowdot (RBF, linear), float32 when k->x_f32, in panel order:
     * panel column t holds sub-problem index perm[t] (pcol is the inverse), sqp[t] its squared norm.
     *
     * After shrinking the solver reads a row only at its active variables (and at all of them only for G_bar, the
     * first gradient and part of the reconstruction), so, as libsvm's get_Q(i, active_size), a row computed then
     * covers only the first ng panel columns, a gathered superset of the active set: each narrowing puts the active
     * variables first.  Such a row stays valid while the active set only shrinks, since gathered sets shrink with
     * it; a whole-row read of it computes only the columns from the prefix's last whole panel on.  When the active
     * set grows back (unshrinking, reconstruction) the epoch moves on and those rows are recomputed.
     */
    void *pfull;
    int *perm;       /* [maxl] panel column -> sub-problem index */
    int *pcol;       /* [maxl] sub-problem index -> panel column */
    double *sqp;     /* [maxl] squared norms in panel order */
    int *prow;       /* [maxl] scratch: panel column -> training row, while packing */
    int ng;          /* the gathered prefix; ng == l: every column */
    int epoch;
    int *slot_epoch; /* [cap] the epoch a slot's row was computed in over the gathered prefix, or -1: all columns */
    sertk_team *team; /* threads a pass over the samples is split over, by columns (the worker's team), or NULL */
} sertk_rcache;

/*
 * Kernel rows without BLAS (sertk_rowdot.c): out[r * ldo + t] = <a[r], column t> for the nc columns packed in P,
 * each summed as libsvm's dot (in k order, multiply then add), the same bits with or without AVX2.  Panels hold
 * float64 values, or float32 ones (f32) when every sample value is a float32 (audio embeddings are): each is
 * widened exactly before its product, so the sums are the same bits, from half the bytes.
 */
SERTK_HIDDEN size_t sertk_panel_bytes(int nc, int d, int f32);
/* pack the samples X[rows[t]] (rows NULL: X[t]), t < nc, into P (sertk_panel_bytes(nc, d, f32) bytes) */
SERTK_HIDDEN void sertk_panel_pack(void *P, int f32, const double *X, const int *rows, int nc, int d);
SERTK_HIDDEN void sertk_rowdot(int nb, const double *const *a, int d, const void *P, int f32, int nc, double *out,
                               int ldo);
/* whether every one of the n values is a float32 (so that a float32 panel holds them exactly) */
SERTK_HIDDEN int sertk_all_float32(const double *x, size_t n);

/*
 * RBF values of a block row from its dot products (sertk_vexp.c): out[j] = float(exp(-gamma (sqi + sq[j] -
 * 2 dot[j]))), exp on AVX2 + FMA (within about a float64 ulp of glibc's) or glibc's; for the Gram and pair paths.
 */
SERTK_HIDDEN void sertk_rbf_row(int n, const double *dot, const double *sq, double sqi, double gamma, float *out);
/* the same in float64, over the products in place: dot[j] := exp(-gamma (sqi + sq[j] - 2 dot[j])) (prediction) */
SERTK_HIDDEN void sertk_rbf_row_f64(int n, double *dot, const double *sq, double sqi, double gamma);
SERTK_HIDDEN void sertk_rbf_row_f64_scalar(int n, double *dot, const double *sq, double sqi, double gamma);
SERTK_HIDDEN int sertk_vexp_enabled(void);
SERTK_HIDDEN void sertk_rbf_row_scalar(int n, const double *dot, const double *sq, double sqi, double gamma,
                                       float *out); /* glibc's exp, always */

/* the whole n x n float32 Gram matrix into k->gram, in the caller's row order */
SERTK_HIDDEN int sertk_gram_compute(sertk_kctx *k, int n_threads);

/*
 * One sub-problem's own Gram matrix (pair mode): its samples gathered, then the Gram path on them.  The values
 * are the whole Gram matrix's (the same float64 dot products, each rounded once), in sub-problem order, so a
 * solver given the local context reads them as it would read the whole matrix.
 */
typedef struct {
    int maxl;
    double *X;   /* maxl x d gathered samples (RBF, linear) */
    double *sq;  /* maxl */
    double *qd;  /* maxl */
    float *gram; /* maxl x maxl */
    int prev_i, prev_j, prev_ni; /* chain: the classes of the pair whose matrix the buffer holds, or -1 */
    /* chain: one class's own block kept beside the buffer (packed upper triangle), computed once for the fit */
    int kept_class;              /* -1: none */
    int kept_valid;              /* kept holds the block */
    float *kept;                 /* n_c (n_c + 1) / 2 floats, set by the caller (sertk_big_alloc), freed here */
} sertk_pgram;

/* floats of a packed upper triangle of an n x n block (the kept class block of a chain) */
static inline size_t sertk_packed_floats(int n) { return (size_t)n * ((size_t)n + 1) / 2; }

SERTK_HIDDEN int sertk_pgram_init(sertk_pgram *g, const sertk_kctx *k, int maxl);
SERTK_HIDDEN void sertk_pgram_free(sertk_pgram *g);
/* fill g for the samples idx[0..l) (caller row indices) and set *local to a context over them (n = l) */
SERTK_HIDDEN int sertk_pgram_build(sertk_pgram *g, const sertk_kctx *k, int l, const int *idx, int n_threads,
                                   sertk_kctx *local);
/*
 * The same for a pair whose two classes' own Gram matrices are known: idx[0..ni) are class i's samples, whose
 * ni x ni matrix is diag_i, idx[ni..ni+nj) class j's (diag_j); only the ni x nj cross block is computed (then
 * mirrored), so each class's diagonal block is computed once per fit instead of once per pair it is in.
 * RBF and linear kernels only.
 */
SERTK_HIDDEN int sertk_pgram_build_cross(sertk_pgram *g, const sertk_kctx *k, int ni, int nj, const int *idx,
                                         const float *diag_i, const float *diag_j, int n_threads, sertk_kctx *local);

/*
 * Pair mode with one pair at a time and no room for every class's own matrix: pairs follow each other in one
 * buffer of row stride maxl, in an order where each pair shares a class with the one before it (see
 * sertk_chain_plan in sertk_multiclass.c).  The shared class's block of the previous pair is moved to its place
 * in this pair's layout; only the other class's block and the cross block are computed.  When g->kept_class is
 * set, that class's block is packed beside the buffer the first time it is computed and unpacked (then mirrored)
 * each later time a pair needs it without sharing it.  Same values as the whole Gram matrix (the same float64
 * products, each rounded once).  RBF and linear kernels only.
 */
SERTK_HIDDEN int sertk_pgram_build_chain(sertk_pgram *g, const sertk_kctx *k, int ci, int cj, int ni, int nj,
                                         const int *idx, int n_threads, sertk_kctx *local);

/* a row cache of at most budget bytes for sub-problems of up to maxl samples */
SERTK_HIDDEN int sertk_rcache_init(sertk_rcache *c, const sertk_kctx *k, int maxl, double budget);
SERTK_HIDDEN void sertk_rcache_free(sertk_rcache *c);
/* start a new sub-problem: forget every row, gather its training rows */
SERTK_HIDDEN void sertk_rcache_reset(sertk_rcache *c, const sertk_kctx *k, int l, const int *gidx);
/*
 * compute rows blk[0..nb) of the current sub-problem into the cache, each made the newest: over every column when
 * full is set or nothing is gathered, else over the gathered columns
 */
SERTK_HIDDEN void sertk_rcache_fill(sertk_rcache *c, const sertk_kctx *k, int nb, int full);
/* the active set shrank to active[0..as) (sub-problem indices): gather it when it is well below the gathered set */
SERTK_HIDDEN void sertk_rcache_narrow(sertk_rcache *c, const sertk_kctx *k, int as, const int *active);
/* the active set grew back to the whole sub-problem: rows over gathered columns are no longer enough */
SERTK_HIDDEN void sertk_rcache_widen(sertk_rcache *c);

/* the cached row of sub-problem index o can serve a reader of every column (full) or of the active ones */
static inline int sertk_rcache_valid(const sertk_rcache *c, int o, int full)
{
    const int slot = c->slot_of[o];
    if (slot < 0) return 0;
    const int e = c->slot_epoch[slot];
    return e < 0 || (!full && e == c->epoch);
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

#endif
