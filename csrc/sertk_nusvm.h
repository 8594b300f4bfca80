/*
 * sertk_nusvm.h -- the compiled core of sertk's nu-support-vector classifier.
 *
 * A C99 library with no Python dependency.  It trains a nu-SVC (Schoelkopf et al., 2000) with the SMO algorithm
 * of libsvm (Chang & Lin; working-set selection of Fan, Chen & Lin 2005): the nu working-set rule chosen
 * separately per class, second-order selection of the second index, shrinking, the same stopping rule and the
 * same rho / r scaling, so that it follows libsvm's iteration path.  Multiclass problems are split one-vs-one
 * with libsvm's sub-problem layout, support-vector layout and voting.  Platt scaling with pairwise coupling
 * (Wu, Lin & Weng, method 2) gives probabilities.
 *
 * Kernel values come from BLAS: the caller passes dgemm/ddot function pointers (the Python wrapper passes
 * SciPy's), so this library links no BLAS itself.  When the float32 Gram matrix of all training samples fits
 * the memory budget it is computed once (a float64 product, then rounded to float32 as libsvm's kernel cache
 * does); otherwise, when the largest one-vs-one pair's Gram matrix fits, each pair's is computed the same way
 * just before the pair is solved; otherwise kernel rows are computed in BLAS blocks into an LRU row cache per
 * one-vs-one sub-problem.
 *
 * Every exported symbol carries the prefix sertk_.  Functions return a status code (SERTK_OK on success) and
 * free everything they allocated, also on failure.  All functions are reentrant; independent sub-problems may
 * run on several POSIX threads (params.n_threads).
 *
 * Cancellation: a fit polls params.cancel (a plain flag, no callback, so the core stays free of Python) before
 * every Gram block, every one-vs-one pair, every cross-validation fold, every kernel row of the initial gradient
 * and of a gradient reconstruction, and every 64 SMO iterations.  Once another thread has set it to nonzero, the
 * fit frees everything and returns SERTK_ECANCELLED.  The flag is only read, so it never changes the iteration
 * path of a fit that is not cancelled.
 * Progress: where params.progress is set, the fit counts what it has done there (sub-problems, kernel values, SMO
 * iterations) at the same points, for a progress bar on another thread.
 */
#ifndef SERTK_NUSVM_H
#define SERTK_NUSVM_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * 2: params.cancel, SERTK_ECANCELLED; 3: SERTK_EBUDGET; 4: sertk_nusvm_plan_kernel; 5: params.progress and .pairs;
 * 6: pairs.states (unfinished pairs' solvers); 7: blas.sgemm, sertk_nusvm_predict
 */
#define SERTK_NUSVM_ABI_VERSION 7

/* status codes */
enum {
    SERTK_OK = 0,
    SERTK_ENOMEM = 1,      /* an allocation failed */
    SERTK_EINVAL = 2,      /* an argument is out of range (sizes, labels, weights, nu, tol, kernel) */
    SERTK_EINFEASIBLE = 3, /* nu is infeasible for the (weighted) class sizes of some pair */
    SERTK_ETHREAD = 4,     /* a worker thread could not be started */
    SERTK_ECANCELLED = 5,  /* *params.cancel was set while fitting */
    SERTK_EBUDGET = 6      /* params.cache_bytes is below sertk_nusvm_min_cache_bytes() */
};

/* kernels (values follow libsvm's numbering) */
enum {
    SERTK_KERNEL_LINEAR = 0,
    SERTK_KERNEL_RBF = 2,
    SERTK_KERNEL_PRECOMPUTED = 4
};

/* how the training kernel was held (reported in the model) */
enum {
    SERTK_KMODE_GRAM = 0,  /* whole float32 Gram matrix */
    SERTK_KMODE_CACHE = 1, /* per-sub-problem LRU cache of kernel rows computed in BLAS blocks */
    SERTK_KMODE_PAIR = 2   /* each one-vs-one pair's own Gram matrix, one pair at a time per worker */
};

/* Fortran BLAS signatures, as exported by scipy.linalg.cython_blas */
typedef void (*sertk_dgemm_fn)(char *transa, char *transb, int *m, int *n, int *k, double *alpha, double *a,
                               int *lda, double *b, int *ldb, double *beta, double *c, int *ldc);
typedef double (*sertk_ddot_fn)(int *n, double *x, int *incx, double *y, int *incy);
typedef void (*sertk_sgemm_fn)(char *transa, char *transb, int *m, int *n, int *k, float *alpha, float *a,
                               int *lda, float *b, int *ldb, float *beta, float *c, int *ldc);

typedef struct {
    sertk_dgemm_fn dgemm;
    sertk_ddot_fn ddot;
    sertk_sgemm_fn sgemm; /* may be NULL: sertk_nusvm_predict then takes the float64 path for every sample */
} sertk_blas;

/*
 * How far a fit is, for a progress bar: the core adds to these as it goes (relaxed atomic adds, so workers may
 * report at once) and another thread reads them with sertk_nusvm_progress_read.  Reporting never changes the fit.
 */
typedef struct {
    int subproblems_total;   /* set when the fit starts: one-vs-one pairs, times 1 + 5 folds with probability */
    int subproblems_done;    /* sub-problems solved so far (cross-validation folds included) */
    long long kernel_values; /* kernel values computed so far (each stored value once; mirrored copies not counted) */
    long long iterations;    /* SMO iterations so far over every sub-problem, reported every 64 */
} sertk_nusvm_progress;

/* a consistent-enough snapshot of *p (each field read atomically) for a thread other than the fit's */
void sertk_nusvm_progress_read(const sertk_nusvm_progress *p, sertk_nusvm_progress *out);

/*
 * An unfinished pair's solver at the top of an SMO iteration: what libsvm's Solver holds then, by position (positions
 * are permuted by shrinking).  The rest (labels, bounds, diagonal, kernel values) follows from the sub-problem, so
 * a pair started again from this state follows the uninterrupted iteration path bit for bit.  The caller owns the
 * arrays (l = n_i + n_j each); see sertk_nusvm_pairs.states for who writes them when.
 */
typedef struct {
    long long version; /* 0: no state held; each state the solver writes has a larger one */
    int iter;          /* SMO iterations done */
    int counter;       /* iterations left to the next shrinking */
    int active_size;
    int unshrink;
    int max_valid;     /* 1: ip, in, Gmaxp, Gmaxn are the maximal violators the last gradient update found */
    int ip, in;
    double Gmaxp, Gmaxn;
    double *alpha;     /* [l] */
    double *G;         /* [l] */
    double *Gbar;      /* [l] */
    int *aset;         /* [l] position -> index within the pair (class i's samples, then class j's) */
} sertk_nusvm_state;

/*
 * Each one-vs-one sub-problem's solution, in caller-owned arrays, so that a fit can be resumed: a pair whose done
 * flag the caller has set is taken as solved (its arrays are read, its kernel values are not computed); every
 * other pair's arrays are written as soon as it is solved, and its flag is set last (a release store), so another
 * thread that sees the flag with sertk_nusvm_pair_done can save the pair while the fit goes on.  Pair p is
 * (0,1), (0,2), ..., (1,2), ...; its coef[p] has n_i + n_j entries, class i's samples then class j's, each in
 * training order, as the solver's y_k alpha_k / r.
 *
 * states (may be NULL): so that an interruption in the middle of a long pair loses at most state_every_s seconds
 * of it.  A pair that is not done and whose states[p].version is nonzero when the fit starts resumes from that
 * state (its first gradient is not computed again).  While a pair is solved, its solver writes its state into
 * states[p] when state_every_s seconds have passed since the last write (checked every 64 iterations) and when
 * the fit is cancelled; once the pair is solved its version is set to 0.  Every write and clear happens under
 * sertk_nusvm_states_lock, which another thread holds while it copies a state out.  Probability's
 * cross-validation folds keep no state: a pair resumed with probability solves its folds again.
 */
typedef struct {
    int *done;         /* [n_pairs] */
    double **coef;     /* [n_pairs] arrays of n_i + n_j */
    double *rho;       /* [n_pairs] the scaled rho */
    int *n_iter;       /* [n_pairs] */
    int *timed_out;    /* [n_pairs] 1: stopped at max_iter */
    double *prob_a;    /* [n_pairs] Platt's A and B (probability only; may be NULL otherwise) */
    double *prob_b;
    sertk_nusvm_state *states; /* [n_pairs] or NULL */
    double state_every_s;      /* seconds between two writes of a pair's state (0: every 64 iterations) */
} sertk_nusvm_pairs;

/* whether pair p of r is solved, for a thread other than the fit's (an acquire load of r->done[p]) */
int sertk_nusvm_pair_done(const sertk_nusvm_pairs *r, int p);

/* the lock under which solvers write pairs.states (one for the process): hold it to copy a state out */
void sertk_nusvm_states_lock(void);
void sertk_nusvm_states_unlock(void);

typedef struct {
    int kernel;          /* SERTK_KERNEL_* */
    double gamma;        /* RBF: K(x, z) = exp(-gamma * |x - z|^2) */
    double nu;           /* in (0, 1] */
    double tol;          /* stopping tolerance on the maximal violation, > 0 (libsvm's eps) */
    int shrinking;       /* 0 or 1 */
    int max_iter;        /* per sub-problem; -1: libsvm's own cap max(10^7, 100 l) */
    double cache_bytes;  /* memory budget for kernel values, bytes: never exceeded (see min_cache_bytes) */
    int n_threads;       /* >= 1; sub-problems and kernel blocks run in parallel */
    int probability;     /* 1: fit Platt sigmoids on 5-fold cross-validated decision values */
    const volatile int *cancel; /* NULL, or a flag another thread may set to nonzero to stop the fit */
    sertk_nusvm_progress *progress; /* NULL, or where the fit reports how far it is (zeroed by the fit) */
    sertk_nusvm_pairs *pairs;       /* NULL, or pairs already solved (skipped) and where solved ones are kept */
} sertk_nusvm_params;

/*
 * A training set.  X is row-major n x d (for SERTK_KERNEL_PRECOMPUTED: the n x n training kernel, d == n).
 * y holds class indices 0..n_classes-1 (every class present); weight holds per-sample upper bounds (> 0;
 * sample_weight times class weight).  prob_perm, used only when params.probability is set, holds for every
 * one-vs-one pair (0,1), (0,2), ..., (1,2), ... a permutation of 0..l_p-1 (l_p = n_i + n_j), concatenated:
 * the random fold assignment of libsvm's internal 5-fold cross-validation.
 */
typedef struct {
    int n;
    int d;
    const double *X;
    const int *y;
    const double *weight;
    int n_classes;
    const int *prob_perm;
} sertk_nusvm_problem;

/* A trained model, in libsvm's layout.  Arrays are allocated by sertk_nusvm_fit; free with sertk_nusvm_model_free. */
typedef struct {
    int n_classes;
    int n_pairs;        /* n_classes (n_classes - 1) / 2 */
    int n_sv;
    int fit_status;     /* 0, or 1 when some sub-problem stopped at max_iter */
    int kernel_mode;    /* SERTK_KMODE_* used for training */
    int *n_support;     /* [n_classes] support vectors per class */
    int *support;       /* [n_sv] row indices into the training X, class by class, ascending */
    double *dual_coef;  /* [(n_classes - 1) * n_sv] row-major, libsvm's sv_coef layout */
    double *rho;        /* [n_pairs] decision value of pair p is sum_k coef_k K(sv_k, x) - rho[p] */
    int *n_iter;        /* [n_pairs] SMO iterations of each sub-problem */
    double *prob_a;     /* [n_pairs] Platt sigmoid A, or NULL */
    double *prob_b;     /* [n_pairs] Platt sigmoid B, or NULL */
} sertk_nusvm_model;

/*
 * Train.  On success *model is filled (free it with sertk_nusvm_model_free); on failure (SERTK_ECANCELLED
 * included) it is left empty.
 */
int sertk_nusvm_fit(const sertk_nusvm_problem *problem, const sertk_nusvm_params *params, const sertk_blas *blas,
                    sertk_nusvm_model *model);

void sertk_nusvm_model_free(sertk_nusvm_model *model);

/*
 * The largest nu that libsvm's feasibility rule accepts: min over pairs of 2 min(W_i, W_j) / (W_i + W_j),
 * W_c the summed weight of class c.  *worst_i / *worst_j (may be NULL) receive the limiting pair.
 */
double sertk_nusvm_max_feasible_nu(int n, const int *y, const double *weight, int n_classes, int *worst_i,
                                   int *worst_j);

/*
 * The least params.cache_bytes a fit of these labels can run in: SERTK_MIN_CACHE_ROWS kernel rows of the largest
 * one-vs-one sub-problem, whatever n_threads (the row cache solves one sub-problem at a time, its threads sharing
 * each pass; n_threads is only checked).  Below it, sertk_nusvm_fit returns SERTK_EBUDGET instead of exceeding the
 * budget.  Returns -1 for invalid arguments.
 */
#define SERTK_MIN_CACHE_ROWS 4
double sertk_nusvm_min_cache_bytes(int n, const int *y, int n_classes, int n_threads);

/*
 * How a fit holds its kernel values within params.cache_bytes, decided from the class sizes alone: the whole Gram
 * matrix; else each pair's own Gram matrix, as many pairs at a time as fit (with every class's own Gram matrix kept
 * beside them when that fits too, or pairs chained through one buffer when only one pair fits); else a row cache
 * per worker.  sertk_nusvm_fit follows this plan, so a caller can tell before a long fit which path it takes.
 */
typedef struct {
    int kernel_mode;        /* SERTK_KMODE_* */
    int n_work;             /* sub-problems solved at once, one worker thread each */
    int inner_threads;      /* pair mode: threads that build each pair's Gram matrix */
    int team_parts;         /* threads that split each sub-problem's solver loops (1: none) */
    int reuse_diag;         /* pair mode: every class's own Gram matrix computed once, kept for the whole fit */
    int chained;            /* pair mode: one pair at a time, each reusing the class block it shares with the last */
    int kept_class;         /* chained: the class whose own block is kept (packed) beside the buffer, or -1 */
    double kept_bytes;      /* its packed upper triangle, within cache_bytes beside the pair buffer */
    int max_pair;           /* samples in the largest one-vs-one sub-problem (l_max) */
    double gram_bytes;      /* the whole float32 Gram matrix */
    double pair_bytes;      /* the largest pair's float32 Gram matrix */
    double min_cache_bytes; /* sertk_nusvm_min_cache_bytes: below it the fit returns SERTK_EBUDGET */
} sertk_nusvm_plan;

/*
 * Fill *plan for classes of sizes count[0..n_classes-1] (every one >= 1) under params' kernel, cache_bytes and
 * n_threads.  Returns SERTK_OK, SERTK_EBUDGET (plan filled: cache_bytes < plan->min_cache_bytes) or SERTK_EINVAL.
 */
int sertk_nusvm_plan_kernel(int n_classes, const int *count, const sertk_nusvm_params *params,
                            sertk_nusvm_plan *plan);

/*
 * One-vs-one decision values dec[m x n_pairs] (row-major).  X is the m x d test matrix; sv the n_sv x d support
 * vectors (for SERTK_KERNEL_PRECOMPUTED, X is the m x n_sv kernel between test samples and support vectors and
 * sv is unused).  n_support, dual_coef and rho come from a model.
 */
int sertk_nusvm_decision(const double *X, int m, int d, const double *sv, int n_sv, int kernel, double gamma,
                         int n_classes, const int *n_support, const double *dual_coef, const double *rho,
                         const sertk_blas *blas, int n_threads, double *dec);

/*
 * Class indices out[m] by libsvm's vote on the decision values sertk_nusvm_decision gives, the same labels, in
 * about half its time for the RBF kernel: the test x support-vector product runs in float32 (sertk_vote_screen.c),
 * with a proven bound on how far each decision value can be from the float64 one; a sample whose vote the bound
 * cannot settle takes the float64 path.  n_float64 (may be NULL) gets how many did.  Other kernels, a BLAS without
 * sgemm, and batches too small to repay the screen's fixed costs (fewer than SERTK_SCREEN_MIN_ROWS samples, or
 * fewer than one per 32 support vectors) take the float64 path for all.
 */
#define SERTK_SCREEN_MIN_ROWS 64
int sertk_nusvm_predict(const double *X, int m, int d, const double *sv, int n_sv, int kernel, double gamma,
                        int n_classes, const int *n_support, const double *dual_coef, const double *rho,
                        const sertk_blas *blas, int n_threads, int *out, int *n_float64);

/* libsvm's vote: pair (i, j) votes for i when its decision value is > 0, else for j; ties go to the lower index. */
int sertk_nusvm_vote(const double *dec, int m, int n_classes, int *out);

/* Probabilities out[m x n_classes] from decision values: Platt sigmoids per pair, then pairwise coupling. */
int sertk_nusvm_proba(const double *dec, int m, int n_classes, const double *prob_a, const double *prob_b,
                      double *out);

/* Platt's sigmoid fit (Lin, Lin & Weng's Newton method): P(y=1|f) = 1 / (1 + exp(A f + B)). */
void sertk_nusvm_sigmoid_train(int l, const double *dec, const signed char *label, double *A, double *B);

/* A human-readable message for a status code. */
const char *sertk_nusvm_strerror(int status);

#ifdef __cplusplus
}
#endif

#endif /* SERTK_NUSVM_H */
