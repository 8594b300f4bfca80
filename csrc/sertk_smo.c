/*
 * sertk_smo.c -- the SMO solver for the nu formulation: working-set selection, shrinking, rho (libsvm's Solver +
 * Solver_NU semantics), and which kernel rows to compute next when rows come from the cache.
 *
 * Exactness.  To follow libsvm's iteration path bit for bit on the same kernel values, the solver performs the
 * same floating-point operations in the same order as libsvm: kernel values are float32 (libsvm's Qfloat)
 * rounded from a float64 value, the diagonal is float64, and every sum accumulates in libsvm's index order.
 * The row Q_i of libsvm equals y_i y_k K_ik; because sign flips are exact in IEEE arithmetic, the solver keeps
 * only K and applies the signs, which gives identical results.
 */
#include "sertk_smo.h"

#include <limits.h>
#include <string.h>
#include <time.h>

enum { SERTK_LOWER = 0, SERTK_UPPER = 1, SERTK_FREE = 2 };

typedef struct sertk_solver {
    int l;
    int active_size;
    int unshrink;
    double eps;
    /* by position (positions are permuted by shrinking, exactly as libsvm's swap_index) */
    schar *y;
    char *st;
    double *alpha, *G, *Gbar, *C, *QD;
    int *aset; /* position -> sub-problem index */
    int *col;  /* position -> column of a kernel row */
    int *tmp;  /* scratch, l ints */
    /* the maximal violators of each class, found while updating G (valid until the active set changes) */
    int max_valid;
    int ip, in;
    int stopped; /* a reconstruction saw the cancellation flag and left G unfinished (set by any part) */
    double Gmaxp, Gmaxn;
    /* kernel rows */
    const sertk_kctx *k;
    const int *gidx;     /* sub-problem index -> grouped index */
    sertk_rcache *cache; /* NULL in Gram mode */
    sertk_team *team;    /* Gram and pair modes with spare threads: loops over the variables split in parts */
} sertk_solver;

/*
 * Loops of at least this many variables are split over the team.  Every split loop either writes each element
 * on its own (G, G_bar: the terms of one element are added in the same order as one thread would) or is a
 * maximum/minimum search whose parts are combined in position order with libsvm's tie rule, so a fit with a team
 * is bit-identical to one without.
 */
#define SERTK_TEAM_MIN 2048
#define SERTK_TEAM_MAXPARTS 64

static inline void sertk_part_range(int n, int part, int nparts, int *t0, int *t1)
{
    *t0 = (int)((long long)n * part / nparts);
    *t1 = (int)((long long)n * (part + 1) / nparts);
}

/* the row of sub-problem index orig, valid at every column (full) or at the active ones */
static const float *sertk_rcache_get(sertk_rcache *c, const sertk_kctx *k, int orig, int full)
{
    if (!sertk_rcache_valid(c, orig, full)) {
        /*
         * Miss: this row alone (libsvm's dot products, sertk_rowdot.c).  Until the seventh pass a miss also computed
         * up to three uncached active rows in position order while the cache had free slots; with passes of two to
         * four rows no longer twice the cost of one (the rowdot tiles' prefetch), those guesses lost: 21 % of all
         * rows computed at 10 000 x 1024 with 50 MB were never read, nearly all of them guesses, and without them
         * that fit computes 95 M values instead of 127 M (10.3-10.6 -> 9.0-9.1 s), 20 000 with 346 MB on two
         * threads 302 M instead of 490 M (19.5 -> 18.5-19.0 s).
         */
        c->blk[0] = orig;
        sertk_rcache_fill(c, k, 1, full);
    }
    /* the row is made the newest: the caller may hold it while fetching one more row */
    const int slot = c->slot_of[orig];
    sertk_lru_unlink(c, slot);
    sertk_lru_push(c, slot);
    return c->arena + (size_t)slot * c->maxl;
}

/* kernel row of the variable at position pos, indexed by col[]; full: read at every position, not only active ones */
static inline const float *sertk_row_of(sertk_solver *s, int pos, int full)
{
    int o = s->aset[pos];
    if (s->cache == NULL) return s->k->gram + (size_t)s->gidx[o] * s->k->ld;
    return sertk_rcache_get(s->cache, s->k, o, full);
}

/*
 * Cache mode: before reading the rows of positions pos[0..n), compute those the cache lacks (at most its block) in
 * one pass over the sub-problem's samples.  Once the samples outgrow the CPU's caches each pass is a stream of all
 * of them from memory (490 MB for a 120 000-sample pair of 1024-d float32 samples), whatever the number of rows it
 * computes, so rows the solver will read next for certain (the first gradient's, the reconstruction's, both
 * classes' maximal violators of a pick) share one.  Which rows are cached changes only time: each value is the
 * same.  Rows it might read (guessed working sets) were measured and lost: 20 000 x 1024 with 30 % of the rows
 * cached, 83 s without and 111 s with two guessed rows per miss of j.
 */
static void sertk_rows_ahead(sertk_solver *s, const int *pos, int n, int full)
{
    sertk_rcache *c = s->cache;
    int nb = 0;
    for (int t = 0; t < n && nb < c->block; t++) {
        const int o = s->aset[pos[t]];
        int skip = sertk_rcache_valid(c, o, full);
        for (int u = 0; u < nb && !skip; u++) skip = c->blk[u] == o;
        if (!skip) c->blk[nb++] = o;
    }
    if (nb > 1) sertk_rcache_fill(c, s->k, nb, full); /* one row: sertk_rcache_get's own miss path */
}

/* read at active positions only (working-set choice, gradient update) */
static inline const float *sertk_row(sertk_solver *s, int pos) { return sertk_row_of(s, pos, 0); }

/* read at every position (G_bar, the first gradient, reconstruction into inactive variables) */
static inline const float *sertk_row_full(sertk_solver *s, int pos) { return sertk_row_of(s, pos, 1); }

/* the active set grew back to all variables / shrank (cache mode: which columns new rows must cover) */
static inline void sertk_widened(sertk_solver *s)
{
    if (s->cache) sertk_rcache_widen(s->cache);
}

static inline void sertk_update_status(sertk_solver *s, int i)
{
    if (s->alpha[i] >= s->C[i])
        s->st[i] = SERTK_UPPER;
    else if (s->alpha[i] <= 0)
        s->st[i] = SERTK_LOWER;
    else
        s->st[i] = SERTK_FREE;
}

#define SERTK_SWAP(type, a, b) do { type t_ = (a); (a) = (b); (b) = t_; } while (0)

static void sertk_swap_index(sertk_solver *s, int i, int j)
{
    SERTK_SWAP(schar, s->y[i], s->y[j]);
    SERTK_SWAP(double, s->G[i], s->G[j]);
    SERTK_SWAP(char, s->st[i], s->st[j]);
    SERTK_SWAP(double, s->alpha[i], s->alpha[j]);
    SERTK_SWAP(int, s->aset[i], s->aset[j]);
    SERTK_SWAP(int, s->col[i], s->col[j]);
    SERTK_SWAP(double, s->Gbar[i], s->Gbar[j]);
    SERTK_SWAP(double, s->C[i], s->C[j]);
    SERTK_SWAP(double, s->QD[i], s->QD[j]);
}

/*
 * One candidate of the second-order rule: obj = -(g^2)/q, kept when obj <= the best so far (the last index wins
 * ties, as libsvm).  The division is what libsvm computes; it is skipped only when a cross-multiplication proves
 * that the candidate's ratio g^2/q is clearly below the best one (relative margin 1e-9, far above the few ulps of
 * rounding in the products), so the selected index is exactly libsvm's.
 */
static inline void sertk_consider(double g, double q, int j, int *jmin, double *obj_min, double *bnum,
                                  double *bden)
{
    const double num = g * g;
    if (num * *bden < (1.0 - 1e-9) * (*bnum * q)) return;
    const double obj = -num / q;
    if (obj <= *obj_min) {
        *jmin = j;
        *obj_min = obj;
        *bnum = num;
        *bden = q;
    }
}

/* the second-order choice of j over positions j0..j1 of the active set, given the maximal violators ip, in */
typedef struct {
    double Gmaxp2, Gmaxn2, obj_min, bnum, bden;
    int jmin;
} sertk_pick;

typedef struct {
    const float *Rp, *Rn;
    double QDp, QDn, Gmaxp, Gmaxn;
} sertk_pick_in;

static void sertk_pick_start(sertk_pick *out)
{
    out->Gmaxp2 = out->Gmaxn2 = -SERTK_INF;
    out->jmin = -1;
    out->obj_min = SERTK_INF;
    out->bnum = 0;
    out->bden = 1;
}

/* positions j0..j1, continuing from *out (a fresh sertk_pick_start, or the vector loop's combined lanes) */
static void sertk_pick_more(const sertk_solver *s, const sertk_pick_in *in, int j0, int j1, sertk_pick *out)
{
    const schar *y = s->y;
    const char *st = s->st;
    const double *G = s->G, *QD = s->QD;
    const int *col = s->col;
    const float *Rp = in->Rp, *Rn = in->Rn;
    const double QDp = in->QDp, QDn = in->QDn, Gmaxp = in->Gmaxp, Gmaxn = in->Gmaxn;
    double Gmaxp2 = out->Gmaxp2, Gmaxn2 = out->Gmaxn2;
    int jmin = out->jmin;
    double obj_min = out->obj_min, bnum = out->bnum, bden = out->bden;
    for (int j = j0; j < j1; j++) {
        if (y[j] == +1) {
            if (st[j] != SERTK_LOWER) {
                double grad_diff = Gmaxp + G[j];
                if (G[j] >= Gmaxp2) Gmaxp2 = G[j];
                if (grad_diff > 0) {
                    /* Q_ip[j] = y_ip y_j K = K: both in the positive class */
                    double quad = QDp + QD[j] - 2 * Rp[col[j]];
                    sertk_consider(grad_diff, quad > 0 ? quad : SERTK_TAU, j, &jmin, &obj_min, &bnum, &bden);
                }
            }
        } else {
            if (st[j] != SERTK_UPPER) {
                double grad_diff = Gmaxn - G[j];
                if (-G[j] >= Gmaxn2) Gmaxn2 = -G[j];
                if (grad_diff > 0) {
                    double quad = QDn + QD[j] - 2 * Rn[col[j]];
                    sertk_consider(grad_diff, quad > 0 ? quad : SERTK_TAU, j, &jmin, &obj_min, &bnum, &bden);
                }
            }
        }
    }
    out->Gmaxp2 = Gmaxp2;
    out->Gmaxn2 = Gmaxn2;
    out->jmin = jmin;
    out->obj_min = obj_min;
    out->bnum = bnum;
    out->bden = bden;
}

static void sertk_pick_range(const sertk_solver *s, const sertk_pick_in *in, int j0, int j1, sertk_pick *out)
{
    sertk_pick_start(out);
    sertk_pick_more(s, in, j0, j1, out);
}

/* G += Q_i d_i + Q_j d_j over positions t0..t1, and the maximal violator of each class found in the same pass */
typedef struct {
    double Gmaxp, Gmaxn;
    int ip, in;
} sertk_viol;

typedef struct {
    const float *Ri, *Rj;
    double dai, daj, yij;
} sertk_update_in;

/* positions t0..t1, continuing from *out (no violator yet, or the vector loop's combined lanes) */
static void sertk_update_more(sertk_solver *s, const sertk_update_in *in, int t0, int t1, sertk_viol *out)
{
    double *G = s->G;
    const schar *yy = s->y;
    const char *st = s->st;
    const int *col = s->col;
    const float *Ri = in->Ri, *Rj = in->Rj;
    const double dai = in->dai, daj = in->daj, yij = in->yij;
    double Gmaxp = out->Gmaxp, Gmaxn = out->Gmaxn;
    int ip = out->ip, ineg = out->in;
    for (int t = t0; t < t1; t++) {
        const int c = col[t];
        double v = (double)Ri[c] * dai + (double)Rj[c] * daj;
        const double g = G[t] + (yij * yy[t]) * v;
        G[t] = g;
        if (yy[t] == +1) {
            if (st[t] != SERTK_UPPER && -g >= Gmaxp) {
                Gmaxp = -g;
                ip = t;
            }
        } else {
            if (st[t] != SERTK_LOWER && g >= Gmaxn) {
                Gmaxn = g;
                ineg = t;
            }
        }
    }
    out->Gmaxp = Gmaxp;
    out->Gmaxn = Gmaxn;
    out->ip = ip;
    out->in = ineg;
}

static void sertk_update_range(sertk_solver *s, const sertk_update_in *in, int t0, int t1, sertk_viol *out)
{
    out->Gmaxp = out->Gmaxn = -SERTK_INF;
    out->ip = out->in = -1;
    sertk_update_more(s, in, t0, t1, out);
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SERTK_HAVE_AVX2_SOLVER 1
#include <immintrin.h>

/*
 * The two loops of every iteration, four positions per AVX2 register, without branches on a position's sign or
 * bound state.  Each position's arithmetic is the
 * scalar code's, operation for operation (no FMA: contraction is off, and the target has none); a maximum or
 * minimum is kept per lane with the scalar comparison (>= or <=, so a lane holds the last of its equal values) and
 * the lanes are combined by value, then by the larger position: the last of equal values over the whole range,
 * as one scalar pass.  The tail after the last full vector continues in scalar code from the combined state.
 * Bit-identical to the scalar loops (tests/svm/test_kernel_budget.py, SERTK_NUSVM_SCALAR=1 against the default).
 * Kernel values are loaded one by one: AVX2's gather instructions made both loops 1.5x slower than the scalar
 * ones on Zen 1; with plain loads they are about 12 % faster (perf, 8000 x 1024, Gram path).
 */
#define SERTK_AVX2_FN __attribute__((target("avx2")))

/* four signed chars (y, st) at p as int32 lanes */
SERTK_AVX2_FN static inline __m128i sertk_load4_i8(const void *p)
{
    int v;
    memcpy(&v, p, sizeof(v));
    return _mm_cvtepi8_epi32(_mm_cvtsi32_si128(v));
}

/* int32 lane masks to float64 lane masks */
SERTK_AVX2_FN static inline __m256d sertk_mask_pd(__m128i m) { return _mm256_castsi256_pd(_mm256_cvtepi32_epi64(m)); }

SERTK_AVX2_FN static inline __m256d sertk_neg_pd(__m256d x) { return _mm256_xor_pd(x, _mm256_set1_pd(-0.0)); }

/*
 * The lane whose value wins (largest, or smallest when lowest), ties to the larger index; -1 if no lane is set.
 * The lanes' values and indices are left in v and id.
 */
SERTK_AVX2_FN static inline int sertk_lane_pick(__m256d val, __m256d idx, int lowest, double v[4], double id[4])
{
    _mm256_storeu_pd(v, val);
    _mm256_storeu_pd(id, idx);
    int best = -1;
    for (int l = 0; l < 4; l++) {
        if (id[l] < 0) continue;
        if (best < 0 || (lowest ? v[l] < v[best] : v[l] > v[best]) || (v[l] == v[best] && id[l] > id[best])) best = l;
    }
    return best;
}

SERTK_AVX2_FN static void sertk_update_range_avx2(sertk_solver *s, const sertk_update_in *in, int t0, int t1,
                                                  sertk_viol *out)
{
    double *G = s->G;
    const schar *yy = s->y;
    const char *st = s->st;
    const int *col = s->col;
    const float *Ri = in->Ri, *Rj = in->Rj;
    const __m256d dai = _mm256_set1_pd(in->dai), daj = _mm256_set1_pd(in->daj), yij = _mm256_set1_pd(in->yij);
    const __m128i upper = _mm_set1_epi32(SERTK_UPPER), lower = _mm_set1_epi32(SERTK_LOWER);
    __m256d mp = _mm256_set1_pd(-SERTK_INF), mn = mp, ipv = _mm256_set1_pd(-1), inv = ipv;
    __m256d idx = _mm256_setr_pd(t0, t0 + 1, t0 + 2, t0 + 3);
    const __m256d four = _mm256_set1_pd(4);
    int t = t0;
    for (; t + 4 <= t1; t += 4, idx = _mm256_add_pd(idx, four)) {
        const int c0 = col[t], c1 = col[t + 1], c2 = col[t + 2], c3 = col[t + 3];
        const __m256d ri = _mm256_cvtps_pd(_mm_setr_ps(Ri[c0], Ri[c1], Ri[c2], Ri[c3]));
        const __m256d rj = _mm256_cvtps_pd(_mm_setr_ps(Rj[c0], Rj[c1], Rj[c2], Rj[c3]));
        const __m256d v = _mm256_add_pd(_mm256_mul_pd(ri, dai), _mm256_mul_pd(rj, daj));
        const __m128i y32 = sertk_load4_i8(yy + t), s32 = sertk_load4_i8(st + t);
        const __m256d sgn = _mm256_mul_pd(yij, _mm256_cvtepi32_pd(y32)); /* yij * y[t] */
        const __m256d g = _mm256_add_pd(_mm256_loadu_pd(G + t), _mm256_mul_pd(sgn, v));
        _mm256_storeu_pd(G + t, g);
        const __m128i pos = _mm_cmpgt_epi32(y32, _mm_setzero_si128());
        const __m256d candp = sertk_mask_pd(_mm_andnot_si128(_mm_cmpeq_epi32(s32, upper), pos));
        const __m256d candn = sertk_mask_pd(_mm_andnot_si128(_mm_or_si128(_mm_cmpeq_epi32(s32, lower), pos),
                                                             _mm_set1_epi32(-1)));
        const __m256d ng = sertk_neg_pd(g);
        const __m256d up = _mm256_and_pd(candp, _mm256_cmp_pd(ng, mp, _CMP_GE_OQ));
        mp = _mm256_blendv_pd(mp, ng, up);
        ipv = _mm256_blendv_pd(ipv, idx, up);
        const __m256d un = _mm256_and_pd(candn, _mm256_cmp_pd(g, mn, _CMP_GE_OQ));
        mn = _mm256_blendv_pd(mn, g, un);
        inv = _mm256_blendv_pd(inv, idx, un);
    }
    out->Gmaxp = out->Gmaxn = -SERTK_INF;
    out->ip = out->in = -1;
    double lv[4], li[4];
    int b = sertk_lane_pick(mp, ipv, 0, lv, li);
    if (b >= 0) {
        out->Gmaxp = lv[b];
        out->ip = (int)li[b];
    }
    b = sertk_lane_pick(mn, inv, 0, lv, li);
    if (b >= 0) {
        out->Gmaxn = lv[b];
        out->in = (int)li[b];
    }
    sertk_update_more(s, in, t, t1, out); /* the tail, from the combined state */
}

SERTK_AVX2_FN static void sertk_pick_range_avx2(const sertk_solver *s, const sertk_pick_in *in, int j0, int j1,
                                                sertk_pick *out)
{
    const schar *y = s->y;
    const char *st = s->st;
    const double *G = s->G, *QD = s->QD;
    const int *col = s->col;
    /* a class without a violator has no row (NULL) and no candidate: its lanes read the other row, unused */
    const float *Rp = in->Rp ? in->Rp : in->Rn, *Rn = in->Rn ? in->Rn : in->Rp;
    const __m256d QDp = _mm256_set1_pd(in->QDp), QDn = _mm256_set1_pd(in->QDn);
    const __m256d Gmaxp = _mm256_set1_pd(in->Gmaxp), Gmaxn = _mm256_set1_pd(in->Gmaxn);
    const __m128i upper = _mm_set1_epi32(SERTK_UPPER), lower = _mm_set1_epi32(SERTK_LOWER);
    const __m256d zero = _mm256_setzero_pd(), two = _mm256_set1_pd(2), tau = _mm256_set1_pd(SERTK_TAU);
    __m256d gp2 = _mm256_set1_pd(-SERTK_INF), gn2 = gp2;
    __m256d omin = _mm256_set1_pd(SERTK_INF), jminv = _mm256_set1_pd(-1), bnumv = zero, bdenv = _mm256_set1_pd(1);
    __m256d idx = _mm256_setr_pd(j0, j0 + 1, j0 + 2, j0 + 3);
    const __m256d four = _mm256_set1_pd(4);
    int j = j0;
    for (; j + 4 <= j1; j += 4, idx = _mm256_add_pd(idx, four)) {
        const __m128i y32 = sertk_load4_i8(y + j), s32 = sertk_load4_i8(st + j);
        const __m128i pos32 = _mm_cmpgt_epi32(y32, _mm_setzero_si128());
        const __m128i cp32 = _mm_andnot_si128(_mm_cmpeq_epi32(s32, lower), pos32);
        const __m128i cn32 = _mm_andnot_si128(_mm_or_si128(_mm_cmpeq_epi32(s32, upper), pos32), _mm_set1_epi32(-1));
        const __m256d pos = sertk_mask_pd(pos32), candp = sertk_mask_pd(cp32), candn = sertk_mask_pd(cn32);
        const __m256d g = _mm256_loadu_pd(G + j), ng = sertk_neg_pd(g);
        gp2 = _mm256_blendv_pd(gp2, g, _mm256_and_pd(candp, _mm256_cmp_pd(g, gp2, _CMP_GE_OQ)));
        gn2 = _mm256_blendv_pd(gn2, ng, _mm256_and_pd(candn, _mm256_cmp_pd(ng, gn2, _CMP_GE_OQ)));
        /* grad_diff: Gmaxp + G[j] (positive class), Gmaxn - G[j] (negative) */
        const __m256d gd = _mm256_blendv_pd(_mm256_sub_pd(Gmaxn, g), _mm256_add_pd(Gmaxp, g), pos);
        const __m256d act = _mm256_and_pd(_mm256_or_pd(candp, candn), _mm256_cmp_pd(gd, zero, _CMP_GT_OQ));
        const int am = _mm256_movemask_pd(act);
        if (am == 0) continue;
        /* each lane's value from its class's row, loaded for every lane (unused where no candidate) */
        const float *R0 = y[j] == +1 ? Rp : Rn, *R1 = y[j + 1] == +1 ? Rp : Rn;
        const float *R2 = y[j + 2] == +1 ? Rp : Rn, *R3 = y[j + 3] == +1 ? Rp : Rn;
        const __m128 r = _mm_setr_ps(R0[col[j]], R1[col[j + 1]], R2[col[j + 2]], R3[col[j + 3]]);
        const __m256d qx = _mm256_blendv_pd(QDn, QDp, pos);
        __m256d quad = _mm256_sub_pd(_mm256_add_pd(qx, _mm256_loadu_pd(QD + j)),
                                     _mm256_mul_pd(two, _mm256_cvtps_pd(r)));
        quad = _mm256_blendv_pd(tau, quad, _mm256_cmp_pd(quad, zero, _CMP_GT_OQ));
        const __m256d num = _mm256_mul_pd(gd, gd);
        const __m256d obj = _mm256_div_pd(sertk_neg_pd(num), quad);
        const __m256d take = _mm256_and_pd(act, _mm256_cmp_pd(obj, omin, _CMP_LE_OQ));
        omin = _mm256_blendv_pd(omin, obj, take);
        jminv = _mm256_blendv_pd(jminv, idx, take);
        bnumv = _mm256_blendv_pd(bnumv, num, take);
        bdenv = _mm256_blendv_pd(bdenv, quad, take);
    }
    double v[4];
    sertk_pick_start(out);
    _mm256_storeu_pd(v, gp2);
    out->Gmaxp2 = sertk_max(sertk_max(v[0], v[1]), sertk_max(v[2], v[3]));
    _mm256_storeu_pd(v, gn2);
    out->Gmaxn2 = sertk_max(sertk_max(v[0], v[1]), sertk_max(v[2], v[3]));
    double o[4], jj[4];
    const int b = sertk_lane_pick(omin, jminv, 1, o, jj);
    if (b >= 0) {
        double nn[4], dd[4];
        _mm256_storeu_pd(nn, bnumv);
        _mm256_storeu_pd(dd, bdenv);
        out->obj_min = o[b];
        out->jmin = (int)jj[b];
        out->bnum = nn[b];
        out->bden = dd[b];
    }
    sertk_pick_more(s, in, j, j1, out); /* the tail, from the combined state */
}
#endif

/* G_bar -= / += C_x Q_x over positions t0..t1 for a variable x that left / reached its upper bound */
typedef struct {
    const float *R;
    double Cx, yij;
    int leaves; /* 1: it was at the upper bound and left it */
} sertk_gbar_in;

static void sertk_gbar_range(sertk_solver *s, const sertk_gbar_in *in, int t0, int t1)
{
    const float *R = in->R;
    const double Cx = in->Cx, yij = in->yij;
    for (int t = t0; t < t1; t++) {
        double q = (yij * s->y[t]) * (double)R[s->col[t]];
        if (in->leaves)
            s->Gbar[t] -= Cx * q;
        else
            s->Gbar[t] += Cx * q;
    }
}

/* G and G_bar from scratch over positions j0..j1: the sums over i in ascending order, as libsvm */
static void sertk_init_gradient_range(sertk_solver *s, int j0, int j1)
{
    const int l = s->l;
    for (int j = j0; j < j1; j++) {
        s->G[j] = 0;
        s->Gbar[j] = 0;
    }
    for (int i = 0; i < l; i++)
        if (s->st[i] != SERTK_LOWER) {
            if (sertk_cancelled(s->k->cancel)) return; /* the caller checks the flag again */
            if (s->cache != NULL && !sertk_rcache_valid(s->cache, s->aset[i], 1)) {
                int ahead[SERTK_RCACHE_MAXBLOCK], na = 0;
                for (int t = i; t < l && na < s->cache->block; t++)
                    if (s->st[t] != SERTK_LOWER) ahead[na++] = t;
                sertk_rows_ahead(s, ahead, na, 1);
            }
            const float *R = sertk_row_full(s, i);
            const double ai = s->alpha[i];
            const double yi = s->y[i];
            for (int j = j0; j < j1; j++) s->G[j] += ai * ((yi * s->y[j]) * (double)R[s->col[j]]);
            if (s->st[i] == SERTK_UPPER) {
                const double Ci = s->C[i];
                for (int j = j0; j < j1; j++) s->Gbar[j] += Ci * ((yi * s->y[j]) * (double)R[s->col[j]]);
            }
        }
}

/* one team job: which loop, its inputs, and one result slot per part */
enum { SERTK_JOB_PICK, SERTK_JOB_UPDATE, SERTK_JOB_GBAR, SERTK_JOB_INIT, SERTK_JOB_RECON_INACTIVE,
       SERTK_JOB_RECON_FREE };

typedef struct {
    sertk_solver *s;
    int op, n;
    sertk_pick_in pick_in;
    sertk_update_in update_in;
    sertk_gbar_in gbar_in[2];
    int n_gbar;
    const int *free_pos; /* reconstruction: positions of the free variables */
    int n_free;
    sertk_pick pick[SERTK_TEAM_MAXPARTS];
    sertk_viol viol[SERTK_TEAM_MAXPARTS];
} sertk_job;

static void sertk_recon_inactive_range(sertk_solver *s, const int *fr, int nf, int i0, int i1);
static void sertk_recon_free_range(sertk_solver *s, const int *fr, int nf, int j0, int j1);

static void sertk_job_part(void *ctx, int part, int nparts)
{
    sertk_job *jb = (sertk_job *)ctx;
    sertk_solver *s = jb->s;
    int t0, t1;
    sertk_part_range(jb->n, part, nparts, &t0, &t1);
    switch (jb->op) {
    case SERTK_JOB_PICK:
#ifdef SERTK_HAVE_AVX2_SOLVER
        if (sertk_simd() & SERTK_SIMD_AVX2) {
            sertk_pick_range_avx2(s, &jb->pick_in, t0, t1, &jb->pick[part]);
            break;
        }
#endif
        sertk_pick_range(s, &jb->pick_in, t0, t1, &jb->pick[part]);
        break;
    case SERTK_JOB_UPDATE:
#ifdef SERTK_HAVE_AVX2_SOLVER
        if (sertk_simd() & SERTK_SIMD_AVX2) {
            sertk_update_range_avx2(s, &jb->update_in, t0, t1, &jb->viol[part]);
            break;
        }
#endif
        sertk_update_range(s, &jb->update_in, t0, t1, &jb->viol[part]);
        break;
    case SERTK_JOB_GBAR:
        for (int g = 0; g < jb->n_gbar; g++) sertk_gbar_range(s, &jb->gbar_in[g], t0, t1);
        break;
    case SERTK_JOB_INIT:
        sertk_init_gradient_range(s, t0, t1);
        break;
    case SERTK_JOB_RECON_INACTIVE: /* positions active_size.. split */
        sertk_recon_inactive_range(s, jb->free_pos, jb->n_free, s->active_size + t0, s->active_size + t1);
        break;
    case SERTK_JOB_RECON_FREE:
        sertk_recon_free_range(s, jb->free_pos, jb->n_free, s->active_size + t0, s->active_size + t1);
        break;
    }
}

/* the team when the loop is long enough to split, else NULL (one part on this thread) */
static inline sertk_team *sertk_team_for(const sertk_solver *s, int n)
{
    return n >= SERTK_TEAM_MIN ? s->team : NULL;
}

/*
 * For the loops that fetch rows inside their parts (the first gradient, the reconstruction): in cache mode a fetch
 * may compute rows, and the cache is not shared between threads, so those loops run whole, each pass over the
 * samples then split over the team by columns (sertk_rcache_fill); in Gram and pair modes rows are pointers.
 */
static inline sertk_team *sertk_team_for_rows(const sertk_solver *s, int n)
{
    return s->cache != NULL ? NULL : sertk_team_for(s, n);
}

static int sertk_job_parts(sertk_job *jb, sertk_team *team)
{
    sertk_team_run(team, sertk_job_part, jb);
    return sertk_team_size(team);
}

/* returns 1 when optimal (on the active set), else 0 with the working set in *out_i, *out_j */
static int sertk_select_working_set(sertk_solver *s, int *out_i, int *out_j)
{
    const int as = s->active_size;
    const schar *y = s->y;
    const char *st = s->st;
    const double *G = s->G, *QD = s->QD;
    double Gmaxp = -SERTK_INF, Gmaxn = -SERTK_INF;
    int ip = -1, in = -1;

    if (s->max_valid) {
        Gmaxp = s->Gmaxp;
        ip = s->ip;
        Gmaxn = s->Gmaxn;
        in = s->in;
    } else {
        for (int t = 0; t < as; t++) {
            if (y[t] == +1) {
                if (st[t] != SERTK_UPPER && -G[t] >= Gmaxp) {
                    Gmaxp = -G[t];
                    ip = t;
                }
            } else {
                if (st[t] != SERTK_LOWER && G[t] >= Gmaxn) {
                    Gmaxn = G[t];
                    in = t;
                }
            }
        }
    }
    sertk_job jb;
    jb.s = s;
    jb.op = SERTK_JOB_PICK;
    jb.n = as;
    if (s->cache != NULL && ip != -1 && in != -1) {
        const int both[2] = {ip, in};
        sertk_rows_ahead(s, both, 2, 0);
    }
    jb.pick_in.Rp = ip != -1 ? sertk_row(s, ip) : NULL;
    jb.pick_in.Rn = in != -1 ? sertk_row(s, in) : NULL;
    jb.pick_in.QDp = ip != -1 ? QD[ip] : 0.0;
    jb.pick_in.QDn = in != -1 ? QD[in] : 0.0;
    jb.pick_in.Gmaxp = Gmaxp;
    jb.pick_in.Gmaxn = Gmaxn;
    const int parts = sertk_job_parts(&jb, sertk_team_for(s, as));
    /* parts in position order: the last of equal objectives wins, as in one pass */
    sertk_pick best = jb.pick[0];
    for (int p = 1; p < parts; p++) {
        const sertk_pick *q = &jb.pick[p];
        if (q->Gmaxp2 > best.Gmaxp2) best.Gmaxp2 = q->Gmaxp2;
        if (q->Gmaxn2 > best.Gmaxn2) best.Gmaxn2 = q->Gmaxn2;
        if (q->jmin != -1 && q->obj_min <= best.obj_min) {
            best.jmin = q->jmin;
            best.obj_min = q->obj_min;
        }
    }
    if (sertk_max(Gmaxp + best.Gmaxp2, Gmaxn + best.Gmaxn2) < s->eps || best.jmin == -1) return 1;
    *out_i = y[best.jmin] == +1 ? ip : in;
    *out_j = best.jmin;
    return 0;
}

/* reconstruction, positions i0..i1 of the inactive variables each summing the free variables fr[0..nf) */
static void sertk_recon_inactive_range(sertk_solver *s, const int *fr, int nf, int i0, int i1)
{
    for (int i = i0; i < i1; i++) {
        if (sertk_cancelled(s->k->cancel)) {
            __atomic_store_n(&s->stopped, 1, __ATOMIC_RELAXED);
            return;
        }
        if (s->cache != NULL && !sertk_rcache_valid(s->cache, s->aset[i], 0)) {
            int ahead[SERTK_RCACHE_MAXBLOCK], na = 0;
            for (int t = i; t < i1 && na < s->cache->block; t++) ahead[na++] = t;
            sertk_rows_ahead(s, ahead, na, 0);
        }
        const float *R = sertk_row(s, i);
        const double yi = s->y[i];
        double gi = s->G[i];
        for (int t = 0; t < nf; t++) {
            const int j = fr[t];
            double q = (yi * s->y[j]) * (double)R[s->col[j]];
            gi += s->alpha[j] * q;
        }
        s->G[i] = gi;
    }
}

/* reconstruction, the free variables fr[0..nf) in ascending order each adding to positions j0..j1 */
static void sertk_recon_free_range(sertk_solver *s, const int *fr, int nf, int j0, int j1)
{
    for (int t = 0; t < nf; t++) {
        const int i = fr[t];
        if (sertk_cancelled(s->k->cancel)) {
            __atomic_store_n(&s->stopped, 1, __ATOMIC_RELAXED);
            return;
        }
        if (s->cache != NULL && !sertk_rcache_valid(s->cache, s->aset[i], 1))
            sertk_rows_ahead(s, fr + t, nf - t < s->cache->block ? nf - t : s->cache->block, 1);
        const float *R = sertk_row_full(s, i);
        const double ai = s->alpha[i];
        const double yi = s->y[i];
        for (int j = j0; j < j1; j++) {
            double q = (yi * s->y[j]) * (double)R[s->col[j]];
            s->G[j] += ai * q;
        }
    }
}

/*
 * G of the inactive variables from G_bar and the free variables (the linear term p is 0 for nu-SVC).  At corpus scale
 * this computes thousands of whole rows (minutes from a row cache), so it polls the cancellation flag per row; once
 * it has stopped, s->stopped is set and the solver must return without keeping its state, which is half rebuilt.
 */
static void sertk_reconstruct_gradient(sertk_solver *s)
{
    const int l = s->l, as = s->active_size;
    if (as == l) return;
    for (int j = as; j < l; j++) s->G[j] = s->Gbar[j] + 0.0;
    int *fr = s->tmp, nf = 0;
    for (int j = 0; j < as; j++)
        if (s->st[j] == SERTK_FREE) fr[nf++] = j;
    /* both loop orders add the terms of each G[i] in ascending position order, as libsvm */
    sertk_job jb;
    jb.s = s;
    jb.op = (long long)nf * l > 2LL * as * (l - as) ? SERTK_JOB_RECON_INACTIVE : SERTK_JOB_RECON_FREE;
    jb.n = l - as;
    jb.free_pos = fr;
    jb.n_free = nf;
    sertk_job_parts(&jb, sertk_team_for_rows(s, l));
}

static inline int sertk_be_shrunk(const sertk_solver *s, int i, double Gmax1, double Gmax2, double Gmax3,
                                  double Gmax4)
{
    if (s->st[i] == SERTK_UPPER) {
        if (s->y[i] == +1) return -s->G[i] > Gmax1;
        return -s->G[i] > Gmax4;
    }
    if (s->st[i] == SERTK_LOWER) {
        if (s->y[i] == +1) return s->G[i] > Gmax2;
        return s->G[i] > Gmax3;
    }
    return 0;
}

static void sertk_do_shrinking(sertk_solver *s)
{
    double Gmax1 = -SERTK_INF; /* max -G, y = +1, not at upper bound */
    double Gmax2 = -SERTK_INF; /* max  G, y = +1, not at lower bound */
    double Gmax3 = -SERTK_INF; /* max  G, y = -1, not at lower bound */
    double Gmax4 = -SERTK_INF; /* max -G, y = -1, not at upper bound */
    for (int i = 0; i < s->active_size; i++) {
        if (s->st[i] != SERTK_UPPER) {
            if (s->y[i] == +1) {
                if (-s->G[i] > Gmax1) Gmax1 = -s->G[i];
            } else if (-s->G[i] > Gmax4) {
                Gmax4 = -s->G[i];
            }
        }
        if (s->st[i] != SERTK_LOWER) {
            if (s->y[i] == +1) {
                if (s->G[i] > Gmax2) Gmax2 = s->G[i];
            } else if (s->G[i] > Gmax3) {
                Gmax3 = s->G[i];
            }
        }
    }
    if (!s->unshrink && sertk_max(Gmax1 + Gmax2, Gmax3 + Gmax4) <= s->eps * 10) {
        s->unshrink = 1;
        sertk_reconstruct_gradient(s);
        if (s->stopped) return;
        s->active_size = s->l;
        sertk_widened(s);
    }
    for (int i = 0; i < s->active_size; i++) {
        if (sertk_be_shrunk(s, i, Gmax1, Gmax2, Gmax3, Gmax4)) {
            s->active_size--;
            while (s->active_size > i) {
                if (!sertk_be_shrunk(s, s->active_size, Gmax1, Gmax2, Gmax3, Gmax4)) {
                    sertk_swap_index(s, i, s->active_size);
                    break;
                }
                s->active_size--;
            }
        }
    }
    if (s->cache) sertk_rcache_narrow(s->cache, s->k, s->active_size, s->aset);
}

/* rho and r of the nu formulation (libsvm's Solver_NU::calculate_rho) */
static double sertk_calculate_rho(const sertk_solver *s, double *r)
{
    int nr_free1 = 0, nr_free2 = 0;
    double ub1 = SERTK_INF, ub2 = SERTK_INF, lb1 = -SERTK_INF, lb2 = -SERTK_INF;
    double sum_free1 = 0, sum_free2 = 0;
    for (int i = 0; i < s->active_size; i++) {
        if (s->y[i] == +1) {
            if (s->st[i] == SERTK_UPPER)
                lb1 = sertk_max(lb1, s->G[i]);
            else if (s->st[i] == SERTK_LOWER)
                ub1 = sertk_min(ub1, s->G[i]);
            else {
                ++nr_free1;
                sum_free1 += s->G[i];
            }
        } else {
            if (s->st[i] == SERTK_UPPER)
                lb2 = sertk_max(lb2, s->G[i]);
            else if (s->st[i] == SERTK_LOWER)
                ub2 = sertk_min(ub2, s->G[i]);
            else {
                ++nr_free2;
                sum_free2 += s->G[i];
            }
        }
    }
    double r1 = nr_free1 > 0 ? sum_free1 / nr_free1 : (ub1 + lb1) / 2;
    double r2 = nr_free2 > 0 ? sum_free2 / nr_free2 : (ub2 + lb2) / 2;
    *r = (r1 + r2) / 2;
    return (r1 - r2) / 2;
}

void sertk_work_free(sertk_work *w)
{
    free(w->y);
    free(w->st);
    free(w->alpha);
    free(w->G);
    free(w->Gbar);
    free(w->C);
    free(w->QD);
    free(w->aset);
    free(w->col);
    free(w->tmp);
    free(w->gidx);
    free(w->ysub);
    free(w->Csub);
    free(w->asub);
    free(w->fgidx);
    free(w->fy);
    free(w->fC);
    free(w->fa);
    free(w->dec);
    free(w->fpos);
    if (w->has_cache) sertk_rcache_free(&w->cache);
    if (w->has_pgram) sertk_pgram_free(&w->pgram);
    sertk_team_stop(w->team);
    memset(w, 0, sizeof(*w));
}

int sertk_work_init(sertk_work *w, int maxl, int probability, const sertk_kctx *k, int kernel_mode,
                    double cache_budget, int team_parts)
{
    memset(w, 0, sizeof(*w));
    w->maxl = maxl;
    w->y = SERTK_NEW(schar, maxl);
    w->st = SERTK_NEW(char, maxl);
    w->alpha = SERTK_NEW(double, maxl);
    w->G = SERTK_NEW(double, maxl);
    w->Gbar = SERTK_NEW(double, maxl);
    w->C = SERTK_NEW(double, maxl);
    w->QD = SERTK_NEW(double, maxl);
    w->aset = SERTK_NEW(int, maxl);
    w->col = SERTK_NEW(int, maxl);
    w->tmp = SERTK_NEW(int, maxl);
    w->gidx = SERTK_NEW(int, maxl);
    w->ysub = SERTK_NEW(schar, maxl);
    w->Csub = SERTK_NEW(double, maxl);
    w->asub = SERTK_NEW(double, maxl);
    int ok = w->y && w->st && w->alpha && w->G && w->Gbar && w->C && w->QD && w->aset && w->col && w->tmp && w->gidx &&
             w->ysub && w->Csub && w->asub;
    if (ok && probability) {
        w->fgidx = SERTK_NEW(int, maxl);
        w->fy = SERTK_NEW(schar, maxl);
        w->fC = SERTK_NEW(double, maxl);
        w->fa = SERTK_NEW(double, maxl);
        w->dec = SERTK_NEW(double, maxl);
        w->fpos = SERTK_NEW(int, maxl);
        ok = w->fgidx && w->fy && w->fC && w->fa && w->dec && w->fpos;
    }
    int rc = ok ? SERTK_OK : SERTK_ENOMEM;
    if (rc == SERTK_OK && kernel_mode == SERTK_KMODE_CACHE) {
        rc = sertk_rcache_init(&w->cache, k, maxl, cache_budget);
        w->has_cache = rc == SERTK_OK;
    }
    if (rc == SERTK_OK && kernel_mode == SERTK_KMODE_PAIR) {
        rc = sertk_pgram_init(&w->pgram, k, maxl);
        w->has_pgram = rc == SERTK_OK;
    }
    /* without a team (one thread, or threads refused) the solver and its row cache run alone */
    if (rc == SERTK_OK && team_parts >= 2)
        w->team = sertk_team_start(team_parts < SERTK_TEAM_MAXPARTS ? team_parts : SERTK_TEAM_MAXPARTS);
    if (w->has_cache) w->cache.team = w->team;
    if (rc != SERTK_OK) sertk_work_free(w);
    return rc;
}

/* labels, bounds, diagonal and kernel columns of every position, from the index it holds (aset), and its status */
static void sertk_place(sertk_solver *s, const schar *y, const double *C)
{
    for (int t = 0; t < s->l; t++) {
        const int o = s->aset[t];
        s->y[t] = y[o];
        s->C[t] = C[o];
        s->QD[t] = s->k->qd[s->gidx[o]];
        s->col[t] = s->cache ? o : s->gidx[o];
        sertk_update_status(s, t);
    }
}

static double sertk_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* the solver's state at the top of an iteration into *st, under the states lock (another thread may copy it out) */
static void sertk_state_save(const sertk_solver *s, sertk_nusvm_state *st, int iter, int counter)
{
    const size_t l = (size_t)s->l;
    sertk_nusvm_states_lock();
    memcpy(st->alpha, s->alpha, l * sizeof(double));
    memcpy(st->G, s->G, l * sizeof(double));
    memcpy(st->Gbar, s->Gbar, l * sizeof(double));
    memcpy(st->aset, s->aset, l * sizeof(int));
    st->iter = iter;
    st->counter = counter;
    st->active_size = s->active_size;
    st->unshrink = s->unshrink;
    st->max_valid = s->max_valid;
    st->ip = s->ip;
    st->in = s->in;
    st->Gmaxp = s->Gmaxp;
    st->Gmaxn = s->Gmaxn;
    st->version++;
    sertk_nusvm_states_unlock();
}

/*
 * The solver from a saved state instead of the start: positions, alpha, G and G_bar as saved; labels, bounds,
 * diagonal and kernel columns follow each position's index.  SERTK_EINVAL (nothing read past the arrays) when the
 * state cannot be this sub-problem's: an index out of range or repeated, a count out of range.
 */
static int sertk_state_restore(sertk_solver *s, const sertk_nusvm_state *st, const schar *y, const double *C,
                               int *iter, int *counter)
{
    const int l = s->l;
    if (st->iter < 0 || st->active_size < 0 || st->active_size > l || st->counter < 1 || st->counter > 1001 ||
        (st->unshrink != 0 && st->unshrink != 1) || (st->max_valid != 0 && st->max_valid != 1) || st->ip < -1 ||
        st->ip >= l || st->in < -1 || st->in >= l)
        return SERTK_EINVAL;
    int *seen = s->tmp;
    for (int t = 0; t < l; t++) seen[t] = 0;
    for (int t = 0; t < l; t++) {
        const int o = st->aset[t];
        if (o < 0 || o >= l || seen[o]) return SERTK_EINVAL;
        seen[o] = 1;
    }
    memcpy(s->aset, st->aset, (size_t)l * sizeof(int));
    memcpy(s->alpha, st->alpha, (size_t)l * sizeof(double));
    memcpy(s->G, st->G, (size_t)l * sizeof(double));
    memcpy(s->Gbar, st->Gbar, (size_t)l * sizeof(double));
    sertk_place(s, y, C);
    s->active_size = st->active_size;
    s->unshrink = st->unshrink;
    s->max_valid = st->max_valid;
    s->ip = st->ip;
    s->in = st->in;
    s->Gmaxp = st->Gmaxp;
    s->Gmaxn = st->Gmaxn;
    *iter = st->iter;
    *counter = st->counter;
    /* the row cache gathers the active variables as the shrinking that made them would have */
    if (s->cache && s->active_size < l) sertk_rcache_narrow(s->cache, s->k, s->active_size, s->aset);
    return SERTK_OK;
}

/*
 * libsvm's Solver::Solve with Solver_NU's selection, shrinking and rho, on the sub-problem gidx[0..l) with
 * labels y, bounds C and the feasible start alpha (overwritten with the solution, sub-problem order).
 */
static int sertk_nu_solve(sertk_work *w, const sertk_kctx *k, int l, const int *gidx, const schar *y,
                          const double *C, double *alpha_io, double eps, int shrinking, int max_iter,
                          double *rho, double *r, int *n_iter, int *timed_out, sertk_nusvm_state *state,
                          double state_every_s)
{
    sertk_solver S;
    sertk_solver *s = &S;
    s->l = l;
    s->active_size = l;
    s->unshrink = 0;
    s->eps = eps;
    s->y = w->y;
    s->st = w->st;
    s->alpha = w->alpha;
    s->G = w->G;
    s->Gbar = w->Gbar;
    s->C = w->C;
    s->QD = w->QD;
    s->aset = w->aset;
    s->col = w->col;
    s->tmp = w->tmp;
    s->max_valid = 0;
    s->stopped = 0;
    s->ip = s->in = -1; /* (read only while max_valid; set so that a kept state holds no stale bits) */
    s->Gmaxp = s->Gmaxn = -SERTK_INF;
    s->k = k;
    s->gidx = gidx;
    s->cache = w->has_cache ? &w->cache : NULL;
    s->team = w->team;
    if (s->cache) sertk_rcache_reset(s->cache, k, l, gidx);
    if (sertk_cancelled(k->cancel)) return SERTK_ECANCELLED;

    int iter = 0;
    int counter = (l < 1000 ? l : 1000) + 1;
    if (state != NULL && state->version != 0) {
        /* an interrupted fit's solver, where it stopped: its gradient is not computed again */
        if (sertk_state_restore(s, state, y, C, &iter, &counter) != SERTK_OK) return SERTK_EINVAL;
    } else {
        for (int i = 0; i < l; i++) {
            s->aset[i] = i;
            s->alpha[i] = alpha_io[i];
        }
        sertk_place(s, y, C);
        /* gradient: G = Q alpha (p = 0), G_bar = sum of C_i Q_i over variables at the upper bound */
        sertk_job jb;
        jb.s = s;
        jb.op = SERTK_JOB_INIT;
        jb.n = l;
        sertk_job_parts(&jb, sertk_team_for_rows(s, l));
        if (sertk_cancelled(k->cancel)) return SERTK_ECANCELLED;
    }

    int cap = max_iter;
    if (cap < 0) cap = l > INT_MAX / 100 ? INT_MAX : (100 * l > 10000000 ? 100 * l : 10000000);
    int reported = iter; /* iterations counted in the progress so far (a resumed solver's earlier ones are not) */
    double saved_at = sertk_seconds();
    *timed_out = 0;
    for (;;) {
        /*
         * A read of the caller's flag, an add to the progress and, when the caller keeps this pair's state, a copy
         * of it now and then: none changes the path of a fit.  The state is the top of this iteration, so a solver
         * restored from it runs this same block and goes on as this one would have.
         */
        if ((iter & 63) == 0) {
            sertk_report_iterations(k->progress, iter - reported);
            reported = iter;
            if (sertk_cancelled(k->cancel)) {
                if (state != NULL) sertk_state_save(s, state, iter, counter);
                return SERTK_ECANCELLED;
            }
            if (state != NULL) {
                const double now = sertk_seconds();
                if (now - saved_at >= state_every_s) {
                    sertk_state_save(s, state, iter, counter);
                    saved_at = now;
                }
            }
        }
        if (iter >= cap) {
            *timed_out = 1;
            break;
        }
        if (--counter == 0) {
            counter = l < 1000 ? l : 1000;
            if (shrinking) {
                sertk_do_shrinking(s);
                if (s->stopped) return SERTK_ECANCELLED; /* the last state kept stands */
                s->max_valid = 0;
            }
        }
        int i, j;
        if (sertk_select_working_set(s, &i, &j) != 0) {
            sertk_reconstruct_gradient(s);
            if (s->stopped) return SERTK_ECANCELLED; /* the last state kept stands */
            s->active_size = l;
            sertk_widened(s);
            s->max_valid = 0;
            if (sertk_select_working_set(s, &i, &j) != 0) break;
            counter = 1; /* shrink at the next iteration */
        }
        ++iter;

        const float *Ri = sertk_row(s, i);
        const float *Rj = sertk_row(s, j);
        const double Ci = s->C[i], Cj = s->C[j];
        double *alpha = s->alpha;
        const double old_ai = alpha[i], old_aj = alpha[j];

        /* the nu working set is always within one class: y_i == y_j, Q_ij = K_ij */
        double quad = s->QD[i] + s->QD[j] - 2 * Ri[s->col[j]];
        if (quad <= 0) quad = SERTK_TAU;
        double delta = (s->G[i] - s->G[j]) / quad;
        double sum = alpha[i] + alpha[j];
        alpha[i] -= delta;
        alpha[j] += delta;
        if (sum > Ci) {
            if (alpha[i] > Ci) {
                alpha[i] = Ci;
                alpha[j] = sum - Ci;
            }
        } else {
            if (alpha[j] < 0) {
                alpha[j] = 0;
                alpha[i] = sum;
            }
        }
        if (sum > Cj) {
            if (alpha[j] > Cj) {
                alpha[j] = Cj;
                alpha[i] = sum - Cj;
            }
        } else {
            if (alpha[i] < 0) {
                alpha[i] = 0;
                alpha[j] = sum;
            }
        }

        /* alpha status (G does not depend on it, so it may come first, as libsvm computes it after G) */
        const int ui = s->st[i] == SERTK_UPPER, uj = s->st[j] == SERTK_UPPER;
        sertk_update_status(s, i);
        sertk_update_status(s, j);

        /*
         * G += Q_i d_i + Q_j d_j with Q_ik = y_i y_k K_ik and y_i = y_j; the same pass finds the maximal
         * violator of each class for the next working-set selection (same comparisons, same order).
         */
        const double yij = s->y[i];
        {
            sertk_job jb;
            jb.s = s;
            jb.op = SERTK_JOB_UPDATE;
            jb.n = s->active_size;
            jb.update_in.Ri = Ri;
            jb.update_in.Rj = Rj;
            jb.update_in.dai = alpha[i] - old_ai;
            jb.update_in.daj = alpha[j] - old_aj;
            jb.update_in.yij = yij;
            const int parts = sertk_job_parts(&jb, sertk_team_for(s, jb.n));
            /* parts in position order: the last of equal violations wins, as in one pass */
            sertk_viol best = jb.viol[0];
            for (int p = 1; p < parts; p++) {
                if (jb.viol[p].Gmaxp >= best.Gmaxp) {
                    best.Gmaxp = jb.viol[p].Gmaxp;
                    best.ip = jb.viol[p].ip;
                }
                if (jb.viol[p].Gmaxn >= best.Gmaxn) {
                    best.Gmaxn = jb.viol[p].Gmaxn;
                    best.in = jb.viol[p].in;
                }
            }
            s->Gmaxp = best.Gmaxp;
            s->Gmaxn = best.Gmaxn;
            s->ip = best.ip;
            s->in = best.in;
            s->max_valid = 1;
        }

        /* G_bar: i's change, then j's, for each position */
        {
            sertk_job jb;
            jb.s = s;
            jb.op = SERTK_JOB_GBAR;
            jb.n = l;
            jb.n_gbar = 0;
            const int moved[2] = {ui != (s->st[i] == SERTK_UPPER), uj != (s->st[j] == SERTK_UPPER)};
            const int var[2] = {i, j}, was_upper[2] = {ui, uj};
            const double Cx[2] = {Ci, Cj};
            for (int x = 0; x < 2; x++) {
                if (!moved[x]) continue;
                /*
                 * Alone, each row is used before the next is fetched; a team holds both, which the row cache allows:
                 * a fetch evicts only its oldest rows and it holds at least SERTK_MIN_CACHE_ROWS.
                 */
                if (s->team == NULL) jb.n_gbar = 0;
                sertk_gbar_in *g = &jb.gbar_in[jb.n_gbar++];
                g->R = sertk_row_full(s, var[x]);
                g->Cx = Cx[x];
                g->yij = yij;
                g->leaves = was_upper[x];
                if (s->team == NULL) sertk_gbar_range(s, g, 0, l);
            }
            if (s->team != NULL && jb.n_gbar > 0) sertk_job_parts(&jb, sertk_team_for(s, l));
        }
    }

    sertk_report_iterations(k->progress, iter - reported);
    *rho = sertk_calculate_rho(s, r);
    for (int i = 0; i < l; i++) alpha_io[s->aset[i]] = s->alpha[i];
    *n_iter = iter;
    return SERTK_OK;
}


/*
 * libsvm's solve_nu_svc: start from each class's budget nu*sum(C)/2 handed out in order, solve, then scale by
 * 1/r.  On return coef[i] = y_i alpha_i / r (the dual coefficient) and *rho is the scaled rho.
 */
int sertk_nu_svc(sertk_work *w, const sertk_kctx *k, const sertk_nusvm_params *par, int l,
                        const int *gidx, const schar *y, const double *C, double *coef, double *rho, int *n_iter,
                        int *timed_out, sertk_nusvm_state *state, double state_every_s)
{
    double nu_l = 0;
    for (int i = 0; i < l; i++) nu_l += par->nu * C[i];
    double sum_pos = nu_l / 2, sum_neg = nu_l / 2;
    for (int i = 0; i < l; i++) {
        if (y[i] == +1) {
            coef[i] = sertk_min(C[i], sum_pos);
            sum_pos -= coef[i];
        } else {
            coef[i] = sertk_min(C[i], sum_neg);
            sum_neg -= coef[i];
        }
    }
    double r;
    int rc = sertk_nu_solve(w, k, l, gidx, y, C, coef, par->tol, par->shrinking, par->max_iter, rho, &r, n_iter,
                            timed_out, state, state_every_s);
    if (rc != SERTK_OK) return rc;
    for (int i = 0; i < l; i++) coef[i] *= y[i] / r;
    *rho /= r;
    sertk_report_subproblem(k->progress);
    return SERTK_OK;
}
