/* Whole-vector statistics of n inputs (spirtd.aggregation.statistics): what
 * a rule comparing whole inputs needs (Krum: the pairwise distances). Each
 * is a sum over coordinates, so a peer holding one shard of the vectors
 * computes its shard's part (SPIRT.STATISTIC), and the parts summed over
 * every shard go back to SPIRT.AGGREGATE as GIVEN. The names follow
 * spirtd.aggregation.Statistic; tests/module/test_statistic.py checks. */
#ifndef SPIRT_STATISTIC_H
#define SPIRT_STATISTIC_H

#include <stddef.h>

#include "rm_abi.h"

typedef enum { SPIRT_STAT_SQDIST = 0, SPIRT_NSTATS } SpirtStat;

/* A rule's set of statistics it needs. */
#define SPIRT_NEEDS(stat) (1u << (stat))

/* A statistic of every pair costs n^2 doubles; the same limit as
 * spirtd.aggregation.statistics.MAX_INPUTS. */
#define SPIRT_STAT_MAX_INPUTS 1024

/* The statistic named by arg (ignoring case), or -1. */
int spirt_stat_find(const RedisModuleString *arg);
const char *spirt_stat_name(int stat);
/* Every statistic's name, comma separated, for error messages. */
void spirt_stat_known(char *buf, size_t cap);

/* A statistic given for n inputs, as its bytes (its doubles, little-endian,
 * row-major; every one finite), copied into a new array the caller frees.
 * NULL after replying the problem. */
double *spirt_stat_parse(RedisModuleCtx *ctx, int stat, const RedisModuleString *blob, size_t n);

#endif
