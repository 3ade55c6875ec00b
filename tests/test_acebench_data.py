"""ACEBench data: the pinned sha256 values, --data-dir checks, the download path (against a local HTTP server
on 127.0.0.1 serving ../shared/acebench; never the network), loading and selection."""
from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import socket
import threading
from pathlib import Path

import pytest

from core.errors import InputFileError, UserError
from evals.acebench import data, fetch

DATA = Path(__file__).parents[1].parent / "shared" / "acebench" / "data_en"


def test_checksums_match_the_shared_copy():
    files = fetch.manifest()["files"]
    assert len(files) == 34
    on_disk = sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*.json"))
    assert sorted(files) == on_disk
    for rel, meta in files.items():
        body = (DATA / rel).read_bytes()
        assert hashlib.sha256(body).hexdigest() == meta["sha256"] and len(body) == meta["bytes"], rel
    assert fetch.commit() == "56dd66cf6439b0d9655ee1b353e4cd745c6f664e"
    fetch.verify(DATA)


def test_an_altered_or_incomplete_copy_is_refused(tmp_path):
    copy = tmp_path / "data_en"
    shutil.copytree(DATA, copy)
    (copy / "data_special_irrelevant.json").write_bytes(b"{}\n")
    with pytest.raises(UserError, match="data_special_irrelevant.json: sha256 differs"):
        fetch.verify(copy)
    (copy / "data_special_irrelevant.json").unlink()
    with pytest.raises(UserError, match="missing"):
        fetch.resolve_data_dir(copy)
    with pytest.raises(UserError, match="no such directory"):
        fetch.verify(tmp_path / "nope")


class _Mirror(http.server.SimpleHTTPRequestHandler):
    """Serves <root>/data_all/data_en/<file> from ../shared/acebench/data_en, optionally corrupting one file."""
    corrupt: str | None = None
    hits: list = []

    def translate_path(self, path):
        rel = path.split("?", 1)[0].lstrip("/")
        prefix = "data_all/data_en/"
        self.hits.append(rel)
        return str(DATA / rel[len(prefix):]) if rel.startswith(prefix) else "/nonexistent"

    def copyfile(self, source, outputfile):
        body = source.read()
        if self.corrupt and self.path.endswith(self.corrupt):
            body = body[:-2] + b"x\n"
        outputfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def mirror():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Mirror.corrupt, _Mirror.hits = None, []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_from_a_local_mirror(tmp_path, mirror):
    target = tmp_path / "cache" / "data_en"
    got = fetch.download(target, base_url=mirror)
    assert got == target and not fetch.problems(target)
    assert len(_Mirror.hits) == 34 and not list(target.rglob("*.part"))
    _Mirror.hits.clear()
    fetch.download(target, base_url=mirror)  # complete and verified: nothing fetched again
    assert _Mirror.hits == []


def test_default_location_downloads_once(tmp_path, mirror, monkeypatch):
    monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path))
    monkeypatch.setenv(fetch.URL_ENV, mirror)
    root = fetch.resolve_data_dir(None)
    assert root == tmp_path / "acebench" / "56dd66cf6439" / "data_en"
    assert len(data.load_category(root, "agent_multi_step")) == 20
    _Mirror.hits.clear()
    assert fetch.resolve_data_dir(None) == root and _Mirror.hits == []


def test_a_corrupted_download_writes_nothing(tmp_path, mirror):
    _Mirror.corrupt = "data_normal_atom_enum.json"
    target = tmp_path / "data_en"
    with pytest.raises(UserError, match="data_normal_atom_enum.json: sha256 .* does not match"):
        fetch.download(target, base_url=mirror)
    assert not (target / "data_normal_atom_enum.json").exists()
    assert not list(target.rglob("*.part"))


def test_offline_gives_a_clear_error(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match=r"cannot download ACEBench data .*Offline\? Pass --data-dir"):
        fetch.download(tmp_path / "d", base_url=f"http://127.0.0.1:{port}", timeout=5)


def test_http_errors_are_reported(tmp_path, mirror):
    with pytest.raises(UserError, match="HTTP 404"):
        fetch.download(tmp_path / "d", base_url=mirror + "/elsewhere")


def test_loading_and_entry_fields():
    sizes = data.full_sizes(DATA)
    assert sum(sizes.values()) == 900 and sizes["normal_multi_turn_user_adjust"] == 50
    assert sum(len(data.load_category(DATA, c)) for c in data.CATEGORIES) == 1023
    pref = data.load_category(DATA, "normal_preference")[0]
    assert pref.profile and pref.time is None
    agent = data.load_category(DATA, "agent_multi_turn")[0]
    assert agent.extra["involved_classes"] and agent.extra["mile_stone"]
    turn = data.load_category(DATA, "normal_multi_turn_user_switch")[3]
    assert turn.dialogue == "normal_multi_turn_user_switch_1"


def test_malformed_data_files_name_file_and_line(tmp_path):
    root = tmp_path / "d"
    (root / "possible_answer").mkdir(parents=True)
    (root / "data_agent_multi_step.json").write_text('{"id": "a_0", "question": "q", "function": []}\n{oops\n')
    (root / "possible_answer" / "data_agent_multi_step.json").write_text('{"id": "a_0", "ground_truth": []}\n')
    with pytest.raises(InputFileError, match=r"data_agent_multi_step.json:2: not valid JSON"):
        data.load_category(root, "agent_multi_step")
    (root / "data_agent_multi_step.json").write_text('{"id": "a_0", "question": "q", "function": []}\n')
    (root / "possible_answer" / "data_agent_multi_step.json").write_text('{"id": "b_0", "ground_truth": []}\n')
    with pytest.raises(InputFileError, match=r":1: id 'b_0' does not match"):
        data.load_category(root, "agent_multi_step")


def test_categories_and_ids():
    assert data.parse_categories("all") == list(data.CATEGORIES)
    assert data.parse_categories("atom,special_irrelevant,atom_bool") == list(data.ATOM) + ["special_irrelevant"]
    assert data.parse_categories("agent") == ["agent_multi_turn", "agent_multi_step"]
    with pytest.raises(UserError, match="unknown category 'bogus'"):
        data.parse_categories("normal,bogus")
    assert data.category_of_id("normal_multi_turn_user_adjust_3_1") == "normal_multi_turn_user_adjust"
    assert data.category_of_id("special_error_param_12") == "special_error_param"
    for bad in ("normal_atom_bool", "simple_python_1", "normal_multi_turn_user_adjust_x"):
        with pytest.raises(UserError):
            data.category_of_id(bad)


def test_seeded_selection_is_stable_and_takes_whole_dialogues():
    small = data.select(DATA, ["normal_atom_enum", "normal_multi_turn_user_adjust"], per_category=3, seed=7)
    big = data.select(DATA, ["normal_atom_enum", "normal_multi_turn_user_adjust"], per_category=6, seed=7)
    assert {e.id for e in small} <= {e.id for e in big}
    assert small == data.select(DATA, ["normal_atom_enum", "normal_multi_turn_user_adjust"], per_category=3, seed=7)
    assert small != data.select(DATA, ["normal_atom_enum", "normal_multi_turn_user_adjust"], per_category=3, seed=8)
    dialogues = {e.dialogue for e in small if e.dialogue}
    assert len(dialogues) == 3
    full = {e.id for e in data.load_category(DATA, "normal_multi_turn_user_adjust") if e.dialogue in dialogues}
    assert full == {e.id for e in small if e.dialogue}
    picked = data.select(DATA, list(data.CATEGORIES), ids=["normal_multi_turn_user_adjust_0_1", "agent_multi_step_3"])
    assert [e.id for e in picked] == ["normal_multi_turn_user_adjust_0_0", "normal_multi_turn_user_adjust_0_1",
                                      "agent_multi_step_3"]
    with pytest.raises(UserError, match="special_irrelevant_999"):
        data.select(DATA, ["special_irrelevant"], ids=["special_irrelevant_999"])


def test_initial_state_file_credits_acebench():
    state = json.loads((Path(fetch.__file__).parent / "sandbox" / "initial_state_en.json").read_text())
    assert "ACEBench" in state["_about"] and "MIT" in state["license"]
