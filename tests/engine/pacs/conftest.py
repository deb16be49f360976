"""Fixtures of the DICOM networking tests: a real Orthanc (module-scoped, started and stopped here) and data."""

from tests.engine.pacs.orthanc_fixtures import ct_series, listener_port, orthanc  # noqa: F401 (fixtures)
