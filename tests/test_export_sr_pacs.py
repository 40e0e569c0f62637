"""The reads go to a real Orthanc as SR + GSPS (C-STORE and STOW-RS), are found there again and
come back into a fresh store equal; the CLI drives the same path (`radview pacs ...`)."""
from __future__ import annotations

import json

import pydicom
import pytest

from orthanc import Orthanc, require
from radview.cli import main
from radview.export.dicom_sr import collect_reads, study_objects
from radview.io.studies import scan
from radview.net import Node, PacsCache, StudyQuery, find_studies, iter_retrieve, iter_send
from radview.net.sr_import import import_sr
from radview.store import LabelStore
from test_export_sr import _labels, labelled_store


@pytest.fixture
def pacs(tmp_path):
    require(dicomweb=True)
    o = Orthanc.start(tmp_path / "orthanc")
    yield o
    o.kill()


def _dimse(o):
    return Node("o", host=o.host, port=o.dicom_port, called_aet=o.aet, timeout=5)


@pytest.mark.parametrize("via", ["dimse", "dicomweb"])
def test_send_find_retrieve_reimport(pacs, tmp_path, via):
    a, res, study, keys, files = labelled_store(tmp_path)
    node = _dimse(pacs) if via == "dimse" else Node("w", url=pacs.dicomweb_url, timeout=5)
    list(iter_send(node, files))                          # the images are on the PACS
    reads, _ = collect_reads(a)
    objs = study_objects(reads[0])
    assert [o.Modality for o in objs] == ["SR", "PR"]
    list(iter_send(node, objs))                           # C-STORE or STOW-RS
    found = find_studies(node, StudyQuery(study_uid=study.key))
    assert len(found) == 1 and set(found[0].modalities.split("\\")) == {"CR", "SR", "PR"}
    assert found[0].n_instances == 5
    cache = PacsCache(tmp_path / "cache")
    method = "get" if via == "dimse" else "wado"
    st = list(iter_retrieve(node, study.key, method=method, cache=cache))[-1].payload
    assert st.complete and st.received == 5
    srs = [p for p in cache.study_dir(study.key).glob("*.dcm") if pydicom.dcmread(p).Modality == "SR"]
    assert len(srs) == 1
    # a fresh store that knows the retrieved images (a rescan of the cache) takes the SR back
    b = LabelStore(tmp_path / "b.sqlite")
    b.record_scan(scan(st.path, use_index=False))
    r = import_sr(b, srs[0])
    assert r.unmatched == () and r.boxes == 2
    by_sop = {pydicom.dcmread(k).SOPInstanceUID: k for k in keys}
    a_img = {str(pydicom.dcmread(k).SOPInstanceUID): v for k, v in _labels(a)["image"].items()}
    b_img = {str(pydicom.dcmread(k).SOPInstanceUID): v for k, v in _labels(b)["image"].items()}
    assert a_img == b_img and len(by_sop) == 3
    assert _labels(b)["study"][study.key] == _labels(a)["study"][study.key]


def test_cli_pacs(pacs, tmp_path, capsys):
    a, res, study, keys, files = labelled_store(tmp_path)
    a.close()
    node = ["--host", pacs.host, "--port", str(pacs.dicom_port), "--called-aet", pacs.aet,
            "--calling-aet", "RVTEST"]
    for f in files:
        pacs.upload(f)
    assert main(["pacs", "echo", *node]) == 0
    assert "C-ECHO ok" in capsys.readouterr().out
    assert main(["pacs", "find", *node, "--patient-id", "PID-7", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["StudyInstanceUID"] for r in rows] == [study.key] and rows[0]["n_instances"] == 3
    assert main(["pacs", "find", *node, "--level", "patient", "--patient", "Doe*", "--json"]) == 0
    assert [(r["patient_id"], r["n_studies"]) for r in json.loads(capsys.readouterr().out)] == [("PID-7", 1)]
    assert main(["pacs", "find", "--url", pacs.dicomweb_url, "--modality", "CR", "--json"]) == 0
    assert [r["StudyInstanceUID"] for r in json.loads(capsys.readouterr().out)] == [study.key]
    store = str(tmp_path / "a.sqlite")
    assert main(["pacs", "send", *node, "--study", study.key, "--store", store]) == 0
    assert "sent 2 object(s)" in capsys.readouterr().out
    assert main(["pacs", "get", *node, "--study", study.key, "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["state"] == "complete" and st["received"] == 5 and st["missing"] == 0
    # a fresh store gets the study and its reads back from the PACS in one command
    fresh = str(tmp_path / "fresh.sqlite")
    assert main(["pacs", "get", *node, "--study", study.key, "--import-reads", "--store", fresh,
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [(i["labels"], i["boxes"]) for i in got["imported"]] == [(2, 2)]
    with LabelStore(fresh) as f, LabelStore(store) as a2:
        sop = lambda lab: {str(pydicom.dcmread(k).SOPInstanceUID): v  # noqa: E731
                           for k, v in lab["image"].items()}
        assert sop(_labels(f)) == sop(_labels(a2))
        assert _labels(f)["study"][study.key] == _labels(a2)["study"][study.key]
    assert main(["pacs", "cache"]) == 0
    assert "complete (5 instances)" in capsys.readouterr().out
    # de-identified send: a second, pseudonymous study appears on the PACS
    assert main(["pacs", "send", "--url", pacs.dicomweb_url, "--study", study.key, "--store", store,
                 "--deidentify", "--no-gsps"]) == 0
    assert "sent 1 object(s)" in capsys.readouterr().out
    from radview.export.deid import Deidentifier

    pseudo = Deidentifier.for_home().uid(study.key)
    assert main(["pacs", "find", *node, "--study", pseudo, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["modalities"] for r in rows] == ["SR"] and rows[0]["patient_id"] != "PID-7"
    # import the retrieved SR into a fresh store through the CLI
    sr = next(p for p in PacsCache().study_dir(study.key).glob("*.dcm")
              if pydicom.dcmread(p).Modality == "SR")
    b = LabelStore(tmp_path / "b.sqlite")
    b.record_scan(res)
    b.close()
    assert main(["pacs", "import-sr", str(sr), "--store", str(tmp_path / "b.sqlite")]) == 0
    assert "2 label(s), 2 box(es)" in capsys.readouterr().out
    with LabelStore(tmp_path / "b.sqlite") as b2, LabelStore(store) as a2:
        assert _labels(b2)["image"] == _labels(a2)["image"]


def test_cli_errors_are_one_line(pacs, tmp_path, capsys):
    from orthanc import free_port

    assert main(["pacs", "echo", "--host", "127.0.0.1", "--port", str(free_port()),
                 "--called-aet", "X"]) == 2
    err = capsys.readouterr().err
    assert "connection refused" in err and err.count("\n") == 1
    assert main(["pacs", "echo", "--host", pacs.host, "--port", str(pacs.dicom_port),
                 "--called-aet", "WRONG"]) == 2
    assert "Called AE title not recognised" in capsys.readouterr().err
    assert main(["pacs", "get", "--host", pacs.host, "--port", str(pacs.dicom_port),
                 "--called-aet", pacs.aet, "--study", "1.2.3.4"]) == 2
    assert "not on this PACS" in capsys.readouterr().err
    assert main(["pacs", "echo"]) == 2
    assert main(["pacs", "nodes", "add", "main", "--host", pacs.host, "--port",
                 str(pacs.dicom_port), "--called-aet", pacs.aet]) == 0
    assert main(["pacs", "echo", "--node", "main"]) == 0
    assert "main" in capsys.readouterr().out
