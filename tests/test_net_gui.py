"""The PACS panel and node settings, real widgets offscreen against a real Orthanc: test a
node, search with filters, retrieve with progress, cancel (partial, never complete), errors."""
from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from orthanc import Orthanc, free_port, make_study, require  # noqa: E402
from radview.net import Node, NodeBook, PacsCache  # noqa: E402


@pytest.fixture
def pacs(tmp_path):
    require()
    o = Orthanc.start(tmp_path / "orthanc")
    import pydicom

    files = make_study(tmp_path / "data", 30, size=256, patient_id="G1", patient_name="Gui^Pat",
                       AccessionNumber="GACC")
    for f in files:
        o.upload(f)
    o.study = str(pydicom.dcmread(files[0]).StudyInstanceUID)
    yield o
    o.kill()


@pytest.fixture
def panel(qtbot, pacs, tmp_path):
    from radview.gui.widgets.pacs_panel import PacsPanel

    book = NodeBook.load(tmp_path / "pacs.json")
    book.add(Node("orthanc", host=pacs.host, port=pacs.dicom_port, called_aet=pacs.aet, timeout=5))
    book.add(Node("dead", host="127.0.0.1", port=free_port(), called_aet="X", timeout=2))
    book.save()
    p = PacsPanel(book=book, cache=PacsCache(tmp_path / "cache"))
    qtbot.addWidget(p)
    return p


def test_search_and_retrieve(qtbot, panel, pacs):
    opened = []
    panel.openRequested.connect(opened.append)
    panel.node_box.setCurrentText("orthanc")
    panel.patient_id.setText("G1")
    with qtbot.waitSignal(panel.searched, timeout=10000) as got:
        panel.search()
    assert got.args == [1] and panel.table.rowCount() == 1
    panel.table.selectRow(0)
    assert panel.selected_uids() == [pacs.study]
    panel.patient_id.clear()
    panel.patient.setText("Gui*")
    with qtbot.waitSignal(panel.searched, timeout=10000) as got:
        panel.search_patients()
    assert got.args == [1] and panel.patients.item(0, 1).text() == "G1"
    assert panel.patients.item(0, 3).text() == "1"
    qtbot.waitUntil(lambda: not panel.busy(), timeout=5000)
    with qtbot.waitSignal(panel.searched, timeout=10000) as got:
        panel._patient_studies(0)
    assert got.args == [1] and panel.patient_id.text() == "G1"
    qtbot.waitUntil(lambda: not panel.busy(), timeout=5000)
    panel.table.selectRow(0)
    with qtbot.waitSignal(panel.retrieved, timeout=20000) as got:
        panel.retrieve_selected()
    st = got.args[0]
    assert st.complete and st.received == 30
    qtbot.waitUntil(lambda: not panel.busy(), timeout=5000)
    assert panel.progress.value() == 30 and panel.cache_list.count() == 1
    assert "complete (30 instances)" in panel.cache_list.item(0).text()
    panel._open_item(panel.cache_list.item(0))
    assert opened == [st.path]


def test_cancel_leaves_partial(qtbot, panel, pacs):
    import threading

    class CancelAfter(threading.Event):
        """Cancel pressed once 3 instances are in (checked by the job between yields)."""

        def __init__(self):
            super().__init__()
            self.checks = 0

        def is_set(self):
            self.checks += 1
            return super().is_set() or self.checks > 4

    panel.node_box.setCurrentText("orthanc")
    panel._cancel = CancelAfter()
    with qtbot.waitSignal(panel.retrieved, timeout=20000) as got:
        panel.retrieve([pacs.study], method="get")
    st = got.args[0]
    assert not st.complete and st.error == "cancelled" and st.received >= 3
    assert st.missing == 30 - st.received
    qtbot.waitUntil(lambda: not panel.busy(), timeout=5000)
    assert "partial" in panel.cache_list.item(0).text() and "Cancelled" in panel.status.text()
    panel._open_item(panel.cache_list.item(0))
    assert "INCOMPLETE" in panel.status.text() and "missing" in panel.status.text()


def test_errors_are_shown(qtbot, panel):
    panel.node_box.setCurrentText("dead")
    with qtbot.waitSignal(panel.failed, timeout=10000) as got:
        panel.search()
    assert "connection refused" in got.args[0]
    qtbot.waitUntil(lambda: not panel.busy(), timeout=5000)
    assert "connection refused" in panel.status.text()


def test_settings_page_test_button(qtbot, pacs, tmp_path):
    from radview.gui.widgets.pacs_settings import PacsSettingsPage

    page = PacsSettingsPage(NodeBook.load(tmp_path / "nodes.json"))
    qtbot.addWidget(page)
    page.name.setText("o")
    page.host.setText(pacs.host)
    page.port.setValue(pacs.dicom_port)
    page.called.setText("WRONG")
    with qtbot.waitSignal(page.tested, timeout=10000) as got:
        page.test()
    assert got.args[0] is False and "Called AE title not recognised" in got.args[1]
    page.called.setText(pacs.aet)
    with qtbot.waitSignal(page.tested, timeout=10000) as got:
        page.test()
    assert got.args[0] is True
    assert page.save() and NodeBook.load(tmp_path / "nodes.json").get("o").port == pacs.dicom_port
    page.host.clear()
    assert not page.save() and "no host" in page.result.text()


def test_send_reads_back(qtbot, tmp_path, pacs):
    """The selected study's reads go back to the PACS as SR + GSPS, found there afterwards."""
    from radview.gui.widgets.pacs_panel import PacsPanel
    from radview.net import StudyQuery, find_studies
    from test_export_sr import labelled_store

    store, res, study, keys, files = labelled_store(tmp_path)
    book = NodeBook.load(tmp_path / "p.json")
    node = Node("orthanc", host=pacs.host, port=pacs.dicom_port, called_aet=pacs.aet, timeout=5)
    book.add(node)
    book.save()
    p = PacsPanel(book=book, cache=PacsCache(tmp_path / "c"), store=store)
    qtbot.addWidget(p)
    with qtbot.waitSignal(p.sent, timeout=15000) as got:
        p.send([study.key])
    assert got.args == [2]
    found = find_studies(node, StudyQuery(study_uid=study.key))
    assert set(found[0].modalities.split("\\")) == {"SR", "PR"}
    qtbot.waitUntil(lambda: not p.busy(), timeout=5000)
    with qtbot.waitSignal(p.failed, timeout=15000) as got:
        p.send(["1.2.3"])
    assert "no labels" in got.args[0]
