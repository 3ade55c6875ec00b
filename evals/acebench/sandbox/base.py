"""BaseApi: the device's Wi-Fi and login flags (agent_sandbox_spec.md §5)."""
from __future__ import annotations

from evals.acebench.sandbox.state import fill


def ok(message: str) -> dict:
    return {"status": True, "message": message}


def fail(message: str) -> dict:
    return {"status": False, "message": message}


class BaseApi:
    PUBLIC = ("turn_on_wifi", "login_device")

    def __init__(self):
        fill(self, "BaseApi")

    def _load_scenario(self, config: dict) -> None:
        self.wifi = config.get("wifi", False)
        self.logged_in = config.get("logged_in", True)

    def turn_on_wifi(self):
        self.wifi = True
        return ok("Wi-Fi has been turned on")

    def login_device(self):
        self.logged_in = True
        return ok("Device has been logged in")
