"""The context tree of Dual-Tree API synthesis: domain -> sub-domain -> leaf function.

A leaf carries what a procedural API needs: name words, a realistic description, intent phrases for
user queries, and a pool of parameters (each with a value slot from core.seeds.values and a query
phrase with ``{}`` for the value; booleans have a (true, false) phrase pair). Names are chosen not to
collide with any BFCL-v3 or ACEBench function (tests/test_seeds.py checks every naming variant).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class P:
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
    params: tuple[P, ...]
    zero_ok: bool = False  # may be synthesized with no parameters at all

    @property
    def key(self) -> str:
        return f"{self.path}/{self.words.replace(' ', '_')}"

    @property
    def domain(self) -> str:
        return self.path.split("/")[0]


def L(path: str, words: str, desc: str, intents: list[str], *params: P, zero: bool = False) -> Leaf:
    return Leaf(path, words, desc, tuple(intents), params, zero)


O = dict(req=False)  # optional parameter

LEAVES: tuple[Leaf, ...] = (
    # ---------------------------------------------------------------- Travel
    L("Travel/Transportation", "search flight offers",
      "Search bookable flight offers between two cities for a given travel date.",
      ["find flight offers", "search for flights", "look up available flights"],
      P("origin", "city", "from {}"), P("destination", "city", "to {}"), P("travel date", "date", "on {}"),
      P("passengers", "count", "for {} passengers", **O), P("cabin class", "cabin", "in {} class", **O),
      P("nonstop only", "flag", ("with nonstop flights only", "with connections allowed"), **O)),
    L("Travel/Transportation", "lookup coach departures",
      "List intercity coach departures between two cities on a given day.",
      ["check coach departures", "find a coach connection", "list bus departures"],
      P("departure city", "city", "from {}"), P("arrival city", "city", "to {}"),
      P("departure day", "date", "on {}"), P("earliest time", "time", "leaving after {}", **O),
      P("max transfers", "count", "with at most {} transfers", **O)),
    L("Travel/Transportation", "reserve rail seats", "Reserve seats on a long-distance train.",
      ["reserve train seats", "book seats on a train"],
      P("from station city", "city", "from {}"), P("to station city", "city", "to {}"),
      P("journey date", "date", "on {}"), P("seat count", "count", "for {} seats"),
      P("seat class", "seat_class", "in {} class", **O),
      P("window preferred", "flag", ("with window seats", "with any seats"), **O)),
    L("Travel/Accommodation", "search lodging availability",
      "Find available hotel rooms in a city for a stay starting on a given date.",
      ["find a hotel room", "check hotel availability", "search for a place to stay"],
      P("city", "city", "in {}"), P("check in date", "date", "checking in on {}"),
      P("nights", "nights", "for {} nights"), P("guests", "count", "for {} guests", **O),
      P("room type", "room", "with a {} room", **O),
      P("nightly budget", "price_range", "priced between {min_price} and {max_price} per night", **O),
      P("breakfast included", "flag", ("with breakfast included", "without breakfast"), **O)),
    L("Travel/Accommodation", "list holiday rentals", "List vacation rentals available in a city between two dates.",
      ["list vacation rentals", "find a holiday apartment"],
      P("city", "city", "in {}"), P("arrival date", "date", "arriving {}"), P("leaving date", "date", "leaving {}"),
      P("bedrooms", "count", "with {} bedrooms", **O), P("amenities", "amenities", "with {}", **O),
      P("pets allowed", "flag", ("where pets are allowed", "with no pets"), **O)),
    L("Travel/Local Services", "discover local happenings", "Discover concerts, fairs and other local events in a city.",
      ["find local events", "see what's happening", "discover events"],
      P("city", "city", "in {}"), P("event date", "date", "on {}", **O), P("music genre", "genre", "featuring {} music", **O),
      P("max results", "limit", "showing up to {} results", **O), zero=False),
    L("Travel/Local Services", "quote car hire", "Get a price quote for renting a car between two dates.",
      ["get a car rental quote", "price a rental car"],
      P("pickup city", "city", "in {}"), P("pickup date", "date", "from {}"), P("return date", "date", "until {}"),
      P("car class", "car", "for a {}", **O), P("driver age", "age", "for a driver aged {}", **O)),
    # ---------------------------------------------------------------- Finance
    L("Finance/Currency", "quote currency swap", "Convert an amount from one currency to another at the latest rate.",
      ["convert", "exchange", "work out the conversion of"],
      P("amount", "amount", "{}"), P("source currency", "currency", "from {}"),
      P("target currency", "currency", "to {}")),
    L("Finance/Currency", "chart rate history", "Return daily exchange rates between two currencies over a date range.",
      ["show the exchange rate history", "chart the exchange rate"],
      P("base currency", "currency", "for {}"), P("quote currency", "currency", "against {}"),
      P("start date", "date", "from {}"), P("end date", "date", "to {}", **O)),
    L("Finance/Currency", "enumerate tradable currencies", "List the currencies that can be exchanged, optionally by region.",
      ["list the currencies I can exchange", "show the tradable currencies"],
      P("region country", "country", "available in {}", **O), zero=True),
    L("Finance/Investing", "fetch equity snapshot", "Fetch the latest price snapshot for a stock ticker.",
      ["get a price snapshot", "check the latest stock price"],
      P("ticker", "ticker", "for {}"), P("include after hours", "flag", ("including after-hours trading",
                                                                         "regular session only"), **O)),
    L("Finance/Investing", "project portfolio growth", "Project the future value of a portfolio with compound returns.",
      ["project my portfolio growth", "estimate how my savings grow"],
      P("initial amount", "amount", "starting with {}"), P("annual return", "percent", "at {} percent a year"),
      P("horizon years", "years_n", "over {} years"), P("monthly contribution", "amount", "adding {} a month", **O)),
    L("Finance/Banking", "compute loan installment", "Compute the fixed monthly installment of an amortized loan.",
      ["compute the monthly installment", "work out my loan payment"],
      P("principal", "amount", "for a loan of {}"), P("interest rate", "percent", "at {} percent interest"),
      P("term months", "months_n", "over {} months")),
    L("Finance/Banking", "move money between accounts", "Transfer money between two of the user's bank accounts.",
      ["transfer money", "move funds"],
      P("from account", "account", "from account {}"), P("to account", "account", "to account {}"),
      P("amount", "amount", "an amount of {}"), P("memo", "note", "with the memo '{}'", **O)),
    # ---------------------------------------------------------------- Entertainment
    L("Entertainment/Music", "queue track playback", "Start playing a song on the user's active speaker.",
      ["play", "put on", "queue up"],
      P("song title", "song", "the song '{}'"), P("artist", "artist", "by {}", **O),
      P("volume level", "count", "at volume {}", **O),
      P("shuffle", "flag", ("with shuffle on", "with shuffle off"), **O)),
    L("Entertainment/Music", "assemble genre mix", "Create a playlist of tracks from one music genre.",
      ["make a playlist", "create a mix", "build a playlist"],
      P("genre", "genre", "of {} music"), P("track count", "count", "with {} tracks"),
      P("playlist name", "title", "called '{}'", **O),
      P("explicit allowed", "flag", ("allowing explicit tracks", "without explicit tracks"), **O)),
    L("Entertainment/Music", "chart trending tracks", "Show the tracks trending this week, optionally for one genre.",
      ["show the trending tracks", "list this week's top tracks"],
      P("genre", "genre", "in {}", **O), P("max results", "limit", "limited to {} tracks", **O), zero=True),
    L("Entertainment/Movies", "locate film screenings", "Find screening times of a film at cinemas in a city.",
      ["find screenings", "check cinema times"],
      P("film title", "title", "of '{}'"), P("city", "city", "in {}"), P("screening date", "date", "on {}", **O),
      P("screen format", "screen", "in {} format", **O)),
    L("Entertainment/Movies", "gather film critiques", "Collect critic reviews of a film with an optional minimum rating.",
      ["collect reviews", "gather critic reviews"],
      P("film title", "title", "of '{}'"), P("minimum rating", "rating", "rated at least {}", **O),
      P("max results", "limit", "up to {} of them", **O)),
    L("Entertainment/Books", "query library holdings", "Search a public library's holdings by topic and author.",
      ["search the library", "look for books"],
      P("topic", "topic", "about {}"), P("author", "person", "by {}", **O), P("language", "language", "in {}", **O),
      P("available only", "flag", ("that are on the shelf now", "including checked-out copies"), **O)),
    # ---------------------------------------------------------------- Science
    L("Science/Chemistry", "derive molar mass", "Derive the molar mass of a chemical compound from its formula.",
      ["derive the molar mass", "work out the molar mass"], P("compound", "compound", "of {}")),
    L("Science/Chemistry", "describe element profile", "Describe the physical properties of a chemical element.",
      ["describe the properties", "give me a profile"],
      P("element", "element", "of {}"), P("include isotopes", "flag", ("including isotopes", "without isotopes"), **O)),
    L("Science/Physics", "model projectile flight", "Model the range and flight time of a projectile launched on flat ground.",
      ["model a projectile", "compute how far a projectile flies"],
      P("launch speed", "speed", "launched at {} m/s"), P("launch angle", "angle", "at {} degrees"),
      P("drag enabled", "flag", ("with air drag", "ignoring air drag"), **O)),
    L("Science/Physics", "restate energy quantity", "Convert an energy quantity between physical units.",
      ["convert an energy value", "restate an energy amount"],
      P("value", "energy", "{}"), P("from unit", "energy_unit", "from {}"), P("to unit", "energy_unit", "into {}")),
    L("Science/Astronomy", "planet viewing window", "Report when a planet is visible from a city on a given night.",
      ["tell me when I can see", "find the viewing window for"],
      P("planet", "planet", "{}"), P("city", "city", "from {}"), P("night date", "date", "on {}", **O)),
    L("Science/Trivia", "surface science tidbit", "Return a random science fact, optionally about a topic.",
      ["tell me a science fact", "share a random science tidbit"], P("topic", "subject", "about {}", **O), zero=True),
    # ---------------------------------------------------------------- Messaging
    L("Messaging/Email", "prepare mail draft", "Prepare an email draft for the user to review before sending.",
      ["draft an email", "prepare an email"],
      P("recipient", "email", "to {}"), P("subject line", "title", "with the subject '{}'"),
      P("body", "note", "saying '{}'"), P("cc", "emails", "copying {}", **O),
      P("high priority", "flag", ("marked as high priority", "at normal priority"), **O)),
    L("Messaging/Chat", "post team note", "Post a message to a team chat channel.",
      ["post a message", "share a note"],
      P("channel", "channel", "in {}"), P("text", "note", "saying '{}'"), P("mentions", "people", "mentioning {}", **O),
      P("pin", "flag", ("and pin it", "without pinning it"), **O)),
    L("Messaging/SMS", "dispatch text message", "Send an SMS to a phone number, now or at a scheduled time.",
      ["text", "send an SMS"], P("phone number", "phone", "to {}"), P("message", "note", "saying '{}'"),
      P("send at", "time", "at {}", **O)),
    L("Messaging/Contacts", "store contact card", "Save a new contact card in the user's address book.",
      ["save a contact", "add a new contact"],
      P("full name", "person", "for {}"), P("email", "email", "with email {}", **O),
      P("phone number", "phone", "with phone {}", **O), P("city", "city", "living in {}", **O)),
    # ---------------------------------------------------------------- Weather
    L("Weather/Forecast", "daily outlook report", "Return the daily weather outlook for a city for several days ahead.",
      ["get the weather outlook", "show the forecast"],
      P("city", "city", "for {}"), P("days ahead", "count", "for the next {} days"),
      P("units", "temp_unit", "in {}", **O), P("include hourly", "flag", ("with hourly detail", "daily only"), **O)),
    L("Weather/Forecast", "air quality reading", "Read the air quality index for a city, optionally per pollutant.",
      ["check the air quality", "get an air quality reading"],
      P("city", "city", "in {}"), P("reading date", "date", "on {}", **O), P("pollutants", "pollutants", "covering {}", **O)),
    L("Weather/Climate", "climate normals digest", "Summarize long-term climate normals of a city for a month.",
      ["summarize the climate", "describe typical weather"],
      P("city", "city", "for {}"), P("month", "month", "in {}"), P("metric", "climate_metric", "focusing on {}", **O)),
    L("Weather/Alerts", "storm warning feed", "List active storm warnings within a radius of a location.",
      ["list storm warnings", "check for severe weather alerts"],
      P("location", "coordinates", "near latitude {latitude} and longitude {longitude}"),
      P("radius km", "distance", "within {} km"), P("min severity", "severity", "of at least {} severity", **O)),
    # ---------------------------------------------------------------- Food
    L("Food/Recipes", "pantry recipe ideas", "Suggest recipes that use ingredients the user already has.",
      ["suggest recipes", "give me recipe ideas"],
      P("ingredients", "ingredients", "using {}"), P("diet", "diet", "that are {}", **O),
      P("max minutes", "minutes", "ready in under {} minutes", **O), P("servings", "count", "for {} servings", **O)),
    L("Food/Recipes", "rescale recipe servings", "Rescale a recipe's ingredient quantities to a new number of servings.",
      ["rescale a recipe", "adjust a recipe"],
      P("dish", "dish", "for {}"), P("original servings", "count", "from {} servings"),
      P("target servings", "count", "to {} servings")),
    L("Food/Restaurants", "hold dinner table", "Reserve a table at a restaurant for a date, time and party size.",
      ["reserve a table", "book a dinner table"],
      P("restaurant", "restaurant", "at {}"), P("reservation date", "date", "on {}"), P("time", "time", "at {}"),
      P("party size", "count", "for {} people"),
      P("outdoor seating", "flag", ("with outdoor seating", "indoors"), **O)),
    L("Food/Restaurants", "browse nearby eateries", "Browse restaurants in a city by cuisine and price.",
      ["find restaurants", "browse places to eat"],
      P("city", "city", "in {}"), P("cuisine", "cuisine", "serving {} food"),
      P("price range", "price_range", "costing between {min_price} and {max_price}", **O),
      P("open now", "flag", ("that are open now", "whether open or not"), **O)),
    L("Food/Nutrition", "tally dish calories", "Estimate the calories and macronutrients of a dish portion.",
      ["estimate the calories", "count the calories"],
      P("dish", "dish", "in {}"), P("portion grams", "grams", "for a {} gram portion", **O)),
    # ---------------------------------------------------------------- Health
    L("Health/Fitness", "gauge mass index", "Compute body mass index from weight and height.",
      ["compute my BMI", "work out my body mass index"],
      P("weight kg", "weight_kg", "for {} kg"), P("height cm", "height_cm", "and {} cm")),
    L("Health/Fitness", "design training session", "Design a workout session for a goal and duration.",
      ["design a workout", "plan a training session"],
      P("goal", "goal", "for {}"), P("duration minutes", "minutes", "lasting {} minutes"),
      P("equipment", "equipment", "with {}", **O), P("difficulty", "difficulty", "at {} difficulty", **O)),
    L("Health/Medical", "screen drug combination", "Screen two medications for known interactions.",
      ["check for drug interactions", "screen a medication combination"],
      P("medications", "medications", "between {}"), P("patient age", "age", "for a {}-year-old", **O)),
    L("Health/Medical", "assess symptom set", "Give a triage level for a set of symptoms.",
      ["assess my symptoms", "triage some symptoms"],
      P("symptoms", "symptoms", "with {}"), P("days", "count", "lasting {} days"), P("age", "age", "at age {}", **O)),
    L("Health/Appointments", "arrange clinic visit", "Book an appointment with a clinic specialty.",
      ["book a clinic appointment", "arrange a doctor's visit"],
      P("specialty", "specialty", "in {}"), P("visit date", "date", "on {}"), P("visit time", "time", "at {}"),
      P("patient name", "person", "for {}", **O)),
    # ---------------------------------------------------------------- Shopping
    L("Shopping/Products", "survey retail prices", "Survey prices of a product across online stores.",
      ["compare prices", "survey prices"],
      P("product", "product", "for {}"), P("max price", "amount", "under {}", **O),
      P("max results", "limit", "showing {} offers", **O)),
    L("Shopping/Delivery", "follow shipment status", "Follow the delivery status of a shipment.",
      ["track a shipment", "check a delivery"],
      P("tracking number", "tracking", "with tracking number {}"), P("carrier", "carrier", "sent with {}", **O)),
    L("Shopping/Lists", "append wish item", "Add a product to the user's wish list.",
      ["add to my wish list", "save an item to my wishlist"],
      P("product", "product", "the {}"), P("priority", "priority", "with {} priority", **O),
      P("budget", "amount", "with a budget of {}", **O)),
    # ---------------------------------------------------------------- Sports
    L("Sports/Fixtures", "upcoming team matchups", "List a team's upcoming matches.",
      ["list upcoming matches", "show the fixtures"],
      P("team", "team", "for the {}"), P("sport", "sport", "in {}", **O), P("from date", "date", "from {}", **O)),
    L("Sports/Standings", "season ranking table", "Return the league table of a sport for a season.",
      ["show the league table", "get the standings"],
      P("sport", "sport", "for {}"), P("season year", "year", "in the {} season"), P("top n", "limit", "top {} only", **O)),
    # ---------------------------------------------------------------- Education
    L("Education/Assessment", "compose practice quiz", "Compose a practice quiz on a subject.",
      ["make a practice quiz", "write quiz questions"],
      P("subject", "subject", "on {}"), P("question count", "count", "with {} questions"),
      P("difficulty", "difficulty", "at {} difficulty", **O)),
    L("Education/Courses", "catalog online classes", "Find online classes on a subject.",
      ["find online classes", "look up courses"],
      P("subject", "subject", "about {}"), P("language", "language", "taught in {}", **O),
      P("max price", "amount", "costing at most {}", **O),
      P("free only", "flag", ("that are free", "free or paid"), **O)),
    # ---------------------------------------------------------------- Productivity
    L("Productivity/Calendar", "plan calendar block", "Create an event in the user's calendar.",
      ["put an event in my calendar", "schedule an event"],
      P("event title", "title", "called '{}'"), P("event date", "date", "on {}"), P("start time", "time", "at {}"),
      P("duration minutes", "minutes", "for {} minutes", **O), P("attendees", "emails", "inviting {}", **O)),
    L("Productivity/Reminders", "arm todo reminder", "Set a reminder for a task at a date and time.",
      ["remind me", "set a reminder"],
      P("task", "task", "to {}"), P("remind date", "date", "on {}"), P("remind time", "time", "at {}"),
      P("priority", "priority", "with {} priority", **O)),
    L("Productivity/Language", "render passage translation", "Translate a short passage into another language.",
      ["translate", "render a translation of"],
      P("passage", "note", "'{}'"), P("target language", "language", "into {}"),
      P("source language", "language", "from {}", **O),
      P("formal tone", "flag", ("in a formal tone", "in a casual tone"), **O)),
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
