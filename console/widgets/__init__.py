"""Dashboard widgets: each renders one part of the link's state and never talks to the core."""
