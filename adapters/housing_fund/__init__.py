"""住房公积金 (housing provident fund) adapter: account opening and its deposit link."""
