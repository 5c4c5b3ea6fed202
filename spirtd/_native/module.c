/* spirt: a Redis module for tensors that speaks RedisAI's tensor protocol
 * and adds in-database aggregation (SPIRT.AGGREGATE, SPIRT.STATISTIC), optimizer steps
 * (SPIRT.SGD, SPIRT.ADAM), chunked transfer and digests. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"

#define SPIRT_MODULE_NAME "spirt"
#define SPIRT_MODULE_VERSION 100 /* 0.1.0 */

SpirtConfig spirt_config;

static size_t half_of_ram(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || size <= 0) return (size_t)1 << 30;
    return (size_t)pages * (size_t)size / 2;
}

static int parse_load_args(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    spirt_config.threads = cpus > 0 ? (int)(cpus < SPIRT_MAX_THREADS ? cpus : SPIRT_MAX_THREADS) : 1;
    spirt_config.max_tensor_bytes = half_of_ram();
    spirt_config.inline_bytes = SPIRT_DEFAULT_INLINE_BYTES;
    for (int i = 0; i < argc; i += 2) {
        long long v;
        size_t len;
        const char *name = RedisModule_StringPtrLen(argv[i], &len);
        int ok = i + 1 < argc;
        if (ok && spirt_arg_is(argv[i], "THREADS"))
            ok = spirt_parse_int(argv[i + 1], 1, SPIRT_MAX_THREADS, &v) == 0 && (spirt_config.threads = (int)v);
        else if (ok && spirt_arg_is(argv[i], "MAX_TENSOR_BYTES"))
            ok = spirt_parse_int(argv[i + 1], 1, INT64_MAX, &v) == 0 && (spirt_config.max_tensor_bytes = (size_t)v);
        else if (ok && spirt_arg_is(argv[i], "INLINE_BYTES"))
            ok = spirt_parse_int(argv[i + 1], 0, INT64_MAX, &v) == 0 && ((spirt_config.inline_bytes = (size_t)v), 1);
        else
            ok = 0;
        if (!ok) {
            RedisModule_Log(ctx, "warning",
                            "spirt: bad load argument '%.*s': expected THREADS n (1-%d), "
                            "MAX_TENSOR_BYTES n or INLINE_BYTES n",
                            (int)(len > 64 ? 64 : len), name, SPIRT_MAX_THREADS);
            return REDISMODULE_ERR;
        }
    }
    return REDISMODULE_OK;
}

static void info(RedisModuleInfoCtx *ctx, int for_crash_report) {
    (void)for_crash_report;
    SpirtPoolStats s = spirt_pool_stats();
    RedisModule_InfoAddSection(ctx, "pool");
    RedisModule_InfoAddFieldLongLong(ctx, "threads", s.threads);
    RedisModule_InfoAddFieldLongLong(ctx, "jobs_queued", (long long)s.queued);
    RedisModule_InfoAddFieldLongLong(ctx, "jobs_done", (long long)s.done);
    RedisModule_InfoAddFieldLongLong(ctx, "max_tensor_bytes", (long long)spirt_config.max_tensor_bytes);
    RedisModule_InfoAddFieldLongLong(ctx, "inline_bytes", (long long)spirt_config.inline_bytes);
}

static const struct {
    const char *name;
    RedisModuleCmdFunc fn;
    const char *flags;
    int first, last, step;
} COMMANDS[] = {
    {"AI.TENSORSET", spirt_cmd_tensorset, "write deny-oom", 1, 1, 1},
    {"AI.TENSORGET", spirt_cmd_tensorget, "readonly", 1, 1, 1},
    {"SPIRT.TENSORWRITE", spirt_cmd_tensorwrite, "write deny-oom", 1, 1, 1},
    {"SPIRT.TENSORREAD", spirt_cmd_tensorread, "readonly", 1, 1, 1},
    {"SPIRT.DIGEST", spirt_cmd_digest, "readonly", 1, 1, 1},
    {"SPIRT.AGGREGATE", spirt_cmd_aggregate, "write deny-oom getkeys-api", 1, 1, 1},
    {"SPIRT.STATISTIC", spirt_cmd_statistic, "readonly", 4, -1, 1},
    {"SPIRT.SGD", spirt_cmd_sgd, "write deny-oom getkeys-api", 1, 2, 1},
    {"SPIRT.ADAM", spirt_cmd_adam, "write deny-oom getkeys-api", 1, 2, 1},
};

__attribute__((visibility("default"))) int RedisModule_OnLoad(RedisModuleCtx *ctx,
                                                              RedisModuleString **argv, int argc) {
    if (rm_abi_init(ctx, SPIRT_MODULE_NAME, SPIRT_MODULE_VERSION) != REDISMODULE_OK)
        return REDISMODULE_ERR;
    if (parse_load_args(ctx, argv, argc) != REDISMODULE_OK) return REDISMODULE_ERR;
    RedisModule_SetModuleOptions(ctx, REDISMODULE_OPTIONS_HANDLE_IO_ERRORS);
    if (spirt_tensor_type_register(ctx) != REDISMODULE_OK) {
        RedisModule_Log(ctx, "warning", "spirt: cannot register type AI_TENSOR (is RedisAI loaded?)");
        return REDISMODULE_ERR;
    }
    for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++) {
        if (RedisModule_CreateCommand(ctx, COMMANDS[i].name, COMMANDS[i].fn, COMMANDS[i].flags,
                                      COMMANDS[i].first, COMMANDS[i].last,
                                      COMMANDS[i].step) != REDISMODULE_OK) {
            RedisModule_Log(ctx, "warning", "spirt: cannot register %s (is RedisAI loaded?)",
                            COMMANDS[i].name);
            return REDISMODULE_ERR;
        }
    }
    RedisModule_RegisterInfoFunc(ctx, info);
    if (spirt_pool_start(spirt_config.threads, spirt_job_body) != 0) {
        RedisModule_Log(ctx, "warning", "spirt: cannot start worker threads");
        return REDISMODULE_ERR;
    }
    RedisModule_Log(ctx, "notice", "spirt %d loaded: %d threads, MAX_TENSOR_BYTES %zu",
                    SPIRT_MODULE_VERSION, spirt_config.threads, spirt_config.max_tensor_bytes);
    return REDISMODULE_OK;
}
