"""A real PACS for the tests (helpers; the fixtures are in conftest.py): Orthanc with its DICOMweb plugin, started once per test session.

Orthanc runs on free localhost ports with a temporary storage folder and
requires a user name and password (so the same server answers 401 to a
client without them). Without Orthanc installed (Debian: ``orthanc`` and
``orthanc-dicomweb``, which ``scripts/dev.sh test`` installs) these tests
skip, saying so.

Studies stored in it are made here from the demo's real images, written as
DICOM MG, one patient id per fixture so the tests do not see each other's.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from core_model.io import write_mg_dicom
from core_model.io.dicomweb import Credentials, DicomWebServer
from core_model.io.naming import parse_cdd_cesm_name

USER, PASSWORD = "reader", "pacs-test-secret-7f3a"
# A user the server knows (right password) but has not authorised: its filter answers 403.
VISITOR, VISITOR_PASSWORD = "visitor", "visitor-secret-52c1"
TOKEN = "nafv-test-token-0b9e4d"  # the one bearer token the token-checking Orthanc accepts
PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc", "/usr/local/share/orthanc/plugins")
DEMO = Path(__file__).resolve().parents[1] / "resources" / "demo"


@dataclass
class Orthanc:
    url: str  # DICOMweb base
    root: str  # Orthanc REST base
    port: int
    log: Path

    def server(self, cache: Path | None = None, credentials: Credentials | None = None) -> DicomWebServer:
        creds = credentials if credentials is not None else Credentials(USER, PASSWORD)
        return DicomWebServer(self.url, credentials=creds, cache=cache)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def orthanc_files() -> tuple[str | None, str | None]:
    exe = shutil.which("Orthanc") or next((p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if Path(p).exists()), None)
    plugin = next((str(Path(d) / "libOrthancDicomWeb.so") for d in PLUGIN_DIRS if (Path(d) / "libOrthancDicomWeb.so").exists()),
                  None)
    return exe, plugin


def answers(root: str, header: str = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()) -> bool:
    req = urllib.request.Request(f"{root}/system")
    req.add_header("Authorization", header)
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


# Orthanc's Lua hook runs on every REST request after its own user check; false answers 403.
# (Orthanc 1.10 has no bearer-token support of its own; its authorization plugin needs a web
# service, so the token-checking server does the check here, on the header as it arrives.)
BASIC_FILTER = f"""
function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)
  return username ~= '{VISITOR}'
end
"""
TOKEN_FILTER = f"""
function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)
  return httpHeaders['authorization'] == 'Bearer {TOKEN}'
end
"""


@contextmanager
def running_orthanc(exe: str, plugin: str, folder: Path, bearer: bool = False) -> Iterator[Orthanc]:
    """Orthanc on free ports, storage in ``folder``: basic auth (USER; VISITOR gets 403), or with
    ``bearer`` no user check and only ``Authorization: Bearer TOKEN`` let in (anything else 403)."""
    http_port, dicom_port = free_port(), free_port()
    while dicom_port == http_port:
        dicom_port = free_port()
    lua = folder / "filter.lua"
    lua.write_text(TOKEN_FILTER if bearer else BASIC_FILTER)
    config = {
        "Name": "nafv-test-pacs",
        "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomServerEnabled": False,  # only DICOMweb is tested; the port is free anyway for older releases
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": not bearer,
        "RegisteredUsers": {} if bearer else {USER: PASSWORD, VISITOR: VISITOR_PASSWORD},
        "LuaScripts": [str(lua)],
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
    header = f"Bearer {TOKEN}" if bearer else None
    deadline = time.monotonic() + 60
    try:
        while not (answers(root, header) if header else answers(root)):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Orthanc did not start (exit code {proc.poll()}):\n{tail}")
            time.sleep(0.1)
        yield Orthanc(url=f"{root}/dicom-web", root=root, port=http_port, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_demo_study(folder: Path, patient_id: str, patient_name: str) -> list[Path]:
    """The demo's eight CEM images (both breasts, CC/MLO, LE/RC) as DICOM MG of one new study."""
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study_uid = generate_uid()
    files = []
    for f in sorted(DEMO.glob("P66_*.jpg")):
        info = parse_cdd_cesm_name(f)
        files.append(write_mg_dicom(folder / f"{f.stem}.dcm", np.asarray(Image.open(f).convert("L")), side=info.side,
                                    view=info.view, energy=info.energy, patient_id=patient_id,
                                    patient_name=patient_name, study_uid=study_uid, pixel_spacing_mm=0.1))
    return files


def write_non_mg_study(folder: Path, patient_id: str) -> Path:
    """One secondary-capture image (modality OT) in a study of its own: a study with no mammogram."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName = "OT", patient_id, "Other^Modality"
    ds.StudyDate, ds.ConversionType = "20240105", "WSD"
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.arange(256, dtype=np.uint8).tobytes()
    path = folder / "ot.dcm"
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


@dataclass
class StoredStudy:
    uid: str
    patient_id: str
    patient_name: str
    files: list[Path]


class CuttingProxy:
    """A TCP relay to Orthanc that closes every connection once ``cut_after`` response bytes have passed in all.

    A real server behind a network that drops mid-transfer: the client sees
    the connection close in the middle of a response. With ``hold`` (an
    Event) the network stalls there instead, until the event is set.
    ``requests`` holds the request line of every request that went through
    (what the server was asked for, in order).
    """

    def __init__(self, port: int, cut_after: int, hold: threading.Event | None = None):
        self.port_to, self.cut_after, self.sent, self.hold = port, cut_after, 0, hold
        self.stalled = threading.Event()
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                client, _ = self.sock.accept()
            except OSError:
                continue
            up = socket.create_connection(("127.0.0.1", self.port_to))
            threading.Thread(target=self._pump, args=(client, up, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not counted and data[:4] in (b"GET ", b"POST", b"PUT ", b"HEAD"):
                    with self.lock:
                        self.requests.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
                if counted:
                    with self.lock:
                        room = self.cut_after - self.sent
                        self.sent += len(data)
                    if room <= 0:
                        break
                    data = data[:room]
                dst.sendall(data)
                if counted and self.sent >= self.cut_after:
                    if self.hold is not None:
                        self.stalled.set()
                        self.hold.wait(60)
                    break
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.stopping = True
        self.thread.join(timeout=2)
        self.sock.close()

