/*
 * sertk_rowdot.c -- a few kernel rows without BLAS: dot products summed in libsvm's order, four columns at a time.
 *
 * The row cache computes one or two rows per miss.  A BLAS product that small spends most of its time packing the
 * sub-problem's samples (measured: 54 % of a row-cache fit in OpenBLAS's copy routine), and BLAS's matrix-vector
 * path rounds differently from its matrix-matrix path.  Here each value is libsvm's own dot product: a float64 sum
 * over k in order, each term a separate multiply then add (no FMA), exactly what libsvm's dense `dot` computes.
 * The samples are packed once per column set into panels of four columns, k-major, so that one AVX2 register holds
 * the same k of four columns; each lane is still one sequential sum, so the vector and scalar code give the same
 * bits, on any CPU.
 */
#include "sertk_kernel.h"

#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SERTK_HAVE_AVX2_PATH 1
#include <immintrin.h>
#endif

size_t sertk_panel_doubles(int nc, int d) { return (size_t)((nc + 3) / 4) * 4 * (size_t)d; }

void sertk_panel_pack(double *P, const double *X, const int *rows, int nc, int d)
{
    const int nq = (nc + 3) / 4;
    for (int q = 0; q < nq; q++) {
        double *pq = P + (size_t)q * 4 * d;
        for (int lane = 0; lane < 4; lane++) {
            const int t = 4 * q + lane;
            if (t < nc) {
                const double *x = X + (size_t)(rows ? rows[t] : t) * d;
                for (int kk = 0; kk < d; kk++) pq[(size_t)kk * 4 + lane] = x[kk];
            } else {
                for (int kk = 0; kk < d; kk++) pq[(size_t)kk * 4 + lane] = 0.0;
            }
        }
    }
}

static void sertk_rowdot_scalar(int nb, const double *const *a, int d, const double *P, int nc, double *out,
                                int ldo)
{
    const int nq = (nc + 3) / 4;
    for (int r = 0; r < nb; r++) {
        const double *ar = a[r];
        for (int q = 0; q < nq; q++) {
            const double *pq = P + (size_t)q * 4 * d;
            double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int kk = 0; kk < d; kk++) {
                const double v = ar[kk];
                s0 += v * pq[4 * kk];
                s1 += v * pq[4 * kk + 1];
                s2 += v * pq[4 * kk + 2];
                s3 += v * pq[4 * kk + 3];
            }
            const double s[4] = {s0, s1, s2, s3};
            for (int lane = 0; lane < 4 && 4 * q + lane < nc; lane++) out[(size_t)r * ldo + 4 * q + lane] = s[lane];
        }
    }
}

#ifdef SERTK_HAVE_AVX2_PATH
/* four rows at a time against one panel: 4 accumulators of 4 lanes, each lane a sequential sum (mul, then add) */
__attribute__((target("avx2"))) static void sertk_rowdot_avx2(int nb, const double *const *a, int d,
                                                              const double *P, int nc, double *out, int ldo)
{
    const int nq = (nc + 3) / 4;
    int r = 0;
    for (; r + 4 <= nb; r += 4) {
        const double *a0 = a[r], *a1 = a[r + 1], *a2 = a[r + 2], *a3 = a[r + 3];
        for (int q = 0; q < nq; q++) {
            const double *pq = P + (size_t)q * 4 * d;
            __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
            for (int kk = 0; kk < d; kk++) {
                const __m256d p = _mm256_loadu_pd(pq + 4 * kk);
                s0 = _mm256_add_pd(s0, _mm256_mul_pd(_mm256_broadcast_sd(a0 + kk), p));
                s1 = _mm256_add_pd(s1, _mm256_mul_pd(_mm256_broadcast_sd(a1 + kk), p));
                s2 = _mm256_add_pd(s2, _mm256_mul_pd(_mm256_broadcast_sd(a2 + kk), p));
                s3 = _mm256_add_pd(s3, _mm256_mul_pd(_mm256_broadcast_sd(a3 + kk), p));
            }
            double buf[4][4];
            _mm256_storeu_pd(buf[0], s0);
            _mm256_storeu_pd(buf[1], s1);
            _mm256_storeu_pd(buf[2], s2);
            _mm256_storeu_pd(buf[3], s3);
            for (int rr = 0; rr < 4; rr++)
                for (int lane = 0; lane < 4 && 4 * q + lane < nc; lane++)
                    out[(size_t)(r + rr) * ldo + 4 * q + lane] = buf[rr][lane];
        }
    }
    /* the rows left (fewer than four): four panels at a time, so that four sums are in flight, not one */
    for (; r < nb; r++) {
        const double *a0 = a[r];
        int q = 0;
        for (; q + 4 <= nq; q += 4) {
            const double *p0 = P + (size_t)q * 4 * d, *p1 = p0 + 4 * (size_t)d, *p2 = p1 + 4 * (size_t)d,
                         *p3 = p2 + 4 * (size_t)d;
            __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
            for (int kk = 0; kk < d; kk++) {
                const __m256d v = _mm256_broadcast_sd(a0 + kk);
                s0 = _mm256_add_pd(s0, _mm256_mul_pd(v, _mm256_loadu_pd(p0 + 4 * kk)));
                s1 = _mm256_add_pd(s1, _mm256_mul_pd(v, _mm256_loadu_pd(p1 + 4 * kk)));
                s2 = _mm256_add_pd(s2, _mm256_mul_pd(v, _mm256_loadu_pd(p2 + 4 * kk)));
                s3 = _mm256_add_pd(s3, _mm256_mul_pd(v, _mm256_loadu_pd(p3 + 4 * kk)));
            }
            double buf[16];
            _mm256_storeu_pd(buf, s0);
            _mm256_storeu_pd(buf + 4, s1);
            _mm256_storeu_pd(buf + 8, s2);
            _mm256_storeu_pd(buf + 12, s3);
            for (int t = 0; t < 16 && 4 * q + t < nc; t++) out[(size_t)r * ldo + 4 * q + t] = buf[t];
        }
        for (; q < nq; q++) {
            const double *pq = P + (size_t)q * 4 * d;
            __m256d s0 = _mm256_setzero_pd();
            for (int kk = 0; kk < d; kk++)
                s0 = _mm256_add_pd(s0, _mm256_mul_pd(_mm256_broadcast_sd(a0 + kk), _mm256_loadu_pd(pq + 4 * kk)));
            double buf[4];
            _mm256_storeu_pd(buf, s0);
            for (int lane = 0; lane < 4 && 4 * q + lane < nc; lane++) out[(size_t)r * ldo + 4 * q + lane] = buf[lane];
        }
    }
}
#endif

void sertk_rowdot(int nb, const double *const *a, int d, const double *P, int nc, double *out, int ldo)
{
#ifdef SERTK_HAVE_AVX2_PATH
    const int avx2 = (sertk_simd() & SERTK_SIMD_AVX2) != 0; /* SERTK_NUSVM_SCALAR=1: the scalar path */
    if (avx2) {
        sertk_rowdot_avx2(nb, a, d, P, nc, out, ldo);
        return;
    }
#endif
    sertk_rowdot_scalar(nb, a, d, P, nc, out, ldo);
}
