/* Element-wise and reduction kernels over FLOAT or DOUBLE vectors. Pure
 * functions of their arguments: no Redis calls, no allocation. They run
 * under a SpirtExec, which splits the element range across threads. Every
 * kernel computes in double and rounds once when it stores. */
#ifndef SPIRT_KERNELS_H
#define SPIRT_KERNELS_H

#include <stdatomic.h>
#include <stddef.h>

#include "pool.h"
#include "tensor.h"

typedef struct SpirtAggArgs {
    SpirtDType dtype;
    size_t n;            /* number of inputs */
    size_t nelem;        /* elements per input */
    const void **inputs; /* n vectors */
    void *out;
    /* mean: optional per-input weights, and the factor applied to the sum */
    const double *weights;
    double scale;
    /* trimmed mean: values dropped at each end */
    size_t trim;
    /* median / trimmed mean: nworkers * n doubles */
    double *scratch;
    /* squared distances: spirt_sqdist_slices(nelem, n) * n * n doubles */
    double *dist;
    /* set by a kernel that met a non-finite value (or produced one) */
    atomic_int nonfinite;
} SpirtAggArgs;

void spirt_kernel_mean(const SpirtExec *ex, SpirtAggArgs *a);
void spirt_kernel_median(const SpirtExec *ex, SpirtAggArgs *a);
void spirt_kernel_trimmed_mean(const SpirtExec *ex, SpirtAggArgs *a);
/* Pairwise squared Euclidean distances into d (n * n, symmetric). The
 * element range is cut into fixed slices, each summed on its own and the
 * slices added in order: the result does not depend on how many threads
 * ran or which took which slice (peers must derive the same selection). */
void spirt_kernel_sqdist(const SpirtExec *ex, SpirtAggArgs *a, double *d);
/* How many slices spirt_kernel_sqdist cuts nelem elements into for n
 * inputs: a function of nelem and n only. */
size_t spirt_sqdist_slices(size_t nelem, size_t n);

/* Krum (Blanchard et al. 2017): orders the n inputs by score, lower first,
 * ties by index, into order. Input i's score is the sum of its n-f-2
 * smallest distances to the others, from dist (n * n, row i); scores and
 * row are n doubles of scratch. n >= f + 3. */
void spirt_krum_order(const double *dist, size_t n, size_t f, double *scores, double *row,
                      size_t *order);

/* Index of the first non-finite element, or -1. */
long long spirt_find_nonfinite(SpirtDType dtype, const void *data, size_t nelem);

/* Optimizer steps (torch.optim semantics). In/out vectors may alias only
 * where noted; all have nelem elements of dtype. */
typedef struct SpirtSgdArgs {
    SpirtDType dtype;
    size_t nelem;
    const void *param, *grad, *buf; /* buf NULL: first step (or no momentum) */
    void *new_param, *new_buf;      /* new_buf NULL when momentum == 0 */
    double lr, momentum, dampening, weight_decay;
    int nesterov, maximize;
    atomic_int nonfinite;
} SpirtSgdArgs;

typedef struct SpirtAdamArgs {
    SpirtDType dtype;
    size_t nelem;
    const void *param, *grad, *exp_avg, *exp_avg_sq; /* state NULL: zeros */
    void *new_param, *new_exp_avg, *new_exp_avg_sq;
    double lr, beta1, beta2, eps, weight_decay;
    long long step; /* the step being taken, >= 1 */
    int decoupled, maximize;
    atomic_int nonfinite;
} SpirtAdamArgs;

void spirt_kernel_sgd(const SpirtExec *ex, SpirtSgdArgs *a);
void spirt_kernel_adam(const SpirtExec *ex, SpirtAdamArgs *a);

#endif
