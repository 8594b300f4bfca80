/*
 * sertk_kernel.c -- kernel values for the solver: the whole Gram matrix in BLAS row blocks (upper triangle, then
 * mirrored), each pair's own matrix (from class blocks, or chained through one buffer), or rows of one
 * sub-problem on demand into an LRU cache (computed by sertk_rowdot.c, over the active columns after shrinking).
 */
#include "sertk_kernel.h"

#include <string.h>

typedef struct {
    sertk_kctx *k;
    int block;
    double *bufs; /* per worker: block x n */
} sertk_gram_job;

/*
 * Rows of one sub-band of a band's diagonal square: SERTK_DIAG, or all that are left when fewer than 1.5 SERTK_DIAG
 * remain, so that no product is a sliver of a few rows (those are slow, and a BLAS may take a small-matrix kernel
 * for them that sums in another order).
 */
#define SERTK_DIAG 64
static inline int sertk_diag_rows(int left) { return left < SERTK_DIAG + SERTK_DIAG / 2 ? left : SERTK_DIAG; }

static int sertk_gram_rows_task(void *ctx, int task, int worker)
{
    sertk_gram_job *job = (sertk_gram_job *)ctx;
    sertk_kctx *k = job->k;
    const int n = k->n, d = k->d;
    const int r0 = task * job->block;
    const int mr = (n - r0 < job->block) ? n - r0 : job->block;
    if (sertk_cancelled(k->cancel)) return SERTK_ECANCELLED;
    if (k->kernel == SERTK_KERNEL_PRECOMPUTED) {
        for (int i = r0; i < r0 + mr; i++) {
            const double *src = k->K + (size_t)i * n;
            float *dst = k->gram + (size_t)i * k->ld;
            for (int j = 0; j < n; j++) dst[j] = (float)src[j];
        }
        sertk_report_values(k->progress, (long long)mr * n);
        return SERTK_OK;
    }
    /*
     * Upper triangle of rows r0..r0+mr-1, columns r0..n-1: the columns right of the band's own mr x mr square in
     * one product, the square in sub-bands of about SERTK_DIAG rows, each from its own diagonal on.  One product
     * over the whole band would compute the square's lower half too (a quarter more values than the triangle at
     * n = 1000, 6 % at 4425); sub-bands leave about SERTK_DIAG^2 / 2 values per sub-band below the diagonal.
     */
    const int nc = n - r0;
    const double *Xb = k->X + (size_t)r0 * d;
    double *buf = job->bufs + (size_t)worker * job->block * n;
    sertk_gemm_abt(k->blas, mr, nc - mr, d, Xb, d, Xb + (size_t)mr * d, d, buf + mr, nc);
    for (int s = 0; s < mr;) {
        const int h = sertk_diag_rows(mr - s);
        sertk_gemm_abt(k->blas, h, mr - s, d, Xb + (size_t)s * d, d, Xb + (size_t)s * d, d,
                       buf + (size_t)s * nc + s, nc);
        s += h;
    }
    for (int r = 0; r < mr; r++) {
        const int i = r0 + r;
        float *gi = k->gram + (size_t)i * k->ld;
        const double *bi = buf + (size_t)r * nc;
        const double sqi = k->sq[i];
        gi[i] = (float)k->qd[i];
        if (k->kernel == SERTK_KERNEL_RBF)
            sertk_rbf_row(n - i - 1, bi + (i + 1 - r0), k->sq + i + 1, sqi, k->gamma, gi + i + 1);
        else
            for (int j = i + 1; j < n; j++) gi[j] = (float)sertk_kval(k, bi[j - r0], sqi, k->sq[j]);
    }
    /* the upper triangle's values of these rows, diagonal included: sum over i of n - i */
    sertk_report_values(k->progress, (long long)mr * (n - r0) - (long long)mr * (mr - 1) / 2);
    return SERTK_OK;
}

#define SERTK_TILE 64

/* lower triangle := transpose of the upper triangle, one band of SERTK_TILE rows per task */
static int sertk_gram_mirror_task(void *ctx, int task, int worker)
{
    (void)worker;
    sertk_kctx *k = (sertk_kctx *)ctx;
    const int n = k->n;
    const size_t ld = (size_t)k->ld;
    const int i0 = task * SERTK_TILE;
    const int i1 = (i0 + SERTK_TILE < n) ? i0 + SERTK_TILE : n;
    float *g = k->gram;
    if (sertk_cancelled(k->cancel)) return SERTK_ECANCELLED;
    /* whole tiles left of the diagonal: rows j0..j0+SERTK_TILE-1, columns i0..i1-1 of the upper half, transposed */
    for (int j0 = 0; j0 < i0; j0 += SERTK_TILE)
        sertk_transpose(g + (size_t)j0 * ld + i0, ld, g + (size_t)i0 * ld + j0, ld, SERTK_TILE, i1 - i0);
    for (int i = i0; i < i1; i++) { /* the diagonal tile's lower half */
        float *gi = g + (size_t)i * ld;
        for (int j = i0; j < i; j++) gi[j] = g[(size_t)j * ld + i];
    }
    return SERTK_OK;
}

int sertk_gram_compute(sertk_kctx *k, int n_threads)
{
    const int n = k->n;
    sertk_gram_job job;
    job.k = k;
    job.block = 256;
    job.bufs = NULL;
    const int ntasks = (n + job.block - 1) / job.block;
    const int nw = n_threads < 1 ? 1 : (n_threads < ntasks ? n_threads : ntasks);
    if (k->kernel != SERTK_KERNEL_PRECOMPUTED) {
        job.bufs = SERTK_NEW(double, (size_t)nw * job.block * n);
        if (!job.bufs) return SERTK_ENOMEM;
    }
    int rc = sertk_parallel_for(nw, ntasks, sertk_gram_rows_task, &job);
    free(job.bufs);
    if (rc != SERTK_OK) return rc;
    if (k->kernel != SERTK_KERNEL_PRECOMPUTED)
        rc = sertk_parallel_for(n_threads, (n + SERTK_TILE - 1) / SERTK_TILE, sertk_gram_mirror_task, k);
    return rc;
}

int sertk_pgram_init(sertk_pgram *g, const sertk_kctx *k, int maxl)
{
    memset(g, 0, sizeof(*g));
    g->maxl = maxl;
    g->sq = SERTK_NEW(double, maxl);
    g->qd = SERTK_NEW(double, maxl);
    g->gram = sertk_big_alloc((size_t)maxl * maxl * sizeof(float));
    g->prev_i = g->prev_j = g->prev_ni = -1;
    g->kept_class = -1;
    int ok = g->sq && g->qd && g->gram;
    if (ok && k->kernel != SERTK_KERNEL_PRECOMPUTED) {
        g->X = SERTK_NEW(double, (size_t)maxl * k->d);
        ok = g->X != NULL;
    }
    if (!ok) {
        sertk_pgram_free(g);
        return SERTK_ENOMEM;
    }
    return SERTK_OK;
}

void sertk_pgram_free(sertk_pgram *g)
{
    free(g->X);
    free(g->sq);
    free(g->qd);
    free(g->gram);
    free(g->kept);
    memset(g, 0, sizeof(*g));
}

typedef struct {
    sertk_pgram *g;
    const sertk_kctx *k;
    int l;
    const int *idx;
} sertk_gather_job;

/* samples idx[a] into g->X, one band of SERTK_TILE samples per task */
static int sertk_gather_task(void *ctx, int task, int worker)
{
    (void)worker;
    const sertk_gather_job *job = (const sertk_gather_job *)ctx;
    const size_t d = (size_t)job->k->d;
    const int a0 = task * SERTK_TILE, a1 = (a0 + SERTK_TILE < job->l) ? a0 + SERTK_TILE : job->l;
    for (int a = a0; a < a1; a++) memcpy(job->g->X + a * d, job->k->X + (size_t)job->idx[a] * d, sizeof(double) * d);
    return SERTK_OK;
}

/*
 * *local: k over the samples idx[0..l) gathered into g (norms and diagonal; the rows too unless precomputed).  The
 * rows are copied by every thread of the pair: the first gathering is the first touch of g->X (8 l d bytes, 245 MB
 * at 50 000 samples), whose pages the kernel zeroes then.
 */
static int sertk_pgram_gather(sertk_pgram *g, const sertk_kctx *k, int l, const int *idx, int n_threads,
                              sertk_kctx *local)
{
    *local = *k;
    local->n = l;
    local->X = g->X;
    local->K = NULL;
    local->sq = g->sq;
    local->qd = g->qd;
    local->gram = g->gram;
    local->ld = l;
    for (int a = 0; a < l; a++) {
        g->sq[a] = k->sq[idx[a]];
        g->qd[a] = k->qd[idx[a]];
    }
    if (k->kernel == SERTK_KERNEL_PRECOMPUTED) return SERTK_OK;
    sertk_gather_job job = {g, k, l, idx};
    return sertk_parallel_for(n_threads, (l + SERTK_TILE - 1) / SERTK_TILE, sertk_gather_task, &job);
}

int sertk_pgram_build(sertk_pgram *g, const sertk_kctx *k, int l, const int *idx, int n_threads, sertk_kctx *local)
{
    const int rc = sertk_pgram_gather(g, k, l, idx, n_threads, local);
    if (rc != SERTK_OK) return rc;
    g->prev_i = g->prev_j = g->prev_ni = -1; /* the buffer's layout is this pair's, stride l */
    if (k->kernel == SERTK_KERNEL_PRECOMPUTED) {
        for (int a = 0; a < l; a++) {
            const double *src = k->K + (size_t)idx[a] * k->n;
            float *dst = g->gram + (size_t)a * l;
            for (int b = 0; b < l; b++) dst[b] = (float)src[idx[b]];
        }
        sertk_report_values(k->progress, (long long)l * l);
        return sertk_cancelled(k->cancel) ? SERTK_ECANCELLED : SERTK_OK;
    }
    return sertk_gram_compute(local, n_threads);
}

typedef struct {
    const sertk_kctx *k; /* the pair's local context: X, sq over the pair's l samples */
    int ni, nj, ld, block;
    float *G;            /* the pair's l x l matrix, row stride ld */
    double *bufs;        /* per worker: block x nj */
} sertk_cross_job;

/* rows r0.. of class i against every sample of class j: G[a][ni + b] */
static int sertk_cross_rows_task(void *ctx, int task, int worker)
{
    sertk_cross_job *job = (sertk_cross_job *)ctx;
    const sertk_kctx *k = job->k;
    const int d = k->d, ni = job->ni, nj = job->nj;
    const size_t ld = (size_t)job->ld;
    const int r0 = task * job->block;
    const int mr = (ni - r0 < job->block) ? ni - r0 : job->block;
    if (sertk_cancelled(k->cancel)) return SERTK_ECANCELLED;
    double *buf = job->bufs + (size_t)worker * job->block * nj;
    sertk_gemm_abt(k->blas, mr, nj, d, k->X + (size_t)r0 * d, d, k->X + (size_t)ni * d, d, buf, nj);
    for (int r = 0; r < mr; r++) {
        const int a = r0 + r;
        float *ga = job->G + (size_t)a * ld + ni;
        const double *ba = buf + (size_t)r * nj;
        const double sqa = k->sq[a];
        if (k->kernel == SERTK_KERNEL_RBF)
            sertk_rbf_row(nj, ba, k->sq + ni, sqa, k->gamma, ga);
        else
            for (int b = 0; b < nj; b++) ga[b] = (float)sertk_kval(k, ba[b], sqa, k->sq[ni + b]);
    }
    sertk_report_values(k->progress, (long long)mr * nj);
    return SERTK_OK;
}

/* G[ni + b][a] := G[a][ni + b], one band of SERTK_TILE class-j rows per task */
static int sertk_cross_mirror_task(void *ctx, int task, int worker)
{
    (void)worker;
    sertk_cross_job *job = (sertk_cross_job *)ctx;
    const int ni = job->ni, nj = job->nj;
    const size_t ld = (size_t)job->ld;
    const int b0 = task * SERTK_TILE, b1 = (b0 + SERTK_TILE < nj) ? b0 + SERTK_TILE : nj;
    if (sertk_cancelled(job->k->cancel)) return SERTK_ECANCELLED;
    for (int a0 = 0; a0 < ni; a0 += SERTK_TILE) {
        const int a1 = (a0 + SERTK_TILE < ni) ? a0 + SERTK_TILE : ni;
        sertk_transpose(job->G + (size_t)a0 * ld + ni + b0, ld, job->G + (size_t)(ni + b0) * ld + a0, ld, a1 - a0,
                        b1 - b0);
    }
    return SERTK_OK;
}

/* the ni x nj cross block of a pair (class i's samples first in local) into G (row stride ld), then mirrored */
static int sertk_cross_compute(const sertk_kctx *local, int ni, int nj, float *G, int ld, int n_threads)
{
    sertk_cross_job job;
    job.k = local;
    job.ni = ni;
    job.nj = nj;
    job.ld = ld;
    job.block = 256;
    job.G = G;
    const int ntasks = (ni + job.block - 1) / job.block;
    const int nw = n_threads < 1 ? 1 : (n_threads < ntasks ? n_threads : ntasks);
    job.bufs = SERTK_NEW(double, (size_t)nw * job.block * nj);
    if (!job.bufs) return SERTK_ENOMEM;
    int rc = sertk_parallel_for(nw, ntasks, sertk_cross_rows_task, &job);
    free(job.bufs);
    if (rc == SERTK_OK)
        rc = sertk_parallel_for(n_threads, (nj + SERTK_TILE - 1) / SERTK_TILE, sertk_cross_mirror_task, &job);
    return rc;
}

typedef struct {
    float *G;             /* the pair's l x l matrix, row stride l */
    int l, ni, nj;
    const float *di, *dj; /* the two classes' own blocks */
} sertk_blocks_job;

/* rows of the pair's matrix from its classes' own blocks, one band of SERTK_TILE rows per task */
static int sertk_blocks_copy_task(void *ctx, int task, int worker)
{
    (void)worker;
    const sertk_blocks_job *job = (const sertk_blocks_job *)ctx;
    const int ni = job->ni, nj = job->nj;
    const size_t l = (size_t)job->l;
    const int r0 = task * SERTK_TILE, r1 = (r0 + SERTK_TILE < job->l) ? r0 + SERTK_TILE : job->l;
    for (int r = r0; r < r1; r++) {
        if (r < ni)
            memcpy(job->G + (size_t)r * l, job->di + (size_t)r * ni, sizeof(float) * ni);
        else
            memcpy(job->G + (size_t)r * l + ni, job->dj + (size_t)(r - ni) * nj, sizeof(float) * nj);
    }
    return SERTK_OK;
}

int sertk_pgram_build_cross(sertk_pgram *g, const sertk_kctx *k, int ni, int nj, const int *idx,
                            const float *diag_i, const float *diag_j, int n_threads, sertk_kctx *local)
{
    const int l = ni + nj;
    if (k->kernel == SERTK_KERNEL_PRECOMPUTED) return SERTK_EINVAL;
    int rc = sertk_pgram_gather(g, k, l, idx, n_threads, local);
    if (rc != SERTK_OK) return rc;
    g->prev_i = g->prev_j = g->prev_ni = -1; /* the buffer's layout is this pair's, stride l */
    /*
     * Copied by every thread of the pair, in row bands: the first pair's copy is also the first touch of most of
     * the buffer, whose pages the kernel zeroes then (about 0.5 GB/s on the VMs measured), so one thread copying
     * left the others idle for seconds at 50 000 samples.
     */
    sertk_blocks_job job = {g->gram, l, ni, nj, diag_i, diag_j};
    rc = sertk_parallel_for(n_threads, (l + SERTK_TILE - 1) / SERTK_TILE, sertk_blocks_copy_task, &job);
    if (rc != SERTK_OK) return rc;
    return sertk_cross_compute(local, ni, nj, g->gram, l, n_threads);
}

/* the ns x ns block at (from, from) of G (row stride ld) to (to, to); rows in the order that never overwrites */
static void sertk_block_move(float *G, size_t ld, int from, int to, int ns)
{
    if (from == to) return;
    if (to < from)
        for (int r = 0; r < ns; r++)
            memmove(G + (size_t)(to + r) * ld + to, G + (size_t)(from + r) * ld + from, sizeof(float) * ns);
    else
        for (int r = ns - 1; r >= 0; r--)
            memmove(G + (size_t)(to + r) * ld + to, G + (size_t)(from + r) * ld + from, sizeof(float) * ns);
}

/* the ns x ns block at (o, o) of G (row stride ld): upper triangle packed by rows into / out of P */
static void sertk_block_pack(const float *G, size_t ld, int o, int ns, float *P)
{
    for (int a = 0; a < ns; a++) {
        memcpy(P, G + (size_t)(o + a) * ld + o + a, sizeof(float) * (size_t)(ns - a));
        P += ns - a;
    }
}

static int sertk_block_unpack(sertk_kctx *sub, const float *P, int n_threads)
{
    const int ns = sub->n;
    const size_t ld = (size_t)sub->ld;
    for (int a = 0; a < ns; a++) {
        memcpy(sub->gram + (size_t)a * ld + a, P, sizeof(float) * (size_t)(ns - a));
        P += ns - a;
    }
    return sertk_parallel_for(n_threads, (ns + SERTK_TILE - 1) / SERTK_TILE, sertk_gram_mirror_task, sub);
}

int sertk_pgram_build_chain(sertk_pgram *g, const sertk_kctx *k, int ci, int cj, int ni, int nj, const int *idx,
                            int n_threads, sertk_kctx *local)
{
    const int l = ni + nj, S = g->maxl;
    if (k->kernel == SERTK_KERNEL_PRECOMPUTED) return SERTK_EINVAL;
    int rc = sertk_pgram_gather(g, k, l, idx, n_threads, local);
    if (rc != SERTK_OK) return rc;
    local->ld = S;
    /* where the shared class's block was (the previous pair's layout) and whether it is this pair's first class */
    int from = -1, shared = -1;
    if (ci == g->prev_i || ci == g->prev_j) {
        from = ci == g->prev_i ? 0 : g->prev_ni;
        shared = 0;
    } else if (cj == g->prev_i || cj == g->prev_j) {
        from = cj == g->prev_i ? 0 : g->prev_ni;
        shared = 1;
    }
    g->prev_i = -1; /* until this pair's matrix is complete */
    if (shared >= 0) sertk_block_move(g->gram, (size_t)S, from, shared == 0 ? 0 : ni, shared == 0 ? ni : nj);
    /* each class's own block not moved: unpacked when kept, else computed on the Gram path's code */
    for (int side = 0; side < 2 && rc == SERTK_OK; side++) {
        if (side == shared) continue;
        const int cls = side == 0 ? ci : cj, ot = side == 0 ? 0 : ni, no = side == 0 ? ni : nj;
        sertk_kctx sub = *local;
        sub.n = no;
        sub.X = local->X + (size_t)ot * k->d;
        sub.sq = local->sq + ot;
        sub.qd = local->qd + ot;
        sub.gram = g->gram + (size_t)ot * S + ot;
        if (cls == g->kept_class && g->kept_valid) {
            rc = sertk_block_unpack(&sub, g->kept, n_threads);
        } else {
            rc = sertk_gram_compute(&sub, n_threads);
            if (rc == SERTK_OK && cls == g->kept_class) {
                sertk_block_pack(g->gram, (size_t)S, ot, no, g->kept);
                g->kept_valid = 1;
            }
        }
    }
    if (rc == SERTK_OK) rc = sertk_cross_compute(local, ni, nj, g->gram, S, n_threads);
    if (rc != SERTK_OK) return rc;
    g->prev_i = ci;
    g->prev_j = cj;
    g->prev_ni = ni;
    return SERTK_OK;
}

void sertk_rcache_free(sertk_rcache *c)
{
    free(c->arena);
    free(c->slot_of);
    free(c->orig_of);
    free(c->prev);
    free(c->next);
    free(c->pfull);
    free(c->perm);
    free(c->pcol);
    free(c->sqp);
    free(c->prow);
    free(c->arow);
    free(c->obuf);
    free(c->blk);
    free(c->slot_epoch);
    memset(c, 0, sizeof(*c));
}

int sertk_rcache_init(sertk_rcache *c, const sertk_kctx *k, int maxl, double budget)
{
    memset(c, 0, sizeof(*c));
    double rows = budget / ((double)maxl * sizeof(float));
    int cap = rows > (double)maxl ? maxl : (int)rows;
    /* libsvm takes a few rows whatever the budget; we never exceed it (the caller checks min_cache_bytes first) */
    if (cap < SERTK_MIN_CACHE_ROWS) return SERTK_EBUDGET;
    c->cap = cap;
    c->maxl = maxl;
    /* rows per pass for rows read for certain (sertk_rows_ahead: up to four); at least 2 slots stay free */
    c->block = cap - 2 < SERTK_RCACHE_MAXBLOCK ? cap - 2 : SERTK_RCACHE_MAXBLOCK;
    c->arena = SERTK_NEW(float, (size_t)cap * maxl);
    c->slot_of = SERTK_NEW(int, maxl);
    c->orig_of = SERTK_NEW(int, cap);
    c->prev = SERTK_NEW(int, cap + 1);
    c->next = SERTK_NEW(int, cap + 1);
    c->blk = SERTK_NEW(int, c->block);
    c->slot_epoch = SERTK_NEW(int, cap);
    int ok = c->arena && c->slot_of && c->orig_of && c->prev && c->next && c->blk && c->slot_epoch;
    if (k->kernel != SERTK_KERNEL_PRECOMPUTED) {
        c->pfull = sertk_alloc(sertk_panel_bytes(maxl, k->d, k->x_f32), 1);
        c->perm = SERTK_NEW(int, maxl);
        c->pcol = SERTK_NEW(int, maxl);
        c->sqp = SERTK_NEW(double, maxl);
        c->prow = SERTK_NEW(int, maxl);
        c->arow = (const double **)sertk_alloc((size_t)c->block, sizeof(const double *));
        c->obuf = SERTK_NEW(double, (size_t)c->block * maxl);
        ok = ok && c->pfull && c->perm && c->pcol && c->sqp && c->prow && c->arow && c->obuf;
    }
    if (!ok) {
        sertk_rcache_free(c);
        return SERTK_ENOMEM;
    }
    return SERTK_OK;
}

/* start a new sub-problem: forget every row, gather its training rows */
void sertk_rcache_reset(sertk_rcache *c, const sertk_kctx *k, int l, const int *gidx)
{
    c->l = l;
    c->gidx = gidx;
    c->nfill = 0;
    c->ng = l;
    c->epoch = 0;
    for (int i = 0; i < l; i++) c->slot_of[i] = -1;
    c->next[c->cap] = c->prev[c->cap] = c->cap;
    if (k->kernel != SERTK_KERNEL_PRECOMPUTED) {
        sertk_panel_pack(c->pfull, k->x_f32, k->X, gidx, l, k->d);
        for (int i = 0; i < l; i++) {
            c->perm[i] = c->pcol[i] = i;
            c->sqp[i] = k->sq[gidx[i]];
        }
    }
}

static int sertk_rcache_slot(sertk_rcache *c, int orig)
{
    int s = c->slot_of[orig];
    if (s >= 0) { /* a row no longer valid for the reader: recomputed in its own slot */
        sertk_lru_unlink(c, s);
        sertk_lru_push(c, s);
        return s;
    }
    if (c->nfill < c->cap) {
        s = c->nfill++;
    } else {
        s = c->next[c->cap]; /* oldest */
        sertk_lru_unlink(c, s);
        c->slot_of[c->orig_of[s]] = -1;
    }
    c->orig_of[s] = orig;
    c->slot_of[orig] = s;
    sertk_lru_push(c, s);
    return s;
}

void sertk_rcache_narrow(sertk_rcache *c, const sertk_kctx *k, int as, const int *active)
{
    /* a new gathering repacks the prefix, ng x d values: only when it cuts the columns of later rows by 30 % or more */
    const int ng = c->ng;
    if (k->kernel == SERTK_KERNEL_PRECOMPUTED || 10LL * as > 7LL * ng) return;
    /*
     * The new prefix: the active variables (all within the old prefix: the active set only shrank since it was
     * gathered), then the rest of the old prefix; columns from ng on keep their places.  pcol marks the active ones.
     */
    for (int t = 0; t < as; t++)
        if (c->pcol[active[t]] >= ng) return; /* cannot happen (see above); rows stay over the old prefix */

    int *order = c->prow;
    for (int t = 0; t < as; t++) {
        order[t] = active[t];
        c->pcol[active[t]] = -1;
    }
    int n = as;
    for (int t = 0; t < ng; t++)
        if (c->pcol[c->perm[t]] != -1) order[n++] = c->perm[t];
    for (int t = 0; t < ng; t++) {
        const int o = order[t];
        c->perm[t] = o;
        c->pcol[o] = t;
        c->sqp[t] = k->sq[c->gidx[o]];
    }
    /* repack the panels holding the prefix, up to a whole panel (its last columns are packed as they were) */
    const int np = ng + 3 < c->l ? (ng + 3) / 4 * 4 : c->l;
    for (int t = 0; t < np; t++) c->prow[t] = c->gidx[c->perm[t]];
    sertk_panel_pack(c->pfull, k->x_f32, k->X, c->prow, np, k->d);
    c->ng = as;
}

void sertk_rcache_widen(sertk_rcache *c)
{
    if (c->ng == c->l) return; /* every row already covers every column */
    c->ng = c->l;
    c->epoch++;
}

/* one pass over the samples: the rows of blk[0..nb) at panel columns [t0, nc), split in parts by panels */
typedef struct {
    sertk_rcache *c;
    const sertk_kctx *k;
    int nb, t0, nc;
    int slot[SERTK_RCACHE_MAXBLOCK];
} sertk_fill_job;

/* panel columns [t0, t1) of every row; t0 a multiple of 4 (a panel's first column) */
static void sertk_fill_cols(const sertk_fill_job *f, int t0, int t1)
{
    sertk_rcache *c = f->c;
    const sertk_kctx *k = f->k;
    const int d = k->d, ldo = f->nc - f->t0;
    if (t1 <= t0) return;
    /* panel t0 / 4 starts where the panels of columns 0..t0 end */
    const char *P = (const char *)c->pfull + sertk_panel_bytes(t0, d, k->x_f32);
    double *obuf = c->obuf + (t0 - f->t0);
    sertk_rowdot(f->nb, c->arow, d, P, k->x_f32, t1 - t0, obuf, ldo);
    for (int r = 0; r < f->nb; r++) {
        float *row = c->arena + (size_t)f->slot[r] * c->maxl;
        const double *o = c->obuf + (size_t)r * ldo; /* o[t - f->t0]: panel column t's product */
        const double sqa = k->sq[c->gidx[c->blk[r]]];
        for (int t = t0; t < t1; t++) row[c->perm[t]] = (float)sertk_kval(k, o[t - f->t0], sqa, c->sqp[t]);
    }
}

static void sertk_fill_part(void *ctx, int part, int nparts)
{
    const sertk_fill_job *f = ctx;
    const int qa = f->t0 / 4, nq = (f->nc + 3) / 4 - qa; /* panels, split evenly */
    const int q0 = qa + (int)((long long)nq * part / nparts), q1 = qa + (int)((long long)nq * (part + 1) / nparts);
    sertk_fill_cols(f, 4 * q0, 4 * q1 < f->nc ? 4 * q1 : f->nc);
}

/*
 * Passes of at least this many columns are split over the cache's team: a part is then 128 columns or more, tens of
 * microseconds at d = 1024, against a few for a team job.  At 2048 two threads lost to two workers on pairs of
 * 2700 and 1800 samples (RESULTS-nusvm.md, sixth pass); at 512 they won.
 */
#define SERTK_FILL_TEAM_MIN 512

/* compute rows blk[0..nb) (nb <= block) of the current sub-problem into the cache, in one pass over the samples */
void sertk_rcache_fill(sertk_rcache *c, const sertk_kctx *k, int nb, int full)
{
    const int l = c->l;
    if (k->kernel == SERTK_KERNEL_PRECOMPUTED) {
        for (int r = 0; r < nb; r++) {
            int a = c->blk[r];
            const int slot = sertk_rcache_slot(c, a);
            float *row = c->arena + (size_t)slot * c->maxl;
            c->slot_epoch[slot] = -1;
            const double *src = k->K + (size_t)c->gidx[a] * k->n;
            for (int b = 0; b < l; b++) row[b] = (float)src[c->gidx[b]];
        }
        sertk_report_values(k->progress, (long long)nb * l);
        return;
    }
    sertk_fill_job f;
    f.c = c;
    f.k = k;
    f.nb = nb;
    f.t0 = 0;
    f.nc = full ? l : c->ng;
    if (full && c->ng < l) {
        /*
         * rows valid at the active columns (asked for whole, so computed over the gathered prefix) need only the
         * columns after it, from its last whole panel on
         */
        int partial = 1;
        for (int r = 0; r < nb && partial; r++) partial = sertk_rcache_valid(c, c->blk[r], 0);
        if (partial) f.t0 = c->ng / 4 * 4;
    }
    for (int r = 0; r < nb; r++) {
        const int a = c->blk[r];
        c->arow[r] = k->X + (size_t)c->gidx[a] * k->d;
        f.slot[r] = sertk_rcache_slot(c, a); /* a row already held keeps its slot and its values */
        c->slot_epoch[f.slot[r]] = f.nc == l ? -1 : c->epoch;
    }
    sertk_team_run(f.nc - f.t0 >= SERTK_FILL_TEAM_MIN ? c->team : NULL, sertk_fill_part, &f);
    for (int r = 0; r < nb; r++) {
        const int a = c->blk[r];
        c->arena[(size_t)f.slot[r] * c->maxl + a] = (float)k->qd[c->gidx[a]];
    }
    sertk_report_values(k->progress, (long long)nb * (f.nc - f.t0));
}
