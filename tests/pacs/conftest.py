"""Fixtures: a real Orthanc (DICOMweb) for the session, and studies stored in it (see orthanc_server.py)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from orthanc_server import (PASSWORD, USER, Orthanc, StoredStudy, answers, free_port, orthanc_files, write_demo_study,
                            write_non_mg_study)


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory) -> Orthanc:
    exe, plugin = orthanc_files()
    if exe is None or plugin is None:
        pytest.skip("Orthanc with its DICOMweb plugin is not installed (Debian: apt-get install orthanc "
                    "orthanc-dicomweb; scripts/dev.sh test installs them when it can)")
    folder = tmp_path_factory.mktemp("orthanc")
    http_port, dicom_port = free_port(), free_port()
    while dicom_port == http_port:
        dicom_port = free_port()
    config = {
        "Name": "nafv-test-pacs",
        "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomServerEnabled": False,  # only DICOMweb is tested; the port is free anyway for older releases
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "SaveJobs": False,
        "HttpDescribeErrors": True,
        "HttpCompressionEnabled": False,  # response bytes = file bytes, so a test can cut a transfer mid-image
    }
    cfg = folder / "orthanc.json"
    cfg.write_text(json.dumps(config, indent=1))
    log = folder / "orthanc.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([exe, str(cfg)], stdout=out, stderr=subprocess.STDOUT, cwd=folder)
    root = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 60
    try:
        while not answers(root):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                pytest.fail(f"Orthanc did not start (exit code {proc.poll()}):\n{tail}")
            time.sleep(0.1)
        yield Orthanc(url=f"{root}/dicom-web", root=root, port=http_port, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def pacs_study(orthanc, tmp_path_factory) -> StoredStudy:
    """The demo CEM study (8 MG images), stored in Orthanc with STOW-RS."""
    import pydicom

    files = write_demo_study(tmp_path_factory.mktemp("stow") / "study", "PACS-0066", "Pacs^Demo")
    assert orthanc.server().store(files) == 8
    return StoredStudy(str(pydicom.dcmread(files[0]).StudyInstanceUID), "PACS-0066", "Pacs^Demo", files)


@pytest.fixture(scope="session")
def non_mg_study(orthanc, tmp_path_factory) -> str:
    """The StudyInstanceUID of a study in Orthanc that holds one OT image and no mammogram."""
    import pydicom

    path = write_non_mg_study(tmp_path_factory.mktemp("stow-ot"), "PACS-OT-1")
    assert orthanc.server().store([path]) == 1
    return str(pydicom.dcmread(path).StudyInstanceUID)
