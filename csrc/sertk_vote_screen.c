/*
 * sertk_vote_screen.c -- predict's labels from a float32 product, proven equal to the float64 path's.
 *
 * Predict is one test x support-vector product (sertk_predict.c), in float64 as libsvm computes it, and it runs at
 * the CPU's dgemm peak; sgemm does the same product in about half the time.  A decision value from it differs from
 * the float64 one, so each gets a bound that holds for any order of summation a BLAS may use (Higham, Accuracy and
 * Stability of Numerical Algorithms, 2nd ed., sec. 3.1: |fl(x.y) - x.y| <= gamma_k sum |x_j y_j|, gamma_k =
 * k u / (1 - k u), with or without FMA), carried through the RBF kernel's exp and each pair's sum.  The float64
 * path's own error is bounded the same way.  A pair whose float32 decision value lies farther from 0 than both
 * bounds together has the float64 path's sign, and a sample's label is settled when no choice of signs for its
 * unsettled pairs can change the vote's winner.  Only the other samples are computed again in float64 (how many:
 * benchmarks/RESULTS-nusvm.md), so every label equals sertk_nusvm_decision + sertk_nusvm_vote's.
 *
 * The product runs in chunks of 128 or 256 features whose float32 partial sums are added in float64: the bound grows
 * with the length of a float32 sum, and a 4x shorter sum settles about 4x more of the close samples.
 *
 * Underflow is covered, with or without flush-to-zero, by an absolute term per operation.  A vector whose squared
 * norm passes 2^79 (which could hold a value above 2^40, where float32 sums could overflow) or is not finite sends
 * its sample to the float64 path, and every sample when it is a support vector; so does an sgemm that does not
 * compute in float32.
 */
#include "sertk_internal.h"
#include "sertk_kernel.h"

#include <math.h>
#include <string.h>

/*
 * Features per float32 chunk: SERTK_SCREEN_CHUNK, halved above SERTK_SCREEN_SHORT_FROM support vectors.  More
 * support vectors make a pair's sum of |coef| K larger against its value, so the bound leaves more samples to the
 * float64 path; shorter chunks tighten it at the cost of more additions.  1000 test vectors, 1024-d, Zen 4, warm:
 * 4425 (3505 SVs) 99 ms with 256 (25 left to float64), 103 ms with 128 (14); 50 000 (28 357 SVs) 744 ms with 256
 * (311 left), 616 ms with 128 (169), against 832 ms for the float64 path.
 */
#define SERTK_SCREEN_CHUNK 256
#define SERTK_SCREEN_SHORT_FROM 8192
/* rows per task and support vectors per tile: each sgemm call does enough work that its packing is a small share,
 * while a tile's sums (2 MiB) stay in cache for the chunks' additions (measured at 4425 x 1024, Zen 4: 256-1024
 * each were within 10 % of these) */
#define SERTK_SCREEN_ROWS 512
#define SERTK_SCREEN_TILE 512
/*
 * A batch must have SERTK_SCREEN_MIN_ROWS samples and one per SERTK_SCREEN_SV_PER_ROW support vectors: the screen
 * pays a fixed cost in proportion to the support vectors (their float32 copy, and the float64 path's packing of all
 * of them even for one sample) that only enough rows repay.  Warm, one Zen 4 core, 1024-d, screened against float64:
 * 869 SVs, 32 rows 2.2 / 1.9 ms, 64 rows 2.9 / 3.1; 3 505 SVs, 32 rows 12.1 / 10.5 ms, 64 rows 14.6 / 16.1;
 * 12 829 SVs, 256 rows 119 / 87 ms, 512 rows 170 / 169, 1000 rows 249 / 380; 28 357 SVs, 256 rows 278 / 210 ms,
 * 1000 rows 685 / 809.
 */
#define SERTK_SCREEN_SV_PER_ROW 32
/* the screen keeps every pair's coefficients twice over (n_sv x 2P): beyond this many classes, the float64 path */
#define SERTK_SCREEN_MAX_CLASSES 16
/*
 * Values must lie within 2^40, where float32 sums cannot overflow; a squared norm of at most 2^79 proves it for a
 * whole vector, with no pass over its values: the squares' sum, in any order, is at least (1 - gamma_(d+1)) times
 * each square, so each |x_t| < 2^40.  NaN and infinities fail the test too.
 */
#define SERTK_SCREEN_MAX_SQ 604462909807314587353088.0 /* 2^79 */

/* gamma_k = k u / (1 - k u) for unit roundoff u; +inf when k u >= 1/2 (no bound worth having) */
static double sertk_gamma_k(double k, double u) { return k * u < 0.5 ? k * u / (1 - k * u) : SERTK_INF; }

/* C (mr x nc, row stride ldc) = A (mr x k, stride lda) * B (nc x k, stride ldb)^T, float32 */
static void sertk_sgemm_abt(const sertk_blas *blas, int mr, int nc, int k, const float *A, int lda, const float *B,
                            int ldb, float *C, int ldc)
{
    char ta = 'T', tb = 'N';
    float one = 1.0f, zero = 0.0f;
    blas->sgemm(&ta, &tb, &nc, &mr, &k, &one, (float *)B, &ldb, (float *)A, &lda, &zero, C, &ldc);
}

/*
 * Whether this BLAS's sgemm computes in float32: a library may trade it for bfloat16 or TF32 inputs (oneMKL's
 * MKL_BLAS_COMPUTE_MODE, for one), and then the bound does not hold.  A 64 x 64 x 64 product of 1 + 2^-16 by 1 is
 * 64 + 2^-10 in every entry, exactly and in any order of summation, in float32; with 8 or 10 bits it is 64.
 */
static int sertk_sgemm_is_float32(const sertk_blas *blas)
{
    enum { N = 64 };
    float *a = SERTK_NEW(float, 3 * N * N);
    if (!a) return 0;
    float *b = a + N * N, *c = b + N * N;
    for (int t = 0; t < N * N; t++) {
        a[t] = 1.0f + 0x1p-16f;
        b[t] = 1.0f;
    }
    sertk_sgemm_abt(blas, N, N, N, a, N, b, N, c, N);
    int ok = 1;
    for (int t = 0; t < N * N; t++) ok &= c[t] == 64.0f + 0x1p-10f;
    free(a);
    return ok;
}

/*
 * out (mr x w) += kd (mr x nv) * cm (nv x w), all row-major: a tile's share of the decision values and of the
 * bounds' sums.  dgemm would repack the whole tile for w = 2P columns (about 8 % of predict at 4425, perf); this
 * reads it once.  The order of the sums is free: the bound holds for any order, with or without FMA.
 */
static void sertk_tile_dec_scalar(int mr, int nv, int w, const double *kd, const double *cm, double *out)
{
    for (int r = 0; r < mr; r++) {
        const double *k = kd + (size_t)r * nv;
        double *o = out + (size_t)r * w;
        for (int q = 0; q < nv; q++) {
            const double kv = k[q], *c = cm + (size_t)q * w;
            for (int p = 0; p < w; p++) o[p] += kv * c[p];
        }
    }
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define SERTK_HAVE_X86_SIMD 1 /* target attributes: the AVX2 loops below */
/* four rows and four columns at a time: per support vector one load of cm, four broadcasts, four FMAs */
__attribute__((target("avx2,fma"))) static void sertk_tile_dec_fma(int mr, int nv, int w, const double *kd,
                                                                   const double *cm, double *out)
{
    const int w4 = w / 4 * 4, r4 = mr / 4 * 4;
    for (int r = 0; r < r4; r += 4) {
        const double *k0 = kd + (size_t)r * nv, *k1 = k0 + nv, *k2 = k1 + nv, *k3 = k2 + nv;
        for (int p = 0; p < w4; p += 4) {
            double *o = out + (size_t)r * w + p;
            __m256d a0 = _mm256_loadu_pd(o), a1 = _mm256_loadu_pd(o + w);
            __m256d a2 = _mm256_loadu_pd(o + 2 * w), a3 = _mm256_loadu_pd(o + 3 * w);
            for (int q = 0; q < nv; q++) {
                const __m256d c = _mm256_loadu_pd(cm + (size_t)q * w + p);
                a0 = _mm256_fmadd_pd(_mm256_set1_pd(k0[q]), c, a0);
                a1 = _mm256_fmadd_pd(_mm256_set1_pd(k1[q]), c, a1);
                a2 = _mm256_fmadd_pd(_mm256_set1_pd(k2[q]), c, a2);
                a3 = _mm256_fmadd_pd(_mm256_set1_pd(k3[q]), c, a3);
            }
            _mm256_storeu_pd(o, a0);
            _mm256_storeu_pd(o + w, a1);
            _mm256_storeu_pd(o + 2 * w, a2);
            _mm256_storeu_pd(o + 3 * w, a3);
        }
        for (int p = w4; p < w; p++)
            for (int i = 0; i < 4; i++) {
                const double *k = kd + (size_t)(r + i) * nv;
                double acc = out[(size_t)(r + i) * w + p];
                for (int q = 0; q < nv; q++) acc += k[q] * cm[(size_t)q * w + p];
                out[(size_t)(r + i) * w + p] = acc;
            }
    }
    sertk_tile_dec_scalar(mr - r4, nv, w, kd + (size_t)r4 * nv, cm, out + (size_t)r4 * w);
}
#endif

/* kd := part, or kd += part when add: one chunk's float32 sums widened (exactly) and added up in float64 */
__attribute__((always_inline)) static inline void sertk_widen_loops(size_t n, const float *part, double *kd, int add)
{
    if (add)
        for (size_t t = 0; t < n; t++) kd[t] += (double)part[t];
    else
        for (size_t t = 0; t < n; t++) kd[t] = (double)part[t];
}

#ifdef SERTK_HAVE_X86_SIMD
/* the same loops inlined where the compiler may vectorise them four wide (the baseline build has two-wide SSE2) */
__attribute__((target("avx2"))) static void sertk_widen_avx2(size_t n, const float *part, double *kd, int add)
{
    sertk_widen_loops(n, part, kd, add);
}
#endif

static void sertk_widen(size_t n, const float *part, double *kd, int add)
{
#ifdef SERTK_HAVE_X86_SIMD
    if (sertk_simd() & SERTK_SIMD_AVX2) {
        sertk_widen_avx2(n, part, kd, add);
        return;
    }
#endif
    sertk_widen_loops(n, part, kd, add);
}

static void sertk_tile_dec(int mr, int nv, int w, const double *kd, const double *cm, double *out)
{
#ifdef SERTK_HAVE_X86_SIMD
    if (sertk_simd() & SERTK_SIMD_AVX2_FMA) {
        sertk_tile_dec_fma(mr, nv, w, kd, cm, out);
        return;
    }
#endif
    sertk_tile_dec_scalar(mr, nv, w, kd, cm, out);
}

typedef struct {
    const double *X;
    int m, d, chunk;
    const float *svf;     /* support vectors in float32, chunk-major: chunk c0 is n_sv x kc at svf + n_sv c0 */
    int n_sv;
    double gamma;
    int K, P;
    const double *cm2;    /* n_sv x 2P: [coefficients | their absolute values] */
    const double *csum;   /* P: sum of |coefficients| of each pair */
    const double *sv_sq;  /* the float64 path's squared norms */
    double sv_norm;       /* an upper bound on every support vector's norm */
    const double *rho;
    const sertk_blas *blas;
    int block;            /* test rows per task */
    int tile;             /* support vectors per tile */
    char *work;           /* per worker: work_bytes, laid out by sertk_screen_buffers */
    size_t work_bytes;
    int *label;           /* m: the class index, or -1 where the float64 path decides */
} sertk_screen_job;

typedef struct {
    float *xf;            /* block x d in float32, chunk-major: chunk c0 is mr x kc at xf + mr c0 */
    float *part;          /* block x tile: one chunk's float32 sums */
    double *kd;           /* block x tile: the float64 sums, then kernel values */
    double *out;          /* block x 2P: decision values + rho, and sum |coef| K */
    double *sq;           /* block: squared norms */
    int *votes;           /* 3K */
    unsigned char *sure;  /* P */
} sertk_screen_buf;

/* one worker's buffers inside a block of *bytes (computed when base is NULL), doubles first for alignment */
static sertk_screen_buf sertk_screen_buffers(const sertk_screen_job *j, char *base, size_t *bytes)
{
    sertk_screen_buf b;
    const size_t B = (size_t)j->block;
    size_t at = 0;
#define SERTK_TAKE(field, type, count)                        \
    b.field = base ? (type *)(void *)(base + at) : NULL;      \
    at += ((size_t)(count) * sizeof(type) + 63) / 64 * 64
    SERTK_TAKE(kd, double, B * j->tile);
    SERTK_TAKE(out, double, B * 2 * j->P);
    SERTK_TAKE(sq, double, B);
    SERTK_TAKE(xf, float, B * j->d);
    SERTK_TAKE(part, float, B * j->tile);
    SERTK_TAKE(votes, int, 3 * j->K);
    SERTK_TAKE(sure, unsigned char, j->P);
#undef SERTK_TAKE
    if (bytes) *bytes = at;
    return b;
}

/* the vote's winner when every pair's sign is settled or none of the unsettled ones can change it; else -1 */
static int sertk_settled_vote(int K, const double *dec, const unsigned char *sure, int *v)
{
    int *all = v, *firm = v + K, *open = v + 2 * K;
    for (int c = 0; c < 3 * K; c++) v[c] = 0;
    int p = 0;
    for (int i = 0; i < K; i++)
        for (int j = i + 1; j < K; j++, p++) {
            const int to = dec[p] > 0 ? i : j;
            ++all[to];
            if (sure[p]) {
                ++firm[to];
            } else {
                ++open[i];
                ++open[j];
            }
        }
    int w = 0;
    for (int c = 1; c < K; c++)
        if (all[c] > all[w]) w = c;
    /* the worst case for w against c: w wins none of its open pairs, c all of its own.  Each c's worst case can
     * happen, and when none of them beats w (ties go to the lower index), no choice of signs does. */
    for (int c = 0; c < K; c++) {
        if (c == w) continue;
        const int most = firm[c] + open[c];
        if (firm[w] < most || (firm[w] == most && c < w)) return -1;
    }
    return w;
}

static int sertk_screen_task(void *ctx, int task, int worker)
{
    sertk_screen_job *j = (sertk_screen_job *)ctx;
    const int r0 = task * j->block;
    const int mr = (j->m - r0 < j->block) ? j->m - r0 : j->block;
    const int d = j->d, n_sv = j->n_sv, P = j->P;
    const sertk_screen_buf b = sertk_screen_buffers(j, j->work + (size_t)worker * j->work_bytes, NULL);

    for (int r = 0; r < mr; r++) {
        const double *x = j->X + (size_t)(r0 + r) * d;
        b.sq[r] = sertk_dot(j->blas, d, x, x);
        const int ok = b.sq[r] <= SERTK_SCREEN_MAX_SQ;
        for (int c0 = 0; c0 < d; c0 += j->chunk) {
            const int kc = (d - c0 < j->chunk) ? d - c0 : j->chunk;
            float *xr = b.xf + (size_t)mr * c0 + (size_t)r * kc;
            for (int t = 0; t < kc; t++) xr[t] = ok ? (float)x[c0 + t] : 0.0f;
        }
        j->label[r0 + r] = ok ? 0 : -1;
    }
    /* a tile of support vectors at a time, one chunk of features at a time: float32 sums of kc products, added
     * up in float64, then kernel values, then their share of every pair's decision value */
    for (int v0 = 0; v0 < n_sv; v0 += j->tile) {
        const int nv = (n_sv - v0 < j->tile) ? n_sv - v0 : j->tile;
        const size_t tot = (size_t)mr * nv;
        for (int c0 = 0; c0 < d; c0 += j->chunk) {
            const int kc = (d - c0 < j->chunk) ? d - c0 : j->chunk;
            sertk_sgemm_abt(j->blas, mr, nv, kc, b.xf + (size_t)mr * c0, kc,
                            j->svf + (size_t)n_sv * c0 + (size_t)v0 * kc, kc, b.part, nv);
            sertk_widen(tot, b.part, b.kd, c0 > 0);
        }
        for (int r = 0; r < mr; r++) sertk_rbf_row_f64(nv, b.kd + (size_t)r * nv, j->sv_sq + v0, b.sq[r], j->gamma);
        if (v0 == 0) memset(b.out, 0, (size_t)mr * 2 * P * sizeof(double));
        sertk_tile_dec(mr, nv, 2 * P, b.kd, j->cm2 + (size_t)v0 * 2 * P, b.out);
    }

    /* the bounds' constants, from the float32 (u32) and float64 (u64) unit roundoffs */
    const double u32 = ldexp(1.0, -24), u64 = ldexp(1.0, -53);
    const int nc = (d + j->chunk - 1) / j->chunk;
    const double g64d = sertk_gamma_k(d + 4.0, u64), g64n = sertk_gamma_k(n_sv + 2.0, u64);
    /* a float32 chunk sum of rounded inputs, (1 + gamma_chunk)(1 + u32)^2 - 1 <= gamma_(chunk+2), and the chunks'
     * sum in float64, gamma_nc of partial sums each within (1 + gamma_(chunk+2)) of its sum |x_j y_j| */
    const double c32 = (sertk_gamma_k(j->chunk + 2.0, u32) + 2 * sertk_gamma_k((double)nc, u64)) * 1.01;
    const double Y = j->sv_norm, sqrtd = sqrt((double)d);
    const double tau = ldexp(1.0, -1000); /* a kernel value's absolute error where exp underflows */
    for (int r = 0; r < mr; r++) {
        int *lab = j->label + r0 + r;
        if (*lab < 0) continue;
        const double nx = sqrt(b.sq[r]) * (1 + g64d), span = (nx + Y) * (nx + Y);
        /* underflow: 2^-126 per float32 operation or input (flush-to-zero included), 2^-1022 in float64 */
        const double a32 = ldexp(1.0, -125) * (sqrtd * (nx + Y) + 2.0 * d + 1);
        const double a64 = ldexp(1.0, -1021) * (sqrtd * (nx + Y) + 2.0 * d + 1);
        /* |log K - log K_true| for each path: the squared distance's error (its dot product twice, the norms and
         * two additions), its product with gamma, and exp's own error: 2^-40, thousands of ulps (glibc's exp is
         * within one, sertk_vexp's polynomial within about ten), so that any libm's exp is covered */
        const double e32 = j->gamma * (2 * (c32 * nx * Y + a32) + 3 * g64d * span) + ldexp(1.0, -40);
        const double e64 = j->gamma * (2 * (g64d * nx * Y + a64) + 3 * g64d * span) + ldexp(1.0, -40);
        if (!(e32 <= 1.0)) { /* no bound worth having, and tau would not cover underflow */
            *lab = -1;
            continue;
        }
        const double rho32 = expm1(e32);            /* |K32 - K_true| <= rho32 K32 */
        const double rho64 = expm1(e64) * exp(e32); /* |K64 - K_true| <= rho64 K32 */
        const double grow = exp(e32 + e64);         /* K64 <= grow K32 */
        double *o = b.out + (size_t)r * 2 * P;
        for (int p = 0; p < P; p++) {
            const double z = o[p] - j->rho[p];
            const double S = o[P + p] * (1 + 2 * g64n); /* sum |coef| K32, itself computed in float64 */
            const double b32 = (rho32 + 2 * g64n) * S + 2 * u64 * fabs(j->rho[p]) + tau * j->csum[p];
            const double b64 = (rho64 + 2 * g64n * grow) * S + 2 * u64 * fabs(j->rho[p]) + tau * j->csum[p];
            o[p] = z;
            b.sure[p] = fabs(z) > (b32 + b64) * (1 + ldexp(1.0, -20)); /* NaN: not sure */
        }
        *lab = sertk_settled_vote(j->K, o, b.sure, b.votes);
    }
    return SERTK_OK;
}

/*
 * The float64 path for the samples marked -1 in label: gathered, decided, voted, put back.  cm and sv_sq, when the
 * screen has them (else NULL), are the coefficient matrix and squared norms sertk_nusvm_decision would compute.
 */
static int sertk_predict_float64(const double *X, int m, int d, const double *sv, int n_sv, int kernel,
                                 double gamma, int K, const int *n_support, const double *dual_coef,
                                 const double *rho, const double *cm, const double *sv_sq, const sertk_blas *blas,
                                 int n_threads, int *label, int *count)
{
    const int P = K * (K - 1) / 2;
    int u = 0;
    for (int r = 0; r < m; r++) u += label[r] < 0;
    *count = u;
    if (u == 0) return SERTK_OK;
    const int all = (u == m);
    double *Xu = all ? NULL : SERTK_NEW(double, (size_t)u * d);
    double *dec = SERTK_NEW(double, (size_t)u * P);
    int *lab = SERTK_NEW(int, u);
    int rc = SERTK_ENOMEM;
    if ((!all && !Xu) || !dec || !lab) goto out;
    if (!all)
        for (int r = 0, t = 0; r < m; r++)
            if (label[r] < 0) memcpy(Xu + (size_t)(t++) * d, X + (size_t)r * d, (size_t)d * sizeof(double));
    rc = cm ? sertk_decision_values(all ? X : Xu, u, d, sv, n_sv, kernel, gamma, P, cm, sv_sq, rho, blas,
                                    n_threads, dec)
            : sertk_nusvm_decision(all ? X : Xu, u, d, sv, n_sv, kernel, gamma, K, n_support, dual_coef, rho, blas,
                                   n_threads, dec);
    if (rc == SERTK_OK) rc = sertk_nusvm_vote(dec, u, K, lab);
    if (rc == SERTK_OK)
        for (int r = 0, t = 0; r < m; r++)
            if (label[r] < 0) label[r] = lab[t++];
out:
    free(Xu);
    free(dec);
    free(lab);
    return rc;
}

int sertk_nusvm_predict(const double *X, int m, int d, const double *sv, int n_sv, int kernel, double gamma,
                        int n_classes, const int *n_support, const double *dual_coef, const double *rho,
                        const sertk_blas *blas, int n_threads, int *out, int *n_float64)
{
    const int K = n_classes;
    int dummy;
    if (!n_float64) n_float64 = &dummy;
    if (sertk_check_model(m, d, n_sv, kernel, K, n_support, blas, n_threads) != SERTK_OK) return SERTK_EINVAL;
    for (int r = 0; r < m; r++) out[r] = -1;
    int screen = kernel == SERTK_KERNEL_RBF && blas->sgemm && n_sv > 0 && K <= SERTK_SCREEN_MAX_CLASSES &&
                 m >= SERTK_SCREEN_MIN_ROWS && (long long)m * SERTK_SCREEN_SV_PER_ROW >= n_sv;
    if (!screen)
        return sertk_predict_float64(X, m, d, sv, n_sv, kernel, gamma, K, n_support, dual_coef, rho, NULL, NULL,
                                     blas, n_threads, out, n_float64);
    const int P = K * (K - 1) / 2;
    int rc = SERTK_ENOMEM;
    float *svf = SERTK_NEW(float, (size_t)n_sv * d);
    double *cm = SERTK_NEW(double, (size_t)n_sv * P), *cm2 = SERTK_NEW(double, (size_t)n_sv * 2 * P);
    double *csum = SERTK_NEW(double, P), *sv_sq = SERTK_NEW(double, n_sv);
    char *work = NULL;
    if (!svf || !cm || !cm2 || !csum || !sv_sq) goto out;
    double max_sq = 0;
    const int chunk0 = n_sv > SERTK_SCREEN_SHORT_FROM ? SERTK_SCREEN_CHUNK / 2 : SERTK_SCREEN_CHUNK;
    const int chunk = d <= chunk0 * 3 / 2 ? d : chunk0;
    for (int s = 0; s < n_sv && screen; s++) {
        const double *v = sv + (size_t)s * d;
        sv_sq[s] = sertk_dot(blas, d, v, v);
        if (!(sv_sq[s] <= SERTK_SCREEN_MAX_SQ)) {
            screen = 0;
            break;
        }
        if (sv_sq[s] > max_sq) max_sq = sv_sq[s];
        for (int c0 = 0; c0 < d; c0 += chunk) {
            const int kc = (d - c0 < chunk) ? d - c0 : chunk;
            float *vf = svf + (size_t)n_sv * c0 + (size_t)s * kc;
            for (int t = 0; t < kc; t++) vf[t] = (float)v[c0 + t];
        }
    }
    if (screen) screen = sertk_sgemm_is_float32(blas);
    if (screen) {
        sertk_pair_coefs(K, n_support, dual_coef, n_sv, cm);
        for (int p = 0; p < P; p++) csum[p] = 0;
        for (int q = 0; q < n_sv; q++)
            for (int p = 0; p < P; p++) {
                const double c = cm[(size_t)q * P + p];
                cm2[(size_t)q * 2 * P + p] = c;
                cm2[(size_t)q * 2 * P + P + p] = fabs(c);
                csum[p] += fabs(c);
            }
        for (int p = 0; p < P; p++) csum[p] *= 1 + sertk_gamma_k(n_sv, ldexp(1.0, -53));
        sertk_screen_job job;
        job.X = X;
        job.m = m;
        job.d = d;
        job.chunk = chunk;
        job.svf = svf;
        job.n_sv = n_sv;
        job.gamma = gamma;
        job.K = K;
        job.P = P;
        job.cm2 = cm2;
        job.csum = csum;
        job.sv_sq = sv_sq;
        job.sv_norm = sqrt(max_sq) * (1 + sertk_gamma_k(d + 4.0, ldexp(1.0, -53)));
        job.rho = rho;
        job.blas = blas;
        job.label = out;
        {
            long long bl = SERTK_SCREEN_ROWS;
            if (bl > m) bl = m;
            if (n_threads > 1 && bl * n_threads > m) bl = (m + n_threads - 1) / n_threads;
            if (bl < 1) bl = 1;
            job.block = (int)bl;
            job.tile = SERTK_SCREEN_TILE;
            if (job.tile > n_sv) job.tile = n_sv;
        }
        const int ntasks = (m + job.block - 1) / job.block;
        const int nw = n_threads < ntasks ? n_threads : ntasks;
        sertk_screen_buffers(&job, NULL, &job.work_bytes);
        work = SERTK_NEW(char, job.work_bytes * nw);
        if (!work) goto out;
        job.work = work;
        rc = sertk_parallel_for(nw, ntasks, sertk_screen_task, &job);
        if (rc != SERTK_OK) goto out;
    }
    rc = sertk_predict_float64(X, m, d, sv, n_sv, kernel, gamma, K, n_support, dual_coef, rho, screen ? cm : NULL,
                               screen ? sv_sq : NULL, blas, n_threads, out, n_float64);
out:
    free(svf);
    free(cm);
    free(cm2);
    free(csum);
    free(sv_sq);
    free(work);
    return rc;
}
