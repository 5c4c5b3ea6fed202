"""Certificates and running peers for the deployment tests."""

from tests.daemon.conftest import certs, peers  # noqa: F401
