"""High-availability tests: dtr replicas behind nginx or HAProxy (``tests.ha.balancers``), on one
PostgreSQL and one object store (Swift's S3 API: ``swift_server``, shared with tests/storage), and
the real clients of tests/clients."""

from __future__ import annotations

from tests.clients.conftest import busybox, docker_engine, oci_layout, skopeo, umoci, unique  # noqa: F401
from tests.storage.conftest import swift_server  # noqa: F401
