"""The cockpit (``luzia cockpit``): every job of a home at a glance, live, in a terminal or
a browser."""
