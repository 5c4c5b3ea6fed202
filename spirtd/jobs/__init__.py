"""Training jobs: their specs, records and retention (manager), and one
job's rounds on this peer (runner): gradients from worker invocations,
aggregation and the optimizer step in the store, one commit per round."""
