"""The daemon's fixtures (certificates, running peers) for the training tests."""

from tests.daemon.conftest import certs, peers  # noqa: F401
