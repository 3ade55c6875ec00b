"""FoodPlatform: accounts with balances, six merchants, orders (agent_sandbox_spec.md §8).

Only ``login_food_platform`` checks Wi-Fi and nothing checks the device login; a missing item
quantity counts as 1; ``check_balance`` and ``get_products`` return bare values, as upstream.
"""
from __future__ import annotations

from evals.acebench.sandbox.base import BaseApi, fail, ok
from evals.acebench.sandbox.state import fill


class FoodPlatform(BaseApi):
    PUBLIC = BaseApi.PUBLIC + ("login_food_platform", "view_logged_in_users", "check_balance",
                               "add_food_delivery_order", "get_products", "view_orders", "search_orders")

    def __init__(self):
        fill(self, "FoodPlatform")

    def _load_scenario(self, config: dict) -> None:
        super()._load_scenario(config)
        self.logged_in_users = config.get("logged_in_users", [])

    def login_food_platform(self, username, password):
        if not self.wifi:
            return fail("Wi-Fi is not enabled, unable to login")
        if username not in self.users:
            return fail("User does not exist")
        if self.users[username]["password"] != password:
            return fail("Incorrect password")
        if username in self.logged_in_users:
            return fail(f"{username} is already logged in")
        self.logged_in_users.append(username)
        return ok(f"User {username} has successfully logged in!")

    def view_logged_in_users(self):
        if not self.logged_in_users:
            return fail("No users are currently logged in to the food platform")
        return {"status": True, "logged_in_users": self.logged_in_users}

    def check_balance(self, user_name):
        if user_name in self.users:
            return self.users[user_name]["balance"]
        return 0.0

    def add_food_delivery_order(self, username, merchant_name, items):
        if username not in self.logged_in_users:
            return fail(f"User {username} is not logged in to the food platform")
        if merchant_name not in self.merchant_list:
            return fail("Merchant does not exist")
        menu = self.merchant_list[merchant_name]["menu"]
        total, lines = 0.0, []
        for item in items:
            product, quantity = item.get("product"), item.get("quantity", 1)
            if not isinstance(quantity, int) or quantity <= 0:
                return fail(f"Invalid quantity {quantity} for product {product}")
            entry = next((m for m in menu if m["product"] == product), None)
            if entry is None:
                return fail(f"Product {product} does not exist in {merchant_name}'s menu")
            total += entry["price"] * quantity
            lines.append({"product": product, "quantity": quantity, "price_per_unit": entry["price"]})
        if total > self.users[username]["balance"]:
            return fail("Insufficient balance to place the order")
        self.users[username]["balance"] -= total
        self.orders.append({"user_name": username, "merchant_name": merchant_name, "items": lines,
                            "total_price": total})
        return ok(f"Food delivery order successfully placed with {merchant_name}. Total amount: {total} yuan")

    def get_products(self, merchant_name):
        merchant = self.merchant_list.get(merchant_name)
        if merchant is None:
            return fail(f"Merchant '{merchant_name}' does not exist")
        return merchant["menu"]

    def view_orders(self, user_name):
        mine = [o for o in self.orders if o["user_name"] == user_name]
        if not mine:
            return fail("User has no order records")
        return {"status": True, "orders": mine}

    def search_orders(self, keyword):
        kw = keyword.lower()
        found = [o for o in self.orders if kw in o["merchant_name"].lower()
                 or any(kw in i["product"].lower() for i in o["items"])]
        if not found:
            return fail("No matching orders found")
        return {"status": True, "orders": found}
