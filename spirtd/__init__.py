"""spirtd: fault-tolerant, secure peer-to-peer ML training with in-database
tensor aggregation, after SPIRT (Barrak et al., 2023)."""

__version__ = "0.1.0"
