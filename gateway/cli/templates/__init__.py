"""Template files of `gateway adapters new` (string.Template, `${placeholders}`), shipped as package data."""
