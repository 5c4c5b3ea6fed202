"""gRPC plumbing shared by the daemon's services and clients: mutual-TLS
credentials, the authentication/authorization interceptor, refusal counters,
and the observer of TLS handshakes that gRPC refuses before any code of ours
runs."""
