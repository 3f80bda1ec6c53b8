"""税务 (tax) adapter: social-insurance fee declaration and its payment link."""
