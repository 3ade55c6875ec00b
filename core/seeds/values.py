"""Slot value generators for procedural seeds and expansions: cities, dates, names, amounts, units ...

Every generator takes a ``random.Random`` and returns a JSON value; :func:`text` renders a value the
way it appears in a user query, so the argument can be found verbatim in the conversation (the rule
judge relies on that). Titles and names are invented, not taken from any benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from random import Random
from typing import Any, Callable

CITIES = ["Lisbon", "Osaka", "Nairobi", "Toronto", "Melbourne", "Reykjavik", "Seville", "Krakow", "Hanoi",
          "Bogota", "Marrakesh", "Helsinki", "Valparaiso", "Tbilisi", "Ljubljana", "Cusco", "Porto",
          "Dubrovnik", "Kyoto", "Auckland", "Montreal", "Edinburgh", "Salzburg", "Cebu", "Accra", "Muscat",
          "Tallinn", "Bergen", "Cartagena", "Penang", "Zanzibar", "Wellington", "Antwerp", "Gdansk"]
COUNTRIES = ["Portugal", "Kenya", "Iceland", "Vietnam", "Colombia", "Georgia", "Slovenia", "Peru",
             "Norway", "Ghana", "Oman", "Estonia", "Malaysia", "New Zealand", "Croatia", "Uruguay"]
FIRST = ["Amara", "Jonas", "Priya", "Mateo", "Ingrid", "Kwame", "Lucia", "Tomasz", "Yuki", "Farah",
         "Diego", "Elin", "Ravi", "Noor", "Henrik", "Sofia", "Bilal", "Greta", "Anouk", "Emeka"]
LAST = ["Okafor", "Lindqvist", "Raman", "Alvarez", "Novak", "Tanaka", "Haddad", "Moreau", "Kowalski",
        "Mensah", "Iversen", "Castillo", "Brennan", "Sato", "Vidal", "Petrov"]
SONGS = ["Neon Harbor", "Paper Lanterns", "Midnight Orchard", "Glass Rivers", "Velvet Static",
         "Northbound Heart", "Copper Skies", "Salt and Cinder", "Lantern Tide", "Quiet Engines"]
ARTISTS = ["The Lumen Keys", "Marisol Vega", "Echo Parade", "Juniper Hale", "Static Pines", "Nova Reyes",
           "Orchid Avenue", "Tomas Kell"]
TITLES = ["The Clockmaker's Garden", "Harbor of Echoes", "Winter Atlas", "The Quiet Cartographer",
          "Ember Road", "A Map of Small Lights", "The Salt Archive", "Tidewater Nights"]
GENRES = ["jazz", "rock", "classical", "electronic", "folk", "pop", "reggae", "blues"]
CUISINES = ["thai", "mexican", "italian", "ethiopian", "japanese", "lebanese", "peruvian", "korean"]
DISHES = ["green curry", "mushroom risotto", "lentil soup", "fish tacos", "shakshuka", "pad see ew",
          "vegetable paella", "miso ramen"]
INGREDIENTS = ["spinach", "chickpeas", "tofu", "salmon", "quinoa", "basil", "garlic", "lemon",
               "mushrooms", "feta", "sweet potato", "black beans"]
RESTAURANTS = ["Casa Lumbre", "The Copper Spoon", "Saffron Alley", "Blue Fig Bistro", "Ostra Verde",
               "Maple & Rye"]
CURRENCIES = ["USD", "EUR", "JPY", "GBP", "CHF", "CAD", "AUD", "SEK", "INR", "BRL", "NZD", "ZAR"]
TICKERS = ["NVLX", "ORBT", "KLMN", "QRTZ", "HLXA", "BRYN", "TSVO", "MPLR"]
LANGUAGES = ["English", "Spanish", "French", "German", "Japanese", "Portuguese", "Korean", "Swahili"]
SYMPTOMS = ["headache", "sore throat", "back pain", "fatigue", "dry cough", "dizziness", "nausea"]
MEDICATIONS = ["ibuprofen", "amoxicillin", "loratadine", "metformin", "cetirizine", "omeprazole"]
TEAMS = ["Riverside Falcons", "Harbor City Tides", "Northgate Rovers", "Summit Lynx", "Eastfield Comets",
         "Lakeshore Owls"]
SUBJECTS = ["linear algebra", "organic chemistry", "world history", "microeconomics", "statistics",
            "marine biology", "creative writing"]
ELEMENTS = ["carbon", "nitrogen", "argon", "titanium", "sodium", "helium", "copper", "cobalt"]
COMPOUNDS = ["glucose", "ethanol", "caffeine", "sodium chloride", "ammonia", "acetic acid"]
PRODUCTS = ["wireless earbuds", "standing desk", "trail running shoes", "espresso machine",
            "mechanical keyboard", "camping stove", "rain jacket"]
TOPICS = ["renewable energy", "urban gardening", "deep sea exploration", "remote work", "electric bikes",
          "ancient trade routes", "sleep science", "board game design"]
NOTES = ["Running ten minutes late, start without me", "The report is ready for review",
         "Dinner is at seven tonight", "Please call me back when you can", "Tickets are booked for Friday",
         "Remember to bring the charger", "The meeting moved to the second floor"]
TASKS = ["renew the parking permit", "water the balcony plants", "submit the expense report",
         "pick up the dry cleaning", "book a dentist check-up", "back up the laptop"]
CHANNELS = ["#design-team", "#release-notes", "#general", "#marketing", "#field-ops"]
STREETS = ["Maple Avenue", "Harbor Road", "Elm Street", "Kingsway", "Birch Lane", "Quay Street"]
AMENITIES = ["pool", "wifi", "parking", "kitchen", "washer", "air conditioning", "balcony"]
POLLUTANTS = ["pm2.5", "pm10", "ozone", "nitrogen dioxide", "sulfur dioxide"]
EQUIPMENT = ["dumbbells", "resistance bands", "kettlebell", "jump rope", "yoga mat", "pull-up bar"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


def money(rng: Random) -> float:
    v = rng.randint(1000, 250000) / 100
    return v + 0.25 if float(v).is_integer() else v


def decimal(lo: float, hi: float, places: int = 1) -> Callable[[Random], float]:
    def gen(rng: Random) -> float:
        v = round(rng.uniform(lo, hi), places)
        return v + 0.5 if float(v).is_integer() else v
    return gen


def date(rng: Random) -> str:
    return f"{rng.randint(2025, 2027)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def clock(rng: Random) -> str:
    return f"{rng.randint(7, 21):02d}:{rng.choice(['00', '15', '30', '45'])}"


def person(rng: Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def email(rng: Random) -> str:
    return f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}@example.com"


def phone(rng: Random) -> str:
    return f"+1-555-0{rng.randint(100, 199)}"


def code(prefix: str) -> Callable[[Random], str]:
    return lambda rng: f"{prefix}-{rng.randint(1000, 9999)}"


def pick(pool: list) -> Callable[[Random], Any]:
    return lambda rng: rng.choice(pool)


def some(pool: list, lo: int = 2, hi: int = 3) -> Callable[[Random], list]:
    return lambda rng: rng.sample(pool, rng.randint(lo, min(hi, len(pool))))


def ints(lo: int, hi: int) -> Callable[[Random], int]:
    return lambda rng: rng.randint(lo, hi)


def number_text(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def text(value: Any) -> str:
    """How a value is written in a query: lists as 'a, b and c', numbers exactly as their repr."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return number_text(value)
    if isinstance(value, list):
        parts = [text(v) for v in value]
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    if isinstance(value, dict):
        return " and ".join(f"{k.replace('_', ' ')} {text(v)}" for k, v in value.items())
    return str(value)


@dataclass(frozen=True)
class Slot:
    """A kind of value: its BFCL type, generator, description hint and (optional) enum / items / fields."""
    type: str
    gen: Callable[[Random], Any]
    hint: str = ""
    enum: tuple = ()  # declared as enum when the API's type focus asks for enums
    always_enum: bool = False
    items: str | None = None  # array element type
    fields: dict = field(default_factory=dict)  # dict slots: field -> BFCL type


SLOTS: dict[str, Slot] = {
    "city": Slot("string", pick(CITIES), " (city name)"),
    "country": Slot("string", pick(COUNTRIES), " (country name)"),
    "date": Slot("string", date, ", formatted as YYYY-MM-DD"),
    "time": Slot("string", clock, ", in 24-hour HH:MM format"),
    "person": Slot("string", person, " (full name)"),
    "email": Slot("string", email, " (email address)"),
    "phone": Slot("string", phone, " (phone number with country code)"),
    "account": Slot("string", code("ACC"), " (account identifier)"),
    "tracking": Slot("string", code("TRK"), " (tracking number)"),
    "song": Slot("string", pick(SONGS), " (song title)"),
    "artist": Slot("string", pick(ARTISTS)),
    "title": Slot("string", pick(TITLES), " (title)"),
    "restaurant": Slot("string", pick(RESTAURANTS), " (restaurant name)"),
    "dish": Slot("string", pick(DISHES)),
    "compound": Slot("string", pick(COMPOUNDS), " (compound name)"),
    "element": Slot("string", pick(ELEMENTS), " (element name)", enum=tuple(ELEMENTS)),
    "product": Slot("string", pick(PRODUCTS)),
    "topic": Slot("string", pick(TOPICS)),
    "subject": Slot("string", pick(SUBJECTS)),
    "team": Slot("string", pick(TEAMS), " (team name)"),
    "note": Slot("string", pick(NOTES)),
    "task": Slot("string", pick(TASKS)),
    "channel": Slot("string", pick(CHANNELS), " (channel name, with #)"),
    "ticker": Slot("string", pick(TICKERS), " (ticker symbol)"),
    "currency": Slot("string", pick(CURRENCIES), " (three-letter ISO 4217 code)", enum=tuple(CURRENCIES)),
    "language": Slot("string", pick(LANGUAGES), enum=tuple(LANGUAGES)),
    "genre": Slot("string", pick(GENRES), enum=tuple(GENRES)),
    "cuisine": Slot("string", pick(CUISINES), enum=tuple(CUISINES)),
    "month": Slot("string", pick(MONTHS), enum=tuple(MONTHS), always_enum=True),
    "cabin": Slot("string", pick(["economy", "premium economy", "business", "first"]), always_enum=True,
                  enum=("economy", "premium economy", "business", "first")),
    "seat_class": Slot("string", pick(["first", "second"]), enum=("first", "second"), always_enum=True),
    "room": Slot("string", pick(["single", "double", "suite"]), enum=("single", "double", "suite"),
                 always_enum=True),
    "car": Slot("string", pick(["compact", "suv", "van", "convertible"]), always_enum=True,
                enum=("compact", "suv", "van", "convertible")),
    "screen": Slot("string", pick(["imax", "3d", "standard"]), enum=("imax", "3d", "standard"), always_enum=True),
    "temp_unit": Slot("string", pick(["celsius", "fahrenheit"]), enum=("celsius", "fahrenheit"), always_enum=True),
    "energy_unit": Slot("string", pick(["joule", "calorie", "kilowatt-hour", "electronvolt"]), always_enum=True,
                        enum=("joule", "calorie", "kilowatt-hour", "electronvolt")),
    "diet": Slot("string", pick(["vegetarian", "vegan", "gluten-free", "keto", "halal"]), always_enum=True,
                 enum=("vegetarian", "vegan", "gluten-free", "keto", "halal")),
    "priority": Slot("string", pick(["low", "medium", "high", "urgent"]), enum=("low", "medium", "high", "urgent"),
                     always_enum=True),
    "difficulty": Slot("string", pick(["easy", "medium", "hard"]), enum=("easy", "medium", "hard"), always_enum=True),
    "severity": Slot("string", pick(["minor", "moderate", "severe"]), enum=("minor", "moderate", "severe"),
                     always_enum=True),
    "sport": Slot("string", pick(["football", "basketball", "tennis", "cricket", "volleyball", "rugby"]),
                  enum=("football", "basketball", "tennis", "cricket", "volleyball", "rugby")),
    "specialty": Slot("string", pick(["dermatology", "cardiology", "pediatrics", "dentistry"]), always_enum=True,
                      enum=("dermatology", "cardiology", "pediatrics", "dentistry")),
    "goal": Slot("string", pick(["strength", "endurance", "mobility", "weight loss"]), always_enum=True,
                 enum=("strength", "endurance", "mobility", "weight loss")),
    "carrier": Slot("string", pick(["parcelnet", "swiftpost", "bluecourier"]), always_enum=True,
                    enum=("parcelnet", "swiftpost", "bluecourier")),
    "planet": Slot("string", pick(["Mars", "Jupiter", "Venus", "Saturn", "Mercury"]), always_enum=True,
                   enum=("Mars", "Jupiter", "Venus", "Saturn", "Mercury")),
    "climate_metric": Slot("string", pick(["temperature", "rainfall", "sunshine hours"]), always_enum=True,
                           enum=("temperature", "rainfall", "sunshine hours")),
    "flag": Slot("boolean", lambda rng: rng.random() < 0.5),
    "count": Slot("integer", ints(2, 8)),
    "nights": Slot("integer", ints(2, 14)),
    "limit": Slot("integer", pick([5, 10, 15, 20, 25, 50]), " (maximum number of results)"),
    "minutes": Slot("integer", pick([15, 20, 30, 45, 60, 90]), " in minutes"),
    "months_n": Slot("integer", pick([12, 24, 36, 48, 60, 120]), " in months"),
    "years_n": Slot("integer", ints(3, 30), " in years"),
    "year": Slot("integer", ints(1995, 2024)),
    "age": Slot("integer", ints(18, 80), " in years"),
    "height_cm": Slot("integer", ints(150, 199), " in centimetres"),
    "grams": Slot("integer", pick([150, 200, 250, 300, 350, 400]), " in grams"),
    "angle": Slot("integer", ints(15, 75), " in degrees"),
    "shares": Slot("integer", ints(5, 400)),
    "amount": Slot("float", money),
    "percent": Slot("float", decimal(0.5, 12.0), " as a percentage"),
    "weight_kg": Slot("float", decimal(45, 110), " in kilograms"),
    "speed": Slot("float", decimal(5, 60), " in metres per second"),
    "distance": Slot("float", decimal(2, 40), " in kilometres"),
    "energy": Slot("float", decimal(1, 900, 2)),
    "rating": Slot("float", pick([3.5, 4.2, 4.5, 4.8]), " on a 1-5 scale"),
    "cities": Slot("array", some(CITIES), items="string"),
    "ingredients": Slot("array", some(INGREDIENTS, 2, 4), items="string"),
    "symptoms": Slot("array", some(SYMPTOMS, 1, 3), items="string"),
    "medications": Slot("array", some(MEDICATIONS, 2, 2), items="string"),
    "emails": Slot("array", lambda rng: sorted({email(rng) for _ in range(2)}), items="string"),
    "people": Slot("array", lambda rng: sorted({person(rng) for _ in range(2)}), items="string"),
    "amenities": Slot("array", some(AMENITIES), items="string"),
    "pollutants": Slot("array", some(POLLUTANTS), items="string"),
    "equipment": Slot("array", some(EQUIPMENT, 1, 3), items="string"),
    "tickers": Slot("array", some(TICKERS), items="string"),
    "price_range": Slot("dict", lambda rng: {"min_price": rng.choice([40, 60, 80, 100]),
                                             "max_price": rng.choice([150, 200, 250, 300])},
                        fields={"min_price": "integer", "max_price": "integer"}),
    "coordinates": Slot("dict", lambda rng: {"latitude": decimal(-60, 60, 4)(rng),
                                             "longitude": decimal(-170, 170, 4)(rng)},
                        fields={"latitude": "float", "longitude": "float"}),
}
