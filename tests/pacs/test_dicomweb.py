"""Search, retrieve and error messages against a real Orthanc (core_model.io.dicomweb)."""

from __future__ import annotations

import base64
import logging

import pydicom
import pytest

from orthanc_server import PASSWORD, USER, CuttingProxy, free_port
from core_model.domain.errors import Cancelled, StudyLoadError
from core_model.domain.jobs import CancelToken
from core_model.domain.study import VIEW_KEYS
from core_model.io import load_study
from core_model.io.dicomweb import AuthRequired, Credentials, DicomWebServer, ServerError, parse_date


def _leftovers(server: DicomWebServer) -> list[str]:
    return sorted(p.name for p in server.cache_dir.iterdir()) if server.cache_dir.exists() else []


def test_search_finds_the_mg_study_by_id_name_and_date(orthanc, pacs_study, non_mg_study, tmp_path):
    server = orthanc.server(tmp_path)
    by_id = server.search_studies(patient_id=pacs_study.patient_id)
    assert [h.study_uid for h in by_id] == [pacs_study.uid]
    hit = by_id[0]
    # MG, and SEG once nafv-analyze --store has sent one back (the tests share the server)
    assert hit.patient_name == "Pacs^Demo" and "MG" in hit.modalities and hit.n_instances >= 8
    # part of the name, any case; the date as the reader types it
    assert [h.study_uid for h in server.search_studies(patient_name="pacs")] == [pacs_study.uid]
    date = pydicom.dcmread(pacs_study.files[0]).StudyDate
    iso = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    assert pacs_study.uid in [h.study_uid for h in server.search_studies(study_date=iso)]
    assert server.search_studies(patient_id=pacs_study.patient_id, study_date="19000101-19001231") == []
    # the OT-only study is not a mammography study
    assert server.search_studies(patient_id="PACS-OT-1") == []


def test_retrieve_writes_the_study_once_and_the_loader_opens_it(orthanc, pacs_study, tmp_path):
    server = orthanc.server(tmp_path / "cache")
    seen: list[tuple[str, float]] = []
    folder = server.retrieve_study(pacs_study.uid, progress=lambda s, f: seen.append((s, f)))
    assert folder == server.cache_dir / pacs_study.uid and len(list(folder.glob("*.dcm"))) == 8
    assert seen[-1] == ("retrieving image 8 of 8", 1.0)
    assert [f for _, f in seen] == sorted(f for _, f in seen)
    study = load_study(folder)
    assert study.patient_id == pacs_study.patient_id and study.study_id == pacs_study.uid
    assert all(study.has(k, e) for k in VIEW_KEYS for e in ("le", "rc"))
    # the pixels are the stored ones
    sent = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p).pixel_array for p in pacs_study.files}
    for p in folder.glob("*.dcm"):
        ds = pydicom.dcmread(p)
        assert (ds.pixel_array == sent[ds.SOPInstanceUID]).all()
    assert _leftovers(server) == [pacs_study.uid]
    # a second open is local: it works with the server unreachable
    offline = DicomWebServer(orthanc.url, credentials=Credentials("nobody", "wrong"), cache=tmp_path / "cache")
    again: list[tuple[str, float]] = []
    assert offline.retrieve_study(pacs_study.uid, progress=lambda s, f: again.append((s, f))) == folder
    assert again == [("opened from the local copy", 1.0)]


def test_server_down_is_one_clear_message(tmp_path):
    server = DicomWebServer(f"http://127.0.0.1:{free_port()}/dicom-web", cache=tmp_path)
    with pytest.raises(ServerError) as err:
        server.search_studies(patient_id="X")
    assert str(err.value).startswith("cannot reach the PACS at http://127.0.0.1:") and "connection refused" in str(err.value)
    with pytest.raises(StudyLoadError, match="connection refused"):
        server.retrieve_study("1.2.3.4")
    assert _leftovers(server) == []


def test_401_without_credentials_then_success_with_them_from_the_environment(orthanc, pacs_study, tmp_path, monkeypatch):
    for name in ("NAFV_DICOMWEB_TOKEN", "NAFV_DICOMWEB_USER", "NAFV_DICOMWEB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    anonymous = DicomWebServer(orthanc.url, cache=tmp_path)
    with pytest.raises(AuthRequired) as err:
        anonymous.retrieve_study(pacs_study.uid)
    assert "HTTP 401" in str(err.value) and "NAFV_DICOMWEB_USER" in str(err.value)
    assert _leftovers(anonymous) == []
    wrong = DicomWebServer(orthanc.url, credentials=Credentials(USER, "not-it"), cache=tmp_path)
    with pytest.raises(AuthRequired, match=r"did not accept the user name and password given: not authorised \(HTTP 401\)"):
        wrong.search_studies()
    monkeypatch.setenv("NAFV_DICOMWEB_USER", USER)
    monkeypatch.setenv("NAFV_DICOMWEB_PASSWORD", PASSWORD)
    from_env = DicomWebServer(orthanc.url, cache=tmp_path)
    assert [h.study_uid for h in from_env.search_studies(patient_id=pacs_study.patient_id)] == [pacs_study.uid]


def test_credentials_never_reach_a_log_or_a_message(orthanc, pacs_study, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server = orthanc.server(tmp_path)
    server.retrieve_study(pacs_study.uid)
    with pytest.raises(ServerError) as err:
        server.retrieve_study("1.2.3.999")  # no such study
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert "GET" in caplog.text  # the client did log its requests
    for secret in (PASSWORD, basic):
        assert secret not in caplog.text and secret not in str(err.value) and secret not in repr(server.credentials)
    with pytest.raises(ServerError, match="do not put a user name or password in the server address"):
        DicomWebServer(f"http://{USER}:{PASSWORD}@127.0.0.1:{orthanc.port}/dicom-web")


def test_study_without_mammograms_is_said_and_nothing_is_cached(orthanc, non_mg_study, tmp_path):
    server = orthanc.server(tmp_path)
    with pytest.raises(ServerError) as err:
        server.retrieve_study(non_mg_study)
    assert str(err.value) == f"study {non_mg_study} on the PACS holds no mammograms (MG images), only OT"
    with pytest.raises(ServerError, match="has no study 1.2.3.999"):
        server.retrieve_study("1.2.3.999")
    assert _leftovers(server) == []


def test_transfer_cut_midway_leaves_nothing_and_the_next_try_succeeds(orthanc, pacs_study, tmp_path):
    one_image = pacs_study.files[0].stat().st_size
    proxy = CuttingProxy(orthanc.port, cut_after=int(2.5 * one_image))
    try:
        cut = DicomWebServer(f"http://127.0.0.1:{proxy.port}/dicom-web", credentials=Credentials(USER, PASSWORD),
                             cache=tmp_path)
        seen: list[float] = []
        with pytest.raises(ServerError) as err:
            cut.retrieve_study(pacs_study.uid, progress=lambda s, f: seen.append(f))
    finally:
        proxy.close()
    assert str(err.value).startswith(f"the transfer from the PACS at http://127.0.0.1:{proxy.port}/dicom-web was cut after 2 of 8 images")
    assert "of 8 images" in str(err.value) and "nothing was kept" in str(err.value)
    assert 0 < max(seen) < 1  # some images had arrived
    assert _leftovers(cut) == []
    # the same cache through the direct address: a fresh, complete copy
    direct = orthanc.server(tmp_path)
    assert len(list(direct.retrieve_study(pacs_study.uid).glob("*.dcm"))) == 8


def test_cancel_midway_leaves_nothing(orthanc, pacs_study, tmp_path):
    server = orthanc.server(tmp_path)
    token = CancelToken()

    def progress(stage: str, fraction: float) -> None:
        if fraction >= 0.25:
            token.cancel()

    with pytest.raises(Cancelled):
        server.retrieve_study(pacs_study.uid, progress=progress, cancel=token)
    assert _leftovers(server) == [] and server.cached_study(pacs_study.uid) is None


def test_cancel_after_the_first_image_is_honoured_before_the_second_is_asked_for(orthanc, pacs_study, tmp_path):
    """Through a relay that records each request: after the cancel, the PACS is asked for nothing more."""
    proxy = CuttingProxy(orthanc.port, cut_after=10**12)
    try:
        server = DicomWebServer(f"http://127.0.0.1:{proxy.port}/dicom-web", credentials=Credentials(USER, PASSWORD),
                                cache=tmp_path)
        token = CancelToken()
        seen: list[tuple[str, float]] = []

        def progress(stage: str, fraction: float) -> None:
            seen.append((stage, fraction))
            if stage.startswith("retrieving image 1 of"):
                token.cancel()  # as the viewer's Cancel button does, from another thread, between two images

        with pytest.raises(Cancelled):
            server.retrieve_study(pacs_study.uid, progress=progress, cancel=token)
    finally:
        proxy.close()
    assert seen == [("asking the PACS for the study", 0.0), ("retrieving image 1 of 8", 1 / 8)]
    images = [r for r in proxy.requests if "/instances/" in r]
    assert len(images) == 1 and images[0].startswith(f"GET /dicom-web/studies/{pacs_study.uid}/series/")
    assert _leftovers(server) == [] and server.cached_study(pacs_study.uid) is None
    # the next open retrieves the whole study
    assert len(list(orthanc.server(tmp_path).retrieve_study(pacs_study.uid).glob("*.dcm"))) == 8


def test_stale_partial_of_a_killed_process_is_removed(orthanc, pacs_study, tmp_path):
    server = orthanc.server(tmp_path)
    server.cache_dir.mkdir(parents=True)
    dead = server.cache_dir / f".partial-{pacs_study.uid}-999999999-0123abcd"  # no such pid
    (dead / "half.dcm").parent.mkdir()
    (dead / "half.dcm").write_bytes(b"half")
    server.retrieve_study(pacs_study.uid)
    assert _leftovers(server) == [pacs_study.uid]


@pytest.mark.parametrize("text, expected", [("20240305", "20240305"), ("2024-03-05", "20240305"),
                                            ("20240101-20240331", "20240101-20240331"), ("-20240301", "-20240301"),
                                            ("2024-01-01 - 2024-03-31", "20240101-20240331"), ("", "")])
def test_study_date_as_typed(text, expected):
    assert parse_date(text) == expected


@pytest.mark.parametrize("text", ["2024", "March", "20240101 20240202"])
def test_study_date_that_is_not_one_is_said(text):
    with pytest.raises(ServerError, match="give YYYYMMDD"):
        parse_date(text)


def test_an_image_cut_short_is_not_taken_for_a_whole_one(tmp_path):
    """A response cut without a Content-Length still parses; the short Pixel Data gives it away."""
    import io

    from core_model.io.dicomweb import _complete
    from orthanc_server import write_demo_study

    path = write_demo_study(tmp_path, "CUT-1", "Cut^Short")[0]
    data = path.read_bytes()
    whole = pydicom.dcmread(io.BytesIO(data))
    half = pydicom.dcmread(io.BytesIO(data[: len(data) // 2]))  # pydicom reads it without complaint
    assert _complete(whole, whole.SOPInstanceUID)
    assert not _complete(half, whole.SOPInstanceUID)
    assert not _complete(whole, "1.2.3")  # not the instance asked for


def test_credentials_come_from_the_environment_and_are_never_shown():
    token = Credentials.from_env({"NAFV_DICOMWEB_TOKEN": "tok-123", "NAFV_DICOMWEB_USER": "u"})
    assert token.token == "tok-123" and not token.user  # a token wins over a user
    basic = Credentials.from_env({"NAFV_DICOMWEB_USER": "u", "NAFV_DICOMWEB_PASSWORD": "pw-456"})
    assert (basic.user, basic.password) == ("u", "pw-456")
    assert Credentials.from_env({}) is None
    assert "tok-123" not in repr(token) and "pw-456" not in repr(basic)
