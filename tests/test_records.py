"""core/records.py: record files take any value a model can write, survive bad lines, and have one writer."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.records import RecordLog, RecordsBusy, read_records, write_json_atomic

ROOT = Path(__file__).resolve().parent.parent


def test_any_value_a_model_writes_round_trips_or_is_described(tmp_path):
    huge = 7 ** 6000  # 5,071 digits, over Python's int-to-str limit: json.dumps raises on it
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    log = RecordLog(tmp_path / "r.jsonl")
    log.add({"id": "a", "raw": "lone \ud800 surrogate"})
    log.add({"id": "b", "value": huge, "ok": 3})
    log.add({"id": "c", "value": deep})
    log.close()
    back = {r["id"]: r for r in read_records(tmp_path / "r.jsonl")}
    assert back["a"]["raw"] == "lone \ud800 surrogate"
    assert back["b"]["ok"] == 3 and back["b"]["value"] == "<integer of about 5070 digits>"
    assert isinstance(back["c"]["value"], list)
    write_json_atomic(tmp_path / "s.json", {"text": "\udfff", "n": huge})
    assert json.loads((tmp_path / "s.json").read_text())["text"] == "\udfff"


def test_a_bad_line_in_the_middle_loses_only_itself_and_a_torn_last_line_is_cut(tmp_path):
    path = tmp_path / "r.jsonl"
    deep = "[" * 100_000 + "]" * 100_000
    path.write_text('{"id": "a"}\n{"id": "b", oops\n' + deep + '\n{"no_id": 1}\n{"id": "c"}\n{"id": "d", "tor')
    log = RecordLog(path)
    assert sorted(log.records) == ["a", "c"]
    assert log.skipped == [2, 3, 4]
    log.add({"id": "e"})
    log.close()
    assert [r["id"] for r in read_records(path)] == ["a", "c", "e"]
    assert path.read_text().endswith('{"id": "c"}\n{"id": "e"}\n')  # the bad lines stay, the torn one is gone


HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from core.records import RecordLog
    log = RecordLog(Path(sys.argv[1]))
    print("holding", flush=True)
    time.sleep(60)
""")


def test_a_second_process_cannot_append_to_records_another_is_writing(tmp_path):
    """An on-demand eval with the run's own eval settings, while the loop's eval of the same weights is
    paused mid-way, has the same eval id: it must not append to the same records file."""
    path = tmp_path / "records.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(root=str(ROOT)), str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(RecordsBusy, match="another process is writing these records"):
            RecordLog(path)
    finally:
        holder.kill()
        holder.wait()
    RecordLog(path).close()  # the lock went with the process
