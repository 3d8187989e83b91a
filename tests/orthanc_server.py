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
import shutil
import socket
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core_model.io import write_mg_dicom
from core_model.io.dicomweb import Credentials, DicomWebServer
from core_model.io.naming import parse_cdd_cesm_name

USER, PASSWORD = "reader", "pacs-test-secret-7f3a"
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


def answers(root: str) -> bool:
    req = urllib.request.Request(f"{root}/system")
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


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
    """

    def __init__(self, port: int, cut_after: int, hold: threading.Event | None = None):
        self.port_to, self.cut_after, self.sent, self.hold = port, cut_after, 0, hold
        self.stalled = threading.Event()
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

