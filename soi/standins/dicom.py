"""A DICOM storage stand-in: a pynetdicom Storage SCP that keeps what it receives.

Used by ``soi demo`` as the PACS when Orthanc is not installed. It is not a PACS: it
accepts every storage SOP class in every transfer syntax from any calling AE on
the loopback address, writes each data set as a DICOM file named after its SOP
Instance UID (the same UID received twice is one file) and counts them.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Self

from pydicom import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.transport import ThreadedAssociationServer

from soi.standins._net import LOOPBACK

__all__ = ["DicomReceiver"]

_SUCCESS = 0x0000
_CANNOT_UNDERSTAND = 0xC000


class DicomReceiver:
    """Storage SCP on the loopback address, writing received instances to ``store_dir``.

    Parameters
    ----------
    store_dir:
        Folder for the received files (created).
    ae_title:
        The receiver's AE title.
    port:
        TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
    """

    label = "Soi DICOM stand-in receiver (a storage SCP, not a PACS)"

    def __init__(self, store_dir: Path, *, ae_title: str = "DEMO_PACS", port: int = 0) -> None:
        self.store_dir = Path(store_dir)
        self.ae_title = ae_title
        self.host = LOOPBACK
        self.port = port
        self._modalities: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server: ThreadedAssociationServer | None = None

    def start(self) -> Self:
        """Start listening."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ae = AE(ae_title=self.ae_title)
        for context in AllStoragePresentationContexts:
            if context.abstract_syntax is not None:
                ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.maximum_pdu_size = 0
        server = ae.start_server(
            (self.host, self.port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
        )
        assert server is not None  # a non-blocking start returns the server
        self._server = server
        self.port = int(server.server_address[1])
        return self

    def stop(self) -> None:
        """Stop listening (associations in progress are closed)."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def counts(self) -> dict[str, int]:
        """Instances held, by modality (``SR``, ``OT``, ``DOC``...)."""
        with self._lock:
            return dict(Counter(self._modalities.values()))

    def files(self) -> list[Path]:
        """The files received, one per SOP Instance UID."""
        with self._lock:
            return [self.store_dir / f"{uid}.dcm" for uid in sorted(self._modalities)]

    def _on_store(self, event: evt.Event) -> int | Dataset:
        try:
            dataset = event.dataset
            dataset.file_meta = event.file_meta
            uid = str(dataset.SOPInstanceUID)
        except (AttributeError, ValueError, KeyError) as exc:
            status = Dataset()
            status.Status = _CANNOT_UNDERSTAND
            status.ErrorComment = f"cannot read the data set: {exc}"[:64]
            return status
        if not uid.replace(".", "").isdigit():
            status = Dataset()
            status.Status = _CANNOT_UNDERSTAND
            status.ErrorComment = "SOP Instance UID is not a UID"
            return status
        path = self.store_dir / f"{uid}.dcm"
        temporary = path.with_suffix(".part")
        dataset.save_as(temporary, enforce_file_format=True)
        temporary.replace(path)
        with self._lock:
            self._modalities[uid] = str(dataset.get("Modality", "") or "?")
        return _SUCCESS
