"""Offline training of the shipped networks (``scripts/`` calls these): the room renderer, encoder
training, regressor training data. May import every core room; nothing imports it but ``ros``
(the demo renders a room) and the CLI."""
