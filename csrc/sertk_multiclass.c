/*
 * sertk_multiclass.c -- one-vs-one training: the class-pair sub-problems (spread over threads), libsvm's 5-fold
 * probability cross-validation with Platt's sigmoid, and the model in libsvm's layout.
 */
#include "sertk_smo.h"

#include <math.h>
#include <string.h>


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
                double v = k->gram ? (double)k->gram[(size_t)g * k->ld + h]
                                   : (double)(float)k->K[(size_t)g * k->n + h];
                sum += w->fa[b] * v;
            }
            sum -= rho_f;
            w->dec[perm[j]] = sum * -1; /* the fold model's first label is -1 */
        }
        return;
    }
    /* cache mode: the cache holds the fold's training samples (pfull, in panel order); held-out rows as the solver's */
    sertk_rcache *c = &w->cache;
    const int d = k->d, B = c->block;
    for (int j0 = begin; j0 < end; j0 += B) {
        const int nb = (end - j0 < B) ? end - j0 : B;
        for (int r = 0; r < nb; r++) c->arow[r] = k->X + (size_t)gidx[perm[j0 + r]] * d;
        sertk_rowdot(nb, c->arow, d, c->pfull, k->x_f32, lf, c->obuf, lf);
        for (int r = 0; r < nb; r++) {
            const int h = gidx[perm[j0 + r]];
            const double *o = c->obuf + (size_t)r * lf;
            double sum = 0;
            for (int b = 0; b < lf; b++) {
                if (!(fabs(w->fa[b]) > 0)) continue;
                const int t = c->pcol[b]; /* b's panel column */
                sum += w->fa[b] * (double)(float)sertk_kval(k, o[t], k->sq[h], c->sqp[t]);
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
        int rc = sertk_nu_svc(w, k, par, lf, w->fgidx, w->fy, w->fC, w->fa, &rho_f, &it, &to, NULL, 0);
        if (rc != SERTK_OK) return rc;
        sertk_fold_decisions(w, k, lf, rho_f, perm, begin, end);
    }
    if (sertk_cancelled(k->cancel)) return SERTK_ECANCELLED;
    sertk_nusvm_sigmoid_train(l, dec, ysub, A, B);
    return SERTK_OK;
}

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
    int inner_threads; /* pair mode: threads for each pair's Gram matrix */
    float **diag;      /* pair mode: each class's own Gram matrix (count x count), or NULL to compute it per pair */
    const int *order;  /* pair mode, chained: task t solves pair order[t]; NULL: pair t */
} sertk_fit_ctx;

/*
 * The order of the pairs in a chain and its cost in class-block kernel values (cross blocks are computed once in
 * any order).  A pair's class block costs n_c^2 / 2 values unless the pair before shares that class (its block is
 * moved) or it is the kept class already computed (unpacked).  Up to SERTK_CHAIN_EXACT pairs (4 classes) every
 * order is tried (720; the first best order found); beyond, from the largest pair, greedily the next pair that
 * costs least.  Pairs are independent sub-problems, so the order changes no result.  order may be NULL (cost
 * only).  Returns -1 when out of memory.
 */
#define SERTK_CHAIN_EXACT 6

typedef struct {
    int P;
    const int *pi, *pj;
    const double *half; /* n_c^2 / 2 per class */
    int kept;
    int cur[SERTK_CHAIN_EXACT], best[SERTK_CHAIN_EXACT];
    char used[SERTK_CHAIN_EXACT];
    double best_cost;
} sertk_chain_search;

/* the block cost of pair p after pair prev (-1: none), with the kept class already stored or not */
static double sertk_chain_step(const sertk_chain_search *cs, int prev, int p, int stored)
{
    double cost = 0;
    const int cls[2] = {cs->pi[p], cs->pj[p]};
    for (int side = 0; side < 2; side++) {
        const int c = cls[side];
        const int moved = prev >= 0 && (c == cs->pi[prev] || c == cs->pj[prev]);
        if (!moved && !(c == cs->kept && stored)) cost += cs->half[c];
    }
    return cost;
}

static int sertk_chain_has(const sertk_chain_search *cs, int p, int c) { return cs->pi[p] == c || cs->pj[p] == c; }

static void sertk_chain_dfs(sertk_chain_search *cs, int t, double cost, int stored)
{
    if (cost >= cs->best_cost) return;
    if (t == cs->P) {
        cs->best_cost = cost;
        memcpy(cs->best, cs->cur, sizeof(int) * (size_t)cs->P);
        return;
    }
    for (int p = 0; p < cs->P; p++) {
        if (cs->used[p]) continue;
        cs->used[p] = 1;
        cs->cur[t] = p;
        const int prev = t > 0 ? cs->cur[t - 1] : -1;
        sertk_chain_dfs(cs, t + 1, cost + sertk_chain_step(cs, prev, p, stored),
                        stored || (cs->kept >= 0 && sertk_chain_has(cs, p, cs->kept)));
        cs->used[p] = 0;
    }
}

static double sertk_chain_plan(int K, const int *count, int kept, int *order)
{
    const int P = K * (K - 1) / 2;
    int *pi = SERTK_NEW(int, P), *pj = SERTK_NEW(int, P), *tmp = SERTK_NEW(int, P);
    double *half = SERTK_NEW(double, K);
    char *used = SERTK_NEW(char, P);
    double total = -1;
    if (!pi || !pj || !tmp || !half || !used) goto out;
    for (int c = 0, p = 0; c < K; c++) {
        half[c] = 0.5 * (double)count[c] * (double)count[c];
        for (int j = c + 1; j < K; j++, p++) {
            pi[p] = c;
            pj[p] = j;
        }
    }
    sertk_chain_search cs;
    cs.P = P;
    cs.pi = pi;
    cs.pj = pj;
    cs.half = half;
    cs.kept = kept;
    if (P <= SERTK_CHAIN_EXACT) {
        memset(cs.used, 0, sizeof(cs.used));
        cs.best_cost = SERTK_INF;
        sertk_chain_dfs(&cs, 0, 0.0, 0);
        memcpy(tmp, cs.best, sizeof(int) * (size_t)P);
        total = cs.best_cost;
    } else {
        /* from the largest pair, then the cheapest next */
        int first = 0;
        for (int p = 1; p < P; p++)
            if (count[pi[p]] + count[pj[p]] > count[pi[first]] + count[pj[first]]) first = p;
        for (int p = 0; p < P; p++) used[p] = 0;
        int cur = first, stored = kept >= 0 && sertk_chain_has(&cs, first, kept);
        tmp[0] = first;
        used[first] = 1;
        total = sertk_chain_step(&cs, -1, first, 0);
        for (int t = 1; t < P; t++) {
            int best = -1;
            double best_cost = SERTK_INF;
            for (int p = 0; p < P; p++) {
                if (used[p]) continue;
                const double c = sertk_chain_step(&cs, cur, p, stored);
                if (c < best_cost) {
                    best = p;
                    best_cost = c;
                }
            }
            tmp[t] = best;
            used[best] = 1;
            total += best_cost;
            stored = stored || (kept >= 0 && sertk_chain_has(&cs, best, kept));
            cur = best;
        }
    }
    if (order) memcpy(order, tmp, sizeof(int) * (size_t)P);
out:
    free(pi);
    free(pj);
    free(tmp);
    free(half);
    free(used);
    return total;
}

static int sertk_pair_task(void *vctx, int task, int worker)
{
    sertk_fit_ctx *c = (sertk_fit_ctx *)vctx;
    const int p = c->order ? c->order[task] : task;
    sertk_work *w = &c->work[worker];
    const int ci = c->pair_i[p], cj = c->pair_j[p];
    const int si = c->start[ci], sj = c->start[cj], ni = c->count[ci], nj = c->count[cj];
    const int l = ni + nj;
    if (sertk_cancelled(c->k->cancel)) return SERTK_ECANCELLED;
    sertk_nusvm_pairs *given = c->par->pairs;
    if (given && __atomic_load_n(&given->done[p], __ATOMIC_ACQUIRE)) {
        /* solved by an earlier fit of the same problem: taken as it is, no kernel value computed */
        double *coef = SERTK_NEW(double, l);
        if (!coef) return SERTK_ENOMEM;
        memcpy(coef, given->coef[p], sizeof(double) * (size_t)l);
        c->coef[p] = coef;
        c->rho[p] = given->rho[p];
        c->n_iter[p] = given->n_iter[p];
        c->timed_out[p] = given->timed_out[p];
        if (c->par->probability) {
            c->probA[p] = given->prob_a[p];
            c->probB[p] = given->prob_b[p];
        }
        for (int f = 0; f < (c->par->probability ? 1 + SERTK_NFOLD : 1); f++)
            sertk_report_subproblem(c->par->progress);
        return SERTK_OK;
    }
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
    const sertk_kctx *k = c->k;
    sertk_kctx local;
    if (w->has_pgram) {
        /* pair mode: this pair's own Gram matrix; from here on the sub-problem's samples are 0..l-1 */
        int rc = c->diag    ? sertk_pgram_build_cross(&w->pgram, c->k, ni, nj, w->gidx, c->diag[ci], c->diag[cj],
                                                      c->inner_threads, &local)
                 : c->order ? sertk_pgram_build_chain(&w->pgram, c->k, ci, cj, ni, nj, w->gidx, c->inner_threads,
                                                      &local)
                            : sertk_pgram_build(&w->pgram, c->k, l, w->gidx, c->inner_threads, &local);
        if (rc != SERTK_OK) return rc;
        for (int a = 0; a < l; a++) w->gidx[a] = a;
        k = &local;
    }
    if (c->par->probability) {
        int rc = sertk_pair_probability(w, k, c->par, l, c->prob_perm + c->perm_off[p], &c->probA[p],
                                        &c->probB[p]);
        if (rc != SERTK_OK) return rc;
    }
    double *coef = SERTK_NEW(double, l);
    if (!coef) return SERTK_ENOMEM;
    sertk_nusvm_state *state = given && given->states ? &given->states[p] : NULL;
    int rc = sertk_nu_svc(w, k, c->par, l, w->gidx, w->ysub, w->Csub, coef, &c->rho[p], &c->n_iter[p],
                          &c->timed_out[p], state, given ? given->state_every_s : 0);
    if (rc != SERTK_OK) {
        free(coef);
        return rc;
    }
    c->coef[p] = coef;
    if (given) { /* the caller's copy, flag last: it may save the pair while the others go on */
        memcpy(given->coef[p], coef, sizeof(double) * (size_t)l);
        given->rho[p] = c->rho[p];
        given->n_iter[p] = c->n_iter[p];
        given->timed_out[p] = c->timed_out[p];
        if (c->par->probability) {
            given->prob_a[p] = c->probA[p];
            given->prob_b[p] = c->probB[p];
        }
        __atomic_store_n(&given->done[p], 1, __ATOMIC_RELEASE);
        if (state != NULL) { /* solved: its solver's state is of no more use */
            sertk_nusvm_states_lock();
            state->version = 0;
            sertk_nusvm_states_unlock();
        }
    }
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

/* SERTK_MIN_CACHE_ROWS rows of the largest sub-problem (max_pair samples): the row cache's one worker */
static double sertk_min_cache_of(int max_pair)
{
    return SERTK_MIN_CACHE_ROWS * (double)max_pair * sizeof(float);
}

double sertk_nusvm_min_cache_bytes(int n, const int *y, int n_classes, int n_threads)
{
    if (n < 1 || !y || n_classes < 2 || n_threads < 1) return -1;
    int *count = SERTK_NEW(int, n_classes);
    if (!count) return -1;
    for (int c = 0; c < n_classes; c++) count[c] = 0;
    for (int i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= n_classes) {
            free(count);
            return -1;
        }
        count[y[i]]++;
    }
    /* the largest sub-problem: the two largest classes */
    int first = 0, second = 0;
    for (int c = 0; c < n_classes; c++) {
        if (count[c] > first) {
            second = first;
            first = count[c];
        } else if (count[c] > second) {
            second = count[c];
        }
    }
    free(count);
    return sertk_min_cache_of(first + second);
}

#define SERTK_BLOCKS_OVER (128.0 * 1048576.0)

int sertk_nusvm_plan_kernel(int n_classes, const int *count, const sertk_nusvm_params *par, sertk_nusvm_plan *plan)
{
    memset(plan, 0, sizeof(*plan));
    if (n_classes < 2 || !count || !par || par->n_threads < 1) return SERTK_EINVAL;
    double n = 0, diag_bytes = 0;
    for (int c = 0; c < n_classes; c++) {
        if (count[c] < 1) return SERTK_EINVAL;
        n += count[c];
        diag_bytes += (double)count[c] * (double)count[c] * sizeof(float);
    }
    const int P = n_classes * (n_classes - 1) / 2;
    for (int i = 0; i < n_classes; i++)
        for (int j = i + 1; j < n_classes; j++)
            if (count[i] + count[j] > plan->max_pair) plan->max_pair = count[i] + count[j];
    plan->gram_bytes = n * n * sizeof(float);
    plan->pair_bytes = (double)plan->max_pair * (double)plan->max_pair * sizeof(float);
    plan->min_cache_bytes = sertk_min_cache_of(plan->max_pair);
    /*
     * On one thread and above SERTK_BLOCKS_OVER bytes of Gram matrix, the class blocks (every class's own block
     * computed once, then each pair's matrix from its two classes' blocks and its cross block) come first when they
     * fit: n^2/2 values like the whole Gram matrix, in 0.63 of its memory for four classes like IEMOCAP's (fresh
     * pages are zeroed by the kernel, slowly on a VM), and the solver reads the rows of its own l x l matrix instead
     * of the pair's columns in rows of length n.  Fresh processes, four classes, AMD EPYC Zen 4
     * (benchmarks/RESULTS-nusvm.md, fifth pass): 11 % faster at 7000 x 1024, 9 % at 10 000, even at 6000, 7 %
     * slower at 4425 (the copies cost more than the memory saves).  With two threads each running pair needs its
     * own matrix, so the blocks save no memory and were 8 % slower at 10 000.  The whole Gram matrix also serves two
     * classes (one pair: the same matrix), a precomputed kernel, and budgets between.
     */
    const int blocks_fit = P > 1 && par->n_threads == 1 && par->kernel != SERTK_KERNEL_PRECOMPUTED &&
                           plan->gram_bytes > SERTK_BLOCKS_OVER && diag_bytes + plan->pair_bytes <= par->cache_bytes;
    plan->kernel_mode = blocks_fit                             ? SERTK_KMODE_PAIR
                        : plan->gram_bytes <= par->cache_bytes ? SERTK_KMODE_GRAM
                        : plan->pair_bytes <= par->cache_bytes ? SERTK_KMODE_PAIR
                                                               : SERTK_KMODE_CACHE;
    plan->n_work = par->n_threads < P ? par->n_threads : P;
    plan->inner_threads = 1;
    if (plan->kernel_mode == SERTK_KMODE_PAIR) {
        plan->reuse_diag = par->kernel != SERTK_KERNEL_PRECOMPUTED && diag_bytes + plan->pair_bytes <= par->cache_bytes;
        const double fit = floor((par->cache_bytes - (plan->reuse_diag ? diag_bytes : 0)) / plan->pair_bytes);
        if (fit < plan->n_work) plan->n_work = (int)fit;
        plan->inner_threads = par->n_threads / plan->n_work;
        plan->chained = !plan->reuse_diag && plan->n_work == 1 && P > 1 && par->kernel != SERTK_KERNEL_PRECOMPUTED;
    }
    plan->kept_class = -1;
    if (plan->chained) {
        /* beside the buffer, the packed block of the class whose keeping saves most kernel values, if any fits */
        const double spare = par->cache_bytes - plan->pair_bytes;
        double best = sertk_chain_plan(n_classes, count, -1, NULL);
        for (int c = 0; c < n_classes && best >= 0; c++) {
            const double bytes = (double)sertk_packed_floats(count[c]) * sizeof(float);
            if (bytes > spare) continue;
            const double cost = sertk_chain_plan(n_classes, count, c, NULL);
            if (cost >= 0 && cost < best) {
                best = cost;
                plan->kept_class = c;
                plan->kept_bytes = bytes;
            }
        }
    }
    /*
     * Row cache: one pair at a time with every thread and the whole budget, not one pair per thread with a share
     * each.  A miss is a pass over the pair's samples, split over the team by columns, and twice the rows cached
     * means far fewer misses: two threads, 20 000 x 1024 with 346 MB, 33.2/35.6 s against 50.1/54.6 s for two
     * workers (Zen 4), and 1.2 against 1.5 s at 3000 with 3 MB (benchmarks/RESULTS-nusvm.md, sixth pass).
     */
    if (plan->kernel_mode == SERTK_KMODE_CACHE) plan->n_work = 1;
    /* threads beyond one per worker split each solver's loops (and, in cache mode, each pass over the samples) */
    plan->team_parts = par->n_threads / plan->n_work;
    if (plan->kernel_mode == SERTK_KMODE_CACHE && par->cache_bytes < plan->min_cache_bytes) return SERTK_EBUDGET;
    return SERTK_OK;
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
    /* pairs solved by an earlier fit: when that is all of them, no kernel value is needed */
    int all_given = 0;
    if (par->pairs) {
        const sertk_nusvm_pairs *g = par->pairs;
        if (!g->done || !g->coef || !g->rho || !g->n_iter || !g->timed_out ||
            (par->probability && (!g->prob_a || !g->prob_b)))
            return SERTK_EINVAL;
        all_given = 1;
        for (int p = 0; p < P; p++) {
            if (!g->coef[p]) return SERTK_EINVAL;
            all_given = all_given && g->done[p];
        }
    }
    if (par->progress) { /* another thread may be reading it already */
        sertk_nusvm_progress *pg = par->progress;
        __atomic_store_n(&pg->subproblems_done, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&pg->kernel_values, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&pg->iterations, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&pg->subproblems_total, P * (par->probability ? 1 + SERTK_NFOLD : 1), __ATOMIC_RELAXED);
    }
    int *count = SERTK_NEW(int, K), *start = SERTK_NEW(int, K), *orig = SERTK_NEW(int, n);
    int *pair_i = SERTK_NEW(int, P), *pair_j = SERTK_NEW(int, P), *nonzero = SERTK_NEW(int, n);
    long long *perm_off = SERTK_NEW(long long, P + 1);
    double *sq = SERTK_NEW(double, n), *qd = SERTK_NEW(double, n);
    double **coef = SERTK_NEW(double *, P);
    double *rho = SERTK_NEW(double, P), *probA = SERTK_NEW(double, P), *probB = SERTK_NEW(double, P);
    int *n_iter = SERTK_NEW(int, P), *timed_out = SERTK_NEW(int, P);
    float *gram = NULL;
    int *chain = NULL;
    float **diag = NULL;
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
    kc.ld = n;
    kc.d = d;
    kc.sq = sq;
    kc.qd = qd;
    kc.blas = blas;
    kc.cancel = par->cancel;
    kc.progress = par->progress;
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

    /* how the kernel is held within the budget (sertk_nusvm_plan_kernel), decided before any large allocation */
    sertk_nusvm_plan plan;
    rc = sertk_nusvm_plan_kernel(K, count, par, &plan);
    if (rc != SERTK_OK) goto done; /* SERTK_EBUDGET: never more memory than the budget */
    const int kmode = plan.kernel_mode, maxl = plan.max_pair, reuse_diag = plan.reuse_diag;
    n_work = plan.n_work;
    /* the row cache streams the samples once per row: in float32 when that holds them exactly */
    if (kmode == SERTK_KMODE_CACHE && par->kernel != SERTK_KERNEL_PRECOMPUTED)
        kc.x_f32 = sertk_all_float32(prob->X, (size_t)n * (size_t)d);
    if (kmode == SERTK_KMODE_GRAM && !all_given) {
        gram = sertk_big_alloc((size_t)n * n * sizeof(float));
        if (!gram) {
            rc = SERTK_ENOMEM;
            goto done;
        }
        kc.gram = gram;
        rc = sertk_gram_compute(&kc, par->n_threads);
        if (rc != SERTK_OK) goto done;
    }
    model->kernel_mode = kmode;

    /* one workspace per worker thread */
    {
        work = SERTK_NEW(sertk_work, n_work);
        if (!work) {
            rc = SERTK_ENOMEM;
            goto done;
        }
        memset(work, 0, sizeof(sertk_work) * (size_t)n_work);
        for (int t = 0; t < n_work && !all_given; t++) {
            rc = sertk_work_init(&work[t], maxl, par->probability, &kc, kmode, par->cache_bytes / n_work,
                                 plan.team_parts);
            if (rc != SERTK_OK) goto done;
        }
    }

    /* pair mode: every class's own Gram matrix, all threads on each, before the pairs */
    if (reuse_diag && !all_given) {
        diag = SERTK_NEW(float *, K);
        if (!diag) {
            rc = SERTK_ENOMEM;
            goto done;
        }
        for (int c = 0; c < K; c++) diag[c] = NULL;
        for (int c = 0; c < K; c++) {
            diag[c] = sertk_big_alloc((size_t)count[c] * count[c] * sizeof(float));
            if (!diag[c]) {
                rc = SERTK_ENOMEM;
                goto done;
            }
            sertk_pgram scratch = work[0].pgram; /* its sample buffers; the matrix goes to diag[c] */
            scratch.gram = diag[c];
            sertk_kctx unused;
            rc = sertk_pgram_build(&scratch, &kc, count[c], orig + start[c], par->n_threads, &unused);
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
    fc.inner_threads = plan.inner_threads;
    fc.diag = diag;
    fc.order = NULL;
    /* one pair at a time without the classes' own matrices: pairs chained through one buffer */
    if (plan.chained) {
        chain = SERTK_NEW(int, P);
        if (!chain) {
            rc = SERTK_ENOMEM;
            goto done;
        }
        if (sertk_chain_plan(K, count, plan.kept_class, chain) < 0) {
            rc = SERTK_ENOMEM;
            goto done;
        }
        if (plan.kept_class >= 0 && !all_given) {
            work[0].pgram.kept = sertk_big_alloc((size_t)plan.kept_bytes);
            if (!work[0].pgram.kept) {
                rc = SERTK_ENOMEM;
                goto done;
            }
            work[0].pgram.kept_class = plan.kept_class;
        }
        fc.order = chain;
    }
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
    free(chain);
    if (diag)
        for (int c = 0; c < K; c++) free(diag[c]);
    free(diag);
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
