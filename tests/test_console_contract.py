"""The console talks to the core only through its link (console/link.py), which talks only MQTT
through core.bus: no console module reads the results store, runs the engine, or speaks MQTT itself."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = ROOT / "console"
# the CLI plumbing (argument parsing, the headless printer, report tables, the HTML run report, discovery
# of local cores) is not the console app; everything else under console/ is
CLI_ONLY = {"cli.py", "cli_core.py", "cli_eval.py", "cli_export.py", "cli_options.py", "cli_runs.py", "cli_store.py",
            "headless.py", "report.py", "run_report.py", "run_plots.py", "commands.py", "discovery.py"}
ALLOWED_CORE = {"core.busproto", "core.errors", "core.paths"}  # the contract, errors, $LOOPTOOL_HOME
LINK_ALSO = {"core.bus"}  # the MQTT client: the link's alone
NEVER = ("aiomqtt", "paho", "amqtt", "tinydb", "evals")


def app_modules() -> list[Path]:
    return [p for p in CONSOLE.rglob("*.py") if p.relative_to(CONSOLE).as_posix() not in CLI_ONLY]


def imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "core":  # from core import busproto -> core.busproto
                for a in node.names:
                    yield node.lineno, f"core.{a.name}"
            else:
                yield node.lineno, node.module


def test_console_app_imports_only_the_bus_contract_from_core():
    bad = []
    mods = app_modules()
    assert {"app.py", "link.py", "memlink.py", "telemetry.py"} <= {p.name for p in mods}
    for p in mods:
        allowed = ALLOWED_CORE | (LINK_ALSO if p.name == "link.py" else set())
        for line, mod in imports(p):
            top = mod.split(".")[0]
            if top in NEVER or (top == "core" and mod not in allowed):
                bad.append(f"{p.relative_to(ROOT)}:{line}: imports {mod}")
    assert not bad, "\n".join(bad)


def test_console_app_never_names_the_store_file():
    for p in app_modules():
        text = p.read_text()
        assert "store_path" not in text and "looptool.db" not in text and "ResultStore" not in text, p


def test_importing_the_console_loads_no_engine_store_or_mqtt():
    code = ("import sys\n"
            "import console.app, console.link, console.memlink\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tinydb', 'aiomqtt', 'paho', 'amqtt', "
            "'evals', 'torch') or m in ('core.store', 'core.engine', 'core.daemon', 'core.worker', 'core.bus'))\n"
            "print(bad); sys.exit(1 if bad else 0)\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_every_publish_goes_through_link_transmit():
    """Only link.py's MqttLink publishes, and only via `_transmit` (commands) or its presence flag."""
    for p in app_modules():
        text = p.read_text()
        if p.name == "link.py":
            assert text.count("publish_nowait(") == 3  # command, presence on connect, presence cleared
            assert "await self.client.publish(" not in text
        else:
            assert "publish(" not in text and "publish_nowait(" not in text, p
