"""What a training job is made of: models rebuilt from a small spec
(spirtd.train.models) and datasets loaded deterministically, with the
minibatch for (seed, epoch, index) computable by any process
(spirtd.train.datasets). Stateless gradient workers rely on both."""
