"""The context tree of Dual-Tree API synthesis: domain -> sub-domain -> leaf function.

A leaf carries what a procedural API needs: name words, a realistic description, intent phrases for
user queries, and a pool of parameters (each with a value slot from core.seeds.values and a query
phrase with ``{}`` for the value; booleans have a (true, false) phrase pair). Names are chosen not to
collide with any BFCL-v3 or ACEBench function (tests/test_seeds.py checks every naming variant).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    """One parameter of a leaf function: name words, value slot (core.seeds.values), query phrase."""

    words: str
    slot: str
    phrase: str | tuple[str, str]
    req: bool = True
    desc: str = ""


@dataclass(frozen=True)
class Leaf:
    path: str  # "Domain/Sub-domain"
    words: str  # function name words, e.g. "search flight offers"
    desc: str
    intents: tuple[str, ...]
    params: tuple[Param, ...]
    zero_ok: bool = False  # may be synthesized with no parameters at all

    @property
    def key(self) -> str:
        return f"{self.path}/{self.words.replace(' ', '_')}"

    @property
    def domain(self) -> str:
        return self.path.split("/")[0]


def make_leaf(path: str, words: str, desc: str, intents: list[str], *params: Param, zero: bool = False) -> Leaf:
    return Leaf(path, words, desc, tuple(intents), params, zero)


OPTIONAL = dict(req=False)  # Param(..., **OPTIONAL): a parameter the function does not require

LEAVES: tuple[Leaf, ...] = (
    # ---------------------------------------------------------------- Travel
    make_leaf(
        "Travel/Transportation", "search flight offers",
        "Search bookable flight offers between two cities for a given travel date.",
        ["find flight offers", "search for flights", "look up available flights"],
        Param("origin", "city", "from {}"), Param("destination", "city", "to {}"),
        Param("travel date", "date", "on {}"), Param("passengers", "count", "for {} passengers", **OPTIONAL),
        Param("cabin class", "cabin", "in {} class", **OPTIONAL),
        Param("nonstop only", "flag", ("with nonstop flights only", "with connections allowed"), **OPTIONAL)),
    make_leaf(
        "Travel/Transportation", "lookup coach departures",
        "List intercity coach departures between two cities on a given day.",
        ["check coach departures", "find a coach connection", "list bus departures"],
        Param("departure city", "city", "from {}"), Param("arrival city", "city", "to {}"),
        Param("departure day", "date", "on {}"), Param("earliest time", "time", "leaving after {}", **OPTIONAL),
        Param("max transfers", "count", "with at most {} transfers", **OPTIONAL)),
    make_leaf(
        "Travel/Transportation", "reserve rail seats", "Reserve seats on a long-distance train.",
        ["reserve train seats", "book seats on a train"],
        Param("from station city", "city", "from {}"), Param("to station city", "city", "to {}"),
        Param("journey date", "date", "on {}"), Param("seat count", "count", "for {} seats"),
        Param("seat class", "seat_class", "in {} class", **OPTIONAL),
        Param("window preferred", "flag", ("with window seats", "with any seats"), **OPTIONAL)),
    make_leaf(
        "Travel/Accommodation", "search lodging availability",
        "Find available hotel rooms in a city for a stay starting on a given date.",
        ["find a hotel room", "check hotel availability", "search for a place to stay"],
        Param("city", "city", "in {}"), Param("check in date", "date", "checking in on {}"),
        Param("nights", "nights", "for {} nights"), Param("guests", "count", "for {} guests", **OPTIONAL),
        Param("room type", "room", "with a {} room", **OPTIONAL),
        Param("nightly budget", "price_range", "priced between {min_price} and {max_price} per night", **OPTIONAL),
        Param("breakfast included", "flag", ("with breakfast included", "without breakfast"), **OPTIONAL)),
    make_leaf(
        "Travel/Accommodation", "list holiday rentals", "List vacation rentals available in a city between two dates.",
        ["list vacation rentals", "find a holiday apartment"],
        Param("city", "city", "in {}"), Param("arrival date", "date", "arriving {}"),
        Param("leaving date", "date", "leaving {}"), Param("bedrooms", "count", "with {} bedrooms", **OPTIONAL),
        Param("amenities", "amenities", "with {}", **OPTIONAL),
        Param("pets allowed", "flag", ("where pets are allowed", "with no pets"), **OPTIONAL)),
    make_leaf(
        "Travel/Local Services", "discover local happenings",
        "Discover concerts, fairs and other local events in a city.",
        ["find local events", "see what's happening", "discover events"],
        Param("city", "city", "in {}"), Param("event date", "date", "on {}", **OPTIONAL),
        Param("music genre", "genre", "featuring {} music", **OPTIONAL),
        Param("max results", "limit", "showing up to {} results", **OPTIONAL), zero=False),
    make_leaf(
        "Travel/Local Services", "quote car hire", "Get a price quote for renting a car between two dates.",
        ["get a car rental quote", "price a rental car"],
        Param("pickup city", "city", "in {}"), Param("pickup date", "date", "from {}"),
        Param("return date", "date", "until {}"), Param("car class", "car", "for a {}", **OPTIONAL),
        Param("driver age", "age", "for a driver aged {}", **OPTIONAL)),
    # ---------------------------------------------------------------- Finance
    make_leaf(
        "Finance/Currency", "quote currency swap", "Convert an amount from one currency to another at the latest rate.",
        ["convert", "exchange", "work out the conversion of"],
        Param("amount", "amount", "{}"), Param("source currency", "currency", "from {}"),
        Param("target currency", "currency", "to {}")),
    make_leaf(
        "Finance/Currency", "chart rate history",
        "Return daily exchange rates between two currencies over a date range.",
        ["show the exchange rate history", "chart the exchange rate"],
        Param("base currency", "currency", "for {}"), Param("quote currency", "currency", "against {}"),
        Param("start date", "date", "from {}"), Param("end date", "date", "to {}", **OPTIONAL)),
    make_leaf(
        "Finance/Currency", "enumerate tradable currencies",
        "List the currencies that can be exchanged, optionally by region.",
        ["list the currencies I can exchange", "show the tradable currencies"],
        Param("region country", "country", "available in {}", **OPTIONAL), zero=True),
    make_leaf(
        "Finance/Investing", "fetch equity snapshot", "Fetch the latest price snapshot for a stock ticker.",
        ["get a price snapshot", "check the latest stock price"],
        Param("ticker", "ticker", "for {}"),
        Param("include after hours", "flag", ("including after-hours trading", "regular session only"), **OPTIONAL)),
    make_leaf(
        "Finance/Investing", "project portfolio growth",
        "Project the future value of a portfolio with compound returns.",
        ["project my portfolio growth", "estimate how my savings grow"],
        Param("initial amount", "amount", "starting with {}"),
        Param("annual return", "percent", "at {} percent a year"), Param("horizon years", "years_n", "over {} years"),
        Param("monthly contribution", "amount", "adding {} a month", **OPTIONAL)),
    make_leaf(
        "Finance/Banking", "compute loan installment", "Compute the fixed monthly installment of an amortized loan.",
        ["compute the monthly installment", "work out my loan payment"],
        Param("principal", "amount", "for a loan of {}"), Param("interest rate", "percent", "at {} percent interest"),
        Param("term months", "months_n", "over {} months")),
    make_leaf(
        "Finance/Banking", "move money between accounts", "Transfer money between two of the user's bank accounts.",
        ["transfer money", "move funds"],
        Param("from account", "account", "from account {}"), Param("to account", "account", "to account {}"),
        Param("amount", "amount", "an amount of {}"), Param("memo", "note", "with the memo '{}'", **OPTIONAL)),
    # ---------------------------------------------------------------- Entertainment
    make_leaf(
        "Entertainment/Music", "queue track playback", "Start playing a song on the user's active speaker.",
        ["play", "put on", "queue up"],
        Param("song title", "song", "the song '{}'"), Param("artist", "artist", "by {}", **OPTIONAL),
        Param("volume level", "count", "at volume {}", **OPTIONAL),
        Param("shuffle", "flag", ("with shuffle on", "with shuffle off"), **OPTIONAL)),
    make_leaf(
        "Entertainment/Music", "assemble genre mix", "Create a playlist of tracks from one music genre.",
        ["make a playlist", "create a mix", "build a playlist"],
        Param("genre", "genre", "of {} music"), Param("track count", "count", "with {} tracks"),
        Param("playlist name", "title", "called '{}'", **OPTIONAL),
        Param("explicit allowed", "flag", ("allowing explicit tracks", "without explicit tracks"), **OPTIONAL)),
    make_leaf(
        "Entertainment/Music", "chart trending tracks", "Show the tracks trending this week, optionally for one genre.",
        ["show the trending tracks", "list this week's top tracks"],
        Param("genre", "genre", "in {}", **OPTIONAL),
        Param("max results", "limit", "limited to {} tracks", **OPTIONAL), zero=True),
    make_leaf(
        "Entertainment/Movies", "locate film screenings", "Find screening times of a film at cinemas in a city.",
        ["find screenings", "check cinema times"],
        Param("film title", "title", "of '{}'"), Param("city", "city", "in {}"),
        Param("screening date", "date", "on {}", **OPTIONAL),
        Param("screen format", "screen", "in {} format", **OPTIONAL)),
    make_leaf(
        "Entertainment/Movies", "gather film critiques",
        "Collect critic reviews of a film with an optional minimum rating.",
        ["collect reviews", "gather critic reviews"],
        Param("film title", "title", "of '{}'"), Param("minimum rating", "rating", "rated at least {}", **OPTIONAL),
        Param("max results", "limit", "up to {} of them", **OPTIONAL)),
    make_leaf(
        "Entertainment/Books", "query library holdings", "Search a public library's holdings by topic and author.",
        ["search the library", "look for books"],
        Param("topic", "topic", "about {}"), Param("author", "person", "by {}", **OPTIONAL),
        Param("language", "language", "in {}", **OPTIONAL),
        Param("available only", "flag", ("that are on the shelf now", "including checked-out copies"), **OPTIONAL)),
    # ---------------------------------------------------------------- Science
    make_leaf(
        "Science/Chemistry", "derive molar mass", "Derive the molar mass of a chemical compound from its formula.",
        ["derive the molar mass", "work out the molar mass"],
        Param("compound", "compound", "of {}")),
    make_leaf(
        "Science/Chemistry", "describe element profile", "Describe the physical properties of a chemical element.",
        ["describe the properties", "give me a profile"],
        Param("element", "element", "of {}"),
        Param("include isotopes", "flag", ("including isotopes", "without isotopes"), **OPTIONAL)),
    make_leaf(
        "Science/Physics", "model projectile flight",
        "Model the range and flight time of a projectile launched on flat ground.",
        ["model a projectile", "compute how far a projectile flies"],
        Param("launch speed", "speed", "launched at {} m/s"), Param("launch angle", "angle", "at {} degrees"),
        Param("drag enabled", "flag", ("with air drag", "ignoring air drag"), **OPTIONAL)),
    make_leaf(
        "Science/Physics", "restate energy quantity", "Convert an energy quantity between physical units.",
        ["convert an energy value", "restate an energy amount"],
        Param("value", "energy", "{}"), Param("from unit", "energy_unit", "from {}"),
        Param("to unit", "energy_unit", "into {}")),
    make_leaf(
        "Science/Astronomy", "planet viewing window", "Report when a planet is visible from a city on a given night.",
        ["tell me when I can see", "find the viewing window for"],
        Param("planet", "planet", "{}"), Param("city", "city", "from {}"),
        Param("night date", "date", "on {}", **OPTIONAL)),
    make_leaf(
        "Science/Trivia", "surface science tidbit", "Return a random science fact, optionally about a topic.",
        ["tell me a science fact", "share a random science tidbit"],
        Param("topic", "subject", "about {}", **OPTIONAL), zero=True),
    # ---------------------------------------------------------------- Messaging
    make_leaf(
        "Messaging/Email", "prepare mail draft", "Prepare an email draft for the user to review before sending.",
        ["draft an email", "prepare an email"],
        Param("recipient", "email", "to {}"), Param("subject line", "title", "with the subject '{}'"),
        Param("body", "note", "saying '{}'"), Param("cc", "emails", "copying {}", **OPTIONAL),
        Param("high priority", "flag", ("marked as high priority", "at normal priority"), **OPTIONAL)),
    make_leaf(
        "Messaging/Chat", "post team note", "Post a message to a team chat channel.",
        ["post a message", "share a note"],
        Param("channel", "channel", "in {}"), Param("text", "note", "saying '{}'"),
        Param("mentions", "people", "mentioning {}", **OPTIONAL),
        Param("pin", "flag", ("and pin it", "without pinning it"), **OPTIONAL)),
    make_leaf(
        "Messaging/SMS", "dispatch text message", "Send an SMS to a phone number, now or at a scheduled time.",
        ["text", "send an SMS"],
        Param("phone number", "phone", "to {}"), Param("message", "note", "saying '{}'"),
        Param("send at", "time", "at {}", **OPTIONAL)),
    make_leaf(
        "Messaging/Contacts", "store contact card", "Save a new contact card in the user's address book.",
        ["save a contact", "add a new contact"],
        Param("full name", "person", "for {}"), Param("email", "email", "with email {}", **OPTIONAL),
        Param("phone number", "phone", "with phone {}", **OPTIONAL), Param("city", "city", "living in {}", **OPTIONAL)),
    # ---------------------------------------------------------------- Weather
    make_leaf(
        "Weather/Forecast", "daily outlook report",
        "Return the daily weather outlook for a city for several days ahead.",
        ["get the weather outlook", "show the forecast"],
        Param("city", "city", "for {}"), Param("days ahead", "count", "for the next {} days"),
        Param("units", "temp_unit", "in {}", **OPTIONAL),
        Param("include hourly", "flag", ("with hourly detail", "daily only"), **OPTIONAL)),
    make_leaf(
        "Weather/Forecast", "air quality reading", "Read the air quality index for a city, optionally per pollutant.",
        ["check the air quality", "get an air quality reading"],
        Param("city", "city", "in {}"), Param("reading date", "date", "on {}", **OPTIONAL),
        Param("pollutants", "pollutants", "covering {}", **OPTIONAL)),
    make_leaf(
        "Weather/Climate", "climate normals digest", "Summarize long-term climate normals of a city for a month.",
        ["summarize the climate", "describe typical weather"],
        Param("city", "city", "for {}"), Param("month", "month", "in {}"),
        Param("metric", "climate_metric", "focusing on {}", **OPTIONAL)),
    make_leaf(
        "Weather/Alerts", "storm warning feed", "List active storm warnings within a radius of a location.",
        ["list storm warnings", "check for severe weather alerts"],
        Param("location", "coordinates", "near latitude {latitude} and longitude {longitude}"),
        Param("radius km", "distance", "within {} km"),
        Param("min severity", "severity", "of at least {} severity", **OPTIONAL)),
    # ---------------------------------------------------------------- Food
    make_leaf(
        "Food/Recipes", "pantry recipe ideas", "Suggest recipes that use ingredients the user already has.",
        ["suggest recipes", "give me recipe ideas"],
        Param("ingredients", "ingredients", "using {}"), Param("diet", "diet", "that are {}", **OPTIONAL),
        Param("max minutes", "minutes", "ready in under {} minutes", **OPTIONAL),
        Param("servings", "count", "for {} servings", **OPTIONAL)),
    make_leaf(
        "Food/Recipes", "rescale recipe servings",
        "Rescale a recipe's ingredient quantities to a new number of servings.",
        ["rescale a recipe", "adjust a recipe"],
        Param("dish", "dish", "for {}"), Param("original servings", "count", "from {} servings"),
        Param("target servings", "count", "to {} servings")),
    make_leaf(
        "Food/Restaurants", "hold dinner table", "Reserve a table at a restaurant for a date, time and party size.",
        ["reserve a table", "book a dinner table"],
        Param("restaurant", "restaurant", "at {}"), Param("reservation date", "date", "on {}"),
        Param("time", "time", "at {}"), Param("party size", "count", "for {} people"),
        Param("outdoor seating", "flag", ("with outdoor seating", "indoors"), **OPTIONAL)),
    make_leaf(
        "Food/Restaurants", "browse nearby eateries", "Browse restaurants in a city by cuisine and price.",
        ["find restaurants", "browse places to eat"],
        Param("city", "city", "in {}"), Param("cuisine", "cuisine", "serving {} food"),
        Param("price range", "price_range", "costing between {min_price} and {max_price}", **OPTIONAL),
        Param("open now", "flag", ("that are open now", "whether open or not"), **OPTIONAL)),
    make_leaf(
        "Food/Nutrition", "tally dish calories", "Estimate the calories and macronutrients of a dish portion.",
        ["estimate the calories", "count the calories"],
        Param("dish", "dish", "in {}"), Param("portion grams", "grams", "for a {} gram portion", **OPTIONAL)),
    # ---------------------------------------------------------------- Health
    make_leaf(
        "Health/Fitness", "gauge mass index", "Compute body mass index from weight and height.",
        ["compute my BMI", "work out my body mass index"],
        Param("weight kg", "weight_kg", "for {} kg"), Param("height cm", "height_cm", "and {} cm")),
    make_leaf(
        "Health/Fitness", "design training session", "Design a workout session for a goal and duration.",
        ["design a workout", "plan a training session"],
        Param("goal", "goal", "for {}"), Param("duration minutes", "minutes", "lasting {} minutes"),
        Param("equipment", "equipment", "with {}", **OPTIONAL),
        Param("difficulty", "difficulty", "at {} difficulty", **OPTIONAL)),
    make_leaf(
        "Health/Medical", "screen drug combination", "Screen two medications for known interactions.",
        ["check for drug interactions", "screen a medication combination"],
        Param("medications", "medications", "between {}"),
        Param("patient age", "age", "for a {}-year-old", **OPTIONAL)),
    make_leaf(
        "Health/Medical", "assess symptom set", "Give a triage level for a set of symptoms.",
        ["assess my symptoms", "triage some symptoms"],
        Param("symptoms", "symptoms", "with {}"), Param("days", "count", "lasting {} days"),
        Param("age", "age", "at age {}", **OPTIONAL)),
    make_leaf(
        "Health/Appointments", "arrange clinic visit", "Book an appointment with a clinic specialty.",
        ["book a clinic appointment", "arrange a doctor's visit"],
        Param("specialty", "specialty", "in {}"), Param("visit date", "date", "on {}"),
        Param("visit time", "time", "at {}"), Param("patient name", "person", "for {}", **OPTIONAL)),
    # ---------------------------------------------------------------- Shopping
    make_leaf(
        "Shopping/Products", "survey retail prices", "Survey prices of a product across online stores.",
        ["compare prices", "survey prices"],
        Param("product", "product", "for {}"), Param("max price", "amount", "under {}", **OPTIONAL),
        Param("max results", "limit", "showing {} offers", **OPTIONAL)),
    make_leaf(
        "Shopping/Delivery", "follow shipment status", "Follow the delivery status of a shipment.",
        ["track a shipment", "check a delivery"],
        Param("tracking number", "tracking", "with tracking number {}"),
        Param("carrier", "carrier", "sent with {}", **OPTIONAL)),
    make_leaf(
        "Shopping/Lists", "append wish item", "Add a product to the user's wish list.",
        ["add to my wish list", "save an item to my wishlist"],
        Param("product", "product", "the {}"), Param("priority", "priority", "with {} priority", **OPTIONAL),
        Param("budget", "amount", "with a budget of {}", **OPTIONAL)),
    # ---------------------------------------------------------------- Sports
    make_leaf(
        "Sports/Fixtures", "upcoming team matchups", "List a team's upcoming matches.",
        ["list upcoming matches", "show the fixtures"],
        Param("team", "team", "for the {}"), Param("sport", "sport", "in {}", **OPTIONAL),
        Param("from date", "date", "from {}", **OPTIONAL)),
    make_leaf(
        "Sports/Standings", "season ranking table", "Return the league table of a sport for a season.",
        ["show the league table", "get the standings"],
        Param("sport", "sport", "for {}"), Param("season year", "year", "in the {} season"),
        Param("top n", "limit", "top {} only", **OPTIONAL)),
    # ---------------------------------------------------------------- Education
    make_leaf(
        "Education/Assessment", "compose practice quiz", "Compose a practice quiz on a subject.",
        ["make a practice quiz", "write quiz questions"],
        Param("subject", "subject", "on {}"), Param("question count", "count", "with {} questions"),
        Param("difficulty", "difficulty", "at {} difficulty", **OPTIONAL)),
    make_leaf(
        "Education/Courses", "catalog online classes", "Find online classes on a subject.",
        ["find online classes", "look up courses"],
        Param("subject", "subject", "about {}"), Param("language", "language", "taught in {}", **OPTIONAL),
        Param("max price", "amount", "costing at most {}", **OPTIONAL),
        Param("free only", "flag", ("that are free", "free or paid"), **OPTIONAL)),
    # ---------------------------------------------------------------- Productivity
    make_leaf(
        "Productivity/Calendar", "plan calendar block", "Create an event in the user's calendar.",
        ["put an event in my calendar", "schedule an event"],
        Param("event title", "title", "called '{}'"), Param("event date", "date", "on {}"),
        Param("start time", "time", "at {}"), Param("duration minutes", "minutes", "for {} minutes", **OPTIONAL),
        Param("attendees", "emails", "inviting {}", **OPTIONAL)),
    make_leaf(
        "Productivity/Reminders", "arm todo reminder", "Set a reminder for a task at a date and time.",
        ["remind me", "set a reminder"],
        Param("task", "task", "to {}"), Param("remind date", "date", "on {}"), Param("remind time", "time", "at {}"),
        Param("priority", "priority", "with {} priority", **OPTIONAL)),
    make_leaf(
        "Productivity/Language", "render passage translation", "Translate a short passage into another language.",
        ["translate", "render a translation of"],
        Param("passage", "note", "'{}'"), Param("target language", "language", "into {}"),
        Param("source language", "language", "from {}", **OPTIONAL),
        Param("formal tone", "flag", ("in a formal tone", "in a casual tone"), **OPTIONAL)),
)

DOMAINS = tuple(dict.fromkeys(leaf.domain for leaf in LEAVES))
BY_KEY = {leaf.key: leaf for leaf in LEAVES}


def tree() -> dict[str, dict[str, list[str]]]:
    """The context tree as domain -> sub-domain -> leaf keys."""
    out: dict[str, dict[str, list[str]]] = {}
    for leaf in LEAVES:
        dom, sub = leaf.path.split("/")
        out.setdefault(dom, {}).setdefault(sub, []).append(leaf.key)
    return out
