"""ReminderApi: at most six reminders (agent_sandbox_spec.md §7).

As upstream: the constructor leaves ``wifi``/``logged_in`` to the config loader, new reminders get
key = ``reminder_id`` = the counter (4, 5, ...) while the seeds use 1001-1003, and deletion is by key.
"""
from __future__ import annotations

from evals.acebench.sandbox.base import BaseApi, fail, ok
from evals.acebench.sandbox.state import fill


class ReminderApi(BaseApi):
    PUBLIC = BaseApi.PUBLIC + ("view_reminder_by_title", "add_reminder", "delete_reminder", "view_all_reminders")

    def __init__(self):
        fill(self, "ReminderApi")

    def view_reminder_by_title(self, title):
        if not self.logged_in:
            return fail("The device is not logged in, so you cannot view notifications")
        for r in self.reminder_list.values():
            if r["title"] == title:
                return {"status": True, "reminder": r}
        return fail(f"No reminder found with the title '{title}'.")

    def add_reminder(self, title, description, time):
        if not self.logged_in:
            return fail("Device not logged in. Unable to add a new reminder.")
        if len(self.reminder_list) >= self.max_capacity:
            return fail("Reminder capacity is full. Unable to add a new reminder.")
        self.reminder_id_counter += 1
        rid = self.reminder_id_counter
        self.reminder_list[rid] = {"reminder_id": rid, "title": title, "description": description, "time": time,
                                   "notified": False}
        return ok(f"Reminder '{title}' was successfully added.")

    def delete_reminder(self, reminder_id):
        if not self.logged_in:
            return fail("Device not logged in. Unable to delete the specified reminder.")
        if reminder_id not in self.reminder_list:
            return fail("Reminder ID does not exist.")
        del self.reminder_list[reminder_id]
        return ok(f"Reminder ID {reminder_id} was successfully deleted.")

    def view_all_reminders(self):
        if not self.reminder_list:
            return fail("No reminders found.")
        return {"status": True, "reminders": [{k: r[k] for k in ("title", "description", "time", "notified")}
                                              for r in self.reminder_list.values()]}
