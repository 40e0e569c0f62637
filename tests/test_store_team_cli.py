"""`radview worklist ...` and `radview review --project` (issue 16) on SQLite and on PostgreSQL:
a blinded project read by three readers, adjudicated, and the review's agreement (inter-reader,
reader vs model, reader vs final, per study type) checked against scikit-learn; the review's
truths are the final labels."""
from __future__ import annotations

import json

import pytest

from postgres import pg_server, store_target  # noqa: F401
from radview.cli import main

sklearn_metrics = pytest.importorskip("sklearn.metrics")
torch = pytest.importorskip("torch")


def cli(capsys, *argv, code=0):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert rc == code, out.err
    return out.out, out.err


@pytest.fixture
def team(store_target, monkeypatch):
    """RADVIEW_STORE names the test's store: every command (and `radview review`) uses it."""
    monkeypatch.setenv("RADVIEW_STORE", str(store_target))
    monkeypatch.setenv("RADVIEW_ALLOW_TORCHSCRIPT", "1")   # the test model below is ours
    return store_target


def test_worklist_commands_blinded_flow(team, tmp_path, capsys):

    folder = _folder(tmp_path)
    cli(capsys, "worklist", "reader", "dana", "--role", "adjudicator")
    cli(capsys, "worklist", "--as", "root", "reader", "root", "--role", "admin")
    _, err = cli(capsys, "worklist", "--as", "alice", "reader", "alice", "--role", "admin", code=2)
    assert "only an admin changes roles" in err
    out, _ = cli(capsys, "worklist", "--as", "alice", "create", "p1", code=2)  # not a lead
    cli(capsys, "worklist", "--as", "dana", "create", "p1", "--reads", "2")
    out, _ = cli(capsys, "worklist", "--as", "dana", "add", "p1", "--folder", folder)
    assert out.startswith("8 items added")
    out, _ = cli(capsys, "worklist", "--as", "dana", "assign", "p1", "--readers", "alice,bob",
                 "--count", "3", "--random", "--seed", "4")
    assert out.splitlines() == ["alice: +3", "bob: +3"]
    mine = json.loads(cli(capsys, "worklist", "--as", "alice", "list", "p1", "--json")[0])
    assert len(mine) == 3 and all(w["read"] is None for w in mine)
    key = mine[0]["key"]
    cli(capsys, "worklist", "--as", "alice", "read", "p1", key, "dark")
    st = json.loads(cli(capsys, "worklist", "--as", "alice", "status", "p1", "--json")[0])
    assert st["blinded"] and [p["text"] for p in st["progress"]] == ["1/3 read"]  # only hers
    assert {i["status"] for i in st["items"]} <= {"open", "read"}
    if key not in [w["key"] for w in json.loads(
            cli(capsys, "worklist", "--as", "bob", "list", "p1", "--json")[0])]:
        cli(capsys, "worklist", "--as", "bob", "claim", "p1", key)
    cli(capsys, "worklist", "--as", "bob", "read", "p1", key, "bright")
    st = json.loads(cli(capsys, "worklist", "--as", "dana", "status", "p1", "--json")[0])
    assert {p["reader"] for p in st["progress"]} == {"alice", "bob"} and st["states"]["disputed"] == 1
    out, err = cli(capsys, "worklist", "--as", "alice", "adjudicate", "p1", key, "dark",
                   "--reason", "x", code=2)
    assert "adjudicator" in err
    out, _ = cli(capsys, "worklist", "--as", "dana", "adjudicate", "p1", key, "bright",
                 "--reason", "bright on the monitor")
    assert "(dana, adjudicator)" in out
    st = json.loads(cli(capsys, "worklist", "--as", "dana", "status", "p1", "--json")[0])
    item = next(i for i in st["items"] if i["key"] == key)
    assert (item["status"], item["final"], item["final_by"]) == ("final", "bright", "adjudication")


def _folder(tmp_path):
    from test_review_cli import make_folder

    return make_folder(tmp_path)


def test_review_project_agreement_against_scikit_learn(team, tmp_path, capsys):
    from test_review_cli import brightness_p, make_model

    from radview.store import LabelStore

    make_model()
    folder = _folder(tmp_path)
    cli(capsys, "worklist", "reader", "dana", "--role", "admin")
    cli(capsys, "worklist", "--as", "dana", "create", "p3", "--reads", "3")
    cli(capsys, "worklist", "--as", "dana", "add", "p3", "--folder", folder)
    cli(capsys, "worklist", "--as", "dana", "assign", "p3", "--readers", "alice,bob,carol")
    keys = sorted(str(p) for p in folder.rglob("*.png"))
    level = {k: int(k[-7:-4]) for k in keys}
    truth = {k: ("dark" if "/dark/" in k else "bright") for k in keys}
    flip = {"alice": set(), "bob": {keys[0], keys[1]}, "carol": {keys[1], keys[5]}}
    reads = {r: {k: (("bright" if truth[k] == "dark" else "dark") if k in flip[r] else truth[k])
                 for k in keys} for r in flip}
    for r, per in reads.items():
        for k, v in per.items():
            cli(capsys, "worklist", "--as", r, "read", "p3", k, v)
    # keys[1]: bob and carol flipped it, alice did not: disputed; dana sides with alice
    with LabelStore(reader="dana") as s:
        disputed = sorted(x.key for x in s.disputed("p3"))
    assert disputed == sorted({keys[0], keys[1], keys[5]})
    final = {k: truth[k] for k in keys}
    for k in disputed:
        cli(capsys, "worklist", "--as", "dana", "adjudicate", "p3", k, truth[k], "--reason", "seen")
    final[keys[1]] = truth[keys[1]]
    rc = main(["review", str(folder), "--model", "brightness", "--json", "--resamples", "100",
               "--project", "p3"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    d = json.loads(out.out)
    ag = d["agreement"]
    assert ag["project"] == "p3" and ag["readers"] == ["alice", "bob", "carol"]
    assert ag["headline"]["statistic"] == "fleiss" and ag["fleiss"]["n_items"] == 8
    got = {tuple(c["raters"]): c for c in ag["cohen"]}
    for a, b in (("alice", "bob"), ("alice", "carol"), ("bob", "carol")):
        want = sklearn_metrics.cohen_kappa_score([reads[a][k] for k in keys], [reads[b][k] for k in keys])
        assert got[(a, b)]["kappa"] == pytest.approx(want, abs=1e-6)
        assert got[(a, b)]["ci_low"] <= got[(a, b)]["kappa"] <= got[(a, b)]["ci_high"]
    model = {k: "bright" if brightness_p(level[k]) >= 0.5 else "dark" for k in keys}
    for r in reads:
        want_m = sklearn_metrics.cohen_kappa_score([reads[r][k] for k in keys], [model[k] for k in keys])
        want_f = sklearn_metrics.cohen_kappa_score([reads[r][k] for k in keys], [final[k] for k in keys])
        assert ag["reader_vs_model"][r]["kappa"] == pytest.approx(want_m, abs=1e-6)
        assert ag["reader_vs_final"][r]["kappa"] == pytest.approx(want_f, abs=1e-6)
    assert ag["reader_vs_final"]["alice"]["kappa"] == pytest.approx(1.0)
    # the review's truths are the final labels: all equal the folder classes here, and the
    # model's two mistakes stay the two mistakes
    assert d["n_corrected"] == 8 and d["confusion_matrix"] == [[3, 1], [1, 3]]
    # text output carries the agreement too
    rc = main(["review", str(folder), "--model", "brightness", "--resamples", "50", "--project", "p3"])
    text = capsys.readouterr().out
    assert rc == 0 and "agreement (project p3" in text and "Fleiss' kappa" in text
