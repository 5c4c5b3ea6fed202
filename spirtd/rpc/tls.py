"""Mutual-TLS credentials for the server and for channels to peers."""

from __future__ import annotations

import grpc

from spirtd.security.certsdir import Credentials


def server_credentials(own: Credentials, ca_pem: bytes) -> grpc.ServerCredentials:
    """Presents own certificate; requires and verifies the caller's against the CA."""
    return grpc.ssl_server_credentials(
        [(own.key_pem, own.cert_pem)], root_certificates=ca_pem, require_client_auth=True
    )


def channel_credentials(own: Credentials, ca_pem: bytes) -> grpc.ChannelCredentials:
    """Presents own certificate; verifies the server's against the CA."""
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=own.key_pem, certificate_chain=own.cert_pem
    )


def verify_as(peer_id: str | None) -> list[tuple[str, str]]:
    """Channel options that check the server's certificate is made out to
    peer_id (a DNS name in every peer certificate) whatever address it is
    dialled at. Without an id, the certificate must name the dialled host."""
    return [("grpc.ssl_target_name_override", peer_id)] if peer_id else []
