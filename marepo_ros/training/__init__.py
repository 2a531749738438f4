"""Offline training of the shipped networks (``scripts/`` calls these): encoder training and
regressor training data, on rooms rendered by ``synthetic``. May import every core room; nothing
in the package imports it."""
