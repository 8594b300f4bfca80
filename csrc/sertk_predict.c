/*
 * sertk_predict.c -- prediction: decision values through one test x support-vector BLAS product per block of
 * test rows, one-vs-one voting, and probabilities (Platt's sigmoid, pairwise coupling).
 */
#include "sertk_internal.h"
#include "sertk_kernel.h"

#include <math.h>
#include <string.h>

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
void sertk_pair_coefs(int n_classes, const int *n_support, const double *dual_coef, int n_sv, double *cm)
{
    const int K = n_classes, P = K * (K - 1) / 2;
    for (size_t t = 0; t < (size_t)n_sv * P; t++) cm[t] = 0;
    int p = 0, si = 0;
    for (int i = 0; i < K; i++) {
        int sj = si + n_support[i];
        for (int j = i + 1; j < K; j++) {
            for (int q = si; q < si + n_support[i]; q++) cm[(size_t)q * P + p] = dual_coef[(size_t)(j - 1) * n_sv + q];
            for (int q = sj; q < sj + n_support[j]; q++) cm[(size_t)q * P + p] = dual_coef[(size_t)i * n_sv + q];
            sj += n_support[j];
            p++;
        }
        si += n_support[i];
    }
}

int sertk_check_model(int m, int d, int n_sv, int kernel, int n_classes, const int *n_support,
                      const sertk_blas *blas, int n_threads)
{
    if (m < 0 || d < 1 || n_sv < 0 || n_classes < 2 || n_threads < 1 || !blas || !blas->dgemm || !blas->ddot)
        return SERTK_EINVAL;
    if (kernel != SERTK_KERNEL_RBF && kernel != SERTK_KERNEL_LINEAR && kernel != SERTK_KERNEL_PRECOMPUTED)
        return SERTK_EINVAL;
    if (kernel == SERTK_KERNEL_PRECOMPUTED && d != n_sv) return SERTK_EINVAL;
    long long tot = 0;
    for (int c = 0; c < n_classes; c++) {
        if (n_support[c] < 0) return SERTK_EINVAL;
        tot += n_support[c];
    }
    return tot == n_sv ? SERTK_OK : SERTK_EINVAL;
}

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
                sertk_rbf_row_f64(j->n_sv, kr, j->sv_sq, sqx, j->gamma);
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

int sertk_decision_values(const double *X, int m, int d, const double *sv, int n_sv, int kernel, double gamma,
                          int P, const double *cm, const double *sv_sq, const double *rho, const sertk_blas *blas,
                          int n_threads, double *dec)
{
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
    double *kbuf = NULL;
    if (kernel != SERTK_KERNEL_PRECOMPUTED) {
        kbuf = SERTK_NEW(double, (size_t)nw * job.block * n_sv);
        if (!kbuf) return SERTK_ENOMEM;
    }
    job.kbuf = kbuf;
    const int rc = sertk_parallel_for(nw, ntasks, sertk_dec_task, &job);
    free(kbuf);
    return rc;
}

int sertk_nusvm_decision(const double *X, int m, int d, const double *sv, int n_sv, int kernel, double gamma,
                         int n_classes, const int *n_support, const double *dual_coef, const double *rho,
                         const sertk_blas *blas, int n_threads, double *dec)
{
    const int K = n_classes;
    if (sertk_check_model(m, d, n_sv, kernel, K, n_support, blas, n_threads) != SERTK_OK) return SERTK_EINVAL;
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
    if (!cm || !sv_sq) {
        rc = SERTK_ENOMEM;
        goto out;
    }
    sertk_pair_coefs(K, n_support, dual_coef, n_sv, cm);
    if (kernel == SERTK_KERNEL_RBF)
        for (int s = 0; s < n_sv; s++) sv_sq[s] = sertk_dot(blas, d, sv + (size_t)s * d, sv + (size_t)s * d);

    rc = sertk_decision_values(X, m, d, sv, n_sv, kernel, gamma, P, cm, sv_sq, rho, blas, n_threads, dec);
out:
    free(cm);
    free(sv_sq);
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
