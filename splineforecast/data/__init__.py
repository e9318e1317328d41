"""Reading, validating, splitting, filling and scaling the table of observations."""
