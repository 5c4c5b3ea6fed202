/* Kernel bodies for one element type. kernels.c includes this file once per
 * type with T (float or double) and SFX (f32 or f64) defined. */

#define SPIRT_CAT_(a, b) a##_##b
#define SPIRT_CAT(a, b) SPIRT_CAT_(a, b)
#define FN(name) SPIRT_CAT(name, SFX)

/* x - x is 0 for finite x and NaN for infinities and NaN. */
#define NOT_FINITE(x) (!((x) - (x) == 0.0))

SPIRT_HOT static void FN(mean_range)(void *arg, size_t lo, size_t hi, int worker) {
    SpirtAggArgs *a = arg;
    const T *const *in = (const T *const *)a->inputs;
    T *out = (T *)a->out;
    const double *w = a->weights;
    const double scale = a->scale;
    double acc[SPIRT_BLOCK];
    int bad = 0;
    (void)worker;
    for (size_t b = lo; b < hi; b += SPIRT_BLOCK) {
        const size_t m = hi - b < SPIRT_BLOCK ? hi - b : SPIRT_BLOCK;
        const T *x = in[0] + b;
        if (w) {
            for (size_t i = 0; i < m; i++) acc[i] = w[0] * (double)x[i];
        } else {
            for (size_t i = 0; i < m; i++) acc[i] = (double)x[i];
        }
        for (size_t k = 1; k < a->n; k++) {
            x = in[k] + b;
            if (w) {
                const double wk = w[k];
                for (size_t i = 0; i < m; i++) acc[i] += wk * (double)x[i];
            } else {
                for (size_t i = 0; i < m; i++) acc[i] += (double)x[i];
            }
        }
        T *o = out + b;
        for (size_t i = 0; i < m; i++) {
            const T r = (T)(acc[i] * scale);
            o[i] = r;
            bad |= NOT_FINITE(r);
        }
    }
    if (bad) atomic_store(&a->nonfinite, 1);
}

/* Gathers element j of every input into v; 0 if any is not finite. */
static inline int FN(gather)(const SpirtAggArgs *a, size_t j, double *v) {
    const T *const *in = (const T *const *)a->inputs;
    int bad = 0;
    for (size_t k = 0; k < a->n; k++) {
        const double x = (double)in[k][j];
        v[k] = x;
        bad |= NOT_FINITE(x);
    }
    return !bad;
}

static void FN(median_range)(void *arg, size_t lo, size_t hi, int worker) {
    SpirtAggArgs *a = arg;
    T *out = (T *)a->out;
    double *v = a->scratch + (size_t)worker * a->n;
    int bad = 0;
    for (size_t j = lo; j < hi; j++) {
        if (!FN(gather)(a, j, v)) {
            bad = 1;
            out[j] = 0;
            continue;
        }
        const T r = (T)spirt_median_of(v, a->n);
        out[j] = r;
        bad |= NOT_FINITE(r);
    }
    if (bad) atomic_store(&a->nonfinite, 1);
}

static void FN(trimmed_range)(void *arg, size_t lo, size_t hi, int worker) {
    SpirtAggArgs *a = arg;
    T *out = (T *)a->out;
    double *v = a->scratch + (size_t)worker * a->n;
    int bad = 0;
    for (size_t j = lo; j < hi; j++) {
        if (!FN(gather)(a, j, v)) {
            bad = 1;
            out[j] = 0;
            continue;
        }
        const T r = (T)spirt_trimmed_mean_of(v, a->n, a->trim);
        out[j] = r;
        bad |= NOT_FINITE(r);
    }
    if (bad) atomic_store(&a->nonfinite, 1);
}

/* Sum of squared differences of two vectors, with independent partial sums
 * so the loop vectorizes while the summation order stays fixed. */
SPIRT_HOT static double FN(sqdiff)(const T *x, const T *y, size_t m) {
    double s[SPIRT_LANES] = {0};
    size_t t = 0;
    for (; t + SPIRT_LANES <= m; t += SPIRT_LANES) {
        for (size_t l = 0; l < SPIRT_LANES; l++) {
            const double d = (double)x[t + l] - (double)y[t + l];
            s[l] += d * d;
        }
    }
    double total = 0;
    for (; t < m; t++) {
        const double d = (double)x[t] - (double)y[t];
        total += d * d;
    }
    for (size_t l = 0; l < SPIRT_LANES; l++) total += s[l];
    return total;
}

/* Slices [lo, hi) of spirt_kernel_sqdist, each into its own n * n sums. */
static void FN(sqdist_slices)(void *arg, size_t lo, size_t hi, int worker) {
    SpirtAggArgs *a = arg;
    const T *const *in = (const T *const *)a->inputs;
    const size_t n = a->n, slices = spirt_sqdist_slices(a->nelem, n);
    (void)worker;
    for (size_t sl = lo; sl < hi; sl++) {
        double *d = a->dist + sl * n * n;
        const size_t start = a->nelem * sl / slices, end = a->nelem * (sl + 1) / slices;
        for (size_t b = start; b < end; b += SPIRT_DIST_BLOCK) {
            const size_t m = end - b < SPIRT_DIST_BLOCK ? end - b : SPIRT_DIST_BLOCK;
            for (size_t i = 0; i < n; i++)
                for (size_t k = i + 1; k < n; k++) d[i * n + k] += FN(sqdiff)(in[i] + b, in[k] + b, m);
        }
    }
}

static long long FN(find_nonfinite)(const T *x, size_t nelem) {
    for (size_t i = 0; i < nelem; i++)
        if (NOT_FINITE(x[i])) return (long long)i;
    return -1;
}

SPIRT_HOT static void FN(sgd_range)(void *arg, size_t lo, size_t hi, int worker) {
    SpirtSgdArgs *a = arg;
    const T *p = a->param, *g = a->grad, *buf = a->buf;
    T *np = a->new_param, *nb = a->new_buf;
    const double lr = a->lr, mu = a->momentum, keep = 1.0 - a->dampening, wd = a->weight_decay;
    const double sign = a->maximize ? -1.0 : 1.0;
    int bad = 0;
    (void)worker;
    for (size_t i = lo; i < hi; i++) {
        double d = sign * (double)g[i];
        bad |= NOT_FINITE(d);
        d += wd * (double)p[i];
        if (nb) {
            const double b = buf ? mu * (double)buf[i] + keep * d : d;
            nb[i] = (T)b;
            d = a->nesterov ? d + mu * b : b;
        }
        np[i] = (T)((double)p[i] - lr * d);
    }
    if (bad) atomic_store(&a->nonfinite, 1);
}

SPIRT_HOT static void FN(adam_range)(void *arg, size_t lo, size_t hi, int worker) {
    SpirtAdamArgs *a = arg;
    const T *p = a->param, *g = a->grad, *m0 = a->exp_avg, *v0 = a->exp_avg_sq;
    T *np = a->new_param, *nm = a->new_exp_avg, *nv = a->new_exp_avg_sq;
    const double b1 = a->beta1, b2 = a->beta2, eps = a->eps;
    const double step_size = a->lr / (1.0 - pow(b1, (double)a->step));
    const double bc2_sqrt = sqrt(1.0 - pow(b2, (double)a->step));
    const double shrink = a->decoupled ? 1.0 - a->lr * a->weight_decay : 1.0;
    const double coupled_wd = a->decoupled ? 0.0 : a->weight_decay;
    const double sign = a->maximize ? -1.0 : 1.0;
    int bad = 0;
    (void)worker;
    for (size_t i = lo; i < hi; i++) {
        double gi = sign * (double)g[i];
        bad |= NOT_FINITE(gi);
        const double pi = (double)p[i] * shrink;
        gi += coupled_wd * (double)p[i];
        double m = m0 ? (double)m0[i] : 0.0;
        double v = v0 ? (double)v0[i] : 0.0;
        m += (1.0 - b1) * (gi - m);
        v = b2 * v + (1.0 - b2) * gi * gi;
        nm[i] = (T)m;
        nv[i] = (T)v;
        np[i] = (T)(pi - step_size * m / (sqrt(v) / bc2_sqrt + eps));
    }
    if (bad) atomic_store(&a->nonfinite, 1);
}

#undef NOT_FINITE
#undef FN
#undef SPIRT_CAT
#undef SPIRT_CAT_
