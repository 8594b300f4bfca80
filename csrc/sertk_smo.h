/*
 * sertk_smo.h -- the SMO solver for the nu formulation and binary nu-SVC over it (libsvm's Solver_NU and
 * solve_nu_svc), with the per-thread workspace it runs in.
 */
#ifndef SERTK_SMO_H
#define SERTK_SMO_H

#include "sertk_kernel.h"

/* one worker thread's buffers, sized for the largest one-vs-one sub-problem (maxl samples) */
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
    sertk_rcache cache; /* cache mode */
    int has_cache;
    sertk_pgram pgram;  /* pair mode */
    int has_pgram;
    sertk_team *team;   /* Gram and pair modes: threads this worker splits the solver's loops over, or NULL */
} sertk_work;

/*
 * kernel_mode: SERTK_KMODE_*; cache_budget: bytes of this worker's row cache (cache mode only); team_parts:
 * threads for the solver's loops (the worker's own plus helpers; Gram and pair modes only, 1 for none)
 */
SERTK_HIDDEN int sertk_work_init(sertk_work *w, int maxl, int probability, const sertk_kctx *k, int kernel_mode,
                                 double cache_budget, int team_parts);
SERTK_HIDDEN void sertk_work_free(sertk_work *w);

/*
 * libsvm's solve_nu_svc on the sub-problem gidx[0..l) (grouped indices) with labels y and bounds C: on return
 * coef[i] = y_i alpha_i / r (the dual coefficient) and *rho is the scaled rho.  state: NULL, or where the solver
 * resumes from (a nonzero version) and keeps its state every state_every_s seconds and when cancelled
 * (sertk_nusvm_pairs.states); SERTK_EINVAL when the state given cannot be this sub-problem's.
 */
SERTK_HIDDEN int sertk_nu_svc(sertk_work *w, const sertk_kctx *k, const sertk_nusvm_params *par, int l,
                              const int *gidx, const schar *y, const double *C, double *coef, double *rho,
                              int *n_iter, int *timed_out, sertk_nusvm_state *state, double state_every_s);

#endif
