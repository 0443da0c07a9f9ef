"""Stand-in receiving systems for ``soi demo``: real servers, labelled as stand-ins.

A PACS (Orthanc when installed, else :class:`DicomReceiver`), an EMR
(:class:`FhirReceiver`, FHIR R4) and a legacy HIS (:class:`MllpReceiver`, HL7 v2 over
MLLP), each on a loopback port. They receive and answer as the real systems do, and
keep what they receive so that a person, or a test, can look at it.
"""

from soi.standins._net import LOOPBACK, free_port
from soi.standins.dicom import DicomReceiver
from soi.standins.fhir import FhirReceiver
from soi.standins.mllp import MllpReceiver
from soi.standins.orthanc import OrthancError, OrthancPacs, find_orthanc

__all__ = [
    "LOOPBACK",
    "DicomReceiver",
    "FhirReceiver",
    "MllpReceiver",
    "OrthancError",
    "OrthancPacs",
    "find_orthanc",
    "free_port",
]
