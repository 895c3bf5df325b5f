"""The ENE v9 hierarchy held in solutions/ene_v9.tsv."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from solutions import ene

ROOT = Path(__file__).resolve().parents[1]


def official(shared_data: Path) -> Path:
    path = shared_data / "ene" / ene.OFFICIAL_FILENAME
    if not path.is_file():
        pytest.skip(f"{path} がありません")
    return path


def test_held_table_shape():
    assert len(ene.ene_ids()) == 294
    assert len(ene.leaves()) == 246
    assert ene.default_hierarchy().top_levels() == ("0", "1", "2", "3", "9")
    assert {"0", "9"} <= ene.leaves()  # CONCEPT and IGNORED are labels too


def test_lookups():
    assert ene.top_level("1.7.13.6") == "1"
    assert ene.top_level("1") == "1"
    assert ene.parent("1.7.13.6") == "1.7.13"
    assert ene.parent("1") is None
    assert ene.ancestors("1.7.13.6") == ("1.7.13", "1.7", "1")
    assert "1.7.13.6" in ene.children("1.7.13")
    assert ene.name("1") == "名前"
    assert ene.name("1", lang="en") == "Name"
    assert "1.7.13.6" in ene.leaves() and "1.7.13" not in ene.leaves()


def test_unknown_id_is_a_key_error():
    with pytest.raises(KeyError, match="ENE v9"):
        ene.top_level("1.99.1")
    with pytest.raises(ValueError):
        ene.name("1", lang="fr")


def test_every_node_reaches_a_top_level():
    tops = set(ene.default_hierarchy().top_levels())
    assert {ene.top_level(i) for i in ene.ene_ids()} == tops


def test_sort_key_is_numeric():
    assert sorted(["1.10", "1.2", "1", "9", "1.2.1"], key=ene.sort_key) == [
        "1", "1.2", "1.2.1", "1.10", "9"]


def test_table_round_trip(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text(ene.format_table(ene.default_hierarchy(), source="x"), encoding="utf-8")
    assert ene.read_table(path) == ene.default_hierarchy()


def test_hierarchy_rejects_broken_trees():
    with pytest.raises(ValueError, match="親"):
        ene.Hierarchy([ene.EneNode("1.1", "1", "a", "a")])
    with pytest.raises(ValueError, match="循環"):
        ene.Hierarchy([ene.EneNode("1", "2", "a", "a"), ene.EneNode("2", "1", "b", "b")])
    with pytest.raises(ValueError, match="重複"):
        ene.Hierarchy([ene.EneNode("1", None, "a", "a")] * 2)


def test_load_hierarchy_reports_bad_lines(tmp_path):
    path = tmp_path / "ene.jsonl"
    path.write_text('{"ENE_id": "1", "name": {"en": "N", "ja": "名"}, '
                    '"children_category": [], "parent_category": null}\n{"oops": 1}\n',
                    encoding="utf-8")
    with pytest.raises(ValueError, match=":2:"):
        ene.load_hierarchy(path)


def test_load_hierarchy_checks_children_lists(tmp_path):
    rows = [{"ENE_id": "1", "name": {"en": "N", "ja": "名"}, "children_category": ["1.1"],
             "parent_category": None}]
    path = tmp_path / "ene.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="children_category"):
        ene.load_hierarchy(path)


def test_held_table_equals_official_file(shared_data):
    source = official(shared_data)
    held = ene.default_hierarchy()
    theirs = ene.load_hierarchy(source)
    assert held.ids() == theirs.ids()
    assert {n.id: n.parent for n in held} == {n.id: n.parent for n in theirs}
    assert held == theirs  # names too
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    assert {r["ENE_id"]: r["parent_category"] for r in rows} == {n.id: n.parent for n in held}


def test_make_ene_table_script_reproduces_the_held_file(shared_data, tmp_path):
    source = official(shared_data)
    out = tmp_path / "ene_v9.tsv"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_ene_table.py"), str(source),
                    "-o", str(out)], check=True, capture_output=True)
    assert out.read_text(encoding="utf-8") == ene.TABLE_PATH.read_text(encoding="utf-8")


def test_held_table_holds_only_ids_parents_and_names():
    lines = [x for x in ene.TABLE_PATH.read_text(encoding="utf-8").splitlines()
             if not x.startswith("#")]
    assert lines[0].split("\t") == list(ene.TABLE_COLUMNS)
    assert all(len(x.split("\t")) == 4 for x in lines)
    assert max(len(field) for x in lines for field in x.split("\t")) < 60  # no definitions


def test_solutions_does_not_import_autograder():
    code = ("import sys, solutions.ene; solutions.ene.ene_ids(); "
            "assert not [m for m in sys.modules if m.startswith('autograder')]")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
