"""Personal data in text: found and replaced by consistent pseudonyms (a pure library)."""
