/* SPIRT.AGGREGATE dst rule INPUTS n key [key ...] [WEIGHTS w ...] [F f] [M m] [B b]
 *
 * Aggregates n FLOAT (or n DOUBLE) tensors of one shape into dst. A rule is
 * one row of RULES: its name, the options it takes, a check of n against
 * them, and a run function; adding a rule is adding a row. The rows follow
 * the registry, spirtd.aggregation.RULES (names, option keywords, bounds);
 * tests/module/test_aggregate_registry.py checks that they agree. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "kernels.h"

enum { OPT_WEIGHTS = 1 << 0, OPT_F = 1 << 1, OPT_M = 1 << 2, OPT_B = 1 << 3 };

typedef struct AggOptions {
    unsigned given;
    double *weights; /* n values when OPT_WEIGHTS was given */
    long long f, m, b;
} AggOptions;

typedef struct AggState AggState;
typedef struct AggRule {
    const char *name;
    unsigned options;  /* options the rule accepts */
    unsigned required; /* options it needs */
    /* Checks n against the options; fills err and returns -1 if unusable. */
    int (*check)(size_t n, AggOptions *o, char *err, size_t cap);
    int (*run)(SpirtJob *job, AggState *s, const SpirtExec *ex);
} AggRule;

struct AggState {
    const AggRule *rule;
    AggOptions opt;
    SpirtAggArgs args;
    RedisModuleString **keys; /* input key names, for error messages */
    size_t *selected;         /* krum: chosen inputs, best score first */
    size_t nselected;
    double *dist, *scores, *row; /* krum scratch */
};

/* ---- rule checks ---- */

/* The bounds on n, one function each, as spirtd/aggregation has them
 * (krum.min_inputs, trimmed_mean.min_inputs); tests/module checks that the
 * module accepts exactly the Python bound. */

/* Krum tolerates f Byzantine inputs when n >= 2f + 3 (Blanchard et al. 2017). */
static long long krum_min_inputs(long long f) { return 2 * f + 3; }

/* Dropping b values at each end leaves at least one. */
static long long trimmed_min_inputs(long long b) { return 2 * b + 1; }

static int check_any(size_t n, AggOptions *o, char *err, size_t cap) {
    (void)n, (void)o, (void)err, (void)cap;
    return 0;
}

static int check_trimmed(size_t n, AggOptions *o, char *err, size_t cap) {
    if ((long long)n >= trimmed_min_inputs(o->b)) return 0;
    spirt_format(err, cap, "ERR trimmed_mean drops B=%lld values at each end, so it needs more "
                 "than 2B=%lld inputs; got %zu", o->b, trimmed_min_inputs(o->b) - 1, n);
    return -1;
}

/* Pairwise distances cost n^2 memory per thread; beyond this many inputs
 * Krum is the wrong tool anyway. */
#define SPIRT_KRUM_MAX_INPUTS 1024

static int check_krum_inputs(size_t n, const AggOptions *o, const char *rule, char *err,
                             size_t cap) {
    if (n > SPIRT_KRUM_MAX_INPUTS) {
        spirt_format(err, cap, "ERR %s compares every pair of inputs and takes at most %d; got %zu",
                     rule, SPIRT_KRUM_MAX_INPUTS, n);
        return -1;
    }
    if ((long long)n >= krum_min_inputs(o->f)) return 0;
    spirt_format(err, cap, "ERR %s tolerates F faulty inputs only with n >= 2F+3: F=%lld needs at "
                 "least %lld inputs, got %zu", rule, o->f, krum_min_inputs(o->f), n);
    return -1;
}

static int check_krum(size_t n, AggOptions *o, char *err, size_t cap) {
    o->m = 1; /* Krum is Multi-Krum choosing one input */
    return check_krum_inputs(n, o, "krum", err, cap);
}

static int check_multikrum(size_t n, AggOptions *o, char *err, size_t cap) {
    if (check_krum_inputs(n, o, "multikrum", err, cap) != 0) return -1;
    if (!(o->given & OPT_M)) o->m = (long long)n - o->f;
    if (o->m <= (long long)n - o->f) return 0;
    spirt_format(err, cap, "ERR multikrum averages M of the n-F best-scored inputs: M=%lld is more "
                 "than n-F=%lld", o->m, (long long)n - o->f);
    return -1;
}

/* ---- rule runs ---- */

static int fail_nonfinite(SpirtJob *job, AggState *s) {
    char name[SPIRT_KEYNAME_IN_ERROR + 1];
    for (size_t k = 0; k < s->args.n; k++) {
        long long at = spirt_find_nonfinite(s->args.dtype, s->args.inputs[k], s->args.nelem);
        if (at >= 0)
            return spirt_job_fail(job, "ERR input '%s' has a non-finite value at element %lld; "
                                  "nothing was written", spirt_keyname(s->keys[k], name, sizeof(name)), at);
    }
    return spirt_job_fail(job, "ERR %s overflowed: the result is not finite although every input "
                          "is; nothing was written", s->rule->name);
}

static int run_mean(SpirtJob *job, AggState *s, const SpirtExec *ex) {
    SpirtAggArgs *a = &s->args;
    if (s->opt.given & OPT_WEIGHTS) {
        double total = 0;
        for (size_t k = 0; k < a->n; k++) total += s->opt.weights[k];
        a->weights = s->opt.weights;
        a->scale = 1.0 / total;
    } else {
        a->scale = 1.0 / (double)a->n;
    }
    spirt_kernel_mean(ex, a);
    return atomic_load(&a->nonfinite) ? fail_nonfinite(job, s) : 0;
}

static int run_median(SpirtJob *job, AggState *s, const SpirtExec *ex) {
    spirt_kernel_median(ex, &s->args);
    return atomic_load(&s->args.nonfinite) ? fail_nonfinite(job, s) : 0;
}

static int run_trimmed(SpirtJob *job, AggState *s, const SpirtExec *ex) {
    s->args.trim = (size_t)s->opt.b;
    spirt_kernel_trimmed_mean(ex, &s->args);
    return atomic_load(&s->args.nonfinite) ? fail_nonfinite(job, s) : 0;
}

/* Krum score of input i: sum of its n-f-2 smallest distances to others. */
static double krum_score(const AggState *s, size_t i, double *row) {
    const size_t n = s->args.n;
    size_t c = 0;
    for (size_t k = 0; k < n; k++)
        if (k != i) row[c++] = s->dist[i * n + k];
    /* insertion sort: n is a count of peers, small */
    for (size_t x = 1; x < c; x++) {
        double v = row[x];
        size_t y = x;
        while (y > 0 && row[y - 1] > v) {
            row[y] = row[y - 1];
            y--;
        }
        row[y] = v;
    }
    double score = 0;
    for (size_t k = 0; k < n - (size_t)s->opt.f - 2; k++) score += row[k];
    return score;
}

/* Orders input indices by score, lower first, ties by index. */
static void krum_select(AggState *s) {
    const size_t n = s->args.n;
    for (size_t i = 0; i < n; i++) {
        s->scores[i] = krum_score(s, i, s->row);
        s->selected[i] = i;
    }
    for (size_t x = 1; x < n; x++) {
        size_t v = s->selected[x], y = x;
        while (y > 0 && s->scores[s->selected[y - 1]] > s->scores[v]) {
            s->selected[y] = s->selected[y - 1];
            y--;
        }
        s->selected[y] = v;
    }
    s->nselected = (size_t)s->opt.m;
}

static int run_krum(SpirtJob *job, AggState *s, const SpirtExec *ex) {
    SpirtAggArgs *a = &s->args;
    spirt_kernel_sqdist(ex, a, s->dist);
    if (atomic_load(&a->nonfinite)) return fail_nonfinite(job, s);
    krum_select(s);

    /* Average the chosen inputs: a mean over a subset. */
    const void *chosen[s->nselected];
    for (size_t i = 0; i < s->nselected; i++) chosen[i] = a->inputs[s->selected[i]];
    SpirtAggArgs sub = *a;
    sub.inputs = chosen;
    sub.n = s->nselected;
    sub.weights = NULL;
    sub.scale = 1.0 / (double)s->nselected;
    atomic_init(&sub.nonfinite, 0);
    spirt_kernel_mean(ex, &sub);
    return atomic_load(&sub.nonfinite) ? fail_nonfinite(job, s) : 0;
}

static const AggRule RULES[] = {
    {"mean", OPT_WEIGHTS, 0, check_any, run_mean},
    {"median", 0, 0, check_any, run_median},
    {"trimmed_mean", OPT_B, OPT_B, check_trimmed, run_trimmed},
    {"krum", OPT_F, OPT_F, check_krum, run_krum},
    {"multikrum", OPT_F | OPT_M, OPT_F, check_multikrum, run_krum},
};
#define NRULES (sizeof(RULES) / sizeof(RULES[0]))

static const AggRule *find_rule(const RedisModuleString *arg) {
    for (size_t i = 0; i < NRULES; i++)
        if (spirt_arg_is(arg, RULES[i].name)) return &RULES[i];
    return NULL;
}

static void known_rules(char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NRULES && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", RULES[i].name);
}

/* ---- job plumbing ---- */

static void free_state(void *p) {
    AggState *s = p;
    if (s == NULL) return;
    RedisModule_Free(s->opt.weights);
    RedisModule_Free(s->args.inputs);
    if (s->keys)
        for (size_t k = 0; k < s->args.n; k++) RedisModule_FreeString(NULL, s->keys[k]);
    RedisModule_Free(s->keys);
    RedisModule_Free(s->args.scratch);
    RedisModule_Free(s->args.dist);
    RedisModule_Free(s->dist);
    RedisModule_Free(s->scores);
    RedisModule_Free(s->row);
    RedisModule_Free(s->selected);
    RedisModule_Free(s);
}

static int run_job(SpirtJob *job, const SpirtExec *ex) {
    AggState *s = job->state;
    return s->rule->run(job, s, ex);
}

static void reply_selected(RedisModuleCtx *ctx, SpirtJob *job) {
    AggState *s = job->state;
    RedisModule_ReplyWithArray(ctx, (long)s->nselected);
    for (size_t i = 0; i < s->nselected; i++)
        RedisModule_ReplyWithLongLong(ctx, (long long)s->selected[i]);
}

/* Scratch space, sized for the most workers a run can use. */
static void alloc_scratch(AggState *s) {
    const size_t n = s->args.n, w = (size_t)spirt_pool_exec.nworkers;
    if (s->rule->run == run_median || s->rule->run == run_trimmed)
        s->args.scratch = RedisModule_Alloc(w * n * sizeof(double));
    if (s->rule->run == run_krum) {
        s->args.dist = RedisModule_Alloc(spirt_sqdist_slices(s->args.nelem, n) * n * n * sizeof(double));
        s->dist = RedisModule_Alloc(n * n * sizeof(double));
        s->scores = RedisModule_Alloc(n * sizeof(double));
        s->row = RedisModule_Alloc(n * sizeof(double));
        s->selected = RedisModule_Alloc(n * sizeof(size_t));
    }
}

/* ---- argument parsing ---- */

static int parse_options(RedisModuleCtx *ctx, const AggRule *rule, size_t n,
                         RedisModuleString **argv, int argc, AggOptions *o) {
    static const struct {
        const char *name;
        unsigned bit;
    } NAMES[] = {{"WEIGHTS", OPT_WEIGHTS}, {"F", OPT_F}, {"M", OPT_M}, {"B", OPT_B}};
    int i = 0;
    while (i < argc) {
        unsigned bit = 0;
        size_t len;
        const char *word = RedisModule_StringPtrLen(argv[i], &len);
        for (size_t k = 0; k < sizeof(NAMES) / sizeof(NAMES[0]); k++)
            if (spirt_arg_is(argv[i], NAMES[k].name)) bit = NAMES[k].bit;
        if (bit == 0 || !(rule->options & bit))
            return spirt_reply_errorf(ctx, "ERR option '%.*s' does not apply to rule %s", (int)(len > 32 ? 32 : len), word, rule->name), -1;
        if (o->given & bit) return spirt_reply_errorf(ctx, "ERR option %.*s given twice", (int)len, word), -1;
        o->given |= bit;
        if (bit == OPT_WEIGHTS) {
            if ((size_t)(argc - i - 1) < n)
                return spirt_reply_errorf(ctx, "ERR WEIGHTS needs one weight per input (%zu)", n), -1;
            o->weights = RedisModule_Alloc(n * sizeof(double));
            double total = 0;
            for (size_t k = 0; k < n; k++) {
                double w;
                if (spirt_parse_finite(argv[i + 1 + (int)k], &w) != 0 || w < 0)
                    return spirt_reply_errorf(ctx, "ERR WEIGHTS must be finite and non-negative"), -1;
                o->weights[k] = w;
                total += w;
            }
            if (!(total > 0))
                return spirt_reply_errorf(ctx, "ERR WEIGHTS must not all be zero"), -1;
            if (!isfinite(total) || total < DBL_MIN)
                return spirt_reply_errorf(ctx, "ERR WEIGHTS must sum to a finite, normal number"), -1;
            i += 1 + (int)n;
            continue;
        }
        long long v;
        long long lo = bit == OPT_M ? 1 : 0;
        if (i + 1 >= argc || spirt_parse_int(argv[i + 1], lo, INT32_MAX, &v) != 0)
            return spirt_reply_errorf(ctx, "ERR %s needs an integer >= %lld", word, lo), -1;
        if (bit == OPT_F) o->f = v;
        else if (bit == OPT_M) o->m = v;
        else o->b = v;
        i += 2;
    }
    unsigned missing = rule->required & ~o->given;
    if (missing)
        return spirt_reply_errorf(ctx, "ERR rule %s needs option %s", rule->name,
                                  missing & OPT_F ? "F" : "B"), -1;
    return 0;
}

/* Checks one input and adds it to the job; replies and returns -1 on error. */
static int add_input(RedisModuleCtx *ctx, SpirtJob *job, AggState *s, size_t k,
                     RedisModuleString *name, const SpirtTensor **first) {
    char kname[SPIRT_KEYNAME_IN_ERROR + 1], fname[SPIRT_KEYNAME_IN_ERROR + 1];
    char shape[128], fshape[128];
    SpirtKeyKind kind;
    SpirtTensor *t;
    RedisModuleKey *key = spirt_key_open(ctx, name, REDISMODULE_READ, &kind, &t);
    RedisModule_CloseKey(key);
    spirt_keyname(name, kname, sizeof(kname));
    if (kind == SPIRT_KEY_EMPTY)
        return spirt_reply_errorf(ctx, "ERR input tensor '%s' does not exist", kname), -1;
    if (kind == SPIRT_KEY_OTHER)
        return spirt_reply_errorf(ctx, "WRONGTYPE input '%s' holds a value that is not a tensor", kname), -1;
    if (!spirt_dtype_is_float(t->dtype))
        return spirt_reply_errorf(ctx, "ERR input '%s' has dtype %s; aggregation needs FLOAT or DOUBLE",
                                  kname, spirt_dtype_name(t->dtype)), -1;
    if (*first && !spirt_tensor_same_layout(*first, t)) {
        spirt_shape_text(t, shape, sizeof(shape));
        spirt_shape_text(*first, fshape, sizeof(fshape));
        spirt_keyname(s->keys[0], fname, sizeof(fname));
        return spirt_reply_errorf(ctx, "ERR input '%s' is %s %s but '%s' is %s %s", kname,
                                  spirt_dtype_name(t->dtype), shape, fname,
                                  spirt_dtype_name((*first)->dtype), fshape), -1;
    }
    if (*first == NULL) *first = t;
    s->args.inputs[k] = spirt_job_hold(job, t->buf);
    job->work_bytes += t->buf->nbytes;
    return 0;
}

static int report_keys(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    long long n;
    if (argc > 1) RedisModule_KeyAtPos(ctx, 1);
    if (argc > 4 && spirt_parse_int(argv[4], 1, argc - 5, &n) == 0)
        for (int i = 0; i < (int)n; i++) RedisModule_KeyAtPos(ctx, 5 + i);
    return REDISMODULE_OK;
}

/* dst must be empty or a tensor; *stamp is what it holds now (0: empty). */
static int check_destination(RedisModuleCtx *ctx, RedisModuleString *dst, uint64_t *stamp) {
    SpirtKeyKind kind;
    SpirtTensor *t;
    RedisModuleKey *key = spirt_key_open(ctx, dst, REDISMODULE_READ, &kind, &t);
    RedisModule_CloseKey(key);
    *stamp = kind == SPIRT_KEY_TENSOR ? t->stamp : 0;
    if (kind != SPIRT_KEY_OTHER) return 0;
    RedisModule_ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    return -1;
}

/* Parses everything that does not need the keyspace. */
static AggState *parse_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    char rules[128], err[SPIRT_ERR_LEN];
    long long n;
    const AggRule *rule = find_rule(argv[2]);
    if (rule == NULL) {
        size_t len;
        const char *name = RedisModule_StringPtrLen(argv[2], &len);
        known_rules(rules, sizeof(rules));
        spirt_reply_errorf(ctx, "ERR unknown aggregation rule '%.*s'; known rules: %s",
                           (int)(len > 32 ? 32 : len), name, rules);
        return NULL;
    }
    if (!spirt_arg_is(argv[3], "INPUTS")) {
        spirt_reply_errorf(ctx, "ERR expected INPUTS after the rule name");
        return NULL;
    }
    if (spirt_parse_int(argv[4], 1, INT32_MAX, &n) != 0) {
        spirt_reply_errorf(ctx, "ERR INPUTS count must be a positive integer");
        return NULL;
    }
    if (n > argc - 5) {
        spirt_reply_errorf(ctx, "ERR INPUTS says %lld keys but only %d follow", n, argc - 5);
        return NULL;
    }
    AggState *s = RedisModule_Calloc(1, sizeof(*s));
    s->rule = rule;
    s->args.n = (size_t)n;
    if (parse_options(ctx, rule, (size_t)n, argv + 5 + n, argc - 5 - (int)n, &s->opt) != 0) {
        free_state(s);
        return NULL;
    }
    if (rule->check(s->args.n, &s->opt, err, sizeof(err)) != 0) {
        RedisModule_ReplyWithError(ctx, err);
        free_state(s);
        return NULL;
    }
    return s;
}

int spirt_cmd_aggregate(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) return report_keys(ctx, argv, argc);
    if (argc < 6) return RedisModule_WrongArity(ctx);
    AggState *s = parse_command(ctx, argv, argc);
    if (s == NULL) return REDISMODULE_OK;
    uint64_t dst_stamp;
    if (check_destination(ctx, argv[1], &dst_stamp) != 0) {
        free_state(s);
        return REDISMODULE_OK;
    }

    SpirtJob *job = spirt_job_new("SPIRT.AGGREGATE");
    job->state = s;
    job->free_state = free_state;
    job->run = run_job;
    if (s->rule->run == run_krum) job->reply = reply_selected;
    s->args.inputs = RedisModule_Calloc(s->args.n, sizeof(void *));
    s->keys = RedisModule_Calloc(s->args.n, sizeof(RedisModuleString *));
    for (size_t k = 0; k < s->args.n; k++)
        s->keys[k] = RedisModule_CreateStringFromString(NULL, argv[5 + k]);

    const SpirtTensor *first = NULL;
    for (size_t k = 0; k < s->args.n; k++) {
        if (add_input(ctx, job, s, k, argv[5 + k], &first) != 0) {
            spirt_job_free(job);
            return REDISMODULE_OK;
        }
    }
    SpirtTensor *out = spirt_tensor_new_like(first, 0);
    if (out == NULL) {
        spirt_job_free(job);
        return spirt_reply_errorf(ctx, "ERR the result would exceed MAX_TENSOR_BYTES");
    }
    s->args.dtype = first->dtype;
    s->args.nelem = first->nelem;
    s->args.out = out->buf->data;
    alloc_scratch(s);
    spirt_job_add_output(job, argv[1], out, 1, dst_stamp);
    job->work_bytes += out->buf->nbytes;
    return spirt_job_dispatch(ctx, job);
}
