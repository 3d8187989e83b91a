"""The viewer's PACS path (nafv-viewer --server / File > Open from server…) on a real Orthanc, offscreen."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt

from core_model.domain.study import VIEW_KEYS
from orthanc_server import PASSWORD, USER, free_port

pytestmark = pytest.mark.qt


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    from nafv_viewer.widgets.main_window import MainWindow

    monkeypatch.setenv("NAFV_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NAFV_CACHE", str(tmp_path / "cache"))
    for name in ("NAFV_DICOMWEB_TOKEN", "NAFV_DICOMWEB_USER", "NAFV_DICOMWEB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    w = MainWindow(analyzer_factory=lambda: None, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    yield w
    w.shutdown()


def test_search_sign_in_retrieve_and_the_four_views_hang(window, qtbot, orthanc, pacs_study, tmp_path):
    w = window
    menu_texts = [a.text() for a in w.menuBar().actions()[0].menu().actions()]
    assert "Open from server…" in menu_texts
    dialog = w.open_from_server(orthanc.url)  # what nafv-viewer --server URL does
    assert dialog.isVisible() and dialog.url.text() == orthanc.url and not dialog.sign_in.isVisible()
    dialog.patient_id.setText(pacs_study.patient_id)
    # No credentials in the environment: the server asks, the dialog says so and shows the sign-in
    with qtbot.waitSignal(dialog.failed, timeout=30000) as asked:
        qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    assert "HTTP 401" in asked.args[0] and dialog.sign_in.isVisible() and dialog.status.text() == asked.args[0]
    dialog.user.setText(USER)
    dialog.password.setText(PASSWORD)
    with qtbot.waitSignal(dialog.searched, timeout=30000):
        qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    assert dialog.results.rowCount() == 1
    assert [dialog.results.item(0, c).text() for c in range(2)] == [pacs_study.patient_id, "Pacs Demo"]
    assert dialog.open_button.isEnabled()  # the one result is selected
    with qtbot.waitSignal(w.study_ready, timeout=60000):
        qtbot.mouseClick(dialog.open_button, Qt.MouseButton.LeftButton)
    assert dialog.progress.value() == 100 and not dialog.isVisible()
    assert w.study.patient_id == pacs_study.patient_id and w.study.study_id == pacs_study.uid
    assert w.study_path.parent.parent == tmp_path / "cache" / "dicomweb"
    assert len(list(w.study_path.glob("*.dcm"))) == 8
    for key in VIEW_KEYS:
        panel = w.grid.panels4[key]
        assert panel.has_image and panel.shown_energy == "le"
    # the address is remembered for next time; what was typed to sign in is not
    w.settings.sync()
    saved = (tmp_path / "s.ini").read_text()
    assert orthanc.url in saved and PASSWORD not in saved and USER not in saved


def test_server_down_is_one_line_in_the_dialog(window, qtbot):
    dialog = window.open_from_server(f"http://127.0.0.1:{free_port()}/dicom-web")
    with qtbot.waitSignal(dialog.failed, timeout=30000) as failed:
        qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    assert failed.args[0].startswith("cannot reach the PACS at") and "\n" not in failed.args[0]
    assert dialog.search_button.isEnabled() and dialog.results.rowCount() == 0 and window.study is None


def test_viewer_refuses_server_with_screenshot_and_with_a_path(tmp_path, capsys):
    from nafv_viewer.app import main

    assert main(["--server", "http://127.0.0.1:1/dicom-web", "--screenshot", str(tmp_path / "x.png")]) == 2
    assert "cannot be used with --screenshot" in capsys.readouterr().err
    assert main([str(tmp_path), "--server", "http://127.0.0.1:1/dicom-web"]) == 2
    assert "give one of PATH, --demo or --server" in capsys.readouterr().err


def test_cancel_during_a_stalled_transfer_frees_the_dialog_and_keeps_nothing(window, qtbot, orthanc, pacs_study,
                                                                             tmp_path, monkeypatch):
    import threading

    from core_model.io.dicomweb import DicomWebServer
    from nafv_viewer.worker import threads_still_running
    from orthanc_server import CuttingProxy

    monkeypatch.setenv("NAFV_DICOMWEB_USER", USER)
    monkeypatch.setenv("NAFV_DICOMWEB_PASSWORD", PASSWORD)
    release = threading.Event()
    proxy = CuttingProxy(orthanc.port, cut_after=int(1.5 * pacs_study.files[0].stat().st_size), hold=release)
    url = f"http://127.0.0.1:{proxy.port}/dicom-web"
    try:
        dialog = window.open_from_server(url)
        dialog.retrieve(pacs_study.uid)
        assert proxy.stalled.wait(30)  # the network hangs in the middle of the second image
        qtbot.waitUntil(lambda: dialog.progress.value() > 0, timeout=10000)
        qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
        assert dialog.search_button.isEnabled() and not dialog.cancel_button.isEnabled()
        assert dialog.status.text().startswith("Cancelled") and dialog.isVisible()
        release.set()  # the stalled request ends; the job sees the cancel and removes what it fetched
        qtbot.waitUntil(lambda: not threads_still_running(), timeout=30000)
    finally:
        release.set()
        proxy.close()
    assert window.study is None
    cache = DicomWebServer(url).cache_dir
    assert not cache.exists() or list(cache.iterdir()) == []


def test_the_readers_seg_and_sr_go_back_to_the_pacs_the_study_came_from(window, qtbot, orthanc, pacs_study, tmp_path,
                                                                         monkeypatch):
    from core_model.review.model import AddFinding

    w = window
    monkeypatch.setenv("NAFV_DICOMWEB_USER", USER)
    monkeypatch.setenv("NAFV_DICOMWEB_PASSWORD", PASSWORD)
    dialog = w.open_from_server(orthanc.url)
    dialog.patient_id.setText(pacs_study.patient_id)
    with qtbot.waitSignal(dialog.searched, timeout=30000):
        qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(w.review_flow.review_opened, timeout=60000):
        qtbot.mouseClick(dialog.open_button, Qt.MouseButton.LeftButton)
    assert w.origin_server() is not None and w.origin_server().url == orthanc.url
    flow = w.review_flow
    assert flow.controller.push(AddFinding("L_CC", [(100, 100), (160, 100), (160, 170), (100, 170)]))
    with qtbot.waitSignal(flow.export_finished, timeout=60000) as done:
        flow.export("seg", tmp_path / "out", overwrite=False)
    assert [p.suffix for p in flow.sendable] == [".dcm", ".dcm"]
    assert done.args[0][-1] == f"Send the DICOM SEG and SR to {orthanc.url} with File > Send to the PACS (Ctrl+Shift+U)"
    file_menu = w.menuBar().actions()[0].menu()
    [send] = [a for a in file_menu.actions() if a.text().startswith("Send to the PACS")]
    assert send.shortcut().toString() == "Ctrl+Shift+U"
    with qtbot.waitSignal(flow.sent, timeout=60000) as sent:
        send.trigger()
    assert sent.args == [2]
    assert "Sent 2 object(s) to" in w.statusBar().currentMessage()
    # the PACS now holds the SEG and the SR in the patient's study, beside the 8 images
    import pydicom

    uids = {str(pydicom.dcmread(p).SOPInstanceUID) for p in flow.sendable}
    series = orthanc.server().client().search_for_instances(study_instance_uid=pacs_study.uid)
    stored = {i["00080018"]["Value"][0]: i["00080060"]["Value"][0] for i in series}
    assert uids <= set(stored) and {stored[u] for u in uids} == {"SEG", "SR"}

    # another study opened: the last export was that patient's, so nothing is offered for sending
    from core_model.domain.resources import DEMO_DIR

    with qtbot.waitSignal(flow.review_opened, timeout=30000):
        w.open_study(DEMO_DIR)
    assert flow.sendable == [] and w.origin_server() is None


def test_a_study_from_a_folder_has_no_pacs_to_send_to(window, qtbot, demo_dir):
    w = window
    with qtbot.waitSignal(w.review_flow.review_opened, timeout=30000):
        w.open_study(demo_dir)
    assert w.origin_server() is None
    assert w.review_flow.send_to_server() is None
    assert "no server to send the results back to" in w.last_error
