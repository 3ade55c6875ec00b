"""The ACEBench English agent sandbox: BaseApi, MessageApi, ReminderApi, FoodPlatform and Travel,
re-implemented from ../shared/acebench/agent_sandbox_spec.md with the starting state in
initial_state_en.json (ACEBench data, MIT License). Calls are parsed with ast and dispatched by name
(executor.py); model text is never evaluated."""
from evals.acebench.sandbox.executor import CLASSES, NOT_A_QUESTION, Sandbox, parse, routes_to_execution

__all__ = ["CLASSES", "NOT_A_QUESTION", "Sandbox", "parse", "routes_to_execution"]
