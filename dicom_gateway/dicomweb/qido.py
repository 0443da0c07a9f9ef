"""QIDO-RS: searching studies, series and instances; results in the DICOM JSON model.

Matching runs in SQL on indexed columns, within the caller's facilities only (see
:mod:`dicom_gateway.dicomweb.qido_params` for the checked parameters). Counts,
modalities and URLs come from the index; the other result attributes from the
header of the study's or series' first instance, or of the instance itself.

References
----------
DICOM PS3.18 sections 8.3.4.4 (paging), 10.6.3 (Search response), Annex F.2 (DICOM
JSON model).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog
from pydicom import Dataset
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.uid import UID
from sqlalchemy.orm import Session

from dicom_gateway.dicomweb.attributes import (
    LEVEL_ATTRIBUTES,
    RESULT_ATTRIBUTES,
    Level,
    empty_element,
    json_dataset,
    read_header,
)
from dicom_gateway.dicomweb.errors import ResourceNotFoundError
from dicom_gateway.dicomweb.qido_params import SearchRequest
from store import (
    Database,
    FileStoreError,
    InstanceFileStore,
    Series,
    SeriesQuery,
    Study,
    StudyQuery,
    count_matches,
    search_instances,
    search_series,
    search_studies,
)

__all__ = ["DEFAULT_MAX_RESULTS", "QidoService", "SearchResult"]

_log = structlog.get_logger("soi.dicomweb.qido")

#: The most results one response holds (PS3.18 8.3.4.4.1 maxResults).
DEFAULT_MAX_RESULTS = 1000
_CHARACTER_SET = "ISO_IR 192"  # JSON text is Unicode
_COUNTS = ("NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")
_PREAMBLE = 128
#: ``DICM``, then (0002,0000) UL of length 4: the File Meta Information Group Length.
_META_START = b"DICM\x02\x00\x00\x00UL\x04\x00"
_META_VALUE = _PREAMBLE + 12
_DEFER_BYTES = 1024
#: How much of each file of a page is read ahead: the header of most instances.
_PREFETCH_BYTES = 16384
#: Attributes whose values come from the index whatever the header says.
_FROM_INDEX = ("ModalitiesInStudy", *_COUNTS, "NumberOfSeriesRelatedInstances")
#: Attributes made by the service or taken from the index, never read from a header.
_COMPUTED = frozenset({"SpecificCharacterSet", "RetrieveURL", "InstanceAvailability", *_FROM_INDEX})


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Matches in the DICOM JSON model, the ``Warning`` texts of the response, and
    whose data was shown (for the audit log)."""

    items: list[dict[str, Any]]
    warnings: tuple[str, ...] = ()
    study_instance_uids: tuple[str, ...] = ()
    patient_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class _Row:
    study: Study
    series: Series | None
    instance_uid: str
    file_path: str
    transfer_syntax_uid: str
    values: dict[str, object]


def _study_values(study: Study) -> dict[str, object]:
    return {
        "StudyInstanceUID": study.study_instance_uid,
        "StudyDate": study.study_date,
        "StudyTime": study.study_time,
        "AccessionNumber": study.accession_number,
        "StudyDescription": study.study_description,
        "PatientName": study.patient.name,
        "PatientBirthDate": study.patient.birth_date,
        "PatientSex": study.patient.sex,
        "ModalitiesInStudy": [m for m in study.modalities.split("\\") if m],
    }


def _series_values(series: Series) -> dict[str, object]:
    return {
        "SeriesInstanceUID": series.series_instance_uid,
        "Modality": series.modality,
        "SeriesNumber": series.series_number,
        "SeriesDescription": series.series_description,
        "BodyPartExamined": series.body_part_examined,
    }


class QidoService:
    """Answers QIDO-RS searches.

    Parameters
    ----------
    database:
        The index.
    files:
        The instance files, whose headers give the attributes the index lacks.
    max_results:
        The most results in one response; more are announced in a ``Warning``.
    """

    def __init__(
        self,
        *,
        database: Database,
        files: InstanceFileStore,
        max_results: int = DEFAULT_MAX_RESULTS,
    ) -> None:
        if max_results < 1:
            raise ValueError(f"`max_results` must be a positive number, {max_results} is given")
        self.database = database
        self.files = files
        self.max_results = max_results

    def search(
        self, request: SearchRequest, *, facility_ids: Collection[int] | None, base_url: str
    ) -> SearchResult:
        """Run a checked search for a caller who may see ``facility_ids`` (``None``: all).

        Raises
        ------
        ResourceNotFoundError
            The study or series named in the path does not exist, or belongs to a
            facility the caller may not see.
        """
        studies = replace(request.studies, facility_ids=facility_ids)
        series = request.series
        contradicted = False
        if request.study_instance_uid is not None:
            wanted = studies.study_instance_uids
            contradicted |= bool(wanted) and request.study_instance_uid not in wanted
            studies = replace(studies, study_instance_uids=(request.study_instance_uid,))
        if request.series_instance_uid is not None:
            wanted = series.series_instance_uids
            contradicted |= bool(wanted) and request.series_instance_uid not in wanted
            series = replace(series, series_instance_uids=(request.series_instance_uid,))
        limit = self.max_results if request.limit is None else min(request.limit, self.max_results)
        capped = request.limit is None or request.limit > self.max_results
        with self.database.read() as session:
            self._check_path(session, request, facility_ids)
            rows: list[_Row] = []
            if not contradicted and limit > 0:
                rows = self._rows(session, request, studies, series, limit + int(capped))
            warnings = list(request.warnings)
            if len(rows) > limit:
                rows = rows[:limit]
                level_series = series if request.level != Level.STUDY else None
                level_instances = request.instances if request.level == Level.INSTANCE else None
                total = count_matches(
                    session, studies=studies, series=level_series, instances=level_instances
                )
                remaining = max(0, total - request.offset - limit)
                warnings.append(f"There are {remaining} additional results that can be requested")
        items = self._items(rows, request, base_url)
        return SearchResult(
            items=items,
            warnings=tuple(warnings),
            study_instance_uids=tuple(dict.fromkeys(r.study.study_instance_uid for r in rows)),
            patient_ids=tuple(dict.fromkeys(r.study.patient_id for r in rows)),
        )

    def _check_path(
        self, session: Session, request: SearchRequest, facility_ids: Collection[int] | None
    ) -> None:
        if request.study_instance_uid is None:
            return
        scope = StudyQuery(
            facility_ids=facility_ids, study_instance_uids=(request.study_instance_uid,)
        )
        if not search_studies(session, scope, limit=1):
            raise ResourceNotFoundError(f"no study {request.study_instance_uid}")
        if request.series_instance_uid is None:
            return
        series_scope = SeriesQuery(series_instance_uids=(request.series_instance_uid,))
        if not search_series(session, studies=scope, series=series_scope, limit=1):
            raise ResourceNotFoundError(
                f"no series {request.series_instance_uid} in study {request.study_instance_uid}"
            )

    def _rows(
        self,
        session: Session,
        request: SearchRequest,
        studies: StudyQuery,
        series: SeriesQuery,
        limit: int,
    ) -> list[_Row]:
        offset = request.offset
        if request.level == Level.STUDY:
            return [
                _Row(
                    study=match.study,
                    series=None,
                    instance_uid="",
                    file_path=match.file_path,
                    transfer_syntax_uid=match.transfer_syntax_uid,
                    values={
                        **_study_values(match.study),
                        "NumberOfStudyRelatedSeries": match.number_of_series,
                        "NumberOfStudyRelatedInstances": match.study.num_instances,
                    },
                )
                for match in search_studies(session, studies, limit=limit, offset=offset)
            ]
        if request.level == Level.SERIES:
            return [
                _Row(
                    study=match.study,
                    series=match.series,
                    instance_uid="",
                    file_path=match.file_path,
                    transfer_syntax_uid=match.transfer_syntax_uid,
                    values={
                        **_study_values(match.study),
                        **_series_values(match.series),
                        "NumberOfSeriesRelatedInstances": match.number_of_instances,
                    },
                )
                for match in search_series(
                    session, studies=studies, series=series, limit=limit, offset=offset
                )
            ]
        matches = search_instances(
            session,
            studies=studies,
            series=series,
            instances=request.instances,
            limit=limit,
            offset=offset,
        )
        return [
            _Row(
                study=match.study,
                series=match.series,
                instance_uid=match.instance.sop_instance_uid,
                file_path=match.instance.file_path,
                transfer_syntax_uid=match.instance.transfer_syntax_uid,
                values={
                    **_study_values(match.study),
                    **_series_values(match.series),
                    "SOPInstanceUID": match.instance.sop_instance_uid,
                    "SOPClassUID": match.instance.sop_class_uid,
                    "InstanceNumber": match.instance.instance_number,
                    "Rows": match.instance.rows,
                    "Columns": match.instance.columns,
                    "NumberOfFrames": match.instance.number_of_frames,
                },
            )
            for match in matches
        ]

    def _wanted(self, request: SearchRequest) -> list[tuple[str, int, str]]:
        """Keyword, tag and VR of each attribute the results of ``request`` carry."""
        level = request.level
        wanted = list(RESULT_ATTRIBUTES[level])
        upper: list[Level] = []
        if level != Level.STUDY and request.study_instance_uid is None:
            upper.append(Level.STUDY)
        if level == Level.INSTANCE and request.series_instance_uid is None:
            upper.append(Level.SERIES)
        for other in upper:
            wanted += [
                keyword
                for keyword in RESULT_ATTRIBUTES[other]
                if keyword != "RetrieveURL" and not keyword.startswith("NumberOf")
            ]
        wanted += request.requested
        if request.include_all:
            for each in (level, *upper):
                wanted += LEVEL_ATTRIBUTES[each]
        resolved: list[tuple[str, int, str]] = []
        for keyword in dict.fromkeys(wanted):
            tag = tag_for_keyword(keyword)
            if tag is not None:
                resolved.append((keyword, tag, dictionary_VR(tag)))
        return resolved

    def _items(
        self, rows: list[_Row], request: SearchRequest, base_url: str
    ) -> list[dict[str, Any]]:
        """The results in the DICOM JSON model: what the index holds, and the rest of
        the wanted attributes from the header of each row's file."""
        wanted = self._wanted(request)
        full = request.include_all and request.level == Level.INSTANCE
        requested = set(request.requested)
        from_header = [(keyword, tag) for keyword, tag, _ in wanted if keyword not in _COMPUTED]
        paths = self._paths(rows) if from_header or full else [None] * len(rows)
        items: list[dict[str, Any]] = []
        for row, path in zip(rows, paths, strict=True):
            computed = self._computed(row, base_url)
            header = self._header(row, path, None if full else from_header)
            dataset = Dataset()
            for keyword, tag, vr in wanted:
                value = computed.get(keyword)
                if value is not None:
                    dataset.add(DataElement(tag, vr, value))
                elif tag in header:
                    dataset.add(header[tag])
                elif row.values.get(keyword) not in (None, "", []):
                    dataset.add(DataElement(tag, vr, row.values[keyword]))
                elif keyword in requested:
                    empty_element(dataset, tag)
            if full:
                for element in header:
                    if element.tag not in dataset:
                        dataset.add(element)
            items.append(json_dataset(dataset))
        return items

    @staticmethod
    def _computed(row: _Row, base_url: str) -> dict[str, object]:
        """The attributes made by the service rather than read from a header."""
        url = f"{base_url}/studies/{row.study.study_instance_uid}"
        if row.series is not None:
            url = f"{url}/series/{row.series.series_instance_uid}"
        if row.instance_uid:
            url = f"{url}/instances/{row.instance_uid}"
        computed: dict[str, object] = {
            "SpecificCharacterSet": _CHARACTER_SET,
            "RetrieveURL": url,
            "InstanceAvailability": "ONLINE",
        }
        for keyword in _FROM_INDEX:
            if keyword in row.values:
                computed[keyword] = row.values[keyword]
        return computed

    def _paths(self, rows: list[_Row]) -> list[Path | None]:
        """Where each row's file lies, its first blocks asked of the disk all at once.

        A page of results reads as many files; those not in the page cache are then
        read from the disk in parallel rather than one after the other.
        """
        paths: list[Path | None] = []
        for row in rows:
            try:
                path = self.files.absolute(row.file_path) if row.file_path else None
            except FileStoreError as exc:
                _log.error("instance file outside the store", path=row.file_path, error=str(exc))
                path = None
            paths.append(path)
        if hasattr(os, "posix_fadvise"):
            for path in paths:
                if path is None:
                    continue
                try:
                    fd = os.open(path, os.O_RDONLY)
                except OSError:
                    continue  # reported when the header is read
                try:
                    os.posix_fadvise(fd, 0, _PREFETCH_BYTES, os.POSIX_FADV_WILLNEED)
                finally:
                    os.close(fd)
        return paths

    def _header(
        self, row: _Row, path: Path | None, wanted: list[tuple[str, int]] | None
    ) -> Dataset:
        """The header of ``row``'s file at ``path``: the ``wanted`` attributes (keyword
        and tag), or everything but the pixel data (``None``)."""
        if path is None or wanted == []:
            return Dataset()
        try:
            if wanted is not None:
                header = _read_data_set(path, row.transfer_syntax_uid, max(t for _, t in wanted))
                if header is not None:
                    return header
            return read_header(path, None if wanted is None else [k for k, _ in wanted])
        except (OSError, InvalidDicomError) as exc:
            _log.error("cannot read an instance header", path=row.file_path, error=str(exc))
            return Dataset()


def _read_data_set(path: Path, transfer_syntax_uid: str, last_tag: int) -> Dataset | None:
    """Read the data set of a file Soi wrote, up to ``last_tag``, without its File Meta
    Information; ``None`` when the file is not laid out as Soi writes it.

    Soi writes the preamble, ``DICM``, the File Meta Information Group Length (whose
    value is at bytes 140-143) and the group, in the index's transfer syntax. Skipping
    the group and stopping after the last wanted attribute reads a few hundred bytes
    of a file whatever its size, in a third of the time of :func:`read_header`.

    Raises
    ------
    OSError, InvalidDicomError
        The file cannot be read.
    """
    syntax = UID(transfer_syntax_uid)
    if not syntax.is_transfer_syntax or syntax.is_deflated or not syntax.is_little_endian:
        return None
    with path.open("rb") as stream:
        start = stream.read(_META_VALUE + 4)
        if start[_PREAMBLE : _PREAMBLE + 12] != _META_START:
            return None
        stream.seek(_META_VALUE + 4 + int.from_bytes(start[_META_VALUE:], "little"))
        try:
            return read_dataset(
                stream,
                syntax.is_implicit_VR,
                True,
                stop_when=lambda tag, vr, length: int(tag) > last_tag,
                defer_size=_DEFER_BYTES,
            )
        except (EOFError, ValueError, KeyError, TypeError) as exc:
            raise InvalidDicomError(f"{path.name}: {exc}") from exc
