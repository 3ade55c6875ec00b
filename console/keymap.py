"""The console's key bindings (each with an id) and the user keymap file that rebinds them.

$LOOPTOOL_HOME/keymap.toml maps binding ids to keys, e.g.

    pause = "space"
    detach = "ctrl+d"
    evaluate = "E,f5"     # several keys: comma separated

It is applied with App.set_keymap. A bad file stops `looptool console` with one line naming the
file and the key (or the TOML line).
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from textual.binding import Binding
from textual.keys import _normalize_key_list

from core import paths
from core.errors import UserError

# (id, default key, action, description, shown in the footer, a command the core receives)
BINDINGS = [
    Binding("p", "toggle_pause", "Pause/Resume", id="pause"),
    Binding("e", "evaluate", "Evaluate", id="evaluate"),
    Binding("s", "stop", "Stop run", id="stop"),
    Binding("r", "history", "Runs", id="history"),
    Binding("x", "examples", "Examples", id="examples"),
    Binding("slash", "focus_filter", "Filter", id="filter"),
    Binding("question_mark", "help", "Help", id="help"),
    Binding("q", "detach", "Detach", id="detach"),
]
BINDING_IDS = tuple(b.id for b in BINDINGS)
_KEY_RE = re.compile(r"^[^,\s]+(,[^,\s]+)*$")


def keymap_path() -> Path:
    return paths.home() / "keymap.toml"


def load_keymap(path: Path | None = None) -> dict[str, str]:
    """{binding_id: "key[,key...]"} from the keymap file; {} when it does not exist."""
    path = keymap_path() if path is None else Path(path)
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: {e}") from None  # tomllib says "(at line N, column M)"
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    out: dict[str, str] = {}
    for key, value in data.items():
        if key not in BINDING_IDS:
            raise UserError(f"{path}: {key}: unknown binding id; the ids are {', '.join(BINDING_IDS)}")
        if not isinstance(value, str) or not _KEY_RE.match(value.replace(" ", "")):
            raise UserError(f"{path}: {key}: expected a key name like \"space\", \"ctrl+d\" or \"f5,x\", "
                            f"got {value!r}")
        out[key] = value.replace(" ", "")
    effective = {b.id: b.key for b in BINDINGS} | out
    seen: dict[str, str] = {}
    for bid, keys in effective.items():
        for k in _normalize_key_list(keys).split(","):
            if k in seen:
                who = bid if bid in out else seen[k]
                raise UserError(f"{path}: {who}: key {k!r} is bound to both {seen[k]} and {bid}")
            seen[k] = bid
    return out
