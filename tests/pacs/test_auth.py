"""Access refused by a real Orthanc (wrong password 401, user not authorised 403, bearer tokens): one
message naming the server, nothing written in the cache or the output folder."""

from __future__ import annotations

import pytest

from core_model.cli.analyze import main
from core_model.io.dicomweb import AuthRequired, Credentials, DicomWebServer
from orthanc_server import PASSWORD, TOKEN, USER, VISITOR, VISITOR_PASSWORD, write_demo_study

ENV = ("NAFV_DICOMWEB_TOKEN", "NAFV_DICOMWEB_USER", "NAFV_DICOMWEB_PASSWORD")


def _analyze(monkeypatch, tmp_path, capsys, url: str, uid: str, **env: str) -> tuple[int, list[str]]:
    """nafv-analyze --server as a user runs it, with only ``env`` as credentials; (exit code, stderr lines)."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NAFV_CACHE", str(tmp_path / "cache"))
    code = main(["--server", url, "--study", uid, "--out", str(tmp_path / "out"), "--device", "cpu"])
    return code, capsys.readouterr().err.strip().splitlines()


def _nothing_written(tmp_path) -> None:
    assert not (tmp_path / "out").exists()
    cache = tmp_path / "cache"
    assert not cache.exists() or [p for p in cache.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("user, password, code", [(USER, "not-the-password", 401), (VISITOR, VISITOR_PASSWORD, 403)])
def test_refused_access_is_one_line_naming_the_server_and_nothing_is_written(orthanc, pacs_study, tmp_path, capsys,
                                                                             monkeypatch, user, password, code):
    exit_code, err = _analyze(monkeypatch, tmp_path, capsys, orthanc.url, pacs_study.uid,
                              NAFV_DICOMWEB_USER=user, NAFV_DICOMWEB_PASSWORD=password)
    assert exit_code == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"nafv-analyze: the PACS at {orthanc.url} did not ")
    assert f"not authorised (HTTP {code}) while listing the images of study {pacs_study.uid}" in err[0]
    assert "NAFV_DICOMWEB_USER and NAFV_DICOMWEB_PASSWORD" in err[0]
    assert password not in err[0] and "Traceback" not in err[0]
    _nothing_written(tmp_path)


def test_the_right_user_gets_the_study_the_known_but_unauthorised_one_does_not(orthanc, pacs_study, tmp_path):
    """The 403 is the server's decision about this user, not a broken password check."""
    assert len(list(orthanc.server(tmp_path / "a").retrieve_study(pacs_study.uid).glob("*.dcm"))) == 8
    visitor = orthanc.server(tmp_path / "b", credentials=Credentials(VISITOR, VISITOR_PASSWORD))
    with pytest.raises(AuthRequired, match=r"did not let this user in: not authorised \(HTTP 403\)"):
        visitor.search_studies()
    assert not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def bearer_study(orthanc_bearer, tmp_path_factory) -> str:
    """The demo study stored in the token-checking Orthanc, sent with the token."""
    import pydicom

    files = write_demo_study(tmp_path_factory.mktemp("stow-bearer") / "study", "PACS-TOKEN-1", "Token^Demo")
    assert orthanc_bearer.server(credentials=Credentials(token=TOKEN)).store(files) == 8
    return str(pydicom.dcmread(files[0]).StudyInstanceUID)


def test_a_bearer_token_from_the_environment_opens_the_study(orthanc_bearer, bearer_study, tmp_path, monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NAFV_DICOMWEB_TOKEN", TOKEN)
    server = DicomWebServer(orthanc_bearer.url, cache=tmp_path)
    assert [h.study_uid for h in server.search_studies(patient_id="PACS-TOKEN-1")] == [bearer_study]
    assert len(list(server.retrieve_study(bearer_study).glob("*.dcm"))) == 8
    # a user name and password mean nothing to this server: the token is what it checks
    basic = DicomWebServer(orthanc_bearer.url, credentials=Credentials(USER, PASSWORD), cache=tmp_path / "basic")
    with pytest.raises(AuthRequired, match="HTTP 403"):
        basic.search_studies()


def test_a_wrong_token_is_one_line_naming_the_server_and_nothing_is_written(orthanc_bearer, bearer_study, tmp_path,
                                                                            capsys, monkeypatch):
    code, err = _analyze(monkeypatch, tmp_path, capsys, orthanc_bearer.url, bearer_study,
                         NAFV_DICOMWEB_TOKEN="expired-token-123")
    assert code == 2 and len(err) == 1, err
    assert err[0] == (f"nafv-analyze: the PACS at {orthanc_bearer.url} did not let this token in: not authorised "
                      f"(HTTP 403) while listing the images of study {bearer_study}; check the token "
                      "(NAFV_DICOMWEB_TOKEN), or ask the PACS administrator for access")
    assert "expired-token-123" not in err[0]
    _nothing_written(tmp_path)
