"""nafv-analyze --server --study --store on a real Orthanc: the SEG comes back to the PACS and QIDO finds it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from core_model.cli.analyze import main
from orthanc_server import PASSWORD, USER, free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_analyze_from_the_pacs_and_store_the_seg_back(orthanc, pacs_study, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), NAFV_CACHE=str(tmp_path / "cache"),
               NAFV_DICOMWEB_USER=USER, NAFV_DICOMWEB_PASSWORD=PASSWORD)
    env.pop("NAFV_DICOMWEB_TOKEN", None)
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "core_model.cli.analyze", "--server", orthanc.url, "--study", pacs_study.uid,
                          "--out", str(out), "--store", "--no-explain", "--no-overlays", "--device", "cpu"],
                         env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert PASSWORD not in run.stdout + run.stderr
    segs = sorted(out.glob("*_report_seg/*_seg.dcm"))
    assert segs, run.stdout  # the demo's lesions are found, so there is something to send
    assert f"sent {len(segs)} DICOM SEG object(s) to {orthanc.url}" in run.stdout
    assert (out / "analysis.json").is_file() and list(out.glob("*_report.pdf"))
    # the study was retrieved into the cache, whole
    assert len(list((tmp_path / "cache" / "dicomweb").glob(f"*/{pacs_study.uid}/*.dcm"))) == 8

    # QIDO: the PACS now lists a SEG series in the study, holding exactly the SEGs written
    client = orthanc.server(tmp_path / "other-cache").client()
    series = client.search_for_series(pacs_study.uid, search_filters={"Modality": "SEG"})
    assert len(series) == 1
    seg_series = series[0]["0020000E"]["Value"][0]
    found = client.search_for_instances(pacs_study.uid, seg_series, fields=["SOPInstanceUID"])
    written = [pydicom.dcmread(p) for p in segs]
    assert sorted(i["00080018"]["Value"][0] for i in found) == sorted(str(d.SOPInstanceUID) for d in written)
    # and each SEG points at a mammogram of the study it was stored in
    sources = {str(pydicom.dcmread(p).SOPInstanceUID) for p in pacs_study.files}
    for d in written:
        ref = d.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
        assert d.StudyInstanceUID == pacs_study.uid and str(ref) in sources


def test_errors_are_one_line_and_nothing_is_written(orthanc, non_mg_study, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NAFV_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NAFV_DICOMWEB_USER", USER)
    monkeypatch.setenv("NAFV_DICOMWEB_PASSWORD", PASSWORD)
    out = tmp_path / "out"
    down = f"http://127.0.0.1:{free_port()}/dicom-web"
    cases = [
        (["--server", down, "--study", "1.2.3.4"], f"nafv-analyze: cannot reach the PACS at {down} (connection refused)"),
        (["--server", orthanc.url, "--study", non_mg_study],
         f"nafv-analyze: study {non_mg_study} on the PACS holds no mammograms (MG images), only OT"),
        (["--server", orthanc.url], "nafv-analyze: --server needs --study STUDY_UID"),
        (["--study", "1.2.3"], "nafv-analyze: --study and --store need --server URL"),
        (["--server", orthanc.url, "--study", "1.2.3", "--store", "--deidentify"], "nafv-analyze: --store sends a DICOM SEG"),
        ([str(tmp_path), "--server", orthanc.url, "--study", "1.2.3"], "nafv-analyze: give either STUDY_PATH or --server"),
    ]
    for args, said in cases:
        assert main(args + ["--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(said) and "Traceback" not in "\n".join(err)
    assert not out.exists()
    cache = tmp_path / "cache" / "dicomweb"
    assert not cache.exists() or not any(p.is_dir() and any(p.iterdir()) for p in cache.iterdir())
    # without credentials: the 401, saying which variables to set
    monkeypatch.delenv("NAFV_DICOMWEB_USER")
    monkeypatch.delenv("NAFV_DICOMWEB_PASSWORD")
    assert main(["--server", orthanc.url, "--study", non_mg_study, "--out", str(out)]) == 2
    assert "(HTTP 401): set NAFV_DICOMWEB_USER and NAFV_DICOMWEB_PASSWORD" in capsys.readouterr().err
