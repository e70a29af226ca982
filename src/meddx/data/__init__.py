"""Data plumbing shared by every stage: the `.npz` layout, generators, validation."""
