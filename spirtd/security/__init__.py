"""Certificates and identities: a cluster CA, node and client certificates,
revocation lists, and what a certificate says about who is calling."""
