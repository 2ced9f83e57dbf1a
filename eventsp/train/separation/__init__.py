"""Two-talker speech separation trainer: model (``model``), training (``train``), runtime
export (``export``) and held-out evaluation on the runtime (``evaluate``)."""
