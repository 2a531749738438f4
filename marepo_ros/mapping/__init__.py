"""Building a map: feature buffer + head training, marepo_S, keyframe collection, background
builds. May import: ``geometry``, ``models``, ``io``, ``localization``, ``runtime``."""
