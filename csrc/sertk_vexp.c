/*
 * sertk_vexp.c -- RBF kernel values of a block row, four at a time: float(exp(-gamma (|x|^2 + |z|^2 - 2 <x,z>))).
 *
 * The Gram and pair paths turn every dgemm product into a kernel value; glibc's scalar exp is 5-7 % of such a fit
 * (perf, 30k-60k x 1024 on Zen 1).  Here exp runs on AVX2 + FMA: x = k ln2 + r (|r| <= ln2/2, two FMA steps),
 * exp(r) by its Taylor polynomial of degree 13 (truncation below 1e-17 relative), times 2^k.  The result is within
 * one unit in the last place of glibc's float64 exp (94 % equal, measured over 2*10^7 arguments), and it is then
 * rounded to float32, as libsvm's kernel cache stores it: the float32 value can differ from glibc's only when exp(x)
 * lies within a float64 ulp of a float32 rounding boundary (none in 10^8 arguments measured; tests/svm/test_vexp.py
 * checks 4*10^6), the same kind of rare difference the dgemm products already have against libsvm's sequential
 * dot products.  The row cache, which
 * promises libsvm's own values, keeps glibc's exp.  Prediction uses the float64 values
 * (sertk_rbf_row_f64), as libsvm's predict does.  Arguments outside [-700, 1] take glibc's exp, as do CPUs
 * without AVX2 and FMA and SERTK_NUSVM_SCALAR=1.
 */
#include "sertk_kernel.h"

#include <math.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SERTK_HAVE_VEXP 1
#include <immintrin.h>
/* FMA only where written: contraction is off in the core (sertk_internal.h), so (sqi + sq) - 2 dot rounds as in
 * sertk_kval */
#define SERTK_VEXP_FN __attribute__((target("avx2,fma")))
#endif

/* sertk_kval's arithmetic with glibc's exp */
void sertk_rbf_row_scalar(int n, const double *dot, const double *sq, double sqi,
                                                    double gamma, float *out)
{
    for (int j = 0; j < n; j++) out[j] = (float)exp(-gamma * (sqi + sq[j] - 2 * dot[j]));
}

void sertk_rbf_row_f64_scalar(int n, double *dot, const double *sq, double sqi,
                                                        double gamma)
{
    for (int j = 0; j < n; j++) dot[j] = exp(-gamma * (sqi + sq[j] - 2 * dot[j]));
}

#ifdef SERTK_HAVE_VEXP
SERTK_VEXP_FN static inline __m256d sertk_exp4(__m256d x)
{
    const __m256d log2e = _mm256_set1_pd(1.4426950408889634074);
    const __m256d ln2_hi = _mm256_set1_pd(6.93147180369123816490e-01); /* 32 significant bits: k ln2_hi exact */
    const __m256d ln2_lo = _mm256_set1_pd(1.90821492927058770002e-10);
    __m256d k = _mm256_round_pd(_mm256_mul_pd(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(k, ln2_hi, x);
    r = _mm256_fnmadd_pd(k, ln2_lo, r);
    /* 1 + r + r^2/2! + ... + r^13/13!, Horner from the top */
    __m256d p = _mm256_set1_pd(1.0 / 6227020800.0);
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 479001600.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 39916800.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 3628800.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 362880.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 40320.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 5040.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 720.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 120.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 24.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 6.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(0.5));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
    /* 2^k for k in [-1010, 2]: the exponent field built from k */
    const __m128i ki = _mm256_cvtpd_epi32(k);
    const __m256i bits = _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(ki), _mm256_set1_epi64x(1023)), 52);
    return _mm256_mul_pd(p, _mm256_castsi256_pd(bits));
}

/* the argument exactly as sertk_kval rounds it: -gamma * ((sqi + sq) - 2 dot), no contraction */
SERTK_VEXP_FN static inline __m256d sertk_rbf_arg4(__m256d mg, __m256d vsqi, const double *dot, const double *sq)
{
    const __m256d dist = _mm256_sub_pd(_mm256_add_pd(vsqi, _mm256_loadu_pd(sq)),
                                       _mm256_mul_pd(_mm256_set1_pd(2.0), _mm256_loadu_pd(dot)));
    return _mm256_mul_pd(mg, dist);
}

/* nonzero when every lane is in [-700, 1], where sertk_exp4 holds (2^k a normal number) */
SERTK_VEXP_FN static inline int sertk_exp4_ok(__m256d x)
{
    const __m256d in = _mm256_and_pd(_mm256_cmp_pd(x, _mm256_set1_pd(-700.0), _CMP_GE_OQ),
                                     _mm256_cmp_pd(x, _mm256_set1_pd(1.0), _CMP_LE_OQ));
    return _mm256_movemask_pd(in) == 0xF;
}

/*
 * Three independent vectors per step (the polynomial is a chain of dependent FMAs); a step with any argument
 * outside sertk_exp4's range is done by the scalar code.  OUT_F32: store float32 to out, else float64 over dot.
 */
#define SERTK_RBF_LOOP(STORE, SCALAR)                                                                         \
    const __m256d mg = _mm256_set1_pd(-gamma), vsqi = _mm256_set1_pd(sqi);                                  \
    int j = 0;                                                                                               \
    for (; j + 12 <= n; j += 12) {                                                                           \
        const __m256d x0 = sertk_rbf_arg4(mg, vsqi, dot + j, sq + j);                                        \
        const __m256d x1 = sertk_rbf_arg4(mg, vsqi, dot + j + 4, sq + j + 4);                                \
        const __m256d x2 = sertk_rbf_arg4(mg, vsqi, dot + j + 8, sq + j + 8);                                \
        if (!(sertk_exp4_ok(x0) && sertk_exp4_ok(x1) && sertk_exp4_ok(x2))) {                                \
            SCALAR(12, j);                                                                                   \
            continue;                                                                                        \
        }                                                                                                    \
        const __m256d e0 = sertk_exp4(x0), e1 = sertk_exp4(x1), e2 = sertk_exp4(x2);                         \
        STORE(j, e0);                                                                                        \
        STORE(j + 4, e1);                                                                                    \
        STORE(j + 8, e2);                                                                                    \
    }                                                                                                        \
    SCALAR(n - j, j)

#define SERTK_STORE_F32(at, e) _mm_storeu_ps(out + (at), _mm256_cvtpd_ps(e))
#define SERTK_SCALAR_F32(cnt, at) sertk_rbf_row_scalar((cnt), dot + (at), sq + (at), sqi, gamma, out + (at))
#define SERTK_STORE_F64(at, e) _mm256_storeu_pd(dot + (at), (e))
#define SERTK_SCALAR_F64(cnt, at) sertk_rbf_row_f64_scalar((cnt), dot + (at), sq + (at), sqi, gamma)

SERTK_VEXP_FN static void sertk_rbf_row_avx2(int n, const double *dot, const double *sq, double sqi, double gamma,
                                             float *out)
{
    SERTK_RBF_LOOP(SERTK_STORE_F32, SERTK_SCALAR_F32);
}

SERTK_VEXP_FN static void sertk_rbf_row_f64_avx2(int n, double *dot, const double *sq, double sqi, double gamma)
{
    SERTK_RBF_LOOP(SERTK_STORE_F64, SERTK_SCALAR_F64);
}
#endif

int sertk_vexp_enabled(void) { return (sertk_simd() & SERTK_SIMD_AVX2_FMA) != 0; }

void sertk_rbf_row(int n, const double *dot, const double *sq, double sqi, double gamma, float *out)
{
#ifdef SERTK_HAVE_VEXP
    if (sertk_vexp_enabled()) {
        sertk_rbf_row_avx2(n, dot, sq, sqi, gamma, out);
        return;
    }
#endif
    sertk_rbf_row_scalar(n, dot, sq, sqi, gamma, out);
}

void sertk_rbf_row_f64(int n, double *dot, const double *sq, double sqi, double gamma)
{
#ifdef SERTK_HAVE_VEXP
    if (sertk_vexp_enabled()) {
        sertk_rbf_row_f64_avx2(n, dot, sq, sqi, gamma);
        return;
    }
#endif
    sertk_rbf_row_f64_scalar(n, dot, sq, sqi, gamma);
}
