"""Soi's reports: DICOM SR, secondary captures, PDF, FHIR R4, HL7 v2, and the outbox.

Depends on :mod:`store`.
"""

__all__: list[str] = []
