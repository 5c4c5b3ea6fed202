from tests.daemon.conftest import certs, peers  # noqa: F401 - the same real peers and certificates
