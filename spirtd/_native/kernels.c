#include "kernels.h"

#include <math.h>
#include <string.h>

/* Accumulator block: fits L1 alongside the input streams. */
#define SPIRT_BLOCK 512
/* Elements per input per step of the distance kernel: n blocks stay in L1/L2
 * while every pair is compared. */
#define SPIRT_DIST_BLOCK 256
/* Independent partial sums in reductions. */
#define SPIRT_LANES 8
/* Elements a thread claims at a time. */
#define SPIRT_GRAIN_STREAM ((size_t)1 << 16)
#define SPIRT_GRAIN_SELECT ((size_t)1 << 13)
/* Below this, insertion sort beats partitioning. */
#define SPIRT_SMALL_SORT 16

/* Hot loops are built twice on x86-64 and the CPU picks at load time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(SPIRT_NO_TARGET_CLONES)
#define SPIRT_HOT __attribute__((target_clones("avx2", "default")))
#else
#define SPIRT_HOT
#endif

static void insertion_sort(double *v, long n) {
    for (long i = 1; i < n; i++) {
        double x = v[i];
        long j = i - 1;
        while (j >= 0 && v[j] > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
}

static inline void swap(double *v, long i, long j) {
    double t = v[i];
    v[i] = v[j];
    v[j] = t;
}

/* Reorders v[0..n) so that v[k] holds the k-th smallest value, with nothing
 * larger before it and nothing smaller after it. Values must be finite. */
static void select_kth(double *v, long n, long k) {
    long lo = 0, hi = n - 1;
    while (hi - lo >= SPIRT_SMALL_SORT) {
        long mid = lo + (hi - lo) / 2;
        if (v[mid] < v[lo]) swap(v, mid, lo);
        if (v[hi] < v[lo]) swap(v, hi, lo);
        if (v[hi] < v[mid]) swap(v, hi, mid);
        const double pivot = v[mid];
        long i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) swap(v, i++, j--);
        }
        /* v[lo..j] <= pivot <= v[i..hi]; anything between equals pivot. */
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return;
    }
    insertion_sort(v + lo, hi - lo + 1);
}

static double min_of(const double *v, long n) {
    double m = v[0];
    for (long i = 1; i < n; i++)
        if (v[i] < m) m = v[i];
    return m;
}

static double spirt_median_of(double *v, size_t n) {
    long mid = ((long)n - 1) / 2;
    select_kth(v, (long)n, mid);
    if (n % 2) return v[mid];
    return (v[mid] + min_of(v + mid + 1, (long)n - mid - 1)) * 0.5;
}

static double spirt_trimmed_mean_of(double *v, size_t n, size_t trim) {
    long keep = (long)n - 2 * (long)trim;
    if (trim > 0) {
        select_kth(v, (long)n, (long)trim);
        select_kth(v + trim, (long)n - (long)trim, keep - 1);
    }
    double s = 0;
    for (long i = 0; i < keep; i++) s += v[trim + (size_t)i];
    return s / (double)keep;
}

#define T float
#define SFX f32
#include "kernels_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "kernels_impl.h"
#undef T
#undef SFX

#define DISPATCH(dtype, f32_fn, f64_fn) ((dtype) == SPIRT_DOUBLE ? (f64_fn) : (f32_fn))

void spirt_kernel_mean(const SpirtExec *ex, SpirtAggArgs *a) {
    ex->parallel_for(a->nelem, SPIRT_GRAIN_STREAM,
                     DISPATCH(a->dtype, mean_range_f32, mean_range_f64), a);
}

void spirt_kernel_median(const SpirtExec *ex, SpirtAggArgs *a) {
    ex->parallel_for(a->nelem, SPIRT_GRAIN_SELECT,
                     DISPATCH(a->dtype, median_range_f32, median_range_f64), a);
}

void spirt_kernel_trimmed_mean(const SpirtExec *ex, SpirtAggArgs *a) {
    ex->parallel_for(a->nelem, SPIRT_GRAIN_SELECT,
                     DISPATCH(a->dtype, trimmed_range_f32, trimmed_range_f64), a);
}

/* Slices of the distance kernel: at least this many elements each, at most
 * this many slices, and their partial sums within this many bytes. */
#define SPIRT_DIST_SLICE_MIN ((size_t)1 << 16)
#define SPIRT_DIST_MAX_SLICES ((size_t)64)
#define SPIRT_DIST_SCRATCH_BYTES ((size_t)64 << 20)

size_t spirt_sqdist_slices(size_t nelem, size_t n) {
    size_t slices = (nelem + SPIRT_DIST_SLICE_MIN - 1) / SPIRT_DIST_SLICE_MIN;
    const size_t fit = SPIRT_DIST_SCRATCH_BYTES / (n * n * sizeof(double));
    if (slices > SPIRT_DIST_MAX_SLICES) slices = SPIRT_DIST_MAX_SLICES;
    if (slices > fit) slices = fit;
    return slices ? slices : 1;
}

void spirt_kernel_sqdist(const SpirtExec *ex, SpirtAggArgs *a, double *d) {
    const size_t n = a->n, slices = spirt_sqdist_slices(a->nelem, n);
    memset(a->dist, 0, slices * n * n * sizeof(double));
    ex->parallel_for(slices, 1, DISPATCH(a->dtype, sqdist_slices_f32, sqdist_slices_f64), a);
    for (size_t i = 0; i < n * n; i++) d[i] = 0;
    for (size_t sl = 0; sl < slices; sl++) {
        const double *part = a->dist + sl * n * n;
        for (size_t i = 0; i < n * n; i++) d[i] += part[i];
    }
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < i; k++) d[i * n + k] = d[k * n + i];
    for (size_t i = 0; i < n * n; i++)
        if (!isfinite(d[i])) atomic_store(&a->nonfinite, 1);
}

/* Score of input i: sum of its n-f-2 smallest distances to the others. */
static double krum_score(const double *dist, size_t n, size_t f, size_t i, double *row) {
    size_t c = 0;
    for (size_t k = 0; k < n; k++)
        if (k != i) row[c++] = dist[i * n + k];
    insertion_sort(row, (long)c); /* n is a count of peers, small */
    double score = 0;
    for (size_t k = 0; k < n - f - 2; k++) score += row[k];
    return score;
}

void spirt_krum_order(const double *dist, size_t n, size_t f, double *scores, double *row,
                      size_t *order) {
    for (size_t i = 0; i < n; i++) {
        scores[i] = krum_score(dist, n, f, i, row);
        order[i] = i;
    }
    /* stable: equal scores keep index order */
    for (size_t x = 1; x < n; x++) {
        size_t v = order[x], y = x;
        while (y > 0 && scores[order[y - 1]] > scores[v]) {
            order[y] = order[y - 1];
            y--;
        }
        order[y] = v;
    }
}

long long spirt_find_nonfinite(SpirtDType dtype, const void *data, size_t nelem) {
    return dtype == SPIRT_DOUBLE ? find_nonfinite_f64(data, nelem)
                                 : find_nonfinite_f32(data, nelem);
}

void spirt_kernel_sgd(const SpirtExec *ex, SpirtSgdArgs *a) {
    ex->parallel_for(a->nelem, SPIRT_GRAIN_STREAM,
                     DISPATCH(a->dtype, sgd_range_f32, sgd_range_f64), a);
}

void spirt_kernel_adam(const SpirtExec *ex, SpirtAdamArgs *a) {
    ex->parallel_for(a->nelem, SPIRT_GRAIN_STREAM,
                     DISPATCH(a->dtype, adam_range_f32, adam_range_f64), a);
}
