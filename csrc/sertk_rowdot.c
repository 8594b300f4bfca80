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
 *
 * Once the cache is full each miss streams every packed sample once for one row (49 MB at 6000 x 1024 in float64),
 * so the path is bound by memory bandwidth (89 % of a 10 000-sample fit with a 50 MB budget in this file).  When
 * every sample value is a float32, as audio embeddings are, panels hold float32 values, widened exactly to float64
 * before each product: the same sums from half the bytes.  Each body below is written once and specialised for
 * the two panel types by an always-inlined loader with a constant flag.
 */
#include "sertk_kernel.h"

#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SERTK_HAVE_AVX2_PATH 1
#include <immintrin.h>
#endif

size_t sertk_panel_bytes(int nc, int d, int f32)
{
    return (size_t)((nc + 3) / 4) * 4 * (size_t)d * (f32 ? sizeof(float) : sizeof(double));
}

int sertk_all_float32(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((double)(float)x[i] != x[i]) return 0;
    return 1;
}

void sertk_panel_pack(void *P, int f32, const double *X, const int *rows, int nc, int d)
{
    const int nq = (nc + 3) / 4;
    for (int q = 0; q < nq; q++) {
        const size_t base = (size_t)q * 4 * d;
        for (int lane = 0; lane < 4; lane++) {
            const int t = 4 * q + lane;
            const double *x = t < nc ? X + (size_t)(rows ? rows[t] : t) * d : NULL;
            for (int kk = 0; kk < d; kk++) {
                const double v = x ? x[kk] : 0.0;
                if (f32)
                    ((float *)P)[base + (size_t)kk * 4 + lane] = (float)v; /* exact: the caller checked */
                else
                    ((double *)P)[base + (size_t)kk * 4 + lane] = v;
            }
        }
    }
}

/* panel value i as float64 (exact for either type) */
static inline __attribute__((always_inline)) double sertk_pval(const void *P, size_t i, int f32)
{
    return f32 ? (double)((const float *)P)[i] : ((const double *)P)[i];
}

static inline __attribute__((always_inline)) void sertk_rowdot_scalar_body(int nb, const double *const *a, int d,
                                                                           const void *P, int f32, int nc,
                                                                           double *out, int ldo)
{
    const int nq = (nc + 3) / 4;
    for (int r = 0; r < nb; r++) {
        const double *ar = a[r];
        for (int q = 0; q < nq; q++) {
            const size_t pq = (size_t)q * 4 * d;
            double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int kk = 0; kk < d; kk++) {
                const double v = ar[kk];
                s0 += v * sertk_pval(P, pq + 4 * (size_t)kk, f32);
                s1 += v * sertk_pval(P, pq + 4 * (size_t)kk + 1, f32);
                s2 += v * sertk_pval(P, pq + 4 * (size_t)kk + 2, f32);
                s3 += v * sertk_pval(P, pq + 4 * (size_t)kk + 3, f32);
            }
            const double s[4] = {s0, s1, s2, s3};
            for (int lane = 0; lane < 4 && 4 * q + lane < nc; lane++) out[(size_t)r * ldo + 4 * q + lane] = s[lane];
        }
    }
}

static void sertk_rowdot_scalar64(int nb, const double *const *a, int d, const void *P, int nc, double *out, int ldo)
{
    sertk_rowdot_scalar_body(nb, a, d, P, 0, nc, out, ldo);
}

static void sertk_rowdot_scalar32(int nb, const double *const *a, int d, const void *P, int nc, double *out, int ldo)
{
    sertk_rowdot_scalar_body(nb, a, d, P, 1, nc, out, ldo);
}

#ifdef SERTK_HAVE_AVX2_PATH
#define SERTK_AVX2_INLINE __attribute__((target("avx2"), always_inline)) static inline

/* four panel values from element i on, as float64 (exact for either type) */
SERTK_AVX2_INLINE __m256d sertk_pload4(const void *P, size_t i, int f32)
{
    return f32 ? _mm256_cvtps_pd(_mm_loadu_ps((const float *)P + i)) : _mm256_loadu_pd((const double *)P + i);
}

/* four rows at a time against one panel: 4 accumulators of 4 lanes, each lane a sequential sum (mul, then add) */
SERTK_AVX2_INLINE void sertk_rowdot_avx2_body(int nb, const double *const *a, int d, const void *P, int f32, int nc,
                                              double *out, int ldo)
{
    const int nq = (nc + 3) / 4;
    int r = 0;
    for (; r + 4 <= nb; r += 4) {
        const double *a0 = a[r], *a1 = a[r + 1], *a2 = a[r + 2], *a3 = a[r + 3];
        for (int q = 0; q < nq; q++) {
            const size_t pq = (size_t)q * 4 * d;
            __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
            for (int kk = 0; kk < d; kk++) {
                const __m256d p = sertk_pload4(P, pq + 4 * (size_t)kk, f32);
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
            const size_t p0 = (size_t)q * 4 * d, p1 = p0 + 4 * (size_t)d, p2 = p1 + 4 * (size_t)d,
                         p3 = p2 + 4 * (size_t)d;
            __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
            for (int kk = 0; kk < d; kk++) {
                const __m256d v = _mm256_broadcast_sd(a0 + kk);
                const size_t o = 4 * (size_t)kk;
                s0 = _mm256_add_pd(s0, _mm256_mul_pd(v, sertk_pload4(P, p0 + o, f32)));
                s1 = _mm256_add_pd(s1, _mm256_mul_pd(v, sertk_pload4(P, p1 + o, f32)));
                s2 = _mm256_add_pd(s2, _mm256_mul_pd(v, sertk_pload4(P, p2 + o, f32)));
                s3 = _mm256_add_pd(s3, _mm256_mul_pd(v, sertk_pload4(P, p3 + o, f32)));
            }
            double buf[16];
            _mm256_storeu_pd(buf, s0);
            _mm256_storeu_pd(buf + 4, s1);
            _mm256_storeu_pd(buf + 8, s2);
            _mm256_storeu_pd(buf + 12, s3);
            for (int t = 0; t < 16 && 4 * q + t < nc; t++) out[(size_t)r * ldo + 4 * q + t] = buf[t];
        }
        for (; q < nq; q++) {
            const size_t pq = (size_t)q * 4 * d;
            __m256d s0 = _mm256_setzero_pd();
            for (int kk = 0; kk < d; kk++)
                s0 = _mm256_add_pd(s0, _mm256_mul_pd(_mm256_broadcast_sd(a0 + kk),
                                                     sertk_pload4(P, pq + 4 * (size_t)kk, f32)));
            double buf[4];
            _mm256_storeu_pd(buf, s0);
            for (int lane = 0; lane < 4 && 4 * q + lane < nc; lane++) out[(size_t)r * ldo + 4 * q + lane] = buf[lane];
        }
    }
}

__attribute__((target("avx2"))) static void sertk_rowdot_avx2_64(int nb, const double *const *a, int d, const void *P,
                                                                int nc, double *out, int ldo)
{
    sertk_rowdot_avx2_body(nb, a, d, P, 0, nc, out, ldo);
}

__attribute__((target("avx2"))) static void sertk_rowdot_avx2_32(int nb, const double *const *a, int d, const void *P,
                                                                int nc, double *out, int ldo)
{
    sertk_rowdot_avx2_body(nb, a, d, P, 1, nc, out, ldo);
}
#endif

void sertk_rowdot(int nb, const double *const *a, int d, const void *P, int f32, int nc, double *out, int ldo)
{
#ifdef SERTK_HAVE_AVX2_PATH
    const int avx2 = (sertk_simd() & SERTK_SIMD_AVX2) != 0; /* SERTK_NUSVM_SCALAR=1: the scalar path */
    if (avx2) {
        (f32 ? sertk_rowdot_avx2_32 : sertk_rowdot_avx2_64)(nb, a, d, P, nc, out, ldo);
        return;
    }
#endif
    (f32 ? sertk_rowdot_scalar32 : sertk_rowdot_scalar64)(nb, a, d, P, nc, out, ldo);
}
