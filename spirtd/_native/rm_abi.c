#include "rm_abi.h"

#include <stdio.h>

#define SPIRT_RM_DEFINE(ret, name, params) ret(*RedisModule_##name) params = NULL;
SPIRT_RM_FUNCTIONS(SPIRT_RM_DEFINE)
#undef SPIRT_RM_DEFINE

typedef int (*GetApiFunc)(const char *name, void *target);

int rm_abi_init(RedisModuleCtx *ctx, const char *name, int version) {
    /* The API lookup function is the first pointer stored in the context. */
    GetApiFunc get_api = (GetApiFunc)((void **)ctx)[0];
    const char *missing = NULL;

#define SPIRT_RM_RESOLVE(ret, fname, params)                                              \
    if (get_api("RedisModule_" #fname, (void *)&RedisModule_##fname) != REDISMODULE_OK && \
        missing == NULL)                                                                  \
        missing = "RedisModule_" #fname;
    SPIRT_RM_FUNCTIONS(SPIRT_RM_RESOLVE)
#undef SPIRT_RM_RESOLVE

    if (missing != NULL) {
        /* Without Log we can only write to stderr, which Redis keeps. */
        if (RedisModule_Log != NULL)
            RedisModule_Log(ctx, "warning",
                            "spirt: this Redis lacks %s; spirt needs Redis >= 6.2", missing);
        else
            fprintf(stderr, "spirt: this Redis lacks %s; spirt needs Redis >= 6.2\n", missing);
        return REDISMODULE_ERR;
    }
    RedisModule_SetModuleAttribs(ctx, name, version, REDISMODULE_APIVER_1);
    return REDISMODULE_OK;
}
