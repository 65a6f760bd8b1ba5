/*
 * anomaly_api.detection.fast._kernel: the ensemble's scoring loops, compiled ahead of time.
 *
 * Plain C against the CPython API and the buffer protocol (no NumPy headers, no JIT).
 * Every function takes C-contiguous buffers allocated by the caller (NumPy arrays) and
 * releases the GIL while it computes.
 *
 *   knn(X, train_t, k, dist, ind, ties, n_threads)
 *       Exact k nearest training rows of every row of X (Euclidean), by a scan over all
 *       training rows with a running top-k. ties[i] = 1 where a training row left out is
 *       exactly as far as the k-th neighbour: which of them is "nearest" is then a tie
 *       that scikit-learn's KD-tree breaks in its own traversal order, and the caller
 *       asks scikit-learn for that row. Distances are computed as scikit-learn's
 *       KD-tree computes them: d = 0; for each feature in order, t = x - y; d += t * t;
 *       the selection is on d, the result is sqrt(d). No FMA contraction (the build
 *       passes -ffp-contract=off), so every distance is bit for bit scikit-learn's.
 *
 *   knn_blocks(X, rows, screen, index, starts, lo, hi, groups, group_lo, group_hi, k, dist,
 *              ind, ties, n_threads)
 *       The same answer as knn (bit for bit, ties included), from training rows reordered
 *       into blocks, and blocks into groups, with bounding boxes and a float32 copy
 *       (blocks.py): groups and blocks that cannot hold a neighbour are skipped, and of
 *       the others only the rows a float32 screen cannot rule out get their distance. What the scorer calls; knn stays
 *       as the reference scan.
 *
 *   score_rows(X, dist, ind, roots, feature, threshold, left, right, leaf_value,
 *              denominator, k_distance, lrd, center, scale, out)
 *       IsolationForest, LocalOutlierFactor (novelty) and z-score score_samples of every
 *       row, in the summation order of scikit-learn's NumPy code.
 *
 *       The forest's nodes must have passed check_forest (the scorer does it once).
 *
 *   compiled_model(center, scale, <the nine knn_blocks arrays>, k, roots, feature,
 *                  threshold, left, right, leaf_value, denominator, k_distance, lrd,
 *                  z_center, z_scale)
 *       The fitted arrays explain_rows reads, checked once and held in a capsule.
 *
 *   explain_rows(model, X, offsets, scales, min_votes, scores, votes, anomaly, severity,
 *                is_anomaly, shares, n_threads)
 *       For raw rows X: the scaling, knn_blocks, score_rows and AnomalyEnsemble.decide's
 *       rule but the confidence (margins, votes, the min_votes-th largest margin, severity,
 *       contributions), each as NumPy computes it there. Returns 0, or 1 where the rows
 *       need the reference path (see decide_row and explain_rows below).
 *
 *   check_forest(feature, left, right, n_features)
 *       ValueError unless every internal node is well-formed (see below).
 *
 *   pairwise_sum(values, start, n)
 *       NumPy's add.reduce order, exposed for the tests.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LEAF (-1)
#define LRD_EPSILON 1e-10
#define UNROLL 8
#define BLOCK 128
#define SCAN_CHUNK 256 /* training rows whose distances are computed in one pass */
#define MAX_THREADS 16
#define FOREST_LANES 8   /* rows walking one tree side by side */
#define FOREST_TILE 512  /* rows per tile of the forest walk */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
/* One clone per instruction set, chosen at load time by glibc's dynamic linker (elsewhere:
 * one portable build). AVX2 gives 4 doubles per instruction; without -ffp-contract=off the
 * compiler could also fuse multiply-adds, which round differently: the build forbids that. */
#define KERNEL_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define KERNEL_CLONES
#endif

/* ---------------------------------------------------------------- buffers */

typedef enum { F64, F32, I64, BOOL } Kind;

/* Get a C-contiguous buffer of float64, float32, int64 or bool with `ndim` dimensions (-1: any). */
static int
get_buffer(PyObject *obj, Py_buffer *view, Kind kind, int ndim, int writable, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) != 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous%s array", name,
                     writable ? " writable" : "");
        return -1;
    }
    const char *fmt = view->format ? view->format : "B";
    if (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@') {
        fmt++;
    }
    int ok = fmt[1] == '\0' &&
             (kind == F64    ? view->itemsize == 8 && fmt[0] == 'd'
              : kind == F32  ? view->itemsize == 4 && fmt[0] == 'f'
              : kind == I64  ? view->itemsize == 8 && (fmt[0] == 'l' || fmt[0] == 'q')
                             : view->itemsize == 1 && fmt[0] == '?');
    if (!ok || (ndim >= 0 && view->ndim != ndim)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a %dD %s array, got format '%s' ndim %d",
                     name, ndim,
                     kind == F64   ? "float64"
                     : kind == F32 ? "float32"
                     : kind == I64 ? "int64"
                                   : "bool",
                     view->format, view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static Py_ssize_t
shape(const Py_buffer *view, int axis)
{
    return view->ndim > axis ? view->shape[axis] : 1;
}

/* One argument of a kernel function: a buffer to get, or (name NULL) a number parsed
 * elsewhere, skipped. */
typedef struct {
    const char *name;
    Kind kind;
    int ndim;
    int writable;
} BufferSpec;

/* Get views[i] of objs[i] for every spec[i] with a name; on failure release those got
 * and return -1 (the exception set by get_buffer). */
static int
get_buffers(PyObject *const *objs, Py_buffer *views, const BufferSpec *spec, int n)
{
    for (int i = 0; i < n; i++) {
        if (spec[i].name == NULL) {
            continue;
        }
        if (get_buffer(objs[i], &views[i], spec[i].kind, spec[i].ndim, spec[i].writable,
                       spec[i].name) != 0) {
            for (int j = 0; j < i; j++) {
                if (spec[j].name != NULL) {
                    PyBuffer_Release(&views[j]);
                }
            }
            return -1;
        }
    }
    return 0;
}

static void
release_buffers(Py_buffer *views, const BufferSpec *spec, int n)
{
    for (int i = 0; i < n; i++) {
        if (spec[i].name != NULL) {
            PyBuffer_Release(&views[i]);
        }
    }
}

/* ---------------------------------------------------------------- summation */

/* Sum values[0:n] in the order of NumPy's add.reduce (numpy/_core/src/umath/loops_utils):
 * short runs one by one, up to 128 values with eight interleaved accumulators, longer
 * runs split in two. */
static double
pairwise_sum_impl(const double *a, Py_ssize_t n)
{
    if (n < UNROLL) {
        double res = 0.0;
        for (Py_ssize_t i = 0; i < n; i++) {
            res += a[i];
        }
        return res;
    }
    if (n <= BLOCK) {
        double r[UNROLL];
        Py_ssize_t i;
        for (int j = 0; j < UNROLL; j++) {
            r[j] = a[j];
        }
        for (i = UNROLL; i < n - (n % UNROLL); i += UNROLL) {
            for (int j = 0; j < UNROLL; j++) {
                r[j] += a[i + j];
            }
        }
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) {
            res += a[i];
        }
        return res;
    }
    Py_ssize_t half = n / 2;
    half -= half % UNROLL;
    return pairwise_sum_impl(a, half) + pairwise_sum_impl(a + half, n - half);
}

/* ---------------------------------------------------------------- neighbours */

/* Threads for a call over n_rows rows: the caller's request within [1, MAX_THREADS], and
 * no more threads than rows (one, doing nothing, for an empty batch). */
static int
thread_count(int requested, Py_ssize_t n_rows)
{
    int n = requested < 1 ? 1 : (requested > MAX_THREADS ? MAX_THREADS : requested);
    if (n > n_rows) {
        n = n_rows > 0 ? (int)n_rows : 1;
    }
    return n;
}

typedef struct {
    const double *X;       /* (n_rows, n_features) */
    const double *train_t; /* (n_features, n_train): feature-major, for the vector loop */
    double *dist;          /* (n_rows, k) out */
    int64_t *ind;          /* (n_rows, k) out */
    int64_t *ties;         /* (n_rows,) out: 1 where the k-th distance is tied */
    Py_ssize_t row_start, row_stop, n_features, n_train, k;
} KnnTask;

/* Squared distances of one query row to training rows [start, start + count). The loop
 * runs over training rows innermost so it vectorises, while each distance still adds
 * its features in order 0, 1, ... as scikit-learn does. */
KERNEL_CLONES static void
squared_distances(const double *restrict x, const double *restrict train_t,
                  Py_ssize_t n_features, Py_ssize_t n_train, Py_ssize_t start,
                  Py_ssize_t count, double *restrict out)
{
    for (Py_ssize_t j = 0; j < count; j++) {
        out[j] = 0.0;
    }
    for (Py_ssize_t f = 0; f < n_features; f++) {
        const double xf = x[f];
        const double *restrict col = train_t + f * n_train + start;
        for (Py_ssize_t j = 0; j < count; j++) {
            const double t = xf - col[j];
            out[j] += t * t;
        }
    }
}

/* Run fn on each of n_threads tasks (each `size` bytes, in one array): the calling thread
 * takes the first share, the others get a thread each; a share whose thread cannot be
 * started is done here too. Called with the GIL released. */
static void
run_shares(void *(*fn)(void *), void *tasks, size_t size, int n_threads)
{
    pthread_t threads[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    char *base = (char *)tasks;
    for (int t = 1; t < n_threads; t++) {
        started[t] = pthread_create(&threads[t], NULL, fn, base + (size_t)t * size) == 0;
    }
    if (n_threads > 0) {
        fn(base);
    }
    for (int t = 1; t < n_threads; t++) {
        if (started[t]) {
            pthread_join(threads[t], NULL);
        }
        else {
            fn(base + (size_t)t * size);
        }
    }
}

static void *
knn_rows(void *arg)
{
    KnnTask *task = (KnnTask *)arg;
    const Py_ssize_t k = task->k, n_train = task->n_train;
    double chunk[SCAN_CHUNK];
    for (Py_ssize_t i = task->row_start; i < task->row_stop; i++) {
        double *best_d = task->dist + i * k;
        int64_t *best_i = task->ind + i * k;
        for (Py_ssize_t j = 0; j < k; j++) {
            best_d[j] = INFINITY;
            best_i[j] = -1;
        }
        double worst = INFINITY;
        double nearest_left_out = INFINITY; /* smallest distance not (or no longer) kept */
        const double *x = task->X + i * task->n_features;
        for (Py_ssize_t start = 0; start < n_train; start += SCAN_CHUNK) {
            Py_ssize_t count = n_train - start < SCAN_CHUNK ? n_train - start : SCAN_CHUNK;
            squared_distances(x, task->train_t, task->n_features, n_train, start, count, chunk);
            for (Py_ssize_t j = 0; j < count; j++) {
                const double d = chunk[j];
                if (!(d < worst)) {
                    nearest_left_out = d < nearest_left_out ? d : nearest_left_out;
                    continue;
                }
                const double evicted = best_d[k - 1];
                nearest_left_out = evicted < nearest_left_out ? evicted : nearest_left_out;
                /* Insert, keeping ascending order; among equal distances the earlier
                 * training row stays first. */
                Py_ssize_t p = k - 1;
                while (p > 0 && best_d[p - 1] > d) {
                    best_d[p] = best_d[p - 1];
                    best_i[p] = best_i[p - 1];
                    p--;
                }
                best_d[p] = d;
                best_i[p] = start + j;
                worst = best_d[k - 1];
            }
        }
        task->ties[i] = worst < INFINITY && nearest_left_out == worst;
        for (Py_ssize_t j = 0; j < k; j++) {
            best_d[j] = sqrt(best_d[j]); /* sqrt(inf) = inf marks "not found" */
        }
    }
    return NULL;
}

/* ------------------------------------------------ neighbours, pruned by blocks */

/* knn_blocks: the same exact search, but the training rows come reordered into small
 * spatially coherent blocks, and consecutive blocks into groups (a KD-style split, built
 * once in blocks.py), each block and each group with its bounding box. For every query
 * row the kernel computes, for every group, a lower bound of the squared distance of any
 * of its rows, and skips a group whose bound is greater than the current k-th distance;
 * in a group it visits, it does the same for each block. Nearer groups are visited first
 * (the nearest, then the others by bound: knn_blocks_rows), so the k-th distance shrinks
 * early; ~14 % of the training rows are scanned for rows like the training data.
 *
 * A block that is not skipped is screened first: its rows' squared distances are computed
 * in float32 from a float32 copy of the rows (half the bytes of the float64 rows, eight
 * rows per AVX2 instruction), and only the rows whose float32 sum is <= a threshold
 * derived from the current k-th distance (screen_threshold: a rigorous bound on every
 * rounding of both computations) get their float64 distance, computed exactly as the
 * plain scan computes it. Every row the float64 scan would keep (or count for the tie
 * flag) passes the screen, so the answer is unchanged; about as many rows pass as enter
 * the running top-k.
 *
 * Why it stays bit for bit the plain scan's answer:
 * - each float64 distance that is computed is computed exactly as in squared_distances
 *   (same operations, same feature order);
 * - the bound is a true lower bound *in floating point*, not only in exact arithmetic:
 *   for a row y in the box [lo, hi] and x < lo, y - x >= lo - x exactly, and rounding is
 *   monotone, so |fl(x - y)| >= fl(lo - x) (likewise above hi); squaring and adding
 *   non-negative terms in the same order are monotone too, so bound <= fl-distance;
 * - a group or block is skipped only when its bound > worst (strictly), and a row by the
 *   screen only when its float32 sum > screen_threshold(worst), which implies its float64
 *   distance > worst: all these rows are farther than the current k-th distance, which
 *   only decreases, so none of them can be kept nor be exactly as far as the final k-th
 *   neighbour (the tie flag);
 * - blocks are visited out of index order (by their groups' bounds), so the kept rows
 *   are chosen and ordered by (distance, original training index) explicitly: the k
 *   smallest pairs whatever the visiting order, the plain scan's set and order (it gets
 *   them from visiting rows by index), ties included;
 * - the tie flag only needs left-out rows at distance <= the current worst (any other is
 *   farther than the final k-th distance). */

#define MAX_BLOCK_ROWS 256

typedef struct {
    const double *X;           /* (n_rows, n_features) */
    const double *rows;        /* (n_train, n_features): the rows in block order */
    const float *screen;       /* (n_train * n_features,): block b's rows as float32, feature-
                                * major at [starts[b] * n_features, starts[b + 1] * n_features) */
    const double *magnitude;   /* (n_features,): the largest |value| of each feature */
    const int64_t *index;      /* (n_train,): original training index of each reordered row */
    const int64_t *starts;     /* (n_blocks + 1,): block b is rows [starts[b], starts[b + 1]) */
    const double *lo, *hi;     /* (n_features, n_blocks): each block's bounding box */
    const int64_t *groups;     /* (n_groups + 1,): group g is blocks [groups[g], groups[g + 1]) */
    const double *group_lo, *group_hi; /* (n_features, n_groups): each group's box */
    double *dist;
    int64_t *ind, *ties;
    double *bounds;            /* (n_groups,) scratch of this task: the groups' bounds */
    double *block_bounds;      /* (n_blocks,) scratch of this task: one group's at a time */
    Py_ssize_t *later;         /* (n_groups,) scratch of this task */
    float *x32;                /* (n_features,) scratch of this task: the query row as float32 */
    Py_ssize_t row_start, row_stop, n_features, n_train, n_blocks, n_groups, k;
} BlockTask;

/* Four doubles as one value (GCC vector extensions: one AVX2 register in the avx2 clone,
 * two SSE2 registers in the default one). Used where the auto-vectoriser gives up: it
 * will not if-convert `a > b ? a : b` on doubles without -ffast-math-like flags, which
 * the build does not pass. Loads and stores go through memcpy (no alignment assumed). */
typedef double v4d __attribute__((vector_size(32)));
typedef long long v4i __attribute__((vector_size(32)));
/* Eight floats likewise, for the screen. */
typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

/* max(a, b) lane by lane, as `a > b ? a : b` (a macro: a function taking vectors by value
 * would get a different ABI in each clone). */
#define V4D_MAX(a, b) ((v4d)((((v4i)((a) > (b))) & (v4i)(a)) | (~((v4i)((a) > (b))) & (v4i)(b))))

static inline double
box_gap(double lo, double hi, double x)
{
    const double below = lo - x, above = x - hi;
    const double g = below > above ? below : above; /* at most one is positive */
    return g > 0.0 ? g : 0.0;                       /* inside the box's range: 0 */
}

/* Lower bounds of the squared distance from x to boxes [0, n_boxes) of feature-major
 * arrays whose rows are `stride` boxes long, four boxes per vector, features added in
 * order as for the distances. */
KERNEL_CLONES static void
box_bounds(const double *restrict x, const double *restrict lo, const double *restrict hi,
           Py_ssize_t n_features, Py_ssize_t stride, Py_ssize_t n_boxes, double *restrict out)
{
    const Py_ssize_t vec_end = n_boxes - n_boxes % 4;
    const v4d zero = {0.0, 0.0, 0.0, 0.0};
    for (Py_ssize_t b = 0; b < vec_end; b += 4) {
        v4d acc = zero;
        for (Py_ssize_t f = 0; f < n_features; f++) {
            const double xf = x[f];
            const v4d xv = {xf, xf, xf, xf};
            v4d lov, hiv;
            memcpy(&lov, lo + f * stride + b, sizeof lov);
            memcpy(&hiv, hi + f * stride + b, sizeof hiv);
            const v4d below = lov - xv, above = xv - hiv;
            const v4d far = V4D_MAX(below, above);
            const v4d g = V4D_MAX(far, zero);
            acc += g * g;
        }
        memcpy(out + b, &acc, sizeof acc);
    }
    for (Py_ssize_t b = vec_end; b < n_boxes; b++) {
        double acc = 0.0;
        for (Py_ssize_t f = 0; f < n_features; f++) {
            const double g = box_gap(lo[f * stride + b], hi[f * stride + b], x[f]);
            acc += g * g;
        }
        out[b] = acc;
    }
}

/* The screen's bound.
 *
 * Notation: x the query row, y a training row, n features, e = x - y (exact), ||.|| the
 * Euclidean norm over the features, M_f >= |y_f| for every training row (`magnitude`).
 * D is the float64 distance the plain scan computes (t = fl(x_f - y_f); d = fl(d + fl(t*t))
 * in feature order), S the screen's float32 one: x'_f = fl32(x_f), y'_f = fl32(y_f),
 * t'_f = fl32(x'_f - y'_f), S = fl32(... fl32(0 + fl32(t'_0 * t'_0)) + ...) in feature order.
 * Every float32 operation's result r^ of an exact r obeys |r^ - r| <= u|r| + tau with
 * u = 2^-23 and tau = 2^-126, every float64 one |r^ - r| <= U|r| + T with U = 2^-52 and
 * T = 2^-1022: one ulp whatever the rounding mode, and tau, T the smallest normal numbers,
 * which cover gradual underflow as well as flushing subnormals to zero (FTZ/DAZ).
 *
 * 1. Rounding x and y to float32: e'_f = x'_f - y'_f (exact) is within
 *    eps_f = u(|x_f| + M_f) + 4 tau of e_f (4 tau: a subnormal float32 read as zero under
 *    DAZ is within 2 tau of the double). By the triangle inequality for the norm,
 *    ||e|| >= ||e'|| - ||eps||.
 * 2. The float32 subtraction: |t'_f| <= (1 + u)|e'_f| + tau, so ||t'|| <= (1 + u)||e'|| +
 *    tau sqrt(n).
 * 3. The float32 squares and the n additions of non-negative terms, each rounding up by at
 *    most a factor 1 + u plus tau: S <= (1 + u)^(n+1) (||t'||^2 + 2 n tau).
 * 4. The float64 distance, each rounding down by at most a factor 1 - U minus T:
 *    |t_f| >= (1 - U)|e_f| - T, and as in 3., D >= (1 - U)^(n+1) ((1 - U)||e|| -
 *    T sqrt(n))+^2 - 2 n T.
 * So D <= worst implies, step by step backwards,
 *    ||e||  <= rho_e = (1 - U)^-(n+3) (sqrt(worst + 2 n T) + T sqrt(n)),
 *    ||t'|| <= rho_t = (1 + u)(rho_e + ||eps||) + tau sqrt(n),
 *    S      <= theta = (1 + u)^(n+1) (rho_t^2 + 2 n tau),
 * and a row whose S > theta has D > worst: it can be left out. The constants are bounded
 * above by (1 + u)^(n+1) <= 1 + 2(n + 1)u and (1 - U)^-(n+3) <= 1 + 2(n + 3)U (n < 2^20);
 * theta is computed in float64 from non-negative terms (each rounding at most a factor
 * 1 - U away, ~20 of them), multiplied by 1 + 2^-40 to cover those roundings, and rounded
 * up to float32. The steps assume S does not overflow: with sum_f (|x_f| + M_f)^2 <= 2^120
 * every partial sum stays below 2^122 (FLT_MAX ~ 2^128); otherwise ||eps|| is taken as
 * infinite, theta too, and every row passes. A NaN theta or S compares false: the row
 * passes. For the default model (features of magnitude ~1-10) theta exceeds worst by a
 * relative ~1e-5. */

#define SCREEN_U 0x1p-23
#define SCREEN_TAU 0x1p-126
#define SCREEN_LIMIT 0x1p120

/* ||eps|| of step 1 for the query row x, and x as float32 into x32; infinite where the
 * screen's sums could overflow (or x is not finite). */
static double
screen_error(const double *x, const double *magnitude, Py_ssize_t n_features, float *x32)
{
    double sum_sq = 0.0, eps_sq = 0.0;
    for (Py_ssize_t f = 0; f < n_features; f++) {
        const double a = fabs(x[f]) + magnitude[f];
        const double eps = SCREEN_U * a + 4.0 * SCREEN_TAU;
        sum_sq += a * a;
        eps_sq += eps * eps;
        x32[f] = (float)x[f];
    }
    return sum_sq <= SCREEN_LIMIT && n_features < (1 << 20) ? sqrt(eps_sq) : INFINITY;
}

/* theta of the derivation above for the k-th distance `worst`, rounded up to float32. */
static float
screen_threshold(double worst, double eps_norm, Py_ssize_t n_features)
{
    const double n = (double)n_features, root_n = sqrt(n);
    const double up32 = 1.0 + 2.0 * (n + 1.0) * SCREEN_U;  /* >= (1 + u)^(n+1) */
    const double down64 = 1.0 + 2.0 * (n + 3.0) * 0x1p-52; /* >= (1 - U)^-(n+3) */
    const double rho_e = down64 * (sqrt(worst + 2.0 * n * 0x1p-1022) + 0x1p-1022 * root_n);
    const double rho_t = (1.0 + SCREEN_U) * (rho_e + eps_norm) + SCREEN_TAU * root_n;
    const double theta = up32 * (rho_t * rho_t + 2.0 * n * SCREEN_TAU) * (1.0 + 0x1p-40);
    float t = (float)theta;
    if ((double)t < theta) {
        t = nextafterf(t, INFINITY);
    }
    return t;
}

#define SCREEN_WIDE 4 /* vectors of eight rows summed side by side (the pragmas below say 4) */

/* Float32 squared distances of x32 to rows `s`, `s` + 1, ... (8 * width of them, feature f
 * at s[f * count]) into out, and whether any of them is not > theta, lane by lane into
 * *pass. Always inlined with a constant width, so the sums stay in registers. */
static inline __attribute__((always_inline)) void
screen_rows(const float *restrict x32, const float *restrict s, Py_ssize_t n_features,
            Py_ssize_t count, int width, const v8f *theta_v, float *restrict out, v8i *pass)
{
    v8f acc[SCREEN_WIDE];
#pragma GCC unroll 4
    for (int a = 0; a < width; a++) {
        acc[a] = (v8f){0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    }
    for (Py_ssize_t f = 0; f < n_features; f++) {
        const float xf = x32[f];
        const v8f xv = {xf, xf, xf, xf, xf, xf, xf, xf};
#pragma GCC unroll 4
        for (int a = 0; a < width; a++) {
            v8f y;
            memcpy(&y, s + f * count + 8 * a, sizeof y);
            const v8f t = xv - y;
            acc[a] += t * t;
        }
    }
#pragma GCC unroll 4
    for (int a = 0; a < width; a++) {
        memcpy(out + 8 * a, &acc[a], sizeof acc[a]);
        *pass |= ~(v8i)(acc[a] > *theta_v);
    }
}

/* The screen of one block (count rows, feature-major float32 at s): each row's float32
 * squared distance into out, and whether any row passes (its sum not > theta). Thirty-two
 * rows at a time (four vectors of eight), then eight, then one by one. */
KERNEL_CLONES static int
screen_block(const float *restrict x32, const float *restrict s, Py_ssize_t n_features,
             Py_ssize_t count, float theta, float *restrict out)
{
    const Py_ssize_t vectors_end = count - count % 8;
    const v8f theta_v = {theta, theta, theta, theta, theta, theta, theta, theta};
    v8i pass = {0, 0, 0, 0, 0, 0, 0, 0};
    Py_ssize_t j = 0;
    for (; j + 8 * SCREEN_WIDE <= vectors_end; j += 8 * SCREEN_WIDE) {
        screen_rows(x32, s + j, n_features, count, SCREEN_WIDE, &theta_v, out + j, &pass);
    }
    for (; j < vectors_end; j += 8) {
        screen_rows(x32, s + j, n_features, count, 1, &theta_v, out + j, &pass);
    }
    int hit = ((pass[0] | pass[1] | pass[2] | pass[3]) | (pass[4] | pass[5] | pass[6] | pass[7])) != 0;
    for (; j < count; j++) {
        float acc = 0.0f;
        for (Py_ssize_t f = 0; f < n_features; f++) {
            const float t = x32[f] - s[f * count + j];
            acc += t * t;
        }
        out[j] = acc;
        hit |= !(acc > theta);
    }
    return hit;
}

/* One query row's running top-k in knn_blocks_rows. */
typedef struct {
    double *best_d;          /* (k,) squared distances, ascending */
    int64_t *best_i;         /* (k,) original training indices */
    double worst;            /* best_d[k - 1]: the current k-th distance */
    double nearest_left_out; /* smallest left-out distance <= worst then */
    double eps_norm;         /* the query row's screen error (screen_error) */
    double screened_worst;   /* the worst `theta` was computed for */
    float theta;             /* screen_threshold(screened_worst) */
} TopK;

/* Screen block b, compute the float64 distances of the rows that pass, and keep those
 * that enter the top-k. */
static inline void
visit_block(const BlockTask *task, const double *x, Py_ssize_t b, TopK *top, float *chunk)
{
    const Py_ssize_t k = task->k, n_features = task->n_features;
    const Py_ssize_t start = task->starts[b], count = task->starts[b + 1] - start;
    if (top->worst != top->screened_worst) {
        top->theta = screen_threshold(top->worst, top->eps_norm, n_features);
        top->screened_worst = top->worst;
    }
    const float theta = top->theta;
    if (!screen_block(task->x32, task->screen + start * n_features, n_features, count, theta,
                      chunk)) {
        return;
    }
    double *best_d = top->best_d;
    int64_t *best_i = top->best_i;
    for (Py_ssize_t j = 0; j < count; j++) {
        if (chunk[j] > theta) { /* the common case, even in a block with a hit */
            continue;
        }
        /* The float64 distance, as squared_distances computes it. */
        const double *restrict y = task->rows + (start + j) * n_features;
        double d = 0.0;
        for (Py_ssize_t f = 0; f < n_features; f++) {
            const double t = x[f] - y[f];
            d += t * t;
        }
        if (d > top->worst) {
            continue;
        }
        /* Kept: the k smallest by (distance, original index), whatever the visit order;
         * that is the plain scan's set too, which visits rows by index and keeps the
         * first of equals. A row as far as the k-th but with a lower index replaces it
         * (the plain scan would have met it first). */
        const int64_t idx = task->index[start + j];
        if (!(d < top->worst) && !(d < INFINITY && idx < best_i[k - 1])) {
            top->nearest_left_out = d < top->nearest_left_out ? d : top->nearest_left_out;
            continue;
        }
        const double evicted = best_d[k - 1];
        top->nearest_left_out = evicted < top->nearest_left_out ? evicted : top->nearest_left_out;
        /* Ascending distance; equal distances by original training index. */
        Py_ssize_t p = k - 1;
        while (p > 0 && (best_d[p - 1] > d || (best_d[p - 1] == d && best_i[p - 1] > idx))) {
            best_d[p] = best_d[p - 1];
            best_i[p] = best_i[p - 1];
            p--;
        }
        best_d[p] = d;
        best_i[p] = idx;
        top->worst = best_d[k - 1];
    }
}

/* The box among bounds[0, n) with the smallest bound (the first of equals). */
static inline Py_ssize_t
nearest_box(const double *bounds, Py_ssize_t n)
{
    Py_ssize_t best = 0;
    for (Py_ssize_t j = 1; j < n; j++) {
        best = bounds[j] < bounds[best] ? j : best;
    }
    return best;
}

/* Visit group g: its blocks' bounds, then its blocks within the k-th distance in block
 * order (the nearest first while fewer than k rows are kept, as in the first group). */
static inline void
visit_group(const BlockTask *task, const double *x, Py_ssize_t g, TopK *top, float *chunk)
{
    const Py_ssize_t first_block = task->groups[g], n = task->groups[g + 1] - first_block;
    double *bounds = task->block_bounds;
    box_bounds(x, task->lo + first_block, task->hi + first_block, task->n_features,
               task->n_blocks, n, bounds);
    Py_ssize_t nearest = -1;
    if (top->worst == INFINITY) {
        nearest = nearest_box(bounds, n);
        visit_block(task, x, first_block + nearest, top, chunk);
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        if (!(bounds[j] > top->worst) && j != nearest) {
            visit_block(task, x, first_block + j, top, chunk);
        }
    }
}

static void *
knn_blocks_rows(void *arg)
{
    BlockTask *task = (BlockTask *)arg;
    const Py_ssize_t k = task->k, n_groups = task->n_groups;
    double *bounds = task->bounds;
    Py_ssize_t *later = task->later;
    float chunk[MAX_BLOCK_ROWS];
    for (Py_ssize_t i = task->row_start; i < task->row_stop; i++) {
        const double *x = task->X + i * task->n_features;
        TopK top = {task->dist + i * k, task->ind + i * k, INFINITY, INFINITY,
                    screen_error(x, task->magnitude, task->n_features, task->x32), INFINITY,
                    INFINITY};
        for (Py_ssize_t j = 0; j < k; j++) {
            top.best_d[j] = INFINITY;
            top.best_i[j] = -1;
        }
        box_bounds(x, task->group_lo, task->group_hi, task->n_features, n_groups, n_groups,
                   bounds);
        /* Nearest group first: its rows set a k-th distance that rules out most groups. */
        const Py_ssize_t first = nearest_box(bounds, n_groups);
        visit_group(task, x, first, &top, chunk);
        /* Then the other groups within the k-th distance in increasing order of their
         * bounds (an insertion sort of a few tens: equal bounds in group order; a NaN
         * bound compares false and stays where it came), each skipped if the k-th
         * distance has shrunk below its bound by the time it comes. */
        Py_ssize_t n_later = 0;
        for (Py_ssize_t g = 0; g < n_groups; g++) {
            if (bounds[g] > top.worst || g == first) {
                continue;
            }
            Py_ssize_t p = n_later++;
            while (p > 0 && bounds[later[p - 1]] > bounds[g]) {
                later[p] = later[p - 1];
                p--;
            }
            later[p] = g;
        }
        for (Py_ssize_t j = 0; j < n_later; j++) {
            if (!(bounds[later[j]] > top.worst)) {
                visit_group(task, x, later[j], &top, chunk);
            }
        }
        task->ties[i] = top.worst < INFINITY && top.nearest_left_out == top.worst;
        for (Py_ssize_t j = 0; j < k; j++) {
            top.best_d[j] = sqrt(top.best_d[j]);
        }
    }
    return NULL;
}

/* Bytes of one task's scratch (knn_blocks_rows): the groups' bounds, one group's blocks'
 * bounds, the groups left for later, the query row as float32. */
static size_t
block_scratch_size(Py_ssize_t n_groups, Py_ssize_t n_blocks, Py_ssize_t n_features)
{
    const size_t size = sizeof(double) * (size_t)(n_groups + n_blocks) +
                        sizeof(Py_ssize_t) * (size_t)n_groups + sizeof(float) * (size_t)n_features;
    return (size + sizeof(double) - 1) / sizeof(double) * sizeof(double); /* keeps alignment */
}

/* Point task's scratch arrays into `own` (block_scratch_size bytes, double-aligned). */
static void
block_scratch(BlockTask *task, char *own)
{
    task->bounds = (double *)own;
    task->block_bounds = task->bounds + task->n_groups;
    task->later = (Py_ssize_t *)(task->block_bounds + task->n_blocks);
    task->x32 = (float *)(task->later + task->n_groups);
}

/* The largest |value| of each feature over the groups' boxes (which hold every training
 * row), into magnitude (n_features,). */
static void
feature_magnitudes(const double *group_lo, const double *group_hi, Py_ssize_t n_features,
                   Py_ssize_t n_groups, double *magnitude)
{
    for (Py_ssize_t f = 0; f < n_features; f++) {
        double m = 0.0;
        for (Py_ssize_t g = 0; g < n_groups; g++) {
            const double a = fabs(group_lo[f * n_groups + g]), b = fabs(group_hi[f * n_groups + g]);
            m = a > m ? a : m;
            m = b > m ? b : m;
        }
        magnitude[f] = m;
    }
}

/* Offsets: offsets[0] == 0, offsets[n] == total, each part min_size to max_size long.
 * Checked on every call, so written to vectorise: no early exit. */
KERNEL_CLONES static int
offsets_ok(const int64_t *restrict offsets, Py_ssize_t n, int64_t total, int64_t min_size,
           int64_t max_size)
{
    int64_t bad = (offsets[0] != 0) | (offsets[n] != total);
    for (Py_ssize_t j = 0; j < n; j++) {
        const int64_t size = offsets[j + 1] - offsets[j];
        bad |= (size < min_size) | (size > max_size);
    }
    return !bad;
}

static PyObject *
knn_blocks(PyObject *self, PyObject *args)
{
    PyObject *o[14];
    Py_ssize_t k;
    int n_threads;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOnOOOi", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5],
                          &o[6], &o[7], &o[8], &o[9], &k, &o[11], &o[12], &o[13],
                          &n_threads)) {
        return NULL;
    }
    static const BufferSpec spec[14] = {
        {"X", F64, 2, 0},        {"rows", F64, 2, 0},     {"screen", F32, 1, 0},
        {"index", I64, 1, 0},    {"starts", I64, 1, 0},   {"lo", F64, 2, 0},
        {"hi", F64, 2, 0},       {"groups", I64, 1, 0},   {"group_lo", F64, 2, 0},
        {"group_hi", F64, 2, 0}, {NULL, F64, 0, 0},       {"dist", F64, 2, 1},
        {"ind", I64, 2, 1},      {"ties", I64, 1, 1},
    };
    Py_buffer b[14];
    char *scratch = NULL;
    PyObject *result = NULL;
    if (get_buffers(o, b, spec, 14) != 0) {
        return NULL;
    }
    const Py_ssize_t n_rows = shape(&b[0], 0), n_features = shape(&b[0], 1);
    const Py_ssize_t n_train = shape(&b[1], 0), n_blocks = shape(&b[4], 0) - 1;
    const Py_ssize_t n_groups = shape(&b[7], 0) - 1;
    if (shape(&b[1], 1) != n_features || shape(&b[2], 0) != n_train * n_features ||
        shape(&b[3], 0) != n_train || n_blocks < 1 || shape(&b[5], 0) != n_features ||
        shape(&b[5], 1) != n_blocks || shape(&b[6], 0) != n_features ||
        shape(&b[6], 1) != n_blocks || n_groups < 1 || shape(&b[8], 0) != n_features ||
        shape(&b[8], 1) != n_groups || shape(&b[9], 0) != n_features ||
        shape(&b[9], 1) != n_groups || k < 1 || k > n_train || shape(&b[11], 0) != n_rows ||
        shape(&b[11], 1) != k || shape(&b[12], 0) != n_rows || shape(&b[12], 1) != k ||
        shape(&b[13], 0) != n_rows) {
        PyErr_SetString(PyExc_ValueError, "knn_blocks: inconsistent shapes or k");
        goto done;
    }
    /* The offsets are followed: check them (O(n_blocks), cheap next to one row). The
     * boxes and the screen's rows are not checked here (O(n_train)): blocks.py checks
     * them once. */
    const int64_t *starts = b[4].buf, *groups = b[7].buf;
    if (!offsets_ok(starts, n_blocks, n_train, 0, MAX_BLOCK_ROWS) ||
        !offsets_ok(groups, n_groups, n_blocks, 1, n_blocks)) {
        PyErr_SetString(PyExc_ValueError, "knn_blocks: malformed block or group offsets");
        goto done;
    }
    n_threads = thread_count(n_threads, n_rows);
    /* The features' magnitudes; per thread the groups' bounds, the blocks' bounds, the
     * groups left for later and the query row as float32. */
    const size_t per_task = block_scratch_size(n_groups, n_blocks, n_features);
    scratch = malloc(sizeof(double) * (size_t)n_features + per_task * (size_t)n_threads);
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    double *magnitude = (double *)scratch;
    feature_magnitudes(b[8].buf, b[9].buf, n_features, n_groups, magnitude);
    BlockTask tasks[MAX_THREADS];
    for (int t = 0; t < n_threads; t++) {
        tasks[t] = (BlockTask){
            .X = b[0].buf, .rows = b[1].buf, .screen = b[2].buf, .magnitude = magnitude,
            .index = b[3].buf, .starts = starts, .lo = b[5].buf, .hi = b[6].buf,
            .groups = groups, .group_lo = b[8].buf, .group_hi = b[9].buf, .dist = b[11].buf,
            .ind = b[12].buf, .ties = b[13].buf,
            .row_start = n_rows * t / n_threads, .row_stop = n_rows * (t + 1) / n_threads,
            .n_features = n_features, .n_train = n_train, .n_blocks = n_blocks,
            .n_groups = n_groups, .k = k,
        };
        block_scratch(&tasks[t], scratch + sizeof(double) * (size_t)n_features +
                                     per_task * (size_t)t);
    }
    Py_BEGIN_ALLOW_THREADS
    run_shares(knn_blocks_rows, tasks, sizeof(BlockTask), n_threads);
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;

done:
    free(scratch);
    release_buffers(b, spec, 14);
    return result;
}

static PyObject *
knn(PyObject *self, PyObject *args)
{
    PyObject *oX, *oT, *oD, *oI, *oS;
    Py_ssize_t k;
    int n_threads;
    if (!PyArg_ParseTuple(args, "OOnOOOi", &oX, &oT, &k, &oD, &oI, &oS, &n_threads)) {
        return NULL;
    }
    Py_buffer X, T, D, I, S;
    if (get_buffer(oX, &X, F64, 2, 0, "X") != 0) {
        return NULL;
    }
    if (get_buffer(oT, &T, F64, 2, 0, "train_t") != 0) {
        goto fail_x;
    }
    if (get_buffer(oD, &D, F64, 2, 1, "dist") != 0) {
        goto fail_t;
    }
    if (get_buffer(oI, &I, I64, 2, 1, "ind") != 0) {
        goto fail_d;
    }
    if (get_buffer(oS, &S, I64, 1, 1, "ties") != 0) {
        goto fail_i;
    }
    Py_ssize_t n_rows = shape(&X, 0), n_features = shape(&X, 1), n_train = shape(&T, 1);
    if (shape(&T, 0) != n_features || k < 1 || k > n_train || shape(&D, 0) != n_rows ||
        shape(&D, 1) != k || shape(&I, 0) != n_rows || shape(&I, 1) != k || shape(&S, 0) != n_rows) {
        PyErr_SetString(PyExc_ValueError, "knn: inconsistent shapes or k");
        goto fail_s;
    }
    n_threads = thread_count(n_threads, n_rows);
    KnnTask tasks[MAX_THREADS];
    for (int t = 0; t < n_threads; t++) {
        tasks[t] = (KnnTask){
            .X = X.buf, .train_t = T.buf, .dist = D.buf, .ind = I.buf, .ties = S.buf,
            .row_start = n_rows * t / n_threads, .row_stop = n_rows * (t + 1) / n_threads,
            .n_features = n_features, .n_train = n_train, .k = k,
        };
    }
    Py_BEGIN_ALLOW_THREADS
    run_shares(knn_rows, tasks, sizeof(KnnTask), n_threads);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&S);
    PyBuffer_Release(&I);
    PyBuffer_Release(&D);
    PyBuffer_Release(&T);
    PyBuffer_Release(&X);
    Py_RETURN_NONE;

fail_s:
    PyBuffer_Release(&S);
fail_i:
    PyBuffer_Release(&I);
fail_d:
    PyBuffer_Release(&D);
fail_t:
    PyBuffer_Release(&T);
fail_x:
    PyBuffer_Release(&X);
    return NULL;
}

/* ---------------------------------------------------------------- scores */

/* What the scores of a row need besides the row and its neighbours: the forest's arrays,
 * LOF's training k-distances and lrd, the z-score's centre and scale. */
typedef struct {
    const int64_t *roots, *feature, *left, *right;
    const double *threshold, *leaf_value;
    Py_ssize_t n_roots;
    double denominator;
    const double *k_distance, *lrd;
    const double *center, *scale;
} ScoreModel;

/* IsolationForest, LOF and z-score of rows [0, n_rows) of X into columns 0-2 of out (rows
 * out_cols long); scratch holds k + n_rows + n_rows * n_features doubles. Indices were
 * checked by the caller; called with the GIL released. */
static void
score_rows_impl(const ScoreModel *m, const double *X, const double *dist, const int64_t *ind,
                Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t k, double *out,
                Py_ssize_t out_cols, double *scratch)
{
    const int64_t *roots = m->roots, *feature = m->feature, *left = m->left, *right = m->right;
    const double *threshold = m->threshold, *leaf_value = m->leaf_value;
    const Py_ssize_t n_roots = m->n_roots;
    double *totals = scratch + k;
    double *x32 = totals + n_rows;
    memset(totals, 0, sizeof(double) * (size_t)n_rows);
    for (Py_ssize_t j = 0; j < n_rows * n_features; j++) {
        x32[j] = (double)(float)X[j];
    }
    /* Tiles of rows, then tree by tree (a tile's rows stay in cache, each tree's nodes
     * too), then FOREST_LANES rows walking one tree side by side: the rows' walks are
     * independent, so the CPU overlaps their node loads, and the loop ends once for
     * the group instead of once per row (a mispredicted exit per walk cost more than
     * the walk). A lane that reached its leaf stays there (branch-free selects); its
     * feature index is replaced by 0 so that a leaf's never reads out of bounds. Each
     * row still adds its trees' values in tree order, as scikit-learn does. */
    for (Py_ssize_t tile = 0; tile < n_rows; tile += FOREST_TILE) {
        const Py_ssize_t tile_end = tile + FOREST_TILE < n_rows ? tile + FOREST_TILE : n_rows;
        for (Py_ssize_t r = 0; r < n_roots; r++) {
            Py_ssize_t i = tile;
            for (; i + FOREST_LANES <= tile_end; i += FOREST_LANES) {
                int64_t node[FOREST_LANES];
                for (int g = 0; g < FOREST_LANES; g++) {
                    node[g] = roots[r];
                }
                for (;;) {
                    int active = 0;
                    for (int g = 0; g < FOREST_LANES; g++) {
                        /* Selects written as bit masks: with `?:` GCC emits branches,
                         * which mispredict as often as the walk it replaces. */
                        const int64_t n = node[g], l = left[n];
                        const int64_t internal = -(int64_t)(l != LEAF); /* all ones or 0 */
                        const int64_t f = feature[n] & internal;
                        const double v = x32[(i + g) * n_features + f];
                        const int64_t go_left = -(int64_t)(v <= threshold[n]);
                        const int64_t next = right[n] ^ ((l ^ right[n]) & go_left);
                        node[g] = n ^ ((n ^ next) & internal);
                        active |= (int)(internal & 1);
                    }
                    if (!active) {
                        break;
                    }
                }
                for (int g = 0; g < FOREST_LANES; g++) {
                    totals[i + g] += leaf_value[node[g]];
                }
            }
            for (; i < tile_end; i++) { /* the tile's last rows, one by one */
                const double *x = x32 + i * n_features;
                int64_t node = roots[r];
                while (left[node] != LEAF) {
                    node = x[feature[node]] <= threshold[node] ? left[node] : right[node];
                }
                totals[i] += leaf_value[node];
            }
        }
    }
    const double denominator = m->denominator;
    const double *k_distance = m->k_distance, *lrd = m->lrd, *center = m->center;
    const double *scale = m->scale;
    for (Py_ssize_t i = 0; i < n_rows; i++) {
        double *row_out = out + i * out_cols;
        const double ratio = denominator != 0.0 ? totals[i] / denominator : 1.0;
        row_out[0] = -pow(2.0, -ratio); /* scikit-learn negates the paper's score */

        const double *d = dist + i * k;
        const int64_t *nb = ind + i * k;
        for (Py_ssize_t j = 0; j < k; j++) {
            const double kd = k_distance[nb[j]];
            scratch[j] = d[j] > kd ? d[j] : kd; /* np.maximum, no NaN here */
        }
        const double x_lrd = 1.0 / (pairwise_sum_impl(scratch, k) / (double)k + LRD_EPSILON);
        for (Py_ssize_t j = 0; j < k; j++) {
            scratch[j] = lrd[nb[j]] / x_lrd;
        }
        row_out[1] = -(pairwise_sum_impl(scratch, k) / (double)k);

        const double *x = X + i * n_features;
        double largest = -INFINITY;
        for (Py_ssize_t f = 0; f < n_features; f++) {
            const double z = fabs(x[f] - center[f]) / scale[f];
            largest = z > largest ? z : largest;
        }
        row_out[2] = -largest;
    }
}

static PyObject *
score_rows(PyObject *self, PyObject *args)
{
    PyObject *o[15];
    double denominator;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOdOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5],
                          &o[6], &o[7], &o[8], &denominator, &o[10], &o[11], &o[12], &o[13],
                          &o[14])) {
        return NULL;
    }
    static const BufferSpec spec[15] = {
        {"X", F64, 2, 0},          {"dist", F64, 2, 0},      {"ind", I64, 2, 0},
        {"roots", I64, 1, 0},      {"feature", I64, 1, 0},   {"threshold", F64, 1, 0},
        {"left", I64, 1, 0},       {"right", I64, 1, 0},     {"leaf_value", F64, 1, 0},
        {NULL, F64, 0, 0},         {"k_distance", F64, 1, 0}, {"lrd", F64, 1, 0},
        {"center", F64, 1, 0},     {"scale", F64, 1, 0},     {"out", F64, 2, 1},
    };
    Py_buffer b[15];
    if (get_buffers(o, b, spec, 15) != 0) {
        return NULL;
    }
    const Py_ssize_t n_rows = shape(&b[0], 0), n_features = shape(&b[0], 1);
    const Py_ssize_t k = shape(&b[2], 1), n_nodes = shape(&b[6], 0), n_train = shape(&b[11], 0);
    if (shape(&b[1], 0) != n_rows || shape(&b[2], 0) != n_rows || shape(&b[1], 1) != k ||
        shape(&b[4], 0) != n_nodes || shape(&b[5], 0) != n_nodes || shape(&b[7], 0) != n_nodes ||
        shape(&b[8], 0) != n_nodes || shape(&b[10], 0) != n_train ||
        shape(&b[12], 0) != n_features || shape(&b[13], 0) != n_features ||
        shape(&b[14], 0) != n_rows || shape(&b[14], 1) < 3 || k < 1) {
        PyErr_SetString(PyExc_ValueError, "score_rows: inconsistent shapes");
        goto fail;
    }
    const int64_t *ind = b[2].buf, *roots = b[3].buf;
    const Py_ssize_t n_roots = shape(&b[3], 0);

    /* Indices come from our own flattening and neighbour search; check them once
     * anyway, so that a bad array raises instead of reading out of bounds. */
    for (Py_ssize_t i = 0; i < n_rows * k; i++) {
        if (ind[i] < 0 || ind[i] >= n_train) {
            PyErr_SetString(PyExc_ValueError, "score_rows: neighbour index out of range");
            goto fail;
        }
    }
    for (Py_ssize_t r = 0; r < n_roots; r++) {
        if (roots[r] < 0 || roots[r] >= n_nodes) {
            PyErr_SetString(PyExc_ValueError, "score_rows: root out of range");
            goto fail;
        }
    }
    /* The nodes themselves are checked once, by check_forest, when the scorer is built:
     * walking all of them here would cost more than scoring one row. */
    const ScoreModel model = {
        .roots = roots, .feature = b[4].buf, .left = b[6].buf, .right = b[7].buf,
        .threshold = b[5].buf, .leaf_value = b[8].buf, .n_roots = n_roots,
        .denominator = denominator, .k_distance = b[10].buf, .lrd = b[11].buf,
        .center = b[12].buf, .scale = b[13].buf,
    };

    /* scratch: k for the LOF means, n_rows totals, and the rows cast to float32 (as
     * scikit-learn casts its input before walking its trees), once instead of per node. */
    double *scratch = malloc(sizeof(double) * (size_t)(k + n_rows + n_rows * n_features));
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    Py_BEGIN_ALLOW_THREADS
    score_rows_impl(&model, b[0].buf, b[1].buf, ind, n_rows, n_features, k, b[14].buf,
                    shape(&b[14], 1), scratch);
    Py_END_ALLOW_THREADS
    free(scratch);
    release_buffers(b, spec, 15);
    Py_RETURN_NONE;

fail:
    release_buffers(b, spec, 15);
    return NULL;
}

/* ---------------------------------------------------------------- the decision */

/* compiled_model(center, scale, rows, screen, index, starts, lo, hi, groups, group_lo,
 *                group_hi, k, roots, feature, threshold, left, right, leaf_value, denominator,
 *                k_distance, lrd, z_center, z_scale)
 * The fitted arrays explain_rows reads, checked once and held (their buffers stay
 * exported, so they cannot be resized) in a capsule. */

#define MODEL_CAPSULE "anomaly_api.detection.fast._kernel.model"
#define MODEL_ARGS 23 /* 21 arrays, k and the denominator */
#define N_MEMBERS 3 /* IsolationForest, LOF, z-score: the columns of score_rows */

typedef struct {
    Py_buffer views[MODEL_ARGS]; /* those of the arrays */
    double *magnitude;           /* (n_features,): feature_magnitudes of the training rows */
    const double *center, *scale;
    BlockTask blocks; /* the training rows' blocks; rows, outputs and scratch set per call */
    ScoreModel score;
    Py_ssize_t n_features, k;
} CompiledModel;

static const BufferSpec model_spec[MODEL_ARGS] = {
    {"center", F64, 1, 0},     {"scale", F64, 1, 0},      {"rows", F64, 2, 0},
    {"screen", F32, 1, 0},     {"index", I64, 1, 0},      {"starts", I64, 1, 0},
    {"lo", F64, 2, 0},         {"hi", F64, 2, 0},         {"groups", I64, 1, 0},
    {"group_lo", F64, 2, 0},   {"group_hi", F64, 2, 0},   {NULL, F64, 0, 0},
    {"roots", I64, 1, 0},      {"feature", I64, 1, 0},    {"threshold", F64, 1, 0},
    {"left", I64, 1, 0},       {"right", I64, 1, 0},      {"leaf_value", F64, 1, 0},
    {NULL, F64, 0, 0},         {"k_distance", F64, 1, 0}, {"lrd", F64, 1, 0},
    {"z_center", F64, 1, 0},   {"z_scale", F64, 1, 0},
};

static void
release_model(PyObject *capsule)
{
    CompiledModel *m = PyCapsule_GetPointer(capsule, MODEL_CAPSULE);
    if (m != NULL) {
        release_buffers(m->views, model_spec, MODEL_ARGS);
        PyMem_Free(m->magnitude);
        PyMem_Free(m);
    }
}

static PyObject *
compiled_model(PyObject *self, PyObject *args)
{
    PyObject *o[MODEL_ARGS];
    Py_ssize_t k;
    double denominator;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOnOOOOOOdOOOO", &o[0], &o[1], &o[2], &o[3], &o[4],
                          &o[5], &o[6], &o[7], &o[8], &o[9], &o[10], &k, &o[12], &o[13],
                          &o[14], &o[15], &o[16], &o[17], &denominator, &o[19], &o[20],
                          &o[21], &o[22])) {
        return NULL;
    }
    CompiledModel *m = PyMem_Calloc(1, sizeof(CompiledModel));
    if (m == NULL) {
        return PyErr_NoMemory();
    }
    Py_buffer *b = m->views;
    if (get_buffers(o, b, model_spec, MODEL_ARGS) != 0) {
        PyMem_Free(m);
        return NULL;
    }
    const Py_ssize_t n_features = shape(&b[0], 0), n_train = shape(&b[2], 0);
    const Py_ssize_t n_blocks = shape(&b[5], 0) - 1, n_groups = shape(&b[8], 0) - 1;
    const Py_ssize_t n_nodes = shape(&b[15], 0), n_roots = shape(&b[12], 0);
    int ok = shape(&b[1], 0) == n_features && shape(&b[2], 1) == n_features &&
             shape(&b[3], 0) == n_train * n_features && shape(&b[4], 0) == n_train &&
             n_blocks >= 1 && n_groups >= 1 && shape(&b[6], 0) == n_features &&
             shape(&b[6], 1) == n_blocks && shape(&b[7], 0) == n_features &&
             shape(&b[7], 1) == n_blocks && shape(&b[9], 0) == n_features &&
             shape(&b[9], 1) == n_groups && shape(&b[10], 0) == n_features &&
             shape(&b[10], 1) == n_groups && k >= 1 && k <= n_train &&
             shape(&b[13], 0) == n_nodes && shape(&b[14], 0) == n_nodes &&
             shape(&b[16], 0) == n_nodes && shape(&b[17], 0) == n_nodes &&
             shape(&b[19], 0) == n_train && shape(&b[20], 0) == n_train &&
             shape(&b[21], 0) == n_features && shape(&b[22], 0) == n_features;
    const int64_t *index = b[4].buf, *starts = b[5].buf, *groups = b[8].buf, *roots = b[12].buf;
    ok = ok && offsets_ok(starts, n_blocks, n_train, 0, MAX_BLOCK_ROWS) &&
         offsets_ok(groups, n_groups, n_blocks, 1, n_blocks);
    /* What the kernel follows: the training indices the neighbours come back as (they
     * index k_distance and lrd), and the roots; the nodes passed check_forest. */
    for (Py_ssize_t j = 0; ok && j < n_train; j++) {
        ok = index[j] >= 0 && index[j] < n_train;
    }
    for (Py_ssize_t r = 0; ok && r < n_roots; r++) {
        ok = roots[r] >= 0 && roots[r] < n_nodes;
    }
    if (!ok) {
        release_buffers(b, model_spec, MODEL_ARGS);
        PyMem_Free(m);
        PyErr_SetString(PyExc_ValueError, "compiled_model: inconsistent or malformed arrays");
        return NULL;
    }
    m->magnitude = PyMem_Malloc(sizeof(double) * (size_t)(n_features > 0 ? n_features : 1));
    if (m->magnitude == NULL) {
        release_buffers(b, model_spec, MODEL_ARGS);
        PyMem_Free(m);
        return PyErr_NoMemory();
    }
    feature_magnitudes(b[9].buf, b[10].buf, n_features, n_groups, m->magnitude);
    m->center = b[0].buf;
    m->scale = b[1].buf;
    m->blocks = (BlockTask){
        .rows = b[2].buf, .screen = b[3].buf, .magnitude = m->magnitude, .index = index,
        .starts = starts, .lo = b[6].buf, .hi = b[7].buf, .groups = groups,
        .group_lo = b[9].buf, .group_hi = b[10].buf, .n_features = n_features,
        .n_train = n_train, .n_blocks = n_blocks, .n_groups = n_groups, .k = k,
    };
    m->score = (ScoreModel){
        .roots = roots, .feature = b[13].buf, .left = b[15].buf, .right = b[16].buf,
        .threshold = b[14].buf, .leaf_value = b[17].buf, .n_roots = n_roots,
        .denominator = denominator, .k_distance = b[19].buf, .lrd = b[20].buf,
        .center = b[21].buf, .scale = b[22].buf,
    };
    m->n_features = n_features;
    m->k = k;
    PyObject *capsule = PyCapsule_New(m, MODEL_CAPSULE, release_model);
    if (capsule == NULL) {
        release_buffers(b, model_spec, MODEL_ARGS);
        PyMem_Free(m->magnitude);
        PyMem_Free(m);
    }
    return capsule;
}

/* The rule of AnomalyEnsemble.decide for one row's scores s (N_MEMBERS of them), as NumPy
 * computes it there: margins (offsets - s) / scales, votes where a margin is > 0, the
 * min_votes-th largest margin a, a > 0, severity max(a, 0) / (1 + max(a, 0)), and the
 * shares z_j² / sum_j z_j² of the scaled row z (summed in NumPy's order; equal shares when
 * the sum is 0). 0, or 1 where NumPy's result is not certain to be the same: a value not
 * finite (the caller's checks, clipping and errors decide then), a margin of -0.0 (which
 * of two zeros NumPy's partition and maximum keep is theirs), an overflowing sum. */
static int
decide_row(const double *s, const double *offsets, const double *scales, int min_votes,
           const double *z, Py_ssize_t n_features, char *votes, double *anomaly,
           double *severity, char *is_anomaly, double *shares)
{
    double margins[N_MEMBERS], ordered[N_MEMBERS];
    int unusual = 0;
    for (int j = 0; j < N_MEMBERS; j++) {
        const double m = (offsets[j] - s[j]) / scales[j];
        unusual |= !(fabs(s[j]) <= DBL_MAX) | !(fabs(m) <= DBL_MAX) | (m == 0.0 && signbit(m));
        margins[j] = m;
        votes[j] = m > 0.0;
    }
    for (int j = 0; j < N_MEMBERS; j++) { /* descending; no NaN and no -0.0 here */
        int p = j;
        while (p > 0 && ordered[p - 1] < margins[j]) {
            ordered[p] = ordered[p - 1];
            p--;
        }
        ordered[p] = margins[j];
    }
    const double a = ordered[min_votes - 1];
    *anomaly = a;
    *is_anomaly = a > 0.0;
    const double positive = a > 0.0 ? a : 0.0;
    *severity = positive / (1.0 + positive);
    for (Py_ssize_t f = 0; f < n_features; f++) {
        shares[f] = z[f] * z[f];
    }
    const double total = pairwise_sum_impl(shares, n_features);
    unusual |= !(total < INFINITY);
    if (total > 0.0) {
        for (Py_ssize_t f = 0; f < n_features; f++) {
            shares[f] /= total;
        }
    }
    else { /* a row at the median: every z_j is 0 */
        for (Py_ssize_t f = 0; f < n_features; f++) {
            shares[f] = 1.0 / (double)n_features;
        }
    }
    return unusual;
}

/* explain_rows(model, X, offsets, scales, min_votes, scores, votes, anomaly, severity,
 *              is_anomaly, shares, n_threads) -> 0 or 1
 * The whole of FastScorer.scaled_scores and AnomalyEnsemble.decide but the confidence
 * for raw rows X: the rows scaled, their neighbours, scores and the decision, into the
 * caller's arrays. 0 when done; 1, with the arrays' contents undefined, when the rows
 * need the reference path: X not a C-contiguous float64 (n > 0, n_features) matrix, a
 * value not finite after scaling, a tie at the k-th neighbour or overflowing distances,
 * min_votes out of range, or a row decide_row calls unusual. */
static PyObject *
explain_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 12) {
        PyErr_SetString(PyExc_TypeError, "explain_rows: expected 12 arguments");
        return NULL;
    }
    CompiledModel *m = PyCapsule_GetPointer(args[0], MODEL_CAPSULE);
    if (m == NULL) {
        return NULL;
    }
    const long min_votes = PyLong_AsLong(args[4]);
    const long requested_threads = PyLong_AsLong(args[11]);
    if ((min_votes == -1 || requested_threads == -1) && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer X;
    if (get_buffer(args[1], &X, F64, 2, 0, "X") != 0) {
        PyErr_Clear(); /* the reference path converts it, or refuses it in its words */
        return PyLong_FromLong(1);
    }
    const Py_ssize_t n_rows = shape(&X, 0), n_features = m->n_features, k = m->k;
    if (n_rows < 1 || shape(&X, 1) != n_features || min_votes < 1 || min_votes > N_MEMBERS) {
        PyBuffer_Release(&X);
        return PyLong_FromLong(1);
    }
    static const BufferSpec spec[12] = {
        {NULL, F64, 0, 0},        {NULL, F64, 0, 0},       {"offsets", F64, 1, 0},
        {"scales", F64, 1, 0},    {NULL, F64, 0, 0},       {"scores", F64, 2, 1},
        {"votes", BOOL, 2, 1},    {"anomaly", F64, 1, 1},  {"severity", F64, 1, 1},
        {"is_anomaly", BOOL, 1, 1}, {"shares", F64, 2, 1}, {NULL, F64, 0, 0},
    };
    Py_buffer b[12];
    if (get_buffers(args, b, spec, 12) != 0) {
        PyBuffer_Release(&X);
        return NULL;
    }
    PyObject *result = NULL;
    char *scratch = NULL;
    if (shape(&b[2], 0) != N_MEMBERS || shape(&b[3], 0) != N_MEMBERS ||
        shape(&b[5], 0) != n_rows || shape(&b[5], 1) != N_MEMBERS ||
        shape(&b[6], 0) != n_rows || shape(&b[6], 1) != N_MEMBERS ||
        shape(&b[7], 0) != n_rows || shape(&b[8], 0) != n_rows || shape(&b[9], 0) != n_rows ||
        shape(&b[10], 0) != n_rows || shape(&b[10], 1) != n_features) {
        PyErr_SetString(PyExc_ValueError, "explain_rows: inconsistent shapes");
        goto done;
    }
    const int n_threads =
        thread_count(requested_threads > MAX_THREADS ? MAX_THREADS : (int)requested_threads, n_rows);
    const Py_ssize_t n_groups = m->blocks.n_groups, n_blocks = m->blocks.n_blocks;
    /* The scaled rows, the neighbours (distances, indices, tie flags), score_rows_impl's
     * scratch, and per thread block_scratch_size bytes. */
    const size_t per_task = block_scratch_size(n_groups, n_blocks, n_features);
    const size_t rows_part = sizeof(double) * (size_t)(n_rows * n_features + n_rows * k +
                                                       k + n_rows + n_rows * n_features) +
                             sizeof(int64_t) * (size_t)(n_rows * k + n_rows);
    scratch = malloc(rows_part + per_task * (size_t)n_threads);
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    double *scaled = (double *)scratch;
    double *dist = scaled + n_rows * n_features;
    double *score_scratch = dist + n_rows * k;
    int64_t *ind = (int64_t *)(score_scratch + k + n_rows + n_rows * n_features);
    int64_t *ties = ind + n_rows * k;
    char *task_scratch = scratch + rows_part;
    const double *x = X.buf, *center = m->center, *scale = m->scale;
    const double *offsets = b[2].buf, *scales = b[3].buf;
    double *scores = b[5].buf, *anomaly = b[7].buf, *severity = b[8].buf, *shares = b[10].buf;
    char *votes = b[6].buf, *is_anomaly = b[9].buf;
    int unusual = 0;
    Py_BEGIN_ALLOW_THREADS
    /* (X - center) / scale, as apply_scaling; NaN and infinity stay so when scaled. */
    for (Py_ssize_t i = 0; i < n_rows; i++) {
        for (Py_ssize_t f = 0; f < n_features; f++) {
            const double v = (x[i * n_features + f] - center[f]) / scale[f];
            unusual |= !(fabs(v) <= DBL_MAX);
            scaled[i * n_features + f] = v;
        }
    }
    if (!unusual) {
        BlockTask tasks[MAX_THREADS];
        for (int t = 0; t < n_threads; t++) {
            tasks[t] = m->blocks;
            tasks[t].X = scaled;
            tasks[t].dist = dist;
            tasks[t].ind = ind;
            tasks[t].ties = ties;
            block_scratch(&tasks[t], task_scratch + per_task * (size_t)t);
            tasks[t].row_start = n_rows * t / n_threads;
            tasks[t].row_stop = n_rows * (t + 1) / n_threads;
        }
        run_shares(knn_blocks_rows, tasks, sizeof(BlockTask), n_threads);
        for (Py_ssize_t i = 0; i < n_rows; i++) {
            unusual |= (ties[i] != 0) | !(dist[i * k + k - 1] < INFINITY);
        }
    }
    if (!unusual) {
        score_rows_impl(&m->score, scaled, dist, ind, n_rows, n_features, k, scores,
                        N_MEMBERS, score_scratch);
        for (Py_ssize_t i = 0; i < n_rows && !unusual; i++) {
            unusual |= decide_row(scores + i * N_MEMBERS, offsets, scales, (int)min_votes,
                                  scaled + i * n_features, n_features, votes + i * N_MEMBERS,
                                  anomaly + i, severity + i, is_anomaly + i,
                                  shares + i * n_features);
        }
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromLong(unusual);

done:
    free(scratch);
    release_buffers(b, spec, 12);
    PyBuffer_Release(&X);
    return result;
}

/* check_forest(feature, left, right, n_features): raise ValueError unless every internal
 * node splits on a valid column and points at valid children that come after it (so
 * every walk ends at a leaf). Called once per flattened forest. */
static PyObject *
check_forest(PyObject *self, PyObject *args)
{
    PyObject *oF, *oL, *oR;
    Py_ssize_t n_features;
    if (!PyArg_ParseTuple(args, "OOOn", &oF, &oL, &oR, &n_features)) {
        return NULL;
    }
    Py_buffer F, L, R;
    if (get_buffer(oF, &F, I64, 1, 0, "feature") != 0) {
        return NULL;
    }
    if (get_buffer(oL, &L, I64, 1, 0, "left") != 0) {
        PyBuffer_Release(&F);
        return NULL;
    }
    if (get_buffer(oR, &R, I64, 1, 0, "right") != 0) {
        PyBuffer_Release(&L);
        PyBuffer_Release(&F);
        return NULL;
    }
    const Py_ssize_t n_nodes = shape(&L, 0);
    const int64_t *feature = F.buf, *left = L.buf, *right = R.buf;
    int ok = shape(&F, 0) == n_nodes && shape(&R, 0) == n_nodes;
    for (Py_ssize_t n = 0; ok && n < n_nodes; n++) {
        ok = left[n] == LEAF ||
             (left[n] > n && left[n] < n_nodes && right[n] > n && right[n] < n_nodes &&
              feature[n] >= 0 && feature[n] < n_features);
    }
    PyBuffer_Release(&R);
    PyBuffer_Release(&L);
    PyBuffer_Release(&F);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "check_forest: malformed forest");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
pairwise_sum(PyObject *self, PyObject *args)
{
    PyObject *obj;
    Py_ssize_t start, n;
    if (!PyArg_ParseTuple(args, "Onn", &obj, &start, &n)) {
        return NULL;
    }
    Py_buffer view;
    if (get_buffer(obj, &view, F64, 1, 0, "values") != 0) {
        return NULL;
    }
    if (start < 0 || n < 0 || start + n > shape(&view, 0)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "pairwise_sum: range out of bounds");
        return NULL;
    }
    double total = pairwise_sum_impl((const double *)view.buf + start, n);
    PyBuffer_Release(&view);
    return PyFloat_FromDouble(total);
}

/* ---------------------------------------------------------------- module */

static PyMethodDef methods[] = {
    {"knn", knn, METH_VARARGS,
     "knn(X, train_t, k, dist, ind, ties, n_threads): exact k nearest training rows."},
    {"knn_blocks", knn_blocks, METH_VARARGS,
     "knn_blocks(X, rows, screen, index, starts, lo, hi, groups, group_lo, group_hi, k, dist, "
     "ind, ties, n_threads): knn, skipping groups, blocks and rows of training rows that cannot "
     "hold a neighbour."},
    {"score_rows", score_rows, METH_VARARGS,
     "score_rows(X, dist, ind, roots, feature, threshold, left, right, leaf_value, "
     "denominator, k_distance, lrd, center, scale, out): the detectors' score_samples."},
    {"compiled_model", compiled_model, METH_VARARGS,
     "compiled_model(center, scale, rows, screen, index, starts, lo, hi, groups, group_lo, "
     "group_hi, k, roots, feature, threshold, left, right, leaf_value, denominator, "
     "k_distance, lrd, z_center, z_scale): the fitted arrays explain_rows reads, checked."},
    {"explain_rows", (PyCFunction)(void (*)(void))explain_rows, METH_FASTCALL,
     "explain_rows(model, X, offsets, scales, min_votes, scores, votes, anomaly, severity, "
     "is_anomaly, shares, n_threads): 0 when the rows are scaled, scored and decided, 1 when "
     "they need the reference path."},
    {"check_forest", check_forest, METH_VARARGS,
     "check_forest(feature, left, right, n_features): ValueError unless well-formed."},
    {"pairwise_sum", pairwise_sum, METH_VARARGS,
     "pairwise_sum(values, start, n): sum in NumPy's add.reduce order."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernel",
    "The ensemble's scoring loops, compiled ahead of time (see kernel.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__kernel(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "LEAF", LEAF) != 0 ||
        PyModule_AddObject(m, "LRD_EPSILON", PyFloat_FromDouble(LRD_EPSILON)) != 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
