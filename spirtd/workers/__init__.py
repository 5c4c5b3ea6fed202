"""The serverless worker pool: stateless function invocations as processes
(warm or cold), with time and memory limits and retries. It knows nothing
of training: a handler is named by "package.module:function", requests and
replies are small JSON objects."""
