/* SPIRT.AGGREGATE dst rule INPUTS n key [key ...] [WEIGHTS w ...] [F f] [M m] [B b]
 *                 [GIVEN stat numbers ...]
 *
 * Aggregates n FLOAT (or n DOUBLE) tensors of one shape into dst. A rule is
 * one row of RULES: its name, the options it takes, the whole-vector
 * statistics it needs (which GIVEN may hand over instead of it computing
 * them: the inputs are then one shard of the vectors), a check of n against
 * them, and a run function; adding a rule is adding a row. The rows follow
 * the registry, spirtd.aggregation.RULES (names, option keywords, needs,
 * bounds); tests/module/test_aggregate_registry.py checks that they agree. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "inputs.h"
#include "kernels.h"
#include "statistic.h"

enum { OPT_WEIGHTS = 1 << 0, OPT_F = 1 << 1, OPT_M = 1 << 2, OPT_B = 1 << 3 };

typedef struct AggOptions {
    unsigned given;
    double *weights; /* n values when OPT_WEIGHTS was given */
    long long f, m, b;
    double *stats[SPIRT_NSTATS]; /* statistics GIVEN, or NULL */
} AggOptions;

typedef struct AggState AggState;
typedef struct AggRule {
    const char *name;
    unsigned options;  /* options the rule accepts */
    unsigned required; /* options it needs */
    unsigned needs;    /* statistics it needs (SPIRT_NEEDS) */
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
    double *dist, *scores, *row; /* krum scratch (dist: unless GIVEN) */
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

static int check_krum_inputs(size_t n, const AggOptions *o, const char *rule, char *err,
                             size_t cap) {
    if (n > SPIRT_STAT_MAX_INPUTS) { /* the limit of the distances it needs */
        spirt_format(err, cap, "ERR %s compares every pair of inputs and takes at most %d; got %zu",
                     rule, SPIRT_STAT_MAX_INPUTS, n);
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

static const char NOTHING_WRITTEN[] = "; nothing was written";

static int fail_nonfinite(SpirtJob *job, AggState *s) {
    if (spirt_inputs_fail_nonfinite(job, &s->args, s->keys, NOTHING_WRITTEN) != 0) return -1;
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

/* The whole-vector distances: GIVEN, or computed from the inputs. Given
 * ones do not see the inputs, which are checked on their own. */
static const double *krum_distances(SpirtJob *job, AggState *s, const SpirtExec *ex) {
    const double *given = s->opt.stats[SPIRT_STAT_SQDIST];
    if (given != NULL)
        return spirt_inputs_fail_nonfinite(job, &s->args, s->keys, NOTHING_WRITTEN) ? NULL : given;
    spirt_kernel_sqdist(ex, &s->args, s->dist);
    return atomic_load(&s->args.nonfinite) ? (fail_nonfinite(job, s), NULL) : s->dist;
}

static int run_krum(SpirtJob *job, AggState *s, const SpirtExec *ex) {
    SpirtAggArgs *a = &s->args;
    const double *dist = krum_distances(job, s, ex);
    if (dist == NULL) return -1;
    spirt_krum_order(dist, a->n, (size_t)s->opt.f, s->scores, s->row, s->selected);
    s->nselected = (size_t)s->opt.m;

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
    {"mean", OPT_WEIGHTS, 0, 0, check_any, run_mean},
    {"median", 0, 0, 0, check_any, run_median},
    {"trimmed_mean", OPT_B, OPT_B, 0, check_trimmed, run_trimmed},
    {"krum", OPT_F, OPT_F, SPIRT_NEEDS(SPIRT_STAT_SQDIST), check_krum, run_krum},
    {"multikrum", OPT_F | OPT_M, OPT_F, SPIRT_NEEDS(SPIRT_STAT_SQDIST), check_multikrum, run_krum},
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
    for (int i = 0; i < SPIRT_NSTATS; i++) RedisModule_Free(s->opt.stats[i]);
    RedisModule_Free(s->args.inputs);
    spirt_keys_free(s->keys, s->args.n);
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
        if (s->opt.stats[SPIRT_STAT_SQDIST] == NULL) {
            s->args.dist = RedisModule_Alloc(spirt_sqdist_slices(s->args.nelem, n) * n * n * sizeof(double));
            s->dist = RedisModule_Alloc(n * n * sizeof(double));
        }
        s->scores = RedisModule_Alloc(n * sizeof(double));
        s->row = RedisModule_Alloc(n * sizeof(double));
        s->selected = RedisModule_Alloc(n * sizeof(size_t));
    }
}

/* ---- argument parsing ---- */

/* WEIGHTS w1..wn at argv[0..n); replies and returns -1 if unusable. */
static int parse_weights(RedisModuleCtx *ctx, size_t n, RedisModuleString **argv, int argc,
                         AggOptions *o) {
    if ((size_t)argc < n)
        return spirt_reply_errorf(ctx, "ERR WEIGHTS needs one weight per input (%zu)", n), -1;
    o->weights = RedisModule_Alloc(n * sizeof(double));
    double total = 0;
    for (size_t k = 0; k < n; k++) {
        double w;
        if (spirt_parse_finite(argv[k], &w) != 0 || w < 0)
            return spirt_reply_errorf(ctx, "ERR WEIGHTS must be finite and non-negative"), -1;
        o->weights[k] = w;
        total += w;
    }
    if (!(total > 0)) return spirt_reply_errorf(ctx, "ERR WEIGHTS must not all be zero"), -1;
    if (!isfinite(total) || total < DBL_MIN)
        return spirt_reply_errorf(ctx, "ERR WEIGHTS must sum to a finite, normal number"), -1;
    return 0;
}

/* GIVEN stat numbers, at argv[0..3): a statistic the rule needs, summed
 * from every shard's SPIRT.STATISTIC. Replies and returns -1 if unusable. */
static int parse_given(RedisModuleCtx *ctx, const AggRule *rule, size_t n,
                       RedisModuleString **argv, int argc, AggOptions *o) {
    char known[128];
    size_t len;
    if (argc < 3) return spirt_reply_errorf(ctx, "ERR GIVEN needs a statistic and its numbers"), -1;
    const char *word = RedisModule_StringPtrLen(argv[1], &len);
    int stat = spirt_stat_find(argv[1]);
    if (stat < 0) {
        spirt_stat_known(known, sizeof(known));
        return spirt_reply_errorf(ctx, "ERR unknown statistic '%.*s'; known statistics: %s",
                                  (int)(len > 32 ? 32 : len), word, known), -1;
    }
    if (!(rule->needs & SPIRT_NEEDS(stat)))
        return spirt_reply_errorf(ctx, "ERR rule %s does not need %s; GIVEN does not apply",
                                  rule->name, spirt_stat_name(stat)), -1;
    if (o->stats[stat])
        return spirt_reply_errorf(ctx, "ERR GIVEN %s given twice", spirt_stat_name(stat)), -1;
    o->stats[stat] = spirt_stat_parse(ctx, stat, argv[2], n);
    return o->stats[stat] ? 0 : -1;
}

static unsigned option_bit(const RedisModuleString *arg) {
    static const struct {
        const char *name;
        unsigned bit;
    } NAMES[] = {{"WEIGHTS", OPT_WEIGHTS}, {"F", OPT_F}, {"M", OPT_M}, {"B", OPT_B}};
    for (size_t k = 0; k < sizeof(NAMES) / sizeof(NAMES[0]); k++)
        if (spirt_arg_is(arg, NAMES[k].name)) return NAMES[k].bit;
    return 0;
}

/* One option at argv[0]; returns how many arguments it took, or -1 after replying. */
static int parse_option(RedisModuleCtx *ctx, const AggRule *rule, size_t n,
                        RedisModuleString **argv, int argc, AggOptions *o) {
    size_t len;
    const char *word = RedisModule_StringPtrLen(argv[0], &len);
    if (spirt_arg_is(argv[0], "GIVEN")) return parse_given(ctx, rule, n, argv, argc, o) ? -1 : 3;
    unsigned bit = option_bit(argv[0]);
    if (bit == 0 || !(rule->options & bit))
        return spirt_reply_errorf(ctx, "ERR option '%.*s' does not apply to rule %s", (int)(len > 32 ? 32 : len), word, rule->name), -1;
    if (o->given & bit) return spirt_reply_errorf(ctx, "ERR option %.*s given twice", (int)len, word), -1;
    o->given |= bit;
    if (bit == OPT_WEIGHTS) return parse_weights(ctx, n, argv + 1, argc - 1, o) ? -1 : 1 + (int)n;
    long long v;
    long long lo = bit == OPT_M ? 1 : 0;
    if (argc < 2 || spirt_parse_int(argv[1], lo, INT32_MAX, &v) != 0)
        return spirt_reply_errorf(ctx, "ERR %s needs an integer >= %lld", word, lo), -1;
    if (bit == OPT_F) o->f = v;
    else if (bit == OPT_M) o->m = v;
    else o->b = v;
    return 2;
}

static int parse_options(RedisModuleCtx *ctx, const AggRule *rule, size_t n,
                         RedisModuleString **argv, int argc, AggOptions *o) {
    for (int i = 0, took; i < argc; i += took)
        if ((took = parse_option(ctx, rule, n, argv + i, argc - i, o)) < 0) return -1;
    unsigned missing = rule->required & ~o->given;
    if (missing)
        return spirt_reply_errorf(ctx, "ERR rule %s needs option %s", rule->name,
                                  missing & OPT_F ? "F" : "B"), -1;
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
    size_t n;
    const AggRule *rule = find_rule(argv[2]);
    if (rule == NULL) {
        size_t len;
        const char *name = RedisModule_StringPtrLen(argv[2], &len);
        known_rules(rules, sizeof(rules));
        spirt_reply_errorf(ctx, "ERR unknown aggregation rule '%.*s'; known rules: %s",
                           (int)(len > 32 ? 32 : len), name, rules);
        return NULL;
    }
    if (spirt_inputs_count(ctx, argv, argc, 3, "the rule name", &n) != 0) return NULL;
    AggState *s = RedisModule_Calloc(1, sizeof(*s));
    s->rule = rule;
    s->args.n = n;
    if (parse_options(ctx, rule, n, argv + 5 + n, argc - 5 - (int)n, &s->opt) != 0) {
        free_state(s);
        return NULL;
    }
    if (rule->check(n, &s->opt, err, sizeof(err)) != 0) {
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
    s->keys = spirt_keys_copy(argv + 5, s->args.n);
    const SpirtTensor *first =
        spirt_inputs_hold(ctx, job, argv + 5, s->args.n, "aggregation needs", &s->args);
    if (first == NULL) {
        spirt_job_free(job);
        return REDISMODULE_OK;
    }
    SpirtTensor *out = spirt_tensor_new_like(first, 0);
    if (out == NULL) {
        spirt_job_free(job);
        return spirt_reply_errorf(ctx, "ERR the result would exceed MAX_TENSOR_BYTES");
    }
    s->args.out = out->buf->data;
    alloc_scratch(s);
    spirt_job_add_output(job, argv[1], out, 1, dst_stamp);
    job->work_bytes += out->buf->nbytes;
    return spirt_job_dispatch(ctx, job);
}
