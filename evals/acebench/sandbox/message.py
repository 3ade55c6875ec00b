"""MessageApi: a six-user inbox of at most six messages (agent_sandbox_spec.md §6).

Kept as upstream behaves, because the ground truth depends on it: sent messages have no ``time``
(so the time-based lookups raise ``KeyError('time')`` while one is in the inbox), the capacity check
comes before the name check, and ids only count up.
"""
from __future__ import annotations

from datetime import datetime

from evals.acebench.sandbox.base import BaseApi, fail, ok
from evals.acebench.sandbox.state import fill


class MessageApi(BaseApi):
    PUBLIC = BaseApi.PUBLIC + ("send_message", "delete_message", "view_messages_between_users", "search_messages",
                               "get_all_message_times_with_ids", "get_latest_message_id", "get_earliest_message_id")

    def __init__(self):
        fill(self, "MessageApi")

    def send_message(self, sender_name, receiver_name, message):
        if not self.logged_in:
            return fail("Device not logged in, unable to send message")
        if not self.wifi:
            return fail("Wi-Fi is turned off, cannot send messages at this time")
        if len(self.inbox) >= self.max_capacity:
            return fail("Inbox capacity is full. You need to ask the user which message to delete.")
        if sender_name not in self.user_list or receiver_name not in self.user_list:
            return fail("Sender or receiver does not exist")
        self.message_id_counter += 1
        self.inbox[self.message_id_counter] = {"sender_id": self.user_list[sender_name]["user_id"],
                                               "receiver_id": self.user_list[receiver_name]["user_id"],
                                               "message": message}
        return ok(f"Message successfully sent to {receiver_name}.")

    def delete_message(self, message_id):
        if not self.logged_in:
            return fail("Device not logged in, unable to delete message")
        if message_id not in self.inbox:
            return fail("Message ID does not exist")
        del self.inbox[message_id]
        return ok(f"Message ID {message_id} has been successfully deleted.")

    def view_messages_between_users(self, sender_name, receiver_name):
        if not self.logged_in:
            return fail("Device not logged in, unable to view message information")
        if sender_name not in self.user_list:
            return fail("Sender does not exist")
        if receiver_name not in self.user_list:
            return fail("Receiver does not exist")
        sid, rid = self.user_list[sender_name]["user_id"], self.user_list[receiver_name]["user_id"]
        found = [{"id": mid, "sender": sender_name, "receiver": receiver_name, "message": m["message"]}
                 for mid, m in self.inbox.items() if m["sender_id"] == sid and m["receiver_id"] == rid]
        if not found:
            return fail("No related message records found")
        return {"status": True, "messages": found}

    def search_messages(self, user_name, keyword):
        if user_name not in self.user_list:
            return fail("User does not exist")
        uid = self.user_list[user_name]["user_id"]
        found = [{"id": mid, "sender_id": m["sender_id"], "receiver_id": m["receiver_id"], "message": m["message"]}
                 for mid, m in self.inbox.items()
                 if (m["sender_id"] == uid or m["receiver_id"] == uid) and keyword.lower() in m["message"].lower()]
        if not found:
            return fail("No messages found containing the keyword")
        return {"status": True, "messages": found}

    def get_all_message_times_with_ids(self):
        if not self.logged_in:
            return fail("Device not logged in, unable to retrieve all message times and their corresponding "
                        "message IDs.")
        return {mid: m["time"] for mid, m in self.inbox.items()}

    def _extreme_id(self, which: str):
        best_id, best = None, None
        for mid, m in self.inbox.items():
            t = datetime.strptime(m["time"], "%Y-%m-%d")
            if best is None or (t > best if which == "latest" else t < best):
                best_id, best = mid, t
        return {"status": True, "message": f"The {which} message ID is {best_id}", "message_id": best_id}

    def get_latest_message_id(self):
        if not self.logged_in:
            return fail("Device not logged in, unable to retrieve the latest sent message ID.")
        if not self.inbox:
            return fail("No message records found")
        return self._extreme_id("latest")

    def get_earliest_message_id(self):
        if not self.logged_in:
            return fail("Device not logged in, unable to retrieve the earliest sent message ID.")
        if not self.inbox:
            return fail("No message records found")
        return self._extreme_id("earliest")
