"""The ACEBench agent sandbox against its spec (../shared/acebench/agent_sandbox_spec.md): initial state,
the conformance traces of §12, executor parsing and error handling, and replaying every task's
milestone calls to the ground-truth end state."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evals.acebench import data, truth
from evals.acebench.sandbox import CLASSES, NOT_A_QUESTION, Sandbox, parse, routes_to_execution
from evals.acebench.sandbox.executor import Unparsable
from evals.acebench.sandbox.state import initial

ACE = Path(__file__).parents[1].parent / "shared" / "acebench"
DATA = ACE / "data_en"
SPEC_STATE = json.loads((ACE / "agent_sandbox_initial_state_en.json").read_text())


def ok(msg):
    return {"status": True, "message": msg}


def bad(msg):
    return {"status": False, "message": msg}


def step(sb, text):
    content, parsed = sb.run(text, "multi_step")
    assert parsed, text
    return content


def test_initial_state_and_public_methods_match_the_spec_file():
    for name, cls in CLASSES.items():
        want = SPEC_STATE[name]
        got = json.loads(json.dumps(initial(name)))
        assert got == want["initial_attributes"], name
        assert list(got) == list(want["initial_attributes"]), name  # attribute order as upstream
        assert set(cls.PUBLIC) == set(want["public_methods"]), name
        inst = cls()
        public = {m for m in dir(inst) if not m.startswith("_") and callable(getattr(inst, m))}
        assert public == set(cls.PUBLIC), name  # nothing else is callable by the model


def test_config_comes_from_the_baseapi_section_only():
    sb = Sandbox(["BaseApi", "MessageApi", "ReminderApi", "FoodPlatform", "Travel"],
                 {"BaseApi": {"wifi": True, "logged_in": False},
                  "FoodPlatform": {"logged_in_users": ["Eve"], "wifi": False}})
    for name in ("BaseApi", "MessageApi", "ReminderApi", "FoodPlatform"):
        assert (sb.instances[name].wifi, sb.instances[name].logged_in) == (True, False), name
    assert sb.instances["FoodPlatform"].logged_in_users == []
    assert not hasattr(sb.instances["Travel"], "wifi")
    assert sb.saved_state() == []  # nothing registered before an execution turn


def test_trace_a_messages():
    sb = Sandbox(["BaseApi", "MessageApi"], {"BaseApi": {"wifi": False, "logged_in": True}})
    send = "[send_message(sender_name='Grace', receiver_name='Frank', message='hi')]"
    assert step(sb, send) == [bad("Wi-Fi is turned off, cannot send messages at this time")]
    assert step(sb, "[turn_on_wifi()]") == [ok("Wi-Fi has been turned on")]
    assert step(sb, send) == [bad("Inbox capacity is full. You need to ask the user which message to delete.")]
    assert step(sb, "[get_earliest_message_id()]") == [
        {"status": True, "message": "The earliest message ID is 3", "message_id": 3}]
    assert step(sb, "[delete_message(message_id=3)]") == [ok("Message ID 3 has been successfully deleted.")]
    assert step(sb, "[send_message(sender_name='Nobody', receiver_name='Frank', message='x')]") == [
        bad("Sender or receiver does not exist")]
    assert step(sb, send) == [ok("Message successfully sent to Frank.")]
    assert sb.instances["MessageApi"].inbox[7] == {"sender_id": "USR102", "receiver_id": "USR101", "message": "hi"}
    assert step(sb, send) == [bad("Inbox capacity is full. You need to ask the user which message to delete.")]
    assert step(sb, "[get_latest_message_id()]") == ["Error during execution: 'time'"]
    assert step(sb, "[get_all_message_times_with_ids()]") == ["Error during execution: 'time'"]
    out = step(sb, "[delete_message(message_id=7), delete_message(message_id=1), "
                   "send_message(sender_name='Eve', receiver_name='Jack', message='x')]")
    assert out == [ok("Message ID 7 has been successfully deleted."), ok("Message ID 1 has been successfully deleted."),
                   ok("Message successfully sent to Jack.")]
    assert step(sb, "[view_messages_between_users(sender_name='Eve', receiver_name='Jack')]") == [
        {"status": True, "messages": [{"id": 8, "sender": "Eve", "receiver": "Jack", "message": "x"}]}]
    found = step(sb, "[search_messages(user_name='Jack', keyword='CALL')]")[0]
    assert [m["id"] for m in found["messages"]] == [5]
    state = {k: v for d in sb.saved_state() for k, v in d.items()}
    assert state["BaseApi"] == {"wifi": True, "logged_in": True}
    assert list(state["MessageApi"]["inbox"]) == ["2", "4", "5", "6", "8"]  # JSON round trip: string keys


def test_trace_b_reminders_and_device_login():
    sb = Sandbox(["BaseApi", "MessageApi", "ReminderApi"], {"BaseApi": {"wifi": True, "logged_in": False}})
    assert step(sb, "[view_messages_between_users(sender_name='Eve', receiver_name='Frank')]") == [
        bad("Device not logged in, unable to view message information")]
    assert step(sb, "[search_messages(user_name='Eve', keyword='meeting')]")[0]["messages"][0]["id"] == 1
    assert len(step(sb, "[view_all_reminders()]")[0]["reminders"]) == 3
    add = "[add_reminder(title='t{}', description='d', time='2024-07-15 09:00')]"
    assert step(sb, add.format(0)) == [bad("Device not logged in. Unable to add a new reminder.")]
    assert step(sb, "[login_device()]") == [ok("Device has been logged in")]
    for i in (1, 2, 3):
        assert step(sb, add.format(i)) == [ok(f"Reminder 't{i}' was successfully added.")]
    assert step(sb, add.format(9)) == [bad("Reminder capacity is full. Unable to add a new reminder.")]
    assert step(sb, "[delete_reminder(reminder_id=1001)]") == [bad("Reminder ID does not exist.")]
    assert step(sb, "[delete_reminder(reminder_id=1)]") == [ok("Reminder ID 1 was successfully deleted.")]
    assert step(sb, add.format(4)) == [ok("Reminder 't4' was successfully added.")]
    reminders = sb.instances["ReminderApi"].reminder_list
    assert list(reminders) == [2, 3, 4, 5, 6, 7] and reminders[7]["reminder_id"] == 7


def test_trace_c_food():
    sb = Sandbox(["BaseApi", "MessageApi", "FoodPlatform"], {"BaseApi": {"wifi": False, "logged_in": False}})
    login = "[login_food_platform(username='Grace', password='{}')]"
    order = "[add_food_delivery_order(username='{}', merchant_name=\"Domino's\", items={})]"
    assert step(sb, login.format("password789")) == [bad("Wi-Fi is not enabled, unable to login")]
    step(sb, "[turn_on_wifi()]")
    assert step(sb, login.format("nope")) == [bad("Incorrect password")]
    assert step(sb, login.format("password789")) == [ok("User Grace has successfully logged in!")]
    assert step(sb, login.format("password789")) == [bad("Grace is already logged in")]
    assert step(sb, order.format("Eve", "[]")) == [bad("User Eve is not logged in to the food platform")]
    assert step(sb, order.format("Grace", "[{'product': 'Margherita Pizza', 'quantity': 3}]")) == [
        bad("Insufficient balance to place the order")]
    assert step(sb, order.format("Grace", "[{'product': 'Margherita Pizza', 'quantity': 0}]")) == [
        bad("Invalid quantity 0 for product Margherita Pizza")]
    assert step(sb, order.format("Grace", "[{'product': 'Margherita', 'quantity': 1}]")) == [
        bad("Product Margherita does not exist in Domino's's menu")]
    assert step(sb, order.format("Grace", "[{'product': 'Margherita Pizza'}]")) == [
        ok("Food delivery order successfully placed with Domino's. Total amount: 68.0 yuan")]
    assert step(sb, "[check_balance(user_name='Grace'), check_balance(user_name='Zed')]") == [82.0, 0.0]
    menu, missing = step(sb, "[get_products(merchant_name='Heytea'), get_products(merchant_name='KFC')]")
    assert isinstance(menu, str) and menu.startswith("[{'product': 'Cheese Milk Tea', 'price': 25.0}")
    assert missing == bad("Merchant 'KFC' does not exist")
    assert step(sb, order.format("Grace", "[]")) == [
        ok("Food delivery order successfully placed with Domino's. Total amount: 0.0 yuan")]
    state = {k: v for d in sb.saved_state() for k, v in d.items()}
    assert state["BaseApi"] == {"wifi": True, "logged_in": False}
    assert [o["total_price"] for o in state["FoodPlatform"]["orders"]] == [68.0, 0.0]


def test_trace_d_travel_booking():
    sb = Sandbox(["Travel"], {})
    out = step(sb, "[reserve_flight(user_id='user2', password='password456', flight_no='CA1234', "
                   "cabin='Economy Class', payment_method='bank', baggage_count=1), reserve_flight(user_id='user2', "
                   "password='password456', flight_no='CZ4352', cabin='Economy Class', payment_method='bank', "
                   "baggage_count=1)]")
    assert out == ["Booking successful. Reservation ID: res_5. Total cost: 1200 yuan (including baggage fees).",
                   "Booking successful. Reservation ID: res_6. Total cost: 1600 yuan (including baggage fees)."]
    t = sb.instances["Travel"]
    assert t.users["user2"]["bank_balance"] == 5200.0
    r = "[reserve_flight(user_id='{}', password='{}', flight_no='{}', cabin='{}', payment_method='{}', baggage_count={})]"
    assert step(sb, r.format("user1", "password123", "CZ1765", "Business Class", "cash", 4)) == [
        "Your cash balance is insufficient. Please consider using another payment method."]
    assert step(sb, r.format("user3", "password789", "MU3561", "Economy Class", "bank", 4)) == [
        "Booking successful. Reservation ID: res_7. Total cost: 1550 yuan (including baggage fees)."]
    assert t.users["user3"]["bank_balance"] == 3450.0 and t.flights[0]["seats_available"] == 4
    assert step(sb, r.format("user1", "wrong", "CA1234", "Economy Class", "bank", 1)) == [
        "Error during execution: 'membership_level'"]
    assert step(sb, r.format("user1", "wrong", "XX0000", "Economy Class", "bank", 1)) == [
        "Error during execution: 'NoneType' object is not subscriptable"]
    assert step(sb, r.format("user1", "password123", "CA1234", "Economy", "bank", 1)) == [
        "Error during execution: 'Economy'"]
    assert step(sb, r.format("user1", "password123", "CA1234", "Economy Class", "card", 1)) == ["Invalid payment method"]
    assert "origin" not in t.reservations[-1] and len(t.reservations[-1]) == 6


def test_trace_e_travel_modify():
    sb = Sandbox(["Travel"], {})
    t = sb.instances["Travel"]
    m = "[modify_flight(user_id='{}', reservation_id='{}'{})]"
    assert step(sb, m.format("user1", "res_2", ", new_flight_no='CZ4352', new_cabin='Economy Class'")) == [
        "Flight number has been changed. Cabin change successful. Price difference refunded: 1100."]
    assert t.users["user1"]["bank_balance"] == 51100.0  # priced with MU5678's fares (multi_turn_25)
    assert step(sb, m.format("user1", "res_2", ", new_cabin='Business Class', new_payment_method='cash'")) == [
        "Cabin change successful. Price difference paid: 900."]
    assert t.users["user1"]["cash_balance"] == 1100.0 and t.reservations[1]["payment_method"] == "bank"
    assert step(sb, m.format("user1", "res_1", ", add_baggage=2")) == [
        "Baggage has been added. Additional fee to be paid: 100."]
    assert step(sb, m.format("user1", "res_1", ", add_baggage=1, new_payment_method='cash'")) == [
        "Baggage has been added. Additional fee to be paid: 150."]
    assert t.users["user1"]["cash_balance"] == 950.0 and t.reservations[0]["baggage"] == 4
    assert step(sb, m.format("user2", "res_1", "")) == ["Reservation not found or user ID does not match."]
    assert step(sb, m.format("user1", "res_1", "")) == ["Modification completed with no additional fees."]
    assert step(sb, m.format("user1", "res_1", ", new_flight_no='MU5678', add_baggage=5")) == [
        "Flight change failed: Invalid new flight number or destination does not match."]
    assert t.reservations[0]["baggage"] == 4
    assert step(sb, m.format("user2", "res_4", ", add_baggage=1")) == ["Flight information not found."]
    step(sb, "[reserve_flight(user_id='user1', password='password123', flight_no='CA1234', cabin='Economy Class', "
             "payment_method='bank', baggage_count=1)]")
    before = dict(t.users["user1"])
    assert step(sb, m.format("user1", "res_5", ", new_cabin='Business Class', new_payment_method='card'")) == [
        "Cabin change successful. Price difference paid: 1800."]
    assert t.users["user1"] == before and t.reservations[4]["cabin"] == "Business Class"


def test_trace_f_insufficient_funds_and_cancellation():
    sb = Sandbox(["Travel"], {})
    t = sb.instances["Travel"]
    step(sb, "[reserve_flight(user_id='user3', password='password789', flight_no='MU1566', cabin='Business Class', "
             "payment_method='bank', baggage_count=3)]")
    assert t.users["user3"]["bank_balance"] == 1000.0
    m = "[modify_flight(user_id='user3', reservation_id='res_5'{})]"
    assert step(sb, m.format(", add_baggage=3")) == ["Baggage has been added. Additional fee to be paid: 150."]
    assert step(sb, m.format(", add_baggage=30")) == ["Insufficient balance to pay the additional baggage fees."]
    assert t.reservations[4]["baggage"] == 36 and t.users["user3"]["bank_balance"] == 850.0
    assert step(sb, m.format(", new_cabin='Economy Class'")) == [
        "Cabin change successful. Price difference refunded: 2500."]
    assert step(sb, m.format(", new_cabin='Business Class', new_payment_method='cash'")) == [
        "Insufficient balance to pay the cabin price difference."]
    assert t.reservations[4]["cabin"] == "Business Class"
    cancel = "[cancel_reservation(user_id='{}', reservation_id='res_5', reason='change of plans')]"
    assert step(sb, cancel.format("user3")) == [
        "More than 24 hours before departure. Free cancellation successful, 4000 yuan has been refunded."]
    assert t.users["user3"]["cash_balance"] == 5000.0 and len(t.reservations) == 5
    assert step(sb, cancel.format("user9")) == ["Invalid user ID."]


def test_trace_g_executor_edge_cases_in_both_modes():
    add = "[add_reminder(title='x', description='y', time='2024-07-15 09:00')]"
    for mode, want in (("multi_turn", None), ("multi_step", None)):
        sb = Sandbox(["BaseApi", "MessageApi"], {"BaseApi": {"wifi": True, "logged_in": True}})
        out, parsed = sb.run(add, mode)
        assert parsed and out == ["Error during execution: cannot access local variable 'func_call_result' "
                                  "where it is not associated with a value"]
        assert sb.registered is (mode == "multi_step")  # multi_turn registers only error-free batches
        out, _ = sb.run("[login_device(), add_reminder(title='x', description='y', time='t')]", mode)
        assert out == [ok("Device has been logged in")] * 2  # an unknown name repeats the previous value
        out, _ = sb.run("[send_message('Eve', 'Frank', 'x')]", mode)  # positional arguments are dropped
        assert "missing 3 required positional arguments" in out[0]
        out, parsed = sb.run("hello there", mode)
        assert out == NOT_A_QUESTION and not parsed
    sb = Sandbox(["BaseApi", "MessageApi", "FoodPlatform"], {"BaseApi": {"wifi": True, "logged_in": True}})
    out = step(sb, "[get_products(merchant_name='Heytea'), check_balance(user_name='Eve'), "
                   "get_all_message_times_with_ids()]")
    assert out[0].startswith("[{'product': 'Cheese Milk Tea'") and out[1] == 500.0
    assert out[2] == {"1": "2024-06-09", "2": "2024-03-09", "3": "2023-12-05", "4": "2024-09-09", "5": "2024-06-06",
                      "6": "2024-01-15"}


def test_multi_turn_error_aborts_the_batch_but_keeps_earlier_effects():
    sb = Sandbox(["BaseApi", "MessageApi"], {"BaseApi": {"wifi": False, "logged_in": True}})
    out, _ = sb.run("[turn_on_wifi(), send_message('Eve'), login_device()]", "multi_turn")
    assert len(out) == 1 and out[0].startswith("Error during execution")
    assert sb.instances["BaseApi"].wifi is True and not sb.registered
    assert sb.saved_state() == []
    sb.run("[get_earliest_message_id()]", "multi_turn")
    assert sb.registered and sb.saved_state()[0] == {"BaseApi": {"wifi": True, "logged_in": True}}


@pytest.mark.parametrize("text,calls", [
    ("[turn_on_wifi()]", [("turn_on_wifi", {})]),
    (" [f(a=1), g(b='x')]", [("f", {"a": 1}), ("g", {"b": "x"})]),
    ("f(a=+3)", [("f", {"a": -3})]),  # upstream negates whatever the unary operator is
    ("[f(a=99*2, b='a'+'b', c=name, d=g(), e=x[0], t=(1, 2))]",
     [("f", {"a": 198, "b": "ab", "c": "name", "d": "g()", "e": "x[0]", "t": (1, 2)})]),
    ("[f(items=[{'product': 'X', 'quantity': 1}])]", [("f", {"items": [{"product": "X", "quantity": 1}]})]),
    ("[hello]", []),  # an expression that is not a call gives an empty batch
])
def test_parse_like_upstream(text, calls):
    assert [(c.name, c.kwargs) for c in parse(text, "fail")] == calls


@pytest.mark.parametrize("text", ["", "[f(a=lambda: 1)]", "[f(a={1, 2})]", "[f(a=f'x')]", "[f(]",
                                  "[f(a=1), 3]", "[__import__('os').system('true')]"])
def test_parse_refuses(text):
    with pytest.raises(Unparsable):
        parse(text, "fail")


def test_undeliverable_arguments_fail_when_run():
    sb = Sandbox(["BaseApi", "FoodPlatform"], {"BaseApi": {"wifi": True}})
    out = step(sb, "[add_food_delivery_order(username='Eve', merchant_name='Heytea', "
                   "items={'product': 'Cheese Milk Tea', 'quantity': 1})]")
    assert out[0].startswith("Error during execution")
    out = step(sb, "[check_balance(user_name=lookup(name='Eve'))]")
    assert out == ["Error during execution: name 'lookup' is not defined"]
    out = step(sb, "[FoodPlatform.check_balance(user_name='Eve')]")  # dotted names fail, as upstream
    assert out == ["Error during execution: name 'FoodPlatform' is not defined"]


def test_routing():
    assert routes_to_execution("[send_message(sender_name='Eve', receiver_name='Frank', message='x')]")
    assert not routes_to_execution("Sure, which message should I delete?")
    assert not routes_to_execution("I will call [turn_on_wifi()] now")
    assert not routes_to_execution("[\nturn_on_wifi()\n]")  # the brackets must be on one line
    assert not routes_to_execution("['Due to the limitations of the function, I cannot solve this problem.']")


def _fix_quotes(stone: str) -> str:
    """Milestones such as merchant_name='Domino's' are not valid Python; re-quote such values."""
    return re.sub(r"='(.*?)'(?=(, \w+=|\)))", lambda m: "=" + repr(m.group(1)), stone)


CLASS_FIXES = {"BaseAPI": "BaseApi", "ReminderAPI": "ReminderApi", "Reminderpi": "ReminderApi"}
# Tasks whose milestones cannot reach the benchmark's own ground truth (agent_sandbox_spec.md §13.4).
MILESTONE_MISSES = {
    "agent_multi_turn_6": "no login_device although logged_in=false",
    "agent_multi_step_0": "product 'Super Supreme' is not on the menu; ReminderAPI answer unreachable",
    "agent_multi_step_1": "product 'Super Supreme' is not on the menu; ReminderAPI answer unreachable",
    "agent_multi_step_12": "no login_food_platform",
    "agent_multi_step_13": "no login_food_platform",
    "agent_multi_step_14": "deletes message 3 (earliest); the answer deletes 4 (latest)",
    "agent_multi_step_15": "deletes message 3 (earliest); the answer deletes 4 (latest)",
    "agent_multi_step_16": "no login_device",
    "agent_multi_step_17": "deletes message 3 (earliest); the answer deletes 4 (latest)",
}


def replay(entry, path):
    sb = Sandbox(entry.extra["involved_classes"], entry.extra["initial_config"])
    for stone in path:
        stone = stone.strip()
        _, parsed = sb.run(stone, "multi_step")
        if not parsed:
            _, parsed = sb.run(_fix_quotes(stone), "multi_step")
        assert parsed, (entry.id, stone)
    return sb.saved_state()


def test_milestone_replay_reaches_the_ground_truth_end_state():
    misses = []
    for cat in data.AGENT:
        for e in data.load_category(DATA, cat):
            want = {CLASS_FIXES.get(k, k): v for d in e.ground_truth for k, v in d.items()}
            reached = []
            for path in truth.milestone_paths(e):
                got = {k: v for d in replay(e, path) for k, v in d.items()}
                reached.append(got == want)
            if not any(reached):
                misses.append(e.id)
    assert set(misses) == set(MILESTONE_MISSES), misses
    assert len(misses) == 9  # 41 of 50 tasks: 29/30 multi_turn, 12/20 multi_step


def test_state_with_values_json_cannot_hold_is_still_saved():
    sb = Sandbox(["BaseApi", "MessageApi"], {"BaseApi": {"wifi": True, "logged_in": True}})
    step(sb, "[delete_message(message_id=1)]")
    step(sb, "[send_message(sender_name='Eve', receiver_name='Jack', message=[{(1, 2): 3}])]")
    inbox = {k: v for d in sb.saved_state() for k, v in d.items()}["MessageApi"]["inbox"]
    assert inbox["7"]["message"] == [{"(1, 2)": 3}]
