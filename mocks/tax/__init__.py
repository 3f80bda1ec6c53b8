"""Mock 税务 (tax) system: GT3-style fee declaration with a payment H5 page."""
