"""Peer-to-peer rounds (issue 10, under construction): how the peers of a
job agree on a round's participants with no coordinator, exchange their
local aggregates (reduce-scatter, then all-gather) and check that they all
hold the same model. The pure pieces come first: formulas.py."""
