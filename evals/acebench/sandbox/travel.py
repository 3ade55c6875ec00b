"""Travel: three users, eleven flights, reservations (agent_sandbox_spec.md §9).

Kept as upstream behaves (the ground truth of several tasks depends on it): a cabin change is priced
with the pre-change flight's fares, every bag over the allowance is charged again when bags are added,
a cabin or baggage change is applied even when its payment fails, cancellation refunds the fare to
cash and keeps the reservation, and a wrong password in ``reserve_flight`` surfaces as an execution
error (``'membership_level'``). "Now" is fixed at 2024-07-14 06:00:00.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from evals.acebench.sandbox.state import constants, fill

_FMT = "%Y-%m-%d %H:%M:%S"


class Travel:
    PUBLIC = ("get_flight_details", "get_user_details", "get_reservation_details", "authenticate_user",
              "get_baggage_allowance", "find_transfer_flights", "calculate_baggage_fee", "update_balance",
              "reserve_flight", "modify_flight", "cancel_reservation", "process_refund",
              "calculate_price_difference")

    def __init__(self):
        fill(self, "Travel")
        c = constants()
        self._allowance = c["Travel.free_baggage_allowance"]
        self._bag_fee = c["Travel.fee_per_extra_bag"]
        self._now = datetime.strptime(c["Travel.cancel_reservation_fixed_now"], _FMT)

    def _load_scenario(self, config: dict) -> None:
        """Travel ignores initial_config."""

    def _flight(self, flight_no):
        return next((f for f in self.flights if f["flight_no"] == flight_no), None)

    @staticmethod
    def _fare(flight, cabin):
        return flight["economy_price"] if cabin == "Economy Class" else flight["business_price"]

    def get_flight_details(self, origin=None, destination=None):
        found = [f for f in self.flights
                 if (not origin or f["origin"] == origin) and (not destination or f["destination"] == destination)]
        return found or "There are no direct flights that meet the criteria."

    def get_user_details(self, user_id, password):
        user = self.users.get(user_id)
        if user and user["password"] == password:
            return {k: v for k, v in user.items() if k != "password"}
        return {"status": "error", "message": "Incorrect username or password."}

    def get_reservation_details(self, reservation_id=None, user_id=None):
        if reservation_id:
            chosen = [r for r in self.reservations if r["reservation_id"] == reservation_id]
        elif user_id:
            chosen = [r for r in self.reservations if r["user_id"] == user_id]
        else:
            return {"status": "error", "message": "Please provide a valid reservation ID or user ID"}
        return [{**r, "flight_info": self._flight(r["flight_no"])} for r in chosen]

    def authenticate_user(self, user_id, password):
        user = self.users.get(user_id)
        if user and user["password"] == password:
            return user
        return {"status": "error", "message": "Incorrect username or password."}

    def get_baggage_allowance(self, membership_level, cabin_class):
        return self._allowance.get(membership_level, {}).get(cabin_class, 0)

    def find_transfer_flights(self, origin_city, transfer_city, destination_city):
        first = [f for f in self.flights if f["origin"] == origin_city and f["destination"] == transfer_city
                 and f["status"] == "available"]
        second = [f for f in self.flights if f["origin"] == transfer_city and f["destination"] == destination_city
                  and f["status"] == "available"]
        pairs = [{"first_leg": a, "second_leg": b} for a in first for b in second
                 if datetime.strptime(a["arrival_time"], _FMT) < datetime.strptime(b["depart_time"], _FMT)]
        return pairs or "No connecting flights that meet the criteria were found."

    def calculate_baggage_fee(self, membership_level, cabin_class, baggage_count):
        allowance = self._allowance[membership_level][cabin_class]
        return max(0, baggage_count - allowance) * self._bag_fee

    def update_balance(self, user, payment_method, amount):
        key = {"cash": "cash_balance", "bank": "bank_balance"}.get(payment_method)
        if key is None:
            return True
        if user[key] + amount < 0:
            return False
        user[key] += amount
        return True

    def reserve_flight(self, user_id, password, flight_no, cabin, payment_method, baggage_count):
        user = self.authenticate_user(user_id, password)  # an error record is truthy: no early return
        flight = next((f for f in self.flights if f["flight_no"] == flight_no and f["status"] == "available"), None)
        price = self._fare(flight, cabin)
        total = price + self.calculate_baggage_fee(user["membership_level"], cabin, baggage_count)
        if payment_method not in ("cash", "bank"):
            return "Invalid payment method"
        if user[f"{payment_method}_balance"] < total:
            return f"Your {payment_method} balance is insufficient. Please consider using another payment method."
        user[f"{payment_method}_balance"] -= total
        flight["seats_available"] -= 1
        rid = f"res_{len(self.reservations) + 1}"
        self.reservations.append({"reservation_id": rid, "user_id": user_id, "flight_no": flight_no,
                                  "payment_method": payment_method, "cabin": cabin, "baggage": baggage_count})
        return f"Booking successful. Reservation ID: {rid}. Total cost: {total} yuan (including baggage fees)."

    def modify_flight(self, user_id, reservation_id, new_flight_no=None, new_cabin=None, add_baggage=0,
                      new_payment_method=None):
        res = next((r for r in self.reservations
                    if r["reservation_id"] == reservation_id and r["user_id"] == user_id), None)
        if res is None:
            return "Reservation not found or user ID does not match."
        flight = self._flight(res["flight_no"])
        if flight is None:
            return "Flight information not found."
        pay = new_payment_method or res["payment_method"]
        user = self.users[user_id]
        notes = []
        if new_flight_no and new_flight_no != res["flight_no"]:
            new = self._flight(new_flight_no)
            if not (new and new["origin"] == flight["origin"] and new["destination"] == flight["destination"]):
                return "Flight change failed: Invalid new flight number or destination does not match."
            res["flight_no"] = new_flight_no
            notes.append("Flight number has been changed.")
        if new_cabin and new_cabin != res["cabin"]:
            diff = self.calculate_price_difference(flight, res["cabin"], new_cabin)  # the pre-change flight
            res["cabin"] = new_cabin
            if diff > 0:
                notes.append(f"Cabin change successful. Price difference paid: {diff}."
                             if self.update_balance(user, pay, -diff)
                             else "Insufficient balance to pay the cabin price difference.")
            elif diff < 0:
                self.update_balance(user, pay, -diff)
                notes.append(f"Cabin change successful. Price difference refunded: {-diff}.")
        if add_baggage > 0:
            total = res["baggage"] + add_baggage
            cost = max(0, total - self.get_baggage_allowance(user["membership_level"], res["cabin"])) * self._bag_fee
            if cost > 0:
                notes.append(f"Baggage has been added. Additional fee to be paid: {cost}."
                             if self.update_balance(user, pay, -cost)
                             else "Insufficient balance to pay the additional baggage fees.")
            res["baggage"] = total
        return " ".join(notes) or "Modification completed with no additional fees."

    def cancel_reservation(self, user_id, reservation_id, reason):
        if user_id not in self.users:
            return "Invalid user ID."
        res = next((r for r in self.reservations
                    if r["reservation_id"] == reservation_id and r["user_id"] == user_id), None)
        if res is None:
            return "Invalid reservation ID or it does not belong to the user."
        flight = self._flight(res["flight_no"])
        if flight is None:
            return "Invalid flight information."
        depart = datetime.strptime(flight["depart_time"], _FMT)
        if self._now > depart:
            return "The flight segment has been used and cannot be canceled."
        price = self._fare(flight, res["cabin"])
        user = self.users[user_id]
        if reason == "The airline has canceled the flight.":
            self.process_refund(user, price)
            return (f"The flight has been canceled. Your reservation will be canceled free of charge, and {price} "
                    "yuan has been refunded.")
        if depart - self._now > timedelta(days=1):
            self.process_refund(user, price)
            return f"More than 24 hours before departure. Free cancellation successful, {price} yuan has been refunded."
        fee = price * 0.1
        self.process_refund(user, price - fee)
        return (f"Less than 24 hours before departure. A cancellation fee of {fee} yuan has been deducted, and "
                f"{price - fee} yuan has been refunded.")

    def process_refund(self, user, amount):
        user["cash_balance"] += amount

    def calculate_price_difference(self, flight, old_cabin, new_cabin):
        def fare(cabin):
            return {"Economy Class": flight["economy_price"], "Business Class": flight["business_price"]}.get(cabin, 0)
        return fare(new_cabin) - fare(old_cabin)
