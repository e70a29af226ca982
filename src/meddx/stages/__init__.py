"""One module per DVC stage, each with a pure `run(cfg) -> metrics`."""
