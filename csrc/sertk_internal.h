/*
 * sertk_internal.h -- what the C core's files share and nothing outside csrc/ may use: allocation, libsvm's
 * min/max, the cancellation flag, progress counters, a pthread parallel-for, a persistent thread team and the
 * BLAS calls.
 *
 * Exactness.  Every file of the core includes this header first: floating-point contraction (FMA) is off,
 * since fusing a*b+c changes rounding and the solver must follow libsvm's iteration path bit for bit (see
 * sertk_smo.c).
 */
#ifndef SERTK_INTERNAL_H
#define SERTK_INTERNAL_H

#include "sertk_nusvm.h"

#include <stddef.h>
#include <stdlib.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#if defined(__GNUC__)
#define SERTK_HIDDEN __attribute__((visibility("hidden")))
#else
#define SERTK_HIDDEN
#endif

#define SERTK_INF HUGE_VAL
#define SERTK_TAU 1e-12
#define SERTK_NFOLD 5

typedef signed char schar;

static inline void *sertk_alloc(size_t count, size_t size)
{
    if (count == 0) count = 1;
    if (size != 0 && count > ((size_t)-1) / size) return NULL;
    return malloc(count * size);
}
#define SERTK_NEW(type, count) ((type *)sertk_alloc((size_t)(count), sizeof(type)))

/* a large buffer (the Gram matrix), 2 MiB-aligned and marked for transparent huge pages where Linux has them */
SERTK_HIDDEN void *sertk_big_alloc(size_t bytes);

/* the caller's cancellation flag (params.cancel): one volatile read, never written by the core */
static inline int sertk_cancelled(const volatile int *flag) { return flag != NULL && *flag != 0; }

/* what the fit has done, into params.progress (may be NULL): relaxed atomic adds, since workers report at once */
static inline void sertk_report_values(sertk_nusvm_progress *p, long long v)
{
    if (p != NULL && v != 0) __atomic_fetch_add(&p->kernel_values, v, __ATOMIC_RELAXED);
}
static inline void sertk_report_iterations(sertk_nusvm_progress *p, long long v)
{
    if (p != NULL && v != 0) __atomic_fetch_add(&p->iterations, v, __ATOMIC_RELAXED);
}
static inline void sertk_report_subproblem(sertk_nusvm_progress *p)
{
    if (p != NULL) __atomic_fetch_add(&p->subproblems_done, 1, __ATOMIC_RELAXED);
}


static inline double sertk_min(double a, double b) { return a < b ? a : b; }  /* libsvm's min: (x<y)?x:y */
static inline double sertk_max(double a, double b) { return a > b ? a : b; }  /* libsvm's max: (x>y)?x:y */

/*
 * The vector paths this CPU may take (sertk_base.c): SERTK_SIMD_AVX2 (row dot products, solver loops) and
 * SERTK_SIMD_AVX2_FMA (kernel exp), or 0.  SERTK_NUSVM_SCALAR=1 in the environment gives 0, so that tests can
 * run the scalar code, which CPUs without AVX2 take, on any machine.  Read once per process.
 */
#define SERTK_SIMD_AVX2 1
#define SERTK_SIMD_AVX2_FMA 2
SERTK_HIDDEN int sertk_simd(void);

/* parallel for: tasks 0..ntasks-1 handed out in order to n_threads workers; the first failing status wins */
typedef int (*sertk_task_fn)(void *ctx, int task, int worker);
SERTK_HIDDEN int sertk_parallel_for(int n_threads, int ntasks, sertk_task_fn fn, void *ctx);

/*
 * A persistent team for loops inside one solver iteration (sertk_team.c): sertk_team_run calls fn(ctx, part,
 * nparts) once for every part, part 0 on the caller's thread, and returns when all are done.  sertk_team_start
 * gives NULL when nparts < 2 or no helper thread starts; every call accepts NULL and then runs part 0 of 1.
 */
typedef void (*sertk_part_fn)(void *ctx, int part, int nparts);
typedef struct sertk_team sertk_team;
SERTK_HIDDEN sertk_team *sertk_team_start(int nparts);
SERTK_HIDDEN int sertk_team_size(const sertk_team *t);
SERTK_HIDDEN void sertk_team_run(sertk_team *t, sertk_part_fn fn, void *ctx);
SERTK_HIDDEN void sertk_team_stop(sertk_team *t);

/* dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols: a block of a float matrix, transposed (mirroring) */
SERTK_HIDDEN void sertk_transpose(const float *src, size_t lds, float *dst, size_t ldd, int rows, int cols);

/* C (mr x nc, row stride ldc) = A (mr x k, row-major, stride lda) * B (nc x k, row-major, stride ldb)^T */
SERTK_HIDDEN void sertk_gemm_abt(const sertk_blas *blas, int mr, int nc, int k, const double *A, int lda,
                                 const double *B, int ldb, double *C, int ldc);
/* C (mr x nc, row-major) = A (mr x k, row-major) * B (k x nc, row-major) */
SERTK_HIDDEN void sertk_gemm_ab(const sertk_blas *blas, int mr, int nc, int k, const double *A, const double *B,
                                double *C);
SERTK_HIDDEN double sertk_dot(const sertk_blas *blas, int d, const double *x, const double *y);

/*
 * Prediction (sertk_predict.c): whether a model's sizes and a call's arguments fit together; every pair's
 * coefficients as one n_sv x P row-major matrix, cm[q][p] the coefficient of support vector q in pair p (0 where
 * q's class is not in p), so that one product gives all pairs.
 */
SERTK_HIDDEN int sertk_check_model(int m, int d, int n_sv, int kernel, int n_classes, const int *n_support,
                                  const sertk_blas *blas, int n_threads); /* SERTK_OK or SERTK_EINVAL */
SERTK_HIDDEN void sertk_pair_coefs(int n_classes, const int *n_support, const double *dual_coef, int n_sv,
                                   double *cm);
/* sertk_nusvm_decision's work for m >= 1 samples and n_sv >= 1 support vectors, given the model's coefficient matrix
 * (sertk_pair_coefs) and, for the RBF kernel, the support vectors' squared norms (sertk_dot) */
SERTK_HIDDEN int sertk_decision_values(const double *X, int m, int d, const double *sv, int n_sv, int kernel,
                                       double gamma, int P, const double *cm, const double *sv_sq, const double *rho,
                                       const sertk_blas *blas, int n_threads, double *dec);

#endif
