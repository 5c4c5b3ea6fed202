/* Command handlers, registered in module.c. */
#ifndef SPIRT_COMMANDS_H
#define SPIRT_COMMANDS_H

#include "job.h"
#include "rm_abi.h"
#include "tensor.h"
#include "util.h"

/* tensor_cmds.c: RedisAI-compatible tensors and chunked access */
int spirt_cmd_tensorset(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int spirt_cmd_tensorget(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int spirt_cmd_tensorwrite(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int spirt_cmd_tensorread(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

/* digest.c */
int spirt_cmd_digest(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

/* aggregate.c */
int spirt_cmd_aggregate(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

/* statistic.c: a whole-vector statistic's part for a shard of the vectors */
int spirt_cmd_statistic(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

/* optim.c: in-database optimizer steps */
int spirt_cmd_sgd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int spirt_cmd_adam(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

#endif
