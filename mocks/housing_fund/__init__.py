"""Mock 住房公积金 (housing provident fund) centre: JGJ/T 320-style account opening with a deposit H5 page."""
