/*
 * sertk_rowdot.c -- a few kernel rows without BLAS: dot products summed in libsvm's order, four columns at a time.
 *
 * The row cache computes one to four rows per pass.  A BLAS product that small spends most of its time packing the
 * sub-problem's samples (measured: 54 % of a row-cache fit in OpenBLAS's copy routine), and BLAS's matrix-vector
 * path rounds differently from its matrix-matrix path.  Here each value is libsvm's own dot product: a float64 sum
 * over k in order, each term a separate multiply then add (no FMA), exactly what libsvm's dense `dot` computes.
 * The samples are packed once per column set into panels of four columns, k-major, so that one AVX2 register holds
 * the same k of four columns; each lane is still one sequential sum, so the vector and scalar code give the same
 * bits, on any CPU.
 *
 * Once the cache is full each miss streams every packed sample once (49 MB at 6000 x 1024 in float64), so the path
 * is bound by memory bandwidth (89 % of a 10 000-sample fit with a 50 MB budget in this file): up to four rows
 * asked for together take one pass over the panels, not one pass each.  When every sample value is a float32, as
 * audio embeddings are, panels hold float32 values, widened exactly to float64 before each product: the same sums
 * from half the bytes.  Each body below is written once and specialised for the two panel types by an
 * always-inlined loader with a constant flag.
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

/*
 * R rows against Q panels from panel q0 on: R x Q accumulators of four lanes, each lane a sequential sum (multiply,
 * then add).  R and Q are constants at every call, so the arrays live in registers; eight or nine sums in flight
 * keep both of a core's add units busy where four left them waiting on the add's latency.
 *
 * While it computes, the tile brings the next tile's panels (the Q panels after its own, contiguous) into L2, a
 * 64-byte line at a time spread over its k loop.  Without this a pass of two to four rows ran its arithmetic and its
 * stream from memory one after the other: at 12 000 x 1024 float32 samples, 4 rows took 4.4 ms, the arithmetic alone
 * 2.3 ms and the stream alone (one row) 1.9 ms; with it 2.7-3.2 ms, and one row 1.4-1.8 ms (RESULTS-nusvm.md,
 * seventh pass).  Into L1 (_MM_HINT_T0) it slowed one-row passes; two tiles ahead was no better than one.  A
 * prefetch changes no value.
 */
SERTK_AVX2_INLINE void sertk_rowdot_tile(int R, int Q, const double *const *a, int d, const void *P, int f32, int q0,
                                         int nc, double *out, int ldo)
{
    __m256d acc[4][8];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int j = 0; j < Q; j++) acc[r][j] = _mm256_setzero_pd();
    const size_t p0 = (size_t)q0 * 4 * d;
    const size_t esz = f32 ? sizeof(float) : sizeof(double);
    const size_t pstep = (size_t)Q * 4 * esz; /* bytes of the next tile per k: 16 to 256 */
    const int nq = (nc + 3) / 4;
    const char *next = q0 + 2 * Q <= nq ? (const char *)P + (p0 + (size_t)Q * 4 * d) * esz : NULL;
    for (int kk = 0; kk < d; kk++) {
        if (next != NULL) {
            const char *at = next + (size_t)kk * pstep;
            if (pstep >= 64) {
                for (size_t z = 0; z < pstep; z += 64) _mm_prefetch(at + z, _MM_HINT_T1);
            } else if (kk % (int)(64 / pstep) == 0) { /* 16 or 32 bytes a k: one line every 4 or 2; 48: every k */
                _mm_prefetch(at, _MM_HINT_T1);
            }
        }
        __m256d p[8];
#pragma GCC unroll 8
        for (int j = 0; j < Q; j++) p[j] = sertk_pload4(P, p0 + (size_t)j * 4 * d + 4 * (size_t)kk, f32);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m256d v = _mm256_broadcast_sd(a[r] + kk);
#pragma GCC unroll 8
            for (int j = 0; j < Q; j++) acc[r][j] = _mm256_add_pd(acc[r][j], _mm256_mul_pd(v, p[j]));
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int j = 0; j < Q; j++) {
            double buf[4];
            _mm256_storeu_pd(buf, acc[r][j]);
            const int t0 = 4 * (q0 + j);
            for (int lane = 0; lane < 4 && t0 + lane < nc; lane++) out[(size_t)r * ldo + t0 + lane] = buf[lane];
        }
}

/* R rows (a constant) against every panel, Q panels per step, the last panels one at a time: one pass */
SERTK_AVX2_INLINE void sertk_rowdot_rows(int R, int Q, const double *const *a, int d, const void *P, int f32, int nc,
                                         double *out, int ldo)
{
    const int nq = (nc + 3) / 4;
    int q = 0;
    for (; q + Q <= nq; q += Q) sertk_rowdot_tile(R, Q, a, d, P, f32, q, nc, out, ldo);
    for (; q < nq; q++) sertk_rowdot_tile(R, 1, a, d, P, f32, q, nc, out, ldo);
}

/*
 * Every row in one pass over the panels when nb <= 4 (more: one pass per four rows), so that rows asked for
 * together cost one stream of the samples, not one each: what bounds a miss once the samples outgrow the caches
 */
SERTK_AVX2_INLINE void sertk_rowdot_avx2_body(int nb, const double *const *a, int d, const void *P, int f32, int nc,
                                              double *out, int ldo)
{
    int r = 0;
    for (; r + 4 <= nb; r += 4) sertk_rowdot_rows(4, 2, a + r, d, P, f32, nc, out + (size_t)r * ldo, ldo);
    switch (nb - r) {
    case 3: sertk_rowdot_rows(3, 3, a + r, d, P, f32, nc, out + (size_t)r * ldo, ldo); break; /* 3 x 2 waited */
    case 2: sertk_rowdot_rows(2, 4, a + r, d, P, f32, nc, out + (size_t)r * ldo, ldo); break;
    case 1: sertk_rowdot_rows(1, 8, a + r, d, P, f32, nc, out + (size_t)r * ldo, ldo); break;
    default: break;
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
