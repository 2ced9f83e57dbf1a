"""Trained default models that ship with eventsp (``*.esp`` files, see ``eventsp.model``)."""
