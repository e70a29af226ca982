"""Networks, each built from a `_target_` config."""
