"""The retrieved-study cache stays under NAFV_CACHE_MAX_GB: least recently opened studies go first,
the study being opened never (studies retrieved from a real Orthanc)."""

from __future__ import annotations


import pydicom
import pytest

from core_model.io.dicomweb import CACHE_MAX_ENV, ServerError, cache_limit_bytes
from orthanc_server import write_demo_study


@pytest.fixture(scope="module")
def three_studies(orthanc, pacs_study, tmp_path_factory) -> list[str]:
    """pacs_study and two more demo studies of other patients, all in Orthanc."""
    uids = [pacs_study.uid]
    for n in (1, 2):
        files = write_demo_study(tmp_path_factory.mktemp(f"stow-evict-{n}") / "study", f"EVICT-{n}", f"Evict^{n}")
        assert orthanc.server().store(files) == 8
        uids.append(str(pydicom.dcmread(files[0]).StudyInstanceUID))
    return uids


def _study_bytes(folder) -> int:
    return sum(f.stat().st_size for f in folder.iterdir())


def _cached(server) -> set[str]:
    """Study folders of every server in the cache (what the limit counts), hidden ones left out."""
    return {p.name for d in server.cache_base.iterdir() for p in d.iterdir() if not p.name.startswith(".")}


def test_least_recently_opened_study_is_evicted_first(orthanc, three_studies, tmp_path, monkeypatch):
    a, b, c = three_studies
    server = orthanc.server(tmp_path / "cache")
    one = _study_bytes(server.retrieve_study(a))
    monkeypatch.setenv(CACHE_MAX_ENV, str(2.5 * one / 1e9))  # room for two studies, not three
    server.retrieve_study(b)
    assert _cached(server) == {a, b}
    server.retrieve_study(a)  # opened again, from the cache: now b is the least recently used
    server.retrieve_study(c)
    assert _cached(server) == {a, c}
    assert sum(_study_bytes(server.cache_dir / u) for u in (a, c)) <= 2.5 * one
    assert [p.name for p in server.cache_dir.iterdir() if p.name.startswith(".")] == []  # nothing half removed
    # the evicted study comes back whole from the PACS when opened again
    assert len(list(server.retrieve_study(b).glob("*.dcm"))) == 8


def test_the_study_being_opened_stays_even_when_larger_than_the_limit(orthanc, three_studies, tmp_path, monkeypatch):
    a, b, _ = three_studies
    other_server = tmp_path / "cache" / "0123456789abcdef" / "1.2.3.4"  # another PACS's study, same cache
    other_server.mkdir(parents=True)
    (other_server / "x.dcm").write_bytes(b"\0" * 1000)
    server = orthanc.server(tmp_path / "cache")
    server.retrieve_study(a)
    monkeypatch.setenv(CACHE_MAX_ENV, "0")
    folder = server.retrieve_study(b)
    assert _cached(server) == {b}  # the limit counts every server's studies
    assert len(list(folder.glob("*.dcm"))) == 8


def test_a_batch_keeps_the_studies_it_has_not_analysed_yet(orthanc, three_studies, tmp_path, monkeypatch):
    a, b, c = three_studies
    server = orthanc.server(tmp_path / "cache")
    monkeypatch.setenv(CACHE_MAX_ENV, "0")  # no room at all: only what the batch still needs stays
    first = server.retrieve_study(a)
    second = server.retrieve_study(b, keep=[first])
    third = server.retrieve_study(c, keep=[first, second])
    assert _cached(server) == {a, b, c}
    assert all(len(list(f.glob("*.dcm"))) == 8 for f in (first, second, third))


def test_the_default_limit_and_a_bad_setting(orthanc, pacs_study, tmp_path, monkeypatch):
    assert cache_limit_bytes({}) == 20 * 10**9
    assert cache_limit_bytes({CACHE_MAX_ENV: "0.5"}) == 500_000_000
    monkeypatch.setenv(CACHE_MAX_ENV, "lots")
    server = orthanc.server(tmp_path / "cache")
    with pytest.raises(ServerError, match=r"NAFV_CACHE_MAX_GB='lots' is not a size"):
        server.retrieve_study(pacs_study.uid)
    assert not (tmp_path / "cache").exists()  # said before anything was fetched
    for bad in ("-1", "nan", "inf"):
        with pytest.raises(ServerError):
            cache_limit_bytes({CACHE_MAX_ENV: bad})
