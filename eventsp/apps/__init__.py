"""Applications built on the streaming runtime (numpy + Numba; no torch at inference).

- :mod:`eventsp.apps.classify_events`: classify an event recording or a live packet stream,
  window by window, with an early answer as soon as the confidence allows.
- :mod:`eventsp.apps.kws`: keyword spotting on a continuous audio stream.
"""
