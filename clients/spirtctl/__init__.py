"""spirtctl: talk to a running spirtd over mutual-TLS gRPC (its Control service)."""
