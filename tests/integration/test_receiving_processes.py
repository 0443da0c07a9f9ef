"""``soi serve`` receives on several processes that share its DICOM and HTTP ports.

The first process binds the ports and starts the others; each receiving process
must store what it receives durably, a dead one is replaced, and none outlives the
first process, even when that one is killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from pydicom.uid import generate_uid

from tests.support import storescu
from tests.support.data import make_cr, write_dataset
from tests.support.soi_process import SoiProcess

pytestmark = pytest.mark.slow

RECEIVERS = {"SOI_RECEIVING_PROCESSES": "2"}


def _receivers(soi: SoiProcess) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process(soi.pid).children()
        if "soi.server.receive" in " ".join(child.cmdline())
    ]


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s")
        time.sleep(0.2)


def _listening_ports(process: psutil.Process) -> set[int]:
    return {
        connection.laddr.port
        for connection in process.net_connections(kind="tcp")
        if connection.status == psutil.CONN_LISTEN
    }


def _study(folder: Path, count: int) -> list[Path]:
    study = generate_uid()
    series = generate_uid()
    return [
        write_dataset(
            make_cr(study_instance_uid=study, series_instance_uid=series, seed=index),
            folder / f"{index}.dcm",
        )
        for index in range(count)
    ]


#: No background writer in the first process, so that freezing it holds no database lock.
QUIET_FIRST = {**RECEIVERS, "SOI_WORKERS": "0", "SOI_ASSEMBLY_INTERVAL_SECONDS": "3600"}


def test_the_second_process_receives_alone_while_the_first_is_frozen(tmp_path: Path) -> None:
    with SoiProcess(tmp_path / "data", env=QUIET_FIRST) as soi:
        [receiver] = _receivers(soi)
        assert {soi.dicom_port, soi.http_port} <= _listening_ports(receiver)
        # The first process stops taking connections: every one goes to the other.
        os.kill(soi.pid, signal.SIGSTOP)
        try:
            run = storescu(
                _study(tmp_path / "files", 5),
                port=soi.dicom_port,
                called_aet=soi.ae_title,
                timeout=60,
            )
        finally:
            os.kill(soi.pid, signal.SIGCONT)
        assert [result.status for result in run.results] == [0x0000] * 5
        _wait_for(lambda: soi.studies()["total"] == 1)
        [study] = soi.studies()["items"]
        assert study["num_instances"] == 5


def test_a_dead_receiver_is_replaced_and_none_outlives_a_killed_server(tmp_path: Path) -> None:
    soi = SoiProcess(tmp_path / "data", env=RECEIVERS)
    soi.start()
    try:
        [first] = _receivers(soi)
        first.kill()
        first.wait(10)
        _wait_for(lambda: len(_receivers(soi)) == 1 and _receivers(soi)[0].pid != first.pid)
        [second] = _receivers(soi)
        _wait_for(lambda: {soi.dicom_port, soi.http_port} <= _listening_ports(second))
        run = storescu(_study(tmp_path / "files", 3), port=soi.dicom_port, called_aet=soi.ae_title)
        assert [result.status for result in run.results] == [0x0000] * 3
    finally:
        receivers = _receivers(soi) if soi.running else []
        soi.kill()
    assert receivers
    _, alive = psutil.wait_procs(receivers, timeout=10)
    assert not alive, f"receiving processes outlived the server: {alive}"


def test_sigterm_stops_every_process(tmp_path: Path) -> None:
    with SoiProcess(tmp_path / "data", env=RECEIVERS) as soi:
        receivers = _receivers(soi)
        assert len(receivers) == 1
    # Leaving the block sent SIGTERM and checked status 0; the receivers are gone too.
    _, alive = psutil.wait_procs(receivers, timeout=10)
    assert not alive
