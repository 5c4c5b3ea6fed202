/* Load-time settings: `--loadmodule spirt.so [THREADS n] [MAX_TENSOR_BYTES n]
 * [INLINE_BYTES n]`. */
#ifndef SPIRT_CONFIG_H
#define SPIRT_CONFIG_H

#include <stddef.h>

typedef struct SpirtConfig {
    /* Threads that run heavy commands (one drives jobs, the rest help split
     * each vector). Default: the number of online CPUs. */
    int threads;
    /* Refuse tensors bigger than this, so that no command can make Redis
     * allocate more memory than the machine has. Default: half of RAM. */
    size_t max_tensor_bytes;
    /* Jobs that touch fewer bytes run inline on the main thread: below this
     * the blocked-client round trip costs more than the work. */
    size_t inline_bytes;
} SpirtConfig;

extern SpirtConfig spirt_config;

#define SPIRT_MAX_THREADS 256
#define SPIRT_DEFAULT_INLINE_BYTES ((size_t)256 << 10)

#endif
