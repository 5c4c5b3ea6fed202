"""What a training job computes: models rebuilt from a small spec
(spirtd.ml.models), datasets loaded deterministically with the minibatch
for (seed, epoch, index) computable by any process (spirtd.ml.datasets),
and the worker handler that turns parameters into a gradient
(spirtd.ml.gradient), with its contract in spirtd.ml.tasks. Stateless gradient workers rely on all three."""
