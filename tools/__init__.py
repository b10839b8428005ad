"""Project tooling that is not part of the app (release gates)."""
